#!/usr/bin/env python3
"""Classifies images with an ONNX file written by ewnet-export, in ONNX Runtime (docs/deployment.md).

usage: onnx_classify.py MODEL.onnx IMAGE...

The preprocessing the graph expects: RGB, resized to its input size, float 0..255, [N, 3, H, W];
the normalisation is inside the graph. ewnet resizes with stb_image_resize; Pillow's bilinear
resize differs slightly, so probabilities may differ from ewnet-classify in the last digits.
"""
import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


def main():
    model, images = sys.argv[1], sys.argv[2:]
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    classes = json.loads(meta["ewnet.classes"])
    _, _, h, w = sess.get_inputs()[0].shape
    batch = np.stack([np.asarray(Image.open(p).convert("RGB").resize((w, h), Image.BILINEAR), dtype=np.float32)
                      .transpose(2, 0, 1) for p in images])
    probabilities = sess.run(["probabilities"], {"image": batch})[0]
    for path, p in zip(images, probabilities):
        k = int(p.argmax())
        print(f"{path}: {classes[k]} {p[k]:.3f}")


if __name__ == "__main__":
    main()
