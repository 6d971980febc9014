// ewnet/layers/add.hpp: element-wise addition of two or more inputs (residual connections).
// y = sum_i x_i;  dx_i = dy.
#pragma once

#include <ewnet/layers/layer.hpp>
#include <ewnet/ops/elementwise.hpp>

namespace ewnet {

template <class T>
class Add : public Layer<T> {
 public:
  explicit Add(std::string name) : Layer<T>(std::move(name)) {}
  std::string type() const override { return "add"; }
  std::string describe() const override { return "element-wise addition"; }
  int min_inputs() const override { return 2; }
  int max_inputs() const override { return -1; }
  EngineLayout engine_layout(const std::vector<Shape>&, int) const override { return EngineLayout::follows_input; }

  Shape setup(const std::vector<Shape>& in, Device) override {
    for (size_t i = 1; i < in.size(); ++i)
      EWNET_CHECK_AS(ShapeError, in[i] == in[0], "input ", i + 1, " is ", in[i].hwc(), " but input 1 is ",
                     in[0].hwc(), ": added inputs must have equal shapes");
    return in[0];
  }
  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext&) override {
    add_forward(*x[0], *x[1], y);
    for (size_t i = 2; i < x.size(); ++i) add_forward(y, *x[i], y);
  }
  void backward(const BackwardArgs<T>& a) override {
    for (size_t i = 0; i < a.dx.size(); ++i)
      if (a.dx[i]) copy_gradient(*a.dy, *a.dx[i], a.dx_mode[i]);
  }
};

}  // namespace ewnet
