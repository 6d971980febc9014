// Every operation of ewnet/ops/ on the CUDA device against the CPU backend, forward and backward,
// on fresh random inputs, with dense tensors and with channel-slice views, overwriting and
// accumulating gradients.
#include <cstring>
#include <functional>
#include <iterator>

#include <cuda_runtime_api.h>

#include <ewnet/cuda/ops.hpp>
#include <ewnet/cuda/runtime.hpp>

#include "cuda_test.hpp"

using namespace ewnet;
using namespace ewnet::cuda_test;

namespace {
const GradWrite kModes[] = {GradWrite::overwrite, GradWrite::accumulate};
const char* mode_name(GradWrite m) { return m == GradWrite::overwrite ? "overwrite" : "accumulate"; }
}  // namespace

TEST_CASE("add, copy_gradient, fill and normalize_channels match the CPU", "[elementwise][views]") {
  Random rng = rng_for("elementwise");
  const Shape s{3, 5, 4, 7};
  for (bool slice : {false, true}) {
    INFO("channel slice: " << slice);
    Pair a = random_pair(s, rng, slice), b = random_pair(s, rng, !slice), y = output_pair(s, slice);
    add_forward(a.cpu, b.cpu, y.cpu);
    add_forward(a.gpu, b.gpu, y.gpu);
    require_close("add", y, 0, 0);
    for (GradWrite m : kModes) {
      Pair d = grad_pair(s, rng, m, slice);
      copy_gradient(a.cpu, d.cpu, m);
      copy_gradient(a.gpu, d.gpu, m);
      require_close(str("copy_gradient ", mode_name(m)), d, 0, 0);
    }
    Pair f = output_pair(s, slice);
    fill(f.cpu, 0.25f);
    fill(f.gpu, 0.25f);
    require_close("fill", f, 0, 0);
    Pair mean = random_pair({1, s.c, 1, 1}, rng), inv = random_pair({1, s.c, 1, 1}, rng, false, 0.5, 2);
    Pair n = output_pair(s, slice);
    normalize_channels(a.cpu, mean.cpu, inv.cpu, n.cpu);
    normalize_channels(a.gpu, mean.gpu, inv.gpu, n.gpu);
    require_close("normalize_channels", n, 1e-6, 1e-6);
  }
}

TEST_CASE("relu forward and backward match the CPU", "[activation][views]") {
  Random rng = rng_for("relu");
  const Shape s{2, 6, 5, 9};
  for (bool slice : {false, true}) {
    INFO("channel slice: " << slice);
    Pair x = random_pair(s, rng, slice), y = output_pair(s, !slice);
    relu_forward(x.cpu, y.cpu);
    relu_forward(x.gpu, y.gpu);
    require_close("relu_forward", y, 0, 0);
    Pair dy = random_pair(s, rng, slice);
    for (GradWrite m : kModes) {
      Pair dx = grad_pair(s, rng, m, slice);
      relu_backward(y.cpu, dy.cpu, dx.cpu, m);
      relu_backward(y.gpu, dy.gpu, dx.gpu, m);
      require_close(str("relu_backward ", mode_name(m)), dx, 0, 0);
    }
  }
}

TEST_CASE("fused bias + relu equals bias then relu", "[bias_relu][views]") {
  Random rng = rng_for("bias_relu");
  const Shape s{3, 4, 6, 5};
  for (bool slice : {false, true}) {
    Pair y = random_pair(s, rng, slice), b = random_pair({1, s.c, 1, 1}, rng);
    // CPU reference: y = max(y + b[c], 0).
    for (int n = 0; n < s.n; ++n)
      for (int c = 0; c < s.c; ++c)
        for (int i = 0; i < s.h; ++i)
          for (int j = 0; j < s.w; ++j) {
            float& v = y.cpu.at(n, c, i, j);
            v = std::max(v + b.cpu.data()[c], 0.0f);
          }
    cuda::bias_relu_forward(y.gpu, b.gpu);
    require_close("bias_relu_forward", y, 0, 0);
  }
}

