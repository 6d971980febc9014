# FindCUDNN: finds NVIDIA cuDNN (version 8 or 9) and defines the imported target CUDNN::cudnn.
#
# Looks, in order, under:
#   CUDNN_ROOT (CMake or environment variable): a cuDNN install prefix, or a Python site-packages
#     "nvidia/cudnn" folder as PyTorch's nvidia-cudnn-cu* wheels lay it out (include/, lib/ holding
#     libcudnn.so.9 without the unversioned link);
#   the CUDA toolkit (CUDAToolkit_ROOT, CUDA_PATH, /usr/local/cuda) and the system paths.
# Sets CUDNN_FOUND, CUDNN_INCLUDE_DIR, CUDNN_LIBRARY, CUDNN_VERSION.
include_guard(GLOBAL)

set(_cudnn_suffixes_inc include include/x86_64-linux-gnu targets/x86_64-linux/include targets/sbsa-linux/include)
set(_cudnn_suffixes_lib lib lib64 lib/x86_64-linux-gnu targets/x86_64-linux/lib targets/sbsa-linux/lib)
# The wheels ship only versioned names (libcudnn.so.9), so ask for those as well.
set(_cudnn_names cudnn libcudnn.so.9 libcudnn.so.8)

# An explicit CUDNN_ROOT is searched alone first, so that its header and library are never mixed
# with another cuDNN found on the default paths.
set(_cudnn_root "${CUDNN_ROOT}")
if(NOT _cudnn_root)
  set(_cudnn_root "$ENV{CUDNN_ROOT}")
endif()
if(_cudnn_root)
  find_path(CUDNN_INCLUDE_DIR cudnn.h PATHS "${_cudnn_root}" PATH_SUFFIXES ${_cudnn_suffixes_inc} NO_DEFAULT_PATH)
  find_library(CUDNN_LIBRARY NAMES ${_cudnn_names} PATHS "${_cudnn_root}" PATH_SUFFIXES ${_cudnn_suffixes_lib}
               NO_DEFAULT_PATH)
endif()

set(_cudnn_hints)
foreach(_root IN ITEMS "${CUDAToolkit_ROOT}" "$ENV{CUDA_PATH}" "${CUDAToolkit_LIBRARY_ROOT}")
  if(_root)
    list(APPEND _cudnn_hints "${_root}")
  endif()
endforeach()
list(APPEND _cudnn_hints /usr/local/cuda)
find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${_cudnn_hints} PATH_SUFFIXES ${_cudnn_suffixes_inc})
find_library(CUDNN_LIBRARY NAMES ${_cudnn_names} HINTS ${_cudnn_hints} PATH_SUFFIXES ${_cudnn_suffixes_lib})

if(CUDNN_INCLUDE_DIR)
  set(_cudnn_version_file "${CUDNN_INCLUDE_DIR}/cudnn_version.h")
  if(NOT EXISTS "${_cudnn_version_file}")
    set(_cudnn_version_file "${CUDNN_INCLUDE_DIR}/cudnn.h")
  endif()
  file(STRINGS "${_cudnn_version_file}" _cudnn_lines REGEX "^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) +[0-9]+")
  foreach(_part MAJOR MINOR PATCHLEVEL)
    string(REGEX MATCH "CUDNN_${_part} +([0-9]+)" _m "${_cudnn_lines}")
    set(_cudnn_${_part} "${CMAKE_MATCH_1}")
  endforeach()
  if(NOT "${_cudnn_MAJOR}" STREQUAL "")
    set(CUDNN_VERSION "${_cudnn_MAJOR}.${_cudnn_MINOR}.${_cudnn_PATCHLEVEL}")
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN
  REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR
  VERSION_VAR CUDNN_VERSION)

if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn UNKNOWN IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES
    IMPORTED_LOCATION "${CUDNN_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
endif()
mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)
