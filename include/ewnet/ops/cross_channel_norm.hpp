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

#include <ewnet/onednn/lrn.hpp>
#include <ewnet/ops/common.hpp>
#include <ewnet/ops/parallel.hpp>

namespace ewnet {

struct CrossChannelNormParams {
  int window = 5;
  double alpha = 1e-4;
  double beta = 0.75;
  double k = 2.0;
  int before() const { return (window - 1) / 2; }
  int after() const { return window - 1 - before(); }
  /// oneDNN's LRN centres its window: the same as this one for odd sizes only.
  bool centred() const { return window % 2 == 1; }
  onednn::LrnParams lrn() const { return {window, float(alpha), float(beta), float(k)}; }
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

/// s^(-beta). For GoogLeNet's and MATLAB's beta = 0.75 it is 1 / (sqrt(s) * sqrt(sqrt(s))): two
/// square roots cost a fraction of a pow (s >= k > 0 here).
template <class T>
struct NegPow {
  T beta;
  bool three_quarters;
  explicit NegPow(double b) : beta(T(b)), three_quarters(b == 0.75) {}
  T operator()(T s) const {
    if (three_quarters) {
      const T r = std::sqrt(s);
      return T(1) / (r * std::sqrt(r));
    }
    return std::pow(s, -beta);
  }
};

// The reference loops (double, float on the reference path, and even windows; float runs oneDNN's
// LRN primitive, onednn/lrn.hpp): samples split over the threads (ops/parallel.hpp); within a sample every loop runs along
// the pixels of a channel, contiguous, so it vectorises.
// Measured at batch 32 on 2 threads (bench/layers.cpp, norm2: 192x28x28, forward / backward, ms):
// pow per element and the channel-window loop innermost, on one thread: 27.4 / 32.5 -> 10.4 / 11.5.
template <class T>
void cross_channel_norm_forward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& scale,
                                const CrossChannelNormParams& p) {
  const int C = x.c();
  const size_t hw = x.shape().plane();
  const T a_over_n = T(p.alpha / p.window), k = T(p.k);
  const NegPow<T> negpow(p.beta);
  // Scalars by value: captured by reference they could alias the stores, which stops vectorisation.
  parallel_for(size_t(x.n()), 1, [&, a_over_n, k, negpow](size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; ++n) {
      const T* xs = x.sample(int(n));
      T* ys = y.sample(int(n));
      T* ss = scale.sample(int(n));
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
        for (size_t i = 0; i < hw; ++i) s[i] = k + a_over_n * s[i];
        for (size_t i = 0; i < hw; ++i) yc[i] = xc[i] * negpow(s[i]);
      }
    }
  });
}

template <class T>
void cross_channel_norm_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<T>& scale,
                                 const Tensor<T>& dx, const CrossChannelNormParams& p, GradWrite mode) {
  const int C = x.c();
  const size_t hw = x.shape().plane();
  const T coef = T(2 * p.alpha * p.beta / p.window);
  const NegPow<T> negpow(p.beta);
  parallel_for(size_t(x.n()), 1, [&, coef, negpow](size_t n0, size_t n1) {
    T* ratio = scratch<T>(size_t(C) * hw + hw);  // dy[c] * y[c] / s[c], then one row of window sums
    T* acc = ratio + size_t(C) * hw;
    for (size_t n = n0; n < n1; ++n) {
      const T *xs = x.sample(int(n)), *ys = y.sample(int(n)), *dys = dy.sample(int(n)), *ss = scale.sample(int(n));
      T* dxs = dx.sample(int(n));
      for (size_t i = 0; i < size_t(C) * hw; ++i) ratio[i] = dys[i] * ys[i] / ss[i];
      for (int c = 0; c < C; ++c) {
        const int c0 = std::max(0, c - p.after()), c1 = std::min(C - 1, c + p.before());
        const size_t off = size_t(c) * hw;
        std::fill(acc, acc + hw, T(0));
        for (int j = c0; j <= c1; ++j) {
          const T* r = ratio + size_t(j) * hw;
          for (size_t i = 0; i < hw; ++i) acc[i] += r[i];
        }
        for (size_t i = 0; i < hw; ++i) {
          const T g = dys[off + i] * negpow(ss[off + i]) - coef * xs[off + i] * acc[i];
          detail::store(dxs[off + i], g, mode);
        }
      }
    }
  });
}

}  // namespace cpu

/// True when a float CPU tensor's cross-channel normalization runs on the CPU engine (which keeps
/// its own workspace in the layer's cache and needs no `scale`).
template <class T>
bool cross_channel_norm_on_engine(const Tensor<T>& x, const CrossChannelNormParams& p) {
  return std::is_same_v<T, float> && onednn::runs_on(x.device()) && p.centred();
}

/// y = x * (k + alpha/n * windowed sum of x^2)^(-beta). The reference and CUDA paths write the
/// bracket to `scale` for backward; the CPU engine keeps its workspace in `cache` when `keep`.
template <class T>
void cross_channel_norm_forward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& scale,
                                const CrossChannelNormParams& p, onednn::LayerCache* cache = nullptr,
                                bool keep = true) {
  detail::check_same_shape("cross_channel_norm_forward", "x", x, "y", y);
  if (cross_channel_norm_on_engine(x, p)) {
    EWNET_CPU_PRIMITIVE(x.device(), T, onednn::lrn_forward(x, y, p.lrn(), keep, cache));
  }
  detail::check_same_shape("cross_channel_norm_forward", "x", x, "scale", scale);
  EWNET_DISPATCH(x.device(), T, cross_channel_norm_forward, x, y, scale, p);
}

template <class T>
void cross_channel_norm_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<T>& scale,
                                 const Tensor<T>& dx, const CrossChannelNormParams& p,
                                 GradWrite mode = GradWrite::overwrite, onednn::LayerCache* cache = nullptr) {
  detail::check_same_shape("cross_channel_norm_backward", "x", x, "dy", dy);
  detail::check_same_shape("cross_channel_norm_backward", "x", x, "dx", dx);
  if (cross_channel_norm_on_engine(x, p)) {
    EWNET_CPU_PRIMITIVE(x.device(), T,
                        onednn::lrn_backward(x, y, dy, dx, p.lrn(), mode == GradWrite::accumulate, cache));
  }
  EWNET_DISPATCH(x.device(), T, cross_channel_norm_backward, x, y, dy, scale, dx, p, mode);
}

}  // namespace ewnet
