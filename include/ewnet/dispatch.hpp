// ewnet/dispatch.hpp: the one place where an operation picks its device and, on the CPU, its
// implementation.
//
// Every operation in ewnet/ops/ is a function template that checks its arguments, then calls
// EWNET_DISPATCH(device, T, op, args...), which forwards to cpu::op (beside it in the same header)
// or cuda::op (declared there, implemented in the CUDA backend, for float). A reader finds any
// operation on any device by one name. Operations with a oneDNN primitive path put
// EWNET_CPU_PRIMITIVE(device, T, call) first: float tensors on the CPU run `call` (onednn/, the
// CPU engine's primitives) unless the reference loops are asked for (onednn::enabled()); double,
// and float on the reference path, run cpu::op, the reference every test compares against.
#pragma once

#include <type_traits>

#include <ewnet/device.hpp>
#include <ewnet/error.hpp>
#include <ewnet/onednn/adapter.hpp>

namespace ewnet::detail {
[[noreturn]] inline void cuda_float_only(const char* op) {
  throw DeviceError(str(op, ": the CUDA backend computes in float; use Tensor<float> on Device::cuda "
                            "(double is for CPU reference checks)"));
}
}  // namespace ewnet::detail

#define EWNET_DISPATCH(device, T, op, ...)                                   \
  do {                                                                       \
    ::ewnet::detail::check_plain(#op, __VA_ARGS__);                          \
    EWNET_DISPATCH_ANY_LAYOUT(device, T, op, __VA_ARGS__);                   \
  } while (0)

/// The same for the element-wise operations, whose loops take either layout (all operands in one).
#ifdef EWNET_WITH_CUDA
#define EWNET_DISPATCH_ANY_LAYOUT(device, T, op, ...)                        \
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
#define EWNET_DISPATCH_ANY_LAYOUT(device, T, op, ...)                        \
  do {                                                                       \
    if ((device) == ::ewnet::Device::cuda) ::ewnet::detail::no_cuda();       \
    ::ewnet::cpu::op(__VA_ARGS__);                                           \
  } while (0)
#endif

namespace ewnet::detail {
// The loops of cpu:: read plain tensors: a tensor in the CPU engine's blocked layout reaching them
// is a planning error, reported instead of computed wrong.
template <class U>
void plain_argument(const char* op, const Tensor<U>& t) {
  EWNET_CHECK_AS(ShapeError, !t.blocked(), op, ": a tensor in the CPU engine's blocked layout (", t.shape(),
                 ") reached a path that reads plain tensors");
}
template <class U>
void plain_argument(const char* op, const Tensor<U>* t) {
  if (t) plain_argument(op, *t);
}
template <class U>
void plain_argument(const char* op, Tensor<U>* t) {
  if (t) plain_argument(op, *t);
}
template <class A>
void plain_argument(const char*, const A&) {}
template <class... A>
void check_plain(const char* op, const A&... args) {
  (plain_argument(op, args), ...);
}
}  // namespace ewnet::detail

#define EWNET_CPU_PRIMITIVE(device, T, call)                                  \
  if constexpr (std::is_same_v<T, float>) {                                  \
    if (::ewnet::onednn::runs_on(device)) {                                  \
      call;                                                                  \
      return;                                                                \
    }                                                                        \
  }
