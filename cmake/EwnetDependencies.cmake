# Finds what the header-only library needs and wraps each in an imported target, so the same
# file serves the build tree and an installed ewnet (ewnetConfig.cmake includes it).
#   ewnet_deps::blas  a CBLAS (OpenBLAS from Debian: libopenblas-dev)
#   ewnet_deps::stb   stb_image from Debian's libstb-dev (its compiled libstb.so)
include_guard(GLOBAL)
find_package(Threads REQUIRED)

if(NOT TARGET ewnet_deps::blas)
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS QUIET)
  if(NOT BLAS_FOUND)
    unset(BLA_VENDOR)
    find_package(BLAS REQUIRED)
  endif()
  find_path(EWNET_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu/openblas-pthread)
  if(NOT EWNET_CBLAS_INCLUDE_DIR)
    message(FATAL_ERROR "ewnet: cblas.h not found; on Debian: apt-get install libopenblas-dev")
  endif()
  add_library(ewnet_deps::blas INTERFACE IMPORTED)
  set_target_properties(ewnet_deps::blas PROPERTIES
    INTERFACE_LINK_LIBRARIES "${BLAS_LIBRARIES}"
    INTERFACE_INCLUDE_DIRECTORIES "${EWNET_CBLAS_INCLUDE_DIR}")
endif()

if(NOT TARGET ewnet_deps::stb)
  find_path(EWNET_STB_INCLUDE_DIR stb_image.h PATH_SUFFIXES stb)
  find_library(EWNET_STB_LIBRARY stb)
  if(NOT EWNET_STB_INCLUDE_DIR OR NOT EWNET_STB_LIBRARY)
    message(FATAL_ERROR "ewnet: stb_image (header and libstb) not found; on Debian: apt-get install libstb-dev")
  endif()
  add_library(ewnet_deps::stb INTERFACE IMPORTED)
  set_target_properties(ewnet_deps::stb PROPERTIES
    INTERFACE_LINK_LIBRARIES "${EWNET_STB_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${EWNET_STB_INCLUDE_DIR}")
endif()
