// Whole training steps on the CUDA device against the CPU backend: a small network with a
// residual inception module (add_inception), batch and cross-channel normalization, dropout and a
// softmax classifier; the torchvision networks with their auxiliary classifiers; frozen layers;
// the caching allocator's steady state and the SGDM slot tables; CUDA graph replay, a graph whose
// memory changed hands before or during its capture, a learning rate changed outside it; the paper
// model's inception 3a at its real size.
#include <algorithm>

#include <ewnet/cuda/runtime.hpp>
#include <ewnet/cuda/step_graph.hpp>
#include <ewnet/models/build.hpp>

#include "cuda/cudnn_adapter.hpp"
#include "cuda/graph_support.hpp"
#include "cuda/sgdm_tables.hpp"
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

// The torchvision networks at small sizes: ceil-mode pooling, 1x7/7x1 convolutions, batch norm
// after every convolution, GoogLeNet's auxiliary classifiers (adaptive pooling, weighted losses).
TEST_CASE("training steps of GoogLeNet with its auxiliary classifiers, Inception-v3 and ResNet-18 match the CPU",
          "[model][torchvision]") {
  struct Case {
    const char* name;
    int size;
    bool aux;
  };
  for (const Case k : {Case{"googlenet", 64, true}, Case{"inception-v3", 75, false}, Case{"resnet18", 48, false}}) {
    INFO(k.name);
    Random rng = rng_for(k.name);
    ModelOptions o;
    o.auxiliary_classifiers = k.aux;
    Model<float> cpu = build_model<float>(k.name, kClasses, k.size, 3, o);
    Model<float> gpu = build_model<float>(k.name, kClasses, k.size, 3, o);
    // Dropout masks are drawn the same on both devices; probability 0 keeps the comparison to the
    // arithmetic (the masks have their own test).
    std::vector<std::string> dropouts;
    for (Layer<float>* l : cpu.layers())
      if (l->type() == "dropout") dropouts.push_back(l->name());
    for (const std::string& d : dropouts) {
      cpu.replace(d, std::make_unique<Dropout<float>>(d, 0.0));
      gpu.replace(d, std::make_unique<Dropout<float>>(d, 0.0));
    }
    gpu.to(Device::cuda);
    Sgdm<float> cpu_solver, gpu_solver;
    for (int step = 0; step < 2; ++step) {
      INFO("step " << step);
      std::vector<float> v(size_t(4) * 3 * k.size * k.size);
      for (float& e : v) e = float(rng.uniform(-1, 1));
      const Tensor<float> images = Tensor<float>::from_vector({4, 3, k.size, k.size}, v);
      const std::vector<int> labels{0, 1, 2, 3};
      const Tensor<float>& pc = cpu.forward(images, labels);
      const Tensor<float>& pg = gpu.forward(images.to(Device::cuda), labels);
      CHECK(rel_diff(pg, pc) <= 1e-3);
      const float lc = cpu.loss(), lg = gpu.loss();
      CHECK(std::fabs(lc - lg) <= 1e-3f * std::max(1.0f, std::fabs(lc)));
      cpu.backward();
      gpu.backward();
      // Gradients within 3%: float32 sums in another order through 20 to 95 convolutions can flip
      // a max pooling's choice between near-equal values, which moves an early gradient by percents
      // (tests/models/torchvision_parity.py measured 2%); a wrong kernel differs by order 1.
      compare_models(gpu, cpu, 3e-2, true);
      cpu_solver.step(cpu, 0.01);
      gpu_solver.step(gpu, 0.01);
    }
    // Inference on the GPU skips the auxiliary classifiers as on the CPU.
    Random r2 = rng_for("inference");
    std::vector<float> v(size_t(2) * 3 * k.size * k.size);
    for (float& e : v) e = float(r2.uniform(-1, 1));
    const Tensor<float> x = Tensor<float>::from_vector({2, 3, k.size, k.size}, v);
    CHECK(rel_diff(gpu.forward(x.to(Device::cuda)), cpu.forward(x)) <= 1e-3);
  }
}

