#!/usr/bin/env bash
# GPU benchmarks and the PyTorch comparison, in one call (target: under 8 minutes), run only after
# tools/gpu-check.sh has passed on the same machine (it reuses build-gpu; on a fresh machine it
# unpacks and configures first):
#   - bench/layers.cpp's CUDA rows;
#   - the paper model's training step with deterministic mode on and off (its cost, docs/cuda.md);
#   - bench/pytorch_compare.py on CUDA: PyTorch eager and torch.compile, FP32 and TF32 (4 tables).
# Every step runs under its own timeout, cut to what is left of a 460-second budget
# (EWNET_BENCH_BUDGET); one that fails or times out is reported and the rest go on.
#
# Writes exactly two files into the output folder (first argument, else ./gpu-bench-out):
# gpu-bench-logs.tar.gz (logs, JSON, tables) and gpu-bench-summary.txt (statuses and every table,
# printed last).
set -uo pipefail
source "$(dirname "$0")/gpu-common.sh"
cd "$GPU_ROOT"
OUTDIR=${1:-$GPU_ROOT/gpu-bench-out}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/gpu-bench.XXXXXX")
SUMMARY=$OUTDIR/gpu-bench-summary.txt
rm -f "$SUMMARY" "$OUTDIR/gpu-bench-logs.tar.gz"
START=$SECONDS
JOBS=${JOBS:-16}
{
  echo "ewnet gpu-bench $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname)"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  echo "torch: $(python3 -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())' 2>&1 | tail -1)"
  printf '%-30s %-22s %7s\n' step status seconds
} > "$SUMMARY"

BUDGET=${EWNET_BENCH_BUDGET:-460}  # seconds for the whole script; a step gets what is left of it

# step NAME SECONDS COMMAND...: runs it under a timeout (at most what is left of the budget),
# output in NAME.log; skipped when under 15 seconds are left.
step() {
  local name=$1 secs=$2 t0=$SECONDS rc status left
  shift 2
  left=$((BUDGET - (SECONDS - START)))
  if ((left < 15)); then
    printf '%-30s %-22s %7d\n' "$name" "skipped (time budget)" 0 | tee -a "$SUMMARY"
    return 1
  fi
  ((secs > left)) && secs=$left
  echo "== $name: $*" | tee "$LOGS/$name.log"
  timeout --kill-after=10 "$secs" "$@" >> "$LOGS/$name.log" 2>&1
  rc=$?
  if ((rc == 0)); then status=ok; elif ((rc == 124 || rc == 137)); then status="timed out (${secs}s)"; else status="FAIL($rc)"; fi
  printf '%-30s %-22s %7d\n' "$name" "$status" $((SECONDS - t0)) | tee -a "$SUMMARY"
  return $rc
}
finish() {
  printf '%-30s %-22s %7d\n' total - $((SECONDS - START)) | tee -a "$SUMMARY"
  local t
  for t in "$LOGS"/*.md; do
    [[ -f $t ]] || continue
    printf '\n### %s\n' "$(basename "$t" .md)" >> "$SUMMARY"
    cat "$t" >> "$SUMMARY"
  done
  [[ -f $LOGS/deterministic.txt ]] && { echo; cat "$LOGS/deterministic.txt"; } >> "$SUMMARY"
  tar czf "$OUTDIR/gpu-bench-logs.tar.gz" -C "$LOGS" . && rm -rf "$LOGS"
  echo
  cat "$SUMMARY"
  exit 0
}

gpu_find_cudnn > "$LOGS/cudnn.log" 2>&1 || { cat "$LOGS/cudnn.log"; finish; }
gpu_env >> "$LOGS/cudnn.log"
if [[ ! -f $GPU_BUILD/CMakeCache.txt ]]; then
  step unpack-debs 60 gpu_unpack_debs || finish
  step configure 120 gpu_configure "$LOGS/configure.log" || finish
fi
BENCHES=(ewnet_bench_layers ewnet_bench_inception ewnet_bench_train_step)
step build 240 cmake --build "$GPU_BUILD" -j "$JOBS" --target "${BENCHES[@]}" || finish
BIN=$GPU_BUILD/bench

# Single layers on the GPU (FP32).
step bench-layers 45 "$BIN/ewnet_bench_layers" --benchmark_filter='^cuda/' --benchmark_min_time=0.1 \
  --benchmark_out="$LOGS/bench-layers.json" --benchmark_out_format=json

# What deterministic mode costs: the paper model's training step with it on (the default) and off.
for det in 1 0; do
  step "train-step-deterministic-$det" 40 env EWNET_BENCH_DETERMINISTIC=$det "$BIN/ewnet_bench_train_step" \
    --benchmark_filter='^cuda/paper_model/train_step$' --benchmark_min_time=2 \
    --benchmark_out="$LOGS/train-step-deterministic-$det.json" --benchmark_out_format=json
done
python3 - "$LOGS" > "$LOGS/deterministic.txt" 2>&1 << 'EOF'
import json, sys, os
logs = sys.argv[1]
ms = {}
for det in ("1", "0"):
    try:
        with open(os.path.join(logs, f"train-step-deterministic-{det}.json")) as f:
            b = [x for x in json.load(f)["benchmarks"] if x.get("run_type", "iteration") == "iteration"][0]
        ms[det] = b["real_time"]
    except Exception as e:  # a failed or timed-out run
        ms[det] = None
        print(f"deterministic={det}: no result ({e})")
if ms.get("1") and ms.get("0"):
    print(f"paper model training step (batch 64, 224x224, FP32): deterministic {ms['1']:.2f} ms, "
          f"non-deterministic {ms['0']:.2f} ms, cost of deterministic mode {100 * (ms['1'] / ms['0'] - 1):+.1f}%")
EOF

# ewnet against PyTorch on the same GPU: eager and torch.compile, FP32 and TF32.
CMP=(python3 bench/pytorch_compare.py --bin-dir "$BIN" --device cuda --min-time 1 --repeats 1)
step pytorch-fp32-eager 75 "${CMP[@]}" --out "$LOGS/pytorch-fp32-eager.md"
step pytorch-tf32-eager 75 "${CMP[@]}" --tf32 --out "$LOGS/pytorch-tf32-eager.md"
step pytorch-fp32-compile 100 "${CMP[@]}" --compile --out "$LOGS/pytorch-fp32-compile.md"
step pytorch-tf32-compile 100 "${CMP[@]}" --tf32 --compile --out "$LOGS/pytorch-tf32-compile.md"

finish
