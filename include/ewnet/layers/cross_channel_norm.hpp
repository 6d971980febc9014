// ewnet/layers/cross_channel_norm.hpp: cross-channel normalization (local response normalization)
// as MATLAB's crossChannelNormalizationLayer; the formula is in ops/cross_channel_norm.hpp.
#pragma once

#include <ewnet/layers/layer.hpp>
#include <ewnet/ops/cross_channel_norm.hpp>

namespace ewnet {

template <class T>
class CrossChannelNorm : public Layer<T> {
 public:
  /// Defaults are MATLAB's: window 5, alpha 1e-4, beta 0.75, k 2.
  CrossChannelNorm(std::string name, CrossChannelNormParams p = {}) : Layer<T>(std::move(name)), p_(p) {
    EWNET_CHECK(p.window >= 1 && p.k > 0 && p.alpha >= 0, "cross-channel normalization '", this->name(),
                "': needs window >= 1, k > 0, alpha >= 0");
  }
  std::string type() const override { return "cross_channel_norm"; }
  std::string describe() const override {
    return str("cross-channel normalization (n=", p_.window, ", alpha=", p_.alpha, ", beta=", p_.beta, ", k=", p_.k,
               ")");
  }
  const CrossChannelNormParams& parameters() const { return p_; }

  Shape setup(const std::vector<Shape>& in, Device) override { return in[0]; }
  /// oneDNN's LRN (centred windows) runs on the engine's layout; an even window stays plain.
  EngineLayout engine_layout(const std::vector<Shape>&, int) const override {
    return p_.centred() ? EngineLayout::follows_input : EngineLayout::plain;
  }

  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext& ctx) override {
    // The CPU engine keeps its own workspace (in cache_) and needs no scale tensor.
    const bool engine = cross_channel_norm_on_engine(*x[0], p_);
    if (engine) scale_ = Tensor<T>();
    else if (scale_.shape() != x[0]->shape() || scale_.device() != x[0]->device())
      scale_ = Tensor<T>::empty(x[0]->shape(), x[0]->device());
    cross_channel_norm_forward(*x[0], y, scale_, p_, &cache_, ctx.backward_follows);
  }
  void backward(const BackwardArgs<T>& a) override {
    if (a.dx[0]) cross_channel_norm_backward(*a.x[0], *a.y, *a.dy, scale_, *a.dx[0], p_, a.dx_mode[0], &cache_);
  }
  void to(Device d) override { scale_ = Tensor<T>(); Layer<T>::to(d); }

  json::Value config() const override {
    json::Value c = json::Value::object();
    c["window"] = p_.window;
    c["alpha"] = p_.alpha;
    c["beta"] = p_.beta;
    c["k"] = p_.k;
    return c;
  }

 private:
  CrossChannelNormParams p_;
  Tensor<T> scale_;  // k + alpha/n * windowed sum of squares, kept for backward (reference and CUDA paths)
  onednn::LayerCache cache_;  // the CPU engine's workspace of the last forward pass that kept it
};

}  // namespace ewnet
