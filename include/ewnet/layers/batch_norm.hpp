// ewnet/layers/batch_norm.hpp: batch normalization; the math is in ops/batch_norm.hpp.
// Training uses batch statistics and updates the running ones; inference, and training with the
// layer frozen (both learning-rate factors 0), use the running statistics.
#pragma once

#include <ewnet/layers/layer.hpp>
#include <ewnet/ops/batch_norm.hpp>
#include <ewnet/ops/elementwise.hpp>

namespace ewnet {

template <class T>
class BatchNorm : public Layer<T> {
 public:
  BatchNorm(std::string name, BatchNormParams p = {}) : Layer<T>(std::move(name)), p_(p) {
    scale_.name = "scale";
    offset_.name = "offset";
    offset_.role = ParamRole::bias;
    offset_.l2_factor = 0;
  }
  std::string type() const override { return "batch_norm"; }
  std::string describe() const override { return str("batch normalization, epsilon ", p_.epsilon); }

  Shape setup(const std::vector<Shape>& in, Device device) override {
    const int C = in[0].c;
    if (scale_.value.c() != C) {
      scale_.allocate({1, C, 1, 1}, {C}, device);
      offset_.allocate({1, C, 1, 1}, {C}, device);
      running_mean_ = Tensor<T>({1, C, 1, 1}, device);
      running_var_ = Tensor<T>({1, C, 1, 1}, device);
      saved_mean_ = Tensor<T>({1, C, 1, 1}, device);
      saved_invstd_ = Tensor<T>({1, C, 1, 1}, device);
      initialize_defaults();
    }
    return in[0];
  }
  void initialize(Random&) override { initialize_defaults(); }
  EngineLayout engine_layout(const std::vector<Shape>&, int) const override { return EngineLayout::follows_input; }

  /// Uses the running statistics in this step (inference, or frozen in training).
  bool uses_running_stats(const ForwardContext& ctx) { return ctx.mode == Mode::inference || this->frozen(); }
  /// The affine map the layer applies with its running statistics, y = scale * x + shift per
  /// channel: scale = gamma / sqrt(var + eps), shift = beta - mean * scale (host vectors; what a
  /// convolution before it folds into its weights on the inference path).
  void running_affine(std::vector<T>& scale, std::vector<T>& shift) const {
    const std::vector<T> g = scale_.value.to_vector(), b = offset_.value.to_vector();
    const std::vector<T> mean = running_mean_.to_vector(), var = running_var_.to_vector();
    scale.resize(g.size());
    shift.resize(g.size());
    for (size_t c = 0; c < g.size(); ++c) {
      scale[c] = T(double(g[c]) / std::sqrt(double(var[c]) + p_.epsilon));
      shift[c] = b[c] - mean[c] * scale[c];
    }
  }

  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext& ctx) override {
    if (uses_running_stats(ctx))
      batch_norm_forward_inference(*x[0], scale_.value, offset_.value, running_mean_, running_var_, y, p_);
    else
      batch_norm_forward_training(*x[0], scale_.value, offset_.value, y, saved_mean_, saved_invstd_, running_mean_,
                                  running_var_, p_, &cache_);
  }
  void backward(const BackwardArgs<T>& a) override {
    const Tensor<T>* dg = scale_.trainable() ? &scale_.grad : nullptr;
    const Tensor<T>* db = offset_.trainable() ? &offset_.grad : nullptr;
    const GradWrite mode = a.dx[0] ? a.dx_mode[0] : GradWrite::overwrite;
    if (uses_running_stats(a.context))
      batch_norm_backward_inference(*a.x[0], *a.dy, scale_.value, running_mean_, running_var_, a.dx[0], mode, dg, db,
                                    p_);
    else
      batch_norm_backward_training(*a.x[0], *a.dy, scale_.value, saved_mean_, saved_invstd_, a.dx[0], mode, dg, db, p_,
                                   &cache_);
  }

  std::vector<Param<T>*> params() override { return {&scale_, &offset_}; }
  std::vector<StateTensor<T>> state() override {
    const int C = scale_.value.c();
    return {{"running_mean", &running_mean_, {C}}, {"running_var", &running_var_, {C}}};
  }
  void to(Device d) override {
    Layer<T>::to(d);
    saved_mean_ = saved_mean_.to(d);
    saved_invstd_ = saved_invstd_.to(d);
  }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c["epsilon"] = p_.epsilon;
    c["momentum"] = p_.momentum;
    return c;
  }

 private:
  void initialize_defaults() {
    fill(scale_.value, T(1));
    offset_.value.zero();
    running_mean_.zero();
    fill(running_var_, T(1));
  }

  BatchNormParams p_;
  Param<T> scale_, offset_;
  Tensor<T> running_mean_, running_var_, saved_mean_, saved_invstd_;
  onednn::LayerCache cache_;  // the CPU engine's batch variance of the last training pass
};

}  // namespace ewnet
