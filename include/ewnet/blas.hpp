// ewnet/blas.hpp: row-major GEMM for the CPU backend.
//
// float: oneDNN's sgemm (cpu_engine.hpp: kernels generated for the processor's instruction set),
// on thread_count() threads, or on the caller's thread alone inside a pool region.
// double: a cache-blocked loop of ewnet's own. ewnet computes in double only to check gradients
// against finite differences (tests), on small shapes, where plain code is fast enough and its
// sums are exactly the order written here.
#pragma once

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>

#include <ewnet/cpu_engine.hpp>

namespace ewnet::cpu {

/// C = alpha * op(A) * op(B) + beta * C, row-major; op transposes when trans_* is true.
/// A is m x k after op, B is k x n after op, C is m x n; lda/ldb/ldc are row pitches in elements.
inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  use_engine_threads();
  const dnnl_status_t s = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta,
                                     c, ldc);
  if (s != dnnl_success)
    throw std::runtime_error("oneDNN sgemm failed (status " + std::to_string(int(s)) + ") for " + std::to_string(m) +
                             "x" + std::to_string(n) + "x" + std::to_string(k));
}

inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  for (int i = 0; i < m; ++i) {
    double* ci = c + size_t(i) * ldc;
    if (beta == 0) std::fill(ci, ci + n, 0.0);
    else if (beta != 1) for (int j = 0; j < n; ++j) ci[j] *= beta;
  }
  if (k <= 0 || alpha == 0) return;
  // i-p-j order: the inner loop runs along a row of B (or its transpose's column) and of C.
  constexpr int block = 64;
  for (int p0 = 0; p0 < k; p0 += block) {
    const int p1 = std::min(k, p0 + block);
    for (int i = 0; i < m; ++i) {
      double* ci = c + size_t(i) * ldc;
      for (int p = p0; p < p1; ++p) {
        const double aip = alpha * (trans_a ? a[size_t(p) * lda + i] : a[size_t(i) * lda + p]);
        if (aip == 0) continue;
        if (!trans_b) {
          const double* bp = b + size_t(p) * ldb;
          for (int j = 0; j < n; ++j) ci[j] += aip * bp[j];
        } else {
          for (int j = 0; j < n; ++j) ci[j] += aip * b[size_t(j) * ldb + p];
        }
      }
    }
  }
}

}  // namespace ewnet::cpu
