#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with Clang (AddressSanitizer and
# UndefinedBehaviorSanitizer on) and runs each on its seed corpus for SECONDS (default 10; CI
# runs the default). New inputs a run finds go to BUILD/corpus/<target>, never into the seeds; a
# crash leaves its input as BUILD/crash-* and fails the script.
#   tools/fuzz.sh [SECONDS] [TARGET...]     e.g. tools/fuzz.sh 600 json
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(safetensors json architecture image png jpeg webp csv collect)
build=${EWNET_FUZZ_BUILD_DIR:-build-fuzz}
jobs=${EWNET_JOBS:-$(nproc)}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
  -DEWNET_WITH_CUDA=OFF -DEWNET_BUILD_TESTS=OFF -DEWNET_BUILD_EXAMPLES=OFF -DEWNET_BUILD_BENCHMARKS=OFF \
  -DEWNET_BUILD_FUZZERS=ON >/dev/null
cmake --build "$build" -j "$jobs" --target $(printf 'fuzz_%s ' "${targets[@]}")
root=$PWD
status=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t"
  log="$build/fuzz_$t.log"
  if (cd "$build" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "tests/fuzz/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2560 -timeout=20 -max_len=65536 \
      -print_final_stats=1 "corpus/$t" "$root/tests/fuzz/corpus/$t") >"$log" 2>&1; then
    echo "fuzz_$t: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') executions in ${seconds} s, no finding"
  else
    echo "fuzz_$t: FAILED (see $log)"
    grep -E "ERROR|SUMMARY|Test unit written|runtime error" "$log" | head -20
    status=1
  fi
done
exit $status
