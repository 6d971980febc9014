// ewnet/ops/activation.hpp: ReLU.  y = max(x, 0);  dx = dy where y > 0, else 0.
#pragma once

#include <ewnet/ops/common.hpp>

namespace ewnet {

#ifdef EWNET_WITH_CUDA
namespace cuda {
void relu_forward(const Tensor<float>& x, const Tensor<float>& y);
void relu_backward(const Tensor<float>& y, const Tensor<float>& dy, const Tensor<float>& dx, GradWrite mode);
}  // namespace cuda
#endif

namespace cpu {
template <class T>
void relu_forward(const Tensor<T>& x, const Tensor<T>& y) {
  const size_t m = x.shape().sample_size();
  for (int n = 0; n < x.n(); ++n) {
    const T* a = x.sample(n);
    T* b = y.sample(n);
    for (size_t i = 0; i < m; ++i) b[i] = a[i] > T(0) ? a[i] : T(0);
  }
}
template <class T>
void relu_backward(const Tensor<T>& y, const Tensor<T>& dy, const Tensor<T>& dx, GradWrite mode) {
  const size_t m = y.shape().sample_size();
  for (int n = 0; n < y.n(); ++n) {
    const T *ys = y.sample(n), *g = dy.sample(n);
    T* d = dx.sample(n);
    for (size_t i = 0; i < m; ++i) detail::store(d[i], ys[i] > T(0) ? g[i] : T(0), mode);
  }
}
}  // namespace cpu

template <class T>
void relu_forward(const Tensor<T>& x, const Tensor<T>& y) {
  detail::check_same_shape("relu_forward", "x", x, "y", y);
  EWNET_DISPATCH(x.device(), T, relu_forward, x, y);
}

/// Uses the output y (valid in place, and what the fused CUDA epilogues keep).
template <class T>
void relu_backward(const Tensor<T>& y, const Tensor<T>& dy, const Tensor<T>& dx, GradWrite mode = GradWrite::overwrite) {
  detail::check_same_shape("relu_backward", "y", y, "dy", dy);
  detail::check_same_shape("relu_backward", "y", y, "dx", dx);
  EWNET_DISPATCH(y.device(), T, relu_backward, y, dy, dx, mode);
}

}  // namespace ewnet
