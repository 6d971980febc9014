#!/usr/bin/env bash
# tools/gpu-common.sh's environment detection against fake layouts (a CTest test, no GPU): the
# CUDA toolkit from CUDA_HOME or from the nvcc on PATH (not a guessed /usr/local/cuda); cuDNN from
# CUDNN_ROOT, the toolkit, the system (/usr/include, /usr/lib/x86_64-linux-gnu) or PyTorch's pip
# wheel, saying which; and ldd's classes: a system cuDNN is accepted, another library beside it
# in the system's folder is not.
#   gpu_env_test.sh REPO WORK_DIR
set -uo pipefail
repo=$1 work=$2
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)

failures=0
fail() {
  echo "FAILED: $*"
  failures=$((failures + 1))
}
check() {  # check WHAT ACTUAL EXPECTED
  [[ $2 == "$3" ]] && echo "ok: $1" || fail "$1: got '$2', expected '$3'"
}

# Only these tools on PATH, so that no real nvcc is found.
mkdir -p "$work/sysbin"
for tool in dirname readlink sed sort tail head basename cat grep mkdir ln chmod touch rm; do
  ln -s "$(command -v "$tool")" "$work/sysbin/$tool"
done
fake_nvcc() {  # fake_nvcc PREFIX: a toolkit at PREFIX with bin/nvcc and lib64/libcublas.so
  mkdir -p "$1/bin" "$1/lib64"
  printf '#!/bin/sh\necho "Cuda compilation tools, release 13.0, V13.0.88"\n' > "$1/bin/nvcc"
  chmod +x "$1/bin/nvcc"
  touch "$1/lib64/libcublas.so"
}
fake_cudnn() {  # fake_cudnn INCLUDE_DIR LIB_DIR: cudnn.h, cudnn_version.h (9.8.1), libcudnn.so.9
  mkdir -p "$1" "$2"
  touch "$1/cudnn.h" "$2/libcudnn.so.9"
  printf '#define CUDNN_MAJOR 9\n#define CUDNN_MINOR 8\n#define CUDNN_PATCHLEVEL 1\n' > "$1/cudnn_version.h"
}

source "$repo/tools/gpu-common.sh"
PATH=$work/sysbin
GPU_SYSROOT=$work/sys
GPU_PYTHON=$work/no-python

# ---- the toolkit --------------------------------------------------------------------------------
fake_nvcc "$work/opt/cuda-13.0"
mkdir -p "$work/pathbin"
ln -s "$work/opt/cuda-13.0/bin/nvcc" "$work/pathbin/nvcc"
unset CUDA_HOME
PATH=$work/pathbin:$work/sysbin
gpu_find_cuda > "$work/cuda.log" 2>&1
check "nvcc on PATH (a link) gives CUDA_HOME" "$CUDA_HOME" "$work/opt/cuda-13.0"
check "nvcc's version" "$GPU_CUDA_VERSION" "13.0"
grep -q "found through the nvcc on PATH" "$work/cuda.log" || fail "the log does not say the nvcc on PATH was used"

CUDA_HOME=$work/empty-toolkit
PATH=$work/pathbin:$work/sysbin
gpu_find_cuda > "$work/cuda2.log" 2>&1
check "a CUDA_HOME without nvcc is passed over" "$CUDA_HOME" "$work/opt/cuda-13.0"
grep -q "holds no bin/nvcc" "$work/cuda2.log" || fail "the log does not say CUDA_HOME was passed over"

fake_nvcc "$work/sys/usr/local/cuda-12.4"
fake_nvcc "$work/sys/usr/local/cuda-13.1"
unset CUDA_HOME
PATH=$work/sysbin
gpu_find_cuda > "$work/cuda3.log" 2>&1
check "without nvcc on PATH, the newest /usr/local/cuda-*" "$CUDA_HOME" "$work/sys/usr/local/cuda-13.1"

rm -rf "$work/sys/usr/local"
unset CUDA_HOME
PATH=$work/sysbin
gpu_find_cuda > "$work/cuda4.log" 2>&1
check "no toolkit anywhere is an error" "$?" "1"
grep -q "ERROR: no nvcc" "$work/cuda4.log" || fail "no error message naming nvcc"

