// A semi-supervised step on the GPU against the CPU: sample weights on the loss, and gradients of
// terms computed outside the graph (MMD on the pooled features, entropy on the logits) added at
// those layers' outputs. Those paths run on the host with copies each way; this checks the copies.
#include <ewnet/losses/domain_alignment.hpp>
#include <ewnet/losses/entropy.hpp>

#include "cuda_test.hpp"

using namespace ewnet;
using namespace ewnet::cuda_test;

namespace {
Model<float> tiny_net(std::uint64_t seed) {
  Model<float> m(seed);
  m.add(std::make_unique<ImageInput<float>>("input", 3, 8, 8));
  Conv2dOptions c;
  c.filters = 6;
  c.kernel_h = c.kernel_w = 3;
  c.same = true;
  m.add(std::make_unique<Conv2d<float>>("conv", c));
  m.add(std::make_unique<Relu<float>>("relu"));
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
  m.add(std::make_unique<FullyConnected<float>>("fc", 3));
  m.add(std::make_unique<Softmax<float>>("softmax"));
  m.add(std::make_unique<Classification<float>>("output"));
  m.build();
  return m;
}
}  // namespace

TEST_CASE("a weighted step with gradients added at the features and the logits matches the CPU", "[semi_supervised]") {
  Random rng = rng_for("semi-supervised step");
  const std::uint64_t seed = rng.next_u64();
  Model<float> cpu = tiny_net(seed), gpu = tiny_net(seed);
  gpu.to(Device::cuda);
  std::vector<float> v(6 * 3 * 8 * 8);
  for (float& x : v) x = float(rng.uniform(-1, 1));
  const Tensor<float> images = Tensor<float>::from_vector({6, 3, 8, 8}, v);
  const std::vector<int> labels{0, 2, 1, 1, 0, 2};
  const std::vector<double> weights{0.5, 0.5, 0.25, 0, 0.25, 0};
  for (Model<float>* m : {&cpu, &gpu}) {
    m->forward(m == &gpu ? images.to(Device::cuda) : images, labels, weights);
    // Rows 0-2 as one domain, 3-5 as the other; entropy on every prediction.
    const Tensor<float>& f = m->activation("gap");
    const losses::AlignmentLoss<float> a = losses::mmd(f.batch(0, 3), f.batch(3, 3));
    Tensor<float> g = Tensor<float>::empty(f.shape(), m->device());
    g.batch(0, 3).copy_from(a.d_source);
    g.batch(3, 3).copy_from(a.d_target);
    m->add_output_gradient("gap", g);
    m->add_output_gradient("fc", losses::entropy_loss(m->prediction()).d_logits);
    m->backward();
  }
  CHECK(std::fabs(double(cpu.loss()) - double(gpu.loss())) <= 1e-4);
  auto cp = cpu.parameters(), gp = gpu.parameters();
  for (size_t i = 0; i < cp.size(); ++i) {
    INFO("layer " << cp[i].first << ", parameter " << cp[i].second->name);
    CHECK(rel_diff(gp[i].second->grad, cp[i].second->grad) <= 1e-3);
  }
}
