// ewnet/losses/semi_supervised_objective.hpp: one training step's objective with unlabelled images
// (and, for feature alignment, source images), evaluated and back-propagated in one pass.
//
//   J = (1/B) sum_b CE(t_b, p_b)                                  the labelled images
//     + lambda (1/U) sum_u [max q_u >= tau] CE(argmax q_u, p_u(strong))   FixMatch (pseudo_labels.hpp)
//     + w_H (1/U) sum_u H(p_u)                                    entropy minimisation (entropy.hpp)
//     + w_A D(features(source), features(target))                 MMD, CORAL or CMD (domain_alignment.hpp)
//
// q are the predictions on the weak views, from a pass of their own that trains nothing (with
// distribution alignment when asked). Everything else is one pass over the rows
//   [labelled images | strong views (FixMatch) | weak views (without FixMatch, for entropy or
//    alignment) | source images (alignment)]
// with each row's weight in the cross-entropy (0 for the views without a pseudo-label and for the
// source images, which are there for their predictions or features), the entropy's gradient added
// at the logits (the layer feeding the softmax) and the alignment's at the pooled features
// (models/build.hpp's feature_layer): Model::forward(images, labels, weights), add_output_gradient,
// backward. The entropy reads the unlabelled rows in the pass (the strong views with FixMatch, the
// weak ones without); the target features for alignment are every row before the source images.
//
// Batch normalisation. The weak views' pass runs in training mode by default: a network with batch
// normalisation then normalises them with their own statistics, as FixMatch's single batch does, and
// its running statistics follow weakly augmented images as well as strongly augmented ones. Measured
// on ResNet-18 (Caltech devices -> handheld tools, 64x64, 10 labelled images a class, 30 epochs, 2
// seeds, 2026-12-02): pseudo-labels from a training-mode pass were right 75% of the time against 62%
// from running statistics, and the best epoch reached 78.1% against 70.3% (73.4% without unlabelled
// images); putting the weak views into the labelled pass as well (weight 0) did not help (71.9%).
// Labelled images and strong views share one pass, so batch norm sees them together (the parameter
// gradients of two passes could not be summed: each backward overwrites them).
#pragma once

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <ewnet/data/unlabeled.hpp>
#include <ewnet/graph.hpp>
#include <ewnet/losses/domain_alignment.hpp>
#include <ewnet/losses/entropy.hpp>
#include <ewnet/losses/pseudo_labels.hpp>
#include <ewnet/models/build.hpp>

