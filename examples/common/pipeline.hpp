// pipeline.hpp: the steps of the transfer pipeline, shared by ewnet-train, ewnet-finetune and
// ewnet-transfer so that the one-command pipeline runs exactly what the separate programs run.
//   load_data     scan an image folder, decode and cache it, split it (seeded 80/20 or a file)
//   train_scratch the paper's model from random weights, normalised on the training split
//   finetune      a source checkpoint with a new classifier, frozen up to the head, trained with
//                 the paper's schedule (rate halved every 20 epochs); with the whole base frozen it
//                 trains from features computed once (train::TrainOptions::feature_cache)
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include <ewnet/data/dataset.hpp>
#include <ewnet/data/loader.hpp>
#include <ewnet/model.hpp>
#include <ewnet/io/torchvision.hpp>
#include <ewnet/models/build.hpp>
#include <ewnet/models/paper_model.hpp>
#include <ewnet/train/trainer.hpp>

#include "cli.hpp"

namespace pipeline {

using Real = float;

struct Data {
  std::unique_ptr<ewnet::data::ImageCache> cache;
  ewnet::data::Split split;
  std::vector<std::string> classes;
  size_t files = 0;  // image files found, bad ones included
};

struct DataOptions {
  std::string dir;
  std::string split_file;        // empty: stratified split
  double train_fraction = 0.8;   // the paper's 80/20
  int image_size = 64;
  std::uint64_t seed = 0;
  int threads = ewnet::data::default_threads();
  int batch = 0;                 // the run's mini-batch, for the memory estimate (0: the cache only)
};

/// Memory this process may still take: MemAvailable from /proc/meminfo, else the physical memory.
inline std::uint64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib << 10;
  return std::uint64_t(::sysconf(_SC_PHYS_PAGES)) * std::uint64_t(::sysconf(_SC_PAGESIZE));
}

/// What a run of the paper's model on `images` images of `size` pixels a side with mini-batches of
/// `batch` needs at its peak, estimated before anything is loaded: the 8-bit image cache, the
/// decoders' shared allowance, and for training the activations and their gradients (float, from
/// the model's layer output shapes at 32x32, scaled by the pixel count) plus the float batch.
struct MemoryEstimate {
  std::uint64_t cache = 0, decoding = 0, training = 0;
  std::uint64_t total() const { return cache + decoding + training; }
};
inline MemoryEstimate estimate_memory(size_t images, int size, int batch) {
  MemoryEstimate m;
  const std::uint64_t pixels = std::uint64_t(size) * std::uint64_t(size);
  m.cache = std::uint64_t(images) * pixels * 3;
  m.decoding = ewnet::data::kDecodeBudgetBytes;
  if (batch > 0) {
    static const std::uint64_t per_image_at_32 = [] {
      ewnet::PaperModelOptions o;
      o.classes = 2;
      o.image_size = 32;
      ewnet::Model<Real> model = ewnet::build_paper_model<Real>(o);
      model.build();
      std::uint64_t values = 0;
      for (ewnet::Layer<Real>* l : model.layers()) values += model.output_shape(l->name()).sample_size();
      return values;
    }();
    const std::uint64_t per_image = per_image_at_32 * pixels / (32 * 32) + 3 * pixels;
    m.training = std::uint64_t(batch) * per_image * sizeof(Real) * 2;
  }
  return m;
}

/// Refuses, before anything is decoded, a run that cannot fit in the memory the machine has.
inline void check_memory(const MemoryEstimate& m, int size, int batch, std::uint64_t available) {
  auto gib = [](std::uint64_t b) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f GiB", double(b) / double(1ull << 30));
    return std::string(text);
  };
  EWNET_CHECK(m.total() <= available, "a run at --image-size ", size, (batch > 0 ? ewnet::str(" with --batch ", batch) : ""),
              " needs about ", gib(m.total()), " (", gib(m.cache), " for the cached images, ", gib(m.decoding),
              " for decoding", (batch > 0 ? ", " + gib(m.training) + " for training" : std::string()),
              ") but this machine has ", gib(available), " available; use a smaller --image-size or --batch");
}

