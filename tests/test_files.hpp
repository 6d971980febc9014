// Shared helpers for tests that touch the file system or run ewnet's programs: a temporary folder
// of the test's own, and running a command for its exit status and output.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>

#include <catch2/catch.hpp>

namespace ewnet::test {

/// A fresh folder under the system's temporary directory, named PREFIX-PID-N (unique to this
/// process and this instance: CTest runs test cases in parallel processes), removed with its
/// contents when the TempDir goes.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "ewnet-test") {
    static std::atomic<int> count{0};
    path = std::filesystem::temp_directory_path() /
           (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(count++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }

  std::filesystem::path path;
};

/// Runs `command` in a shell; returns its exit status (-1 when it did not exit normally) and its
/// standard output, with its standard error unless `stdout_only`.
inline std::pair<int, std::string> run_command(const std::string& command, bool stdout_only = false) {
  std::string out;
  FILE* p = popen((command + (stdout_only ? " 2>/dev/null" : " 2>&1")).c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace ewnet::test
