#!/usr/bin/env python3
"""Parity of ewnet's GoogLeNet, Inception-v3 and ResNet-18 with torchvision's (random weights).

For each network: torchvision builds it with a seeded random initialisation (nothing downloaded);
its batch-norm parameters and running statistics are then drawn at random too (torchvision starts
them at 1/0, which would not test that they load). tools/torch_to_safetensors.py's writer saves the
state_dict (float32); this script also saves an input batch, the logits in inference mode (float32,
and float64 from the same weights) and, in float64, after one training-mode forward and backward of
the mean cross-entropy (dropout probability set to 0 on both sides, batch statistics in batch
norm), the logits and the gradient of every convolution's weights, the first one's being the test. Then
ewnet_torchvision_parity (tests/models/torchvision_parity.cpp) loads the weights into
ewnet::build_model(name) by torchvision's names and compares.

Sizes, chosen to keep CI short while leaving every map at least 2x2 before the global pooling (so
batch norm in training mode sees at least 8 values a channel): batch 4, 64x64 for ResNet-18 and
GoogLeNet, 107x107 for Inception-v3 (its minimum is 75).

Usage: torchvision_parity.py PARITY_BINARY SCRATCH_DIR [network...]
Exit status: the binary's (0 all match), 77 when torch or torchvision is missing (1 if CI is set).
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

CASES = {  # name: (image size, first convolution's weight key)
    "resnet18": (64, "conv1.weight"),
    "googlenet": (64, "conv1.conv.weight"),
    "inception-v3": (107, "Conv2d_1a_3x3.conv.weight"),
}
BATCH, CLASSES = 4, 5


def main():
    binary, scratch = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or list(CASES)
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError as e:
        print(f"SKIPPED: {e} (install python3-torch and python3-torchvision)")
        return 1 if os.environ.get("CI") else 77
    import torch_to_safetensors as conv

    torch.set_num_threads(2)
    os.makedirs(scratch, exist_ok=True)
    status = 0
    for i, name in enumerate(names):
        t0 = time.time()
        size, first = CASES[name]
        torch.manual_seed(100 + i)
        m = conv.torchvision_model(name, CLASSES, pretrained=False)
        with torch.no_grad():
            for mod in m.modules():
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.normal_(0, 0.1)
                    mod.running_mean.normal_(0, 0.1)
                    mod.running_var.uniform_(0.5, 1.5)
        weights = os.path.join(scratch, f"{name}.safetensors")
        conv.write_safetensors(weights, conv.state_tensors(m.state_dict()), {"ewnet.model": name})

        x = torch.rand(BATCH, 3, size, size) * 2 - 1
        labels = torch.tensor([j % CLASSES for j in range(BATCH)])
        m.eval()
        with torch.no_grad():
            logits32 = m(x)  # float32, as written
        # The comparisons proper run in float64 on both sides, from the same float32 weights and
        # input: a max pooling's choice of maximum or a ReLU's sign can flip on a float32 rounding
        # difference (measured: one flipped window moved a 1x1 convolution's weight gradient by 2%),
        # which float64 leaves 9 orders of magnitude further off.
        m = m.double()
        xd = x.double()
        with torch.no_grad():
            logits = m(xd)
        m.train()
        if hasattr(m, "dropout"):
            m.dropout.p = 0.0
        m.zero_grad()
        out = m(xd)
        loss = torch.nn.functional.cross_entropy(out, labels)
        loss.backward()
        grad = dict(m.named_parameters())[first].grad
        case = os.path.join(scratch, f"{name}-case.safetensors")
        # Every convolution's weight gradient too: when the first one does not match, the C++ side
        # names the deepest that does not, which locates the layer at fault.
        grads = {"grad." + k: p.grad for k, p in m.named_parameters() if k.endswith(".weight") and p.dim() == 4}
        conv.write_safetensors(case, {"input": xd, "labels": labels.double(), "logits": logits,
                                      "logits_float32": logits32, "first_conv_grad": grad,
                                      "train_logits": out.detach(), **grads},
                               {"model": name, "first_conv": first.rsplit(".", 1)[0], "loss": f"{loss.item():.17g}"},
                               dtype="F64")
        print(f"{name}: torchvision side written in {time.time() - t0:.1f} s", flush=True)
        r = subprocess.run([binary, name, weights, case])
        status = status or r.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
