// The rule by which the cuDNN adapter picks a convolution algorithm from cuDNN's ranking
// (src/cuda/algorithm_choice.hpp), on the host: deterministic mode must skip an algorithm cuDNN
// ranks first but reports non-deterministic, whatever the GPU's heuristics would rank.
#include <catch2/catch.hpp>

#include "cuda/algorithm_choice.hpp"

using ewnet::cuda::detail::AlgorithmCandidate;
using ewnet::cuda::detail::choose_algorithm;

namespace {
AlgorithmCandidate candidate(int algorithm, bool deterministic, std::size_t workspace = 0) {
  AlgorithmCandidate c;
  c.algorithm = algorithm;
  c.usable = true;
  c.deterministic = deterministic;
  c.math_accepted = true;
  c.workspace_known = true;
  c.workspace = workspace;
  return c;
}
constexpr std::size_t kCap = std::size_t(1) << 30;
}  // namespace

TEST_CASE("algorithm choice: deterministic mode skips a non-deterministic first choice", "[algorithm_choice]") {
  // As cuDNN ranks backward-filter algorithms for many shapes: ALGO_0 (atomics) first.
  const std::vector<AlgorithmCandidate> ranked{candidate(0, false), candidate(1, true), candidate(3, false)};
  CHECK(choose_algorithm(ranked, true, kCap) == 1);
  CHECK(choose_algorithm(ranked, false, kCap) == 0);
}

TEST_CASE("algorithm choice: entries cuDNN cannot run, math types it refuses and large workspaces are skipped",
          "[algorithm_choice]") {
  std::vector<AlgorithmCandidate> ranked{candidate(6, true), candidate(2, true), candidate(5, true, kCap + 1),
                                         candidate(1, true, kCap)};
  ranked[0].usable = false;
  ranked[1].math_accepted = false;
  CHECK(choose_algorithm(ranked, true, kCap) == 3);
  ranked[3].workspace_known = false;
  CHECK(choose_algorithm(ranked, true, kCap) == -1);
}

TEST_CASE("algorithm choice: nothing deterministic means no choice in deterministic mode", "[algorithm_choice]") {
  const std::vector<AlgorithmCandidate> ranked{candidate(0, false), candidate(3, false)};
  CHECK(choose_algorithm(ranked, true, kCap) == -1);
  CHECK(choose_algorithm({}, false, kCap) == -1);
}
