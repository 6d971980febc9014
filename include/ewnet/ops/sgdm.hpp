// ewnet/ops/sgdm.hpp: the stochastic-gradient-descent-with-momentum update of many tensors at once.
//
// MATLAB's and Caffe's form, per element, with lr and l2 already multiplied by the tensor's
// learning-rate and L2 multipliers:
//   v = momentum * v - lr * (g + l2 * w)
//   w = w + v
// A frozen tensor (learning-rate multiplier 0) is never handed to this function, so its weights
// stay bitwise unchanged (weight decay included). On CUDA all tensors go in one launch.
#pragma once

#include <vector>

#include <ewnet/ops/common.hpp>

namespace ewnet {

/// One tensor's share of an update: its weights, gradient and velocity (all `count` elements,
/// dense, on one device) and its effective rates.
template <class T>
struct SgdmSlot {
  T* weights = nullptr;
  const T* gradient = nullptr;
  T* velocity = nullptr;
  size_t count = 0;
  T learn_rate = 0;  // base rate times the tensor's multiplier
  T l2 = 0;          // L2 factor times the tensor's multiplier
};

#ifdef EWNET_WITH_CUDA
namespace cuda {
void sgdm_update(const std::vector<SgdmSlot<float>>& slots, float momentum);
}  // namespace cuda
#endif

namespace cpu {
template <class T>
void sgdm_update(const std::vector<SgdmSlot<T>>& slots, T momentum) {
  for (const SgdmSlot<T>& s : slots)
    for (size_t i = 0; i < s.count; ++i) {
      s.velocity[i] = momentum * s.velocity[i] - s.learn_rate * (s.gradient[i] + s.l2 * s.weights[i]);
      s.weights[i] += s.velocity[i];
    }
}
}  // namespace cpu

template <class T>
void sgdm_update(Device device, const std::vector<SgdmSlot<T>>& slots, T momentum) {
  if (slots.empty()) return;
  EWNET_DISPATCH(device, T, sgdm_update, slots, momentum);
}

}  // namespace ewnet
