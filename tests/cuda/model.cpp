// Whole training steps on the CUDA device against the CPU backend: a small network with a
// residual inception module (add_inception), batch and cross-channel normalization, dropout and a
// softmax classifier; frozen layers; the caching allocator's steady state; CUDA graph replay.
#include <ewnet/cuda/runtime.hpp>
#include <ewnet/cuda/step_graph.hpp>

#include "cuda_test.hpp"

using namespace ewnet;
using namespace ewnet::cuda_test;

namespace {

constexpr int kClasses = 5;

/// input 3x12x12 -> conv 3x3 (8) -> batch norm -> relu -> cross-channel norm -> max pool 2
///   -> inception with a projection shortcut (8 -> 16 channels) -> inception with an identity
///   shortcut (16 -> 16) -> dropout -> global average pool -> fully connected (5) -> softmax -> loss
Model<float> small_net(std::uint64_t seed, double dropout) {
  Model<float> m(seed);
  m.add(std::make_unique<ImageInput<float>>("input", 3, 12, 12));
  m.input_layer().set_normalization({0.1f, -0.2f, 0.05f}, {0.9f, 1.1f, 1.3f});
  Conv2dOptions c;
  c.filters = 8;
  c.same = true;
  m.add(std::make_unique<Conv2d<float>>("conv1", c));
  m.add(std::make_unique<BatchNorm<float>>("bn1"));
  m.add(std::make_unique<Relu<float>>("relu1"));
  m.add(std::make_unique<CrossChannelNorm<float>>("norm1", CrossChannelNormParams{5, 1e-2, 0.75, 2.0}));
  m.add(std::make_unique<MaxPool<float>>("pool1", PoolOptions{2, 2, 0}));
  const InceptionFilters f{4, 4, 6, 2, 3, 3};
  const std::string a = add_inception(m, "inc1", "pool1", f, Residual::identity_or_projection);
  const std::string b = add_inception(m, "inc2", a, f, Residual::identity_or_projection);
  m.add(std::make_unique<Dropout<float>>("drop", dropout, 7), b);
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
  m.add(std::make_unique<FullyConnected<float>>("fc", kClasses));
  m.add(std::make_unique<Softmax<float>>("prob"));
  m.add(std::make_unique<Classification<float>>("loss"));
  m.build();
  return m;
}

struct Batch {
  Tensor<float> images;  // CPU
  std::vector<int> labels;
};

Batch random_batch(Random& rng, int n) {
  Batch b;
  std::vector<float> v(size_t(n) * 3 * 12 * 12);
  for (float& x : v) x = float(rng.uniform(-1, 1));
  b.images = Tensor<float>::from_vector({n, 3, 12, 12}, v);
  for (int i = 0; i < n; ++i) b.labels.push_back(int(rng.below(kClasses)));
  return b;
}

/// Compares every parameter (value, and gradient when `grads`) and every state tensor.
void compare_models(Model<float>& gpu, Model<float>& cpu, double tol, bool grads) {
  auto gp = gpu.parameters(), cp = cpu.parameters();
  REQUIRE(gp.size() == cp.size());
  for (size_t i = 0; i < gp.size(); ++i) {
    INFO("layer " << gp[i].first << ", parameter " << gp[i].second->name);
    CHECK(rel_diff(gp[i].second->value, cp[i].second->value) <= tol);
    if (grads && gp[i].second->trainable()) CHECK(rel_diff(gp[i].second->grad, cp[i].second->grad) <= tol);
  }
  auto gs = gpu.state_tensors(), cs = cpu.state_tensors();
  REQUIRE(gs.size() == cs.size());
  for (size_t i = 0; i < gs.size(); ++i) {
    INFO("layer " << gs[i].first << ", state " << gs[i].second.name);
    CHECK(rel_diff(*gs[i].second.tensor, *cs[i].second.tensor) <= tol);
  }
}

}  // namespace

TEST_CASE("a training step of an inception/residual network matches the CPU step", "[model][views]") {
  Random rng = rng_for("model step");
  const std::uint64_t model_seed = rng.next_u64();
  Model<float> cpu = small_net(model_seed, 0.3);
  Model<float> gpu = small_net(model_seed, 0.3);
  gpu.to(Device::cuda);
  compare_models(gpu, cpu, 0, false);  // the same initial parameters, moved

  Sgdm<float> cpu_solver, gpu_solver;
  for (int step = 0; step < 3; ++step) {
    INFO("step " << step);
    const Batch b = random_batch(rng, 6);
    const Tensor<float> images_gpu = b.images.to(Device::cuda);
    const Tensor<float>& pc = cpu.forward(b.images, b.labels);
    const Tensor<float>& pg = gpu.forward(images_gpu, b.labels);
    CHECK(rel_diff(pg, pc) <= 1e-4);
    const float lc = cpu.loss(), lg = gpu.loss();
    CHECK(std::fabs(lc - lg) <= 1e-4f * std::max(1.0f, std::fabs(lc)));
    cpu.backward();
    gpu.backward();
    // Every activation gradient, including the inception branches' channel slices.
    for (Layer<float>* l : cpu.layers()) {
      const Tensor<float>& gc = cpu.output_gradient(l->name());
      const Tensor<float>& gg = gpu.output_gradient(l->name());
      REQUIRE(gc.empty() == gg.empty());
      if (!gc.empty()) {
        INFO("gradient of layer " << l->name());
        CHECK(rel_diff(gg, gc) <= 1e-3);
      }
    }
    compare_models(gpu, cpu, 1e-3, true);
    cpu_solver.step(cpu, 0.05);
    gpu_solver.step(gpu, 0.05);
    compare_models(gpu, cpu, 1e-3, false);
  }
}

