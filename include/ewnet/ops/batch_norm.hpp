// ewnet/ops/batch_norm.hpp: batch normalization over (N, H, W) for each channel.
//
// Training (batch statistics), with m = N*H*W values per channel:
//   mu = mean(x), var = mean((x - mu)^2), xhat = (x - mu) * invstd, invstd = 1/sqrt(var + eps)
//   y = gamma * xhat + beta
//   running_mean = (1 - momentum) * running_mean + momentum * mu
//   running_var  = (1 - momentum) * running_var  + momentum * var * m/(m-1)   (unbiased)
// Backward (batch statistics):
//   dbeta = sum dy,  dgamma = sum dy * xhat
//   dx = gamma * invstd / m * (m * dy - dbeta - xhat * dgamma)
// Inference, and training with the layer frozen, use the running statistics; then y is an affine
// function of x and dx = dy * gamma / sqrt(running_var + eps).
// gamma, beta, the running statistics and the saved mean/invstd are [1, C, 1, 1].
// CPU, float: oneDNN's batch normalization primitive (onednn/batch_norm.hpp); the loops below are
// the reference (double, and float on the reference path).
#pragma once

#include <cmath>

#include <ewnet/onednn/batch_norm.hpp>
#include <ewnet/ops/common.hpp>

namespace ewnet {

struct BatchNormParams {
  double epsilon = 1e-5;
  double momentum = 0.1;
};

#ifdef EWNET_WITH_CUDA
namespace cuda {
void batch_norm_forward_training(const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta,
                                 const Tensor<float>& y, const Tensor<float>& saved_mean,
                                 const Tensor<float>& saved_invstd, const Tensor<float>& running_mean,
                                 const Tensor<float>& running_var, const BatchNormParams& p);
void batch_norm_forward_inference(const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta,
                                  const Tensor<float>& running_mean, const Tensor<float>& running_var,
                                  const Tensor<float>& y, const BatchNormParams& p);
void batch_norm_backward_training(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& gamma,
                                  const Tensor<float>& saved_mean, const Tensor<float>& saved_invstd,
                                  const Tensor<float>* dx, GradWrite mode, const Tensor<float>* dgamma,
                                  const Tensor<float>* dbeta);
void batch_norm_backward_inference(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& gamma,
                                   const Tensor<float>& running_mean, const Tensor<float>& running_var,
                                   const Tensor<float>* dx, GradWrite mode, const Tensor<float>* dgamma,
                                   const Tensor<float>* dbeta, const BatchNormParams& p);
}  // namespace cuda
#endif

namespace cpu {

template <class T>
void batch_norm_forward_training(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta, const Tensor<T>& y,
                                 const Tensor<T>& saved_mean, const Tensor<T>& saved_invstd,
                                 const Tensor<T>& running_mean, const Tensor<T>& running_var, const BatchNormParams& p) {
  const size_t hw = x.shape().plane();
  const double m = double(x.n()) * double(hw);
  for (int c = 0; c < x.c(); ++c) {
    double sum = 0;
    for (int n = 0; n < x.n(); ++n) {
      const T* a = x.sample(n) + size_t(c) * hw;
      for (size_t i = 0; i < hw; ++i) sum += a[i];
    }
    const double mu = sum / m;
    double sq = 0;
    for (int n = 0; n < x.n(); ++n) {
      const T* a = x.sample(n) + size_t(c) * hw;
      for (size_t i = 0; i < hw; ++i) sq += (a[i] - mu) * (a[i] - mu);
    }
    const double var = sq / m;
    const T invstd = T(1.0 / std::sqrt(var + p.epsilon));
    const T g = gamma.data()[c], b = beta.data()[c], mean = T(mu);
    for (int n = 0; n < x.n(); ++n) {
      const T* a = x.sample(n) + size_t(c) * hw;
      T* o = y.sample(n) + size_t(c) * hw;
      for (size_t i = 0; i < hw; ++i) o[i] = g * (a[i] - mean) * invstd + b;
    }
    saved_mean.data()[c] = mean;
    saved_invstd.data()[c] = invstd;
    const T mom = T(p.momentum);
    running_mean.data()[c] = (T(1) - mom) * running_mean.data()[c] + mom * mean;
    running_var.data()[c] = (T(1) - mom) * running_var.data()[c] + mom * T(m > 1 ? var * m / (m - 1) : var);
  }
}

template <class T>
void batch_norm_forward_inference(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                                  const Tensor<T>& running_mean, const Tensor<T>& running_var, const Tensor<T>& y,
                                  const BatchNormParams& p) {
  const size_t hw = x.shape().plane();
  for (int c = 0; c < x.c(); ++c) {
    const T invstd = T(1.0 / std::sqrt(double(running_var.data()[c]) + p.epsilon));
    const T g = gamma.data()[c] * invstd, b = beta.data()[c], mean = running_mean.data()[c];
    for (int n = 0; n < x.n(); ++n) {
      const T* a = x.sample(n) + size_t(c) * hw;
      T* o = y.sample(n) + size_t(c) * hw;
      for (size_t i = 0; i < hw; ++i) o[i] = g * (a[i] - mean) + b;
    }
  }
}

template <class T>
void batch_norm_backward_training(const Tensor<T>& x, const Tensor<T>& dy, const Tensor<T>& gamma,
                                  const Tensor<T>& saved_mean, const Tensor<T>& saved_invstd, const Tensor<T>* dx,
                                  GradWrite mode, const Tensor<T>* dgamma, const Tensor<T>* dbeta) {
  const size_t hw = x.shape().plane();
  const T m = T(double(x.n()) * double(hw));
  for (int c = 0; c < x.c(); ++c) {
    const T mean = saved_mean.data()[c], invstd = saved_invstd.data()[c];
    T sum_dy = 0, sum_dy_xhat = 0;
    for (int n = 0; n < x.n(); ++n) {
      const T* a = x.sample(n) + size_t(c) * hw;
      const T* g = dy.sample(n) + size_t(c) * hw;
      for (size_t i = 0; i < hw; ++i) {
        sum_dy += g[i];
        sum_dy_xhat += g[i] * (a[i] - mean) * invstd;
      }
    }
    if (dgamma) dgamma->data()[c] = sum_dy_xhat;
    if (dbeta) dbeta->data()[c] = sum_dy;
    if (!dx) continue;
    const T k = gamma.data()[c] * invstd / m;
    for (int n = 0; n < x.n(); ++n) {
      const T* a = x.sample(n) + size_t(c) * hw;
      const T* g = dy.sample(n) + size_t(c) * hw;
      T* d = dx->sample(n) + size_t(c) * hw;
      for (size_t i = 0; i < hw; ++i) {
        const T xhat = (a[i] - mean) * invstd;
        detail::store(d[i], k * (m * g[i] - sum_dy - xhat * sum_dy_xhat), mode);
      }
    }
  }
}

template <class T>
void batch_norm_backward_inference(const Tensor<T>& x, const Tensor<T>& dy, const Tensor<T>& gamma,
                                   const Tensor<T>& running_mean, const Tensor<T>& running_var, const Tensor<T>* dx,
                                   GradWrite mode, const Tensor<T>* dgamma, const Tensor<T>* dbeta,
                                   const BatchNormParams& p) {
  const size_t hw = x.shape().plane();
  for (int c = 0; c < x.c(); ++c) {
    const T invstd = T(1.0 / std::sqrt(double(running_var.data()[c]) + p.epsilon));
    const T mean = running_mean.data()[c], scale = gamma.data()[c] * invstd;
    T sum_dy = 0, sum_dy_xhat = 0;
    for (int n = 0; n < x.n(); ++n) {
      const T* a = x.sample(n) + size_t(c) * hw;
      const T* g = dy.sample(n) + size_t(c) * hw;
      T* d = dx ? dx->sample(n) + size_t(c) * hw : nullptr;
      for (size_t i = 0; i < hw; ++i) {
        sum_dy += g[i];
        sum_dy_xhat += g[i] * (a[i] - mean) * invstd;
        if (d) detail::store(d[i], g[i] * scale, mode);
      }
    }
    if (dgamma) dgamma->data()[c] = sum_dy_xhat;
    if (dbeta) dbeta->data()[c] = sum_dy;
  }
}

}  // namespace cpu

/// `cache`, in all four: the layer's (the CPU engine keeps the batch variance there for backward),
/// or null.
template <class T>
void batch_norm_forward_training(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta, const Tensor<T>& y,
                                 const Tensor<T>& saved_mean, const Tensor<T>& saved_invstd,
                                 const Tensor<T>& running_mean, const Tensor<T>& running_var, const BatchNormParams& p,
                                 onednn::LayerCache* cache = nullptr) {
  detail::check_same_shape("batch_norm_forward_training", "x", x, "y", y);
  EWNET_CHECK_AS(ShapeError, gamma.size() == size_t(x.c()), "batch_norm: ", gamma.size(), " scales for ", x.c(),
                 " channels");
  EWNET_CPU_PRIMITIVE(x.device(), T,
                      onednn::batch_norm_forward_training(x, gamma, beta, y, saved_mean, saved_invstd, running_mean,
                                                          running_var, p.epsilon, p.momentum, cache));
  EWNET_DISPATCH(x.device(), T, batch_norm_forward_training, x, gamma, beta, y, saved_mean, saved_invstd,
                 running_mean, running_var, p);
}

template <class T>
void batch_norm_forward_inference(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                                  const Tensor<T>& running_mean, const Tensor<T>& running_var, const Tensor<T>& y,
                                  const BatchNormParams& p) {
  detail::check_same_shape("batch_norm_forward_inference", "x", x, "y", y);
  EWNET_CHECK_AS(ShapeError, gamma.size() == size_t(x.c()), "batch_norm: ", gamma.size(), " scales for ", x.c(),
                 " channels");
  EWNET_CPU_PRIMITIVE(x.device(), T,
                      onednn::batch_norm_forward(x, gamma, beta, y, onednn::detail::channel_vector(running_mean),
                                                 onednn::detail::channel_vector(running_var), float(p.epsilon), true));
  EWNET_DISPATCH(x.device(), T, batch_norm_forward_inference, x, gamma, beta, running_mean, running_var, y, p);
}

/// Gradients with batch statistics; dx, dgamma, dbeta may each be null when not wanted.
template <class T>
void batch_norm_backward_training(const Tensor<T>& x, const Tensor<T>& dy, const Tensor<T>& gamma,
                                  const Tensor<T>& saved_mean, const Tensor<T>& saved_invstd, const Tensor<T>* dx,
                                  GradWrite mode, const Tensor<T>* dgamma, const Tensor<T>* dbeta,
                                  const BatchNormParams& p = {}, onednn::LayerCache* cache = nullptr) {
  detail::check_same_shape("batch_norm_backward_training", "x", x, "dy", dy);
  EWNET_CPU_PRIMITIVE(x.device(), T,
                      onednn::batch_norm_backward_training(x, dy, gamma, saved_mean, saved_invstd, dx,
                                                           mode == GradWrite::accumulate, dgamma, dbeta, p.epsilon,
                                                           cache));
  EWNET_DISPATCH(x.device(), T, batch_norm_backward_training, x, dy, gamma, saved_mean, saved_invstd, dx, mode, dgamma,
                 dbeta);
}

/// Gradients with running statistics (a frozen layer in a training step).
template <class T>
void batch_norm_backward_inference(const Tensor<T>& x, const Tensor<T>& dy, const Tensor<T>& gamma,
                                   const Tensor<T>& running_mean, const Tensor<T>& running_var, const Tensor<T>* dx,
                                   GradWrite mode, const Tensor<T>* dgamma, const Tensor<T>* dbeta,
                                   const BatchNormParams& p) {
  detail::check_same_shape("batch_norm_backward_inference", "x", x, "dy", dy);
  EWNET_CPU_PRIMITIVE(x.device(), T,
                      onednn::batch_norm_backward(x, dy, gamma, onednn::detail::channel_vector(running_mean),
                                                  onednn::detail::channel_vector(running_var), dx,
                                                  mode == GradWrite::accumulate, dgamma, dbeta, float(p.epsilon),
                                                  true));
  EWNET_DISPATCH(x.device(), T, batch_norm_backward_inference, x, dy, gamma, running_mean, running_var, dx, mode,
                 dgamma, dbeta, p);
}

}  // namespace ewnet
