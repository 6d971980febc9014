// ewnet/io/onnx.hpp: exporting a model as an ONNX graph for inference (ONNX Runtime, TensorRT, ...).
//
// Written through ONNX's own protobuf schema (onnx/onnx_pb.h from Debian's libonnx-dev; link the
// CMake target ewnet::onnx, which brings onnx_proto and protobuf). Opset 13 (kOnnxOpset), IR version
// of the libonnx it is built with.
//
// The graph is the model in inference form:
//   input  "image"          float [N, 3, H, W], RGB values 0..255, resized as in training (N free)
//   output "probabilities"  float [N, classes], the softmax
//   output "logits"         float [N, classes], the softmax's input (for the energy rejection score)
// Layer by layer (every ewnet layer type):
//   image_input          Sub(mean) then Mul(1/std): the input normalisation lives in the graph
//   conv2d               Conv (pads [ph, pw, ph, pw]: Inception-v3's 1x7 and 7x1 differ per axis)
//   batch_norm           BatchNormalization with the running statistics (inference form, not
//                        folded into the convolution, so the exported weights are ewnet's own)
//   relu                 Relu
//   max_pool / avg_pool  MaxPool / AveragePool (floor output size, or ceil_mode = 1 for
//                        GoogLeNet's max pools; average counts padding: count_include_pad = 1, as
//                        ewnet does)
//   global_avg_pool      GlobalAveragePool
//   adaptive_avg_pool    AveragePool with kernel = stride = input / output where that divides
//                        evenly; other sizes have windows of unequal size, which ONNX's pooling
//                        cannot express: an error
//   cross_channel_norm   LRN(size = n, alpha, beta, bias = k). ONNX sums over channels
//                        [c - floor((n-1)/2), c + ceil((n-1)/2)], ewnet over [c - lo, c + hi] with
//                        lo = floor((n-1)/2), hi = n-1-lo = ceil((n-1)/2): the same window for odd
//                        and even n (n = 4: c-1 .. c+2), and both divide alpha by n. ONNX Runtime's
//                        CPU LRN accepts odd n only, so by default an even window is written as
//                        the same formula in elementary operators: Mul(x, x), a 1x1 Conv with the
//                        0/1 band matrix of the window, Mul(alpha/n), Add(k), Pow(-beta), Mul(x).
//                        even_lrn_as_elementary_ops = false writes LRN for every n.
//   concat               Concat(axis 1)
//   add                  Sum
//   fully_connected      Flatten, Gemm(transB) and Reshape back to [N, K, 1, 1] (ewnet's shape)
//   softmax              Softmax(axis 1)
//   dropout              removed (identity in inference)
//   classification       removed (the loss)
// Auxiliary classifiers (graph.hpp) are training-only and left out.
// Tensor names are the ewnet layer names. The model's metadata_props carry the class names
// ("ewnet.classes", a JSON array), the geometry ("ewnet.resize": squash or crop, data/resize.hpp),
// the input convention ("ewnet.input") and whatever the caller adds (ewnet-export copies a
// calibrated rejection threshold, "ewnet.rejection"); every value is UTF-8. The file is written
// atomically.
#pragma once

#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include <ewnet/data/resize.hpp>
#include <ewnet/graph.hpp>
#include <ewnet/io/files.hpp>
#include <ewnet/json.hpp>
#include <ewnet/text.hpp>
#include <ewnet/ops/cross_channel_norm.hpp>

