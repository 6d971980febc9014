// ewnet/train/report.hpp: how a training run shows itself. train::fit prints nothing: it tells a
// Reporter what happens, as tiny-dnn's fit calls its on_batch and on_epoch callbacks, and a library
// user passes one of their own, or none. RunReport, the one the programs use, shows a run as
// MATLAB's training-progress output does:
//   - fit's notes (a resume's outcome, warnings) and a table with MATLAB's columns on `out`, and the
//     same rows in OUT/log.csv,
//   - a progress bar on stderr (loss, accuracy, images/s, time left) with TrainOptions::progress,
//   - at the end the validation report of the best epoch: overall accuracy, per-class precision and
//     recall, the confusion matrix, in text and in OUT/report.json,
//   - OUT/training-curves.svg (mini-batch accuracy and loss per iteration, smoothed, with the
//     validation figures per epoch, as the paper's figure 4) and OUT/confusion.svg.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include <ewnet/json.hpp>
#include <ewnet/shape.hpp>
#include <ewnet/train/history.hpp>
#include <ewnet/train/options.hpp>
#include <ewnet/train/plots.hpp>

namespace ewnet::train {

namespace detail {

inline std::string hms(double seconds) {
  const long long s = std::llround(std::max(0.0, seconds));
  char b[32];
  std::snprintf(b, sizeof b, "%02lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return b;
}

inline std::string table_rule() { return std::string(110, '=') + "\n"; }
inline std::string table_header() {
  char b[512];
  std::snprintf(b, sizeof b, "| %7s | %9s | %12s | %10s | %10s | %10s | %10s | %13s |\n| %7s | %9s | %12s | %10s | %10s | %10s | %10s | %13s |\n",
                "Epoch", "Iteration", "Time Elapsed", "Mini-batch", "Validation", "Mini-batch", "Validation",
                "Base Learning", "", "", "(hh:mm:ss)", "Accuracy", "Accuracy", "Loss", "Loss", "Rate");
  return table_rule() + b + table_rule();
}
inline std::string table_row(const EpochRecord& r) {
  char va[32] = "", vl[32] = "";
  if (std::isfinite(r.val_accuracy)) std::snprintf(va, sizeof va, "%9.2f%%", 100 * r.val_accuracy);
  if (std::isfinite(r.val_loss)) std::snprintf(vl, sizeof vl, "%10.4f", r.val_loss);
  char b[256];
  std::snprintf(b, sizeof b, "| %7d | %9lld | %12s | %9.2f%% | %10s | %10.4f | %10s | %13.4e |\n", r.epoch,
                r.iteration, hms(r.seconds).c_str(), 100 * r.train_accuracy, va, r.train_loss, vl, r.learn_rate);
  return b;
}

inline std::string csv_log(const History& h) {
  std::string s =
      "epoch,iteration,time_elapsed_s,minibatch_accuracy,minibatch_loss,validation_accuracy,validation_loss,"
      "base_learning_rate\n";
  char b[256];
  for (const EpochRecord& r : h.epochs) {
    std::snprintf(b, sizeof b, "%d,%lld,%.3f,%.6f,%.6f,%s,%s,%.6g\n", r.epoch, r.iteration, r.seconds, r.train_accuracy,
                  r.train_loss, std::isfinite(r.val_accuracy) ? std::to_string(r.val_accuracy).c_str() : "",
                  std::isfinite(r.val_loss) ? std::to_string(r.val_loss).c_str() : "", r.learn_rate);
    s += b;
  }
  return s;
}

/// The progress bar: one line on stderr, rewritten in place.
inline void progress_line(int epoch, int epochs, int batch, int batches, double loss, double accuracy,
                          double images_per_second, double seconds_left) {
  const int width = 24, done = batches ? width * batch / batches : width;
  std::fprintf(stderr, "\repoch %d/%d [%s%s] %d/%d  loss %.4f  acc %5.1f%%  %6.1f img/s  left %s ", epoch, epochs,
               std::string(size_t(done), '#').c_str(), std::string(size_t(width - done), '.').c_str(), batch,
               batches, loss, 100 * accuracy, images_per_second, hms(seconds_left).c_str());
  std::fflush(stderr);
}

}  // namespace detail

/// Writes OUT/log.csv, the two SVG charts and OUT/report.json for the history so far.
inline void write_run_files(const TrainOptions& o, const History& h) {
  write_text_file(o.out_dir + "/log.csv", detail::csv_log(h));
  Series batch_acc{"mini-batch", {}, {}, "#1f77b4", false, false, 1.0, 0.35};
  Series batch_loss{"mini-batch", {}, {}, "#d95f02", false, false, 1.0, 0.35};
  for (const IterationRecord& r : h.iterations) {
    batch_acc.x.push_back(double(r.iteration));
    batch_acc.y.push_back(100 * r.accuracy);
    batch_loss.x.push_back(double(r.iteration));
    batch_loss.y.push_back(r.loss);
  }
  Series acc_smooth{"smoothed", batch_acc.x, smooth(batch_acc.y), "#1f77b4", false, false, 2.0, 1.0};
  Series loss_smooth{"smoothed", batch_loss.x, smooth(batch_loss.y), "#d95f02", false, false, 2.0, 1.0};
  Series val_acc{"validation", {}, {}, "#222222", true, true, 1.5, 1.0};
  Series val_loss{"validation", {}, {}, "#222222", true, true, 1.5, 1.0};
  for (const EpochRecord& r : h.epochs) {
    val_acc.x.push_back(double(r.iteration));
    val_acc.y.push_back(100 * r.val_accuracy);
    val_loss.x.push_back(double(r.iteration));
    val_loss.y.push_back(r.val_loss);
  }
  Panel acc{"Accuracy", "iteration", "accuracy (%)", {batch_acc, acc_smooth, val_acc}, 0, 100};
  Panel loss{"Loss", "iteration", "cross-entropy loss", {batch_loss, loss_smooth, val_loss}, 0, NAN};
  write_text_file(o.out_dir + "/training-curves.svg", panels_svg(o.title + ": training progress", {acc, loss}));

  json::Value report = json::Value::object();
  report["title"] = o.title;
  report["classes"] = json::string_array(o.classes);
  report["epochs_run"] = int(h.epochs.size());
  report["best_epoch"] = h.best_epoch;
  report["seconds"] = h.seconds;
  report["seconds_per_epoch"] = h.seconds_per_epoch();
  report["images_per_second"] = h.images_per_second();
  report["device"] = device_name(o.device);
  report["compute_precision"] = precision_name(o.precision);  // the matrix products' (not a class metric)
  json::Value by_epoch = json::Value::array();
  for (const EpochRecord& r : h.epochs) by_epoch.push_back(History::finite_or_null(r.val_accuracy));
  report["validation_accuracy_by_epoch"] = by_epoch;
  if (h.best_confusion.classes()) {
    report["validation"] = h.best_confusion.to_json(o.classes);
    write_text_file(o.out_dir + "/confusion.svg",
                    confusion_svg(str(o.title, ": validation, epoch ", h.best_epoch), h.best_confusion, o.classes));
  }
  if (h.last_confusion.classes()) report["validation_last_epoch"] = h.last_confusion.to_json(o.classes);
  for (const auto& [k, v] : o.report_extra.as_object()) report[k] = v;
  write_text_file(o.out_dir + "/report.json", report.dump(2) + "\n");
}

/// What fit tells its reporter as the epochs begin.
struct RunStart {
  const TrainOptions* options = nullptr;  // the run's settings; they outlive the run
  size_t training_images = 0, validation_images = 0;
  int batches = 0;                        // mini-batches an epoch
  // The layer whose features fit computed once for this run (TrainOptions::feature_cache; empty
  // when it computed none), their shape an image, and the seconds that took.
  std::string features_of;
  Shape feature_shape;
  double feature_seconds = 0;
};

/// What fit tells its reporter after each mini-batch.
struct Progress {
  int epoch = 0, epochs = 0;                  // 1-based, of
  int step = 0, batches = 0;                  // the epoch's mini-batch, 1-based, of
  IterationRecord iteration;                  // this mini-batch's figures
  double epoch_accuracy = 0, epoch_loss = 0;  // means over the epoch's mini-batches so far
  double seconds = 0;                         // since this call of fit began (after a resume: since then)
  long long iterations = 0;                   // mini-batches since then
};

/// The observer fit calls; each call does nothing unless overridden.
class Reporter {
 public:
  virtual ~Reporter() = default;
  /// A remark on the way, one line: stale temporary files removed, what a resume found, a warning.
  virtual void note(const std::string& /*line*/) {}
  /// The epochs begin; `so_far` holds those of a resumed run.
  virtual void run_started(const RunStart& /*run*/, const History& /*so_far*/) {}
  /// A mini-batch has trained.
  virtual void iteration_done(const Progress& /*p*/) {}
  /// An epoch has trained, validated and been saved; it is h.epochs.back().
  virtual void epoch_done(const EpochRecord& /*epoch*/, const History& /*h*/) {}
  /// The run is over: its last epoch is done, or none was left to run.
  virtual void run_finished(const History& /*h*/) {}
};

/// The standard report (see the file comment): text on `out`, the progress bar on stderr, the run's
/// files in TrainOptions::out_dir.
class RunReport : public Reporter {
 public:
  explicit RunReport(std::ostream& out) : out_(out) {}

