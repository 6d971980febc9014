#include <array>

#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

namespace {
// Pools the window over in-image positions; average divides by the full window (padding counts).
std::vector<double> naive_pool(const Tensor<double>& x, const PoolGeometry& g, bool max) {
  const int Ho = g.out_h(x.h()), Wo = g.out_w(x.w());
  std::vector<double> y;
  for (int n = 0; n < x.n(); ++n)
    for (int c = 0; c < x.c(); ++c)
      for (int i = 0; i < Ho; ++i)
        for (int j = 0; j < Wo; ++j) {
          double m = -1e300, s = 0;
          for (int p = 0; p < g.kernel_h; ++p)
            for (int q = 0; q < g.kernel_w; ++q) {
              const int yy = i * g.stride_h - g.pad_h + p, xx = j * g.stride_w - g.pad_w + q;
              if (yy < 0 || yy >= x.h() || xx < 0 || xx >= x.w()) continue;
              m = std::max(m, x.at(n, c, yy, xx));
              s += x.at(n, c, yy, xx);
            }
          y.push_back(max ? m : s / (g.kernel_h * g.kernel_w));
        }
  return y;
}
}  // namespace

TEST_CASE("max and average pooling match the direct definition", "[pooling]") {
  Random rng(51);
  const PoolOptions options[] = {{2, 2, 0}, {3, 2, 1}, {3, 1, 1}, {3, 3, 0}, {5, 2, 2}};
  for (const PoolOptions& o : options) {
    const Tensor<double> x = random_tensor<double>({2, 3, 9, 7}, rng);
    MaxPool<double> maxp("max", o);
    AvgPool<double> avgp("avg", o);
    INFO("kernel " << o.kernel << " stride " << o.stride << " padding " << o.padding);
    REQUIRE(max_rel_diff(run_forward<double>(maxp, {x}).to_vector(), naive_pool(x, o.geometry(), true)) == 0);
    REQUIRE(max_rel_diff(run_forward<double>(avgp, {x}).to_vector(), naive_pool(x, o.geometry(), false)) < 1e-14);
  }
}

TEST_CASE("pooling backward matches finite differences", "[pooling][gradient]") {
  Random rng(52);
  for (const PoolOptions& o : {PoolOptions{2, 2, 0}, PoolOptions{3, 2, 1}, PoolOptions{3, 1, 1}}) {
    // distinct values so that the maximum of each window is unique
    std::vector<double> v(2 * 2 * 5 * 5);
    for (size_t i = 0; i < v.size(); ++i) v[i] = double((i * 37) % v.size()) / double(v.size()) + rng.uniform() * 1e-3;
    MaxPool<double> maxp("max", o);
    check_gradients(maxp, {Tensor<double>::from_vector({2, 2, 5, 5}, v)});
    AvgPool<double> avgp("avg", o);
    check_gradients(avgp, {random_tensor<double>({2, 2, 5, 5}, rng)});
  }
}

TEST_CASE("max pooling sends the gradient of a tie to the first maximum only", "[pooling]") {
  MaxPool<double> maxp("max", PoolOptions{2, 2, 0});
  const Tensor<double> x = Tensor<double>::from_vector({1, 1, 2, 2}, {5, 5, 5, 5});
  const Tensor<double> y = run_forward<double>(maxp, {x});
  const Tensor<double> dy = Tensor<double>::from_vector({1, 1, 1, 1}, {1});
  Tensor<double> dx({1, 1, 2, 2});
  max_pool_backward(x, y, dy, dx, PoolOptions{2, 2, 0}.geometry());
  REQUIRE(dx.to_vector() == std::vector<double>{1, 0, 0, 0});
}

TEST_CASE("global average pooling averages each plane", "[pooling]") {
  Random rng(53);
  GlobalAvgPool<double> gap("gap");
  const Tensor<double> x = random_tensor<double>({2, 3, 4, 5}, rng);
  const Tensor<double> y = run_forward<double>(gap, {x});
  REQUIRE(y.shape() == Shape(2, 3, 1, 1));
  double s = 0;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; ++j) s += x.at(1, 2, i, j);
  REQUIRE(y.at(1, 2, 0, 0) == Approx(s / 20));
  check_gradients(gap, {x});
}

