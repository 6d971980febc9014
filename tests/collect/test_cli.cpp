// The ewnet-collect command line: help, and a clear message with exit status 2 for bad input.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "fixtures.hpp"

using namespace ewnet_test;

namespace {

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct Result {
  int status;
  std::string output;
};

Result run(const ScratchDir& dir, const std::string& args) {
  const std::string log = dir / "cli.log";
  const int rc = std::system((quote(EWNET_COLLECT_EXE) + " " + args + " >" + quote(log) + " 2>&1").c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_text(log)};
}

}  // namespace

TEST_CASE("ewnet-collect --help explains the commands", "[cli]") {
  ScratchDir dir("cli-help");
  const Result r = run(dir, "--help");
  CHECK(r.status == 0);
  for (const char* word : {"fetch", "sheet", "reject", "--per-class", "--min-size", "--delay", "--parallel",
                           "--near-distance", "robots.txt", "manifest.csv", "review.csv"})
    CHECK_THAT(r.output, Catch::Contains(word));
  CHECK(run(dir, "").status == 2);
  CHECK(run(dir, "frobnicate").status == 2);
}

TEST_CASE("bad input gets a clear message and exit status 2", "[cli]") {
  ScratchDir dir("cli-bad");
  write_text(dir / "classes.txt", "phones: phone back\n");
  write_text(dir / "provider.json", R"({"search_url":"http://127.0.0.1:9/s?q={query}","extract":{"json":"results[*].url"}})");
  write_text(dir / "broken.json", R"({"search_url": "http://127.0.0.1:9/s?q={query}", "extract": )");
  write_text(dir / "a-file", "not a folder");
  const std::string classes = " --classes " + quote(dir / "classes.txt");
  const std::string provider = " --provider " + quote(dir / "provider.json");
  const std::string out = " --out " + quote(dir / "data");

  Result r = run(dir, "fetch --classes " + quote(dir / "missing.txt") + provider + out);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Catch::Contains("missing.txt"));

  r = run(dir, "fetch" + classes + " --provider " + quote(dir / "broken.json") + out);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Catch::Contains("broken.json"));

  r = run(dir, "fetch" + classes + provider + " --out " + quote(dir / "a-file/data"));
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Catch::Contains("a-file"));

  r = run(dir, "fetch" + classes + provider + out + " --min-size 224");
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Catch::Contains("--min-size"));

  r = run(dir, "fetch" + classes + provider + out + " --per-class many");
  CHECK(r.status == 2);
  r = run(dir, "fetch" + classes + provider + out + " --colour blue");
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Catch::Contains("--colour"));
  r = run(dir, "fetch" + provider + out);
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Catch::Contains("--classes"));

  r = run(dir, "sheet --out " + quote(dir / "nothing-here"));
  CHECK(r.status == 2);
  CHECK_THAT(r.output, Catch::Contains("manifest.csv"));
  r = run(dir, "reject --out " + quote(dir / "nothing-here") + " --list " + quote(dir / "missing-list.txt"));
  CHECK(r.status == 2);
}
