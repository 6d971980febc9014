# Finds what the header-only library needs and wraps each in an imported target, so the same
# file serves the build tree and an installed ewnet (ewnetConfig.cmake includes it).
#   ewnet_deps::cpu_engine  oneDNN (Debian: libdnnl-dev) and the OpenMP runtime it threads with
#   ewnet_deps::stb         stb_image from Debian's libstb-dev (its compiled libstb.so)
include_guard(GLOBAL)
find_package(Threads REQUIRED)

if(NOT TARGET ewnet_deps::cpu_engine)
  # oneDNN's own CMake package also asks for the OpenCL development files of the GPU runtime that
  # Debian builds it with; ewnet uses only its CPU engine, so the library and header are enough.
  find_path(EWNET_DNNL_INCLUDE_DIR oneapi/dnnl/dnnl.h)
  find_library(EWNET_DNNL_LIBRARY NAMES dnnl)
  if(NOT EWNET_DNNL_INCLUDE_DIR OR NOT EWNET_DNNL_LIBRARY)
    message(FATAL_ERROR "ewnet: oneDNN (oneapi/dnnl/dnnl.h and libdnnl) not found; on Debian: apt-get install libdnnl-dev")
  endif()
  find_package(OpenMP REQUIRED COMPONENTS CXX)
  add_library(ewnet_deps::cpu_engine INTERFACE IMPORTED)
  set_target_properties(ewnet_deps::cpu_engine PROPERTIES
    INTERFACE_LINK_LIBRARIES "${EWNET_DNNL_LIBRARY};OpenMP::OpenMP_CXX"
    INTERFACE_INCLUDE_DIRECTORIES "${EWNET_DNNL_INCLUDE_DIR}")
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
