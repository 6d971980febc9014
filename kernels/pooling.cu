// kernels/pooling.cu: max, average, global average and adaptive average pooling (ops/pooling.hpp),
// own kernels.
//
// Window of output (i, j): rows [i*sh - ph, i*sh - ph + kh) and columns [j*sw - pw, .. + kw),
// clipped to the image. Max: the largest value inside the image. Average: the sum inside the
// image divided by kh*kw (padding counts as zeros). Own kernels rather than cuDNN's because the
// max-pool gradient must go to the FIRST maximal position in row-major window order, exactly as
// the CPU reference routes it; cuDNN does not specify its tie-break.
//
// The backward kernels gather instead of scatter: one thread per input element (y, x) visits the
// outputs whose windows contain it, so each dx element has one writer, no atomics are needed, and
// overwrite (dx = g) and accumulate (dx += g) are both a single store.
#include <cfloat>

#include <ewnet/ops/pooling.hpp>

#include "cuda/launch.cuh"

namespace ewnet::cuda {

using detail::View;

namespace {
struct Geom {
  int H, W, Ho, Wo, kh, kw, sh, sw, ph, pw;
};
Geom geom(const Tensor<float>& x, const Tensor<float>& y, const PoolGeometry& g) {
  return Geom{x.h(), x.w(), y.h(), y.w(), g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w};
}

/// The outputs whose window contains input row (or column) `v`: o*s - p <= v < o*s - p + k,
/// i.e. ceil((v + p - k + 1) / s) <= o <= floor((v + p) / s), clipped to [0, out).
__device__ void covering(int v, int k, int s, int p, int out, int& first, int& last) {
  const int hi = v + p;
  const int lo = hi - k + 1;
  first = lo <= 0 ? 0 : (lo + s - 1) / s;
  last = hi / s;
  if (last > out - 1) last = out - 1;
}
}  // namespace

// y[n,c,i,j] = max over the window of x[n,c,., .]. One thread per output element.
__global__ void max_pool_forward_kernel(View x, View y, Geom g) {
  EWNET_GRID_LOOP(o, y.count()) {
    const std::int64_t plane = o / (std::int64_t(g.Ho) * g.Wo);  // n*C + c
    const int i = int((o / g.Wo) % g.Ho), j = int(o % g.Wo);
    const std::int64_t n = plane / x.c, c = plane % x.c;
    const float* in = x.data + n * x.stride + c * x.hw;
    const int y0 = max(0, i * g.sh - g.ph), y1 = min(g.H, i * g.sh - g.ph + g.kh);
    const int x0 = max(0, j * g.sw - g.pw), x1 = min(g.W, j * g.sw - g.pw + g.kw);
    float m = -INFINITY;
    for (int yy = y0; yy < y1; ++yy)
      for (int xx = x0; xx < x1; ++xx) m = fmaxf(m, in[yy * g.W + xx]);
    y.data[y.at(o)] = m;
  }
}

// dx[n,c,yy,xx] (=|+=) sum of dy[n,c,i,j] over the windows (i,j) containing (yy,xx) whose first
// maximal position, scanning the window row by row, is (yy,xx).
__global__ void max_pool_backward_kernel(View x, View y, View dy, View dx, Geom g, bool accumulate) {
  EWNET_GRID_LOOP(e, dx.count()) {
    const std::int64_t plane = e / x.hw;
    const int yy = int((e % x.hw) / g.W), xx = int(e % g.W);
    const std::int64_t n = plane / x.c, c = plane % x.c;
    const float* in = x.data + n * x.stride + c * x.hw;
    const float* out = y.data + n * y.stride + c * y.hw;
    const float* gout = dy.data + n * dy.stride + c * dy.hw;
    int i0, i1, j0, j1;
    covering(yy, g.kh, g.sh, g.ph, g.Ho, i0, i1);
    covering(xx, g.kw, g.sw, g.pw, g.Wo, j0, j1);
    float acc = 0.0f;
    for (int i = i0; i <= i1; ++i)
      for (int j = j0; j <= j1; ++j) {
        const float m = out[i * g.Wo + j];
        const int r0 = max(0, i * g.sh - g.ph), r1 = min(g.H, i * g.sh - g.ph + g.kh);
        const int q0 = max(0, j * g.sw - g.pw), q1 = min(g.W, j * g.sw - g.pw + g.kw);
        int first = -1;
        for (int r = r0; r < r1 && first < 0; ++r)
          for (int q = q0; q < q1; ++q)
            if (in[r * g.W + q] == m) {
              first = r * g.W + q;
              break;
            }
        if (first == yy * g.W + xx) acc += gout[i * g.Wo + j];
      }
    float& d = dx.data[dx.at(e)];
    d = accumulate ? d + acc : acc;
  }
}

// y[n,c,i,j] = (sum over the window inside the image) / (kh*kw).
__global__ void avg_pool_forward_kernel(View x, View y, Geom g) {
  const float inv = 1.0f / float(g.kh * g.kw);
  EWNET_GRID_LOOP(o, y.count()) {
    const std::int64_t plane = o / (std::int64_t(g.Ho) * g.Wo);
    const int i = int((o / g.Wo) % g.Ho), j = int(o % g.Wo);
    const std::int64_t n = plane / x.c, c = plane % x.c;
    const float* in = x.data + n * x.stride + c * x.hw;
    const int y0 = max(0, i * g.sh - g.ph), y1 = min(g.H, i * g.sh - g.ph + g.kh);
    const int x0 = max(0, j * g.sw - g.pw), x1 = min(g.W, j * g.sw - g.pw + g.kw);
    float s = 0.0f;
    for (int yy = y0; yy < y1; ++yy)
      for (int xx = x0; xx < x1; ++xx) s += in[yy * g.W + xx];
    y.data[y.at(o)] = s * inv;
  }
}

// dx[n,c,yy,xx] (=|+=) sum over the windows (i,j) containing (yy,xx) of dy[n,c,i,j] / (kh*kw).
__global__ void avg_pool_backward_kernel(View dy, View dx, Geom g, bool accumulate) {
  const float inv = 1.0f / float(g.kh * g.kw);
  EWNET_GRID_LOOP(e, dx.count()) {
    const std::int64_t plane = e / dx.hw;
    const int yy = int((e % dx.hw) / g.W), xx = int(e % g.W);
    const std::int64_t n = plane / dx.c, c = plane % dx.c;
    const float* gout = dy.data + n * dy.stride + c * dy.hw;
    int i0, i1, j0, j1;
    covering(yy, g.kh, g.sh, g.ph, g.Ho, i0, i1);
    covering(xx, g.kw, g.sw, g.pw, g.Wo, j0, j1);
    float acc = 0.0f;
    for (int i = i0; i <= i1; ++i)
      for (int j = j0; j <= j1; ++j) acc += gout[i * g.Wo + j] * inv;
    float& d = dx.data[dx.at(e)];
    d = accumulate ? d + acc : acc;
  }
}

// y[n,c] = (1/hw) * sum over p of x[n,c,p]. One block per (n, c) plane.
__global__ void global_avg_pool_forward_kernel(View x, View y) {
  const std::int64_t plane = blockIdx.x;
  const std::int64_t n = plane / x.c, c = plane % x.c;
  const float* in = x.data + n * x.stride + c * x.hw;
  float s = 0.0f;
  for (std::int64_t p = threadIdx.x; p < x.hw; p += blockDim.x) s += in[p];
  s = detail::block_sum(s);
  if (threadIdx.x == 0) y.data[n * y.stride + c] = s / float(x.hw);
}

// dx[n,c,p] (=|+=) dy[n,c] / hw.
__global__ void global_avg_pool_backward_kernel(View dy, View dx, bool accumulate) {
  EWNET_GRID_LOOP(e, dx.count()) {
    const std::int64_t n = e / dx.sample, c = (e % dx.sample) / dx.hw;
    const float v = dy.data[n * dy.stride + c] / float(dx.hw);
    float& d = dx.data[dx.at(e)];
    d = accumulate ? d + v : v;
  }
}

// y[n,c,i,j] = mean of x[n,c] over adaptive_window(i, H, Ho) x adaptive_window(j, W, Wo).
__global__ void adaptive_avg_pool_forward_kernel(View x, View y, int H, int W, int Ho, int Wo) {
  EWNET_GRID_LOOP(o, y.count()) {
    const std::int64_t plane = o / (std::int64_t(Ho) * Wo);
    const int i = int((o / Wo) % Ho), j = int(o % Wo);
    const std::int64_t n = plane / x.c, c = plane % x.c;
    const float* in = x.data + n * x.stride + c * x.hw;
    const AdaptiveWindow r = adaptive_window(i, H, Ho), q = adaptive_window(j, W, Wo);
    float s = 0.0f;
    for (int yy = r.begin; yy < r.end; ++yy)
      for (int xx = q.begin; xx < q.end; ++xx) s += in[yy * W + xx];
    y.data[y.at(o)] = s / float((r.end - r.begin) * (q.end - q.begin));
  }
}

// dx[n,c,yy,xx] (=|+=) sum over the outputs (i,j) whose window holds (yy,xx) of dy[n,c,i,j] / (its
// window's size); those outputs are adaptive_window(yy, Ho, H) x adaptive_window(xx, Wo, W).
__global__ void adaptive_avg_pool_backward_kernel(View dy, View dx, int H, int W, int Ho, int Wo, bool accumulate) {
  EWNET_GRID_LOOP(e, dx.count()) {
    const std::int64_t plane = e / dx.hw;
    const int yy = int((e % dx.hw) / W), xx = int(e % W);
    const std::int64_t n = plane / dx.c, c = plane % dx.c;
    const float* gout = dy.data + n * dy.stride + c * dy.hw;
    const AdaptiveWindow ri = adaptive_window(yy, Ho, H), rj = adaptive_window(xx, Wo, W);
    float acc = 0.0f;
    for (int i = ri.begin; i < ri.end; ++i) {
      const AdaptiveWindow r = adaptive_window(i, H, Ho);
      for (int j = rj.begin; j < rj.end; ++j) {
        const AdaptiveWindow q = adaptive_window(j, W, Wo);
        acc += gout[i * Wo + j] / float((r.end - r.begin) * (q.end - q.begin));
      }
    }
    float& d = dx.data[dx.at(e)];
    d = accumulate ? d + acc : acc;
  }
}

void max_pool_forward(const Tensor<float>& x, const Tensor<float>& y, const PoolGeometry& g) {
  const View vy = detail::view(y);
  if (vy.count() == 0) return;
  max_pool_forward_kernel<<<detail::grid_for(vy.count()), detail::kBlock, 0, stream()>>>(detail::view(x), vy,
                                                                                         geom(x, y, g));
  EWNET_CUDA_CHECK_LAUNCH(max_pool_forward_kernel);
}

void max_pool_backward(const Tensor<float>& x, const Tensor<float>& y, const Tensor<float>& dy,
                       const Tensor<float>& dx, const PoolGeometry& g, GradWrite mode) {
  const View vd = detail::view(dx);
  if (vd.count() == 0) return;
  max_pool_backward_kernel<<<detail::grid_for(vd.count()), detail::kBlock, 0, stream()>>>(
      detail::view(x), detail::view(y), detail::view(dy), vd, geom(x, y, g), mode == GradWrite::accumulate);
  EWNET_CUDA_CHECK_LAUNCH(max_pool_backward_kernel);
}

void avg_pool_forward(const Tensor<float>& x, const Tensor<float>& y, const PoolGeometry& g) {
  const View vy = detail::view(y);
  if (vy.count() == 0) return;
  avg_pool_forward_kernel<<<detail::grid_for(vy.count()), detail::kBlock, 0, stream()>>>(detail::view(x), vy,
                                                                                         geom(x, y, g));
  EWNET_CUDA_CHECK_LAUNCH(avg_pool_forward_kernel);
}

void avg_pool_backward(const Tensor<float>& dy, const Tensor<float>& dx, const PoolGeometry& g, GradWrite mode) {
  const View vd = detail::view(dx);
  if (vd.count() == 0) return;
  avg_pool_backward_kernel<<<detail::grid_for(vd.count()), detail::kBlock, 0, stream()>>>(
      detail::view(dy), vd, geom(dx, dy, g), mode == GradWrite::accumulate);
  EWNET_CUDA_CHECK_LAUNCH(avg_pool_backward_kernel);
}

void global_avg_pool_forward(const Tensor<float>& x, const Tensor<float>& y) {
  const std::size_t planes = std::size_t(x.n()) * std::size_t(x.c());
  if (planes == 0) return;
  EWNET_CHECK_AS(DeviceError, planes <= 0x7fffffffu, "global_avg_pool_forward: ", planes, " planes exceed one grid");
  global_avg_pool_forward_kernel<<<unsigned(planes), detail::kBlock, 0, stream()>>>(detail::view(x), detail::view(y));
  EWNET_CUDA_CHECK_LAUNCH(global_avg_pool_forward_kernel);
}

void global_avg_pool_backward(const Tensor<float>& dy, const Tensor<float>& dx, GradWrite mode) {
  const View vd = detail::view(dx);
  if (vd.count() == 0) return;
  global_avg_pool_backward_kernel<<<detail::grid_for(vd.count()), detail::kBlock, 0, stream()>>>(
      detail::view(dy), vd, mode == GradWrite::accumulate);
  EWNET_CUDA_CHECK_LAUNCH(global_avg_pool_backward_kernel);
}

void adaptive_avg_pool_forward(const Tensor<float>& x, const Tensor<float>& y) {
  const View vy = detail::view(y);
  if (vy.count() == 0) return;
  adaptive_avg_pool_forward_kernel<<<detail::grid_for(vy.count()), detail::kBlock, 0, stream()>>>(
      detail::view(x), vy, x.h(), x.w(), y.h(), y.w());
  EWNET_CUDA_CHECK_LAUNCH(adaptive_avg_pool_forward_kernel);
}

void adaptive_avg_pool_backward(const Tensor<float>& dy, const Tensor<float>& dx, GradWrite mode) {
  const View vd = detail::view(dx);
  if (vd.count() == 0) return;
  adaptive_avg_pool_backward_kernel<<<detail::grid_for(vd.count()), detail::kBlock, 0, stream()>>>(
      detail::view(dy), vd, dx.h(), dx.w(), dy.h(), dy.w(), mode == GradWrite::accumulate);
  EWNET_CUDA_CHECK_LAUNCH(adaptive_avg_pool_backward_kernel);
}

}  // namespace ewnet::cuda
