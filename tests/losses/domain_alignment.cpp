// MMD, CORAL and CMD: values by hand on one-feature batches, gradients by finite differences.
#include <cmath>
#include <functional>

#include <ewnet/losses/domain_alignment.hpp>

#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::losses;

namespace {
Tensor<double> rows(int n, int d, std::vector<double> v) { return Tensor<double>::from_vector({n, d, 1, 1}, v); }

/// Central differences of `value(source, target)` against the loss's gradients, every element.
void check_gradients(Tensor<double> source, Tensor<double> target,
                     const std::function<AlignmentLoss<double>(const Tensor<double>&, const Tensor<double>&)>& loss) {
  const AlignmentLoss<double> at = loss(source, target);
  for (auto [t, g] : {std::pair<Tensor<double>*, const Tensor<double>*>{&source, &at.d_source}, {&target, &at.d_target}}) {
    const std::vector<double> analytic = g->to_vector();
    REQUIRE(g->shape() == t->shape());
    for (size_t i = 0; i < t->size(); ++i) {
      double* v = t->data() + i;
      const double keep = *v;
      *v = keep + 1e-6;
      const double up = loss(source, target).value;
      *v = keep - 1e-6;
      const double down = loss(source, target).value;
      *v = keep;
      INFO((t == &source ? "source" : "target") << " element " << i);
      REQUIRE(analytic[i] == Approx((up - down) / 2e-6).margin(1e-8).epsilon(1e-5));
    }
  }
}
}  // namespace

TEST_CASE("MMD with a Gaussian kernel, by hand", "[losses][mmd]") {
  // x = 0, y = 1, one kernel of bandwidth 1: k(0,0) + k(1,1) - 2 k(0,1) = 2 - 2/e; the gradient of
  // 2 - 2 exp(-(x - y)^2) is 4 (x - y) exp(-(x - y)^2) = -4/e at x and 4/e at y
  MmdOptions one;
  one.bandwidth_multipliers = {1};
  one.bandwidth = 1;
  const AlignmentLoss<double> l = mmd(rows(1, 1, {0}), rows(1, 1, {1}), one);
  REQUIRE(l.value == Approx(2 - 2 / std::exp(1.0)));
  REQUIRE(l.d_source.to_vector()[0] == Approx(-4 / std::exp(1.0)));
  REQUIRE(l.d_target.to_vector()[0] == Approx(4 / std::exp(1.0)));
  // The default bandwidth: the mean squared distance between distinct rows, (1 + 9 + 4) / 3.
  REQUIRE(mean_squared_distance(rows(2, 1, {0, 1}), rows(1, 1, {3})) == Approx(14.0 / 3));
  // Equal batches: no discrepancy, no gradient.
  Random rng(4);
  const Tensor<double> x = test::random_tensor<double>({5, 3, 1, 1}, rng);
  const AlignmentLoss<double> same = mmd(x, x);
  REQUIRE(same.value == Approx(0).margin(1e-12));
  for (double g : same.d_source.to_vector()) REQUIRE(g == Approx(0).margin(1e-12));
  // Every row the same: no scale, and nothing to align.
  REQUIRE(mmd(rows(2, 1, {1, 1}), rows(1, 1, {1})).value == 0);
  REQUIRE_THROWS_WITH(mmd(rows(1, 2, {0, 0}), rows(1, 3, {0, 0, 0})), Catch::Contains("differ in size a sample"));
}

TEST_CASE("MMD's gradient matches finite differences at a fixed bandwidth", "[losses][mmd][gradient]") {
  Random rng(8);
  const Tensor<double> x = test::random_tensor<double>({4, 6, 1, 1}, rng), y = test::random_tensor<double>({5, 6, 1, 1}, rng, -0.5, 1.5);
  MmdOptions o;
  o.bandwidth = mean_squared_distance(x, y);  // held constant, as in training
  check_gradients(x, y, [&](const Tensor<double>& a, const Tensor<double>& b) { return mmd(a, b, o); });
  // The default (bandwidth from the batches) equals the fixed one at the same point.
  REQUIRE(mmd(x, y).value == Approx(mmd(x, y, o).value).epsilon(1e-14));
}

TEST_CASE("CORAL: the distance between covariances, by hand and by finite differences", "[losses][coral][gradient]") {
  // Source {0, 2}: variance 2; target {0, 1}: variance 1/2; (2 - 1/2)^2 / 4 = 0.5625.
  // dL/dx = (x - mean)(C_s - C_t) / (m - 1) = -1.5 and 1.5.
  const AlignmentLoss<double> l = coral(rows(2, 1, {0, 2}), rows(2, 1, {0, 1}));
  REQUIRE(l.value == Approx(0.5625));
  REQUIRE(l.d_source.to_vector() == std::vector<double>{-1.5, 1.5});
  REQUIRE(l.d_target.to_vector()[0] == Approx(0.5 * 1.5));  // -(y - mean)(C_s - C_t) / (n - 1): -(-0.5)(1.5)
  Random rng(9);
  check_gradients(test::random_tensor<double>({5, 4, 1, 1}, rng), test::random_tensor<double>({3, 4, 1, 1}, rng, 0, 2),
                  [](const Tensor<double>& a, const Tensor<double>& b) { return coral(a, b); });
  REQUIRE_THROWS_WITH(coral(rows(1, 1, {0}), rows(2, 1, {0, 1})), Catch::Contains("at least 2 samples of each domain"));
}

TEST_CASE("CMD: the distance between means and central moments, by hand and by finite differences",
          "[losses][cmd][gradient]") {
  // Means 1 and 1; second central moments 1 and 0: CMD = 0 + 1; over a range of width 2, 1/4.
  REQUIRE(cmd(rows(2, 1, {0, 2}), rows(2, 1, {1, 1}), 2).value == Approx(1));
  REQUIRE(cmd(rows(2, 1, {0, 2}), rows(2, 1, {1, 1}), 2, 2.0).value == Approx(0.25));
  // Means 0 and 3 of two features: |(0, 0) - (3, 4)| = 5 at order 1.
  REQUIRE(cmd(rows(1, 2, {0, 0}), rows(1, 2, {3, 4}), 1).value == Approx(5));
  Random rng(10);
  check_gradients(test::random_tensor<double>({6, 3, 1, 1}, rng, 0, 1), test::random_tensor<double>({4, 3, 1, 1}, rng, 0, 1),
                  [](const Tensor<double>& a, const Tensor<double>& b) { return cmd(a, b, 5); });
}
