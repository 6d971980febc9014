// Entropy minimisation: the mean entropy by hand, its gradient with respect to the logits by finite
// differences.
#include <cmath>

#include <ewnet/losses/entropy.hpp>

#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::losses;

TEST_CASE("the mean entropy of predictions, by hand", "[losses][entropy]") {
  // (1/2, 1/4, 1/4): (1/2) log 2 + 2 (1/4) log 4 = 1.5 log 2; uniform over 3: log 3; one-hot: 0
  const Tensor<double> p = Tensor<double>::from_vector({3, 3, 1, 1}, {0.5, 0.25, 0.25, 1.0 / 3, 1.0 / 3, 1.0 / 3, 1, 0, 0});
  const EntropyLoss<double> e = entropy_loss(p);
  REQUIRE(e.value == Approx((1.5 * std::log(2.0) + std::log(3.0) + 0) / 3));
  const std::vector<double> g = e.d_logits.to_vector();
  // -(1/N) p_j (log p_j + h): at a uniform or a one-hot prediction the entropy is flat
  REQUIRE(g[3] == Approx(0).margin(1e-15));
  REQUIRE(g[6] == Approx(0).margin(1e-15));
  REQUIRE(g[7] == 0);
  REQUIRE(g[0] == Approx(-(0.5 * (std::log(0.5) + 1.5 * std::log(2.0))) / 3));
  REQUIRE_THROWS_WITH(entropy_loss(Tensor<double>({2, 3, 1, 2})), Catch::Contains("[N x K x 1 x 1]"));
}

TEST_CASE("the entropy's gradient with respect to the logits matches finite differences", "[losses][entropy][gradient]") {
  Random rng(12);
  Tensor<double> z = test::random_tensor<double>({4, 5, 1, 1}, rng, -3, 3);
  auto entropy = [&]() {
    Tensor<double> p(z.shape());
    softmax_forward(z, p);
    return entropy_loss(p).value;
  };
  Tensor<double> p(z.shape());
  softmax_forward(z, p);
  const std::vector<double> g = entropy_loss(p).d_logits.to_vector();
  for (size_t i = 0; i < z.size(); ++i) {
    double* v = z.data() + i;
    const double keep = *v;
    *v = keep + 1e-6;
    const double up = entropy();
    *v = keep - 1e-6;
    const double down = entropy();
    *v = keep;
    INFO("logit " << i);
    REQUIRE(g[i] == Approx((up - down) / 2e-6).margin(1e-9));
  }
}
