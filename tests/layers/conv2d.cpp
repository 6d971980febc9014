#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

namespace {
// Direct evaluation of the convolution sum, the definition in ops/conv2d.hpp.
std::vector<double> naive_conv(const Tensor<double>& x, const Tensor<double>& w, const Tensor<double>* b,
                               const Conv2dGeometry& g) {
  const int N = x.n(), C = x.c(), H = x.h(), W = x.w(), K = w.n();
  const int Ho = g.out_h(H), Wo = g.out_w(W);
  std::vector<double> y(size_t(N) * K * Ho * Wo);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k)
      for (int i = 0; i < Ho; ++i)
        for (int j = 0; j < Wo; ++j) {
          double s = b ? b->at(0, k, 0, 0) : 0;
          for (int c = 0; c < C; ++c)
            for (int p = 0; p < g.kernel_h; ++p)
              for (int q = 0; q < g.kernel_w; ++q) {
                const int yy = i * g.stride_h - g.pad_h + p, xx = j * g.stride_w - g.pad_w + q;
                if (yy >= 0 && yy < H && xx >= 0 && xx < W) s += w.at(k, c, p, q) * x.at(n, c, yy, xx);
              }
          y[((size_t(n) * K + k) * Ho + i) * Wo + j] = s;
        }
  return y;
}

struct Case {
  int n, c, h, w, k, kernel, stride, pad;
  bool bias;
};
}  // namespace

TEST_CASE("conv2d forward matches the direct sum over odd sizes, strides and paddings", "[conv2d]") {
  const Case cases[] = {{2, 3, 7, 5, 4, 3, 1, 1, true},  {1, 2, 9, 9, 3, 3, 2, 0, true}, {3, 4, 6, 7, 5, 1, 1, 0, false},
                        {2, 1, 11, 8, 2, 5, 2, 2, true}, {1, 3, 8, 8, 6, 7, 2, 3, true}, {2, 5, 5, 5, 3, 1, 2, 0, true},
                        {1, 2, 4, 6, 2, 3, 3, 1, false}};
  Random rng(11);
  for (const Case& t : cases) {
    Conv2dOptions o;
    o.filters = t.k;
    o.kernel_h = o.kernel_w = t.kernel;
    o.stride = t.stride;
    o.padding = t.pad;
    o.bias = t.bias;
    Conv2d<double> conv("conv", o);
    const Tensor<double> x = random_tensor<double>({t.n, t.c, t.h, t.w}, rng);
    conv.setup({x.shape()}, Device::cpu);
    conv.weight().value.copy_from(random_tensor<double>(conv.weight().value.shape(), rng));
    if (t.bias) conv.bias().value.copy_from(random_tensor<double>(conv.bias().value.shape(), rng));
    const Tensor<double> y = run_forward<double>(conv, {x});
    INFO("case n=" << t.n << " c=" << t.c << " " << t.h << "x" << t.w << " k=" << t.kernel << " s=" << t.stride
                   << " p=" << t.pad);
    REQUIRE(max_rel_diff(y.to_vector(), naive_conv(x, conv.weight().value, t.bias ? &conv.bias().value : nullptr,
                                                   conv.geometry())) < 1e-12);
  }
}

TEST_CASE("conv2d backward matches finite differences", "[conv2d][gradient]") {
  Random rng(12);
  const Case cases[] = {{2, 2, 5, 4, 3, 3, 1, 1, true}, {1, 3, 7, 6, 2, 3, 2, 0, true}, {2, 2, 4, 4, 3, 1, 1, 0, false},
                        {1, 2, 6, 5, 2, 5, 2, 2, true}};
  for (const Case& t : cases) {
    Conv2dOptions o;
    o.filters = t.k;
    o.kernel_h = o.kernel_w = t.kernel;
    o.stride = t.stride;
    o.padding = t.pad;
    o.bias = t.bias;
    Conv2d<double> conv("conv", o);
    check_gradients(conv, {random_tensor<double>({t.n, t.c, t.h, t.w}, rng)});
  }
}

