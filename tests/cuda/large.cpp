// CUDA tests at the sizes training uses, where the tiny shapes of ops.cpp hide things: cuDNN's
// heuristics choosing tensor-core, FFT or Winograd algorithms, grid-stride loops that wrap (more
// elements than the 65,536 x 256 threads launch.cuh's grid_for gives), reductions split across
// blocks. Also: TF32 really changes results and every plan records the math type it was ranked and
// runs in; deterministic mode chooses only algorithms cuDNN reports deterministic; bad labels on
// the device raise a clear error and leave that sample's gradient zero; and the runtime's guards
// around graph capture and stream switches.
//
// Tolerances (relative to the largest magnitude of the compared tensor, rel_diff): FP32 results
// against the CPU within 1e-4 for single layers, TF32 within 1e-2 (TF32 keeps 10 mantissa bits,
// a relative rounding of 2^-11 per product, over reductions of 576 terms).
#include <catch2/catch.hpp>

#include <cstring>

#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <ewnet/cuda/ops.hpp>
#include <ewnet/cuda/runtime.hpp>

#include "cuda/cudnn_adapter.hpp"
#include "cuda_test.hpp"

using namespace ewnet;
using namespace ewnet::cuda_test;

namespace {
/// Restores FP32 math and deterministic mode whatever a test does.
struct ModeGuard {
  ~ModeGuard() {
    cuda::set_tf32(false);
    cuda::set_deterministic(true);
  }
};
}  // namespace

TEST_CASE("batch norm with more values per channel than one block covers matches the CPU", "[batch_norm][large]") {
  Random rng = rng_for("batch_norm large");
  const BatchNormParams p{1e-5, 0.1};
  // 3 channels of 270,400 values (hundreds of blocks a channel), and 64 channels of 6,400.
  for (const Shape xs : {Shape{16, 3, 130, 130}, Shape{4, 64, 40, 40}}) {
    INFO("shape " << xs);
    const Shape cs{1, xs.c, 1, 1};
    // An offset mean (3) makes a one-pass variance lose digits; the two-pass one must not.
    Pair x = random_pair(xs, rng, false, 2, 4), gamma = random_pair(cs, rng, false, 0.5, 1.5),
         beta = random_pair(cs, rng);
    Pair rmean = random_pair(cs, rng), rvar = random_pair(cs, rng, false, 0.5, 2);
    Pair y = output_pair(xs), smean = output_pair(cs), sinv = output_pair(cs);
    batch_norm_forward_training(x.cpu, gamma.cpu, beta.cpu, y.cpu, smean.cpu, sinv.cpu, rmean.cpu, rvar.cpu, p);
    batch_norm_forward_training(x.gpu, gamma.gpu, beta.gpu, y.gpu, smean.gpu, sinv.gpu, rmean.gpu, rvar.gpu, p);
    require_close("batch_norm y", y, 1e-4, 1e-4);
    require_close("batch_norm saved mean", smean, 1e-6, 1e-6);
    require_close("batch_norm saved invstd", sinv, 1e-5, 1e-6);
    require_close("batch_norm running var", rvar, 1e-5, 1e-6);

    Pair dy = random_pair(xs, rng);
    Pair dx = output_pair(xs), dg = output_pair(cs), db = output_pair(cs);
    batch_norm_backward_training(x.cpu, dy.cpu, gamma.cpu, smean.cpu, sinv.cpu, &dx.cpu, GradWrite::overwrite,
                                 &dg.cpu, &db.cpu);
    batch_norm_backward_training(x.gpu, dy.gpu, gamma.gpu, smean.gpu, sinv.gpu, &dx.gpu, GradWrite::overwrite,
                                 &dg.gpu, &db.gpu);
    CHECK(rel_diff(dx.gpu, dx.cpu) <= 1e-4);
    CHECK(rel_diff(dg.gpu, dg.cpu) <= 1e-4);
    CHECK(rel_diff(db.gpu, db.cpu) <= 1e-4);

    // The same call twice gives the same bits (fixed split, no atomics).
    Pair dx2 = output_pair(xs), dg2 = output_pair(cs);
    batch_norm_backward_training(x.gpu, dy.gpu, gamma.gpu, smean.gpu, sinv.gpu, &dx2.gpu, GradWrite::overwrite,
                                 &dg2.gpu, static_cast<const Tensor<float>*>(nullptr));
    CHECK(dx2.gpu.to_vector() == dx.gpu.to_vector());
    CHECK(dg2.gpu.to_vector() == dg.gpu.to_vector());
  }
}

