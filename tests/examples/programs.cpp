// The programs' command-line contract: --help, usage errors, and a clear error for CUDA.
#include <catch2/catch.hpp>

#include <cstdio>
#include <string>
#include <sys/wait.h>

#ifdef EWNET_TRANSFER_BIN
namespace {
/// Runs a command; returns its exit status and its stdout and stderr together.
std::pair<int, std::string> run(const std::string& command) {
  std::string out;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}
const std::string kTransfer = std::string("\"") + EWNET_TRANSFER_BIN + "\"";
const std::string kClassify = std::string("\"") + EWNET_CLASSIFY_BIN + "\"";
}  // namespace

TEST_CASE("ewnet-transfer --help describes the generated default and exits 0") {
  const auto [status, out] = run(kTransfer + " --help");
  REQUIRE(status == 0);
  REQUIRE_THAT(out, Catch::Contains("usage: ewnet-transfer") && Catch::Contains("GENERATED"));
}

TEST_CASE("bad arguments exit 2 with a usage line") {
  for (const char* args : {" --epochs", " --no-such-option", " --source onlyone", " --batch zero",
                           " --device tpu"}) {
    INFO(args);
    const auto [status, out] = run(kTransfer + args);
    REQUIRE(status == 2);
    REQUIRE_THAT(out, Catch::Contains("usage: ewnet-transfer"));
  }
  const auto [status, out] = run(kClassify);
  REQUIRE(status == 2);
  REQUIRE_THAT(out, Catch::Contains("usage: ewnet-classify"));
}

TEST_CASE("asking for --device cuda without a usable CUDA device is a clear error with exit status 1") {
  // The data folders do not exist either, so a build with a GPU fails fast too (on the data).
  const auto [status, out] = run(kTransfer + " --device cuda --source ewnet_no_such_dir --target ewnet_no_such_dir");
  REQUIRE(status == 1);
#ifdef EWNET_PROGRAMS_WITHOUT_CUDA
  REQUIRE_THAT(out, Catch::Contains("CUDA"));
#endif
}
#endif