namespace ewnet {

inline constexpr int kOnnxOpset = 13;

struct OnnxExportOptions {
  std::vector<std::string> class_names;         // empty: class_0, class_1, ...
  std::map<std::string, std::string> metadata;  // extra metadata_props entries
  std::string graph_name = "ewnet";
  // The geometry the model was trained with (its checkpoint's "ewnet.resize"), which a runtime must
  // reproduce: recorded as "ewnet.resize" and described in "ewnet.input".
  data::ResizeMode resize = data::ResizeMode::squash;
  // ONNX's LRN places an even window as ewnet does, but ONNX Runtime's CPU kernel refuses even
  // sizes; true writes even windows in elementary operators instead (see the top of this file).
  bool even_lrn_as_elementary_ops = true;
};

namespace detail {

inline onnx::AttributeProto& onnx_attr(onnx::NodeProto& n, const std::string& name) {
  onnx::AttributeProto* a = n.add_attribute();
  a->set_name(name);
  return *a;
}
inline void onnx_attr_int(onnx::NodeProto& n, const std::string& name, std::int64_t v) {
  auto& a = onnx_attr(n, name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(v);
}
inline void onnx_attr_float(onnx::NodeProto& n, const std::string& name, double v) {
  auto& a = onnx_attr(n, name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(float(v));
}
inline void onnx_attr_ints(onnx::NodeProto& n, const std::string& name, const std::vector<std::int64_t>& v) {
  auto& a = onnx_attr(n, name);
  a.set_type(onnx::AttributeProto::INTS);
  for (std::int64_t x : v) a.add_ints(x);
}

class OnnxGraphWriter {
 public:
  explicit OnnxGraphWriter(onnx::GraphProto& g) : g_(g) {}

  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& in, const std::string& out,
                        const std::string& name) {
    onnx::NodeProto* n = g_.add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const std::string& i : in) n->add_input(i);
    n->add_output(out);
    return *n;
  }
  void float_init(const std::string& name, const std::vector<std::int64_t>& dims, const std::vector<float>& v) {
    onnx::TensorProto* t = g_.add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (std::int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
  }
  void int64_init(const std::string& name, const std::vector<std::int64_t>& v) {
    onnx::TensorProto* t = g_.add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(std::int64_t(v.size()));
    for (std::int64_t x : v) t->add_int64_data(x);
  }
  void value_info(onnx::ValueInfoProto* v, const std::string& name, const std::vector<std::int64_t>& dims) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    auto* shape = tt->mutable_shape();
    for (size_t i = 0; i < dims.size(); ++i) {
      auto* d = shape->add_dim();
      if (dims[i] < 0) d->set_dim_param("batch");
      else d->set_dim_value(dims[i]);
    }
  }

 private:
  onnx::GraphProto& g_;
};

inline std::vector<std::int64_t> onnx_dims(const std::vector<int>& d) { return {d.begin(), d.end()}; }

}  // namespace detail

/// Builds the ONNX model of `model` (see the top of this file). Throws Error naming a layer that
/// has no ONNX form.
inline onnx::ModelProto to_onnx(Model<float>& model, const OnnxExportOptions& options = {}) {
  model.build();
  onnx::ModelProto m;
  m.set_ir_version(onnx::IR_VERSION);
  m.set_producer_name("ewnet");
  m.set_producer_version("0.1.0");
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  onnx::GraphProto& g = *m.mutable_graph();
  g.set_name(options.graph_name);
  detail::OnnxGraphWriter w(g);

  std::map<std::string, std::string> value;  // ewnet layer -> the ONNX value holding its output
  auto in = [&](const std::string& layer) {
    std::vector<std::string> v;
    for (const std::string& i : model.inputs_of(layer)) v.push_back(value.at(i));
    return v;
  };
  auto param = [&](Layer<float>& l, const std::string& pname) -> Param<float>& {
    for (Param<float>* p : l.params())
      if (p->name == pname) return *p;
    throw Error(str("ONNX export: layer '", l.name(), "' has no parameter '", pname, "'"));
  };
  auto state = [&](Layer<float>& l, const std::string& sname) -> StateTensor<float> {
    for (StateTensor<float> s : l.state())
      if (s.name == sname) return s;
    throw Error(str("ONNX export: layer '", l.name(), "' has no state '", sname, "'"));
  };
  auto add_param = [&](Layer<float>& l, const std::string& pname, std::vector<std::int64_t> dims = {}) {
    Param<float>& p = param(l, pname);
    const std::string name = l.name() + "." + pname;
    w.float_init(name, dims.empty() ? detail::onnx_dims(p.dims) : dims, p.value.to_vector());
    return name;
  };

  const std::string prediction = model.prediction_layer();
  EWNET_CHECK(model.layer(prediction).type() == "softmax", "ONNX export: the model's prediction layer '", prediction,
              "' is a ", model.layer(prediction).type(), ", not a softmax");
  const std::string logits_layer = model.inputs_of(prediction)[0];

  const Shape s = model.input_shape();
  for (Layer<float>* lp : model.layers()) {
    Layer<float>& l = *lp;
    const std::string& name = l.name();
    const std::string type = l.type();
    const json::Value c = l.config();
    if (model.is_auxiliary(name)) continue;  // training only
    if (type == "image_input") {
      auto& input = static_cast<ImageInput<float>&>(l);
      std::vector<float> mean = input.mean(), inv = input.stddev();
      for (float& v : inv) v = 1.0f / v;  // as the layer computes it
      w.value_info(g.add_input(), "image", {-1, s.c, s.h, s.w});
      w.float_init(name + ".mean", {1, s.c, 1, 1}, mean);
      w.float_init(name + ".inv_std", {1, s.c, 1, 1}, inv);
      w.node("Sub", {"image", name + ".mean"}, name + "/centred", name + "/sub");
      w.node("Mul", {name + "/centred", name + ".inv_std"}, name, name);
      value[name] = name;
    } else if (type == "conv2d") {
      std::vector<std::string> inputs = in(name);
      inputs.push_back(add_param(l, "weight"));
      if (c.at("bias").as_bool()) inputs.push_back(add_param(l, "bias"));
      auto& n = w.node("Conv", inputs, name, name);
      const auto& k = c.at("kernel").as_array();
      const std::int64_t pad = c.at("padding").as_int(), stride = c.at("stride").as_int();
      const json::Value* pw = c.find("padding_w");
      const std::int64_t pad_w = pw ? pw->as_int() : pad;
      detail::onnx_attr_ints(n, "kernel_shape", {k[0].as_int(), k[1].as_int()});
      detail::onnx_attr_ints(n, "strides", {stride, stride});
      detail::onnx_attr_ints(n, "pads", {pad, pad_w, pad, pad_w});
      value[name] = name;
    } else if (type == "batch_norm") {
      std::vector<std::string> inputs = in(name);
      inputs.push_back(add_param(l, "scale", {}));
      inputs.push_back(add_param(l, "offset", {}));
      for (const char* sn : {"running_mean", "running_var"}) {
        StateTensor<float> st = state(l, sn);
        w.float_init(name + "." + sn, detail::onnx_dims(st.dims), st.tensor->to_vector());
        inputs.push_back(name + "." + sn);
      }
      auto& n = w.node("BatchNormalization", inputs, name, name);
      detail::onnx_attr_float(n, "epsilon", c.at("epsilon").as_number());
      value[name] = name;
    } else if (type == "relu") {
      w.node("Relu", in(name), name, name);
      value[name] = name;
    } else if (type == "max_pool" || type == "avg_pool") {
      auto& n = w.node(type == "max_pool" ? "MaxPool" : "AveragePool", in(name), name, name);
      const std::int64_t k = c.at("kernel").as_int(), st = c.at("stride").as_int(), p = c.at("padding").as_int();
      detail::onnx_attr_ints(n, "kernel_shape", {k, k});
      detail::onnx_attr_ints(n, "strides", {st, st});
      detail::onnx_attr_ints(n, "pads", {p, p, p, p});
      if (type == "avg_pool") detail::onnx_attr_int(n, "count_include_pad", 1);
      const json::Value* ceil = c.find("ceil_mode");
      if (ceil && ceil->as_bool()) detail::onnx_attr_int(n, "ceil_mode", 1);
      value[name] = name;
    } else if (type == "global_avg_pool") {
      w.node("GlobalAveragePool", in(name), name, name);
      value[name] = name;
    } else if (type == "adaptive_avg_pool") {
      const Shape x = model.output_shape(model.inputs_of(name)[0]), y = model.output_shape(name);
      EWNET_CHECK(x.h % y.h == 0 && x.w % y.w == 0, "ONNX export: adaptive average pooling '", name, "' from ",
                  x.h, "x", x.w, " to ", y.h, "x", y.w, " has windows of unequal size, which ONNX's pooling cannot "
                  "express (export at an image size where the sides divide evenly)");
      auto& n = w.node("AveragePool", in(name), name, name);
      detail::onnx_attr_ints(n, "kernel_shape", {x.h / y.h, x.w / y.w});
      detail::onnx_attr_ints(n, "strides", {x.h / y.h, x.w / y.w});
      value[name] = name;
    } else if (type == "cross_channel_norm") {
      const int n_window = int(c.at("window").as_int());
      const double alpha = c.at("alpha").as_number(), beta = c.at("beta").as_number(), k = c.at("k").as_number();
      if (n_window % 2 == 1 || !options.even_lrn_as_elementary_ops) {
        auto& n = w.node("LRN", in(name), name, name);
        detail::onnx_attr_int(n, "size", n_window);
        detail::onnx_attr_float(n, "alpha", alpha);
        detail::onnx_attr_float(n, "beta", beta);
        detail::onnx_attr_float(n, "bias", k);
      } else {
        // y = x * (k + alpha/n * B x^2)^(-beta), B the [C, C] 0/1 band matrix of the window, as a
        // 1x1 convolution: the same formula, in operators every runtime implements.
        const std::string x = in(name).at(0);
        const int channels = model.output_shape(model.inputs_of(name).at(0)).c;
        const CrossChannelNormParams geometry{n_window, alpha, beta, k};
        std::vector<float> band(size_t(channels) * size_t(channels), 0.f);
        for (int o = 0; o < channels; ++o)
          for (int j = std::max(0, o - geometry.before()); j <= std::min(channels - 1, o + geometry.after()); ++j)
            band[size_t(o) * size_t(channels) + size_t(j)] = 1.f;
        w.float_init(name + ".window", {channels, channels, 1, 1}, band);
        w.float_init(name + ".alpha_over_n", {}, {float(alpha / n_window)});
        w.float_init(name + ".k", {}, {float(k)});
        w.float_init(name + ".minus_beta", {}, {float(-beta)});
        w.node("Mul", {x, x}, name + "/square", name + "/square");
        auto& conv = w.node("Conv", {name + "/square", name + ".window"}, name + "/window_sum", name + "/window_sum");
        detail::onnx_attr_ints(conv, "kernel_shape", {1, 1});
        w.node("Mul", {name + "/window_sum", name + ".alpha_over_n"}, name + "/scaled", name + "/scale");
        w.node("Add", {name + "/scaled", name + ".k"}, name + "/s", name + "/add_k");
        w.node("Pow", {name + "/s", name + ".minus_beta"}, name + "/factor", name + "/pow");
        w.node("Mul", {x, name + "/factor"}, name, name);
      }
      value[name] = name;
    } else if (type == "concat") {
      auto& n = w.node("Concat", in(name), name, name);
      detail::onnx_attr_int(n, "axis", 1);
      value[name] = name;
    } else if (type == "add") {
      w.node("Sum", in(name), name, name);
      value[name] = name;
    } else if (type == "fully_connected") {
      w.node("Flatten", in(name), name + "/flat", name + "/flatten");
      const std::string wname = add_param(l, "weight", {});
      Param<float>& b = param(l, "bias");
      w.float_init(name + ".bias", {std::int64_t(b.count())}, b.value.to_vector());
      auto& n = w.node("Gemm", {name + "/flat", wname, name + ".bias"}, name + "/2d", name + "/gemm");
      detail::onnx_attr_int(n, "transB", 1);
      w.int64_init(name + "/shape", {0, -1, 1, 1});
      w.node("Reshape", {name + "/2d", name + "/shape"}, name, name + "/reshape");
      value[name] = name;
    } else if (type == "softmax") {
      auto& n = w.node("Softmax", in(name), name, name);
      detail::onnx_attr_int(n, "axis", 1);
      value[name] = name;
    } else if (type == "dropout") {
      value[name] = in(name).at(0);
    } else if (type == "classification") {
      continue;
    } else {
      throw Error(str("ONNX export: layer '", name, "' of type ", type, " has no ONNX form"));
    }
  }

  const int k = model.classes();
  w.node("Flatten", {value.at(prediction)}, "probabilities", "probabilities");
  w.node("Flatten", {value.at(logits_layer)}, "logits", "logits");
  w.value_info(g.add_output(), "probabilities", {-1, k});
  w.value_info(g.add_output(), "logits", {-1, k});

  std::vector<std::string> names = options.class_names;
  EWNET_CHECK(names.empty() || int(names.size()) == k, "ONNX export: ", names.size(), " class names for ", k,
              " classes");
  if (names.empty())
    for (int i = 0; i < k; ++i) names.push_back("class_" + std::to_string(i));
  json::Value classes = json::Value::array();
  for (const std::string& n : names) classes.push_back(n);
  std::map<std::string, std::string> meta = options.metadata;
  meta["ewnet.classes"] = classes.dump();
  meta[data::kResizeMetadataKey] = data::resize_mode_name(options.resize);
  meta["ewnet.input"] = str("image: float [N, 3, ", s.h, ", ", s.w, "], RGB 0..255 planar, ",
                            data::resize_mode_description(options.resize, s.h), "; normalised inside the graph");
  // ONNX's strings are UTF-8 (a runtime's protobuf may refuse others): names of any bytes are
  // transcoded as everywhere else (ewnet/text.hpp).
  for (auto& [key, v] : meta) v = text::to_utf8(v);
  for (const auto& [key, v] : meta) {
    auto* p = m.add_metadata_props();
    p->set_key(key);
    p->set_value(v);
  }
  m.set_doc_string(str("ewnet model, ", k, " classes, input ", s.h, "x", s.w, "x3, opset ", kOnnxOpset));
  return m;
}

/// Writes `model` as an ONNX file (see to_onnx), as every output is written
/// (io::write_file_atomically: a kill or a full disk leaves the previous file). Errors name the path.
inline void export_onnx(Model<float>& model, const std::string& path, const OnnxExportOptions& options = {}) {
  const onnx::ModelProto m = to_onnx(model, options);
  std::string bytes;
  EWNET_CHECK_AS(IoError, m.SerializeToString(&bytes), path, ": cannot serialise the ONNX model");
  io::write_file_atomically(path, bytes);
}

}  // namespace ewnet