// The auxiliary classifiers at sizes where they do real work: Inception-v3's needs 299x299 (its
// 5x5 convolution reads Mixed_6e pooled to 5x5), and GoogLeNet's adaptive pooling is the identity
// at 64x64 (4x4 to 4x4) but pools 7x7 to 4x4 at 112x112. Batch 2, one training step and inference.
TEST_CASE("Inception-v3 at 299x299 and GoogLeNet at 112x112 with their auxiliary classifiers match the CPU",
          "[model][torchvision][large]") {
  struct Case {
    const char* name;
    int size;
  };
  for (const Case k : {Case{"inception-v3", 299}, Case{"googlenet", 112}}) {
    INFO(k.name << " at " << k.size << "x" << k.size);
    Random rng = rng_for(std::string(k.name) + " aux");
    ModelOptions o;
    o.auxiliary_classifiers = true;
    Model<float> cpu = build_model<float>(k.name, kClasses, k.size, 3, o);
    Model<float> gpu = build_model<float>(k.name, kClasses, k.size, 3, o);
    std::vector<std::string> dropouts;
    for (Layer<float>* l : cpu.layers())
      if (l->type() == "dropout") dropouts.push_back(l->name());
    for (const std::string& d : dropouts) {
      cpu.replace(d, std::make_unique<Dropout<float>>(d, 0.0));
      gpu.replace(d, std::make_unique<Dropout<float>>(d, 0.0));
    }
    gpu.to(Device::cuda);
    std::vector<float> v(size_t(2) * 3 * k.size * k.size);
    for (float& e : v) e = float(rng.uniform(-1, 1));
    const Tensor<float> images = Tensor<float>::from_vector({2, 3, k.size, k.size}, v);
    const std::vector<int> labels{1, 3};
    const Tensor<float>& pc = cpu.forward(images, labels);
    const Tensor<float>& pg = gpu.forward(images.to(Device::cuda), labels);
    CHECK(rel_diff(pg, pc) <= 1e-3);
    // The loss includes the auxiliary losses (weighted), so it shows whether they ran alike.
    const float lc = cpu.loss(), lg = gpu.loss();
    CHECK(std::fabs(lc - lg) <= 1e-3f * std::max(1.0f, std::fabs(lc)));
    cpu.backward();
    gpu.backward();
    int aux_layers = 0;
    for (Layer<float>* l : cpu.layers())
      if (cpu.is_auxiliary(l->name())) {
        ++aux_layers;
        INFO("auxiliary layer " << l->name());
        CHECK(rel_diff(gpu.activation(l->name()), cpu.activation(l->name())) <= 1e-3);
      }
    CHECK(aux_layers > 0);
    compare_models(gpu, cpu, 3e-2, true);  // tolerance as in the test above
    Sgdm<float> cpu_solver, gpu_solver;
    cpu_solver.step(cpu, 0.01);
    gpu_solver.step(gpu, 0.01);
    compare_models(gpu, cpu, 3e-2, false);
    CHECK(rel_diff(gpu.forward(images.to(Device::cuda)), cpu.forward(images)) <= 1e-3);
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

TEST_CASE("a graph whose memory changed hands is captured again, never replayed", "[graph]") {
  Random rng = rng_for("graph reallocation");
  const std::uint64_t model_seed = rng.next_u64();
  Model<float> eager = small_net(model_seed, 0.0), graphed = small_net(model_seed, 0.0);
  eager.to(Device::cuda);
  graphed.to(Device::cuda);
  Sgdm<float> eager_solver, graph_solver;

  const int n = 6;
  Tensor<float> images = Tensor<float>::empty({n, 3, 12, 12}, Device::cuda);
  Tensor<std::int32_t> labels = Tensor<std::int32_t>::empty({n, 1, 1, 1}, Device::cuda);
  cuda::StepGraph graph;
  for (int step = 0; step < 6; ++step) {
    INFO("step " << step);
    if (step == 3) {
      // An evaluation at another batch size: both models reallocate their activations, and
      // blocks the graph writes go back to the cache for other tensors.
      const Batch e = random_batch(rng, 3);
      const Tensor<float> small = e.images.to(Device::cuda);
      const Tensor<float>& pe = eager.forward(small);
      const Tensor<float>& pg = graphed.forward(small);
      CHECK(rel_diff(pg, pe) <= 1e-5);
      // Other tensors now take what the cache offers, and hold values the replay must not touch.
      std::vector<Tensor<float>> bystanders;
      for (int i = 0; i < 8; ++i) bystanders.push_back(Tensor<float>::from_vector(
                                      {n, 8, 12, 12}, std::vector<float>(size_t(n) * 8 * 144, float(i)), Device::cuda));
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
      CHECK_FALSE(graph.captured());  // dropped, and this step ran eagerly
      for (int i = 0; i < 8; ++i) {
        const std::vector<float> v = bystanders[size_t(i)].to_vector();
        CHECK(std::all_of(v.begin(), v.end(), [&](float x) { return x == float(i); }));
      }
    } else {
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
      CHECK(graph.captured() == (step != 0));
    }
    CHECK(std::fabs(graphed.loss() - eager.loss()) <= 1e-4f * std::max(1.0f, std::fabs(eager.loss())));
    compare_models(graphed, eager, 1e-4, false);
  }
  CHECK(graph.invalidations() == 1);
  CHECK(graph.captures() == 2);     // at steps 1 and 4
  CHECK(graph.replays() == 4);      // steps 1, 2, 4, 5
}

namespace {
/// Restores FP32 math whatever a test does.
struct Tf32Guard {
  ~Tf32Guard() { cuda::set_tf32(false); }
};
}  // namespace

// The second review's N1: a block allocated before a capture, used by nodes recorded early in it
// and released later in the same capture (a workspace or the reduction scratch growing during the
// first capture, after TF32 or deterministic mode was toggled or the batch grew) went back to the
// cache unmarked. A later tensor received it, and the next replay wrote into that tensor with no
// invalidation. Here TF32 is switched on between the warm-up and the capture (new plans during the
// capture), and the step grows the reduction scratch (which batch norm's forward has just used)
// and the cuDNN workspace after the forward pass, during the capture only. Bystander tensors of
// both old blocks' sizes are then filled and must keep their values through the later replays,
// and every step must equal an uncaptured one.
TEST_CASE("memory released during a capture is never replayed into", "[graph]") {
  Tf32Guard guard;
  Random rng = rng_for("graph release during capture");
  const std::uint64_t model_seed = rng.next_u64();
  Model<float> eager = small_net(model_seed, 0.0), graphed = small_net(model_seed, 0.0);
  eager.to(Device::cuda);
  graphed.to(Device::cuda);
  Sgdm<float> eager_solver, graph_solver;
  const int n = 6;
  Tensor<float> images = Tensor<float>::empty({n, 3, 12, 12}, Device::cuda);
  Tensor<std::int32_t> labels = Tensor<std::int32_t>::empty({n, 1, 1, 1}, Device::cuda);
  // A real workspace block before the warm-up, so that the nodes recorded early hold its pointer.
  cuda::cudnn::reserve_workspace(std::size_t(2) << 20);
  const std::size_t old_workspace = cuda::cudnn::stats().workspace_bytes;
  cuda::detail::scratch(1);
  const std::size_t old_scratch = cuda::detail::scratch_bytes();

  bool growing = false;
  std::vector<Tensor<float>> bystanders;
  cuda::StepGraph graph;
  for (int step = 0; step < 5; ++step) {
    INFO("step " << step);
    if (step == 1) cuda::set_tf32(true);  // between the warm-up and the capture
    const Batch b = random_batch(rng, n);
    const std::vector<std::int32_t> l(b.labels.begin(), b.labels.end());
    images.copy_from(b.images);
    labels.copy_from(Tensor<std::int32_t>::from_vector({n, 1, 1, 1}, l));
    // The graphed step first, so that the capture makes the TF32 plans.
    growing = step == 1;
    graph.run([&] {
      graphed.forward(images, labels);
      if (growing) {
        cuda::detail::scratch(old_scratch + (std::size_t(4) << 20));
        cuda::cudnn::reserve_workspace(old_workspace + (std::size_t(8) << 20));
      }
      graphed.backward();
      graph_solver.step(graphed, 0.05);
    });
    CHECK(graph.captured() == (step >= 1));
    eager.forward(images, b.labels);
    eager.backward();
    eager_solver.step(eager, 0.05);
    if (step == 1) {
      // Other tensors take what the cache offers now, and hold values the replays must not touch.
      for (int i = 0; i < 16; ++i)
        bystanders.push_back(Tensor<float>::from_vector({1, 1, 1, int(old_scratch / 4)},
                                                        std::vector<float>(old_scratch / 4, float(i)), Device::cuda));
      for (int i = 0; i < 4; ++i)
        bystanders.push_back(Tensor<float>::from_vector({1, 1, 1, int(old_workspace / 4)},
                                                        std::vector<float>(old_workspace / 4, float(100 + i)),
                                                        Device::cuda));
    }
    CHECK(std::fabs(graphed.loss() - eager.loss()) <= 1e-4f * std::max(1.0f, std::fabs(eager.loss())));
    compare_models(graphed, eager, 1e-4, false);
    for (size_t i = 0; i < bystanders.size(); ++i) {
      const float want = i < 16 ? float(i) : float(100 + i - 16);
      const std::vector<float> v = bystanders[i].to_vector();
      INFO("bystander " << i);
      CHECK(std::all_of(v.begin(), v.end(), [&](float x) { return x == want; }));
    }
  }
  // The old blocks were held back, not handed to the bystanders: nothing invalidated the graph.
  CHECK(graph.invalidations() == 0);
  CHECK(graph.replays() == 4);
}

TEST_CASE("a growing convolution workspace does not invalidate a live graph", "[graph]") {
  Random rng = rng_for("graph workspace");
  const std::uint64_t model_seed = rng.next_u64();
  Model<float> eager = small_net(model_seed, 0.0), graphed = small_net(model_seed, 0.0);
  eager.to(Device::cuda);
  graphed.to(Device::cuda);
  Sgdm<float> eager_solver, graph_solver;
  const int n = 6;
  Tensor<float> images = Tensor<float>::empty({n, 3, 12, 12}, Device::cuda);
  Tensor<std::int32_t> labels = Tensor<std::int32_t>::empty({n, 1, 1, 1}, Device::cuda);
  cuda::StepGraph graph;
  std::size_t workspace_before = 0, workspace_after = 0;
  for (int step = 0; step < 4; ++step) {
    INFO("step " << step);
    if (step == 2) {
      // A large convolution planned while the graph lives, and the workspace grown beyond what
      // any plan so far needs (the heuristics may choose algorithms needing none).
      workspace_before = cuda::cudnn::stats().workspace_bytes;
      Tensor<float> x({32, 128, 56, 56}, Device::cuda), w({128, 128, 5, 5}, Device::cuda),
          y({32, 128, 56, 56}, Device::cuda);
      conv2d_forward(x, w, static_cast<const Tensor<float>*>(nullptr), y, Conv2dGeometry{5, 5, 1, 1, 2, 2});
      conv2d_backward_filter(x, y, w, Conv2dGeometry{5, 5, 1, 1, 2, 2});
      cuda::cudnn::reserve_workspace(cuda::cudnn::stats().workspace_bytes + (std::size_t(16) << 20));
      workspace_after = cuda::cudnn::stats().workspace_bytes;
    }
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
    compare_models(graphed, eager, 1e-4, false);
  }
  INFO("workspace " << workspace_before << " -> " << workspace_after << " bytes");
  REQUIRE(workspace_after > workspace_before);
  CHECK(graph.invalidations() == 0);
  CHECK(graph.replays() == 3);
}

// An eager solver step at a new learning rate while a graph of the same model lives: the slot
// table goes to a new block (kernels/sgdm.cu), so the graph is captured again rather than replaying
// a table that changed under it; every step equals the same sequence run eagerly.
TEST_CASE("a learning rate changed outside a captured step invalidates the graph", "[graph][sgdm]") {
  Random rng = rng_for("graph learning rate");
  const std::uint64_t model_seed = rng.next_u64();
  Model<float> eager = small_net(model_seed, 0.0), graphed = small_net(model_seed, 0.0);
  eager.to(Device::cuda);
  graphed.to(Device::cuda);
  Sgdm<float> eager_solver, graph_solver;
  const int n = 6;
  Tensor<float> images = Tensor<float>::empty({n, 3, 12, 12}, Device::cuda);
  Tensor<std::int32_t> labels = Tensor<std::int32_t>::empty({n, 1, 1, 1}, Device::cuda);
  cuda::StepGraph graph;
  for (int step = 0; step < 6; ++step) {
    INFO("step " << step);
    const Batch b = random_batch(rng, n);
    const std::vector<std::int32_t> l(b.labels.begin(), b.labels.end());
    images.copy_from(b.images);
    labels.copy_from(Tensor<std::int32_t>::from_vector({n, 1, 1, 1}, l));
    if (step == 3) {
      // One eager step of the captured model at another rate (the captured step's own calls, so
      // that nothing but the slot table changes), then back to the graph.
      eager.forward(images, b.labels);
      eager.backward();
      eager_solver.step(eager, 0.01);
      graphed.forward(images, labels);
      graphed.backward();
      graph_solver.step(graphed, 0.01);
    }
    eager.forward(images, b.labels);
    eager.backward();
    eager_solver.step(eager, 0.05);
    graph.run([&] {
      graphed.forward(images, labels);
      graphed.backward();
      graph_solver.step(graphed, 0.05);
    });
    compare_models(graphed, eager, 1e-4, false);
  }
  CHECK(graph.invalidations() == 1);
}

// kernels/sgdm.cu keeps a device table per model it updates; at most kMaxSgdmTables of them, so a
// program that builds many models (a search over settings) does not accumulate them. A model
// whose table was dropped gets a new one at its next step.
TEST_CASE("the SGDM slot tables are bounded, and a model whose table was dropped still trains", "[sgdm]") {
  Random rng = rng_for("sgdm tables");
  const std::uint64_t model_seed = rng.next_u64();
  Model<float> cpu = small_net(model_seed, 0.0);
  std::vector<Model<float>> models;
  models.reserve(cuda::detail::kMaxSgdmTables + 8);
  for (std::size_t i = 0; i < cuda::detail::kMaxSgdmTables + 8; ++i) {
    models.push_back(small_net(model_seed, 0.0));
    models.back().to(Device::cuda);
  }
  Sgdm<float> cpu_solver;
  std::vector<Sgdm<float>> solvers(models.size());
  const Batch b = random_batch(rng, 4);
  const Tensor<float> images = b.images.to(Device::cuda);
  for (int step = 0; step < 2; ++step) {
    cpu.forward(b.images, b.labels);
    cpu.backward();
    cpu_solver.step(cpu, 0.05);
    for (std::size_t i = 0; i < models.size(); ++i) {
      models[i].forward(images, b.labels);
      models[i].backward();
      solvers[i].step(models[i], 0.05);
    }
    CHECK(cuda::detail::sgdm_table_count() <= cuda::detail::kMaxSgdmTables);
  }
  // Model 0's table was dropped before its second step (24 models in turn): both steps right.
  compare_models(models.front(), cpu, 1e-3, false);
  compare_models(models.back(), cpu, 1e-3, false);
}

namespace {
/// The paper model's inception 3a at its real size: input 192x28x28, GoogLeNet's filter counts,
/// the projection shortcut (192 -> 256 channels), then a small classifier head.
Model<float> inception_3a_net(std::uint64_t seed) {
  Model<float> m(seed);
  m.add(std::make_unique<ImageInput<float>>("input", 192, 28, 28));
  const std::string out = add_inception(m, "inception_3a", "input", InceptionFilters{64, 96, 128, 16, 32, 32},
                                        Residual::identity_or_projection);
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"), out);
  m.add(std::make_unique<FullyConnected<float>>("fc", kClasses));
  m.add(std::make_unique<Softmax<float>>("prob"));
  m.add(std::make_unique<Classification<float>>("loss"));
  m.build();
  return m;
}
}  // namespace

// Tolerance: FP32 throughout, but cuDNN's algorithms (implicit GEMM, Winograd, FFT) sum the up to
// 96*5*5 = 2400 products of a 5x5 output, and the gradients' batch sums of 8*28*28 = 6272 terms,
// in other orders than the CPU's im2col + BLAS. The errors observed for such sums stay near
// sqrt(n) * 2^-24 of the largest magnitude; 1e-4 (forward) and 1e-3 (gradients) of the largest
// magnitude of each tensor leave a wide margin while still catching a wrong index or a missing term.
TEST_CASE("inception 3a at its real size (batch 8, 192x28x28) matches the CPU forward and backward",
          "[model][large]") {
  Random rng = rng_for("inception 3a");
  const std::uint64_t model_seed = rng.next_u64();
  Model<float> cpu = inception_3a_net(model_seed), gpu = inception_3a_net(model_seed);
  gpu.to(Device::cuda);
  const int n = 8;
  std::vector<float> v(size_t(n) * 192 * 28 * 28);
  for (float& x : v) x = float(rng.uniform(-1, 1));
  const Tensor<float> images = Tensor<float>::from_vector({n, 192, 28, 28}, v);
  std::vector<int> labels;
  for (int i = 0; i < n; ++i) labels.push_back(int(rng.below(kClasses)));

  const Tensor<float>& pc = cpu.forward(images, labels);
  const Tensor<float>& pg = gpu.forward(images.to(Device::cuda), labels);
  CHECK(rel_diff(pg, pc) <= 1e-4);
  for (Layer<float>* l : cpu.layers()) {
    INFO("activation of layer " << l->name());
    CHECK(rel_diff(gpu.activation(l->name()), cpu.activation(l->name())) <= 1e-4);
  }
  CHECK(std::fabs(cpu.loss() - gpu.loss()) <= 1e-4f * std::max(1.0f, std::fabs(cpu.loss())));
  cpu.backward();
  gpu.backward();
  for (Layer<float>* l : cpu.layers()) {
    const Tensor<float>& gc = cpu.output_gradient(l->name());
    if (gc.empty()) continue;
    INFO("gradient of layer " << l->name());
    CHECK(rel_diff(gpu.output_gradient(l->name()), gc) <= 1e-3);
  }
  compare_models(gpu, cpu, 1e-3, true);

  // Deterministic mode (the default): a second GPU model computes the same bits.
  Model<float> again = inception_3a_net(model_seed);
  again.to(Device::cuda);
  again.forward(images.to(Device::cuda), labels);
  again.backward();
  auto a = again.parameters(), b = gpu.parameters();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("layer " << a[i].first << ", parameter " << a[i].second->name);
    CHECK(a[i].second->grad.to_vector() == b[i].second->grad.to_vector());
  }
}
