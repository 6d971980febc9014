// Helpers for the CUDA tests: the same random inputs on both devices, outputs poisoned with NaN
// before each launch (an element the kernel fails to write stays NaN), and comparisons.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <ewnet/model.hpp>

namespace ewnet::cuda_test {

/// The run's seed (printed by main); each test case derives its own generator from it.
std::uint64_t seed();

inline Random rng_for(const std::string& test) { return Random(seed(), hash_name(test)); }

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

/// A tensor on both devices: the same values, or for outputs a CPU tensor and a NaN-poisoned GPU
/// tensor. With `slice`, each is a channel range of a wider parent (batch stride > c*h*w), as
/// the Model places inception branches; the parent's other channels stay poisoned on the GPU.
struct Pair {
  Tensor<float> cpu, gpu;
  Tensor<float> gpu_parent;
  int c0 = 0;
};

inline Pair make_pair(Shape s, bool slice) {
  Pair p;
  if (!slice) {
    p.cpu = Tensor<float>(s);
    p.gpu = Tensor<float>::empty(s, Device::cuda);
    p.gpu_parent = p.gpu;
    return p;
  }
  const Shape wide{s.n, s.c + 3, s.h, s.w};
  p.c0 = 2;
  p.cpu = Tensor<float>(wide).channels(p.c0, s.c);
  p.gpu_parent = Tensor<float>::empty(wide, Device::cuda);
  p.gpu = p.gpu_parent.channels(p.c0, s.c);
  return p;
}

/// Random values in [lo, hi) on both devices.
inline Pair random_pair(Shape s, Random& rng, bool slice = false, double lo = -1, double hi = 1) {
  Pair p = make_pair(s, slice);
  std::vector<float> v(s.size());
  for (float& x : v) x = float(rng.uniform(lo, hi));
  const Tensor<float> src = Tensor<float>::from_vector(s, v);
  fill(p.gpu_parent, kNaN);
  p.cpu.copy_from(src);
  p.gpu.copy_from(src);
  return p;
}

/// An output: zero on the CPU, NaN on the GPU (the whole parent when sliced).
inline Pair output_pair(Shape s, bool slice = false) {
  Pair p = make_pair(s, slice);
  fill(p.gpu_parent, kNaN);
  return p;
}

/// A gradient destination: for accumulate, the same random values on both devices (the kernel
/// must add to them); for overwrite, NaN on the GPU (the kernel must not read them).
inline Pair grad_pair(Shape s, Random& rng, GradWrite mode, bool slice = false) {
  return mode == GradWrite::accumulate ? random_pair(s, rng, slice) : output_pair(s, slice);
}

/// Requires every GPU element to be finite and within atol + rtol * |cpu| of the CPU element,
/// and, for a slice, every parent channel outside it to be still NaN (nothing written outside).
inline void require_close(const std::string& what, const Pair& p, double rtol = 1e-5, double atol = 1e-5) {
  const std::vector<float> g = p.gpu.to_vector(), c = p.cpu.to_vector();
  REQUIRE(g.size() == c.size());
  size_t bad = 0, first = g.size();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double d = std::fabs(double(g[i]) - double(c[i]));
    const bool ok = std::isfinite(g[i]) && d <= atol + rtol * std::fabs(double(c[i]));
    if (!ok) {
      if (first == g.size()) first = i;
      ++bad;
    }
    if (std::isfinite(g[i])) worst = std::max(worst, d);
  }
  INFO(what << ": " << bad << " of " << g.size() << " elements differ; first at " << first
            << (first < g.size() ? " (gpu " + std::to_string(g[first]) + ", cpu " + std::to_string(c[first]) + ")" : "")
            << "; largest finite difference " << worst);
  CHECK(bad == 0);
  if (!p.gpu_parent.same_view(p.gpu)) {
    const Shape ps = p.gpu_parent.shape();
    const std::vector<float> all = p.gpu_parent.to_vector();
    size_t touched = 0;
    for (int n = 0; n < ps.n; ++n)
      for (int ch = 0; ch < ps.c; ++ch) {
        if (ch >= p.c0 && ch < p.c0 + p.gpu.c()) continue;
        for (size_t k = 0; k < ps.plane(); ++k)
          if (!std::isnan(all[(size_t(n) * ps.c + ch) * ps.plane() + k])) ++touched;
      }
    INFO(what << ": " << touched << " elements outside the channel slice were written");
    CHECK(touched == 0);
  }
}

/// Exact equality (for results that must agree bit for bit, such as dropout masks).
inline void require_equal(const std::string& what, const Pair& p) { require_close(what, p, 0.0, 0.0); }

/// Largest |a - b| over a tensor, relative to the largest |b| (at least 1e-3): robust for
/// gradients whose individual elements may be near zero.
inline double rel_diff(const Tensor<float>& a, const Tensor<float>& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double d = 0, m = 1e-3;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) return std::numeric_limits<double>::infinity();
    d = std::max(d, std::fabs(double(x[i]) - double(y[i])));
    m = std::max(m, std::fabs(double(y[i])));
  }
  return d / m;
}

}  // namespace ewnet::cuda_test
