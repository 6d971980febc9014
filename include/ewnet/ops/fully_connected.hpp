// ewnet/ops/fully_connected.hpp: y = x W^T + b over flattened samples.
//
// x is [N, C, H, W] seen as N rows of D = C*H*W; W is [K, D] (stored [K, D, 1, 1], PyTorch's
// nn.Linear layout); b is [K]; y is [N, K, 1, 1].
//   dx = dy W,   dW = dy^T x,   db = column sums of dy.
// CPU, float: oneDNN's inner-product primitives (onednn/inner_product.hpp); the reference (double,
// and float on the reference path): GEMMs; CUDA: cuBLAS. A batch stride larger than D is handled as
// the row pitch.
#pragma once

#include <ewnet/blas.hpp>
#include <ewnet/onednn/inner_product.hpp>
#include <ewnet/ops/common.hpp>

namespace ewnet {

#ifdef EWNET_WITH_CUDA
namespace cuda {
void fully_connected_forward(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* b,
                             const Tensor<float>& y);
void fully_connected_backward_data(const Tensor<float>& dy, const Tensor<float>& w, const Tensor<float>& dx,
                                   GradWrite mode);
void fully_connected_backward_weights(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>* dw,
                                      const Tensor<float>* db);
}  // namespace cuda
#endif

namespace cpu {
template <class T>
void fully_connected_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* b, const Tensor<T>& y) {
  const int N = x.n(), D = int(x.shape().sample_size()), K = y.c();
  if (b)
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) y.sample(n)[k] = b->data()[k];
  gemm(false, true, N, K, D, T(1), x.data(), int(x.batch_stride()), w.data(), D, b ? T(1) : T(0), y.data(),
       int(y.batch_stride()));
}
template <class T>
void fully_connected_backward_data(const Tensor<T>& dy, const Tensor<T>& w, const Tensor<T>& dx, GradWrite mode) {
  const int N = dx.n(), D = int(dx.shape().sample_size()), K = dy.c();
  gemm(false, false, N, D, K, T(1), dy.data(), int(dy.batch_stride()), w.data(), D,
       mode == GradWrite::accumulate ? T(1) : T(0), dx.data(), int(dx.batch_stride()));
}
template <class T>
void fully_connected_backward_weights(const Tensor<T>& x, const Tensor<T>& dy, const Tensor<T>* dw,
                                      const Tensor<T>* db) {
  const int N = x.n(), D = int(x.shape().sample_size()), K = dy.c();
  if (dw) gemm(true, false, K, D, N, T(1), dy.data(), int(dy.batch_stride()), x.data(), int(x.batch_stride()), T(0),
               dw->data(), D);
  if (db)
    for (int k = 0; k < K; ++k) {
      T s = 0;
      for (int n = 0; n < N; ++n) s += dy.sample(n)[k];
      db->data()[k] = s;
    }
}
}  // namespace cpu

namespace detail {
template <class T>
void check_fc(const char* op, const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& y) {
  EWNET_CHECK_AS(ShapeError, size_t(w.c()) * w.h() * w.w() == x.shape().sample_size() && w.n() == y.c(), op,
                 ": weights ", w.shape(), " do not map input ", x.shape(), " to output ", y.shape());
  EWNET_CHECK_AS(ShapeError, y.n() == x.n() && y.h() == 1 && y.w() == 1, op, ": output ", y.shape(),
                 " for input ", x.shape());
}
}  // namespace detail

/// `cache`: the layer's (its weights kept in the CPU engine's layout), or null.
template <class T>
void fully_connected_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* b, const Tensor<T>& y,
                             onednn::LayerCache* cache = nullptr) {
  detail::check_fc("fully_connected_forward", x, w, y);
  EWNET_CPU_PRIMITIVE(x.device(), T, onednn::inner_product_forward(x, w, b, y, cache));
  EWNET_DISPATCH(x.device(), T, fully_connected_forward, x, w, b, y);
}
template <class T>
void fully_connected_backward_data(const Tensor<T>& dy, const Tensor<T>& w, const Tensor<T>& dx,
                                   GradWrite mode = GradWrite::overwrite, onednn::LayerCache* cache = nullptr) {
  detail::check_fc("fully_connected_backward_data", dx, w, dy);
  EWNET_CPU_PRIMITIVE(dy.device(), T,
                      onednn::inner_product_backward_data(dy, w, dx, mode == GradWrite::accumulate, cache));
  EWNET_DISPATCH(dy.device(), T, fully_connected_backward_data, dy, w, dx, mode);
}
/// dW = dy^T x and db = sum of dy (each overwritten; either may be null).
template <class T>
void fully_connected_backward_weights(const Tensor<T>& x, const Tensor<T>& dy, const Tensor<T>* dw,
                                      const Tensor<T>* db, const onednn::LayerCache* cache = nullptr) {
  EWNET_CPU_PRIMITIVE(x.device(), T, onednn::inner_product_backward_weights(x, dy, dw, db, cache));
  EWNET_DISPATCH(x.device(), T, fully_connected_backward_weights, x, dy, dw, db);
}

}  // namespace ewnet
