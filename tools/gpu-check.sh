#!/usr/bin/env bash
# The GPU check of ewnet in one call, under a hard deadline (420 s by default): build, correctness,
# sanitizers and benchmarks, every step's verdict in one summary printed last, and a non-zero exit
# whenever anything failed. On a GPU machine (an H200: 16 cores, nvcc, CMake, ninja, python3 with
# PyTorch, no package registry), with .deps/deb carried from the dry run:
#
#   tools/gpu-check.sh [--budget SECONDS] OUT
#
#    1. unpack the carried Debian packages into .deps/root (CARRIED_DEBS, tools/gpu-common.sh);
#    2. find the CUDA toolkit (CUDA_HOME, the nvcc on PATH, /usr/local/cuda*) and cuDNN
#       (CUDNN_ROOT, the toolkit's, the system's, PyTorch's pip wheel), saying which;
#    3. nvidia-smi (no GPU: a failure, and the device steps are skipped);
#    4. configure build-gpu for sm_90, each CUDA test area limited to EWNET_GPU_TEST_TIMEOUT
#       (150) seconds; build the CUDA tests and the benchmarks (-j16); ldd the binaries (each
#       library from the carried packages, CUDA, cuDNN or the C/C++ runtime); cuobjdump (sm_90);
#    5. check that every CUDA test area has its limits (cmake/EwnetCheckTestLimits.cmake), then
#       run them all (ctest -L cuda): an area that fails, times out or is skipped is a failure;
#    6. compute-sanitizer memcheck on the operation tests at small shapes;
#    7. the training step's benchmarks: ewnet with deterministic mode on and off, then
#       bench/pytorch_compare.py against the machine's PyTorch, eager then torch.compile (FP32);
#    8. racecheck and synccheck on the reduction kernels; then, as long as time is left, the
#       inception modules, fine-tuning and inference against eager, the layer benchmarks, the
#       training step in TF32 and the torchvision networks (--budget 540 leaves room for more of
#       them within a 10-minute call).
# Each step runs under its own `timeout`, cut to what is left before the deadline; a step the
# deadline reaches first is "incomplete". A sanitizer that printed an error is a failure even if
# it then timed out; "Device not supported" makes it "unavailable". The output folder holds
# summary.txt, current.log (the step running now), logs.tar.gz (updated after every step) and
# tables.md (benchmark tables): see tools/gpu-steps.sh.
#
#   tools/gpu-check.sh --dry-run OUT    on a machine without a GPU, before a GPU call: downloads
#       the carried packages (apt-get download), then steps 1, 2 and 4 for the same targets
#       (nice, -j2) and the test-limits check; the device steps are listed as "not run".
#   tools/gpu-check.sh --practice OUT   the device steps against fakes, quickly, on any machine:
#       tests/tools/gpu_check_practice.sh (a CTest test) puts a fake nvidia-smi and a fake
#       compute-sanitizer on PATH and builds a practice test program whose areas pass, hang and
#       match no test case; it checks that each fault is reported as a failure.
#
# Environment: EWNET_GPU_BUDGET (seconds; --budget), EWNET_GPU_TEST_TIMEOUT (seconds a CUDA test
# area may run), EWNET_GPU_SANITIZER_CAP (seconds a sanitizer run may take at most), JOBS,
# EWNET_GPU_BUILD (build folder), CUDA_HOME, CUDNN_ROOT; for --practice EWNET_GPU_PRACTICE_PROGRAM.
set -uo pipefail
MODE=gpu
BUDGET=${EWNET_GPU_BUDGET:-}
while (($#)); do
  case $1 in
    --dry-run) MODE=dry ;;
    --practice) MODE=practice ;;
    --budget)
      BUDGET=$2
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -uo/p' "$0" | sed '$d'
      exit 0
      ;;
    *) break ;;
  esac
  shift
done
OUT=${1:-${OUT:-}}
if [[ -z $OUT ]]; then
  echo "usage: tools/gpu-check.sh [--dry-run | --practice] [--budget SECONDS] OUT" >&2
  exit 64
fi
source "$(dirname "$0")/gpu-common.sh"
source "$(dirname "$0")/gpu-steps.sh"
cd "$GPU_ROOT" || exit 1

case $MODE in
  gpu) BUDGET=${BUDGET:-420} ;;
  dry) BUDGET=${BUDGET:-5400} ;;
  practice) BUDGET=${BUDGET:-30} ;;
