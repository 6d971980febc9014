#!/usr/bin/env python3
"""Classifies images with an ONNX file written by ewnet-export, in ONNX Runtime (docs/deployment.md).

usage: onnx_classify.py MODEL.onnx IMAGE...

The preprocessing the graph expects, as ewnet does it (the normalisation is inside the graph):
  1. decode, turn upright by the EXIF orientation, composite any alpha onto white, RGB;
  2. resize to the input size S in the geometry the file records ("ewnet.resize"):
     crop    the shorter side to round(S 256 / 224), the longer to floor(that * long / short), with
             Pillow's BILINEAR filter, then the central S x S (torchvision's Resize + CenterCrop):
             the same pixels as ewnet, bit for bit;
     squash  the whole image to S x S. ewnet filters with stb_image_resize's cubics (Mitchell when
             shrinking), which Pillow does not have; its BILINEAR comes closest (closer than its
             BICUBIC; docs/deployment.md gives the measured difference);
  3. float 0..255, [N, 3, S, S].
"""
import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps


def load(path, size, geometry):
    img = ImageOps.exif_transpose(Image.open(path))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    img = img.convert("RGB")
    if geometry == "crop":
        w, h = img.size
        shorter = round(size * 256 / 224)
        rw, rh = (shorter, int(shorter * h / w)) if w <= h else (int(shorter * w / h), shorter)
        img = img.resize((rw, rh), Image.BILINEAR)
        left, top = int(round((rw - size) / 2.0)), int(round((rh - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
    else:
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32).transpose(2, 0, 1)


def main():
    model, images = sys.argv[1], sys.argv[2:]
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    classes = json.loads(meta["ewnet.classes"])
    geometry = meta.get("ewnet.resize", "squash")
    _, _, h, w = sess.get_inputs()[0].shape
    batch = np.stack([load(p, h, geometry) for p in images])
    probabilities = sess.run(["probabilities"], {"image": batch})[0]
    for path, p in zip(images, probabilities):
        k = int(p.argmax())
        print(f"{path}: {classes[k]} {p[k]:.3f}")


if __name__ == "__main__":
    main()
