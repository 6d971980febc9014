// ewnet/ops/parallel.hpp: parallel_for for the CPU backend's element-wise and pooling loops.
//
// Everything between the GEMMs (im2col, pooling, normalisation, activations) used to run on one
// thread while the BLAS threads spun idle; the convolutions' GEMMs now run on this pool too, one
// single-threaded GEMM per sample (parallel_gemm_for), so one pool owns the cores.
// parallel_for splits a range of independent items into one contiguous chunk per thread, the same
// chunks on every run, and each item is computed by exactly one thread in a fixed order: results
// are bitwise reproducible and independent of timing (no atomics, no cross-thread reductions).
//
// The pool has cpu::thread_count() - 1 workers (the caller takes the first chunk), so ewnet keeps
// to the thread count the user gave (OMP_NUM_THREADS; cpu_engine.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <ewnet/blas.hpp>

namespace ewnet::cpu {

namespace pool_detail {

class ThreadPool {
 public:
  explicit ThreadPool(int threads) {
    for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { work(t); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& w : workers_) w.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return int(workers_.size()) + 1; }

  /// Calls job(t) for t in [0, threads()), job(0) on the calling thread; returns when all are done.
  void run(const std::function<void(int)>& job) {
    std::unique_lock<std::mutex> serial(run_mutex_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      pending_ = int(workers_.size());
      ++generation_;
    }
    wake_.notify_all();
    inside() = true;
    job(0);
    inside() = false;
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
  }

  /// True on a pool thread, or on the caller while it runs its chunk: nested loops run serially,
  /// and GEMMs on the calling thread alone (cpu_engine.hpp, serial_region()).
  static bool& inside() { return serial_region(); }

 private:
  void work(int t) {
    inside() = true;
    unsigned long seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
      }
      (*job)(t);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_, run_mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* job_ = nullptr;
  int pending_ = 0;
  unsigned long generation_ = 0;
  bool stop_ = false;
};

inline ThreadPool& pool() {
  static ThreadPool p(thread_count());
  return p;
}

}  // namespace pool_detail

/// Calls body(begin, end) over [0, count) split into one contiguous chunk per thread. Runs on the
/// calling thread alone when there is one thread, when count < 2 * grain (too little work to pay
/// for waking the pool: about 10 microseconds), or when called from inside another parallel_for.
template <class F>
void parallel_for(size_t count, size_t grain, F&& body) {
  if (count == 0) return;
  const int threads = thread_count();
  if (threads <= 1 || count < 2 * std::max<size_t>(grain, 1) || pool_detail::ThreadPool::inside()) {
    body(size_t(0), count);
    return;
  }
  pool_detail::ThreadPool& p = pool_detail::pool();
  const size_t chunks = std::min<size_t>(size_t(p.threads()), count / std::max<size_t>(grain, 1));
  const std::function<void(int)> job = [&](int t) {
    if (size_t(t) >= chunks) return;
    const size_t begin = count * size_t(t) / chunks, end = count * (size_t(t) + 1) / chunks;
    if (begin < end) body(begin, end);
  };
  p.run(job);
}

/// parallel_for over the samples of a batch whose samples hold `per_sample` elements each, with
/// at least about 32K elements per thread (below that, waking a thread costs more than it saves).
template <class F>
void parallel_samples(int samples, size_t per_sample, F&& body) {
  const size_t grain = (size_t(1) << 15) / std::max<size_t>(per_sample, 1) + 1;
  parallel_for(size_t(std::max(samples, 0)), grain, [&](size_t n0, size_t n1) { body(int(n0), int(n1)); });
}

/// For loops whose items each run their own (small) GEMMs, such as the samples of a convolution:
/// calls body(chunk, begin, end) once for every chunk in [0, chunks), chunk c covering items
/// [count*c/chunks, count*(c+1)/chunks), each chunk's GEMMs single-threaded on the thread that runs
/// it: ewnet's pool is then the only owner of the cores. The pool's threads take the chunks in turn
/// from a shared counter, so a thread slowed by another process takes fewer; what a chunk computes
/// depends on its items only, never on which thread runs it, so per-chunk results (partial sums
/// reduced in chunk order afterwards) are bitwise reproducible. Runs every chunk on the calling
/// thread, in order, when there is one thread or when called from inside a parallel region.
template <class F>
void parallel_gemm_for(size_t count, size_t chunks, F&& body) {
  chunks = std::min(chunks, count);
  if (chunks == 0) return;
  auto run_chunk = [&](size_t c) { body(int(c), count * c / chunks, count * (c + 1) / chunks); };
  if (chunks == 1 || thread_count() <= 1 || pool_detail::ThreadPool::inside()) {
    for (size_t c = 0; c < chunks; ++c) run_chunk(c);
    return;
  }
  std::atomic<size_t> next{0};
  const std::function<void(int)> job = [&](int) {
    for (size_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) run_chunk(c);
  };
  pool_detail::pool().run(job);
}

}  // namespace ewnet::cpu
