#!/usr/bin/env python3
"""Side-by-side comparison of ewnet with PyTorch (eager and torch.compile) and ONNX Runtime.

Builds in PyTorch exactly what the ewnet benchmarks build (include/ewnet/models/paper_model.hpp,
include/ewnet/blocks/inception.hpp, bench/inception.cpp):
  - inception modules 3a, 3b, 4a with their residual projection, followed by the benchmark's small
    head (global average pooling, a 10-way linear layer, cross-entropy), forward plus backward;
  - the paper's model (GoogLeNet's stem with local response normalisation, modules 3a, 3b, 4a each
    with a residual projection, global average pooling, dropout 0.4, linear, cross-entropy): a full
    training step (forward, backward, SGD with momentum 0.9 and L2 1e-4 on the weights), a
    fine-tuning step with the base frozen (the base runs forward every step on both sides), and
    inference (the forward pass in inference mode; ONNX Runtime runs the model exported from PyTorch);
  - torchvision's ResNet-18, GoogLeNet and Inception-v3 (--networks; ewnet's include/ewnet/models/
    builds them layer for layer): a training step and inference, at the same batch and size, when the
    measuring Python has torchvision;
  - batch-1 latency (--latency, on by default on the CPU): one 224x224 image through the paper model
    and ResNet-18, ewnet's Classifier (bench/latency.cpp: the RGB buffer in, the ranked classes out)
    against PyTorch eager, torch.compile, ONNX Runtime on PyTorch's export and ONNX Runtime on
    ewnet's own export of the very model ewnet timed (the program writes it).
--precision bf16 runs both sides in bfloat16: ewnet's matrix products in bfloat16 with float32
master weights (EWNET_BENCH_PRECISION=bf16 for its programs), PyTorch under
torch.autocast("cpu", dtype=torch.bfloat16), eager and compiled (ONNX Runtime is left out: its CPU
provider has no bfloat16 convolutions).
It runs the ewnet benchmark programs (--benchmark_format=json), and each anchor in a fresh Python
process of its own (the Python given by --python, e.g. a virtual environment with the current
PyTorch from PyPI; --extra-python adds a column for another one, e.g. Debian's python3-torch).
Every side is measured --repeats times, alternating, and the best rate of each is kept, so that a
burst of load from other processes penalises no side alone.

The table gives ewnet's images/s, each anchor's, the ratio to the best anchor that applies (eager
and torch.compile for the training rows; those and ONNX Runtime for inference), the target and
whether it is met, and ewnet's FLOP/s as a fraction of the machine's GEMM ceilings (ewnet's
reference/gemm_2048 and reference/gemm_2048_bf16 benchmarks: 2048-cube products in float32 and in
bfloat16 with float32 accumulation, on the same threads; the bf16 one where the processor has it).

--clock cpu (with --threads 1) times every side by its CPU time instead of the wall clock: on a
machine busy with other work, what each side would take alone (a thread that waits for the core
is not charged).

  python3 bench/pytorch_compare.py --bin-dir build/bench --python venv/bin/python --threads 2 --out table.md
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def _reexec_under_requested_python():
    """--python PATH: run this whole script under that interpreter (before importing torch)."""
    if "--python" not in sys.argv:
        return
    i = sys.argv.index("--python")
    if i + 1 >= len(sys.argv):
        sys.exit("pytorch_compare: --python needs a path")
    python = sys.argv[i + 1]
    # Compare the paths as given: a virtual environment's python is a link to the same binary.
    if os.path.abspath(python) == os.path.abspath(sys.executable) or os.environ.get("EWNET_COMPARE_CHILD"):
        return
    env = dict(os.environ, EWNET_COMPARE_CHILD="1")
    os.execve(python, [python, os.path.abspath(__file__)] + sys.argv[1:], env)


_reexec_under_requested_python()

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# ---- the models, layer for layer as in ewnet --------------------------------------------------

MODULES = {  # name: (input channels, size at 224x224 input, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
    "3a": (192, 28, 64, 96, 128, 16, 32, 32),
    "3b": (256, 28, 128, 128, 192, 32, 96, 64),
    "4a": (480, 14, 192, 96, 208, 16, 48, 64),
}


def conv(c_in, c_out, k, stride=1):
    # ewnet's 'same' padding for odd kernels; bias on, as Conv2dOptions defaults.
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=(k - 1) // 2, bias=True)


class Inception(nn.Module):
    def __init__(self, c_in, f1, r3, f3, r5, f5, fp, residual):
        super().__init__()
        self.b1 = conv(c_in, f1, 1)
        self.r3, self.b3 = conv(c_in, r3, 1), conv(r3, f3, 3)
        self.r5, self.b5 = conv(c_in, r5, 1), conv(r5, f5, 5)
        self.pool, self.bp = nn.MaxPool2d(3, 1, 1), conv(c_in, fp, 1)
        out = f1 + f3 + f5 + fp
        self.residual = residual
        self.shortcut = conv(c_in, out, 1) if residual and c_in != out else None

    def forward(self, x):
        y = torch.cat([F.relu(self.b1(x)),
                       F.relu(self.b3(F.relu(self.r3(x)))),
                       F.relu(self.b5(F.relu(self.r5(x)))),
                       F.relu(self.bp(self.pool(x)))], 1)
        if not self.residual:
            return y
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class ModuleWithHead(nn.Module):
    """bench/inception.cpp's model: one module, global average pooling, 10-way linear."""

    def __init__(self, name, residual=True):
        super().__init__()
        c_in, _, *f = MODULES[name]
        self.block = Inception(c_in, *f, residual)
        self.fc = nn.Linear(sum([f[0], f[2], f[4], f[5]]), 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.block(x), 1), 1))


