// cuda/runtime.cpp: device check, the caching allocator, the current stream, copies, and the
// failure path of the checking macro.
#include <ewnet/cuda/runtime.hpp>

#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

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
// Requests are rounded up (to 512 bytes below 1 MiB, to 1 MiB above), and a released block waits
// in a free list keyed by its rounded size. All work runs on one stream, so a block released by
// one operation and handed to a later one is only touched after the earlier work in stream order:
// no event is needed (set_stream makes the new stream wait for the old one). Blocks go back to the
// driver only in empty_cache() or when cudaMalloc runs out of memory (then the cache is emptied
// and the request retried once, unless a capture is running).
//
// CUDA graphs (step_graph.cpp) bake device pointers into their kernels. At the end of a capture
// every block in use and every block handed out during the capture is marked; releasing a marked
// block, handing one out again outside a capture, or returning blocks to the driver bumps the
// allocation generation, and a graph captured under an older generation is not replayed.

namespace {
struct Allocator {
  std::mutex mutex;
  std::map<std::size_t, std::vector<void*>> free_blocks;
  std::unordered_map<void*, std::size_t> in_use;  // block -> rounded size
  std::unordered_set<void*> captured;             // blocks a live graph may reference
  std::vector<void*> capture_log;                 // handed out since begin_capture_tracking()
  bool tracking = false;
  std::uint64_t generation = 0;
  int graphs = 0;
  std::vector<std::pair<void*, std::size_t>> retired;  // released once no graph is left
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
        if (captured.erase(p)) ++generation;
      }
    free_blocks.clear();
    stats.bytes_cached = 0;
  }

  // Called with the mutex held: puts a block back into the free list.
  void put_back(void* ptr, std::size_t size) {
    in_use.erase(ptr);
    if (captured.count(ptr)) ++generation;
    free_blocks[size].push_back(ptr);
    stats.bytes_in_use -= size;
    stats.bytes_cached += size;
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
  void* p = nullptr;
  auto it = a.free_blocks.find(size);
  if (it != a.free_blocks.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    a.stats.bytes_cached -= size;
    ++a.stats.cache_hits;
  } else {
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
  }
  a.stats.bytes_in_use += size;
  a.in_use[p] = size;
  // A block a live graph may write is now someone else's. (Blocks handed out during a capture are
  // marked when it ends, so a capture never invalidates its own graph.)
  if (!a.captured.empty() && a.captured.count(p)) ++a.generation;
  if (a.tracking) a.capture_log.push_back(p);
  return p;
}

void release(void* ptr, std::size_t bytes) {
  if (!ptr) return;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.put_back(ptr, Allocator::round(bytes));
}

AllocatorStats allocator_stats() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  return a.stats;
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
  return a.generation;
}

namespace detail {

void begin_capture_tracking() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.capture_log.clear();
  a.tracking = true;
}

std::uint64_t end_capture_tracking(bool keep) {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.tracking = false;
  if (keep) {
    for (const auto& [p, size] : a.in_use) a.captured.insert(p);
    a.captured.insert(a.capture_log.begin(), a.capture_log.end());
  }
  a.capture_log.clear();
  return a.generation;
}

void graph_created() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  ++a.graphs;
}

void graph_destroyed() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  if (--a.graphs > 0) return;
  a.graphs = 0;
  a.captured.clear();
  for (const auto& [p, size] : a.retired) a.put_back(p, size);
  a.retired.clear();
}

void release_after_graphs(void* ptr, std::size_t bytes) {
  if (!ptr) return;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  if (a.graphs > 0) {
    a.retired.emplace_back(ptr, Allocator::round(bytes));
  } else {
    a.put_back(ptr, Allocator::round(bytes));
  }
}

void* scratch(std::size_t bytes) {
  static void* block = nullptr;
  static std::size_t size = 0;
  static std::mutex m;
  std::lock_guard<std::mutex> lock(m);
  if (bytes > size) {
    const std::size_t want = bytes < (std::size_t(64) << 10) ? (std::size_t(64) << 10) : bytes;  // grows seldom
    release_after_graphs(block, size);
    block = nullptr;
    size = 0;
    block = allocate(want);
    size = want;
  }
  return block;
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
