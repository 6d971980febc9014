// ewnet/layers/input.hpp: the image input layer: fixes the per-sample shape and normalises each
// channel, y = (x - mean[c]) / std[c] (MATLAB's imageInputLayer with 'zscore'). The mean and
// standard deviation are state saved with the model, so a trained model normalises new images as
// it was trained; by default they are 0 and 1 (no normalisation).
#pragma once

#include <vector>

#include <ewnet/layers/layer.hpp>
#include <ewnet/ops/elementwise.hpp>

namespace ewnet {

template <class T>
class ImageInput : public Layer<T> {
 public:
  ImageInput(std::string name, int channels, int height, int width)
      : Layer<T>(std::move(name)), shape_{1, channels, height, width} {
    EWNET_CHECK_AS(ShapeError, shape_.valid(), "input '", this->name(), "': invalid size ", height, "x", width, "x",
                   channels);
    mean_ = Tensor<T>({1, channels, 1, 1});
    std_ = Tensor<T>({1, channels, 1, 1});
    inv_std_ = Tensor<T>({1, channels, 1, 1});
    fill(std_, T(1));
    fill(inv_std_, T(1));
  }
  std::string type() const override { return "image_input"; }
  std::string describe() const override { return str("image input ", shape_.hwc()); }
  int min_inputs() const override { return 0; }
  int max_inputs() const override { return 0; }
  const Shape& input_shape() const { return shape_; }

  /// Sets the per-channel normalisation (sizes must equal the channel count; std > 0).
  void set_normalization(const std::vector<T>& mean, const std::vector<T>& std) {
    EWNET_CHECK_AS(ShapeError, mean.size() == size_t(shape_.c) && std.size() == size_t(shape_.c), "input '",
                   this->name(), "': normalisation needs ", shape_.c, " means and deviations, got ", mean.size(),
                   " and ", std.size());
    std::vector<T> inv(std.size());
    for (size_t i = 0; i < std.size(); ++i) {
      EWNET_CHECK(std[i] > 0, "input '", this->name(), "': standard deviation of channel ", i, " is ", std[i]);
      inv[i] = T(1) / std[i];
    }
    const Shape s{1, shape_.c, 1, 1};
    mean_.copy_from(Tensor<T>::from_vector(s, mean));
    std_.copy_from(Tensor<T>::from_vector(s, std));
    inv_std_.copy_from(Tensor<T>::from_vector(s, inv));
  }
  std::vector<T> mean() const { return mean_.to_vector(); }
  std::vector<T> stddev() const { return std_.to_vector(); }

  Shape setup(const std::vector<Shape>&, Device) override { return shape_; }

  /// Checks a batch against the layer's size; the message names both.
  void check_batch(const Tensor<T>& x) const {
    EWNET_CHECK_AS(ShapeError, x.c() == shape_.c && x.h() == shape_.h && x.w() == shape_.w, "input '", this->name(),
                   "' expects images of ", shape_.hwc(), " (HxWxC), got a batch of ", x.shape().hwc(), " (",
                   x.shape(), ")");
  }

  void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext&) override {
    normalize_channels(*x[0], mean_, inv_std_, y);
  }
  void backward(const BackwardArgs<T>&) override {}

  std::vector<StateTensor<T>> state() override {
    // inv_std is derived; after loading, refresh it with refresh_derived().
    return {{"mean", &mean_, {shape_.c}}, {"std", &std_, {shape_.c}}};
  }
  /// Recomputes 1/std after the state was loaded.
  void refresh_derived() {
    std::vector<T> s = std_.to_vector();
    for (T& v : s) {
      EWNET_CHECK_AS(IoError, v > 0, "input '", this->name(), "': loaded standard deviation ", v, " is not positive");
      v = T(1) / v;
    }
    inv_std_ = Tensor<T>::from_vector(std_.shape(), s, std_.device());
  }
  void to(Device d) override {
    Layer<T>::to(d);
    inv_std_ = inv_std_.to(d);
  }
  json::Value config() const override {
    json::Value c = json::Value::object();
    c["size"] = json::Value::Array{shape_.h, shape_.w, shape_.c};
    return c;
  }

 private:
  Shape shape_;
  Tensor<T> mean_, std_, inv_std_;
};

}  // namespace ewnet
