// ewnet-finetune: transfers a source checkpoint to a target image folder (the paper's fine-tuning).
#include <iostream>

#include <cli.hpp>
#include <pipeline.hpp>

namespace {
const char* kUsage = "ewnet-finetune SOURCE_CHECKPOINT DATA_DIR [--out DIR] [--epochs N] [--batch N] [--lr RATE] "
                     "[--drop-period N] [--drop-factor F] [--train-from LAYER] [--seed N] [--split-file CSV] "
                     "[--device cpu|cuda] [--no-feature-cache] [--resume [--allow-changed-settings]] [--no-progress]";
const char* kHelp =
    "Loads a checkpoint written by ewnet-train (its best.safetensors), replaces the classifier ('fc') for\n"
    "the classes of DATA_DIR/<class>/<image>, freezes every layer but the task-specific head (learning-rate\n"
    "factor 0: global pooling, dropout, fc, softmax, output), and trains with the paper's schedule: the\n"
    "learning rate halved every 20 epochs. Images are resized to the checkpoint's input size.\n\n"
    "With only the head training (the default), the frozen base gives an image the same features every\n"
    "epoch: they (the output of 'pool5-gap', 512 values an image) are computed once for every image, and\n"
    "each epoch trains the head from them, so an epoch costs a fraction of one that runs the base. The\n"
    "images are then not augmented (an augmented image would need new features). --no-feature-cache runs\n"
    "the whole model on augmented images every step instead; so does --train-from a layer before the head.\n\n"
    "  --out DIR          output folder (default ewnet-finetune-run)\n"
    "  --epochs N         epochs (default 80)\n"
    "  --batch N          mini-batch size (default 64)\n"
    "  --lr RATE          initial learning rate (default 0.001)\n"
    "  --drop-period N    epochs between rate drops (default 20)\n"
    "  --drop-factor F    factor of each drop (default 0.5)\n"
    "  --train-from LAYER train LAYER and everything after it: a layer name or a module such as\n"
    "                     inception_4a; 'head' (default) trains the head only, 'all' every layer\n"
    "  --seed N           new classifier's weights, split, shuffling, augmentation (default 0)\n"
    "  --split-file CSV   take the split from a file (columns file,split; 'train' trains, 'val'/'test' validate)\n"
    "  --device cpu|cuda  where to train (default cpu)\n"
    "  --no-feature-cache run the frozen base every step, on augmented images (random crop, shift,\n"
    "                     rotation, flip), instead of training the head from features computed once\n"
    "  --resume           continue OUT's interrupted run from OUT/last.safetensors\n"
    "  --allow-changed-settings  let --resume continue although the seed, batch, rate, image size or data\n"
    "                     differ from the checkpoint's (refused by default, naming each difference)\n"
    "  --no-progress      no progress bar on stderr\n";
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-finetune", kUsage, [&] {
    const cli::Args a(argc, argv,
                      {"out", "epochs", "batch", "lr", "drop-period", "drop-factor", "train-from", "seed",
                       "split-file", "device"},
                      {"resume", "allow-changed-settings", "no-progress", "no-feature-cache"});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    if (a.positional().size() != 2) throw cli::UsageError("give a source checkpoint and a data folder");
    const std::string source = a.positional()[0];
    const double drop_factor = a.get_double("drop-factor", 0.5);
    if (drop_factor <= 0 || drop_factor > 1) throw cli::UsageError("--drop-factor must be in (0, 1]");
    pipeline::DataOptions d;
    d.dir = a.positional()[1];
    d.seed = a.get_seed("seed", 0);
    d.split_file = a.get("split-file", "");
    pipeline::RunOptions r;
    r.epochs = a.get_int("epochs", 80);
    r.batch = a.get_int("batch", 64);
    r.learn_rate = a.get_double("lr", 1e-3);
    r.seed = d.seed;
    r.device = a.get_device();
    r.out_dir = a.get("out", "ewnet-finetune-run");
    r.resume = a.flag("resume");
    r.allow_changed_settings = a.flag("allow-changed-settings");
    r.progress = !a.flag("no-progress");
    r.feature_cache = !a.flag("no-feature-cache");
    const int drop_period = a.get_int("drop-period", 20);
    d.image_size = pipeline::checkpoint_image_size(source);
    d.batch = r.batch;
    const pipeline::Data data = pipeline::load_data(d, std::cout);
    pipeline::finetune(source, data, r, a.get("train-from", "head"), drop_factor, drop_period,
                       "target fine-tuning (transfer)", d.dir, std::cout);
    return 0;
  });
}
