// ewnet-transfer: the whole pipeline in one command: train on the source domain, fine-tune on the
// target, and (with --baseline) train the target from scratch for comparison.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <cli.hpp>
#include <ewnet/data/generated.hpp>
#include <pipeline.hpp>

namespace {
const char* kUsage = "ewnet-transfer [--source DIR --target DIR] [--out DIR] [--recipe NAME] [--baseline] "
                     "[--compare LIST] [--image-size N] [--source-epochs N] [--target-epochs N] [--batch N] "
                     "[--lr RATE] [--source-schedule cosine|constant] [--warmup N] [--target-lr RATE] "
                     "[--finetune-lr RATE] [--base-factor F] [--drop-period N] [--seed N] [--device cpu|cuda] "
                     "[--model NAME [--aux]] [--init FILE] [--new-layer-factor F] [--resume] [--no-progress]";
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
    "  --image-size N     square input size, a multiple of 8 (paper: 224)\n"
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
    "                     default 1 (the whole model at one rate measured best)\n";

ewnet::train::Series accuracy_series(const ewnet::train::History& h, const std::string& name, const char* colour) {
  ewnet::train::Series s{name, {}, {}, colour, false, true, 2.0, 1.0};
  for (const auto& r : h.epochs) {
    s.x.push_back(r.epoch);
    s.y.push_back(100 * r.val_accuracy);
  }
  return s;
}
ewnet::train::Series loss_series(const ewnet::train::History& h, const std::string& name, const char* colour) {
  ewnet::train::Series s{name, {}, {}, colour, false, true, 2.0, 1.0};
  for (const auto& r : h.epochs) {
    s.x.push_back(r.epoch);
    s.y.push_back(r.val_loss);
  }
  return s;
}
/// Validation accuracy averaged over the epochs: the area under the curve of comparison.svg, the
/// fairer measure of "better at equal epochs" on a small validation set than one best epoch.
double mean_val_accuracy(const ewnet::train::History& h) {
  double s = 0;
  for (const auto& r : h.epochs) s += r.val_accuracy;
  return h.epochs.empty() ? 0.0 : s / double(h.epochs.size());
}

/// " (transfer +12.3 +- 4.5 points)": the chosen recipe's gain over scratch for the picture's title.
std::string str_points(double diff, double noise) {
  char b[96];
  std::snprintf(b, sizeof b, " (transfer %+.1f points over the epochs, noise +-%.1f)", diff, noise);
  return b;
}

ewnet::json::Value stage(const ewnet::train::History& h, const std::string& dir) {
  ewnet::json::Value v = ewnet::json::Value::object();
  v["folder"] = dir;
  v["epochs"] = int(h.epochs.size());
  v["best_epoch"] = h.best_epoch;
  v["best_validation_accuracy"] = h.best_val_accuracy;
  v["final_validation_accuracy"] = h.epochs.empty() ? 0.0 : h.epochs.back().val_accuracy;
  v["mean_validation_accuracy"] = mean_val_accuracy(h);
  v["seconds"] = h.seconds;
  v["seconds_per_epoch"] = h.seconds_per_epoch();
  return v;
}

/// A stage's line in the summary, and what the comparison needs of it.
struct Stage {
  std::string name, folder;
  ewnet::train::History history;
};

/// The standard error of a validation accuracy p measured on n images: sqrt(p (1 - p) / n).
double standard_error(double p, size_t n) { return n ? std::sqrt(std::max(p * (1 - p), 0.0) / double(n)) : 0.0; }

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-transfer", kUsage, [&] {
    const cli::Args a(argc, argv,
                      {"source", "target", "out", "image-size", "source-epochs", "target-epochs", "batch", "lr",
                       "target-lr", "finetune-lr", "drop-period", "seed", "device", "source-split-file",
                       "target-split-file", "recipe", "compare", "base-factor", "source-schedule", "warmup",
                       "model", "init", "new-layer-factor"},
                      {"baseline", "resume", "no-progress", "no-feature-cache", "aux"});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    if (!a.positional().empty()) throw cli::UsageError("unexpected argument '" + a.positional()[0] + "'");
    if (a.has("source") != a.has("target")) throw cli::UsageError("give both --source and --target, or neither");
    const bool generated = !a.has("source");
    const std::string out = a.get("out", "ewnet-transfer-run");
    const std::uint64_t seed = a.get_seed("seed", 0);
    std::string source_dir = a.get("source", ""), target_dir = a.get("target", "");

