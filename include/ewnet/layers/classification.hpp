// ewnet/layers/classification.hpp: the classification output layer: mean cross-entropy of class
// probabilities against integer labels (MATLAB's classificationLayer).
//
//   L = (1/N) sum_n -log p[n, t_n]
// Backward: when fed by a softmax (the usual case, marked fused by the graph) it writes the
// gradient with respect to the softmax's input, (p - onehot)/N; otherwise dL/dp = -onehot/(N p).
//
// An auxiliary loss (AuxiliaryLoss{w}: GoogLeNet's and Inception-v3's auxiliary classifiers) ends a
// side branch of the graph: it adds w times its cross-entropy to the training objective, so its
// gradients are w times the above, and runs in training passes only (graph.hpp). A model has one
// main classification layer, whose input is the model's prediction.
//
// Sample weights (set_sample_weights, for one pass): the loss becomes the weighted sum
//   L = sum_n w_n (-log p[n, t_n]),   dL/dlogits[n] = w_n (p[n] - onehot(t_n))
// so weights 1/N give the mean, and a batch that joins labelled images with pseudo-labelled ones
// (FixMatch) weighs each part by its own count, a row of weight 0 (an image in the pass for its
// features or its prediction only) counting for nothing. The weighted path runs on the host (N x K
// values copied each way; on a CUDA model such a step is not captured into a graph).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include <ewnet/layers/layer.hpp>
#include <ewnet/ops/softmax.hpp>

namespace ewnet {

/// Marks a classification layer as an auxiliary classifier's loss, weighted by `weight` in the
/// training objective (torchvision's training recipes: 0.3 for GoogLeNet's two, 0.4 for Inception-v3's).
struct AuxiliaryLoss {
  double weight = 0.3;
};

template <class T>
class Classification : public Layer<T> {
 public:
  explicit Classification(std::string name) : Layer<T>(std::move(name)) {}
  Classification(std::string name, AuxiliaryLoss aux) : Layer<T>(std::move(name)), auxiliary_(true), weight_(aux.weight) {
    EWNET_CHECK(std::isfinite(aux.weight) && aux.weight > 0 && aux.weight <= 1e3, "auxiliary loss '", this->name(),
                "': weight ", aux.weight, " must be a positive finite number");
  }
  std::string type() const override { return "classification"; }
  std::string describe() const override {
    return auxiliary_ ? str("auxiliary cross-entropy loss, weight ", weight_, " (training only)") : "cross-entropy loss";
  }
  bool is_loss() const override { return true; }
  /// True for an auxiliary classifier's loss; false for the model's output.
  bool auxiliary() const { return auxiliary_; }
  /// The loss's weight in the training objective (1 for the main loss).
  double weight() const { return weight_; }
  json::Value config() const override {
    json::Value c = json::Value::object();
    if (auxiliary_) c["auxiliary_weight"] = weight_;
    return c;
  }

  Shape setup(const std::vector<Shape>& in, Device) override {
    EWNET_CHECK_AS(ShapeError, in[0].h == 1 && in[0].w == 1, "expects class scores 1x1xK, got ", in[0].hwc());
    classes_ = in[0].c;
    return {1, 1, 1, 1};
  }
  void set_softmax_input(bool fused) { fused_ = fused; }
  int classes() const { return classes_; }

  /// Labels of the next batch, each in [0, classes). Copied to the layer's device.
  void set_labels(const std::vector<int>& labels, Device device) {
    for (size_t i = 0; i < labels.size(); ++i)
      EWNET_CHECK_AS(ShapeError, labels[i] >= 0 && labels[i] < classes_, "layer '", this->name(), "': label ",
                     labels[i], " of sample ", i, " is outside [0, ", classes_, ")");
    host_labels_.assign(labels.begin(), labels.end());  // keeps its capacity: no allocation per step
    const Shape s{int(labels.size()), 1, 1, 1};
    if (labels_.shape() != s || labels_.device() != device) labels_ = Tensor<std::int32_t>::empty(s, device);
    detail::copy_bytes(device, labels_.data(), Device::cpu, host_labels_.data(), labels.size() * sizeof(std::int32_t));
    has_labels_ = true;
  }
  /// Labels already on the device (copied device to device; not range-checked).
  void set_labels(const Tensor<std::int32_t>& labels) {
    if (labels_.shape() != labels.shape() || labels_.device() != labels.device())
      labels_ = Tensor<std::int32_t>::empty(labels.shape(), labels.device());
    labels_.copy_from(labels);
    host_labels_.clear();  // not known on the host: sample weights are refused
    has_labels_ = true;
  }
  const Tensor<std::int32_t>& labels() const { return labels_; }

