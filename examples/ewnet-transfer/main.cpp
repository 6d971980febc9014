// ewnet-transfer: the whole pipeline in one command: train on the source domain, fine-tune on the
// target by a recipe (and by more with --compare), with --unlabeled also by the recipe learning from
// unlabelled target images, and with --baseline also by the paper's recipe and train the target from
// scratch, so that the summary weighs transfer against scratch and unlabelled images against none.
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <cli.hpp>
#include <data.hpp>
#include <ewnet/data/generated.hpp>
#include <ewnet/transfer/compare.hpp>
#include <options.hpp>

#include "command_line.hpp"

namespace {
/// Holds the run's folder and each stage's (source, transfer-RECIPE, scratch) against the inputs the
/// command line names, before anything is read (pipeline::hold_run_folder).
std::vector<ewnet::io::RunFolder> hold_folders(const Run& r) {
  const std::vector<std::string> inputs{r.source.dir, r.target.dir, r.source.split_file, r.target.split_file,
                                        r.network.weights};
  std::vector<ewnet::io::RunFolder> held{pipeline::hold_run_folder(r.out, inputs)};
  std::vector<std::string> stages{"source"};
  for (Method m : r.methods) stages.push_back(std::string("transfer-") + method_name(m));
  if (r.baseline) stages.push_back("scratch");
  for (const std::string& stage : stages) held.push_back(pipeline::hold_run_folder(r.out + "/" + stage, inputs));
  return held;
}

/// Runs the stages in order: the source, a transfer stage a method, scratch with --baseline, each on
/// the run's options for its data, epochs, schedule and folder. Returns them with the number of the
/// target's validation images.
std::pair<std::vector<StageResult>, size_t> run_stages(const Run& r) {
  ewnet::train::RunReport report(std::cout);
  std::vector<StageResult> stages;
  auto options = [&](const pipeline::Data& d, const pipeline::DataOptions& o, int epochs,
                     const ewnet::LearnRateSchedule& s, const std::string& folder, const std::string& title) {
    ewnet::train::TrainOptions t = pipeline::on_data(r.train, d, o.dir);
    t.epochs = epochs;
    t.schedule = s;
    t.out_dir = r.out + "/" + folder;
    t.title = title;
    return t;
  };
  std::cout << "\n== 1. source training from scratch: " << r.source.dir << "\n";
  const pipeline::Data source = pipeline::load_data(r.source, std::cout);
  // The unlabelled images are checked against the target's validation images before anything trains.
  std::optional<pipeline::Data> early_target;
  std::unique_ptr<ewnet::data::UnlabeledImages> unlabeled;
  std::shared_ptr<ewnet::train::UnlabeledTraining> semi;
  if (r.unlabeled) {
    early_target = pipeline::load_data(r.target, std::cout);
    unlabeled = pipeline::load_unlabeled(r.unlabeled->dir, r.target.image_size, std::cout);
    semi = semi_supervised_training(r.unlabeled->recipe, ewnet::data::pool_of(*unlabeled), *early_target->cache,
                                    early_target->split,
                                    ewnet::data::pool_of(*source.cache, source.split.train));
  }
  stages.push_back({StageKind::source, r.recipe.method, r.out + "/source",
                    train_network(r.network, *source.cache, source.split,
                                  options(source, r.source, r.source_epochs,
                                          r.source_schedule.schedule(r.source_lr, r.source_epochs), "source",
                                          "source (from scratch)"),
                                  &report)});
  const pipeline::Data target = early_target ? std::move(*early_target) : pipeline::load_data(r.target, std::cout);
  const auto finetune_schedule = ewnet::LearnRateSchedule::piecewise(r.finetune_lr, 0.5, r.drop_period);
  for (Method m : r.methods) {
    const std::string name = method_name(m);
    std::cout << "\n== " << stages.size() + 1 << ". transfer, recipe " << name
              << (m == r.recipe.method ? "" : " (for comparison)") << ": fine-tuning the source model on "
              << r.target.dir << "\n";
    FinetuneOptions f = r.finetune;
    f.recipe = Recipe::of(m);
    stages.push_back({StageKind::transfer, m, r.out + "/transfer-" + name,
                      finetune_checkpoint(ewnet::train::best_checkpoint(r.out + "/source"), *target.cache,
                                          target.split, f,
                                          options(target, r.target, r.target_epochs, finetune_schedule,
                                                  "transfer-" + name, "target (transfer, " + name + ")"),
                                          &report)});
  }
  if (semi) {
    const std::string name = method_name(r.recipe.method);
    std::cout << "\n== " << stages.size() + 1 << ". transfer with unlabelled images, recipe " << name << " + "
              << r.unlabeled->recipe.method << ": fine-tuning the source model on " << r.target.dir << " and "
              << r.unlabeled->dir << "\n";
    FinetuneOptions f = r.finetune;
    f.recipe = r.recipe;
    ewnet::train::TrainOptions t = options(target, r.target, r.target_epochs, finetune_schedule, "semi-supervised",
                                           "target (transfer, " + name + " + unlabelled)");
    t.unlabeled = semi;
    stages.push_back({StageKind::semi_supervised, r.recipe.method, r.out + "/semi-supervised",
                      finetune_checkpoint(ewnet::train::best_checkpoint(r.out + "/source"), *target.cache,
                                          target.split, f, t, &report),
                      r.unlabeled->recipe.method, semi->setting.transductive ? "transductive" : "inductive"});
  }
  if (r.baseline) {
    std::cout << "\n== " << stages.size() + 1 << ". baseline: the target from scratch, same epochs and schedule\n";
    Network fresh = r.network;
    fresh.weights.clear();  // a baseline starts from random weights
    stages.push_back({StageKind::scratch, r.recipe.method, r.out + "/scratch",
                      train_network(fresh, *target.cache, target.split,
                                    options(target, r.target, r.target_epochs,
                                            ewnet::LearnRateSchedule::piecewise(r.target_lr, 0.5, r.drop_period),
                                            "scratch", "target (from scratch)"),
                                    &report)});
  }
  return {stages, target.split.validation.size()};
}
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-transfer", kUsage, [&] {
    const cli::Args a(argc, argv,
                      pipeline::with_group({"source", "target", "out", "image-size", "source-epochs", "target-epochs",
                                            "batch", "lr", "target-lr", "finetune-lr", "drop-period", "seed", "device",
                                            "precision", "source-split-file", "target-split-file", "recipe", "compare",
                                            "base-factor", "source-schedule", "warmup", "model", "init",
                                            "new-layer-factor", "resize"},
                                           pipeline::kUnlabeledOptions),
                      pipeline::with_group({"baseline", "resume", "no-progress", "no-feature-cache", "aux"},
                                           pipeline::kUnlabeledFlags));
    if (a.help()) return cli::print_help(kUsage, kHelp);
    Run r = parse(a);
    pipeline::require_device(r.train.device);
    if (r.recipe.stated) pipeline::print_paper_recipe(std::cout, stated(r));
    const std::vector<ewnet::io::RunFolder> folders = hold_folders(r);
    if (r.generated) {
      ewnet::data::GeneratedOptions g;
      g.seed = r.source.seed + 1;
      std::tie(r.source.dir, r.target.dir) = ewnet::data::write_generated_dataset(r.out + "/generated-data", g);
      std::cout << "using the GENERATED default data set (procedurally drawn device-like objects, not photographs) in "
                << r.out << "/generated-data\n";
    }

