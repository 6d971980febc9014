#!/usr/bin/env bash
# The test command: installs the dependencies, configures, builds everything (the CUDA backend
# too when CUDA and cuDNN are found) and runs every test through CTest. Without a GPU the CUDA
# tests report themselves as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
build=${EWNET_BUILD_DIR:-build}
jobs=${EWNET_JOBS:-$(nproc)}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEWNET_WITH_CUDA=ON -DEWNET_BUILD_TESTS=ON \
  -DEWNET_BUILD_EXAMPLES=ON -DEWNET_BUILD_BENCHMARKS=ON
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"