TEST_CASE("max pooling in ceil mode keeps the partial windows at the bottom and right, as PyTorch", "[pooling]") {
  // PyTorch's rule: ceil((H + 2p - k) / s) + 1 windows, less one when the last would start in the padding.
  PoolGeometry g{3, 3, 2, 2, 0, 0, true};
  REQUIRE(g.out_h(8) == 4);    // floor mode: 3
  REQUIRE(g.out_h(9) == 4);    // exact either way
  REQUIRE(g.out_h(112) == 56);  // GoogLeNet's maxpool1 at 224: floor mode 55
  g = {2, 2, 2, 2, 0, 0, true};
  REQUIRE(g.out_h(7) == 4);    // GoogLeNet's maxpool4 at 224 (14x14 -> 7x7; 7 -> 4 at odd sizes)
  g = {3, 3, 2, 2, 1, 1, true};
  REQUIRE(g.out_h(5) == 3);    // ceil(4/2)+1 = 3; 4*... the 4th window would start in the padding
  g = {3, 3, 1, 1, 1, 1, true};
  REQUIRE(g.out_h(7) == 7);

  Random rng(54);
  for (const PoolOptions o : {PoolOptions{3, 2, 0, true}, PoolOptions{2, 2, 0, true}, PoolOptions{3, 2, 1, true}}) {
    const Tensor<double> x = random_tensor<double>({2, 3, 8, 7}, rng);
    MaxPool<double> maxp("max", o);
    INFO("kernel " << o.kernel << " stride " << o.stride << " padding " << o.padding);
    const Tensor<double> y = run_forward<double>(maxp, {x});
    REQUIRE(y.h() == o.geometry().out_h(8));
    REQUIRE(max_rel_diff(y.to_vector(), naive_pool(x, o.geometry(), true)) == 0);
    std::vector<double> v(2 * 2 * 7 * 6);
    for (size_t i = 0; i < v.size(); ++i) v[i] = double((i * 37) % v.size()) / double(v.size()) + rng.uniform() * 1e-3;
    check_gradients(maxp, {Tensor<double>::from_vector({2, 2, 7, 6}, v)});
  }
  REQUIRE_THROWS_AS(AvgPool<double>("avg", PoolOptions{3, 2, 0, true}), Error);
}

namespace {
/// The mean of x[n, c] over rows [r0, r1) and columns [c0, c1).
double window_mean(const Tensor<double>& x, int n, int c, int r0, int r1, int c0, int c1) {
  double s = 0;
  for (int r = r0; r < r1; ++r)
    for (int q = c0; q < c1; ++q) s += x.at(n, c, r, q);
  return s / ((r1 - r0) * (c1 - c0));
}
}  // namespace

TEST_CASE("adaptive average pooling averages PyTorch's windows of unequal size", "[pooling]") {
  // 5 rows to 3: rows [0, 2), [1, 4), [3, 5) (floor(i*5/3) to ceil((i+1)*5/3)); 4 columns to 2: [0, 2), [2, 4).
  AdaptiveAvgPool<double> pool("aap", 3, 2);
  std::vector<double> v(20);
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(i * i % 7) - 2.5;
  const Tensor<double> x = Tensor<double>::from_vector({1, 1, 5, 4}, v);
  const Tensor<double> y = run_forward<double>(pool, {x});
  REQUIRE(y.shape() == Shape(1, 1, 3, 2));
  const std::vector<double> want{window_mean(x, 0, 0, 0, 2, 0, 2), window_mean(x, 0, 0, 0, 2, 2, 4),
                                 window_mean(x, 0, 0, 1, 4, 0, 2), window_mean(x, 0, 0, 1, 4, 2, 4),
                                 window_mean(x, 0, 0, 3, 5, 0, 2), window_mean(x, 0, 0, 3, 5, 2, 4)};
  REQUIRE(max_rel_diff(y.to_vector(), want) < 1e-15);

  // GoogLeNet's auxiliary pooling at 14x14 -> 4x4 (output (1, 2): rows [3, 7), columns [7, 11)) and,
  // for small images, 2x2 -> 4x4, which repeats rows and columns; 7x7 -> 1x1 is the global average.
  Random rng(55);
  AdaptiveAvgPool<double> to4("aap4", 4, 4);
  const Tensor<double> x14 = random_tensor<double>({2, 3, 14, 14}, rng);
  REQUIRE(run_forward<double>(to4, {x14}).at(1, 2, 1, 2) == Approx(window_mean(x14, 1, 2, 3, 7, 7, 11)));
  const Tensor<double> x2 = random_tensor<double>({1, 2, 2, 2}, rng);
  const Tensor<double> y2 = run_forward<double>(to4, {x2});
  REQUIRE(y2.at(0, 1, 1, 2) == x2.at(0, 1, 0, 1));  // 2 -> 4: windows [0,1), [0,1), [1,2), [1,2)
  const Tensor<double> x3 = random_tensor<double>({1, 2, 3, 3}, rng);
  REQUIRE(run_forward<double>(to4, {x3}).at(0, 1, 1, 2) == Approx(window_mean(x3, 0, 1, 0, 2, 1, 3)));  // [0,2), [1,3)
  const Tensor<double> x7 = random_tensor<double>({2, 3, 7, 7}, rng);
  AdaptiveAvgPool<double> to1("aap1", 1, 1);
  GlobalAvgPool<double> gap("gap");
  REQUIRE(max_rel_diff(run_forward<double>(to1, {x7}).to_vector(), run_forward<double>(gap, {x7}).to_vector()) < 1e-15);
}

