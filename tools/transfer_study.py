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
  semi     Semi-supervised fine-tuning. For each pair and seed the target is split 80/20 per class
           (seeded); its training part is cut to N labelled images a class (the first N of a seeded
           shuffle, so the 5 of a seed are among its 10) and the rest of it becomes an unlabelled
           folder (files renamed, no class folders: nothing of a label is left); validation stays
           as it is. The source model (--source-models, or one ewnet-train run per pair and seed)
           is fine-tuned by ewnet-finetune with every method: `supervised` (the labelled images
           alone, the default recipe `all`) and each semi-supervised method (--semi-supervised,
           with --unlabeled, and --source-images for the alignment methods). Reports best, final
           and mean-over-epochs accuracy and the time an epoch, each method's gain over supervised
           per seed, and whether it is never worse at any seed.

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
  tools/transfer_study.py semi --bin build/examples --datasets ../shared/datasets --out study-semi \\
      --pairs caltech deeppcb --seeds 1 2 3 --labels 5 10 --methods supervised fixmatch mmd entropy fixmatch+mmd
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


def cut_target(target, out, pair, seed, labels):
    """The target of one seed cut for the semi-supervised study: OUT/data/semi/PAIR-seedS-nN/ holding
    labelled/<class>/<file> (N a class, and the validation images) with split.csv, and unlabeled/
    (the rest of the training part, flat, renamed). Symbolic links to the original files."""
    root = os.path.join(out, "data", "semi", f"{pair}-seed{seed}-n{labels}")
    if os.path.isdir(root):
        return root
    rng = random.Random(seed)
    rows, pool = [], []
    for c in sorted(os.listdir(target)):
        folder = os.path.join(target, c)
        if not os.path.isdir(folder) or c.startswith((".", "_")):
            continue
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXT) and not f.startswith("."))
        rng.shuffle(files)
        n_val = max(1, round(len(files) * 0.2))
        validation, train = files[:n_val], files[n_val:]
        if len(train) <= labels:
            sys.exit(f"transfer_study: {folder} has {len(train)} training images, not more than {labels}")
        os.makedirs(os.path.join(root, "labelled", c))
        for f in validation + train[:labels]:
            os.symlink(os.path.abspath(os.path.join(folder, f)), os.path.join(root, "labelled", c, f))
        rows += [(f"{c}/{f}", "val") for f in validation] + [(f"{c}/{f}", "train") for f in train[:labels]]
        pool += [os.path.join(folder, f) for f in train[labels:]]
    random.Random(seed + 1).shuffle(pool)
    os.makedirs(os.path.join(root, "unlabeled"))
    for i, path in enumerate(pool):
        os.symlink(os.path.abspath(path), os.path.join(root, "unlabeled", f"u{i:04d}{os.path.splitext(path)[1].lower()}"))
    with open(os.path.join(root, "split.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "split"])
        w.writerows(rows)
    return root


def source_model(a, pair, seed, source):
    """The source checkpoint of a pair and seed: --source-models' file, or an ewnet-train run."""
    if a.source_models:
        path = a.source_models.format(pair=pair, seed=seed)
        if not os.path.exists(path):
            sys.exit(f"transfer_study: no source model {path}")
        return path
    out = os.path.join(a.out, "sources", f"{pair}-seed{seed}")
    if not os.path.exists(os.path.join(out, "best.safetensors")):
        os.makedirs(out, exist_ok=True)
        print(f"[{time.strftime('%H:%M:%S')}] source {pair} seed {seed}", flush=True)
        run([os.path.join(a.bin, "ewnet-train", "ewnet-train"), source, "--out", out, "--epochs", str(a.source_epochs),
             "--batch", str(a.batch), "--lr", "0.01", "--schedule", "cosine", "--warmup", "2",
             "--image-size", str(a.image_size), "--seed", str(seed), "--no-progress"], out + ".log")
    return os.path.join(out, "best.safetensors")


def semi_run(a, pair, seed, labels, method, model, source, cut):
    """One fine-tuning run; returns its figures from report.json and log.csv."""
    out = os.path.join(a.out, "runs", f"{pair}-seed{seed}-n{labels}-{method}")
    report = os.path.join(out, "report.json")
    if not os.path.exists(report):
        cmd = [os.path.join(a.bin, "ewnet-finetune", "ewnet-finetune"), model, os.path.join(cut, "labelled"),
               "--split-file", os.path.join(cut, "split.csv"), "--out", out, "--epochs", str(a.target_epochs),
               "--batch", str(a.batch), "--lr", str(a.finetune_lr), "--drop-period", str(a.drop_period),
               "--seed", str(seed), "--no-progress"]
        if method != "supervised":
            cmd += ["--unlabeled", os.path.join(cut, "unlabeled"), "--semi-supervised", method]
            if any(t in method.split("+") for t in ("mmd", "coral", "cmd")):
                cmd += ["--source-images", source]
        os.makedirs(out, exist_ok=True)
        print(f"[{time.strftime('%H:%M:%S')}] {pair} seed {seed}, {labels} a class: {method}", flush=True)
        run(cmd + a.extra, out + ".log")
    with open(report) as f:
        r = json.load(f)
    acc = validation_accuracies(out)
    with open(os.path.join(out, "log.csv")) as f:
        elapsed = [float(row["time_elapsed_s"]) for row in csv.DictReader(f)]
    # An epoch's time (its validation included) without the first, which also starts the engine up.
    per_epoch = (elapsed[-1] - elapsed[0]) / (len(elapsed) - 1) if len(elapsed) > 1 else elapsed[0]
    return {"best": max(acc), "final": acc[-1], "mean": statistics.mean(acc), "seconds_per_epoch": per_epoch,
            "semi_supervised": r.get("semi_supervised", {})}


def semi_study(a):
    lines = [f"# Semi-supervised fine-tuning over seeds {', '.join(map(str, a.seeds))}", "",
             f"{a.image_size}x{a.image_size}, {a.target_epochs} target epochs (rate {a.finetune_lr} halved every "
             f"{a.drop_period}), batch {a.batch}, recipe `all`; the target's training part cut to N labelled images a "
             "class, the rest of it unlabelled, validation untouched. Accuracies in % on the validation split "
             "(mean ± standard deviation over seeds); time an epoch in seconds.", ""]
    results = {}
    for pair in a.pairs:
        source, target = pair_folders(pair, a.datasets, a.out)
        for labels in a.labels:
            per = {m: [] for m in a.methods}
            for seed in a.seeds:
                model = source_model(a, pair, seed, source)
                cut = cut_target(target, a.out, pair, seed, labels)
                for m in a.methods:
                    per[m].append(semi_run(a, pair, seed, labels, m, model, source, cut))
            results[f"{pair}/{labels}"] = per
            cut = cut_target(target, a.out, pair, a.seeds[0], labels)
            n_val = sum(1 for _, split in csv.reader(open(os.path.join(cut, "split.csv"))) if split == "val")
            n_unl = len(os.listdir(os.path.join(cut, "unlabeled")))
            base = per.get("supervised")
            lines += [f"## {pair}: {source_name(source)} -> {source_name(target)}, {labels} labelled images a class", "",
                      f"{n_unl} unlabelled images, {n_val} validation images (one is {100 / n_val:.1f} points).", "",
                      "| method | best | final | mean over epochs | s / epoch | x supervised | best-epoch gain per seed | "
                      "never worse |", "|---|---|---|---|---|---|---|---|"]
            for m in a.methods:
                rows = per[m]
                ratio = gain = worse = ""
                if base and m != "supervised":
                    ratio = f"{statistics.mean(r['seconds_per_epoch'] for r in rows) / statistics.mean(r['seconds_per_epoch'] for r in base):.1f}"
                    gains = [100 * (r["best"] - b["best"]) for r, b in zip(rows, base)]
                    gain = " ".join(f"{g:+.1f}" for g in gains) + f" (mean {statistics.mean(gains):+.1f})"
                    worse = "yes" if all(g >= 0 for g in gains) else "no"
                lines.append(f"| {m} | {mean_sd([r['best'] for r in rows])} | {mean_sd([r['final'] for r in rows])} | "
                             f"{mean_sd([r['mean'] for r in rows])} | "
                             f"{mean_sd([r['seconds_per_epoch'] for r in rows], 1.0, 2)} | {ratio} | {gain} | {worse} |")
            lines.append("")
    return lines, results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", choices=["recipes", "source", "semi"])
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
    ap.add_argument("--labels", nargs="+", type=int, default=[5, 10], help="semi study: labelled images a class")
    ap.add_argument("--methods", nargs="+", default=["supervised", "fixmatch", "mmd", "entropy", "fixmatch+mmd"],
                    help="semi study: supervised and ewnet-finetune --semi-supervised methods")
    ap.add_argument("--source-models", help="semi study: source checkpoints, a path with {pair} and {seed} "
                    "(default: one ewnet-train run each, cosine 0.01 with 2 warm-up epochs)")
    ap.add_argument("--finetune-lr", type=float, default=0.01, help="semi study: fine-tuning rate")
    ap.add_argument("--drop-period", type=int, default=20, help="semi study: the rate halves every N epochs")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--source-epochs", type=int, default=30)
    ap.add_argument("--target-epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--extra", default="", help="more options for the programs, in one string")
    a = ap.parse_args()
    a.extra = shlex.split(a.extra)
    os.makedirs(a.out, exist_ok=True)
    lines, results = {"recipes": recipes_study, "source": source_study, "semi": semi_study}[a.study](a)
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(a.out, f"{a.study}-study.md"), "w") as f:
        f.write(text)
    with open(os.path.join(a.out, f"{a.study}-study.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
