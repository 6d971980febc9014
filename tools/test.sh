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
# ONNX Runtime and ONNX's checker for the export test, from PyPI, in a virtual environment in the
# build folder (the test fails in CI when they are missing).
python="$build/pyenv/bin/python"
[ -x "$python" ] || python3 -m venv "$build/pyenv"
"$python" -c "import onnx, onnxruntime, numpy, PIL" 2>/dev/null ||
  "$python" -m pip install -q "onnx==1.23.2" "onnxruntime==1.32.0" numpy pillow
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEWNET_WITH_CUDA=ON -DEWNET_BUILD_TESTS=ON \
  -DEWNET_BUILD_EXAMPLES=ON -DEWNET_BUILD_BENCHMARKS=ON -DEWNET_PYTHON="$(cd "$build" && pwd)/pyenv/bin/python"
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"
if [ "${EWNET_QUICK:-0}" != 1 ]; then
  tools/sanitize.sh
  tools/fuzz.sh "${EWNET_FUZZ_SECONDS:-10}"
fi
