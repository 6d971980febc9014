// ewnet/io/files.hpp: writing files so that a crash, a kill or a full disk never leaves a
// half-written one, and output folders that ewnet may write into without harming anyone's files.
//
// Atomic writes (AtomicFile, write_file_atomically): the bytes go to an unnamed file in the
// target's folder (O_TMPFILE), are flushed to disk (fsync), the file is given a temporary name
// and renamed over PATH, and the folder itself is flushed so the rename survives a power cut. A
// process killed while writing leaves nothing behind: the unnamed file goes with it. Where the
// file system has no O_TMPFILE, the temporary is named from the start, created with O_EXCL and
// O_NOFOLLOW (never an existing file or a link's target). Temporary names are
// ".NAME.ewnet-tmp-TOKEN-PID": TOKEN is the folder's run token when the folder is an ewnet run
// folder, so a later run can prove a leftover is ewnet's (remove_stale_temporaries), and a random
// one of this process elsewhere. A failure leaves the previous PATH untouched and removes the
// temporary.
// Run folders (prepare_run_folder): a folder a run writes into must be new, empty, or carry the
// marker ".ewnet-run" that ewnet writes there (holding the folder's random token), or be a run
// folder of an ewnet from before the marker (ewnet's file names only, a checkpoint with a training
// history: it gets its marker); it may not be a
// file system's root, one of the run's inputs, inside an input folder, or hold an input. Only
// temporaries whose name carries the folder's token, of processes that are gone, are ever
// removed: a user's "model.tmp-123" is never touched.
// Folder lock (OutputLock): an advisory flock on DIR/.ewnet-lock, held while the run lives; the
// file holds the owner's PID, so a second run is refused naming it. It is opened without following
// a symbolic link and must be a regular file with no other name (a link planted there would make
// ewnet truncate its target). The lock dies with its process, so a killed run never leaves the
// folder locked.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ewnet/error.hpp>

namespace ewnet::io {

inline constexpr const char* kRunMarkerName = ".ewnet-run";
inline constexpr const char* kLockName = ".ewnet-lock";
inline constexpr const char* kTemporaryTag = ".ewnet-tmp-";

/// Flushes the folder holding `path`, so a rename into it is on disk. Errors are ignored where
/// the file system does not support it (EINVAL).
inline void fsync_parent_folder(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  const int r = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  EWNET_CHECK_AS(IoError, r == 0 || e == EINVAL || e == EROFS, dir, ": cannot flush the folder: ", std::strerror(e));
}

/// 16 random hex digits (64 bits from the kernel's generator).
inline std::string random_token() {
  unsigned char b[8];
  size_t got = 0;
  while (got < sizeof b) {
    const ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n < 0 && errno == EINTR) continue;
    EWNET_CHECK_AS(IoError, n > 0, "cannot draw a random token: ", std::strerror(errno));
    got += size_t(n);
  }
  char hex[17];
  for (int i = 0; i < 8; ++i) std::snprintf(hex + 2 * i, 3, "%02x", b[i]);
  return hex;
}

/// This process's token for temporaries outside run folders.
inline const std::string& process_token() {
  static const std::string token = random_token();
  return token;
}

/// The token in DIR's run-folder marker; empty when DIR has no marker, or it is not a regular file
/// ewnet wrote (a link, a folder, another text).
inline std::string run_folder_token(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kRunMarkerName).string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return "";
  struct stat st {};
  char buf[256] = {};
  ssize_t n = -1;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < ssize_t(sizeof buf)) n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return "";
  // "ewnet run folder\ntoken HEX\n"
  const std::string text(buf, size_t(n));
  const std::string head = "ewnet run folder\ntoken ";
  if (text.compare(0, head.size(), head) != 0) return "";
  std::string token = text.substr(head.size());
  while (!token.empty() && token.back() == '\n') token.pop_back();
  if (token.size() != 16 || token.find_first_not_of("0123456789abcdef") != std::string::npos) return "";
  return token;
}

