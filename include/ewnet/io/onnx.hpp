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

/// ir_version, producer and opset: what a runtime reads before the graph.
inline void onnx_model_header(onnx::ModelProto& m) {
  m.set_ir_version(onnx::IR_VERSION);
  m.set_producer_name("ewnet");
  m.set_producer_version("0.1.0");
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
}

/// The graph's nodes, initializers, input and outputs, one ewnet layer at a time: one emitter per
/// layer kind, each writing the operators the table at the top of this file names.
class OnnxLayerExport {
 public:
  OnnxLayerExport(Model<float>& model, const OnnxExportOptions& options, onnx::GraphProto& g)
      : model_(model), options_(options), g_(g), w_(g), prediction_(model.prediction_layer()) {
    EWNET_CHECK(model.layer(prediction_).type() == "softmax", "ONNX export: the model's prediction layer '",
                prediction_, "' is a ", model.layer(prediction_).type(), ", not a softmax");
  }

  /// Writes `l`'s operators and records the ONNX value holding its output.
  void layer(Layer<float>& l) {
    const std::string& name = l.name();
    const std::string type = l.type();
    const json::Value c = l.config();
    if (model_.is_auxiliary(name) || type == "classification") return;  // training only; the loss
    if (type == "image_input") image_input(l);
    else if (type == "conv2d") conv(l, c);
    else if (type == "batch_norm") batch_norm(l, c);
    else if (type == "relu") one_operator(name, "Relu");
    else if (type == "max_pool" || type == "avg_pool") pool(name, type, c);
    else if (type == "global_avg_pool") one_operator(name, "GlobalAveragePool");
    else if (type == "adaptive_avg_pool") adaptive_avg_pool(name);
    else if (type == "cross_channel_norm") cross_channel_norm(name, c);
    else if (type == "concat") one_operator(name, "Concat", /*axis=*/1);
    else if (type == "add") one_operator(name, "Sum");
    else if (type == "fully_connected") fully_connected(l);
    else if (type == "softmax") one_operator(name, "Softmax", /*axis=*/1);
    else if (type == "dropout") {
      value_[name] = inputs(name).at(0);  // the identity in inference: no operator
      return;
    } else {
      throw Error(str("ONNX export: layer '", name, "' of type ", type, " has no ONNX form"));
    }
    value_[name] = name;
  }

  /// "probabilities" (the softmax) and "logits" (its input), both [N, classes].
  void outputs() {
    const int k = model_.classes();
    w_.node("Flatten", {value_.at(prediction_)}, "probabilities", "probabilities");
    w_.node("Flatten", {value_.at(model_.inputs_of(prediction_)[0])}, "logits", "logits");
    w_.value_info(g_.add_output(), "probabilities", {-1, k});
    w_.value_info(g_.add_output(), "logits", {-1, k});
  }

 private:
  std::vector<std::string> inputs(const std::string& layer) {
    std::vector<std::string> v;
    for (const std::string& i : model_.inputs_of(layer)) v.push_back(value_.at(i));
    return v;
  }
  Param<float>& param(Layer<float>& l, const std::string& pname) {
    for (Param<float>* p : l.params())
      if (p->name == pname) return *p;
    throw Error(str("ONNX export: layer '", l.name(), "' has no parameter '", pname, "'"));
  }
  StateTensor<float> state(Layer<float>& l, const std::string& sname) {
    for (StateTensor<float> s : l.state())
      if (s.name == sname) return s;
    throw Error(str("ONNX export: layer '", l.name(), "' has no state '", sname, "'"));
  }
  /// The parameter as an initializer named "<layer>.<parameter>", in its own shape.
  std::string add_param(Layer<float>& l, const std::string& pname) {
    Param<float>& p = param(l, pname);
    const std::string name = l.name() + "." + pname;
    w_.float_init(name, onnx_dims(p.dims), p.value.to_vector());
    return name;
  }

  void one_operator(const std::string& name, const std::string& op, std::int64_t axis = -1) {
    auto& n = w_.node(op, inputs(name), name, name);
    if (axis >= 0) onnx_attr_int(n, "axis", axis);
  }