TEST_CASE("conv2d forward, backward data, filter and bias match the CPU", "[conv][views]") {
  Random rng = rng_for("conv");
  struct Case {
    Conv2dGeometry g;
    int filters;
  };
  const Case cases[] = {{{3, 3, 1, 1, 1, 1}, 7}, {{5, 5, 2, 2, 2, 2}, 4}, {{1, 1, 1, 1, 0, 0}, 6},
                        {{3, 3, 2, 2, 0, 0}, 5}, {{1, 7, 1, 1, 0, 3}, 3}};
  for (const Case& k : cases)
    for (bool slice : {false, true}) {
      const Conv2dGeometry& g = k.g;
      INFO("kernel " << g.kernel_h << "x" << g.kernel_w << " stride " << g.stride_h << " pad " << g.pad_h
                     << ", channel slice: " << slice);
      const Shape xs{3, 5, 11, 9};
      const Shape ys{xs.n, k.filters, g.out_h(xs.h), g.out_w(xs.w)};
      Pair x = random_pair(xs, rng, slice), w = random_pair({k.filters, xs.c, g.kernel_h, g.kernel_w}, rng);
      Pair b = random_pair({1, k.filters, 1, 1}, rng);
      Pair y = output_pair(ys, slice);
      conv2d_forward(x.cpu, w.cpu, &b.cpu, y.cpu, g);
      conv2d_forward(x.gpu, w.gpu, &b.gpu, y.gpu, g);
      require_close("conv2d_forward", y, 1e-4, 1e-4);

      Pair dy = random_pair(ys, rng, slice);
      for (GradWrite m : kModes) {
        Pair dx = grad_pair(xs, rng, m, slice);
        conv2d_backward_data(dy.cpu, w.cpu, dx.cpu, g, m);
        conv2d_backward_data(dy.gpu, w.gpu, dx.gpu, g, m);
        require_close(str("conv2d_backward_data ", mode_name(m)), dx, 1e-4, 1e-4);
      }
      Pair dw = output_pair(w.cpu.shape()), db = output_pair(b.cpu.shape());
      conv2d_backward_filter(x.cpu, dy.cpu, dw.cpu, g);
      conv2d_backward_filter(x.gpu, dy.gpu, dw.gpu, g);
      require_close("conv2d_backward_filter", dw, 1e-4, 2e-4);
      conv2d_backward_bias(dy.cpu, db.cpu);
      conv2d_backward_bias(dy.gpu, db.gpu);
      require_close("conv2d_backward_bias", db, 1e-4, 1e-4);
    }
}

namespace {
/// The kernel nodes `work` records when captured on ewnet's stream. It runs once eagerly first,
/// so that cuDNN's plans and the workspace exist before the capture.
std::size_t kernels_captured(const std::function<void()>& work) {
  work();
  cuda::synchronize();
  const cudaStream_t s = cuda::stream();
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) == cudaSuccess);
  work();
  cudaGraph_t graph = nullptr;
  REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
  std::size_t count = 0;
  REQUIRE(cudaGraphGetNodes(graph, nullptr, &count) == cudaSuccess);
  std::vector<cudaGraphNode_t> nodes(count);
  REQUIRE(cudaGraphGetNodes(graph, nodes.data(), &count) == cudaSuccess);
  std::size_t kernels = 0;
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type{};
    REQUIRE(cudaGraphNodeGetType(node, &type) == cudaSuccess);
    kernels += type == cudaGraphNodeTypeKernel;
  }
  cudaGraphDestroy(graph);
  return kernels;
}
}  // namespace

