// ewnet/layers/conv2d.hpp: 2-D convolution layer (ops/conv2d.hpp has the math).
#pragma once

#include <ewnet/layers/init.hpp>
#include <ewnet/layers/layer.hpp>
#include <ewnet/ops/conv2d.hpp>

namespace ewnet {

struct Conv2dOptions {
  int filters = 1;
  int kernel_h = 3, kernel_w = 3;
  int stride = 1;
  int padding = 0;
  int padding_w = -1;  // columns' padding when it differs from the rows' (a 1x7 kernel's (0, 3)); -1: `padding`
  bool same = false;  // pad so that the output is ceil(input / stride) (odd kernels)
  bool bias = true;
  Init init = Init::he;
};

template <class T>
class Conv2d : public Layer<T> {
 public:
  Conv2d(std::string name, Conv2dOptions o) : Layer<T>(std::move(name)), opt_(o) {
    EWNET_CHECK(o.filters > 0 && o.kernel_h > 0 && o.kernel_w > 0 && o.stride > 0 && o.padding >= 0 &&
                    o.padding_w >= -1,
                "conv2d '", this->name(), "': filters, kernel and stride must be positive, padding non-negative");
    if (o.same) {
      EWNET_CHECK(o.kernel_h % 2 == 1 && o.kernel_w % 2 == 1, "conv2d '", this->name(),
                  "': 'same' padding needs an odd kernel, got ", o.kernel_h, "x", o.kernel_w);
    }
    geom_.kernel_h = o.kernel_h;
    geom_.kernel_w = o.kernel_w;
    geom_.stride_h = geom_.stride_w = o.stride;
    geom_.pad_h = o.same ? (o.kernel_h - 1) / 2 : o.padding;
    geom_.pad_w = o.same ? (o.kernel_w - 1) / 2 : o.padding_w >= 0 ? o.padding_w : o.padding;
    weight_.name = "weight";
    bias_.name = "bias";
    bias_.role = ParamRole::bias;
    bias_.l2_factor = 0;  // MATLAB's BiasL2Factor default
  }

  std::string type() const override { return "conv2d"; }
  std::string describe() const override {
    return str(opt_.kernel_h, "x", opt_.kernel_w, " convolution, ", opt_.filters, " filters, stride ", opt_.stride,
               ", padding ", geom_.pad_h, geom_.pad_w != geom_.pad_h ? str("x", geom_.pad_w) : std::string(),
               opt_.bias ? "" : ", no bias");
  }
  const Conv2dGeometry& geometry() const { return geom_; }
  void set_precision(Precision p) override { cache_.bf16 = fold_cache_.bf16 = p == Precision::bf16; }
  EngineLayout engine_layout(const std::vector<Shape>&, int) const override { return EngineLayout::blocked; }
  const Conv2dOptions& options() const { return opt_; }

  Shape setup(const std::vector<Shape>& in, Device device) override {
    const Shape& x = in[0];
    EWNET_CHECK_AS(ShapeError, x.h + 2 * geom_.pad_h >= geom_.kernel_h && x.w + 2 * geom_.pad_w >= geom_.kernel_w,
                   "input ", x.hwc(), " is smaller than the ", geom_.kernel_h, "x", geom_.kernel_w,
                   " kernel with padding ", geom_.pad_h);
    const Shape wshape{opt_.filters, x.c, opt_.kernel_h, opt_.kernel_w};
    if (weight_.value.shape() != wshape) {
      weight_.allocate(wshape, {opt_.filters, x.c, opt_.kernel_h, opt_.kernel_w}, device);
      if (opt_.bias) bias_.allocate({1, opt_.filters, 1, 1}, {opt_.filters}, device);
    }
    return {1, opt_.filters, geom_.out_h(x.h), geom_.out_w(x.w)};
  }

  void initialize(Random& rng) override {
    const double fan_in = double(weight_.value.c()) * opt_.kernel_h * opt_.kernel_w;
    const double fan_out = double(opt_.filters) * opt_.kernel_h * opt_.kernel_w;
    initialize_weights(weight_.value, opt_.init, fan_in, fan_out, rng);
    if (opt_.bias) bias_.value.zero();
  }

  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext& ctx) override {
    conv2d_forward(*x[0], weight_.value, opt_.bias ? &bias_.value : nullptr, y, geom_, engine_cache(),
                   ctx.backward_follows ? onednn::Pass::training : onednn::Pass::inference);
  }

