// ewnet/data/loader.hpp: the in-memory image cache and the mini-batch loader.
//
// ImageCache decodes every file of a data set once, on several threads, resizes it to the
// network's input size in the model's geometry (data/resize.hpp: squash or crop) as soon as it is
// decoded, and keeps the 8-bit result (a 224x224 image is 150 KB, a 64x64 one 12 KB).
// A file that does not decode is skipped with one warning line naming it and the reason; the
// count is kept for the run's report. Decoding happens once, before training, so no step waits
// on a JPEG decoder.
//
// BatchLoader turns a list of cached images into mini-batches: each epoch it shuffles the list
// (a seeded Fisher-Yates shuffle drawn from (seed, epoch)), and a background thread, helped by
// worker threads, converts, augments and packs the next batches into float NCHW tensors while the
// current one trains; a bounded queue keeps it `prefetch` batches ahead. Every random draw of a
// sample's augmentation comes from (seed, epoch, position in the epoch), never from thread timing,
// so an epoch's batches are the same whatever the thread count or the moment a run was resumed.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <ewnet/data/augment.hpp>
#include <ewnet/data/dataset.hpp>
#include <ewnet/data/image.hpp>
#include <ewnet/random.hpp>
#include <ewnet/tensor.hpp>

namespace ewnet::data {

inline int default_threads() { return int(std::max(1u, std::min(4u, std::thread::hardware_concurrency()))); }

/// Decoder memory all of ImageCache's threads may hold together (each image alone may take up to
/// kMaxDecodeBytes).
inline constexpr std::size_t kDecodeBudgetBytes = std::size_t(1) << 30;

/// A data set's images, decoded and resized. After construction `dataset()` holds only the files
/// that decoded; `skipped()` lists the others with their reasons.
class ImageCache {
 public:
  /// Decodes and resizes every sample of `d` to size x size in geometry `mode` (squash: the aspect
  /// ratio is not kept, as MATLAB's augmentedImageDatastore resizes; crop: torchvision's
  /// Resize + CenterCrop). Warnings go to `warn` (may be null). Throws IoError when a class is left
  /// with no readable image.
  ImageCache(const Dataset& d, int size, std::ostream* warn = nullptr, int threads = default_threads(),
             ResizeMode mode = ResizeMode::squash)
      : size_(size), mode_(mode) {
    EWNET_CHECK(size > 0, "image cache: image size must be positive, got ", size);
    std::vector<Image> images(d.size());
    std::vector<std::string> errors(d.size());
    std::vector<std::thread> pool;
    const size_t workers = size_t(std::max(1, threads));
    // The threads together hold at most kDecodeBudgetBytes of decoder memory at once, each decode
    // and its resize under one reservation (load_for_input).
    DecodeBudget budget(kDecodeBudgetBytes);
    for (size_t w = 0; w < workers; ++w)
      pool.emplace_back([&, w] {
        for (size_t i = w; i < d.size(); i += workers) {
          try {
            images[i] = load_for_input(d.samples[i].path, size, mode, &budget);
          } catch (const std::bad_alloc&) {
            errors[i] = d.samples[i].path + ": out of memory while decoding and resizing the image";
          } catch (const std::exception& e) {
            errors[i] = e.what();
          }
        }
      });
    for (std::thread& t : pool) t.join();
    std::vector<size_t> keep;
    for (size_t i = 0; i < d.size(); ++i) {
      if (errors[i].empty()) {
        keep.push_back(i);
        images_.push_back(std::move(images[i]));
      } else {
        skipped_.push_back({d.samples[i].path, errors[i]});
        // The library's messages already start with the file's path.
        if (warn) *warn << "warning: skipping bad image: " << errors[i] << "\n";
      }
    }
    dataset_ = subset(d, keep);
    const std::vector<int> counts = dataset_.class_counts();
    for (size_t c = 0; c < counts.size(); ++c)
      EWNET_CHECK_AS(IoError, counts[c] > 0, d.root, ": class '", d.classes[c], "' has no readable image");
  }

  const Dataset& dataset() const { return dataset_; }
  const Image& image(size_t i) const { return images_.at(i); }
  int label(size_t i) const { return dataset_.samples.at(i).label; }
  size_t size() const { return images_.size(); }
  int image_size() const { return size_; }
  ResizeMode resize_mode() const { return mode_; }
  struct Skipped {
    std::string path, reason;
  };
  const std::vector<Skipped>& skipped() const { return skipped_; }