/// The temporary name a write to `path` gives its file just before the rename (see the file comment).
inline std::string temporary_name(const std::string& path) {
  const std::filesystem::path p(path);
  std::string token = run_folder_token(p.parent_path().empty() ? "." : p.parent_path().string());
  if (token.empty()) token = process_token();
  const std::string tail = kTemporaryTag + token + "-" + std::to_string(::getpid());
  // A file name may have 255 bytes: a long one is cut so its temporary's still fits.
  const std::string name = p.filename().string().substr(0, 255 - 1 - tail.size());
  return (p.parent_path() / ("." + name + tail)).string();
}

/// A file written atomically (see the file comment): write() as often as needed, then commit();
/// destroyed without commit(), it leaves no file and PATH untouched.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    std::string dir = std::filesystem::path(path_).parent_path().string();
    if (dir.empty()) dir = ".";
    fd_ = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      // No O_TMPFILE on this file system (or an old kernel): a named temporary, never an existing file.
      tmp_ = temporary_name(path_);
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
      EWNET_CHECK_AS(IoError, fd_ >= 0, "cannot write ", path_, ": cannot create ", tmp_, ": ", std::strerror(errno));
      named_ = true;
    }
  }
  ~AtomicFile() { abandon(); }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& path() const { return path_; }

  void write(const void* data, size_t size) {
    EWNET_CHECK_AS(IoError, fd_ >= 0, "writing ", path_, ": the file is already committed or abandoned");
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t w = ::write(fd_, p, size);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail("writing", w == 0 ? ENOSPC : errno);
      p += w;
      size -= size_t(w);
    }
  }
  void write(const std::string& text) { write(text.data(), text.size()); }

  /// Flushes, names and renames the file over PATH, and flushes the folder.
  void commit() {
    EWNET_CHECK_AS(IoError, fd_ >= 0, "writing ", path_, ": the file is already committed or abandoned");
    if (::fsync(fd_) != 0) fail("flushing", errno);
    if (!named_) {
      // The unnamed file gets its temporary name only now, for the instant before the rename.
      tmp_ = temporary_name(path_);
      const std::string self = "/proc/self/fd/" + std::to_string(fd_);
      if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp_.c_str(), AT_SYMLINK_FOLLOW) != 0 &&
          ::linkat(fd_, "", AT_FDCWD, tmp_.c_str(), AT_EMPTY_PATH) != 0)
        fail("naming the temporary file", errno);
      named_ = true;
    }
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("closing", errno);
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail("renaming the temporary file", errno);
    named_ = false;
    fsync_parent_folder(path_);
  }

 private:
  void abandon() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (named_) ::unlink(tmp_.c_str());
    named_ = false;
  }
  [[noreturn]] void fail(const char* step, int error) {
    abandon();
    throw IoError(str("writing ", path_, " failed while ", step, ": ", std::strerror(error),
                      " (the previous file, if any, is untouched)"));
  }

  std::string path_, tmp_;
  int fd_ = -1;
  bool named_ = false;  // tmp_ exists on disk
};

/// Writes `size` bytes to `path` atomically (see the file comment); throws IoError naming it.
inline void write_file_atomically(const std::string& path, const void* data, size_t size) {
  AtomicFile f(path);
  f.write(data, size);
  f.commit();
}

inline void write_file_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, text.data(), text.size());
}

/// Deletes the temporaries in `dir` that are provably ewnet's and abandoned: named with the
/// folder's run token (see the file comment), a regular file, of a process that is gone (or is
/// this one: call it when no write of this process is under way). Returns how many were removed.
inline int remove_stale_temporaries(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string token = run_folder_token(dir);
  if (token.empty()) return 0;
  const std::string tag = kTemporaryTag + token + "-";
  int removed = 0;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(tag);
    if (name[0] != '.' || at == std::string::npos || at + tag.size() >= name.size()) continue;
    const std::string digits = name.substr(at + tag.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const pid_t pid = pid_t(std::stol(digits));
    const bool alive = pid != ::getpid() && (::kill(pid, 0) == 0 || errno == EPERM);
    std::error_code rm;
    if (!alive && e.is_regular_file(rm) && !e.is_symlink(rm) && fs::remove(e.path(), rm)) ++removed;
  }
  return removed;
}