/// Scans, decodes and splits; prints one line about the data set (and a warning per bad file).
inline Data load_data(const DataOptions& o, std::ostream& out) {
  Data d;
  EWNET_CHECK(o.image_size >= 1 && o.image_size <= ewnet::detail::kMaxInputSide, "--image-size ", o.image_size,
              " is out of range (at most ", ewnet::detail::kMaxInputSide, ")");
  const ewnet::data::Dataset scanned = ewnet::data::scan_image_folder(o.dir);
  check_memory(estimate_memory(scanned.size(), o.image_size, o.batch), o.image_size, o.batch,
               available_memory_bytes());
  d.files = scanned.size() + scanned.skipped.size();
  for (const std::string& s : scanned.skipped) std::cerr << "warning: skipping " << s << "\n";
  d.cache = std::make_unique<ewnet::data::ImageCache>(scanned, o.image_size, &std::cerr, o.threads);
  const ewnet::data::Dataset& ds = d.cache->dataset();
  d.classes = ds.classes;
  d.split = o.split_file.empty() ? ewnet::data::split_each_label(ds, o.train_fraction, o.seed)
                                 : ewnet::data::split_from_file(ds, o.split_file);
  for (const std::string& w : d.split.warnings) std::cerr << "warning: " << w << "\n";
  out << o.dir << ": " << ds.size() << " images in " << ds.class_count() << " classes";
  if (!d.cache->skipped().empty() || !scanned.skipped.empty())
    out << ", " << d.cache->skipped().size() + scanned.skipped.size() << " bad files skipped";
  out << "; " << d.split.train.size() << " for training, " << d.split.validation.size() << " for validation ("
      << (o.split_file.empty() ? "stratified " + std::to_string(int(o.train_fraction * 100 + 0.5)) + "% split, seed " +
                                     std::to_string(o.seed)
                               : "split file " + o.split_file)
      << "); cached at " << o.image_size << "x" << o.image_size << "\n";
  return d;
}

/// What report.json says about the data.
inline ewnet::json::Value data_report(const Data& d, const std::string& dir) {
  ewnet::json::Value v = ewnet::json::Value::object();
  v["folder"] = dir;
  v["files"] = d.files;
  v["images"] = d.cache->size();
  v["skipped_files"] = d.cache->skipped().size() + d.cache->dataset().skipped.size();
  ewnet::json::Value skipped = ewnet::json::Value::array();
  for (const auto& s : d.cache->dataset().skipped) skipped.push_back(s);
  for (const auto& s : d.cache->skipped()) skipped.push_back(s.reason);
  v["skipped"] = skipped;
  v["training_images"] = d.split.train.size();
  v["validation_images"] = d.split.validation.size();
  return v;
}

struct RunOptions {
  int epochs = 320;
  int batch = 64;
  double learn_rate = 1e-3;
  std::uint64_t seed = 0;
  ewnet::Device device = ewnet::Device::cpu;
  std::string out_dir;
  bool resume = false;
  bool allow_changed_settings = false;  // a resume may differ from the checkpoint's settings or data
  bool progress = true;
  // Fine-tuning with the whole base frozen: compute the features once and train the head from them,
  // without augmentation; false runs the base every step on augmented images.
  bool feature_cache = true;
  int threads = ewnet::data::default_threads();
  // The network (ewnet::build_model's names) and weights to start from (a file written by
  // tools/torch_to_safetensors.py or an ewnet checkpoint; empty: random). A classifier with
  // another number of classes is replaced by a fresh one whose learning-rate factors are
  // new_layer_factor (MATLAB's transfer recipe: 10).
  std::string model = "paper";
  std::string init;
  double new_layer_factor = 1;
  // --aux: build googlenet or inception-v3 with its auxiliary classifiers (training-only losses,
  // ewnet::ModelOptions); a checkpoint's model has them when it was trained with them.
  bool auxiliary_classifiers = false;
};

