// ewnet-finetune: transfers a source checkpoint (or pretrained weights) to a target image folder.
#include <iostream>

#include <cli.hpp>
#include <pipeline.hpp>

namespace {
const char* kUsage =
    "ewnet-finetune {SOURCE_CHECKPOINT | --model NAME [--aux] --init FILE [--image-size N]} DATA_DIR [--out DIR] "
    "[--epochs N] [--batch N] [--lr RATE] [--drop-period N] [--drop-factor F] [--recipe NAME] [--base-factor F] "
    "[--train-from LAYER] [--new-layer-factor F] [--seed N] [--split-file CSV] [--device cpu|cuda] "
    "[--no-feature-cache] [--resume [--allow-changed-settings]] [--no-progress]";
const char* kHelp =
    "Loads a checkpoint written by ewnet-train (its best.safetensors), replaces the classifier ('fc') for\n"
    "the classes of DATA_DIR/<class>/<image>, and trains with the paper's schedule (the learning rate halved\n"
    "every 20 epochs) by one of these recipes (docs/transfer-learning.md measures them):\n"
    "  all                    (default) every layer trains from the source's weights, the new classifier\n"
    "                         too, at one rate (--base-factor scales the base's), on augmented images\n"
    "  last-block             the last inception module (at --base-factor) and the head; the rest frozen\n"
    "  frozen-base            the paper's: every layer but the task-specific head frozen (learning-rate\n"
    "                         factor 0: global pooling, dropout, fc, softmax, output)\n"
    "  frozen-base-augmented  the same, but the head trains on augmented images through the frozen base\n"
    "  paper                  frozen-base with the paper's stated settings (up to 320 epochs, batch 64,\n"
    "                         rate 0.001 halved every 20 epochs), printing which settings are ewnet's choice\n"
    "Images are resized to the checkpoint's input size. Momentum 0.9 and L2 1e-4 are MATLAB's\n"
    "trainingOptions('sgdm') defaults, not the paper's (it states none).\n\n"
    "With frozen-base, the frozen base gives an image the same features every epoch: they (the output of\n"
    "the global average pooling, 512 values an image for the paper's model) are computed once for every\n"
    "image, and each epoch trains the head from them, so an epoch costs a fraction of one that runs the\n"
    "base. The images are then not augmented (an augmented image would need new features).\n\n"
    "Instead of a checkpoint from ewnet-train, --model NAME --init FILE starts from any weights for one of\n"
    "the four networks (paper, googlenet, resnet18, inception-v3), e.g. torchvision's ImageNet weights\n"
    "written by tools/torch_to_safetensors.py; images are then cached at --image-size (default 224), and\n"
    "MATLAB's transfer recipe applies: the new classifier learns 10 times faster than the layers below it.\n"
    "--aux builds googlenet or inception-v3 with its auxiliary classifiers (a checkpoint has them when it\n"
    "was trained with them); they are replaced for the new classes like fc, and left out when the layers\n"
    "they read are frozen.\n\n"
    "  --out DIR          output folder (default ewnet-finetune-run)\n"
    "  --epochs N         epochs (default 80; 320 with --recipe paper)\n"
    "  --batch N          mini-batch size (default 64)\n"
    "  --lr RATE          initial learning rate (default 0.001)\n"
    "  --drop-period N    epochs between rate drops (default 20)\n"
    "  --drop-factor F    factor of each drop (default 0.5)\n"
    "  --recipe NAME      all (default), last-block, frozen-base, frozen-base-augmented or paper (above)\n"
    "  --base-factor F    learning-rate factor of the trainable base layers (default 1: the head's rate)\n"
    "  --train-from LAYER train LAYER and everything after it (replaces the recipe's choice): a layer name\n"
    "                     or a module such as inception_4a (or layer4, Mixed_7c, inception5b); 'head' trains\n"
    "                     the head only, 'all' every layer\n"
    "  --new-layer-factor F  learning-rate factor of the new classifier: default 10 (MATLAB's transfer\n"
    "                     recipe) with --init when layers below it train, else 1\n"
    "  --seed N           new classifier's weights, split, shuffling, augmentation (default 0)\n"
    "  --split-file CSV   take the split from a file (columns file,split; 'train' trains, 'val'/'test' validate)\n"
    "  --device cpu|cuda  where to train (default cpu)\n"
    "  --no-feature-cache with frozen-base, run the frozen base every step on augmented images (random\n"
    "                     crop, shift, rotation, flip) instead of training the head from features computed once\n"
    "  --resume           continue OUT's interrupted run from OUT/last.safetensors\n"
    "  --allow-changed-settings  let --resume continue although the seed, batch, rate, image size or data\n"
    "                     differ from the checkpoint's (refused by default, naming each difference)\n"
    "  --no-progress      no progress bar on stderr\n";
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-finetune", kUsage, [&] {
    const cli::Args a(argc, argv,
                      {"out", "epochs", "batch", "lr", "drop-period", "drop-factor", "train-from", "seed",
                       "split-file", "device", "recipe", "base-factor", "model", "init", "image-size",
                       "new-layer-factor"},
                      {"resume", "allow-changed-settings", "no-progress", "no-feature-cache", "aux"});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    const bool from_init = a.has("init");
    if (a.positional().size() != (from_init ? 1u : 2u))
      throw cli::UsageError(from_init ? "with --init give only the data folder"
                                      : "give a source checkpoint and a data folder (or --model NAME --init FILE)");
    if (!from_init && (a.has("model") || a.has("image-size") || a.has("aux")))
      throw cli::UsageError("--model, --aux and --image-size go with --init (a checkpoint fixes them)");
    const std::string source = from_init ? a.get("init", "") : a.positional()[0];
    const double drop_factor = a.get_double("drop-factor", 0.5);
    if (drop_factor <= 0 || drop_factor > 1) throw cli::UsageError("--drop-factor must be in (0, 1]");
    pipeline::DataOptions d;
    d.dir = a.positional()[from_init ? 0 : 1];
    d.seed = a.get_seed("seed", 0);
    d.split_file = a.get("split-file", "");
    pipeline::RunOptions r;
    const std::string recipe = a.get("recipe", pipeline::recipe_name(pipeline::kDefaultRecipe));
    const bool paper = recipe == "paper";  // frozen-base with the paper's stated settings
    r.epochs = a.get_int("epochs", paper ? 320 : 80);
    r.batch = a.get_int("batch", 64);
    r.learn_rate = a.get_double("lr", 1e-3);
    r.seed = d.seed;
    r.device = a.get_device();
    cli::report_cpu_engine();
    r.out_dir = a.get("out", "ewnet-finetune-run");
    r.resume = a.flag("resume");
    r.allow_changed_settings = a.flag("allow-changed-settings");
    r.progress = !a.flag("no-progress");
    r.feature_cache = !a.flag("no-feature-cache");
    r.model = a.get_model();
    r.auxiliary_classifiers = a.get_aux(r.model);
    r.init = a.get("init", "");
    pipeline::FinetuneOptions f;
    f.recipe = paper ? pipeline::Recipe::frozen_base : pipeline::parse_recipe_option(recipe);
    f.base_factor = a.get_double("base-factor", 1);
    if (f.base_factor > 1) throw cli::UsageError("--base-factor must be in (0, 1]");
    f.drop_factor = drop_factor;
    f.drop_period = a.get_int("drop-period", 20);
    f.train_from = a.get("train-from", "");
    // MATLAB's recipe for a pretrained network raises the new layer's factor to 10 so that it
    // learns faster than the layers below it; with the base frozen a factor would only scale the
    // rate, and from an ewnet source the whole model at one rate measured best.
    const bool base_trains = f.train_from.empty() ? (f.recipe == pipeline::Recipe::all ||
                                                      f.recipe == pipeline::Recipe::last_block)
                                                   : f.train_from != "head";
    r.new_layer_factor = a.get_double("new-layer-factor", from_init && base_trains ? 10 : 1);
    d.image_size = from_init ? a.get_int("image-size", 224, 32) : pipeline::checkpoint_image_size(source);
    if (paper)
      pipeline::print_paper_recipe(std::cout, "batch " + std::to_string(r.batch) + ", rate " +
                                                  ewnet::str(r.learn_rate) + " halved every " +
                                                  std::to_string(f.drop_period) + " epochs, up to " +
                                                  std::to_string(r.epochs) + " epochs, 80/20 split, the base "
                                                  "frozen (learning-rate factor 0), only the head trains; the "
                                                  "images at the checkpoint's size (the paper's: 224x224).");
    d.batch = r.batch;
    const pipeline::Data data = pipeline::load_data(d, std::cout);
    if (from_init)
      pipeline::finetune_init(data, r, f, "target fine-tuning (transfer from " + r.init + ")", d.dir, std::cout);
    else
      pipeline::finetune(source, data, r, f, "target fine-tuning (transfer)", d.dir, std::cout);
    return 0;
  });
}
