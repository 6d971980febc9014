// ewnet/ops/conv2d.hpp: 2-D convolution (cross-correlation, as every framework computes it).
//
//   y[n,k,i,j] = b[k] + sum_{c,p,q} w[k,c,p,q] * x[n, c, i*sh - ph + p, j*sw - pw + q]
// with x = 0 outside the image. Output size: Ho = (H + 2ph - kh) / sh + 1 (floor), likewise Wo.
// Weights are [K, C, kh, kw] (PyTorch's layout); the bias is [1, K, 1, 1].
//
// CPU: per sample, im2col into a (C*kh*kw) x (Ho*Wo) matrix, then one GEMM; a 1x1 stride-1 unpadded
// convolution needs no im2col. Backward data is W^T * dy followed by col2im, backward filter is
// dy * col^T summed over the batch. CUDA: cuDNN (src/cuda/cudnn_adapter.cu).
#pragma once

#include <algorithm>

#include <ewnet/blas.hpp>
#include <ewnet/ops/common.hpp>

namespace ewnet {

struct Conv2dGeometry {
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;

  int out_h(int h) const { return (h + 2 * pad_h - kernel_h) / stride_h + 1; }
  int out_w(int w) const { return (w + 2 * pad_w - kernel_w) / stride_w + 1; }
  bool is_pointwise() const {
    return kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
  }
};

#ifdef EWNET_WITH_CUDA
namespace cuda {
void conv2d_forward(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* b, const Tensor<float>& y,
                    const Conv2dGeometry& g);
void conv2d_backward_data(const Tensor<float>& dy, const Tensor<float>& w, const Tensor<float>& dx,
                          const Conv2dGeometry& g, GradWrite mode);
void conv2d_backward_filter(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& dw,
                            const Conv2dGeometry& g);
void conv2d_backward_bias(const Tensor<float>& dy, const Tensor<float>& db);
}  // namespace cuda
#endif

namespace cpu {

/// Unfolds one CHW sample into columns: row (c,p,q), column (i,j).
template <class T>
void im2col(const T* x, int C, int H, int W, const Conv2dGeometry& g, int Ho, int Wo, T* col) {
  for (int c = 0; c < C; ++c)
    for (int p = 0; p < g.kernel_h; ++p)
      for (int q = 0; q < g.kernel_w; ++q) {
        T* row = col + ((size_t(c) * g.kernel_h + p) * g.kernel_w + q) * size_t(Ho) * Wo;
        const T* plane = x + size_t(c) * H * W;
        for (int i = 0; i < Ho; ++i) {
          const int y = i * g.stride_h - g.pad_h + p;
          T* out = row + size_t(i) * Wo;
          if (y < 0 || y >= H) {
            std::fill(out, out + Wo, T(0));
            continue;
          }
          const T* in = plane + size_t(y) * W;
          for (int j = 0; j < Wo; ++j) {
            const int xx = j * g.stride_w - g.pad_w + q;
            out[j] = (xx >= 0 && xx < W) ? in[xx] : T(0);
          }
        }
      }
}

/// Folds columns back into a CHW sample, adding overlapping contributions (dx must be zeroed or
/// hold what is to be accumulated onto).
template <class T>
void col2im_add(const T* col, int C, int H, int W, const Conv2dGeometry& g, int Ho, int Wo, T* x) {
  for (int c = 0; c < C; ++c)
    for (int p = 0; p < g.kernel_h; ++p)
      for (int q = 0; q < g.kernel_w; ++q) {
        const T* row = col + ((size_t(c) * g.kernel_h + p) * g.kernel_w + q) * size_t(Ho) * Wo;
        T* plane = x + size_t(c) * H * W;
        for (int i = 0; i < Ho; ++i) {
          const int y = i * g.stride_h - g.pad_h + p;
          if (y < 0 || y >= H) continue;
          T* out = plane + size_t(y) * W;
          const T* in = row + size_t(i) * Wo;
          for (int j = 0; j < Wo; ++j) {
            const int xx = j * g.stride_w - g.pad_w + q;
            if (xx >= 0 && xx < W) out[xx] += in[j];
          }
        }
      }
}

template <class T>
void conv2d_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* b, const Tensor<T>& y,
                    const Conv2dGeometry& g) {
  const int C = x.c(), H = x.h(), W = x.w(), K = y.c(), Ho = y.h(), Wo = y.w();
  const int ckk = C * g.kernel_h * g.kernel_w, hw = Ho * Wo;
  T* col = g.is_pointwise() ? nullptr : scratch<T>(size_t(ckk) * hw);
  for (int n = 0; n < x.n(); ++n) {
    const T* xs = x.sample(n);
    T* ys = y.sample(n);
    const T* a = xs;
    if (col) {
      im2col(xs, C, H, W, g, Ho, Wo, col);
      a = col;
    }
    if (b) {
      for (int k = 0; k < K; ++k) std::fill(ys + size_t(k) * hw, ys + size_t(k + 1) * hw, b->data()[k]);
    }
    gemm(false, false, K, hw, ckk, T(1), w.data(), ckk, a, hw, b ? T(1) : T(0), ys, hw);
  }
}

template <class T>
void conv2d_backward_data(const Tensor<T>& dy, const Tensor<T>& w, const Tensor<T>& dx, const Conv2dGeometry& g,
                          GradWrite mode) {
  const int C = dx.c(), H = dx.h(), W = dx.w(), K = dy.c(), Ho = dy.h(), Wo = dy.w();
  const int ckk = C * g.kernel_h * g.kernel_w, hw = Ho * Wo;
  const T beta = mode == GradWrite::accumulate ? T(1) : T(0);
  if (g.is_pointwise()) {
    for (int n = 0; n < dy.n(); ++n) gemm(true, false, C, hw, K, T(1), w.data(), ckk, dy.sample(n), hw, beta, dx.sample(n), hw);
    return;
  }
  T* col = scratch<T>(size_t(ckk) * hw);
  for (int n = 0; n < dy.n(); ++n) {
    gemm(true, false, ckk, hw, K, T(1), w.data(), ckk, dy.sample(n), hw, T(0), col, hw);
    T* xs = dx.sample(n);
    if (mode == GradWrite::overwrite) std::fill(xs, xs + dx.shape().sample_size(), T(0));
    col2im_add(col, C, H, W, g, Ho, Wo, xs);
  }
}

template <class T>
void conv2d_backward_filter(const Tensor<T>& x, const Tensor<T>& dy, const Tensor<T>& dw, const Conv2dGeometry& g) {
  const int C = x.c(), H = x.h(), W = x.w(), K = dy.c(), Ho = dy.h(), Wo = dy.w();
  const int ckk = C * g.kernel_h * g.kernel_w, hw = Ho * Wo;
  T* col = g.is_pointwise() ? nullptr : scratch<T>(size_t(ckk) * hw);
  for (int n = 0; n < x.n(); ++n) {
    const T* a = x.sample(n);
    if (col) {
      im2col(x.sample(n), C, H, W, g, Ho, Wo, col);
      a = col;
    }
    gemm(false, true, K, ckk, hw, T(1), dy.sample(n), hw, a, hw, n ? T(1) : T(0), dw.data(), ckk);
  }
  if (x.n() == 0) dw.zero();
}

template <class T>
void conv2d_backward_bias(const Tensor<T>& dy, const Tensor<T>& db) {
  const size_t hw = dy.shape().plane();
  for (int k = 0; k < dy.c(); ++k) {
    T sum = 0;
    for (int n = 0; n < dy.n(); ++n) {
      const T* p = dy.sample(n) + size_t(k) * hw;
      for (size_t i = 0; i < hw; ++i) sum += p[i];
    }
    db.data()[k] = sum;
  }
}

}  // namespace cpu

