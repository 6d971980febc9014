#!/usr/bin/env python3
"""tools/torch_to_safetensors.py records the input normalisation of a torchvision network
whatever the file's origin: a bare state_dict (--state-dict) of resnet18 gets ImageNet's; of
googlenet, transform_input=True is assumed and said (torchvision's pretrained weights), and
--transform-input off gives ImageNet's; a pickled model's own transform_input is honoured. Random
weights, nothing downloaded (Debian's python3-torch and python3-torchvision).

Usage: converter_normalization.py SCRATCH_DIR
Exit status 0 when every case records what it must, 1 otherwise, 77 without torch (1 under CI).
"""
import json
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "..", "tools", "torch_to_safetensors.py")
IMAGENET = "123.675000,116.280000,103.530000"
HALF = "127.500000,127.500000,127.500000"


def metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n).decode("utf-8"))["__metadata__"]


def main():
    scratch = sys.argv[1]
    try:
        import torch
        import torchvision
    except ImportError as e:
        print(f"SKIPPED: {e}")
        return 1 if os.environ.get("CI") else 77
    os.makedirs(scratch, exist_ok=True)
    torch.manual_seed(0)
    files = {
        "resnet18-state.pth": torchvision.models.resnet18(num_classes=4).state_dict(),
        "googlenet-state.pth": torchvision.models.googlenet(num_classes=4, aux_logits=False, init_weights=False).state_dict(),
        "googlenet-plain.pth": torchvision.models.googlenet(num_classes=4, aux_logits=False, init_weights=False),
        "googlenet-transform.pth": torchvision.models.googlenet(num_classes=4, aux_logits=False, init_weights=False,
                                                                transform_input=True),
    }
    for name, obj in files.items():
        torch.save(obj, os.path.join(scratch, name))
    cases = [  # (file, model, extra arguments, expected mean, a phrase of the printed reason)
        ("resnet18-state.pth", "resnet18", [], IMAGENET, "convention for resnet18"),
        ("googlenet-state.pth", "googlenet", [], HALF, "assumed"),
        ("googlenet-state.pth", "googlenet", ["--transform-input", "off"], IMAGENET, "transform_input=False"),
        ("googlenet-plain.pth", "googlenet", [], IMAGENET, "transform_input=False"),
        ("googlenet-transform.pth", "googlenet", [], HALF, "transform_input=True"),
    ]
    status = 0
    for i, (src, model, extra, mean, why) in enumerate(cases):
        out = os.path.join(scratch, f"case{i}.safetensors")
        r = subprocess.run([sys.executable, TOOL, "--state-dict", os.path.join(scratch, src), "--model", model, out] + extra,
                           capture_output=True, text=True)
        got = metadata(out) if r.returncode == 0 else {}
        ok = r.returncode == 0 and got.get("ewnet.input_mean") == mean and why in r.stdout
        print(f"{'ok' if ok else 'FAILED'}: {src} {' '.join(extra)}: {got.get('ewnet.input_mean')}; {r.stdout.strip()}"
              f"{r.stderr.strip()}")
        status |= 0 if ok else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
