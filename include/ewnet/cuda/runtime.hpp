// ewnet/cuda/runtime.hpp: the CUDA backend's runtime, for programs that link ewnet::cuda.
//
// All of ewnet's device work goes to one stream, the current stream (created on first use, or set
// by the caller). Nothing inside an operation waits for the device; only calls that hand a value
// to the host (Tensor::to_vector, Model::loss, synchronize) do.
//
// Memory comes from a caching allocator: a freed block is kept, keyed by its rounded size, and
// handed to the next request of that size, so a training step performs no cudaMalloc or cudaFree
// after the first. Blocks are returned to the driver only by empty_cache().
//
// Precision: float32 with full FP32 arithmetic by default (cuDNN CUDNN_FMA_MATH, cuBLAS default
// math); set_tf32(true) lets convolutions and matrix products use TF32 tensor cores.
//
// Reproducibility: deterministic mode (on by default) restricts cuDNN to algorithms it reports as
// deterministic, so two identical runs on the same GPU, driver and libraries give the same bits
// (docs/cuda.md says what is and is not reproducible).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <cuda_runtime_api.h>

#include <ewnet/device.hpp>
#include <ewnet/error.hpp>

namespace ewnet::cuda {

/// Counters of the caching allocator (tests check that a step stops calling cudaMalloc).
struct AllocatorStats {
  std::uint64_t device_mallocs = 0;   // cudaMalloc calls so far
  std::uint64_t device_frees = 0;     // cudaFree calls so far (empty_cache and out-of-memory retries)
  std::uint64_t requests = 0;         // allocate() calls
  std::uint64_t cache_hits = 0;       // requests served from the cache
  std::size_t bytes_in_use = 0;       // handed out and not yet released (rounded sizes)
  std::size_t bytes_cached = 0;       // kept for reuse
};
AllocatorStats allocator_stats();
/// Returns every cached block to the driver (waits for the device first). Throws DeviceError
/// while the current stream is being captured.
void empty_cache();

/// The name of device 0 ("NVIDIA H100 80GB HBM3"); throws DeviceError when there is none.
std::string device_name();
/// Throws DeviceError saying why when no CUDA device can be used.
void require_device();

/// The stream all of ewnet's work goes to.
cudaStream_t stream();
/// Makes `s` the current stream (nullptr: back to ewnet's own stream). The caller keeps `s`
/// alive while ewnet uses it. The new stream first waits (an event) for everything queued on the
/// old one, since cached blocks and workspaces pass from one to the other. Throws DeviceError
/// during a capture.
void set_stream(cudaStream_t s);
/// True while the current stream is being captured into a CUDA graph.
bool capturing();

/// TF32 tensor-core math for convolutions and matrix products (off by default: full FP32).
void set_tf32(bool enabled);
bool tf32();

/// Deterministic mode (on by default): cuDNN may only choose convolution algorithms it reports
/// as deterministic, so identical runs give identical bits (each shape is planned once per
/// mode, so switching back and forth costs nothing after the first use).
void set_deterministic(bool enabled);
bool deterministic();

/// Waits for the current stream; throws DeviceError when a kernel reported bad input (such as
/// a label outside [0, classes) in the cross-entropy kernels).
void synchronize();

}  // namespace ewnet::cuda
