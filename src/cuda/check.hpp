// cuda/check.hpp: the one checking macro for every CUDA runtime, cuBLAS and cuDNN call.
//
//   EWNET_CUDA_CHECK(cudaMemcpyAsync(...));
//   EWNET_CUDA_CHECK(cublasSgemm(...));
//   EWNET_CUDA_CHECK(cudnnConvolutionForward(...));
// A failure throws ewnet::DeviceError naming the call, the file and line, and the library's error
// string. The macro calls an overload of detail::check for the status type; the cuDNN overload
// lives in the cuDNN adapter, the only file that includes cudnn.h.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <ewnet/error.hpp>

namespace ewnet::cuda::detail {

[[noreturn]] void fail(const char* library, const char* call, const char* file, int line, const char* message);

inline void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so that the next call does not report it again
    fail("CUDA", call, file, line, cudaGetErrorString(status));
  }
}

inline void check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) fail("cuBLAS", call, file, line, cublasGetStatusString(status));
}

}  // namespace ewnet::cuda::detail

#define EWNET_CUDA_CHECK(call) ::ewnet::cuda::detail::check((call), #call, __FILE__, __LINE__)

/// Checks the launch that was just queued (a bad configuration shows here; faults inside the
/// kernel show at the next synchronising call).
#define EWNET_CUDA_CHECK_LAUNCH(kernel) \
  ::ewnet::cuda::detail::check(cudaGetLastError(), "launch of " #kernel, __FILE__, __LINE__)