namespace ewnet::losses {

enum class FeatureAlignment { none, mmd, coral, cmd };

inline const char* alignment_name(FeatureAlignment a) {
  switch (a) {
    case FeatureAlignment::none: return "none";
    case FeatureAlignment::mmd: return "mmd";
    case FeatureAlignment::coral: return "coral";
    case FeatureAlignment::cmd: return "cmd";
  }
  return "?";
}

struct SemiSupervisedOptions {
  bool pseudo_labels = true;             // FixMatch's term
  double threshold = 0.95;               // tau
  double unlabeled_weight = 1;           // lambda
  bool distribution_alignment = true;    // of the weak views' predictions, before thresholding
  double alignment_momentum = 0.999;     // of the running mean of those predictions
  Mode weak_pass = Mode::training;       // the mode of the weak views' pass (see the file comment)
  double entropy_weight = 0;             // w_H (0: off)
  FeatureAlignment alignment = FeatureAlignment::none;
  double alignment_weight = 1;           // w_A
  int moments = 5;                       // CMD's highest order
};

inline void check(const SemiSupervisedOptions& o) {
  EWNET_CHECK(o.threshold >= 0 && o.threshold <= 1, "semi-supervised: the confidence threshold must be in [0, 1], got ",
              o.threshold);
  for (double w : {o.unlabeled_weight, o.entropy_weight, o.alignment_weight})
    EWNET_CHECK(std::isfinite(w) && w >= 0, "semi-supervised: loss weights must be finite and >= 0, got ", w);
  EWNET_CHECK(o.pseudo_labels || o.entropy_weight > 0 || o.alignment != FeatureAlignment::none,
              "semi-supervised: no term uses the unlabelled images (pseudo-labels, entropy or feature alignment)");
}

/// One line for a run's summary.
inline std::string describe(const SemiSupervisedOptions& o) {
  std::string s;
  auto add = [&](const std::string& part) { s += (s.empty() ? "" : " + ") + part; };
  if (o.pseudo_labels)
    add(str("FixMatch pseudo-labels (threshold ", o.threshold, ", weight ", o.unlabeled_weight,
            o.distribution_alignment ? ", distribution alignment" : "", ")"));
  if (o.entropy_weight > 0) add(str("entropy (weight ", o.entropy_weight, ")"));
  if (o.alignment != FeatureAlignment::none)
    add(str(alignment_name(o.alignment), " on the pooled features (weight ", o.alignment_weight, ")"));
  return s;
}

/// What one step computed.
struct SemiSupervisedStepReport {
  double loss = 0;                // the cross-entropy part of J (labelled, and pseudo-labelled)
  size_t unlabeled = 0, pseudo_labeled = 0;
  double entropy = std::numeric_limits<double>::quiet_NaN();    // H, before its weight
  double alignment = std::numeric_limits<double>::quiet_NaN();  // D, before its weight
};

template <class T>
class SemiSupervisedObjective {
 public:
  SemiSupervisedObjective(SemiSupervisedOptions o, int classes)
      : opt_(o), alignment_(classes, o.alignment_momentum) {
    check(opt_);
  }
  const SemiSupervisedOptions& options() const { return opt_; }

  /// Evaluates J on a labelled batch (`images` on the model's device, `labels`), the unlabelled
  /// batch `u` (host tensors: the views the options need) and, for alignment, `source` images (on
  /// the model's device), and back-propagates it: the model's parameter gradients are then J's,
  /// ready for the solver's step.
  SemiSupervisedStepReport forward_backward(Model<T>& model, const Tensor<T>& images, const std::vector<int>& labels,
                                            const data::UnlabeledBatch<T>& u, const Tensor<T>* source = nullptr) {
    const SemiSupervisedStepReport report = forward(model, images, labels, u, source);
    model.backward();
    return report;
  }

