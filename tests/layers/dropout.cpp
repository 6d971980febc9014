#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

TEST_CASE("dropout zeroes about p of the elements and scales the rest by 1/(1-p)", "[dropout]") {
  Dropout<double> drop("drop", 0.4, 7);
  const Tensor<double> x(Shape{8, 16, 8, 8});
  fill(x, 1.0);
  const auto y = run_forward<double>(drop, {x}, {Mode::training, 3}).to_vector();
  size_t zeros = 0;
  for (double v : y) {
    if (v == 0) ++zeros;
    else REQUIRE(v == Approx(1 / 0.6));
  }
  REQUIRE(double(zeros) / double(y.size()) == Approx(0.4).margin(0.02));
}

TEST_CASE("dropout is the identity in inference and reproducible from its seed", "[dropout]") {
  Random rng(71);
  const Tensor<double> x = random_tensor<double>({2, 3, 4, 4}, rng);
  Dropout<double> a("drop", 0.5, 99), b("drop", 0.5, 99), c("drop", 0.5, 100);
  REQUIRE(bitwise_equal(run_forward<double>(a, {x}, {Mode::inference, 0}), x));
  const Tensor<double> ya = run_forward<double>(a, {x}, {Mode::training, 5});
  REQUIRE(bitwise_equal(ya, run_forward<double>(b, {x}, {Mode::training, 5})));   // same seed, same step
  REQUIRE(!bitwise_equal(ya, run_forward<double>(b, {x}, {Mode::training, 6})));  // next step, new mask
  REQUIRE(!bitwise_equal(ya, run_forward<double>(c, {x}, {Mode::training, 5})));  // other seed
}

TEST_CASE("dropout backward applies the forward mask", "[dropout][gradient]") {
  Random rng(72);
  Dropout<double> drop("drop", 0.3, 5);
  check_gradients(drop, {random_tensor<double>({2, 3, 3, 3}, rng)}, {Mode::training, 9});
}
