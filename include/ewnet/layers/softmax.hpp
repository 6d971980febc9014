// ewnet/layers/softmax.hpp: softmax over channels (ops/softmax.hpp).
//
// When the graph finds this layer feeding a classification layer directly, it marks the pair
// fused: the classification layer then writes dL/dlogits = (p - onehot)/N into this layer's
// gradient, and this layer passes it straight through instead of multiplying by the softmax
// Jacobian. That is the stable, simple backward of softmax with cross-entropy.
#pragma once

#include <ewnet/layers/layer.hpp>
#include <ewnet/ops/elementwise.hpp>
#include <ewnet/ops/softmax.hpp>

namespace ewnet {

template <class T>
class Softmax : public Layer<T> {
 public:
  explicit Softmax(std::string name) : Layer<T>(std::move(name)) {}
  std::string type() const override { return "softmax"; }
  std::string describe() const override { return fused_ ? "softmax (fused with the loss)" : "softmax"; }
  Shape setup(const std::vector<Shape>& in, Device) override { return in[0]; }
  void set_fused_with_loss(bool fused) { fused_ = fused; }
  bool fused_with_loss() const { return fused_; }

  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext&) override {
    softmax_forward(*x[0], y);
  }
  void backward(const BackwardArgs<T>& a) override {
    if (!a.dx[0]) return;
    if (fused_) copy_gradient(*a.dy, *a.dx[0], a.dx_mode[0]);
    else softmax_backward(*a.y, *a.dy, *a.dx[0], a.dx_mode[0]);
  }

 private:
  bool fused_ = false;
};

}  // namespace ewnet