# ---- cuDNN --------------------------------------------------------------------------------------
CUDA_HOME=$work/opt/cuda-13.0
PATH=$work/sysbin
unset CUDNN_ROOT
gpu_find_cudnn > "$work/cudnn0.log" 2>&1
check "no cuDNN anywhere is an error" "$?" "1"
grep -q "ERROR: cuDNN not found" "$work/cudnn0.log" || fail "no error message naming cuDNN"

# PyTorch's wheel: include/ and lib/libcudnn.so.9, found through the Python package.
fake_cudnn "$work/site/nvidia/cudnn/include" "$work/site/nvidia/cudnn/lib"
printf '#!/bin/sh\necho %s\n' "$work/site/nvidia/cudnn" > "$work/python"
chmod +x "$work/python"
GPU_PYTHON=$work/python
gpu_find_cudnn > "$work/cudnn1.log" 2>&1
check "the pip wheel's cuDNN" "$GPU_CUDNN_KIND|$GPU_CUDNN_ROOT|$GPU_CUDNN_LIBDIR" \
  "PyTorch's pip wheel (nvidia-cudnn)|$work/site/nvidia/cudnn|$work/site/nvidia/cudnn/lib"
check "the wheel's version" "$GPU_CUDNN_VERSION" "9.8.1"

# A system cuDNN (Debian/Ubuntu layout) comes before the wheel.
fake_cudnn "$work/sys/usr/include/x86_64-linux-gnu" "$work/sys/usr/lib/x86_64-linux-gnu"
touch "$work/sys/usr/lib/x86_64-linux-gnu/libfoo.so.1"
gpu_find_cudnn > "$work/cudnn2.log" 2>&1
check "the system's cuDNN" "$GPU_CUDNN_KIND|$GPU_CUDNN_ROOT|$GPU_CUDNN_LIBDIR" \
  "the system's|$work/sys/usr|$work/sys/usr/lib/x86_64-linux-gnu"
grep -q "cuDNN: the system's, 9.8.1" "$work/cudnn2.log" || fail "the log does not say the system's cuDNN was used"
check "ldd: the system's libcudnn is cuDNN" \
  "$(gpu_lib_class libcudnn.so.9 "$work/sys/usr/lib/x86_64-linux-gnu/libcudnn.so.9")" cudnn
check "ldd: another library in the system's folder is outside" \
  "$(gpu_lib_class libfoo.so.1 "$work/sys/usr/lib/x86_64-linux-gnu/libfoo.so.1")" outside

# The toolkit's cuDNN comes before the system's; CUDNN_ROOT before everything.
fake_cudnn "$work/opt/cuda-13.0/include" "$work/opt/cuda-13.0/lib64"
gpu_find_cudnn > "$work/cudnn3.log" 2>&1
check "the toolkit's cuDNN" "$GPU_CUDNN_KIND|$GPU_CUDNN_LIBDIR" "the CUDA toolkit's|$work/opt/cuda-13.0/lib64"
CUDNN_ROOT=$work/site/nvidia/cudnn gpu_find_cudnn > "$work/cudnn4.log" 2>&1
check "CUDNN_ROOT first" "$GPU_CUDNN_KIND|$GPU_CUDNN_ROOT" "CUDNN_ROOT|$work/site/nvidia/cudnn"

# ---- ldd's other classes ------------------------------------------------------------------------
check "ldd: carried" "$(gpu_lib_class libdnnl.so.2 "$GPU_PREFIX/usr/lib/x86_64-linux-gnu/libdnnl.so.2")" carried
check "ldd: the toolkit" "$(gpu_lib_class libcublas.so.13 "$work/opt/cuda-13.0/lib64/libcublas.so.13")" cuda
check "ldd: the C++ runtime" "$(gpu_lib_class libstdc++.so.6 /lib/x86_64-linux-gnu/libstdc++.so.6)" base
check "ldd: not found" "$(gpu_lib_class libdnnl.so.2 "not found")" missing
check "ldd: a libcudnn outside the chosen folder" "$(gpu_lib_class libcudnn.so.9 /elsewhere/libcudnn.so.9)" outside

((failures == 0)) || exit 1
echo "all environment checks passed"
