// ewnet/losses/pseudo_labels.hpp: FixMatch's pseudo-labels (Sohn et al. 2020) and the sample
// weights that turn them, with a labelled batch, into one training pass.
//
// For unlabelled image n with class probabilities q_n predicted on its weak view, the pseudo-label
// is y_n = argmax_k q_nk, kept when the model is confident, max_k q_nk >= tau. The strong view of
// the same image is then trained towards it:
//   L = (1/B) sum_{labelled} CE(t_b, p_b)  +  lambda (1/(mu B)) sum_n [max q_n >= tau] CE(y_n, p_n(strong))
// where B is the labelled batch, mu B the unlabelled one and lambda the unlabelled loss weight. No
// gradient flows through q (a separate pass, or rows of weight 0). fixmatch_weights gives the
// per-sample weights of Model::forward(images, labels, weights) for a pass over the labelled images
// followed by the strong views (and any rows after them at weight 0).
//
// Distribution alignment (ReMixMatch, Berthelot et al. 2020; FixMatch's appendix), optional:
// before thresholding, q_n is multiplied by the class prior (uniform: the labelled classes are
// balanced) over the running mean of past unlabelled predictions, then renormalised, so classes
// the model over-predicts on the unlabelled images are pulled down:
//   q~_nk = q_nk r_k / sum_j q_nj r_j,   r_k = prior_k / mean_k,   mean <- m mean + (1 - m) batch mean of q
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include <ewnet/error.hpp>
#include <ewnet/tensor.hpp>

namespace ewnet::losses {

struct PseudoLabels {
  std::vector<int> labels;     // argmax of each (aligned) prediction
  std::vector<double> mask;    // 1 where its probability reaches the threshold, else 0
  std::vector<double> confidence;  // the (aligned) probability of the label
  size_t confident() const {
    size_t n = 0;
    for (double m : mask) n += m > 0;
    return n;
  }
};

/// Pseudo-labels from class probabilities [N, K, 1, 1] (the model's prediction on the weak views):
/// the most probable class of each, masked by `threshold`. `probabilities` may be on any device (it
/// is copied to the host).
template <class T>
PseudoLabels pseudo_labels(const Tensor<T>& probabilities, double threshold) {
  EWNET_CHECK_AS(ShapeError, probabilities.h() == 1 && probabilities.w() == 1,
                 "pseudo_labels: expects class probabilities [N x K x 1 x 1], got ", probabilities.shape());
  const std::vector<T> q = probabilities.to_vector();
  const size_t K = size_t(probabilities.c());
  PseudoLabels p;
  for (size_t n = 0; n < size_t(probabilities.n()); ++n) {
    const T* row = q.data() + n * K;
    const size_t best = size_t(std::max_element(row, row + K) - row);
    p.labels.push_back(int(best));
    p.confidence.push_back(double(row[best]));
    p.mask.push_back(double(row[best]) >= threshold ? 1.0 : 0.0);
  }
  return p;
}

/// The weights of one pass over [labelled (B rows) | strong views (U rows) | others]: 1/B for a
/// labelled row, lambda mask_n / U for a strong view, 0 for the rest (`total` rows in all).
inline std::vector<double> fixmatch_weights(size_t labelled, const PseudoLabels& pseudo, double lambda, size_t total) {
  const size_t U = pseudo.mask.size();
  EWNET_CHECK(labelled > 0 && labelled + U <= total, "fixmatch_weights: ", labelled, " labelled and ", U,
              " unlabelled rows do not fit a pass of ", total);
  EWNET_CHECK(std::isfinite(lambda) && lambda >= 0, "fixmatch_weights: the unlabelled weight must be >= 0, got ",
              lambda);
  std::vector<double> w(total, 0.0);
  for (size_t b = 0; b < labelled; ++b) w[b] = 1.0 / double(labelled);
  for (size_t n = 0; n < U; ++n) w[labelled + n] = lambda * pseudo.mask[n] / double(U);
  return w;
}

/// Distribution alignment's running mean of the unlabelled predictions (see the file comment).
class DistributionAlignment {
 public:
  explicit DistributionAlignment(int classes, double momentum = 0.999)
      : mean_(size_t(classes), 1.0 / classes), momentum_(momentum) {
    EWNET_CHECK(classes > 0, "distribution alignment: classes must be positive");
    EWNET_CHECK(momentum >= 0 && momentum < 1, "distribution alignment: momentum must be in [0, 1), got ", momentum);
  }
  /// Updates the running mean with the batch `probabilities` and returns them aligned (host, same shape).
  template <class T>
  Tensor<T> align(const Tensor<T>& probabilities) {
    const size_t K = mean_.size(), N = size_t(probabilities.n());
    EWNET_CHECK_AS(ShapeError, size_t(probabilities.c()) == K && probabilities.h() == 1 && probabilities.w() == 1,
                   "distribution alignment: ", K, " classes, got probabilities ", probabilities.shape());
    std::vector<T> q = probabilities.to_vector();
    std::vector<double> batch(K, 0.0);
    for (size_t n = 0; n < N; ++n)
      for (size_t k = 0; k < K; ++k) batch[k] += double(q[n * K + k]) / double(N);
    for (size_t k = 0; k < K; ++k) mean_[k] = momentum_ * mean_[k] + (1 - momentum_) * batch[k];
    for (size_t n = 0; n < N; ++n) {
      double sum = 0;
      for (size_t k = 0; k < K; ++k) sum += double(q[n * K + k]) / (double(K) * std::max(mean_[k], 1e-12));
      for (size_t k = 0; k < K; ++k)
        q[n * K + k] = T(double(q[n * K + k]) / (double(K) * std::max(mean_[k], 1e-12)) / std::max(sum, 1e-30));
    }
    return Tensor<T>::from_vector(probabilities.shape(), q);
  }
  const std::vector<double>& running_mean() const { return mean_; }

 private:
  std::vector<double> mean_;
  double momentum_;
};

}  // namespace ewnet::losses