TEST_CASE("adaptive average pooling backward matches finite differences", "[pooling][gradient]") {
  Random rng(56);
  for (const auto& [h, w, oh, ow] : {std::array<int, 4>{5, 4, 3, 2}, std::array<int, 4>{6, 6, 4, 4},
                                     std::array<int, 4>{2, 3, 4, 4}}) {
    INFO(h << "x" << w << " to " << oh << "x" << ow);
    AdaptiveAvgPool<double> pool("aap", oh, ow);
    check_gradients(pool, {random_tensor<double>({2, 2, h, w}, rng)});
  }
  REQUIRE_THROWS_WITH(AdaptiveAvgPool<double>("bad", 0, 4), Catch::Contains("between 1x1 and 4096x4096"));
}

TEST_CASE("pooling on the CPU engine matches the reference loops, forward and backward", "[pooling][engine]") {
  Random rng(56);
  for (const PoolOptions& o : {PoolOptions{3, 2, 1}, PoolOptions{3, 1, 1}, PoolOptions{2, 2, 0}, PoolOptions{3, 2, 0, true},
                               PoolOptions{5, 3, 2}}) {
    INFO("kernel " << o.kernel << " stride " << o.stride << " padding " << o.padding << (o.ceil_mode ? " ceil" : ""));
    // ReLU'd inputs: many ties at zero, which both paths send to the first maximum of the window.
    Tensor<float> x = random_tensor<float>({3, 20, 11, 9}, rng);
    relu_forward(x, x);
    MaxPool<float> maxp("max", o);
    check_engine_against_reference(maxp, {x});
    if (!o.ceil_mode) {
      AvgPool<float> avgp("avg", o);
      check_engine_against_reference(avgp, {x});
    }
  }
  GlobalAvgPool<float> gap("gap");
  check_engine_against_reference(gap, {random_tensor<float>({3, 20, 7, 5}, rng)});
  AdaptiveAvgPool<float> uniform("adaptive", 3, 2);  // 9x8 -> 3x2: windows of 3x4, plain average pooling
  check_engine_against_reference(uniform, {random_tensor<float>({2, 5, 9, 8}, rng)});
  AdaptiveAvgPool<float> uneven("adaptive", 4, 4);  // 14x14 -> 4x4: windows of unequal size, the loops
  check_engine_against_reference(uneven, {random_tensor<float>({2, 5, 14, 14}, rng)}, {Mode::training}, 2e-5, 0);
}

TEST_CASE("max pooling on the CPU engine keeps its argmax only when a backward pass follows", "[pooling][engine]") {
  Random rng(57);
  MaxPool<float> maxp("max", PoolOptions{3, 2, 1});
  const Tensor<float> x = random_tensor<float>({2, 16, 8, 8}, rng);
  Tensor<float> y({2, 16, 4, 4}), dy = random_tensor<float>({2, 16, 4, 4}, rng), dx({2, 16, 8, 8});
  std::vector<const Tensor<float>*> in{&x};
  BackwardArgs<float> args;
  args.x = in;
  args.y = &y;
  args.dy = &dy;
  args.dx = {&dx};
  args.dx_mode = {GradWrite::overwrite};
  ForwardContext keep{Mode::training};
  maxp.forward(in, y, keep);
  std::uint64_t before = onednn::executed();
  maxp.backward(args);
  REQUIRE(onednn::executed() == before + 1);  // the kept argmax
  const std::vector<float> kept = dx.to_vector();
  ForwardContext none{Mode::inference};
  none.backward_follows = false;
  maxp.forward(in, y, none);
  before = onednn::executed();
  maxp.backward(args);
  REQUIRE(onednn::executed() == before + 2);  // the argmax found again, then the backward pass
  REQUIRE(dx.to_vector() == kept);
}
