// ewnet/layers/fully_connected.hpp: fully connected layer, y = x W^T + b (ops/fully_connected.hpp).
#pragma once

#include <ewnet/layers/init.hpp>
#include <ewnet/layers/layer.hpp>
#include <ewnet/ops/fully_connected.hpp>

namespace ewnet {

template <class T>
class FullyConnected : public Layer<T> {
 public:
  FullyConnected(std::string name, int outputs, Init init = Init::glorot)
      : Layer<T>(std::move(name)), outputs_(outputs), init_(init) {
    EWNET_CHECK(outputs > 0, "fully connected '", this->name(), "': needs at least one output, got ", outputs);
    weight_.name = "weight";
    bias_.name = "bias";
    bias_.role = ParamRole::bias;
    bias_.l2_factor = 0;
  }
  std::string type() const override { return "fully_connected"; }
  std::string describe() const override { return str("fully connected, ", outputs_, " outputs"); }
  int outputs() const { return outputs_; }
  void set_precision(Precision p) override { cache_.bf16 = p == Precision::bf16; }
  EngineLayout engine_layout(const std::vector<Shape>&, int) const override { return EngineLayout::reads_any; }

  Shape setup(const std::vector<Shape>& in, Device device) override {
    const int D = int(in[0].sample_size());
    if (weight_.value.n() != outputs_ || size_t(weight_.value.c()) != size_t(D)) {
      weight_.allocate({outputs_, D, 1, 1}, {outputs_, D}, device);
      bias_.allocate({1, outputs_, 1, 1}, {outputs_}, device);
    }
    return {1, outputs_, 1, 1};
  }
  void initialize(Random& rng) override {
    initialize_weights(weight_.value, init_, double(weight_.value.c()), double(outputs_), rng);
    bias_.value.zero();
  }
  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext&) override {
    fully_connected_forward(*x[0], weight_.value, &bias_.value, y, engine_cache());
  }
  void backward(const BackwardArgs<T>& a) override {
    if (a.dx[0]) fully_connected_backward_data(*a.dy, weight_.value, *a.dx[0], a.dx_mode[0], engine_cache());
    fully_connected_backward_weights(*a.x[0], *a.dy, weight_.trainable() ? &weight_.grad : nullptr,
                                     bias_.trainable() ? &bias_.grad : nullptr, engine_cache());
  }
  std::vector<Param<T>*> params() override { return {&weight_, &bias_}; }
  Param<T>& weight() { return weight_; }
  Param<T>& bias() { return bias_; }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c["outputs"] = outputs_;
    c["init"] = init_name(init_);
    return c;
  }

 private:
  /// The CPU engine's cache, told the weights' current version.
  onednn::LayerCache* engine_cache() {
    cache_.weights_version = weight_.version;
    return &cache_;
  }

  int outputs_;
  Init init_;
  Param<T> weight_, bias_;
  onednn::LayerCache cache_;
};

}  // namespace ewnet
