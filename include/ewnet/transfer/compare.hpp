// ewnet/transfer/compare.hpp: transfer against training from scratch, on the target's validation set.
//
// A stage is measured by its validation accuracy averaged over its epochs (the area under the
// comparison chart's curve: on a small validation set a fairer "better at equal epochs" than one
// best epoch). The chosen recipe's gain over scratch is weighed against the noise of the
// validation set: on n images one image is 100/n points, an accuracy p has the standard error
// sqrt(p (1 - p) / n), the difference of two accuracies sqrt(se_a^2 + se_b^2), and a gain counts
// as clear when it exceeds twice that (about 95%). Also here: each stage's entry in summary.json,
// the console summary, and the panels of comparison.svg.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <ewnet/json.hpp>
#include <ewnet/train/history.hpp>
#include <ewnet/train/plots.hpp>
#include <ewnet/transfer/recipe.hpp>

namespace ewnet::transfer {

enum class StageKind { source, transfer, scratch };

/// What a stage of the pipeline left: which stage, where, and its history.
struct StageResult {
  StageKind kind = StageKind::source;
  Method method = Method::all;  // the recipe's, for a transfer stage
  std::string folder;
  train::History history;

  std::string name() const {
    switch (kind) {
      case StageKind::source: return "source, from scratch";
      case StageKind::transfer: return std::string("transfer, ") + method_name(method);
      case StageKind::scratch: return "target, from scratch";
    }
    return "?";
  }
};

/// Validation accuracy averaged over the epochs (0 without any).
inline double mean_validation_accuracy(const train::History& h) {
  double s = 0;
  for (const train::EpochRecord& r : h.epochs) s += r.val_accuracy;
  return h.epochs.empty() ? 0.0 : s / double(h.epochs.size());
}

/// The standard error of an accuracy p measured on n images: sqrt(p (1 - p) / n).
inline double standard_error(double p, size_t n) {
  return n ? std::sqrt(std::max(p * (1 - p), 0.0) / double(n)) : 0.0;
}

/// A transfer stage against scratch, in points of accuracy (percent).
struct Comparison {
  Method method = Method::all;        // the transfer stage's recipe
  double mean_gain = 0;               // mean accuracy over the epochs, transfer minus scratch
  double best_gain = 0;               // at each one's best epoch
  double one_image = 0;               // what one validation image is worth
  double noise = 0;                   // twice the standard error of the mean gain
  bool outside_noise = false;         // |mean_gain| > noise

