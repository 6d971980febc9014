// options.hpp: the option groups the training programs share, parsed once here into the library's
// options (train::TrainOptions, transfer::Network, transfer::FinetuneOptions) and checked with a
// usage error for a value that cannot be meant (cli.hpp's conventions):
//   run       --out --seed --device --precision --resume --allow-changed-settings --no-progress
//   schedule  constant or cosine (--schedule / --source-schedule) with --warmup
//   network   --model --aux --init --new-layer-factor
//   recipe    --recipe (a preset: paper states the paper's settings), --base-factor, --train-from,
//             --no-feature-cache, --compare
//   data      --image-size (the sizes the network takes) and --resize squash|crop, defaulting to what
//             --init's weights were made for
//   unlabelled --unlabeled --transductive --semi-supervised --threshold --unlabeled-weight
//             --unlabeled-ratio --no-distribution-alignment, and --augment standard|strong
// and the hold on the run's output folder, taken before anything is read (hold_run_folder).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <ewnet/data/resize.hpp>
#include <ewnet/data/strong_augment.hpp>
#include <ewnet/io/checkpoint.hpp>
#include <ewnet/io/files.hpp>
#include <ewnet/io/torchvision.hpp>
#include <ewnet/models/build.hpp>
#include <ewnet/onednn/adapter.hpp>
#include <ewnet/optim/schedule.hpp>
#include <ewnet/tensor.hpp>
#include <ewnet/train/options.hpp>
#include <ewnet/transfer/recipe.hpp>
#include <ewnet/transfer/semi_supervised.hpp>
#include <ewnet/transfer/stages.hpp>

#include "cli.hpp"
#include "data.hpp"

