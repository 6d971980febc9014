#!/usr/bin/env bash
# Correctness of the CUDA backend on a GPU machine, in one call (target: under 6 minutes from a
# bare 16-core machine with nvcc, CMake, ninja and python3 + PyTorch, and no package registry):
#   1. a fresh .deps/root from the carried Debian packages (tools/gpu-common.sh, CARRIED_DEBS);
#   2. cuDNN from the CUDA toolkit, CUDNN_ROOT or PyTorch's nvidia.cudnn package;
#   3. configure (sm_90) and build only the CUDA tests;
#   4. ldd of the binaries: everything resolves to the carried packages, CUDA, cuDNN, libc/libstdc++;
#   5. every CUDA test (ctest -L cuda --no-tests=error); a skipped one is a failure here;
#   6. compute-sanitizer memcheck on the operation tests, racecheck and synccheck on the reduction
#      kernels, each under its own timeout; "Device not supported" is reported as unavailable.
# Hard failures: the CUDA backend off, cuDNN not found, a carried package missing, a library that
# does not resolve, zero CUDA tests run, a CUDA test skipped or failed.
#
# Writes exactly two files into the output folder (first argument, else ./gpu-check-out):
# gpu-check-logs.tar.gz (every log) and gpu-check-summary.txt (printed last).
#
#   tools/gpu-check.sh --dry-run [out]   on the CPU machine, before every device call: downloads the
#                                        carried packages (apt-get download), then steps 1-4 with
#                                        nice -n 19 -j2. Carry .deps/deb to the GPU machine.
#   tools/gpu-check.sh [out]             on the GPU machine.
set -uo pipefail
DRY=0
if [[ ${1:-} == --dry-run ]]; then
  DRY=1
  shift
fi
source "$(dirname "$0")/gpu-common.sh"
cd "$GPU_ROOT"
OUTDIR=${1:-$GPU_ROOT/gpu-check-out}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
SUMMARY=$OUTDIR/gpu-check-summary.txt
rm -f "$SUMMARY" "$OUTDIR/gpu-check-logs.tar.gz"
START=$SECONDS
FAILED=0
if ((DRY)); then
  JOBS=2
  NICE=(nice -n 19)
else
  JOBS=${JOBS:-16}
  NICE=()
fi

{
  echo "ewnet gpu-check$( ((DRY)) && echo ' (dry run)') $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname)"
  echo "commit $(git -C "$GPU_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$GPU_ROOT" diff --quiet 2>/dev/null || echo ' (with local changes)')"
  printf '%-22s %-34s %7s\n' step status seconds
} > "$SUMMARY"

# step NAME COMMAND...: runs it, output in NAME.log; records ok or FAIL(rc).
step() {
  local name=$1 t0=$SECONDS rc
  shift
  echo "== $name: $*" | tee "$LOGS/$name.log"
  "$@" >> "$LOGS/$name.log" 2>&1
  rc=$?
  local status=ok
  ((rc == 0)) || status="FAIL($rc)"
  printf '%-22s %-34s %7d\n' "$name" "$status" $((SECONDS - t0)) | tee -a "$SUMMARY"
  return $rc
}
note() { printf '%-22s %-34s %7s\n' "$1" "$2" "${3:--}" | tee -a "$SUMMARY"; }

finish() {
  note total "$( ((FAILED)) && echo FAILED || echo passed)" $((SECONDS - START))
  tar czf "$OUTDIR/gpu-check-logs.tar.gz" -C "$LOGS" . && rm -rf "$LOGS"
  echo
  echo "logs: $OUTDIR/gpu-check-logs.tar.gz"
  cat "$SUMMARY"
  exit $((FAILED ? 1 : 0))
}
hard() {
  FAILED=1
  echo "   (hard failure: $1)" | tee -a "$SUMMARY"
  finish
}

# ---- 1-2. dependencies and cuDNN --------------------------------------------------------------
if ((DRY)); then
  step fetch-debs gpu_fetch_debs || hard "could not download the carried packages"
fi
step unpack-debs gpu_unpack_debs || hard "a carried package is missing or does not unpack"
step find-cudnn gpu_find_cudnn || hard "cuDNN not found"  # a function: its variables stay set here
gpu_env >> "$LOGS/find-cudnn.log"

if ((!DRY)); then
  nvidia-smi > "$LOGS/nvidia-smi.txt" 2>&1 || hard "nvidia-smi failed: no GPU or no driver"
  DEVICE=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
  note device "${DEVICE:-unknown}"
fi