/// An exclusive advisory lock on an output folder (see the file comment).
class OutputLock {
 public:
  explicit OutputLock(const std::string& dir) : path_((std::filesystem::path(dir) / kLockName).string()) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno == ELOOP)
      throw IoError(str(path_, ": is a symbolic link; the folder's lock must be a regular file (remove the link)"));
    EWNET_CHECK_AS(IoError, fd_ >= 0, path_, ": cannot create the folder's lock file: ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
      const bool regular = S_ISREG(st.st_mode);
      ::close(fd_);
      fd_ = -1;
      throw IoError(str(path_, regular ? ": has other names (a hard link); " : ": is not a regular file; ",
                        "the folder's lock must be a file of its own (remove it)"));
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      char buf[32] = {};
      const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
      ::close(fd_);
      fd_ = -1;
      std::string holder = n > 0 ? std::string(buf, size_t(n)) : std::string("unknown");
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      if (e == EWOULDBLOCK)
        throw IoError(str(dir, ": the folder is in use by another run (process ", holder,
                          "); wait for it to finish or choose another output folder"));
      throw IoError(str(path_, ": cannot lock: ", std::strerror(e)));
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
      const std::string why = std::strerror(errno);
      ::close(fd_);
      throw IoError(str(path_, ": cannot record the run's process: ", why));
    }
  }
  ~OutputLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays (removing it would race)
  }
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

/// `path` made absolute with its links and "." / ".." resolved as far as it exists.
inline std::filesystem::path resolved_path(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::weakly_canonical(std::filesystem::absolute(path), ec);
  return ec ? std::filesystem::absolute(path).lexically_normal() : p;
}

namespace detail {

/// Whether `inner` is `outer` or lies under it (both resolved).
inline bool lies_within(const std::filesystem::path& inner, const std::filesystem::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // a trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

inline bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/// Why `path` is at a file system's root ("" when it is not): "/" itself, or a mount point.
inline std::string file_system_root(const std::filesystem::path& path) {
  if (path == path.root_path()) return "the root of the file system";
  struct stat here {}, above {};
  if (::stat(path.c_str(), &here) == 0 && ::stat(path.parent_path().c_str(), &above) == 0 &&
      (here.st_dev != above.st_dev || here.st_ino == above.st_ino))
    return "the root of a mounted file system";
  return "";
}

/// Whether `dir` is a run folder written before ewnet marked its run folders: it holds nothing but
/// the files a training run writes, and one of its checkpoints carries a training history in its
/// safetensors header. Such a folder is marked when a run prepares it (its --resume goes on).
inline bool is_unmarked_run_folder(const std::string& dir) {
  namespace fs = std::filesystem;
  static const char* const names[] = {"best.safetensors", "last.safetensors", "log.csv", "report.json",
                                      "training-curves.svg", "confusion.svg", kLockName};
  std::error_code ec;
  bool checkpoint = false;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    bool known = false;
    for (const char* n : names) known = known || name == n;
    if (!known || e.is_symlink(ec)) return false;
    if (name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0 && !checkpoint) {
      // The header: 8 bytes of length, then JSON whose metadata a training run fills.
      const int fd = ::open(e.path().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) return false;
      unsigned char len[8] = {};
      std::uint64_t n = 0;
      std::string header;
      if (::read(fd, len, 8) == 8) {
        for (int i = 0; i < 8; ++i) n |= std::uint64_t(len[i]) << (8 * i);
        if (n <= (std::uint64_t(100) << 20)) {
          header.resize(size_t(n));
          if (::read(fd, header.data(), header.size()) != ssize_t(header.size())) header.clear();
        }
      }
      ::close(fd);
      checkpoint = header.find("\"ewnet.train.history\"") != std::string::npos;
    }
  }
  return checkpoint;
}

/// Every run folder this process holds, by device and inode, so a second prepare_run_folder of
/// the same folder (a program's, then fit's) shares the first one's lock instead of refusing itself.
struct HeldRunFolder {
  std::string path, token;
  std::unique_ptr<OutputLock> lock;
  int removed_temporaries = 0;
};
inline std::mutex& held_run_folders_mutex() {
  static std::mutex m;
  return m;
}
inline std::map<std::pair<dev_t, ino_t>, std::weak_ptr<HeldRunFolder>>& held_run_folders() {
  static std::map<std::pair<dev_t, ino_t>, std::weak_ptr<HeldRunFolder>> held;
  return held;
}

}  // namespace detail

