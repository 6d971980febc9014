// bench/bench_util.hpp: what every ewnet benchmark shares: a timer per device, input rotation,
// the counters (images/s, FLOP/s, bytes/s) and the FLOP count of a model's convolutions.
//
// Timing: every benchmark uses Google Benchmark's manual time, so that rates are per second of
// wall clock (the default CPU time of the calling thread would ignore the BLAS worker threads, and
// it would not see the GPU at all). On the CPU an iteration is timed with a steady clock; on CUDA
// with a pair of events recorded on ewnet's stream, after warm-up iterations that are not timed.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <ewnet/cpu_engine.hpp>
#include <ewnet/model.hpp>
#include <ewnet/models/paper_model.hpp>

#ifdef EWNET_WITH_CUDA
#include <cuda_runtime_api.h>

#include <ewnet/cuda/runtime.hpp>
#endif

namespace ewnet::bench {

/// Waits for all queued work on `d` (a no-op on the CPU, whose operations return when done).
inline void synchronize(Device d) {
#ifdef EWNET_WITH_CUDA
  if (d == Device::cuda) ewnet::cuda::synchronize();
#else
  (void)d;
#endif
}

template <Device D>
class Timer;

template <>
class Timer<Device::cpu> {
 public:
  void start() { t0_ = std::chrono::steady_clock::now(); }
  double stop() { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

 private:
  std::chrono::steady_clock::time_point t0_;
};

#ifdef EWNET_WITH_CUDA
template <>
class Timer<Device::cuda> {
 public:
  Timer() {
    cudaEventCreate(&begin_);
    cudaEventCreate(&end_);
  }
  ~Timer() {
    cudaEventDestroy(begin_);
    cudaEventDestroy(end_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void start() { cudaEventRecord(begin_, ewnet::cuda::stream()); }
  double stop() {
    cudaEventRecord(end_, ewnet::cuda::stream());
    cudaEventSynchronize(end_);
    float ms = 0;
    cudaEventElapsedTime(&ms, begin_, end_);
    return double(ms) * 1e-3;
  }

 private:
  cudaEvent_t begin_{}, end_{};
};
#endif

/// Runs `body(i)` `warmup` times untimed, then once per benchmark iteration, timed on device D.
template <Device D, class F>
void timed_loop(benchmark::State& state, F&& body, int warmup = 3) {
  for (int i = 0; i < warmup; ++i) body(i);
  synchronize(D);
  Timer<D> timer;
  int i = warmup;
  for (auto _ : state) {
    timer.start();
    body(i++);
    state.SetIterationTime(timer.stop());
  }
}

/// The same, with `prepare(i)` run before each timed `body(i)` and left out of the time (the
/// forward pass before a timed backward pass, for instance).
template <Device D, class P, class F>
void timed_loop(benchmark::State& state, P&& prepare, F&& body, int warmup = 3) {
  for (int i = 0; i < warmup; ++i) {
    prepare(i);
    body(i);
  }
  synchronize(D);
  Timer<D> timer;
  int i = warmup;
  for (auto _ : state) {
    prepare(i);
    synchronize(D);
    timer.start();
    body(i++);
    state.SetIterationTime(timer.stop());
  }
}

/// Per-iteration work, reported as rates over the manual (wall-clock or event) time.
inline void set_counters(benchmark::State& state, double images, double flops, double bytes) {
  using benchmark::Counter;
  if (images > 0) state.counters["images/s"] = Counter(images, Counter::kIsIterationInvariantRate);
  if (flops > 0) {
    state.counters["FLOP/s"] = Counter(flops, Counter::kIsIterationInvariantRate, Counter::kIs1000);
    state.counters["FLOP"] = Counter(flops, Counter::kDefaults, Counter::kIs1000);
  }
  if (bytes > 0) {
    state.counters["bytes/s"] = Counter(bytes, Counter::kIsIterationInvariantRate, Counter::kIs1024);
    state.counters["bytes"] = Counter(bytes, Counter::kDefaults, Counter::kIs1024);
  }
}

/// The last-level cache a rotation must defeat: an H100 has 50 MB of L2; on the CPU, 32 MB covers
/// the L3 of the machines we run on. Inputs are rotated so that a benchmark never reads data the
/// previous iteration left in that cache.
constexpr size_t kCacheBytes(Device d) { return d == Device::cuda ? (size_t(50) << 20) : (size_t(32) << 20); }

/// Enough copies of a random tensor of `shape` to cover twice the cache (at most 4).
inline std::vector<Tensor<float>> rotating_inputs(Shape shape, Device d, std::uint64_t seed) {
  const size_t bytes = shape.size() * sizeof(float);
  size_t copies = bytes == 0 ? 1 : (2 * kCacheBytes(d) + bytes - 1) / bytes;
  copies = std::max<size_t>(1, std::min<size_t>(copies, 4));
  Random rng(seed, 1);
  std::vector<Tensor<float>> out;
  for (size_t k = 0; k < copies; ++k) {
    std::vector<float> v(shape.size());
    for (float& x : v) x = float(rng.uniform(-1, 1));
    out.push_back(Tensor<float>::from_vector(shape, v, d));
  }
  return out;
}

inline Tensor<float> random_tensor(Shape shape, Device d, std::uint64_t seed, double lo = -1, double hi = 1) {
  Random rng(seed, 2);
  std::vector<float> v(shape.size());
  for (float& x : v) x = float(rng.uniform(lo, hi));
  return Tensor<float>::from_vector(shape, v, d);
}

/// 2*K*C*kh*kw*Ho*Wo multiply-adds of one convolution forward, per image.
inline double conv_flops(int C, int K, int kh, int kw, int Ho, int Wo) {
  return 2.0 * K * C * kh * kw * double(Ho) * Wo;
}

/// FLOPs of one training step of `model` on `batch` images, from its convolutions and fully
/// connected layers (everything else is a rounding error): forward always; the filter gradient
/// (as many FLOPs as forward) for layers that train; the data gradient (as many again) for layers
/// whose input receives a gradient. Call after one backward pass, so the plan is known.
/// `backward` false: forward only.
inline double model_flops(Model<float>& model, int batch, bool forward, bool backward) {
  double total = 0;
  for (Layer<float>* l : model.layers()) {
    const std::vector<std::string>& in = model.inputs_of(l->name());
    if (in.empty()) continue;
    const Shape x = model.output_shape(in[0]), y = model.output_shape(l->name());
    double f = 0;
    if (auto* c = dynamic_cast<Conv2d<float>*>(l)) {
      const Conv2dGeometry& g = c->geometry();
      f = conv_flops(x.c, y.c, g.kernel_h, g.kernel_w, y.h, y.w);
    } else if (dynamic_cast<FullyConnected<float>*>(l)) {
      f = 2.0 * double(x.sample_size()) * y.c;
    } else {
      continue;
    }
    if (forward) total += f * batch;
    if (backward) {
      if (l->has_trainable_params()) total += f * batch;
      if (!model.output_gradient(in[0]).empty()) total += f * batch;
    }
  }
  return total;
}

/// The precision the benchmarks' models run in: EWNET_BENCH_PRECISION=bf16 (bench/pytorch_compare.py
/// --precision bf16) puts their matrix products in bfloat16 on the CPU (Model::set_precision).
inline Precision bench_precision(Device d) {
  const char* p = std::getenv("EWNET_BENCH_PRECISION");
  return d == Device::cpu && p && std::string(p) == "bf16" ? Precision::bf16 : Precision::fp32;
}
/// `m` on device `d` in the benchmarks' precision.
inline void prepare(Model<float>& m, Device d) {
  m.to(d);
  m.set_precision(bench_precision(d));
}

/// The batch size and input size of the paper's training step on each device: 64 at 224x224 on a
/// GPU, 32 at 112x112 on the CPU (the figures); layer benchmarks use the same shapes.
constexpr int batch_for(Device d) { return d == Device::cuda ? 64 : 32; }
constexpr int image_size_for(Device d) { return d == Device::cuda ? 224 : 112; }

/// Benchmark names start with the device: "cpu/..." or "cuda/...".
inline std::string bench_name(Device d, const std::string& rest) { return std::string(device_name(d)) + "/" + rest; }

/// Labels 0, 1, 2, ... cycling over the classes, as an [N,1,1,1] tensor on `d` (the forward pass
/// that takes device labels copies nothing from the host).
inline Tensor<std::int32_t> cyclic_labels(int batch, int classes, Device d) {
  std::vector<std::int32_t> l(static_cast<size_t>(batch));
  for (int i = 0; i < batch; ++i) l[static_cast<size_t>(i)] = i % classes;
  return Tensor<std::int32_t>::from_vector({batch, 1, 1, 1}, l, d);
}

/// The main() of every benchmark program: registers the CPU benchmarks, and the CUDA ones when
/// the program is built with ewnet::cuda and a GPU is present. EWNET_BENCH_TF32=1 in the
/// environment lets cuDNN and cuBLAS use TF32 (strict float32 otherwise), for the TF32 rows of
/// bench/pytorch_compare.py; EWNET_BENCH_DETERMINISTIC=0 lets cuDNN choose non-deterministic
/// algorithms too (tools/gpu-check.sh measures what deterministic mode costs).
inline int bench_main(int argc, char** argv, void (*register_cpu)(), void (*register_cuda)()) {
  // The CPU engine and instruction set, in the report's context (and its JSON).
  const std::string engine = ewnet::cpu::cpu_engine().summary();
  benchmark::AddCustomContext("ewnet_cpu_engine", engine);
  if (ewnet::cpu::cpu_engine().generic) std::fprintf(stderr, "%s\n", ewnet::cpu::cpu_engine().warning().c_str());
  register_cpu();
#ifdef EWNET_WITH_CUDA
  if (ewnet::cuda::available()) {
    const char* tf32 = std::getenv("EWNET_BENCH_TF32");
    ewnet::cuda::set_tf32(tf32 != nullptr && std::string(tf32) == "1");
    const char* deterministic = std::getenv("EWNET_BENCH_DETERMINISTIC");
    ewnet::cuda::set_deterministic(deterministic == nullptr || std::string(deterministic) != "0");
    register_cuda();
  }
#else
  (void)register_cuda;
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

/// Defines main() for a benchmark program whose benchmarks `register_all<Device>()` registers.
#ifdef EWNET_WITH_CUDA
#define EWNET_BENCH_MAIN(register_all)                                                                  \
  int main(int argc, char** argv) {                                                                    \
    return ::ewnet::bench::bench_main(argc, argv, &register_all<::ewnet::Device::cpu>,                 \
                                      &register_all<::ewnet::Device::cuda>);                           \
  }
#else
#define EWNET_BENCH_MAIN(register_all)                                                                  \
  int main(int argc, char** argv) {                                                                    \
    return ::ewnet::bench::bench_main(argc, argv, &register_all<::ewnet::Device::cpu>, nullptr);       \
  }
#endif

}  // namespace ewnet::bench
