#!/usr/bin/env python3
"""Measures transfer-learning recipes over seeds on pairs of image folders, with ewnet's programs.

Two studies, each a table in markdown with the mean and standard deviation over seeds:

  recipes  For each pair (source -> target) and seed: ewnet-transfer trains the source model once,
           then fine-tunes it on the target by every recipe asked for, and trains the target from
           scratch for the same epochs and schedule (--baseline). Reports, per recipe, the best,
           final and mean-over-epochs validation accuracy and the time per target epoch, and per
           seed the default recipe's gain over scratch. The seed changes the splits too.
  source   For each source folder, seed and variant (a schedule and a rate): ewnet-train trains
           the paper's model from scratch; reports the same accuracies and the time.

Pairs built from the shared data sets (give their folder with --datasets):
  caltech  caltech101_devices8 (8 devices, 601 images) -> caltech101_handheld4 (4 tools, 156)
  deeppcb  deeppcb_defect_crops split by class: open, short, mousebite, spur (150 images each,
           chosen once with a fixed seed) -> copper, pin_hole, normal_template (40 each); the
           subsets are folders of symbolic links under OUT/data
  trash    trashnet_112x84 (6 materials, 100 images each, chosen likewise) -> caltech101_handheld4

  tools/transfer_study.py recipes --bin build/examples --datasets ../shared/datasets --out study \\
      --pairs caltech deeppcb --seeds 1 2 3
  tools/transfer_study.py source --bin build/examples --datasets ../shared/datasets --out study \\
      --variants constant:0.003 cosine:0.01 --seeds 1 2 3
"""
import argparse
import csv
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time

IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tga", ".ppm", ".pgm")


def subset(datasets, out, name, folder, classes, per_class):
    """A folder of symbolic links: `per_class` images of each class, chosen with a fixed seed."""
    root = os.path.join(out, "data", name)
    if os.path.isdir(root):
        return root
    rng = random.Random(0)
    for c in classes:
        src = os.path.join(datasets, folder, c)
        files = sorted(f for f in os.listdir(src) if f.lower().endswith(IMAGE_EXT))
        if len(files) < per_class:
            sys.exit(f"transfer_study: {src} has {len(files)} images, fewer than {per_class}")
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for f in rng.sample(files, per_class):
            os.symlink(os.path.abspath(os.path.join(src, f)), os.path.join(root, c, f))
    return root


def pair_folders(pair, datasets, out):
    caltech_target = os.path.join(datasets, "caltech101_handheld4")
    if pair == "caltech":
        return os.path.join(datasets, "caltech101_devices8"), caltech_target
    if pair == "deeppcb":
        return (subset(datasets, out, "deeppcb-source", "deeppcb_defect_crops", ["open", "short", "mousebite", "spur"], 150),
                subset(datasets, out, "deeppcb-target", "deeppcb_defect_crops", ["copper", "pin_hole", "normal_template"], 40))
    if pair == "trash":
        return (subset(datasets, out, "trash-source", "trashnet_112x84",
                       ["cardboard", "glass", "metal", "paper", "plastic", "trash"], 100), caltech_target)
    sys.exit(f"transfer_study: unknown pair '{pair}'")


def count_images(folder):
    return sum(1 for _, _, files in os.walk(folder, followlinks=True) for f in files if f.lower().endswith(IMAGE_EXT))


def run(cmd, log_path):
    t0 = time.time()
    with open(log_path, "w") as log:
        r = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.exit(f"transfer_study: {' '.join(cmd)} failed ({r.returncode}); see {log_path}")
    return time.time() - t0