 private:
  int size_;
  ResizeMode mode_;
  Dataset dataset_;
  std::vector<Image> images_;
  std::vector<Skipped> skipped_;
};

/// Per-channel mean and standard deviation (over every pixel of the chosen images, 0..255
/// scale): the zscore normalisation MATLAB's imageInputLayer computes on the training data.
struct ChannelStats {
  std::array<double, 3> mean{0, 0, 0}, std{1, 1, 1};
};

inline ChannelStats channel_stats(const ImageCache& cache, const std::vector<size_t>& indices) {
  std::array<double, 3> sum{0, 0, 0}, sq{0, 0, 0};
  double count = 0;
  for (size_t i : indices) {
    const Image& img = cache.image(i);
    const size_t px = size_t(img.width) * size_t(img.height);
    for (size_t p = 0; p < px; ++p)
      for (size_t c = 0; c < 3; ++c) {
        const double v = img.rgb[3 * p + c];
        sum[c] += v;
        sq[c] += v * v;
      }
    count += double(px);
  }
  ChannelStats s;
  if (count == 0) return s;
  for (size_t c = 0; c < 3; ++c) {
    s.mean[c] = sum[c] / count;
    // Var = E[x^2] - E[x]^2; exact enough in double for 8-bit values; floor avoids a zero std on a
    // constant channel.
    s.std[c] = std::max(std::sqrt(std::max(0.0, sq[c] / count - s.mean[c] * s.mean[c])), 1e-3);
  }
  return s;
}

/// The order in which an epoch visits `indices`: as given, or a Fisher-Yates shuffle drawn from
/// (seed, epoch). BatchLoader uses it, and so does anything that must visit the same samples in the
/// same mini-batches without loading images (training from cached features, train/trainer.hpp).
inline std::vector<size_t> epoch_order(std::vector<size_t> indices, bool shuffle, std::uint64_t seed, int epoch) {
  if (shuffle) {
    Random rng(seed, 0x5a0ff1e00000ull + std::uint64_t(epoch));
    for (size_t i = indices.size(); i > 1; --i) std::swap(indices[i - 1], indices[size_t(rng.below(i))]);
  }
  return indices;
}

template <class T>
struct Batch {
  Tensor<T> images;             // N x 3 x S x S, values 0..255 (the model's input layer normalises)
  std::vector<int> labels;
  std::vector<size_t> indices;  // into the cache
};

struct LoaderOptions {
  int batch = 64;
  bool shuffle = true;
  AugmentOptions augment;  // set enabled = false for validation
  std::uint64_t seed = 0;
  int threads = default_threads();  // workers that pack one batch together
  int prefetch = 2;                 // batches prepared ahead of the one training
};

template <class T>
class BatchLoader {
 public:
  BatchLoader(const ImageCache& cache, std::vector<size_t> indices, LoaderOptions o)
      : cache_(cache), indices_(std::move(indices)), opt_(o) {
    EWNET_CHECK(o.batch > 0, "loader: batch size must be positive, got ", o.batch);
    EWNET_CHECK(!indices_.empty(), "loader: no images to load");
  }
  ~BatchLoader() { stop(); }
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  size_t size() const { return indices_.size(); }
  /// Batches per epoch; the last one may be smaller.
  int batches() const { return int((indices_.size() + size_t(opt_.batch) - 1) / size_t(opt_.batch)); }

  /// Starts preparing epoch `epoch` (0-based) in the background.
  void start_epoch(int epoch) {
    stop();
    std::vector<size_t> order = epoch_order(indices_, opt_.shuffle, opt_.seed, epoch);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.clear();
      remaining_ = batches();
      stopping_ = false;
      error_ = nullptr;
    }
    producer_ = std::thread([this, order = std::move(order), epoch] { produce(order, epoch); });
  }

  /// The next batch of the epoch, waiting for it if it is not ready; false after the last one.
  bool next(Batch<T>& out) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (remaining_ == 0 && queue_.empty()) return false;
    ready_.wait(lock, [&] { return !queue_.empty() || error_; });
    if (error_) std::rethrow_exception(error_);
    out = std::move(queue_.front());
    queue_.pop_front();
    --remaining_;
    space_.notify_one();
    return true;
  }

 private:
  void produce(const std::vector<size_t>& order, int epoch) {
    try {
      const int S = cache_.image_size();
      const size_t sample = size_t(3) * size_t(S) * size_t(S);
      for (size_t first = 0; first < order.size(); first += size_t(opt_.batch)) {
        const size_t n = std::min(order.size() - first, size_t(opt_.batch));
        Batch<T> b;
        b.images = Tensor<T>::empty({int(n), 3, S, S});
        b.labels.resize(n);
        b.indices.assign(order.begin() + std::ptrdiff_t(first), order.begin() + std::ptrdiff_t(first + n));
        auto pack = [&](size_t w, size_t workers) {
          for (size_t k = w; k < n; k += workers) {
            const size_t idx = b.indices[k];
            b.labels[k] = cache_.label(idx);
            // The generator of one sample of one epoch, independent of which thread packs it.
            Random rng(opt_.seed ^ 0xa06e57ull, (std::uint64_t(epoch) << 32) + first + k);
            augment_to_chw(cache_.image(idx), b.images.data() + k * sample, opt_.augment, rng);
          }
        };
        const size_t workers = std::min(n, size_t(std::max(1, opt_.threads)));
        std::vector<std::thread> pool;
        for (size_t w = 1; w < workers; ++w) pool.emplace_back(pack, w, workers);
        pack(0, workers);
        for (std::thread& t : pool) t.join();
        std::unique_lock<std::mutex> lock(mutex_);
        space_.wait(lock, [&] { return stopping_ || int(queue_.size()) < std::max(1, opt_.prefetch); });
        if (stopping_) return;
        queue_.push_back(std::move(b));
        ready_.notify_one();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      ready_.notify_all();
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      space_.notify_all();
    }
    if (producer_.joinable()) producer_.join();
  }

  const ImageCache& cache_;
  std::vector<size_t> indices_;
  LoaderOptions opt_;
  std::thread producer_;
  std::mutex mutex_;
  std::condition_variable ready_, space_;
  std::deque<Batch<T>> queue_;
  int remaining_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

}  // namespace ewnet::data
