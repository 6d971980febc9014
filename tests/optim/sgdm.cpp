#include <cmath>
#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

namespace {
/// input -> fc(2 outputs) -> softmax -> loss; weights and gradients are set by hand below.
Model<double> tiny() {
  Model<double> m;
  m.add(std::make_unique<ImageInput<double>>("input", 3, 1, 1));
  m.add(std::make_unique<FullyConnected<double>>("fc", 2));
  m.add(std::make_unique<Softmax<double>>("softmax"));
  m.add(std::make_unique<Classification<double>>("output"));
  m.build();
  return m;
}
}  // namespace

TEST_CASE("SGDM follows v = m v - lr f (g + l2 l2f w), w += v, with multipliers and a rate drop", "[sgdm]") {
  for (double factor : {0.0, 0.5, 1.0}) {
    Model<double> m = tiny();
    auto& fc = m.layer_as<FullyConnected<double>>("fc");
    m.set_learn_rate_factors("fc", factor, 2 * factor);
    fc.weight().value.copy_from(Tensor<double>::from_vector({2, 3, 1, 1}, {1, -2, 3, 0.5, 0, -1}));
    fc.bias().value.copy_from(Tensor<double>::from_vector({1, 2, 1, 1}, {0.25, -0.5}));
    const std::vector<double> gw{0.1, 0.2, -0.3, 0.0, 1.0, -1.0}, gb{0.5, -0.25};
    Sgdm<double> solver({0.9, 0.01});
    const LearnRateSchedule schedule = LearnRateSchedule::piecewise(0.1, 0.5, 2);
    // Hand computation, element 0 of the weights (w = 1, g = 0.1), bias element 0 (b = 0.25, g = 0.5):
    double w = 1, vw = 0, b = 0.25, vb = 0;
    for (int epoch = 0; epoch < 4; ++epoch) {
      fc.weight().grad.copy_from(Tensor<double>::from_vector({2, 3, 1, 1}, gw));
      fc.bias().grad.copy_from(Tensor<double>::from_vector({1, 2, 1, 1}, gb));
      const double lr = schedule.rate(epoch);
      REQUIRE(lr == (epoch < 2 ? 0.1 : 0.05));
      solver.step(m, lr);
      if (factor != 0) {
        vw = 0.9 * vw - lr * factor * (0.1 + 0.01 * 1.0 * w);
        w += vw;
        vb = 0.9 * vb - lr * 2 * factor * (0.5 + 0.01 * 0.0 * b);  // bias L2 factor is 0 by default
        b += vb;
      }
      INFO("factor " << factor << " epoch " << epoch);
      REQUIRE(fc.weight().value.data()[0] == Approx(w).epsilon(1e-14));
      REQUIRE(fc.bias().value.data()[0] == Approx(b).epsilon(1e-14));
    }
    if (factor == 0) {
      REQUIRE(fc.weight().value.to_vector() == std::vector<double>{1, -2, 3, 0.5, 0, -1});
      REQUIRE(fc.bias().value.to_vector() == std::vector<double>{0.25, -0.5});
    }
  }
}

TEST_CASE("the solver writes only parameters and momentum: the model's training passes count the steps", "[sgdm]") {
  Model<double> m = tiny();
  Sgdm<double> solver;
  const Tensor<double> x = Tensor<double>::from_vector({2, 3, 1, 1}, {1, 2, 3, 4, 5, 6});
  REQUIRE(m.iteration() == 0);
  m.forward(x, {0, 1}, Mode::inference);  // draws no dropout mask
  REQUIRE(m.iteration() == 0);
  m.forward(x, {0, 1});                   // a training pass
  REQUIRE(m.iteration() == 1);
  m.backward();
  solver.step(m, 0.1);
  REQUIRE(m.iteration() == 1);
}

TEST_CASE("learning-rate factors can be set for every layer up to a named one", "[sgdm]") {
  Model<double> m;
  m.add(std::make_unique<ImageInput<double>>("input", 3, 4, 4));
  Conv2dOptions o;
  o.filters = 2;
  o.padding = 1;
  m.add(std::make_unique<Conv2d<double>>("c1", o));
  m.add(std::make_unique<Conv2d<double>>("c2", o));
  m.add(std::make_unique<FullyConnected<double>>("fc", 2));
  m.add(std::make_unique<Softmax<double>>("softmax"));
  m.add(std::make_unique<Classification<double>>("output"));
  m.set_learn_rate_factors_up_to("c2", 0.5, 0.25);
  for (auto& [layer, p] : m.parameters()) {
    const double expect = layer == "fc" ? 1.0 : (p->role == ParamRole::weight ? 0.5 : 0.25);
    REQUIRE(p->learn_rate_factor == expect);
  }
  REQUIRE_THROWS_WITH(m.set_learn_rate_factors_up_to("c9", 0, 0), Catch::Contains("'c9'"));
  REQUIRE_THROWS_AS(m.set_learn_rate_factors("c1", -1, 0), Error);
}

TEST_CASE("learning-rate schedules", "[schedule]") {
  const LearnRateSchedule c = LearnRateSchedule::constant(1e-3);
  REQUIRE(c.rate(0) == 1e-3);
  REQUIRE(c.rate(300) == 1e-3);
  const LearnRateSchedule p = LearnRateSchedule::piecewise(1e-3, 0.5, 20);
  REQUIRE(p.rate(19) == 1e-3);
  REQUIRE(p.rate(20) == 5e-4);
  REQUIRE(p.rate(45) == 2.5e-4);
  REQUIRE(LearnRateSchedule::from_json(p.to_json()).rate(45) == p.rate(45));
  REQUIRE_THROWS_AS(LearnRateSchedule::piecewise(1e-3, 0.5, 0), Error);

  // Cosine with 2 warm-up epochs over 10: 1/3, 2/3 of the rate, then the full rate at epoch 2,
  // half of it half-way through the remaining 7 intervals, the floor at the last epoch.
  const LearnRateSchedule k = LearnRateSchedule::cosine(0.3, 10, 2, 0.1);
  REQUIRE(k.rate(0) == Approx(0.1));
  REQUIRE(k.rate(1) == Approx(0.2));
  REQUIRE(k.rate(2) == Approx(0.3));
  REQUIRE(k.rate(9) == Approx(0.03));
  REQUIRE(k.rate(40) == Approx(0.03));  // past the end: stays at the floor
  const double mid = 0.3 * (0.1 + 0.9 * 0.5 * (1 + std::cos(3.14159265358979323846 * 3.5 / 7)));
  REQUIRE(LearnRateSchedule::cosine(0.3, 10, 2, 0.1).rate(5) ==
          Approx(0.3 * (0.1 + 0.9 * 0.5 * (1 + std::cos(3.14159265358979323846 * 3.0 / 7)))));
  REQUIRE(mid == Approx(0.3 * (0.1 + 0.9 * 0.5)));
  for (int e = 3; e < 10; ++e) REQUIRE(k.rate(e) < k.rate(e - 1));
  REQUIRE(LearnRateSchedule::from_json(k.to_json()).rate(6) == k.rate(6));
  REQUIRE(LearnRateSchedule::cosine(0.3, 1).rate(0) == Approx(0.3));
  REQUIRE_THROWS_AS(LearnRateSchedule::cosine(1e-3, 5, 5), Error);
  REQUIRE_THROWS_AS(LearnRateSchedule::cosine(1e-3, 5, 1, 1.5), Error);
}
