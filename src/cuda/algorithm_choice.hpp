// cuda/algorithm_choice.hpp: which of cuDNN's ranked convolution algorithms a plan takes, as a
// function of plain values, so that the rule is tested on the host (tests/cuda/algorithm_choice.cpp)
// and cudnn_adapter.cpp only gathers the facts.
#pragma once

#include <cstddef>
#include <vector>

namespace ewnet::cuda::detail {

/// One entry of cuDNN's heuristic ranking (cudnnGet*Algorithm_v7), with what the adapter learnt
/// about it in the plan's math mode.
struct AlgorithmCandidate {
  int algorithm = 0;
  bool usable = false;          // the entry's status is CUDNN_STATUS_SUCCESS
  bool deterministic = false;   // the entry says CUDNN_DETERMINISTIC
  bool math_accepted = false;   // the descriptor accepted the math type the plan would run it in
  bool workspace_known = false; // cuDNN returned its workspace size in that math type
  std::size_t workspace = 0;
};

/// The index of the first candidate, in ranking order, that is usable, deterministic when
/// `deterministic_only`, runs in the plan's math type, and needs a known workspace of at most
/// `max_workspace` bytes; -1 when there is none.
inline int choose_algorithm(const std::vector<AlgorithmCandidate>& ranked, bool deterministic_only,
                            std::size_t max_workspace) {
  for (std::size_t i = 0; i < ranked.size(); ++i) {
    const AlgorithmCandidate& c = ranked[i];
    if (!c.usable || !c.math_accepted || !c.workspace_known) continue;
    if (deterministic_only && !c.deterministic) continue;
    if (c.workspace > max_workspace) continue;
    return int(i);
  }
  return -1;
}

}  // namespace ewnet::cuda::detail
