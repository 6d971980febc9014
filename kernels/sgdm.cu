// kernels/sgdm.cu: the SGDM update of every trainable tensor of a model in one launch
// (ops/sgdm.hpp).
//
//   v = momentum * v - lr * (g + l2 * w);   w = w + v        per element, lr and l2 per tensor
//
// The host hands over a table of slots (weights, gradient, velocity, count, rates). The table
// goes to a device buffer, one per model, that is kept between steps and uploaded again only when
// its contents change (the first step, a new learning rate, a layer frozen or thawed), so a steady
// training loop uploads nothing and never allocates. Grid: blockIdx.y walks the slots, blockIdx.x
// and the threads stride over one slot's elements; a block with nothing to do in its slot exits
// at once.
//
// Inside a captured CUDA graph (ewnet/cuda/step_graph.hpp) the kernel reads the table from its
// buffer on every replay: the rates are the ones in force at capture. A changed table therefore
// goes to a new block, never over the old one, and the old block goes back to the caching
// allocator, which invalidates a graph that reads it (cuda/block_cache.hpp): an eager step at a
// new learning rate makes the graph be captured again instead of replaying the new rate unseen.
// At most kMaxSgdmTables tables are kept (the least recently used one goes), so a program that
// builds many models does not accumulate them.
#include <algorithm>
#include <cstring>
#include <map>
#include <utility>
#include <mutex>
#include <vector>

#include <ewnet/ops/sgdm.hpp>

#include "cuda/launch.cuh"
#include "cuda/sgdm_tables.hpp"

namespace ewnet::cuda {

namespace {
struct DeviceSlot {
  float* weights;
  const float* gradient;
  float* velocity;
  std::int64_t count;
  float learn_rate;
  float l2;
};

/// One model's table: what its device buffer holds, and the buffer. Tables are told apart by
/// their first slot's weights and their length, so two models (an eager one and a captured one,
/// say) keep separate buffers and a captured graph's buffer is never overwritten by another model.
struct SlotTable {
  std::vector<DeviceSlot> host;
  DeviceSlot* device = nullptr;
  std::uint64_t last_used = 0;
};
struct SlotTables {
  std::mutex mutex;
  std::map<std::pair<const float*, std::size_t>, SlotTable> by_model;
  std::uint64_t uses = 0;

  // Called with the mutex held: drops the least recently used tables other than `keep` until at
  // most kMaxSgdmTables are left.
  void trim(const SlotTable* keep) {
    while (by_model.size() > detail::kMaxSgdmTables) {
      auto oldest = by_model.end();
      for (auto it = by_model.begin(); it != by_model.end(); ++it)
        if (&it->second != keep && (oldest == by_model.end() || it->second.last_used < oldest->second.last_used))
          oldest = it;
      release(oldest->second.device, oldest->second.host.size() * sizeof(DeviceSlot));
      by_model.erase(oldest);
    }
  }
};
SlotTables& tables() {
  static auto* t = new SlotTables;  // never destroyed: the buffers belong to the caching allocator
  return *t;
}
}  // namespace

namespace detail {
std::size_t sgdm_table_count() {
  SlotTables& all = tables();
  std::lock_guard<std::mutex> lock(all.mutex);
  return all.by_model.size();
}
}  // namespace detail

__global__ void sgdm_kernel(const DeviceSlot* slots, int count, float momentum) {
  for (int s = blockIdx.y; s < count; s += gridDim.y) {
    const DeviceSlot slot = slots[s];
    for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < slot.count;
         i += std::int64_t(blockDim.x) * gridDim.x) {
      const float v = momentum * slot.velocity[i] - slot.learn_rate * (slot.gradient[i] + slot.l2 * slot.weights[i]);
      slot.velocity[i] = v;
      slot.weights[i] += v;
    }
  }
}

void sgdm_update(const std::vector<SgdmSlot<float>>& slots, float momentum) {
  if (slots.empty()) return;
  std::vector<DeviceSlot> host(slots.size());
  std::int64_t largest = 0;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const SgdmSlot<float>& s = slots[i];
    host[i] = DeviceSlot{s.weights, s.gradient, s.velocity, std::int64_t(s.count), s.learn_rate, s.l2};
    largest = std::max(largest, std::int64_t(s.count));
  }
  if (largest == 0) return;

  SlotTables& all = tables();
  std::lock_guard<std::mutex> lock(all.mutex);
  const std::pair<const float*, std::size_t> key{host[0].weights, host.size()};
  const bool known = all.by_model.count(key) > 0;
  SlotTable& t = all.by_model[key];
  t.last_used = ++all.uses;
  const bool same = known && t.host.size() == host.size() &&
                    std::memcmp(t.host.data(), host.data(), host.size() * sizeof(DeviceSlot)) == 0;
  if (!same) {
    if (capturing()) {
      if (!known) all.by_model.erase(key);
      throw DeviceError("sgdm_update: the slot table (tensors or learning rates) changed while a CUDA graph was being "
                        "captured; run the step once eagerly with the same learning rate first (StepGraph does)");
    }
    // A new block: a graph may still read the old one (see above).
    release(t.device, t.host.size() * sizeof(DeviceSlot));
    t.device = nullptr;
    t.host.clear();
    t.device = static_cast<DeviceSlot*>(allocate(host.size() * sizeof(DeviceSlot)));
    // Pageable source: staged before the call returns, so `host` may go out of scope.
    copy_host_to_device(t.device, host.data(), host.size() * sizeof(DeviceSlot));
    t.host = std::move(host);
    all.trim(&t);
  }

  const int count = int(t.host.size());
  const dim3 grid(std::min(detail::grid_for(std::size_t(largest)), 128u), unsigned(std::min(count, 65535)));
  sgdm_kernel<<<grid, detail::kBlock, 0, stream()>>>(t.device, count, momentum);
  EWNET_CUDA_CHECK_LAUNCH(sgdm_kernel);
}

}  // namespace ewnet::cuda
