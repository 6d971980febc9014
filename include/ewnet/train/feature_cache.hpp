// ewnet/train/feature_cache.hpp: training a head from features computed once.
//
// When every layer up to a cut is frozen and augmentation is off, the cut's output for an image is
// the same every epoch. fit then computes it once for every training and validation image
// (inference mode, on the model's device, kept on the host) and each step runs only the layers
// after the cut (Model::forward_from) on the same shuffled mini-batches (FeatureBatches). On the
// CPU such a run equals the one through the whole model bitwise.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ewnet/data/loader.hpp>
#include <ewnet/graph.hpp>
#include <ewnet/train/batches.hpp>

namespace ewnet::train {

/// Whether `model` can train from cached activations of `cut`: the cut separates the graph (no
/// layer after it reads a layer before it), every layer up to and including it is frozen, and none
/// of those computes differently in training mode, so one inference pass gives the activations
/// every training pass would. Dropout does (a fresh mask each step); batch normalization does not
/// once frozen, which can_run_from ensures (a frozen batch norm normalises with its running
/// statistics in training too, and leaves them unchanged: layers/batch_norm.hpp), so the
/// torchvision networks' frozen bases cache. Auxiliary classifiers do not matter: they never run
/// from a cut, nor in the inference pass that computes the features.
template <class T>
bool can_cache_features(Model<T>& model, const std::string& cut) {
  if (cut.empty() || !model.can_run_from(cut)) return false;
  for (Layer<T>* l : model.layers()) {
    if (l->type() == "dropout" && !model.is_auxiliary(l->name())) return false;
    if (l->name() == cut) return true;
  }
  return false;
}

/// The activations of `cut` for every sample of `images`, in their order, on the host; computed in
/// inference mode, a mini-batch at a time, on the model's device.
template <class T>
Tensor<T> extract_features(Model<T>& model, const std::string& cut, ImageBatches<T>& images) {
  Tensor<T> features = Tensor<T>::empty(model.output_shape(cut).with_batch(int(images.samples())));
  int row = 0;
  images.start_epoch(0);
  for (MiniBatch<T> b; images.next(b);) {
    model.forward(*b.input, Mode::inference);
    features.batch(row, b.input->n()).copy_from(model.activation(cut));
    row += b.input->n();
  }
  return features;
}

/// Batches of the features of `cut` for the samples `indices` of `cache`, computed once now:
/// `batch` at a time, shuffled from `seed` each epoch when `shuffle`, staged on the model's device.
template <class T>
std::unique_ptr<FeatureBatches<T>> cached_features(Model<T>& model, const std::string& cut,
                                                   const data::ImageCache& cache, const std::vector<size_t>& indices,
                                                   int batch, bool shuffle, std::uint64_t seed, int threads) {
  std::vector<int> labels;
  for (size_t i : indices) labels.push_back(cache.label(i));
  Tensor<T> features;
  {
    ImageBatches<T> images(cache, indices, in_order(batch, threads), model.device());
    features = extract_features(model, cut, images);
  }
  return std::make_unique<FeatureBatches<T>>(cut, std::move(features), std::move(labels), batch, shuffle, seed,
                                             model.device());
}

}  // namespace ewnet::train
