// ewnet/blas.hpp: row-major GEMM for the CPU backend, through CBLAS (OpenBLAS, multi-threaded).
#pragma once

#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace ewnet::cpu {

/// C = alpha * op(A) * op(B) + beta * C, row-major; op transposes when trans_* is true.
/// A is m x k after op, B is k x n after op, C is m x n; lda/ldb/ldc are row pitches in elements.
inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, lda, b, ldb, beta, c, ldc);
}

/// The CPU backend's thread count: OpenBLAS's (OPENBLAS_NUM_THREADS, else its default), or with
/// another BLAS, OMP_NUM_THREADS, else the hardware's. Read once.
inline int thread_count() {
  static const int n = [] {
#ifdef OPENBLAS_VERSION
    return std::max(1, openblas_get_num_threads());
#else
    if (const char* e = std::getenv("OMP_NUM_THREADS")) return std::max(1, std::atoi(e));
    return std::max(1, int(std::thread::hardware_concurrency()));
#endif
  }();
  return n;
}

}  // namespace ewnet::cpu
