// ewnet/deploy/classifier.hpp: a trained checkpoint as an image classifier for programs.
//
//   ewnet::Classifier c("best.safetensors");          // reads the checkpoint once
//   auto r = c.classify_file("phone.jpg", 3);          // top 3 classes with probabilities
//   auto r = c.classify_rgb(pixels, width, height);    // an 8-bit RGB buffer of any size
//   auto rs = c.classify_batch(images);                // one forward pass for many images
//   auto in = c.load("phone.jpg");                     // decoded and resized at once (a
//   auto rs = c.classify_prepared({in, ...});          //   full-resolution photo never waits)
//
// The model, the class names, the calibration and the geometry all come from one reading of the
// checkpoint (io/checkpoint.hpp: CheckpointFile), so a file replaced while it is read cannot mix
// two models. Preprocessing is the training pipeline's: the image is resized to the model's square
// input in the geometry the checkpoint records (data/resize.hpp, "ewnet.resize": squash, the
// default, or crop), written as planar 0..255 floats, and the input layer normalises it with the
// mean and deviation saved in the checkpoint.
// Memory: the model's activations for one image are estimated (ewnet/memory.hpp) before any batch
// runs; a checkpoint whose input needs more than the memory available is refused naming both
// figures, and a batch larger than what fits is run in parts (batch_limit()).
//
// Besides the probabilities, each result carries the two rejection scores of deploy/rejection.hpp,
// both "higher = more like the training classes":
//   max_probability = max_c p_c
//   energy_score    = log sum_c exp(z_c)     (= -E(x), the negative free energy of the logits z)
// and `known`, false when the checkpoint holds a calibrated threshold, rejection is on, and the
// chosen score falls below it.
//
// Threads: one Classifier may be shared by any number of threads. Decoding, resizing and ranking
// run in the calling thread; the forward pass holds a mutex (the model keeps its activations in
// place), so passes from several threads run one after another, each on ewnet's CPU thread pool.
// A program that wants passes to overlap creates one Classifier per thread.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include <ewnet/data/augment.hpp>
#include <ewnet/data/image.hpp>
#include <ewnet/deploy/gradcam.hpp>
#include <ewnet/deploy/rejection.hpp>
#include <ewnet/io/checkpoint.hpp>
#include <ewnet/memory.hpp>
#include <ewnet/model.hpp>

namespace ewnet {

struct ClassScore {
  int index = 0;
  std::string name;
  float probability = 0;
};

struct ClassifierResult {
  std::vector<ClassScore> top;       // the k best classes, best first
  std::vector<float> probabilities;  // every class, in the model's class order
  std::vector<float> logits;         // the scores softmax turned into probabilities
  float max_probability = 0;
  float energy_score = 0;            // log-sum-exp of the logits
  bool known = true;                 // false: rejected as none of the classes (see Classifier::set_reject)
};

struct ClassifierOptions {
  Device device = Device::cpu;
  int top_k = 3;  // default for the calls that take no k
  // Memory the classifier's activations may take (0: what the machine has available now,
  // MemAvailable); a checkpoint that needs more for one image is refused.
  std::uint64_t memory_limit = 0;
};

/// The class names a checkpoint records ("ewnet.classes"), empty when it records none. Throws
/// IoError naming the file and the key when the entry is not a list of strings of `classes` names.
inline std::vector<std::string> checkpoint_class_names(const CheckpointFile& f, int classes) {
  std::vector<std::string> names;
  const std::string* text = f.find("ewnet.classes");
  if (!text) return names;
  try {
    const json::Value list = json::parse(*text, "JSON");
    for (const json::Value& c : list.as_array()) names.push_back(c.as_string());
  } catch (const Error& e) {
    throw IoError(str(f.path, ": metadata 'ewnet.classes': ", e.what(), " (expected a list of class names)"));
  }
  // A list of the wrong length is an error: the names would be attached to the wrong outputs.
  EWNET_CHECK_AS(IoError, int(names.size()) == classes, f.path, ": metadata 'ewnet.classes' names ", names.size(),
                 " classes but the model has ", classes, " outputs");
  return names;
}

/// The geometry a checkpoint records ("ewnet.resize"; squash when absent). Throws IoError naming
/// the file and the key for another value.
inline data::ResizeMode checkpoint_resize_mode(const CheckpointFile& f) {
  return data::recorded_resize_mode(f.metadata(), f.path);
}

class Classifier {
 public:
  explicit Classifier(const std::string& checkpoint, const ClassifierOptions& options = {})
      : Classifier(read_checkpoint(checkpoint), options) {}