# ---- 3-4. configure, build, ldd ---------------------------------------------------------------
step configure gpu_configure "$LOGS/configure.log" ||
  hard "configure failed or the CUDA backend is off"
step found-deps gpu_check_found_deps || hard "dependencies found outside the carried packages"
TARGETS=(ewnet_cuda_tests)
# The dry run also builds what tools/gpu-bench.sh runs, so that its binaries are checked too.
((DRY)) && TARGETS+=(ewnet_bench_layers ewnet_bench_inception ewnet_bench_train_step)
step build "${NICE[@]}" cmake --build "$GPU_BUILD" -j "$JOBS" --target "${TARGETS[@]}" || hard "build failed"
BINS=("$GPU_BUILD/tests/cuda/ewnet_cuda_tests")
((DRY)) && BINS+=("$GPU_BUILD"/bench/ewnet_bench_{layers,inception,train_step})
step ldd gpu_ldd "${BINS[@]}" || hard "a library does not resolve to the carried packages, CUDA or cuDNN"
if command -v cuobjdump > /dev/null; then
  step cuobjdump cuobjdump --list-elf "$GPU_BUILD/libewnet_cuda.a" || FAILED=1
fi

if ((DRY)); then
  note device-steps "not run (dry run: no GPU here)"
  finish
fi

# ---- 5. the CUDA tests ------------------------------------------------------------------------
CUDA_TESTS=$GPU_BUILD/tests/cuda/ewnet_cuda_tests
step list-tests "$CUDA_TESTS" --list-tests || true
if step ctest-cuda ctest --test-dir "$GPU_BUILD" -L cuda --no-tests=error --output-on-failure -j 4 --timeout 150; then
  :
else
  FAILED=1
fi
RESULT=$(grep -E "tests passed|tests failed" "$LOGS/ctest-cuda.log" | tail -1)
SKIPPED=$(grep -c -- "\*\*\*Skipped\|Not Run" "$LOGS/ctest-cuda.log")
note ctest-result "${RESULT:-no result line}"
if [[ -z $RESULT ]]; then
  hard "ctest ran no CUDA test"
fi
if ((SKIPPED > 0)); then
  FAILED=1
  note ctest-skipped "$SKIPPED CUDA tests skipped or not run: the device was not usable"
fi

# ---- 6. compute-sanitizer ---------------------------------------------------------------------
# sanitize NAME SECONDS TOOL FILTER: one tool on a subset of the tests, under its own timeout.
SANITIZER_BUDGET=${EWNET_CHECK_BUDGET:-340}  # the sanitizers stop by then (seconds since the start)
sanitize() {
  local name=$1 secs=$2 tool=$3 filter=$4 t0=$SECONDS rc status left
  left=$((SANITIZER_BUDGET - (SECONDS - START)))
  if ((left < 15)); then
    note "$name" "skipped (time budget)" 0
    return
  fi
  ((secs > left)) && secs=$left
  echo "== $name: compute-sanitizer --tool $tool ($filter)" | tee "$LOGS/$name.log"
  timeout --kill-after=10 "$secs" compute-sanitizer --tool "$tool" --error-exitcode 99 --report-api-errors no \
    "$CUDA_TESTS" "$filter" >> "$LOGS/$name.log" 2>&1
  rc=$?
  if grep -qiE "device not supported|not supported on this (device|platform)|unsupported device" "$LOGS/$name.log"; then
    status="unavailable on this machine"
  elif ((rc == 124 || rc == 137)); then
    status="timed out (${secs}s)"
  elif ((rc == 0)); then
    status=ok
  else
    status="FAIL($rc)"
    FAILED=1
  fi
  printf '%-22s %-34s %7d\n' "$name" "$status" $((SECONDS - t0)) | tee -a "$SUMMARY"
  [[ $status == "unavailable on this machine" ]] && echo "   (sanitizer unavailable on this machine)" | tee -a "$SUMMARY"
}
if command -v compute-sanitizer > /dev/null; then
  # The operation tests at their small shapes (the [large] cases would take minutes under memcheck).
  sanitize memcheck 90 memcheck \
    "[elementwise]~[large],[activation],[bias_relu],[conv]~[large],[fully_connected],[pooling],[batch_norm]~[large],[cross_channel_norm],[softmax],[dropout],[sgdm],[argmax]"
  # The kernels with shared-memory reductions and barriers.
  sanitize racecheck 60 racecheck "[batch_norm]~[large],[conv]~[large],[pooling],[argmax]"
  sanitize synccheck 45 synccheck "[batch_norm]~[large],[conv]~[large],[pooling]"
else
  note sanitizer "compute-sanitizer not found"
fi

finish