TEST_CASE("conv2d accumulates into an input gradient when asked to", "[conv2d]") {
  Random rng(13);
  Conv2dOptions o;
  o.filters = 3;
  o.padding = 1;
  Conv2d<double> conv("conv", o);
  const Tensor<double> x = random_tensor<double>({2, 2, 5, 5}, rng);
  conv.setup({x.shape()}, Device::cpu);
  conv.initialize(rng);
  const Tensor<double> dy = random_tensor<double>({2, 3, 5, 5}, rng);
  Tensor<double> once(x.shape()), twice(x.shape());
  conv2d_backward_data(dy, conv.weight().value, once, conv.geometry());
  conv2d_backward_data(dy, conv.weight().value, twice, conv.geometry());
  conv2d_backward_data(dy, conv.weight().value, twice, conv.geometry(), GradWrite::accumulate);
  auto a = once.to_vector(), b = twice.to_vector();
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(b[i] == Approx(2 * a[i]));
}

TEST_CASE("conv2d writes into a channel slice of a larger tensor", "[conv2d][view]") {
  Random rng(14);
  Conv2dOptions o;
  o.filters = 2;
  o.padding = 1;
  Conv2d<float> conv("conv", o);
  const Tensor<float> x = random_tensor<float>({3, 2, 4, 4}, rng);
  const Tensor<float> alone = run_forward<float>(conv, {x});
  Tensor<float> big({3, 7, 4, 4});
  fill(big, 42.0f);
  std::vector<const Tensor<float>*> in{&x};
  conv.forward(in, big.channels(3, 2), {});
  REQUIRE(bitwise_equal(big.channels(3, 2), alone));
  for (int n = 0; n < 3; ++n)
    for (int c : {0, 1, 2, 5, 6}) REQUIRE(big.at(n, c, 1, 2) == 42.0f);
}

TEST_CASE("conv2d rejects mismatched shapes with both shapes in the message", "[conv2d][errors]") {
  Conv2dOptions o;
  o.filters = 2;
  o.kernel_h = o.kernel_w = 5;
  Conv2d<float> conv("conv", o);
  REQUIRE_THROWS_WITH(conv.setup({Shape{1, 3, 3, 3}}, Device::cpu), Catch::Contains("3x3x3") && Catch::Contains("5x5"));
  Tensor<float> x({1, 3, 8, 8}), w({2, 4, 3, 3}), y({1, 2, 6, 6});
  REQUIRE_THROWS_AS(conv2d_forward(x, w, static_cast<const Tensor<float>*>(nullptr), y, Conv2dGeometry{3, 3, 1, 1, 0, 0}), ShapeError);
}

TEST_CASE("conv2d with asymmetric kernels and paddings (Inception-v3's 1x7 and 7x1)", "[conv2d]") {
  Random rng(14);
  struct Asym {
    int kh, kw, stride, pad_h, pad_w;
  };
  for (const Asym a : {Asym{1, 7, 1, 0, 3}, Asym{7, 1, 1, 3, 0}, Asym{3, 1, 2, 1, 0}, Asym{1, 3, 1, 0, 1}}) {
    Conv2dOptions o;
    o.filters = 3;
    o.kernel_h = a.kh;
    o.kernel_w = a.kw;
    o.stride = a.stride;
    o.padding = a.pad_h;
    o.padding_w = a.pad_w;
    INFO(a.kh << "x" << a.kw << " stride " << a.stride << " padding " << a.pad_h << "," << a.pad_w);
    Conv2d<double> conv("conv", o);
    const Tensor<double> x = random_tensor<double>({2, 2, 9, 8}, rng);
    conv.setup({x.shape()}, Device::cpu);
    REQUIRE(conv.geometry().pad_h == a.pad_h);
    REQUIRE(conv.geometry().pad_w == a.pad_w);
    conv.weight().value.copy_from(random_tensor<double>(conv.weight().value.shape(), rng));
    conv.bias().value.copy_from(random_tensor<double>(conv.bias().value.shape(), rng));
    const Tensor<double> y = run_forward<double>(conv, {x});
    REQUIRE(max_rel_diff(y.to_vector(), naive_conv(x, conv.weight().value, &conv.bias().value, conv.geometry())) <
            1e-12);
    Conv2d<double> fresh("conv", o);
    check_gradients(fresh, {random_tensor<double>({1, 2, 6, 5}, rng)});
    // "same" gives a 1x7 kernel (0, 3) too, and both survive a save/load of the configuration.
    REQUIRE(make_layer<double>("conv2d", "c", conv.config())->describe() == conv.describe());
  }
}

