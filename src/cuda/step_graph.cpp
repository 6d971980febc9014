// cuda/step_graph.cpp: capture of one training step into a CUDA graph (ewnet/cuda/step_graph.hpp).
//
// Capture uses cudaStreamCaptureModeRelaxed: should a step still allocate (a shape not seen in
// the eager step), cudaMalloc is allowed and the block stays owned by the caching allocator, not
// by the graph.
//
// A graph holds device pointers, not the memory behind them. At the end of a capture the caching
// allocator marks every block in use and every block that was handed out or released during the
// capture (cuda/block_cache.hpp); when one of them is released, reused or freed (a forward pass at
// another batch size, a re-plan, empty_cache), the allocation generation moves on, and run() does
// not replay a graph captured under an older generation: it drops it, runs the step eagerly and
// captures again on the following run. While a graph exists or a capture runs, a growing workspace
// keeps its old block (release_after_graphs).
#include <ewnet/cuda/step_graph.hpp>

#include <ewnet/cuda/runtime.hpp>

#include "cuda/check.hpp"
#include "cuda/graph_support.hpp"

namespace ewnet::cuda {

StepGraph::~StepGraph() {
  // Destructors must not throw: errors here leave the handles to the driver's teardown.
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  if (exec_) detail::graph_destroyed();
}

void StepGraph::reset() {
  const bool had = exec_ != nullptr;
  void* exec = exec_;
  void* graph = graph_;
  exec_ = graph_ = nullptr;
  warmed_up_ = false;
  if (had) detail::graph_destroyed();
  if (exec) EWNET_CUDA_CHECK(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec)));
  if (graph) EWNET_CUDA_CHECK(cudaGraphDestroy(static_cast<cudaGraph_t>(graph)));
}

void StepGraph::run(const std::function<void()>& step) {
  require_device();
  if (exec_ && allocation_generation() != generation_) {
    // Memory the graph writes has changed hands since the capture: never replay it.
    reset();
    ++invalidations_;
  }
  if (!warmed_up_) {
    step();
    warmed_up_ = true;
    return;
  }
  if (!exec_) {
    cudaStream_t s = stream();
    detail::begin_capture_tracking();
    EWNET_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
    try {
      step();
    } catch (...) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(s, &broken);  // ends the capture whatever failed inside the step
      if (broken) cudaGraphDestroy(broken);
      cudaGetLastError();
      detail::end_capture_tracking(false);
      throw;
    }
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(s, &graph);
    if (ended != cudaSuccess) {
      if (graph) cudaGraphDestroy(graph);
      detail::end_capture_tracking(false);
      EWNET_CUDA_CHECK(ended);
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    if (made != cudaSuccess) {
      cudaGraphDestroy(graph);  // nothing of a failed capture outlives this call
      detail::end_capture_tracking(false);
      EWNET_CUDA_CHECK(made);
    }
    graph_ = graph;
    exec_ = exec;
    generation_ = detail::end_capture_tracking(true);
    detail::graph_created();
    ++captures_;
  }
  EWNET_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), stream()));
  ++replays_;
}

}  // namespace ewnet::cuda