    const auto [stages, n_val] = run_stages(r);

    // The summary: every stage, then the chosen recipe against scratch.
    ewnet::json::Value summary = ewnet::json::Value::object();
    summary["generated_data"] = r.generated;
    summary["image_size"] = r.source.image_size;
    summary["device"] = ewnet::device_name(r.train.device);
    summary["recipe"] = r.recipe.name;
    summary["target_validation_images"] = n_val;
    add_stages(summary, stages);
    const std::optional<Comparison> c = compare_stages(stages, n_val);
    const std::optional<Comparison> semi = compare_semi_supervised(stages, n_val);
    std::cout << "\n== summary" << (r.generated ? " (GENERATED data set)" : "") << "\n" << summary_table(stages);
    if (c) {
      std::cout << comparison_text(*c);
      summary["comparison"] = c->to_json();
    }
    if (semi) {
      std::cout << comparison_text(*semi);
      summary["semi_supervised_comparison"] = semi->to_json();
    }
    for (const StageResult& s : stages)
      if (s.kind == StageKind::semi_supervised)
        std::cout << "the unlabelled images were learned from in the " << s.setting << " setting"
                  << (s.setting == "transductive" ? " (asked for: validation images among them, labels never read)"
                                                  : " (none of them a validation image)")
                  << "\n";
    const std::string title =
        std::string("Transfer against training from scratch") + (r.generated ? " (generated data)" : "");
    ewnet::train::write_text_file(r.out + "/comparison.svg",
                                  ewnet::train::panels_svg(title, comparison_panels(stages, c ? &*c : nullptr,
                                                                                   semi ? &*semi : nullptr)));
    ewnet::train::write_text_file(r.out + "/summary.json", summary.dump(2) + "\n");
    std::cout << "pictures: " << r.out << "/comparison.svg, and training-curves.svg and confusion.svg in each "
              << "stage's folder\n";
    return 0;
  });
}
