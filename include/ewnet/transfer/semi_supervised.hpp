// ewnet/transfer/semi_supervised.hpp: fine-tuning that learns from the target's unlabelled images
// too. A method names the terms of the objective (losses/semi_supervised_objective.hpp), joined by
// '+' for a combination:
//   fixmatch   FixMatch (Sohn et al., 2020): a confident prediction on an unlabelled image's weak
//              view (flip, crop, shift) becomes the label of its strong view (RandAugment and
//              cutout, data/strong_augment.hpp); with distribution alignment (ReMixMatch) unless
//              turned off
//   entropy    entropy minimisation on the unlabelled predictions (the second loss of Long et
//              al.'s Residual Transfer Network)
//   mmd        multi-kernel Gaussian MMD between the pooled features of source and target images
//   coral      CORAL (the covariances) between them
//   cmd        Central Moment Discrepancy between them (the paper's citation)
// The alignment terms need the source images; one of them at a time.
//
// Honest evaluation: semi_supervised_training refuses unlabelled images equal to a validation image
// (by content) unless the transductive setting is asked for (data/unlabeled.hpp), and the run's
// summary says which setting ran. docs/transfer-learning.md measures the methods over seeds on the
// shared pairs: none gained more than the noise over the recipe without unlabelled images, so the
// pipeline learns from them only when asked (--unlabeled), and then by kDefaultSemiSupervised.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ewnet/data/dataset.hpp>
#include <ewnet/data/unlabeled.hpp>
#include <ewnet/error.hpp>
#include <ewnet/losses/semi_supervised_objective.hpp>
#include <ewnet/train/unlabeled_batches.hpp>

namespace ewnet::transfer {

/// The method --unlabeled runs unless another is named: MMD had the highest mean accuracy over the
/// epochs of the methods at 5 and 10 labelled images a class on both shared pairs, a fraction of a
/// point to 2 points above the recipe without unlabelled images, inside the noise
/// (docs/transfer-learning.md). It needs the source images.
inline constexpr const char* kDefaultSemiSupervised = "mmd";

/// A semi-supervised recipe: the method and its knobs.
struct SemiSupervisedRecipe {
  std::string method = kDefaultSemiSupervised;
  double threshold = 0.95;               // FixMatch's confidence threshold tau
  double unlabeled_weight = 1;           // FixMatch's lambda
  bool distribution_alignment = true;
  double entropy_weight = 0.1;           // w_H when entropy is among the terms
  double alignment_weight = 1;           // w_A when mmd, coral or cmd is
  int ratio = 1;                         // unlabelled images a step per labelled one (mu)
  bool transductive = false;             // validation images may be among the unlabelled ones
};

/// The objective `r` names; an Error naming the known terms for an unknown one, an empty term or
/// two alignment terms.
inline losses::SemiSupervisedOptions objective_options(const SemiSupervisedRecipe& r) {
  losses::SemiSupervisedOptions o;
  o.pseudo_labels = false;
  o.threshold = r.threshold;
  o.unlabeled_weight = r.unlabeled_weight;
  o.distribution_alignment = r.distribution_alignment;
  o.alignment_weight = r.alignment_weight;
  size_t start = 0;
  while (start <= r.method.size()) {
    const size_t plus = std::min(r.method.find('+', start), r.method.size());
    const std::string term = r.method.substr(start, plus - start);
    const bool align = term == "mmd" || term == "coral" || term == "cmd";
    if (term == "fixmatch") {
      o.pseudo_labels = true;
    } else if (term == "entropy") {
      o.entropy_weight = r.entropy_weight;
    } else if (align) {
      EWNET_CHECK(o.alignment == losses::FeatureAlignment::none, "semi-supervised method '", r.method,
                  "': one feature alignment at a time (mmd, coral or cmd)");
      o.alignment = term == "mmd" ? losses::FeatureAlignment::mmd
                    : term == "coral" ? losses::FeatureAlignment::coral
                                      : losses::FeatureAlignment::cmd;
    } else {
      throw Error(str("unknown semi-supervised method '", r.method, "': its terms are fixmatch, entropy, mmd, coral "
                      "and cmd, joined by '+' (e.g. fixmatch+mmd)"));
    }
    start = plus + 1;
  }
  losses::check(o);
  return o;
}

/// Whether the method aligns features with the source's (and so needs the source images).
inline bool needs_source_images(const SemiSupervisedRecipe& r) {
  return objective_options(r).alignment != losses::FeatureAlignment::none;
}

/// A run's semi-supervised training (for TrainOptions::unlabeled): `unlabeled` learned from by `r`
/// beside the labelled images of `target`'s split.train, with `source` images for alignment (may
/// be empty otherwise). Refuses, naming them, unlabelled images equal to a validation image unless
/// r.transductive.
inline std::shared_ptr<train::UnlabeledTraining> semi_supervised_training(const SemiSupervisedRecipe& r,
                                                                          const data::UnlabeledPool& unlabeled,
                                                                          const data::ImageCache& target,
                                                                          const data::Split& split,
                                                                          const data::UnlabeledPool& source = {}) {
  auto u = std::make_shared<train::UnlabeledTraining>();
  u->objective = objective_options(r);
  EWNET_CHECK(r.ratio >= 1, "semi-supervised: the ratio of unlabelled to labelled images must be at least 1, got ",
              r.ratio);
  EWNET_CHECK(u->objective.alignment == losses::FeatureAlignment::none || source.size() > 0, "semi-supervised method '",
              r.method, "' aligns the target's features with the source's: give the source images too");
  u->setting = data::check_unlabeled_images(unlabeled, target, split.validation, r.transductive);
  u->pool = unlabeled;
  u->ratio = r.ratio;
  u->source = source;
  return u;
}

}  // namespace ewnet::transfer