esac
TEST_TIMEOUT=${EWNET_GPU_TEST_TIMEOUT:-150}
SANITIZER_CAP=${EWNET_GPU_SANITIZER_CAP:-}
if [[ $MODE == dry ]]; then
  JOBS=${JOBS:-2}
  NICE=(nice -n 19)
else
  JOBS=${JOBS:-$(nproc)}
  NICE=()
fi
CUDA_TESTS=$GPU_BUILD/tests/cuda/ewnet_cuda_tests
BENCH=$GPU_BUILD/bench
if [[ $MODE == practice ]]; then
  CUDA_TESTS=${EWNET_GPU_PRACTICE_PROGRAM:?--practice needs EWNET_GPU_PRACTICE_PROGRAM (tests/tools/gpu_check_practice.sh sets it)}
fi
BLOCKED=""  # set to a reason when a failure makes the later device steps pointless

# The commit checked (a copy of the tree without .git says so).
if COMMIT=$(git rev-parse --short HEAD 2> /dev/null); then
  git diff --quiet HEAD 2> /dev/null || COMMIT+=" with local changes"
else
  COMMIT="unknown (no git metadata)"
fi
steps_begin "$OUT" "$BUDGET" "$( [[ $MODE == gpu ]] || echo "$MODE run, ")commit $COMMIT, on $(uname -n)"

# not_run WHY NAME...: steps this mode does not run, listed so that the summary shows the plan.
not_run() {
  local why=$1 name
  shift
  for name in "$@"; do verdict "$name" 0 "not run ($why)"; done
}

# device_step: true when a device step should run now; otherwise records why it does not.
device_step() {
  if [[ $MODE == dry ]]; then
    verdict "$1" 0 "not run (dry run: no GPU here)"
    return 1
  fi
  if [[ -n $BLOCKED ]]; then
    verdict "$1" 0 "skipped ($BLOCKED)"
    return 1
  fi
  return 0
}

# sanitizer_cap SECONDS: the cap of a sanitizer run (EWNET_GPU_SANITIZER_CAP overrides).
sanitizer_cap() { echo "${SANITIZER_CAP:-$1}"; }

# ---- 1-2. dependencies, toolkit, cuDNN --------------------------------------------------------
if [[ $MODE == practice ]]; then
  not_run "practice: fakes stand for the machine" unpack-debs find-cuda find-cudnn
else
  if [[ $MODE == dry ]]; then
    step_here fetch-debs gpu_fetch_debs || steps_finish
  fi
  step_here unpack-debs gpu_unpack_debs || steps_finish
  step_here find-cuda gpu_find_cuda || steps_finish
  steps_note "CUDA: $CUDA_HOME, nvcc $GPU_CUDA_VERSION (found through $GPU_CUDA_FROM)"
  step_here find-cudnn gpu_find_cudnn || steps_finish
  steps_note "cuDNN: $GPU_CUDNN_KIND, $GPU_CUDNN_VERSION, in $GPU_CUDNN_LIBDIR"
  gpu_env > /dev/null
fi

# ---- 3. the device ----------------------------------------------------------------------------
if device_step nvidia-smi; then
  step_run nvidia-smi 20 nvidia-smi
  if ((STEP_RC == 0)); then
    verdict nvidia-smi "$STEP_SECONDS" passed
    steps_note "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2> /dev/null | head -1)"
  else
    verdict nvidia-smi "$STEP_SECONDS" "FAILED (rc $STEP_RC: no GPU or no driver)"
    BLOCKED="no usable GPU"
  fi
fi

# ---- 4. configure, build, ldd -----------------------------------------------------------------
if [[ $MODE == practice ]]; then
  step_run configure 60 cmake -S "$GPU_ROOT/tests/tools/gpu_practice" -B "$GPU_BUILD" \
    -DPRACTICE_PROGRAM="$CUDA_TESTS" -DEWNET_CUDA_TEST_TIMEOUT="$TEST_TIMEOUT"
  step_plain_verdict
  ((STEP_RC == 0)) || BLOCKED="configure failed"
  not_run "practice: nothing to build" found-deps build ldd cuobjdump