  void note(const std::string& line) override { out_ << line << "\n"; }

  void run_started(const RunStart& run, const History& so_far) override {
    o_ = run.options;
    out_ << o_->title << ": " << run.training_images << " training and " << run.validation_images
         << " validation images, " << o_->classes.size() << " classes, " << run.batches << " iterations an epoch, on "
         << device_name(o_->device) << (o_->precision == Precision::bf16 ? " (bfloat16 matrix products)" : "") << "\n";
    if (!run.features_of.empty()) {
      out_ << "features of '" << run.features_of << "' (" << run.feature_shape.hwc()
           << " an image) computed once for the " << run.training_images + run.validation_images << " images in "
           << str(std::llround(run.feature_seconds * 10) / 10.0) << " s; every step trains from them\n";
      out_.flush();
    }
    out_ << detail::table_header();
    for (const EpochRecord& r : so_far.epochs) out_ << detail::table_row(r);
    out_.flush();
  }

  void iteration_done(const Progress& p) override {
    if (!o_->progress) return;
    // The time left at the session's mean time an iteration, images/s at the full mini-batch.
    const double per_iteration = p.seconds / double(p.iterations);
    const double left = per_iteration * double((long long)(p.epochs - p.epoch + 1) * p.batches - p.step);
    detail::progress_line(p.epoch, p.epochs, p.step, p.batches, p.epoch_loss, p.epoch_accuracy,
                          double(o_->batch) / per_iteration, left);
  }

  void epoch_done(const EpochRecord& epoch, const History& h) override {
    if (o_->progress) std::fprintf(stderr, "\r%s\r", std::string(118, ' ').c_str());
    out_ << detail::table_row(epoch);
    out_.flush();
    write_run_files(*o_, h);
  }

  void run_finished(const History& h) override {
    out_ << detail::table_rule();
    out_ << "training finished: " << h.epochs.size() << " epochs in " << detail::hms(h.seconds) << " ("
         << str(std::llround(h.seconds_per_epoch() * 10) / 10.0) << " s an epoch, "
         << std::llround(h.images_per_second()) << " images/s)\n";
    if (h.best_confusion.classes())
      out_ << "\nvalidation at the best epoch (" << h.best_epoch << "):\n" << h.best_confusion.text(o_->classes);
    out_ << "\nwritten to " << o_->out_dir << ": best.safetensors, last.safetensors, log.csv, report.json, "
         << "training-curves.svg, confusion.svg\n";
    out_.flush();
    write_run_files(*o_, h);
  }

 private:
  std::ostream& out_;
  const TrainOptions* o_ = nullptr;
};

}  // namespace ewnet::train
