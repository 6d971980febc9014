// kernels/bias_relu.cu: ReLU forward and backward, a convolution's bias, and bias + ReLU fused.
//
// ReLU:            y = max(x, 0);            dx = dy where y > 0, else 0 (reads y, so in place works)
// bias:            y[n,c,p] += b[c]
// bias + ReLU:     y[n,c,p] = max(y[n,c,p] + b[c], 0)   one pass over y instead of two
#include <ewnet/cuda/ops.hpp>
#include <ewnet/ops/activation.hpp>

#include "cuda/bias.hpp"
#include "cuda/launch.cuh"

namespace ewnet::cuda {

using detail::View;

// y[i] = max(x[i], 0), by the same comparison as the CPU reference (a NaN input gives 0 on both).
__global__ void relu_forward_kernel(View x, View y) {
  EWNET_GRID_LOOP(i, y.count()) {
    const float v = x.data[x.at(i)];
    y.data[y.at(i)] = v > 0.0f ? v : 0.0f;
  }
}

// dx[i] (=|+=) y[i] > 0 ? dy[i] : 0.
__global__ void relu_backward_kernel(View y, View dy, View dx, bool accumulate) {
  EWNET_GRID_LOOP(i, dx.count()) {
    const float g = y.data[y.at(i)] > 0.0f ? dy.data[dy.at(i)] : 0.0f;
    float& d = dx.data[dx.at(i)];
    d = accumulate ? d + g : g;
  }
}

// y[n,c,p] = y[n,c,p] + b[c], then max(., 0) when `relu`.
__global__ void bias_kernel(View y, const float* b, bool relu) {
  EWNET_GRID_LOOP(i, y.count()) {
    const std::int64_t c = (i % y.sample) / y.hw;
    float& v = y.data[y.at(i)];
    const float s = v + b[c];
    v = relu ? (s > 0.0f ? s : 0.0f) : s;
  }
}

void relu_forward(const Tensor<float>& x, const Tensor<float>& y) {
  const View vy = detail::view(y);
  if (vy.count() == 0) return;
  relu_forward_kernel<<<detail::grid_for(vy.count()), detail::kBlock, 0, stream()>>>(detail::view(x), vy);
  EWNET_CUDA_CHECK_LAUNCH(relu_forward_kernel);
}

void relu_backward(const Tensor<float>& y, const Tensor<float>& dy, const Tensor<float>& dx, GradWrite mode) {
  const View vd = detail::view(dx);
  if (vd.count() == 0) return;
  relu_backward_kernel<<<detail::grid_for(vd.count()), detail::kBlock, 0, stream()>>>(
      detail::view(y), detail::view(dy), vd, mode == GradWrite::accumulate);
  EWNET_CUDA_CHECK_LAUNCH(relu_backward_kernel);
}

namespace detail {
void add_bias(const Tensor<float>& y, const Tensor<float>& bias, bool relu) {
  EWNET_CHECK_AS(ShapeError, bias.size() == std::size_t(y.c()), "bias: ", bias.size(), " values for ", y.c(),
                 " channels");
  ::ewnet::detail::check_same_device("bias", y, bias);
  const View vy = view(y);
  if (vy.count() == 0) return;
  bias_kernel<<<grid_for(vy.count()), kBlock, 0, stream()>>>(vy, bias.data(), relu);
  EWNET_CUDA_CHECK_LAUNCH(bias_kernel);
}
}  // namespace detail

void bias_relu_forward(const Tensor<float>& y, const Tensor<float>& bias) { detail::add_bias(y, bias, true); }

}  // namespace ewnet::cuda
