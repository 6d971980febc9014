// kernels/argmax.cu: the predicted class of each sample, and the count of correct predictions
// (ewnet/cuda/ops.hpp).
//
//   indices[n] = min { c : scores[n, c] = max_j scores[n, j] }     (the first maximum, as
//                                                                   std::max_element finds it)
//   correct[0] += #{ n : indices[n] = labels[n] }
// One thread per sample scans its K scores; the count is one atomicAdd per correct sample.
#include <ewnet/cuda/ops.hpp>
#include <ewnet/ops/common.hpp>

#include "cuda/launch.cuh"

namespace ewnet::cuda {

using detail::View;

namespace {
__device__ std::int32_t first_max(const View& s, std::int64_t n) {
  const float* row = s.data + n * s.stride;
  std::int32_t best = 0;
  for (std::int64_t c = 1; c < s.sample; ++c)
    if (row[c] > row[best]) best = std::int32_t(c);
  return best;
}
}  // namespace

__global__ void argmax_kernel(View scores, std::int32_t* indices) {
  EWNET_GRID_LOOP(n, scores.n) indices[n] = first_max(scores, n);
}

__global__ void count_correct_kernel(View scores, const std::int32_t* labels, std::int32_t* correct) {
  EWNET_GRID_LOOP(n, scores.n)
  if (first_max(scores, n) == labels[n]) atomicAdd(correct, 1);
}

void argmax(const Tensor<float>& scores, const Tensor<std::int32_t>& indices) {
  EWNET_CHECK_AS(ShapeError, indices.size() == std::size_t(scores.n()), "argmax: ", indices.size(),
                 " indices for ", scores.n(), " samples");
  ::ewnet::detail::check_same_device("argmax", scores, indices);
  EWNET_CHECK_AS(DeviceError, scores.device() == Device::cuda, "cuda::argmax: the scores are on the CPU");
  if (scores.n() == 0 || scores.shape().sample_size() == 0) return;
  argmax_kernel<<<detail::grid_for(std::size_t(scores.n())), detail::kBlock, 0, stream()>>>(detail::view(scores),
                                                                                            indices.data());
  EWNET_CUDA_CHECK_LAUNCH(argmax_kernel);
}

void count_correct(const Tensor<float>& scores, const Tensor<std::int32_t>& labels,
                   const Tensor<std::int32_t>& correct) {
  EWNET_CHECK_AS(ShapeError, labels.size() == std::size_t(scores.n()) && correct.size() >= 1, "count_correct: ",
                 labels.size(), " labels for ", scores.n(), " samples, and a counter of ", correct.size(),
                 " elements");
  ::ewnet::detail::check_same_device("count_correct", scores, labels);
  ::ewnet::detail::check_same_device("count_correct", scores, correct);
  EWNET_CHECK_AS(DeviceError, scores.device() == Device::cuda, "cuda::count_correct: the scores are on the CPU");
  if (scores.n() == 0 || scores.shape().sample_size() == 0) return;
  count_correct_kernel<<<detail::grid_for(std::size_t(scores.n())), detail::kBlock, 0, stream()>>>(
      detail::view(scores), labels.data(), correct.data());
  EWNET_CUDA_CHECK_LAUNCH(count_correct_kernel);
}

}  // namespace ewnet::cuda