// The inference path's conv + ReLU: cuDNN's convolution, then one pass adding the bias and
// applying the ReLU (cuda::bias_relu_forward), not a bias pass and a ReLU pass. Counted as the
// kernels of a captured graph: the same plan launches the same cuDNN kernels either way.
TEST_CASE("conv + ReLU on the GPU is the convolution and one fused pass, equal to the CPU", "[conv][bias_relu]") {
  Random rng = rng_for("conv relu");
  const Conv2dGeometry g{3, 3, 1, 1, 1, 1};
  const Shape xs{4, 8, 12, 12}, ys{4, 16, 12, 12};
  Pair x = random_pair(xs, rng), w = random_pair({16, 8, 3, 3}, rng), b = random_pair({1, 16, 1, 1}, rng);
  Tensor<float> scratch_y(ys, Device::cuda);
  const Tensor<float>* no_bias = nullptr;
  const std::size_t conv = kernels_captured([&] { conv2d_forward(x.gpu, w.gpu, no_bias, scratch_y, g); });
  const std::size_t with_bias = kernels_captured([&] { conv2d_relu_forward(x.gpu, w.gpu, &b.gpu, scratch_y, g); });
  const std::size_t without_bias = kernels_captured([&] { conv2d_relu_forward(x.gpu, w.gpu, no_bias, scratch_y, g); });
  INFO("kernels: convolution " << conv << ", conv + bias + ReLU " << with_bias << ", conv + ReLU " << without_bias);
  CHECK(conv >= 1);
  CHECK(with_bias == conv + 1);
  CHECK(without_bias == conv + 1);

  for (bool slice : {false, true}) {
    INFO("channel slice: " << slice);
    Pair y = output_pair(ys, slice), yb = output_pair(ys, slice);
    conv2d_relu_forward(x.cpu, w.cpu, no_bias, y.cpu, g);
    conv2d_relu_forward(x.gpu, w.gpu, no_bias, y.gpu, g);
    require_close("conv2d_relu_forward", y, 1e-4, 1e-4);
    conv2d_relu_forward(x.cpu, w.cpu, &b.cpu, yb.cpu, g);
    conv2d_relu_forward(x.gpu, w.gpu, &b.gpu, yb.gpu, g);
    require_close("conv2d_relu_forward with bias", yb, 1e-4, 1e-4);
  }
}

TEST_CASE("fully connected forward and backward match the CPU", "[fully_connected][views]") {
  Random rng = rng_for("fc");
  for (bool slice : {false, true}) {
    INFO("channel slice: " << slice);
    const Shape xs{4, 3, 3, 2};
    const int K = 5, D = int(xs.sample_size());
    Pair x = random_pair(xs, rng, slice), w = random_pair({K, D, 1, 1}, rng), b = random_pair({1, K, 1, 1}, rng);
    Pair y = output_pair({xs.n, K, 1, 1}, slice);
    fully_connected_forward(x.cpu, w.cpu, &b.cpu, y.cpu);
    fully_connected_forward(x.gpu, w.gpu, &b.gpu, y.gpu);
    require_close("fully_connected_forward", y, 1e-5, 1e-5);
    Pair dy = random_pair({xs.n, K, 1, 1}, rng, slice);
    for (GradWrite m : kModes) {
      Pair dx = grad_pair(xs, rng, m, slice);
      fully_connected_backward_data(dy.cpu, w.cpu, dx.cpu, m);
      fully_connected_backward_data(dy.gpu, w.gpu, dx.gpu, m);
      require_close(str("fully_connected_backward_data ", mode_name(m)), dx, 1e-5, 1e-5);
    }
    Pair dw = output_pair(w.cpu.shape()), db = output_pair(b.cpu.shape());
    fully_connected_backward_weights(x.cpu, dy.cpu, &dw.cpu, &db.cpu);
    fully_connected_backward_weights(x.gpu, dy.gpu, &dw.gpu, &db.gpu);
    require_close("fully_connected dW", dw, 1e-5, 1e-5);
    require_close("fully_connected db", db, 1e-5, 1e-5);
  }
}

