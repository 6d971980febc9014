#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

namespace {
// y[c] = x[c] / (k + alpha/n * sum_{j=c-lo}^{c+hi} x[j]^2)^beta with lo = floor((n-1)/2).
std::vector<double> naive_lrn(const Tensor<double>& x, const CrossChannelNormParams& p) {
  std::vector<double> y(x.size());
  const int lo = (p.window - 1) / 2, hi = p.window - 1 - lo;
  for (int n = 0; n < x.n(); ++n)
    for (int c = 0; c < x.c(); ++c)
      for (int i = 0; i < x.h(); ++i)
        for (int j = 0; j < x.w(); ++j) {
          double s = 0;
          for (int d = c - lo; d <= c + hi; ++d)
            if (d >= 0 && d < x.c()) s += x.at(n, d, i, j) * x.at(n, d, i, j);
          y[((size_t(n) * x.c() + c) * x.h() + i) * x.w() + j] =
              x.at(n, c, i, j) / std::pow(p.k + p.alpha / p.window * s, p.beta);
        }
  return y;
}
}  // namespace

TEST_CASE("cross-channel normalization matches hand-computed values for n = 5", "[lrn]") {
  // One pixel, six channels x = 1..6, alpha = 1, beta = 0.5, k = 1, n = 5 (window c-2 .. c+2).
  // Channel 0: window {0,1,2} -> 1+4+9 = 14 -> y = 1 / sqrt(1 + 14/5) = 1/sqrt(3.8)
  // Channel 3: window {1..5}  -> 4+9+16+25+36 = 90 -> y = 4 / sqrt(1 + 18) = 4/sqrt(19)
  // Channel 5: window {3,4,5} -> 16+25+36 = 77 -> y = 6 / sqrt(1 + 15.4)
  CrossChannelNormParams p{5, 1.0, 0.5, 1.0};
  CrossChannelNorm<double> lrn("norm", p);
  const Tensor<double> x = Tensor<double>::from_vector({1, 6, 1, 1}, {1, 2, 3, 4, 5, 6});
  const auto y = run_forward<double>(lrn, {x}).to_vector();
  REQUIRE(y[0] == Approx(1 / std::sqrt(3.8)));
  REQUIRE(y[3] == Approx(4 / std::sqrt(19.0)));
  REQUIRE(y[5] == Approx(6 / std::sqrt(16.4)));
}

TEST_CASE("cross-channel normalization places an even window as MATLAB and cuDNN do (n = 4)", "[lrn]") {
  // n = 4: one channel before, two after (lo = floor(3/2) = 1, hi = 2).
  // Channel 0: window {0,1,2} -> 1+4+9 = 14   -> y = 1 / (1 + 14/4)^1 = 1/4.5
  // Channel 2: window {1,2,3,4} -> 4+9+16+25 = 54 -> y = 3 / (1 + 13.5) = 3/14.5
  // Channel 5: window {4,5} -> 25+36 = 61 -> y = 6 / (1 + 15.25)
  // A centred-high placement (two before, one after) would give channel 2: {0..3} -> 30 -> 3/8.5.
  CrossChannelNormParams p{4, 1.0, 1.0, 1.0};
  CrossChannelNorm<double> lrn("norm", p);
  const Tensor<double> x = Tensor<double>::from_vector({1, 6, 1, 1}, {1, 2, 3, 4, 5, 6});
  const auto y = run_forward<double>(lrn, {x}).to_vector();
  REQUIRE(y[0] == Approx(1 / 4.5));
  REQUIRE(y[2] == Approx(3 / 14.5));
  REQUIRE(y[5] == Approx(6 / 16.25));
}

TEST_CASE("cross-channel normalization forward matches the direct formula", "[lrn]") {
  Random rng(21);
  for (int window : {1, 2, 3, 4, 5, 6}) {
    CrossChannelNormParams p{window, 0.3, 0.75, 2.0};
    CrossChannelNorm<double> lrn("norm", p);
    const Tensor<double> x = random_tensor<double>({2, 7, 3, 5}, rng, -2, 2);
    INFO("window " << window);
    REQUIRE(max_rel_diff(run_forward<double>(lrn, {x}).to_vector(), naive_lrn(x, p)) < 1e-13);
  }
}

TEST_CASE("cross-channel normalization backward matches finite differences", "[lrn][gradient]") {
  Random rng(22);
  for (int window : {3, 4, 5}) {
    CrossChannelNorm<double> lrn("norm", CrossChannelNormParams{window, 0.5, 0.75, 1.5});
    check_gradients(lrn, {random_tensor<double>({2, 6, 3, 2}, rng, -2, 2)});
  }
}

TEST_CASE("cross-channel normalization on the CPU engine matches the reference loops", "[lrn][engine]") {
  Random rng(64);
  for (const CrossChannelNormParams p : {CrossChannelNormParams{5, 1e-4, 0.75, 1.0}, CrossChannelNormParams{3, 0.5, 0.6, 2.0},
                                         CrossChannelNormParams{5, 2.0, 0.75, 2.0}}) {
    INFO("window " << p.window << " alpha " << p.alpha << " beta " << p.beta << " k " << p.k);
    CrossChannelNorm<float> lrn("lrn", p);
    check_engine_against_reference(lrn, {random_tensor<float>({3, 21, 6, 5}, rng, -2, 2)});
  }
  // An even window is not centred, which oneDNN's LRN is: it stays on the loops.
  CrossChannelNorm<float> even("lrn", CrossChannelNormParams{4, 0.5, 0.75, 2.0});
  check_engine_against_reference(even, {random_tensor<float>({2, 9, 4, 4}, rng, -2, 2)}, {Mode::training}, 2e-5, 0);
}