TEST_CASE("frozen layers stay bitwise unchanged and run no backward pass on the GPU", "[frozen]") {
  Random rng = rng_for("frozen");
  const std::uint64_t model_seed = rng.next_u64();
  Model<float> cpu = small_net(model_seed, 0.0), gpu = small_net(model_seed, 0.0);
  gpu.to(Device::cuda);
  cpu.freeze_up_to("inc1-residual_relu");
  gpu.freeze_up_to("inc1-residual_relu");

  std::vector<std::pair<std::string, std::vector<float>>> frozen_before;
  for (auto& [name, p] : gpu.parameters())
    if (!p->trainable()) frozen_before.emplace_back(name + "/" + p->name, p->value.to_vector());
  REQUIRE_FALSE(frozen_before.empty());

  Sgdm<float> cpu_solver, gpu_solver;
  for (int step = 0; step < 2; ++step) {
    const Batch b = random_batch(rng, 4);
    cpu.forward(b.images, b.labels);
    gpu.forward(b.images.to(Device::cuda), b.labels);
    cpu.backward();
    gpu.backward();
    cpu_solver.step(cpu, 0.1);
    gpu_solver.step(gpu, 0.1);
  }
  size_t k = 0;
  for (auto& [name, p] : gpu.parameters())
    if (!p->trainable()) {
      INFO(frozen_before[k].first);
      CHECK(p->value.to_vector() == frozen_before[k].second);
      ++k;
    }
  CHECK(gpu.layer("conv1").backward_calls() == 0);
  CHECK(gpu.layer("inc1-3x3").backward_calls() == 0);
  CHECK(gpu.layer("fc").backward_calls() == 2);
  compare_models(gpu, cpu, 1e-3, false);
}

TEST_CASE("after the first step a training step performs no cudaMalloc", "[model][runtime]") {
  Random rng = rng_for("allocator");
  Model<float> gpu = small_net(rng.next_u64(), 0.3);
  gpu.to(Device::cuda);
  Sgdm<float> solver;
  const Batch b = random_batch(rng, 8);
  const Tensor<float> images = b.images.to(Device::cuda);
  auto step = [&] {
    gpu.forward(images, b.labels);
    gpu.backward();
    solver.step(gpu, 0.01);
  };
  step();
  cuda::synchronize();
  const cuda::AllocatorStats first = cuda::allocator_stats();
  for (int i = 0; i < 4; ++i) step();
  const float loss = gpu.loss();
  const cuda::AllocatorStats later = cuda::allocator_stats();
  CHECK(std::isfinite(loss));
  CHECK(later.device_mallocs == first.device_mallocs);
  CHECK(later.device_frees == first.device_frees);
}

TEST_CASE("a training step captured as a CUDA graph and replayed equals eager steps", "[graph]") {
  Random rng = rng_for("graph");
  const std::uint64_t model_seed = rng.next_u64();
  // No dropout: a replayed graph reuses the captured mask (see step_graph.hpp).
  Model<float> eager = small_net(model_seed, 0.0), graphed = small_net(model_seed, 0.0);
  eager.to(Device::cuda);
  graphed.to(Device::cuda);
  Sgdm<float> eager_solver, graph_solver;

  const int n = 6;
  Tensor<float> images = Tensor<float>::empty({n, 3, 12, 12}, Device::cuda);
  Tensor<std::int32_t> labels = Tensor<std::int32_t>::empty({n, 1, 1, 1}, Device::cuda);
  cuda::StepGraph graph;
  std::uint64_t mallocs_after_capture = 0;
  for (int step = 0; step < 5; ++step) {
    INFO("step " << step);
    const Batch b = random_batch(rng, n);
    const std::vector<std::int32_t> l(b.labels.begin(), b.labels.end());
    images.copy_from(b.images);
    labels.copy_from(Tensor<std::int32_t>::from_vector({n, 1, 1, 1}, l));

    eager.forward(images, b.labels);
    eager.backward();
    eager_solver.step(eager, 0.05);

    graph.run([&] {
      graphed.forward(images, labels);
      graphed.backward();
      graph_solver.step(graphed, 0.05);
    });
    CHECK(graph.captured() == (step >= 1));
    if (step == 1) mallocs_after_capture = cuda::allocator_stats().device_mallocs;
    CHECK(std::fabs(graphed.loss() - eager.loss()) <= 1e-4f * std::max(1.0f, std::fabs(eager.loss())));
    compare_models(graphed, eager, 1e-4, false);
  }
  CHECK(graph.replays() == 4);
  CHECK(cuda::allocator_stats().device_mallocs == mallocs_after_capture);
}
