// ewnet/train/trainer.hpp: the epoch loop shared by ewnet-train, ewnet-finetune and ewnet-transfer
// (MATLAB's trainNetwork with trainingOptions('sgdm', ...)).
//
// Each epoch: shuffle and augment the training split (data/loader.hpp), one SGDM step per
// mini-batch at the schedule's rate for the epoch, then validate in inference mode. A run shows
// its progress, a table with MATLAB's columns and at the end the validation report of the best
// epoch (overall accuracy, per-class precision and recall, the confusion matrix) on `out` and in
// OUT's log.csv, report.json and charts (train/report.hpp).
// Fine-tuning a frozen base (TrainOptions::feature_cache): the head trains from the base's
// features computed once (train/feature_cache.hpp).
// Checkpoints: OUT/last.safetensors after every epoch (with momentum and the run's history, so
// --resume continues exactly where it stopped: train/resume.hpp), OUT/best.safetensors when
// validation accuracy improves (ties go to the earlier epoch).
// Faults (docs/reliability.md): a non-finite training or validation loss stops the run before
// that epoch is saved; OUT is locked for the run (io::OutputLock) and its stale temporaries
// removed; checkpoints record the run's settings and data identity (run_settings) and a resume
// that differs is refused naming each field; every file is written atomically.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <ewnet/data/loader.hpp>
#include <ewnet/graph.hpp>
#include <ewnet/io/checkpoint.hpp>
#include <ewnet/io/files.hpp>
#include <ewnet/io/json.hpp>
#include <ewnet/optim/schedule.hpp>
#include <ewnet/optim/sgdm.hpp>
#include <ewnet/train/batches.hpp>
#include <ewnet/train/evaluate.hpp>
#include <ewnet/train/feature_cache.hpp>
#include <ewnet/train/history.hpp>
#include <ewnet/train/metrics.hpp>
#include <ewnet/train/options.hpp>
#include <ewnet/train/plots.hpp>
#include <ewnet/train/report.hpp>
#include <ewnet/train/resume.hpp>

namespace ewnet::train {

template <class T>
History fit_unguarded(Model<T>& model, const data::ImageCache& cache, const data::Split& split,
                      const TrainOptions& o, std::ostream& out);

/// Trains `model` on split.train of `cache`, validating on split.validation every epoch; see the
/// file comment for what it writes. The model is left as it is after the last epoch (load
/// best_checkpoint(out_dir) for the best one). Running out of memory is an Error naming the run.
template <class T>
History fit(Model<T>& model, const data::ImageCache& cache, const data::Split& split, const TrainOptions& o,
            std::ostream& out) {
  try {
    return fit_unguarded(model, cache, split, o, out);
  } catch (const std::bad_alloc&) {
    throw Error(str("train: out of memory while training into ", o.out_dir, " (batch ", o.batch, ", ",
                    cache.image_size(), "x", cache.image_size(), " images); lower the batch or the image size"));
  }
}

template <class T>
History fit_unguarded(Model<T>& model, const data::ImageCache& cache, const data::Split& split,
                      const TrainOptions& o, std::ostream& out) {
  namespace fs = std::filesystem;
  EWNET_CHECK(!o.out_dir.empty(), "train: no output folder given");
  EWNET_CHECK(o.epochs >= 1 && o.batch >= 1, "train: epochs and batch size must be positive, got ", o.epochs,
              " and ", o.batch);
  EWNET_CHECK(int(o.classes.size()) == model.classes(), "train: ", o.classes.size(), " class names for a model of ",
              model.classes(), " classes");
  fs::create_directories(o.out_dir);
  // The folder belongs to this run until fit returns: a second run on it is refused.
  const io::OutputLock lock(o.out_dir);
  if (const int stale = io::remove_stale_temporaries(o.out_dir))
    out << "removed " << stale << " temporary file(s) left in " << o.out_dir << " by an interrupted save\n";
  model.to(o.device);
  const json::Value settings = run_settings(o, cache, split);

  History h = resume(model, o, settings, out);

  data::LoaderOptions lo;
  lo.batch = o.batch;
  lo.shuffle = true;
  lo.augment = o.augment;
  lo.seed = o.seed;
  lo.threads = o.threads;
  const bool cached = !o.feature_cache.empty();
  if (cached) {
    EWNET_CHECK(!o.augment.enabled, "train: a feature cache at '", o.feature_cache,
                "' needs augmentation off (an augmented image has new features every epoch)");
    EWNET_CHECK(can_cache_features(model, o.feature_cache), "train: cannot cache the features of '",
                o.feature_cache, "': a layer up to it trains or acts differently in training, or a later layer "
                "reads a layer before it");
  }
  std::unique_ptr<BatchSource<T>> train_batches = std::make_unique<ImageBatches<T>>(cache, split.train, lo, o.device);
  std::unique_ptr<BatchSource<T>> val_batches;
  if (!split.validation.empty())
    val_batches = std::make_unique<ImageBatches<T>>(cache, split.validation, in_order(o.batch, o.threads), o.device);
  Sgdm<T> solver(o.sgdm);
  const int k = model.classes(), batches = train_batches->batches();

  const int first_epoch = int(h.epochs.size());
  const auto session_start = std::chrono::steady_clock::now();
  const double seconds_before = h.seconds;
  long long session_iterations = 0;

  out << o.title << ": " << split.train.size() << " training and " << split.validation.size()
      << " validation images, " << k << " classes, " << batches << " iterations an epoch, on "
      << device_name(o.device) << "\n";
  if (cached && first_epoch < o.epochs) {
    train_batches = cached_features(model, o.feature_cache, cache, split.train, o.batch, true, o.seed, o.threads);
    if (val_batches)
      val_batches = cached_features(model, o.feature_cache, cache, split.validation, o.batch, false, 0, o.threads);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - session_start).count();
    out << "features of '" << o.feature_cache << "' (" << model.output_shape(o.feature_cache).hwc()
        << " an image) computed once for the " << split.train.size() + split.validation.size() << " images in "
        << str(std::llround(s * 10) / 10.0) << " s; every step trains from them\n";
    out.flush();
  }

