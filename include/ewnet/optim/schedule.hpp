// ewnet/optim/schedule.hpp: learning-rate schedules (MATLAB's LearnRateSchedule).
#pragma once

#include <cmath>
#include <string>

#include <ewnet/error.hpp>
#include <ewnet/io/json.hpp>

namespace ewnet {

/// 'none' keeps the rate constant; 'piecewise' multiplies it by drop_factor every drop_period
/// epochs (the paper's fine-tuning: 0.5 every 20 epochs). Epochs count from 0.
struct LearnRateSchedule {
  enum class Kind { constant, piecewise };
  Kind kind = Kind::constant;
  double initial = 1e-3;
  double drop_factor = 0.1;
  int drop_period = 10;

  static LearnRateSchedule constant(double rate) { return {Kind::constant, rate, 1.0, 1}; }
  static LearnRateSchedule piecewise(double rate, double drop_factor, int drop_period) {
    EWNET_CHECK(drop_period > 0, "piecewise schedule: drop period must be positive, got ", drop_period);
    EWNET_CHECK(drop_factor >= 0 && drop_factor <= 1, "piecewise schedule: drop factor must be in [0, 1], got ",
                drop_factor);
    return {Kind::piecewise, rate, drop_factor, drop_period};
  }

  /// The rate in force during `epoch` (0-based).
  double rate(int epoch) const {
    if (kind == Kind::constant) return initial;
    return initial * std::pow(drop_factor, epoch / drop_period);
  }

  json::Value to_json() const {
    json::Value v = json::Value::object();
    v["kind"] = kind == Kind::constant ? "constant" : "piecewise";
    v["initial"] = initial;
    v["drop_factor"] = drop_factor;
    v["drop_period"] = drop_period;
    return v;
  }
  static LearnRateSchedule from_json(const json::Value& v) {
    LearnRateSchedule s;
    s.kind = v.at("kind").as_string() == "piecewise" ? Kind::piecewise : Kind::constant;
    s.initial = v.at("initial").as_number();
    s.drop_factor = v.at("drop_factor").as_number();
    s.drop_period = int(v.at("drop_period").as_int());
    return s;
  }
};

}  // namespace ewnet
