# The CUDA backend: the static library ewnet_cuda (ewnet::cuda) holding the kernels in kernels/
# and the runtime, cuDNN adapter and cuBLAS glue in src/cuda/. Built when a CUDA compiler, cuBLAS
# and cuDNN are all found; otherwise the header-only CPU library builds alone.
# Sets EWNET_HAVE_CUDA in the including scope (an include() shares it, so tests/ sees it).
include(CheckLanguage)
set(EWNET_HAVE_CUDA OFF)

check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(STATUS "ewnet: CUDA backend off: no CUDA compiler (nvcc) found")
  return()
endif()

find_package(CUDAToolkit QUIET)
if(NOT CUDAToolkit_FOUND OR NOT TARGET CUDA::cublas)
  message(STATUS "ewnet: CUDA backend off: the CUDA toolkit's cuBLAS was not found")
  return()
endif()

find_package(CUDNN QUIET)
if(NOT CUDNN_FOUND)
  message(STATUS "ewnet: CUDA backend off: cuDNN not found (set CUDNN_ROOT to its prefix, or to a "
                 "Python site-packages nvidia/cudnn folder)")
  return()
endif()

# Hopper SASS plus PTX that newer GPUs compile at load time, unless the user chose.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  set(CMAKE_CUDA_ARCHITECTURES "90-real;90-virtual" CACHE STRING "CUDA architectures for ewnet's kernels" FORCE)
endif()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)

file(GLOB EWNET_CUDA_SOURCES CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_SOURCE_DIR}/kernels/*.cu
  ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/*.cu
  ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/*.cpp)

add_library(ewnet_cuda STATIC ${EWNET_CUDA_SOURCES})
add_library(ewnet::cuda ALIAS ewnet_cuda)
set_target_properties(ewnet_cuda PROPERTIES
  EXPORT_NAME cuda
  POSITION_INDEPENDENT_CODE ON
  CUDA_SEPARABLE_COMPILATION OFF)
target_compile_features(ewnet_cuda PUBLIC cxx_std_17)
target_compile_definitions(ewnet_cuda PUBLIC EWNET_WITH_CUDA=1)
# cuDNN's deprecation attributes are off unless this is defined; with it, every deprecated cuDNN
# call warns except the legacy convolution section of src/cuda/cudnn_adapter.cpp, which silences
# its own.
target_compile_definitions(ewnet_cuda PRIVATE CUDNN_WARN_DEPRECATED)
# src/ holds the backend's private headers (cuda/check.hpp, cuda/launch.cuh, ...).
target_include_directories(ewnet_cuda PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
target_link_libraries(ewnet_cuda PUBLIC ewnet::ewnet CUDA::cudart CUDA::cublas CUDNN::cudnn)
target_compile_options(ewnet_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra --expt-relaxed-constexpr>)

install(TARGETS ewnet_cuda EXPORT ewnetCudaTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT ewnet)
install(EXPORT ewnetCudaTargets NAMESPACE ewnet:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ewnet COMPONENT ewnet)

set(EWNET_HAVE_CUDA ON)
message(STATUS "ewnet: CUDA backend on (CUDA ${CUDAToolkit_VERSION}, cuDNN ${CUDNN_VERSION}, "
               "architectures ${CMAKE_CUDA_ARCHITECTURES})")
