// ewnet/ops/pooling.hpp: max pooling, average pooling and global average pooling.
//
// Output size: Ho = (H + 2ph - kh) / sh + 1 (floor), likewise Wo. With ceil_mode (max pooling
// only; PyTorch's ceil_mode=True, used by GoogLeNet): Ho = ceil((H + 2ph - kh) / sh) + 1, less one
// when the last window would start in the bottom padding ((Ho - 1) sh >= H + ph), so every window
// holds an input position; windows running off the bottom/right edge are clipped like padding.
// Max:     y = max of the window over positions inside the image (padding never wins);
//          backward routes dy to the first position (row-major in the window) holding the max.
// Average: y = sum of the window / (kh*kw), padding counted as zeros (cuDNN's
//          COUNT_INCLUDE_PADDING, PyTorch's default, MATLAB's average pooling).
// Global average: y[n,c] = mean over h, w of x[n,c]; dx = dy / (H*W).
// Adaptive average (PyTorch's adaptive_avg_pool2d, GoogLeNet's auxiliary classifiers): any H x W
//          to a chosen Ho x Wo; output row i averages input rows [floor(i H / Ho), ceil((i+1) H / Ho)),
//          likewise columns, so windows differ in size and may overlap; each is divided by its own
//          size (an output larger than the input repeats rows and columns). Global average pooling
//          is the 1x1 case. The outputs whose window holds input row r are, by the same rule with
//          the sides swapped, [floor(r Ho / H), ceil((r+1) Ho / H)): the CUDA backward gathers over those.
#pragma once

#include <algorithm>
#include <limits>
#include <vector>

#include <ewnet/onednn/pooling.hpp>
#include <ewnet/ops/common.hpp>
#include <ewnet/ops/parallel.hpp>

