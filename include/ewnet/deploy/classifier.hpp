// ewnet/deploy/classifier.hpp: a trained checkpoint as an image classifier for programs.
//
//   ewnet::Classifier c("best.safetensors");          // loads the model once
//   auto r = c.classify_file("phone.jpg", 3);          // top 3 classes with probabilities
//   auto r = c.classify_rgb(pixels, width, height);    // an 8-bit RGB buffer of any size
//   auto rs = c.classify_batch(images);                // one forward pass for many images
//
// Preprocessing is the training pipeline's: the image is resized to the model's square input with
// data::resize_bilinear (the aspect ratio is not kept, as the loader does), written as planar
// 0..255 floats, and the input layer normalises it with the mean and deviation saved in the
// checkpoint.
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
};

class Classifier {
 public:
  explicit Classifier(const std::string& checkpoint, const ClassifierOptions& options = {})
      : checkpoint_(checkpoint), options_(options), model_(model_from_checkpoint<float>(checkpoint)) {
    model_.to(options_.device);
    const Shape s = model_.input_shape();
    EWNET_CHECK_AS(ShapeError, s.c == 3, checkpoint, ": the model takes ", s.c, "-channel images; Classifier ",
                   "feeds RGB");
    height_ = s.h;
    width_ = s.w;
    classes_ = model_.classes();
    const auto meta = read_checkpoint_metadata(checkpoint);
    if (auto it = meta.find("ewnet.classes"); it != meta.end()) {
      const json::Value names = json::parse(it->second, checkpoint + " (ewnet.classes)");
      for (const auto& c : names.as_array()) names_.push_back(c.as_string());
    }
    // A list of the wrong length is an error (the names would be attached to the wrong outputs); no
    // list at all gets class_0 ... (programs say so: names_from_checkpoint()).
    EWNET_CHECK_AS(IoError, names_.empty() || int(names_.size()) == classes_, checkpoint, ": its metadata names ",
                   names_.size(), " classes but the model has ", classes_, " outputs");
    named_ = !names_.empty();
    if (names_.empty())
      for (int c = 0; c < classes_; ++c) names_.push_back("class_" + std::to_string(c));
    if (auto it = meta.find(kRejectionMetadataKey); it != meta.end())
      thresholds_ = RejectionThresholds::from_json(json::parse(it->second, checkpoint + " (" + kRejectionMetadataKey + ")"));
    find_logits_layer();
  }

  const std::string& checkpoint() const { return checkpoint_; }
  int classes() const { return classes_; }
  /// False when the checkpoint names no classes (class_names() are then class_0 ...).
  bool names_from_checkpoint() const { return named_; }
  const std::vector<std::string>& class_names() const { return names_; }
  int input_width() const { return width_; }
  int input_height() const { return height_; }
  /// The calibrated thresholds stored in the checkpoint (calibrated() is false when there are none).
  const RejectionThresholds& thresholds() const { return thresholds_; }

  /// Turns rejection on (results whose `score` is below the stored threshold get known = false)
  /// or off. Throws when the checkpoint holds no calibration.
  void set_reject(bool on, RejectionScore score = RejectionScore::max_probability) {
    EWNET_CHECK(!on || thresholds_.calibrated(), checkpoint_, ": no rejection threshold in the checkpoint (run ",
                "ewnet-calibrate on it first)");
    reject_ = on;
    reject_score_ = score;
  }

  ClassifierResult classify_file(const std::string& path, int top_k = -1) {
    return classify(data::load_image(path), top_k);
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
    std::vector<data::Image> images;
    images.reserve(paths.size());
    for (const std::string& p : paths) images.push_back(data::load_image(p));
    return classify_batch(images, top_k);
  }
  /// One forward pass for all of `images` (each of any size).
  std::vector<ClassifierResult> classify_batch(const std::vector<data::Image>& images, int top_k = -1) {
    if (images.empty()) return {};
    const Tensor<float> x = preprocess(images);
    std::vector<float> probs, logits;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      run(x, probs, logits);
    }
    std::vector<ClassifierResult> out(images.size());
    for (size_t i = 0; i < images.size(); ++i) out[i] = result(probs.data() + i * size_t(classes_),
                                                               logits.data() + i * size_t(classes_), top_k);
    return out;
  }

  /// The Grad-CAM heat map of `image` (deploy/gradcam.hpp) for class `class_index`, or for the
  /// predicted class when it is negative, on the last layer with a spatial output.
  HeatMap explain(const data::Image& image, int class_index = -1) {
    const Tensor<float> x = preprocess({image});
    std::lock_guard<std::mutex> lock(mutex_);
    return grad_cam(model_, options_.device == Device::cpu ? x : x.to(options_.device), class_index);
  }

  /// The batch the model sees for `images`: [N, 3, H, W] of 0..255, resized as in training.
  Tensor<float> preprocess(const std::vector<data::Image>& images) const {
    Tensor<float> x = Tensor<float>::empty({int(images.size()), 3, height_, width_});
    const size_t per = size_t(3) * size_t(height_) * size_t(width_);
    for (size_t i = 0; i < images.size(); ++i)
      data::image_to_chw(data::resize_bilinear(images[i], width_, height_), x.data() + i * per);
    return x;
  }

  /// The underlying model, for what the Classifier does not offer (Grad-CAM, export). Not
  /// guarded by the mutex: do not use it while other threads classify.
  Model<float>& model() { return model_; }

 private:
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
  bool named_ = false;  // the checkpoint names its classes
  std::vector<std::string> names_;
  std::string logits_layer_;
  bool softmax_in_model_ = true;
  RejectionThresholds thresholds_;
  bool reject_ = false;
  RejectionScore reject_score_ = RejectionScore::max_probability;
};

}  // namespace ewnet
