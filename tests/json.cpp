#include "test_util.hpp"

using namespace ewnet;

TEST_CASE("JSON parses, round-trips, and reports errors with their offset", "[json]") {
  const json::Value v = json::parse(R"({"a": [1, 2.5, -3e2], "b": {"c": "x\"y\u00e9"}, "d": true, "e": null})");
  REQUIRE(v.at("a").as_array()[2].as_number() == -300);
  REQUIRE(v.at("b").at("c").as_string() == "x\"y\xc3\xa9");
  REQUIRE(json::parse(v.dump()).dump() == v.dump());
  REQUIRE(json::parse(v.dump(2)).dump() == v.dump());
  REQUIRE_THROWS_WITH(json::parse("{\"a\": [1, 2}", "f.json"), Catch::Contains("f.json") && Catch::Contains("byte"));
  REQUIRE_THROWS_AS(json::parse("[1] x"), IoError);
  REQUIRE_THROWS_WITH(v.at("zz"), Catch::Contains("zz"));
  REQUIRE_THROWS_AS(v.at("a").as_string(), IoError);
}
