// ewnet/train/unlabeled_batches.hpp: semi-supervised training's batch source. Each training step
// draws the labelled mini-batch of the run's loader and, beside it, unlabelled images (a weak and a
// strong view of each, data/unlabeled.hpp) and, for feature alignment, source-domain images; its
// forward pass is losses::SemiSupervisedObjective's (the labelled cross-entropy, FixMatch's
// pseudo-labels, entropy, MMD/CORAL/CMD), whose terms from outside the graph wait in the model for
// fit's backward. So train::fit runs a semi-supervised step as any other: forward, backward, solver.
//
// Step k (the model's step counter) takes the unlabelled batch k of their endless seeded stream, so
// a resumed run draws what an uninterrupted one would. Evaluation (inference) passes the labelled
// images alone.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ewnet/data/augment.hpp>
#include <ewnet/data/strong_augment.hpp>
#include <ewnet/data/unlabeled.hpp>
#include <ewnet/json.hpp>
#include <ewnet/losses/semi_supervised_objective.hpp>
#include <ewnet/train/batches.hpp>

namespace ewnet::train {

/// What a run's semi-supervised steps did, summed over its steps (for its report).
struct UnlabeledTally {
  long long steps = 0, unlabeled = 0, pseudo_labeled = 0;
  double entropy_sum = 0, alignment_sum = 0;
  void add(const losses::SemiSupervisedStepReport& r) {
    ++steps;
    unlabeled += (long long)r.unlabeled;
    pseudo_labeled += (long long)r.pseudo_labeled;
    if (r.entropy == r.entropy) entropy_sum += r.entropy;
    if (r.alignment == r.alignment) alignment_sum += r.alignment;
  }
};

/// What a run learns from besides its labelled images (TrainOptions::unlabeled).
struct UnlabeledTraining {
  data::UnlabeledPool pool;         // the unlabelled images (views: their owner outlives the run)
  data::UnlabeledSetting setting;   // inductive or transductive, as check_unlabeled_images found
  losses::SemiSupervisedOptions objective;
  int ratio = 1;                    // unlabelled images a step per labelled one (FixMatch's mu)
  data::StrongAugmentOptions strong;
  data::UnlabeledPool source;       // source-domain images: feature alignment's other side
  std::shared_ptr<UnlabeledTally> tally = std::make_shared<UnlabeledTally>();
};

/// The run's semi-supervised settings in a line.
inline std::string describe(const UnlabeledTraining& u) {
  std::string s = str(losses::describe(u.objective), "; ", u.ratio, " unlabelled image", u.ratio == 1 ? "" : "s",
                      " a labelled one each step");
  if (u.objective.pseudo_labels) s += "; strong views: " + data::describe(u.strong);
  if (u.objective.alignment != losses::FeatureAlignment::none) s += str("; ", u.source.size(), " source images");
  return s;
}

/// What resume must find unchanged (train/resume.hpp): the objective, the ratio and the images.
inline json::Value settings_json(const UnlabeledTraining& u) {
  std::uint64_t h = 1469598103934665603ull;
  for (const auto* pool : {&u.pool, &u.source})
    for (const std::string& name : pool->names)
      for (unsigned char c : name + "\n") h = (h ^ c) * 1099511628211ull;
  char digest[17];
  std::snprintf(digest, sizeof digest, "%016llx", static_cast<unsigned long long>(h));
  json::Value v = json::Value::object();
  v["objective"] = describe(u);
  v["transductive"] = u.setting.transductive;
  v["images"] = int(u.pool.size());
  v["source_images"] = int(u.source.size());
  v["files_digest"] = std::string(digest);
  return v;
}

/// The tally in words, for the run's notes.
inline std::string tally_text(const UnlabeledTraining& u) {
  const UnlabeledTally& t = *u.tally;
  if (!t.steps) return "no semi-supervised step ran";
  std::string s = str(t.steps, " steps with ", t.unlabeled, " unlabelled views");
  if (u.objective.pseudo_labels)
    s += str(", ", t.pseudo_labeled, " of them pseudo-labelled (",
             std::round(t.unlabeled ? 1000.0 * double(t.pseudo_labeled) / double(t.unlabeled) : 0.0) / 10,
             "% above the threshold)");
  if (u.objective.entropy_weight > 0) s += str(", mean entropy ", t.entropy_sum / t.steps);
  if (u.objective.alignment != losses::FeatureAlignment::none)
    s += str(", mean ", losses::alignment_name(u.objective.alignment), " ", t.alignment_sum / t.steps);
  return s;
}

template <class T>
class SemiSupervisedBatches final : public BatchSource<T> {
 public:
  /// `labelled`'s mini-batches of `batch` images, each trained with u.ratio x batch unlabelled
  /// images (their weak views augmented by `weak`, the geometric part of their strong views too)
  /// and, for alignment, `batch` source images, drawn from `seed`; staged on `device`.
  SemiSupervisedBatches(std::unique_ptr<BatchSource<T>> labelled, const UnlabeledTraining& u,
                        const data::AugmentOptions& weak, int batch, std::uint64_t seed, int threads, int classes,
                        Device device)
      : labelled_(std::move(labelled)), u_(u), objective_(u.objective, classes), device_(device) {
    EWNET_CHECK(u.ratio >= 1, "semi-supervised: the ratio of unlabelled to labelled images must be at least 1, got ",
                u.ratio);
    data::UnlabeledLoaderOptions o;
    o.batch = u.ratio * batch;
    o.seed = seed;
    o.weak = weak;
    o.weak.enabled = true;
    o.strong = u.strong;
    o.strong_view = u.objective.pseudo_labels;
    o.threads = threads;
    unlabeled_ = std::make_unique<data::UnlabeledLoader<T>>(u.pool, o);
    if (u.objective.alignment != losses::FeatureAlignment::none) {
      EWNET_CHECK(u.source.size() > 0, "semi-supervised: ", losses::alignment_name(u.objective.alignment),
                  " aligns the target's features with the source's, but no source images were given");
      o.batch = batch;
      o.seed = seed ^ 0x50a7ce1ull;
      o.strong_view = false;
      source_ = std::make_unique<data::UnlabeledLoader<T>>(u.source, o);
    }
  }

