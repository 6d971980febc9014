// ewnet/deploy/gradcam.hpp: class-activation heat maps (Grad-CAM, Selvaraju et al. 2017).
//
// For one image, a class c and a layer with output A [K, h, w] (the last convolutional block):
//   alpha_k = (1 / hw) sum_{i,j} d log p_c / d A_k[i,j]
//   cam[i,j] = max(0, sum_k alpha_k A_k[i,j]),   scaled so that its maximum is 1 (all 0 if none > 0)
// The gradient is that of the log-probability of c, which ewnet's backward pass gives as minus
// the gradient of the cross-entropy loss with label c (the original uses the logit z_c; log p_c =
// z_c - log sum exp z differs by a term common to all classes, so the map shows what sets c apart
// from the others). The model runs in inference form (dropout off, batch norm on running
// statistics); every layer's learning-rate factors are set to 1 first so the gradient reaches
// frozen layers too (the model should be used for inference only afterwards).
//
// overlay_heat_map() upsamples the map to the image bilinearly, colours it from blue (0) through
// green to red (1) and blends it over the image, half and half.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <ewnet/data/image.hpp>
#include <ewnet/graph.hpp>

namespace ewnet {

struct HeatMap {
  int width = 0, height = 0;  // the layer's spatial size
  std::vector<float> values;  // row-major, in [0, 1]
  int class_index = 0;        // the class explained
  std::string layer;          // the layer it was computed on
};

/// The last layer whose output still has a spatial extent (h*w > 1): for the paper's model the
/// last inception block's output, the input of the global average pooling.
template <class T>
std::string last_spatial_layer(Model<T>& model) {
  std::string found;
  for (Layer<T>* l : model.layers()) {
    if (l->type() == "image_input" || l->is_loss() || model.is_auxiliary(l->name())) continue;
    const Shape s = model.output_shape(l->name());
    if (s.h * s.w > 1) found = l->name();
  }
  EWNET_CHECK_AS(GraphError, !found.empty(), "Grad-CAM: the model has no layer with a spatial output");
  return found;
}

/// Grad-CAM of `image` ([1, C, H, W], on the model's device) for class `class_index`, or for the
/// predicted class when it is negative, on `layer` (default: last_spatial_layer).
template <class T>
HeatMap grad_cam(Model<T>& model, const Tensor<T>& image, int class_index = -1, std::string layer = "") {
  EWNET_CHECK_AS(ShapeError, image.n() == 1, "Grad-CAM: one image at a time, got a batch of ", image.n());
  if (layer.empty()) layer = last_spatial_layer(model);
  for (Layer<T>* l : model.layers())
    if (!l->params().empty()) l->set_learn_rate_factors(1, 1);
  if (class_index < 0) {
    const std::vector<T> p = model.forward(image, Mode::inference).to_vector();
    class_index = int(std::max_element(p.begin(), p.end()) - p.begin());
  }
  EWNET_CHECK(class_index < model.classes(), "Grad-CAM: class ", class_index, " of ", model.classes());
  model.forward(image, std::vector<int>{class_index}, Mode::inference);
  model.backward();
  const std::vector<T> a = model.activation(layer).to_vector();
  const std::vector<T> g = model.output_gradient(layer).to_vector();
  EWNET_CHECK(!g.empty(), "Grad-CAM: no gradient reached layer '", layer, "'");
  const Shape s = model.output_shape(layer);
  const size_t plane = size_t(s.h) * size_t(s.w);
  HeatMap m;
  m.width = s.w;
  m.height = s.h;
  m.class_index = class_index;
  m.layer = layer;
  m.values.assign(plane, 0.f);
  std::vector<double> cam(plane, 0.0);
  for (int k = 0; k < s.c; ++k) {
    double alpha = 0;
    for (size_t i = 0; i < plane; ++i) alpha -= double(g[size_t(k) * plane + i]);  // d log p_c = -d loss
    alpha /= double(plane);
    for (size_t i = 0; i < plane; ++i) cam[i] += alpha * double(a[size_t(k) * plane + i]);
  }
  double top = 0;
  for (double v : cam) top = std::max(top, v);
  if (top > 0)
    for (size_t i = 0; i < plane; ++i) m.values[i] = float(std::max(0.0, cam[i]) / top);
  return m;
}

/// The heat map's value at image pixel (x, y) of a width x height image, bilinear between the
/// centres of the map's cells.
inline float heat_at(const HeatMap& m, double x, double y, int width, int height) {
  const double fx = std::clamp((x + 0.5) * m.width / width - 0.5, 0.0, double(m.width - 1));
  const double fy = std::clamp((y + 0.5) * m.height / height - 0.5, 0.0, double(m.height - 1));
  const int x0 = int(fx), y0 = int(fy), x1 = std::min(x0 + 1, m.width - 1), y1 = std::min(y0 + 1, m.height - 1);
  const double tx = fx - x0, ty = fy - y0;
  auto v = [&](int xx, int yy) { return double(m.values[size_t(yy) * size_t(m.width) + size_t(xx)]); };
  return float((1 - ty) * ((1 - tx) * v(x0, y0) + tx * v(x1, y0)) + ty * ((1 - tx) * v(x0, y1) + tx * v(x1, y1)));
}

/// The image with the heat map blended over it (see the top of this file).
inline data::Image overlay_heat_map(const data::Image& image, const HeatMap& m) {
  data::Image out = image;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const double h = heat_at(m, x, y, image.width, image.height);
      // blue -> cyan -> green -> yellow -> red
      const double r = std::clamp(1.5 - std::abs(4 * h - 3), 0.0, 1.0);
      const double gr = std::clamp(1.5 - std::abs(4 * h - 2), 0.0, 1.0);
      const double b = std::clamp(1.5 - std::abs(4 * h - 1), 0.0, 1.0);
      std::uint8_t* p = &out.rgb[(size_t(y) * size_t(image.width) + size_t(x)) * 3];
      const double colour[3] = {r, gr, b};
      for (int c = 0; c < 3; ++c) p[c] = std::uint8_t(std::lround(0.5 * p[c] + 0.5 * 255 * colour[c]));
    }
  return out;
}

}  // namespace ewnet