namespace ewnet {

struct PoolGeometry {
  int kernel_h = 2, kernel_w = 2;
  int stride_h = 2, stride_w = 2;
  int pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
  int out_h(int h) const { return out_size(h, kernel_h, stride_h, pad_h); }
  int out_w(int w) const { return out_size(w, kernel_w, stride_w, pad_w); }
  int out_size(int x, int k, int s, int p) const {
    if (!ceil_mode) return (x + 2 * p - k) / s + 1;
    int o = (x + 2 * p - k + s - 1) / s + 1;
    if ((o - 1) * s >= x + p) --o;
    return o;
  }
  /// The same window in oneDNN's terms for an input of h x w: the bottom and right padding that
  /// give out_h x out_w (ceil mode's extra windows included; never below 0).
  onednn::Window window(int h, int w) const {
    const int pb = std::max(0, (out_h(h) - 1) * stride_h + kernel_h - h - pad_h);
    const int pr = std::max(0, (out_w(w) - 1) * stride_w + kernel_w - w - pad_w);
    return {{kernel_h, kernel_w}, {stride_h, stride_w}, {pad_h, pad_w}, {pb, pr}};
  }
};

#ifdef EWNET_WITH_CUDA
namespace cuda {
void max_pool_forward(const Tensor<float>& x, const Tensor<float>& y, const PoolGeometry& g);
void max_pool_backward(const Tensor<float>& x, const Tensor<float>& y, const Tensor<float>& dy,
                       const Tensor<float>& dx, const PoolGeometry& g, GradWrite mode);
void avg_pool_forward(const Tensor<float>& x, const Tensor<float>& y, const PoolGeometry& g);
void avg_pool_backward(const Tensor<float>& dy, const Tensor<float>& dx, const PoolGeometry& g, GradWrite mode);
void global_avg_pool_forward(const Tensor<float>& x, const Tensor<float>& y);
void global_avg_pool_backward(const Tensor<float>& dy, const Tensor<float>& dx, GradWrite mode);
void adaptive_avg_pool_forward(const Tensor<float>& x, const Tensor<float>& y);
void adaptive_avg_pool_backward(const Tensor<float>& dy, const Tensor<float>& dx, GradWrite mode);
}  // namespace cuda
#endif

/// Adaptive pooling's window along one axis: input [begin, end) for output `i` of `out` over `in`.
struct AdaptiveWindow {
  int begin, end;
};
#ifdef __CUDACC__
__host__ __device__
#endif
inline AdaptiveWindow adaptive_window(int i, int in, int out) {
  const long long b = (long long)i * in / out, e = ((long long)(i + 1) * in + out - 1) / out;
  return {int(b), int(e)};
}

namespace cpu {

// The reference loops (double, and float on the reference path; float runs oneDNN's pooling
// primitives, onednn/pooling.hpp). Max pooling on the CPU, one (sample, channel) plane per work item, planes split over the
// threads (ops/parallel.hpp). Forward is separable: the maximum over the clipped window equals the
// maximum over its clipped rows of the maximum over each row's clipped columns, exactly (max is
// exact), so each row is reduced once for every output column and the vertical pass runs over
// contiguous rows, which vectorises for stride 1 and 2.
// Measured at batch 32 on 2 threads (bench/layers.cpp, forward / backward, ms), window by window
// on one thread before -> now: pool1 3x3/2 on 64x56x56 7.9 / 21.0 -> 3.1 / 12.0; an inception
// module's 3x3/1 on 192x14x14 5.9 / 12.6 -> 1.6 / 7.0.
template <class T>
void max_pool_forward(const Tensor<T>& x, const Tensor<T>& y, const PoolGeometry& g) {
  const int H = x.h(), W = x.w(), Ho = y.h(), Wo = y.w(), C = x.c();
  parallel_for(size_t(x.n()) * C, 4, [&](size_t begin, size_t end) {
    std::vector<int> x0(static_cast<size_t>(Wo)), x1(static_cast<size_t>(Wo));
    for (int j = 0; j < Wo; ++j) {
      x0[size_t(j)] = std::max(0, j * g.stride_w - g.pad_w);
      x1[size_t(j)] = std::min(W, j * g.stride_w - g.pad_w + g.kernel_w);
    }
    T* rows = scratch<T>(size_t(H) * Wo, 1);  // rows[yy][j]: max of input row yy over column window j
    for (size_t item = begin; item < end; ++item) {
      const int n = int(item / size_t(C)), c = int(item % size_t(C));
      const T* in = x.sample(n) + size_t(c) * H * W;
      T* out = y.sample(n) + size_t(c) * Ho * Wo;
      for (int yy = 0; yy < H; ++yy) {
        const T* r = in + size_t(yy) * W;
        T* m = rows + size_t(yy) * Wo;
        for (int j = 0; j < Wo; ++j) {
          T v = -std::numeric_limits<T>::infinity();
          for (int xx = x0[size_t(j)]; xx < x1[size_t(j)]; ++xx) v = std::max(v, r[xx]);
          m[j] = v;
        }
      }
      for (int i = 0; i < Ho; ++i) {
        const int y0 = std::max(0, i * g.stride_h - g.pad_h), y1 = std::min(H, i * g.stride_h - g.pad_h + g.kernel_h);
        T* o = out + size_t(i) * Wo;
        std::fill(o, o + Wo, -std::numeric_limits<T>::infinity());
        for (int yy = y0; yy < y1; ++yy) {
          const T* m = rows + size_t(yy) * Wo;
          for (int j = 0; j < Wo; ++j) o[j] = std::max(o[j], m[j]);
        }
      }
    }
  });
}

// Backward routes each dy to the first position of its window (row-major) that holds the
// maximum; a plane's dx is written by one thread, adding in output order, so overlapping windows
// add up in the same order on every run. The position is found branch-free: for one output row,
// the window offsets (p, q) are visited in reverse row-major order and each pass selects, along
// the row, the offset where x equals the maximum (the last select written is the first match);
// then one pass adds dy at the selected positions. Same positions and the same order of additions
// as the search with an early exit it replaces (bitwise the same dx), without its branch misses.
// Measured at batch 32 on 2 threads (in-process A/B, alternating, best of 3 to 5, ms; the machine
// shared, load average about 6 on 2 cores): pool1 3x3/2 on 64x56x56 26.2-28.8 -> 11.8-13.5; pool2
// 3x3/2 on 192x28x28 20.3-23.6 -> 14.7-16.5; an inception 3x3/1 on 192x14x14 15.1-17.5 ->
// 13.9-16.1 (rows of 14 outputs leave little to vectorise).
template <class T>
void max_pool_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<T>& dx,
                       const PoolGeometry& g, GradWrite mode) {
  const int H = x.h(), W = x.w(), Ho = y.h(), Wo = y.w(), C = x.c();
  parallel_for(size_t(x.n()) * C, 4, [&](size_t begin, size_t end) {
    std::vector<int> at(static_cast<size_t>(Wo));
    std::vector<int> lo(size_t(g.kernel_w)), hi(size_t(g.kernel_w));
    for (int q = 0; q < g.kernel_w; ++q) {
      // Output columns j whose window column j*stride - pad + q lies in [0, W).
      const int first = g.pad_w - q, last = W - 1 + g.pad_w - q;
      const int l = first <= 0 ? 0 : (first + g.stride_w - 1) / g.stride_w;
      const int h = last < 0 ? 0 : std::min(Wo, last / g.stride_w + 1);
      lo[size_t(q)] = std::min(l, h);
      hi[size_t(q)] = h;
    }
    const int sw = g.stride_w;
    for (size_t item = begin; item < end; ++item) {
      const int n = int(item / size_t(C)), c = int(item % size_t(C));
      const T* in = x.sample(n) + size_t(c) * H * W;
      const T* out = y.sample(n) + size_t(c) * Ho * Wo;
      const T* gout = dy.sample(n) + size_t(c) * Ho * Wo;
      T* gin = dx.sample(n) + size_t(c) * H * W;
      if (mode == GradWrite::overwrite) std::fill(gin, gin + size_t(H) * W, T(0));
      for (int i = 0; i < Ho; ++i) {
        const T* m = out + size_t(i) * Wo;
        int* a = at.data();
        std::fill(a, a + Wo, -1);
        // Window positions in reverse row-major order, each pass a select along the output row:
        // the last match written is the first in row-major order.
        for (int p = g.kernel_h - 1; p >= 0; --p) {
          const int yy = i * g.stride_h - g.pad_h + p;
          if (yy < 0 || yy >= H) continue;
          for (int q = g.kernel_w - 1; q >= 0; --q) {
            const int base = yy * W + q - g.pad_w;
            for (int j = lo[size_t(q)]; j < hi[size_t(q)]; ++j) a[j] = in[base + j * sw] == m[j] ? base + j * sw : a[j];
          }
        }
        const T* gr = gout + size_t(i) * Wo;
        for (int j = 0; j < Wo; ++j)
          if (a[j] >= 0) gin[a[j]] += gr[j];
      }
    }
  });
}

// Average pooling: one (sample, channel) plane per work item, planes split over the threads
// (ops/parallel.hpp); each plane is computed as before, so the result does not depend on the split.
// Inception-v3's branch pools (3x3/1 pad 1 on every module) took 4% of its inference on one thread.
template <class T>
void avg_pool_forward(const Tensor<T>& x, const Tensor<T>& y, const PoolGeometry& g) {
  const int H = x.h(), W = x.w(), Ho = y.h(), Wo = y.w(), C = x.c();
  const T inv = T(1) / T(g.kernel_h * g.kernel_w);
  parallel_for(size_t(x.n()) * C, 4, [&](size_t begin, size_t end) {
    for (size_t item = begin; item < end; ++item) {
      const int n = int(item / size_t(C)), c = int(item % size_t(C));
      const T* in = x.sample(n) + size_t(c) * H * W;
      T* out = y.sample(n) + size_t(c) * Ho * Wo;
      for (int i = 0; i < Ho; ++i)
        for (int j = 0; j < Wo; ++j) {
          const int y0 = std::max(0, i * g.stride_h - g.pad_h), y1 = std::min(H, i * g.stride_h - g.pad_h + g.kernel_h);
          const int x0 = std::max(0, j * g.stride_w - g.pad_w), x1 = std::min(W, j * g.stride_w - g.pad_w + g.kernel_w);
          T s = 0;
          for (int yy = y0; yy < y1; ++yy)
            for (int xx = x0; xx < x1; ++xx) s += in[yy * W + xx];
          out[i * Wo + j] = s * inv;
        }
    }
  });
}

template <class T>
void avg_pool_backward(const Tensor<T>& dy, const Tensor<T>& dx, const PoolGeometry& g, GradWrite mode) {
  const int H = dx.h(), W = dx.w(), Ho = dy.h(), Wo = dy.w(), C = dy.c();
  const T inv = T(1) / T(g.kernel_h * g.kernel_w);
  parallel_for(size_t(dy.n()) * C, 4, [&](size_t begin, size_t end) {
    for (size_t item = begin; item < end; ++item) {
      const int n = int(item / size_t(C)), c = int(item % size_t(C));
      const T* gout = dy.sample(n) + size_t(c) * Ho * Wo;
      T* gin = dx.sample(n) + size_t(c) * H * W;
      if (mode == GradWrite::overwrite) std::fill(gin, gin + size_t(H) * W, T(0));
      for (int i = 0; i < Ho; ++i)
        for (int j = 0; j < Wo; ++j) {
          const int y0 = std::max(0, i * g.stride_h - g.pad_h), y1 = std::min(H, i * g.stride_h - g.pad_h + g.kernel_h);
          const int x0 = std::max(0, j * g.stride_w - g.pad_w), x1 = std::min(W, j * g.stride_w - g.pad_w + g.kernel_w);
          const T v = gout[i * Wo + j] * inv;
          for (int yy = y0; yy < y1; ++yy)
            for (int xx = x0; xx < x1; ++xx) gin[yy * W + xx] += v;
        }
    }
  });
}

template <class T>
void global_avg_pool_forward(const Tensor<T>& x, const Tensor<T>& y) {
  const size_t hw = x.shape().plane();
  for (int n = 0; n < x.n(); ++n)
    for (int c = 0; c < x.c(); ++c) {
      const T* in = x.sample(n) + size_t(c) * hw;
      T s = 0;
      for (size_t i = 0; i < hw; ++i) s += in[i];
      y.sample(n)[c] = s / T(hw);
    }
}

template <class T>
void global_avg_pool_backward(const Tensor<T>& dy, const Tensor<T>& dx, GradWrite mode) {
  const size_t hw = dx.shape().plane();
  for (int n = 0; n < dx.n(); ++n)
    for (int c = 0; c < dx.c(); ++c) {
      const T v = dy.sample(n)[c] / T(hw);
      T* out = dx.sample(n) + size_t(c) * hw;
      for (size_t i = 0; i < hw; ++i) detail::store(out[i], v, mode);
    }
}

template <class T>
void adaptive_avg_pool_forward(const Tensor<T>& x, const Tensor<T>& y) {
  const int H = x.h(), W = x.w(), Ho = y.h(), Wo = y.w();
  for (int n = 0; n < x.n(); ++n)
    for (int c = 0; c < x.c(); ++c) {
      const T* in = x.sample(n) + size_t(c) * H * W;
      T* out = y.sample(n) + size_t(c) * Ho * Wo;
      for (int i = 0; i < Ho; ++i) {
        const AdaptiveWindow r = adaptive_window(i, H, Ho);
        for (int j = 0; j < Wo; ++j) {
          const AdaptiveWindow q = adaptive_window(j, W, Wo);
          T s = 0;
          for (int yy = r.begin; yy < r.end; ++yy)
            for (int xx = q.begin; xx < q.end; ++xx) s += in[yy * W + xx];
          out[i * Wo + j] = s / T((r.end - r.begin) * (q.end - q.begin));
        }
      }
    }
}

template <class T>
void adaptive_avg_pool_backward(const Tensor<T>& dy, const Tensor<T>& dx, GradWrite mode) {
  const int H = dx.h(), W = dx.w(), Ho = dy.h(), Wo = dy.w();
  if (mode == GradWrite::overwrite) dx.zero();
  for (int n = 0; n < dy.n(); ++n)
    for (int c = 0; c < dy.c(); ++c) {
      const T* gout = dy.sample(n) + size_t(c) * Ho * Wo;
      T* gin = dx.sample(n) + size_t(c) * H * W;
      for (int i = 0; i < Ho; ++i) {
        const AdaptiveWindow r = adaptive_window(i, H, Ho);
        for (int j = 0; j < Wo; ++j) {
          const AdaptiveWindow q = adaptive_window(j, W, Wo);
          const T v = gout[i * Wo + j] / T((r.end - r.begin) * (q.end - q.begin));
          for (int yy = r.begin; yy < r.end; ++yy)
            for (int xx = q.begin; xx < q.end; ++xx) gin[yy * W + xx] += v;
        }
      }
    }
}

}  // namespace cpu

