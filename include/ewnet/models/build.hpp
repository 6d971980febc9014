// ewnet/models/build.hpp: the four networks by name, so programs and tests choose one with a string.
//
//   "paper"         the paper's 67-layer inception-residual model (models/paper_model.hpp)
//   "googlenet"     torchvision's GoogLeNet (models/googlenet.hpp)
//   "resnet18"      torchvision's ResNet-18 (models/resnet.hpp)
//   "inception-v3"  torchvision's Inception-v3 (models/inception_v3.hpp)
//
// All four end in the same head: one global average pooling (the transferable features), optional
// dropout, the classifier "fc", softmax and the cross-entropy output. feature_layer() and
// last_base_layer() find that boundary in any of them (and in a model rebuilt from a checkpoint),
// so fine-tuning freezes "everything before the head" without knowing the network.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ewnet/models/googlenet.hpp>
#include <ewnet/models/inception_v3.hpp>
#include <ewnet/models/paper_model.hpp>
#include <ewnet/models/resnet.hpp>

namespace ewnet {

/// The names build_model() knows, in the order of the paper's Table 1 (its own model first).
inline const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names{"paper", "googlenet", "inception-v3", "resnet18"};
  return names;
}

/// The smallest square input each network runs at.
inline int min_image_size(const std::string& name) {
  if (name == "inception-v3") return 75;
  return 32;
}

/// The input size each was designed for (224, and 299 for Inception-v3).
inline int design_image_size(const std::string& name) { return name == "inception-v3" ? 299 : 224; }

/// Whether `name` has auxiliary classifiers to add (GoogLeNet's two, Inception-v3's one).
inline bool has_auxiliary_classifiers(const std::string& name) {
  return name == "googlenet" || name == "inception-v3";
}

struct ModelOptions {
  /// Add the network's auxiliary classifiers (googlenet, inception-v3): extra losses in training
  /// only, weighted 0.3 and 0.4 (graph.hpp); the prediction is the same without them.
  bool auxiliary_classifiers = false;
};

/// Builds `name` for `classes` classes at image_size x image_size, weights drawn from `seed`.
template <class T>
Model<T> build_model(const std::string& name, int classes, int image_size, std::uint64_t seed,
                     const ModelOptions& o = {}) {
  if (o.auxiliary_classifiers && (name == "paper" || name == "resnet18"))
    throw Error(str(name, " has no auxiliary classifiers (googlenet and inception-v3 have)"));
  if (name == "paper") return build_paper_model<T>({classes, image_size, seed});
  if (name == "googlenet") return models::build_googlenet<T>(classes, image_size, seed, o.auxiliary_classifiers);
  if (name == "resnet18") return models::build_resnet18<T>(classes, image_size, seed);
  if (name == "inception-v3") return models::build_inception_v3<T>(classes, image_size, seed, o.auxiliary_classifiers);
  throw Error(str("no model named '", name, "' (known: paper, googlenet, resnet18, inception-v3)"));
}

/// The global average pooling whose output the head reads (the transferable features): the only
/// global_avg_pool layer on the four networks' main path (Inception-v3's auxiliary classifier has
/// one of its own). GraphError when there is none or more than one.
template <class T>
std::string feature_layer(Model<T>& m) {
  std::string found;
  for (Layer<T>* l : m.layers()) {
    if (l->type() != "global_avg_pool" || m.is_auxiliary(l->name())) continue;
    EWNET_CHECK_AS(GraphError, found.empty(), "the model has more than one global average pooling ('", found,
                   "', '", l->name(), "'): which one starts the head is ambiguous");
    found = l->name();
  }
  EWNET_CHECK_AS(GraphError, !found.empty(), "the model has no global average pooling to start its head");
  return found;
}

/// The classifiers: "fc" and each auxiliary classifier's last fully connected layer (the layer
/// feeding its softmax), the layers whose size is the number of classes.
template <class T>
std::vector<std::string> classifier_layers(Model<T>& m, const std::string& main = "fc") {
  std::vector<std::string> out;
  if (m.has_layer(main)) out.push_back(main);
  for (const std::string& loss : m.auxiliary_losses()) {
    std::string x = m.inputs_of(loss)[0];
    if (m.layer(x).type() == "softmax") x = m.inputs_of(x)[0];
    if (m.layer(x).type() == "fully_connected") out.push_back(x);
  }
  return out;
}

/// The last layer of the base: the one feeding feature_layer(). Fine-tuning the head freezes up to
/// and including it.
template <class T>
std::string last_base_layer(Model<T>& m) {
  const std::string f = feature_layer(m);
  for (const auto& [from, to] : m.connections())
    if (to == f) return from;
  throw GraphError(str("the feature layer '", f, "' has no input"));
}

}  // namespace ewnet
