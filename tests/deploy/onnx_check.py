#!/usr/bin/env python3
"""Checks ewnet's ONNX export with ONNX's own checker and ONNX Runtime.

usage: onnx_check.py CASES_BIN DIR   (runs CASES_BIN DIR first, then checks every DIR/<case>)

For each case: onnx.checker (full_check, with shape inference) accepts model.onnx; its opset is 13;
the class names are in the metadata; and ONNX Runtime's CPU probabilities and logits on the same
images match ewnet's CPU inference within the stated tolerance (the case that keeps ONNX's LRN for
an even window, which ONNX Runtime refuses, runs in ONNX's reference evaluator instead, so ONNX's
window placement is checked against ewnet's):
  probabilities: |ort - ewnet| <= 1e-5 (absolute)
  logits:        |ort - ewnet| <= 1e-4 * max(1, |ewnet|)
Exits 77 (reported as skipped) when onnx or onnxruntime cannot be imported, unless the variable CI
is set: in CI a missing runtime is a failure.
"""
import json
import os
import subprocess
import sys

PROB_TOL = 1e-5
LOGIT_TOL = 1e-4


def spec_lrn(x, size, alpha, beta, bias):
    """LRN exactly as ONNX's operator documentation states it (onnx.defs.get_schema("LRN").doc):
    square_sum over max(0, c - floor((size-1)/2)) <= i <= min(C-1, c + ceil((size-1)/2)), then
    y = x / (bias + alpha / size * square_sum) ^ beta. (onnx.reference's LRN, 1.23.2, loops its
    window over the batch axis instead of the channels, so it cannot serve.)"""
    import math

    import numpy as np
    x = x.astype(np.float64)
    channels = x.shape[1]
    square_sum = np.zeros_like(x)
    for c in range(channels):
        lo = max(0, c - math.floor((size - 1) / 2))
        hi = min(channels - 1, c + math.ceil((size - 1) / 2))
        square_sum[:, c] = np.sum(x[:, lo:hi + 1] ** 2, axis=1)
    return x / (bias + alpha / size * square_sum) ** beta


def check_lrn_window(d, meta):
    """ewnet's cross-channel normalization against ONNX's LRN as documented, odd and even windows.
    The LRN node itself must pass onnx.checker; ONNX Runtime runs the odd windows too (it refuses
    even ones, which is why ewnet's export writes those in elementary operators)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper
    x = np.fromfile(os.path.join(d, "input.f32"), dtype=np.float32).reshape(meta["input_shape"])
    ok = True
    for n in meta["windows"]:
        want = np.fromfile(os.path.join(d, f"output_{n}.f32"), dtype=np.float32).reshape(x.shape)
        node = helper.make_node("LRN", ["x"], ["y"], size=n, alpha=meta["alpha"], beta=meta["beta"], bias=meta["k"])
        graph = helper.make_graph([node], "lrn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        onnx.checker.check_model(model, full_check=True)
        d_spec = float(np.max(np.abs(spec_lrn(x, n, meta["alpha"], meta["beta"], meta["k"]) - want)))
        line = f"lrn window {n}: ONNX's documented window vs ewnet max |dy| = {d_spec:.2e}"
        good = d_spec <= 1e-5
        if n % 2 == 1:
            got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
                ["y"], {"x": x})[0]
            d_ort = float(np.max(np.abs(got - want)))
            line += f", ONNX Runtime vs ewnet {d_ort:.2e}"
            good = good and d_ort <= 1e-5
        print(f"{line} (tolerance 1e-05) -> {'ok' if good else 'MISMATCH'}")
        ok = ok and good
    return ok


def main():
    try:
        import numpy as np
        import onnx
        import onnx.checker
        import onnxruntime as ort
    except ImportError as e:
        print(f"onnx_check: cannot import {e.name}: tools/test.sh installs onnx and onnxruntime into a "
              f"virtual environment under the build folder")
        return 1 if os.environ.get("CI") else 77
    cases_bin, root = sys.argv[1], sys.argv[2]
    subprocess.run([cases_bin, root], check=True)
    failures = 0
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        meta = json.load(open(os.path.join(d, "case.json")))
        if meta["kind"] == "lrn":
            failures += not check_lrn_window(d, meta)
            continue
        model = onnx.load(os.path.join(d, "model.onnx"))
        onnx.checker.check_model(model, full_check=True)
        opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
        assert opset == [13], f"{name}: opset {opset}"
        props = {p.key: p.value for p in model.metadata_props}
        classes = json.loads(props["ewnet.classes"])
        assert len(classes) == meta["classes"], f"{name}: class names {classes}"
        assert not any(n.op_type == "Dropout" for n in model.graph.node), f"{name}: dropout left in the graph"
        x = np.fromfile(os.path.join(d, "input.f32"), dtype=np.float32).reshape(meta["input_shape"])
        want_p = np.fromfile(os.path.join(d, "probabilities.f32"), dtype=np.float32).reshape(x.shape[0], -1)
        want_z = np.fromfile(os.path.join(d, "logits.f32"), dtype=np.float32).reshape(x.shape[0], -1)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(os.path.join(d, "model.onnx"), so, providers=["CPUExecutionProvider"])
        got_p, got_z = sess.run(["probabilities", "logits"], {"image": x})
        runtime = f"ONNX Runtime {ort.__version__}"
        dp = float(np.max(np.abs(got_p - want_p)))
        dz = float(np.max(np.abs(got_z - want_z) / np.maximum(1.0, np.abs(want_z))))
        ok = dp <= PROB_TOL and dz <= LOGIT_TOL and np.array_equal(got_p.argmax(1), want_p.argmax(1))
        print(f"{name}: {len(model.graph.node)} nodes, onnx.checker ok, {runtime}: "
              f"max |dp| = {dp:.2e} (tolerance {PROB_TOL:g}), max relative |dz| = {dz:.2e} "
              f"(tolerance {LOGIT_TOL:g}) -> {'ok' if ok else 'MISMATCH'}")
        failures += not ok
    if len(os.listdir(root)) < 2:
        print("onnx_check: expected at least two cases")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
