// ewnet_torchvision_parity NAME WEIGHTS CASE: loads torchvision's weights (written by
// tests/models/torchvision_parity.py) into ewnet::build_model(NAME) and compares with torchvision:
//   1. float32: the logits in inference mode (batch norm with its running statistics);
//   2. float64, from the same weights: the logits in inference mode; then one training-mode forward
//      and backward of the mean cross-entropy (batch statistics, dropout probability 0): the logits
//      and the gradient of the first convolution's weights. With auxiliary classifiers (the case's
//      "auxiliary" is 1) the model is built with them: the training pass also compares each one's
//      logits, and the loss and gradients are those of the weighted sum torchvision's recipes train.
// Tolerances, as max |ewnet - torch| / max |torch| over the tensor: 1e-3 in float32 and 1e-8 in
// float64. The two sides sum in different orders (ewnet's GEMMs over im2col against PyTorch's
// convolutions) through 20 to 95 convolution + batch-norm stages; float32's rounding (about 1e-7 a
// step) can flip a max pooling's choice or a ReLU's sign, and one flip moves a gradient by percents,
// hence the gradient is compared in float64, where measured differences are 1e-15 to 4e-13. A wrong
// layer, name mapping, padding or pooling mode shows as a difference of order 1.
// Exit status 0 when everything matches, 1 otherwise.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>

#include <ewnet/io/torchvision.hpp>
#include <ewnet/layers/dropout.hpp>
#include <ewnet/models/build.hpp>

using namespace ewnet;

namespace {
template <class T>
std::vector<T> values(const io::SafetensorsFile& f, const std::string& key) {
  const io::SafeTensor t = detail::convert_tensor<T>(f.tensors.at(key), "case", key);
  std::vector<T> v(t.elements());
  std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
  return v;
}

template <class T>
bool compare(const std::string& what, const std::vector<T>& ours, const std::vector<double>& theirs, double tol) {
  EWNET_CHECK(ours.size() == theirs.size(), what, ": ", ours.size(), " values against torch's ", theirs.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    diff = std::max(diff, std::abs(double(ours[i]) - theirs[i]));
    scale = std::max(scale, std::abs(theirs[i]));
  }
  const double rel = diff / std::max(scale, 1e-300);
  const bool ok = rel <= tol && std::isfinite(rel) && scale > 0;
  std::printf("  %-44s max |diff| %.3g, max |torch| %.3g, relative %.2e  %s\n", what.c_str(), diff, scale, rel,
              ok ? "ok" : "MISMATCH");
  return ok;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: ewnet_torchvision_parity NAME WEIGHTS CASE\n";
    return 2;
  }
  try {
    const std::string name = argv[1], weights = argv[2];
    const io::SafetensorsFile c = io::read_safetensors(argv[3]);
    const std::vector<std::int64_t>& xs = c.tensors.at("input").shape;
    const int n = int(xs[0]), size = int(xs[2]);
    const int classes = int(c.tensors.at("logits").shape[1]);
    const Shape shape{n, 3, size, size};
    bool ok = true;

    ModelOptions mo;
    mo.auxiliary_classifiers = c.metadata.count("auxiliary") && c.metadata.at("auxiliary") == "1";
    Model<float> mf = build_model<float>(name, classes, size, 0, mo);
    const WeightsLoadResult r = load_weights(mf, weights);
    std::printf("%s%s: %zu layers, %zu parameters, %dx%d, batch %d; %zu tensors left out, %zu layers fresh\n",
                name.c_str(), mo.auxiliary_classifiers ? " with auxiliary classifiers" : "", mf.layer_count(),
                mf.parameter_count(), size, size, n, r.left_out.size(), r.fresh.size());
    if (!r.left_out.empty() || !r.fresh.empty()) {
      std::printf("  every tensor of the file must load into the model and every layer come from it\n");
      ok = false;
    }
    mf.forward(Tensor<float>::from_vector(shape, values<float>(c, "input")), Mode::inference);
    ok &= compare("float32 logits, inference", mf.activation("fc").to_vector(), values<double>(c, "logits_float32"),
                  1e-3);

    Model<double> m = build_model<double>(name, classes, size, 0, mo);
    load_weights(m, weights);
    const Tensor<double> x = Tensor<double>::from_vector(shape, values<double>(c, "input"));
    m.forward(x, Mode::inference);
    ok &= compare("float64 logits, inference", m.activation("fc").to_vector(), values<double>(c, "logits"), 1e-8);

    std::vector<std::string> dropouts;
    for (Layer<double>* l : m.layers())
      if (l->type() == "dropout") dropouts.push_back(l->name());
    for (const std::string& d : dropouts) m.replace(d, std::make_unique<Dropout<double>>(d, 0.0));
    std::vector<int> labels;
    for (double l : values<double>(c, "labels")) labels.push_back(int(std::lround(l)));
    m.forward(x, labels, Mode::training);
    ok &= compare("float64 logits, training", m.activation("fc").to_vector(), values<double>(c, "train_logits"),
                  1e-8);
    for (const auto& [key, t] : c.tensors)
      if (key.rfind("train_aux.", 0) == 0) {
        const std::string layer = key.substr(10);
        ok &= compare("float64 " + layer + " logits, training", m.activation(layer).to_vector(), values<double>(c, key),
                      1e-8);
      }
    const double torch_loss = std::stod(c.metadata.at("loss"));
    const bool loss_ok = std::abs(double(m.loss()) - torch_loss) <= 1e-8 * std::max(1.0, std::abs(torch_loss));
    std::printf("  loss: ewnet %.15g, torch %.15g  %s\n", double(m.loss()), torch_loss, loss_ok ? "ok" : "MISMATCH");
    ok &= loss_ok;
    m.backward();
    const std::string first = c.metadata.at("first_conv");
    const bool first_ok = compare("float64 d loss / d " + first + ".weight",
                                  m.layer_as<Conv2d<double>>(first).weight().grad.to_vector(),
                                  values<double>(c, "first_conv_grad"), 1e-8);
    if (!first_ok) {
      // Locate the fault: the convolutions' weight gradients, from the output back.
      std::vector<Layer<double>*> layers = m.layers();
      for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
        const std::string key = "grad." + (*it)->name() + ".weight";
        if ((*it)->type() != "conv2d" || !c.tensors.count(key)) continue;
        if (!compare("d loss / d " + (*it)->name() + ".weight",
                     m.layer_as<Conv2d<double>>((*it)->name()).weight().grad.to_vector(), values<double>(c, key),
                     1e-8)) {
          std::printf("  the deepest convolution whose gradient differs: %s\n", (*it)->name().c_str());
          break;
        }
      }
    }
    ok &= first_ok;
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
