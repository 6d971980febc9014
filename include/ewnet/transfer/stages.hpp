// ewnet/transfer/stages.hpp: the stages of the transfer pipeline as library calls.
//   train_network          a network by name, from random weights or a weights file, on a data set
//   finetune               a source model on a target data set by a recipe (transfer/recipe.hpp)
//   finetune_checkpoint    the same from an ewnet checkpoint (a source run's best.safetensors)
//   finetune_from_weights  the same from a weights file for a network by name (torchvision's, say)
// Each takes the data (decoded images and their split) and train::TrainOptions as they are (with
// TrainOptions::unlabeled, semi-supervised: transfer/semi_supervised.hpp), runs
// train::fit and returns its history; what a stage decides on the way (the weights it loaded,
// the input normalisation and where it came from, what it froze, a classifier's factor) it says
// through the reporter's notes. Each holds its output folder against the files it reads (the data,
// the weights or the source checkpoint: io::prepare_run_folder), so that fine-tuning into the
// source's own folder is refused before anything is written. ewnet-train,
// ewnet-finetune and ewnet-transfer are these calls behind a command line.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ewnet/data/dataset.hpp>
#include <ewnet/data/loader.hpp>
#include <ewnet/io/checkpoint.hpp>
#include <ewnet/io/files.hpp>
#include <ewnet/io/torchvision.hpp>
#include <ewnet/layers/fully_connected.hpp>
#include <ewnet/models/build.hpp>
#include <ewnet/optim/sgdm.hpp>
#include <ewnet/train/trainer.hpp>
#include <ewnet/transfer/recipe.hpp>
#include <ewnet/transfer/semi_supervised.hpp>

