// ewnet/train/trainer.hpp: train::fit, the epoch loop shared by ewnet-train, ewnet-finetune and
// ewnet-transfer (MATLAB's trainNetwork with trainingOptions('sgdm', ...)). It calls its
// collaborators in order:
//   lock      OUT is this run's until fit returns (io::prepare_run_folder: a folder ewnet may write
//             into, locked, an interrupted run's temporaries removed)
//   resume    continue from OUT/last.safetensors, the settings checked (train/resume.hpp)
//   batches   images through the loader, shuffled and augmented from (seed, epoch), or a frozen
//             base's features computed once (train/batches.hpp, train/feature_cache.hpp); with
//             unlabelled images, each step's unlabelled batch beside (train/unlabeled_batches.hpp)
//   then each epoch:
//     step      forward, backward and an SGDM step per mini-batch at the schedule's rate
//     evaluate  the validation split in inference mode (train/evaluate.hpp)
//     save      OUT/last.safetensors, and OUT/best.safetensors when validation accuracy improves
//               (ties go to the earlier epoch)
//     report    the Reporter it was given, if any (train/report.hpp); fit prints nothing itself
// Faults (docs/reliability.md): a non-finite training or validation loss stops the run before
// that epoch is saved; a second run on OUT is refused; a resume whose settings or data differ is
// refused naming each field; every file is written atomically; running out of memory is an Error
// naming the run.
#pragma once

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <new>
#include <ostream>
#include <sstream>
#include <string>

#include <ewnet/data/dataset.hpp>
#include <ewnet/data/loader.hpp>
#include <ewnet/graph.hpp>
#include <ewnet/io/files.hpp>
#include <ewnet/optim/sgdm.hpp>
#include <ewnet/train/batches.hpp>
#include <ewnet/train/evaluate.hpp>
#include <ewnet/train/feature_cache.hpp>
#include <ewnet/train/history.hpp>
#include <ewnet/train/options.hpp>
#include <ewnet/train/report.hpp>
#include <ewnet/train/resume.hpp>
#include <ewnet/train/unlabeled_batches.hpp>

