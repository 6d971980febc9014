#!/usr/bin/env bash
# Builds ewnet on a GPU machine and runs, in one go: the test suite (CUDA cases included),
# the CUDA tests under compute-sanitizer (memcheck on all, racecheck and synccheck on a subset),
# the benchmarks, and the PyTorch comparison. Every log goes to the output folder (first
# argument, else ./gpu-check-out); a summary table (step, status, seconds) is written
# there and printed last.
#
# Expects the Debian packages of tools/fetch-gpu-deps.sh in .deps/deb (unpacked into .deps/root),
# and cuDNN either with the CUDA toolkit or in PyTorch's Python packages (nvidia.cudnn).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUTDIR=${1:-$ROOT/gpu-check-out}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
BUILD=$ROOT/build-gpu
JOBS=${JOBS:-16}
SUMMARY=$OUTDIR/summary.txt
printf '%-34s %-8s %8s\n' step status seconds > "$SUMMARY"

# step NAME COMMAND...: runs the command with its output in $OUTDIR/NAME.log and records it.
step() {
  local name=$1
  shift
  local t0=$SECONDS status
  echo "== $name: $*" | tee "$OUTDIR/$name.log"
  if "$@" >> "$OUTDIR/$name.log" 2>&1; then status=ok; else status="FAIL($?)"; fi
  printf '%-34s %-8s %8d\n' "$name" "$status" $((SECONDS - t0)) | tee -a "$SUMMARY"
  [[ $status == ok ]]
}
skip() { printf '%-34s %-8s %8d\n' "$1" "skipped" 0 | tee -a "$SUMMARY"; echo "   ($2)"; }

# ---- dependencies ------------------------------------------------------------------------------
unpack_deps() {
  mkdir -p .deps/root
  shopt -s nullglob
  local debs=(.deps/deb/*.deb)
  ((${#debs[@]})) || { echo "no .deb files in .deps/deb (run tools/fetch-gpu-deps.sh where packages can be fetched)"; return 0; }
  for f in "${debs[@]}"; do dpkg -x "$f" .deps/root; done
  find .deps/root -maxdepth 4 -type d | head -50
}
step deps-unpack unpack_deps
DEPS=$ROOT/.deps/root/usr
export LD_LIBRARY_PATH=$DEPS/lib:$DEPS/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

CUDNN_ARGS=()
if [[ -n ${CUDNN_ROOT:-} ]]; then
  CUDNN_ARGS=(-DCUDNN_ROOT="$CUDNN_ROOT")
elif [[ ! -e /usr/local/cuda/include/cudnn.h && ! -e /usr/include/cudnn.h ]]; then
  PYCUDNN=$(python3 -c "import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))" 2>/dev/null || true)
  if [[ -n $PYCUDNN ]]; then
    CUDNN_ARGS=(-DCUDNN_ROOT="$PYCUDNN")
    export LD_LIBRARY_PATH=$PYCUDNN/lib:$LD_LIBRARY_PATH
  fi
fi
echo "cuDNN: ${CUDNN_ARGS[*]:-system}" | tee "$OUTDIR/cudnn.txt"
nvidia-smi > "$OUTDIR/nvidia-smi.txt" 2>&1 || true

# ---- build ----------------------------------------------------------------------------------
GEN=()
command -v ninja > /dev/null && GEN=(-G Ninja)
step configure cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_PREFIX_PATH="$DEPS" "${CUDNN_ARGS[@]}" || { cat "$SUMMARY"; exit 1; }
grep -q "CUDA backend on" "$OUTDIR/configure.log" || echo "WARNING: the CUDA backend is off; see configure.log"
step build cmake --build "$BUILD" -j "$JOBS" || { cat "$SUMMARY"; exit 1; }
if command -v cuobjdump > /dev/null && [[ -f $BUILD/libewnet_cuda.a ]]; then
  step cuobjdump sh -c "cuobjdump --list-elf '$BUILD/libewnet_cuda.a'; cuobjdump --list-ptx '$BUILD/libewnet_cuda.a'"
fi

# ---- tests ----------------------------------------------------------------------------------
step ctest ctest --test-dir "$BUILD" --output-on-failure -j 4 --timeout 900
step ctest-cuda-verbose ctest --test-dir "$BUILD" -L cuda -V --timeout 900

CUDA_TESTS=$BUILD/tests/cuda/ewnet_cuda_tests
if [[ -x $CUDA_TESTS ]] && command -v compute-sanitizer > /dev/null; then
  # The [runtime] cases provoke API errors on purpose (out of memory, a bad pitch): API error
  # reports are off, memory errors are what memcheck is for.
  SAN=(compute-sanitizer --error-exitcode 99 --report-api-errors no)
  step sanitizer-memcheck "${SAN[@]}" --tool memcheck --leak-check full "$CUDA_TESTS"
  step sanitizer-racecheck "${SAN[@]}" --tool racecheck "$CUDA_TESTS" "[conv],[pooling],[batch_norm],[sgdm],[argmax]"
  step sanitizer-synccheck "${SAN[@]}" --tool synccheck "$CUDA_TESTS" "[batch_norm],[pooling],[conv]"
  step sanitizer-initcheck "${SAN[@]}" --tool initcheck "$CUDA_TESTS" "[model]"
else
  skip sanitizer "no compute-sanitizer or no CUDA test executable"
fi

# ---- benchmarks -----------------------------------------------------------------------------
shopt -s nullglob
BENCHES=()
for b in "$BUILD"/bench/*; do [[ -f $b && -x $b ]] && BENCHES+=("$b"); done
if ((${#BENCHES[@]})); then
  for b in "${BENCHES[@]}"; do
    n=$(basename "$b")
    # GPU benchmarks only (the CPU ones are measured on the CPU machine; see docs/benchmarks.md).
    step "bench-$n" "$b" --benchmark_filter='^cuda/' --benchmark_out="$OUTDIR/bench-$n.json" --benchmark_out_format=json
  done
else
  skip benchmarks "no benchmark executables in $BUILD/bench"
fi
if [[ -f bench/pytorch_compare.py ]]; then
  step pytorch-compare-cuda python3 bench/pytorch_compare.py --bin-dir "$BUILD/bench" --device cuda --out "$OUTDIR/pytorch-compare-cuda.md"
  step pytorch-compare-cuda-tf32 python3 bench/pytorch_compare.py --bin-dir "$BUILD/bench" --device cuda --tf32 --out "$OUTDIR/pytorch-compare-cuda-tf32.md"
  # torch.compile rows where the PyTorch there has it (2.0 and later); a failure here fails only this step.
  step pytorch-compare-cuda-compile python3 bench/pytorch_compare.py --bin-dir "$BUILD/bench" --device cuda --compile --out "$OUTDIR/pytorch-compare-cuda-compile.md"
  step pytorch-compare-cuda-tf32-compile python3 bench/pytorch_compare.py --bin-dir "$BUILD/bench" --device cuda --tf32 --compile --out "$OUTDIR/pytorch-compare-cuda-tf32-compile.md"
else
  skip pytorch-compare "bench/pytorch_compare.py not present"
fi

echo
echo "logs in $OUTDIR"
cat "$SUMMARY"