  void start_epoch(int epoch) override { labelled_->start_epoch(epoch); }
  bool next(MiniBatch<T>& b) override { return labelled_->next(b); }
  int batches() const override { return labelled_->batches(); }
  size_t samples() const override { return labelled_->samples(); }

  /// In training: J's pass on the labelled batch with the step's unlabelled (and source) images,
  /// returning the labelled rows' predictions; otherwise the labelled images alone.
  const Tensor<T>& forward(Model<T>& model, const MiniBatch<T>& b, Mode mode) override {
    if (mode != Mode::training) return labelled_->forward(model, b, mode);
    const std::uint64_t step = model.iteration();
    unlabeled_->batch(step, unlabeled_batch_);
    const Tensor<T>* source = nullptr;
    if (source_) {
      source_->batch(step, source_batch_);
      source = &on_device(source_batch_.weak, device_, source_staged_);
    }
    u_.tally->add(objective_.forward(model, *b.input, b.labels, unlabeled_batch_, source));
    labelled_rows_ = model.prediction().batch(0, int(b.labels.size()));
    return labelled_rows_;
  }

 private:
  std::unique_ptr<BatchSource<T>> labelled_;
  const UnlabeledTraining& u_;
  losses::SemiSupervisedObjective<T> objective_;
  Device device_;
  std::unique_ptr<data::UnlabeledLoader<T>> unlabeled_, source_;
  data::UnlabeledBatch<T> unlabeled_batch_, source_batch_;
  Tensor<T> source_staged_, labelled_rows_;
};

}  // namespace ewnet::train