  out << detail::table_header();
  for (const EpochRecord& r : h.epochs) out << detail::table_row(r);
  out.flush();

  for (int epoch = first_epoch; epoch < o.epochs; ++epoch) {
    const double rate = o.schedule.rate(epoch);
    double loss_sum = 0, correct = 0, seen = 0;
    int step = 0;
    train_batches->start_epoch(epoch);
    for (MiniBatch<T> b; train_batches->next(b);) {
      const int right = count_correct(train_batches->forward(model, b, Mode::training), b.labels);
      model.backward();
      solver.step(model, rate);
      const double loss = double(model.loss());
      EWNET_CHECK(std::isfinite(loss), "train: the loss became ", loss, " at iteration ", model.iteration(),
                  "; lower the learning rate");
      const double n = double(b.labels.size());
      loss_sum += loss * n;
      correct += right;
      seen += n;
      h.images += (long long)n;
      h.iterations.push_back({(long long)model.iteration(), right / n, loss});
      ++step;
      ++session_iterations;
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - session_start).count();
      h.seconds = seconds_before + elapsed;
      if (o.progress) {
        const double per_iteration = elapsed / double(session_iterations);
        const double left = per_iteration * double((long long)(o.epochs - epoch) * batches - step);
        detail::progress_line(epoch + 1, o.epochs, step, batches, loss_sum / seen, correct / seen,
                              double(o.batch) / per_iteration, left);
      }
    }
    EpochRecord r;
    r.epoch = epoch + 1;
    r.iteration = (long long)model.iteration();
    r.train_accuracy = correct / seen;
    r.train_loss = loss_sum / seen;
    r.learn_rate = rate;
    if (val_batches) {
      const Evaluation ev = evaluate(model, *val_batches);
      // A diverged model must not become best.safetensors: a non-finite validation loss stops the
      // run before anything of this epoch is saved, as a non-finite training loss does.
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
    h.seconds = seconds_before +
                std::chrono::duration<double>(std::chrono::steady_clock::now() - session_start).count();
    r.seconds = h.seconds;
    h.epochs.push_back(r);
    if (o.progress) std::fprintf(stderr, "\r%s\r", std::string(118, ' ').c_str());
    out << detail::table_row(r);
    out.flush();
    save_epoch(model, o, settings, h);
    write_run_files(o, h);
  }
  out << detail::table_rule();
  out << "training finished: " << h.epochs.size() << " epochs in " << detail::hms(h.seconds) << " ("
      << str(std::llround(h.seconds_per_epoch() * 10) / 10.0) << " s an epoch, "
      << std::llround(h.images_per_second()) << " images/s)\n";
  if (h.best_confusion.classes()) {
    out << "\nvalidation at the best epoch (" << h.best_epoch << "):\n" << h.best_confusion.text(o.classes);
  }
  out << "\nwritten to " << o.out_dir << ": best.safetensors, last.safetensors, log.csv, report.json, "
      << "training-curves.svg, confusion.svg\n";
  out.flush();
  write_run_files(o, h);
  return h;
}

}  // namespace ewnet::train
