// ewnet-transfer: the whole pipeline in one command: train on the source domain, fine-tune on the
// target, and (with --baseline) train the target from scratch for comparison.
#include <cmath>
#include <filesystem>
#include <iostream>

#include <cli.hpp>
#include <ewnet/data/generated.hpp>
#include <pipeline.hpp>

namespace {
const char* kUsage = "ewnet-transfer [--source DIR --target DIR] [--out DIR] [--baseline] [--image-size N] "
                     "[--source-epochs N] [--target-epochs N] [--batch N] [--lr RATE] [--target-lr RATE] [--finetune-lr RATE] "
                     "[--drop-period N] [--train-from LAYER] [--no-feature-cache] [--seed N] [--device cpu|cuda] "
                     "[--resume] [--no-progress]";
const char* kHelp =
    "Runs the paper's transfer pipeline: (1) trains the 67-layer model from scratch on the source domain,\n"
    "(2) fine-tunes its best checkpoint on the target domain with everything but the task-specific head\n"
    "frozen, and (3) with --baseline trains the same model from scratch on the target for the same number\n"
    "of epochs and the same schedule, so (2) against (3) measures what transfer gained. In (2) the frozen\n"
    "base gives an image the same features every epoch, so they are computed once and the head trains\n"
    "from them, without augmentation (--no-feature-cache: the base runs every step on augmented images).\n\n"
    "With no --source/--target it writes and uses a small GENERATED data set (procedurally drawn device-like\n"
    "objects, 8 source and 4 target classes, into OUT/generated-data) and turns --baseline on. That default\n"
    "uses 48x48 images, 20 source and 12 target epochs, so it finishes in a few minutes on 2 CPU cores;\n"
    "on real data the defaults are 64x64 images, 30 source and 30 target epochs. Both use mini-batches of 16\n"
    "and a rate of 0.003: with the paper's 64 and 0.001 so few epochs are too few steps (its 320 epochs at\n"
    "224x224 are for a GPU: pass --image-size 224 --batch 64 --lr 0.001 --target-lr 0.001 --source-epochs 320).\n\n"
    "  --source DIR, --target DIR   image folders ROOT/<class>/<image> (give both or neither)\n"
    "  --out DIR          output folder (default ewnet-transfer-run): source/, transfer/, scratch/,\n"
    "                     comparison.svg, summary.json\n"
    "  --baseline         also train the target from scratch (on by default for the generated data)\n"
    "  --image-size N     square input size, a multiple of 8 (paper: 224)\n"
    "  --source-epochs N  source training epochs (paper: up to 320)\n"
    "  --target-epochs N  fine-tuning (and baseline) epochs\n"
    "  --batch N          mini-batch size (default 16)\n"
    "  --lr RATE          source learning rate (default 0.003)\n"
    "  --target-lr RATE   initial target learning rate of the baseline, and of fine-tuning with --train-from\n"
    "                     (default 0.003)\n"
    "  --finetune-lr RATE initial rate when only the head trains (default 0.01: a new linear layer on fixed\n"
    "                     features takes a larger rate, as MATLAB's transfer recipe raises its factor)\n"
    "  --drop-period N    target schedule: rate halved every N epochs (default 20, the paper's)\n"
    "  --train-from LAYER fine-tune LAYER and everything after it (default: the head only; 'all': every layer);\n"
    "                     from a layer before the head, every step runs the whole model on augmented images\n"
    "  --no-feature-cache fine-tune the head with the base run every step on augmented images, instead of\n"
    "                     from features computed once without augmentation\n"
    "  --source-split-file CSV, --target-split-file CSV   splits from files instead of a seeded 80/20\n"
    "  --seed N           everything random (default 0)\n"
    "  --device cpu|cuda  where to train (default cpu)\n"
    "  --resume           continue an interrupted run in OUT (finished stages are not repeated)\n"
    "  --no-progress      no progress bar on stderr\n";

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
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-transfer", kUsage, [&] {
    const cli::Args a(argc, argv,
                      {"source", "target", "out", "image-size", "source-epochs", "target-epochs", "batch", "lr",
                       "target-lr", "finetune-lr", "drop-period", "train-from", "seed", "device", "source-split-file",
                       "target-split-file"},
                      {"baseline", "resume", "no-progress", "no-feature-cache"});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    if (!a.positional().empty()) throw cli::UsageError("unexpected argument '" + a.positional()[0] + "'");
    if (a.has("source") != a.has("target")) throw cli::UsageError("give both --source and --target, or neither");
    const bool generated = !a.has("source");
    const std::string out = a.get("out", "ewnet-transfer-run");
    const std::uint64_t seed = a.get_seed("seed", 0);
    std::string source_dir = a.get("source", ""), target_dir = a.get("target", "");
    const int image_size = a.get_int("image-size", generated ? 48 : 64, 32);
    if (image_size % 8) throw cli::UsageError("--image-size must be a multiple of 8");
    const bool baseline = a.flag("baseline") || generated;

