// cuda/cudnn_adapter.hpp: every use ewnet makes of cuDNN, behind functions that speak ewnet's types.
//
// Only cudnn_adapter.cpp includes cudnn.h and calls cuDNN. cuDNN 9 marks the legacy convolution
// API used there deprecated in favour of its graph API; moving to the graph API means rewriting
// that one file, with these declarations unchanged.
#pragma once

#include <cstddef>
#include <vector>

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

/// One direction of one plan: the algorithm chosen and why it could be (tests assert on these).
struct Choice {
  const char* direction = "";    // "forward", "backward-data", "backward-filter"
  bool tf32_plan = false;        // the plan's modes (cuda::tf32(), cuda::deterministic())
  bool deterministic_plan = true;
  int algorithm = 0;             // cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  const char* math = "";         // the math type it runs in: "FMA", "DEFAULT", "TENSOR_OP", ...
  const char* queried_in = "";   // the descriptor's math type when cuDNN ranked the algorithms
  bool deterministic = false;    // cuDNN's ranking said CUDNN_DETERMINISTIC
  std::size_t workspace = 0;
};

/// Shapes planned so far (descriptors and chosen algorithms cached), the shared workspace, and
/// every choice made.
struct Stats {
  std::size_t plans = 0;
  std::size_t workspace_bytes = 0;
  std::vector<Choice> choices;
};
Stats stats();

/// Grows the shared workspace to at least `bytes` now. A program that knows its largest
/// convolution can reserve its workspace before capturing a step (then no capture grows it).
void reserve_workspace(std::size_t bytes);

}  // namespace ewnet::cuda::cudnn