namespace detail {
template <class T>
void check_pool(const char* op, const Tensor<T>& x, const Tensor<T>& y, const PoolGeometry& g) {
  const Shape want{x.n(), x.c(), g.out_h(x.h()), g.out_w(x.w())};
  EWNET_CHECK_AS(ShapeError, y.shape() == want, op, ": output has shape ", y.shape(), ", expected ", want);
}
}  // namespace detail

/// y = max pooling of x. `cache`: the layer's (max pooling's argmax kept on the CPU engine when
/// `keep`, for max_pool_backward), or null.
template <class T>
void max_pool_forward(const Tensor<T>& x, const Tensor<T>& y, const PoolGeometry& g,
                      onednn::LayerCache* cache = nullptr, bool keep = true) {
  detail::check_pool("max_pool_forward", x, y, g);
  EWNET_CPU_PRIMITIVE(x.device(), T, onednn::pool_forward(x, y, g.window(x.h(), x.w()), true, keep, cache));
  EWNET_DISPATCH(x.device(), T, max_pool_forward, x, y, g);
}
template <class T>
void max_pool_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<T>& dx,
                       const PoolGeometry& g, GradWrite mode = GradWrite::overwrite,
                       onednn::LayerCache* cache = nullptr) {
  detail::check_pool("max_pool_backward", x, y, g);
  detail::check_same_shape("max_pool_backward", "x", x, "dx", dx);
  EWNET_CPU_PRIMITIVE(x.device(), T,
                      onednn::pool_backward(x, y, dy, dx, g.window(x.h(), x.w()), true,
                                            mode == GradWrite::accumulate, cache));
  EWNET_DISPATCH(x.device(), T, max_pool_backward, x, y, dy, dx, g, mode);
}
template <class T>
void avg_pool_forward(const Tensor<T>& x, const Tensor<T>& y, const PoolGeometry& g) {
  detail::check_pool("avg_pool_forward", x, y, g);
  EWNET_CPU_PRIMITIVE(x.device(), T, onednn::pool_forward(x, y, g.window(x.h(), x.w()), false, false, nullptr));
  EWNET_DISPATCH(x.device(), T, avg_pool_forward, x, y, g);
}
template <class T>
void avg_pool_backward(const Tensor<T>& dy, const Tensor<T>& dx, const PoolGeometry& g,
                       GradWrite mode = GradWrite::overwrite) {
  detail::check_pool("avg_pool_backward", dx, dy, g);
  EWNET_CPU_PRIMITIVE(dy.device(), T,
                      onednn::pool_backward(dx, dy, dy, dx, g.window(dx.h(), dx.w()), false,
                                            mode == GradWrite::accumulate, nullptr));
  EWNET_DISPATCH(dy.device(), T, avg_pool_backward, dy, dx, g, mode);
}

