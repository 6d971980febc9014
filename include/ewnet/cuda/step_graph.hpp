// ewnet/cuda/step_graph.hpp: a training step captured once as a CUDA graph and replayed.
//
//   ewnet::Tensor<float> images = ewnet::Tensor<float>::empty({32, 3, 224, 224}, ewnet::Device::cuda);
//   ewnet::Tensor<std::int32_t> labels = ewnet::Tensor<std::int32_t>::empty({32, 1, 1, 1}, ewnet::Device::cuda);
//   ewnet::cuda::StepGraph step;
//   for (...) {
//     images.copy_from(next_images); labels.copy_from(next_labels);   // refill the same buffers
//     step.run([&] { net.forward(images, labels); net.backward(); solver.step(net, lr); });
//   }
//
// The first run() executes the step eagerly: the caching allocator, cuDNN's algorithm cache, the
// workspaces and the solver's slot table reach their steady state. The second run() captures the
// step into a graph and launches it; later runs only launch it. Every run performs one step.
//
// A graph replays the kernels it recorded with the arguments they had, so between replays:
//   - the input and label tensors must be the same device buffers (refill them, do not replace);
//   - the learning rate, and anything else passed to an operation by value, stays what it was at
//     capture; call reset() after changing it (the next run() is eager, the one after recaptures).
//     An eager solver step of the same model at another rate, outside run(), drops the graph;
//   - dropout draws its mask from the model's iteration counter at capture, so a replayed step
//     reuses one mask and does not advance the counter: reset() periodically, or leave dropout
//     out of captured steps;
//   - the step may not copy to the host (Model::loss()); read the loss after run() returns.
// Memory is checked, not trusted: when a block the graph may write has been released, reused or
// returned to the driver since the capture, or was released during it (a forward pass at another
// batch size, a re-plan after freezing, empty_cache), run() drops the graph instead of replaying
// it, runs the step eagerly and captures again on the next run (invalidations() counts these). A
// workspace that grows keeps its old block while a graph lives, so that costs no recapture.
#pragma once

#include <functional>

namespace ewnet::cuda {

class StepGraph {
 public:
  StepGraph() = default;
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  /// Runs one step: eagerly the first time, captured and launched the second, replayed after.
  void run(const std::function<void()>& step);
  /// Drops the captured graph; the next run() is eager again.
  void reset();
  bool captured() const { return exec_ != nullptr; }
  /// How many times the graph was launched.
  unsigned long long replays() const { return replays_; }
  /// How many graphs were captured, and how many were dropped because memory they referenced
  /// changed hands.
  unsigned long long captures() const { return captures_; }
  unsigned long long invalidations() const { return invalidations_; }

 private:
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
  bool warmed_up_ = false;
  unsigned long long generation_ = 0;  // the allocation generation at capture
  unsigned long long replays_ = 0, captures_ = 0, invalidations_ = 0;
};

}  // namespace ewnet::cuda