  /// Per-sample weights of the next pass (see the file comment), each finite and >= 0; the count
  /// is checked against the batch in forward. Labels must have been set from the host.
  void set_sample_weights(const std::vector<double>& weights) {
    for (size_t i = 0; i < weights.size(); ++i)
      EWNET_CHECK_AS(ShapeError, std::isfinite(weights[i]) && weights[i] >= 0, "layer '", this->name(),
                     "': sample weight ", weights[i], " of sample ", i, " is not a finite number >= 0");
    weights_.assign(weights.begin(), weights.end());
    weighted_ = true;
  }
  /// Back to the mean loss.
  void clear_sample_weights() { weighted_ = false; }
  bool weighted() const { return weighted_; }
  /// The loss of a pass from this layer's per-sample output: the weighted sum, or the mean.
  double reduce(const Tensor<T>& per_sample) const {
    const std::vector<T> v = per_sample.to_vector();
    double s = 0;
    for (T x : v) s += x;
    return weighted_ || v.empty() ? s : s / double(v.size());
  }

  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext&) override {
    EWNET_CHECK(has_labels_ && labels_.size() == size_t(x[0]->n()), "layer '", this->name(), "': ",
                labels_.size(), " labels set for a batch of ", x[0]->n());
    cross_entropy_forward(*x[0], labels_, y);
    if (weighted_) {
      EWNET_CHECK_AS(ShapeError, weights_.size() == size_t(x[0]->n()) && host_labels_.size() == weights_.size(),
                     "layer '", this->name(), "': ", weights_.size(), " sample weights for a batch of ", x[0]->n(),
                     " (weights need labels set from the host)");
      std::vector<T> loss = y.to_vector();
      for (size_t n = 0; n < loss.size(); ++n) loss[n] = T(double(loss[n]) * weights_[n]);
      y.copy_from(Tensor<T>::from_vector(y.shape(), loss, y.device()));
    }
  }
  void backward(const BackwardArgs<T>& a) override {
    if (!a.dx[0]) return;
    const Tensor<T>& p = *a.x[0];
    const T scale = T(weight_) / T(p.n());
    if (weighted_) {
      weighted_backward(p, *a.dx[0], a.dx_mode[0]);
    } else if (fused_) {
      softmax_cross_entropy_backward(p, labels_, *a.dx[0], scale, a.dx_mode[0]);
    } else {
      // dL/dp[n,c] = -[c == t_n] / (N p[n,c]), computed on the host (uncommon path).
      std::vector<T> probs = p.to_vector(), grad(probs.size(), T(0));
      std::vector<std::int32_t> t = labels_.to_vector();
      const size_t K = size_t(p.c());
      for (size_t n = 0; n < t.size(); ++n) grad[n * K + size_t(t[n])] = -scale / probs[n * K + size_t(t[n])];
      const Tensor<T> g = Tensor<T>::from_vector(p.shape(), grad, p.device());
      copy_gradient(g, *a.dx[0], a.dx_mode[0]);
    }
  }

 private:
  /// The weighted gradient on the host: w_n (p - onehot) at the logits when fused, -w_n / p at the
  /// label's probability otherwise; times the auxiliary weight.
  void weighted_backward(const Tensor<T>& p, const Tensor<T>& dx, GradWrite mode) {
    std::vector<T> probs = p.to_vector(), grad(probs.size(), T(0));
    const size_t K = size_t(p.c());
    for (size_t n = 0; n < weights_.size(); ++n) {
      const double w = weight_ * weights_[n];
      const size_t t = size_t(host_labels_[n]);
      if (fused_) {
        for (size_t c = 0; c < K; ++c) grad[n * K + c] = T(w * (double(probs[n * K + c]) - (c == t ? 1.0 : 0.0)));
      } else if (w != 0) {
        grad[n * K + t] = T(-w / std::max(double(probs[n * K + t]), double(std::numeric_limits<T>::min())));
      }
    }
    copy_gradient(Tensor<T>::from_vector(p.shape(), grad, p.device()), dx, mode);
  }

  int classes_ = 0;
  bool auxiliary_ = false;
  double weight_ = 1;
  bool fused_ = false;
  bool has_labels_ = false;
  bool weighted_ = false;
  std::vector<double> weights_;
  Tensor<std::int32_t> labels_;
  std::vector<std::int32_t> host_labels_;
};

}  // namespace ewnet