/// The network r.model for the data's classes and image size, with its auxiliary classifiers when asked.
inline ewnet::Model<Real> build_network(const RunOptions& r, const Data& d) {
  ewnet::ModelOptions o;
  o.auxiliary_classifiers = r.auxiliary_classifiers;
  return ewnet::build_model<Real>(r.model, int(d.classes.size()), d.cache->image_size(), r.seed, o);
}

/// Sets the new classifiers' learning-rate factor ("fc" and the auxiliary classifiers' last
/// layers), and says so.
inline void apply_new_layer_factor(ewnet::Model<Real>& m, double factor, std::ostream& out) {
  const std::vector<std::string> classifiers = ewnet::classifier_layers(m, ewnet::kClassifierLayer);
  for (const std::string& c : classifiers) m.set_learn_rate_factors(c, factor, factor);
  if (factor == 1) return;
  std::string names;
  for (const std::string& c : classifiers) names += (names.empty() ? "'" : ", '") + c + "'";
  out << "the new classifier" << (classifiers.size() > 1 ? "s " : " ") << names << (classifiers.size() > 1 ? " learn" : " learns")
      << " at " << factor << " times the rate (learning-rate factor " << factor << ", MATLAB's transfer recipe)\n";
}

/// What load_weights left out or left fresh, for the programs' one line about --init.
inline std::string auxiliary_note(const ewnet::WeightsLoadResult& w) {
  std::string s;
  if (!w.left_out.empty()) s += ", " + std::to_string(w.left_out.size()) + " auxiliary tensors left out (the model "
                                "is built without its auxiliary classifiers; --aux builds them)";
  if (!w.fresh.empty()) s += ", the auxiliary classifiers start from random weights (the file has none)";
  return s;
}

inline ewnet::train::TrainOptions train_options(const RunOptions& r, const Data& d, const std::string& title,
                                                const std::string& data_dir) {
  ewnet::train::TrainOptions t;
  t.epochs = r.epochs;
  t.batch = r.batch;
  t.schedule = ewnet::LearnRateSchedule::constant(r.learn_rate);
  t.seed = r.seed;
  t.device = r.device;
  t.out_dir = r.out_dir;
  t.title = title;
  t.classes = d.classes;
  t.resume = r.resume;
  t.allow_changed_settings = r.allow_changed_settings;
  // The bar rewrites one line with \r: only on a terminal, never into a log file.
  t.progress = r.progress && ::isatty(STDERR_FILENO);
  t.threads = r.threads;
  t.report_extra["data"] = data_report(d, data_dir);
  t.metadata["ewnet.data"] = data_dir;
  return t;
}

/// Sets the input layer's zscore normalisation from the training split (saved with the model).
inline void normalise_on_training_split(ewnet::Model<Real>& m, const Data& d) {
  const ewnet::data::ChannelStats s = ewnet::data::channel_stats(*d.cache, d.split.train);
  m.input_layer().set_normalization({Real(s.mean[0]), Real(s.mean[1]), Real(s.mean[2])},
                                    {Real(s.std[0]), Real(s.std[1]), Real(s.std[2])});
}

/// Trains the paper's model from random weights. `schedule` defaults to a constant rate.
inline ewnet::train::History train_scratch(const Data& d, const RunOptions& r, const std::string& title,
                                           const std::string& data_dir, std::ostream& out,
                                           const ewnet::LearnRateSchedule* schedule = nullptr) {
  ewnet::Model<Real> m = build_network(r, d);
  bool normalised = false;
  if (!r.init.empty()) {
    ewnet::WeightsLoadOptions lo;
    lo.skip_classifier_on_mismatch = true;
    const ewnet::WeightsLoadResult w = ewnet::load_weights(m, r.init, lo);
    normalised = w.ewnet_checkpoint || w.metadata.count("ewnet.input_mean");
    out << r.model << ": weights from " << r.init << (w.classifier_loaded ? "" : " (all but the classifier: its "
                                                      "class count differs; a fresh one replaces it)")
        << auxiliary_note(w) << "; input normalisation " << (normalised ? "from the file" : "from the training split") << "\n";
    if (!w.classifier_loaded) apply_new_layer_factor(m, r.new_layer_factor, out);
  }
  if (!normalised) normalise_on_training_split(m, d);
  ewnet::train::TrainOptions t = train_options(r, d, title, data_dir);
  if (schedule) t.schedule = *schedule;
  return ewnet::train::fit(m, *d.cache, d.split, t, out);
}

