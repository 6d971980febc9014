#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

TEST_CASE("image input normalises each channel and checks the batch size", "[input]") {
  ImageInput<double> in("input", 2, 2, 2);
  in.set_normalization({1.0, -2.0}, {2.0, 0.5});
  const Tensor<double> x = Tensor<double>::from_vector({1, 2, 2, 2}, {1, 3, 5, 7, -2, -1, 0, 1});
  const auto y = run_forward<double>(in, {x}).to_vector();
  REQUIRE(y == std::vector<double>{0, 1, 2, 3, 0, 2, 4, 6});
  REQUIRE_THROWS_WITH(in.check_batch(Tensor<double>({1, 3, 2, 2})), Catch::Contains("2x2x2") && Catch::Contains("2x2x3"));
  REQUIRE_THROWS_AS(in.set_normalization({0, 0}, {1, 0}), Error);
}
