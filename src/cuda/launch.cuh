// cuda/launch.cuh: launch geometry and strided-tensor indexing shared by the kernels.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include <ewnet/cuda/runtime.hpp>
#include <ewnet/tensor.hpp>

#include "cuda/check.hpp"

namespace ewnet::cuda::detail {

constexpr int kBlock = 256;

/// Blocks for a grid-stride loop over `count` items: enough to fill the GPU, never more than
/// the items need. Callers skip the launch when count is 0.
inline unsigned grid_for(std::size_t count, int block = kBlock) {
  const std::size_t want = (count + std::size_t(block) - 1) / std::size_t(block);
  const std::size_t cap = 65536;
  return unsigned(want < cap ? want : cap);
}

/// A tensor as a kernel sees it: n samples of `sample` elements, `stride` elements apart.
struct View {
  float* data;
  std::int64_t n, c, hw, sample, stride;
  __host__ __device__ std::int64_t count() const { return n * sample; }
  /// Element `i` of the dense NCHW numbering (i = n*sample + rest) in the strided buffer.
  __host__ __device__ std::int64_t at(std::int64_t i) const { return (i / sample) * stride + i % sample; }
};

inline View view(const Tensor<float>& t) {
  const Shape& s = t.shape();
  return View{t.data(), s.n, s.c, std::int64_t(s.plane()), std::int64_t(s.sample_size()),
              std::int64_t(t.batch_stride())};
}

/// Per-channel reductions across blocks (batch-norm statistics, the convolution's bias gradient):
/// the `m` values of each channel are split among `chunks` blocks, a grid of (chunks, channels);
/// stage 1 writes one partial per block, stage 2 adds a channel's partials in chunk order. The
/// split depends on the shape alone, so the sums are the same bits on every run. Enough blocks in
/// all to fill a large GPU (1024), each with at least 4 values a thread.
inline unsigned chunks_for(std::int64_t per_channel, std::int64_t channels) {
  const std::int64_t per_block = 4 * std::int64_t(kBlock);
  const std::int64_t by_size = (per_channel + per_block - 1) / per_block;
  const std::int64_t by_grid = channels > 0 ? 1024 / channels : 1;
  const std::int64_t c = by_size < by_grid ? by_size : by_grid;
  return unsigned(c < 1 ? 1 : c);
}

/// Value j of the channel (blockIdx.y) handled by this block of its chunks (blockIdx.x).
#define EWNET_CHUNK_LOOP(j, m)                                                                        \
  for (std::int64_t j = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < std::int64_t(m); \
       j += std::int64_t(blockDim.x) * gridDim.x)

/// A grid-stride loop with 64-bit indices.
#define EWNET_GRID_LOOP(i, count)                                                                  \
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < std::int64_t(count); \
       i += std::int64_t(blockDim.x) * gridDim.x)

}  // namespace ewnet::cuda::detail

namespace ewnet::cuda::detail {

/// The sum of `v` over the block (blockDim.x a multiple of 32, at most 1024), returned to every
/// thread. Warp shuffles, then one value per warp through shared memory. Every thread of the
/// block must call it (it synchronises).
template <class T>
__device__ T block_sum(T v) {
  __shared__ T partial[32];
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // partial[] may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = int(blockDim.x) >> 5;
  T total = T(0);
  for (int w = 0; w < warps; ++w) total += partial[w];
  return total;
}

}  // namespace ewnet::cuda::detail