/// The input size of a checkpoint's model (the target data must be cached at it).
inline int checkpoint_image_size(const std::string& path) {
  ewnet::Model<Real> m = ewnet::model_from_checkpoint<Real>(path);
  return m.input_shape().h;
}

/// The layer to freeze up to so that training starts at `from`: an exact layer name, or a module
/// prefix such as "inception_4a" (its first layer). "head" is the default (the task-specific
/// layers after kLastFrozenLayer), "all" trains every layer (returns "").
inline std::string freeze_boundary(ewnet::Model<Real>& m, const std::string& from) {
  if (from.empty() || from == "head") return ewnet::last_base_layer(m);
  if (from == "all") return "";
  const std::vector<ewnet::Layer<Real>*> layers = m.layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string& n = layers[i]->name();
    // The paper model's modules prefix their layers with "NAME-", torchvision's with "NAME.".
    if (n == from || n.rfind(from + "-", 0) == 0 || n.rfind(from + ".", 0) == 0) {
      if (i == 0) return "";
      return layers[i - 1]->name();
    }
  }
  throw ewnet::Error("--train-from: no layer or module named '" + from + "' (see docs/model.md for the names)");
}

/// How the target is fine-tuned from the source model. docs/transfer-learning.md measures each
/// on the shared pairs over seeds; `all` won there and is ewnet-transfer's default.
///   frozen-base            the paper's: the base frozen (factor 0), only the head trains, from
///                          features computed once, without augmentation
///   frozen-base-augmented  the base frozen, the head trains on augmented images (the frozen base
///                          runs forward every step)
///   last-block             the last inception module at base_factor times the rate, the head at
///                          the full rate, the layers before frozen; augmented images
///   all                    every layer: the base at base_factor times the rate (1 by default:
///                          the whole model at the head's rate, which beat 0.1 and 0.3, MATLAB's
///                          ratio among them, on the shared pairs), the new head at the full rate;
///                          augmented images
enum class Recipe { frozen_base, frozen_base_augmented, last_block, all };

inline const char* recipe_name(Recipe r) {
  switch (r) {
    case Recipe::frozen_base: return "frozen-base";
    case Recipe::frozen_base_augmented: return "frozen-base-augmented";
    case Recipe::last_block: return "last-block";
    case Recipe::all: return "all";
  }
  return "?";
}

inline Recipe parse_recipe(const std::string& name) {
  for (Recipe r : {Recipe::frozen_base, Recipe::frozen_base_augmented, Recipe::last_block, Recipe::all})
    if (name == recipe_name(r)) return r;
  throw ewnet::Error("unknown fine-tuning recipe '" + name +
                     "' (frozen-base, frozen-base-augmented, last-block or all)");
}

/// What `--recipe paper` prints: the settings the paper states, then what ewnet chose where it
/// states none (docs/model.md separates the two for the model itself).
inline void print_paper_recipe(std::ostream& out, const std::string& stated) {
  out << "--recipe paper: as the paper states: " << stated << "\n"
      << "  ewnet's choices where the paper states none: momentum 0.9 and L2 factor 1e-4 on weights (MATLAB's "
         "defaults), GoogLeNet's stem and filter counts, LRN with k = 1, 1x1 projection shortcuts, He "
         "initialisation, augmentation of the training images (random crop, shift, rotation, flip), seeded "
         "shuffling; when only the head trains, it trains from the frozen base's features computed once.\n";
}

