// ewnet/layers/dropout.hpp: inverted dropout (ops/dropout.hpp); the identity in inference.
// The mask of step t is drawn from (seed, t), so a seed reproduces it and backward recomputes it.
#pragma once

#include <ewnet/layers/layer.hpp>
#include <ewnet/ops/dropout.hpp>

namespace ewnet {

template <class T>
class Dropout : public Layer<T> {
 public:
  Dropout(std::string name, double probability = 0.5, std::uint64_t seed = 0)
      : Layer<T>(std::move(name)), probability_(probability), seed_(seed ^ hash_name(this->name())) {
    EWNET_CHECK(probability >= 0 && probability < 1, "dropout '", this->name(), "': probability ", probability,
                " is not in [0, 1)");
  }
  std::string type() const override { return "dropout"; }
  std::string describe() const override { return str("dropout, probability ", probability_); }
  double probability() const { return probability_; }
  void reseed(std::uint64_t seed) { seed_ = seed ^ hash_name(this->name()); }

  Shape setup(const std::vector<Shape>& in, Device) override { return in[0]; }
  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext& ctx) override {
    if (ctx.mode == Mode::inference || probability_ == 0) y.copy_from(*x[0]);
    else dropout_forward(*x[0], y, params(ctx));
  }
  void backward(const BackwardArgs<T>& a) override {
    if (!a.dx[0]) return;
    if (a.context.mode == Mode::inference || probability_ == 0) copy_gradient(*a.dy, *a.dx[0], a.dx_mode[0]);
    else dropout_backward(*a.dy, *a.dx[0], params(a.context), a.dx_mode[0]);
  }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c["probability"] = probability_;
    return c;
  }

 private:
  DropoutParams params(const ForwardContext& ctx) const { return {probability_, seed_, ctx.iteration}; }
  double probability_;
  std::uint64_t seed_;
};

}  // namespace ewnet
