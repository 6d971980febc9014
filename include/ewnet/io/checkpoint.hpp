// ewnet/io/checkpoint.hpp: saving and loading models as safetensors files.
//
// A checkpoint holds, by layer name:
//   "<layer>.<param>"           parameters (conv weight [K, C, kh, kw], bias [K], linear weight [K, D], ...)
//   "<layer>.<state>"           running statistics and input normalisation
//   "<layer>.<param>.momentum"  the solver's velocity (training checkpoints, for exact resumption)
// and in its metadata the architecture ("ewnet.architecture": layers, types, configs, inputs and
// learning-rate factors, as JSON), so model_from_checkpoint() rebuilds the model with no code,
// plus any caller-supplied entries (epoch, schedule position, class names...). PyTorch reads it
// with safetensors.torch.load_file.
//
// Loading validates every tensor (present, element type, shape, every value finite) before
// changing anything, so a failed load leaves the model as it was. skip_layers leaves chosen layers
// untouched: loading all but the classifier is how transfer learning starts.
#pragma once

#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <ewnet/graph.hpp>
#include <ewnet/io/param_budget.hpp>
#include <ewnet/io/safetensors.hpp>
#include <ewnet/layers/registry.hpp>

namespace ewnet {

struct SaveOptions {
  bool include_momentum = true;                   // needed to resume training exactly
  std::map<std::string, std::string> metadata;    // extra entries, stored as given
};

struct LoadOptions {
  std::set<std::string> skip_layers;  // layers left as they are (neither their tensors nor a mismatch matter)
  bool load_momentum = true;          // restore velocities when the file has them
  bool ignore_unused = false;         // accept tensors in the file that no layer of the model wants
};

namespace detail {
template <class D>
std::string dims_text(const std::vector<D>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s;
}

template <class T>
io::SafeTensor to_safetensor(const Tensor<T>& t, const std::vector<int>& dims) {
  io::SafeTensor s;
  s.dtype = io::dtype_of<T>();
  for (int d : dims) s.shape.push_back(d);
  const std::vector<T> v = t.to_vector();
  s.bytes.resize(v.size() * sizeof(T));
  std::memcpy(s.bytes.data(), v.data(), s.bytes.size());
  return s;
}

template <class T>
json::Value architecture(Model<T>& model) {
  json::Value layers = json::Value::array();
  for (Layer<T>* l : model.layers()) {
    json::Value e = json::Value::object();
    e["name"] = l->name();
    e["type"] = l->type();
    e["config"] = l->config();
    json::Value inputs = json::Value::array();
    for (const std::string& in : model.inputs_of(l->name())) inputs.push_back(in);
    e["inputs"] = inputs;
    auto ps = l->params();
    if (!ps.empty()) {
      json::Value f = json::Value::object();
      for (Param<T>* p : ps) f[p->name] = p->learn_rate_factor;
      e["learn_rate_factors"] = f;
    }
    layers.push_back(e);
  }
  json::Value a = json::Value::object();
  a["layers"] = layers;
  return a;
}

/// Throws naming the file, the tensor and the first bad element when a tensor holds NaN or Inf:
/// a model trained into divergence must not load as if it were usable.
template <class T>
void check_finite(const io::SafeTensor& s, const std::string& path, const std::string& key) {
  const size_t n = s.bytes.size() / sizeof(T);
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, s.bytes.data() + i * sizeof(T), sizeof(T));
    EWNET_CHECK_AS(IoError, std::isfinite(v), path, ": tensor '", key, "' holds ", v, " at element ", i,
                   " (a diverged or corrupt checkpoint)");
  }
}

template <class T>
struct PendingCopy {
  Tensor<T>* target;
  const io::SafeTensor* source;
};
}  // namespace detail

/// Saves parameters, state, (optionally) momentum and the architecture to `path`, atomically.
template <class T>
void save_checkpoint(Model<T>& model, const std::string& path, const SaveOptions& options = {}) {
  io::SafetensorsFile f;
  for (auto& [layer, p] : model.parameters()) {
    const std::string key = layer + "." + p->name;
    f.tensors[key] = detail::to_safetensor(p->value, p->dims);
    if (options.include_momentum) f.tensors[key + ".momentum"] = detail::to_safetensor(p->velocity, p->dims);
  }
  for (auto& [layer, s] : model.state_tensors()) f.tensors[layer + "." + s.name] = detail::to_safetensor(*s.tensor, s.dims);
  f.metadata = options.metadata;
  f.metadata["format"] = "pt";
  f.metadata["ewnet.architecture"] = detail::architecture(model).dump();
  f.metadata["ewnet.iteration"] = std::to_string(model.iteration());
  io::write_safetensors(path, f);
}

