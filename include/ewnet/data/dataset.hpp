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
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
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
  std::vector<std::string> skipped;  // "path: reason" for entries the scan passed over (broken links...)

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
  std::vector<std::string> warnings;  // what a user should know (a class with no validation image)
};

/// File extensions of the formats ewnet decodes (data/image.hpp). Other files in a class folder (a
/// README, a .DS_Store) are not images and are ignored; a file with an image extension is decoded
/// by what its content is (a WebP named .jpg is read as WebP), and one that fails to decode is
/// reported by the loader.
inline bool has_image_extension(const std::filesystem::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  static const std::set<std::string> known = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".gif",
                                              ".tga", ".psd", ".hdr", ".pic", ".pnm", ".ppm", ".pgm"};
  return known.count(e) > 0;
}

/// Scans ROOT/<class>/<image>. Throws IoError when ROOT is missing or has no class folders, or a
/// class folder holds no image files (an empty class would make a classifier with a class it can
/// never learn). Hidden entries (".x", and "_x" folders) are passed over. A symbolic link that
/// leads nowhere or into a loop is listed in Dataset::skipped with the reason instead of stopping
/// the scan.
inline Dataset scan_image_folder(const std::string& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  EWNET_CHECK_AS(IoError, fs::is_directory(root, ec), root, ": data set folder not found");
  Dataset d;
  d.root = root;
  // The entry's own type when it is a link that resolves nowhere: "" when it is fine.
  auto broken_link = [](const fs::directory_entry& e) -> std::string {
    std::error_code lec;
    if (!e.is_symlink(lec)) return "";
    std::error_code sec;
    const fs::file_status st = fs::status(e.path(), sec);
    if (sec.value() == ELOOP) return "symbolic link loop";
    if (sec || !fs::exists(st)) return "dangling symbolic link";
    return "";
  };
  auto each = [&](const fs::path& dir, const auto& visit) {
    std::error_code iec;
    fs::directory_iterator it(dir, iec), end;
    EWNET_CHECK_AS(IoError, !iec, dir.string(), ": cannot list the folder: ", iec.message());
    for (; it != end; it.increment(iec)) {
      if (iec) throw IoError(str(dir.string(), ": cannot list the folder: ", iec.message()));
      const std::string name = it->path().filename().string();
      if (name.empty() || name[0] == '.') continue;
      const std::string why = broken_link(*it);
      if (!why.empty()) {
        d.skipped.push_back(str(it->path().string(), ": ", why));
        continue;
      }
      visit(*it, name);
    }
  };
  each(fs::path(root), [&](const fs::directory_entry& e, const std::string& name) {
    std::error_code dec;
    if (e.is_directory(dec) && name[0] != '_') d.classes.push_back(name);
  });
  std::sort(d.classes.begin(), d.classes.end());
  EWNET_CHECK_AS(IoError, !d.classes.empty(), root, ": no class folders (expected ROOT/<class>/<image>)");
  for (size_t c = 0; c < d.classes.size(); ++c) {
    std::vector<std::string> files;
    each(fs::path(root) / d.classes[c], [&](const fs::directory_entry& e, const std::string& name) {
      std::error_code fec;
      if (!e.is_regular_file(fec)) return;
      if (has_image_extension(e.path())) files.push_back(name);
    });
    std::sort(files.begin(), files.end());
    EWNET_CHECK_AS(IoError, !files.empty(), root, ": class folder '", d.classes[c], "' holds no images");
    for (const std::string& f : files)
      d.samples.push_back({(fs::path(root) / d.classes[c] / f).string(), d.classes[c] + "/" + f, int(c)});
  }
  std::sort(d.skipped.begin(), d.skipped.end());
  return d;
}

/// Keeps only the samples whose index is in `keep` (in order), e.g. after bad files were found.
inline Dataset subset(const Dataset& d, const std::vector<size_t>& keep) {
  Dataset out;
  out.root = d.root;
  out.classes = d.classes;
  out.skipped = d.skipped;
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
    if (train_fraction < 1 && v.size() == 1)
      s.warnings.push_back(str("class '", d.classes[c], "' has a single image: it trains, and the class is never "
                               "validated"));
    s.train.insert(s.train.end(), v.begin(), v.begin() + std::ptrdiff_t(n));
    s.validation.insert(s.validation.end(), v.begin() + std::ptrdiff_t(n), v.end());
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.validation.begin(), s.validation.end());
  return s;
}

/// A digest of a split's identity: FNV-1a (64-bit) over one line "T <class>/<file> <label>\n" for
/// each training sample, then "V ..." for each validation sample, in split order, as 16 hex digits.
/// Training checkpoints record it (ewnet.train.settings' "files_digest"), so a later program can
/// tell whether it splits the data as the run did.
inline std::string split_digest(const Dataset& d, const Split& split) {
  std::uint64_t h = 1469598103934665603ull;
  auto add = [&](const std::string& text) {
    for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  };
  for (const auto* part : {&split.train, &split.validation})
    for (size_t i : *part)
      add(str(part == &split.train ? "T " : "V ", d.samples[i].relative, " ", d.samples[i].label, "\n"));
  char digest[17];
  std::snprintf(digest, sizeof digest, "%016llx", static_cast<unsigned long long>(h));
  return digest;
}