  /// From a checkpoint already read (read_checkpoint): a program that also writes the checkpoint
  /// back (ewnet-calibrate) keeps the contents its model came from.
  explicit Classifier(const CheckpointFile& checkpoint, const ClassifierOptions& options = {})
      : checkpoint_(checkpoint.path), options_(options), model_(model_from_checkpoint<float>(checkpoint)) {
    const Shape s = model_.input_shape();
    EWNET_CHECK_AS(ShapeError, s.c == 3, checkpoint_, ": the model takes ", s.c, "-channel images; Classifier ",
                   "feeds RGB");
    height_ = s.h;
    width_ = s.w;
    classes_ = model_.classes();
    mode_ = checkpoint_resize_mode(checkpoint);
    EWNET_CHECK_AS(IoError, mode_ == data::ResizeMode::squash || height_ == width_, checkpoint_,
                   ": the crop geometry needs a square input, the model takes ", width_, "x", height_);
    check_memory();
    model_.to(options_.device);
    names_ = checkpoint_class_names(checkpoint, classes_);
    // No list at all gets class_0 ... (programs say so: names_from_checkpoint()).
    named_ = !names_.empty();
    if (names_.empty())
      for (int c = 0; c < classes_; ++c) names_.push_back("class_" + std::to_string(c));
    // A calibration that does not read is an error only for rejection (set_reject): the classes
    // are usable without it.
    if (const std::string* text = checkpoint.find(kRejectionMetadataKey)) {
      try {
        thresholds_ = RejectionThresholds::from_metadata(*text, checkpoint_);
      } catch (const Error& e) {
        thresholds_error_ = e.what();
      }
    }
    find_logits_layer();
  }

  const std::string& checkpoint() const { return checkpoint_; }
  int classes() const { return classes_; }
  /// False when the checkpoint names no classes (class_names() are then class_0 ...).
  bool names_from_checkpoint() const { return named_; }
  const std::vector<std::string>& class_names() const { return names_; }
  int input_width() const { return width_; }
  int input_height() const { return height_; }
  /// The geometry images are resized in (the checkpoint's "ewnet.resize").
  data::ResizeMode resize_mode() const { return mode_; }
  /// The most images one forward pass takes within the memory limit; larger batches run in parts.
  int batch_limit() const { return batch_limit_; }
  /// The calibrated thresholds stored in the checkpoint (calibrated() is false when there are none,
  /// or when they do not read: thresholds_error()).
  const RejectionThresholds& thresholds() const { return thresholds_; }
  const std::string& thresholds_error() const { return thresholds_error_; }

  /// Turns rejection on (results whose `score` is below the stored threshold get known = false)
  /// or off. Throws when the checkpoint holds no calibration, or one that does not read (naming
  /// the file, the key and what is wrong).
  void set_reject(bool on, RejectionScore score = RejectionScore::max_probability) {
    EWNET_CHECK_AS(IoError, !on || thresholds_error_.empty(), thresholds_error_);
    EWNET_CHECK(!on || thresholds_.calibrated(), checkpoint_, ": no rejection threshold in the checkpoint (run ",
                "ewnet-calibrate on it first)");
    reject_ = on;
    reject_score_ = score;
  }

  /// `image` as the model takes it: resized to the input in the checkpoint's geometry.
  data::Image prepare(const data::Image& image) const {
    return mode_ == data::ResizeMode::crop ? data::resize_for_input(image, height_, mode_)
                                           : data::resize_cubic(image, width_, height_);
  }
  /// An image file decoded and resized to the input at once (data::load_for_input), within `budget`.
  data::Image load(const std::string& path, data::DecodeBudget* budget = nullptr) const {
    if (mode_ == data::ResizeMode::squash && width_ != height_) return prepare(data::load_image(path, budget));
    return data::load_for_input(path, height_, mode_, budget);
  }

