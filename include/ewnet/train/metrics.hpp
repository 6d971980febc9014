// ewnet/train/metrics.hpp: the confusion matrix and what is read from it (overall accuracy,
// per-class precision and recall), as text and as JSON.
//
// Rows are true classes, columns predicted ones (MATLAB's confusionchart). For class c:
//   precision = M[c][c] / sum_r M[r][c]   (of the images predicted c, the share that are c)
//   recall    = M[c][c] / sum_k M[c][k]   (of the images of c, the share predicted c)
// A class never predicted has no precision; it is reported as 0 with its count, so an unbalanced
// set cannot hide a class the model ignores behind a high overall accuracy.
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <ewnet/error.hpp>
#include <ewnet/json.hpp>

namespace ewnet::train {

class ConfusionMatrix {
 public:
  ConfusionMatrix() = default;
  explicit ConfusionMatrix(int classes) : k_(classes), m_(size_t(classes) * size_t(classes), 0) {}

  int classes() const { return k_; }
  void add(int truth, int predicted) {
    EWNET_CHECK(truth >= 0 && truth < k_ && predicted >= 0 && predicted < k_, "confusion matrix: class ", truth,
                " or ", predicted, " is outside [0, ", k_, ")");
    ++m_[size_t(truth) * size_t(k_) + size_t(predicted)];
  }
  long long at(int truth, int predicted) const { return m_[size_t(truth) * size_t(k_) + size_t(predicted)]; }
  long long total() const {
    long long s = 0;
    for (long long v : m_) s += v;
    return s;
  }
  long long row_sum(int c) const {
    long long s = 0;
    for (int j = 0; j < k_; ++j) s += at(c, j);
    return s;
  }
  long long column_sum(int c) const {
    long long s = 0;
    for (int i = 0; i < k_; ++i) s += at(i, c);
    return s;
  }
  double accuracy() const {
    long long d = 0;
    for (int c = 0; c < k_; ++c) d += at(c, c);
    return total() ? double(d) / double(total()) : 0.0;
  }
  double precision(int c) const { return column_sum(c) ? double(at(c, c)) / double(column_sum(c)) : 0.0; }
  double recall(int c) const { return row_sum(c) ? double(at(c, c)) / double(row_sum(c)) : 0.0; }

  /// The per-class table and the matrix, for a terminal.
  std::string text(const std::vector<std::string>& names) const {
    check_names(names);
    size_t w = 5;
    for (const std::string& n : names) w = std::max(w, n.size());
    std::string s;
    char buf[256];
    std::snprintf(buf, sizeof buf, "overall accuracy %.2f%% (%lld of %lld)\n\n", 100 * accuracy(),
                  (long long)(accuracy() * double(total()) + 0.5), total());
    s += buf;
    std::snprintf(buf, sizeof buf, "%-*s  %9s  %9s  %7s\n", int(w), "class", "precision", "recall", "images");
    s += buf;
    for (int c = 0; c < k_; ++c) {
      std::snprintf(buf, sizeof buf, "%-*s  %8.1f%%  %8.1f%%  %7lld\n", int(w), names[size_t(c)].c_str(),
                    100 * precision(c), 100 * recall(c), row_sum(c));
      s += buf;
    }
    s += "\nconfusion matrix (rows: true class, columns: predicted, in the order above)\n";
    for (int i = 0; i < k_; ++i) {
      std::snprintf(buf, sizeof buf, "%-*s ", int(w), names[size_t(i)].c_str());
      s += buf;
      for (int j = 0; j < k_; ++j) {
        std::snprintf(buf, sizeof buf, " %5lld", at(i, j));
        s += buf;
      }
      s += "\n";
    }
    return s;
  }

  json::Value to_json(const std::vector<std::string>& names) const {
    check_names(names);
    json::Value v = json::Value::object();
    v["accuracy"] = accuracy();
    v["images"] = total();
    json::Value per = json::Value::array();
    for (int c = 0; c < k_; ++c) {
      json::Value e = json::Value::object();
      e["class"] = names[size_t(c)];
      e["precision"] = precision(c);
      e["recall"] = recall(c);
      e["images"] = row_sum(c);
      per.push_back(e);
    }
    v["per_class"] = per;
    json::Value rows = json::Value::array();
    for (int i = 0; i < k_; ++i) {
      json::Value r = json::Value::array();
      for (int j = 0; j < k_; ++j) r.push_back(at(i, j));
      rows.push_back(r);
    }
    v["confusion"] = rows;
    return v;
  }
  static ConfusionMatrix from_json(const json::Value& v) {
    const auto& rows = v.at("confusion").as_array();
    ConfusionMatrix m(int(rows.size()));
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i].as_array();
      EWNET_CHECK_AS(IoError, r.size() == rows.size(), "confusion matrix: row ", i, " has ", r.size(), " entries");
      for (size_t j = 0; j < r.size(); ++j) m.m_[i * rows.size() + j] = r[j].as_int();
    }
    return m;
  }

 private:
  void check_names(const std::vector<std::string>& names) const {
    EWNET_CHECK(int(names.size()) == k_, "confusion matrix: ", names.size(), " class names for ", k_, " classes");
  }
  int k_ = 0;
  std::vector<long long> m_;
};

}  // namespace ewnet::train
