#!/usr/bin/env bash
# Installs what ewnet needs to build, test and benchmark on Debian (12 or newer), from Debian's
# packages. The CUDA toolkit with cuDNN, when present, is expected under /usr/local/cuda.
set -euo pipefail
# libspng-dev, libjpeg62-turbo-dev, libwebp-dev: the bounded PNG, JPEG and WebP decoders;
# clang and libclang-rt-14-dev: the libFuzzer targets (tools/fuzz.sh); locales: the locale source the
# JSON test compiles a comma-decimal locale from.
packages=(cmake ninja-build g++ pkg-config catch2 libdnnl-dev libstb-dev libspng-dev libjpeg62-turbo-dev libwebp-dev libcurl4-openssl-dev libbenchmark-dev
  libonnx-dev libprotobuf-dev python3 python3-venv python3-torch python3-torchvision clang libclang-rt-14-dev locales)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
