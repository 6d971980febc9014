#!/usr/bin/env python3
"""ONNX Runtime against ewnet: inference of the paper's model on the CPU, same batch, same threads.

Runs bench's ewnet_bench_inference (which times ewnet and writes the model as ONNX), then times
ONNX Runtime on that file with the same input size, batch and thread count; alternates the two
`--repeats` times and keeps each side's best, so that load from other processes penalises neither
side alone. Prints a Markdown table row per setting.

  OPENBLAS_NUM_THREADS is set for ewnet; ONNX Runtime gets intra_op_num_threads = inter = threads.
  python3 bench/onnxruntime_compare.py --bin build/bench/ewnet_bench_inference --threads 2
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort


def ewnet_ms(binary, size, batch, passes, path, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run([binary, str(size), str(batch), str(passes), path], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["best_ms"]


def ort_ms(path, size, batch, passes, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = (np.random.default_rng(2).random((batch, 3, size, size)) * 255).astype(np.float32)
    sess.run(["probabilities"], {"image": x})
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        sess.run(["probabilities"], {"image": x})
        best = min(best, (time.perf_counter() - t0) * 1000)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--settings", default="64x1,64x32,224x1,224x8", help="SIZExBATCH,...")
    a = ap.parse_args()
    print(f"| input | batch | threads | ewnet ms/batch | ONNX Runtime {ort.__version__} ms/batch | ewnet / ORT time |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for setting in a.settings.split(","):
            size, batch = (int(v) for v in setting.split("x"))
            path = os.path.join(tmp, f"paper_{size}.onnx")
            e = o = float("inf")
            for _ in range(a.repeats):
                e = min(e, ewnet_ms(a.bin, size, batch, a.passes, path, a.threads))
                o = min(o, ort_ms(path, size, batch, a.passes, a.threads))
            print(f"| {size}x{size} | {batch} | {a.threads} | {e:.1f} | {o:.1f} | {e / o:.2f} |", flush=True)


if __name__ == "__main__":
    main()
