// ewnet/ops/conv2d.hpp: 2-D convolution (cross-correlation, as every framework computes it).
//
//   y[n,k,i,j] = b[k] + sum_{c,p,q} w[k,c,p,q] * x[n, c, i*sh - ph + p, j*sw - pw + q]
// with x = 0 outside the image. Output size: Ho = (H + 2ph - kh) / sh + 1 (floor), likewise Wo.
// Weights are [K, C, kh, kw] (PyTorch's layout); the bias is [1, K, 1, 1].
//
// CPU, float: oneDNN's convolution primitives (onednn/convolution.hpp). CPU reference (double, and
// float on the reference path): per sample, im2col into a (C*kh*kw) x (Ho*Wo) matrix, then one
// GEMM; a 1x1 stride-1 unpadded convolution needs no im2col. Backward data is W^T * dy followed by
// col2im, backward filter is dy * col^T summed over the batch. Samples are split over ewnet's
// threads, each running its own single-threaded GEMMs (see cpu::conv2d_forward). CUDA: cuDNN
// (src/cuda/cudnn_adapter.cu).
#pragma once

#include <algorithm>

#include <ewnet/blas.hpp>
#include <ewnet/onednn/convolution.hpp>
#include <ewnet/ops/activation.hpp>
#include <ewnet/ops/common.hpp>
#include <ewnet/ops/parallel.hpp>

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
  /// The same window in oneDNN's terms for an input of h x w: the bottom and right padding that
  /// give out_h x out_w (at least 0; a smaller one would drop the rows the floor drops anyway).
  onednn::Window window(int h, int w) const {
    const int pb = std::max(0, (out_h(h) - 1) * stride_h + kernel_h - h - pad_h);
    const int pr = std::max(0, (out_w(w) - 1) * stride_w + kernel_w - w - pad_w);
    return {{kernel_h, kernel_w}, {stride_h, stride_w}, {pad_h, pad_w}, {pb, pr}};
  }
};

#ifdef EWNET_WITH_CUDA
namespace cuda {
void conv2d_forward(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* b, const Tensor<float>& y,
                    const Conv2dGeometry& g);
void conv2d_relu_forward(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* b,
                         const Tensor<float>& y, const Conv2dGeometry& g);
void conv2d_backward_data(const Tensor<float>& dy, const Tensor<float>& w, const Tensor<float>& dx,
                          const Conv2dGeometry& g, GradWrite mode);
void conv2d_backward_filter(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& dw,
                            const Conv2dGeometry& g);
void conv2d_backward_bias(const Tensor<float>& dy, const Tensor<float>& db);
}  // namespace cuda
#endif

