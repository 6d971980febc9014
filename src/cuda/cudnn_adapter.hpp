// cuda/cudnn_adapter.hpp: every use ewnet makes of cuDNN, behind functions that speak ewnet's types.
//
// Only cudnn_adapter.cpp includes cudnn.h and calls cuDNN. cuDNN 9 marks the legacy convolution
// API used there deprecated in favour of its graph API; moving to the graph API means rewriting
// that one file, with these declarations unchanged.
#pragma once

#include <cstddef>

#include <ewnet/ops/conv2d.hpp>
#include <ewnet/tensor.hpp>

namespace ewnet::cuda::cudnn {

/// y = conv(x, w) (overwrites y; the bias is added by the caller).
void conv_forward(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>& y, const Conv2dGeometry& g);
/// dx = conv_transpose(dy, w), or dx += it when `accumulate`.
void conv_backward_data(const Tensor<float>& dy, const Tensor<float>& w, const Tensor<float>& dx,
                        const Conv2dGeometry& g, bool accumulate);
/// dw = sum over the batch of dy (*) x (overwrites dw).
void conv_backward_filter(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& dw,
                          const Conv2dGeometry& g);

/// Shapes planned so far (descriptors and chosen algorithms cached), and the shared workspace.
struct Stats {
  std::size_t plans = 0;
  std::size_t workspace_bytes = 0;
};
Stats stats();

}  // namespace ewnet::cuda::cudnn