    // --recipe paper: the paper's recipe with every setting it states; options given still win.
    const std::string recipe_option = a.get("recipe", pipeline::recipe_name(pipeline::kDefaultRecipe));
    const bool paper = recipe_option == "paper";
    const pipeline::Recipe recipe =
        paper ? pipeline::Recipe::frozen_base : pipeline::parse_recipe_option(recipe_option);
    const int image_size = a.get_int("image-size", paper ? 224 : generated ? 48 : 64, 32);
    if (image_size % 8) throw cli::UsageError("--image-size must be a multiple of 8");
    const bool baseline = a.flag("baseline") || generated;

    pipeline::RunOptions r;
    r.batch = a.get_int("batch", paper ? 64 : 16);
    r.seed = seed;
    r.device = a.get_device();
    cli::report_cpu_engine();
    r.resume = a.flag("resume");
    r.progress = !a.flag("no-progress");
    r.feature_cache = !a.flag("no-feature-cache");
    r.model = a.get_model();
    r.auxiliary_classifiers = a.get_aux(r.model);
    r.init = a.get("init", "");
    // A classifier replaced when --init's class count differs learns at MATLAB's factor 10.
    r.new_layer_factor = a.get_double("new-layer-factor", 10);
    const int source_epochs = a.get_int("source-epochs", paper ? 320 : generated ? 20 : 30);
    const int target_epochs = a.get_int("target-epochs", paper ? 320 : generated ? 12 : 30);
    const std::string source_schedule = a.get("source-schedule", "constant");
    if (source_schedule != "cosine" && source_schedule != "constant")
      throw cli::UsageError("--source-schedule must be cosine or constant, got '" + source_schedule + "'");
    const bool cosine = source_schedule == "cosine";
    const double source_lr = a.get_double("lr", paper ? 1e-3 : cosine ? 1e-2 : 3e-3);
    const int warmup = a.get_int("warmup", 2, 0);
    if (cosine && warmup >= source_epochs) throw cli::UsageError("--warmup must be less than --source-epochs");
    const double target_lr = a.get_double("target-lr", paper ? 1e-3 : 3e-3);
    const double finetune_lr = a.get_double("finetune-lr", paper ? 1e-3 : 1e-2);
    pipeline::FinetuneOptions f;
    f.recipe = recipe;
    f.base_factor = a.get_double("base-factor", 1);
    if (f.base_factor > 1) throw cli::UsageError("--base-factor must be in (0, 1]");
    f.drop_period = a.get_int("drop-period", 20);

    // The recipes to run: the chosen one first, then the paper's with --baseline, then --compare's.
    std::vector<pipeline::Recipe> recipes{recipe};
    auto add_recipe = [&](pipeline::Recipe x) {
      if (std::find(recipes.begin(), recipes.end(), x) == recipes.end()) recipes.push_back(x);
    };
    if (baseline) add_recipe(pipeline::Recipe::frozen_base);
    for (const std::string& name : split_list(a.get("compare", ""))) add_recipe(pipeline::parse_recipe_option(name));

    std::filesystem::create_directories(out);
    // Fail now, not after the data are decoded, when CUDA was asked for and is not there.
    if (r.device == ewnet::Device::cuda) ewnet::build_paper_model<float>({2, 32, 0}).to(r.device);
    if (paper)
      pipeline::print_paper_recipe(
          std::cout, std::to_string(image_size) + "x" + std::to_string(image_size) + " images, batch " +
                         std::to_string(r.batch) + ", source rate " + ewnet::str(source_lr) +
                         " (constant), target rate " + ewnet::str(finetune_lr) + " halved every " +
                         std::to_string(f.drop_period) + " epochs, " + std::to_string(source_epochs) + " + " +
                         std::to_string(target_epochs) + " epochs, 80/20 split, the base frozen (learning-rate "
                         "factor 0), only the task-specific head trains.");

