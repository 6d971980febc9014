#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

TEST_CASE("depth concatenation stacks channels in input order", "[concat]") {
  Random rng(61);
  Concat<double> cat("cat");
  const Tensor<double> a = random_tensor<double>({2, 2, 3, 3}, rng), b = random_tensor<double>({2, 3, 3, 3}, rng);
  const Tensor<double> y = run_forward<double>(cat, {a, b});
  REQUIRE(y.shape() == Shape(2, 5, 3, 3));
  REQUIRE(y.at(1, 1, 2, 0) == a.at(1, 1, 2, 0));
  REQUIRE(y.at(1, 4, 0, 2) == b.at(1, 2, 0, 2));
  check_gradients(cat, {a, b});
  REQUIRE_THROWS_WITH(cat.setup({Shape{1, 2, 3, 3}, Shape{1, 2, 4, 3}}, Device::cpu), Catch::Contains("3x3x2") &&
                                                                                         Catch::Contains("4x3x2"));
}

TEST_CASE("element-wise addition adds, and passes the gradient to every input", "[add]") {
  Random rng(62);
  Add<double> add("add");
  const Tensor<double> a = random_tensor<double>({2, 2, 3, 2}, rng), b = random_tensor<double>({2, 2, 3, 2}, rng),
                       c = random_tensor<double>({2, 2, 3, 2}, rng);
  const Tensor<double> y = run_forward<double>(add, {a, b, c});
  REQUIRE(y.at(1, 1, 2, 1) == Approx(a.at(1, 1, 2, 1) + b.at(1, 1, 2, 1) + c.at(1, 1, 2, 1)));
  check_gradients(add, {a, b});
  REQUIRE_THROWS_AS(add.setup({Shape{1, 2, 3, 3}, Shape{1, 3, 3, 3}}, Device::cpu), ShapeError);
}

TEST_CASE("addition and concatenation on the CPU engine match the reference loops", "[add][concat][engine]") {
  Random rng(23);
  Add<float> add("add");
  check_engine_against_reference(add, {random_tensor<float>({3, 20, 5, 7}, rng), random_tensor<float>({3, 20, 5, 7}, rng)},
                                 {Mode::training}, 0);
  Concat<float> cat("cat");
  check_engine_against_reference(cat, {random_tensor<float>({2, 5, 4, 4}, rng), random_tensor<float>({2, 16, 4, 4}, rng)},
                                 {Mode::training}, 0, 2);
}