namespace ewnet::train {

namespace detail {

template <class T>
void check_options(Model<T>& model, const TrainOptions& o) {
  EWNET_CHECK(!o.out_dir.empty(), "train: no output folder given");
  EWNET_CHECK(o.epochs >= 1 && o.batch >= 1, "train: epochs and batch size must be positive, got ", o.epochs,
              " and ", o.batch);
  EWNET_CHECK(int(o.classes.size()) == model.classes(), "train: ", o.classes.size(), " class names for a model of ",
              model.classes(), " classes");
}

/// A run's training and validation batches (validation null without a validation split).
template <class T>
struct RunBatches {
  std::unique_ptr<BatchSource<T>> train, validation;
  bool from_features = false;
};

/// Images through the loader, or with o.feature_cache the cut's features, computed now when epochs
/// are left to train from them.
template <class T>
RunBatches<T> run_batches(Model<T>& model, const data::ImageCache& cache, const data::Split& split,
                          const TrainOptions& o, bool epochs_left) {
  RunBatches<T> b;
  EWNET_CHECK(!o.unlabeled || o.feature_cache.empty(), "train: unlabelled images are learned from through the whole "
              "model, not from a feature cache at '", o.feature_cache, "'");
  if (!o.feature_cache.empty()) {
    EWNET_CHECK(!o.augment.enabled, "train: a feature cache at '", o.feature_cache,
                "' needs augmentation off (an augmented image has new features every epoch)");
    EWNET_CHECK(can_cache_features(model, o.feature_cache), "train: cannot cache the features of '",
                o.feature_cache, "': a layer up to it trains or acts differently in training, or a later layer "
                "reads a layer before it");
    if (epochs_left) {
      b.from_features = true;
      b.train = cached_features(model, o.feature_cache, cache, split.train, o.batch, true, o.seed, o.threads);
      if (!split.validation.empty())
        b.validation = cached_features(model, o.feature_cache, cache, split.validation, o.batch, false, 0, o.threads);
      return b;
    }
  }
  data::LoaderOptions shuffled;
  shuffled.batch = o.batch;
  shuffled.augment = o.augment;
  shuffled.strong = o.strong_augment;
  shuffled.seed = o.seed;
  shuffled.threads = o.threads;
  b.train = std::make_unique<ImageBatches<T>>(cache, split.train, shuffled, o.device);
  if (o.unlabeled)
    b.train = std::make_unique<SemiSupervisedBatches<T>>(std::move(b.train), *o.unlabeled, o.augment, o.batch, o.seed,
                                                         o.threads, model.classes(), o.device);
  if (!split.validation.empty())
    b.validation = std::make_unique<ImageBatches<T>>(cache, split.validation, in_order(o.batch, o.threads), o.device);
  return b;
}

/// The figures of an epoch's mini-batches so far: sums over samples.
struct EpochTally {
  double loss_sum = 0, correct = 0, seen = 0;
  void add(double loss, int right, size_t n) {
    loss_sum += loss * double(n);
    correct += right;
    seen += double(n);
  }
  double loss() const { return loss_sum / seen; }
  double accuracy() const { return correct / seen; }
};

/// Validates the epoch `r` just trained: its figures into `r`, the confusion matrices and the best
/// epoch into `h`. A diverged model must not become best.safetensors: a non-finite validation loss
/// stops the run before anything of this epoch is saved, as a non-finite training loss does.
template <class T>
void validate(Model<T>& model, BatchSource<T>& validation, EpochRecord& r, History& h) {
  const Evaluation ev = evaluate(model, validation);
  EWNET_CHECK(std::isfinite(ev.loss), "train: the validation loss became ", ev.loss, " after epoch ", r.epoch,
              " (iteration ", r.iteration, "); nothing of this epoch was saved",
              h.best_epoch ? str(" (best.safetensors keeps epoch ", h.best_epoch, ")") : std::string(),
              "; lower the learning rate");
  r.val_accuracy = ev.accuracy;
  r.val_loss = ev.loss;
  h.last_confusion = ev.confusion;
  if (ev.accuracy > h.best_val_accuracy) {
    h.best_val_accuracy = ev.accuracy;
    h.best_epoch = r.epoch;
    h.best_confusion = ev.confusion;
  }
}

/// Seconds since this call of fit began, and since the run began (the time before a resume too).
class RunClock {
 public:
  explicit RunClock(double before) : before_(before) {}
  double session() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
  double run() const { return before_ + session(); }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double before_;
};

}  // namespace detail

/// Trains `model` on split.train of `cache`, validating on split.validation every epoch, and saves
/// the run in o.out_dir (see the file comment); tells `reporter` what happens when given one. The
/// model is left as it is after the last epoch (load_best for the best one).
template <class T>
History fit(Model<T>& model, const data::ImageCache& cache, const data::Split& split, const TrainOptions& o,
            Reporter* reporter = nullptr) {
  Reporter silent;
  Reporter& report = reporter ? *reporter : silent;
  try {
    detail::check_options(model, o);
    // Shared with the program's own hold of the folder, if any (io/files.hpp says which folders a
    // run may write into); what it removed of an interrupted run is told once, to the reporter.
    std::stringstream folder_notes;
    const io::RunFolder run_folder = io::prepare_run_folder(o.out_dir, {cache.dataset().root}, &folder_notes);
    for (std::string line; std::getline(folder_notes, line);) report.note(line);
    model.to(o.device);
    model.set_precision(o.precision);
    const json::Value settings = run_settings(o, cache, split);
    History h = resume(model, o, settings, report);

    const detail::RunClock clock(h.seconds);
    const int first_epoch = int(h.epochs.size());
    const detail::RunBatches<T> batches = detail::run_batches(model, cache, split, o, first_epoch < o.epochs);
    BatchSource<T>& train = *batches.train;
    RunStart start;
    start.options = &o;
    start.training_images = split.train.size();
    start.validation_images = split.validation.size();
    start.batches = train.batches();
    if (batches.from_features) {
      start.features_of = o.feature_cache;
      start.feature_shape = model.output_shape(o.feature_cache);
      start.feature_seconds = clock.session();
    }
    report.run_started(start, h);

    Sgdm<T> solver(o.sgdm);
    long long session_iterations = 0;
    for (int epoch = first_epoch; epoch < o.epochs; ++epoch) {
      const double rate = o.schedule.rate(epoch);
      detail::EpochTally tally;
      int step = 0;
      train.start_epoch(epoch);
      for (MiniBatch<T> b; train.next(b);) {
        const int right = count_correct(train.forward(model, b, Mode::training), b.labels);
        model.backward();
        solver.step(model, rate);
        const double loss = double(model.loss());
        EWNET_CHECK(std::isfinite(loss), "train: the loss became ", loss, " at iteration ", model.iteration(),
                    "; lower the learning rate");
        const size_t n = b.labels.size();
        tally.add(loss, right, n);
        h.images += (long long)n;
        h.iterations.push_back({(long long)model.iteration(), right / double(n), loss});
        report.iteration_done({epoch + 1, o.epochs, ++step, train.batches(), h.iterations.back(), tally.accuracy(),
                               tally.loss(), clock.session(), ++session_iterations});
      }
      EpochRecord r;
      r.epoch = epoch + 1;
      r.iteration = (long long)model.iteration();
      r.train_accuracy = tally.accuracy();
      r.train_loss = tally.loss();
      r.learn_rate = rate;
      if (batches.validation) detail::validate(model, *batches.validation, r, h);
      r.seconds = h.seconds = clock.run();
      h.epochs.push_back(r);
      save_epoch(model, o, settings, h);
      report.epoch_done(r, h);
    }
    report.run_finished(h);
    return h;
  } catch (const std::bad_alloc&) {
    throw Error(str("train: out of memory while training into ", o.out_dir, " (batch ", o.batch, ", ",
                    cache.image_size(), "x", cache.image_size(), " images); lower the batch or the image size"));
  }
}

/// fit with the standard report (RunReport): the table and notes on `out`, the run's files in OUT.
template <class T>
History fit(Model<T>& model, const data::ImageCache& cache, const data::Split& split, const TrainOptions& o,
            std::ostream& out) {
  RunReport report(out);
  return fit(model, cache, split, o, &report);
}

}  // namespace ewnet::train
