// cuda/runtime.cpp: device check, the caching allocator, the current stream, copies, and the
// failure path of the checking macro.
#include <ewnet/cuda/runtime.hpp>

#include <mutex>

#include "cuda/block_cache.hpp"
#include "cuda/check.hpp"
#include "cuda/graph_support.hpp"

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

// ---- stream ----------------------------------------------------------------------------------

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
bool g_deterministic = true;
}  // namespace

cudaStream_t stream() { return g_user_stream ? g_user_stream : own_stream(); }

// Cached blocks, the cuDNN workspace and the reduction scratch were last used by work queued on
// the old stream. The new stream waits for all of it (an event, no host wait), so a block handed
// out again, or a workspace reused, is touched only after its earlier users are done.
void set_stream(cudaStream_t s) {
  if (!available()) {
    g_user_stream = s;
    return;
  }
  const cudaStream_t old = stream();
  const cudaStream_t next = s ? s : own_stream();
  if (next == old) {
    g_user_stream = s;
    return;
  }
  EWNET_CHECK_AS(DeviceError, !capturing(), "set_stream() while the current stream is being captured into a CUDA "
                                            "graph (runtime.cpp): end the capture first");
  cudaEvent_t done = nullptr;
  EWNET_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  EWNET_CUDA_CHECK(cudaEventRecord(done, old));
  EWNET_CUDA_CHECK(cudaStreamWaitEvent(next, done, 0));
  EWNET_CUDA_CHECK(cudaEventDestroy(done));  // released once the wait is satisfied
  g_user_stream = s;
}

bool capturing() {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  EWNET_CUDA_CHECK(cudaStreamIsCapturing(stream(), &status));
  return status == cudaStreamCaptureStatusActive;
}

void set_tf32(bool enabled) { g_tf32 = enabled; }
bool tf32() { return g_tf32; }

void set_deterministic(bool enabled) { g_deterministic = enabled; }
bool deterministic() { return g_deterministic; }

void synchronize() {
  EWNET_CUDA_CHECK(cudaStreamSynchronize(stream()));
  detail::check_device_errors();
}

// ---- caching allocator ------------------------------------------------------------------------
//
// The bookkeeping (rounding, free lists, the marks and generation that keep CUDA graphs from
// replaying into memory that changed hands) is BlockCache (cuda/block_cache.hpp); this adds the
// driver. All work runs on one stream, so a block released by one operation and handed to a later
// one is only touched after the earlier work in stream order: no event is needed (set_stream makes
// the new stream wait for the old one). Blocks go back to the driver only in empty_cache() or when
// cudaMalloc runs out of memory (then the cache is emptied and the request retried once, unless a
// capture is running).

namespace {
struct Allocator {
  std::mutex mutex;
  detail::BlockCache cache;
  std::uint64_t device_mallocs = 0, device_frees = 0;

  // Called with the mutex held.
  void free_cached() {
    if (cache.counters().bytes_cached == 0) return;
    EWNET_CUDA_CHECK(cudaDeviceSynchronize());
    for (void* p : cache.drain()) {
      EWNET_CUDA_CHECK(cudaFree(p));
      ++device_frees;
    }
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
  const std::size_t size = detail::BlockCache::round(bytes);
  std::lock_guard<std::mutex> lock(a.mutex);
  if (void* cached = a.cache.take(size)) return cached;
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  ++a.device_mallocs;
  if (e == cudaErrorMemoryAllocation && a.cache.counters().bytes_cached > 0 && !capturing()) {
    cudaGetLastError();
    a.free_cached();
    e = cudaMalloc(&p, size);
    ++a.device_mallocs;
  }
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    std::size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    throw DeviceError(str("out of CUDA device memory: asked for ", bytes, " bytes (", size, " rounded); ", free_bytes,
                          " of ", total_bytes, " bytes are free, ", a.cache.counters().bytes_in_use,
                          " in use by ewnet"));
  }
  EWNET_CUDA_CHECK(e);
  a.cache.adopt(p, size);
  return p;
}

void release(void* ptr, std::size_t bytes) {
  if (!ptr) return;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.cache.release(ptr, detail::BlockCache::round(bytes));
}

AllocatorStats allocator_stats() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  const detail::BlockCache::Counters& c = a.cache.counters();
  AllocatorStats s;
  s.device_mallocs = a.device_mallocs;
  s.device_frees = a.device_frees;
  s.requests = c.requests;
  s.cache_hits = c.cache_hits;
  s.bytes_in_use = c.bytes_in_use;
  s.bytes_cached = c.bytes_cached;
  return s;
}

