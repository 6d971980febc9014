// ewnet/deploy/rejection.hpp: answering "none of my classes" for images unlike the training data.
//
// A classifier always picks one of its classes. A score s(x), higher for images like the known
// classes, and a threshold t turn it into "class, or unknown when s(x) < t". Two scores:
//   maximum softmax probability   s(x) = max_c softmax(z)_c                 (Hendrycks & Gimpel 2017)
//   energy                        s(x) = -E(x) = log sum_c exp(z_c)         (Liu et al. 2020, T = 1)
// z being the logits (the input of the softmax). The energy score keeps the logits' overall scale
// that softmax divides away, so an input that excites no class strongly scores low even when one
// class wins the softmax by a wide margin.
//
// Calibration fixes t from known images only (the validation split): with the n scores of the
// known images sorted ascending, s_(0) <= ... <= s_(n-1), and a chosen false-rejection rate r,
//   t = s_(floor(r n))
// so at most floor(r n) known validation images (those strictly below t) are rejected. How many
// unknown images pass cannot be set this way (there are none to calibrate on); it is measured
// afterwards on held-out classes (docs/deployment.md) with the rate of unknowns accepted at t and
// the AUROC: the probability that a random known image scores above a random unknown one.
//
// The thresholds are stored in the checkpoint's metadata under "ewnet.rejection" as JSON.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <ewnet/error.hpp>
#include <ewnet/json.hpp>
#include <ewnet/io/safetensors.hpp>

namespace ewnet {

inline constexpr const char* kRejectionMetadataKey = "ewnet.rejection";

enum class RejectionScore { max_probability, energy };

inline const char* rejection_score_name(RejectionScore s) {
  return s == RejectionScore::energy ? "energy" : "max_probability";
}
inline RejectionScore parse_rejection_score(const std::string& s) {
  if (s == "max_probability" || s == "msp") return RejectionScore::max_probability;
  if (s == "energy") return RejectionScore::energy;
  throw Error(str("unknown rejection score '", s, "' (max_probability or energy)"));
}

/// log sum_c exp(z_c), computed stably.
inline double energy_score(const float* z, int classes) {
  const float m = *std::max_element(z, z + classes);
  double s = 0;
  for (int c = 0; c < classes; ++c) s += std::exp(double(z[c]) - double(m));
  return double(m) + std::log(s);
}

/// The threshold at which a fraction `rate` of `known_scores` falls strictly below it (see the top).
inline double calibrate_threshold(std::vector<double> known_scores, double rate) {
  EWNET_CHECK(!known_scores.empty(), "rejection calibration: no known images to calibrate on");
  EWNET_CHECK(rate >= 0 && rate < 1, "rejection calibration: false-rejection rate must be in [0, 1), got ", rate);
  std::sort(known_scores.begin(), known_scores.end());
  const size_t i = std::min(known_scores.size() - 1, size_t(std::floor(rate * double(known_scores.size()))));
  return known_scores[i];
}

/// P(known score > unknown score) + P(equal) / 2, by ranks (Mann-Whitney U / (n_k n_u)).
inline double rejection_auroc(const std::vector<double>& known, const std::vector<double>& unknown) {
  EWNET_CHECK(!known.empty() && !unknown.empty(), "AUROC needs known and unknown scores, got ", known.size(),
              " and ", unknown.size());
  std::vector<std::pair<double, int>> all;
  for (double s : known) all.push_back({s, 1});
  for (double s : unknown) all.push_back({s, 0});
  std::sort(all.begin(), all.end());
  double rank_sum = 0;  // sum of the known scores' ranks (1-based, ties averaged)
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double rank = 0.5 * double(i + 1 + j);
    for (size_t k = i; k < j; ++k)
      if (all[k].second) rank_sum += rank;
    i = j;
  }
  const double nk = double(known.size()), nu = double(unknown.size());
  return (rank_sum - nk * (nk + 1) / 2) / (nk * nu);
}

/// Fraction of `scores` at or above `threshold` (accepted as known).
inline double accepted_fraction(const std::vector<double>& scores, double threshold) {
  if (scores.empty()) return 0;
  size_t n = 0;
  for (double s : scores) n += s >= threshold;
  return double(n) / double(scores.size());
}

