# Sourced by tools/gpu-check.sh: what a GPU machine without a package registry needs to build
# ewnet (the carried Debian packages, the CUDA toolkit and cuDNN wherever they are), the configure
# line, and the checks that every dependency came from where it should.
#
# The Debian packages carried to the GPU machine, in .deps/deb (an ignored folder). This is the
# only list: the dry run (tools/gpu-check.sh --dry-run) downloads exactly these, and the GPU run
# unpacks exactly these into .deps/root there (never into /). The CPU engine is oneDNN (libdnnl2),
# which needs the OpenMP runtime (libgomp1) and the OpenCL loader of its GPU runtime
# (ocl-icd-libopencl1), which a bare machine may lack.
CARRIED_DEBS=(
  catch2
  libstb-dev libstb0
  libbenchmark-dev libbenchmark1debian
  libdnnl-dev libdnnl2 libgomp1 ocl-icd-libopencl1
)

GPU_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GPU_DEBS=$GPU_ROOT/.deps/deb
GPU_PREFIX=$GPU_ROOT/.deps/root
GPU_BUILD=${EWNET_GPU_BUILD:-$GPU_ROOT/build-gpu}
# The libraries the carried packages hold.
GPU_LIBDIRS=$GPU_PREFIX/usr/lib/x86_64-linux-gnu:$GPU_PREFIX/usr/lib
# Where the system's folders are (a prefix, empty on a real machine; tests/tools/gpu_env_test.sh
# points it at a fake layout), and the Python that holds PyTorch's packages.
GPU_SYSROOT=${GPU_SYSROOT:-}
GPU_PYTHON=${GPU_PYTHON:-python3}