else
  gpu_configure_args "$TEST_TIMEOUT"
  if step_run configure 120 cmake "${GPU_CONFIGURE_ARGS[@]}"; then
    if ((STEP_RC == 0)) && gpu_check_configured "$STEP_LOG" >> "$STEP_LOG" 2>&1; then
      verdict configure "$STEP_SECONDS" passed
      steps_note "$(grep -m1 'ewnet: CUDA backend on' "$STEP_LOG" | sed 's/^-- //')"
    else
      verdict configure "$STEP_SECONDS" "FAILED ($(steps_last_error "$STEP_LOG"))"
      steps_finish
    fi
  else
    steps_finish
  fi
  step_here found-deps gpu_check_found_deps || steps_finish
  TARGETS=(ewnet_cuda_tests ewnet_bench_layers ewnet_bench_inception ewnet_bench_train_step)
  # About a minute at -j16 on the GPU machine; far longer on two shared cores (the dry run).
  step_run build "$([[ $MODE == dry ]] && echo 3600 || echo 300)" "${NICE[@]}" cmake --build "$GPU_BUILD" -j "$JOBS" \
    --target "${TARGETS[@]}" || steps_finish
  step_plain_verdict
  ((STEP_RC == 0)) || steps_finish
  BINS=("$CUDA_TESTS" "$BENCH"/ewnet_bench_{layers,inception,train_step})
  step_here ldd gpu_ldd "${BINS[@]}" || steps_finish
  if command -v cuobjdump > /dev/null; then
    step_run cuobjdump 30 cuobjdump --list-elf "$GPU_BUILD/libewnet_cuda.a"
    if ((STEP_RC == 0)) && grep -q sm_90 "$STEP_LOG"; then
      verdict cuobjdump "$STEP_SECONDS" "passed (sm_90 code in libewnet_cuda.a)"
    else
      verdict cuobjdump "$STEP_SECONDS" "FAILED (no sm_90 code in libewnet_cuda.a, rc $STEP_RC)"
    fi
  else
    verdict cuobjdump 0 "unavailable (cuobjdump is not on PATH)"
  fi
fi

# ---- 5. the CUDA tests ------------------------------------------------------------------------
# Every area must carry its limits before it runs (a larger TIMEOUT property would let a hung test
# eat the call; without -w NoTests a tag matching nothing passes).
if [[ -z $BLOCKED || $MODE == dry ]]; then
  if step_run test-limits 30 cmake -DCTEST="$(command -v ctest)" -DBUILD_DIR="$GPU_BUILD" -DLABEL=cuda \
    -DMAX_TIMEOUT="$TEST_TIMEOUT" -P "$GPU_ROOT/cmake/EwnetCheckTestLimits.cmake"; then
    if ((STEP_RC == 0)); then
      verdict test-limits "$STEP_SECONDS" "passed ($(tail -1 "$STEP_LOG" | cut -d: -f1))"
    else
      verdict test-limits "$STEP_SECONDS" "FAILED ($(grep -m1 -E 'BAD|no test with label' "$STEP_LOG" | sed 's/^ *//' | cut -c1-150))"
    fi
  fi
else
  verdict test-limits 0 "skipped ($BLOCKED)"
fi

# ctest_verdict: from the ctest log: every area passed, or which failed, timed out or were skipped.
ctest_verdict() {
  local result problems count total
  result=$(grep -E '^[0-9]+% tests passed' "$STEP_LOG" | tail -1)
  total=$(sed -n 's/.* out of \([0-9]*\)$/\1/p' <<< "$result")
  problems=$(sed -n '/^The following tests \(FAILED\|did not run\):/,/^[^[:space:]]/p' "$STEP_LOG" |
    sed -n 's/^[[:space:]]*[0-9]* - \(.*\)$/\1/p' | paste -sd, - | sed 's/,/, /g')
  count=$(grep -o ' - [^ ]* (' <<< " - ${problems//, / - }" | wc -l)
  if ((STEP_TIMED_OUT)); then
    if ((STEP_CUT)); then
      verdict ctest-cuda "$STEP_SECONDS" "incomplete (cut by the deadline after $STEP_LIMIT s${problems:+; so far: $problems})"
    else
      verdict ctest-cuda "$STEP_SECONDS" "FAILED (ctest ran past $STEP_LIMIT s: a per-test limit did not hold${problems:+; $problems})"
    fi
  elif [[ -z $result ]]; then
    verdict ctest-cuda "$STEP_SECONDS" "FAILED (rc $STEP_RC, no result line: $(steps_last_error "$STEP_LOG"))"
  elif [[ -n $problems ]]; then
    verdict ctest-cuda "$STEP_SECONDS" "FAILED ($count of $total areas failed, timed out or did not run: $problems)"
  elif ((STEP_RC != 0)); then
    verdict ctest-cuda "$STEP_SECONDS" "FAILED (rc $STEP_RC; $result)"
  else
    verdict ctest-cuda "$STEP_SECONDS" "passed ($result)"
  fi
}
if device_step ctest-cuda; then
  # Four areas at a time on the one GPU; each area's limit is its TIMEOUT property.
  step_run ctest-cuda 270 ctest --test-dir "$GPU_BUILD" -L '^cuda$' --no-tests=error --output-on-failure -j 4 &&
    ctest_verdict
