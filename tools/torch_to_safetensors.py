#!/usr/bin/env python3
"""Writes a PyTorch state_dict to a safetensors file with its names, for ewnet::load_weights.

    # torchvision's ImageNet weights (on a machine that has them or can download them)
    tools/torch_to_safetensors.py --model resnet18 --pretrained resnet18.safetensors
    # any saved state_dict (a .pth file holding a dict of tensors, or a whole pickled model)
    tools/torch_to_safetensors.py --state-dict my.pth --model googlenet googlenet.safetensors
    # random initialisation (what the parity tests use; nothing is downloaded)
    tools/torch_to_safetensors.py --model inception-v3 --random --seed 1 --classes 8 out.safetensors
    # with the auxiliary classifiers (googlenet, inception-v3), for a model built with them
    tools/torch_to_safetensors.py --model inception-v3 --pretrained --aux inception_v3.safetensors

Every floating-point tensor is written as F32 (num_batches_tracked, an integer count, is left out:
ewnet does not use it). The file's metadata records where it came from, the image size the
weights were made for ("ewnet.image_size": 299 for Inception-v3, 224 for the others) and, whenever
--model names the network, the input normalisation the weights expect, on ewnet's 0..255 pixel
scale ("ewnet.input_mean", "ewnet.input_std"), whatever the file's origin (--pretrained,
--state-dict or --random):
  - ResNet-18: ImageNet's mean and standard deviation;
  - GoogLeNet and Inception-v3 with transform_input=True (torchvision's pretrained weights, and the
    models fine-tuned from them): 127.5 and 127.5, inputs rescaled to [-1, 1] (transform_input
    turns ImageNet-normalised inputs into exactly that);
  - with transform_input=False (built without pretrained weights): ImageNet's.
A pickled model says which it is (its transform_input attribute); a bare state_dict does not, so
for GoogLeNet and Inception-v3 it is taken to come from torchvision's pretrained weights
(transform_input=True), and the script says so; --transform-input off states otherwise.
--input-normalization imagenet|half|none overrides all of this.

--aux keeps GoogLeNet's and Inception-v3's auxiliary classifiers (aux1/aux2, AuxLogits): ewnet loads
them into a model built with them (ModelOptions::auxiliary_classifiers, --aux on the programs) and
leaves them out otherwise. torchvision's pretrained Inception-v3 has trained ones; its pretrained
GoogLeNet's are not pretrained (torchvision says so), so --aux gives them random weights.

The safetensors layout is written here directly (8-byte little-endian header length, a JSON
header, the data), so the `safetensors` package is not needed. Needs torch (Debian:
python3-torch) and, for --model, torchvision (python3-torchvision).
"""
import argparse
import json
import struct
import sys

TORCHVISION = {"resnet18": "resnet18", "googlenet": "googlenet", "inception-v3": "inception_v3"}
IMAGENET_MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
IMAGENET_STD = [0.229 * 255, 0.224 * 255, 0.225 * 255]
IMAGE_SIZE = {"resnet18": 224, "googlenet": 224, "inception-v3": 299}  # what torchvision's weights were made for


