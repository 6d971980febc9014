// The practice program of tools/gpu-check.sh --practice (tests/tools/gpu_check_practice.sh): Catch2
// areas standing for CUDA test areas. [ok] passes; [hang] never returns, as a hung kernel would;
// no case carries [missing], as after a renamed tag. The tags are hidden ([.ok]), so a plain run
// of this program runs nothing.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

TEST_CASE("practice: an area that passes", "[.ok]") { CHECK(2 + 2 == 4); }

TEST_CASE("practice: an area that never returns", "[.hang]") { std::this_thread::sleep_for(std::chrono::hours(1)); }