    pipeline::RunOptions r;
    r.batch = a.get_int("batch", 16);
    r.seed = seed;
    r.device = a.get_device();
    r.resume = a.flag("resume");
    r.progress = !a.flag("no-progress");
    r.feature_cache = !a.flag("no-feature-cache");
    const int source_epochs = a.get_int("source-epochs", generated ? 20 : 30);
    const int target_epochs = a.get_int("target-epochs", generated ? 12 : 30);
    const double source_lr = a.get_double("lr", 3e-3), target_lr = a.get_double("target-lr", 3e-3);
    const int drop_period = a.get_int("drop-period", 20);
    const std::string train_from = a.get("train-from", "head");
    const double finetune_lr = a.get_double("finetune-lr", train_from == "head" ? 1e-2 : target_lr);
    std::filesystem::create_directories(out);
    // Fail now, not after the data are decoded, when CUDA was asked for and is not there.
    if (r.device == ewnet::Device::cuda) ewnet::build_paper_model<float>({2, 32, 0}).to(r.device);

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
    const ewnet::train::History hs = pipeline::train_scratch(source, r, "source (from scratch)", source_dir, std::cout);

    std::cout << "\n== 2. transfer: fine-tuning the source model on " << target_dir << "\n";
    const pipeline::Data target = pipeline::load_data(td, std::cout);
    r.epochs = target_epochs;
    r.learn_rate = finetune_lr;
    r.out_dir = out + "/transfer";
    const ewnet::train::History ht =
        pipeline::finetune(ewnet::train::best_checkpoint(out + "/source"), target, r, train_from, 0.5, drop_period,
                           "target (transfer)", target_dir, std::cout);

    ewnet::json::Value summary = ewnet::json::Value::object();
    summary["generated_data"] = generated;
    summary["image_size"] = image_size;
    summary["device"] = ewnet::device_name(r.device);
    summary["source"] = stage(hs, out + "/source");
    summary["transfer"] = stage(ht, out + "/transfer");
    std::vector<ewnet::train::Series> acc{accuracy_series(ht, "transfer (fine-tuned)", "#1b9e77")};
    std::vector<ewnet::train::Series> loss{loss_series(ht, "transfer (fine-tuned)", "#1b9e77")};
    ewnet::train::History hb;
    if (baseline) {
      std::cout << "\n== 3. baseline: the target from scratch, same epochs and schedule\n";
      r.out_dir = out + "/scratch";
      r.learn_rate = target_lr;
      const ewnet::LearnRateSchedule schedule = ewnet::LearnRateSchedule::piecewise(target_lr, 0.5, drop_period);
      hb = pipeline::train_scratch(target, r, "target (from scratch)", target_dir, std::cout, &schedule);
      summary["scratch"] = stage(hb, out + "/scratch");
      acc.push_back(accuracy_series(hb, "from scratch", "#d95f02"));
      loss.push_back(loss_series(hb, "from scratch", "#d95f02"));
    }
    ewnet::train::Panel pa{"Validation accuracy on the target", "epoch", "accuracy (%)", acc, 0, 100};
    ewnet::train::Panel pl{"Validation loss on the target", "epoch", "cross-entropy loss", loss, 0, NAN};
    ewnet::train::write_text_file(out + "/comparison.svg",
                                  ewnet::train::panels_svg(std::string("Transfer against training from scratch") +
                                                               (generated ? " (generated data)" : ""),
                                                           {pa, pl}));
    ewnet::train::write_text_file(out + "/summary.json", summary.dump(2) + "\n");

    char line[256];
    std::cout << "\n== summary" << (generated ? " (GENERATED data set)" : "") << "\n";
    std::snprintf(line, sizeof line, "%-22s  %-26s  %-12s  %s\n", "validation accuracy:", "best (epoch of epochs)",
                  "mean", "time an epoch");
    std::cout << line;
    auto row = [&](const char* name, const ewnet::train::History& h) {
      char best[64];
      std::snprintf(best, sizeof best, "%.2f%% (%d of %zu)", 100 * h.best_val_accuracy, h.best_epoch, h.epochs.size());
      std::snprintf(line, sizeof line, "%-22s  %-26s  %6.2f%%       %.2f s\n", name, best,
                    100 * mean_val_accuracy(h), h.seconds_per_epoch());
      std::cout << line;
    };
    row("source, from scratch", hs);
    row("target, transfer", ht);
    if (baseline) row("target, from scratch", hb);
    std::cout << "pictures: " << out << "/comparison.svg, " << out << "/{source,transfer"
              << (baseline ? ",scratch" : "") << "}/training-curves.svg and confusion.svg\n";
    return 0;
  });
}