TEST_CASE("max, average and global average pooling match the CPU", "[pooling][views]") {
  Random rng = rng_for("pool");
  // The last two in ceil mode (max pooling only): 9x8 gives windows clipped at the bottom and right.
  const PoolGeometry geoms[] = {{3, 3, 1, 1, 1, 1},       {2, 2, 2, 2, 0, 0},       {3, 3, 2, 2, 1, 1},
                                {3, 2, 3, 1, 0, 1},       {3, 3, 2, 2, 0, 0, true}, {2, 2, 2, 2, 0, 0, true}};
  const Shape xs{2, 3, 9, 8};
  for (const PoolGeometry& g : geoms)
    for (bool slice : {false, true}) {
      INFO("window " << g.kernel_h << "x" << g.kernel_w << " stride " << g.stride_h << "," << g.stride_w << " pad "
                     << g.pad_h << ", channel slice: " << slice);
      const Shape ys{xs.n, xs.c, g.out_h(xs.h), g.out_w(xs.w)};
      // Values on a coarse grid, so that windows hold ties and the first-maximum rule is tested.
      Pair x = random_pair(xs, rng, slice);
      {
        std::vector<float> v = x.cpu.to_vector();
        for (float& e : v) e = std::round(e * 2.0f) / 2.0f;
        const Tensor<float> q = Tensor<float>::from_vector(xs, v);
        x.cpu.copy_from(q);
        x.gpu.copy_from(q);
      }
      Pair y = output_pair(ys, slice);
      max_pool_forward(x.cpu, y.cpu, g);
      max_pool_forward(x.gpu, y.gpu, g);
      require_close("max_pool_forward", y, 0, 0);
      Pair dy = random_pair(ys, rng, slice);
      for (GradWrite m : kModes) {
        Pair dx = grad_pair(xs, rng, m, slice);
        max_pool_backward(x.cpu, y.cpu, dy.cpu, dx.cpu, g, m);
        max_pool_backward(x.gpu, y.gpu, dy.gpu, dx.gpu, g, m);
        require_close(str("max_pool_backward ", mode_name(m)), dx, 1e-6, 1e-6);
      }
      if (g.ceil_mode) continue;
      Pair a = output_pair(ys, slice);
      avg_pool_forward(x.cpu, a.cpu, g);
      avg_pool_forward(x.gpu, a.gpu, g);
      require_close("avg_pool_forward", a, 1e-6, 1e-6);
      for (GradWrite m : kModes) {
        Pair dx = grad_pair(xs, rng, m, slice);
        avg_pool_backward(dy.cpu, dx.cpu, g, m);
        avg_pool_backward(dy.gpu, dx.gpu, g, m);
        require_close(str("avg_pool_backward ", mode_name(m)), dx, 1e-5, 1e-6);
      }
    }
  for (bool slice : {false, true}) {
    Pair x = random_pair(xs, rng, slice), y = output_pair({xs.n, xs.c, 1, 1}, slice);
    global_avg_pool_forward(x.cpu, y.cpu);
    global_avg_pool_forward(x.gpu, y.gpu);
    require_close("global_avg_pool_forward", y, 1e-5, 1e-6);
    Pair dy = random_pair({xs.n, xs.c, 1, 1}, rng, slice);
    for (GradWrite m : kModes) {
      Pair dx = grad_pair(xs, rng, m, slice);
      global_avg_pool_backward(dy.cpu, dx.cpu, m);
      global_avg_pool_backward(dy.gpu, dx.gpu, m);
      require_close(str("global_avg_pool_backward ", mode_name(m)), dx, 1e-6, 1e-6);
    }
  }
}