namespace pipeline {

/// Fails now, not after the data are decoded, when the device asked for cannot be used.
inline void require_device(ewnet::Device device) {
  if (device != ewnet::Device::cpu) ewnet::Tensor<float>::empty({1, 1, 1, 1}, device);
}

/// --precision bf16 needs the CPU engine on a processor with AVX512-BF16 or AMX: said before the
/// data are decoded (Model::set_precision would say it too, later).
inline void require_precision(ewnet::Device device, ewnet::Precision precision) {
  if (precision != ewnet::Precision::bf16) return;
  if (device != ewnet::Device::cpu) throw cli::UsageError("--precision bf16 runs on the CPU only (--device cpu)");
  ewnet::onednn::require_bf16();
}

/// The run group: where a run writes and how it shows itself. Reports the CPU engine once
/// (cli::report_cpu_engine) as soon as the device is known.
inline ewnet::train::TrainOptions run_options(const cli::Args& a, const std::string& out, std::uint64_t seed) {
  ewnet::train::TrainOptions t;
  t.seed = seed;
  t.device = a.get_device();
  t.precision = a.get_precision();
  cli::report_cpu_engine();
  require_precision(t.device, t.precision);
  t.out_dir = a.get("out", out);
  t.resume = a.flag("resume");
  t.allow_changed_settings = a.flag("allow-changed-settings");
  // The bar rewrites one line with \r: only on a terminal, never into a log file.
  t.progress = !a.flag("no-progress") && ::isatty(STDERR_FILENO);
  return t;
}

/// Holds `out` as the run's output folder while the returned value lives (io::prepare_run_folder),
/// taken before anything is read: refused at a file system's root, as one of `inputs` (data
/// folders, split files, --init's weights, a source checkpoint), inside or around one, or as a
/// folder of files ewnet did not write. An input that does not exist is an error first, so that a
/// mistyped path leaves no run folder behind.
inline ewnet::io::RunFolder hold_run_folder(const std::string& out, const std::vector<std::string>& inputs) {
  std::error_code ec;
  for (const std::string& in : inputs)
    EWNET_CHECK_AS(ewnet::IoError, in.empty() || std::filesystem::exists(in, ec), in, ": not found");
  return ewnet::io::prepare_run_folder(out, inputs, &std::cout);
}

/// The schedule group: `option` is constant or cosine; a cosine schedule rises for --warmup epochs
/// (fewer than the run's, named by `epochs_option`), then falls by half a cosine to 1% of the rate.
struct ScheduleChoice {
  bool cosine = false;
  int warmup = 2;
  ewnet::LearnRateSchedule schedule(double rate, int epochs) const {
    return cosine ? ewnet::LearnRateSchedule::cosine(rate, epochs, warmup, 0.01)
                  : ewnet::LearnRateSchedule::constant(rate);
  }
};
inline ScheduleChoice schedule_option(const cli::Args& a, const std::string& option, const std::string& epochs_option,
                                      int epochs) {
  const std::string kind = a.get(option, "constant");
  if (kind != "constant" && kind != "cosine")
    throw cli::UsageError("--" + option + " must be constant or cosine, got '" + kind + "'");
  ScheduleChoice s;
  s.cosine = kind == "cosine";
  s.warmup = a.get_int("warmup", 2, 0);
  if (s.cosine && s.warmup >= epochs) throw cli::UsageError("--warmup must be less than --" + epochs_option);
  return s;
}

/// --image-size for `model`: a square side the network takes, else a usage error saying which.
/// The paper's model needs a multiple of 8, at least 32: three stride-2 stages come before its
/// modules, which work at input/8 (models/paper_model.hpp). torchvision's networks take any side
/// from their smallest (32; 75 for inception-v3), as in torchvision: their strided layers round
/// down and a global average pooling ends them, so Inception-v3's own 299 is one.
inline int image_size_option(const cli::Args& a, const std::string& model, int fallback) {
  const int smallest = std::max(32, ewnet::min_image_size(model));
  const int size = a.get_int("image-size", fallback, smallest);
  if (model == "paper" && size % 8)
    throw cli::UsageError("--image-size must be a multiple of 8 for the paper's model (its modules work at 1/8 of "
                          "the input); torchvision's networks (--model) take any size");
  return size;
}

/// --resize: the geometry images are brought to the input size in (data/resize.hpp).
inline ewnet::data::ResizeMode resize_option(const cli::Args& a, ewnet::data::ResizeMode fallback) {
  if (!a.has("resize")) return fallback;
  try {
    return ewnet::data::parse_resize_mode(a.get("resize", ""));
  } catch (const ewnet::Error& e) {
    throw cli::UsageError(std::string("--resize: ") + e.what());
  }
}

/// The data group for a run of `net`: --image-size and --resize into `d`. Where they are not given
/// and the run starts from weights (--init), what the weights were made for: the side their file
/// records (ewnet.image_size, or an ewnet checkpoint's input), else the network's design size (299
/// for inception-v3, 224 for the others), and the geometry it records (ewnet.resize, else squash).
/// Without weights: `size` and squash.
inline void geometry_options(const cli::Args& a, const ewnet::transfer::Network& net, int size, DataOptions& d) {
  ewnet::data::ResizeMode resize = ewnet::data::ResizeMode::squash;
  if (!net.weights.empty() && !(a.has("image-size") && a.has("resize"))) {
    const auto metadata = ewnet::read_checkpoint_metadata(net.weights);
    const int recorded = ewnet::weights_image_size(metadata, net.weights);
    size = recorded ? recorded : ewnet::design_image_size(net.model);
    resize = ewnet::data::recorded_resize_mode(metadata, net.weights);
  }
  d.image_size = image_size_option(a, net.model, size);
  d.resize = resize_option(a, resize);
}

/// The network group: --model NAME [--aux], --init FILE, --new-layer-factor F.
inline ewnet::transfer::Network network_options(const cli::Args& a, double new_layer_factor) {
  ewnet::transfer::Network n;
  n.model = a.get_model();
  n.auxiliary_classifiers = a.get_aux(n.model);
  n.weights = a.get("init", "");
  n.new_layer_factor = a.get_double("new-layer-factor", new_layer_factor);
  return n;
}

/// --recipe: one of the presets (a wrong name is a usage error).
inline ewnet::transfer::Recipe recipe_option(const cli::Args& a) {
  try {
    return ewnet::transfer::Recipe::named(a.get("recipe", ewnet::transfer::method_name(ewnet::transfer::kDefaultRecipe)));
  } catch (const ewnet::Error& e) {
    throw cli::UsageError(std::string("--recipe: ") + e.what());
  }
}

/// --compare: more methods to run beside, comma-separated.
inline std::vector<ewnet::transfer::Method> compare_option(const cli::Args& a) {
  std::vector<ewnet::transfer::Method> methods;
  const std::string list = a.get("compare", "");
  for (size_t start = 0; start <= list.size();) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, comma - start);
    try {
      if (!item.empty()) methods.push_back(ewnet::transfer::parse_method(item));
    } catch (const ewnet::Error& e) {
      throw cli::UsageError(std::string("--compare: ") + e.what());
    }
    start = comma + 1;
  }
  return methods;
}

