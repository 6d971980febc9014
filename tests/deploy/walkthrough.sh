#!/usr/bin/env bash
# Runs docs/deployment.md's commands, as written there, and checks that the document shows no
# command this script does not run.
#   walkthrough.sh DOC BIN_DIRS PYTHON DATA WORK
# BIN_DIRS: the programs' folders, ':'-separated (put on PATH); PYTHON: the one with onnxruntime;
# DATA: ../shared/datasets/caltech101_handheld4. Exits 77 (skipped) when the data or the Python
# modules are missing, except in CI.
set -euo pipefail
doc=$1 bins=$2 python=$3 DATA=$4 work=$5
skip() { echo "walkthrough: $1"; [ -n "${CI:-}" ] && exit 1; exit 77; }
[ -d "$DATA" ] || skip "$DATA is missing (the shared data sets beside the checkout)"
"$python" -c "import onnxruntime, PIL, numpy" 2>/dev/null || skip "$python lacks onnxruntime, pillow or numpy"
script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
example_dir=$(cd "$(dirname "$0")/../../examples/deploy-example" && pwd)

# Every command line of the document's sh blocks must be one this script runs.
missing=0
while IFS= read -r line; do
  grep -qxF "  $line" "$script" || { echo "walkthrough: docs command not run by the test: $line"; missing=1; }
done < <(awk '/^```sh/{on=1; next} /^```/{on=0} on && NF && !/^#/' "$doc")
[ "$missing" -eq 0 ] || exit 1

rm -rf "$work" && mkdir -p "$work" && cd "$work"
export PATH="$bins:$PATH"
cp "$example_dir/onnx_classify.py" .
python3() { "$python" "$@"; }  # the document says python3: the virtual environment's
run() {
  echo "+ $1"
  eval "$1"
}
while IFS= read -r cmd; do run "$cmd"; done <<'COMMANDS'
  ewnet-train "$DATA" --out run --epochs 2 --image-size 32 --batch 32 --split-file "$DATA/splits.csv" --no-progress
  ewnet-calibrate run/best.safetensors "$DATA" --split-file "$DATA/splits.csv" --rate 0.05
  ewnet-export run/best.safetensors model.onnx
  python3 onnx_classify.py model.onnx "$DATA/stapler/image_0001.jpg" "$DATA/wrench/image_0001.jpg"
  classify_one run/best.safetensors "$DATA/stapler/image_0001.jpg" "$DATA/wrench/image_0001.jpg"
  ewnet-classify run/best.safetensors "$DATA/stapler" --reject --csv stapler.csv --no-progress
  ewnet-classify run/best.safetensors "$DATA/stapler" --explain heatmaps --top 1 --no-progress
COMMANDS

# What they should have left behind.
test -s model.onnx
head -1 stapler.csv | grep -qx "file,class,probability,top_k,rejected"
[ "$(ls heatmaps/*.gradcam.png | wc -l)" -eq "$(ls "$DATA/stapler" | wc -l)" ]
echo "walkthrough: all commands of $(basename "$doc") ran"