TEST_CASE("adaptive average pooling matches the CPU", "[pooling][views]") {
  Random rng = rng_for("adaptive pool");
  // GoogLeNet's auxiliary pooling (14x14 and, at small images, 2x2 to 4x4), unequal windows, 1x1.
  struct Case {
    Shape x;
    int oh, ow;
  };
  for (const Case& k : {Case{{3, 5, 14, 14}, 4, 4}, Case{{2, 4, 2, 2}, 4, 4}, Case{{2, 3, 5, 7}, 3, 2},
                        Case{{2, 3, 6, 6}, 1, 1}})
    for (bool slice : {false, true}) {
      INFO(k.x << " to " << k.oh << "x" << k.ow << ", channel slice: " << slice);
      const Shape ys{k.x.n, k.x.c, k.oh, k.ow};
      Pair x = random_pair(k.x, rng, slice), y = output_pair(ys, slice);
      adaptive_avg_pool_forward(x.cpu, y.cpu);
      adaptive_avg_pool_forward(x.gpu, y.gpu);
      require_close("adaptive_avg_pool_forward", y, 1e-5, 1e-6);
      Pair dy = random_pair(ys, rng, slice);
      for (GradWrite m : kModes) {
        Pair dx = grad_pair(k.x, rng, m, slice);
        adaptive_avg_pool_backward(dy.cpu, dx.cpu, m);
        adaptive_avg_pool_backward(dy.gpu, dx.gpu, m);
        require_close(str("adaptive_avg_pool_backward ", mode_name(m)), dx, 1e-5, 1e-6);
      }
    }
}

TEST_CASE("batch normalization matches the CPU", "[batch_norm][views]") {
  Random rng = rng_for("batch_norm");
  const Shape xs{4, 5, 6, 7};
  const Shape cs{1, xs.c, 1, 1};
  const BatchNormParams p{1e-5, 0.1};
  for (bool slice : {false, true}) {
    INFO("channel slice: " << slice);
    Pair x = random_pair(xs, rng, slice, -2, 3), gamma = random_pair(cs, rng, false, 0.5, 1.5),
         beta = random_pair(cs, rng);
    Pair rmean = random_pair(cs, rng), rvar = random_pair(cs, rng, false, 0.5, 2);
    Pair y = output_pair(xs, slice), smean = output_pair(cs), sinv = output_pair(cs);
    batch_norm_forward_training(x.cpu, gamma.cpu, beta.cpu, y.cpu, smean.cpu, sinv.cpu, rmean.cpu, rvar.cpu, p);
    batch_norm_forward_training(x.gpu, gamma.gpu, beta.gpu, y.gpu, smean.gpu, sinv.gpu, rmean.gpu, rvar.gpu, p);
    require_close("batch_norm y", y, 1e-4, 1e-5);
    require_close("batch_norm saved mean", smean, 1e-5, 1e-6);
    require_close("batch_norm saved invstd", sinv, 1e-5, 1e-6);
    require_close("batch_norm running mean", rmean, 1e-5, 1e-6);
    require_close("batch_norm running var", rvar, 1e-5, 1e-6);

    Pair yi = output_pair(xs, slice);
    batch_norm_forward_inference(x.cpu, gamma.cpu, beta.cpu, rmean.cpu, rvar.cpu, yi.cpu, p);
    batch_norm_forward_inference(x.gpu, gamma.gpu, beta.gpu, rmean.gpu, rvar.gpu, yi.gpu, p);
    require_close("batch_norm inference y", yi, 1e-5, 1e-5);

    Pair dy = random_pair(xs, rng, slice);
    for (GradWrite m : kModes) {
      Pair dx = grad_pair(xs, rng, m, slice), dg = output_pair(cs), db = output_pair(cs);
      batch_norm_backward_training(x.cpu, dy.cpu, gamma.cpu, smean.cpu, sinv.cpu, &dx.cpu, m, &dg.cpu, &db.cpu);
      batch_norm_backward_training(x.gpu, dy.gpu, gamma.gpu, smean.gpu, sinv.gpu, &dx.gpu, m, &dg.gpu, &db.gpu);
      require_close(str("batch_norm_backward_training dx ", mode_name(m)), dx, 1e-3, 1e-4);
      require_close("batch_norm dgamma", dg, 1e-4, 1e-4);
      require_close("batch_norm dbeta", db, 1e-4, 1e-4);

      Pair dxi = grad_pair(xs, rng, m, slice), dgi = output_pair(cs), dbi = output_pair(cs);
      batch_norm_backward_inference(x.cpu, dy.cpu, gamma.cpu, rmean.cpu, rvar.cpu, &dxi.cpu, m, &dgi.cpu, &dbi.cpu, p);
      batch_norm_backward_inference(x.gpu, dy.gpu, gamma.gpu, rmean.gpu, rvar.gpu, &dxi.gpu, m, &dgi.gpu, &dbi.gpu, p);
      require_close(str("batch_norm_backward_inference dx ", mode_name(m)), dxi, 1e-5, 1e-5);
      require_close("batch_norm inference dgamma", dgi, 1e-4, 1e-4);
      require_close("batch_norm inference dbeta", dbi, 1e-4, 1e-4);
    }
    // Only some gradients wanted: the others must not be written.
    Pair dg = output_pair(cs);
    const Tensor<float>* none = nullptr;
    batch_norm_backward_training(x.cpu, dy.cpu, gamma.cpu, smean.cpu, sinv.cpu, none, GradWrite::overwrite,
                                 &dg.cpu, none);
    batch_norm_backward_training(x.gpu, dy.gpu, gamma.gpu, smean.gpu, sinv.gpu, none, GradWrite::overwrite,
                                 &dg.gpu, none);
    require_close("batch_norm dgamma alone", dg, 1e-4, 1e-4);
  }
}