def write_safetensors(path, tensors, metadata, dtype="F32"):
    """tensors: name -> torch tensor (written as F32, or F64, row-major); metadata: str -> str."""
    import torch
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        wide = dtype == "F64"
        t = tensors[name].detach().to(torch.float64 if wide else torch.float32).contiguous().cpu()
        data = t.numpy().astype("<f8" if wide else "<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # align the data block
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def state_tensors(state_dict):
    """The floating-point tensors of a state_dict (integer counters such as num_batches_tracked left out)."""
    return {k: v for k, v in state_dict.items() if hasattr(v, "is_floating_point") and v.is_floating_point()}


def torchvision_model(name, classes=1000, pretrained=False, aux=False):
    import torchvision
    fn = getattr(torchvision.models, TORCHVISION[name])
    kwargs = {}
    if name in ("googlenet", "inception-v3"):
        kwargs = {"aux_logits": aux, "init_weights": not pretrained}
        if pretrained:
            kwargs["transform_input"] = True
    if pretrained:
        m = fn(weights="DEFAULT", **kwargs)
    else:
        m = fn(num_classes=classes, **kwargs)
    return m


def default_normalization(model, transform_input):
    """The normalisation a torchvision network's weights expect, and why, given its transform_input
    (None when a bare state_dict leaves it unknown)."""
    if model == "resnet18":
        return "imagenet", "torchvision's convention for resnet18"
    if transform_input is None:
        return "half", ("transform_input=True assumed, as torchvision's pretrained weights run; "
                        "--transform-input off if the model was built without it")
    if transform_input:
        return "half", "transform_input=True: inputs rescaled to [-1, 1]"
    return "imagenet", "transform_input=False: torchvision's ImageNet convention"


def normalization(kind):
    if kind == "imagenet":
        return IMAGENET_MEAN, IMAGENET_STD
    if kind == "half":
        return [127.5] * 3, [127.5] * 3
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="the safetensors file to write")
    p.add_argument("--model", choices=sorted(TORCHVISION), help="a torchvision network")
    p.add_argument("--pretrained", action="store_true", help="torchvision's ImageNet weights (weights='DEFAULT')")
    p.add_argument("--random", action="store_true", help="random initialisation (nothing downloaded)")
    p.add_argument("--seed", type=int, default=0, help="with --random")
    p.add_argument("--classes", type=int, default=1000, help="with --random: the classifier's outputs")
    p.add_argument("--aux", action="store_true", help="keep the auxiliary classifiers (googlenet, inception-v3)")
    p.add_argument("--state-dict", help="a .pth file: a state_dict, or a pickled model")
    p.add_argument("--input-normalization", choices=["imagenet", "half", "none"],
                   help="what the weights expect (default: what the network and its transform_input expect)")
    p.add_argument("--transform-input", choices=["on", "off"],
                   help="googlenet, inception-v3 from --state-dict: whether the model ran with transform_input=True "
                        "(default: on for a bare state_dict, as torchvision's pretrained weights; a pickled model "
                        "says itself)")
    a = p.parse_args(argv)
    import torch

    meta = {"format": "pt", "ewnet.source": "pytorch"}
    transform_input = None  # what the model ran with, when known (googlenet, inception-v3)
    if a.state_dict:
        obj = torch.load(a.state_dict, map_location="cpu")
        sd = obj.state_dict() if hasattr(obj, "state_dict") else obj
        if hasattr(obj, "transform_input"):
            transform_input = bool(obj.transform_input)
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        meta["ewnet.source_file"] = a.state_dict
    elif a.model and (a.pretrained or a.random):
        if a.random:
            torch.manual_seed(a.seed)
        if a.aux and a.model not in ("googlenet", "inception-v3"):
            p.error(f"--aux: {a.model} has no auxiliary classifiers")
        m = torchvision_model(a.model, a.classes, a.pretrained, a.aux)
        transform_input = getattr(m, "transform_input", None)
        sd = m.state_dict()
        meta["ewnet.source"] = "torchvision " + TORCHVISION[a.model] + (" pretrained" if a.pretrained else
                                                                       f" random seed {a.seed}")
    else:
        p.error("give --state-dict FILE, or --model NAME with --pretrained or --random")
    if a.model:
        meta["ewnet.model"] = a.model
        meta["ewnet.image_size"] = str(IMAGE_SIZE[a.model])
    if a.transform_input is not None:
        if a.model not in ("googlenet", "inception-v3"):
            p.error("--transform-input: only googlenet and inception-v3 have transform_input")
        transform_input = a.transform_input == "on"
    kind = a.input_normalization
    if kind is None and a.model:
        kind, why = default_normalization(a.model, transform_input)
        print(f"{a.out}: {a.model}: input normalisation '{kind}' ({why})")
    norm = normalization(kind) if kind else None
    if norm:
        meta["ewnet.input_mean"] = ",".join(f"{x:.6f}" for x in norm[0])
        meta["ewnet.input_std"] = ",".join(f"{x:.6f}" for x in norm[1])
    tensors = state_tensors(sd)
    write_safetensors(a.out, tensors, meta)
    print(f"{a.out}: {len(tensors)} tensors" + (f", input normalisation '{kind}'" if norm else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
