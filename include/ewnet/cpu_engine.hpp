// ewnet/cpu_engine.hpp: the CPU backend's engine (oneDNN), its threads, and what it runs on.
//
// The CPU backend's matrix products run in oneDNN (the CPU counterpart of cuDNN; Debian's
// libdnnl), whose kernels are generated at run time for the instruction set the processor
// reports (AVX-512 with or without BF16/AMX, AVX2, ...). It never consults a table of processor
// models, so a processor newer than the library still gets the widest kernels its features
// allow. Measured (docs/benchmarks.md): OpenBLAS 0.3.21, which picks its kernels from such a
// table, ran a current Intel Xeon on its SSE3 fallback at a seventh of its speed.
//
// cpu_engine() says which engine and instruction set are in use; every program prints it once
// (cpu_engine().summary()) and warns when it is a generic fallback on a processor that has
// AVX2 or AVX-512 (for instance when ONEDNN_MAX_CPU_ISA caps it).
//
// Threads: ewnet uses thread_count() threads (OMP_NUM_THREADS, else every core the process may
// run on). oneDNN's OpenMP threads and ewnet's pool (ops/parallel.hpp) never run at once: inside
// a pool region every GEMM runs on its caller's thread alone (serial_region()).
#pragma once

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <string>

namespace ewnet::cpu {

/// The CPU backend's thread count: OpenMP's (OMP_NUM_THREADS, else the cores this process may
/// run on). Read once, before ewnet changes any thread's OpenMP setting.
inline int thread_count() {
  static const int n = std::max(1, omp_get_max_threads());
  return n;
}

/// True on a thread of ewnet's pool, or on the pool's caller while it runs its own chunk: GEMMs
/// called there run single-threaded, on that thread.
inline bool& serial_region() {
  thread_local bool flag = false;
  return flag;
}

/// Gives oneDNN as many OpenMP threads on the calling thread as the caller may use: 1 inside a
/// pool region, thread_count() outside. OpenMP's setting is per thread; it is changed only when
/// it differs from what this thread last set.
inline void use_engine_threads() {
  thread_local int current = -1;
  const int want = serial_region() ? 1 : thread_count();
  if (want != current) {
    omp_set_num_threads(want);
    current = want;
  }
}

/// Which engine, and which instruction set its kernels use on this processor.
struct CpuEngineInfo {
  std::string engine;         // "oneDNN 2.6.3"
  std::string isa;            // oneDNN's effective instruction set: "avx512_core_bf16", "avx2", ...
  std::string processor;      // the widest vector extension the processor reports: "AVX-512", "AVX2", ...
  bool generic = false;       // true when the kernels are narrower than what the processor has
  int threads = 1;

  /// "CPU: oneDNN 2.6.3, avx512_core_bf16 (processor: AVX-512), 2 threads"
  std::string summary() const {
    return "CPU: " + engine + ", " + isa + " (processor: " + processor + "), " + std::to_string(threads) +
           (threads == 1 ? " thread" : " threads");
  }
  /// Empty, or a warning that the engine runs a generic fallback on a processor with more.
  std::string warning() const {
    if (!generic) return {};
    return "warning: the CPU engine runs " + isa + " kernels on a processor with " + processor +
           "; it will be several times slower than it could be (is ONEDNN_MAX_CPU_ISA or DNNL_MAX_CPU_ISA set?)";
  }
};

namespace engine_detail {

inline std::string isa_name(dnnl_cpu_isa_t isa) {
  switch (int(isa)) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "isa 0x" + [&] {
      static const char* hex = "0123456789abcdef";
      std::string s;
      for (unsigned v = unsigned(isa); v; v >>= 4) s.insert(s.begin(), hex[v & 15]);
      return s.empty() ? std::string("0") : s;
    }();
  }
}

/// How wide the vector kernels behind an effective ISA are: 0 none/SSE, 1 AVX/AVX2, 2 AVX-512.
inline int isa_width(dnnl_cpu_isa_t isa) {
  const unsigned v = unsigned(isa);
  if ((v & unsigned(dnnl_cpu_isa_avx512_core)) == unsigned(dnnl_cpu_isa_avx512_core)) return 2;
  if ((v & unsigned(dnnl_cpu_isa_avx2)) == unsigned(dnnl_cpu_isa_avx2)) return 1;
  return 0;
}

/// The same scale for the processor: 2 with AVX-512 (F, BW, DQ, VL, as oneDNN's avx512_core needs),
/// 1 with AVX2 and FMA, else 0.
inline int processor_width() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
  return 0;
}

}  // namespace engine_detail

/// The engine in use on this processor (computed once).
inline const CpuEngineInfo& cpu_engine() {
  static const CpuEngineInfo info = [] {
    CpuEngineInfo i;
    const dnnl_version_t* v = dnnl_version();
    i.engine = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    i.isa = engine_detail::isa_name(isa);
    const int have = engine_detail::processor_width();
    i.processor = have == 2 ? "AVX-512" : have == 1 ? "AVX2" : "no AVX2";
    i.generic = engine_detail::isa_width(isa) < have;
    i.threads = thread_count();
    return i;
  }();
  return info;
}

}  // namespace ewnet::cpu
