// ewnet-train: trains the paper's model from scratch on an image folder (the source domain).
#include <iostream>

#include <cli.hpp>
#include <pipeline.hpp>

namespace {
const char* kUsage = "ewnet-train DATA_DIR [--out DIR] [--epochs N] [--batch N] [--lr RATE] [--image-size N] "
                     "[--seed N] [--split-file CSV] [--device cpu|cuda] [--resume [--allow-changed-settings]] [--no-progress]";
const char* kHelp =
    "Trains the paper's 67-layer inception-residual model from random weights on DATA_DIR/<class>/<image>.\n"
    "Defaults are the paper's: SGDM with momentum 0.9, batch 64, learning rate 1e-3, up to 320 epochs,\n"
    "a stratified 80/20 training/validation split. Validates every epoch; keeps OUT/best.safetensors and\n"
    "OUT/last.safetensors, and writes log.csv, report.json, training-curves.svg and confusion.svg.\n\n"
    "  --out DIR          output folder (default ewnet-train-run)\n"
    "  --epochs N         epochs (default 320)\n"
    "  --batch N          mini-batch size (default 64)\n"
    "  --lr RATE          learning rate (default 0.001)\n"
    "  --image-size N     square input size, a multiple of 8 (default 224, the paper's; 64 or 112 are quick on a CPU)\n"
    "  --seed N           weights, split, shuffling and augmentation (default 0)\n"
    "  --split-file CSV   take the split from a file (columns file,split; 'train' trains, 'val'/'test' validate)\n"
    "  --device cpu|cuda  where to train (default cpu)\n"
    "  --resume           continue OUT's interrupted run from OUT/last.safetensors\n"
    "  --allow-changed-settings  let --resume continue although the seed, batch, rate, image size or data\n"
    "                     differ from the checkpoint's (refused by default, naming each difference)\n"
    "  --no-progress      no progress bar on stderr\n";
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-train", kUsage, [&] {
    const cli::Args a(argc, argv, {"out", "epochs", "batch", "lr", "image-size", "seed", "split-file", "device"},
                      {"resume", "allow-changed-settings", "no-progress"});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    if (a.positional().size() != 1) throw cli::UsageError("give exactly one data folder");
    pipeline::DataOptions d;
    d.dir = a.positional()[0];
    d.image_size = a.get_int("image-size", 224, 32);
    if (d.image_size % 8) throw cli::UsageError("--image-size must be a multiple of 8");
    d.seed = a.get_seed("seed", 0);
    d.split_file = a.get("split-file", "");
    pipeline::RunOptions r;
    r.epochs = a.get_int("epochs", 320);
    r.batch = a.get_int("batch", 64);
    r.learn_rate = a.get_double("lr", 1e-3);
    r.seed = d.seed;
    r.device = a.get_device();
    r.out_dir = a.get("out", "ewnet-train-run");
    r.resume = a.flag("resume");
    r.allow_changed_settings = a.flag("allow-changed-settings");
    r.progress = !a.flag("no-progress");
    d.batch = r.batch;
    const pipeline::Data data = pipeline::load_data(d, std::cout);
    pipeline::train_scratch(data, r, "source training (from scratch)", d.dir, std::cout);
    return 0;
  });
}