TEST_CASE("cross-channel normalization matches the CPU", "[cross_channel_norm][views]") {
  Random rng = rng_for("ccn");
  const Shape xs{2, 7, 5, 6};
  for (int window : {5, 4, 1})
    for (bool slice : {false, true}) {
      INFO("window " << window << ", channel slice: " << slice);
      const CrossChannelNormParams p{window, 0.5, 0.75, 2.0};
      Pair x = random_pair(xs, rng, slice, -2, 2), y = output_pair(xs, slice), s = output_pair(xs, !slice);
      cross_channel_norm_forward(x.cpu, y.cpu, s.cpu, p);
      cross_channel_norm_forward(x.gpu, y.gpu, s.gpu, p);
      require_close("cross_channel_norm y", y, 1e-5, 1e-6);
      require_close("cross_channel_norm scale", s, 1e-6, 1e-6);
      Pair dy = random_pair(xs, rng, slice);
      for (GradWrite m : kModes) {
        Pair dx = grad_pair(xs, rng, m, slice);
        cross_channel_norm_backward(x.cpu, y.cpu, dy.cpu, s.cpu, dx.cpu, p, m);
        cross_channel_norm_backward(x.gpu, y.gpu, dy.gpu, s.gpu, dx.gpu, p, m);
        require_close(str("cross_channel_norm_backward ", mode_name(m)), dx, 1e-4, 1e-5);
      }
    }
}

