// cuda/bias.hpp: the per-channel bias the convolution adds after cuDNN (kernels/bias_relu.cu).
#pragma once

#include <ewnet/tensor.hpp>

namespace ewnet::cuda::detail {
/// y[n,c,p] += b[c], followed by max(., 0) when `relu`.
void add_bias(const Tensor<float>& y, const Tensor<float>& bias, bool relu);
}  // namespace ewnet::cuda::detail