namespace detail {
/// Global average pooling of an h x w input as one window.
inline PoolGeometry global_window(int h, int w) { return {h, w, 1, 1, 0, 0, false}; }
/// Adaptive average pooling from h x w to ho x wo is plain average pooling (window h/ho, stride the
/// same, no padding) when the sizes divide: every window then has the same size.
inline bool adaptive_is_uniform(int h, int w, int ho, int wo) { return h % ho == 0 && w % wo == 0; }
inline PoolGeometry adaptive_as_pooling(int h, int w, int ho, int wo) {
  return {h / ho, w / wo, h / ho, w / wo, 0, 0, false};
}
}  // namespace detail

template <class T>
void global_avg_pool_forward(const Tensor<T>& x, const Tensor<T>& y) {
  EWNET_CHECK_AS(ShapeError, y.shape() == Shape(x.n(), x.c(), 1, 1), "global_avg_pool_forward: output ", y.shape(),
                 " for input ", x.shape());
  EWNET_CPU_PRIMITIVE(x.device(), T,
                      onednn::pool_forward(x, y, detail::global_window(x.h(), x.w()).window(x.h(), x.w()), false,
                                           false, nullptr));
  EWNET_DISPATCH(x.device(), T, global_avg_pool_forward, x, y);
}
template <class T>
void global_avg_pool_backward(const Tensor<T>& dy, const Tensor<T>& dx, GradWrite mode = GradWrite::overwrite) {
  EWNET_CHECK_AS(ShapeError, dy.shape() == Shape(dx.n(), dx.c(), 1, 1), "global_avg_pool_backward: gradient ",
                 dy.shape(), " for input ", dx.shape());
  EWNET_CPU_PRIMITIVE(dy.device(), T,
                      onednn::pool_backward(dx, dy, dy, dx, detail::global_window(dx.h(), dx.w()).window(dx.h(), dx.w()),
                                            false, mode == GradWrite::accumulate, nullptr));
  EWNET_DISPATCH(dy.device(), T, global_avg_pool_backward, dy, dx, mode);
}