// 52,480,000 elements: each of grid_for's 16,777,216 threads (65,536 blocks of 256) loops over up
// to four elements, so an index that forgets the stride, or 32-bit arithmetic in it, shows as a
// NaN-poisoned element left unwritten or a wrong one; the channel slices add the batch stride.
TEST_CASE("element-wise kernels over more elements than one grid covers match the CPU", "[elementwise][large]") {
  Random rng = rng_for("grid stride");
  const Shape s{2, 25, 1024, 1025};
  REQUIRE(s.size() > 3 * (std::size_t(65536) * 256));
  Pair a = random_pair(s, rng), b = random_pair(s, rng), sum = output_pair(s);
  add_forward(a.cpu, b.cpu, sum.cpu);
  add_forward(a.gpu, b.gpu, sum.gpu);
  require_close("add_forward", sum, 0, 0);

  Pair x = random_pair(s, rng, true), y = output_pair(s, true);
  relu_forward(x.cpu, y.cpu);
  relu_forward(x.gpu, y.gpu);
  require_close("relu_forward on a channel slice", y, 0, 0);

  // Fused bias + ReLU in place on the slice; the reference is y = max(y + b[c], 0).
  Pair bias = random_pair({1, s.c, 1, 1}, rng);
  cuda::bias_relu_forward(x.gpu, bias.gpu);
  const std::size_t plane = s.plane();
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c) {
      float* v = x.cpu.sample(n) + std::size_t(c) * plane;
      for (std::size_t i = 0; i < plane; ++i) v[i] = std::max(v[i] + bias.cpu.data()[c], 0.0f);
    }
  require_close("bias_relu_forward on a channel slice", x, 0, 0);
}

TEST_CASE("the convolution's bias gradient over many pixels matches the CPU", "[conv][large]") {
  Random rng = rng_for("bias grad large");
  for (const Shape s : {Shape{8, 64, 56, 56}, Shape{32, 2, 112, 112}}) {
    INFO("shape " << s);
    Pair dy = random_pair(s, rng), db = output_pair({1, s.c, 1, 1});
    conv2d_backward_bias(dy.cpu, db.cpu);
    conv2d_backward_bias(dy.gpu, db.gpu);
    CHECK(rel_diff(db.gpu, db.cpu) <= 1e-4);
  }
}

namespace {
struct ConvResults {
  Tensor<float> y, dx, dw;
};
/// The three passes, backward first: a plan's first heuristic query then runs on the math type
/// the descriptor was created with, and each later one on whatever the previous choice left,
/// unless the adapter resets it (which stats().choices[].queried_in shows).
ConvResults conv_passes(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>& dy,
                        const Conv2dGeometry& g) {
  ConvResults r;
  r.y = Tensor<float>(dy.shape(), x.device());
  r.dx = Tensor<float>(x.shape(), x.device());
  r.dw = Tensor<float>(w.shape(), x.device());
  conv2d_backward_data(dy, w, r.dx, g, GradWrite::overwrite);
  conv2d_backward_filter(x, dy, r.dw, g);
  conv2d_forward(x, w, static_cast<const Tensor<float>*>(nullptr), r.y, g);
  return r;
}

/// "forward TF32 DEFAULT->TENSOR_OP algo 1 deterministic": one choice, for failure messages.
std::string describe(const cuda::cudnn::Choice& c) {
  return str(c.direction, c.tf32_plan ? " TF32" : " FP32", c.deterministic_plan ? " deterministic-mode" : "",
             " plan: algorithm ", c.algorithm, " ranked in ", c.queried_in, " math, runs in ", c.math,
             c.deterministic ? ", reported deterministic" : ", reported NON-deterministic");
}

/// The algorithms cuDNN documents as non-deterministic (they add partial results with atomics):
/// CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 and _ALGO_3.
bool documented_non_deterministic(const cuda::cudnn::Choice& c) {
  if (std::strcmp(c.direction, "backward-data") == 0) return c.algorithm == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
  if (std::strcmp(c.direction, "backward-filter") == 0)
    return c.algorithm == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || c.algorithm == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
  return false;
}
}  // namespace

