// ewnet/optim/schedule.hpp: learning-rate schedules (MATLAB's LearnRateSchedule).
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include <ewnet/error.hpp>
#include <ewnet/json.hpp>

namespace ewnet {

/// 'constant' keeps the rate; 'piecewise' multiplies it by drop_factor every drop_period epochs
/// (the paper's fine-tuning: 0.5 every 20 epochs); 'cosine' rises linearly over warmup_epochs, then
/// falls along half a cosine to `floor` times the rate at the last of `epochs` epochs:
///   epoch e < w:   rate = initial * (e + 1) / (w + 1)
///   epoch e >= w:  rate = initial * (floor + (1 - floor) * (1 + cos(pi * (e - w) / (epochs - w))) / 2)
/// Epochs count from 0; the rate is set once an epoch.
struct LearnRateSchedule {
  enum class Kind { constant, piecewise, cosine };
  Kind kind = Kind::constant;
  double initial = 1e-3;
  double drop_factor = 0.1;
  int drop_period = 10;
  int epochs = 0;         // cosine: the epochs it spans
  int warmup_epochs = 0;  // cosine: the linear warm-up
  double floor = 0;       // cosine: the last epoch's rate, as a fraction of initial

  static LearnRateSchedule constant(double rate) { return {Kind::constant, rate, 1.0, 1}; }
  static LearnRateSchedule piecewise(double rate, double drop_factor, int drop_period) {
    EWNET_CHECK(drop_period > 0, "piecewise schedule: drop period must be positive, got ", drop_period);
    EWNET_CHECK(drop_factor >= 0 && drop_factor <= 1, "piecewise schedule: drop factor must be in [0, 1], got ",
                drop_factor);
    return {Kind::piecewise, rate, drop_factor, drop_period};
  }

  static LearnRateSchedule cosine(double rate, int epochs, int warmup_epochs = 0, double floor = 0) {
    EWNET_CHECK(epochs > 0 && warmup_epochs >= 0 && warmup_epochs < epochs,
                "cosine schedule: needs 0 <= warm-up < epochs, got ", warmup_epochs, " and ", epochs);
    EWNET_CHECK(floor >= 0 && floor <= 1, "cosine schedule: floor must be in [0, 1], got ", floor);
    LearnRateSchedule s{Kind::cosine, rate, 1.0, 1};
    s.epochs = epochs;
    s.warmup_epochs = warmup_epochs;
    s.floor = floor;
    return s;
  }

  /// The rate in force during `epoch` (0-based).
  double rate(int epoch) const {
    switch (kind) {
      case Kind::constant: return initial;
      case Kind::piecewise: return initial * std::pow(drop_factor, epoch / drop_period);
      case Kind::cosine: {
        if (epoch < warmup_epochs) return initial * double(epoch + 1) / double(warmup_epochs + 1);
        const int span = std::max(1, epochs - warmup_epochs - 1);
        const double t = std::min(1.0, double(epoch - warmup_epochs) / double(span));
        return initial * (floor + (1 - floor) * 0.5 * (1 + std::cos(3.14159265358979323846 * t)));
      }
    }
    return initial;
  }

  static const char* kind_name(Kind k) {
    return k == Kind::constant ? "constant" : k == Kind::piecewise ? "piecewise" : "cosine";
  }

  json::Value to_json() const {
    json::Value v = json::Value::object();
    v["kind"] = kind_name(kind);
    v["initial"] = initial;
    v["drop_factor"] = drop_factor;
    v["drop_period"] = drop_period;
    if (kind == Kind::cosine) {
      v["epochs"] = epochs;
      v["warmup_epochs"] = warmup_epochs;
      v["floor"] = floor;
    }
    return v;
  }
  static LearnRateSchedule from_json(const json::Value& v) {
    LearnRateSchedule s;
    const std::string kind = v.at("kind").as_string();
    EWNET_CHECK(kind == "constant" || kind == "piecewise" || kind == "cosine", "unknown learning-rate schedule '",
                kind, "'");
    s.kind = kind == "piecewise" ? Kind::piecewise : kind == "cosine" ? Kind::cosine : Kind::constant;
    s.initial = v.at("initial").as_number();
    s.drop_factor = v.at("drop_factor").as_number();
    s.drop_period = int(v.at("drop_period").as_int());
    if (s.kind == Kind::cosine) {
      s.epochs = int(v.at("epochs").as_int());
      s.warmup_epochs = int(v.at("warmup_epochs").as_int());
      s.floor = v.at("floor").as_number();
    }
    return s;
  }
};

}  // namespace ewnet