def mean_sd(values, scale=100.0, digits=1):
    if not values:
        return "-"
    m = statistics.mean(values) * scale
    sd = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def recipes_study(a):
    lines = [f"# Transfer recipes over seeds {', '.join(map(str, a.seeds))}", "",
             f"{a.image_size}x{a.image_size}, {a.source_epochs} source and {a.target_epochs} target epochs, "
             f"ewnet-transfer defaults otherwise; accuracies in % on the target's validation split "
             f"(mean ± standard deviation over seeds; the seed changes the split).", ""]
    results = {}
    for pair in a.pairs:
        source, target = pair_folders(pair, a.datasets, a.out)
        per_seed = []
        for seed in a.seeds:
            out = os.path.join(a.out, "runs", f"{pair}-seed{seed}")
            summary = os.path.join(out, "summary.json")
            if not os.path.exists(summary):
                cmd = [os.path.join(a.bin, "ewnet-transfer", "ewnet-transfer"), "--source", source, "--target", target,
                       "--out", out, "--baseline", "--seed", str(seed), "--image-size", str(a.image_size),
                       "--source-epochs", str(a.source_epochs), "--target-epochs", str(a.target_epochs),
                       "--no-progress", "--recipe", a.recipes[0]]
                if len(a.recipes) > 1:
                    cmd += ["--compare", ",".join(a.recipes[1:])]
                os.makedirs(out, exist_ok=True)
                if a.source_from:
                    # The same source model as another study's run (same pair, seed and settings):
                    # copied, and --resume skips its training.
                    shared = os.path.join(a.source_from, "runs", f"{pair}-seed{seed}", "source")
                    if not os.path.isdir(os.path.join(out, "source")):
                        shutil.copytree(shared, os.path.join(out, "source"))
                    cmd.append("--resume")
                print(f"[{time.strftime('%H:%M:%S')}] {pair} seed {seed}", flush=True)
                run(cmd + a.extra, os.path.join(a.out, "runs", f"{pair}-seed{seed}.log"))
            with open(summary) as f:
                per_seed.append(json.load(f))
        results[pair] = per_seed
        s0 = per_seed[0]
        lines += [f"## {pair}: {source_name(source)} -> {source_name(target)}", "",
                  f"Source {count_images(source)} images, target {count_images(target)} images "
                  f"({s0['target_validation_images']} for validation: one image is "
                  f"{100 / max(1, s0['target_validation_images']):.1f} points).", "",
                  "| stage | best | final | mean over epochs | s / epoch |", "|---|---|---|---|---|"]
        stages = [("source, from scratch", lambda s: s["source"])]
        for name in s0["transfer"]:
            stages.append((f"transfer, {name}", lambda s, n=name: s["transfer"][n]))
        stages.append(("target, from scratch", lambda s: s["scratch"]))
        for label, get in stages:
            rows = [get(s) for s in per_seed]
            lines.append(f"| {label} | {mean_sd([r['best_validation_accuracy'] for r in rows])} | "
                         f"{mean_sd([r['final_validation_accuracy'] for r in rows])} | "
                         f"{mean_sd([r['mean_validation_accuracy'] for r in rows])} | "
                         f"{mean_sd([r['seconds_per_epoch'] for r in rows], 1.0, 2)} |")
        lines += ["", "Gain of each recipe over scratch, per seed (points; mean over epochs / best epoch):", "",
                  "| recipe | " + " | ".join(f"seed {x}" for x in a.seeds) + " | mean |",
                  "|---|" + "---|" * (len(a.seeds) + 1)]
        for name in s0["transfer"]:
            gm = [s["transfer"][name]["mean_validation_accuracy"] - s["scratch"]["mean_validation_accuracy"] for s in per_seed]
            gb = [s["transfer"][name]["best_validation_accuracy"] - s["scratch"]["best_validation_accuracy"] for s in per_seed]
            cells = [f"{100 * m:+.1f} / {100 * b:+.1f}" for m, b in zip(gm, gb)]
            lines.append(f"| {name} | " + " | ".join(cells) +
                         f" | {100 * statistics.mean(gm):+.1f} / {100 * statistics.mean(gb):+.1f} |")
        lines.append("")
    return lines, results