TEST_CASE("TF32 convolutions differ from FP32 ones and stay close to the CPU", "[tf32]") {
  ModeGuard guard;
  Random rng = rng_for("tf32 conv");
  const Conv2dGeometry g{3, 3, 1, 1, 1, 1};
  const Shape xs{8, 64, 28, 28}, ws{64, 64, 3, 3}, ys{8, 64, 28, 28};
  Pair x = random_pair(xs, rng), w = random_pair(ws, rng), dy = random_pair(ys, rng);
  const ConvResults cpu = conv_passes(x.cpu, w.cpu, dy.cpu, g);
  cuda::set_tf32(false);
  const ConvResults fp32 = conv_passes(x.gpu, w.gpu, dy.gpu, g);
  cuda::set_tf32(true);
  const ConvResults tf32 = conv_passes(x.gpu, w.gpu, dy.gpu, g);
  cuda::set_tf32(false);
  const struct {
    const char* what;
    const Tensor<float>&c, &f, &t;
  } passes[] = {{"forward", cpu.y, fp32.y, tf32.y},
                {"backward data", cpu.dx, fp32.dx, tf32.dx},
                {"backward filter", cpu.dw, fp32.dw, tf32.dw}};
  for (const auto& pass : passes) {
    INFO(pass.what);
    const double fp32_err = rel_diff(pass.f, pass.c), tf32_err = rel_diff(pass.t, pass.c);
    const double tf32_vs_fp32 = rel_diff(pass.t, pass.f);
    INFO("FP32 vs CPU " << fp32_err << ", TF32 vs CPU " << tf32_err << ", TF32 vs FP32 " << tf32_vs_fp32);
    CHECK(fp32_err <= 1e-4);
    CHECK(tf32_err <= 1e-2);
    // TF32 rounds the inputs to 10 mantissa bits: were the results within FP32 rounding of each
    // other, the TF32 path did not run (for this direction the heuristic was limited to FMA math).
    CHECK(tf32_vs_fp32 > 1e-5);
  }
  // Every plan's math types, whatever the heuristics ranked: an FP32 plan is ranked and runs in
  // FMA math; a TF32 plan is ranked in DEFAULT math for every direction, although the backward
  // directions were queried first and the forward last, after the choices before it had set the
  // descriptor to their own math type.
  const cuda::cudnn::Stats stats = cuda::cudnn::stats();
  int fp32_choices = 0, tf32_choices = 0;
  for (const cuda::cudnn::Choice& c : stats.choices) {
    INFO(describe(c));
    if (c.tf32_plan) {
      ++tf32_choices;
      CHECK(std::string(c.queried_in) == "DEFAULT");
    } else {
      ++fp32_choices;
      CHECK(std::string(c.queried_in) == "FMA");
      CHECK(std::string(c.math) == "FMA");
    }
  }
  CHECK(fp32_choices >= 3);
  CHECK(tf32_choices >= 3);
}

