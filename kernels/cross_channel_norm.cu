// kernels/cross_channel_norm.cu: cross-channel (local response) normalization
// (ops/cross_channel_norm.hpp).
//
// Per pixel, with the window W(c) = [c - lo, c + hi] clipped to [0, C), lo = (n-1)/2, hi = n-1-lo:
//   s[c]  = k + (alpha/n) * sum_{j in W(c)} x[j]^2          (kept in `scale` for backward)
//   y[c]  = x[c] * s[c]^(-beta)
//   dx[i] = dy[i] * s[i]^(-beta) - (2 alpha beta / n) * x[i] * sum_{c in [i-hi, i+lo]} dy[c] y[c] / s[c]
// One thread per element; it reads the window of the same pixel in the neighbouring channels
// (hw apart). The window is a handful of channels, so recomputing the sums per element costs
// less than a second pass through memory would.
#include <ewnet/ops/cross_channel_norm.hpp>

#include "cuda/launch.cuh"

namespace ewnet::cuda {

using detail::View;

namespace {
struct Lrn {
  int before, after;
  float a_over_n, k, beta, coef;
};
Lrn lrn(const CrossChannelNormParams& p) {
  return Lrn{p.before(), p.after(), float(p.alpha / p.window), float(p.k), float(p.beta),
             float(2 * p.alpha * p.beta / p.window)};
}
}  // namespace

__global__ void cross_channel_norm_forward_kernel(View x, View y, View scale, Lrn q) {
  EWNET_GRID_LOOP(e, x.count()) {
    const std::int64_t n = e / x.sample, r = e % x.sample;
    const int c = int(r / x.hw);
    const std::int64_t p = r % x.hw;
    const float* xs = x.data + n * x.stride + p;
    const int j0 = max(0, c - q.before), j1 = min(int(x.c) - 1, c + q.after);
    float s = 0.0f;
    for (int j = j0; j <= j1; ++j) {
      const float v = xs[std::int64_t(j) * x.hw];
      s += v * v;
    }
    s = q.k + q.a_over_n * s;
    scale.data[scale.at(e)] = s;
    y.data[y.at(e)] = xs[std::int64_t(c) * x.hw] * powf(s, -q.beta);
  }
}

__global__ void cross_channel_norm_backward_kernel(View x, View y, View dy, View scale, View dx, Lrn q,
                                                   bool accumulate) {
  EWNET_GRID_LOOP(e, x.count()) {
    const std::int64_t n = e / x.sample, r = e % x.sample;
    const int i = int(r / x.hw);
    const std::int64_t p = r % x.hw;
    const float* ys = y.data + n * y.stride + p;
    const float* gs = dy.data + n * dy.stride + p;
    const float* ss = scale.data + n * scale.stride + p;
    const int c0 = max(0, i - q.after), c1 = min(int(x.c) - 1, i + q.before);
    float acc = 0.0f;
    for (int c = c0; c <= c1; ++c) {
      const std::int64_t o = std::int64_t(c) * x.hw;
      acc += gs[o] * ys[o] / ss[o];
    }
    const std::int64_t o = std::int64_t(i) * x.hw;
    const float g = gs[o] * powf(ss[o], -q.beta) - q.coef * x.data[x.at(e)] * acc;
    float& d = dx.data[dx.at(e)];
    d = accumulate ? d + g : g;
  }
}

void cross_channel_norm_forward(const Tensor<float>& x, const Tensor<float>& y, const Tensor<float>& scale,
                                const CrossChannelNormParams& p) {
  const View vx = detail::view(x);
  if (vx.count() == 0) return;
  cross_channel_norm_forward_kernel<<<detail::grid_for(vx.count()), detail::kBlock, 0, stream()>>>(
      vx, detail::view(y), detail::view(scale), lrn(p));
  EWNET_CUDA_CHECK_LAUNCH(cross_channel_norm_forward_kernel);
}

void cross_channel_norm_backward(const Tensor<float>& x, const Tensor<float>& y, const Tensor<float>& dy,
                                 const Tensor<float>& scale, const Tensor<float>& dx, const CrossChannelNormParams& p,
                                 GradWrite mode) {
  const View vx = detail::view(x);
  if (vx.count() == 0) return;
  cross_channel_norm_backward_kernel<<<detail::grid_for(vx.count()), detail::kBlock, 0, stream()>>>(
      vx, detail::view(y), detail::view(dy), detail::view(scale), detail::view(dx), lrn(p),
      mode == GradWrite::accumulate);
  EWNET_CUDA_CHECK_LAUNCH(cross_channel_norm_backward_kernel);
}

}  // namespace ewnet::cuda
