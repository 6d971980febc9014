// ewnet/layout_plan.hpp: the plan step that chooses the memory layout of each activation of a
// Model (graph.hpp) on the CPU engine.
//
// oneDNN's convolutions, pooling, LRN, batch normalization and element-wise primitives run fastest
// on channel blocks (nChw16c with AVX-512, nChw8c with AVX2) and fall back to slow kernels on plain
// NCHW, and converting every layer's output to and from plain costs more than the layers gain
// (docs/benchmarks.md). So a Model keeps an activation in the engine's blocked layout from the layer
// that makes it to the layers that read it, and converts (reorders) only where a layer that cannot
// run on that layout reads or writes, at the input and at the output. Each layer says what it can
// do (Layer::engine_layout):
//   plain          reads and writes plain tensors (input normalisation, dropout, softmax, the loss);
//   reads_any      reads either layout, writes plain (fully connected);
//   follows_input  runs in its input's layout and writes its output in it (pooling, LRN, batch
//                  normalization, ReLU, addition, concatenation of whole blocks);
//   blocked        reads either layout, writes blocked (convolution).
// The plan: an output is blocked when its layer writes blocked, or follows an input that is
// blocked; each input is read in the layout its layer wants, the producer's own or, where they
// differ, a converted copy (no copy at all when the two layouts hold the same bytes: one pixel a
// sample and whole blocks of channels, as after global pooling). The prediction is always read plain.
#pragma once

#include <vector>

#include <ewnet/layers/layer.hpp>

namespace ewnet {

struct LayoutPlan {
  int block = 0;                             // the engine's channels per block; 0: everything plain
  std::vector<int> output;                   // per node: its output's block (0 or `block`)
  std::vector<std::vector<int>> input;       // per node, per input: the block it reads that input in
};

/// What a plan step needs of each node, in execution order.
struct LayoutNode {
  EngineLayout rule = EngineLayout::plain;
  std::vector<int> inputs;  // producing nodes
};

/// Plans layouts for `nodes` (indexed by node, visited in `order`) with the engine's `block`
/// (0: no blocked layout, every activation plain).
inline LayoutPlan plan_layouts(const std::vector<LayoutNode>& nodes, const std::vector<int>& order, int block) {
  LayoutPlan plan;
  plan.block = block;
  plan.output.assign(nodes.size(), 0);
  plan.input.assign(nodes.size(), {});
  for (int i : order) {
    const LayoutNode& n = nodes[size_t(i)];
    std::vector<int>& want = plan.input[size_t(i)];
    want.assign(n.inputs.size(), 0);
    if (block == 0) continue;
    bool any_blocked = false;
    for (int j : n.inputs) any_blocked = any_blocked || plan.output[size_t(j)] != 0;
    switch (n.rule) {
      case EngineLayout::plain:
        break;
      case EngineLayout::reads_any:
      case EngineLayout::blocked:
        for (size_t k = 0; k < n.inputs.size(); ++k) want[k] = plan.output[size_t(n.inputs[k])];
        if (n.rule == EngineLayout::blocked) plan.output[size_t(i)] = block;
        break;
      case EngineLayout::follows_input:
        if (any_blocked) {
          want.assign(n.inputs.size(), block);
          plan.output[size_t(i)] = block;
        }
        break;
    }
  }
  return plan;
}

}  // namespace ewnet
