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

TEST_CASE("relu on the CPU engine matches the reference loops, dense and in a channel slice", "[relu][engine]") {
  Random rng(22);
  Relu<float> relu("relu");
  check_engine_against_reference(relu, {random_tensor<float>({3, 20, 5, 7}, rng)}, {Mode::training}, 0, 2);
  // Output in a concatenation's slice (another batch stride): the loops, with the same result.
  const Tensor<float> x = random_tensor<float>({3, 4, 5, 5}, rng);
  Tensor<float> big({3, 9, 5, 5}), alone({3, 4, 5, 5});
  std::vector<const Tensor<float>*> in{&x};
  relu.forward(in, big.channels(2, 4), {});
  relu.forward(in, alone, {});
  REQUIRE(bitwise_equal(big.channels(2, 4), alone));
}
