// ewnet/ops/softmax.hpp: softmax over channels, cross-entropy loss, and their fused gradient.
//
// Softmax at each pixel over the C channels, computed stably by subtracting the maximum:
//   y[c] = exp(x[c] - max) / sum_j exp(x[j] - max)
//   dx[c] = y[c] * (dy[c] - sum_j dy[j] y[j])
// Cross-entropy of probabilities y with integer labels t over N samples (the classification layer):
//   loss[n] = -log(max(y[n, t_n], tiny))
// Softmax followed by cross-entropy, differentiated together, gives the simple, stable gradient
//   dlogits[n, c] = scale * (y[n, c] - [c == t_n])     with scale = 1/N for the mean loss;
// ewnet's graph uses it whenever a softmax layer feeds a classification layer, never dividing by y.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <ewnet/ops/common.hpp>

namespace ewnet {

#ifdef EWNET_WITH_CUDA
namespace cuda {
void softmax_forward(const Tensor<float>& x, const Tensor<float>& y);
void softmax_backward(const Tensor<float>& y, const Tensor<float>& dy, const Tensor<float>& dx, GradWrite mode);
void cross_entropy_forward(const Tensor<float>& probs, const Tensor<std::int32_t>& labels, const Tensor<float>& loss);
void softmax_cross_entropy_backward(const Tensor<float>& probs, const Tensor<std::int32_t>& labels,
                                    const Tensor<float>& dlogits, float scale, GradWrite mode);
}  // namespace cuda
#endif

namespace cpu {
template <class T>
void softmax_forward(const Tensor<T>& x, const Tensor<T>& y) {
  const int C = x.c();
  const size_t hw = x.shape().plane();
  for (int n = 0; n < x.n(); ++n)
    for (size_t i = 0; i < hw; ++i) {
      const T* a = x.sample(n) + i;
      T* b = y.sample(n) + i;
      T m = -std::numeric_limits<T>::infinity();
      for (int c = 0; c < C; ++c) m = std::max(m, a[c * hw]);
      T s = 0;
      for (int c = 0; c < C; ++c) s += (b[c * hw] = std::exp(a[c * hw] - m));
      for (int c = 0; c < C; ++c) b[c * hw] /= s;
    }
}
template <class T>
void softmax_backward(const Tensor<T>& y, const Tensor<T>& dy, const Tensor<T>& dx, GradWrite mode) {
  const int C = y.c();
  const size_t hw = y.shape().plane();
  for (int n = 0; n < y.n(); ++n)
    for (size_t i = 0; i < hw; ++i) {
      const T *p = y.sample(n) + i, *g = dy.sample(n) + i;
      T* d = dx.sample(n) + i;
      T dot = 0;
      for (int c = 0; c < C; ++c) dot += g[c * hw] * p[c * hw];
      for (int c = 0; c < C; ++c) detail::store(d[c * hw], p[c * hw] * (g[c * hw] - dot), mode);
    }
}
template <class T>
void cross_entropy_forward(const Tensor<T>& probs, const Tensor<std::int32_t>& labels, const Tensor<T>& loss) {
  for (int n = 0; n < probs.n(); ++n) {
    const std::int32_t t = labels.data()[n];
    EWNET_CHECK_AS(ShapeError, t >= 0 && t < probs.c(), "cross_entropy_forward: label ", t, " of sample ", n,
                   " is outside [0, ", probs.c(), ")");
    const T p = probs.sample(n)[t];
    loss.data()[n] = -std::log(std::max(p, std::numeric_limits<T>::min()));
  }
}
template <class T>
void softmax_cross_entropy_backward(const Tensor<T>& probs, const Tensor<std::int32_t>& labels, const Tensor<T>& dlogits,
                                    T scale, GradWrite mode) {
  for (int n = 0; n < probs.n(); ++n)
    for (int c = 0; c < probs.c(); ++c) {
      const T g = scale * (probs.sample(n)[c] - (c == labels.data()[n] ? T(1) : T(0)));
      detail::store(dlogits.sample(n)[c], g, mode);
    }
}
}  // namespace cpu

namespace detail {
template <class T>
void check_labels(const char* op, const Tensor<T>& probs, const Tensor<std::int32_t>& labels) {
  EWNET_CHECK_AS(ShapeError, probs.h() == 1 && probs.w() == 1, op, ": expects class scores [N x K x 1 x 1], got ",
                 probs.shape());
  EWNET_CHECK_AS(ShapeError, labels.size() == size_t(probs.n()), op, ": ", labels.size(), " labels for ", probs.n(),
                 " samples");
  check_same_device(op, probs, labels);
}
}  // namespace detail

template <class T>
void softmax_forward(const Tensor<T>& x, const Tensor<T>& y) {
  detail::check_same_shape("softmax_forward", "x", x, "y", y);
  EWNET_DISPATCH(x.device(), T, softmax_forward, x, y);
}
template <class T>
void softmax_backward(const Tensor<T>& y, const Tensor<T>& dy, const Tensor<T>& dx,
                      GradWrite mode = GradWrite::overwrite) {
  detail::check_same_shape("softmax_backward", "y", y, "dy", dy);
  EWNET_DISPATCH(y.device(), T, softmax_backward, y, dy, dx, mode);
}
/// loss[n] = -log(probs[n, labels[n]]); loss is [N, 1, 1, 1]. Labels must lie in [0, K).
template <class T>
void cross_entropy_forward(const Tensor<T>& probs, const Tensor<std::int32_t>& labels, const Tensor<T>& loss) {
  detail::check_labels("cross_entropy_forward", probs, labels);
  EWNET_DISPATCH(probs.device(), T, cross_entropy_forward, probs, labels, loss);
}
/// dlogits = scale * (probs - onehot(labels)).
template <class T>
void softmax_cross_entropy_backward(const Tensor<T>& probs, const Tensor<std::int32_t>& labels, const Tensor<T>& dlogits,
                                    T scale, GradWrite mode = GradWrite::overwrite) {
  detail::check_labels("softmax_cross_entropy_backward", probs, labels);
  detail::check_same_shape("softmax_cross_entropy_backward", "probs", probs, "dlogits", dlogits);
  EWNET_DISPATCH(probs.device(), T, softmax_cross_entropy_backward, probs, labels, dlogits, scale, mode);
}

/// Index of the largest score of each sample (host-side; copies the scores).
template <class T>
std::vector<int> argmax(const Tensor<T>& scores) {
  const std::vector<T> v = scores.to_vector();
  const size_t k = scores.shape().sample_size();
  std::vector<int> out(size_t(scores.n()));
  for (size_t n = 0; n < out.size(); ++n)
    out[n] = int(std::max_element(v.begin() + n * k, v.begin() + (n + 1) * k) - (v.begin() + n * k));
  return out;
}

}  // namespace ewnet
