// ewnet/train/history.hpp: what a training run did, epoch by epoch and iteration by iteration, and
// its JSON (saved in every checkpoint, so that a resumed run continues the same record).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <ewnet/json.hpp>
#include <ewnet/train/metrics.hpp>

namespace ewnet::train {

struct EpochRecord {
  int epoch = 0;              // 1-based, as printed
  long long iteration = 0;    // iterations done at the end of the epoch
  double seconds = 0;         // elapsed since the start of training (resumed runs included)
  double train_accuracy = 0, train_loss = 0;  // means over the epoch's mini-batches; the loss is the
                                              // objective trained (auxiliary classifiers' terms included)
  double val_accuracy = NAN, val_loss = NAN;
  double learn_rate = 0;
};

struct IterationRecord {
  long long iteration = 0;
  double accuracy = 0, loss = 0;
};

struct History {
  std::vector<EpochRecord> epochs;
  std::vector<IterationRecord> iterations;
  int best_epoch = 0;  // 1-based; 0 before any validation
  double best_val_accuracy = -1;
  ConfusionMatrix best_confusion, last_confusion;
  double seconds = 0;
  long long images = 0;  // training images seen

  double images_per_second() const { return seconds > 0 ? double(images) / seconds : 0; }
  double seconds_per_epoch() const { return epochs.empty() ? 0 : seconds / double(epochs.size()); }

  json::Value to_json(const std::vector<std::string>& classes) const {
    json::Value v = json::Value::object();
    json::Value e = json::Value::array();
    for (const EpochRecord& r : epochs)
      e.push_back(json::Value::Array{r.epoch, r.iteration, r.seconds, r.train_accuracy, r.train_loss,
                                     finite_or_null(r.val_accuracy), finite_or_null(r.val_loss), r.learn_rate});
    v["epochs"] = e;
    json::Value it = json::Value::array();
    for (const IterationRecord& r : iterations) it.push_back(json::Value::Array{r.iteration, r.accuracy, r.loss});
    v["iterations"] = it;
    v["best_epoch"] = best_epoch;
    v["best_val_accuracy"] = best_val_accuracy;
    if (best_confusion.classes()) v["best_confusion"] = best_confusion.to_json(classes);
    if (last_confusion.classes()) v["last_confusion"] = last_confusion.to_json(classes);
    v["seconds"] = seconds;
    v["images"] = images;
    return v;
  }
  static History from_json(const json::Value& v) {
    History h;
    auto number = [](const json::Value& x) { return x.is_null() ? NAN : x.as_number(); };
    for (const json::Value& r : v.at("epochs").as_array()) {
      const auto& a = r.as_array();
      h.epochs.push_back({int(a.at(0).as_int()), a.at(1).as_int(), a.at(2).as_number(), a.at(3).as_number(),
                          a.at(4).as_number(), number(a.at(5)), number(a.at(6)), a.at(7).as_number()});
    }
    for (const json::Value& r : v.at("iterations").as_array()) {
      const auto& a = r.as_array();
      h.iterations.push_back({a.at(0).as_int(), a.at(1).as_number(), a.at(2).as_number()});
    }
    h.best_epoch = int(v.at("best_epoch").as_int());
    h.best_val_accuracy = v.at("best_val_accuracy").as_number();
    if (const json::Value* c = v.find("best_confusion")) h.best_confusion = ConfusionMatrix::from_json(*c);
    if (const json::Value* c = v.find("last_confusion")) h.last_confusion = ConfusionMatrix::from_json(*c);
    h.seconds = v.at("seconds").as_number();
    h.images = v.at("images").as_int();
    return h;
  }

  /// A number, or null where it is not finite (JSON has no NaN).
  static json::Value finite_or_null(double x) { return std::isfinite(x) ? json::Value(x) : json::Value(); }
};

}  // namespace ewnet::train
