#!/usr/bin/env python3
"""The paper's Table 1 with ewnet: each of the four networks trained on a source folder, then
fine-tuned on a target folder, with the paper's figures beside.

For each network (paper, googlenet, inception-v3, resnet18): ewnet-train on the source from
random weights (or from --init-dir/NAME.safetensors when given: e.g. torchvision's ImageNet
weights written by tools/torch_to_safetensors.py), then ewnet-finetune of its best checkpoint on
the target by ewnet's default recipe (every layer, the new classifier replaced). Writes OUT/table1.md
in the paper's layout (model, source accuracy, target accuracy, time) and OUT/table1.json.

  tools/table1.py --bin build/examples --source ../shared/datasets/caltech101_devices8 \\
      --target ../shared/datasets/caltech101_handheld4 --out table1 --image-size 80 --epochs 10

The paper's figures (its Table 1, 224x224, pretrained on ImageNet, MATLAB) are for its own
smartphone and screwdriver photos; ewnet's run uses whatever folders it is given, at a size and
number of epochs a CPU can do, so the two columns are beside each other, not comparable.
"""
import argparse
import json
import os
import subprocess
import sys
import time

# The paper's Table 1: validation accuracy (%) on its smartphones (source) and screwdrivers (target);
# "Our Transfer Model" is its hybrid model (the source trained from scratch, the target fine-tuned).
PAPER = {"paper": (94.27, 97.22), "googlenet": (94.3, 93.33), "inception-v3": (96.11, 95.52),
         "resnet18": (94.97, 94.59)}
LABEL = {"paper": "ewnet's paper model (hybrid inception/residual)", "googlenet": "GoogLeNet",
         "inception-v3": "Inception-v3", "resnet18": "ResNet-18"}


def run(cmd, log):
    t0 = time.time()
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.exit(f"table1: {' '.join(cmd)} failed ({r.returncode}); see {log}")
    return time.time() - t0


def best_accuracy(run_dir):
    with open(os.path.join(run_dir, "report.json")) as f:
        r = json.load(f)
    acc = [a for a in r["validation_accuracy_by_epoch"] if a is not None]
    return 100 * max(acc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the build's examples/ folder")
    ap.add_argument("--source", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", nargs="+", default=["paper", "googlenet", "inception-v3", "resnet18"])
    ap.add_argument("--image-size", type=int, default=80, help="square input (Inception-v3 needs 75 or more)")
    ap.add_argument("--epochs", type=int, default=10, help="source epochs, and target epochs")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3, help="source rate (constant)")
    ap.add_argument("--finetune-lr", type=float, default=1e-2, help="target rate, halved every 20 epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init-dir", help="start each network from NAME.safetensors in this folder")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for name in a.models:
        src_dir, tgt_dir = os.path.join(a.out, name, "source"), os.path.join(a.out, name, "target")
        train = [os.path.join(a.bin, "ewnet-train", "ewnet-train"), a.source, "--out", src_dir, "--model", name,
                 "--epochs", str(a.epochs), "--batch", str(a.batch), "--lr", str(a.lr), "--image-size",
                 str(a.image_size), "--seed", str(a.seed), "--no-progress"]
        if a.init_dir:
            train += ["--init", os.path.join(a.init_dir, f"{name}.safetensors")]
        print(f"[{time.strftime('%H:%M:%S')}] {name}: source", flush=True)
        t_src = run(train, os.path.join(a.out, f"{name}-source.log"))
        finetune = [os.path.join(a.bin, "ewnet-finetune", "ewnet-finetune"), os.path.join(src_dir, "best.safetensors"),
                    a.target, "--out", tgt_dir, "--epochs", str(a.epochs), "--batch", str(a.batch), "--lr",
                    str(a.finetune_lr), "--seed", str(a.seed), "--no-progress"]
        print(f"[{time.strftime('%H:%M:%S')}] {name}: target", flush=True)
        t_tgt = run(finetune, os.path.join(a.out, f"{name}-target.log"))
        rows.append({"model": name, "source_accuracy": best_accuracy(src_dir),
                     "target_accuracy": best_accuracy(tgt_dir), "source_seconds": t_src, "target_seconds": t_tgt})
    md = [f"# Table 1 with ewnet: {os.path.basename(os.path.normpath(a.source))} -> "
          f"{os.path.basename(os.path.normpath(a.target))}", "",
          f"{a.image_size}x{a.image_size}, {a.epochs} source and {a.epochs} target epochs, batch {a.batch}, "
          f"{'weights from ' + a.init_dir if a.init_dir else 'random initialisation'}, seed {a.seed}; best "
          "validation accuracy (80/20 split); the paper's figures beside (its photos, 224x224, ImageNet weights).", "",
          "| model | source accuracy | target accuracy | time (source + target) | paper: smartphones | paper: screwdrivers |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        ps, pt = PAPER[r["model"]]
        paper_cells = (f"{ps:.2f}%", f"{pt:.2f}%")
        md.append(f"| {LABEL[r['model']]} | {r['source_accuracy']:.1f}% | {r['target_accuracy']:.1f}% | "
                  f"{r['source_seconds'] / 60:.1f} + {r['target_seconds'] / 60:.1f} min | {paper_cells[0]} | "
                  f"{paper_cells[1]} |")
    text = "\n".join(md) + "\n"
    print(text)
    with open(os.path.join(a.out, "table1.md"), "w") as f:
        f.write(text)
    with open(os.path.join(a.out, "table1.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