/// Splits CSV text into records of fields (RFC 4180): fields separated by commas, records by LF
/// or CRLF; a field in double quotes may hold commas, line breaks and "" for a quote. A UTF-8
/// byte-order mark at the start is dropped. Each record comes with the line it starts on. Throws
/// IoError naming `what` and the line for a quote left open or text after a closing quote.
inline std::vector<std::pair<int, std::vector<std::string>>> parse_csv(const std::string& text,
                                                                      const std::string& what) {
  std::vector<std::pair<int, std::vector<std::string>>> records;
  size_t i = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  int line = 1;
  while (i < text.size()) {
    const int first_line = line;
    std::vector<std::string> fields;
    std::string field;
    bool end_of_record = false;
    while (!end_of_record) {
      if (i < text.size() && text[i] == '"') {
        ++i;
        while (true) {
          EWNET_CHECK_AS(IoError, i < text.size(), what, ":", first_line, ": a quoted field is never closed");
          if (text[i] == '"') {
            if (i + 1 < text.size() && text[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (text[i] == '\n') ++line;
          field += text[i++];
        }
        EWNET_CHECK_AS(IoError, i >= text.size() || text[i] == ',' || text[i] == '\n' || text[i] == '\r', what, ":",
                       line, ": text after a closing quote");
      } else {
        while (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r') field += text[i++];
      }
      fields.push_back(std::move(field));
      field.clear();
      if (i < text.size() && text[i] == ',') {
        ++i;
        continue;
      }
      if (i < text.size() && text[i] == '\r') ++i;
      if (i < text.size() && text[i] == '\n') ++i;
      ++line;
      end_of_record = true;
    }
    if (fields.size() == 1 && fields[0].empty()) continue;  // a blank line
    records.emplace_back(first_line, std::move(fields));
  }
  return records;
}

/// One row of a split file: its split name and the line it was on.
struct SplitRow {
  std::string split;
  int line = 0;
};

/// Reads a split file: CSV (RFC 4180, a UTF-8 BOM allowed) with a header naming at least the
/// columns "file" (relative to the data set root, "<class>/<name>") and "split". Returns file -> row.
/// Surrounding spaces of unquoted fields are dropped; a file listed twice is an error naming both lines.
inline std::map<std::string, SplitRow> read_split_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  EWNET_CHECK_AS(IoError, fs::is_regular_file(path, ec), path, ": cannot open split file (not a regular file)");
  EWNET_CHECK_AS(IoError, fs::file_size(path, ec) <= (std::uintmax_t(256) << 20), path,
                 ": split file larger than 256 MiB");
  std::ifstream in(path, std::ios::binary);
  EWNET_CHECK_AS(IoError, in.good(), path, ": cannot open split file");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto records = parse_csv(text, path);
  EWNET_CHECK_AS(IoError, !records.empty(), path, ": empty split file");
  auto trim = [](std::string f) {
    while (!f.empty() && f.back() == ' ') f.pop_back();
    size_t b = 0;
    while (b < f.size() && f[b] == ' ') ++b;
    return f.substr(b);
  };
  std::vector<std::string> head;
  for (const std::string& f : records[0].second) head.push_back(trim(f));
  const auto col = [&](const char* name) {
    const auto it = std::find(head.begin(), head.end(), name);
    EWNET_CHECK_AS(IoError, it != head.end(), path, ": no column '", name, "' in the header");
    return size_t(it - head.begin());
  };
  const size_t file_col = col("file"), split_col = col("split");
  std::map<std::string, SplitRow> out;
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& [line, f] = records[r];
    EWNET_CHECK_AS(IoError, f.size() > std::max(file_col, split_col), path, ":", line, ": too few columns");
    const std::string file = trim(f[file_col]);
    const auto [it, added] = out.emplace(file, SplitRow{trim(f[split_col]), line});
    EWNET_CHECK_AS(IoError, added, path, ":", line, ": '", file, "' is listed again (first on line ", it->second.line, ")");
  }
  return out;
}

/// A split from a split file: rows named in `train_names` train, rows in `validation_names`
/// validate (the shared sets' "val" and "test" both count as held out by default). A sample of the
/// data set that the file does not list is an error, so a stale split file cannot silently drop
/// data; so is a split value that is none of these (a typo such as "Val"), naming its line. Rows
/// whose split is in `ignored_names` are known but left out of both (a caller that takes one part
/// of a train/val/test file at a time).
inline Split split_from_file(const Dataset& d, const std::string& path,
                             const std::set<std::string>& train_names = {"train"},
                             const std::set<std::string>& validation_names = {"val", "validation", "test"},
                             const std::set<std::string>& ignored_names = {}) {
  const std::map<std::string, SplitRow> rows = read_split_file(path);
  Split s;
  for (size_t i = 0; i < d.samples.size(); ++i) {
    const auto it = rows.find(d.samples[i].relative);
    EWNET_CHECK_AS(IoError, it != rows.end(), path, ": no row for '", d.samples[i].relative, "'");
    if (train_names.count(it->second.split)) {
      s.train.push_back(i);
    } else if (validation_names.count(it->second.split)) {
      s.validation.push_back(i);
    } else if (!ignored_names.count(it->second.split)) {
      std::string known;
      for (const auto* names : {&train_names, &validation_names, &ignored_names})
        for (const std::string& n : *names) known += (known.empty() ? "" : ", ") + n;
      throw IoError(str(path, ":", it->second.line, ": unknown split '", it->second.split, "' for '",
                        d.samples[i].relative, "' (expected one of: ", known, ")"));
    }
  }
  EWNET_CHECK_AS(IoError, !s.train.empty(), path, ": no training rows for the data set in ", d.root);
  std::vector<int> validated(d.classes.size(), 0);
  for (size_t i : s.validation) ++validated[size_t(d.samples[i].label)];
  for (size_t c = 0; c < d.classes.size(); ++c)
    if (!validated[c] && !s.validation.empty())
      s.warnings.push_back(str("class '", d.classes[c], "' has no validation image in ", path));
  return s;
}

}  // namespace ewnet::data
