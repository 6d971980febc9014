// The on-disk data set and the program's memory of what it has done.
//
//   ROOT/<class>/<sha256-prefix>.<ext>   kept images, as downloaded
//   ROOT/manifest.csv                    file,class,url,sha256,width,height (one row per kept image)
//   ROOT/review.csv                      cross-class duplicates, held in ROOT/_review/<class>/
//   ROOT/_rejected/<class>/              images moved aside by a reject list; rejected.csv lists them
//   ROOT/_sheet/                         the contact sheet
//   ROOT/_state/tried.tsv                every address tried, with its outcome (for resuming)
// Folders starting with '_' are never classes.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace ewnet::collect {

/// Splits one CSV record (RFC 4180: quoted fields, "" for a quote inside quotes).
std::vector<std::string> csv_split(const std::string& line);
/// Joins fields into a CSV record, quoting those that contain a comma, quote or line break.
std::string csv_join(const std::vector<std::string>& fields);

struct ManifestEntry {
  std::string file;  // relative to ROOT, '/'-separated: "<class>/<name>"
  std::string cls;
  std::string url;
  std::string sha256;
  int width = 0, height = 0;
};

inline const char* kManifestHeader = "file,class,url,sha256,width,height";
inline const char* kReviewHeader = "file,class,url,sha256,width,height,duplicate_of,distance";

/// Reads a manifest-shaped CSV (manifest.csv, rejected.csv). A missing file is an empty list;
/// a malformed one throws InputError naming the file and line.
std::vector<ManifestEntry> read_manifest(const std::string& path);
/// Rewrites a manifest atomically (a temporary file renamed over the old one).
void write_manifest(const std::string& path, const std::vector<ManifestEntry>& entries);

/// The file extension for an image stb_image decoded, from its first bytes ("jpg", "png", "gif", ...).
std::string image_extension(const std::uint8_t* bytes, std::size_t size);

/// Writes bytes to `path` through a temporary file and a rename, so an interrupted run never leaves
/// a partial image. Throws IoError naming the path.
void write_file_atomic(const std::string& path, const std::uint8_t* bytes, std::size_t size);

/// The collection state of one output folder, held for the duration of a run. Opening it takes an
/// exclusive lock (a second ewnet-collect on the same folder is refused) and creates the layout.
class DataSet {
 public:
  /// Throws InputError when ROOT cannot be created or written, or another run holds the lock.
  explicit DataSet(const std::string& root);
  ~DataSet();
  DataSet(const DataSet&) = delete;
  DataSet& operator=(const DataSet&) = delete;

  const std::string& root() const { return root_; }
  const std::vector<ManifestEntry>& kept() const { return kept_; }
  int kept_count(const std::string& cls) const;

  /// Whether the address was already tried with a final outcome (kept, rejected, duplicate, ...);
  /// transient failures (timeouts, 5xx) are tried again in a later run.
  bool tried(const std::string& url) const;
  void record_tried(const std::string& url, const std::string& outcome, bool final_outcome, const std::string& detail);

  /// Finds a kept or rejected image with this exact hash; returns its entry or nullptr.
  const ManifestEntry* find_kept_sha(const std::string& sha) const;
  bool was_rejected_sha(const std::string& sha) const { return rejected_sha_.count(sha) > 0; }
  bool in_review(const std::string& sha) const { return review_sha_.count(sha) > 0; }

  /// The nearest kept image by perceptual hash within `max_distance` bits: one of class `cls` when
  /// there is one, otherwise one of another class. entry is nullptr when none is that close.
  struct NearMatch {
    const ManifestEntry* entry = nullptr;
    int distance = 0;
  };
  NearMatch nearest(std::uint64_t phash, const std::string& cls, int max_distance) const;

  /// Makes sure every kept image has a perceptual hash: reads them from ROOT/_state/phash.tsv and
  /// decodes the images that are not listed there (kept by an older run, or added by hand to the
  /// manifest). Images that no longer decode are reported through `warn` and left out of the index.
  void index_perceptual_hashes(const std::function<void(const std::string&)>& warn);

  /// Stores a kept image under ROOT/<class>/ and appends it to the manifest. An existing file of that
  /// name is never overwritten. Returns the entry written.
  ManifestEntry keep(const std::string& cls, const std::string& url, const std::string& sha,
                     const std::vector<std::uint8_t>& bytes, int width, int height, std::uint64_t phash);
  /// Stores a cross-class duplicate under ROOT/_review/<class>/ and appends it to review.csv.
  void hold_for_review(const std::string& cls, const std::string& url, const std::string& sha,
                       const std::vector<std::uint8_t>& bytes, int width, int height,
                       const std::string& duplicate_of, int distance);

 private:
  std::string root_;
  int lock_fd_ = -1;
  std::vector<ManifestEntry> kept_;
  std::map<std::string, std::size_t> kept_by_sha_;
  std::map<std::string, std::uint64_t> phash_by_sha_;
  std::map<std::string, int> count_by_class_;
  std::set<std::string> tried_;
  std::set<std::string> rejected_sha_;
  std::set<std::string> review_sha_;
  std::ofstream manifest_out_, tried_out_, review_out_, phash_out_;
};

}  // namespace ewnet::collect
