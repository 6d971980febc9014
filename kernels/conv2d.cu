// kernels/conv2d.cu: 2-D convolution on the GPU (ops/conv2d.hpp).
//
// The three convolution passes run through cuDNN (src/cuda/cudnn_adapter.cpp: descriptors and
// algorithm cached per shape, one shared workspace); the bias is added by kernels/bias_relu.cu.
// The bias gradient is the kernel below.
#include <ewnet/ops/conv2d.hpp>

#include "cuda/bias.hpp"
#include "cuda/cudnn_adapter.hpp"
#include "cuda/launch.cuh"

namespace ewnet::cuda {

using detail::View;

// db[k] = sum over n and pixels p of dy[n,k,p]. One block per channel k; its threads stride over
// the n*hw values of that channel and the block sums their partial sums (float, tree order).
__global__ void conv_bias_grad_kernel(View dy, float* db) {
  const std::int64_t k = blockIdx.x;
  const std::int64_t per_channel = dy.n * dy.hw;
  float s = 0.0f;
  for (std::int64_t j = threadIdx.x; j < per_channel; j += blockDim.x) {
    const std::int64_t n = j / dy.hw, p = j % dy.hw;
    s += dy.data[n * dy.stride + k * dy.hw + p];
  }
  s = detail::block_sum(s);
  if (threadIdx.x == 0) db[k] = s;
}

void conv2d_forward(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* b, const Tensor<float>& y,
                    const Conv2dGeometry& g) {
  if (y.empty()) return;
  cudnn::conv_forward(x, w, y, g);
  if (b) detail::add_bias(y, *b, false);
}

void conv2d_backward_data(const Tensor<float>& dy, const Tensor<float>& w, const Tensor<float>& dx,
                          const Conv2dGeometry& g, GradWrite mode) {
  if (dx.empty()) return;
  cudnn::conv_backward_data(dy, w, dx, g, mode == GradWrite::accumulate);
}

void conv2d_backward_filter(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& dw,
                            const Conv2dGeometry& g) {
  if (x.n() == 0) {
    dw.zero();
    return;
  }
  cudnn::conv_backward_filter(x, dy, dw, g);
}

void conv2d_backward_bias(const Tensor<float>& dy, const Tensor<float>& db) {
  if (dy.c() == 0) return;
  conv_bias_grad_kernel<<<unsigned(dy.c()), detail::kBlock, 0, stream()>>>(detail::view(dy), db.data());
  EWNET_CUDA_CHECK_LAUNCH(conv_bias_grad_kernel);
}

}  // namespace ewnet::cuda
