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
// (x - 127.5) / 127.5. A file that records none (a state_dict converted by an older converter, or
// by another tool) into one of torchvision's networks gets ImageNet's, the convention every
// torchvision classification network is trained under: the normalisation of a known architecture
// comes with it whatever the file's origin. WeightsLoadResult::normalization says where it came
// from and normalization_sentence() says it in words, for every program that loads weights.
//
// The transfer case: with skip_classifier_on_mismatch, a file whose "fc" has another number of
// classes loads everything but fc and the auxiliary classifiers' last layers (aux1.fc2, aux2.fc2,
// AuxLogits.fc), which keep their fresh weights (result.classifier_loaded false).
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
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

/// Where the input normalisation of a model loaded by load_weights came from.
enum class NormalizationSource {
  none,                // not set (set_input_normalization off, or a file for an unknown network)
  checkpoint,          // an ewnet checkpoint's input layer
  file,                // the file's metadata (ewnet.input_mean, ewnet.input_std)
  torchvision_default  // ImageNet's, for a torchvision network whose file records none
};

/// ImageNet's mean and standard deviation on ewnet's 0..255 scale (torchvision's 0.485, 0.456,
/// 0.406 and 0.229, 0.224, 0.225 times 255).
inline const std::vector<double>& imagenet_mean() {
  static const std::vector<double> v{0.485 * 255, 0.456 * 255, 0.406 * 255};
  return v;
}
inline const std::vector<double>& imagenet_std() {
  static const std::vector<double> v{0.229 * 255, 0.224 * 255, 0.225 * 255};
  return v;
}

struct WeightsLoadResult {
  bool ewnet_checkpoint = false;       // the file was written by ewnet (save_checkpoint)
  NormalizationSource normalization = NormalizationSource::none;
  std::string network;                 // the torchvision network the model is ("" when none of them)
  /// Whether the model's input normalisation was set by the load (a caller that would otherwise
  /// normalise on its training split must not).
  bool normalization_set() const { return normalization != NormalizationSource::none; }
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

/// Which of torchvision's networks (models/: "resnet18", "googlenet", "inception-v3") `m` is, by a
/// layer only that network has; "" for any other (the paper's model).
template <class T>
std::string torchvision_network(Model<T>& m) {
  if (m.has_layer("layer4.0.conv1") && m.has_layer("fc")) return "resnet18";
  if (m.has_layer("inception5b.branch1.conv")) return "googlenet";
  if (m.has_layer("Mixed_7c.branch1x1.conv")) return "inception-v3";
  return "";
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
    if (o.set_input_normalization) r.normalization = NormalizationSource::checkpoint;
    r.network = detail::torchvision_network(m);
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
  r.network = detail::torchvision_network(m);
  if (o.set_input_normalization && f.metadata.count("ewnet.input_mean") && f.metadata.count("ewnet.input_std")) {
    mean = detail::parse_three(f.metadata.at("ewnet.input_mean"), path, "ewnet.input_mean");
    stdev = detail::parse_three(f.metadata.at("ewnet.input_std"), path, "ewnet.input_std");
    for (double x : stdev)
      EWNET_CHECK_AS(IoError, std::isfinite(x) && x > 0, path, ": metadata 'ewnet.input_std' holds ", x,
                     " (deviations must be positive)");
    r.normalization = NormalizationSource::file;
  } else if (o.set_input_normalization && !r.network.empty()) {
    mean = imagenet_mean();
    stdev = imagenet_std();
    r.normalization = NormalizationSource::torchvision_default;
  }
  load_checkpoint_tensors(m, g, path, lo);
  if (!mean.empty())
    m.input_layer().set_normalization({T(mean[0]), T(mean[1]), T(mean[2])}, {T(stdev[0]), T(stdev[1]), T(stdev[2])});
  return r;
}

/// The square side the weights in a file were made for, from its metadata (`path` names it in
/// errors): what tools/torch_to_safetensors.py records ("ewnet.image_size": 299 for Inception-v3's,
/// 224 for the others'), or an ewnet checkpoint's input layer (its architecture); 0 when the file
/// says neither.
inline int weights_image_size(const std::map<std::string, std::string>& metadata, const std::string& path) {
  long long size = 0;
  if (const auto it = metadata.find("ewnet.image_size"); it != metadata.end()) {
    char* end = nullptr;
    size = std::strtoll(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end) size = -1;
  } else if (const auto it = metadata.find("ewnet.architecture"); it != metadata.end()) {
    try {
      const json::Value arch = json::parse(it->second, "JSON");
      for (const json::Value& layer : arch.at("layers").as_array())
        if (layer.at("type").as_string() == "image_input")
          size = layer.at("config").at("size").as_array().at(0).as_int();
    } catch (const std::exception& e) {
      throw IoError(str(path, ": metadata 'ewnet.architecture': ", e.what()));
    }
  }
  const auto recorded = metadata.find("ewnet.image_size");
  EWNET_CHECK_AS(IoError, size >= 0 && size <= detail::kMaxInputSide, path, ": the image size it records (",
                 recorded != metadata.end() ? "'" + recorded->second + "'" : std::to_string(size),
                 ") is not a side from 1 to ", detail::kMaxInputSide);
  return int(size);
}

/// A model's input normalisation in words: "ImageNet's (mean 123.7, 116.3, 103.5; deviation 58.4,
/// 57.1, 57.4 on 0..255)", "ImageNet's " only when it is.
template <class T>
std::string normalization_text(Model<T>& m) {
  const std::vector<T> mean = m.input_layer().mean(), sd = m.input_layer().stddev();
  if (mean.size() != 3 || sd.size() != 3) return "none (the network sees 0..255 pixels)";
  auto three = [](const std::vector<T>& v) {
    char b[96];
    std::snprintf(b, sizeof b, "%.1f, %.1f, %.1f", double(v.at(0)), double(v.at(1)), double(v.at(2)));
    return std::string(b);
  };
  const bool imagenet = std::fabs(double(mean.at(0)) - imagenet_mean()[0]) < 0.05 &&
                        std::fabs(double(sd.at(0)) - imagenet_std()[0]) < 0.05;
  return str(imagenet ? "ImageNet's " : "", "(mean ", three(mean), "; deviation ", three(sd), " on 0..255)");
}

/// One sentence saying which input normalisation the model now has and where it came from, for
/// every program that loads weights to print ("input normalisation: ImageNet's (mean 123.7, 116.3,
/// 103.5; deviation 58.4, 57.1, 57.4 on 0..255), the torchvision convention for resnet18: the file
/// records none").
template <class T>
std::string normalization_sentence(const WeightsLoadResult& r, Model<T>& m, const std::string& path) {
  if (r.normalization == NormalizationSource::none) return "input normalisation: not set by " + path;
  const std::string s = "input normalisation: " + normalization_text(m);
  switch (r.normalization) {
    case NormalizationSource::checkpoint: return s + ", from the ewnet checkpoint " + path;
    case NormalizationSource::file: return s + ", as " + path + " records it";
    case NormalizationSource::torchvision_default:
      return s + ", the torchvision convention for " + r.network + ": " + path + " records none";
    case NormalizationSource::none: break;
  }
  return s;
}

}  // namespace ewnet
