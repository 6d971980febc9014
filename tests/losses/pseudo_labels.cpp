// FixMatch's pseudo-labels, the weights of a joint pass, the unlabelled loss they give, and
// distribution alignment, against values worked out by hand.
#include <cmath>

#include <ewnet/losses/pseudo_labels.hpp>

#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::losses;

TEST_CASE("a confident prediction becomes a hard pseudo-label, the others are masked", "[losses][fixmatch]") {
  const Tensor<double> q = Tensor<double>::from_vector(
      {4, 3, 1, 1}, {0.96, 0.02, 0.02, 0.5, 0.3, 0.2, 0.1, 0.05, 0.85, 0.2, 0.8, 0.0});
  const PseudoLabels p = pseudo_labels(q, 0.8);
  REQUIRE(p.labels == std::vector<int>{0, 0, 2, 1});
  REQUIRE(p.mask == std::vector<double>{1, 0, 1, 1});  // 0.8 reaches a threshold of 0.8
  REQUIRE(p.confident() == 3);
  REQUIRE(p.confidence[1] == 0.5);
  REQUIRE(pseudo_labels(q, 0.97).confident() == 0);
  REQUIRE_THROWS_WITH(pseudo_labels(Tensor<double>({2, 3, 2, 1}), 0.5), Catch::Contains("[N x K x 1 x 1]"));
}

TEST_CASE("one pass over labelled images and strong views trains the FixMatch objective", "[losses][fixmatch]") {
  // Labelled rows weigh 1/B, strong views lambda mask / U, anything after them 0.
  PseudoLabels p;
  p.labels = {1, 0, 2};
  p.mask = {1, 0, 1};
  const std::vector<double> w = fixmatch_weights(2, p, 1.5, 6);
  REQUIRE(w == std::vector<double>{0.5, 0.5, 0.5, 0.0, 0.5, 0.0});
  REQUIRE_THROWS_WITH(fixmatch_weights(2, p, 1, 4), Catch::Contains("do not fit a pass of 4"));
  REQUIRE_THROWS_WITH(fixmatch_weights(2, p, -1, 6), Catch::Contains("must be >= 0"));

  // Uniform predictions: every cross-entropy is log 3, so the objective is
  // log 3 (labelled mean) + 1.5 x (2/3) log 3 (two confident strong views of three) = 2 log 3.
  Model<double> m;
  m.add(std::make_unique<ImageInput<double>>("in", 3, 1, 1));
  m.add(std::make_unique<Softmax<double>>("softmax"));
  m.add(std::make_unique<Classification<double>>("loss"));
  std::vector<int> labels{0, 2};
  labels.insert(labels.end(), p.labels.begin(), p.labels.end());
  labels.push_back(0);
  m.forward(Tensor<double>({6, 3, 1, 1}), labels, w);
  REQUIRE(double(m.loss()) == Approx(2 * std::log(3.0)));
}

TEST_CASE("distribution alignment divides by the running mean of the unlabelled predictions", "[losses][fixmatch]") {
  // Momentum 0: the mean is this batch's, (0.7, 0.3); each row times (0.5/0.7, 0.5/0.3), renormalised:
  // (0.8/0.7, 0.2/0.3) / 1.809524 = (0.631579, 0.368421); (0.6/0.7, 0.4/0.3) / 2.190476 = (0.391304, 0.608696)
  DistributionAlignment da(2, 0.0);
  const Tensor<double> q = Tensor<double>::from_vector({2, 2, 1, 1}, {0.8, 0.2, 0.6, 0.4});
  const std::vector<double> a = da.align(q).to_vector();
  REQUIRE(a[0] == Approx(0.631579).epsilon(1e-5));
  REQUIRE(a[1] == Approx(0.368421).epsilon(1e-5));
  REQUIRE(a[2] == Approx(0.391304).epsilon(1e-5));
  REQUIRE(a[3] == Approx(0.608696).epsilon(1e-5));
  // With momentum the mean moves from uniform: 0.9 (0.5, 0.5) + 0.1 (0.7, 0.3).
  DistributionAlignment slow(2, 0.9);
  slow.align(q);
  REQUIRE(slow.running_mean()[0] == Approx(0.52));
  REQUIRE_THROWS_WITH(slow.align(Tensor<double>({1, 3, 1, 1})), Catch::Contains("2 classes"));
}
