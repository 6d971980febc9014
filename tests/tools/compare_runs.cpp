// tools/compare_runs.py, the check that a change left the programs' results as they were: two runs
// of ewnet-train with the same settings compare equal (their times aside), and a changed number, a
// changed bit of a tensor or a missing file is reported.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <ewnet/data/generated.hpp>

#include "test_files.hpp"

namespace fs = std::filesystem;
using ewnet::test::run_command;

namespace {
std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }
}  // namespace

TEST_CASE("compare_runs.py: equal runs pass, a changed number or tensor bit fails", "[tools]") {
  const ewnet::test::TempDir dir("ewnet-test-compare-runs");
  ewnet::data::GeneratedOptions g;
  g.image_size = 32;
  g.source_per_class = 4;
  g.target_per_class = 4;
  const std::string data = ewnet::data::write_generated_dataset(dir.file("data"), g).second;
  const std::string train = std::string("\"") + EWNET_TRAIN_BIN + "\" \"" + data +
                            "\" --epochs 2 --batch 8 --image-size 32 --no-progress --out ";
  for (const char* run : {"a", "b"}) {
    fs::create_directories(dir.path / run);
    const auto [status, out] = run_command(train + "\"" + dir.file(run) + "/run\" > \"" + dir.file(run) + "/run.out\"");
    INFO(out);
    REQUIRE(status == 0);
  }
  const std::string compare = std::string("\"") + EWNET_PYTHON + "\" \"" + EWNET_COMPARE_RUNS + "\" \"" +
                              dir.file("a") + "\" \"" + dir.file("b") + "\"";
  auto [status, out] = run_command(compare);
  INFO(out);
  CHECK(status == 0);
  CHECK_THAT(out, Catch::Contains("0 differences"));

  const fs::path b = dir.path / "b" / "run";
  // A time is no difference; a validation loss one digit off is.
  const std::string log = read(b / "log.csv");
  const size_t line2 = log.find('\n') + 1, time = log.find(',', log.find(',', line2) + 1) + 1;
  write(b / "log.csv", log.substr(0, time) + "9" + log.substr(time));
  std::tie(status, out) = run_command(compare);
  CHECK(status == 0);
  const size_t last_field = log.rfind(',', log.find('\n', line2) - 1);
  std::string changed = log;
  changed[last_field - 1] = changed[last_field - 1] == '1' ? '2' : '1';
  write(b / "log.csv", changed);
  std::tie(status, out) = run_command(compare);
  CHECK(status == 1);
  CHECK_THAT(out, Catch::Contains("run/log.csv: line 2"));
  write(b / "log.csv", log);

  // One bit of the last tensor's last byte.
  std::string last = read(b / "last.safetensors");
  last.back() = char(last.back() ^ 1);
  write(b / "last.safetensors", last);
  std::tie(status, out) = run_command(compare);
  CHECK(status == 1);
  CHECK_THAT(out, Catch::Contains("run/last.safetensors: tensor") && Catch::Contains("differs"));

  fs::remove(b / "confusion.svg");
  std::tie(status, out) = run_command(compare);
  CHECK(status == 1);
  CHECK_THAT(out, Catch::Contains("run/confusion.svg: only in the first folder"));
}
