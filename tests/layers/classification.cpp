// The classification layer's sample weights: the weighted sum of cross-entropies, and its gradient
// (with respect to the logits when a softmax feeds it, the probabilities otherwise).
#include <cmath>

#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

namespace {
/// Runs `layer` forward on `probs` and backward into a fresh gradient; returns (per-sample output, gradient).
std::pair<std::vector<double>, std::vector<double>> run(Classification<double>& layer, const Tensor<double>& probs) {
  Tensor<double> y({probs.n(), 1, 1, 1}), dx(probs.shape());
  layer.forward({&probs}, y, ForwardContext{});
  BackwardArgs<double> a;
  a.x = {&probs};
  a.y = &y;
  a.dx = {&dx};
  a.dx_mode = {GradWrite::overwrite};
  layer.backward(a);
  return {y.to_vector(), dx.to_vector()};
}
}  // namespace

TEST_CASE("sample weights make the loss a weighted sum of cross-entropies", "[classification][weights]") {
  Classification<double> layer("loss");
  layer.setup({Shape{1, 3, 1, 1}}, Device::cpu);
  // p = (1/2, 1/4, 1/4) and (1/8, 3/4, 1/8), labels 0 and 1, weights 2 and 1/2:
  // 2 log 2 + (1/2) log(4/3)
  const Tensor<double> p = Tensor<double>::from_vector({2, 3, 1, 1}, {0.5, 0.25, 0.25, 0.125, 0.75, 0.125});
  layer.set_labels({0, 1}, Device::cpu);
  layer.set_sample_weights({2.0, 0.5});
  const auto [y, dp] = run(layer, p);
  REQUIRE(y[0] == Approx(2 * std::log(2.0)));
  REQUIRE(y[1] == Approx(0.5 * std::log(4.0 / 3.0)));
  REQUIRE(layer.reduce(Tensor<double>::from_vector({2, 1, 1, 1}, y)) == Approx(2 * std::log(2.0) + 0.5 * std::log(4.0 / 3.0)));
  // Not fused: dL/dp = -w / p at the label, 0 elsewhere.
  REQUIRE(dp[0] == Approx(-2 / 0.5));
  REQUIRE(dp[1] == 0);
  REQUIRE(dp[4] == Approx(-0.5 / 0.75));
  // Fused with a softmax: w (p - onehot).
  layer.set_softmax_input(true);
  const auto [y2, dz] = run(layer, p);
  REQUIRE(dz[0] == Approx(2 * (0.5 - 1)));
  REQUIRE(dz[2] == Approx(2 * 0.25));
  REQUIRE(dz[4] == Approx(0.5 * (0.75 - 1)));
  // Cleared: the mean again, and its gradient (p - onehot) / N.
  layer.clear_sample_weights();
  const auto [y3, mean_grad] = run(layer, p);
  REQUIRE(layer.reduce(Tensor<double>::from_vector({2, 1, 1, 1}, y3)) == Approx((std::log(2.0) + std::log(4.0 / 3.0)) / 2));
  REQUIRE(mean_grad[0] == Approx((0.5 - 1) / 2));
  // An auxiliary loss scales the weighted gradient by its own weight.
  Classification<double> aux("aux", AuxiliaryLoss{0.3});
  aux.setup({Shape{1, 3, 1, 1}}, Device::cpu);
  aux.set_softmax_input(true);
  aux.set_labels({0, 1}, Device::cpu);
  aux.set_sample_weights({2.0, 0.5});
  REQUIRE(run(aux, p).second[0] == Approx(0.3 * 2 * (0.5 - 1)));
}

TEST_CASE("the weighted gradient matches finite differences, through the softmax and without it",
          "[classification][weights][gradient]") {
  Random rng(41);
  const Tensor<double> z = random_tensor<double>({3, 4, 1, 1}, rng, -2, 2);
  const std::vector<int> t{3, 0, 1};
  const std::vector<double> w{0.7, 0.0, 1.3};
  for (bool fused : {true, false}) {
    Classification<double> layer("loss");
    layer.setup({Shape{1, 4, 1, 1}}, Device::cpu);
    layer.set_softmax_input(fused);
    layer.set_labels(t, Device::cpu);
    layer.set_sample_weights(w);
    // Fused, the input is the logits and the layer sees softmax(z); otherwise it is probabilities.
    Tensor<double> in = fused ? z : Tensor<double>::from_vector(z.shape(), {0.1, 0.2, 0.3, 0.4, 0.25, 0.25, 0.25, 0.25, 0.6, 0.1, 0.2, 0.1});
    auto loss = [&]() {
      Tensor<double> p(in.shape());
      if (fused) softmax_forward(in, p);
      else p.copy_from(in);
      Tensor<double> y({3, 1, 1, 1});
      layer.forward({&p}, y, ForwardContext{});
      return layer.reduce(y);
    };
    Tensor<double> p(in.shape());
    if (fused) softmax_forward(in, p);
    else p.copy_from(in);
    const std::vector<double> g = run(layer, p).second;
    for (size_t i = 0; i < in.size(); ++i) {
      double* v = in.data() + i;
      const double keep = *v;
      *v = keep + 1e-6;
      const double up = loss();
      *v = keep - 1e-6;
      const double down = loss();
      *v = keep;
      INFO((fused ? "fused" : "probabilities") << " element " << i);
      REQUIRE(g[i] == Approx((up - down) / 2e-6).margin(1e-8));
    }
  }
}

TEST_CASE("sample weights are checked against the batch and need labels known on the host", "[classification][weights]") {
  Classification<double> layer("loss");
  layer.setup({Shape{1, 2, 1, 1}}, Device::cpu);
  const Tensor<double> p = Tensor<double>::from_vector({2, 2, 1, 1}, {0.5, 0.5, 0.5, 0.5});
  REQUIRE_THROWS_WITH(layer.set_sample_weights({1, std::nan("")}), Catch::Contains("sample weight nan of sample 1"));
  layer.set_labels({0, 1}, Device::cpu);
  layer.set_sample_weights({1, 1, 1});
  Tensor<double> y({2, 1, 1, 1});
  REQUIRE_THROWS_WITH(layer.forward({&p}, y, ForwardContext{}), Catch::Contains("3 sample weights for a batch of 2"));
  layer.set_labels(Tensor<std::int32_t>::from_vector({2, 1, 1, 1}, {0, 1}));
  layer.set_sample_weights({1, 1});
  REQUIRE_THROWS_WITH(layer.forward({&p}, y, ForwardContext{}), Catch::Contains("weights need labels set from the host"));
}
