// ewnet/train/plots.hpp: pictures of a run as SVG text, written by hand (no plotting dependency):
// line charts in stacked panels (training curves in the manner of MATLAB's training-progress
// window, the paper's figure 4) and a confusion-matrix chart. Any browser opens them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <ewnet/error.hpp>
#include <ewnet/io/files.hpp>
#include <ewnet/text.hpp>
#include <ewnet/train/metrics.hpp>

namespace ewnet::train {

struct Series {
  std::string name;
  std::vector<double> x, y;
  std::string colour = "#1f77b4";
  bool dashed = false;
  bool markers = false;
  double width = 1.5;
  double opacity = 1.0;
};

struct Panel {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  double y_min = NAN, y_max = NAN;  // NAN: fitted to the data
};

namespace detail {

// Names of any bytes as well-formed XML (ewnet/text.hpp).
inline std::string escape_xml(const std::string& s) { return text::xml_text(s); }

inline std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `count` ticks over `range`.
inline double tick_step(double range, int count) {
  if (!(range > 0)) return 1;
  const double raw = range / count, p = std::pow(10.0, std::floor(std::log10(raw))), f = raw / p;
  return p * (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10);
}

inline std::string tick_label(double v, double step) {
  char b[32];
  if (step >= 1) std::snprintf(b, sizeof b, "%.0f", v);
  else if (step >= 0.1) std::snprintf(b, sizeof b, "%.1f", v);
  else std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

}  // namespace detail

/// Exponential moving average, y_i = a y_{i-1} + (1 - a) x_i, bias-corrected for the start (the
/// smoothed line MATLAB draws through noisy mini-batch figures).
inline std::vector<double> smooth(const std::vector<double>& x, double a = 0.6) {
  std::vector<double> y(x.size());
  double m = 0, w = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    m = a * m + (1 - a) * x[i];
    w = a * w + (1 - a);
    y[i] = m / w;
  }
  return y;
}

/// Panels stacked vertically in one SVG, each with axes, ticks, grid and a legend.
inline std::string panels_svg(const std::string& title, const std::vector<Panel>& panels, int width = 860,
                              int panel_height = 300) {
  const int top = 40, left = 70, right = 170, bottom = 50;
  const int height = top + int(panels.size()) * (panel_height + bottom);
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
                  std::to_string(height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + std::to_string(width / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">" +
       detail::escape_xml(title) + "</text>\n";
  const double pw = width - left - right, ph = panel_height - 30;
  for (size_t p = 0; p < panels.size(); ++p) {
    const Panel& pn = panels[p];
    const double y0 = top + double(p) * (panel_height + bottom) + 20;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (const Series& se : pn.series)
      for (size_t i = 0; i < se.x.size() && i < se.y.size(); ++i) {
        if (!std::isfinite(se.y[i])) continue;
        xmin = std::min(xmin, se.x[i]);
        xmax = std::max(xmax, se.x[i]);
        ymin = std::min(ymin, se.y[i]);
        ymax = std::max(ymax, se.y[i]);
      }
    if (!std::isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
    if (std::isfinite(pn.y_min)) ymin = pn.y_min;
    if (std::isfinite(pn.y_max)) ymax = pn.y_max;
    if (xmax <= xmin) xmax = xmin + 1;
    if (ymax <= ymin) ymax = ymin + 1;
    auto X = [&](double v) { return left + (v - xmin) / (xmax - xmin) * pw; };
    auto Y = [&](double v) { return y0 + ph - (std::clamp(v, ymin, ymax) - ymin) / (ymax - ymin) * ph; };
    s += "<text x=\"" + detail::num(left) + "\" y=\"" + detail::num(y0 - 6) + "\" font-weight=\"bold\">" +
         detail::escape_xml(pn.title) + "</text>\n";
    const double ys = detail::tick_step(ymax - ymin, 5), xs = detail::tick_step(xmax - xmin, 8);
    for (double v = std::ceil(ymin / ys) * ys; v <= ymax + 1e-9; v += ys) {
      s += "<line x1=\"" + detail::num(left) + "\" x2=\"" + detail::num(left + pw) + "\" y1=\"" + detail::num(Y(v)) +
           "\" y2=\"" + detail::num(Y(v)) + "\" stroke=\"#e0e0e0\"/>\n";
      s += "<text x=\"" + detail::num(left - 6) + "\" y=\"" + detail::num(Y(v) + 4) + "\" text-anchor=\"end\">" +
           detail::tick_label(v, ys) + "</text>\n";
    }
    for (double v = std::ceil(xmin / xs) * xs; v <= xmax + 1e-9; v += xs) {
      s += "<line x1=\"" + detail::num(X(v)) + "\" x2=\"" + detail::num(X(v)) + "\" y1=\"" + detail::num(y0) +
           "\" y2=\"" + detail::num(y0 + ph) + "\" stroke=\"#f0f0f0\"/>\n";
      s += "<text x=\"" + detail::num(X(v)) + "\" y=\"" + detail::num(y0 + ph + 16) + "\" text-anchor=\"middle\">" +
           detail::tick_label(v, xs) + "</text>\n";
    }
    s += "<rect x=\"" + detail::num(left) + "\" y=\"" + detail::num(y0) + "\" width=\"" + detail::num(pw) +
         "\" height=\"" + detail::num(ph) + "\" fill=\"none\" stroke=\"#444\"/>\n";
    s += "<text x=\"" + detail::num(left + pw / 2) + "\" y=\"" + detail::num(y0 + ph + 34) +
         "\" text-anchor=\"middle\">" + detail::escape_xml(pn.xlabel) + "</text>\n";
    s += "<text transform=\"translate(18," + detail::num(y0 + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
         detail::escape_xml(pn.ylabel) + "</text>\n";
    for (size_t k = 0; k < pn.series.size(); ++k) {
      const Series& se = pn.series[k];
      std::string pts;
      for (size_t i = 0; i < se.x.size() && i < se.y.size(); ++i)
        if (std::isfinite(se.y[i])) pts += detail::num(X(se.x[i])) + "," + detail::num(Y(se.y[i])) + " ";
      const std::string style = "stroke=\"" + se.colour + "\" stroke-width=\"" + detail::num(se.width) +
                                "\" stroke-opacity=\"" + std::to_string(se.opacity) + "\"" +
                                (se.dashed ? " stroke-dasharray=\"6,4\"" : "");
      s += "<polyline fill=\"none\" " + style + " points=\"" + pts + "\"/>\n";
      if (se.markers)
        for (size_t i = 0; i < se.x.size() && i < se.y.size(); ++i)
          if (std::isfinite(se.y[i]))
            s += "<circle cx=\"" + detail::num(X(se.x[i])) + "\" cy=\"" + detail::num(Y(se.y[i])) +
                 "\" r=\"3\" fill=\"" + se.colour + "\"/>\n";
      const double ly = y0 + 14 + double(k) * 18;
      s += "<line x1=\"" + detail::num(left + pw + 12) + "\" x2=\"" + detail::num(left + pw + 36) + "\" y1=\"" +
           detail::num(ly - 4) + "\" y2=\"" + detail::num(ly - 4) + "\" " + style + "/>\n";
      s += "<text x=\"" + detail::num(left + pw + 42) + "\" y=\"" + detail::num(ly) + "\">" +
           detail::escape_xml(se.name) + "</text>\n";
    }
  }
  return s + "</svg>\n";
}

/// The confusion matrix as a chart: cells shaded by the share of their row (recall per cell),
/// counts written in them, precision and recall beside and below (as MATLAB's confusionchart
/// with row and column summaries).
inline std::string confusion_svg(const std::string& title, const ConfusionMatrix& m,
                                 const std::vector<std::string>& names) {
  const int k = m.classes(), cell = std::max(36, std::min(70, 560 / std::max(1, k)));
  size_t longest = 4;
  for (const std::string& n : names) longest = std::max(longest, n.size());
  const int label = int(longest) * 7 + 16, top = 50;
  const int width = label + k * cell + 110, height = top + k * cell + 60 + label;
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
                  std::to_string(height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + std::to_string(width / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" +
       detail::escape_xml(title) + "</text>\n";
  s += "<text x=\"" + std::to_string(label + k * cell + 10) + "\" y=\"" + std::to_string(top - 8) +
       "\">recall</text>\n";
  for (int i = 0; i < k; ++i) {
    const int y = top + i * cell;
    s += "<text x=\"" + std::to_string(label - 6) + "\" y=\"" + std::to_string(y + cell / 2 + 4) +
         "\" text-anchor=\"end\">" + detail::escape_xml(names[size_t(i)]) + "</text>\n";
    const double row = double(std::max<long long>(1, m.row_sum(i)));
    for (int j = 0; j < k; ++j) {
      const double share = double(m.at(i, j)) / row;
      // Diagonal cells in blue, errors in red; the shade is the share of the true class's images.
      const int r = i == j ? int(255 - 200 * share) : 255, g = int(255 - 180 * share),
                b = i == j ? 255 : int(255 - 180 * share);
      const int x = label + j * cell;
      s += "<rect x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(y) + "\" width=\"" + std::to_string(cell) +
           "\" height=\"" + std::to_string(cell) + "\" fill=\"rgb(" + std::to_string(r) + "," + std::to_string(g) +
           "," + std::to_string(b) + ")\" stroke=\"#888\"/>\n";
      s += "<text x=\"" + std::to_string(x + cell / 2) + "\" y=\"" + std::to_string(y + cell / 2 + 4) +
           "\" text-anchor=\"middle\"" + (share > 0.6 ? " fill=\"white\"" : "") + ">" + std::to_string(m.at(i, j)) +
           "</text>\n";
    }
    char pct[16];
    std::snprintf(pct, sizeof pct, "%.0f%%", 100 * m.recall(i));
    s += "<text x=\"" + std::to_string(label + k * cell + 10) + "\" y=\"" + std::to_string(y + cell / 2 + 4) +
         "\">" + pct + "</text>\n";
  }
  const int yb = top + k * cell;
  s += "<text x=\"" + std::to_string(label - 6) + "\" y=\"" + std::to_string(yb + 18) +
       "\" text-anchor=\"end\">precision</text>\n";
  for (int j = 0; j < k; ++j) {
    char pct[16];
    std::snprintf(pct, sizeof pct, "%.0f%%", 100 * m.precision(j));
    const int x = label + j * cell + cell / 2;
    s += "<text x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(yb + 18) + "\" text-anchor=\"middle\">" +
         pct + "</text>\n";
    s += "<text transform=\"translate(" + std::to_string(x + 4) + "," + std::to_string(yb + 30) +
         ") rotate(60)\">" + detail::escape_xml(names[size_t(j)]) + "</text>\n";
  }
  s += "<text x=\"" + std::to_string(label + k * cell / 2) + "\" y=\"" + std::to_string(height - 8) +
       "\" text-anchor=\"middle\">predicted class (rows: true class)</text>\n";
  return s + "</svg>\n";
}

/// Writes text to a file atomically, as checkpoints are written (io/files.hpp): a full disk or a
/// crash leaves the previous file, never an empty or half-written one. Throws IoError naming it.
inline void write_text_file(const std::string& path, const std::string& text) {
  io::write_file_atomically(path, text);
}

}  // namespace ewnet::train
