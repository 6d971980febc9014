# Sourced by tools/gpu-check.sh and tools/gpu-bench.sh: what a GPU machine without a package
# registry needs to build ewnet, and the build both scripts share.
#
# The Debian packages carried to the GPU machine, in .deps/deb (an ignored folder). This is the
# only list: the dry run (tools/gpu-check.sh --dry-run) downloads exactly these, and both scripts
# unpack exactly these into .deps/root there (never into /). The CPU engine is oneDNN (libdnnl2),
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
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
case ":$PATH:" in *":$CUDA_HOME/bin:"*) ;; *) PATH=$CUDA_HOME/bin:$PATH ;; esac
export PATH

# gpu_fetch_debs: downloads the carried packages that are missing from .deps/deb and removes any
# other .deb there, so that .deps/deb holds exactly what the GPU machine will get.
gpu_fetch_debs() {
  grep -qx '/.deps/' "$GPU_ROOT/.git/info/exclude" 2>/dev/null || grep -qx '/.deps/' "$GPU_ROOT/.gitignore" ||
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
    dpkg -x "$f" "$GPU_PREFIX" || return 1
    echo "unpacked $(basename "$f")"
  done
  n=$(find "$GPU_PREFIX" -name '*.so*' | wc -l)
  echo "$n shared libraries and links under .deps/root"
}

# gpu_find_cudnn: sets GPU_CUDNN_ROOT (empty when the CUDA toolkit's own cuDNN serves) and
# GPU_CUDNN_LIBDIR. cuDNN comes with the toolkit, from CUDNN_ROOT, or from PyTorch's Python
# packages (nvidia.cudnn, a namespace package: __path__[0], not __file__). None: an error.
gpu_find_cudnn() {
  GPU_CUDNN_ROOT=""
  GPU_CUDNN_LIBDIR=""
  if [[ -n ${CUDNN_ROOT:-} ]]; then
    GPU_CUDNN_ROOT=$CUDNN_ROOT
  elif [[ -e $CUDA_HOME/include/cudnn.h || -e /usr/include/cudnn.h || -e /usr/include/x86_64-linux-gnu/cudnn.h ]]; then
    local lib
    lib=$(compgen -G "$CUDA_HOME/lib64/libcudnn.so*" | head -1)
    [[ -n $lib ]] && GPU_CUDNN_LIBDIR=$(dirname "$lib")
    echo "cuDNN: with the CUDA toolkit or the system (${GPU_CUDNN_LIBDIR:-system library path})"
    return 0
  else
    GPU_CUDNN_ROOT=$(python3 -c "import nvidia.cudnn; print(nvidia.cudnn.__path__[0])" 2>/dev/null || true)
  fi
  if [[ -z $GPU_CUDNN_ROOT || ! -e $GPU_CUDNN_ROOT/include/cudnn.h ]]; then
    echo "ERROR: cuDNN not found: no cudnn.h with the CUDA toolkit ($CUDA_HOME), no CUDNN_ROOT, and no usable" \
      "nvidia.cudnn Python package (got '${GPU_CUDNN_ROOT}')"
    return 1
  fi
  GPU_CUDNN_LIBDIR=$GPU_CUDNN_ROOT/lib
  echo "cuDNN: $GPU_CUDNN_ROOT"
}

# gpu_env: the library path for the carried libraries, CUDA and cuDNN (the linker also uses it
# to find libdnnl's own dependencies).
gpu_env() {
  local cuda_lib=$CUDA_HOME/lib64
  export LD_LIBRARY_PATH=$GPU_LIBDIRS:${GPU_CUDNN_LIBDIR:+$GPU_CUDNN_LIBDIR:}$cuda_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
}

# gpu_configure: configures $GPU_BUILD against the carried packages only: Release, sm_90, tests
# and benchmarks, no examples, no ewnet-collect (no libcurl there).
gpu_configure() {
  local args=(-S "$GPU_ROOT" -B "$GPU_BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90-real
    -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc"
    -DCMAKE_PREFIX_PATH="$GPU_PREFIX/usr" -DCMAKE_LIBRARY_PATH="${GPU_LIBDIRS//:/;}"
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$GPU_LIBDIRS"
    -DEWNET_BUILD_TESTS=ON -DEWNET_BUILD_BENCHMARKS=ON -DEWNET_BUILD_EXAMPLES=OFF -DEWNET_WITH_COLLECT=OFF)
  command -v ninja > /dev/null && args+=(-G Ninja)
  [[ -n $GPU_CUDNN_ROOT ]] && args+=(-DCUDNN_ROOT="$GPU_CUDNN_ROOT")
  cmake "${args[@]}" || return 1
  grep -q "ewnet: CUDA backend on" "$1" || {
    echo "ERROR: the CUDA backend is off (see the 'ewnet: CUDA backend off' line above)"
    return 1
  }
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

# gpu_ldd BINARY...: every shared library each binary needs must resolve, and only to the carried
# packages, the CUDA toolkit, cuDNN's folder, or the base C/C++ runtime every machine with a
# compiler has.
gpu_ldd() {
  local bin bad=0 line name path
  for bin in "$@"; do
    echo "== ldd ${bin#"$GPU_ROOT"/}"
    while IFS= read -r line; do
      name=$(awk '{print $1}' <<< "$line")
      path=$(awk '$2 == "=>" {print $3}' <<< "$line")
      [[ $line == *"=>"* ]] || path=$name
      if [[ $line == *"not found"* ]]; then
        echo "  MISSING  $name"
        bad=1
      elif [[ $path == "$GPU_PREFIX"/* ]]; then
        echo "  carried  $name"
      elif [[ $path == "$CUDA_HOME"/* || $(readlink -f "$path") == "$(readlink -f "$CUDA_HOME")"/* ]]; then
        echo "  cuda     $name"
      elif [[ -n ${GPU_CUDNN_LIBDIR:-} && $path == "$GPU_CUDNN_LIBDIR"/* ]]; then
        echo "  cudnn    $name"
      elif [[ $name =~ ^(linux-vdso\.so|/lib64/ld-linux-x86-64\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libstdc\+\+\.so|libgcc_s\.so|libpthread\.so|libdl\.so|librt\.so) ]]; then
        echo "  base     $name"
      else
        echo "  OUTSIDE  $name => $path (neither carried nor CUDA/cuDNN nor the base runtime)"
        bad=1
      fi
    done < <(ldd "$bin")
  done
  return $bad
}