/// Loads the tensors of `f` (read from `path`, which errors name) into `model` by layer name;
/// returns the file's metadata. load_checkpoint() reads the file first; io/torchvision.hpp renames
/// a torchvision file's keys, then loads through this.
template <class T>
std::map<std::string, std::string> load_checkpoint_tensors(Model<T>& model, const io::SafetensorsFile& f,
                                                           const std::string& path, const LoadOptions& options = {}) {
  std::vector<detail::PendingCopy<T>> copies;
  std::set<std::string> used;
  auto want = [&](const std::string& key, Tensor<T>* target, const std::vector<int>& dims, bool required) {
    auto it = f.tensors.find(key);
    if (it == f.tensors.end()) {
      EWNET_CHECK_AS(IoError, !required, path, ": tensor '", key, "' is missing (the model has it with shape [",
                     detail::dims_text(dims), "])");
      return;
    }
    const io::SafeTensor& s = it->second;
    EWNET_CHECK_AS(IoError, s.dtype == io::dtype_of<T>(), path, ": tensor '", key, "' is ", s.dtype,
                   " but the model holds ", io::dtype_of<T>());
    std::vector<std::int64_t> expect(dims.begin(), dims.end());
    EWNET_CHECK_AS(IoError, s.shape == expect, path, ": tensor '", key, "' has shape [", detail::dims_text(s.shape),
                   "] but the model's is [", detail::dims_text(dims), "]");
    detail::check_finite<T>(s, path, key);
    copies.push_back({target, &s});
    used.insert(key);
  };
  for (auto& [layer, p] : model.parameters()) {
    if (options.skip_layers.count(layer)) continue;
    want(layer + "." + p->name, &p->value, p->dims, true);
    if (options.load_momentum) want(layer + "." + p->name + ".momentum", &p->velocity, p->dims, false);
  }
  for (auto& [layer, s] : model.state_tensors()) {
    if (options.skip_layers.count(layer)) continue;
    want(layer + "." + s.name, s.tensor, s.dims, true);
  }
  if (!options.ignore_unused) {
    for (const auto& [key, t] : f.tensors) {
      if (used.count(key)) continue;
      const bool momentum = key.size() > 9 && key.compare(key.size() - 9, 9, ".momentum") == 0;
      bool skipped = false;  // layer names may hold dots themselves (torchvision's "layer1.0.conv1")
      for (const std::string& s : options.skip_layers) skipped = skipped || key.rfind(s + ".", 0) == 0;
      if (skipped || (momentum && !options.load_momentum)) continue;
      throw IoError(str(path, ": tensor '", key, "' matches no tensor of the model (wrong architecture? use ",
                        "skip_layers or ignore_unused to load part of a checkpoint)"));
    }
  }
  // Everything checked: now copy.
  for (const auto& c : copies) {
    std::vector<T> v(c.source->elements());
    std::memcpy(v.data(), c.source->bytes.data(), c.source->bytes.size());
    c.target->copy_from(Tensor<T>::from_vector(c.target->shape(), v));
  }
  for (auto& [layer, p] : model.parameters()) p->changed();
  if (!options.skip_layers.count(model.input_layer().name())) model.input_layer().refresh_derived();
  auto it = f.metadata.find("ewnet.iteration");
  if (it != f.metadata.end() && options.load_momentum) model.set_iteration(std::stoull(it->second));
  return f.metadata;
}

/// Loads tensors from `path` into `model` by layer name; returns the file's metadata.
template <class T>
std::map<std::string, std::string> load_checkpoint(Model<T>& model, const std::string& path,
                                                   const LoadOptions& options = {}) {
  return load_checkpoint_tensors(model, io::read_safetensors(path), path, options);
}

/// Reads only the metadata of a checkpoint.
inline std::map<std::string, std::string> read_checkpoint_metadata(const std::string& path) {
  return io::read_safetensors(path).metadata;
}

namespace detail {
/// Bounds on an architecture read from a file, checked before anything is built.
inline constexpr size_t kMaxArchitectureLayers = 10000;
inline constexpr double kMaxConfigNumber = 65536;  // filters, outputs, kernel, stride, input side...
inline constexpr int kMaxInputSide = 4096;         // ewnet's inputs are resized images

inline void check_config_numbers(const json::Value& v, const std::string& where) {
  if (v.is_number()) {
    EWNET_CHECK_AS(IoError, std::isfinite(v.as_number()) && std::fabs(v.as_number()) <= kMaxConfigNumber, where,
                   ": ", v.dump(), " is out of range (at most ", kMaxConfigNumber, " in magnitude)");
  } else if (v.is_array()) {
    for (const json::Value& e : v.as_array()) check_config_numbers(e, where);
  } else if (v.is_object()) {
    for (const auto& [k, e] : v.as_object()) check_config_numbers(e, where + "." + k);
  }
}

/// Checks an architecture's layer list before a model is built from it: the count, every name,
/// type and input a string, every number in a config finite and within kMaxConfigNumber, the
/// input within kMaxInputSide.
inline void check_architecture(const json::Value& arch, const std::string& path) {
  try {
    const auto& layers = arch.at("layers").as_array();
    EWNET_CHECK_AS(IoError, !layers.empty() && layers.size() <= kMaxArchitectureLayers, layers.size(),
                   " layers (expected 1 to ", kMaxArchitectureLayers, ")");
    for (const json::Value& e : layers) {
      const std::string& name = e.at("name").as_string();
      const std::string& type = e.at("type").as_string();
      for (const json::Value& in : e.at("inputs").as_array()) in.as_string();
      check_config_numbers(e.at("config"), "layer '" + name + "' config");
      if (type == "image_input") {
        for (const json::Value& d : e.at("config").at("size").as_array())
          EWNET_CHECK_AS(IoError, d.as_number() >= 1 && d.as_number() <= kMaxInputSide, "layer '", name,
                         "': input size ", d.dump(), " is out of range (1 to ", kMaxInputSide, ")");
      }
      if (const json::Value* f = e.find("learn_rate_factors"))
        for (const auto& [k, v] : f->as_object())
          EWNET_CHECK_AS(IoError, std::isfinite(v.as_number()), "layer '", name, "': learning-rate factor ", k,
                         " is not finite");
    }
  } catch (const Error& err) {
    throw IoError(str(path, ": architecture: ", err.what()));
  }
}
}  // namespace detail