    if (generated) {
      ewnet::data::GeneratedOptions g;
      g.seed = seed + 1;
      std::tie(source_dir, target_dir) = ewnet::data::write_generated_dataset(out + "/generated-data", g);
      std::cout << "using the GENERATED default data set (procedurally drawn device-like objects, not photographs) in "
                << out << "/generated-data\n";
    }

    pipeline::DataOptions sd;
    sd.dir = source_dir;
    sd.image_size = image_size;
    sd.seed = seed;
    sd.split_file = a.get("source-split-file", "");
    sd.batch = r.batch;
    pipeline::DataOptions td = sd;
    td.dir = target_dir;
    td.split_file = a.get("target-split-file", "");

    std::cout << "\n== 1. source training from scratch: " << source_dir << "\n";
    const pipeline::Data source = pipeline::load_data(sd, std::cout);
    r.epochs = source_epochs;
    r.learn_rate = source_lr;
    r.out_dir = out + "/source";
    const ewnet::LearnRateSchedule source_sched =
        cosine ? ewnet::LearnRateSchedule::cosine(source_lr, source_epochs, warmup, 0.01)
               : ewnet::LearnRateSchedule::constant(source_lr);
    std::vector<Stage> stages;
    stages.push_back({"source, from scratch", out + "/source",
                      pipeline::train_scratch(source, r, "source (from scratch)", source_dir, std::cout, &source_sched)});

    const pipeline::Data target = pipeline::load_data(td, std::cout);
    const std::string source_best = ewnet::train::best_checkpoint(out + "/source");
    int step = 2;
    for (pipeline::Recipe x : recipes) {
      const std::string name = pipeline::recipe_name(x);
      std::cout << "\n== " << step++ << ". transfer, recipe " << name << (x == recipe ? "" : " (for comparison)")
                << ": fine-tuning the source model on " << target_dir << "\n";
      r.epochs = target_epochs;
      r.learn_rate = finetune_lr;
      r.out_dir = out + "/transfer-" + name;
      r.init.clear();  // the source's weights start fine-tuning
      // From an ewnet source the whole model at one rate measured best (docs/transfer-learning.md).
      r.new_layer_factor = a.get_double("new-layer-factor", 1);
      pipeline::FinetuneOptions fx = f;
      fx.recipe = x;
      stages.push_back({"transfer, " + name, r.out_dir,
                        pipeline::finetune(source_best, target, r, fx, "target (transfer, " + name + ")", target_dir,
                                           std::cout)});
    }
    if (baseline) {
      std::cout << "\n== " << step++ << ". baseline: the target from scratch, same epochs and schedule\n";
      r.epochs = target_epochs;
      r.out_dir = out + "/scratch";
      r.init.clear();  // a baseline starts from random weights
      r.learn_rate = target_lr;
      const ewnet::LearnRateSchedule schedule = ewnet::LearnRateSchedule::piecewise(target_lr, 0.5, f.drop_period);
      stages.push_back({"target, from scratch", r.out_dir,
                        pipeline::train_scratch(target, r, "target (from scratch)", target_dir, std::cout, &schedule)});
    }

