// The caching allocator's bookkeeping (src/cuda/block_cache.hpp) on the host, without a GPU: which
// blocks a CUDA graph may still reference, and when the allocation generation must move so that
// StepGraph never replays into memory that changed hands. Pointers are addresses in a local
// array; nothing is dereferenced.
#include <catch2/catch.hpp>

#include "cuda/block_cache.hpp"

using ewnet::cuda::detail::BlockCache;

namespace {
constexpr std::size_t kMiB = std::size_t(1) << 20;
char arena[8];
void* block(int i) { return &arena[i]; }

/// What StepGraph does around a capture that produces a graph.
template <class Step>
std::uint64_t capture(BlockCache& cache, Step step) {
  cache.begin_capture();
  step();
  const std::uint64_t generation = cache.end_capture(true);
  cache.graph_created();
  return generation;
}
}  // namespace

TEST_CASE("block cache: sizes round to 512 bytes below 1 MiB and to 1 MiB above", "[block_cache]") {
  CHECK(BlockCache::round(1) == 512);
  CHECK(BlockCache::round(512) == 512);
  CHECK(BlockCache::round(513) == 1024);
  CHECK(BlockCache::round(kMiB) == kMiB);
  CHECK(BlockCache::round(kMiB + 1) == 2 * kMiB);
}

TEST_CASE("block cache: a released block is handed to the next request of its size", "[block_cache]") {
  BlockCache cache;
  CHECK(cache.take(kMiB) == nullptr);
  cache.adopt(block(0), kMiB);
  CHECK(cache.counters().bytes_in_use == kMiB);
  cache.release(block(0), kMiB);
  CHECK(cache.counters().bytes_cached == kMiB);
  CHECK(cache.take(2 * kMiB) == nullptr);
  CHECK(cache.take(kMiB) == block(0));
  CHECK(cache.counters().cache_hits == 1);
  CHECK(cache.counters().bytes_in_use == kMiB);
  CHECK(cache.counters().bytes_cached == 0);
}

TEST_CASE("block cache: a block in use at the end of a capture changes hands only with a new generation",
          "[block_cache]") {
  BlockCache cache;
  cache.adopt(block(0), kMiB);  // an activation the step writes
  const std::uint64_t g = capture(cache, [] {});
  CHECK(cache.generation() == g);
  cache.release(block(0), kMiB);  // the model reallocates at another batch size
  CHECK(cache.generation() != g);
}

TEST_CASE("block cache: a block handed out during a capture is marked", "[block_cache]") {
  BlockCache cache;
  cache.adopt(block(0), 512);
  const std::uint64_t g = capture(cache, [&] {
    cache.release(block(0), 512);      // a temporary of the step ...
    CHECK(cache.take(512) == block(0));  // ... taken again inside the capture: no invalidation yet
  });
  CHECK(cache.generation() == g);
  cache.release(block(0), 512);
  CHECK(cache.generation() != g);
}

// The hole of the second CUDA review (N1): a block allocated before the capture, used by nodes
// recorded early, released later in the same capture. It is neither in use at the end nor handed
// out during the capture, and went back to the cache unmarked: a later tensor received it and the
// next replay wrote into that tensor with the generation unchanged.
TEST_CASE("block cache: a block released during a capture is marked, so handing it out invalidates the graph",
          "[block_cache]") {
  BlockCache cache;
  cache.adopt(block(0), kMiB);  // allocated before the capture
  const std::uint64_t g = capture(cache, [&] { cache.release(block(0), kMiB); });
  REQUIRE(cache.take(kMiB) == block(0));  // a bystander tensor receives it
  CHECK(cache.generation() != g);         // so the graph is not replayed
}

TEST_CASE("block cache: a workspace that grows during the first capture is held back while the graph lives",
          "[block_cache]") {
  BlockCache cache;
  cache.adopt(block(0), kMiB);  // the workspace the warm-up step left
  const std::uint64_t g = capture(cache, [&] {
    // A re-plan during the capture (TF32 or deterministic mode toggled, a larger batch) needs a
    // larger workspace: the nodes recorded so far keep the old pointer.
    cache.release_after_graphs(block(0), kMiB);
    cache.adopt(block(1), 4 * kMiB);
  });
  CHECK(cache.take(kMiB) == nullptr);  // not cached while the graph may still use it
  CHECK(cache.generation() == g);      // and the graph stays valid
  CHECK(cache.counters().bytes_in_use == 5 * kMiB);
  cache.graph_destroyed();
  CHECK(cache.take(kMiB) == block(0));
  CHECK(cache.held_back() == 0);
}

TEST_CASE("block cache: a workspace replaced while a graph lives does not invalidate it", "[block_cache]") {
  BlockCache cache;
  cache.adopt(block(0), kMiB);
  const std::uint64_t g = capture(cache, [] {});
  cache.release_after_graphs(block(0), kMiB);
  cache.adopt(block(1), 2 * kMiB);
  CHECK(cache.generation() == g);
  CHECK(cache.take(kMiB) == nullptr);
  cache.graph_destroyed();
  CHECK(cache.take(kMiB) == block(0));
}

TEST_CASE("block cache: a capture that produced no graph returns the blocks it held back", "[block_cache]") {
  BlockCache cache;
  cache.adopt(block(0), kMiB);
  cache.begin_capture();
  cache.release_after_graphs(block(0), kMiB);
  cache.end_capture(false);
  CHECK(cache.held_back() == 0);
  CHECK(cache.take(kMiB) == block(0));
}

TEST_CASE("block cache: the last graph destroyed during another capture leaves the held blocks to that capture",
          "[block_cache]") {
  BlockCache cache;
  cache.adopt(block(0), kMiB);
  capture(cache, [] {});  // graph A
  cache.begin_capture();  // graph B's capture
  cache.release_after_graphs(block(0), kMiB);
  cache.graph_destroyed();  // A goes: B's early nodes may still use block 0
  CHECK(cache.held_back() == 1);
  const std::uint64_t g = cache.end_capture(true);
  cache.graph_created();
  CHECK(cache.take(kMiB) == nullptr);
  CHECK(cache.generation() == g);
  cache.graph_destroyed();
  CHECK(cache.take(kMiB) == block(0));
}

TEST_CASE("block cache: returning marked blocks to the driver moves the generation", "[block_cache]") {
  BlockCache cache;
  cache.adopt(block(0), 512);
  cache.adopt(block(1), 512);
  const std::uint64_t g = capture(cache, [] {});
  cache.graph_destroyed();  // marks cleared with the last graph
  const std::uint64_t after = cache.generation();
  CHECK(after == g);
  capture(cache, [] {});
  cache.release(block(0), 512);
  const std::uint64_t before_drain = cache.generation();
  const std::vector<void*> freed = cache.drain();
  CHECK(freed.size() == 1);
  CHECK(cache.generation() != before_drain);
  CHECK(cache.counters().bytes_cached == 0);
}