class PaperModel(nn.Module):
    def __init__(self, classes=8):
        super().__init__()
        lrn = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)  # GoogLeNet's, as paper_model.hpp sets
        self.base = nn.Sequential(
            conv(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.LocalResponseNorm(**lrn),
            conv(64, 64, 1), nn.ReLU(), conv(64, 192, 3), nn.ReLU(), nn.LocalResponseNorm(**lrn),
            nn.MaxPool2d(3, 2, 1),
            Inception(192, *MODULES["3a"][2:], True),
            Inception(256, *MODULES["3b"][2:], True),
            Inception(480, *MODULES["4a"][2:], True))
        self.drop = nn.Dropout(0.4)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        return self.fc(self.drop(torch.flatten(F.adaptive_avg_pool2d(self.base(x), 1), 1)))


def sgdm(model, lr=1e-3):
    """SGD with momentum 0.9 and L2 1e-4 on weights, none on biases (ewnet's BiasL2Factor 0)."""
    train = [p for p in model.parameters() if p.requires_grad]
    weights = [p for p in train if p.dim() > 1]
    biases = [p for p in train if p.dim() <= 1]
    return torch.optim.SGD([{"params": weights, "weight_decay": 1e-4},
                            {"params": biases, "weight_decay": 0.0}], lr=lr, momentum=0.9)


# ---- timing ---------------------------------------------------------------------------------


# The clock every side is timed by: wall clock, or (--clock cpu, one thread) the process's CPU time,
# which a busy machine's other processes do not inflate.
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCK["wall"]


def time_steps(step, device, min_time, warmup=3):
    """Mean seconds per call of step() over at least min_time seconds and 3 calls, after warm-up."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    n, t0 = 0, clock()
    while True:
        step()
        n += 1
        sync()
        elapsed = clock() - t0
        if n >= 3 and elapsed >= min_time:
            return elapsed / n


def shapes(device):
    return (64, 224) if device == "cuda" else (32, 112)


LATENCY_SIZE = 224


def autocast(args):
    """The precision context of the PyTorch side: bfloat16 autocast, or nothing."""
    import contextlib
    if args.precision == "bf16":
        return torch.autocast(args.device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def latency_models():
    """The batch-1 latency models, keyed like ewnet's bench/latency.cpp."""
    out = {"paper_model": lambda: PaperModel()}
    try:
        import torchvision
        out["resnet18"] = lambda: torchvision.models.resnet18(num_classes=8)
    except ImportError:
        pass
    return out


def latency_torch_rates(args, compiled):
    """images/s (1 / latency) of one 224x224 image through each latency model, eager or compiled."""
    out = {}
    for name, make in latency_models().items():
        torch.manual_seed(1)
        model = make().eval()
        if compiled:
            model = torch.compile(model)
        x = torch.rand(1, 3, LATENCY_SIZE, LATENCY_SIZE)

        def infer():
            with torch.inference_mode(), autocast(args):
                model(x)

        out[f"latency/{name}"] = 1.0 / time_steps(infer, "cpu", args.min_time)
    return out


def ort_session(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def torch_export(model, x, path):
    kwargs = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
    torch.onnx.export(model, (x,), path, opset_version=17, input_names=["x"], output_names=["y"], **kwargs)


def latency_ort_rates(args, ewnet_export):
    """images/s (1 / latency) of ONNX Runtime on one image: on PyTorch's export of the latency models,
    or on ewnet's own export of the model ewnet timed (written by bench/latency.cpp)."""
    out = {}
    x = torch.rand(1, 3, LATENCY_SIZE, LATENCY_SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in latency_models().items():
            if ewnet_export:
                path = os.path.join(args.ewnet_onnx_dir, f"{name}.onnx")
                if not os.path.exists(path):
                    continue
            else:
                torch.manual_seed(1)
                path = os.path.join(tmp, f"{name}.onnx")
                torch_export(make().eval(), x, path)
            session = ort_session(path, args.threads)
            feed = {session.get_inputs()[0].name: x.numpy()}
            out[f"latency/{name}"] = 1.0 / time_steps(lambda: session.run(None, feed), "cpu", args.min_time)
    return out


def torchvision_constructors():
    """torchvision's networks as ewnet's include/ewnet/models/ builds them (8 classes, no auxiliary heads)."""
    import torchvision
    return {"resnet18": lambda: torchvision.models.resnet18(num_classes=8),
            "googlenet": lambda: torchvision.models.googlenet(num_classes=8, aux_logits=False, init_weights=True),
            "inception-v3": lambda: torchvision.models.inception_v3(num_classes=8, aux_logits=False,
                                                                    init_weights=True)}


def torch_rates(args, compiled):
    """images/s of each PyTorch case (eager or torch.compile), keyed like the ewnet benchmarks."""
    dev = args.device
    batch, size = shapes(dev)
    gen = torch.Generator().manual_seed(1)
    out = {}

    def prepare(model):
        model = model.to(dev)
        return torch.compile(model) if compiled else model

    def batch_of_images():
        x = torch.rand(batch, 3, size, size, generator=gen).to(dev) * 2 - 1
        return x, (torch.arange(batch) % 8).to(dev)

    def step_rate(model, opt, x, t):
        """images/s of training steps (forward, loss, backward, the SGDM update) of `model` in training mode."""
        model.train()

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast(args):
                loss = F.cross_entropy(model(x), t)
            loss.backward()
            opt.step()

        return batch / time_steps(step, dev, args.min_time)

    def inference_rate(model, x):
        """images/s of forward passes of `model` in inference mode."""
        model.eval()

        def infer():
            with torch.inference_mode(), autocast(args):
                model(x)

        return batch / time_steps(infer, dev, args.min_time)

    for name in args.modules:
        c_in, s = MODULES[name][0], MODULES[name][1]
        model = prepare(ModuleWithHead(name))
        x = torch.rand(batch, c_in, s, s, generator=gen).to(dev) * 2 - 1
        t = (torch.arange(batch) % 10).to(dev)

        def step():
            model.zero_grad(set_to_none=True)
            with autocast(args):
                loss = F.cross_entropy(model(x), t)
            loss.backward()

        out[f"inception_{name}_residual/forward_backward"] = batch / time_steps(step, dev, args.min_time)

    for finetune in (False, True):
        if ("finetune_step" if finetune else "train_step") not in args.paper_rows:
            continue
        torch.manual_seed(1)
        model = PaperModel().to(dev)
        if finetune:
            for p in model.base.parameters():
                p.requires_grad_(False)
        opt = sgdm(model)
        x, t = batch_of_images()
        key = "paper_model/finetune_step" if finetune else "paper_model/train_step"
        out[key] = step_rate(prepare(model), opt, x, t)

    if "inference" in args.paper_rows:
        torch.manual_seed(1)
        out["paper_model/inference"] = inference_rate(prepare(PaperModel().eval()), batch_of_images()[0])

    try:
        constructors = torchvision_constructors()
    except ImportError:
        return out
    for net in args.networks:
        torch.manual_seed(1)
        model = constructors[net]().to(dev)
        opt = sgdm(model)
        model = prepare(model)
        x, t = batch_of_images()
        out[f"torchvision_{net}/train_step"] = step_rate(model, opt, x, t)
        out[f"torchvision_{net}/inference"] = inference_rate(model, x)
    return out


def torch_all_rates(args, compiled):
    out = torch_rates(args, compiled)
    if args.latency:
        out.update(latency_torch_rates(args, compiled))
    return out


def onnxruntime_rates(args):
    """images/s of the paper's model and the torchvision networks (inference), exported from PyTorch
    (opset 17) and run by ONNX Runtime."""
    import onnxruntime as ort
    batch, size = shapes(args.device)
    x = torch.rand(batch, 3, size, size)
    models = {"paper_model": PaperModel} if "inference" in args.paper_rows else {}
    try:
        models.update({f"torchvision_{n}": make for n, make in torchvision_constructors().items()
                       if n in args.networks})
    except ImportError:
        pass
    out = {}
    for key, make in models.items():
        torch.manual_seed(1)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.onnx")
            torch_export(make().eval(), x, path)
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            providers = ["CUDAExecutionProvider"] if args.device == "cuda" else ["CPUExecutionProvider"]
            session = ort.InferenceSession(path, so, providers=providers)
        feed = {session.get_inputs()[0].name: x.numpy()}
        out[f"{key}/inference"] = batch / time_steps(lambda: session.run(None, feed), "cpu", args.min_time)
    if args.latency:
        out.update(latency_ort_rates(args, False))
    return out


def worker(args):
    """One anchor, measured in this process; prints its rates as JSON."""
    global clock
    clock = CLOCK[args.clock]
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = True
    if args.worker == "eager":
        rates = torch_all_rates(args, False)
    elif args.worker == "compile":
        rates = torch_all_rates(args, True)
    elif args.worker == "onnxruntime":
        rates = onnxruntime_rates(args)
    else:
        rates = latency_ort_rates(args, True)
    print(json.dumps({"rates": rates, "version": anchor_version(args.worker, args)}))


def anchor_version(kind, args):
    if kind in ("onnxruntime", "ort_ewnet"):
        import onnxruntime
        return f"ONNX Runtime {onnxruntime.__version__}" + (" on ewnet's export" if kind == "ort_ewnet" else "")
    precision = " bf16 autocast" if args.precision == "bf16" else ""
    return f"PyTorch {torch.__version__} {'torch.compile' if kind == 'compile' else 'eager'}{precision}"


def run_worker(args, python, kind):
    cmd = [python, os.path.abspath(__file__), "--worker", kind, "--device", args.device, "--threads",
           str(args.threads), "--min-time", str(args.min_time), "--precision", args.precision, "--clock", args.clock,
           "--modules"] + args.modules + ["--networks"] + args.networks + ["--paper-rows"] + args.paper_rows
    if args.tf32:
        cmd.append("--tf32")
    if not args.latency:
        cmd.append("--no-latency")
    if args.ewnet_onnx_dir:
        cmd += ["--ewnet-onnx-dir", args.ewnet_onnx_dir]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), EWNET_COMPARE_CHILD="1")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"pytorch_compare: the {kind} measurement failed under {python}:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def ewnet_rates(args):
    """images/s and FLOP/s of the ewnet benchmarks, and the GEMM ceiling, from their JSON output."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), EWNET_BENCH_PRECISION=args.precision)
    if args.tf32:
        env["EWNET_BENCH_TF32"] = "1"
    if args.ewnet_onnx_dir:
        env["EWNET_BENCH_ONNX_DIR"] = args.ewnet_onnx_dir
    d = args.device
    rows = [f"paper_model/({'|'.join(args.paper_rows)})"] if args.paper_rows else []
    if args.networks:
        rows.append(f"torchvision_({'|'.join(args.networks)})/(train_step|inference)")
    patterns = {"ewnet_bench_layers": f"{d}/reference/gemm_2048"}
    if args.modules:
        patterns["ewnet_bench_inception"] = f"{d}/inception_({'|'.join(args.modules)})_residual/forward_backward"
    if rows:
        patterns["ewnet_bench_train_step"] = f"{d}/({'|'.join(rows)})/"
    if args.latency:
        patterns["ewnet_bench_latency"] = f"{d}/latency/"
    out, flops = {}, {}
    for prog, pattern in patterns.items():
        path = os.path.join(args.bin_dir, prog)
        if not os.path.exists(path):
            continue  # a program not built here (the latency one needs libonnx-dev for its export)
        res = subprocess.run([path, f"--benchmark_filter={pattern}", "--benchmark_format=json",
                              f"--benchmark_min_time={args.min_time}"],
                             env=env, check=True, capture_output=True, text=True)
        report = json.loads(res.stdout)
        for b in report["benchmarks"]:
            name = b["name"].split("/", 1)[1].rsplit("/manual_time", 1)[0]
            # The rates are over the manual (wall-clock) time; --clock cpu rescales them to the CPU
            # time of the benchmark's thread, all the work there is with one thread.
            scale = b["real_time"] / b["cpu_time"] if args.clock == "cpu" else 1.0
            if "images/s" in b:
                out[name] = b["images/s"] * scale
            if "FLOP/s" in b:
                flops[name] = b["FLOP/s"] * scale
        context = report.get("context", {})
    return out, flops, context


# ---- the table ------------------------------------------------------------------------------

ROWS = [("inception_{m}_residual/forward_backward", "inception {m} + residual, fwd+bwd", ("eager", "compile")),
        ("paper_model/train_step", "paper model, training step", ("eager", "compile")),
        ("paper_model/finetune_step", "paper model, fine-tuning step (base frozen)", ("eager", "compile")),
        ("paper_model/inference", "paper model, inference", ("eager", "compile", "onnxruntime")),
        ("torchvision_{n}/train_step", "{n}, training step", ("eager", "compile")),
        ("torchvision_{n}/inference", "{n}, inference", ("eager", "compile", "onnxruntime")),
        ("latency/paper_model", "paper model, one 224x224 image (1 / latency)",
         ("eager", "compile", "onnxruntime", "ort_ewnet")),
        ("latency/resnet18", "resnet18, one 224x224 image (1 / latency)", ("eager", "compile", "onnxruntime", "ort_ewnet"))]

ANCHORS = ("eager", "compile", "onnxruntime", "ort_ewnet")


# The targets of docs/benchmarks.md: on the CPU 1.2x the best anchor that applies; on a GPU, for
# the training rows, 2x PyTorch eager and 1.2x torch.compile (each that was measured).
GPU_TRAINING_TARGETS = {"eager": 2.0, "compile": 1.2}
# The paper's whole source training: 1,200 images for 320 epochs, in under 60 s on a GPU.
SOURCE_TRAINING_IMAGES, SOURCE_TRAINING_TARGET_S = 1200 * 320, 60.0


def gpu_target(key, ew_rate, anchors):
    """(target text, result) of a GPU training row, or None for rows without a GPU target."""
    if not key.endswith("train_step") and not key.endswith("forward_backward"):
        return None
    parts, met = [], True
    for kind, factor in GPU_TRAINING_TARGETS.items():
        v = anchors.get(kind, {}).get(key)
        if v:
            parts.append(f">= {factor:.1f}x {kind}")
            met = met and ew_rate >= factor * v
    return (", ".join(parts), "met" if met else "missed") if parts else None


def build_table(args, ew, flops, anchors, versions, extra):
    cols = [k for k in ANCHORS if k in anchors]
    head = ["benchmark", "ewnet"] + [versions[k] for k in cols]
    if extra:
        head.append(f"{versions['extra']} (extra)")
    head += ["best anchor", "ewnet / best", "target", "result", "% of fp32 GEMM ceiling", "% of bf16 GEMM ceiling"]
    ceiling = flops.get("reference/gemm_2048")
    ceiling_bf16 = flops.get("reference/gemm_2048_bf16")
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key_t, label_t, applies in ROWS:
        if "{m}" in key_t:
            keys = [(key_t.format(m=m), label_t.format(m=m)) for m in args.modules]
        elif "{n}" in key_t:
            keys = [(key_t.format(n=n), label_t.format(n=n)) for n in args.networks]
        else:
            keys = [(key_t, label_t)]
        for key, label in keys:
            if key not in ew:
                continue
            cells = [label, f"{ew[key]:.1f}"]
            best, best_kind = 0.0, None
            for k in cols:
                v = anchors[k].get(key)
                cells.append(f"{v:.1f}" if v else "-")
                if v and k in applies and v > best:
                    best, best_kind = v, k
            if extra:
                v = extra.get(key)
                cells.append(f"{v:.1f}" if v else "-")
            ratio = ew[key] / best if best else None
            if args.device == "cpu":
                target = 1.2
                goal = (f">= {target:.1f}x", "met" if ratio >= target else "missed") if ratio else ("-", "-")
            else:
                goal = gpu_target(key, ew[key], anchors) or ("-", "-")
            cells += [best_kind or "-", f"{ratio:.2f}x" if ratio else "-", goal[0], goal[1],
                      f"{100 * flops[key] / ceiling:.0f}%" if ceiling and key in flops else "-",
                      f"{100 * flops[key] / ceiling_bf16:.0f}%" if ceiling_bf16 and key in flops else "-"]
            md.append("| " + " | ".join(cells) + " |")
    precision = "bfloat16" if args.precision == "bf16" else "TF32 allowed" if args.tf32 else "strict float32"
    batch, size = shapes(args.device)
    title = (f"{args.device}, {args.threads} threads, {precision}, batch {batch}, {size}x{size} (latency rows: one "
             f"image, {LATENCY_SIZE}x{LATENCY_SIZE}); images/s{' of CPU time' if args.clock == 'cpu' else ''}, "
             f"best of {args.repeats} alternating measurements")
    if ceiling:
        title += f"; fp32 GEMM ceiling {ceiling / 1e9:.0f} GFLOP/s"
    if ceiling_bf16:
        title += f", bf16 {ceiling_bf16 / 1e9:.0f} GFLOP/s"
    notes = ""
    rate = ew.get("paper_model/train_step")
    if args.device == "cuda" and rate:
        seconds = SOURCE_TRAINING_IMAGES / rate
        notes = (f"\nThe paper's source training (1,200 images, 320 epochs) at this step rate, data loading left out: "
                 f"{seconds:.0f} s (target < {SOURCE_TRAINING_TARGET_S:.0f} s: "
                 f"{'met' if seconds < SOURCE_TRAINING_TARGET_S else 'missed'}).\n")
    return f"**{title}**\n\n" + "\n".join(md) + "\n" + notes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", help="directory holding the ewnet_bench_* programs")
    ap.add_argument("--python", help="the Python (with torch, onnxruntime) to measure with; default: this one")
    ap.add_argument("--extra-python", help="another Python whose PyTorch gets an extra eager column")
    ap.add_argument("--anchors", nargs="+", default=["eager", "compile", "onnxruntime", "ort_ewnet"],
                    choices=list(ANCHORS), help="ort_ewnet: ONNX Runtime on ewnet's own export (latency rows)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: both sides in bfloat16 (ewnet's --precision bf16, PyTorch's autocast)")
    ap.add_argument("--no-latency", dest="latency", action="store_false",
                    help="leave out the batch-1 latency rows")
    ap.add_argument("--ewnet-onnx-dir", help=argparse.SUPPRESS)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every side (CPU)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: time every side by its CPU time (with --threads 1 only): on a machine busy with "
                         "other work, what each side would take alone")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 tensor-core math on both sides")
    ap.add_argument("--modules", nargs="*", default=["3a", "3b", "4a"], choices=list(MODULES),
                    help="inception modules to compare (none: no module rows)")
    ap.add_argument("--paper-rows", nargs="*", default=["train_step", "finetune_step", "inference"],
                    choices=["train_step", "finetune_step", "inference"],
                    help="the paper model's rows to compare (none: no paper model rows)")
    ap.add_argument("--networks", nargs="*", default=["resnet18", "googlenet", "inception-v3"],
                    choices=["resnet18", "googlenet", "inception-v3"],
                    help="torchvision networks to compare (none: only the paper's model and modules)")
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds per measurement")
    ap.add_argument("--repeats", type=int, default=2, help="alternating measurements of each side")
    ap.add_argument("--out", help="also write the table (markdown) to this file")
    ap.add_argument("--worker", choices=list(ANCHORS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.clock == "cpu" and (args.threads != 1 or args.device != "cpu"):
        ap.error("--clock cpu needs --threads 1 on the CPU (other threads' time would be left out)")
    if args.precision == "bf16":
        args.anchors = [a for a in args.anchors if a in ("eager", "compile")]
    if args.device != "cpu":
        args.latency = False
    if not args.latency:
        args.anchors = [a for a in args.anchors if a != "ort_ewnet"]
    onnx_dir = tempfile.TemporaryDirectory()  # ewnet's exports for ort_ewnet, written by its latency program
    args.ewnet_onnx_dir = onnx_dir.name
    if not args.bin_dir:
        ap.error("--bin-dir is required")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("pytorch_compare: --device cuda, but PyTorch sees no GPU")
    python = sys.executable
    ew, flops, anchors, versions, extra = {}, {}, {k: {} for k in args.anchors}, {}, {}
    context = {}
    for _ in range(args.repeats):
        rates, fl, context = ewnet_rates(args)
        for k, v in rates.items():
            ew[k] = max(v, ew.get(k, 0.0))
        for k, v in fl.items():
            flops[k] = max(v, flops.get(k, 0.0))
        for kind in args.anchors:
            r = run_worker(args, python, kind)
            versions[kind] = r["version"]
            for k, v in r["rates"].items():
                anchors[kind][k] = max(v, anchors[kind].get(k, 0.0))
        if args.extra_python:
            r = run_worker(args, args.extra_python, "eager")
            versions["extra"] = r["version"]
            for k, v in r["rates"].items():
                extra[k] = max(v, extra.get(k, 0.0))
    table = build_table(args, ew, flops, anchors, versions, extra)
    engine = context.get("ewnet_cpu_engine")
    if engine:
        table = f"ewnet {engine}\n\n" + table
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
