// kernels/batch_norm.cu: batch normalization over (N, H, W) per channel (ops/batch_norm.hpp),
// own kernels: they read strided views directly and follow the CPU reference's formulas.
//
// Training, m = N*H*W values of channel c:
//   mu = sum x / m,  var = sum (x - mu)^2 / m,  invstd = 1 / sqrt(var + eps)
//   y = gamma * (x - mu) * invstd + beta
//   running_mean = (1 - mom) running_mean + mom mu;  running_var = (1 - mom) running_var + mom var m/(m-1)
// Backward (batch statistics), xhat = (x - mu) invstd:
//   dbeta = sum dy,  dgamma = sum dy xhat,  dx = gamma invstd / m (m dy - dbeta - xhat dgamma)
// Inference: y = gamma / sqrt(running_var + eps) (x - running_mean) + beta; its backward is
//   dx = dy gamma / sqrt(running_var + eps), with dgamma and dbeta as above using running statistics.
//
// The reductions run one block per channel, summing in double (two passes for the variance, as the
// CPU does), so that a channel of a large batch loses no precision. Element-wise passes use one
// thread per element.
#include <ewnet/ops/batch_norm.hpp>

#include "cuda/launch.cuh"

namespace ewnet::cuda {

using detail::View;

namespace {
__device__ std::int64_t channel_offset(const View& v, std::int64_t j, std::int64_t c) {
  return (j / v.hw) * v.stride + c * v.hw + j % v.hw;
}
}  // namespace

// One block per channel: batch mean and inverse deviation, the running statistics, then y.
__global__ void batch_norm_forward_training_kernel(View x, const float* gamma, const float* beta, View y,
                                                   float* saved_mean, float* saved_invstd, float* running_mean,
                                                   float* running_var, double eps, float momentum) {
  const std::int64_t c = blockIdx.x;
  const std::int64_t m = x.n * x.hw;
  double s = 0.0;
  for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) s += x.data[channel_offset(x, j, c)];
  const double mu = detail::block_sum(s) / double(m);
  double sq = 0.0;
  for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const double d = x.data[channel_offset(x, j, c)] - mu;
    sq += d * d;
  }
  const double var = detail::block_sum(sq) / double(m);
  const float invstd = float(1.0 / sqrt(var + eps));
  const float mean = float(mu), g = gamma[c], b = beta[c];
  for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x)
    y.data[channel_offset(y, j, c)] = g * (x.data[channel_offset(x, j, c)] - mean) * invstd + b;
  if (threadIdx.x == 0) {
    saved_mean[c] = mean;
    saved_invstd[c] = invstd;
    running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
    const float unbiased = float(m > 1 ? var * double(m) / double(m - 1) : var);
    running_var[c] = (1.0f - momentum) * running_var[c] + momentum * unbiased;
  }
}

// y = gamma[c] / sqrt(running_var[c] + eps) * (x - running_mean[c]) + beta[c], per element.
__global__ void batch_norm_forward_inference_kernel(View x, const float* gamma, const float* beta,
                                                    const float* running_mean, const float* running_var, View y,
                                                    double eps) {
  EWNET_GRID_LOOP(e, x.count()) {
    const std::int64_t c = (e % x.sample) / x.hw;
    const float invstd = float(1.0 / sqrt(double(running_var[c]) + eps));
    const float g = gamma[c] * invstd;
    y.data[y.at(e)] = g * (x.data[x.at(e)] - running_mean[c]) + beta[c];
  }
}

