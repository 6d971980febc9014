#!/usr/bin/env bash
# Downloads the Debian packages a GPU machine without a package registry needs (Catch2, stb,
# Google Benchmark, OpenBLAS) into .deps/deb, to carry with the checkout. tools/gpu-check.sh
# unpacks them into .deps/root there (never into /).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.deps/' .git/info/exclude 2>/dev/null || echo /.deps/ >> .git/info/exclude
mkdir -p .deps/deb
cd .deps/deb
apt-get download catch2 libstb-dev libstb0 libbenchmark-dev libbenchmark1debian \
  libopenblas-dev libopenblas0-pthread libopenblas0 libopenblas-pthread-dev
ls -1 *.deb
