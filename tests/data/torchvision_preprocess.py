#!/usr/bin/env python3
"""ewnet's preprocessing against torchvision's on real photos (the shared data sets' JPEGs).

crop: torchvision's evaluation transform for its ImageNet weights, Resize(round(S 256/224)) +
CenterCrop(S) on the PIL image its ImageFolder loader gives (Image.open(...).convert("RGB")),
against ewnet's data::load_for_input(path, S, crop): libjpeg-turbo decodes for both, and ewnet's
filter is Pillow's BILINEAR, so the pixels must be equal: the test fails on any difference.
squash: torchvision's Resize((S, S)) (Pillow's bilinear) against ewnet's squash geometry (cubic
filters: Mitchell shrinking): different filters by design; the differences are reported, not judged.

Usage: torchvision_preprocess.py DUMP_BINARY SCRATCH DATA_DIR [SIZE...]
Exit status 0 when crop agrees exactly, 1 otherwise, 77 (skipped) without the data set or
torchvision (1 under CI).
"""
import glob
import os
import subprocess
import sys


def skip(why):
    print(f"SKIPPED: {why}")
    return 1 if os.environ.get("CI") else 77


def main():
    binary, scratch, data = sys.argv[1], sys.argv[2], sys.argv[3]
    sizes = [int(s) for s in sys.argv[4:]] or [64, 224, 299]
    try:
        import numpy as np
        import torchvision.transforms as T
        from PIL import Image
    except ImportError as e:
        return skip(f"{e} (install python3-torchvision)")
    files = sorted(glob.glob(os.path.join(data, "*", "*.jpg")))[::8]
    if not files:
        return skip(f"no JPEGs under {data}")
    os.makedirs(scratch, exist_ok=True)
    status = 0
    for size in sizes:
        for mode in ("crop", "squash"):
            subprocess.run([binary, str(size), mode, scratch] + files, check=True)
            if mode == "crop":
                t = T.Compose([T.Resize(round(size * 256 / 224)), T.CenterCrop(size)])
            else:
                t = T.Resize((size, size))
            worst, differing, total = 0, 0, 0
            for i, f in enumerate(files):
                theirs = np.asarray(t(Image.open(f).convert("RGB")), dtype=np.int16)
                ours = np.fromfile(os.path.join(scratch, f"{i}.rgb"), dtype=np.uint8).astype(np.int16)
                ours = ours.reshape(theirs.shape)
                d = np.abs(ours - theirs)
                worst = max(worst, int(d.max()))
                differing += int((d > 0).sum())
                total += d.size
            print(f"{mode:6s} {size:3d}: {len(files)} photos, max |ewnet - torchvision| {worst}, "
                  f"{100 * differing / total:.2f}% of values differ")
            if mode == "crop" and worst != 0:
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