  /// The forward pass with the ReLU that follows it applied on the way, written to that ReLU's
  /// output (Model's inference path; nothing of it is needed for a backward pass).
  void forward_relu(const std::vector<const Tensor<T>*>& x, const Tensor<T>& relu_out) {
    conv2d_relu_forward(*x[0], weight_.value, opt_.bias ? &bias_.value : nullptr, relu_out, geom_, engine_cache());
  }

  /// The forward pass with the batch normalization after it folded in, and its ReLU if `relu`,
  /// written to the last of them's output (Model's inference path on the CPU engine). With running
  /// statistics batch normalization is y = scale * x + shift per channel (BatchNorm::running_affine),
  /// so it is the convolution with weights scale[k] * w[k] and bias scale[k] * b[k] + shift[k]; the
  /// folded weights are kept while the weights, bias, scale and shift are unchanged.
  void forward_folded(const std::vector<const Tensor<T>*>& x, const Tensor<T>& out, const std::vector<T>& scale,
                      const std::vector<T>& shift, bool relu) {
    refold(scale, shift);
    if (relu) conv2d_relu_forward(*x[0], folded_weight_, &folded_bias_, out, geom_, &fold_cache_);
    else conv2d_forward(*x[0], folded_weight_, &folded_bias_, out, geom_, &fold_cache_, onednn::Pass::inference);
  }

  void backward(const BackwardArgs<T>& a) override {
    if (a.dx[0]) conv2d_backward_data(*a.dy, weight_.value, *a.dx[0], geom_, a.dx_mode[0], engine_cache());
    const Tensor<T>* dw = weight_.trainable() ? &weight_.grad : nullptr;
    const Tensor<T>* db = opt_.bias && bias_.trainable() ? &bias_.grad : nullptr;
    conv2d_backward_weights(*a.x[0], *a.dy, dw, db, weight_.value.shape(), geom_, engine_cache());
  }

  std::vector<Param<T>*> params() override {
    if (opt_.bias) return {&weight_, &bias_};
    return {&weight_};
  }
  Param<T>& weight() { return weight_; }
  Param<T>& bias() { return bias_; }

  json::Value config() const override {
    json::Value c = json::Value::object();
    c["filters"] = opt_.filters;
    c["kernel"] = json::Value::Array{opt_.kernel_h, opt_.kernel_w};
    c["stride"] = opt_.stride;
    c["padding"] = geom_.pad_h;
    if (geom_.pad_w != geom_.pad_h) c["padding_w"] = geom_.pad_w;
    c["bias"] = opt_.bias;
    c["init"] = init_name(opt_.init);
    return c;
  }

 private:
  void refold(const std::vector<T>& scale, const std::vector<T>& shift) {
    if (folded_from_ == std::make_pair(weight_.version, bias_.version) && scale == fold_scale_ && shift == fold_shift_ &&
        folded_weight_.shape() == weight_.value.shape())
      return;
    const Shape ws = weight_.value.shape();
    const std::vector<T> w = weight_.value.to_vector();
    const std::vector<T> b = opt_.bias ? bias_.value.to_vector() : std::vector<T>(size_t(ws.n), T(0));
    std::vector<T> fw(w.size()), fb(size_t(ws.n));
    const size_t per = ws.sample_size();
    for (size_t k = 0; k < size_t(ws.n); ++k) {
      for (size_t i = 0; i < per; ++i) fw[k * per + i] = w[k * per + i] * scale[k];
      fb[k] = b[k] * scale[k] + shift[k];
    }
    folded_weight_ = Tensor<T>::from_vector(ws, fw, weight_.value.device());
    folded_bias_ = Tensor<T>::from_vector({1, ws.n, 1, 1}, fb, weight_.value.device());
    folded_from_ = {weight_.version, bias_.version};
    fold_scale_ = scale;
    fold_shift_ = shift;
    ++fold_cache_.weights_version;
  }

  /// The CPU engine's cache, told the weights' current version.
  onednn::LayerCache* engine_cache() {
    cache_.weights_version = weight_.version;
    return &cache_;
  }

  Conv2dOptions opt_;
  Conv2dGeometry geom_;
  Param<T> weight_, bias_;
  onednn::LayerCache cache_;
  // The inference path's weights and bias with a batch normalization folded in (forward_folded),
  // what they were made from, and their own engine cache.
  Tensor<T> folded_weight_, folded_bias_;
  std::pair<std::uint64_t, std::uint64_t> folded_from_{~std::uint64_t(0), 0};
  std::vector<T> fold_scale_, fold_shift_;
  onednn::LayerCache fold_cache_;
};

}  // namespace ewnet