namespace detail {
template <class T>
void check_conv2d(const char* op, const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& y, const Conv2dGeometry& g) {
  const Shape want{x.n(), w.n(), g.out_h(x.h()), g.out_w(x.w())};
  EWNET_CHECK_AS(ShapeError, w.c() == x.c() && w.h() == g.kernel_h && w.w() == g.kernel_w, op, ": weights ", w.shape(),
                 " do not fit input ", x.shape(), " with a ", g.kernel_h, "x", g.kernel_w, " kernel");
  EWNET_CHECK_AS(ShapeError, y.shape() == want, op, ": output has shape ", y.shape(), ", expected ", want);
  EWNET_CHECK_AS(ShapeError, w.contiguous(), op, ": weights must be dense");
}
}  // namespace detail

/// y = conv(x, w) + b (b may be null).
template <class T>
void conv2d_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* b, const Tensor<T>& y,
                    const Conv2dGeometry& g) {
  detail::check_conv2d("conv2d_forward", x, w, y, g);
  detail::check_same_device("conv2d_forward", x, w);
  EWNET_DISPATCH(x.device(), T, conv2d_forward, x, w, b, y, g);
}

/// dx (=|+=) conv_transpose(dy, w).
template <class T>
void conv2d_backward_data(const Tensor<T>& dy, const Tensor<T>& w, const Tensor<T>& dx, const Conv2dGeometry& g,
                          GradWrite mode = GradWrite::overwrite) {
  detail::check_conv2d("conv2d_backward_data", dx, w, dy, g);
  EWNET_DISPATCH(dy.device(), T, conv2d_backward_data, dy, w, dx, g, mode);
}

/// dw = sum over the batch of dy (*) x (overwrites dw).
template <class T>
void conv2d_backward_filter(const Tensor<T>& x, const Tensor<T>& dy, const Tensor<T>& dw, const Conv2dGeometry& g) {
  detail::check_conv2d("conv2d_backward_filter", x, dw, dy, g);
  EWNET_DISPATCH(x.device(), T, conv2d_backward_filter, x, dy, dw, g);
}

/// db[k] = sum of dy over batch and pixels (overwrites db).
template <class T>
void conv2d_backward_bias(const Tensor<T>& dy, const Tensor<T>& db) {
  EWNET_CHECK_AS(ShapeError, db.size() == size_t(dy.c()), "conv2d_backward_bias: bias has ", db.size(),
                 " elements for ", dy.c(), " channels");
  EWNET_DISPATCH(dy.device(), T, conv2d_backward_bias, dy, db);
}

}  // namespace ewnet
