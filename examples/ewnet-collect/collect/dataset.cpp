#include "collect/dataset.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <ewnet/data/image.hpp>

#include "collect/config.hpp"
#include "collect/phash.hpp"

namespace fs = std::filesystem;

namespace ewnet::collect {
namespace {

std::string join_path(const std::string& root, const std::string& rel) { return (fs::path(root) / rel).string(); }

std::ofstream open_append(const std::string& path, const char* header) {
  const bool fresh = !fs::exists(path) || fs::file_size(path) == 0;
  std::ofstream out(path, std::ios::app | std::ios::binary);
  if (!out) throw InputError(str(path, ": cannot open for writing"));
  if (fresh && header) out << header << '\n' << std::flush;
  return out;
}

// Tabs and line breaks inside a URL would break the one-record-per-line state file.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

std::vector<std::string> csv_split(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(field);
      field.clear();
    } else if (c != '\r') {
      field += c;
    }
  }
  out.push_back(field);
  return out;
}

std::string csv_join(const std::vector<std::string>& fields) {
  std::string out;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    const std::string& f = fields[i];
    if (f.find_first_of(",\"\r\n") == std::string::npos) {
      out += f;
      continue;
    }
    out += '"';
    for (char c : f) {
      if (c == '"') out += '"';
      out += c;
    }
    out += '"';
  }
  return out;
}

std::vector<ManifestEntry> read_manifest(const std::string& path) {
  std::vector<ManifestEntry> out;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (fs::exists(path)) throw InputError(str(path, ": cannot open for reading"));
    return out;
  }
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto f = csv_split(line);
    if (lineno == 1 && !f.empty() && f[0] == "file") continue;
    if (f.size() < 6) throw InputError(str(path, ":", lineno, ": expected ", kManifestHeader));
    ManifestEntry e{f[0], f[1], f[2], f[3], 0, 0};
    try {
      e.width = std::stoi(f[4]);
      e.height = std::stoi(f[5]);
    } catch (const std::exception&) {
      throw InputError(str(path, ":", lineno, ": width and height must be numbers"));
    }
    out.push_back(std::move(e));
  }
  return out;
}

void write_manifest(const std::string& path, const std::vector<ManifestEntry>& entries) {
  std::ostringstream ss;
  ss << kManifestHeader << '\n';
  for (const auto& e : entries)
    ss << csv_join({e.file, e.cls, e.url, e.sha256, std::to_string(e.width), std::to_string(e.height)}) << '\n';
  const std::string text = ss.str();
  write_file_atomic(path, reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
}

std::string image_extension(const std::uint8_t* p, std::size_t n) {
  auto starts = [&](const char* magic, std::size_t len) { return n >= len && std::memcmp(p, magic, len) == 0; };
  if (starts("\xFF\xD8\xFF", 3)) return "jpg";
  if (starts("\x89PNG", 4)) return "png";
  if (n >= 12 && starts("RIFF", 4) && std::memcmp(p + 8, "WEBP", 4) == 0) return "webp";
  if (starts("GIF8", 4)) return "gif";
  if (starts("BM", 2)) return "bmp";
  if (starts("8BPS", 4)) return "psd";
  if (starts("#?RADIANCE", 10) || starts("#?RGBE", 6)) return "hdr";
  if (n >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return "pnm";
  if (starts("\x53\x80\xF6\x34", 4)) return "pic";
  return "tga";  // the one format stb_image reads that has no signature
}

void write_file_atomic(const std::string& path, const std::uint8_t* bytes, std::size_t size) {
  io::write_file_atomically(path, bytes, size);
}

DataSet::DataSet(const std::string& root) : root_(root) {
  std::error_code ec;
  for (const char* sub : {"", "_state", "_review", "_rejected"}) {
    fs::create_directories(join_path(root_, sub), ec);
    if (ec) throw InputError(str(join_path(root_, sub), ": cannot create the output folder: ", ec.message()));
  }
  const std::string lock_path = join_path(root_, "_state/lock");
  // Never through a link planted there (it would create or lock another file).
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) throw InputError(str(lock_path, ": output folder is not writable: ", std::strerror(errno)));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw InputError(str(root_, ": another ewnet-collect is working in this folder"));
  }

  kept_ = read_manifest(join_path(root_, "manifest.csv"));
  for (std::size_t i = 0; i < kept_.size(); ++i) {
    kept_by_sha_.emplace(kept_[i].sha256, i);
    ++count_by_class_[kept_[i].cls];
    tried_.insert(kept_[i].url);
  }
  for (const auto& e : read_manifest(join_path(root_, "_rejected/rejected.csv"))) {
    rejected_sha_.insert(e.sha256);
    tried_.insert(e.url);
  }
  {
    std::ifstream in(join_path(root_, "review.csv"), std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      const auto f = csv_split(line);
      if (f.size() >= 4 && f[0] != "file") {
        review_sha_.insert(f[3]);
        tried_.insert(f[2]);
      }
    }
  }
  {
    // tried.tsv: url TAB outcome TAB final(0/1) TAB detail. A later line for a URL overrides an
    // earlier one, so a transient failure followed by success reads as tried.
    std::ifstream in(join_path(root_, "_state/tried.tsv"), std::ios::binary);
    std::string line;
    std::map<std::string, bool> last;
    while (std::getline(in, line)) {
      std::vector<std::string> f;
      std::size_t start = 0;
      for (std::size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1)
        f.push_back(line.substr(start, tab - start));
      f.push_back(line.substr(start));
      if (f.size() >= 3) last[f[0]] = f[2] == "1";
    }
    for (const auto& [url, final_outcome] : last)
      if (final_outcome) tried_.insert(url);
  }
  {
    std::ifstream in(join_path(root_, "_state/phash.tsv"), std::ios::binary);
    std::string sha, hex;
    while (in >> sha >> hex) {
      try {
        phash_by_sha_[sha] = std::stoull(hex, nullptr, 16);
      } catch (const std::exception&) {
      }
    }
  }
  try {
    manifest_out_ = open_append(join_path(root_, "manifest.csv"), kManifestHeader);
    tried_out_ = open_append(join_path(root_, "_state/tried.tsv"), nullptr);
    review_out_ = open_append(join_path(root_, "review.csv"), kReviewHeader);
    phash_out_ = open_append(join_path(root_, "_state/phash.tsv"), nullptr);
  } catch (...) {
    ::close(lock_fd_);
    throw;
  }
}

