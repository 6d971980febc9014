// ewnet/random.hpp: Philox4x32-10, a counter-based generator, on host and device alike.
//
// Philox (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) maps a 64-bit
// key and a 128-bit counter to four 32-bit words through ten rounds of multiply-xor. Because it is
// a pure function of (key, counter), the i-th random number of a dropout mask or of a weight
// initialisation is the same wherever it is computed: the CPU backend and a CUDA thread handling
// element i produce identical masks, and a seed reproduces a run bitwise.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#if defined(__CUDACC__)
#define EWNET_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define EWNET_HOST_DEVICE inline
#endif

namespace ewnet {

struct Philox4x32 {
  std::uint32_t v[4];
};

/// Philox4x32-10 of counter (c0..c3) under key (k0, k1).
EWNET_HOST_DEVICE Philox4x32 philox4x32(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3,
                                         std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t(kMul0) * c0;
    const std::uint64_t p1 = std::uint64_t(kMul1) * c2;
    const std::uint32_t hi0 = std::uint32_t(p0 >> 32), lo0 = std::uint32_t(p0);
    const std::uint32_t hi1 = std::uint32_t(p1 >> 32), lo1 = std::uint32_t(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return Philox4x32{{c0, c1, c2, c3}};
}

/// A uniform float in [0, 1) from the top 24 bits of a word (exact in float).
EWNET_HOST_DEVICE float uniform01(std::uint32_t bits) { return float(bits >> 8) * (1.0f / 16777216.0f); }

/// The uniform number for element `index` of draw `stream` under `seed`: one Philox call per
/// element, so any thread can compute any element independently.
EWNET_HOST_DEVICE float philox_uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  const Philox4x32 r = philox4x32(std::uint32_t(index), std::uint32_t(index >> 32), std::uint32_t(stream),
                                  std::uint32_t(stream >> 32), std::uint32_t(seed), std::uint32_t(seed >> 32));
  return uniform01(r.v[0]);
}

/// Host-side sequential generator over Philox: uniform and normal numbers for initialisation,
/// shuffling and augmentation. Deterministic for a given (seed, stream).
class Random {
 public:
  explicit Random(std::uint64_t seed = 0, std::uint64_t stream = 0) : seed_(seed), stream_(stream) {}

  std::uint32_t next_u32() {
    if (used_ == 4) {
      block_ = philox4x32(std::uint32_t(counter_), std::uint32_t(counter_ >> 32), std::uint32_t(stream_),
                          std::uint32_t(stream_ >> 32), std::uint32_t(seed_), std::uint32_t(seed_ >> 32));
      ++counter_;
      used_ = 0;
    }
    return block_.v[used_++];
  }
  std::uint64_t next_u64() { return (std::uint64_t(next_u32()) << 32) | next_u32(); }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) { return n ? next_u64() % n : 0; }
  /// Standard normal by Box-Muller.
  double normal() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::uint64_t seed_, stream_;
  std::uint64_t counter_ = 0;
  Philox4x32 block_{};
  int used_ = 4;
};

/// A stable 64-bit hash of a string (FNV-1a), so that a layer's initialisation depends on the model
/// seed and the layer's name, not on the order in which layers were added.
inline std::uint64_t hash_name(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace ewnet
