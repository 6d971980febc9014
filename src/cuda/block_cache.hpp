// cuda/block_cache.hpp: the caching allocator's bookkeeping without the driver: free blocks by
// rounded size, blocks in use, blocks a live CUDA graph may reference, and the allocation
// generation that tells a graph its memory changed hands. runtime.cpp adds cudaMalloc/cudaFree
// and a mutex; the host tests (tests/cuda/block_cache.cpp) drive this class alone.
//
// CUDA graphs bake device pointers into their nodes. A block is *marked* when a kept capture ends
// if it is in use then, or if it passed through the allocator during the capture (handed out, or
// released: a block allocated before the capture, used by nodes recorded early and released later
// in the same capture is referenced by those nodes although nobody holds it at the end). Handing a
// marked block out again, releasing it or returning it to the driver moves the generation on; a
// graph captured under an older generation must not be replayed.
//
// Releases that may happen while a graph lives and that should not invalidate it (a workspace
// that grows) go through release_after_graphs: the old block is held back, not cached, while any
// graph exists or a capture is running, and cached once the last graph is gone or the capture
// was dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace ewnet::cuda::detail {

class BlockCache {
 public:
  struct Counters {
    std::uint64_t requests = 0, cache_hits = 0;
    std::size_t bytes_in_use = 0, bytes_cached = 0;
  };

  /// Requests are rounded up to 512 bytes below 1 MiB and to 1 MiB above.
  static std::size_t round(std::size_t bytes) {
    constexpr std::size_t kSmall = 512, kLarge = std::size_t(1) << 20;
    const std::size_t unit = bytes < kLarge ? kSmall : kLarge;
    return (bytes + unit - 1) / unit * unit;
  }

  /// A cached block of `size` (rounded) bytes, now in use; nullptr when none is cached (then the
  /// caller gets one from the driver and calls adopt()).
  void* take(std::size_t size) {
    ++counters_.requests;
    auto it = free_.find(size);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    counters_.bytes_cached -= size;
    ++counters_.cache_hits;
    hand_out(p, size);
    return p;
  }

  /// A block fresh from the driver, now in use.
  void adopt(void* p, std::size_t size) { hand_out(p, size); }

  /// A block its user no longer needs goes back to the cache.
  void release(void* p, std::size_t size) {
    in_use_.erase(p);
    counters_.bytes_in_use -= size;
    if (marked_.count(p)) ++generation_;
    if (tracking_) capture_log_.push_back(p);
    free_[size].push_back(p);
    counters_.bytes_cached += size;
  }

  /// release(), but held back while a graph exists or a capture runs (see above).
  void release_after_graphs(void* p, std::size_t size) {
    if (graphs_ > 0 || tracking_) {
      in_use_.erase(p);  // still counted in bytes_in_use: a graph may use it
      held_.emplace_back(p, size);
      return;
    }
    release(p, size);
  }

  /// Every cached block, for the driver to free; the cache is empty afterwards.
  std::vector<void*> drain() {
    std::vector<void*> out;
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) {
        if (marked_.erase(p)) ++generation_;
        out.push_back(p);
      }
    free_.clear();
    counters_.bytes_cached = 0;
    return out;
  }

  void begin_capture() {
    capture_log_.clear();
    tracking_ = true;
  }

  /// Ends a capture; with `keep` (it produced a graph, which graph_created() counts next) marks the
  /// blocks in use and those that passed through the allocator during it. Returns the generation.
  std::uint64_t end_capture(bool keep) {
    tracking_ = false;
    if (keep) {
      for (const auto& [p, size] : in_use_) marked_.insert(p);
      marked_.insert(capture_log_.begin(), capture_log_.end());
    } else if (graphs_ == 0) {
      release_held();
    }
    capture_log_.clear();
    return generation_;
  }

  void graph_created() { ++graphs_; }

  /// When the last graph goes, the marks are cleared and the held-back blocks cached (after the
  /// capture in progress, if any).
  void graph_destroyed() {
    if (--graphs_ > 0) return;
    graphs_ = 0;
    marked_.clear();
    if (!tracking_) release_held();  // else the capture's end decides
  }

  std::uint64_t generation() const { return generation_; }
  const Counters& counters() const { return counters_; }
  std::size_t held_back() const { return held_.size(); }

 private:
  void hand_out(void* p, std::size_t size) {
    counters_.bytes_in_use += size;
    in_use_[p] = size;
    // A block a live graph may write is now someone else's. (Blocks handed out during a capture
    // are marked when it ends, so a capture never invalidates its own graph.)
    if (marked_.count(p)) ++generation_;
    if (tracking_) capture_log_.push_back(p);
  }

  void release_held() {
    std::vector<std::pair<void*, std::size_t>> held;
    held.swap(held_);
    for (const auto& [p, size] : held) {
      counters_.bytes_in_use -= size;
      free_[size].push_back(p);
      counters_.bytes_cached += size;
    }
  }

  std::map<std::size_t, std::vector<void*>> free_;
  std::unordered_map<void*, std::size_t> in_use_;
  std::unordered_set<void*> marked_;  // blocks a live graph may reference
  std::vector<void*> capture_log_;    // passed through the allocator since begin_capture()
  std::vector<std::pair<void*, std::size_t>> held_;
  bool tracking_ = false;
  int graphs_ = 0;
  std::uint64_t generation_ = 0;
  Counters counters_;
};

}  // namespace ewnet::cuda::detail
