// ewnet/transfer/recipe.hpp: how a source model is fine-tuned on a target domain. A recipe names a
// method; plan_recipe turns it into a model's freeze plan (which layers stay frozen, which learn
// slower, which auxiliary classifiers go, whether the head trains from features computed once),
// decided without printing or training, so each can be tested on a network alone.
//
// The methods; docs/transfer-learning.md measures each over seeds on the shared pairs, and `all`
// won there (kDefaultRecipe):
//   all                    every layer: the base at base_factor times the rate (1 by default: the
//                          whole model at the head's rate, which beat 0.1 and 0.3, MATLAB's ratio
//                          among them), the new head at the full rate; augmented images
//   last-block             the last inception module at base_factor times the rate, the head at the
//                          full rate, the layers before frozen; augmented images
//   frozen-base            the paper's: the base frozen (learning-rate factor 0), only the head
//                          trains, from features computed once, without augmentation
//   frozen-base-augmented  the base frozen, the head trains on augmented images (the frozen base
//                          runs forward every step)
// The presets are the four methods under their own names and `paper`: frozen-base with the
// settings the paper states (PaperSettings), which programs take as their defaults.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <ewnet/error.hpp>
#include <ewnet/graph.hpp>
#include <ewnet/models/build.hpp>
#include <ewnet/models/paper_model.hpp>
#include <ewnet/train/feature_cache.hpp>

namespace ewnet::transfer {

enum class Method { frozen_base, frozen_base_augmented, last_block, all };

/// The method's name: the recipe a checkpoint records (ewnet.finetune.recipe) and a stage's folder.
inline const char* method_name(Method m) {
  switch (m) {
    case Method::frozen_base: return "frozen-base";
    case Method::frozen_base_augmented: return "frozen-base-augmented";
    case Method::last_block: return "last-block";
    case Method::all: return "all";
  }
  return "?";
}

inline const std::vector<Method>& methods() {
  static const std::vector<Method> m{Method::frozen_base, Method::frozen_base_augmented, Method::last_block,
                                     Method::all};
  return m;
}

/// The method named `name`; an Error naming the four otherwise.
inline Method parse_method(const std::string& name) {
  for (Method m : methods())
    if (name == method_name(m)) return m;
  throw Error("unknown fine-tuning recipe '" + name + "' (frozen-base, frozen-base-augmented, last-block or all)");
}

/// What the paper states for its runs (source training and fine-tuning alike): 224x224 images,
/// mini-batches of 64, rate 0.001 (constant on the source; on the target halved every 20 epochs),
/// up to 320 epochs, an 80/20 split.
struct PaperSettings {
  int image_size = 224;
  int batch = 64;
  int epochs = 320;
  double source_rate = 1e-3;
  double target_rate = 1e-3;
  double drop_factor = 0.5;
  int drop_period = 20;
  double train_fraction = 0.8;
};

/// What ewnet chose where the paper states nothing (said beside the stated settings).
inline constexpr const char* kPaperUnstated =
    "momentum 0.9 and L2 factor 1e-4 on weights (MATLAB's defaults), GoogLeNet's stem and filter counts, LRN with "
    "k = 1, 1x1 projection shortcuts, He initialisation, augmentation of the training images (random crop, shift, "
    "rotation, flip), seeded shuffling; when only the head trains, it trains from the frozen base's features "
    "computed once.";

struct Recipe {
  std::string name;                     // as --recipe names it
  Method method = Method::all;
  std::optional<PaperSettings> stated;  // the settings the recipe states for a whole run (paper's)

  static Recipe of(Method m) { return {method_name(m), m, std::nullopt}; }
  static Recipe paper() { return {"paper", Method::frozen_base, PaperSettings{}}; }
  /// The presets: the four methods, then paper.
  static std::vector<Recipe> presets() {
    std::vector<Recipe> all;
    for (Method m : methods()) all.push_back(of(m));
    all.push_back(paper());
    return all;
  }
  /// The preset named `name`; an Error naming them otherwise.
  static Recipe named(const std::string& name) {
    for (const Recipe& r : presets())
      if (r.name == name) return r;
    throw Error("unknown fine-tuning recipe '" + name +
                "' (frozen-base, frozen-base-augmented, last-block, all or paper)");
  }
};

/// The recipe the programs use unless told otherwise: the one that won on the shared pairs.
inline constexpr Method kDefaultRecipe = Method::all;

struct FinetuneOptions {
  Recipe recipe = Recipe::of(kDefaultRecipe);
  double base_factor = 1;        // learning-rate factor of the trainable base layers (last-block, all);
                                 // measured against 0.1 and 0.3: docs/transfer-learning.md
  std::string train_from;        // overrides the method's boundary: train this layer or module and after
  double new_layer_factor = 1;   // learning-rate factor of the new classifiers (MATLAB's recipe for a
                                 // pretrained network: 10)
  bool feature_cache = true;     // frozen-base: train the head from features computed once (false:
                                 // run the frozen base every step on augmented images)
};

/// Whether layers of the base train: every method but the frozen bases, and with train_from any
/// boundary but "head".
inline bool trains_base(const FinetuneOptions& f) {
  if (!f.train_from.empty()) return f.train_from != "head";
  return f.recipe.method == Method::all || f.recipe.method == Method::last_block;
}

/// The layer to freeze up to so that training starts at `from`: an exact layer name, or a module
/// prefix such as "inception_4a" (its first layer). "head" is the default (the task-specific
/// layers after the base), "all" trains every layer (returns "").
template <class T>
std::string freeze_boundary(Model<T>& m, const std::string& from) {
  if (from.empty() || from == "head") return last_base_layer(m);
  if (from == "all") return "";
  const std::vector<Layer<T>*> layers = m.layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string& n = layers[i]->name();
    // The paper model's modules prefix their layers with "NAME-", torchvision's with "NAME.".
    if (n == from || n.rfind(from + "-", 0) == 0 || n.rfind(from + ".", 0) == 0) {
      if (i == 0) return "";
      return layers[i - 1]->name();
    }
  }
  throw Error("--train-from: no layer or module named '" + from + "' (see docs/model.md for the names)");
}

