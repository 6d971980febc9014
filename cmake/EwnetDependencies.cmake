# Finds what the header-only library needs and wraps each in an imported target, so the same
# file serves the build tree and an installed ewnet (ewnetConfig.cmake includes it).
#   ewnet_deps::cpu_engine  oneDNN (Debian: libdnnl-dev) and the OpenMP runtime it threads with
#   ewnet_deps::stb         stb_image from Debian's libstb-dev (its compiled libstb.so)
#   ewnet_deps::decoders    the bounded image decoders: libspng (libspng-dev), libjpeg-turbo
#                           (libjpeg62-turbo-dev) and libwebp (libwebp-dev)
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

if(NOT TARGET ewnet_deps::decoders)
  set(ewnet_decoder_libraries "")
  set(ewnet_decoder_includes "")
  foreach(dep "spng;spng.h;libspng-dev" "jpeg;jpeglib.h;libjpeg62-turbo-dev" "webp;webp/decode.h;libwebp-dev")
    list(GET dep 0 lib)
    list(GET dep 1 header)
    list(GET dep 2 package)
    find_path(EWNET_${lib}_INCLUDE_DIR ${header})
    find_library(EWNET_${lib}_LIBRARY ${lib})
    if(NOT EWNET_${lib}_INCLUDE_DIR OR NOT EWNET_${lib}_LIBRARY)
      message(FATAL_ERROR "ewnet: ${header} and lib${lib} not found; on Debian: apt-get install ${package}")
    endif()
    list(APPEND ewnet_decoder_libraries ${EWNET_${lib}_LIBRARY})
    list(APPEND ewnet_decoder_includes ${EWNET_${lib}_INCLUDE_DIR})
  endforeach()
  list(REMOVE_DUPLICATES ewnet_decoder_includes)
  add_library(ewnet_deps::decoders INTERFACE IMPORTED)
  set_target_properties(ewnet_deps::decoders PROPERTIES
    INTERFACE_LINK_LIBRARIES "${ewnet_decoder_libraries}"
    INTERFACE_INCLUDE_DIRECTORIES "${ewnet_decoder_includes}")
endif()