/// Builds (without loading any tensor) the model an architecture describes, after
/// detail::check_architecture; building may allocate at most `max_parameter_values` parameter
/// values (ParamBudget). `source` names the file in errors, which are all IoError.
template <class T>
Model<T> model_from_architecture(const json::Value& arch, const std::string& source,
                                 std::uint64_t max_parameter_values, std::uint64_t seed = 0) {
  try {
    detail::check_architecture(arch, source);
    Model<T> model(seed);
    {
      ParamBudget budget(source, max_parameter_values);
      for (const json::Value& e : arch.at("layers").as_array()) {
        const std::string name = e.at("name").as_string();
        std::vector<std::string> inputs;
        for (const json::Value& in : e.at("inputs").as_array()) inputs.push_back(in.as_string());
        model.add(make_layer<T>(e.at("type").as_string(), name, e.at("config")), inputs);
      }
      model.build();
    }
    for (const json::Value& e : arch.at("layers").as_array()) {
      if (const json::Value* f = e.find("learn_rate_factors")) {
        Layer<T>& l = model.layer(e.at("name").as_string());
        for (Param<T>* p : l.params())
          if (const json::Value* v = f->find(p->name)) p->learn_rate_factor = v->as_number();
      }
    }
    return model;
  } catch (const std::bad_alloc&) {
    throw IoError(str(source, ": out of memory while building the model from its architecture"));
  } catch (const IoError&) {
    throw;
  } catch (const Error& err) {
    throw IoError(str(source, ": architecture: ", err.what()));
  }
}

/// A checkpoint file read once. Everything a program takes from a checkpoint (the model, the class
/// names, the calibration, the geometry) must come from one reading: a file replaced by rename
/// between two reads (a training run saving best.safetensors) would otherwise give one file's
/// weights under another's class names.
struct CheckpointFile {
  std::string path;
  io::SafetensorsFile contents;
  const std::map<std::string, std::string>& metadata() const { return contents.metadata; }
  /// The metadata entry `key`, or nullptr.
  const std::string* find(const std::string& key) const {
    const auto it = contents.metadata.find(key);
    return it == contents.metadata.end() ? nullptr : &it->second;
  }
};

/// Reads and validates a checkpoint file (io::read_safetensors), once.
inline CheckpointFile read_checkpoint(const std::string& path) { return {path, io::read_safetensors(path)}; }

/// Rebuilds the model a checkpoint's architecture describes and loads its tensors, all from the
/// bytes read once. The architecture is checked before anything is built, and building may
/// allocate no more parameter values than the file holds (model_from_architecture).
template <class T>
Model<T> model_from_checkpoint(const CheckpointFile& f, std::uint64_t seed = 0) {
  const std::string* text = f.find("ewnet.architecture");
  EWNET_CHECK_AS(IoError, text != nullptr, f.path, ": no ewnet.architecture in the metadata (not an ewnet checkpoint)");
  std::uint64_t held = 0;  // parameter and state values in the file, momentum aside
  for (const auto& [key, t] : f.contents.tensors) {
    const bool momentum = key.size() > 9 && key.compare(key.size() - 9, 9, ".momentum") == 0;
    if (!momentum) held += t.elements();
  }
  Model<T> model = model_from_architecture<T>(json::parse(*text, f.path + " (architecture)"), f.path, held, seed);
  load_checkpoint_tensors(model, f.contents, f.path);
  return model;
}

/// model_from_checkpoint of the file at `path`, read once.
template <class T>
Model<T> model_from_checkpoint(const std::string& path, std::uint64_t seed = 0) {
  return model_from_checkpoint<T>(read_checkpoint(path), seed);
}

}  // namespace ewnet
