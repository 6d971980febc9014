// ewnet-finetune: transfers a source checkpoint (or pretrained weights) to a target image folder,
// with --unlabeled learning from a folder of unlabelled target images too.
#include <iostream>
#include <memory>
#include <optional>

#include <cli.hpp>
#include <data.hpp>
#include <options.hpp>

#include "help.hpp"

namespace {
/// The unlabelled group, and --source-images exactly when the method aligns features.
std::optional<pipeline::UnlabeledChoice> unlabeled_options(const cli::Args& a) {
  std::optional<pipeline::UnlabeledChoice> u = pipeline::unlabeled_options(a);
  const bool aligns = u && ewnet::transfer::needs_source_images(u->recipe);
  if (a.has("source-images") && !aligns)
    throw cli::UsageError("--source-images goes with --unlabeled and a method that aligns features (mmd, coral, cmd)");
  if (aligns && !a.has("source-images"))
    throw cli::UsageError("--semi-supervised " + u->recipe.method +
                          " aligns the target's features with the source's: give --source-images DIR");
  return u;
}

/// The unlabelled images (and the source's, for alignment) a run learns from; they must live until
/// the run ends.
struct UnlabeledHeld {
  std::unique_ptr<ewnet::data::UnlabeledImages> pool, source_images;
};

/// Loads the unlabelled folder (and --source-images) at the run's size and joins them to `t`.
UnlabeledHeld join_unlabeled(const cli::Args& a, const pipeline::UnlabeledChoice& u, const pipeline::Data& data,
                             int size, ewnet::train::TrainOptions& t) {
  UnlabeledHeld h;
  h.pool = pipeline::load_unlabeled(u.dir, size, std::cout);
  if (a.has("source-images"))
    h.source_images = pipeline::load_unlabeled(a.get("source-images", ""), size, std::cout);
  t.unlabeled = ewnet::transfer::semi_supervised_training(
      u.recipe, ewnet::data::pool_of(*h.pool), *data.cache, data.split,
      h.source_images ? ewnet::data::pool_of(*h.source_images) : ewnet::data::UnlabeledPool{});
  return h;
}
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-finetune", kUsage, [&] {
    const cli::Args a(argc, argv,
                      pipeline::with_group({"out", "epochs", "batch", "lr", "drop-period", "drop-factor", "train-from",
                                            "seed", "split-file", "device", "precision", "recipe", "base-factor",
                                            "model", "init", "image-size", "new-layer-factor", "source-images",
                                            "resize"},
                                           pipeline::kUnlabeledOptions),
                      pipeline::with_group({"resume", "allow-changed-settings", "no-progress", "no-feature-cache", "aux"},
                                           pipeline::kUnlabeledFlags));
    if (a.help()) return cli::print_help(kUsage, kHelp);
    const bool from_init = a.has("init");
    if (a.positional().size() != (from_init ? 1u : 2u))
      throw cli::UsageError(from_init ? "with --init give only the data folder"
                                      : "give a source checkpoint and a data folder (or --model NAME --init FILE)");
    if (!from_init && (a.has("model") || a.has("image-size") || a.has("aux")))
      throw cli::UsageError("--model, --aux and --image-size go with --init (a checkpoint fixes them)");
    const std::optional<pipeline::UnlabeledChoice> unlabeled = unlabeled_options(a);
    const double drop_factor = a.get_double("drop-factor", 0.5);
    if (drop_factor <= 0 || drop_factor > 1) throw cli::UsageError("--drop-factor must be in (0, 1]");
    pipeline::DataOptions d;
    d.dir = a.positional()[from_init ? 0 : 1];
    d.seed = a.get_seed("seed", 0);
    d.split_file = a.get("split-file", "");
    // The paper's recipe states its settings: they are the defaults (options given still win).
    const ewnet::transfer::Recipe recipe = pipeline::recipe_option(a);
    ewnet::train::TrainOptions t = pipeline::run_options(a, "ewnet-finetune-run", d.seed);
    t.epochs = a.get_int("epochs", recipe.stated ? recipe.stated->epochs : 80);
    t.batch = a.get_int("batch", recipe.stated ? recipe.stated->batch : 64);
    t.strong_augment = pipeline::augment_option(a);
    const double rate = a.get_double("lr", recipe.stated ? recipe.stated->target_rate : 1e-3);
    const int drop_period = a.get_int("drop-period", recipe.stated ? recipe.stated->drop_period : 20);
    t.schedule = ewnet::LearnRateSchedule::piecewise(rate, drop_factor, drop_period);
    const ewnet::transfer::Network net = pipeline::network_options(a, 1);
    // MATLAB's recipe for a pretrained network raises the new layer's factor to 10 so that it
    // learns faster than the layers below it; with the base frozen a factor would only scale the
    // rate, and from an ewnet source the whole model at one rate measured best.
    ewnet::transfer::FinetuneOptions f = pipeline::finetune_options(a, recipe, 1);
    if (from_init && ewnet::transfer::trains_base(f)) f.new_layer_factor = a.get_double("new-layer-factor", 10);
    // The output folder is held against every input before the source or the data is read (only
    // --init's metadata is, for the defaults of the data group).
    const std::string checkpoint = from_init ? "" : a.positional()[0];
    if (from_init) pipeline::geometry_options(a, net, 224, d);
    const ewnet::data::ResizeMode asked = pipeline::resize_option(a, ewnet::data::ResizeMode::squash);
    const ewnet::io::RunFolder folder =
        pipeline::hold_run_folder(t.out_dir, {d.dir, d.split_file, net.weights, checkpoint});
    // The source is read once: its input size and geometry set the target's (--resize may change
    // the geometry), and its layers the memory estimate.
    ewnet::Model<float> source;
    if (from_init) {
      d.network = pipeline::footprint(net.model, net.auxiliary_classifiers);
    } else {
      const ewnet::CheckpointFile file = ewnet::read_checkpoint(checkpoint);
      source = ewnet::model_from_checkpoint<float>(file, t.seed);
      d.image_size = source.input_shape().h;
      d.resize = a.has("resize") ? asked : ewnet::data::recorded_resize_mode(file.metadata(), file.path);
      d.network = pipeline::footprint(source);
    }
    if (recipe.stated)
      pipeline::print_paper_recipe(std::cout, ewnet::str("batch ", t.batch, ", rate ", rate, " halved every ",
                                                         drop_period, " epochs, up to ", t.epochs, " epochs, 80/20 "
                                                         "split, the base frozen (learning-rate factor 0), only the "
                                                         "head trains; the images at the checkpoint's size (the "
                                                         "paper's: 224x224)."));
    d.batch = t.batch;
    const pipeline::Data data = pipeline::load_data(d, std::cout);
    t = pipeline::on_data(t, data, d.dir);
    const UnlabeledHeld held = unlabeled ? join_unlabeled(a, *unlabeled, data, d.image_size, t) : UnlabeledHeld{};
    ewnet::train::RunReport report(std::cout);
    if (from_init) {
      t.title = "target fine-tuning (transfer from " + net.weights + ")";
      ewnet::transfer::finetune_from_weights(net, *data.cache, data.split, f, t, &report);
    } else {
      t.title = "target fine-tuning (transfer)";
      ewnet::transfer::finetune(std::move(source), checkpoint, *data.cache, data.split, f, t, &report);
    }
    return 0;
  });
}
