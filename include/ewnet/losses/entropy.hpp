// ewnet/losses/entropy.hpp: entropy minimisation on unlabelled predictions (Grandvalet and Bengio
// 2004; the second loss of the Residual Transfer Network, Long et al. 2016), which pushes the
// decision boundary away from the unlabelled images.
//
// For N predictions p_n = softmax(z_n) over K classes:
//   H = (1/N) sum_n h_n,   h_n = -sum_k p_nk log p_nk
//   dH/dz_nj = -(1/N) p_nj (log p_nj + h_n)
// (from dp_k/dz_j = p_k ([k = j] - p_j)). The gradient is with respect to the logits, the input of
// the softmax: Model::add_output_gradient at the layer that feeds the softmax ("fc") adds it. It is
// computed on the host in double precision (N x K values) and returned on the probabilities' device.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include <ewnet/error.hpp>
#include <ewnet/tensor.hpp>

namespace ewnet::losses {

template <class T>
struct EntropyLoss {
  double value = 0;         // H, the mean entropy in nats
  Tensor<T> d_logits;       // dH/dz, the shape of the probabilities
};

/// The mean entropy of class probabilities [N, K, 1, 1] and its gradient with respect to the logits.
template <class T>
EntropyLoss<T> entropy_loss(const Tensor<T>& probabilities) {
  EWNET_CHECK_AS(ShapeError, probabilities.h() == 1 && probabilities.w() == 1 && probabilities.n() > 0,
                 "entropy_loss: expects class probabilities [N x K x 1 x 1], got ", probabilities.shape());
  const std::vector<T> p = probabilities.to_vector();
  const size_t N = size_t(probabilities.n()), K = size_t(probabilities.c());
  std::vector<T> grad(p.size());
  EntropyLoss<T> out;
  for (size_t n = 0; n < N; ++n) {
    // p log p -> 0 as p -> 0: a zero probability contributes nothing, and log is taken of p >= tiny.
    std::vector<double> logp(K);
    double h = 0;
    for (size_t k = 0; k < K; ++k) {
      const double q = double(p[n * K + k]);
      logp[k] = std::log(std::max(q, std::numeric_limits<double>::min()));
      h -= q * logp[k];
    }
    out.value += h / double(N);
    for (size_t k = 0; k < K; ++k) grad[n * K + k] = T(-double(p[n * K + k]) * (logp[k] + h) / double(N));
  }
  out.d_logits = Tensor<T>::from_vector(probabilities.shape(), grad, probabilities.device());
  return out;
}

}  // namespace ewnet::losses