TEST_CASE("conv2d on the CPU engine matches the reference loops, forward and backward", "[conv2d][engine]") {
  Random rng(15);
  // Channel counts off the engine's blocks of 8 and 16, strides, paddings, asymmetric kernels.
  struct Engine {
    int n, c, h, w, k, kh, kw, stride, pad_h, pad_w;
    bool bias;
  };
  for (const Engine t : {Engine{3, 3, 13, 11, 20, 7, 7, 2, 3, 3, true}, Engine{2, 20, 9, 9, 33, 3, 3, 1, 1, 1, true},
                         Engine{2, 17, 8, 8, 16, 1, 1, 1, 0, 0, false}, Engine{2, 16, 8, 7, 5, 5, 5, 2, 2, 2, true},
                         Engine{1, 8, 9, 8, 12, 1, 7, 1, 0, 3, true}, Engine{2, 6, 6, 6, 4, 3, 3, 3, 0, 0, true}}) {
    Conv2dOptions o;
    o.filters = t.k;
    o.kernel_h = t.kh;
    o.kernel_w = t.kw;
    o.stride = t.stride;
    o.padding = t.pad_h;
    o.padding_w = t.pad_w;
    o.bias = t.bias;
    INFO(t.c << "x" << t.h << "x" << t.w << " -> " << t.k << ", " << t.kh << "x" << t.kw << " stride " << t.stride);
    Conv2d<float> conv("conv", o);
    check_engine_against_reference(conv, {random_tensor<float>({t.n, t.c, t.h, t.w}, rng)});
  }
}

TEST_CASE("a 3x3 conv2d with enough tiles runs Winograd's algorithm, within rounding of the reference",
          "[conv2d][engine][winograd]") {
  Random rng(18);
  Conv2dOptions o;
  o.filters = 40;
  o.padding = 1;
  Conv2d<float> conv("conv", o);
  // 32 channels of 16x16: 16 tiles of 4x4 outputs a sample, so a batch of 2 reaches the rule's 32.
  const Tensor<float> x = random_tensor<float>({2, 32, 16, 16}, rng);
  const onednn::Window win{{3, 3}, {1, 1}, {1, 1}, {1, 1}};
  const auto desc = [](int n, int c) {
    return onednn::memory::desc({n, c, 16, 16}, onednn::memory::data_type::f32, onednn::memory::format_tag::nchw);
  };
  const auto algorithm = [&](int n, int c, onednn::memory::data_type type, onednn::Pass pass) {
    return onednn::algorithm_for(desc(n, c), desc(n, 40), win, type, pass);
  };
  const auto f32 = onednn::memory::data_type::f32, bf16 = onednn::memory::data_type::bf16;
  const auto winograd = dnnl::algorithm::convolution_winograd, direct = dnnl::algorithm::convolution_direct;
  REQUIRE(algorithm(2, 32, f32, onednn::Pass::training) == winograd);
  REQUIRE(algorithm(1, 32, f32, onednn::Pass::training) == direct);  // 16 tiles
  REQUIRE(algorithm(1, 32, f32, onednn::Pass::inference) == winograd);  // weights transformed once
  REQUIRE(algorithm(2, 16, f32, onednn::Pass::inference) == direct);  // too few channels
  REQUIRE(algorithm(2, 32, bf16, onednn::Pass::inference) == direct);
  // Forward, backward data (overwritten and accumulated) and backward weights, against the loops:
  // Winograd's transforms round more than the direct sum (about 4e-5 here against 2e-6).
  check_engine_against_reference(conv, {x}, {Mode::training}, 1e-4);
  std::vector<float> direct_out;
  {
    onednn::DirectConvolutionScope scope;
    REQUIRE(algorithm(2, 32, f32, onednn::Pass::inference) == direct);
    direct_out = run_forward<float>(conv, {x}).to_vector();
  }
  const std::vector<float> rule = run_forward<float>(conv, {x}).to_vector();
  if (!onednn::winograd_supported()) {
    WARN("no Winograd kernels on this engine: every convolution runs directly");
    REQUIRE(rule == direct_out);
    return;
  }
  REQUIRE(rule != direct_out);  // another algorithm ran: its rounding differs
  REQUIRE(max_rel_diff(rule, direct_out) <= 1e-4);
  // In a batch of 5, also Winograd: the same bits for these two samples.
  Tensor<float> five({5, 32, 16, 16});
  five.batch(0, 2).copy_from(x);
  five.batch(2, 3).copy_from(random_tensor<float>({3, 32, 16, 16}, rng));
  const std::vector<float> in_five = run_forward<float>(conv, {five}).to_vector();
  REQUIRE(std::vector<float>(in_five.begin(), in_five.begin() + std::ptrdiff_t(rule.size())) == rule);
  // One sample alone has 16 tiles: direct, so equal to the direct batch's first sample, bitwise.
  const std::vector<float> alone = run_forward<float>(conv, {x.batch(0, 1)}).to_vector();
  REQUIRE(alone == std::vector<float>(direct_out.begin(), direct_out.begin() + std::ptrdiff_t(alone.size())));
  // With no backward pass to follow, Winograd for one sample too (its inference kernels).
  ForwardContext inference;
  inference.backward_follows = false;
  const std::vector<float> alone_inference = run_forward<float>(conv, {x.batch(0, 1)}, inference).to_vector();
  REQUIRE(alone_inference != alone);
  REQUIRE(max_rel_diff(alone_inference, alone) <= 1e-4);
  // Its F(4x4, 3x3) kernels from 3 samples: the same bits for a sample in a batch of 3 or of 5.
  const std::vector<float> three = run_forward<float>(conv, {five.batch(0, 3)}, inference).to_vector();
  const std::vector<float> all_five = run_forward<float>(conv, {five}, inference).to_vector();
  REQUIRE(std::vector<float>(all_five.begin(), all_five.begin() + std::ptrdiff_t(three.size())) == three);
  // Each kernel with its own transformed weights (they differ for one layer): within rounding of
  // the direct sum.
  std::vector<float> five_direct;
  {
    onednn::DirectConvolutionScope scope;
    five_direct = run_forward<float>(conv, {five}).to_vector();
  }
  REQUIRE(max_rel_diff(all_five, five_direct) <= 1e-4);
  REQUIRE(max_rel_diff(run_forward<float>(conv, {five.batch(0, 1)}, inference).to_vector(),
                       std::vector<float>(five_direct.begin(), five_direct.begin() + std::ptrdiff_t(alone.size()))) <=
          1e-4);
}