struct RejectionThresholds {
  double false_rejection_rate = -1;  // < 0: not calibrated
  double max_probability = 0;        // threshold on max softmax probability
  double energy = 0;                 // threshold on log-sum-exp of the logits
  std::int64_t validation_images = 0;

  bool calibrated() const { return false_rejection_rate >= 0; }
  double threshold(RejectionScore s) const { return s == RejectionScore::energy ? energy : max_probability; }
  bool accepts(RejectionScore s, double max_prob, double energy_score) const {
    return (s == RejectionScore::energy ? energy_score : max_prob) >= threshold(s);
  }

  json::Value to_json() const {
    json::Value v = json::Value::object();
    v["false_rejection_rate"] = false_rejection_rate;
    v["max_probability"] = max_probability;
    v["energy"] = energy;
    v["validation_images"] = validation_images;
    return v;
  }
  /// Reads what to_json wrote; throws IoError naming the member when one is missing, not a number
  /// (a NaN threshold was written as null), not finite, or out of range. A threshold that is not a
  /// number would reject nothing or everything without a word.
  static RejectionThresholds from_json(const json::Value& v) {
    auto number = [&](const char* key) {
      const json::Value* x = v.is_object() ? v.find(key) : nullptr;
      EWNET_CHECK_AS(IoError, x != nullptr, "member \"", key, "\" is missing");
      EWNET_CHECK_AS(IoError, x->is_number() && std::isfinite(x->as_number()), "member \"", key, "\" is ", x->dump(),
                     ", not a finite number");
      return x->as_number();
    };
    RejectionThresholds t;
    t.false_rejection_rate = number("false_rejection_rate");
    EWNET_CHECK_AS(IoError, t.false_rejection_rate >= 0 && t.false_rejection_rate < 1,
                   "member \"false_rejection_rate\" is ", t.false_rejection_rate, ", outside [0, 1)");
    t.max_probability = number("max_probability");
    t.energy = number("energy");
    t.validation_images = std::int64_t(number("validation_images"));
    return t;
  }
  /// from_json of a checkpoint's metadata text; errors name the file and the key.
  static RejectionThresholds from_metadata(const std::string& text, const std::string& path) {
    try {
      return from_json(json::parse(text, path + " (" + kRejectionMetadataKey + ")"));
    } catch (const Error& e) {
      throw IoError(str(path, ": metadata '", kRejectionMetadataKey, "': ", e.what()));
    }
  }
};

/// Thresholds for both scores from the known (validation) images' scores.
inline RejectionThresholds calibrate_rejection(const std::vector<double>& max_probabilities,
                                               const std::vector<double>& energy_scores, double rate) {
  EWNET_CHECK(max_probabilities.size() == energy_scores.size(), "rejection calibration: ",
              max_probabilities.size(), " probabilities but ", energy_scores.size(), " energy scores");
  RejectionThresholds t;
  t.false_rejection_rate = rate;
  t.max_probability = calibrate_threshold(max_probabilities, rate);
  t.energy = calibrate_threshold(energy_scores, rate);
  t.validation_images = std::int64_t(max_probabilities.size());
  return t;
}

/// Writes the checkpoint `f` (its tensors and metadata as read) to `out` with `t` stored in its
/// metadata; atomic, so `out` may be the file `f` was read from.
inline void store_rejection(io::SafetensorsFile f, const RejectionThresholds& t, const std::string& out) {
  f.metadata[kRejectionMetadataKey] = t.to_json().dump();
  io::write_safetensors(out, f);
}

/// Stores `t` in the metadata of the checkpoint at `path`, written to `out` (may equal `path`).
/// A program that also built the model from `path` must use the overload above with the contents
/// it read (io/checkpoint.hpp: CheckpointFile), so the calibration lands on the weights it measured.
inline void store_rejection(const std::string& path, const RejectionThresholds& t, const std::string& out) {
  store_rejection(io::read_safetensors(path), t, out);
}

}  // namespace ewnet