namespace cpu {

/// Output columns j whose input column j*stride - pad + q lies in [0, W): [lo, hi).
inline void valid_columns(int W, int Wo, int stride, int pad, int q, int& lo, int& hi) {
  const int first = pad - q;  // j*stride >= first
  lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  const int last = W - 1 + pad - q;  // j*stride <= last
  hi = last < 0 ? 0 : std::min(Wo, last / stride + 1);
  lo = std::min(lo, hi);
}

// im2col and col2im: the valid column range of each kernel offset is computed once per row, so
// the inner loops are plain copies (a memcpy at stride 1) and adds, with no bounds test per
// element. Rows (c, p, q) of the column matrix are split over the threads (ops/parallel.hpp) for
// im2col; input channels for col2im (each channel's plane is written by one thread, in the same
// order as before, so the sums are bitwise those of the serial loop).
//
// Measured at batch 32 on 2 threads (bench/layers.cpp, ms; before: a bounds test per element, one
// thread): conv2 3x3 64->192 at 28x28 backward data 64.0 -> 47.5; 3a 5x5 16->32 at 14x14 backward
// data 8.7 -> 3.1; 3b 3x3 backward data 39.2 -> 19.5.
// Also measured, and not kept: one GEMM per chunk of samples (the chunk's im2col columns side by
// side, results scattered back to NCHW) instead of one per sample. Interleaved in one process it
// was slower for 14 of the 19 convolution benchmarks (e.g. 3a's 1x1 192->64 backward data 1.32 ->
// 2.41 ms, conv2 3x3 forward 32.3 -> 39.6 ms): OpenBLAS already runs a 64..512 x 196 x C product
// near its speed, and the gather and scatter copies cost more than the larger GEMM saves.

/// Unfolds one CHW sample into columns: row (c,p,q), column (i,j).
template <class T>
void im2col(const T* x, int C, int H, int W, const Conv2dGeometry& g, int Ho, int Wo, T* col) {
  const int kk = g.kernel_h * g.kernel_w;
  parallel_for(size_t(C) * kk, 8, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      const int c = int(r / size_t(kk)), p = int(r % size_t(kk)) / g.kernel_w, q = int(r % size_t(kk)) % g.kernel_w;
      T* row = col + r * size_t(Ho) * Wo;
      const T* plane = x + size_t(c) * H * W;
      int lo, hi;
      valid_columns(W, Wo, g.stride_w, g.pad_w, q, lo, hi);
      for (int i = 0; i < Ho; ++i) {
        const int y = i * g.stride_h - g.pad_h + p;
        T* out = row + size_t(i) * Wo;
        if (y < 0 || y >= H) {
          std::fill(out, out + Wo, T(0));
          continue;
        }
        const T* in = plane + size_t(y) * W - g.pad_w + q;
        std::fill(out, out + lo, T(0));
        if (g.stride_w == 1) {
          std::copy(in + lo, in + hi, out + lo);
        } else {
          for (int j = lo; j < hi; ++j) out[j] = in[j * g.stride_w];
        }
        std::fill(out + hi, out + Wo, T(0));
      }
    }
  });
}

/// Folds columns back into a CHW sample, adding overlapping contributions (dx must be zeroed or
/// hold what is to be accumulated onto).
template <class T>
void col2im_add(const T* col, int C, int H, int W, const Conv2dGeometry& g, int Ho, int Wo, T* x) {
  parallel_for(size_t(C), 2, [&](size_t c0, size_t c1) {
    for (size_t c = c0; c < c1; ++c)
      for (int p = 0; p < g.kernel_h; ++p)
        for (int q = 0; q < g.kernel_w; ++q) {
          const T* row = col + ((c * g.kernel_h + p) * g.kernel_w + q) * size_t(Ho) * Wo;
          T* plane = x + c * H * W;
          int lo, hi;
          valid_columns(W, Wo, g.stride_w, g.pad_w, q, lo, hi);
          for (int i = 0; i < Ho; ++i) {
            const int y = i * g.stride_h - g.pad_h + p;
            if (y < 0 || y >= H) continue;
            T* out = plane + size_t(y) * W - g.pad_w + q;
            const T* in = row + size_t(i) * Wo;
            if (g.stride_w == 1) {
              for (int j = lo; j < hi; ++j) out[j] += in[j];
            } else {
              for (int j = lo; j < hi; ++j) out[j * g.stride_w] += in[j];
            }
          }
        }
  });
}

