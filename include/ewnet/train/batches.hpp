// ewnet/train/batches.hpp: the one way a mini-batch is made for training and evaluation.
//
// A BatchSource hands out an epoch's mini-batches, each with its input already on the model's
// device, and knows which part of the model that input enters:
//   ImageBatches    images through the loader (data/loader.hpp: shuffled and augmented, or in
//                   order and plain for evaluation); the whole model runs.
//   FeatureBatches  rows of activations of a layer computed once (feature_cache.hpp); only the
//                   layers after it run (Model::forward_from). An epoch visits the rows in the
//                   order a loader over the same samples would (data::epoch_order), so a run
//                   from features meets the same samples in the same mini-batches as one from
//                   images.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <ewnet/data/loader.hpp>
#include <ewnet/graph.hpp>

namespace ewnet::train {

/// `host` on `device`: the tensor itself on the CPU, else a copy in `staged`, which keeps its
/// allocation from batch to batch.
template <class T>
const Tensor<T>& on_device(const Tensor<T>& host, Device device, Tensor<T>& staged) {
  if (device == Device::cpu) return host;
  if (staged.shape() != host.shape() || staged.device() != device) staged = Tensor<T>::empty(host.shape(), device);
  staged.copy_from(host);
  return staged;
}

/// Samples `rows` of host `features`, packed into one batch in `out` (on the host, reused).
template <class T>
void gather_rows(const Tensor<T>& features, const std::vector<size_t>& rows, Tensor<T>& out) {
  const Shape s = features.shape().with_batch(int(rows.size()));
  if (out.shape() != s) out = Tensor<T>::empty(s);
  const size_t per = features.shape().sample_size();
  for (size_t k = 0; k < rows.size(); ++k) std::copy_n(features.sample(int(rows[k])), per, out.sample(int(k)));
}

/// Loader options for evaluation and feature extraction: every sample once, in order, without
/// augmentation.
inline data::LoaderOptions in_order(int batch, int threads) {
  data::LoaderOptions o;
  o.batch = batch;
  o.shuffle = false;
  o.augment.enabled = false;
  o.threads = threads;
  return o;
}

/// A mini-batch: its input on the model's device, and its labels.
template <class T>
struct MiniBatch {
  const Tensor<T>* input = nullptr;
  std::vector<int> labels;
};

template <class T>
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  /// Starts epoch `epoch` (0-based); a shuffled source draws the epoch's order from (seed, epoch).
  virtual void start_epoch(int epoch) = 0;
  /// The epoch's next mini-batch; false after its last. `b` stays valid until the next call.
  virtual bool next(MiniBatch<T>& b) = 0;
  /// Mini-batches an epoch, and samples.
  virtual int batches() const = 0;
  virtual size_t samples() const = 0;
  /// Runs `model` on `b` with its labels (the loss too) and returns the prediction.
  virtual const Tensor<T>& forward(Model<T>& model, const MiniBatch<T>& b, Mode mode) = 0;
};

template <class T>
class ImageBatches final : public BatchSource<T> {
 public:
  /// The images `indices` of `cache`, as the loader options say, staged on `device`.
  ImageBatches(const data::ImageCache& cache, std::vector<size_t> indices, const data::LoaderOptions& o, Device device)
      : samples_(indices.size()), loader_(cache, std::move(indices), o), device_(device) {}

  void start_epoch(int epoch) override { loader_.start_epoch(epoch); }
  bool next(MiniBatch<T>& b) override {
    if (!loader_.next(batch_)) return false;
    b.input = &on_device(batch_.images, device_, staged_);
    b.labels = std::move(batch_.labels);
    return true;
  }
  int batches() const override { return loader_.batches(); }
  size_t samples() const override { return samples_; }
  const Tensor<T>& forward(Model<T>& model, const MiniBatch<T>& b, Mode mode) override {
    return model.forward(*b.input, b.labels, mode);
  }

 private:
  size_t samples_;
  data::BatchLoader<T> loader_;
  Device device_;
  data::Batch<T> batch_;
  Tensor<T> staged_;
};

template <class T>
class FeatureBatches final : public BatchSource<T> {
 public:
  /// Row i of host `features` is the activation of `cut` for a sample labelled labels[i];
  /// `batch` rows at a time, shuffled from `seed` each epoch when `shuffle`, staged on `device`.
  FeatureBatches(std::string cut, Tensor<T> features, std::vector<int> labels, int batch, bool shuffle,
                 std::uint64_t seed, Device device)
      : cut_(std::move(cut)), features_(std::move(features)), labels_(std::move(labels)), batch_(size_t(batch)),
        shuffle_(shuffle), seed_(seed), device_(device) {
    EWNET_CHECK(size_t(features_.n()) == labels_.size(), "feature batches: ", features_.n(), " rows for ",
                labels_.size(), " labels");
    EWNET_CHECK(batch >= 1, "feature batches: the batch size must be positive, got ", batch);
  }

  void start_epoch(int epoch) override {
    // Shuffling the positions 0..n-1 swaps as shuffling the samples themselves would.
    std::vector<size_t> positions(labels_.size());
    std::iota(positions.begin(), positions.end(), size_t(0));
    order_ = data::epoch_order(std::move(positions), shuffle_, seed_, epoch);
    next_ = 0;
  }
  bool next(MiniBatch<T>& b) override {
    if (next_ == order_.size()) return false;
    const size_t n = std::min(order_.size() - next_, batch_);
    rows_.assign(order_.begin() + std::ptrdiff_t(next_), order_.begin() + std::ptrdiff_t(next_ + n));
    next_ += n;
    b.labels.resize(n);
    for (size_t i = 0; i < n; ++i) b.labels[i] = labels_[rows_[i]];
    gather_rows(features_, rows_, rows_host_);
    b.input = &on_device(rows_host_, device_, staged_);
    return true;
  }
  int batches() const override { return int((labels_.size() + batch_ - 1) / batch_); }
  size_t samples() const override { return labels_.size(); }
  const Tensor<T>& forward(Model<T>& model, const MiniBatch<T>& b, Mode mode) override {
    return model.forward_from(cut_, *b.input, b.labels, mode);
  }

 private:
  std::string cut_;
  Tensor<T> features_;
  std::vector<int> labels_;
  size_t batch_;
  bool shuffle_;
  std::uint64_t seed_;
  Device device_;
  std::vector<size_t> order_, rows_;
  size_t next_ = 0;
  Tensor<T> rows_host_, staged_;
};

}  // namespace ewnet::train