  /// forward_backward without the backward: J's pass has run and its terms from outside the graph
  /// wait in the model (add_output_gradient), so the next model.backward() gives J's gradients.
  /// The labelled images' predictions are model.prediction()'s first labels.size() rows. The step
  /// counter advances once, as for a supervised step: the weak views' pass only measures (its
  /// dropout masks are the joint pass's), so a semi-supervised run counts its steps as others do.
  SemiSupervisedStepReport forward(Model<T>& model, const Tensor<T>& images, const std::vector<int>& labels,
                                   const data::UnlabeledBatch<T>& u, const Tensor<T>* source = nullptr) {
    const bool align = opt_.alignment != FeatureAlignment::none;
    const bool weak_rows = !opt_.pseudo_labels;  // entropy or alignment on the weak views
    EWNET_CHECK(!align || (source && source->n() > 0), "semi-supervised: feature alignment needs source images");
    EWNET_CHECK(!opt_.pseudo_labels || (!u.weak.empty() && !u.strong.empty()),
                "semi-supervised: FixMatch needs the weak and the strong views of the unlabelled images");
    EWNET_CHECK(!weak_rows || !u.weak.empty(), "semi-supervised: the weak views of the unlabelled images are missing");
    const int B = images.n();
    EWNET_CHECK(B > 0 && labels.size() == size_t(B), "semi-supervised: ", labels.size(), " labels for ", B, " images");
    SemiSupervisedStepReport report;

    // Rows of the pass, and each one's label and weight.
    std::vector<const Tensor<T>*> parts{&images};
    std::vector<int> targets = labels;
    std::vector<double> weights(size_t(B), 1.0 / double(B));
    const Tensor<T>& views = opt_.pseudo_labels ? u.strong : u.weak;
    const int U = views.n();
    report.unlabeled = size_t(U);
    if (opt_.pseudo_labels) {
      const std::uint64_t step = model.iteration();
      const Tensor<T>& q = model.forward(on_device(u.weak, model.device(), weak_staged_), opt_.weak_pass);
      model.set_iteration(step);
      const PseudoLabels pseudo = pseudo_labels(opt_.distribution_alignment ? alignment_.align(q) : q, opt_.threshold);
      report.pseudo_labeled = pseudo.confident();
      targets.insert(targets.end(), pseudo.labels.begin(), pseudo.labels.end());
      for (double m : pseudo.mask) weights.push_back(opt_.unlabeled_weight * m / double(U));
    } else {
      targets.insert(targets.end(), size_t(U), 0);
      weights.insert(weights.end(), size_t(U), 0.0);
    }
    parts.push_back(&views);
    const int source_row = B + U;
    if (align) {
      parts.push_back(source);
      targets.insert(targets.end(), size_t(source->n()), 0);
      weights.insert(weights.end(), size_t(source->n()), 0.0);
    }
    int rows = 0;
    for (const Tensor<T>* p : parts) rows += p->n();
    const Shape shape = images.shape().with_batch(rows);
    if (joint_.shape() != shape || joint_.device() != model.device()) joint_ = Tensor<T>::empty(shape, model.device());
    int row = 0;
    for (const Tensor<T>* p : parts) {
      joint_.batch(row, p->n()).copy_from(*p);
      row += p->n();
    }

    model.forward(joint_, targets, weights, Mode::training);
    report.loss = double(model.loss());
    if (opt_.entropy_weight > 0) {
      const EntropyLoss<T> e = entropy_loss(model.prediction().batch(B, U));
      report.entropy = e.value;
      Tensor<T> g(model.prediction().shape(), model.device());
      g.batch(B, U).copy_from(scaled(e.d_logits, opt_.entropy_weight));
      model.add_output_gradient(model.inputs_of(model.prediction_layer())[0], g);
    }
    if (align) {
      const std::string layer = feature_layer(model);
      const Tensor<T>& f = model.activation(layer);
      const Tensor<T> target = f.batch(0, source_row), from_source = f.batch(source_row, source->n());
      AlignmentLoss<T> a = opt_.alignment == FeatureAlignment::mmd     ? mmd(from_source, target)
                           : opt_.alignment == FeatureAlignment::coral ? coral(from_source, target)
                                                                       : cmd(from_source, target, opt_.moments);
      report.alignment = a.value;
      Tensor<T> g(f.shape(), model.device());
      g.batch(0, source_row).copy_from(scaled(a.d_target, opt_.alignment_weight));
      g.batch(source_row, source->n()).copy_from(scaled(a.d_source, opt_.alignment_weight));
      model.add_output_gradient(layer, g);
    }
    return report;
  }

 private:
  static const Tensor<T>& on_device(const Tensor<T>& t, Device device, Tensor<T>& staged) {
    if (t.device() == device) return t;
    if (staged.shape() != t.shape() || staged.device() != device) staged = Tensor<T>::empty(t.shape(), device);
    staged.copy_from(t);
    return staged;
  }
  /// w t, on t's device (the gradients are small: [N, K] or [N, D]).
  static Tensor<T> scaled(const Tensor<T>& t, double w) {
    std::vector<T> v = t.to_vector();
    for (T& x : v) x = T(double(x) * w);
    return Tensor<T>::from_vector(t.shape(), v, t.device());
  }

  SemiSupervisedOptions opt_;
  DistributionAlignment alignment_;
  Tensor<T> joint_, weak_staged_;
};

}  // namespace ewnet::losses