void empty_cache() {
  if (!available()) return;
  // Its device synchronisation would invalidate a capture in progress.
  EWNET_CHECK_AS(DeviceError, !capturing(), "empty_cache() while the current stream is being captured into a CUDA "
                                            "graph (runtime.cpp): call it outside the captured step");
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.free_cached();
}

std::uint64_t allocation_generation() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  return a.cache.generation();
}

namespace detail {

void begin_capture_tracking() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.cache.begin_capture();
}

std::uint64_t end_capture_tracking(bool keep) {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  return a.cache.end_capture(keep);
}

void graph_created() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.cache.graph_created();
}

void graph_destroyed() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.cache.graph_destroyed();
}

void release_after_graphs(void* ptr, std::size_t bytes) {
  if (!ptr) return;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.cache.release_after_graphs(ptr, BlockCache::round(bytes));
}

namespace {
struct Scratch {
  std::mutex mutex;
  void* block = nullptr;
  std::size_t size = 0;
};
Scratch& scratch_state() {
  static Scratch s;
  return s;
}
}  // namespace

void* scratch(std::size_t bytes) {
  Scratch& s = scratch_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (bytes > s.size) {
    const std::size_t want = bytes < (std::size_t(64) << 10) ? (std::size_t(64) << 10) : bytes;  // grows seldom
    release_after_graphs(s.block, s.size);
    s.block = nullptr;
    s.size = 0;
    s.block = allocate(want);
    s.size = want;
  }
  return s.block;
}

std::size_t scratch_bytes() {
  Scratch& s = scratch_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.size;
}

// ---- errors found on the device ---------------------------------------------------------------
//
// A kernel that finds bad input (a label outside [0, classes)) reports it through the sink and
// carries on without reading out of bounds; the host looks at the record after every
// synchronisation (synchronize, a copy to the host) and throws.

namespace {
struct Sink {
  ErrorSink device{};
  DeviceErrorRecord* host = nullptr;
};
Sink& sink_state() {
  static Sink s;
  return s;
}
}  // namespace

ErrorSink error_sink() {
  static std::once_flag once;
  std::call_once(once, [] {
    require_device();
    Sink& s = sink_state();
    void* host = nullptr;
    EWNET_CUDA_CHECK(cudaHostAlloc(&host, sizeof(DeviceErrorRecord), cudaHostAllocMapped));
    *static_cast<DeviceErrorRecord*>(host) = DeviceErrorRecord{};
    void* dev = nullptr;
    EWNET_CUDA_CHECK(cudaHostGetDevicePointer(&dev, host, 0));
    void* claim = nullptr;
    EWNET_CUDA_CHECK(cudaMalloc(&claim, sizeof(int)));
    EWNET_CUDA_CHECK(cudaMemset(claim, 0, sizeof(int)));
    s.device = ErrorSink{static_cast<int*>(claim), static_cast<DeviceErrorRecord*>(dev)};
    s.host = static_cast<DeviceErrorRecord*>(host);
  });
  return sink_state().device;
}

void check_device_errors() {
  Sink& s = sink_state();
  volatile DeviceErrorRecord* r = s.host;
  if (!r || r->code == 0) return;
  const int code = r->code;
  const long long index = r->index, value = r->value, limit = r->limit;
  r->index = r->value = r->limit = 0;
  r->code = 0;
  EWNET_CUDA_CHECK(cudaMemsetAsync(s.device.claim, 0, sizeof(int), stream()));
  if (code == kLabelOutOfRange)
    throw DeviceError(str("a label on the CUDA device is outside [0, ", limit, "): label ", value, " of sample ", index,
                          " (found by the cross-entropy kernels, kernels/softmax.cu); that step's loss and gradient "
                          "are not valid"));
  throw DeviceError(str("a CUDA kernel reported error code ", code, " (runtime.cpp)"));
}

}  // namespace detail

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
  detail::check_device_errors();
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