  void image_input(Layer<float>& l) {
    const std::string& name = l.name();
    const Shape s = model_.input_shape();
    auto& input = static_cast<ImageInput<float>&>(l);
    std::vector<float> mean = input.mean(), inv = input.stddev();
    for (float& v : inv) v = 1.0f / v;  // as the layer computes it
    w_.value_info(g_.add_input(), "image", {-1, s.c, s.h, s.w});
    w_.float_init(name + ".mean", {1, s.c, 1, 1}, mean);
    w_.float_init(name + ".inv_std", {1, s.c, 1, 1}, inv);
    w_.node("Sub", {"image", name + ".mean"}, name + "/centred", name + "/sub");
    w_.node("Mul", {name + "/centred", name + ".inv_std"}, name, name);
  }

  void conv(Layer<float>& l, const json::Value& c) {
    const std::string& name = l.name();
    std::vector<std::string> in = inputs(name);
    in.push_back(add_param(l, "weight"));
    if (c.at("bias").as_bool()) in.push_back(add_param(l, "bias"));
    auto& n = w_.node("Conv", in, name, name);
    const auto& k = c.at("kernel").as_array();
    const std::int64_t pad = c.at("padding").as_int(), stride = c.at("stride").as_int();
    const json::Value* pw = c.find("padding_w");
    const std::int64_t pad_w = pw ? pw->as_int() : pad;
    onnx_attr_ints(n, "kernel_shape", {k[0].as_int(), k[1].as_int()});
    onnx_attr_ints(n, "strides", {stride, stride});
    onnx_attr_ints(n, "pads", {pad, pad_w, pad, pad_w});
  }

  void batch_norm(Layer<float>& l, const json::Value& c) {
    const std::string& name = l.name();
    std::vector<std::string> in = inputs(name);
    in.push_back(add_param(l, "scale"));
    in.push_back(add_param(l, "offset"));
    for (const char* sn : {"running_mean", "running_var"}) {
      StateTensor<float> st = state(l, sn);
      w_.float_init(name + "." + sn, onnx_dims(st.dims), st.tensor->to_vector());
      in.push_back(name + "." + sn);
    }
    auto& n = w_.node("BatchNormalization", in, name, name);
    onnx_attr_float(n, "epsilon", c.at("epsilon").as_number());
  }

  void pool(const std::string& name, const std::string& type, const json::Value& c) {
    auto& n = w_.node(type == "max_pool" ? "MaxPool" : "AveragePool", inputs(name), name, name);
    const std::int64_t k = c.at("kernel").as_int(), st = c.at("stride").as_int(), p = c.at("padding").as_int();
    onnx_attr_ints(n, "kernel_shape", {k, k});
    onnx_attr_ints(n, "strides", {st, st});
    onnx_attr_ints(n, "pads", {p, p, p, p});
    if (type == "avg_pool") onnx_attr_int(n, "count_include_pad", 1);
    const json::Value* ceil = c.find("ceil_mode");
    if (ceil && ceil->as_bool()) onnx_attr_int(n, "ceil_mode", 1);
  }

  void adaptive_avg_pool(const std::string& name) {
    const Shape x = model_.output_shape(model_.inputs_of(name)[0]), y = model_.output_shape(name);
    EWNET_CHECK(x.h % y.h == 0 && x.w % y.w == 0, "ONNX export: adaptive average pooling '", name, "' from ",
                x.h, "x", x.w, " to ", y.h, "x", y.w, " has windows of unequal size, which ONNX's pooling cannot "
                "express (export at an image size where the sides divide evenly)");
    auto& n = w_.node("AveragePool", inputs(name), name, name);
    onnx_attr_ints(n, "kernel_shape", {x.h / y.h, x.w / y.w});
    onnx_attr_ints(n, "strides", {x.h / y.h, x.w / y.w});
  }

  void cross_channel_norm(const std::string& name, const json::Value& c) {
    const CrossChannelNormParams p{int(c.at("window").as_int()), c.at("alpha").as_number(),
                                   c.at("beta").as_number(), c.at("k").as_number()};
    if (p.window % 2 == 1 || !options_.even_lrn_as_elementary_ops) {
      auto& n = w_.node("LRN", inputs(name), name, name);
      onnx_attr_int(n, "size", p.window);
      onnx_attr_float(n, "alpha", p.alpha);
      onnx_attr_float(n, "beta", p.beta);
      onnx_attr_float(n, "bias", p.k);
    } else {
      lrn_as_elementary_ops(name, p);
    }
  }

