#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

TEST_CASE("relu forward clamps negatives to zero", "[relu]") {
  Relu<double> relu("relu");
  const Tensor<double> x = Tensor<double>::from_vector({1, 2, 1, 3}, {-1, 0, 2, 3.5, -0.25, 1e-9});
  REQUIRE(run_forward<double>(relu, {x}).to_vector() == std::vector<double>{0, 0, 2, 3.5, 0, 1e-9});
}

TEST_CASE("relu backward matches finite differences", "[relu][gradient]") {
  Random rng(41);
  // Keep inputs away from the kink at 0 so central differences are exact.
  std::vector<double> v(2 * 3 * 4 * 3);
  for (double& e : v) e = (rng.uniform() < 0.5 ? -1 : 1) * rng.uniform(0.1, 1);
  Relu<double> relu("relu");
  check_gradients(relu, {Tensor<double>::from_vector({2, 3, 4, 3}, v)});
}
