// ewnet/layers/pooling.hpp: max pooling, average pooling, global average pooling and adaptive
// average pooling layers (ops/pooling.hpp has the math and the padding rules).
#pragma once

#include <ewnet/layers/layer.hpp>
#include <ewnet/ops/pooling.hpp>

namespace ewnet {

struct PoolOptions {
  int kernel = 2;
  int stride = 2;
  int padding = 0;
  bool ceil_mode = false;  // max pooling only: PyTorch's ceil_mode (ops/pooling.hpp)
  PoolGeometry geometry() const { return {kernel, kernel, stride, stride, padding, padding, ceil_mode}; }
};

namespace detail {
template <class T>
class PoolBase : public Layer<T> {
 public:
  PoolBase(std::string name, PoolOptions o) : Layer<T>(std::move(name)), opt_(o), geom_(o.geometry()) {
    EWNET_CHECK(o.kernel > 0 && o.stride > 0 && o.padding >= 0 && o.padding < o.kernel, "pooling '", this->name(),
                "': kernel and stride must be positive and padding in [0, kernel)");
  }
  EngineLayout engine_layout(const std::vector<Shape>&, int) const override { return EngineLayout::follows_input; }
  Shape setup(const std::vector<Shape>& in, Device) override {
    const Shape& x = in[0];
    EWNET_CHECK_AS(ShapeError, x.h + 2 * geom_.pad_h >= geom_.kernel_h && x.w + 2 * geom_.pad_w >= geom_.kernel_w,
                   "input ", x.hwc(), " is smaller than the ", geom_.kernel_h, "x", geom_.kernel_w, " pooling window");
    return {1, x.c, geom_.out_h(x.h), geom_.out_w(x.w)};
  }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c["kernel"] = opt_.kernel;
    c["stride"] = opt_.stride;
    c["padding"] = opt_.padding;
    if (opt_.ceil_mode) c["ceil_mode"] = true;
    return c;
  }
  std::string window() const {
    return str(opt_.kernel, "x", opt_.kernel, ", stride ", opt_.stride, ", padding ", opt_.padding,
               opt_.ceil_mode ? ", ceil mode" : "");
  }

 protected:
  PoolOptions opt_;
  PoolGeometry geom_;
};
}  // namespace detail

template <class T>
class MaxPool : public detail::PoolBase<T> {
 public:
  MaxPool(std::string name, PoolOptions o) : detail::PoolBase<T>(std::move(name), o) {}
  std::string type() const override { return "max_pool"; }
  std::string describe() const override { return "max pooling " + this->window(); }
  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext& ctx) override {
    max_pool_forward(*x[0], y, this->geom_, &cache_, ctx.backward_follows);
  }
  void backward(const BackwardArgs<T>& a) override {
    if (a.dx[0]) max_pool_backward(*a.x[0], *a.y, *a.dy, *a.dx[0], this->geom_, a.dx_mode[0], &cache_);
  }

 private:
  onednn::LayerCache cache_;  // the argmax of the last forward pass that kept it
};

template <class T>
class AvgPool : public detail::PoolBase<T> {
 public:
  AvgPool(std::string name, PoolOptions o) : detail::PoolBase<T>(std::move(name), o) {
    EWNET_CHECK(!o.ceil_mode, "average pooling '", this->name(), "': ceil mode is implemented for max pooling only");
  }
  std::string type() const override { return "avg_pool"; }
  std::string describe() const override { return "average pooling " + this->window(); }
  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext&) override {
    avg_pool_forward(*x[0], y, this->geom_);
  }
  void backward(const BackwardArgs<T>& a) override {
    if (a.dx[0]) avg_pool_backward(*a.dy, *a.dx[0], this->geom_, a.dx_mode[0]);
  }
};

template <class T>
class GlobalAvgPool : public Layer<T> {
 public:
  explicit GlobalAvgPool(std::string name) : Layer<T>(std::move(name)) {}
  std::string type() const override { return "global_avg_pool"; }
  EngineLayout engine_layout(const std::vector<Shape>&, int) const override { return EngineLayout::follows_input; }
  std::string describe() const override { return "global average pooling"; }
  Shape setup(const std::vector<Shape>& in, Device) override { return {1, in[0].c, 1, 1}; }
  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext&) override {
    global_avg_pool_forward(*x[0], y);
  }
  void backward(const BackwardArgs<T>& a) override {
    if (a.dx[0]) global_avg_pool_backward(*a.dy, *a.dx[0], a.dx_mode[0]);
  }
};

/// Average pooling to a fixed output size whatever the input's (PyTorch's adaptive_avg_pool2d):
/// GoogLeNet's auxiliary classifiers pool to 4x4 before their 1x1 convolution.
template <class T>
class AdaptiveAvgPool : public Layer<T> {
 public:
  AdaptiveAvgPool(std::string name, int out_h, int out_w) : Layer<T>(std::move(name)), out_h_(out_h), out_w_(out_w) {
    EWNET_CHECK(out_h >= 1 && out_w >= 1 && out_h <= 4096 && out_w <= 4096, "adaptive average pooling '",
                this->name(), "': output size ", out_h, "x", out_w, " must be between 1x1 and 4096x4096");
  }
  std::string type() const override { return "adaptive_avg_pool"; }
  /// Plain average pooling, on the engine's layout, when the sizes divide (ops/pooling.hpp).
  EngineLayout engine_layout(const std::vector<Shape>& in, int) const override {
    return detail::adaptive_is_uniform(in[0].h, in[0].w, out_h_, out_w_) ? EngineLayout::follows_input
                                                                          : EngineLayout::plain;
  }
  std::string describe() const override { return str("adaptive average pooling to ", out_h_, "x", out_w_); }
  Shape setup(const std::vector<Shape>& in, Device) override { return {1, in[0].c, out_h_, out_w_}; }
  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext&) override {
    adaptive_avg_pool_forward(*x[0], y);
  }
  void backward(const BackwardArgs<T>& a) override {
    if (a.dx[0]) adaptive_avg_pool_backward(*a.dy, *a.dx[0], a.dx_mode[0]);
  }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c["output"] = json::Value::Array{out_h_, out_w_};
    return c;
  }
  int out_h() const { return out_h_; }
  int out_w() const { return out_w_; }

 private:
  int out_h_, out_w_;
};

}  // namespace ewnet
