// kernels/fully_connected.cu: y = x W^T + b through cuBLAS (ops/fully_connected.hpp).
//
// cuBLAS is column-major; a row-major matrix M [r x c] with leading dimension ld is, to cuBLAS,
// the column-major M^T [c x r] with the same ld. With x [N x D] (ld = x's batch stride, so a
// channel slice is read in place), W [K x D] (ld D), y [N x K] (ld = y's batch stride):
//   forward   y^T [K x N]  = W [K x D] x^T [D x N]      gemm(T, N, K, N, D; W ld D, x ld xs)
//   data      dx^T [D x N] = W^T [D x K] dy^T [K x N]   gemm(N, N, D, N, K; W ld D, dy ld dys)
//   weights   dW^T [D x K] = x^T [D x N] dy [N x K]     gemm(N, T, D, K, N; x ld xs, dy ld dys)
//   bias      db[k] = sum_n dy[n, k]                    the column-sum kernel below
// The bias enters the forward pass by writing it into y first and running the product with
// beta = 1, as the CPU reference does.
#include <algorithm>

#include <ewnet/ops/fully_connected.hpp>

#include "cuda/cublas.hpp"
#include "cuda/launch.cuh"

namespace ewnet::cuda {

namespace {
int ld(const Tensor<float>& t) {
  return int(std::max<std::size_t>(t.batch_stride(), std::max<std::size_t>(t.shape().sample_size(), 1)));
}
}  // namespace

// y[n, k] = b[k] for every sample n (the forward product then adds x W^T with beta = 1).
__global__ void fc_bias_broadcast_kernel(float* y, std::int64_t ldy, std::int64_t N, std::int64_t K, const float* b) {
  EWNET_GRID_LOOP(i, N * K) y[(i / K) * ldy + i % K] = b[i % K];
}

// db[k] = sum over n of dy[n, k]: one thread per k, summing down the column in sample order.
__global__ void fc_bias_grad_kernel(const float* dy, std::int64_t lddy, std::int64_t N, std::int64_t K, float* db) {
  EWNET_GRID_LOOP(k, K) {
    float s = 0.0f;
    for (std::int64_t n = 0; n < N; ++n) s += dy[n * lddy + k];
    db[k] = s;
  }
}

void fully_connected_forward(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* b,
                             const Tensor<float>& y) {
  const int N = x.n(), D = int(x.shape().sample_size()), K = y.c();
  if (N == 0 || K == 0) return;
  if (b) {
    fc_bias_broadcast_kernel<<<detail::grid_for(std::size_t(N) * K), detail::kBlock, 0, stream()>>>(
        y.data(), ld(y), N, K, b->data());
    EWNET_CUDA_CHECK_LAUNCH(fc_bias_broadcast_kernel);
  }
  const float one = 1.0f, beta = b ? 1.0f : 0.0f;
  EWNET_CUDA_CHECK(cublasSgemm(blas::handle(), CUBLAS_OP_T, CUBLAS_OP_N, K, N, D, &one, w.data(), D, x.data(), ld(x),
                               &beta, y.data(), ld(y)));
}

void fully_connected_backward_data(const Tensor<float>& dy, const Tensor<float>& w, const Tensor<float>& dx,
                                   GradWrite mode) {
  const int N = dx.n(), D = int(dx.shape().sample_size()), K = dy.c();
  if (N == 0 || D == 0) return;
  // beta = 0 never reads dx (cuBLAS does not read C when beta is 0).
  const float one = 1.0f, beta = mode == GradWrite::accumulate ? 1.0f : 0.0f;
  EWNET_CUDA_CHECK(cublasSgemm(blas::handle(), CUBLAS_OP_N, CUBLAS_OP_N, D, N, K, &one, w.data(), D, dy.data(),
                               ld(dy), &beta, dx.data(), ld(dx)));
}

void fully_connected_backward_weights(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>* dw,
                                      const Tensor<float>* db) {
  const int N = x.n(), D = int(x.shape().sample_size()), K = dy.c();
  if (dw && D > 0 && K > 0) {
    if (N == 0) {
      dw->zero();
    } else {
      const float one = 1.0f, zero = 0.0f;
      EWNET_CUDA_CHECK(cublasSgemm(blas::handle(), CUBLAS_OP_N, CUBLAS_OP_T, D, K, N, &one, x.data(), ld(x),
                                   dy.data(), ld(dy), &zero, dw->data(), D));
    }
  }
  if (db && K > 0) {
    fc_bias_grad_kernel<<<detail::grid_for(std::size_t(K)), detail::kBlock, 0, stream()>>>(dy.data(), ld(dy), N, K,
                                                                                           db->data());
    EWNET_CUDA_CHECK_LAUNCH(fc_bias_grad_kernel);
  }
}

}  // namespace ewnet::cuda
