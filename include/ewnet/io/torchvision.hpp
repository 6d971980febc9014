// ewnet/io/torchvision.hpp: loading weights written from PyTorch (tools/torch_to_safetensors.py)
// into the networks of models/ (GoogLeNet, Inception-v3, ResNet-18, named as torchvision names
// them), and, through the same call, ewnet's own checkpoints.
//
// A torchvision state_dict key is "<module>.<tensor>"; models/ names each ewnet layer after its
// torchvision module, so the key names the layer. The only renaming is batch norm's:
//   <bn>.weight -> <bn>.scale,  <bn>.bias -> <bn>.offset   (running_mean, running_var as they are)
// and <bn>.num_batches_tracked is dropped (ewnet's running averages use a fixed momentum, as
// torch's do unless momentum=None). F32 and F64 tensors are converted to the model's element type.
//
// Auxiliary classifiers (AuxLogits.*, aux1.*, aux2.*): loaded when both the model and the file have
// them. A file's auxiliary tensors are reported and left out when the model was built without them;
// a model's auxiliary classifiers keep their fresh weights when the file has none of their tensors
// (torchvision's pretrained GoogLeNet and Inception-v3 are saved without them by default, and
// torchvision itself says their auxiliary heads are not pretrained). Any other key that names no
// layer, and any other missing tensor, is an error.
//
// The input layer's normalisation is not in a state_dict: the converter writes what the weights
// expect into the metadata ("ewnet.input_mean", "ewnet.input_std": three numbers each, on ewnet's
// 0..255 pixel scale), and the loader sets it when present. torchvision's pretrained weights
// expect ImageNet's normalisation; GoogLeNet's and Inception-v3's (transform_input=True) expect
// (x - 127.5) / 127.5.
//
// The transfer case: with skip_classifier_on_mismatch, a file whose "fc" has another number of
// classes loads everything but fc and the auxiliary classifiers' last layers (aux1.fc2, aux2.fc2,
// AuxLogits.fc), which keep their fresh weights (result.classifier_loaded false).
#pragma once

#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <ewnet/io/checkpoint.hpp>
#include <ewnet/models/build.hpp>

namespace ewnet {

struct WeightsLoadOptions {
  bool skip_classifier_on_mismatch = false;  // load all but the classifier when its shape differs
  std::string classifier = "fc";
  bool set_input_normalization = true;       // from the file's metadata (torchvision) or state (ewnet)
};

struct WeightsLoadResult {
  bool ewnet_checkpoint = false;       // the file was written by ewnet (save_checkpoint)
  bool classifier_loaded = true;       // false: the classifier kept its fresh weights (class counts differ)
  std::vector<std::string> left_out;   // keys of auxiliary classifiers the model was built without
  std::vector<std::string> fresh;      // the model's auxiliary layers the file had no tensors for
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

/// Leaves out of `g` the tensors of classifiers whose shape differs from the model's (the transfer
/// case), and, when `g` has no tensor of any of the model's auxiliary layers, marks those to keep
/// their fresh weights.
template <class T>
void plan_partial_load(Model<T>& m, io::SafetensorsFile& g, const WeightsLoadOptions& o, LoadOptions& lo,
                       WeightsLoadResult& r) {
  if (o.skip_classifier_on_mismatch) {
    for (const std::string& c : classifier_layers(m, o.classifier)) {
      auto it = g.tensors.find(c + ".weight");
      if (it == g.tensors.end()) continue;
      std::vector<int> dims;
      for (Param<T>* p : m.layer(c).params())
        if (p->name == "weight") dims = p->dims;
      if (it->second.shape == std::vector<std::int64_t>(dims.begin(), dims.end())) continue;
      g.tensors.erase(c + ".weight");
      g.tensors.erase(c + ".bias");
      lo.skip_layers.insert(c);
      r.classifier_loaded = false;
    }
  }
  std::vector<std::string> aux_layers;
  bool file_has_aux = false;
  for (Layer<T>* l : m.layers()) {
    if (!m.is_auxiliary(l->name()) || (l->params().empty() && l->state().empty())) continue;
    aux_layers.push_back(l->name());
    for (const auto& [key, t] : g.tensors) file_has_aux = file_has_aux || key.rfind(l->name() + ".", 0) == 0;
  }
  if (file_has_aux) return;
  for (const std::string& a : aux_layers) {
    lo.skip_layers.insert(a);
    r.fresh.push_back(a);
  }
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
  if (r.ewnet_checkpoint) {
    if (!o.set_input_normalization) lo.skip_layers.insert(m.input_layer().name());
    io::SafetensorsFile g;
    g.metadata = f.metadata;
    for (const auto& [key, t] : f.tensors) {
      if (key.size() > 9 && key.compare(key.size() - 9, 9, ".momentum") == 0) continue;
      const size_t dot = key.rfind('.');
      if (dot != std::string::npos && !m.has_layer(key.substr(0, dot)) && detail::is_auxiliary(key)) {
        r.left_out.push_back(key);
        continue;
      }
      g.tensors[key] = detail::convert_tensor<T>(t, path, key);
    }
    detail::plan_partial_load(m, g, o, lo, r);
    for (auto it = g.tensors.begin(); it != g.tensors.end();)
      it = lo.skip_layers.count(it->first.substr(0, it->first.rfind('.'))) ? g.tensors.erase(it) : std::next(it);
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
  detail::plan_partial_load(m, g, o, lo, r);
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