TEST_CASE("softmax, cross-entropy and the fused gradient match the CPU", "[softmax][views]") {
  Random rng = rng_for("softmax");
  for (bool slice : {false, true}) {
    INFO("channel slice: " << slice);
    const Shape xs{3, 6, 2, 3};
    Pair x = random_pair(xs, rng, slice, -5, 5), y = output_pair(xs, slice);
    softmax_forward(x.cpu, y.cpu);
    softmax_forward(x.gpu, y.gpu);
    require_close("softmax_forward", y, 1e-5, 1e-7);
    Pair dy = random_pair(xs, rng, slice);
    for (GradWrite m : kModes) {
      Pair dx = grad_pair(xs, rng, m, slice);
      softmax_backward(y.cpu, dy.cpu, dx.cpu, m);
      softmax_backward(y.gpu, dy.gpu, dx.gpu, m);
      require_close(str("softmax_backward ", mode_name(m)), dx, 1e-5, 1e-6);
    }

    const Shape ps{5, 7, 1, 1};
    Pair logits = random_pair(ps, rng, slice, -4, 4), probs = output_pair(ps, slice);
    softmax_forward(logits.cpu, probs.cpu);
    softmax_forward(logits.gpu, probs.gpu);
    std::vector<std::int32_t> t(size_t(ps.n));
    for (auto& v : t) v = std::int32_t(rng.below(std::uint64_t(ps.c)));
    const Tensor<std::int32_t> labels_cpu = Tensor<std::int32_t>::from_vector({ps.n, 1, 1, 1}, t);
    const Tensor<std::int32_t> labels_gpu = labels_cpu.to(Device::cuda);
    Pair loss = output_pair({ps.n, 1, 1, 1});
    cross_entropy_forward(probs.cpu, labels_cpu, loss.cpu);
    cross_entropy_forward(probs.gpu, labels_gpu, loss.gpu);
    require_close("cross_entropy_forward", loss, 1e-5, 1e-6);
    for (GradWrite m : kModes) {
      Pair d = grad_pair(ps, rng, m, slice);
      softmax_cross_entropy_backward(probs.cpu, labels_cpu, d.cpu, 0.2f, m);
      softmax_cross_entropy_backward(probs.gpu, labels_gpu, d.gpu, 0.2f, m);
      require_close(str("softmax_cross_entropy_backward ", mode_name(m)), d, 1e-5, 1e-7);
    }
  }
}

TEST_CASE("dropout masks equal the CPU's bit for bit", "[dropout][views]") {
  Random rng = rng_for("dropout");
  const Shape s{3, 4, 5, 6};
  for (double prob : {0.5, 0.1, 0.9})
    for (bool slice : {false, true}) {
      INFO("probability " << prob << ", channel slice: " << slice);
      const DropoutParams p{prob, rng.next_u64(), rng.below(1000)};
      Pair x = random_pair(s, rng, slice), y = output_pair(s, slice);
      dropout_forward(x.cpu, y.cpu, p);
      dropout_forward(x.gpu, y.gpu, p);
      require_equal("dropout_forward", y);
      Pair dy = random_pair(s, rng, slice);
      for (GradWrite m : kModes) {
        Pair dx = grad_pair(s, rng, m, slice);
        dropout_backward(dy.cpu, dx.cpu, p, m);
        dropout_backward(dy.gpu, dx.gpu, p, m);
        require_equal(str("dropout_backward ", mode_name(m)), dx);
      }
    }
}

TEST_CASE("the SGDM update of many tensors in one launch matches the CPU", "[sgdm]") {
  Random rng = rng_for("sgdm");
  const size_t counts[] = {1, 7, 256, 1000, 70000, 3};
  std::vector<Pair> w, g, v;
  std::vector<SgdmSlot<float>> cpu_slots, gpu_slots;
  for (size_t i = 0; i < std::size(counts); ++i) {
    const Shape s{1, int(counts[i]), 1, 1};
    w.push_back(random_pair(s, rng));
    g.push_back(random_pair(s, rng));
    v.push_back(random_pair(s, rng, false, -0.1, 0.1));
  }
  for (size_t i = 0; i < w.size(); ++i) {
    const float lr = float(rng.uniform(1e-3, 1e-1)), l2 = i % 2 ? 0.0f : 1e-4f;
    cpu_slots.push_back({w[i].cpu.data(), g[i].cpu.data(), v[i].cpu.data(), counts[i], lr, l2});
    gpu_slots.push_back({w[i].gpu.data(), g[i].gpu.data(), v[i].gpu.data(), counts[i], lr, l2});
  }
  for (int step = 0; step < 3; ++step) {
    if (step == 2)
      for (size_t i = 0; i < cpu_slots.size(); ++i) cpu_slots[i].learn_rate = gpu_slots[i].learn_rate *= 0.5f;
    sgdm_update(Device::cpu, cpu_slots, 0.9f);
    sgdm_update(Device::cuda, gpu_slots, 0.9f);
  }
  for (size_t i = 0; i < w.size(); ++i) {
    require_close(str("weights ", i), w[i], 1e-5, 1e-6);
    require_close(str("velocity ", i), v[i], 1e-5, 1e-6);
  }
  // A tensor left out of the table (frozen) is not touched.
  std::vector<float> before = w[0].gpu.to_vector();
  sgdm_update(Device::cuda, std::vector<SgdmSlot<float>>(gpu_slots.begin() + 1, gpu_slots.end()), 0.9f);
  CHECK(w[0].gpu.to_vector() == before);
}

