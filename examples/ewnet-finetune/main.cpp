// ewnet-finetune: transfers a source checkpoint to a target image folder (the paper's fine-tuning).
#include <iostream>

#include <cli.hpp>
#include <pipeline.hpp>

namespace {
const char* kUsage = "ewnet-finetune {SOURCE_CHECKPOINT | --model NAME --init FILE [--image-size N]} DATA_DIR [--out DIR] [--epochs N] [--batch N] [--lr RATE] "
                     "[--drop-period N] [--drop-factor F] [--train-from LAYER] [--seed N] [--split-file CSV] "
                     "[--device cpu|cuda] [--new-layer-factor F] [--no-feature-cache] [--resume] [--no-progress]";
const char* kHelp =
    "Loads a checkpoint written by ewnet-train (its best.safetensors), replaces the classifier ('fc') for\n"
    "the classes of DATA_DIR/<class>/<image>, freezes every layer but the task-specific head (learning-rate\n"
    "factor 0: global pooling, dropout, fc, softmax, output), and trains with the paper's schedule: the\n"
    "learning rate halved every 20 epochs. Images are resized to the checkpoint's input size. Momentum 0.9\n"
    "and L2 1e-4 are MATLAB's trainingOptions('sgdm') defaults, not the paper's (it states none).\n\n"
    "With only the head training (the default), the frozen base gives an image the same features every\n"
    "epoch: they (the output of 'pool5-gap', 512 values an image) are computed once for every image, and\n"
    "each epoch trains the head from them, so an epoch costs a fraction of one that runs the base. The\n"
    "images are then not augmented (an augmented image would need new features). --no-feature-cache runs\n"
    "the whole model on augmented images every step instead; so does --train-from a layer before the head.\n\n"
    "Instead of a checkpoint from ewnet-train, --model NAME --init FILE starts from any weights for one of\n"
    "the four networks (paper, googlenet, resnet18, inception-v3), e.g. torchvision's ImageNet weights\n"
    "written by tools/torch_to_safetensors.py; images are then cached at --image-size (default 224).\n\n"
    "  --out DIR          output folder (default ewnet-finetune-run)\n"
    "  --epochs N         epochs (default 80)\n"
    "  --batch N          mini-batch size (default 64)\n"
    "  --lr RATE          initial learning rate (default 0.001)\n"
    "  --drop-period N    epochs between rate drops (default 20)\n"
    "  --drop-factor F    factor of each drop (default 0.5)\n"
    "  --train-from LAYER train LAYER and everything after it: a layer name or a module such as\n"
    "                     inception_4a (or layer4, Mixed_7c, inception5b); 'head' (default) trains the head\n"
    "                     only, 'all' every layer (MATLAB's transfer recipe for a pretrained network)\n"
    "  --new-layer-factor F  learning-rate factor of the new classifier: default 10 (MATLAB's transfer\n"
    "                     recipe) with --train-from below the head, 1 for the head alone (where a factor\n"
    "                     would only scale --lr)\n"
    "  --seed N           new classifier's weights, split, shuffling, augmentation (default 0)\n"
    "  --split-file CSV   take the split from a file (columns file,split; 'train' trains, 'val'/'test' validate)\n"
    "  --device cpu|cuda  where to train (default cpu)\n"
    "  --no-feature-cache run the frozen base every step, on augmented images (random crop, shift,\n"
    "                     rotation, flip), instead of training the head from features computed once\n"
    "  --resume           continue OUT's interrupted run from OUT/last.safetensors\n"
    "  --no-progress      no progress bar on stderr\n";
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-finetune", kUsage, [&] {
    const cli::Args a(argc, argv,
                      {"out", "epochs", "batch", "lr", "drop-period", "drop-factor", "train-from", "seed",
                       "split-file", "device", "model", "init", "image-size", "new-layer-factor"},
                      {"resume", "no-progress", "no-feature-cache"});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    const bool from_init = a.has("init");
    if (a.positional().size() != (from_init ? 1u : 2u))
      throw cli::UsageError(from_init ? "with --init give only the data folder"
                                      : "give a source checkpoint and a data folder (or --model NAME --init FILE)");
    if (!from_init && (a.has("model") || a.has("image-size")))
      throw cli::UsageError("--model and --image-size go with --init (a checkpoint fixes both)");
    const std::string source = from_init ? a.get("init", "") : a.positional()[0];
    const double drop_factor = a.get_double("drop-factor", 0.5);
    if (drop_factor <= 0 || drop_factor > 1) throw cli::UsageError("--drop-factor must be in (0, 1]");
    pipeline::DataOptions d;
    d.dir = a.positional()[from_init ? 0 : 1];
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
    r.progress = !a.flag("no-progress");
    r.feature_cache = !a.flag("no-feature-cache");
    r.model = a.get_model();
    r.init = a.get("init", "");
    // MATLAB's recipe raises the new layer's factor to 10 so that it learns faster than the
    // pretrained layers; when they are frozen (head only) a factor would only scale the rate.
    r.new_layer_factor = a.get_double("new-layer-factor", a.get("train-from", "head") == "head" ? 1 : 10);
    const int drop_period = a.get_int("drop-period", 20);
    d.image_size = from_init ? a.get_int("image-size", 224, 32) : pipeline::checkpoint_image_size(source);
    const pipeline::Data data = pipeline::load_data(d, std::cout);
    if (from_init)
      pipeline::finetune_init(data, r, a.get("train-from", "head"), drop_factor, drop_period,
                              "target fine-tuning (transfer from " + r.init + ")", d.dir, std::cout);
    else
      pipeline::finetune(source, data, r, a.get("train-from", "head"), drop_factor, drop_period,
                         "target fine-tuning (transfer)", d.dir, std::cout);
    return 0;
  });
}