TEST_CASE("TF32 matrix products differ from FP32 ones and stay close to the CPU", "[tf32]") {
  ModeGuard guard;
  Random rng = rng_for("tf32 gemm");
  const Shape xs{64, 1024, 1, 1};
  const int K = 256;
  Pair x = random_pair(xs, rng), w = random_pair({K, 1024, 1, 1}, rng);
  Tensor<float> cpu({xs.n, K, 1, 1}), fp32({xs.n, K, 1, 1}, Device::cuda), tf32({xs.n, K, 1, 1}, Device::cuda);
  const Tensor<float>* no_bias = nullptr;
  fully_connected_forward(x.cpu, w.cpu, no_bias, cpu);
  cuda::set_tf32(false);
  fully_connected_forward(x.gpu, w.gpu, no_bias, fp32);
  cuda::set_tf32(true);
  fully_connected_forward(x.gpu, w.gpu, no_bias, tf32);
  cuda::set_tf32(false);
  INFO("FP32 vs CPU " << rel_diff(fp32, cpu) << ", TF32 vs CPU " << rel_diff(tf32, cpu) << ", TF32 vs FP32 "
                      << rel_diff(tf32, fp32));
  CHECK(rel_diff(fp32, cpu) <= 1e-5);
  CHECK(rel_diff(tf32, cpu) <= 1e-2);
  CHECK(rel_diff(tf32, fp32) > 1e-5);
}

// Comparing two runs' bits proves determinism only when the heuristic ranks an atomics algorithm
// first and its additions happen to reorder; so the test asserts what was chosen: every plan made
// in deterministic mode uses algorithms cuDNN reports deterministic, and none of those cuDNN
// documents as adding with atomics. (The selection rule itself, with a non-deterministic first
// choice, is tested on the host: tests/cuda/algorithm_choice.cpp.)
TEST_CASE("deterministic mode chooses only deterministic cuDNN algorithms", "[determinism]") {
  ModeGuard guard;
  Random rng = rng_for("determinism");
  REQUIRE(cuda::deterministic());  // the default
  const Conv2dGeometry g{5, 5, 1, 1, 2, 2};
  const Shape xs{16, 32, 28, 28}, ws{64, 32, 5, 5}, ys{16, 64, 28, 28};
  Pair x = random_pair(xs, rng), w = random_pair(ws, rng), dy = random_pair(ys, rng);
  for (bool tf32 : {false, true}) {
    INFO("TF32: " << tf32);
    cuda::set_tf32(tf32);
    const ConvResults a = conv_passes(x.gpu, w.gpu, dy.gpu, g);
    const ConvResults b = conv_passes(x.gpu, w.gpu, dy.gpu, g);
    CHECK(a.y.to_vector() == b.y.to_vector());
    CHECK(a.dx.to_vector() == b.dx.to_vector());
    CHECK(a.dw.to_vector() == b.dw.to_vector());
  }
  int deterministic_choices = 0;
  for (const cuda::cudnn::Choice& c : cuda::cudnn::stats().choices) {
    if (!c.deterministic_plan) continue;
    INFO(describe(c));
    ++deterministic_choices;
    CHECK(c.deterministic);
    CHECK_FALSE(documented_non_deterministic(c));
  }
  CHECK(deterministic_choices >= 6);  // three directions, FP32 and TF32
  // Without it cuDNN may pick algorithms that add with atomics; they must still be right.
  cuda::set_deterministic(false);
  cuda::set_tf32(false);
  const ConvResults any = conv_passes(x.gpu, w.gpu, dy.gpu, g);
  const ConvResults cpu = conv_passes(x.cpu, w.cpu, dy.cpu, g);
  CHECK(rel_diff(any.dw, cpu.dw) <= 1e-4);
  CHECK(rel_diff(any.dx, cpu.dx) <= 1e-4);
}

