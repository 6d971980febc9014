// The fetch step: search, download, check, de-duplicate and store, resumably.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ewnet/data/image.hpp>

#include "collect/config.hpp"
#include "collect/http.hpp"

namespace ewnet::collect {

struct CollectOptions {
  std::string out_dir;
  int per_class = 100;
  int min_width = 224, min_height = 224;
  int near_distance = 6;   // dHash bits; -1 turns near-duplicate detection off
  int parallel = 4;        // downloads in flight at once
  std::size_t max_bytes = 20u << 20;       // per image
  std::size_t max_page_bytes = 8u << 20;   // per results page
  FetchOptions fetch;
  std::function<void(const std::string&)> log;  // progress lines, may be empty
};

struct ClassReport {
  int kept_before = 0;
  int kept_new = 0;
  int held_for_review = 0;
  std::map<std::string, int> skipped;  // outcome -> count
};

struct CollectReport {
  std::map<std::string, ClassReport> classes;
  bool interrupted = false;
};

/// Why a download was not kept, or nothing when it passes. Checks, in order: the transfer
/// succeeded, the size limit, the Content-Type, that it decodes, the minimum resolution.
struct Verdict {
  std::string reject;  // "" when acceptable; otherwise an outcome name like "not-an-image"
  std::string detail;
  data::Image image;
};
Verdict check_download(const Response& r, std::size_t max_bytes, int min_width, int min_height);

/// Content-Type prefixes accepted for images. Some servers label images as octet-stream; the
/// decode check decides for those.
const std::vector<std::string>& image_content_types();

/// Runs the fetch step. Stops early, leaving a consistent state, when `cancel` is set.
CollectReport collect(const std::vector<ClassSpec>& classes, const Provider& provider, const CollectOptions& opt);

}  // namespace ewnet::collect
