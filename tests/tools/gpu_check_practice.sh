#!/usr/bin/env bash
# Practice of tools/gpu-check.sh without a GPU (a CTest test, about 30 s): its device steps run
# against a fake nvidia-smi, a test area that hangs, an area whose tag matches no test case, a
# compute-sanitizer that reports an error and then hangs, and a benchmark that never ends. Each
# fault must be reported as a failure (or, for what the deadline stops, as incomplete), never as
# passed; the hung area must cost its per-test limit, not the run; the run must end by its
# deadline with a non-zero status, at most 8 files in its output folder and its summary printed
# last.
#   gpu_check_practice.sh REPO PRACTICE_PROGRAM WORK_DIR
set -uo pipefail
repo=$1 program=$2 work=$3
rm -rf "$work"
mkdir -p "$work/bin" "$work/out"

cat > "$work/bin/nvidia-smi" << 'EOF'
#!/bin/sh
# A GPU that answers.
case "$*" in
  *--query-gpu*) echo "Practice GPU (fake), 000.00, 1024 MiB" ;;
  *) echo "NVIDIA-SMI practice: one fake GPU" ;;
esac
EOF
cat > "$work/bin/compute-sanitizer" << 'EOF'
#!/bin/sh
# A sanitizer that finds an error, then hangs before its summary.
echo "========= COMPUTE-SANITIZER"
echo "========= Invalid __global__ write of size 4 bytes"
echo "=========     at practice_kernel(float *)+0x70"
exec sleep 600
EOF
chmod +x "$work/bin/nvidia-smi" "$work/bin/compute-sanitizer"

budget=30
start=$SECONDS
PATH=$work/bin:$PATH EWNET_GPU_BUILD=$work/build EWNET_GPU_PRACTICE_PROGRAM=$program EWNET_GPU_TEST_TIMEOUT=3 \
  EWNET_GPU_SANITIZER_CAP=4 "$repo/tools/gpu-check.sh" --practice --budget $budget "$work/out" > "$work/stdout.txt" 2>&1
rc=$?
elapsed=$((SECONDS - start))
summary=$work/out/summary.txt

failures=0
fail() {
  echo "PRACTICE FAILED: $*"
  failures=$((failures + 1))
}
# verdict_of STEP: the verdict column of STEP's row in the summary.
verdict_of() { sed -n "s/^$1  *[0-9-]*  //p" "$summary" | head -1; }
expect() {  # expect STEP PATTERN: STEP's verdict matches PATTERN (an extended regular expression)
  local v
  v=$(verdict_of "$1")
  [[ $v =~ $2 ]] || fail "$1: verdict '$v' does not match '$2'"
}

[[ -f $summary ]] || fail "no summary.txt in the output folder"
((rc == 1)) || fail "exit status $rc, expected 1 (a step failed)"
((elapsed <= budget + 15)) || fail "the run took $elapsed s: the deadline ($budget s) did not hold"
expect nvidia-smi '^passed$'
expect configure '^passed$'
expect test-limits '^passed \(3 tests labelled cuda\)$'
# The hung area timed out at its own 3-s limit and the one matching nothing failed; the one that
# passes is not among the failures.
expect ctest-cuda '^FAILED \(2 of 3 areas failed, timed out or did not run: .*practice:hang \(Timeout\)'
expect ctest-cuda 'practice:missing \(Failed\)'
[[ $(verdict_of ctest-cuda) != *practice:ok* ]] || fail "ctest-cuda lists practice:ok as a failure"
expect memcheck '^FAILED \(memcheck reported an error, then timed out: ========= Invalid __global__ write'
expect bench-practice '^incomplete \(timed out after [0-9]+ s, cut by the deadline\)'
expect racecheck '^incomplete \(not started: the deadline came first\)'
expect total '^FAILED'

# The output folder: few files, the logs of every finished step, and the summary printed last.
files=$(find "$work/out" -type f | wc -l)
((files <= 8)) || fail "$files files in the output folder (a GPU machine returns at most 8)"
tar tzf "$work/out/logs.tar.gz" > "$work/logs.txt" 2>&1 || fail "logs.tar.gz does not list"
for log in ctest-cuda memcheck test-limits; do
  grep -q -- "-$log.log" "$work/logs.txt" || fail "logs.tar.gz has no $log log"
done
if [[ -f $summary ]]; then
  n=$(wc -l < "$summary")
  tail -n "$n" "$work/stdout.txt" | cmp -s - "$summary" || fail "the summary is not what the run printed last"
fi

if ((failures)); then
  echo "---- summary.txt"
  cat "$summary" 2> /dev/null
  echo "---- the run's output"
  cat "$work/stdout.txt"
  exit 1
fi
echo "practice passed in $elapsed s: every planted fault was reported as a failure"
cat "$summary"
