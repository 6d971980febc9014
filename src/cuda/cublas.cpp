// cuda/cublas.cpp: one cuBLAS handle for the process.
//
// The handle gets a fixed workspace from ewnet's allocator, so that cuBLAS allocates nothing of
// its own inside a step and a step can be captured into a CUDA graph (cuBLAS's advice for graph
// capture). Math mode: CUBLAS_DEFAULT_MATH keeps SGEMM in full FP32; TF32 tensor cores only when
// set_tf32(true).
#include "cuda/cublas.hpp"

#include <ewnet/cuda/runtime.hpp>

#include "cuda/check.hpp"

namespace ewnet::cuda::blas {

namespace {
constexpr std::size_t kWorkspaceBytes = std::size_t(32) << 20;  // cuBLAS's recommendation for Hopper

struct State {
  cublasHandle_t handle = nullptr;
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
  int tf32 = -1;
};
}  // namespace

cublasHandle_t handle() {
  static State s = [] {
    require_device();
    State st;
    EWNET_CUDA_CHECK(cublasCreate(&st.handle));
    st.workspace = allocate(kWorkspaceBytes);  // kept for the life of the process
    return st;
  }();
  if (s.stream != stream()) {
    s.stream = stream();
    EWNET_CUDA_CHECK(cublasSetStream(s.handle, s.stream));
    // cublasSetStream puts the handle back on cuBLAS's own workspace pool: set ours again.
    EWNET_CUDA_CHECK(cublasSetWorkspace(s.handle, s.workspace, kWorkspaceBytes));
  }
  const int want = tf32() ? 1 : 0;
  if (s.tf32 != want) {
    EWNET_CUDA_CHECK(cublasSetMathMode(s.handle, want ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    s.tf32 = want;
  }
  return s.handle;
}

}  // namespace ewnet::cuda::blas