// One owner of the cores: the samples are handed to ewnet's pool (parallel_gemm_for), each thread
// unfolding into its own scratch and calling a single-threaded GEMM per sample (the engine's own
// threads stay idle meanwhile: cpu_engine.hpp). Measured when the GEMM was OpenBLAS's: before, each sample's GEMM was split over OpenBLAS's two threads, whose
// idle worker spun in sched_yield while ewnet's pool ran the loops in between (16% of a training
// step's samples in the scheduler); at 14x14 maps a 64..512 x 196 x C product is too small to
// split well. Forward and backward data write each sample from one thread (bitwise the same for a
// given thread count); backward filter sums one partial dw per chunk of samples, the chunks fixed
// by the batch and thread count, added in chunk order (bitwise reproducible run to run).
// Measured at batch 32 on 2 threads (in-process A/B against the previous per-sample loop over a
// 2-thread OpenBLAS, alternating, best of 3, ms; the machine shared, load average about 6 on 2
// cores, so +-20% noise): 3a 1x1 192->64 at 14x14 forward 2.15 -> 1.82, backward data 2.03 ->
// 1.72, backward filter 2.62 -> 1.09; 3a 5x5 16->32 forward 3.70 -> 2.92, backward data 3.55 ->
// 2.70; conv2 1x1 64->64 at 28x28 forward 2.91 -> 2.62; conv2 3x3 backward data 69.4 -> 57.5; the
// larger 3x3 and 4a 1x1 GEMMs within the noise (3b 3x3 forward 45.1 -> 45.3). The paper model's
// training step: 1691 -> 1531 ms wall, 1126 -> 1042 ms of CPU time a step (no spinning BLAS
// thread). Also measured, not kept: 4 chunks a thread for backward filter, taken dynamically
// (meant to absorb a core stolen by another process): within the noise, more CPU time.
// relu: y = max(0, conv + b), applied to each sample's output right after its GEMM, while it is
// still in cache (the inference path's fused convolution and ReLU: graph.hpp).
template <class T>
void conv2d_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* b, const Tensor<T>& y,
                    const Conv2dGeometry& g, bool relu = false) {
  const int C = x.c(), H = x.h(), W = x.w(), K = y.c(), Ho = y.h(), Wo = y.w();
  const int ckk = C * g.kernel_h * g.kernel_w, hw = Ho * Wo;
  parallel_gemm_for(size_t(x.n()), size_t(x.n()), [&](int, size_t n0, size_t n1) {
    T* col = g.is_pointwise() ? nullptr : scratch<T>(size_t(ckk) * hw);
    for (size_t n = n0; n < n1; ++n) {
      const T* xs = x.sample(int(n));
      T* ys = y.sample(int(n));
      const T* a = xs;
      if (col) {
        im2col(xs, C, H, W, g, Ho, Wo, col);
        a = col;
      }
      if (b) {
        for (int k = 0; k < K; ++k) std::fill(ys + size_t(k) * hw, ys + size_t(k + 1) * hw, b->data()[k]);
      }
      gemm(false, false, K, hw, ckk, T(1), w.data(), ckk, a, hw, b ? T(1) : T(0), ys, hw);
      if (relu)
        for (size_t i = 0, e = size_t(K) * hw; i < e; ++i) ys[i] = ys[i] > T(0) ? ys[i] : T(0);
    }
  });
}

template <class T>
void conv2d_backward_data(const Tensor<T>& dy, const Tensor<T>& w, const Tensor<T>& dx, const Conv2dGeometry& g,
                          GradWrite mode) {
  const int C = dx.c(), H = dx.h(), W = dx.w(), K = dy.c(), Ho = dy.h(), Wo = dy.w();
  const int ckk = C * g.kernel_h * g.kernel_w, hw = Ho * Wo;
  const T beta = mode == GradWrite::accumulate ? T(1) : T(0);
  parallel_gemm_for(size_t(dy.n()), size_t(dy.n()), [&](int, size_t n0, size_t n1) {
    if (g.is_pointwise()) {
      for (size_t n = n0; n < n1; ++n)
        gemm(true, false, C, hw, K, T(1), w.data(), ckk, dy.sample(int(n)), hw, beta, dx.sample(int(n)), hw);
      return;
    }
    T* col = scratch<T>(size_t(ckk) * hw);
    for (size_t n = n0; n < n1; ++n) {
      gemm(true, false, ckk, hw, K, T(1), w.data(), ckk, dy.sample(int(n)), hw, T(0), col, hw);
      T* xs = dx.sample(int(n));
      if (mode == GradWrite::overwrite) std::fill(xs, xs + dx.shape().sample_size(), T(0));
      col2im_add(col, C, H, W, g, Ho, Wo, xs);
    }
  });
}