def validation_accuracies(run_dir):
    """The validation accuracy of every epoch, from a run's log.csv."""
    with open(os.path.join(run_dir, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    return [float(r["validation_accuracy"]) for r in rows if r["validation_accuracy"]]


def source_name(folder):
    return os.path.basename(os.path.normpath(folder))


def source_study(a):
    lines = [f"# Source training over seeds {', '.join(map(str, a.seeds))}", "",
             f"{a.image_size}x{a.image_size}, {a.source_epochs} epochs, batch {a.batch}; accuracies in % on the "
             "validation split (mean ± standard deviation over seeds).", ""]
    results = {}
    for pair in a.pairs:
        source, _ = pair_folders(pair, a.datasets, a.out)
        lines += [f"## {source_name(source)} ({count_images(source)} images)", "",
                  "| variant | best | final | mean over epochs | minutes |", "|---|---|---|---|---|"]
        for variant in a.variants:
            schedule, rate = variant.split(":")
            rows = []
            for seed in a.seeds:
                out = os.path.join(a.out, "source", f"{pair}-{schedule}-{rate}-seed{seed}")
                report = os.path.join(out, "report.json")
                # ewnet-transfer's source stage is this very run when the variant is its default
                # (same folder, seed, split, epochs and batch): take it from the recipes study.
                shared = os.path.join(a.out, "runs", f"{pair}-seed{seed}", "source", "report.json")
                if variant == a.transfer_default and os.path.exists(shared) and a.batch == 16:
                    report = shared
                if not os.path.exists(report):
                    cmd = [os.path.join(a.bin, "ewnet-train", "ewnet-train"), source, "--out", out,
                           "--epochs", str(a.source_epochs), "--batch", str(a.batch), "--lr", rate,
                           "--schedule", schedule, "--image-size", str(a.image_size), "--seed", str(seed),
                           "--no-progress"]
                    os.makedirs(out, exist_ok=True)
                    print(f"[{time.strftime('%H:%M:%S')}] source {pair} {variant} seed {seed}", flush=True)
                    run(cmd + a.extra, out + ".log")
                with open(report) as f:
                    r = json.load(f)
                acc = validation_accuracies(os.path.dirname(report))
                rows.append({"best": max(acc), "final": acc[-1], "mean": statistics.mean(acc),
                             "minutes": r["seconds"] / 60})
            results[f"{pair}/{variant}"] = rows
            lines.append(f"| {schedule}, rate {rate} | {mean_sd([x['best'] for x in rows])} | "
                         f"{mean_sd([x['final'] for x in rows])} | {mean_sd([x['mean'] for x in rows])} | "
                         f"{mean_sd([x['minutes'] for x in rows], 1.0, 2)} |")
        lines.append("")
    return lines, results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", choices=["recipes", "source"])
    ap.add_argument("--bin", required=True, help="the build's examples/ folder (holding ewnet-transfer/, ewnet-train/)")
    ap.add_argument("--datasets", required=True, help="the shared data sets folder")
    ap.add_argument("--out", required=True, help="output folder (runs are kept: a second call reuses them)")
    ap.add_argument("--pairs", nargs="+", default=["caltech", "deeppcb"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--recipes", nargs="+", default=["all", "last-block", "frozen-base-augmented"],
                    help="recipes, the default one first (--baseline adds frozen-base and scratch)")
    ap.add_argument("--variants", nargs="+", default=["constant:0.003", "cosine:0.01"],
                    help="source study: SCHEDULE:RATE each")
    ap.add_argument("--source-from", help="recipes study: reuse the source models of this earlier study's --out")
    ap.add_argument("--transfer-default", default="cosine:0.01",
                    help="source study: the variant ewnet-transfer's source stage runs (its runs are reused)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--source-epochs", type=int, default=30)
    ap.add_argument("--target-epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--extra", default="", help="more options for the programs, in one string")
    a = ap.parse_args()
    a.extra = shlex.split(a.extra)
    os.makedirs(a.out, exist_ok=True)
    lines, results = (recipes_study if a.study == "recipes" else source_study)(a)
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(a.out, f"{a.study}-study.md"), "w") as f:
        f.write(text)
    with open(os.path.join(a.out, f"{a.study}-study.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
