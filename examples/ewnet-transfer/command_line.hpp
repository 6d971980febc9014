// command_line.hpp: what ewnet-transfer accepts: its usage line, its --help text, and its options
// parsed into a Run, with the defaults they fall back to (on the generated data, on real data, or
// the paper's stated settings with --recipe paper).
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <cli.hpp>
#include <data.hpp>
#include <options.hpp>

namespace {
const char* kUsage = "ewnet-transfer [--source DIR --target DIR] [--out DIR] [--recipe NAME] [--baseline] "
                     "[--compare LIST] [--image-size N] [--resize squash|crop] [--source-epochs N] [--target-epochs N] "
                     "[--batch N] [--lr RATE] [--source-schedule cosine|constant] [--warmup N] [--target-lr RATE] "
                     "[--finetune-lr RATE] [--base-factor F] [--drop-period N] [--seed N] [--device cpu|cuda] "
                     "[--precision fp32|bf16] [--model NAME [--aux]] [--init FILE] [--new-layer-factor F] "
                     "[--augment standard|strong] "
                     "[--unlabeled DIR [--semi-supervised METHOD] [--transductive] [--threshold T] "
                     "[--unlabeled-weight W] [--unlabeled-ratio N] [--no-distribution-alignment]] [--resume] "
                     "[--no-progress]";
const char* kHelp =
    "Runs the transfer pipeline: (1) trains the 67-layer model from scratch on the source domain, (2)\n"
    "fine-tunes its best checkpoint on the target domain by a recipe, and (3) with --baseline also runs the\n"
    "paper's recipe and trains the same model from scratch on the target for the same number of epochs and\n"
    "the same schedule, so that the summary shows what transfer gained and whether that is more than the\n"
    "noise of the validation set.\n\n"
    "Fine-tuning recipes (docs/transfer-learning.md measures each over seeds on the shared pairs):\n"
    "  all                    (default) every layer trains from the source's weights, the new head too, at\n"
    "                         one rate (--base-factor scales the base's), on augmented images\n"
    "  last-block             the last inception module (at --base-factor) and the head, the rest frozen\n"
    "  frozen-base            the paper's: the base frozen, only the head trains, from features computed once\n"
    "  frozen-base-augmented  the base frozen, the head trains on augmented images through it\n"
    "  paper                  frozen-base with every setting the paper states: 224x224, batch 64, rate 0.001\n"
    "                         (source constant; target halved every 20 epochs), 320 source epochs, 80/20 split\n\n"
    "With no --source/--target it writes and uses a small GENERATED data set (procedurally drawn device-like\n"
    "objects, 8 source and 4 target classes sharing their parts, into OUT/generated-data) and turns\n"
    "--baseline on; at 48x48 it finishes in a few minutes on 2 CPU cores. On real data the defaults are\n"
    "64x64 images, 30 source and 30 target epochs, mini-batches of 16 and a constant source rate of 0.003\n"
    "(a warm-up with a cosine decay measured no better: docs/transfer-learning.md).\n\n"
    "  --source DIR, --target DIR   image folders ROOT/<class>/<image> (give both or neither)\n"
    "  --out DIR          output folder (default ewnet-transfer-run): source/, transfer-RECIPE/ for each recipe\n"
    "                     run, scratch/, comparison.svg, summary.json\n"
    "  --recipe NAME      the fine-tuning recipe (above; default all)\n"
    "  --baseline         also run the paper's recipe (frozen-base) and train the target from scratch\n"
    "  --compare LIST     more recipes to run beside, comma-separated (e.g. last-block,frozen-base-augmented)\n"
    "  --image-size N     square input size (paper: 224; with --init the size the weights were made for):\n"
    "                     a multiple of 8 for the paper's model, any from 32 (75 for inception-v3) for\n"
    "                     torchvision's networks\n"
    "  --resize squash|crop  how images reach that size: squash (default; with --init the file's own) or\n"
    "                     crop, torchvision's Resize + CenterCrop; recorded in every stage's checkpoints\n"
    "  --source-epochs N  source training epochs (paper: up to 320)\n"
    "  --target-epochs N  fine-tuning (and baseline) epochs\n"
    "  --batch N          mini-batch size (default 16)\n"
    "  --lr RATE          source learning rate (default 0.003 constant, 0.01 with cosine)\n"
    "  --source-schedule S  constant (default) or cosine (--warmup epochs rising, then half a cosine down to\n"
    "                     1% of the rate)\n"
    "  --warmup N         warm-up epochs of the cosine schedule (default 2)\n"
    "  --target-lr RATE   initial target learning rate of the from-scratch baseline (default 0.003)\n"
    "  --finetune-lr RATE initial fine-tuning rate of the new head (default 0.01)\n"
    "  --base-factor F    learning-rate factor of the base layers that train (default 1: the whole model at\n"
    "                     the head's rate, which beat 0.1, MATLAB's ratio, and 0.3 on the shared pairs)\n"
    "  --drop-period N    target schedule: rate halved every N epochs (default 20, the paper's)\n"
    "  --no-feature-cache frozen-base: run the frozen base every step on augmented images\n"
    "  --source-split-file CSV, --target-split-file CSV   splits from files instead of a seeded 80/20\n"
    "  --seed N           everything random, the splits too (default 0)\n"
    "  --device cpu|cuda  where to train (default cpu)\n"
    "  --precision fp32|bf16  bf16: convolutions and fully connected layers in bfloat16, float32 weights\n"
    "                     and sums (the CPU, with AVX512-BF16 or AMX; default fp32)\n"
    "  --resume           continue an interrupted run in OUT (finished stages are not repeated)\n"
    "  --no-progress      no progress bar on stderr\n"
    "  --model NAME       the network of all three stages: paper (default), googlenet, resnet18 or\n"
    "                     inception-v3 (torchvision's, docs/model.md; inception-v3 needs --image-size 75+)\n"
    "  --aux              with googlenet or inception-v3: train their auxiliary classifiers too (extra\n"
    "                     losses weighted 0.3 and 0.4 in training only; inception-v3's needs 299x299 images)\n"
    "  --init FILE        start the source training from these weights (tools/torch_to_safetensors.py's\n"
    "                     output, e.g. torchvision's ImageNet weights, or an ewnet checkpoint) instead of\n"
    "                     random ones; a classifier for another class count is replaced (MATLAB's recipe)\n"
    "  --new-layer-factor F  learning-rate factor of a replaced classifier: in the source stage from --init,\n"
    "                     default 10 (MATLAB's transfer recipe); in fine-tuning from the source model,\n"
    "                     default 1 (the whole model at one rate measured best)\n"
    "  --augment KIND     standard (default) or strong (RandAugment and cutout first) for the labelled images\n"
    "  --unlabeled DIR    a folder of unlabelled target images (any layout; no label is read): a further stage\n"
    "                     fine-tunes by the recipe learning from them too (OUT/semi-supervised), and the summary\n"
    "                     weighs it against the recipe without them. They must not include a target validation\n"
    "                     image (compared by content) unless --transductive asks for that setting\n"
    "  --semi-supervised METHOD  mmd (default), coral or cmd (the target's pooled features aligned with the\n"
    "                     source images'), fixmatch (pseudo-labels), entropy, or terms joined by '+'\n"
    "  --transductive     let the unlabelled images include the validation images (their labels are never read)\n"
    "  --threshold T, --unlabeled-weight W, --unlabeled-ratio N, --no-distribution-alignment   FixMatch's\n"
    "                     confidence threshold (0.95), weight (1), unlabelled images a labelled one (1), and\n"
    "                     distribution alignment (on)\n";

using namespace ewnet::transfer;

/// What the command line asks for.
struct Run {
  std::string out;
  bool generated = false, baseline = false;
  Recipe recipe;
  pipeline::DataOptions source, target;  // their folders once known
  ewnet::train::TrainOptions train;      // what every stage shares
  Network network;                       // of every stage
  FinetuneOptions finetune;
  std::optional<pipeline::UnlabeledChoice> unlabeled;  // the semi-supervised stage
  std::vector<Method> methods;           // the transfer stages: the recipe's, the paper's, --compare's
  int source_epochs = 0, target_epochs = 0, drop_period = 20;
  pipeline::ScheduleChoice source_schedule;
  double source_lr = 0, target_lr = 0, finetune_lr = 0;
};

/// A run's defaults: on the generated data, on real data, or the paper's stated settings.
struct Defaults {
  int image_size, batch, source_epochs, target_epochs;
  double source_rate, target_rate, finetune_rate;
};
constexpr Defaults kGenerated{48, 16, 20, 12, 3e-3, 3e-3, 1e-2}, kReal{64, 16, 30, 30, 3e-3, 3e-3, 1e-2};
Defaults stated_defaults(const PaperSettings& p) {
  return {p.image_size, p.batch, p.epochs, p.epochs, p.source_rate, p.target_rate, p.target_rate};
}

Run parse(const cli::Args& a) {
  if (!a.positional().empty()) throw cli::UsageError("unexpected argument '" + a.positional()[0] + "'");
  if (a.has("source") != a.has("target")) throw cli::UsageError("give both --source and --target, or neither");
  Run r;
  r.generated = !a.has("source");
  r.out = a.get("out", "ewnet-transfer-run");
  // --recipe paper states the paper's settings: they are the defaults; options given still win.
  r.recipe = pipeline::recipe_option(a);
  const Defaults def = r.recipe.stated ? stated_defaults(*r.recipe.stated) : r.generated ? kGenerated : kReal;
  r.source.seed = a.get_seed("seed", 0);
  r.baseline = a.flag("baseline") || r.generated;
  r.train = pipeline::run_options(a, r.out, r.source.seed);
  r.train.batch = a.get_int("batch", def.batch);
  r.train.strong_augment = pipeline::augment_option(a);
  r.unlabeled = pipeline::unlabeled_options(a);
  r.network = pipeline::network_options(a, 10);  // --init's replaced classifier: MATLAB's factor 10
  pipeline::geometry_options(a, r.network, def.image_size, r.source);
  r.source_epochs = a.get_int("source-epochs", def.source_epochs);
  r.target_epochs = a.get_int("target-epochs", def.target_epochs);
  r.source_schedule = pipeline::schedule_option(a, "source-schedule", "source-epochs", r.source_epochs);
  r.source_lr = a.get_double("lr", r.source_schedule.cosine && !r.recipe.stated ? 1e-2 : def.source_rate);
  r.target_lr = a.get_double("target-lr", def.target_rate);
  r.finetune_lr = a.get_double("finetune-lr", def.finetune_rate);
  // From an ewnet source the whole model at one rate measured best (docs/transfer-learning.md).
  r.finetune = pipeline::finetune_options(a, r.recipe, 1);
  r.drop_period = a.get_int("drop-period", 20);
  r.methods = {r.recipe.method};
  auto add = [&](Method m) {
    if (std::find(r.methods.begin(), r.methods.end(), m) == r.methods.end()) r.methods.push_back(m);
  };
  if (r.baseline) add(Method::frozen_base);
  for (Method m : pipeline::compare_option(a)) add(m);
  r.source.dir = a.get("source", "");
  r.source.split_file = a.get("source-split-file", "");
  r.source.batch = r.train.batch;
  r.source.network = pipeline::footprint(r.network.model, r.network.auxiliary_classifiers);
  r.target = r.source;
  r.target.dir = a.get("target", "");
  r.target.split_file = a.get("target-split-file", "");
  return r;
}

/// What --recipe paper says the paper states, as this run has it.
std::string stated(const Run& r) {
  return ewnet::str(r.source.image_size, "x", r.source.image_size, " images, batch ", r.train.batch, ", source rate ",
                    r.source_lr, " (constant), target rate ", r.finetune_lr, " halved every ", r.drop_period,
                    " epochs, ", r.source_epochs, " + ", r.target_epochs, " epochs, 80/20 split, the base frozen "
                    "(learning-rate factor 0), only the task-specific head trains.");
}
}  // namespace
