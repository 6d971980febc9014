#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

TEST_CASE("softmax is stable for large scores and sums to one", "[softmax]") {
  Softmax<double> sm("softmax");
  const Tensor<double> x = Tensor<double>::from_vector({2, 3, 1, 1}, {1000, 1001, 1002, -5, 0, 5});
  const auto y = run_forward<double>(sm, {x}).to_vector();
  const double e1 = std::exp(-1.0), e2 = std::exp(-2.0);
  REQUIRE(y[2] == Approx(1 / (1 + e1 + e2)));
  REQUIRE(y[0] == Approx(e2 / (1 + e1 + e2)));
  REQUIRE(y[3] + y[4] + y[5] == Approx(1));
}

TEST_CASE("softmax backward matches finite differences", "[softmax][gradient]") {
  Random rng(91);
  Softmax<double> sm("softmax");
  check_gradients(sm, {random_tensor<double>({3, 5, 1, 1}, rng, -3, 3)});
  Softmax<double> spatial("softmax");
  check_gradients(spatial, {random_tensor<double>({2, 4, 2, 3}, rng, -3, 3)});
}

TEST_CASE("softmax with cross-entropy: loss and fused gradient", "[softmax][classification]") {
  Model<double> m;
  m.add(std::make_unique<ImageInput<double>>("in", 4, 1, 1));
  m.add(std::make_unique<Softmax<double>>("softmax"));
  m.add(std::make_unique<Classification<double>>("loss"));
  const Tensor<double> logits = Tensor<double>::from_vector({2, 4, 1, 1}, {1, 2, 3, 4, 0, 0, 50, 0});
  m.forward(logits, std::vector<int>{1, 0});
  const auto p = m.prediction().to_vector();
  const double expect = (-std::log(p[1]) - std::log(p[4])) / 2;
  REQUIRE(m.loss() == Approx(expect));
  // p[4] = exp(-50)/(3 + exp(-50)) is tiny but the loss stays finite
  REQUIRE(std::isfinite(m.loss()));

  Tensor<double> dlogits({2, 4, 1, 1});
  Tensor<std::int32_t> labels = Tensor<std::int32_t>::from_vector({2, 1, 1, 1}, {1, 0});
  softmax_cross_entropy_backward(m.prediction(), labels, dlogits, 0.5);
  REQUIRE(dlogits.at(0, 1, 0, 0) == Approx((p[1] - 1) / 2));
  REQUIRE(dlogits.at(1, 2, 0, 0) == Approx(p[6] / 2));

  REQUIRE_THROWS_WITH(m.forward(logits, std::vector<int>{1, 4}), Catch::Contains("label 4"));
  // Labels given as a tensor are checked where they index the probabilities.
  Tensor<double> loss({2, 1, 1, 1});
  REQUIRE_THROWS_WITH(cross_entropy_forward(m.prediction(), Tensor<std::int32_t>::from_vector({2, 1, 1, 1}, {1, -1}),
                                            loss),
                      Catch::Contains("label -1 of sample 1 is outside [0, 4)"));
  REQUIRE_THROWS_WITH(m.forward(logits, Tensor<std::int32_t>::from_vector({2, 1, 1, 1}, {4, 0})),
                      Catch::Contains("label 4 of sample 0"));
}

TEST_CASE("softmax with cross-entropy gradient matches finite differences of the mean loss", "[softmax][gradient]") {
  // L(z) = mean_n -log softmax(z_n)[t_n]; check (p - onehot)/N against central differences.
  Random rng(92);
  const Tensor<double> z = random_tensor<double>({3, 5, 1, 1}, rng, -2, 2);
  const std::vector<std::int32_t> t{4, 0, 2};
  const Tensor<std::int32_t> labels = Tensor<std::int32_t>::from_vector({3, 1, 1, 1}, t);
  auto loss = [&]() {
    Tensor<double> p(z.shape()), l({3, 1, 1, 1});
    softmax_forward(z, p);
    cross_entropy_forward(p, labels, l);
    const auto v = l.to_vector();
    return (v[0] + v[1] + v[2]) / 3;
  };
  Tensor<double> p(z.shape()), g(z.shape());
  softmax_forward(z, p);
  softmax_cross_entropy_backward(p, labels, g, 1.0 / 3);
  for (size_t i = 0; i < z.size(); ++i) {
    double* e = z.data() + i;
    const double keep = *e;
    *e = keep + 1e-6;
    const double up = loss();
    *e = keep - 1e-6;
    const double down = loss();
    *e = keep;
    REQUIRE(g.data()[i] == Approx((up - down) / 2e-6).margin(1e-8));
  }
}
