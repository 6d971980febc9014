#!/usr/bin/env python3
"""Parity of ewnet's GoogLeNet, Inception-v3 and ResNet-18 with torchvision's (random weights).

For each network: torchvision builds it with a seeded random initialisation (nothing downloaded);
its batch-norm scales and offsets are then drawn at random too, and its running statistics set
from one training-mode pass over another batch and perturbed (torchvision starts them all at 1/0,
which would not test that they load). tools/torch_to_safetensors.py's writer saves the
state_dict (float32); this script also saves an input batch, the logits in inference mode (float32,
and float64 from the same weights) and, in float64, after one training-mode forward and backward of
the mean cross-entropy (dropout probability set to 0 on both sides, batch statistics in batch
norm), the logits and the gradient of every convolution's weights, the first one's being the test. Then
ewnet_torchvision_parity (tests/models/torchvision_parity.cpp) loads the weights into
ewnet::build_model(name) by torchvision's names and compares.

The cases with auxiliary classifiers (googlenet-aux, inception-v3-aux) build both sides with them:
inference is unchanged (they run in training only), and the training-mode pass compares every
auxiliary classifier's logits and the gradient of the objective torchvision's recipes train, main
loss + 0.3 x each of GoogLeNet's two auxiliary losses, or + 0.4 x Inception-v3's.

Sizes, chosen to keep CI short while leaving every map at least 2x2 before the global pooling (so
batch norm in training mode sees at least 8 values a channel): batch 4, 64x64 for ResNet-18 and
GoogLeNet, 107x107 for Inception-v3 (its minimum is 75); batch 2 at 299x299 for Inception-v3 with its
auxiliary classifier (the smallest size it runs at).

Usage: torchvision_parity.py PARITY_BINARY SCRATCH_DIR [case...]
Exit status: the binary's (0 all match), 77 when torch or torchvision is missing (1 if CI is set).
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

CASES = {  # case: (network, batch, image size, first convolution's weight key, auxiliary losses' weight)
    "resnet18": ("resnet18", 4, 64, "conv1.weight", None),
    "googlenet": ("googlenet", 4, 64, "conv1.conv.weight", None),
    "inception-v3": ("inception-v3", 4, 107, "Conv2d_1a_3x3.conv.weight", None),
    "googlenet-aux": ("googlenet", 4, 64, "conv1.conv.weight", 0.3),
    "inception-v3-aux": ("inception-v3", 2, 299, "Conv2d_1a_3x3.conv.weight", 0.4),
}
CLASSES = 5
# ewnet's name for each auxiliary classifier's logits (its last fully connected layer), in the
# order torchvision returns them after the main logits. GoogLeNet's forward() names its tuple
# (logits, aux_logits2, aux_logits1) but fills it from _forward()'s (x, aux2, aux1) unpacked as
# (x, aux1, aux2): the tuple holds aux1's logits, then aux2's.
AUX_LOGITS = {"googlenet": ["aux1.fc2", "aux2.fc2"], "inception-v3": ["AuxLogits.fc"]}


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
    for i, case in enumerate(names):
        t0 = time.time()
        name, batch, size, first, aux_weight = CASES[case]
        aux = aux_weight is not None
        torch.manual_seed(100 + i)
        m = conv.torchvision_model(name, CLASSES, pretrained=False, aux=aux)
        bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
        with torch.no_grad():
            for mod in bns:
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)
            # Running statistics near those of real activations, so that inference-mode logits keep a
            # sane scale through 20 to 95 batch norms (random ones reach 1e13 at Inception-v3's depth,
            # where float32's comparison sees only the largest logits): one training-mode pass over
            # another batch with momentum 1 sets them to its batch statistics; then perturbed, so they
            # are no batch's and still must load.
            momenta = [mod.momentum for mod in bns]
            for mod in bns:
                mod.momentum = 1.0
            m.train()
            m(torch.rand(batch, 3, size, size) * 2 - 1)
            for mod, mom in zip(bns, momenta):
                mod.momentum = mom
                mod.running_mean.add_(torch.randn_like(mod.running_mean) * 0.05)
                mod.running_var.mul_(torch.empty_like(mod.running_var).uniform_(0.8, 1.25))
        weights = os.path.join(scratch, f"{case}.safetensors")
        # The torch side feeds its inputs as they are (no transform_input, no normalisation): the
        # file says so, or ewnet would give a torchvision network ImageNet's normalisation.
        conv.write_safetensors(weights, conv.state_tensors(m.state_dict()),
                               {"ewnet.model": name, "ewnet.input_mean": "0,0,0", "ewnet.input_std": "1,1,1"})

        x = torch.rand(batch, 3, size, size) * 2 - 1
        labels = torch.tensor([j % CLASSES for j in range(batch)])
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
        for mod in m.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
        m.zero_grad()
        outs = m(xd)
        out, aux_outs = (outs[0], list(outs[1:])) if aux else (outs, [])
        loss = torch.nn.functional.cross_entropy(out, labels)
        for a in aux_outs:
            loss = loss + aux_weight * torch.nn.functional.cross_entropy(a, labels)
        loss.backward()
        grad = dict(m.named_parameters())[first].grad
        case_file = os.path.join(scratch, f"{case}-case.safetensors")
        # Every convolution's weight gradient too: when the first one does not match, the C++ side
        # names the deepest that does not, which locates the layer at fault.
        grads = {"grad." + k: p.grad for k, p in m.named_parameters() if k.endswith(".weight") and p.dim() == 4}
        aux_logits = {"train_aux." + k: a.detach() for k, a in zip(AUX_LOGITS.get(name, []), aux_outs)}
        conv.write_safetensors(case_file, {"input": xd, "labels": labels.double(), "logits": logits,
                                           "logits_float32": logits32, "first_conv_grad": grad,
                                           "train_logits": out.detach(), **aux_logits, **grads},
                               {"model": name, "first_conv": first.rsplit(".", 1)[0], "loss": f"{loss.item():.17g}",
                                "auxiliary": "1" if aux else "0"},
                               dtype="F64")
        print(f"{case}: torchvision side written in {time.time() - t0:.1f} s", flush=True)
        r = subprocess.run([binary, name, weights, case_file])
        status = status or r.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
