// cuda/runtime.cpp: device check, the caching allocator, the current stream, copies, and the
// failure path of the checking macro.
#include <ewnet/cuda/runtime.hpp>

#include <map>
#include <mutex>
#include <vector>

#include "cuda/check.hpp"

namespace ewnet::cuda {

namespace detail {
void fail(const char* library, const char* call, const char* file, int line, const char* message) {
  throw DeviceError(str(library, " call ", call, " failed at ", file, ":", line, ": ", message));
}
}  // namespace detail

// ---- device -----------------------------------------------------------------------------------

namespace {
struct DeviceState {
  bool checked = false;
  bool present = false;
  std::string why;
};
DeviceState& device_state() {
  static DeviceState s;
  static std::once_flag once;
  std::call_once(once, [] {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    s.checked = true;
    if (e != cudaSuccess) {
      cudaGetLastError();
      s.why = str("cudaGetDeviceCount failed: ", cudaGetErrorString(e));
    } else if (count == 0) {
      s.why = "the driver reports no CUDA device";
    } else {
      s.present = true;
    }
  });
  return s;
}
}  // namespace

bool available() { return device_state().present; }

void require_device() {
  const DeviceState& s = device_state();
  if (!s.present) throw DeviceError(str("the CUDA device was asked for, but none can be used: ", s.why));
}

std::string device_name() {
  require_device();
  cudaDeviceProp p{};
  EWNET_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  return p.name;
}

// ---- stream -----------------------------------------------------------------------------------

namespace {
cudaStream_t g_user_stream = nullptr;
cudaStream_t own_stream() {
  static cudaStream_t s = [] {
    require_device();
    cudaStream_t created = nullptr;
    // Non-blocking: ewnet's work does not serialise with the legacy default stream.
    EWNET_CUDA_CHECK(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking));
    return created;
  }();
  return s;
}
bool g_tf32 = false;
}  // namespace

cudaStream_t stream() { return g_user_stream ? g_user_stream : own_stream(); }
void set_stream(cudaStream_t s) { g_user_stream = s; }

bool capturing() {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  EWNET_CUDA_CHECK(cudaStreamIsCapturing(stream(), &status));
  return status == cudaStreamCaptureStatusActive;
}

void set_tf32(bool enabled) { g_tf32 = enabled; }
bool tf32() { return g_tf32; }

void synchronize() { EWNET_CUDA_CHECK(cudaStreamSynchronize(stream())); }

// ---- caching allocator ------------------------------------------------------------------------
//
// Requests are rounded up (to 512 bytes below 1 MiB, to 1 MiB above), and a released block waits
// in a free list keyed by its rounded size. All work runs on one stream, so a block released by
// one operation and handed to a later one is only touched after the earlier work in stream order:
// no event is needed. Blocks go back to the driver only in empty_cache() or when cudaMalloc runs
// out of memory (then the cache is emptied and the request retried once).

namespace {
struct Allocator {
  std::mutex mutex;
  std::map<std::size_t, std::vector<void*>> free_blocks;
  AllocatorStats stats;

  static std::size_t round(std::size_t bytes) {
    constexpr std::size_t kSmall = 512, kLarge = std::size_t(1) << 20;
    const std::size_t unit = bytes < kLarge ? kSmall : kLarge;
    return (bytes + unit - 1) / unit * unit;
  }

  // Called with the mutex held.
  void free_cached() {
    if (stats.bytes_cached == 0) return;
    EWNET_CUDA_CHECK(cudaDeviceSynchronize());
    for (auto& [size, blocks] : free_blocks)
      for (void* p : blocks) {
        EWNET_CUDA_CHECK(cudaFree(p));
        ++stats.device_frees;
      }
    free_blocks.clear();
    stats.bytes_cached = 0;
  }
};
Allocator& allocator() {
  static Allocator* a = new Allocator;  // never destroyed: tensors may be released at exit
  return *a;
}
}  // namespace

void* allocate(std::size_t bytes) {
  require_device();
  Allocator& a = allocator();
  const std::size_t size = Allocator::round(bytes);
  std::lock_guard<std::mutex> lock(a.mutex);
  ++a.stats.requests;
  auto it = a.free_blocks.find(size);
  if (it != a.free_blocks.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    a.stats.bytes_cached -= size;
    a.stats.bytes_in_use += size;
    ++a.stats.cache_hits;
    return p;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  ++a.stats.device_mallocs;
  if (e == cudaErrorMemoryAllocation && a.stats.bytes_cached > 0 && !capturing()) {
    cudaGetLastError();
    a.free_cached();
    e = cudaMalloc(&p, size);
    ++a.stats.device_mallocs;
  }
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    std::size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    throw DeviceError(str("out of CUDA device memory: asked for ", bytes, " bytes (", size, " rounded); ",
                          free_bytes, " of ", total_bytes, " bytes are free, ", a.stats.bytes_in_use,
                          " in use by ewnet"));
  }
  EWNET_CUDA_CHECK(e);
  a.stats.bytes_in_use += size;
  return p;
}

void release(void* ptr, std::size_t bytes) {
  if (!ptr) return;
  Allocator& a = allocator();
  const std::size_t size = Allocator::round(bytes);
  std::lock_guard<std::mutex> lock(a.mutex);
  a.free_blocks[size].push_back(ptr);
  a.stats.bytes_in_use -= size;
  a.stats.bytes_cached += size;
}

AllocatorStats allocator_stats() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  return a.stats;
}

void empty_cache() {
  if (!available()) return;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.free_cached();
}

// ---- copies -----------------------------------------------------------------------------------
//
// Host-to-device copies are queued on the stream. From pageable memory (every ewnet CPU tensor),
// cudaMemcpyAsync stages the data before it returns, so the caller may reuse its buffer at once.
// Device-to-host copies wait for the stream: the caller asked for the values.

void copy_host_to_device(void* dst, const void* src, std::size_t bytes) {
  EWNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()));
}
void copy_device_to_host(void* dst, const void* src, std::size_t bytes) {
  EWNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
  EWNET_CUDA_CHECK(cudaStreamSynchronize(stream()));
}
void copy_device_to_device(void* dst, const void* src, std::size_t bytes) {
  EWNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
}
void copy_2d(void* dst, std::size_t dst_pitch, const void* src, std::size_t src_pitch, std::size_t row_bytes,
             std::size_t rows) {
  EWNET_CUDA_CHECK(
      cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, rows, cudaMemcpyDeviceToDevice, stream()));
}
void memset_zero(void* dst, std::size_t bytes) { EWNET_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream())); }

}  // namespace ewnet::cuda
