// ewnet/train/report.hpp: how a training run shows itself (MATLAB's training-progress output):
//   - a progress bar on stderr (loss, accuracy, images/s, time left),
//   - a table with MATLAB's columns, and the same rows in OUT/log.csv,
//   - OUT/training-curves.svg (mini-batch accuracy and loss per iteration, smoothed, with the
//     validation figures per epoch, as the paper's figure 4), OUT/confusion.svg and OUT/report.json.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <ewnet/io/json.hpp>
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

}  // namespace ewnet::train