  ClassifierResult classify_file(const std::string& path, int top_k = -1) {
    return std::move(classify_prepared({load(path)}, top_k)[0]);
  }
  /// `rgb` holds width * height interleaved R, G, B bytes, rows top to bottom.
  ClassifierResult classify_rgb(const std::uint8_t* rgb, int width, int height, int top_k = -1) {
    EWNET_CHECK_AS(ShapeError, rgb != nullptr && width > 0 && height > 0, "classify_rgb: empty image ", width, "x",
                   height);
    data::Image img;
    img.width = width;
    img.height = height;
    img.rgb.assign(rgb, rgb + size_t(width) * size_t(height) * 3);
    return classify(img, top_k);
  }
  ClassifierResult classify(const data::Image& image, int top_k = -1) {
    return std::move(classify_batch(std::vector<data::Image>{image}, top_k)[0]);
  }
  std::vector<ClassifierResult> classify_files(const std::vector<std::string>& paths, int top_k = -1) {
    std::vector<data::Image> inputs;
    inputs.reserve(paths.size());
    for (const std::string& p : paths) inputs.push_back(load(p));
    return classify_prepared(inputs, top_k);
  }
  /// One forward pass for all of `images` (each of any size), in parts of batch_limit().
  std::vector<ClassifierResult> classify_batch(const std::vector<data::Image>& images, int top_k = -1) {
    std::vector<data::Image> inputs;
    inputs.reserve(images.size());
    for (const data::Image& i : images) inputs.push_back(prepare(i));
    return classify_prepared(inputs, top_k);
  }
  /// classify_batch of images already prepared (prepare(), load()): each exactly the input size.
  std::vector<ClassifierResult> classify_prepared(const std::vector<data::Image>& inputs, int top_k = -1) {
    std::vector<ClassifierResult> out;
    out.reserve(inputs.size());
    for (size_t first = 0; first < inputs.size(); first += size_t(batch_limit_)) {
      const size_t n = std::min(inputs.size() - first, size_t(batch_limit_));
      const Tensor<float> x = to_tensor(inputs, first, n);
      std::vector<float> probs, logits;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        run(x, probs, logits);
      }
      for (size_t i = 0; i < n; ++i)
        out.push_back(result(probs.data() + i * size_t(classes_), logits.data() + i * size_t(classes_), top_k));
    }
    return out;
  }

  /// The Grad-CAM heat map of `image` (deploy/gradcam.hpp) for class `class_index`, or for the
  /// predicted class when it is negative, on the last layer with a spatial output. The map covers
  /// what the model saw: the whole image (squash) or its central crop (crop).
  HeatMap explain(const data::Image& image, int class_index = -1) { return explain_prepared(prepare(image), class_index); }
  HeatMap explain_prepared(const data::Image& input, int class_index = -1) {
    const Tensor<float> x = to_tensor({input}, 0, 1);
    std::lock_guard<std::mutex> lock(mutex_);
    return grad_cam(model_, options_.device == Device::cpu ? x : x.to(options_.device), class_index);
  }

  /// The batch the model sees for `images`: [N, 3, H, W] of 0..255, resized as in training.
  Tensor<float> preprocess(const std::vector<data::Image>& images) const {
    std::vector<data::Image> inputs;
    for (const data::Image& i : images) inputs.push_back(prepare(i));
    return to_tensor(inputs, 0, inputs.size());
  }

  /// The underlying model, for what the Classifier does not offer (Grad-CAM, export). Not
  /// guarded by the mutex: do not use it while other threads classify.
  Model<float>& model() { return model_; }

 private:
  Tensor<float> to_tensor(const std::vector<data::Image>& inputs, size_t first, size_t n) const {
    Tensor<float> x = Tensor<float>::empty({int(n), 3, height_, width_});
    const size_t per = size_t(3) * size_t(height_) * size_t(width_);
    for (size_t i = 0; i < n; ++i) {
      const data::Image& in = inputs[first + i];
      EWNET_CHECK_AS(ShapeError, in.width == width_ && in.height == height_, checkpoint_, ": a prepared image is ",
                     in.width, "x", in.height, " but the model takes ", width_, "x", height_,
                     " (prepare() or load() it first)");
      data::image_to_chw(in, x.data() + i * per);
    }
    return x;
  }