fi

# ---- 6, 8. compute-sanitizer -------------------------------------------------------------------
# sanitize NAME CAP TOOL FILTER: one tool on the cases FILTER selects.
sanitize() {
  local name=$1 cap=$2 tool=$3 filter=$4 errors
  device_step "$name" || return 0
  if ! command -v compute-sanitizer > /dev/null; then
    verdict "$name" 0 "unavailable (compute-sanitizer is not on PATH)"
    return 0
  fi
  step_run "$name" "$(sanitizer_cap "$cap")" compute-sanitizer --tool "$tool" --error-exitcode 99 \
    --report-api-errors no "$CUDA_TESTS" "$filter" -w NoTests || return 0
  errors=$(grep -E '^========= +(ERROR SUMMARY: [1-9]|RACECHECK SUMMARY: [1-9]|Invalid|Race reported|Error: Race|Barrier error|Misaligned|Out-of-range|Uninitialized|Program hit|Cuda API error|Malloc|Free|Leaked|Address .* is out of bounds)' \
    "$STEP_LOG" | grep -v 'ERROR SUMMARY: 0 errors' | head -1)
  if grep -qiE 'device not supported|not supported on this (device|platform)|unsupported device' "$STEP_LOG"; then
    verdict "$name" "$STEP_SECONDS" "unavailable (compute-sanitizer refuses this device: $(grep -m1 -iE 'not supported|unsupported' "$STEP_LOG" | cut -c1-100))"
  elif [[ -n $errors ]]; then
    verdict "$name" "$STEP_SECONDS" "FAILED ($tool reported an error$( ((STEP_TIMED_OUT)) && echo ', then timed out'): ${errors:0:140})"
  elif ((STEP_TIMED_OUT)); then
    verdict "$name" "$STEP_SECONDS" "incomplete (timed out after $STEP_LIMIT s$( ((STEP_CUT)) && echo ', cut by the deadline'); no error reported before)"
  elif ((STEP_RC != 0)); then
    verdict "$name" "$STEP_SECONDS" "FAILED (rc $STEP_RC: $(steps_last_error "$STEP_LOG"))"
  elif ! grep -q 'ERROR SUMMARY: 0 errors' "$STEP_LOG"; then
    verdict "$name" "$STEP_SECONDS" "FAILED (rc 0 but no 'ERROR SUMMARY: 0 errors' line: the tool did not report)"
  else
    verdict "$name" "$STEP_SECONDS" "passed ($(grep -m1 -E '^(All tests passed|test cases:)' "$STEP_LOG" | cut -c1-80))"
  fi
}
if [[ $MODE == practice ]]; then
  MEMCHECK_FILTER="[ok]"
  RACE_FILTER="[ok]"
else
  # The operation tests at their small shapes ([large] cases would take minutes under memcheck).
  MEMCHECK_FILTER="[elementwise]~[large],[activation],[bias_relu],[conv]~[large],[fully_connected],[pooling],[batch_norm]~[large],[cross_channel_norm],[softmax],[dropout],[sgdm]~[graph],[argmax]"
  # The kernels with shared-memory reductions and barriers.
  RACE_FILTER="[batch_norm]~[large],[pooling],[argmax]"
fi
sanitize memcheck 90 memcheck "$MEMCHECK_FILTER"