/// The recipe the programs use unless told otherwise: the one that won on the shared pairs.
inline constexpr Recipe kDefaultRecipe = Recipe::all;

/// parse_recipe for a command-line option: a wrong name is a usage error, not a run-time one.
inline Recipe parse_recipe_option(const std::string& name) {
  try {
    return parse_recipe(name);
  } catch (const ewnet::Error& e) {
    throw cli::UsageError(std::string("--recipe: ") + e.what());
  }
}

struct FinetuneOptions {
  Recipe recipe = Recipe::all;
  double base_factor = 1;     // learning-rate factor of the trainable base layers (last-block, all);
                              // measured against 0.1 and 0.3: docs/transfer-learning.md
  double drop_factor = 0.5;   // the paper's target schedule: the rate halved...
  int drop_period = 20;       // ...every 20 epochs
  std::string train_from;     // overrides the recipe's boundary: train LAYER and after (ewnet-finetune)
};

/// Fine-tunes a model on the target data: the classifier is replaced for the target's classes,
/// the layers before the recipe's trainable part get learning-rate factor 0, the trainable base
/// layers base_factor, the new classifier r.new_layer_factor (1 unless asked: MATLAB's recipe for
/// a pretrained network raises it to 10), and the rate follows the paper's schedule (halved every
/// 20 epochs). The model's input normalisation is kept: the base's features were learned on inputs
/// normalised that way. With the whole base frozen and the recipe frozen-base, the images are not
/// augmented and the head trains from their features computed once; otherwise every step runs the
/// whole model on augmented images. `source` names where the weights came from.
inline ewnet::train::History finetune_model(ewnet::Model<Real> m, const std::string& source, const Data& d,
                                            const RunOptions& r, const FinetuneOptions& f, const std::string& title,
                                            const std::string& data_dir, std::ostream& out);

/// finetune_model from an ewnet checkpoint (the source stage's best.safetensors).
inline ewnet::train::History finetune(const std::string& source_checkpoint, const Data& d, const RunOptions& r,
                                      const FinetuneOptions& f, const std::string& title, const std::string& data_dir,
                                      std::ostream& out) {
  return finetune_model(ewnet::model_from_checkpoint<Real>(source_checkpoint, r.seed), source_checkpoint, d, r, f,
                        title, data_dir, out);
}

/// finetune_model from weights that are not an ewnet checkpoint (--model NAME --init FILE): the
/// network is built, loaded (all but a classifier for another class count), then fine-tuned. A
/// file without input normalisation gets the target's training split's.
inline ewnet::train::History finetune_init(const Data& d, const RunOptions& r, const FinetuneOptions& f,
                                           const std::string& title, const std::string& data_dir, std::ostream& out) {
  ewnet::Model<Real> m = build_network(r, d);
  ewnet::WeightsLoadOptions lo;
  lo.skip_classifier_on_mismatch = true;
  const ewnet::WeightsLoadResult w = ewnet::load_weights(m, r.init, lo);
  if (!auxiliary_note(w).empty()) out << r.model << ": weights from " << r.init << auxiliary_note(w) << "\n";
  if (!w.ewnet_checkpoint && !w.metadata.count("ewnet.input_mean")) normalise_on_training_split(m, d);
  return finetune_model(std::move(m), r.init, d, r, f, title, data_dir, out);
}

