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
// The reductions run in two stages across blocks (launch.cuh, chunks_for): each channel's values
// are split among several blocks that write partial sums (double) to the reduction scratch, and a
// second kernel adds a channel's partials in a fixed order, so a layer of few channels and many
// values still fills the GPU and the result does not depend on timing. Two passes for the variance,
// as the CPU does. Element-wise passes use one thread per element; with the running statistics
// (inference, a frozen layer) the per-channel scale is computed once first, in C threads.
#include <ewnet/ops/batch_norm.hpp>

#include "cuda/graph_support.hpp"
#include "cuda/launch.cuh"

namespace ewnet::cuda {

using detail::View;

namespace {
__device__ std::int64_t channel_offset(const View& v, std::int64_t j, std::int64_t c) {
  return (j / v.hw) * v.stride + c * v.hw + j % v.hw;
}

/// The sum of channel c's partials, in chunk order.
__device__ double sum_partials(const double* partial, std::int64_t c, unsigned chunks) {
  double s = 0.0;
  for (unsigned b = 0; b < chunks; ++b) s += partial[c * chunks + b];
  return s;
}
}  // namespace

// Stage 1 of the mean: partial[c, chunk] = sum of the chunk's x.
__global__ void batch_norm_sum_kernel(View x, double* partial) {
  const std::int64_t c = blockIdx.y, m = x.n * x.hw;
  double s = 0.0;
  EWNET_CHUNK_LOOP(j, m) s += x.data[channel_offset(x, j, c)];
  s = detail::block_sum(s);
  if (threadIdx.x == 0) partial[c * gridDim.x + blockIdx.x] = s;
}

// Stage 2 of the mean and stage 1 of the variance: mu from the sums, then
// partial_sq[c, chunk] = sum of the chunk's (x - mu)^2.
__global__ void batch_norm_sqdev_kernel(View x, const double* partial, double* partial_sq) {
  const std::int64_t c = blockIdx.y, m = x.n * x.hw;
  const double mu = sum_partials(partial, c, gridDim.x) / double(m);
  double sq = 0.0;
  EWNET_CHUNK_LOOP(j, m) {
    const double d = x.data[channel_offset(x, j, c)] - mu;
    sq += d * d;
  }
  sq = detail::block_sum(sq);
  if (threadIdx.x == 0) partial_sq[c * gridDim.x + blockIdx.x] = sq;
}

// Stage 2 of the variance, one thread per channel: the saved and the running statistics.
__global__ void batch_norm_stats_kernel(std::int64_t channels, std::int64_t m, unsigned chunks, const double* partial,
                                        const double* partial_sq, float* saved_mean, float* saved_invstd,
                                        float* running_mean, float* running_var, double eps, float momentum) {
  EWNET_GRID_LOOP(c, channels) {
    const double mu = sum_partials(partial, c, chunks) / double(m);
    const double var = sum_partials(partial_sq, c, chunks) / double(m);
    const float mean = float(mu);
    saved_mean[c] = mean;
    saved_invstd[c] = float(1.0 / sqrt(var + eps));
    running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
    const float unbiased = float(m > 1 ? var * double(m) / double(m - 1) : var);
    running_var[c] = (1.0f - momentum) * running_var[c] + momentum * unbiased;
  }
}

// y = gamma[c] * (x - mean[c]) * invstd[c] + beta[c], per element, with the saved batch statistics.
__global__ void batch_norm_normalize_kernel(View x, const float* gamma, const float* beta, const float* mean,
                                            const float* invstd, View y) {
  EWNET_GRID_LOOP(e, x.count()) {
    const std::int64_t c = (e % x.sample) / x.hw;
    y.data[y.at(e)] = gamma[c] * (x.data[x.at(e)] - mean[c]) * invstd[c] + beta[c];
  }
}

// Once per channel, from the running variance: invstd[c] = 1 / sqrt(running_var[c] + eps) (in
// double, as the CPU) and scale[c] = gamma[c] * invstd[c], so that the per-element passes of
// inference and of a frozen layer's backward need no square root or division.
__global__ void batch_norm_running_scale_kernel(std::int64_t channels, const float* gamma, const float* running_var,
                                                double eps, float* invstd, float* scale) {
  EWNET_GRID_LOOP(c, channels) {
    const float s = float(1.0 / sqrt(double(running_var[c]) + eps));
    invstd[c] = s;
    scale[c] = gamma[c] * s;
  }
}

// y = scale[c] * (x - running_mean[c]) + beta[c], per element.
__global__ void batch_norm_forward_inference_kernel(View x, const float* scale, const float* beta,
                                                    const float* running_mean, View y) {
  EWNET_GRID_LOOP(e, x.count()) {
    const std::int64_t c = (e % x.sample) / x.hw;
    y.data[y.at(e)] = scale[c] * (x.data[x.at(e)] - running_mean[c]) + beta[c];
  }
}

// Backward stage 1: partial[c, chunk] = sum of dy, partial[C*chunks + c*chunks + chunk] = sum of
// dy * xhat over the chunk.
__global__ void batch_norm_backward_partials_kernel(View x, View dy, const float* mean_in, const float* invstd_in,
                                                    double* partial) {
  const std::int64_t c = blockIdx.y, m = x.n * x.hw;
  const float mean = mean_in[c];
  const float invstd = invstd_in[c];
  double sdy = 0.0, sdyx = 0.0;
  EWNET_CHUNK_LOOP(j, m) {
    const float g = dy.data[channel_offset(dy, j, c)];
    const float xhat = (x.data[channel_offset(x, j, c)] - mean) * invstd;
    sdy += g;
    sdyx += double(g) * xhat;
  }
  sdy = detail::block_sum(sdy);
  sdyx = detail::block_sum(sdyx);
  if (threadIdx.x == 0) {
    const std::int64_t slots = std::int64_t(gridDim.y) * gridDim.x;
    partial[c * gridDim.x + blockIdx.x] = sdy;
    partial[slots + c * gridDim.x + blockIdx.x] = sdyx;
  }
}

// Backward stage 2, one thread per channel: sums[c] = sum dy, sums[C + c] = sum dy xhat (float,
// as the element-wise pass uses them), and dbeta, dgamma when wanted.
__global__ void batch_norm_backward_sums_kernel(std::int64_t channels, unsigned chunks, const double* partial,
                                                float* sums, float* dgamma, float* dbeta) {
  EWNET_GRID_LOOP(c, channels) {
    const float sum_dy = float(sum_partials(partial, c, chunks));
    const float sum_dy_xhat = float(sum_partials(partial + channels * chunks, c, chunks));
    sums[c] = sum_dy;
    sums[channels + c] = sum_dy_xhat;
    if (dgamma) dgamma[c] = sum_dy_xhat;
    if (dbeta) dbeta[c] = sum_dy;
  }
}

// Backward stage 3, per element. With batch statistics (`scale` null) dx follows the training
// formula with the saved mean and invstd; with the running statistics dx = dy scale[c]
// (batch_norm_running_scale_kernel).
__global__ void batch_norm_backward_dx_kernel(View x, View dy, const float* gamma, const float* mean_in,
                                              const float* invstd_in, const float* scale, const float* sums, View dx,
                                              bool accumulate) {
  const std::int64_t m = x.n * x.hw;
  const float fm = float(m);
  EWNET_GRID_LOOP(e, x.count()) {
    const std::int64_t c = (e % x.sample) / x.hw;
    const float g = dy.data[dy.at(e)];
    float v;
    if (!scale) {
      const float invstd = invstd_in[c];
      const float k = gamma[c] * invstd / fm;
      const float xhat = (x.data[x.at(e)] - mean_in[c]) * invstd;
      v = k * (fm * g - sums[c] - xhat * sums[x.c + c]);
    } else {
      v = g * scale[c];
    }
    float& d = dx.data[dx.at(e)];
    d = accumulate ? d + v : v;
  }
}

void batch_norm_forward_training(const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta,
                                 const Tensor<float>& y, const Tensor<float>& saved_mean,
                                 const Tensor<float>& saved_invstd, const Tensor<float>& running_mean,
                                 const Tensor<float>& running_var, const BatchNormParams& p) {
  if (x.c() == 0 || x.n() == 0 || x.shape().plane() == 0) return;
  const View vx = detail::view(x);
  const std::int64_t C = x.c(), m = vx.n * vx.hw;
  const unsigned chunks = detail::chunks_for(m, C);
  double* partial = static_cast<double*>(detail::scratch(sizeof(double) * std::size_t(2 * C) * chunks));
  double* partial_sq = partial + C * chunks;
  const dim3 grid(chunks, unsigned(C));
  batch_norm_sum_kernel<<<grid, detail::kBlock, 0, stream()>>>(vx, partial);
  EWNET_CUDA_CHECK_LAUNCH(batch_norm_sum_kernel);
  batch_norm_sqdev_kernel<<<grid, detail::kBlock, 0, stream()>>>(vx, partial, partial_sq);
  EWNET_CUDA_CHECK_LAUNCH(batch_norm_sqdev_kernel);
  batch_norm_stats_kernel<<<detail::grid_for(std::size_t(C)), detail::kBlock, 0, stream()>>>(
      C, m, chunks, partial, partial_sq, saved_mean.data(), saved_invstd.data(), running_mean.data(),
      running_var.data(), p.epsilon, float(p.momentum));
  EWNET_CUDA_CHECK_LAUNCH(batch_norm_stats_kernel);
  batch_norm_normalize_kernel<<<detail::grid_for(vx.count()), detail::kBlock, 0, stream()>>>(
      vx, gamma.data(), beta.data(), saved_mean.data(), saved_invstd.data(), detail::view(y));
  EWNET_CUDA_CHECK_LAUNCH(batch_norm_normalize_kernel);
}

void batch_norm_forward_inference(const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta,
                                  const Tensor<float>& running_mean, const Tensor<float>& running_var,
                                  const Tensor<float>& y, const BatchNormParams& p) {
  const View vx = detail::view(x);
  if (vx.count() == 0) return;
  const std::int64_t C = x.c();
  float* invstd = static_cast<float*>(detail::scratch(sizeof(float) * std::size_t(2 * C)));
  float* scale = invstd + C;
  batch_norm_running_scale_kernel<<<detail::grid_for(std::size_t(C)), detail::kBlock, 0, stream()>>>(
      C, gamma.data(), running_var.data(), p.epsilon, invstd, scale);
  EWNET_CUDA_CHECK_LAUNCH(batch_norm_running_scale_kernel);
  batch_norm_forward_inference_kernel<<<detail::grid_for(vx.count()), detail::kBlock, 0, stream()>>>(
      vx, scale, beta.data(), running_mean.data(), detail::view(y));
  EWNET_CUDA_CHECK_LAUNCH(batch_norm_forward_inference_kernel);
}

namespace {
/// With batch statistics `invstd` is the saved one and `running_var` null; with the running
/// statistics `invstd` is null and it and scale = gamma invstd are computed per channel first.
void backward(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& gamma, const float* mean,
              const float* invstd, const float* running_var, double eps, const Tensor<float>* dx, GradWrite mode,
              const Tensor<float>* dgamma, const Tensor<float>* dbeta) {
  if (x.c() == 0) return;
  const View vx = detail::view(x);
  const std::int64_t C = x.c(), m = vx.n * vx.hw;
  if (m == 0) {
    // No values: the parameter gradients are sums over nothing.
    if (dgamma) dgamma->zero();
    if (dbeta) dbeta->zero();
    return;
  }
  const unsigned chunks = detail::chunks_for(m, C);
  // Scratch: 2*C*chunks double partials, then 2*C float sums, then (running statistics) C
  // inverse deviations and C scales.
  const std::size_t partial_bytes = sizeof(double) * std::size_t(2 * C) * chunks;
  char* base = static_cast<char*>(detail::scratch(partial_bytes + sizeof(float) * std::size_t(4 * C)));
  double* partial = reinterpret_cast<double*>(base);
  float* sums = reinterpret_cast<float*>(base + partial_bytes);
  float* scale = nullptr;
  if (running_var) {
    float* running_invstd = sums + 2 * C;
    scale = running_invstd + C;
    batch_norm_running_scale_kernel<<<detail::grid_for(std::size_t(C)), detail::kBlock, 0, stream()>>>(
        C, gamma.data(), running_var, eps, running_invstd, scale);
    EWNET_CUDA_CHECK_LAUNCH(batch_norm_running_scale_kernel);
    invstd = running_invstd;
  }
  batch_norm_backward_partials_kernel<<<dim3(chunks, unsigned(C)), detail::kBlock, 0, stream()>>>(
      vx, detail::view(dy), mean, invstd, partial);
  EWNET_CUDA_CHECK_LAUNCH(batch_norm_backward_partials_kernel);
  batch_norm_backward_sums_kernel<<<detail::grid_for(std::size_t(C)), detail::kBlock, 0, stream()>>>(
      C, chunks, partial, sums, dgamma ? dgamma->data() : nullptr, dbeta ? dbeta->data() : nullptr);
  EWNET_CUDA_CHECK_LAUNCH(batch_norm_backward_sums_kernel);
  if (!dx) return;
  batch_norm_backward_dx_kernel<<<detail::grid_for(vx.count()), detail::kBlock, 0, stream()>>>(
      vx, detail::view(dy), gamma.data(), mean, invstd, scale, sums, detail::view(*dx), mode == GradWrite::accumulate);
  EWNET_CUDA_CHECK_LAUNCH(batch_norm_backward_dx_kernel);
}
}  // namespace
void batch_norm_backward_training(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& gamma,
                                  const Tensor<float>& saved_mean, const Tensor<float>& saved_invstd,
                                  const Tensor<float>* dx, GradWrite mode, const Tensor<float>* dgamma,
                                  const Tensor<float>* dbeta) {
  backward(x, dy, gamma, saved_mean.data(), saved_invstd.data(), nullptr, 0.0, dx, mode, dgamma, dbeta);
}

void batch_norm_backward_inference(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& gamma,
                                   const Tensor<float>& running_mean, const Tensor<float>& running_var,
                                   const Tensor<float>* dx, GradWrite mode, const Tensor<float>* dgamma,
                                   const Tensor<float>* dbeta, const BatchNormParams& p) {
  backward(x, dy, gamma, running_mean.data(), nullptr, running_var.data(), p.epsilon, dx, mode, dgamma, dbeta);
}

}  // namespace ewnet::cuda
