// cuda/graph_support.hpp: what the caching allocator (runtime.cpp) offers CUDA graphs
// (step_graph.cpp) and the kernels: capture tracking, releases deferred while a graph lives, a
// persistent scratch buffer, and the record through which kernels report bad input.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ewnet::cuda {
/// The allocation generation: bumped whenever a block a live graph may reference is released,
/// handed to another user, or returned to the driver (see cuda/block_cache.hpp).
std::uint64_t allocation_generation();
}  // namespace ewnet::cuda

namespace ewnet::cuda::detail {

/// Blocks handed out or released from now on are recorded (a capture begins).
void begin_capture_tracking();
/// Stops recording. With `keep` (the capture produced a graph), marks every block in use and
/// every block handed out or released during the capture as referenced by a graph; returns the
/// generation. The bookkeeping is cuda/block_cache.hpp's.
std::uint64_t end_capture_tracking(bool keep);
/// A graph exists / was destroyed. When the last one goes, the marks are cleared and the
/// blocks given to release_after_graphs() go back to the cache.
void graph_created();
void graph_destroyed();
/// release(), but kept out of the cache while any graph exists or a capture runs (a graph may
/// still write it): for workspaces that grow.
void release_after_graphs(void* ptr, std::size_t bytes);
/// A device buffer of at least `bytes` kept for the process (reduction partials); it grows, the
/// old block going through release_after_graphs(). Its contents do not survive the next call.
void* scratch(std::size_t bytes);
/// The scratch buffer's size now (0 before its first use).
std::size_t scratch_bytes();

/// Bad input found by a kernel. The first thread to find some claims `claim` (device memory,
/// atomicCAS from 0) and writes `record` (mapped host memory, plain stores); the host reads the
/// record after each synchronisation, so checking costs nothing while all is well.
struct DeviceErrorRecord {
  int code;  // 0: nothing to report
  long long index, value, limit;
};
struct ErrorSink {
  int* claim;
  DeviceErrorRecord* record;  // device address of the mapped record
};
constexpr int kLabelOutOfRange = 1;
/// The sink to pass to kernels (allocated on first use, kept for the process).
ErrorSink error_sink();
/// Throws DeviceError describing what a kernel reported, and clears the report.
void check_device_errors();

}  // namespace ewnet::cuda::detail