template <class T>
void adaptive_avg_pool_forward(const Tensor<T>& x, const Tensor<T>& y) {
  EWNET_CHECK_AS(ShapeError, y.n() == x.n() && y.c() == x.c() && y.h() >= 1 && y.w() >= 1,
                 "adaptive_avg_pool_forward: output ", y.shape(), " for input ", x.shape());
  if (detail::adaptive_is_uniform(x.h(), x.w(), y.h(), y.w())) {
    const PoolGeometry g = detail::adaptive_as_pooling(x.h(), x.w(), y.h(), y.w());
    EWNET_CPU_PRIMITIVE(x.device(), T, onednn::pool_forward(x, y, g.window(x.h(), x.w()), false, false, nullptr));
  }
  EWNET_DISPATCH(x.device(), T, adaptive_avg_pool_forward, x, y);
}
template <class T>
void adaptive_avg_pool_backward(const Tensor<T>& dy, const Tensor<T>& dx, GradWrite mode = GradWrite::overwrite) {
  EWNET_CHECK_AS(ShapeError, dy.n() == dx.n() && dy.c() == dx.c() && dy.h() >= 1 && dy.w() >= 1,
                 "adaptive_avg_pool_backward: gradient ", dy.shape(), " for input ", dx.shape());
  if (detail::adaptive_is_uniform(dx.h(), dx.w(), dy.h(), dy.w())) {
    const PoolGeometry g = detail::adaptive_as_pooling(dx.h(), dx.w(), dy.h(), dy.w());
    EWNET_CPU_PRIMITIVE(dy.device(), T,
                        onednn::pool_backward(dx, dy, dy, dx, g.window(dx.h(), dx.w()), false,
                                              mode == GradWrite::accumulate, nullptr));
  }
  EWNET_DISPATCH(dy.device(), T, adaptive_avg_pool_backward, dy, dx, mode);
}

}  // namespace ewnet
