// cuda/cublas.hpp: the cuBLAS handle ewnet uses, bound to the current stream and math mode.
#pragma once

#include <cublas_v2.h>

namespace ewnet::cuda::blas {
/// The handle, set to the current stream and to FP32 or TF32 math (ewnet::cuda::tf32()).
cublasHandle_t handle();
}  // namespace ewnet::cuda::blas
