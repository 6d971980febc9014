// ewnet/train/evaluate.hpp: how well a model does on a set of samples (inference mode): the mean
// loss, the accuracy and the confusion matrix, from images or from features computed once alike.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include <ewnet/train/batches.hpp>
#include <ewnet/train/metrics.hpp>

namespace ewnet::train {

struct Evaluation {
  double loss = NAN, accuracy = NAN;
  ConfusionMatrix confusion;
};

/// Predicts each sample of a batch as the class of its highest score (the first of equal ones),
/// copying the [N, classes] scores to the host; counts each prediction against its label in
/// `confusion` when given, and returns how many were right.
template <class T>
int count_correct(const Tensor<T>& scores, const std::vector<int>& labels, ConfusionMatrix* confusion = nullptr) {
  const std::vector<T> p = scores.to_vector();
  const size_t k = labels.empty() ? 0 : p.size() / labels.size();
  int right = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const int predicted = int(std::max_element(p.begin() + std::ptrdiff_t(i * k), p.begin() + std::ptrdiff_t((i + 1) * k)) -
                              (p.begin() + std::ptrdiff_t(i * k)));
    right += predicted == labels[i];
    if (confusion) confusion->add(labels[i], predicted);
  }
  return right;
}

/// Loss, accuracy and confusion matrix of `model` on one pass over `samples`, in inference mode;
/// the loss is the mean over the samples of each mini-batch's mean. NaN figures when it is empty.
template <class T>
Evaluation evaluate(Model<T>& model, BatchSource<T>& samples) {
  Evaluation ev;
  ev.confusion = ConfusionMatrix(model.classes());
  if (samples.samples() == 0) return ev;
  double loss_sum = 0;
  samples.start_epoch(0);
  for (MiniBatch<T> b; samples.next(b);) {
    count_correct(samples.forward(model, b, Mode::inference), b.labels, &ev.confusion);
    loss_sum += double(model.loss()) * double(b.labels.size());
  }
  ev.loss = loss_sum / double(samples.samples());
  ev.accuracy = ev.confusion.accuracy();
  return ev;
}

}  // namespace ewnet::train