inline ewnet::train::History finetune_model(ewnet::Model<Real> m, const std::string& source, const Data& d,
                                            const RunOptions& r, const FinetuneOptions& f, const std::string& title,
                                            const std::string& data_dir, std::ostream& out) {
  const std::string& source_checkpoint = source;
  EWNET_CHECK(m.input_shape().h == d.cache->image_size(), source_checkpoint, " expects ", m.input_shape().hwc(),
              " images but the target was cached at ", d.cache->image_size());
  // A fresh classifier for the target's classes: "fc", and the auxiliary classifiers' last layers.
  for (const std::string& c : ewnet::classifier_layers(m, ewnet::kClassifierLayer))
    m.replace(c, std::make_unique<ewnet::FullyConnected<Real>>(c, int(d.classes.size())));
  m.build();
  ewnet::Sgdm<Real>::reset_momentum(m);  // the source's velocities belong to another task
  m.set_iteration(0);
  m.set_learn_rate_factors_up_to(m.layers().back()->name(), 1, 1);
  // frozen: the last layer with factor 0 ("" when none); slow: the last layer at base_factor.
  const std::string base_end = ewnet::last_base_layer(m);
  std::string frozen_to, slow_to;
  if (!f.train_from.empty()) {
    frozen_to = freeze_boundary(m, f.train_from);
  } else if (f.recipe == Recipe::frozen_base || f.recipe == Recipe::frozen_base_augmented) {
    frozen_to = base_end;
  } else if (f.recipe == Recipe::last_block) {
    EWNET_CHECK(m.has_layer(ewnet::kLastFrozenLayer), "the last-block recipe is defined for the paper's model (its "
                "module ", ewnet::kPaperModules[2], "); for another network use --train-from MODULE");
    frozen_to = freeze_boundary(m, ewnet::kPaperModules[2]);
    slow_to = base_end;
  } else {
    slow_to = base_end;
  }
  if (!slow_to.empty() && f.base_factor != 1) m.set_learn_rate_factors_up_to(slow_to, f.base_factor, f.base_factor);
  if (!frozen_to.empty()) m.freeze_up_to(frozen_to);
  // An auxiliary classifier that reads only frozen layers would train nothing but itself: left out.
  for (const std::string& loss : m.auxiliary_losses()) {
    bool useful = false;
    for (const std::string& in : m.auxiliary_inputs(loss)) useful = useful || m.trains_up_to(in);
    if (useful) continue;
    m.remove_auxiliary(loss);
    out << "the auxiliary classifier ending in '" << loss << "' is left out: the layers it reads are frozen\n";
  }
  apply_new_layer_factor(m, r.new_layer_factor, out);
  const std::string feature = ewnet::feature_layer(m);
  size_t frozen = 0, trainable = 0;
  for (auto& [layer, p] : m.parameters()) (p->trainable() ? trainable : frozen) += p->count();
  const bool cached = r.feature_cache && f.recipe == Recipe::frozen_base && f.train_from.empty() &&
                      ewnet::train::can_cache_features(m, feature);
  out << "fine-tuning " << source_checkpoint << " (recipe " << recipe_name(f.recipe) << "): "
      << (frozen_to.empty() ? std::string("nothing frozen") : "frozen up to and including '" + frozen_to + "'");
  if (!slow_to.empty()) out << ", the base up to '" << slow_to << "' at " << f.base_factor << "x the rate";
  out << "; " << trainable << " trainable and " << frozen << " frozen parameters; "
      << (cached ? "no augmentation, the head trains from the features of '" + feature + "' computed once"
                 : std::string("augmented images through the whole model every step"))
      << "\n";
  ewnet::train::TrainOptions t = train_options(r, d, title, data_dir);
  if (cached) {
    t.feature_cache = feature;
    t.augment.enabled = false;
  }
  t.schedule = ewnet::LearnRateSchedule::piecewise(r.learn_rate, f.drop_factor, f.drop_period);
  t.metadata["ewnet.source_checkpoint"] = source_checkpoint;
  t.metadata["ewnet.finetune.recipe"] = recipe_name(f.recipe);
  t.metadata["ewnet.finetune.frozen_up_to"] = frozen_to;
  t.report_extra["source_checkpoint"] = source_checkpoint;
  t.report_extra["recipe"] = recipe_name(f.recipe);
  t.report_extra["frozen_up_to"] = frozen_to;
  t.report_extra["base_learn_rate_factor"] = slow_to.empty() ? 0.0 : f.base_factor;
  t.report_extra["trainable_parameters"] = trainable;
  t.report_extra["frozen_parameters"] = frozen;
  return ewnet::train::fit(m, *d.cache, d.split, t, out);
}

}  // namespace pipeline
