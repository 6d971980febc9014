// cuda/step_graph.cpp: capture of one training step into a CUDA graph (ewnet/cuda/step_graph.hpp).
//
// Capture uses cudaStreamCaptureModeRelaxed: should a step still allocate (a shape not seen in
// the eager step), cudaMalloc is allowed and the block stays owned by the caching allocator, not
// by the graph.
#include <ewnet/cuda/step_graph.hpp>

#include <ewnet/cuda/runtime.hpp>

#include "cuda/check.hpp"

namespace ewnet::cuda {

StepGraph::~StepGraph() {
  // Destructors must not throw: errors here leave the handles to the driver's teardown.
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
}

void StepGraph::reset() {
  if (exec_) EWNET_CUDA_CHECK(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_)));
  if (graph_) EWNET_CUDA_CHECK(cudaGraphDestroy(static_cast<cudaGraph_t>(graph_)));
  exec_ = graph_ = nullptr;
  warmed_up_ = false;
}

void StepGraph::run(const std::function<void()>& step) {
  require_device();
  if (!warmed_up_) {
    step();
    warmed_up_ = true;
    return;
  }
  if (!exec_) {
    cudaStream_t s = stream();
    EWNET_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
    try {
      step();
    } catch (...) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(s, &broken);  // ends the capture whatever failed inside the step
      if (broken) cudaGraphDestroy(broken);
      cudaGetLastError();
      throw;
    }
    cudaGraph_t graph = nullptr;
    EWNET_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
    graph_ = graph;
    cudaGraphExec_t exec = nullptr;
    EWNET_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    exec_ = exec;
  }
  EWNET_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), stream()));
  ++replays_;
}

}  // namespace ewnet::cuda
