#!/usr/bin/env bash
# The test command: installs the dependencies, configures, builds everything (the CUDA backend
# too when CUDA and cuDNN are found) and runs every test through CTest. Without a GPU the CUDA
# tests report themselves as skipped. Then the CPU tests again under AddressSanitizer and
# UndefinedBehaviorSanitizer (tools/sanitize.sh), and every fuzz target briefly on its corpus
# (tools/fuzz.sh); EWNET_QUICK=1 skips those two.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
build=${EWNET_BUILD_DIR:-build}
jobs=${EWNET_JOBS:-$(nproc)}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"
if [ "${EWNET_QUICK:-0}" != 1 ]; then
  tools/sanitize.sh
  tools/fuzz.sh "${EWNET_FUZZ_SECONDS:-10}"
fi