DataSet::~DataSet() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

int DataSet::kept_count(const std::string& cls) const {
  const auto it = count_by_class_.find(cls);
  return it == count_by_class_.end() ? 0 : it->second;
}

bool DataSet::tried(const std::string& url) const { return tried_.count(url) > 0; }

void DataSet::record_tried(const std::string& url, const std::string& outcome, bool final_outcome,
                           const std::string& detail) {
  if (final_outcome) tried_.insert(url);
  tried_out_ << one_line(url) << '\t' << outcome << '\t' << (final_outcome ? 1 : 0) << '\t' << one_line(detail)
             << '\n'
             << std::flush;
}

const ManifestEntry* DataSet::find_kept_sha(const std::string& sha) const {
  const auto it = kept_by_sha_.find(sha);
  return it == kept_by_sha_.end() ? nullptr : &kept_[it->second];
}

DataSet::NearMatch DataSet::nearest(std::uint64_t phash, const std::string& cls, int max_distance) const {
  NearMatch same, other;
  if (max_distance < 0) return same;
  for (const auto& e : kept_) {
    const auto it = phash_by_sha_.find(e.sha256);
    if (it == phash_by_sha_.end()) continue;
    const int d = hamming_distance(phash, it->second);
    if (d > max_distance) continue;
    NearMatch& m = e.cls == cls ? same : other;
    if (!m.entry || d < m.distance) m = {&e, d};
  }
  return same.entry ? same : other;
}

void DataSet::index_perceptual_hashes(const std::function<void(const std::string&)>& warn) {
  for (const auto& e : kept_) {
    if (phash_by_sha_.count(e.sha256)) continue;
    try {
      const auto img = data::load_image(join_path(root_, e.file));
      const std::uint64_t h = dhash(img);
      phash_by_sha_[e.sha256] = h;
      char hex[17];
      std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
      phash_out_ << e.sha256 << '\t' << hex << '\n' << std::flush;
    } catch (const Error& err) {
      if (warn) warn(str("warning: ", err.what(), " (listed in manifest.csv; left out of duplicate checks)"));
    }
  }
}

ManifestEntry DataSet::keep(const std::string& cls, const std::string& url, const std::string& sha,
                            const std::vector<std::uint8_t>& bytes, int width, int height, std::uint64_t phash) {
  std::error_code ec;
  fs::create_directories(join_path(root_, cls), ec);
  if (ec) throw IoError(str(join_path(root_, cls), ": cannot create folder: ", ec.message()));
  const std::string ext = image_extension(bytes.data(), bytes.size());
  std::string rel = cls + "/" + sha.substr(0, 16) + "." + ext;
  // Never overwrite: a file of this name left by an interrupted run (or put there by hand) that is
  // not this image makes the name longer instead.
  for (int k = 1; fs::exists(join_path(root_, rel)); ++k) {
    std::vector<std::uint8_t> existing;
    try {
      existing = data::read_file_bytes(join_path(root_, rel));
    } catch (const Error&) {
    }
    if (existing == bytes) break;
    rel = cls + "/" + sha.substr(0, 16) + "-" + std::to_string(k) + "." + ext;
  }
  if (!fs::exists(join_path(root_, rel))) write_file_atomic(join_path(root_, rel), bytes.data(), bytes.size());
  ManifestEntry e{rel, cls, url, sha, width, height};
  manifest_out_ << csv_join({e.file, e.cls, e.url, e.sha256, std::to_string(width), std::to_string(height)}) << '\n'
                << std::flush;
  if (!manifest_out_) throw IoError(str(join_path(root_, "manifest.csv"), ": write failed"));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(phash));
  phash_out_ << sha << '\t' << hex << '\n' << std::flush;
  phash_by_sha_[sha] = phash;
  kept_.push_back(e);
  kept_by_sha_.emplace(sha, kept_.size() - 1);
  ++count_by_class_[cls];
  tried_.insert(url);
  return e;
}

void DataSet::hold_for_review(const std::string& cls, const std::string& url, const std::string& sha,
                              const std::vector<std::uint8_t>& bytes, int width, int height,
                              const std::string& duplicate_of, int distance) {
  std::error_code ec;
  fs::create_directories(join_path(root_, "_review/" + cls), ec);
  if (ec) throw IoError(str(join_path(root_, "_review/" + cls), ": cannot create folder: ", ec.message()));
  const std::string rel = "_review/" + cls + "/" + sha.substr(0, 16) + "." + image_extension(bytes.data(), bytes.size());
  if (!fs::exists(join_path(root_, rel))) write_file_atomic(join_path(root_, rel), bytes.data(), bytes.size());
  review_out_ << csv_join({rel, cls, url, sha, std::to_string(width), std::to_string(height), duplicate_of,
                           std::to_string(distance)})
              << '\n'
              << std::flush;
  review_sha_.insert(sha);
  tried_.insert(url);
}

}  // namespace ewnet::collect