/// Refuses (IoError, naming both) an output file that would harm one of the run's `inputs` (files
/// or folders): a path that is an input or resolves to the same file, an input folder itself, or
/// an existing file inside an input folder (a photo of the data). A new file in an input folder is
/// allowed. `what` names the option in the message ("--csv").
inline void check_output_file(const std::string& out, const std::vector<std::string>& inputs,
                              const std::string& what = "the output") {
  namespace fs = std::filesystem;
  const fs::path o = resolved_path(out);
  std::error_code ec;
  const bool exists = fs::exists(fs::symlink_status(out, ec));
  EWNET_CHECK_AS(IoError, !fs::is_directory(out, ec), what, " ", out, " is a folder; give a file name");
  for (const std::string& in : inputs) {
    if (in.empty() || !fs::exists(in, ec)) continue;
    const fs::path i = resolved_path(in);
    const bool same = o == i || (exists && detail::same_file(out, in));
    EWNET_CHECK_AS(IoError, !same, what, " ", out, " is one of this run's inputs (", in,
                   "); writing it would destroy the input: give another file name");
    EWNET_CHECK_AS(IoError, !(exists && fs::is_directory(in, ec) && detail::lies_within(o, i)), what, " ", out,
                   " is a file of the input folder ", in, "; writing it would replace that file: give another name");
  }
}

/// The output folder of a run, held (locked) while any copy of it lives.
class RunFolder {
 public:
  const std::string& path() const { return held_->path; }
  /// The folder's token (recorded in its marker; carried by its temporaries' names).
  const std::string& token() const { return held_->token; }
  /// Abandoned temporaries of earlier runs removed when the folder was prepared.
  int removed_temporaries() const { return held_->removed_temporaries; }

 private:
  explicit RunFolder(std::shared_ptr<detail::HeldRunFolder> h) : held_(std::move(h)) {}
  std::shared_ptr<detail::HeldRunFolder> held_;
  friend RunFolder prepare_run_folder(const std::string&, const std::vector<std::string>&, std::ostream*);
};

