// kernels/conv2d.cu: 2-D convolution on the GPU (ops/conv2d.hpp).
//
// The three convolution passes run through cuDNN (src/cuda/cudnn_adapter.cpp: descriptors and
// algorithm cached per shape, one shared workspace); the bias, with the ReLU when one follows,
// is added by kernels/bias_relu.cu.
// The bias gradient is the two kernels below.
#include <ewnet/ops/activation.hpp>
#include <ewnet/ops/conv2d.hpp>

#include "cuda/bias.hpp"
#include "cuda/cudnn_adapter.hpp"
#include "cuda/graph_support.hpp"
#include "cuda/launch.cuh"

namespace ewnet::cuda {

using detail::View;

// db[k] = sum over n and pixels p of dy[n,k,p], in two stages (launch.cuh, chunks_for): the
// n*hw values of channel k are split among `chunks` blocks (grid (chunks, K)), each writing the
// double sum of its share to partial[k, chunk]; then one thread per channel adds its partials in
// chunk order. A few channels of many pixels still fill the GPU, with the same bits every run.
__global__ void conv_bias_grad_partial_kernel(View dy, double* partial) {
  const std::int64_t k = blockIdx.y;
  const std::int64_t per_channel = dy.n * dy.hw;
  double s = 0.0;
  EWNET_CHUNK_LOOP(j, per_channel) {
    const std::int64_t n = j / dy.hw, p = j % dy.hw;
    s += dy.data[n * dy.stride + k * dy.hw + p];
  }
  s = detail::block_sum(s);
  if (threadIdx.x == 0) partial[k * gridDim.x + blockIdx.x] = s;
}

__global__ void conv_bias_grad_sum_kernel(std::int64_t channels, unsigned chunks, const double* partial, float* db) {
  EWNET_GRID_LOOP(k, channels) {
    double s = 0.0;
    for (unsigned b = 0; b < chunks; ++b) s += partial[k * chunks + b];
    db[k] = float(s);
  }
}

void conv2d_forward(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* b, const Tensor<float>& y,
                    const Conv2dGeometry& g) {
  if (y.empty()) return;
  cudnn::conv_forward(x, w, y, g);
  if (b) detail::add_bias(y, *b, false);
}

// cuDNN's convolution, then the bias and the ReLU in one pass over y (or the ReLU alone).
void conv2d_relu_forward(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* b,
                         const Tensor<float>& y, const Conv2dGeometry& g) {
  if (y.empty()) return;
  cudnn::conv_forward(x, w, y, g);
  if (b) {
    detail::add_bias(y, *b, true);
  } else {
    relu_forward(y, y);
  }
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
  const View v = detail::view(dy);
  const std::int64_t K = dy.c();
  const unsigned chunks = detail::chunks_for(v.n * v.hw, K);
  double* partial = static_cast<double*>(detail::scratch(sizeof(double) * std::size_t(K) * chunks));
  conv_bias_grad_partial_kernel<<<dim3(chunks, unsigned(K)), detail::kBlock, 0, stream()>>>(v, partial);
  EWNET_CUDA_CHECK_LAUNCH(conv_bias_grad_partial_kernel);
  conv_bias_grad_sum_kernel<<<detail::grid_for(std::size_t(K)), detail::kBlock, 0, stream()>>>(K, chunks, partial,
                                                                                              db.data());
  EWNET_CUDA_CHECK_LAUNCH(conv_bias_grad_sum_kernel);
}

}  // namespace ewnet::cuda
