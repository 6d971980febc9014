// ewnet/ops/cross_channel_norm.hpp: cross-channel (local response) normalization.
//
// MATLAB's crossChannelNormalizationLayer, cuDNN's LRN cross-channel mode and Caffe's LRN compute
//   s[c] = k + (alpha / n) * sum_{j in W(c)} x[j]^2,      y[c] = x[c] * s[c]^(-beta)
// per pixel, where the window W(c) = [c - lo, c + hi] clipped to the channels, with
// lo = floor((n-1)/2) and hi = n - 1 - lo: for odd n it is centred, for even n it has one more
// channel after c than before (n = 4: c-1 .. c+2).
//
// Backward, from dy/dx of the two factors (channels i and c at one pixel):
//   dx[i] = dy[i] * s[i]^(-beta) - (2 alpha beta / n) * x[i] * sum_{c : i in W(c)} dy[c] * y[c] / s[c]
// and i is in W(c) exactly when c is in [i - hi, i + lo]. Forward keeps s for the backward pass.
#pragma once

#include <algorithm>
#include <cmath>

#include <ewnet/ops/common.hpp>

namespace ewnet {

struct CrossChannelNormParams {
  int window = 5;
  double alpha = 1e-4;
  double beta = 0.75;
  double k = 2.0;
  int before() const { return (window - 1) / 2; }
  int after() const { return window - 1 - before(); }
};

#ifdef EWNET_WITH_CUDA
namespace cuda {
void cross_channel_norm_forward(const Tensor<float>& x, const Tensor<float>& y, const Tensor<float>& scale,
                                const CrossChannelNormParams& p);
void cross_channel_norm_backward(const Tensor<float>& x, const Tensor<float>& y, const Tensor<float>& dy,
                                 const Tensor<float>& scale, const Tensor<float>& dx, const CrossChannelNormParams& p,
                                 GradWrite mode);
}  // namespace cuda
#endif

namespace cpu {

template <class T>
void cross_channel_norm_forward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& scale,
                                const CrossChannelNormParams& p) {
  const int C = x.c();
  const size_t hw = x.shape().plane();
  const T a_over_n = T(p.alpha / p.window), k = T(p.k), beta = T(p.beta);
  for (int n = 0; n < x.n(); ++n) {
    const T* xs = x.sample(n);
    T* ys = y.sample(n);
    T* ss = scale.sample(n);
    for (int c = 0; c < C; ++c) {
      T* s = ss + size_t(c) * hw;
      std::fill(s, s + hw, T(0));
      const int j0 = std::max(0, c - p.before()), j1 = std::min(C - 1, c + p.after());
      for (int j = j0; j <= j1; ++j) {
        const T* xj = xs + size_t(j) * hw;
        for (size_t i = 0; i < hw; ++i) s[i] += xj[i] * xj[i];
      }
      const T* xc = xs + size_t(c) * hw;
      T* yc = ys + size_t(c) * hw;
      for (size_t i = 0; i < hw; ++i) {
        s[i] = k + a_over_n * s[i];
        yc[i] = xc[i] * std::pow(s[i], -beta);
      }
    }
  }
}

template <class T>
void cross_channel_norm_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<T>& scale,
                                 const Tensor<T>& dx, const CrossChannelNormParams& p, GradWrite mode) {
  const int C = x.c();
  const size_t hw = x.shape().plane();
  const T coef = T(2 * p.alpha * p.beta / p.window), beta = T(p.beta);
  T* ratio = scratch<T>(size_t(C) * hw);  // dy[c] * y[c] / s[c]
  for (int n = 0; n < x.n(); ++n) {
    const T *xs = x.sample(n), *ys = y.sample(n), *dys = dy.sample(n), *ss = scale.sample(n);
    T* dxs = dx.sample(n);
    for (size_t i = 0; i < size_t(C) * hw; ++i) ratio[i] = dys[i] * ys[i] / ss[i];
    for (int c = 0; c < C; ++c) {
      const int c0 = std::max(0, c - p.after()), c1 = std::min(C - 1, c + p.before());
      const size_t off = size_t(c) * hw;
      for (size_t i = 0; i < hw; ++i) {
        T acc = 0;
        for (int j = c0; j <= c1; ++j) acc += ratio[size_t(j) * hw + i];
        const T g = dys[off + i] * std::pow(ss[off + i], -beta) - coef * xs[off + i] * acc;
        detail::store(dxs[off + i], g, mode);
      }
    }
  }
}

}  // namespace cpu

/// y = x * (k + alpha/n * windowed sum of x^2)^(-beta); `scale` receives the bracket for backward.
template <class T>
void cross_channel_norm_forward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& scale,
                                const CrossChannelNormParams& p) {
  detail::check_same_shape("cross_channel_norm_forward", "x", x, "y", y);
  detail::check_same_shape("cross_channel_norm_forward", "x", x, "scale", scale);
  EWNET_DISPATCH(x.device(), T, cross_channel_norm_forward, x, y, scale, p);
}

template <class T>
void cross_channel_norm_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<T>& scale,
                                 const Tensor<T>& dx, const CrossChannelNormParams& p,
                                 GradWrite mode = GradWrite::overwrite) {
  detail::check_same_shape("cross_channel_norm_backward", "x", x, "dy", dy);
  detail::check_same_shape("cross_channel_norm_backward", "x", x, "dx", dx);
  EWNET_DISPATCH(x.device(), T, cross_channel_norm_backward, x, y, dy, scale, dx, p, mode);
}

}  // namespace ewnet
