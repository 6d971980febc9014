// kernels/elementwise.cu: element-wise addition, gradient routing, fill, and the input layer's
// per-channel normalisation (ops/elementwise.hpp).
//
// Every tensor is n samples of `sample` dense elements, `stride` apart (a channel slice of a
// concatenation has stride > sample); index i runs over the dense NCHW numbering and View::at
// maps it into the strided buffer. Each output element is written by exactly one thread.
#include <ewnet/ops/elementwise.hpp>

#include "cuda/launch.cuh"

namespace ewnet::cuda {

using detail::View;

// y[i] = a[i] + b[i]. y may be a or b (the Add layer sums in place).
__global__ void add_kernel(View a, View b, View y) {
  EWNET_GRID_LOOP(i, y.count()) y.data[y.at(i)] = a.data[a.at(i)] + b.data[b.at(i)];
}

// dst[i] = src[i] (overwrite; dst is not read) or dst[i] += src[i] (accumulate).
__global__ void copy_gradient_kernel(View src, View dst, bool accumulate) {
  EWNET_GRID_LOOP(i, dst.count()) {
    const float v = src.data[src.at(i)];
    float& d = dst.data[dst.at(i)];
    d = accumulate ? d + v : v;
  }
}

// t[i] = value.
__global__ void fill_kernel(View t, float value) {
  EWNET_GRID_LOOP(i, t.count()) t.data[t.at(i)] = value;
}

// y[n,c,p] = (x[n,c,p] - mean[c]) * inv_std[c]; the channel of dense index i is (i % sample) / hw.
__global__ void normalize_channels_kernel(View x, const float* mean, const float* inv_std, View y) {
  EWNET_GRID_LOOP(i, y.count()) {
    const std::int64_t c = (i % x.sample) / x.hw;
    y.data[y.at(i)] = (x.data[x.at(i)] - mean[c]) * inv_std[c];
  }
}

void add_forward(const Tensor<float>& a, const Tensor<float>& b, const Tensor<float>& y) {
  const View vy = detail::view(y);
  if (vy.count() == 0) return;
  add_kernel<<<detail::grid_for(vy.count()), detail::kBlock, 0, stream()>>>(detail::view(a), detail::view(b), vy);
  EWNET_CUDA_CHECK_LAUNCH(add_kernel);
}

void copy_gradient(const Tensor<float>& src, const Tensor<float>& dst, GradWrite mode) {
  const View vd = detail::view(dst);
  if (vd.count() == 0) return;
  copy_gradient_kernel<<<detail::grid_for(vd.count()), detail::kBlock, 0, stream()>>>(
      detail::view(src), vd, mode == GradWrite::accumulate);
  EWNET_CUDA_CHECK_LAUNCH(copy_gradient_kernel);
}

void fill(const Tensor<float>& t, float value) {
  const View v = detail::view(t);
  if (v.count() == 0) return;
  fill_kernel<<<detail::grid_for(v.count()), detail::kBlock, 0, stream()>>>(v, value);
  EWNET_CUDA_CHECK_LAUNCH(fill_kernel);
}

void normalize_channels(const Tensor<float>& x, const Tensor<float>& mean, const Tensor<float>& inv_std,
                        const Tensor<float>& y) {
  ::ewnet::detail::check_same_device("normalize_channels", x, mean);
  ::ewnet::detail::check_same_device("normalize_channels", x, inv_std);
  const View vy = detail::view(y);
  if (vy.count() == 0) return;
  normalize_channels_kernel<<<detail::grid_for(vy.count()), detail::kBlock, 0, stream()>>>(
      detail::view(x), mean.data(), inv_std.data(), vy);
  EWNET_CUDA_CHECK_LAUNCH(normalize_channels_kernel);
}

}  // namespace ewnet::cuda
