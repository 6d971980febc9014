#!/usr/bin/env bash
# The CPU test suite built with AddressSanitizer and UndefinedBehaviorSanitizer (GCC, -O1): the
# library's tests, the data tests and ewnet-collect's, without CUDA, benchmarks or the training
# programs, so that it stays a few minutes on 2 cores. Any report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${EWNET_ASAN_BUILD_DIR:-build-asan}
jobs=${EWNET_JOBS:-$(nproc)}
flags="-O1 -g1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DEWNET_WITH_CUDA=OFF -DEWNET_BUILD_EXAMPLES=OFF \
  -DEWNET_BUILD_BENCHMARKS=OFF -DCMAKE_CXX_FLAGS_DEBUG="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$build" -j "$jobs" --target ewnet_core_tests ewnet_data_tests ewnet_collect_tests
# LeakSanitizer is on; one CPU-engine thread (oneDNN and ewnet's pool) keeps the instrumented run quick on 2 cores.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMP_NUM_THREADS=1
ctest --test-dir "$build" --output-on-failure -j "$jobs" -R '^(ewnet_core_tests|ewnet_data_tests):|^collect\.'
