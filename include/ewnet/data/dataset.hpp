// ewnet/data/dataset.hpp: image-folder data sets (ROOT/<class>/<image>, as torchvision's
// ImageFolder and MATLAB's imageDatastore with folder-name labels) and their splits.
//
// A data set here is a list of (file, label) pairs with the class names sorted, so label i is the
// i-th class folder in byte order on every machine. Splits are lists of indices into it: either
// stratified per class with a seed (MATLAB's splitEachLabel), or read from a split file
// ("file,label,split" rows keyed on the path relative to ROOT, as the shared data sets ship).
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <ewnet/error.hpp>
#include <ewnet/random.hpp>

namespace ewnet::data {

struct Sample {
  std::string path;      // full path of the file
  std::string relative;  // "<class>/<file>", the key split files use
  int label = 0;
};

struct Dataset {
  std::string root;
  std::vector<std::string> classes;  // sorted; label i is classes[i]
  std::vector<Sample> samples;       // by class, then by file name

  int class_count() const { return int(classes.size()); }
  size_t size() const { return samples.size(); }
  /// Images per class, indexed by label.
  std::vector<int> class_counts() const {
    std::vector<int> n(classes.size(), 0);
    for (const Sample& s : samples) ++n[size_t(s.label)];
    return n;
  }
};

/// Train and validation indices into a Dataset.
struct Split {
  std::vector<size_t> train, validation;
};

/// File extensions of the formats stb_image decodes. Other files in a class folder (a README, a
/// .DS_Store) are not images and are ignored; a file with an image extension that fails to decode
/// is reported by the loader.
inline bool has_image_extension(const std::filesystem::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  static const std::set<std::string> known = {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tga", ".psd",
                                              ".hdr", ".pic", ".pnm", ".ppm", ".pgm"};
  return known.count(e) > 0;
}

/// Scans ROOT/<class>/<image>. Throws IoError when ROOT is missing or has no class folders, or a
/// class folder holds no image files (an empty class would make a classifier with a class it can
/// never learn).
inline Dataset scan_image_folder(const std::string& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  EWNET_CHECK_AS(IoError, fs::is_directory(root, ec), root, ": data set folder not found");
  Dataset d;
  d.root = root;
  for (const fs::directory_entry& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && !name.empty() && name[0] != '.' && name[0] != '_') d.classes.push_back(name);
  }
  std::sort(d.classes.begin(), d.classes.end());
  EWNET_CHECK_AS(IoError, !d.classes.empty(), root, ": no class folders (expected ROOT/<class>/<image>)");
  for (size_t c = 0; c < d.classes.size(); ++c) {
    std::vector<std::string> files;
    for (const fs::directory_entry& e : fs::directory_iterator(fs::path(root) / d.classes[c])) {
      const std::string name = e.path().filename().string();
      if (e.is_regular_file() && name[0] != '.' && has_image_extension(e.path())) files.push_back(name);
    }
    std::sort(files.begin(), files.end());
    EWNET_CHECK_AS(IoError, !files.empty(), root, ": class folder '", d.classes[c], "' holds no images");
    for (const std::string& f : files)
      d.samples.push_back({(fs::path(root) / d.classes[c] / f).string(), d.classes[c] + "/" + f, int(c)});
  }
  return d;
}

/// Keeps only the samples whose index is in `keep` (in order), e.g. after bad files were found.
inline Dataset subset(const Dataset& d, const std::vector<size_t>& keep) {
  Dataset out;
  out.root = d.root;
  out.classes = d.classes;
  for (size_t i : keep) out.samples.push_back(d.samples.at(i));
  return out;
}

/// Stratified split: in each class, a seeded shuffle, then round(fraction * count) images for
/// training (at least one, and at least one left for validation when the class has two or more).
/// MATLAB's splitEachLabel(imds, fraction, 'randomized').
inline Split split_each_label(const Dataset& d, double train_fraction, std::uint64_t seed) {
  EWNET_CHECK(train_fraction > 0 && train_fraction <= 1, "split: training fraction must be in (0, 1], got ",
              train_fraction);
  std::vector<std::vector<size_t>> by_class(d.classes.size());
  for (size_t i = 0; i < d.samples.size(); ++i) by_class[size_t(d.samples[i].label)].push_back(i);
  Split s;
  for (size_t c = 0; c < by_class.size(); ++c) {
    std::vector<size_t>& v = by_class[c];
    Random rng(seed, 0x5e1170000ull + c);  // one stream a class: adding a class keeps the others' splits
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(rng.below(i))]);
    size_t n = size_t(std::lround(train_fraction * double(v.size())));
    n = std::max<size_t>(n, 1);
    if (train_fraction < 1 && v.size() >= 2) n = std::min(n, v.size() - 1);
    s.train.insert(s.train.end(), v.begin(), v.begin() + std::ptrdiff_t(n));
    s.validation.insert(s.validation.end(), v.begin() + std::ptrdiff_t(n), v.end());
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.validation.begin(), s.validation.end());
  return s;
}

/// Reads a split file: CSV with a header naming at least the columns "file" (relative to the data
/// set root, "<class>/<name>") and "split". Returns file -> split name.
inline std::map<std::string, std::string> read_split_file(const std::string& path) {
  std::ifstream in(path);
  EWNET_CHECK_AS(IoError, in.good(), path, ": cannot open split file");
  auto fields = [](const std::string& line) {
    std::vector<std::string> out;
    std::string f;
    std::istringstream is(line);
    while (std::getline(is, f, ',')) {
      while (!f.empty() && (f.back() == '\r' || f.back() == ' ')) f.pop_back();
      out.push_back(f);
    }
    return out;
  };
  std::string line;
  EWNET_CHECK_AS(IoError, bool(std::getline(in, line)), path, ": empty split file");
  const std::vector<std::string> head = fields(line);
  const auto col = [&](const char* name) {
    const auto it = std::find(head.begin(), head.end(), name);
    EWNET_CHECK_AS(IoError, it != head.end(), path, ": no column '", name, "' in the header");
    return size_t(it - head.begin());
  };
  const size_t file_col = col("file"), split_col = col("split");
  std::map<std::string, std::string> out;
  int row = 1;
  while (std::getline(in, line)) {
    ++row;
    if (line.empty() || line == "\r") continue;
    const std::vector<std::string> f = fields(line);
    EWNET_CHECK_AS(IoError, f.size() > std::max(file_col, split_col), path, ":", row, ": too few columns");
    out[f[file_col]] = f[split_col];
  }
  return out;
}

/// A split from a split file: rows named in `train_names` train, rows in `validation_names`
/// validate (the shared sets' "val" and "test" both count as held out by default). A sample of the
/// data set that the file does not list is an error, so a stale split file cannot silently drop data.
inline Split split_from_file(const Dataset& d, const std::string& path,
                             const std::set<std::string>& train_names = {"train"},
                             const std::set<std::string>& validation_names = {"val", "validation", "test"}) {
  const std::map<std::string, std::string> rows = read_split_file(path);
  Split s;
  for (size_t i = 0; i < d.samples.size(); ++i) {
    const auto it = rows.find(d.samples[i].relative);
    EWNET_CHECK_AS(IoError, it != rows.end(), path, ": no row for '", d.samples[i].relative, "'");
    if (train_names.count(it->second)) s.train.push_back(i);
    else if (validation_names.count(it->second)) s.validation.push_back(i);
  }
  EWNET_CHECK_AS(IoError, !s.train.empty(), path, ": no training rows for the data set in ", d.root);
  return s;
}

}  // namespace ewnet::data
