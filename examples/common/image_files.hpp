// image_files.hpp: the image files under a folder, as the deployment programs (ewnet-classify,
// ewnet-calibrate) search one.
#pragma once

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <ewnet/data/dataset.hpp>

namespace cli {

/// Every image file under `dir`, at any depth, sorted by path; hidden entries ('.x': macOS's
/// "._x.jpg", ".thumbs/") are passed over as training's scan passes them over, and folders that may
/// not be read are skipped. `ec` is set when the search stopped before the end.
inline std::vector<std::string> image_files_under(const std::string& dir, std::error_code& ec) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (name.empty() || name[0] == '.') {
      if (it->is_directory(type_ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(type_ec) && ewnet::data::has_image_extension(it->path())) files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace cli