/// Makes `out` the output folder of a run reading `inputs` (data folders, split files,
/// checkpoints, weights; missing or empty entries are passed over), or refuses it with an IoError
/// saying why and what to do: out at a file system's root, equal to an input, inside an input
/// folder, holding an input, not a folder, or a folder with files that is not an ewnet run folder
/// (no marker). Then creates it, writes the marker when it is new, locks it (OutputLock) and removes
/// the abandoned temporaries of earlier runs (remove_stale_temporaries), saying so on `log`. The
/// folder stays locked while the returned RunFolder (or a copy) lives; preparing a folder this
/// process already holds shares that hold.
inline RunFolder prepare_run_folder(const std::string& out, const std::vector<std::string>& inputs,
                                    std::ostream* log = nullptr) {
  namespace fs = std::filesystem;
  EWNET_CHECK_AS(IoError, !out.empty(), "no output folder given");
  const fs::path o = resolved_path(out);
  const std::string root = detail::file_system_root(o);
  EWNET_CHECK_AS(IoError, root.empty(), "the output folder ", out, " is ", root,
                 "; a run writes and removes files in its folder: give a folder of its own (e.g. ", out == "/" ? "" : out,
                 "/run)");
  std::error_code ec;
  for (const std::string& in : inputs) {
    if (in.empty() || !fs::exists(in, ec)) continue;
    const fs::path i = resolved_path(in);
    EWNET_CHECK_AS(IoError, o != i && !detail::same_file(out, in), "the output folder ", out,
                   " is one of the run's inputs (", in, "): give a new folder");
    EWNET_CHECK_AS(IoError, !(fs::is_directory(in, ec) && detail::lies_within(o, i)), "the output folder ", out,
                   " lies inside the input folder ", in,
                   " (a run folder there would be read as data, and its files could replace the data's): "
                   "give a folder outside it");
    EWNET_CHECK_AS(IoError, !detail::lies_within(i, o), "the input ", in, " lies inside the output folder ", out,
                   " (a run writes and replaces files there): give another output folder");
  }
  if (fs::exists(fs::symlink_status(out, ec)) || fs::exists(out, ec)) {
    EWNET_CHECK_AS(IoError, fs::is_directory(out, ec), "the output folder ", out, " exists and is not a folder");
    const fs::file_status marker = fs::symlink_status(fs::path(out) / kRunMarkerName, ec);
    if (fs::exists(marker)) {
      EWNET_CHECK_AS(IoError, fs::is_regular_file(marker) && !run_folder_token(out).empty(), out, "/",
                     kRunMarkerName, " is not the marker ewnet writes (a link, a folder or other text); ",
                     "remove it or give a new output folder");
    } else if (!detail::is_unmarked_run_folder(out)) {
      std::vector<std::string> others;
      for (const fs::directory_entry& e : fs::directory_iterator(out, ec))
        if (e.path().filename() != kLockName) others.push_back(e.path().filename().string());
      std::string list;
      for (size_t k = 0; k < others.size() && k < 3; ++k) list += (k ? ", " : "") + others[k];
      if (others.size() > 3) list += str(" and ", others.size() - 3, " more");
      EWNET_CHECK_AS(IoError, others.empty(), "the output folder ", out, " holds files ewnet did not write (", list,
                     ") and is not an ewnet run folder (it has no ", kRunMarkerName,
                     "); give a new or empty folder, so that no file of yours is replaced");
    }
  }
  fs::create_directories(out, ec);
  EWNET_CHECK_AS(IoError, !ec, out, ": cannot create the output folder: ", ec.message());
  struct stat st {};
  EWNET_CHECK_AS(IoError, ::stat(out.c_str(), &st) == 0, out, ": cannot read the folder: ", std::strerror(errno));

  std::lock_guard<std::mutex> guard(detail::held_run_folders_mutex());
  auto& held = detail::held_run_folders();
  if (std::shared_ptr<detail::HeldRunFolder> h = held[{st.st_dev, st.st_ino}].lock()) return RunFolder(h);
  auto h = std::make_shared<detail::HeldRunFolder>();
  h->path = out;
  h->lock = std::make_unique<OutputLock>(out);
  h->token = run_folder_token(out);
  if (h->token.empty()) {
    // Checked again under the lock: another process may have written into it meanwhile.
    if (!detail::is_unmarked_run_folder(out))
      for (const fs::directory_entry& e : fs::directory_iterator(out, ec))
        EWNET_CHECK_AS(IoError, e.path().filename() == kLockName, "the output folder ", out,
                       " received other files while this run prepared it (", e.path().filename().string(),
                       "); give a new folder");
    write_file_atomically((fs::path(out) / kRunMarkerName).string(),
                          "ewnet run folder\ntoken " + random_token() + "\n");
    h->token = run_folder_token(out);
    EWNET_CHECK_AS(IoError, !h->token.empty(), out, ": cannot read back the run-folder marker just written");
  }
  h->removed_temporaries = remove_stale_temporaries(out);
  if (log && h->removed_temporaries)
    *log << "removed " << h->removed_temporaries << " temporary file(s) left in " << out
         << " by an interrupted save\n";
  held[{st.st_dev, st.st_ino}] = h;
  return RunFolder(h);
}

}  // namespace ewnet::io