TEST_CASE("argmax and the correct count match ewnet::argmax", "[argmax]") {
  Random rng = rng_for("argmax");
  const Shape s{37, 9, 1, 1};
  Pair scores = random_pair(s, rng);
  {
    std::vector<float> v = scores.cpu.to_vector();
    for (float& e : v) e = std::round(e * 2.0f);  // ties: the first maximum must win
    const Tensor<float> q = Tensor<float>::from_vector(s, v);
    scores.cpu.copy_from(q);
    scores.gpu.copy_from(q);
  }
  const std::vector<int> want = ewnet::argmax(scores.cpu);
  Tensor<std::int32_t> idx = Tensor<std::int32_t>::empty({s.n, 1, 1, 1}, Device::cuda);
  cuda::argmax(scores.gpu, idx);
  const std::vector<std::int32_t> got = idx.to_vector();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == want[i]);

  std::vector<std::int32_t> labels(size_t(s.n));
  int expected = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    labels[i] = std::int32_t(rng.below(std::uint64_t(s.c)));
    expected += labels[i] == want[i];
  }
  const Tensor<std::int32_t> lab = Tensor<std::int32_t>::from_vector({s.n, 1, 1, 1}, labels, Device::cuda);
  Tensor<std::int32_t> correct({1, 1, 1, 1}, Device::cuda);
  cuda::count_correct(scores.gpu, lab, correct);
  cuda::count_correct(scores.gpu, lab, correct);
  CHECK(correct.to_vector()[0] == 2 * expected);
}

TEST_CASE("runtime: device errors, out of memory, TF32 switch", "[runtime]") {
  CHECK_FALSE(cuda::device_name().empty());
  try {
    cuda::allocate(std::size_t(1) << 52);
    FAIL("a 4 PiB allocation succeeded");
  } catch (const DeviceError& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.find("asked for") != std::string::npos);
    CHECK(m.find("free") != std::string::npos);
  }
  try {
    // A row longer than its pitch: the runtime rejects the call at once (not a sticky error).
    Tensor<float> t({1, 1, 4, 4}, Device::cuda);
    cuda::copy_2d(t.data(), 4, t.data() + 8, 4, 8, 2);
    FAIL("a 2-D copy with rows longer than the pitch succeeded");
  } catch (const DeviceError& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.find("CUDA call cudaMemcpy2DAsync") != std::string::npos);
    CHECK(m.find("runtime.cpp:") != std::string::npos);
  }

  Random rng = rng_for("tf32");
  const Conv2dGeometry g{3, 3, 1, 1, 1, 1};
  Pair x = random_pair({2, 16, 12, 12}, rng), w = random_pair({8, 16, 3, 3}, rng), y = output_pair({2, 8, 12, 12});
  conv2d_forward(x.cpu, w.cpu, static_cast<const Tensor<float>*>(nullptr), y.cpu, g);
  cuda::set_tf32(true);
  conv2d_forward(x.gpu, w.gpu, static_cast<const Tensor<float>*>(nullptr), y.gpu, g);
  cuda::set_tf32(false);
  require_close("conv2d_forward in TF32", y, 2e-2, 2e-2);
}