template <class T>
void conv2d_backward_filter(const Tensor<T>& x, const Tensor<T>& dy, const Tensor<T>& dw, const Conv2dGeometry& g) {
  const int C = x.c(), H = x.h(), W = x.w(), K = dy.c(), Ho = dy.h(), Wo = dy.w();
  const int ckk = C * g.kernel_h * g.kernel_w, hw = Ho * Wo;
  if (x.n() == 0) {
    dw.zero();
    return;
  }
  const size_t wsize = size_t(K) * ckk;
  const int chunks = std::min(x.n(), thread_count());
  // Chunk 0 sums into dw, chunk c > 0 into partial + (c-1)*wsize (the caller's scratch slot 1).
  T* partial = chunks > 1 ? scratch<T>(wsize * size_t(chunks - 1), 1) : nullptr;
  parallel_gemm_for(size_t(x.n()), size_t(chunks), [&](int chunk, size_t n0, size_t n1) {
    T* out = chunk == 0 ? dw.data() : partial + size_t(chunk - 1) * wsize;
    T* col = g.is_pointwise() ? nullptr : scratch<T>(size_t(ckk) * hw);
    for (size_t n = n0; n < n1; ++n) {
      const T* a = x.sample(int(n));
      if (col) {
        im2col(x.sample(int(n)), C, H, W, g, Ho, Wo, col);
        a = col;
      }
      gemm(false, true, K, ckk, hw, T(1), dy.sample(int(n)), hw, a, hw, n > n0 ? T(1) : T(0), out, ckk);
    }
  });
  if (chunks > 1) {
    T* d = dw.data();
    parallel_for(wsize, size_t(1) << 14, [&](size_t i0, size_t i1) {
      for (int c = 1; c < chunks; ++c) {
        const T* p = partial + size_t(c - 1) * wsize;
        for (size_t i = i0; i < i1; ++i) d[i] += p[i];
      }
    });
  }
}

template <class T>
void conv2d_backward_bias(const Tensor<T>& dy, const Tensor<T>& db) {
  // Channels split over the threads; each channel's sum runs in 16 lanes (lane l adds the pixels
  // i with i % 16 == l, in order, over the samples), then the tail and the lanes in a fixed order:
  // vectorised, and bitwise reproducible. The serial sum (one dependency chain) it replaces:
  // conv1's bias gradient (64x56x56, batch 32, 2 threads) 2.75-5.42 -> 0.56-1.03 ms; 3a's 3x3
  // (128x14x14) 0.40-0.66 -> 0.06-0.07 ms (in-process A/B, shared machine).
  const size_t hw = dy.shape().plane();
  constexpr size_t L = 16;
  parallel_for(size_t(dy.c()), 1, [&](size_t k0, size_t k1) {
    for (size_t k = k0; k < k1; ++k) {
      T lane[L] = {};
      T tail = 0;
      for (int n = 0; n < dy.n(); ++n) {
        const T* p = dy.sample(n) + k * hw;
        size_t i = 0;
        for (; i + L <= hw; i += L)
          for (size_t l = 0; l < L; ++l) lane[l] += p[i + l];
        for (; i < hw; ++i) tail += p[i];
      }
      T sum = tail;
      for (size_t l = 0; l < L; ++l) sum += lane[l];
      db.data()[k] = sum;
    }
  });
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

/// y = conv(x, w) + b (b may be null). `cache`: the layer's (its weights kept in the CPU engine's
/// layout; onednn/adapter.hpp), or null. `pass`: whether a backward pass follows (the CPU engine
/// may choose another algorithm where none does; onednn/convolution.hpp).
template <class T>
void conv2d_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* b, const Tensor<T>& y,
                    const Conv2dGeometry& g, onednn::LayerCache* cache = nullptr,
                    onednn::Pass pass = onednn::Pass::training) {
  detail::check_conv2d("conv2d_forward", x, w, y, g);
  detail::check_same_device("conv2d_forward", x, w);
  EWNET_CPU_PRIMITIVE(x.device(), T, onednn::conv2d_forward(x, w, b, y, g.window(x.h(), x.w()), false, pass, cache));
  EWNET_DISPATCH(x.device(), T, conv2d_forward, x, w, b, y, g);
}

