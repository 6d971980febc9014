// ewnet/dispatch.hpp: the one place where an operation picks its device.
//
// Every operation in ewnet/ops/ is a function template that checks its arguments, then calls
// EWNET_DISPATCH(device, T, op, args...), which forwards to cpu::op (beside it in the same header)
// or cuda::op (declared there, implemented in the CUDA backend, for float). A reader finds any
// operation on any device by one name.
#pragma once

#include <type_traits>

#include <ewnet/device.hpp>
#include <ewnet/error.hpp>

namespace ewnet::detail {
[[noreturn]] inline void cuda_float_only(const char* op) {
  throw DeviceError(str(op, ": the CUDA backend computes in float; use Tensor<float> on Device::cuda "
                            "(double is for CPU reference checks)"));
}
}  // namespace ewnet::detail

#ifdef EWNET_WITH_CUDA
#define EWNET_DISPATCH(device, T, op, ...)                                   \
  do {                                                                       \
    if ((device) == ::ewnet::Device::cuda) {                                 \
      if constexpr (std::is_same_v<T, float>) {                              \
        ::ewnet::cuda::op(__VA_ARGS__);                                      \
        return;                                                              \
      } else {                                                               \
        ::ewnet::detail::cuda_float_only(#op);                               \
      }                                                                      \
    }                                                                        \
    ::ewnet::cpu::op(__VA_ARGS__);                                           \
  } while (0)
#else
#define EWNET_DISPATCH(device, T, op, ...)                                   \
  do {                                                                       \
    if ((device) == ::ewnet::Device::cuda) ::ewnet::detail::no_cuda();       \
    ::ewnet::cpu::op(__VA_ARGS__);                                           \
  } while (0)
#endif