  // Refuses a model whose activations for one image do not fit (ewnet/memory.hpp), and sets how
  // many images one pass may take.
  void check_memory() {
    if (options_.device != Device::cpu) {
      batch_limit_ = 1 << 20;  // the activations live on the device, whose memory the CUDA backend reports itself
      return;
    }
    const ModelMemory m = model_memory(model_);
    const std::uint64_t limit = options_.memory_limit ? options_.memory_limit : available_memory_bytes();
    EWNET_CHECK_AS(IoError, m.batch(1) <= limit, checkpoint_, ": the model takes ", width_, "x", height_,
                   " images; classifying one needs about ", gib_text(m.batch(1)), " (its ", model_.layer_count(),
                   " layers' activations) but ", gib_text(limit), " is available; classify on a machine with more ",
                   "memory, or retrain at a smaller --image-size");
    batch_limit_ = int(std::min<std::uint64_t>(1u << 20, (limit - m.scratch) / std::max<std::uint64_t>(1, m.per_image)));
  }

  void find_logits_layer() {
    const std::string pred = model_.prediction_layer();
    if (model_.layer(pred).type() == "softmax") {
      logits_layer_ = model_.inputs_of(pred)[0];
      softmax_in_model_ = true;
    } else {
      logits_layer_ = pred;  // the model ends in scores: softmax is applied here
      softmax_in_model_ = false;
    }
  }

  void run(const Tensor<float>& x, std::vector<float>& probs, std::vector<float>& logits) {
    const Tensor<float>& p = model_.forward(options_.device == Device::cpu ? x : x.to(options_.device),
                                            Mode::inference);
    logits = model_.activation(logits_layer_).to_vector();
    if (softmax_in_model_) {
      probs = p.to_vector();
    } else {
      probs = logits;
      for (size_t r = 0; r < probs.size(); r += size_t(classes_)) {
        float* z = probs.data() + r;
        const float m = *std::max_element(z, z + classes_);
        double s = 0;
        for (int c = 0; c < classes_; ++c) s += std::exp(double(z[c] - m));
        for (int c = 0; c < classes_; ++c) z[c] = float(std::exp(double(z[c] - m)) / s);
      }
    }
  }

  ClassifierResult result(const float* p, const float* z, int top_k) const {
    for (int c = 0; c < classes_; ++c)
      EWNET_CHECK(std::isfinite(p[c]) && std::isfinite(z[c]), checkpoint_, ": the model's output is not a number (",
                  p[c], " for class ", names_[size_t(c)], "); the checkpoint is unusable (trained into divergence?)");
    ClassifierResult r;
    r.probabilities.assign(p, p + classes_);
    r.logits.assign(z, z + classes_);
    std::vector<int> order(static_cast<size_t>(classes_));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    const int k = std::min(classes_, top_k < 0 ? options_.top_k : top_k);
    for (int j = 0; j < k; ++j) r.top.push_back({order[size_t(j)], names_[size_t(order[size_t(j)])], p[order[size_t(j)]]});
    r.max_probability = p[order[0]];
    r.energy_score = float(energy_score(z, classes_));
    if (reject_) r.known = thresholds_.accepts(reject_score_, r.max_probability, r.energy_score);
    return r;
  }

  std::string checkpoint_;
  ClassifierOptions options_;
  Model<float> model_;
  std::mutex mutex_;
  int height_ = 0, width_ = 0, classes_ = 0;
  data::ResizeMode mode_ = data::ResizeMode::squash;
  int batch_limit_ = 1;
  bool named_ = false;  // the checkpoint names its classes
  std::vector<std::string> names_;
  std::string logits_layer_;
  bool softmax_in_model_ = true;
  RejectionThresholds thresholds_;
  std::string thresholds_error_;
  bool reject_ = false;
  RejectionScore reject_score_ = RejectionScore::max_probability;
};

}  // namespace ewnet