/// y = max(0, conv(x, w) + b): the inference path's convolution with its ReLU. One pass over the
/// output on the CPU (oneDNN: a ReLU post-op); on CUDA, cuDNN's convolution then the bias and the
/// ReLU in one pass. Equal, bitwise, to conv2d_forward followed by relu_forward.
template <class T>
void conv2d_relu_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* b, const Tensor<T>& y,
                         const Conv2dGeometry& g, onednn::LayerCache* cache = nullptr) {
  detail::check_conv2d("conv2d_relu_forward", x, w, y, g);
  detail::check_same_device("conv2d_relu_forward", x, w);
  EWNET_CPU_PRIMITIVE(x.device(), T,
                      onednn::conv2d_forward(x, w, b, y, g.window(x.h(), x.w()), true, onednn::Pass::inference, cache));
  if (x.device() == Device::cpu) {
    cpu::conv2d_forward(x, w, b, y, g, true);
    return;
  }
#ifdef EWNET_WITH_CUDA
  if constexpr (std::is_same_v<T, float>) {
    cuda::conv2d_relu_forward(x, w, b, y, g);
    return;
  }
#endif
  conv2d_forward(x, w, b, y, g);  // says why double (or a build without CUDA) cannot run there
  relu_forward(y, y);
}

/// dx (=|+=) conv_transpose(dy, w).
template <class T>
void conv2d_backward_data(const Tensor<T>& dy, const Tensor<T>& w, const Tensor<T>& dx, const Conv2dGeometry& g,
                          GradWrite mode = GradWrite::overwrite, onednn::LayerCache* cache = nullptr) {
  detail::check_conv2d("conv2d_backward_data", dx, w, dy, g);
  EWNET_CPU_PRIMITIVE(dy.device(), T,
                      onednn::conv2d_backward_data(dy, w, dx, g.window(dx.h(), dx.w()),
                                                   mode == GradWrite::accumulate, cache));
  EWNET_DISPATCH(dy.device(), T, conv2d_backward_data, dy, w, dx, g, mode);
}

/// dw = sum over the batch of dy (*) x (overwrites dw).
template <class T>
void conv2d_backward_filter(const Tensor<T>& x, const Tensor<T>& dy, const Tensor<T>& dw, const Conv2dGeometry& g) {
  detail::check_conv2d("conv2d_backward_filter", x, dw, dy, g);
  EWNET_CPU_PRIMITIVE(x.device(), T,
                      onednn::conv2d_backward_weights(x, dy, &dw, nullptr, dw.shape(), g.window(x.h(), x.w()),
                                                      nullptr));
  EWNET_DISPATCH(x.device(), T, conv2d_backward_filter, x, dy, dw, g);
}

/// db[k] = sum of dy over batch and pixels (overwrites db).
template <class T>
void conv2d_backward_bias(const Tensor<T>& dy, const Tensor<T>& db) {
  EWNET_CHECK_AS(ShapeError, db.size() == size_t(dy.c()), "conv2d_backward_bias: bias has ", db.size(),
                 " elements for ", dy.c(), " channels");
  EWNET_DISPATCH(dy.device(), T, conv2d_backward_bias, dy, db);
}

/// The filter and bias gradients of one convolution (each overwritten; either may be null): one
/// primitive on the CPU engine, conv2d_backward_filter and conv2d_backward_bias elsewhere.
template <class T>
void conv2d_backward_weights(const Tensor<T>& x, const Tensor<T>& dy, const Tensor<T>* dw, const Tensor<T>* db,
                             const Shape& wshape, const Conv2dGeometry& g, const onednn::LayerCache* cache = nullptr) {
  if (dw) detail::check_conv2d("conv2d_backward_weights", x, *dw, dy, g);
  if (db)
    EWNET_CHECK_AS(ShapeError, db->size() == size_t(dy.c()), "conv2d_backward_weights: bias has ", db->size(),
                   " elements for ", dy.c(), " channels");
  EWNET_CPU_PRIMITIVE(x.device(), T,
                      onednn::conv2d_backward_weights(x, dy, dw, db, wshape, g.window(x.h(), x.w()), cache));
  if (dw) conv2d_backward_filter(x, dy, *dw, g);
  if (db) conv2d_backward_bias(dy, *db);
}

}  // namespace ewnet