  std::string verdict() const {
    return outside_noise ? (mean_gain > 0 ? "a clear gain" : "a clear loss") : "inside the noise of this validation set";
  }
  json::Value to_json() const {
    json::Value v = json::Value::object();
    v["recipe"] = method_name(method);
    v["mean_accuracy_gain_points"] = mean_gain;
    v["best_accuracy_gain_points"] = best_gain;
    v["one_image_points"] = one_image;
    v["two_standard_errors_points"] = noise;
    v["outside_noise"] = outside_noise;
    return v;
  }
};

/// `transfer` against `scratch`, both validated on the same `validation_images` images (at least one).
inline Comparison compare(const StageResult& transfer, const StageResult& scratch, size_t validation_images) {
  EWNET_CHECK(validation_images > 0, "compare: no validation images to compare on");
  const double mt = mean_validation_accuracy(transfer.history), mb = mean_validation_accuracy(scratch.history);
  const double et = standard_error(mt, validation_images), eb = standard_error(mb, validation_images);
  Comparison c;
  c.method = transfer.method;
  c.mean_gain = 100 * (mt - mb);
  c.best_gain = 100 * (transfer.history.best_val_accuracy - scratch.history.best_val_accuracy);
  c.one_image = 100.0 / double(validation_images);
  c.noise = 100 * 2 * std::sqrt(et * et + eb * eb);
  c.outside_noise = std::fabs(c.mean_gain) > c.noise;
  return c;
}

/// The chosen recipe, the first transfer stage, against scratch: none unless both ran and there are
/// validation images to weigh them on.
inline std::optional<Comparison> compare_stages(const std::vector<StageResult>& stages, size_t validation_images) {
  const StageResult *transfer = nullptr, *scratch = nullptr;
  for (const StageResult& s : stages) {
    if (s.kind == StageKind::transfer && !transfer) transfer = &s;
    if (s.kind == StageKind::scratch) scratch = &s;
  }
  if (!transfer || !scratch || validation_images == 0) return std::nullopt;
  return compare(*transfer, *scratch, validation_images);
}

/// A stage's entry in summary.json.
inline json::Value stage_json(const StageResult& s) {
  const train::History& h = s.history;
  json::Value v = json::Value::object();
  v["folder"] = s.folder;
  v["epochs"] = int(h.epochs.size());
  v["best_epoch"] = h.best_epoch;
  v["best_validation_accuracy"] = h.best_val_accuracy;
  v["final_validation_accuracy"] = h.epochs.empty() ? 0.0 : h.epochs.back().val_accuracy;
  v["mean_validation_accuracy"] = mean_validation_accuracy(h);
  v["seconds"] = h.seconds;
  v["seconds_per_epoch"] = h.seconds_per_epoch();
  return v;
}

/// Adds the stages to a summary: "source", "transfer" (each by its recipe) and "scratch" when run.
inline void add_stages(json::Value& summary, const std::vector<StageResult>& stages) {
  json::Value transfers = json::Value::object();
  for (const StageResult& s : stages) {
    if (s.kind == StageKind::source) summary["source"] = stage_json(s);
    if (s.kind == StageKind::transfer) transfers[method_name(s.method)] = stage_json(s);
  }
  summary["transfer"] = transfers;
  for (const StageResult& s : stages)
    if (s.kind == StageKind::scratch) summary["scratch"] = stage_json(s);
}

/// The console summary: a line a stage (best, final and mean validation accuracy, time an epoch).
inline std::string summary_table(const std::vector<StageResult>& stages) {
  char line[320];
  std::snprintf(line, sizeof line, "%-34s  %-24s  %-8s  %-8s  %s\n", "validation accuracy:", "best (epoch of epochs)",
                "final", "mean", "time an epoch");
  std::string text = line;
  for (const StageResult& s : stages) {
    const train::History& h = s.history;
    char best[64];
    std::snprintf(best, sizeof best, "%.2f%% (%d of %zu)", 100 * h.best_val_accuracy, h.best_epoch, h.epochs.size());
    std::snprintf(line, sizeof line, "%-34s  %-24s  %6.2f%%  %6.2f%%  %.2f s\n", s.name().c_str(), best,
                  h.epochs.empty() ? 0.0 : 100 * h.epochs.back().val_accuracy, 100 * mean_validation_accuracy(h),
                  h.seconds_per_epoch());
    text += line;
  }
  return text;
}

/// The comparison in words, one line.
inline std::string comparison_text(const Comparison& c) {
  const StageResult transfer{StageKind::transfer, c.method, "", {}};
  char line[512];
  std::snprintf(line, sizeof line,
                "%s against scratch: %+.1f points of mean accuracy over the epochs, %+.1f at the best epoch; one "
                "validation image is %.1f points and twice the standard error of the difference %.1f, so this is %s\n",
                transfer.name().c_str(), c.mean_gain, c.best_gain, c.one_image, c.noise, c.verdict().c_str());
  return line;
}

/// The target stages' validation accuracy and loss by epoch, each stage a line (scratch in orange),
/// the accuracy panel's title with the comparison when there is one.
inline std::vector<train::Panel> comparison_panels(const std::vector<StageResult>& stages, const Comparison* c) {
  static const char* colours[] = {"#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"};
  train::Panel accuracy{"Validation accuracy on the target", "epoch", "accuracy (%)", {}, 0, 100};
  train::Panel loss{"Validation loss on the target", "epoch", "cross-entropy loss", {}, 0, NAN};
  size_t i = 0;
  for (const StageResult& s : stages) {
    if (s.kind == StageKind::source) continue;
    const bool scratch = s.kind == StageKind::scratch;
    const char* colour = scratch ? "#d95f02" : colours[i % 5];
    ++i;
    train::Series a{scratch ? "from scratch" : s.name(), {}, {}, colour, false, true, 2.0, 1.0}, l = a;
    for (const train::EpochRecord& r : s.history.epochs) {
      a.x.push_back(r.epoch);
      a.y.push_back(100 * r.val_accuracy);
      l.x.push_back(r.epoch);
      l.y.push_back(r.val_loss);
    }
    accuracy.series.push_back(a);
    loss.series.push_back(l);
  }
  if (c) {
    char b[96];
    std::snprintf(b, sizeof b, " (transfer %+.1f points over the epochs, noise +-%.1f)", c->mean_gain, c->noise);
    accuracy.title += b;
  }
  return {accuracy, loss};
}

}  // namespace ewnet::transfer