  // y = x * (k + alpha/n * B x^2)^(-beta), B the [C, C] 0/1 band matrix of the window, as a 1x1
  // convolution: the same formula, in operators every runtime implements.
  void lrn_as_elementary_ops(const std::string& name, const CrossChannelNormParams& p) {
    const std::string x = inputs(name).at(0);
    const int channels = model_.output_shape(model_.inputs_of(name).at(0)).c;
    std::vector<float> band(size_t(channels) * size_t(channels), 0.f);
    for (int o = 0; o < channels; ++o)
      for (int j = std::max(0, o - p.before()); j <= std::min(channels - 1, o + p.after()); ++j)
        band[size_t(o) * size_t(channels) + size_t(j)] = 1.f;
    w_.float_init(name + ".window", {channels, channels, 1, 1}, band);
    w_.float_init(name + ".alpha_over_n", {}, {float(p.alpha / p.window)});
    w_.float_init(name + ".k", {}, {float(p.k)});
    w_.float_init(name + ".minus_beta", {}, {float(-p.beta)});
    w_.node("Mul", {x, x}, name + "/square", name + "/square");
    auto& conv = w_.node("Conv", {name + "/square", name + ".window"}, name + "/window_sum", name + "/window_sum");
    onnx_attr_ints(conv, "kernel_shape", {1, 1});
    w_.node("Mul", {name + "/window_sum", name + ".alpha_over_n"}, name + "/scaled", name + "/scale");
    w_.node("Add", {name + "/scaled", name + ".k"}, name + "/s", name + "/add_k");
    w_.node("Pow", {name + "/s", name + ".minus_beta"}, name + "/factor", name + "/pow");
    w_.node("Mul", {x, name + "/factor"}, name, name);
  }

  void fully_connected(Layer<float>& l) {
    const std::string& name = l.name();
    w_.node("Flatten", inputs(name), name + "/flat", name + "/flatten");
    const std::string weight = add_param(l, "weight");
    Param<float>& b = param(l, "bias");
    w_.float_init(name + ".bias", {std::int64_t(b.count())}, b.value.to_vector());
    auto& n = w_.node("Gemm", {name + "/flat", weight, name + ".bias"}, name + "/2d", name + "/gemm");
    onnx_attr_int(n, "transB", 1);
    w_.int64_init(name + "/shape", {0, -1, 1, 1});
    w_.node("Reshape", {name + "/2d", name + "/shape"}, name, name + "/reshape");
  }

  Model<float>& model_;
  const OnnxExportOptions& options_;
  onnx::GraphProto& g_;
  OnnxGraphWriter w_;
  const std::string prediction_;
  std::map<std::string, std::string> value_;  // ewnet layer -> the ONNX value holding its output
};

/// The metadata_props: the caller's entries, the class names, the geometry and the input
/// convention, every value UTF-8.
inline std::map<std::string, std::string> onnx_metadata(Model<float>& model, const OnnxExportOptions& options) {
  const int k = model.classes();
  const Shape s = model.input_shape();
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
  return meta;
}

}  // namespace detail

/// Builds the ONNX model of `model` (see the top of this file). Throws Error naming a layer that
/// has no ONNX form.
inline onnx::ModelProto to_onnx(Model<float>& model, const OnnxExportOptions& options = {}) {
  model.build();
  onnx::ModelProto m;
  detail::onnx_model_header(m);
  onnx::GraphProto& g = *m.mutable_graph();
  g.set_name(options.graph_name);
  detail::OnnxLayerExport graph(model, options, g);
  for (Layer<float>* l : model.layers()) graph.layer(*l);
  graph.outputs();
  for (const auto& [key, v] : detail::onnx_metadata(model, options)) {
    auto* p = m.add_metadata_props();
    p->set_key(key);
    p->set_value(v);
  }
  const Shape s = model.input_shape();
  m.set_doc_string(str("ewnet model, ", model.classes(), " classes, input ", s.h, "x", s.w, "x3, opset ", kOnnxOpset));
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
