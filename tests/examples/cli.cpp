// The command-line parser the ewnet-* programs share: values that are not what they look like are
// usage errors, never silently saturated or taken from the next option.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <cli.hpp>

namespace {
cli::Args parse(std::vector<std::string> words) {
  std::vector<char*> argv;
  static std::string program = "ewnet-test";
  argv.push_back(program.data());
  for (std::string& w : words) argv.push_back(w.data());
  static std::vector<std::vector<std::string>> keep;  // the Args copy the strings, but keep them alive anyway
  keep.push_back(words);
  return cli::Args(int(argv.size()), argv.data(), {"lr", "seed", "epochs", "out"}, {"resume"});
}
}  // namespace

TEST_CASE("rates must be finite, normal numbers", "[cli]") {
  REQUIRE(parse({"--lr", "0.01"}).get_double("lr", 1) == 0.01);
  REQUIRE(parse({"--lr=1e-3"}).get_double("lr", 1) == 1e-3);
  for (const char* bad : {"inf", "-inf", "nan", "1e309", "1e-310", "4.9e-324", "0", "-1", "", "0.1x"}) {
    INFO(bad);
    REQUIRE_THROWS_AS(parse({std::string("--lr=") + bad}).get_double("lr", 1), cli::UsageError);
  }
}

TEST_CASE("integers that overflow are rejected, not saturated", "[cli]") {
  REQUIRE(parse({"--seed", "18446744073709551615"}).get_seed("seed", 0) == 18446744073709551615ull);
  REQUIRE_THROWS_AS(parse({"--seed", "18446744073709551616"}).get_seed("seed", 0), cli::UsageError);
  REQUIRE_THROWS_AS(parse({"--seed", "12345678901234567890123"}).get_seed("seed", 0), cli::UsageError);
  REQUIRE_THROWS_AS(parse({"--seed", "+5"}).get_seed("seed", 0), cli::UsageError);
  REQUIRE_THROWS_AS(parse({"--seed", " 5"}).get_seed("seed", 0), cli::UsageError);
  REQUIRE(parse({"--epochs", "12"}).get_int("epochs", 1) == 12);
  REQUIRE_THROWS_AS(parse({"--epochs", "99999999999999999999999"}).get_int("epochs", 1), cli::UsageError);
}

TEST_CASE("an option followed by another option is a missing value", "[cli]") {
  REQUIRE_THROWS_WITH(parse({"--out", "--resume"}), Catch::Contains("--out: missing value") &&
                                                        Catch::Contains("--resume"));
  REQUIRE_THROWS_WITH(parse({"--seed"}), Catch::Contains("missing value"));
  // A value that does start with "--" can still be given inline; negative numbers are values.
  REQUIRE(parse({"--out=--odd-name"}).get("out", "") == "--odd-name");
  REQUIRE_THROWS_AS(parse({"--lr", "-1"}).get_double("lr", 1), cli::UsageError);
}
