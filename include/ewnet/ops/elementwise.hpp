// ewnet/ops/elementwise.hpp: element-wise addition (residual connections), gradient routing
// (copy or accumulate), and fill. CPU, float: addition by oneDNN's binary primitive where the
// operands share a descriptor, gradient routing by its reorder (onednn/eltwise.hpp); the loops
// below otherwise (and for double).
#pragma once

#include <ewnet/onednn/eltwise.hpp>
#include <ewnet/ops/common.hpp>
#include <ewnet/ops/parallel.hpp>

namespace ewnet {

#ifdef EWNET_WITH_CUDA
namespace cuda {
void add_forward(const Tensor<float>& a, const Tensor<float>& b, const Tensor<float>& y);
void copy_gradient(const Tensor<float>& src, const Tensor<float>& dst, GradWrite mode);
void fill(const Tensor<float>& t, float value);
void normalize_channels(const Tensor<float>& x, const Tensor<float>& mean, const Tensor<float>& inv_std,
                        const Tensor<float>& y);
}  // namespace cuda
#endif

namespace cpu {
// Addition and accumulation run over each sample's extent, so they take the CPU engine's blocked
// layout too (all operands in one layout; padding channels stay zeros).
template <class T>
void add_forward(const Tensor<T>& a, const Tensor<T>& b, const Tensor<T>& y) {
  const size_t m = a.sample_extent();
  parallel_samples(a.n(), m, [&](int n0, int n1) {
    for (int n = n0; n < n1; ++n) {
      const T *p = a.sample(n), *q = b.sample(n);
      T* r = y.sample(n);
      for (size_t i = 0; i < m; ++i) r[i] = p[i] + q[i];
    }
  });
}
template <class T>
void copy_gradient(const Tensor<T>& src, const Tensor<T>& dst, GradWrite mode) {
  if (mode == GradWrite::overwrite) {
    dst.copy_from(src);
    return;
  }
  const size_t m = src.sample_extent();
  parallel_samples(src.n(), m, [&](int n0, int n1) {
    for (int n = n0; n < n1; ++n) {
      const T* s = src.sample(n);
      T* d = dst.sample(n);
      for (size_t i = 0; i < m; ++i) d[i] += s[i];
    }
  });
}
template <class T>
void fill(const Tensor<T>& t, T value) {
  const size_t m = t.shape().sample_size();
  for (int n = 0; n < t.n(); ++n) {
    T* d = t.sample(n);
    for (size_t i = 0; i < m; ++i) d[i] = value;
  }
}
template <class T>
void normalize_channels(const Tensor<T>& x, const Tensor<T>& mean, const Tensor<T>& inv_std, const Tensor<T>& y) {
  const size_t hw = x.shape().plane();
  for (int n = 0; n < x.n(); ++n)
    for (int c = 0; c < x.c(); ++c) {
      const T m = mean.data()[c], s = inv_std.data()[c];
      const T* a = x.sample(n) + size_t(c) * hw;
      T* b = y.sample(n) + size_t(c) * hw;
      for (size_t i = 0; i < hw; ++i) b[i] = (a[i] - m) * s;
    }
}
}  // namespace cpu

/// y = a + b.
template <class T>
void add_forward(const Tensor<T>& a, const Tensor<T>& b, const Tensor<T>& y) {
  detail::check_same_shape("add_forward", "a", a, "b", b);
  detail::check_same_shape("add_forward", "a", a, "y", y);
  detail::check_same_layout("add_forward", a, b);
  detail::check_same_layout("add_forward", a, y);
  if constexpr (std::is_same_v<T, float>)
    if (onednn::runs_on(a.device()) && onednn::add_forward(a, b, y)) return;
  EWNET_DISPATCH_ANY_LAYOUT(a.device(), T, add_forward, a, b, y);
}

/// dst = src, or dst += src: how a gradient reaches an input that passes it through unchanged
/// (addition, concatenation slices, fused softmax).
template <class T>
void copy_gradient(const Tensor<T>& src, const Tensor<T>& dst, GradWrite mode = GradWrite::overwrite) {
  detail::check_same_shape("copy_gradient", "src", src, "dst", dst);
  if constexpr (std::is_same_v<T, float>)
    if (onednn::runs_on(src.device()) && onednn::copy(src, dst, mode == GradWrite::accumulate)) return;
  if (mode == GradWrite::accumulate) detail::check_same_layout("copy_gradient", src, dst);
  EWNET_DISPATCH_ANY_LAYOUT(src.device(), T, copy_gradient, src, dst, mode);
}

/// y[n,c] = (x[n,c] - mean[c]) * inv_std[c], per channel (the input layer's normalisation).
template <class T>
void normalize_channels(const Tensor<T>& x, const Tensor<T>& mean, const Tensor<T>& inv_std, const Tensor<T>& y) {
  detail::check_same_shape("normalize_channels", "x", x, "y", y);
  EWNET_CHECK_AS(ShapeError, mean.size() == size_t(x.c()) && inv_std.size() == size_t(x.c()),
                 "normalize_channels: ", mean.size(), " means for ", x.c(), " channels");
  EWNET_DISPATCH(x.device(), T, normalize_channels, x, mean, inv_std, y);
}

template <class T>
void fill(const Tensor<T>& t, T value) {
  detail::check_plain("fill", t);
  EWNET_DISPATCH(t.device(), T, fill, t, value);
}

}  // namespace ewnet
