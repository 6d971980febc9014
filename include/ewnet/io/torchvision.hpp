// ewnet/io/torchvision.hpp: loading weights written from PyTorch (tools/torch_to_safetensors.py)
// into the networks of models/ (GoogLeNet, Inception-v3, ResNet-18, named as torchvision names
// them), and, through the same call, ewnet's own checkpoints.
//
// A torchvision state_dict key is "<module>.<tensor>"; models/ names each ewnet layer after its
// torchvision module, so the key names the layer. The only renaming is batch norm's:
//   <bn>.weight -> <bn>.scale,  <bn>.bias -> <bn>.offset   (running_mean, running_var as they are)
// and <bn>.num_batches_tracked is dropped (ewnet's running averages use a fixed momentum, as
// torch's do unless momentum=None). Tensors of modules ewnet does not build (the auxiliary
// classifiers AuxLogits.*, aux1.*, aux2.*) are reported and left out; any other key that names no
// layer is an error. F32 and F64 tensors are converted to the model's element type.
//
// The input layer's normalisation is not in a state_dict: the converter writes what the weights
// expect into the metadata ("ewnet.input_mean", "ewnet.input_std": three numbers each, on ewnet's
// 0..255 pixel scale), and the loader sets it when present. torchvision's pretrained weights
// expect ImageNet's normalisation; GoogLeNet's and Inception-v3's (transform_input=True) expect
// (x - 127.5) / 127.5.
//
// The transfer case: with skip_classifier_on_mismatch, a file whose "fc" has another number of
// classes loads everything but fc, which keeps its fresh weights (result.classifier_loaded false).
#pragma once

#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <ewnet/io/checkpoint.hpp>

namespace ewnet {

struct WeightsLoadOptions {
  bool skip_classifier_on_mismatch = false;  // load all but the classifier when its shape differs
  std::string classifier = "fc";
  bool set_input_normalization = true;       // from the file's metadata (torchvision) or state (ewnet)
};

struct WeightsLoadResult {
  bool ewnet_checkpoint = false;       // the file was written by ewnet (save_checkpoint)
  bool classifier_loaded = true;       // false: the classifier kept its fresh weights (class counts differ)
  std::vector<std::string> left_out;   // keys of modules ewnet does not build (auxiliary classifiers)
  std::map<std::string, std::string> metadata;
};

namespace detail {

inline std::vector<double> parse_three(const std::string& text, const std::string& path, const std::string& key) {
  std::vector<double> v;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::stod(item));
  EWNET_CHECK_AS(IoError, v.size() == 3, path, ": metadata '", key, "' needs three comma-separated numbers, got '",
                 text, "'");
  return v;
}

/// The tensor converted to element type T (from F32 or F64).
template <class T>
io::SafeTensor convert_tensor(const io::SafeTensor& s, const std::string& path, const std::string& key) {
  if (s.dtype == io::dtype_of<T>()) return s;
  EWNET_CHECK_AS(IoError, s.dtype == "F32" || s.dtype == "F64", path, ": tensor '", key, "' is ", s.dtype,
                 "; ewnet reads F32 or F64 (tools/torch_to_safetensors.py writes F32)");
  io::SafeTensor out;
  out.dtype = io::dtype_of<T>();
  out.shape = s.shape;
  const size_t n = s.elements();
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) {
    if (s.dtype == "F32") {
      float x;
      std::memcpy(&x, s.bytes.data() + i * 4, 4);
      v[i] = T(x);
    } else {
      double x;
      std::memcpy(&x, s.bytes.data() + i * 8, 8);
      v[i] = T(x);
    }
  }
  out.bytes.resize(n * sizeof(T));
  std::memcpy(out.bytes.data(), v.data(), out.bytes.size());
  return out;
}

inline bool is_auxiliary(const std::string& key) {
  return key.rfind("AuxLogits.", 0) == 0 || key.rfind("aux1.", 0) == 0 || key.rfind("aux2.", 0) == 0;
}

}  // namespace detail

