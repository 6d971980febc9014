// ewnet/layers/registry.hpp: rebuilds a layer from its type name and config() (checkpoints store
// the architecture this way, so a saved model loads without the code that built it).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <ewnet/layers/add.hpp>
#include <ewnet/layers/batch_norm.hpp>
#include <ewnet/layers/classification.hpp>
#include <ewnet/layers/concat.hpp>
#include <ewnet/layers/conv2d.hpp>
#include <ewnet/layers/cross_channel_norm.hpp>
#include <ewnet/layers/dropout.hpp>
#include <ewnet/layers/fully_connected.hpp>
#include <ewnet/layers/input.hpp>
#include <ewnet/layers/pooling.hpp>
#include <ewnet/layers/relu.hpp>
#include <ewnet/layers/softmax.hpp>

namespace ewnet {

template <class T>
std::unique_ptr<Layer<T>> make_layer(const std::string& type, const std::string& name, const json::Value& c) {
  auto num = [&](const char* key) { return c.at(key).as_number(); };
  auto integer = [&](const char* key) { return int(c.at(key).as_int()); };
  if (type == "image_input") {
    const auto& s = c.at("size").as_array();
    EWNET_CHECK_AS(IoError, s.size() == 3, "layer '", name, "': input size needs 3 numbers");
    return std::make_unique<ImageInput<T>>(name, int(s[2].as_int()), int(s[0].as_int()), int(s[1].as_int()));
  }
  if (type == "conv2d") {
    Conv2dOptions o;
    o.filters = integer("filters");
    const auto& k = c.at("kernel").as_array();
    EWNET_CHECK_AS(IoError, k.size() == 2, "layer '", name, "': kernel needs 2 numbers");
    o.kernel_h = int(k[0].as_int());
    o.kernel_w = int(k[1].as_int());
    o.stride = integer("stride");
    o.padding = integer("padding");
    if (c.contains("padding_w")) o.padding_w = integer("padding_w");
    o.bias = c.at("bias").as_bool();
    o.init = parse_init(c.at("init").as_string());
    return std::make_unique<Conv2d<T>>(name, o);
  }
  if (type == "cross_channel_norm") {
    CrossChannelNormParams p;
    p.window = integer("window");
    p.alpha = num("alpha");
    p.beta = num("beta");
    p.k = num("k");
    return std::make_unique<CrossChannelNorm<T>>(name, p);
  }
  if (type == "batch_norm") return std::make_unique<BatchNorm<T>>(name, BatchNormParams{num("epsilon"), num("momentum")});
  if (type == "relu") return std::make_unique<Relu<T>>(name);
  if (type == "max_pool" || type == "avg_pool") {
    PoolOptions o{integer("kernel"), integer("stride"), integer("padding")};
    if (const json::Value* v = c.find("ceil_mode")) o.ceil_mode = v->as_bool();
    if (type == "max_pool") return std::make_unique<MaxPool<T>>(name, o);
    return std::make_unique<AvgPool<T>>(name, o);
  }
  if (type == "global_avg_pool") return std::make_unique<GlobalAvgPool<T>>(name);
  if (type == "adaptive_avg_pool") {
    const auto& o = c.at("output").as_array();
    EWNET_CHECK_AS(IoError, o.size() == 2, "layer '", name, "': output size needs 2 numbers");
    return std::make_unique<AdaptiveAvgPool<T>>(name, int(o[0].as_int()), int(o[1].as_int()));
  }
  if (type == "concat") return std::make_unique<Concat<T>>(name);
  if (type == "add") return std::make_unique<Add<T>>(name);
  if (type == "dropout") return std::make_unique<Dropout<T>>(name, num("probability"));
  if (type == "fully_connected")
    return std::make_unique<FullyConnected<T>>(name, integer("outputs"), parse_init(c.at("init").as_string()));
  if (type == "softmax") return std::make_unique<Softmax<T>>(name);
  if (type == "classification") {
    if (const json::Value* w = c.find("auxiliary_weight"))
      return std::make_unique<Classification<T>>(name, AuxiliaryLoss{w->as_number()});
    return std::make_unique<Classification<T>>(name);
  }
  throw IoError(str("layer '", name, "' has unknown type \"", type, "\""));
}

}  // namespace ewnet
