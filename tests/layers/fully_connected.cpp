#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

TEST_CASE("fully connected forward is x W^T + b over flattened samples", "[fully_connected]") {
  Random rng(81);
  FullyConnected<double> fc("fc", 4);
  const Tensor<double> x = random_tensor<double>({3, 2, 3, 2}, rng);
  fc.setup({x.shape()}, Device::cpu);
  fc.initialize(rng);
  fc.bias().value.copy_from(random_tensor<double>({1, 4, 1, 1}, rng));
  const Tensor<double> y = run_forward<double>(fc, {x});
  REQUIRE(y.shape() == Shape(3, 4, 1, 1));
  const Tensor<double>& w = fc.weight().value;
  for (int n = 0; n < 3; ++n)
    for (int k = 0; k < 4; ++k) {
      double s = fc.bias().value.at(0, k, 0, 0);
      for (int d = 0; d < 12; ++d) s += w.data()[k * 12 + d] * x.sample(n)[d];
      REQUIRE(y.at(n, k, 0, 0) == Approx(s));
    }
}

TEST_CASE("fully connected backward matches finite differences", "[fully_connected][gradient]") {
  Random rng(82);
  FullyConnected<double> fc("fc", 5);
  check_gradients(fc, {random_tensor<double>({3, 3, 2, 2}, rng)});
}

TEST_CASE("fully connected reads a channel-slice input", "[fully_connected][view]") {
  Random rng(83);
  FullyConnected<double> fc("fc", 3);
  const Tensor<double> big = random_tensor<double>({4, 6, 1, 1}, rng);
  const Tensor<double> slice = big.channels(2, 3), dense = slice.clone();
  REQUIRE(!slice.contiguous());
  REQUIRE(bitwise_equal(run_forward<double>(fc, {slice}), run_forward<double>(fc, {dense})));
}

TEST_CASE("fully connected on the CPU engine matches the reference loops", "[fully_connected][engine]") {
  Random rng(34);
  for (const Shape s : {Shape{5, 7, 3, 2}, Shape{3, 32, 1, 1}, Shape{1, 20, 4, 4}}) {
    INFO("input " << s);
    FullyConnected<float> fc("fc", 9);
    check_engine_against_reference(fc, {random_tensor<float>(s, rng)});
  }
}

TEST_CASE("fully connected in bfloat16 on the CPU engine stays within bfloat16's rounding of float32",
          "[fully_connected][engine][bf16]") {
  if (!onednn::bf16_supported()) {
    WARN("no AVX512-BF16 or AMX here: bfloat16 is refused (tests/engine checks the message)");
    return;
  }
  Random rng(35);
  FullyConnected<float> fc("fc", 9);
  check_engine_against_reference(fc, {random_tensor<float>({5, 32, 2, 2}, rng)}, {Mode::training}, 1e-2, 3,
                                 Precision::bf16);
}
