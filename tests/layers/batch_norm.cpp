#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

TEST_CASE("batch normalization forward normalises each channel with batch statistics", "[batch_norm]") {
  Random rng(31);
  BatchNorm<double> bn("bn");
  const Tensor<double> x = random_tensor<double>({4, 3, 5, 3}, rng, -3, 5);
  bn.setup({x.shape()}, Device::cpu);
  bn.params()[0]->value.copy_from(Tensor<double>::from_vector({1, 3, 1, 1}, {1.5, -0.5, 2.0}));
  bn.params()[1]->value.copy_from(Tensor<double>::from_vector({1, 3, 1, 1}, {0.1, 0.2, -0.3}));
  const Tensor<double> y = run_forward<double>(bn, {x}, {Mode::training, 0});
  const double gamma[] = {1.5, -0.5, 2.0}, beta[] = {0.1, 0.2, -0.3};
  for (int c = 0; c < 3; ++c) {
    double mean = 0, var = 0;
    const int m = 4 * 5 * 3;
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 3; ++j) mean += x.at(n, c, i, j) / m;
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 3; ++j) var += (x.at(n, c, i, j) - mean) * (x.at(n, c, i, j) - mean) / m;
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 3; ++j)
          REQUIRE(y.at(n, c, i, j) == Approx(gamma[c] * (x.at(n, c, i, j) - mean) / std::sqrt(var + 1e-5) + beta[c]));
    // running statistics moved 10% of the way from (0, 1) towards the batch's (unbiased variance)
    REQUIRE(bn.state()[0].tensor->at(0, c, 0, 0) == Approx(0.1 * mean));
    REQUIRE(bn.state()[1].tensor->at(0, c, 0, 0) == Approx(0.9 + 0.1 * var * m / (m - 1)));
  }
}

TEST_CASE("batch normalization uses running statistics in inference and when frozen", "[batch_norm]") {
  Random rng(32);
  BatchNorm<double> bn("bn");
  const Tensor<double> x = random_tensor<double>({3, 2, 2, 2}, rng);
  bn.setup({x.shape()}, Device::cpu);
  bn.state()[0].tensor->copy_from(Tensor<double>::from_vector({1, 2, 1, 1}, {0.5, -1.0}));
  bn.state()[1].tensor->copy_from(Tensor<double>::from_vector({1, 2, 1, 1}, {4.0, 0.25}));
  const Tensor<double> inference = run_forward<double>(bn, {x}, {Mode::inference, 0});
  REQUIRE(inference.at(1, 0, 1, 0) == Approx((x.at(1, 0, 1, 0) - 0.5) / std::sqrt(4.0 + 1e-5)));
  REQUIRE(inference.at(2, 1, 0, 1) == Approx((x.at(2, 1, 0, 1) + 1.0) / std::sqrt(0.25 + 1e-5)));

  bn.set_learn_rate_factors(0, 0);
  const auto before = bn.state()[0].tensor->to_vector();
  const Tensor<double> frozen = run_forward<double>(bn, {x}, {Mode::training, 0});
  REQUIRE(bitwise_equal(frozen, inference));
  REQUIRE(bn.state()[0].tensor->to_vector() == before);  // a frozen layer's statistics stay put
}

TEST_CASE("batch normalization backward matches finite differences", "[batch_norm][gradient]") {
  Random rng(33);
  SECTION("batch statistics") {
    BatchNorm<double> bn("bn");
    check_gradients(bn, {random_tensor<double>({3, 2, 3, 2}, rng)}, {Mode::training, 0});
  }
  SECTION("running statistics (frozen scale, trainable offset)") {
    BatchNorm<double> bn("bn");
    bn.setup({Shape{2, 3, 2, 2}}, Device::cpu);
    bn.set_learn_rate_factors(0, 1);
    bn.state()[1].tensor->copy_from(Tensor<double>::from_vector({1, 3, 1, 1}, {0.5, 2.0, 1.5}));
    check_gradients(bn, {random_tensor<double>({2, 3, 2, 2}, rng)}, {Mode::inference, 0});
  }
}

TEST_CASE("batch normalization on the CPU engine matches the reference loops", "[batch_norm][engine]") {
  Random rng(75);
  for (const Shape s : {Shape{4, 20, 5, 6}, Shape{2, 16, 3, 3}, Shape{8, 3, 1, 1}}) {
    INFO("input " << s);
    const Tensor<float> x = random_tensor<float>(s, rng, -1, 3);
    BatchNorm<float> training("bn");
    check_engine_against_reference(training, {x}, {Mode::training}, 1e-4);
    BatchNorm<float> inference("bn");
    inference.setup({s}, Device::cpu);
    inference.state()[0].tensor->copy_from(random_tensor<float>({1, s.c, 1, 1}, rng, -1, 1));
    inference.state()[1].tensor->copy_from(random_tensor<float>({1, s.c, 1, 1}, rng, 0.5, 2));
    check_engine_against_reference(inference, {x}, {Mode::inference}, 1e-5);
  }
}
