// ewnet/cuda/ops.hpp: CUDA-only operations with no CPU twin in ewnet/ops/.
#pragma once

#include <cstdint>

#include <ewnet/tensor.hpp>

namespace ewnet::cuda {

/// y = max(y + b[c], 0) in place: a convolution's bias and the ReLU after it in one pass over y
/// (kernels/bias_relu.cu). b is [1, C, 1, 1].
void bias_relu_forward(const Tensor<float>& y, const Tensor<float>& bias);

/// indices[n] = the first c with scores[n, c] maximal (scores [N, K, 1, 1], indices [N, 1, 1, 1]
/// int32), as ewnet::argmax computes on the host (kernels/argmax.cu).
void argmax(const Tensor<float>& scores, const Tensor<std::int32_t>& indices);
/// correct[0] += the number of samples whose argmax equals their label; it stays on the device,
/// so a whole epoch's accuracy costs one copy to the host at the end.
void count_correct(const Tensor<float>& scores, const Tensor<std::int32_t>& labels,
                   const Tensor<std::int32_t>& correct);

}  // namespace ewnet::cuda