namespace ewnet::transfer {

/// A network by name (ewnet::build_model's) and the weights it starts from.
struct Network {
  std::string model = "paper";
  bool auxiliary_classifiers = false;  // googlenet's and inception-v3's (ModelOptions)
  // A file written by tools/torch_to_safetensors.py or an ewnet checkpoint (load_weights; empty:
  // random weights). A classifier for another number of classes is replaced by a fresh one.
  std::string weights;
  // train_network: the learning-rate factor of such a fresh classifier (MATLAB's transfer recipe:
  // 10). Fine-tuning replaces every classifier and gives them FinetuneOptions::new_layer_factor.
  double new_layer_factor = 10;
};

namespace detail {

inline void note(train::Reporter* report, const std::string& line) {
  if (report) report->note(line);
}

/// The classes a run names: the data's unless the options name them.
inline train::TrainOptions with_classes(train::TrainOptions t, const data::ImageCache& images) {
  if (t.classes.empty()) t.classes = images.dataset().classes;
  return t;
}

/// `net` built for the data's classes and image size (weights drawn from `seed`), with
/// net.weights loaded when given: all but a classifier for another number of classes.
template <class T>
std::pair<Model<T>, WeightsLoadResult> build_network(const Network& net, const data::ImageCache& images,
                                                     std::uint64_t seed) {
  ModelOptions o;
  o.auxiliary_classifiers = net.auxiliary_classifiers;
  Model<T> m = build_model<T>(net.model, int(images.dataset().classes.size()), images.image_size(), seed, o);
  WeightsLoadResult w;
  if (!net.weights.empty()) {
    WeightsLoadOptions lo;
    lo.skip_classifier_on_mismatch = true;
    w = load_weights(m, net.weights, lo);
  }
  return {std::move(m), std::move(w)};
}

/// What load_weights left out or left fresh, for the line about the weights.
inline std::string auxiliary_note(const WeightsLoadResult& w) {
  std::string s;
  if (!w.left_out.empty())
    s += ", " + std::to_string(w.left_out.size()) +
         " auxiliary tensors left out (the model is built without its auxiliary classifiers; --aux builds them)";
  if (!w.fresh.empty()) s += ", the auxiliary classifiers start from random weights (the file has none)";
  return s;
}

/// Sets the input layer's zscore normalisation from the training split (saved with the model), and
/// says so: `why` tells why the split's ("" for a network trained from random weights).
template <class T>
void normalise_on_training_split(Model<T>& m, const data::ImageCache& images, const data::Split& split,
                                 train::Reporter* report, const std::string& why) {
  const data::ChannelStats s = data::channel_stats(images, split.train);
  m.input_layer().set_normalization({T(s.mean[0]), T(s.mean[1]), T(s.mean[2])},
                                    {T(s.std[0]), T(s.std[1]), T(s.std[2])});
  note(report, "input normalisation: " + normalization_text(m) + ", the training split's statistics" + why);
}

/// Holds the run's folder against its inputs (io::prepare_run_folder: never one of them, nor inside
/// or around one), for a caller that has not held it already with all of its inputs.
inline io::RunFolder hold_folder(const train::TrainOptions& t, const data::ImageCache& images,
                                 const std::string& weights) {
  return io::prepare_run_folder(t.out_dir, {images.dataset().root, weights});
}

/// Sets the learning-rate factor of the classifiers ("fc" and the auxiliary classifiers' last
/// layers), and says so when it is not 1.
template <class T>
void set_new_layer_factor(Model<T>& m, double factor, train::Reporter* report) {
  const std::vector<std::string> classifiers = classifier_layers(m, kClassifierLayer);
  for (const std::string& c : classifiers) m.set_learn_rate_factors(c, factor, factor);
  if (factor == 1) return;
  std::string names;
  for (const std::string& c : classifiers) names += (names.empty() ? "'" : ", '") + c + "'";
  const bool many = classifiers.size() > 1;
  note(report, str("the new classifier", many ? "s " : " ", names, many ? " learn" : " learns", " at ", factor,
                   " times the rate (learning-rate factor ", factor, ", MATLAB's transfer recipe)"));
}

}  // namespace detail

/// Trains `net` on the data and returns the run's history: net built for the data's classes and
/// image size (weights drawn from t.seed), from net.weights when given; the input normalised on
/// the training split unless the weights bring their own normalisation.
template <class T = float>
train::History train_network(const Network& net, const data::ImageCache& images, const data::Split& split,
                             const train::TrainOptions& t, train::Reporter* report = nullptr) {
  const io::RunFolder folder = detail::hold_folder(t, images, net.weights);
  auto [m, w] = detail::build_network<T>(net, images, t.seed);
  if (!net.weights.empty()) {
    detail::note(report, str(net.model, ": weights from ", net.weights,
                             w.classifier_loaded ? "" : " (all but the classifier: its class count differs; a fresh one "
                                                        "replaces it)",
                             detail::auxiliary_note(w)));
    if (w.normalization_set()) detail::note(report, normalization_sentence(w, m, net.weights));
    if (!w.classifier_loaded) detail::set_new_layer_factor(m, net.new_layer_factor, report);
  }
  if (!w.normalization_set())
    detail::normalise_on_training_split(m, images, split, report,
                                        net.weights.empty() ? "" : ": " + net.weights + " brings none");
  return train::fit(m, images, split, detail::with_classes(t, images), report);
}

/// Fine-tunes `model` on the data by f's recipe and returns the run's history. The classifiers are
/// replaced by fresh ones for the data's classes, momentum and the step counter start again, and
/// the learning-rate factors follow the recipe's plan (plan_recipe): the layers up to its boundary
/// frozen, the trainable base at f.base_factor, the new classifiers at f.new_layer_factor. The
/// model's input normalisation is kept: the base's features were learned on inputs normalised
/// that way. With the plan's feature cache the images are not augmented and the head trains from
/// the base's features computed once, unless t.unlabeled asks for unlabelled images (they need the
/// whole model every step). `source` says where the weights came from (recorded in the run's
/// checkpoints and report).
template <class T>
train::History finetune(Model<T> model, const std::string& source, const data::ImageCache& images,
                        const data::Split& split, const FinetuneOptions& f, train::TrainOptions t,
                        train::Reporter* report = nullptr) {
  EWNET_CHECK(model.input_shape().h == images.image_size(), source, " expects ", model.input_shape().hwc(),
              " images but the target was cached at ", images.image_size());
  const io::RunFolder folder = detail::hold_folder(t, images, source);
  for (const std::string& c : classifier_layers(model, kClassifierLayer))
    model.replace(c, std::make_unique<FullyConnected<T>>(c, int(images.dataset().classes.size())));
  model.build();
  Sgdm<T>::reset_momentum(model);  // the source's velocities belong to another task
  model.set_iteration(0);
  const FreezePlan plan = plan_recipe(model, f);
  detail::set_learn_rates(model, plan, f.base_factor);
  for (const std::string& loss : plan.auxiliary_left_out) {
    model.remove_auxiliary(loss);
    detail::note(report, "the auxiliary classifier ending in '" + loss + "' is left out: the layers it reads are frozen");
  }
  detail::set_new_layer_factor(model, f.new_layer_factor, report);
  detail::note(report, "input normalisation: " + normalization_text(model) + ", kept from " + source +
                           " (the base learned its features on inputs normalised so)");
  size_t frozen = 0, trainable = 0;
  for (auto& [layer, p] : model.parameters()) (p->trainable() ? trainable : frozen) += p->count();
  const bool cached = !plan.cache_features.empty() && !t.unlabeled;
  detail::note(report, str("fine-tuning ", source, " (recipe ", method_name(f.recipe.method), "): ",
                           plan.frozen_to.empty() ? std::string("nothing frozen")
                                                  : "frozen up to and including '" + plan.frozen_to + "'",
                           plan.slow_to.empty() ? std::string()
                                                : str(", the base up to '", plan.slow_to, "' at ", f.base_factor,
                                                      "x the rate"),
                           "; ", trainable, " trainable and ", frozen, " frozen parameters; ",
                           cached ? "no augmentation, the head trains from the features of '" + plan.cache_features +
                                        "' computed once"
                                  : std::string("augmented images through the whole model every step")));
  if (cached) {
    t.feature_cache = plan.cache_features;
    t.augment.enabled = false;
  }
  t.metadata["ewnet.source_checkpoint"] = source;
  t.metadata["ewnet.finetune.recipe"] = method_name(f.recipe.method);
  t.metadata["ewnet.finetune.frozen_up_to"] = plan.frozen_to;
  t.report_extra["source_checkpoint"] = source;
  t.report_extra["recipe"] = method_name(f.recipe.method);
  t.report_extra["frozen_up_to"] = plan.frozen_to;
  t.report_extra["base_learn_rate_factor"] = plan.slow_to.empty() ? 0.0 : f.base_factor;
  t.report_extra["trainable_parameters"] = trainable;
  t.report_extra["frozen_parameters"] = frozen;
  if (t.strong_augment.enabled)
    detail::note(report, "strong augmentation of the labelled images: " + data::describe(t.strong_augment));
  if (!t.unlabeled) return train::fit(model, images, split, detail::with_classes(std::move(t), images), report);
  const std::shared_ptr<const train::UnlabeledTraining> u = t.unlabeled;
  detail::note(report, "semi-supervised: " + train::describe(*u));
  detail::note(report, "setting: " + u->setting.line());
  t.metadata["ewnet.semi_supervised"] = train::describe(*u);
  json::Value semi = json::Value::object();
  semi["method"] = train::describe(*u);
  semi["setting"] = u->setting.transductive ? "transductive" : "inductive";
  semi["setting_line"] = u->setting.line();
  semi["unlabeled_images"] = int(u->pool.size());
  semi["validation_images_among_them"] = int(u->setting.validation_images);
  t.report_extra["semi_supervised"] = semi;
  train::History h = train::fit(model, images, split, detail::with_classes(std::move(t), images), report);
  detail::note(report, "semi-supervised steps: " + train::tally_text(*u));
  return h;
}

/// finetune from an ewnet checkpoint (a source run's best.safetensors).
template <class T = float>
train::History finetune_checkpoint(const std::string& checkpoint, const data::ImageCache& images,
                                   const data::Split& split, const FinetuneOptions& f, const train::TrainOptions& t,
                                   train::Reporter* report = nullptr) {
  return finetune(model_from_checkpoint<T>(checkpoint, t.seed), checkpoint, images, split, f, t, report);
}

/// finetune from weights that are not an ewnet checkpoint (torchvision's, written by
/// tools/torch_to_safetensors.py): net built and loaded (all but a classifier for another class
/// count), its input normalised on the target's training split when the file brings none.
template <class T = float>
train::History finetune_from_weights(const Network& net, const data::ImageCache& images, const data::Split& split,
                                     const FinetuneOptions& f, const train::TrainOptions& t,
                                     train::Reporter* report = nullptr) {
  const io::RunFolder folder = detail::hold_folder(t, images, net.weights);
  auto [m, w] = detail::build_network<T>(net, images, t.seed);
  if (!detail::auxiliary_note(w).empty())
    detail::note(report, net.model + ": weights from " + net.weights + detail::auxiliary_note(w));
  if (w.normalization_set())
    detail::note(report, normalization_sentence(w, m, net.weights));
  else
    detail::normalise_on_training_split(m, images, split, report, ": " + net.weights + " brings none");
  return finetune(std::move(m), net.weights, images, split, f, t, report);
}

}  // namespace ewnet::transfer
