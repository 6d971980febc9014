// ewnet/blas.hpp: row-major GEMM for the CPU backend, through CBLAS (OpenBLAS, multi-threaded).
#pragma once

#include <cblas.h>

#include <algorithm>
#include <atomic>
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

/// While one exists, OpenBLAS runs each call on its caller's thread (openblas_set_num_threads(1)),
/// then goes back to thread_count() threads. ewnet's pool holds one for a region whose threads
/// each run their own GEMMs (ops/parallel.hpp, parallel_gemm_for): the BLAS's own workers stay
/// asleep instead of spinning for a share of the cores the pool is using, and the GEMMs do not
/// queue on OpenBLAS's one server. Nested and concurrent scopes count: the last one out restores.
/// A no-op with another BLAS.
class SerialBlasScope {
 public:
  SerialBlasScope() {
#ifdef OPENBLAS_VERSION
    (void)thread_count();  // read the user's count before it is changed
    if (depth().fetch_add(1) == 0 && thread_count() > 1) openblas_set_num_threads(1);
#endif
  }
  ~SerialBlasScope() {
#ifdef OPENBLAS_VERSION
    if (depth().fetch_sub(1) == 1 && thread_count() > 1) openblas_set_num_threads(thread_count());
#endif
  }
  SerialBlasScope(const SerialBlasScope&) = delete;
  SerialBlasScope& operator=(const SerialBlasScope&) = delete;

 private:
  static std::atomic<int>& depth() {
    static std::atomic<int> d{0};
    return d;
  }
};

}  // namespace ewnet::cpu
