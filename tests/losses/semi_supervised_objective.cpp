// The semi-supervised objective of one step: its gradient is the gradient of the sum of its terms
// (finite differences through a small network), it is the supervised step when no unlabelled term
// contributes, and its inputs are checked.
#include <cmath>

#include <ewnet/losses/semi_supervised_objective.hpp>

#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::losses;

namespace {
/// input 3x6x6 -> conv 3x3 (4) -> ReLU -> global average pooling ("gap", the features) -> fc (3) ->
/// softmax -> loss: no dropout or batch norm, so training and inference passes agree.
Model<double> tiny_net() {
  Model<double> m(5);
  m.add(std::make_unique<ImageInput<double>>("input", 3, 6, 6));
  Conv2dOptions c;
  c.filters = 4;
  c.kernel_h = c.kernel_w = 3;
  c.same = true;
  m.add(std::make_unique<Conv2d<double>>("conv", c));
  m.add(std::make_unique<Relu<double>>("relu"));
  m.add(std::make_unique<GlobalAvgPool<double>>("gap"));
  m.add(std::make_unique<FullyConnected<double>>("fc", 3));
  m.add(std::make_unique<Softmax<double>>("softmax"));
  m.add(std::make_unique<Classification<double>>("output"));
  m.build();
  Random rng(6);
  for (auto& [layer, p] : m.parameters()) p->value.copy_from(test::random_tensor<double>(p->value.shape(), rng, -0.6, 0.6));
  return m;
}

struct Inputs {
  Tensor<double> images, source;
  std::vector<int> labels{0, 2, 1};
  data::UnlabeledBatch<double> u;
};
Inputs inputs() {
  Random rng(7);
  Inputs in;
  in.images = test::random_tensor<double>({3, 3, 6, 6}, rng);
  in.source = test::random_tensor<double>({3, 3, 6, 6}, rng, -0.5, 1.5);
  in.u.weak = test::random_tensor<double>({4, 3, 6, 6}, rng);
  in.u.strong = test::random_tensor<double>({4, 3, 6, 6}, rng);
  return in;
}

Tensor<double> rows(std::vector<const Tensor<double>*> parts) {
  int n = 0;
  for (auto* p : parts) n += p->n();
  Tensor<double> out(parts[0]->shape().with_batch(n));
  int r = 0;
  for (auto* p : parts) {
    out.batch(r, p->n()).copy_from(*p);
    r += p->n();
  }
  return out;
}
}  // namespace

TEST_CASE("the objective's gradient is that of the sum of its terms", "[losses][semi-supervised][gradient]") {
  // FixMatch (every pseudo-label kept), entropy on the strong views, CORAL between the source
  // images' features and the target rows' (labelled images and strong views).
  SemiSupervisedOptions o;
  o.threshold = 0;
  o.distribution_alignment = false;
  o.unlabeled_weight = 0.7;
  o.entropy_weight = 0.3;
  o.alignment = FeatureAlignment::coral;
  o.alignment_weight = 50;
  Model<double> m = tiny_net();
  const Inputs in = inputs();
  auto objective = [&]() {
    const PseudoLabels pseudo = pseudo_labels(m.forward(in.u.weak, Mode::training), 0.0);
    std::vector<int> t = in.labels;
    t.insert(t.end(), pseudo.labels.begin(), pseudo.labels.end());
    t.insert(t.end(), 3, 0);
    std::vector<double> w{1.0 / 3, 1.0 / 3, 1.0 / 3, 0.7 / 4, 0.7 / 4, 0.7 / 4, 0.7 / 4, 0, 0, 0};
    m.forward(rows({&in.images, &in.u.strong, &in.source}), t, w, Mode::training);
    const Tensor<double>& f = m.activation("gap");
    return double(m.loss()) + 0.3 * entropy_loss(m.prediction().batch(3, 4)).value +
           50 * coral(f.batch(7, 3), f.batch(0, 7)).value;
  };
  SemiSupervisedObjective<double> step(o, 3);
  const SemiSupervisedStepReport r = step.forward_backward(m, in.images, in.labels, in.u, &in.source);
  REQUIRE(r.unlabeled == 4);
  REQUIRE(r.pseudo_labeled == 4);
  REQUIRE(std::isfinite(r.entropy));
  REQUIRE(r.alignment > 0);
  std::vector<std::vector<double>> grads;
  for (auto& [layer, p] : m.parameters()) grads.push_back(p->grad.to_vector());
  REQUIRE(objective() == Approx(r.loss + 0.3 * r.entropy + 50 * r.alignment).epsilon(1e-12));
  size_t i = 0;
  for (auto& [layer, p] : m.parameters()) {
    for (size_t k = 0; k < p->count(); k += 1 + p->count() / 7) {
      double* v = p->value.data() + k;
      const double keep = *v;
      *v = keep + 1e-6;
      const double up = objective();
      *v = keep - 1e-6;
      const double down = objective();
      *v = keep;
      INFO(layer << "." << p->name << "[" << k << "]");
      REQUIRE(grads[i][k] == Approx((up - down) / 2e-6).epsilon(1e-6).margin(1e-9));
    }
    ++i;
  }
}

TEST_CASE("with no confident pseudo-label the objective is the supervised step", "[losses][semi-supervised]") {
  SemiSupervisedOptions o;
  o.threshold = 1;  // no prediction of this network reaches it
  Model<double> a = tiny_net(), b = tiny_net();
  const Inputs in = inputs();
  SemiSupervisedObjective<double> step(o, 3);
  const SemiSupervisedStepReport r = step.forward_backward(a, in.images, in.labels, in.u);
  REQUIRE(r.pseudo_labeled == 0);
  b.forward(in.images, in.labels, Mode::training);
  b.backward();
  REQUIRE(r.loss == Approx(double(b.loss())).epsilon(1e-12));
  auto pa = a.parameters(), pb = b.parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    REQUIRE(test::max_rel_diff(pa[i].second->grad.to_vector(), pb[i].second->grad.to_vector()) < 1e-12);
}

TEST_CASE("the objective's options and inputs are checked, and described", "[losses][semi-supervised]") {
  SemiSupervisedOptions o;
  REQUIRE(describe(o) == "FixMatch pseudo-labels (threshold 0.95, weight 1, distribution alignment)");
  o.entropy_weight = 0.1;
  o.alignment = FeatureAlignment::mmd;
  REQUIRE(describe(o) == "FixMatch pseudo-labels (threshold 0.95, weight 1, distribution alignment) + entropy "
                         "(weight 0.1) + mmd on the pooled features (weight 1)");
  Model<double> m = tiny_net();
  Inputs in = inputs();
  SemiSupervisedObjective<double> aligned(o, 3);
  REQUIRE_THROWS_WITH(aligned.forward_backward(m, in.images, in.labels, in.u), Catch::Contains("needs source images"));
  SemiSupervisedOptions fixmatch;
  SemiSupervisedObjective<double> f(fixmatch, 3);
  in.u.strong = Tensor<double>();
  REQUIRE_THROWS_WITH(f.forward_backward(m, in.images, in.labels, in.u), Catch::Contains("weak and the strong views"));
  SemiSupervisedOptions none;
  none.pseudo_labels = false;
  REQUIRE_THROWS_WITH(SemiSupervisedObjective<double>(none, 3), Catch::Contains("no term uses the unlabelled images"));
  none.entropy_weight = -1;
  REQUIRE_THROWS_WITH(check(none), Catch::Contains("loss weights must be finite and >= 0"));
}