/// The recipe group: the recipe's knobs, with --new-layer-factor's default.
inline ewnet::transfer::FinetuneOptions finetune_options(const cli::Args& a, const ewnet::transfer::Recipe& recipe,
                                                         double new_layer_factor) {
  ewnet::transfer::FinetuneOptions f;
  f.recipe = recipe;
  f.base_factor = a.get_double("base-factor", 1);
  if (f.base_factor > 1) throw cli::UsageError("--base-factor must be in (0, 1]");
  f.train_from = a.get("train-from", "");
  f.feature_cache = !a.flag("no-feature-cache");
  f.new_layer_factor = a.get_double("new-layer-factor", new_layer_factor);
  return f;
}

/// The unlabelled group's option and flag names, for a program's cli::Args.
inline const std::vector<std::string> kUnlabeledOptions{"unlabeled", "semi-supervised", "threshold",
                                                        "unlabeled-weight", "unlabeled-ratio", "augment"};
inline const std::vector<std::string> kUnlabeledFlags{"transductive", "no-distribution-alignment"};

/// `names` with a group's added (a program's option or flag set for cli::Args).
inline std::set<std::string> with_group(std::set<std::string> names, const std::vector<std::string>& group) {
  names.insert(group.begin(), group.end());
  return names;
}

/// What the unlabelled group asks for: the folder and the semi-supervised recipe.
struct UnlabeledChoice {
  std::string dir;
  ewnet::transfer::SemiSupervisedRecipe recipe;
};

/// The unlabelled group: none without --unlabeled (its other options are then a usage error);
/// the method checked now, before any data is read.
inline std::optional<UnlabeledChoice> unlabeled_options(const cli::Args& a) {
  if (!a.has("unlabeled")) {
    for (const char* o : {"transductive", "semi-supervised", "threshold", "unlabeled-weight", "unlabeled-ratio",
                          "no-distribution-alignment"})
      if (a.has(o)) throw cli::UsageError(std::string("--") + o + " goes with --unlabeled DIR");
    return std::nullopt;
  }
  UnlabeledChoice u;
  u.dir = a.get("unlabeled", "");
  ewnet::transfer::SemiSupervisedRecipe& r = u.recipe;
  r.method = a.get("semi-supervised", ewnet::transfer::kDefaultSemiSupervised);
  r.threshold = a.get_double("threshold", r.threshold);
  if (r.threshold > 1) throw cli::UsageError("--threshold must be in (0, 1]");
  r.unlabeled_weight = a.get_double("unlabeled-weight", r.unlabeled_weight);
  r.ratio = a.get_int("unlabeled-ratio", r.ratio);
  r.distribution_alignment = !a.flag("no-distribution-alignment");
  r.transductive = a.flag("transductive");
  try {
    ewnet::transfer::objective_options(r);
  } catch (const ewnet::Error& e) {
    throw cli::UsageError(std::string("--semi-supervised: ") + e.what());
  }
  return u;
}

/// --augment standard (flip, crop, shift, rotation) or strong (RandAugment and cutout before them).
inline ewnet::data::StrongAugmentOptions augment_option(const cli::Args& a) {
  const std::string kind = a.get("augment", "standard");
  if (kind != "standard" && kind != "strong")
    throw cli::UsageError("--augment must be standard or strong, got '" + kind + "'");
  ewnet::data::StrongAugmentOptions s;
  s.enabled = kind == "strong";
  return s;
}

/// What --recipe paper prints: the settings the paper states, as this run has them (`stated`),
/// then what ewnet chose where it states none (docs/model.md separates the two for the model).
inline void print_paper_recipe(std::ostream& out, const std::string& stated) {
  out << "--recipe paper: as the paper states: " << stated << "\n"
      << "  ewnet's choices where the paper states none: " << ewnet::transfer::kPaperUnstated << "\n";
}

}  // namespace pipeline