    // The summary: every stage, then the chosen recipe against scratch with the noise of the
    // validation set (one image is 100/n points; the standard error of a difference of two
    // accuracies on the same n images is at most sqrt(2) times that of one).
    const size_t n_val = target.split.validation.size();
    ewnet::json::Value summary = ewnet::json::Value::object();
    summary["generated_data"] = generated;
    summary["image_size"] = image_size;
    summary["device"] = ewnet::device_name(r.device);
    summary["recipe"] = paper ? "paper" : pipeline::recipe_name(recipe);
    summary["target_validation_images"] = n_val;
    summary["source"] = stage(stages[0].history, stages[0].folder);
    ewnet::json::Value transfers = ewnet::json::Value::object();
    for (size_t i = 1; i < stages.size(); ++i)
      if (stages[i].name.rfind("transfer, ", 0) == 0) transfers[stages[i].name.substr(10)] = stage(stages[i].history, stages[i].folder);
    summary["transfer"] = transfers;
    static const char* colours[] = {"#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"};
    std::vector<ewnet::train::Series> acc, loss;
    for (size_t i = 1; i < stages.size(); ++i) {
      const bool scratch = stages[i].name == "target, from scratch";
      const char* colour = scratch ? "#d95f02" : colours[(i - 1) % 5];
      const std::string label = scratch ? "from scratch" : stages[i].name;
      acc.push_back(accuracy_series(stages[i].history, label, colour));
      loss.push_back(loss_series(stages[i].history, label, colour));
    }
    if (baseline) summary["scratch"] = stage(stages.back().history, stages.back().folder);
    ewnet::train::Panel pa{"Validation accuracy on the target", "epoch", "accuracy (%)", acc, 0, 100};
    ewnet::train::Panel pl{"Validation loss on the target", "epoch", "cross-entropy loss", loss, 0, NAN};

    char line[320];
    std::cout << "\n== summary" << (generated ? " (GENERATED data set)" : "") << "\n";
    std::snprintf(line, sizeof line, "%-34s  %-24s  %-8s  %-8s  %s\n", "validation accuracy:", "best (epoch of epochs)",
                  "final", "mean", "time an epoch");
    std::cout << line;
    for (const Stage& st : stages) {
      const ewnet::train::History& h = st.history;
      char best[64];
      std::snprintf(best, sizeof best, "%.2f%% (%d of %zu)", 100 * h.best_val_accuracy, h.best_epoch, h.epochs.size());
      std::snprintf(line, sizeof line, "%-34s  %-24s  %6.2f%%  %6.2f%%  %.2f s\n", st.name.c_str(), best,
                    h.epochs.empty() ? 0.0 : 100 * h.epochs.back().val_accuracy, 100 * mean_val_accuracy(h),
                    h.seconds_per_epoch());
      std::cout << line;
    }
    if (baseline && n_val > 0) {
      const ewnet::train::History& ht = stages[1].history;
      const ewnet::train::History& hb = stages.back().history;
      const double mt = mean_val_accuracy(ht), mb = mean_val_accuracy(hb);
      const double diff = 100 * (mt - mb), best_diff = 100 * (ht.best_val_accuracy - hb.best_val_accuracy);
      const double noise = 100 * 2 * std::sqrt(standard_error(mt, n_val) * standard_error(mt, n_val) +
                                               standard_error(mb, n_val) * standard_error(mb, n_val));
      const bool clear = std::fabs(diff) > noise;
      std::snprintf(line, sizeof line,
                    "%s against scratch: %+.1f points of mean accuracy over the epochs, %+.1f at the best epoch; "
                    "one validation image is %.1f points and twice the standard error of the difference %.1f, so "
                    "this is %s\n",
                    stages[1].name.c_str(), diff, best_diff, 100.0 / double(n_val), noise,
                    clear ? (diff > 0 ? "a clear gain" : "a clear loss") : "inside the noise of this validation set");
      std::cout << line;
      ewnet::json::Value cmp = ewnet::json::Value::object();
      cmp["recipe"] = stages[1].name.substr(10);
      cmp["mean_accuracy_gain_points"] = diff;
      cmp["best_accuracy_gain_points"] = best_diff;
      cmp["one_image_points"] = 100.0 / double(n_val);
      cmp["two_standard_errors_points"] = noise;
      cmp["outside_noise"] = clear;
      summary["comparison"] = cmp;
      pa.title += str_points(diff, noise);
    }
    ewnet::train::write_text_file(out + "/comparison.svg",
                                  ewnet::train::panels_svg(std::string("Transfer against training from scratch") +
                                                               (generated ? " (generated data)" : ""),
                                                           {pa, pl}));
    ewnet::train::write_text_file(out + "/summary.json", summary.dump(2) + "\n");
    std::cout << "pictures: " << out << "/comparison.svg, and training-curves.svg and confusion.svg in each stage's "
              << "folder\n";
    return 0;
  });
}