TEST_CASE("conv2d with its ReLU on the CPU engine equals the convolution then the ReLU, bitwise", "[conv2d][engine]") {
  Random rng(16);
  Conv2dOptions o;
  o.filters = 19;
  o.padding = 1;
  Conv2d<float> conv("conv", o);
  const Tensor<float> x = random_tensor<float>({3, 10, 7, 7}, rng);
  run_forward<float>(conv, {x});  // the weights are reordered once, then kept
  std::uint64_t before = onednn::executed();
  const Tensor<float> plain = run_forward<float>(conv, {x});
  const std::uint64_t convolution = onednn::executed() - before;
  relu_forward(plain, plain);
  Tensor<float> fused({3, 19, 7, 7});
  std::vector<const Tensor<float>*> in{&x};
  before = onednn::executed();
  conv.forward_relu(in, fused);
  REQUIRE(onednn::executed() - before == convolution);  // the ReLU is a post-op, no primitive of its own
  REQUIRE(bitwise_equal(fused, plain));
}

TEST_CASE("conv2d in bfloat16 on the CPU engine stays within bfloat16's rounding of float32", "[conv2d][engine][bf16]") {
  if (!onednn::bf16_supported()) {
    WARN("no AVX512-BF16 or AMX here: bfloat16 is refused (tests/engine checks the message)");
    return;
  }
  Random rng(17);
  Conv2dOptions o;
  o.filters = 24;
  o.padding = 1;
  Conv2d<float> conv("conv", o);
  const Tensor<float> x = random_tensor<float>({3, 20, 9, 9}, rng);
  // Operands rounded to 8 bits of mantissa, sums in float32: a few tenths of a percent of the
  // largest value; a wrong layout or a lost conversion is off by the values themselves.
  check_engine_against_reference(conv, {x}, {Mode::training}, 1e-2, 3, Precision::bf16);
  // And it does run in bfloat16: not the float32 result.
  const std::vector<float> fp32 = run_forward<float>(conv, {x}).to_vector();
  conv.set_precision(Precision::bf16);
  REQUIRE(run_forward<float>(conv, {x}).to_vector() != fp32);
}