# ---- 7, 8. benchmarks -------------------------------------------------------------------------
# bench NAME CAP COMMAND...: a benchmark step; passed when the program ran to its end.
bench() {
  device_step "$1" || return 0
  step_run "$@" || return 0
  step_plain_verdict
}
# gbench NAME CAP FILTER COMMAND...: a Google Benchmark program's benchmarks matching FILTER, their
# JSON kept with the logs. A filter that matches nothing runs nothing and exits 0 (the names end
# in /manual_time, for one): that is a failure here.
gbench() {
  local name=$1 cap=$2 filter=$3 count
  shift 3
  device_step "$name" || return 0
  step_run "$name" "$cap" "$@" --benchmark_filter="$filter" --benchmark_out="$STEPS_LOGS/$name.json" \
    --benchmark_out_format=json || return 0
  count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["benchmarks"]))' \
    "$STEPS_LOGS/$name.json" 2> /dev/null || echo 0)
  if ((STEP_RC == 0 && !STEP_TIMED_OUT && count == 0)); then
    verdict "$name" "$STEP_SECONDS" "FAILED (no benchmark matched '$filter')"
  else
    step_plain_verdict
  fi
}
# compare NAME CAP ARGS...: bench/pytorch_compare.py on the GPU; its table goes to tables.md. A
# table without rows (no ewnet benchmark matched) is a failure.
compare() {
  local name=$1 cap=$2 rows
  shift 2
  device_step "$name" || return 0
  step_run "$name" "$cap" python3 "$GPU_ROOT/bench/pytorch_compare.py" --bin-dir "$BENCH" --device cuda \
    --min-time 1 --repeats 1 --out "$STEPS_LOGS/$name.md" "$@" || return 0
  rows=$(grep -c '^| [a-z]' "$STEPS_LOGS/$name.md" 2> /dev/null)
  if ((STEP_RC == 0 && !STEP_TIMED_OUT && ${rows:-0} <= 1)); then
    verdict "$name" "$STEP_SECONDS" "FAILED (the comparison table has no rows)"
  else
    step_plain_verdict
  fi
  if [[ -s $STEPS_LOGS/$name.md ]]; then
    {
      echo "### $name ($*)"
      echo
      cat "$STEPS_LOGS/$name.md"
      echo
    } >> "$STEPS_OUT/tables.md"
  fi
}
# The first benchmark's images/s in a Google Benchmark JSON file (empty when absent).
images_per_second() {
  python3 -c 'import json,sys; print("%.1f" % [b for b in json.load(open(sys.argv[1]))["benchmarks"] if b.get("run_type","iteration")=="iteration"][0]["images/s"])' "$1" 2> /dev/null
}

if [[ $MODE == practice ]]; then
  # A benchmark that never ends: the deadline must stop it and the summary still come out.
  bench bench-practice 600 "$CUDA_TESTS" "[hang]" -w NoTests
else
  if [[ $MODE == gpu && -z $BLOCKED ]]; then
    steps_note "PyTorch: $(timeout 60 python3 -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())' 2>&1 | tail -1)"
  fi
  for det in 1 0; do
    gbench "train-step-deterministic-$det" 60 '^cuda/paper_model/train_step/' \
      env EWNET_BENCH_DETERMINISTIC=$det "$BENCH/ewnet_bench_train_step" --benchmark_min_time=2
  done
  on=$(images_per_second "$STEPS_LOGS/train-step-deterministic-1.json")
  off=$(images_per_second "$STEPS_LOGS/train-step-deterministic-0.json")
  if [[ -n $on && -n $off ]]; then
    steps_note "paper model training step, batch 64 at 224x224, FP32: $on images/s deterministic, $off non-deterministic ($(python3 -c "print('%+.1f%%' % (100 * ($off / $on - 1)))") for non-deterministic)"
  fi
  # The training step first: the targets are set on it (docs/benchmarks.md).
  compare train-step-vs-eager 90 --anchors eager --modules --networks --paper-rows train_step
  compare train-step-vs-compile 180 --anchors compile --modules --networks --paper-rows train_step
fi

sanitize racecheck 60 racecheck "$RACE_FILTER"
sanitize synccheck 45 synccheck "$RACE_FILTER"

if [[ $MODE != practice ]]; then
  compare modules-inference-vs-eager 120 --anchors eager --networks --paper-rows finetune_step inference
  gbench bench-layers 90 '^cuda/' "$BENCH/ewnet_bench_layers" --benchmark_min_time=0.05
  compare train-step-tf32-vs-eager 90 --tf32 --anchors eager --modules --networks --paper-rows train_step
  compare torchvision-vs-eager 150 --anchors eager --modules --paper-rows
fi

steps_finish