/// Loads `path` into `m`: an ewnet checkpoint (by layer name, as load_checkpoint) or a file written
/// by tools/torch_to_safetensors.py (by torchvision's names). Velocities are not loaded: training
/// starts afresh from these weights. Nothing changes when the load fails.
template <class T>
WeightsLoadResult load_weights(Model<T>& m, const std::string& path, const WeightsLoadOptions& o = {}) {
  const io::SafetensorsFile f = io::read_safetensors(path);
  WeightsLoadResult r;
  r.metadata = f.metadata;
  r.ewnet_checkpoint = f.metadata.count("ewnet.architecture") > 0;
  LoadOptions lo;
  lo.load_momentum = false;
  const bool has_classifier = m.has_layer(o.classifier);
  std::vector<int> classifier_dims;
  if (has_classifier)
    for (auto& [layer, p] : m.parameters())
      if (layer == o.classifier && p->name == "weight") classifier_dims = p->dims;

  if (r.ewnet_checkpoint) {
    auto it = f.tensors.find(o.classifier + ".weight");
    if (o.skip_classifier_on_mismatch && has_classifier && it != f.tensors.end() &&
        it->second.shape != std::vector<std::int64_t>(classifier_dims.begin(), classifier_dims.end())) {
      lo.skip_layers.insert(o.classifier);
      r.classifier_loaded = false;
    }
    if (!o.set_input_normalization) lo.skip_layers.insert(m.input_layer().name());
    io::SafetensorsFile g;
    g.metadata = f.metadata;
    for (const auto& [key, t] : f.tensors) {
      if (key.size() > 9 && key.compare(key.size() - 9, 9, ".momentum") == 0) continue;
      if (lo.skip_layers.count(key.substr(0, key.rfind('.')))) continue;
      g.tensors[key] = detail::convert_tensor<T>(t, path, key);
    }
    load_checkpoint_tensors(m, g, path, lo);
    return r;
  }

  // A torchvision state_dict: rename batch norm's tensors, leave out auxiliary classifiers.
  io::SafetensorsFile g;
  g.metadata = f.metadata;
  for (const auto& [key, t] : f.tensors) {
    const size_t dot = key.rfind('.');
    EWNET_CHECK_AS(IoError, dot != std::string::npos, path, ": tensor '", key,
                   "' is not named <module>.<tensor> as a state_dict's are");
    const std::string module = key.substr(0, dot);
    std::string tensor = key.substr(dot + 1);
    if (tensor == "num_batches_tracked") continue;
    if (!m.has_layer(module)) {
      EWNET_CHECK_AS(IoError, detail::is_auxiliary(key), path, ": tensor '", key, "' names no layer '", module,
                     "' of the model (is this file for another network?)");
      r.left_out.push_back(key);
      continue;
    }
    if (m.layer(module).type() == "batch_norm") {
      if (tensor == "weight") tensor = "scale";
      if (tensor == "bias") tensor = "offset";
    }
    g.tensors[module + "." + tensor] = detail::convert_tensor<T>(t, path, key);
  }
  lo.skip_layers.insert(m.input_layer().name());
  auto it = g.tensors.find(o.classifier + ".weight");
  if (o.skip_classifier_on_mismatch && has_classifier && it != g.tensors.end() &&
      it->second.shape != std::vector<std::int64_t>(classifier_dims.begin(), classifier_dims.end())) {
    g.tensors.erase(o.classifier + ".weight");
    g.tensors.erase(o.classifier + ".bias");
    lo.skip_layers.insert(o.classifier);
    r.classifier_loaded = false;
  }
  // Check the normalisation before changing anything.
  std::vector<double> mean, stdev;
  if (o.set_input_normalization && f.metadata.count("ewnet.input_mean") && f.metadata.count("ewnet.input_std")) {
    mean = detail::parse_three(f.metadata.at("ewnet.input_mean"), path, "ewnet.input_mean");
    stdev = detail::parse_three(f.metadata.at("ewnet.input_std"), path, "ewnet.input_std");
  }
  load_checkpoint_tensors(m, g, path, lo);
  if (!mean.empty())
    m.input_layer().set_normalization({T(mean[0]), T(mean[1]), T(mean[2])}, {T(stdev[0]), T(stdev[1]), T(stdev[2])});
  return r;
}

}  // namespace ewnet
