// ewnet/layers/relu.hpp: rectified linear unit, y = max(x, 0).
#pragma once

#include <ewnet/layers/layer.hpp>
#include <ewnet/ops/activation.hpp>

namespace ewnet {

template <class T>
class Relu : public Layer<T> {
 public:
  explicit Relu(std::string name) : Layer<T>(std::move(name)) {}
  std::string type() const override { return "relu"; }
  std::string describe() const override { return "ReLU"; }
  Shape setup(const std::vector<Shape>& in, Device) override { return in[0]; }
  EngineLayout engine_layout(const std::vector<Shape>&, int) const override { return EngineLayout::follows_input; }
  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext&) override {
    relu_forward(*x[0], y);
  }
  void backward(const BackwardArgs<T>& a) override {
    if (a.dx[0]) relu_backward(*a.y, *a.dy, *a.dx[0], a.dx_mode[0]);
  }
};

}  // namespace ewnet
