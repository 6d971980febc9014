// kernels/dropout.cu: inverted dropout with a counter-based mask (ops/dropout.hpp).
//
//   keep[i] = philox_uniform(seed, stream, i) >= p,    out[i] (=|+=) keep[i] ? in[i] / (1 - p) : 0
// with i the element's dense NCHW index. Forward (in = x, out = y) and backward (in = dy,
// out = dx) apply the same mask, recomputed from (seed, stream, i) rather than stored. The Philox
// function and the float constants are those of the CPU reference (ewnet/random.hpp), so both
// devices drop exactly the same elements.
#include <ewnet/ops/dropout.hpp>
#include <ewnet/random.hpp>

#include "cuda/launch.cuh"

namespace ewnet::cuda {

using detail::View;

__global__ void dropout_kernel(View in, View out, std::uint64_t seed, std::uint64_t stream_id, float drop,
                               float scale, bool accumulate) {
  EWNET_GRID_LOOP(i, out.count()) {
    const bool keep = philox_uniform(seed, stream_id, std::uint64_t(i)) >= drop;
    const float v = keep ? in.data[in.at(i)] * scale : 0.0f;
    float& d = out.data[out.at(i)];
    d = accumulate ? d + v : v;
  }
}

namespace {
void apply(const Tensor<float>& in, const Tensor<float>& out, const DropoutParams& p, GradWrite mode) {
  const View vo = detail::view(out);
  if (vo.count() == 0) return;
  // The same float arithmetic as cpu::dropout_apply: drop = float(p), scale = 1 / (1 - float(p)).
  const float drop = float(p.probability);
  const float scale = 1.0f / (1.0f - float(p.probability));
  dropout_kernel<<<detail::grid_for(vo.count()), detail::kBlock, 0, stream()>>>(
      detail::view(in), vo, p.seed, p.stream, drop, scale, mode == GradWrite::accumulate);
  EWNET_CUDA_CHECK_LAUNCH(dropout_kernel);
}
}  // namespace

void dropout_forward(const Tensor<float>& x, const Tensor<float>& y, const DropoutParams& p) {
  apply(x, y, p, GradWrite::overwrite);
}

void dropout_backward(const Tensor<float>& dy, const Tensor<float>& dx, const DropoutParams& p, GradWrite mode) {
  apply(dy, dx, p, mode);
}

}  // namespace ewnet::cuda