# gpu_fetch_debs: downloads the carried packages that are missing from .deps/deb and removes any
# other .deb there, so that .deps/deb holds exactly what the GPU machine will get.
gpu_fetch_debs() {
  grep -qx '/.deps/' "$GPU_ROOT/.gitignore" 2>/dev/null || grep -qx '/.deps/' "$GPU_ROOT/.git/info/exclude" 2>/dev/null ||
    echo /.deps/ >> "$GPU_ROOT/.git/info/exclude"
  mkdir -p "$GPU_DEBS"
  local p f keep missing=()
  for p in "${CARRIED_DEBS[@]}"; do
    compgen -G "$GPU_DEBS/${p}_*.deb" > /dev/null || missing+=("$p")
  done
  if ((${#missing[@]})); then
    (cd "$GPU_DEBS" && apt-get download "${missing[@]}") || return 1
  fi
  for f in "$GPU_DEBS"/*.deb; do
    keep=0
    for p in "${CARRIED_DEBS[@]}"; do [[ $(basename "$f") == "${p}"_*.deb ]] && keep=1; done
    ((keep)) || { echo "removing $(basename "$f"): not in CARRIED_DEBS"; rm -f "$f"; }
  done
  ls -l "$GPU_DEBS"
  du -sh "$GPU_DEBS"
}

# gpu_extract_deb DEB DIR: the package's files under DIR (dpkg -x; without dpkg, its data member
# through ar and tar).
gpu_extract_deb() {
  local member flag
  if command -v dpkg > /dev/null; then
    dpkg -x "$1" "$2"
    return
  fi
  member=$(ar t "$1" | grep '^data\.tar') || return 1
  case $member in
    *.xz) flag=-J ;;
    *.gz) flag=-z ;;
    *.zst) flag=--zstd ;;
    *) flag= ;;
  esac
  ar p "$1" "$member" | tar -x $flag -f - -C "$2"
}

# gpu_unpack_debs: a fresh .deps/root from exactly the carried packages.
gpu_unpack_debs() {
  local p f n
  rm -rf "$GPU_PREFIX"
  mkdir -p "$GPU_PREFIX"
  for p in "${CARRIED_DEBS[@]}"; do
    f=$(compgen -G "$GPU_DEBS/${p}_*.deb" | head -1)
    if [[ -z $f ]]; then
      echo "ERROR: $p is not in .deps/deb: run tools/gpu-check.sh --dry-run where packages can be fetched, and carry .deps/deb"
      return 1
    fi
    gpu_extract_deb "$f" "$GPU_PREFIX" || return 1
    echo "unpacked $(basename "$f")"
  done
  n=$(find "$GPU_PREFIX" -name '*.so*' | wc -l)
  echo "$n shared libraries and links under .deps/root"
}

# gpu_find_cuda: sets and exports CUDA_HOME, the toolkit whose nvcc builds ewnet, from the first
# of: $CUDA_HOME (when it holds bin/nvcc), the nvcc on PATH (two folders above the file its link
# resolves to), /usr/local/cuda, the newest /usr/local/cuda-*. Says which, and whether cuBLAS is
# there. Sets GPU_CUDA_FROM (how it was found) and GPU_CUDA_VERSION.
gpu_find_cuda() {
  local nvcc="" candidate
  GPU_CUDA_FROM=""
  if [[ -n ${CUDA_HOME:-} && -x $CUDA_HOME/bin/nvcc ]]; then
    nvcc=$CUDA_HOME/bin/nvcc
    GPU_CUDA_FROM="CUDA_HOME"
  else
    [[ -n ${CUDA_HOME:-} ]] && echo "CUDA_HOME=$CUDA_HOME holds no bin/nvcc: looking elsewhere"
    if candidate=$(command -v nvcc); then
      nvcc=$(readlink -f "$candidate")
      GPU_CUDA_FROM="the nvcc on PATH ($candidate)"
    elif [[ -x $GPU_SYSROOT/usr/local/cuda/bin/nvcc ]]; then
      nvcc=$GPU_SYSROOT/usr/local/cuda/bin/nvcc
      GPU_CUDA_FROM="/usr/local/cuda"
    else
      candidate=$(compgen -G "$GPU_SYSROOT/usr/local/cuda-*/bin/nvcc" | sort -V | tail -1)
      if [[ -n $candidate ]]; then
        nvcc=$candidate
        GPU_CUDA_FROM="the newest /usr/local/cuda-*"
      fi
    fi
  fi
  if [[ -z $nvcc ]]; then
    echo "ERROR: no nvcc: CUDA_HOME is ${CUDA_HOME:-unset}, none on PATH, none under /usr/local/cuda or /usr/local/cuda-*"
    return 1
  fi
  CUDA_HOME=$(dirname "$(dirname "$nvcc")")
  export CUDA_HOME
  case ":$PATH:" in *":$CUDA_HOME/bin:"*) ;; *) PATH=$CUDA_HOME/bin:$PATH ;; esac
  export PATH
  GPU_CUDA_VERSION=$("$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p' | head -1)
  echo "CUDA: $CUDA_HOME (nvcc ${GPU_CUDA_VERSION:-of unknown version}), found through $GPU_CUDA_FROM"
  if compgen -G "$CUDA_HOME/lib64/libcublas.so*" > /dev/null ||
    compgen -G "$CUDA_HOME/targets/x86_64-linux/lib/libcublas.so*" > /dev/null; then
    echo "cuBLAS: with the toolkit"
  else
    echo "WARNING: no libcublas.so under $CUDA_HOME/lib64: CMake will turn the CUDA backend off"
  fi
}

# gpu_cudnn_in PREFIX: true when PREFIX holds cudnn.h and libcudnn.so* in one of the layouts cuDNN
# comes in (toolkit, Debian/Ubuntu system, pip wheel); sets GPU_CUDNN_INCLUDE and GPU_CUDNN_LIBDIR.
gpu_cudnn_in() {
  local prefix=$1 inc lib
  GPU_CUDNN_INCLUDE=""
  GPU_CUDNN_LIBDIR=""
  for inc in include include/x86_64-linux-gnu targets/x86_64-linux/include; do
    [[ -e $prefix/$inc/cudnn.h ]] && { GPU_CUDNN_INCLUDE=$prefix/$inc; break; }
  done
  for lib in lib64 lib lib/x86_64-linux-gnu targets/x86_64-linux/lib; do
    compgen -G "$prefix/$lib/libcudnn.so*" > /dev/null && { GPU_CUDNN_LIBDIR=$prefix/$lib; break; }
  done
  [[ -n $GPU_CUDNN_INCLUDE && -n $GPU_CUDNN_LIBDIR ]]
}

# gpu_find_cudnn: the cuDNN to build with, from the first of: CUDNN_ROOT, the CUDA toolkit's
# (CUDA_HOME), the system's (/usr/include, /usr/lib/x86_64-linux-gnu), PyTorch's pip wheel
# (nvidia.cudnn, a namespace package: __path__[0], not __file__). Sets GPU_CUDNN_KIND (which),
# GPU_CUDNN_ROOT (the prefix CMake gets as CUDNN_ROOT, so it takes this one and no other),
# GPU_CUDNN_INCLUDE, GPU_CUDNN_LIBDIR and GPU_CUDNN_VERSION. None: an error naming each place.
gpu_find_cudnn() {
  local wheel="" version_h part
  GPU_CUDNN_KIND=""
  GPU_CUDNN_ROOT=""
  if [[ -n ${CUDNN_ROOT:-} ]] && gpu_cudnn_in "$CUDNN_ROOT"; then
    GPU_CUDNN_KIND="CUDNN_ROOT"
    GPU_CUDNN_ROOT=$CUDNN_ROOT
  elif gpu_cudnn_in "$CUDA_HOME"; then
    GPU_CUDNN_KIND="the CUDA toolkit's"
    GPU_CUDNN_ROOT=$CUDA_HOME
  elif gpu_cudnn_in "$GPU_SYSROOT/usr"; then
    GPU_CUDNN_KIND="the system's"
    GPU_CUDNN_ROOT=$GPU_SYSROOT/usr
  else
    wheel=$("$GPU_PYTHON" -c "import nvidia.cudnn; print(nvidia.cudnn.__path__[0])" 2> /dev/null || true)
    if [[ -n $wheel ]] && gpu_cudnn_in "$wheel"; then
      GPU_CUDNN_KIND="PyTorch's pip wheel (nvidia-cudnn)"
      GPU_CUDNN_ROOT=$wheel
    fi
  fi
  if [[ -z $GPU_CUDNN_KIND ]]; then
    echo "ERROR: cuDNN not found: CUDNN_ROOT is ${CUDNN_ROOT:-unset}; no cudnn.h and libcudnn.so* with the CUDA" \
      "toolkit ($CUDA_HOME), under $GPU_SYSROOT/usr (include, lib/x86_64-linux-gnu), or in the nvidia.cudnn" \
      "Python package of $GPU_PYTHON (got '${wheel}')"
    return 1
  fi
  version_h=$GPU_CUDNN_INCLUDE/cudnn_version.h
  [[ -e $version_h ]] || version_h=$GPU_CUDNN_INCLUDE/cudnn.h
  GPU_CUDNN_VERSION=""
  for part in MAJOR MINOR PATCHLEVEL; do
    GPU_CUDNN_VERSION+=$(sed -n "s/^#define CUDNN_$part *\([0-9]*\).*/\1/p" "$version_h" | head -1).
  done
  GPU_CUDNN_VERSION=${GPU_CUDNN_VERSION%.}
  [[ $GPU_CUDNN_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || GPU_CUDNN_VERSION="version unknown"
  echo "cuDNN: $GPU_CUDNN_KIND, $GPU_CUDNN_VERSION: headers $GPU_CUDNN_INCLUDE, library $GPU_CUDNN_LIBDIR"
}

# gpu_env: the library path for the carried libraries, CUDA and cuDNN (the linker also uses it
# to find libdnnl's own dependencies).
gpu_env() {
  local cuda_lib=$CUDA_HOME/lib64
  export LD_LIBRARY_PATH=$GPU_LIBDIRS:${GPU_CUDNN_LIBDIR:+$GPU_CUDNN_LIBDIR:}$cuda_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
}

# gpu_configure_args TEST_TIMEOUT: sets GPU_CONFIGURE_ARGS, the configure line of $GPU_BUILD
# against the carried packages only: Release, sm_90, tests and benchmarks, no examples, no
# ewnet-collect (no libcurl there), this toolkit and this cuDNN, each CUDA test area limited to
# TEST_TIMEOUT seconds.
gpu_configure_args() {
  GPU_CONFIGURE_ARGS=(-S "$GPU_ROOT" -B "$GPU_BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90-real
    -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" -DCUDAToolkit_ROOT="$CUDA_HOME" -DCUDNN_ROOT="$GPU_CUDNN_ROOT"
    -DCMAKE_PREFIX_PATH="$GPU_PREFIX/usr" -DCMAKE_LIBRARY_PATH="${GPU_LIBDIRS//:/;}"
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$GPU_LIBDIRS"
    -DEWNET_BUILD_TESTS=ON -DEWNET_BUILD_BENCHMARKS=ON -DEWNET_BUILD_EXAMPLES=OFF -DEWNET_WITH_COLLECT=OFF
    -DEWNET_CUDA_TEST_TIMEOUT="$1")
  command -v ninja > /dev/null && GPU_CONFIGURE_ARGS+=(-G Ninja)
  return 0
}

# gpu_check_configured LOG: the configure log says the CUDA backend is on, and the cuDNN CMake
# took is the one gpu_find_cudnn chose.
gpu_check_configured() {
  local found
  grep "ewnet: CUDA backend" "$1"
  grep -q "ewnet: CUDA backend on" "$1" || {
    echo "ERROR: the CUDA backend is off (see the 'ewnet: CUDA backend off' line above)"
    return 1
  }
  found=$(sed -n 's/^CUDNN_LIBRARY:[A-Z]*=//p' "$GPU_BUILD/CMakeCache.txt")
  if [[ $(dirname "$(readlink -f "$found")") != "$(readlink -f "$GPU_CUDNN_LIBDIR")" ]]; then
    echo "ERROR: CMake took cuDNN $found, not the one in $GPU_CUDNN_LIBDIR ($GPU_CUDNN_KIND)"
    return 1
  fi
  echo "CMake uses cuDNN $found ($GPU_CUDNN_KIND)"
}

# gpu_check_found_deps: every dependency CMake found must come from the carried packages (a
# system copy found here would hide a package missing from CARRIED_DEBS).
gpu_check_found_deps() {
  local cache=$GPU_BUILD/CMakeCache.txt bad=0 var value
  for var in Catch2_DIR benchmark_DIR EWNET_DNNL_INCLUDE_DIR EWNET_DNNL_LIBRARY EWNET_STB_INCLUDE_DIR EWNET_STB_LIBRARY; do
    value=$(sed -n "s/^$var:[A-Z]*=//p" "$cache")
    if [[ -z $value ]]; then
      echo "  $var: (not in the cache)"
      bad=1
    elif [[ $value != "$GPU_PREFIX"/* ]]; then
      echo "  $var = $value   NOT from the carried packages"
      bad=1
    else
      echo "  $var = ${value#"$GPU_ROOT"/}"
    fi
  done
  ((bad == 0)) || echo "ERROR: some dependencies were found outside .deps/root"
  return $bad
}

# gpu_lib_class NAME PATH: where a library a binary needs comes from: carried (the unpacked
# packages), cuda (the toolkit), cudnn (libcudnn* in the chosen cuDNN's folder, which may be the
# system's library folder), base (the C/C++ runtime every machine with a compiler has), missing,
# or outside (anything else: a failure).
gpu_lib_class() {
  local name=$1 path=$2 real cuda_real cudnn_real
  real=$(readlink -f "$path" 2> /dev/null || echo "$path")
  cuda_real=$(readlink -f "$CUDA_HOME" 2> /dev/null || echo "$CUDA_HOME")
  cudnn_real=$(readlink -f "${GPU_CUDNN_LIBDIR:-/nonexistent}" 2> /dev/null || echo "${GPU_CUDNN_LIBDIR:-}")
  if [[ $path == "not found" || -z $path ]]; then
    echo missing
  elif [[ $path == "$GPU_PREFIX"/* ]]; then
    echo carried
  elif [[ $path == "$CUDA_HOME"/* || $real == "$cuda_real"/* ]]; then
    echo cuda
  elif [[ $name == libcudnn* && -n ${GPU_CUDNN_LIBDIR:-} &&
    ($(dirname "$path") == "$GPU_CUDNN_LIBDIR" || $(dirname "$real") == "$cudnn_real") ]]; then
    echo cudnn
  elif [[ $name =~ ^(linux-vdso\.so|/lib64/ld-linux-x86-64\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libstdc\+\+\.so|libgcc_s\.so|libpthread\.so|libdl\.so|librt\.so) ]]; then
    echo base
  else
    echo outside
  fi
}

# gpu_ldd BINARY...: every shared library each binary needs must resolve, and only to the carried
# packages, the CUDA toolkit, the chosen cuDNN, or the base C/C++ runtime.
gpu_ldd() {
  local bin bad=0 line name path class
  for bin in "$@"; do
    echo "== ldd ${bin#"$GPU_ROOT"/}"
    while IFS= read -r line; do
      name=$(awk '{print $1}' <<< "$line")
      if [[ $line == *"not found"* ]]; then
        path="not found"
      elif [[ $line == *"=>"* ]]; then
        path=$(awk '$2 == "=>" {print $3}' <<< "$line")
      else
        path=$name
      fi
      class=$(gpu_lib_class "$name" "$path")
      case $class in
        missing | outside)
          echo "  ${class^^}  $name => $path (neither carried nor CUDA/cuDNN nor the base runtime)"
          bad=1
          ;;
        *) printf '  %-8s %s\n' "$class" "$name" ;;
      esac
    done < <(ldd "$bin")
  done
  return $bad
}
