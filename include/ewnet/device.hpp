// ewnet/device.hpp: where a tensor lives, and the memory primitives for each place.
//
// The CPU side is here in full. The CUDA side is declared here and implemented by the compiled
// CUDA backend (CMake target ewnet::cuda, which defines EWNET_WITH_CUDA for its users). A program
// built without it can still name Device::cuda; asking for it raises a DeviceError saying so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include <ewnet/error.hpp>

namespace ewnet {

enum class Device { cpu, cuda };

inline const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

inline Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda" || name == "gpu") return Device::cuda;
  throw Error(str("unknown device \"", name, "\": expected cpu or cuda"));
}

#ifdef EWNET_WITH_CUDA
/// Implemented in the compiled CUDA backend (src/cuda/runtime.cu).
namespace cuda {
/// True when a CUDA device can be used (driver present, at least one device).
bool available();
/// Device memory from the caching allocator; throws DeviceError naming the size and the free memory.
void* allocate(size_t bytes);
/// Returns memory to the caching allocator (never to the driver inside a training step).
void release(void* ptr, size_t bytes);
/// Copies between host and device or within the device, on the current stream.
void copy_host_to_device(void* dst, const void* src, size_t bytes);
void copy_device_to_host(void* dst, const void* src, size_t bytes);
void copy_device_to_device(void* dst, const void* src, size_t bytes);
/// Copies `rows` rows of `row_bytes` between pitched buffers (strided tensor views).
void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes, size_t rows);
void memset_zero(void* dst, size_t bytes);
/// Waits for all work queued on the current stream.
void synchronize();
}  // namespace cuda
#endif

namespace detail {

[[noreturn]] inline void no_cuda() {
  throw DeviceError(
      "the CUDA device was asked for, but this program was built without ewnet's CUDA backend "
      "(link the CMake target ewnet::cuda, built where CUDA, cuBLAS and cuDNN are found)");
}

constexpr size_t kCpuAlignment = 64;

inline void* allocate(Device d, size_t bytes) {
  if (bytes == 0) return nullptr;
  if (d == Device::cpu) {
    size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    void* p = std::aligned_alloc(kCpuAlignment, rounded);
    if (!p) throw Error(str("out of host memory: asked for ", bytes, " bytes"));
    return p;
  }
#ifdef EWNET_WITH_CUDA
  return cuda::allocate(bytes);
#else
  no_cuda();
#endif
}

inline void release(Device d, void* p, size_t bytes) {
  if (!p) return;
  if (d == Device::cpu) {
    std::free(p);
    return;
  }
#ifdef EWNET_WITH_CUDA
  cuda::release(p, bytes);
#else
  (void)bytes;
#endif
}

/// Copies `bytes` between any two places.
inline void copy_bytes(Device dst_dev, void* dst, Device src_dev, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev == Device::cpu && src_dev == Device::cpu) {
    std::memmove(dst, src, bytes);
    return;
  }
#ifdef EWNET_WITH_CUDA
  if (dst_dev == Device::cuda && src_dev == Device::cpu) cuda::copy_host_to_device(dst, src, bytes);
  else if (dst_dev == Device::cpu && src_dev == Device::cuda) cuda::copy_device_to_host(dst, src, bytes);
  else cuda::copy_device_to_device(dst, src, bytes);
#else
  no_cuda();
#endif
}

/// Copies rows of `row_bytes` between buffers with their own pitches, on one device.
inline void copy_rows(Device dev, void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                      size_t row_bytes, size_t rows) {
  if (rows == 0 || row_bytes == 0) return;
  if (dev == Device::cpu) {
    for (size_t r = 0; r < rows; ++r)
      std::memmove(static_cast<char*>(dst) + r * dst_pitch, static_cast<const char*>(src) + r * src_pitch,
                   row_bytes);
    return;
  }
#ifdef EWNET_WITH_CUDA
  cuda::copy_2d(dst, dst_pitch, src, src_pitch, row_bytes, rows);
#else
  no_cuda();
#endif
}

}  // namespace detail
}  // namespace ewnet
