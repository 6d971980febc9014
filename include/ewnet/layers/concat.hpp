// ewnet/layers/concat.hpp: depth concatenation of any number of inputs along channels.
//
// The Model allocates each input that feeds only this layer as a channel slice of this layer's
// output (and its gradient as a slice of this layer's gradient), so in the common case, an
// inception module's branches, forward and backward move no data at all: the copies below run
// only for inputs that could not be placed in their slice.
#pragma once

#include <ewnet/layers/layer.hpp>
#include <ewnet/ops/elementwise.hpp>

namespace ewnet {

template <class T>
class Concat : public Layer<T> {
 public:
  explicit Concat(std::string name) : Layer<T>(std::move(name)) {}
  std::string type() const override { return "concat"; }
  std::string describe() const override { return "depth concatenation"; }
  int min_inputs() const override { return 2; }
  int max_inputs() const override { return -1; }
  /// On the engine's layout when every input but the last fills whole blocks (a slice of blocked
  /// channels must start and end on a block boundary).
  EngineLayout engine_layout(const std::vector<Shape>& in, int block) const override {
    for (size_t i = 0; i + 1 < in.size(); ++i)
      if (in[i].c % block != 0) return EngineLayout::plain;
    return EngineLayout::follows_input;
  }

  Shape setup(const std::vector<Shape>& in, Device) override {
    Shape out = in[0];
    for (size_t i = 1; i < in.size(); ++i) {
      EWNET_CHECK_AS(ShapeError, in[i].h == in[0].h && in[i].w == in[0].w, "input ", i + 1, " is ", in[i].hwc(),
                     " but input 1 is ", in[0].hwc(), ": concatenated inputs must agree in height and width");
      out.c += in[i].c;
    }
    return out;
  }

  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext&) override {
    int c0 = 0;
    for (const Tensor<T>* in : x) {
      Tensor<T> slice = y.channels(c0, in->c());
      if (!slice.same_view(*in)) copy_gradient(*in, slice);
      c0 += in->c();
    }
  }
  void backward(const BackwardArgs<T>& a) override {
    int c0 = 0;
    for (size_t i = 0; i < a.x.size(); ++i) {
      const int c = a.x[i]->c();
      if (a.dx[i]) {
        Tensor<T> slice = a.dy->channels(c0, c);
        if (!slice.same_view(*a.dx[i])) copy_gradient(slice, *a.dx[i], a.dx_mode[i]);
      }
      c0 += c;
    }
  }
};

}  // namespace ewnet