// One block per channel. With `batch_stats` the statistics are the saved batch mean and invstd and
// dx follows the training formula; otherwise they are the running statistics and dx = dy gamma invstd.
// dx, dgamma and dbeta may each be null.
__global__ void batch_norm_backward_kernel(View x, View dy, const float* gamma, const float* mean_in,
                                           const float* invstd_in, const float* running_var, double eps,
                                           bool batch_stats, float* dx_data, View dx, bool accumulate,
                                           float* dgamma, float* dbeta) {
  const std::int64_t c = blockIdx.x;
  const std::int64_t m = x.n * x.hw;
  const float mean = mean_in[c];
  const float invstd = batch_stats ? invstd_in[c] : float(1.0 / sqrt(double(running_var[c]) + eps));
  double sdy = 0.0, sdyx = 0.0;
  for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const float g = dy.data[channel_offset(dy, j, c)];
    const float xhat = (x.data[channel_offset(x, j, c)] - mean) * invstd;
    sdy += g;
    sdyx += double(g) * xhat;
  }
  const float sum_dy = float(detail::block_sum(sdy));
  const float sum_dy_xhat = float(detail::block_sum(sdyx));
  if (threadIdx.x == 0) {
    if (dgamma) dgamma[c] = sum_dy_xhat;
    if (dbeta) dbeta[c] = sum_dy;
  }
  if (!dx_data) return;
  const float fm = float(m);
  const float k = batch_stats ? gamma[c] * invstd / fm : gamma[c] * invstd;
  for (std::int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const float g = dy.data[channel_offset(dy, j, c)];
    float v;
    if (batch_stats) {
      const float xhat = (x.data[channel_offset(x, j, c)] - mean) * invstd;
      v = k * (fm * g - sum_dy - xhat * sum_dy_xhat);
    } else {
      v = g * k;
    }
    float& d = dx.data[channel_offset(dx, j, c)];
    d = accumulate ? d + v : v;
  }
}

void batch_norm_forward_training(const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta,
                                 const Tensor<float>& y, const Tensor<float>& saved_mean,
                                 const Tensor<float>& saved_invstd, const Tensor<float>& running_mean,
                                 const Tensor<float>& running_var, const BatchNormParams& p) {
  if (x.c() == 0 || x.n() == 0 || x.shape().plane() == 0) return;
  batch_norm_forward_training_kernel<<<unsigned(x.c()), detail::kBlock, 0, stream()>>>(
      detail::view(x), gamma.data(), beta.data(), detail::view(y), saved_mean.data(), saved_invstd.data(),
      running_mean.data(), running_var.data(), p.epsilon, float(p.momentum));
  EWNET_CUDA_CHECK_LAUNCH(batch_norm_forward_training_kernel);
}

void batch_norm_forward_inference(const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta,
                                  const Tensor<float>& running_mean, const Tensor<float>& running_var,
                                  const Tensor<float>& y, const BatchNormParams& p) {
  const View vx = detail::view(x);
  if (vx.count() == 0) return;
  batch_norm_forward_inference_kernel<<<detail::grid_for(vx.count()), detail::kBlock, 0, stream()>>>(
      vx, gamma.data(), beta.data(), running_mean.data(), running_var.data(), detail::view(y), p.epsilon);
  EWNET_CUDA_CHECK_LAUNCH(batch_norm_forward_inference_kernel);
}

namespace {
void backward(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& gamma, const float* mean,
              const float* invstd, const float* running_var, double eps, bool batch_stats, const Tensor<float>* dx,
              GradWrite mode, const Tensor<float>* dgamma, const Tensor<float>* dbeta) {
  if (x.c() == 0) return;
  const View vdx = dx ? detail::view(*dx) : View{nullptr, 0, 0, 1, 1, 1};
  batch_norm_backward_kernel<<<unsigned(x.c()), detail::kBlock, 0, stream()>>>(
      detail::view(x), detail::view(dy), gamma.data(), mean, invstd, running_var, eps, batch_stats,
      dx ? dx->data() : nullptr, vdx, mode == GradWrite::accumulate, dgamma ? dgamma->data() : nullptr,
      dbeta ? dbeta->data() : nullptr);
  EWNET_CUDA_CHECK_LAUNCH(batch_norm_backward_kernel);
}
}  // namespace

void batch_norm_backward_training(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& gamma,
                                  const Tensor<float>& saved_mean, const Tensor<float>& saved_invstd,
                                  const Tensor<float>* dx, GradWrite mode, const Tensor<float>* dgamma,
                                  const Tensor<float>* dbeta) {
  backward(x, dy, gamma, saved_mean.data(), saved_invstd.data(), nullptr, 0.0, true, dx, mode, dgamma, dbeta);
}

void batch_norm_backward_inference(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& gamma,
                                   const Tensor<float>& running_mean, const Tensor<float>& running_var,
                                   const Tensor<float>* dx, GradWrite mode, const Tensor<float>* dgamma,
                                   const Tensor<float>* dbeta, const BatchNormParams& p) {
  backward(x, dy, gamma, running_mean.data(), nullptr, running_var.data(), p.epsilon, false, dx, mode, dgamma,
           dbeta);
}

}  // namespace ewnet::cuda
