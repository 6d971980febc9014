// ewnet/io/files.hpp: writing files so that a crash or a full disk never leaves a half-written
// one, and owning an output folder for the length of a run.
//
// Atomic writes: the bytes go to PATH.tmp-PID beside the target, are flushed to disk (fsync), the
// file is closed with its error checked, renamed over PATH, and the folder itself is flushed so the
// rename survives a power cut. A failure leaves the previous PATH untouched and removes the
// temporary. A process killed mid-write leaves its PATH.tmp-PID behind: remove_stale_temporaries
// deletes those of processes that are gone.
// Folder lock: an advisory flock on DIR/.ewnet-lock, held while the OutputLock lives; the file
// holds the owner's PID, so a second run is refused with a message naming it. The lock dies
// with its process, so a killed run never leaves the folder locked.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <ewnet/error.hpp>

namespace ewnet::io {

/// Flushes the folder holding `path`, so a rename into it is on disk. Errors are ignored where
/// the file system does not support it (EINVAL).
inline void fsync_parent_folder(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  const int r = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  EWNET_CHECK_AS(IoError, r == 0 || e == EINVAL || e == EROFS, dir, ": cannot flush the folder: ", std::strerror(e));
}

/// The temporary name a write to `path` uses.
inline std::string temporary_name(const std::string& path) { return path + ".tmp-" + std::to_string(::getpid()); }

/// Writes `size` bytes to `path` atomically (see the file comment); throws IoError naming it.
inline void write_file_atomically(const std::string& path, const void* data, size_t size) {
  const std::string tmp = temporary_name(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  EWNET_CHECK_AS(IoError, fd >= 0, "cannot write ", tmp, ": ", std::strerror(errno));
  auto fail = [&](const char* step) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw IoError(str("writing ", path, " failed while ", step, ": ", why, " (the previous file, if any, is untouched)"));
  };
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t w = ::write(fd, p, size);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = ENOSPC;
      const int e = errno;
      ::close(fd);
      errno = e;
      fail("writing");
    }
    p += w;
    size -= size_t(w);
  }
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    fail("flushing");
  }
  if (::close(fd) != 0) fail("closing");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("renaming the temporary file");
  fsync_parent_folder(path);
}

inline void write_file_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, text.data(), text.size());
}

/// Deletes the NAME.tmp-PID files in `dir` whose process is gone (or is this one: a temporary of
/// ours outside a write is a leftover too). Returns how many were removed.
inline int remove_stale_temporaries(const std::string& dir) {
  namespace fs = std::filesystem;
  int removed = 0;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(".tmp-");
    if (at == std::string::npos || at + 5 >= name.size()) continue;
    const std::string digits = name.substr(at + 5);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const pid_t pid = pid_t(std::stol(digits));
    const bool alive = pid != ::getpid() && (::kill(pid, 0) == 0 || errno == EPERM);
    std::error_code rm;
    if (!alive && e.is_regular_file(rm) && fs::remove(e.path(), rm)) ++removed;
  }
  return removed;
}

/// An exclusive advisory lock on an output folder (see the file comment).
class OutputLock {
 public:
  explicit OutputLock(const std::string& dir) : path_((std::filesystem::path(dir) / ".ewnet-lock").string()) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    EWNET_CHECK_AS(IoError, fd_ >= 0, path_, ": cannot create the folder's lock file: ", std::strerror(errno));
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

}  // namespace ewnet::io
