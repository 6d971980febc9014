// kernels/softmax.cu: softmax over channels, cross-entropy, and the fused softmax + cross-entropy
// gradient (ops/softmax.hpp).
//
//   y[c]  = exp(x[c] - max_j x[j]) / sum_j exp(x[j] - max_j x[j])     at each (n, pixel)
//   dx[c] = y[c] * (dy[c] - sum_j dy[j] y[j])
//   loss[n] = -log(max(p[n, t_n], FLT_MIN))
//   dlogits[n, c] = scale * (p[n, c] - [c == t_n])
// One thread per (n, pixel) walks the C channels (hw apart) for softmax; classifiers have hw = 1
// and C of a few to a thousand classes, where one thread per sample is already memory-bound.
//
// Labels on the device are checked on the device: a label outside [0, K) is reported through
// the error sink (the next synchronisation throws DeviceError naming it), its loss is NaN, its
// gradient zero, and nothing is read outside the probabilities.
#include <cfloat>

#include <ewnet/ops/softmax.hpp>

#include "cuda/graph_support.hpp"
#include "cuda/launch.cuh"

namespace ewnet::cuda {

using detail::View;

__global__ void softmax_forward_kernel(View x, View y) {
  EWNET_GRID_LOOP(t, x.n * x.hw) {
    const std::int64_t n = t / x.hw, p = t % x.hw;
    const float* a = x.data + n * x.stride + p;
    float* b = y.data + n * y.stride + p;
    float m = -INFINITY;
    for (std::int64_t c = 0; c < x.c; ++c) m = fmaxf(m, a[c * x.hw]);
    float s = 0.0f;
    for (std::int64_t c = 0; c < x.c; ++c) {
      const float e = expf(a[c * x.hw] - m);
      b[c * x.hw] = e;
      s += e;
    }
    for (std::int64_t c = 0; c < x.c; ++c) b[c * x.hw] /= s;
  }
}

__global__ void softmax_backward_kernel(View y, View dy, View dx, bool accumulate) {
  EWNET_GRID_LOOP(t, y.n * y.hw) {
    const std::int64_t n = t / y.hw, p = t % y.hw;
    const float* q = y.data + n * y.stride + p;
    const float* g = dy.data + n * dy.stride + p;
    float* d = dx.data + n * dx.stride + p;
    float dot = 0.0f;
    for (std::int64_t c = 0; c < y.c; ++c) dot += g[c * y.hw] * q[c * y.hw];
    for (std::int64_t c = 0; c < y.c; ++c) {
      const float v = q[c * y.hw] * (g[c * y.hw] - dot);
      d[c * y.hw] = accumulate ? d[c * y.hw] + v : v;
    }
  }
}

namespace {
/// True when label t indexes one of k classes; otherwise reports it (first report wins).
__device__ bool label_ok(detail::ErrorSink sink, std::int64_t n, std::int32_t t, std::int64_t k) {
  if (t >= 0 && t < k) return true;
  if (atomicCAS(sink.claim, 0, 1) == 0) {
    sink.record->index = n;
    sink.record->value = t;
    sink.record->limit = k;
    __threadfence_system();
    sink.record->code = detail::kLabelOutOfRange;
    __threadfence_system();
  }
  return false;
}
}  // namespace

// One thread per sample; probs is [N, K, 1, 1], loss [N, 1, 1, 1].
__global__ void cross_entropy_forward_kernel(View probs, const std::int32_t* labels, View loss,
                                             detail::ErrorSink sink) {
  EWNET_GRID_LOOP(n, probs.n) {
    const std::int32_t t = labels[n];
    if (!label_ok(sink, n, t, probs.sample)) {
      loss.data[n * loss.stride] = NAN;
      continue;
    }
    const float p = probs.data[n * probs.stride + t];
    loss.data[n * loss.stride] = -logf(fmaxf(p, FLT_MIN));
  }
}

// One thread per (n, c); the thread of c = 0 reports a bad label. A sample with a bad label gets
// a zero gradient: the error surfaces only at the next synchronisation, after the solver may have
// applied this step, and a sample without a valid target must not move the weights meanwhile.
__global__ void softmax_cross_entropy_backward_kernel(View probs, const std::int32_t* labels, View dlogits,
                                                      float scale, bool accumulate, detail::ErrorSink sink) {
  EWNET_GRID_LOOP(i, probs.count()) {
    const std::int64_t n = i / probs.sample, c = i % probs.sample;
    const std::int32_t t = labels[n];
    const bool valid = c == 0 ? label_ok(sink, n, t, probs.sample) : t >= 0 && t < probs.sample;
    const float g = valid ? scale * (probs.data[n * probs.stride + c] - (c == t ? 1.0f : 0.0f)) : 0.0f;
    float& d = dlogits.data[n * dlogits.stride + c];
    d = accumulate ? d + g : g;
  }
}

void softmax_forward(const Tensor<float>& x, const Tensor<float>& y) {
  const View vx = detail::view(x);
  if (vx.count() == 0) return;
  softmax_forward_kernel<<<detail::grid_for(vx.n * vx.hw), detail::kBlock, 0, stream()>>>(vx, detail::view(y));
  EWNET_CUDA_CHECK_LAUNCH(softmax_forward_kernel);
}

void softmax_backward(const Tensor<float>& y, const Tensor<float>& dy, const Tensor<float>& dx, GradWrite mode) {
  const View vy = detail::view(y);
  if (vy.count() == 0) return;
  softmax_backward_kernel<<<detail::grid_for(vy.n * vy.hw), detail::kBlock, 0, stream()>>>(
      vy, detail::view(dy), detail::view(dx), mode == GradWrite::accumulate);
  EWNET_CUDA_CHECK_LAUNCH(softmax_backward_kernel);
}

void cross_entropy_forward(const Tensor<float>& probs, const Tensor<std::int32_t>& labels, const Tensor<float>& loss) {
  if (probs.n() == 0) return;
  cross_entropy_forward_kernel<<<detail::grid_for(std::size_t(probs.n())), detail::kBlock, 0, stream()>>>(
      detail::view(probs), labels.data(), detail::view(loss), detail::error_sink());
  EWNET_CUDA_CHECK_LAUNCH(cross_entropy_forward_kernel);
}

void softmax_cross_entropy_backward(const Tensor<float>& probs, const Tensor<std::int32_t>& labels,
                                    const Tensor<float>& dlogits, float scale, GradWrite mode) {
  const View vp = detail::view(probs);
  if (vp.count() == 0) return;
  softmax_cross_entropy_backward_kernel<<<detail::grid_for(vp.count()), detail::kBlock, 0, stream()>>>(
      vp, labels.data(), detail::view(dlogits), scale, mode == GradWrite::accumulate, detail::error_sink());
  EWNET_CUDA_CHECK_LAUNCH(softmax_cross_entropy_backward_kernel);
}

}  // namespace ewnet::cuda