/// What fine-tuning a model by a recipe changes in it.
struct FreezePlan {
  std::string frozen_to;                     // the last layer with factor 0 ("": nothing frozen)
  std::string slow_to;                       // the last layer at base_factor ("": none)
  std::vector<std::string> auxiliary_left_out;  // auxiliary classifiers (their losses) that would
                                                // read only frozen layers, so train only themselves
  std::string cache_features;                // the layer whose features the head trains from, computed
                                             // once ("": the whole model runs every step)
};

namespace detail {

/// Sets the learning-rate factors plan `p` gives: every layer at 1 (whatever the source had), the
/// base up to p.slow_to at `base_factor`, everything up to p.frozen_to frozen.
template <class T>
void set_learn_rates(Model<T>& model, const FreezePlan& p, double base_factor) {
  model.set_learn_rate_factors_up_to(model.layers().back()->name(), 1, 1);
  if (!p.slow_to.empty() && base_factor != 1) model.set_learn_rate_factors_up_to(p.slow_to, base_factor, base_factor);
  if (!p.frozen_to.empty()) model.freeze_up_to(p.frozen_to);
}

/// The learning-rate factors of every parameter of a model, put back when this goes.
template <class T>
class KeepLearnRates {
 public:
  explicit KeepLearnRates(Model<T>& m) : m_(m) {
    for (Param<T>* p : m.parameter_list()) saved_.push_back(p->learn_rate_factor);
  }
  ~KeepLearnRates() {
    // The model re-plans its backward pass from the factors before it next runs.
    size_t i = 0;
    for (Param<T>* p : m_.parameter_list()) p->learn_rate_factor = saved_[i++];
  }
  KeepLearnRates(const KeepLearnRates&) = delete;
  KeepLearnRates& operator=(const KeepLearnRates&) = delete;

 private:
  Model<T>& m_;
  std::vector<double> saved_;
};

}  // namespace detail

/// The freeze plan of `f` for `model` with its classifiers already replaced for the target (the
/// model is left as it is). Throws for last-block on a network without the paper's modules and
/// for a train_from that names no layer.
template <class T>
FreezePlan plan_recipe(Model<T>& model, const FinetuneOptions& f) {
  FreezePlan p;
  const std::string base_end = last_base_layer(model);
  if (!f.train_from.empty()) {
    p.frozen_to = freeze_boundary(model, f.train_from);
  } else if (f.recipe.method == Method::frozen_base || f.recipe.method == Method::frozen_base_augmented) {
    p.frozen_to = base_end;
  } else if (f.recipe.method == Method::last_block) {
    EWNET_CHECK(model.has_layer(kLastFrozenLayer), "the last-block recipe is defined for the paper's model (its "
                "module ", kPaperModules[2], "); for another network use --train-from MODULE");
    p.frozen_to = freeze_boundary(model, kPaperModules[2]);
    p.slow_to = base_end;
  } else {
    p.slow_to = base_end;
  }
  // What those factors leave trainable decides the rest: tried on the model, its factors put back.
  const detail::KeepLearnRates<T> keep(model);
  detail::set_learn_rates(model, p, f.base_factor);
  for (const std::string& loss : model.auxiliary_losses()) {
    bool useful = false;
    for (const std::string& in : model.auxiliary_inputs(loss)) useful = useful || model.trains_up_to(in);
    if (!useful) p.auxiliary_left_out.push_back(loss);
  }
  const std::string feature = feature_layer(model);
  if (f.recipe.method == Method::frozen_base && f.train_from.empty() && f.feature_cache &&
      train::can_cache_features(model, feature))
    p.cache_features = feature;
  return p;
}

}  // namespace ewnet::transfer