TEST_CASE("a label outside [0, classes) on the device raises a clear error", "[softmax]") {
  const Shape ps{6, 7, 1, 1};
  Random rng = rng_for("bad label");
  Pair logits = random_pair(ps, rng), probs = output_pair(ps);
  softmax_forward(logits.gpu, probs.gpu);
  for (std::int32_t bad : {7, -1, 1000}) {
    INFO("label " << bad);
    std::vector<std::int32_t> t{0, 1, 2, bad, 4, 5};
    const Tensor<std::int32_t> labels = Tensor<std::int32_t>::from_vector({6, 1, 1, 1}, t, Device::cuda);
    Tensor<float> loss({6, 1, 1, 1}, Device::cuda), d(ps, Device::cuda);
    // An accumulated gradient already holding 0.5 everywhere.
    const Tensor<float> d_acc = Tensor<float>::from_vector(ps, std::vector<float>(ps.size(), 0.5f), Device::cuda);
    cross_entropy_forward(probs.gpu, labels, loss);
    softmax_cross_entropy_backward(probs.gpu, labels, d, 1.0f, GradWrite::overwrite);
    softmax_cross_entropy_backward(probs.gpu, labels, d_acc, 1.0f, GradWrite::accumulate);
    try {
      cuda::synchronize();
      FAIL("no error for label " << bad);
    } catch (const DeviceError& e) {
      const std::string m = e.what();
      INFO(m);
      CHECK(m.find("outside [0, 7)") != std::string::npos);
      CHECK(m.find("label " + std::to_string(bad) + " of sample 3") != std::string::npos);
    }
    // Reported once; the device keeps working.
    CHECK_NOTHROW(cuda::synchronize());
    CHECK(std::isnan(loss.to_vector()[3]));
    // The bad sample adds nothing to the gradient (the solver may apply this step before the
    // error surfaces); the others get theirs.
    const std::vector<float> got = d.to_vector(), acc = d_acc.to_vector(), p = probs.gpu.to_vector();
    for (int n = 0; n < ps.n; ++n)
      for (int c = 0; c < ps.c; ++c) {
        const std::size_t i = std::size_t(n) * ps.c + c;
        const float want = n == 3 ? 0.0f : p[i] - (c == t[std::size_t(n)] ? 1.0f : 0.0f);
        INFO("sample " << n << ", class " << c);
        CHECK(std::fabs(got[i] - want) <= 1e-6f);
        CHECK(std::fabs(acc[i] - (0.5f + want)) <= 1e-6f);
      }
  }
  const Tensor<std::int32_t> good = Tensor<std::int32_t>::from_vector({6, 1, 1, 1}, {0, 1, 2, 3, 4, 6}, Device::cuda);
  Pair loss = output_pair({6, 1, 1, 1});
  cross_entropy_forward(probs.cpu, good.to(Device::cpu), loss.cpu);
  cross_entropy_forward(probs.gpu, good, loss.gpu);
  require_close("cross_entropy_forward after the error", loss, 1e-5, 1e-6);
}

TEST_CASE("runtime: empty_cache and set_stream refuse a capture; set_stream orders the streams", "[runtime]") {
  // empty_cache's device synchronisation would break a capture: it must refuse, and the capture end normally.
  cudaStream_t s = cuda::stream();
  cudaStream_t other = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking) == cudaSuccess);
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) == cudaSuccess);
  CHECK_THROWS_AS(cuda::empty_cache(), DeviceError);
  CHECK_THROWS_AS(cuda::set_stream(other), DeviceError);
  cudaGraph_t g = nullptr;
  CHECK(cudaStreamEndCapture(s, &g) == cudaSuccess);
  if (g) cudaGraphDestroy(g);
  CHECK(cuda::stream() == s);

  // Work queued on the old stream, then read on the new one: the new stream waits for it.
  Random rng = rng_for("set_stream");
  const Shape big{64, 64, 64, 64};
  Pair a = random_pair(big, rng), b = random_pair(big, rng);
  Tensor<float> sum(big, Device::cuda);
  add_forward(a.gpu, b.gpu, sum);  // queued on the old stream
  cuda::set_stream(other);
  Tensor<float> twice(big, Device::cuda);
  add_forward(sum, sum, twice);  // on the new stream
  const std::vector<float> got = twice.to_vector();
  cuda::set_stream(nullptr);
  const std::vector<float> av = a.cpu.to_vector(), bv = b.cpu.to_vector();
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) bad += got[i] != (av[i] + bv[i]) + (av[i] + bv[i]);
  CHECK(bad == 0);
  cuda::synchronize();
  cudaStreamDestroy(other);
}
