// ewnet/ops/common.hpp: argument checks and scratch memory shared by the operations.
#pragma once

#include <cstdint>
#include <vector>

#include <ewnet/dispatch.hpp>
#include <ewnet/tensor.hpp>

namespace ewnet {

/// How a backward operation writes a gradient: overwrite it, or add to what is there (when a
/// tensor feeds several layers, the second and later consumers accumulate).
enum class GradWrite { overwrite, accumulate };

namespace detail {

template <class A, class B>
void check_same_device(const char* op, const Tensor<A>& a, const Tensor<B>& b) {
  EWNET_CHECK_AS(DeviceError, a.device() == b.device(), op, ": tensors on different devices (",
                 device_name(a.device()), " and ", device_name(b.device()), ")");
}

template <class A, class B>
void check_same_shape(const char* op, const char* a_name, const Tensor<A>& a, const char* b_name,
                      const Tensor<B>& b) {
  EWNET_CHECK_AS(ShapeError, a.shape() == b.shape(), op, ": ", a_name, " has shape ", a.shape(), " but ", b_name,
                 " has shape ", b.shape());
}

/// Element-wise loops run over each sample's extent: their operands must share one layout.
template <class A, class B>
void check_same_layout(const char* op, const Tensor<A>& a, const Tensor<B>& b) {
  EWNET_CHECK_AS(ShapeError, a.block() == b.block(), op, ": operands in different layouts (blocks of ", a.block(),
                 " and ", b.block(), " channels)");
}

/// dst = value (overwrite) or dst += value (accumulate), for one element.
template <class T>
inline void store(T& dst, T value, GradWrite mode) {
  if (mode == GradWrite::accumulate) dst += value;
  else dst = value;
}

}  // namespace detail

namespace cpu {
/// Per-thread scratch buffer, grown on demand and kept, so hot loops never allocate after the
/// first step (im2col columns, for instance).
template <class T>
T* scratch(size_t count, int slot = 0) {
  thread_local std::vector<T> buffers[2];
  std::vector<T>& b = buffers[slot];
  if (b.size() < count) b.resize(count);
  return b.data();
}
}  // namespace cpu

}  // namespace ewnet
