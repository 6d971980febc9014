// Models and images the deployment tests share.
#pragma once

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ewnet/data/image.hpp>
#include <ewnet/model.hpp>
#include <ewnet/random.hpp>

namespace ewnet::test {

inline std::unique_ptr<Conv2d<float>> conv(const std::string& name, int filters, int k, int stride, int padding,
                                           bool bias = true) {
  Conv2dOptions o;
  o.filters = filters;
  o.kernel_h = o.kernel_w = k;
  o.stride = stride;
  o.padding = padding;
  o.bias = bias;
  return std::make_unique<Conv2d<float>>(name, o);
}

/// A small network with every ewnet layer type: convolutions with and without bias, batch norm
/// (with non-trivial running statistics), ReLU, cross-channel norm with an even and an odd
/// window, max, average and global average pooling, concatenation, addition, dropout, two fully
/// connected layers, softmax and the loss. Input 20x20x3, 5 classes.
inline Model<float> every_layer_model(std::uint64_t seed = 3) {
  Model<float> m(seed);
  m.add(std::make_unique<ImageInput<float>>("input", 3, 20, 20));
  m.add(conv("conv1", 8, 3, 1, 1));
  m.add(std::make_unique<BatchNorm<float>>("bn1"));
  m.add(std::make_unique<Relu<float>>("relu1"));
  CrossChannelNormParams even;
  even.window = 4;
  even.alpha = 0.5;  // large, so a misplaced window would show in the output
  even.beta = 0.75;
  even.k = 1.5;
  m.add(std::make_unique<CrossChannelNorm<float>>("lrn_even", even));
  m.add(std::make_unique<MaxPool<float>>("pool1", PoolOptions{3, 2, 1}));
  m.add(conv("branch_a", 6, 1, 1, 0, false), "pool1");
  m.add(std::make_unique<AvgPool<float>>("branch_b_pool", PoolOptions{3, 1, 1}), "pool1");
  m.add(conv("branch_b", 6, 3, 1, 1), "branch_b_pool");
  m.add(std::make_unique<Concat<float>>("concat"), std::vector<std::string>{"branch_a", "branch_b"});
  CrossChannelNormParams odd;
  odd.window = 5;
  odd.alpha = 0.3;
  m.add(std::make_unique<CrossChannelNorm<float>>("lrn_odd", odd));
  m.add(conv("shortcut", 12, 1, 1, 0), "pool1");
  m.add(std::make_unique<Add<float>>("add"), std::vector<std::string>{"lrn_odd", "shortcut"});
  m.add(std::make_unique<Relu<float>>("relu2"));
  m.add(std::make_unique<AvgPool<float>>("pool2", PoolOptions{2, 2, 0}));
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
  m.add(std::make_unique<Dropout<float>>("drop", 0.5, seed));
  m.add(std::make_unique<FullyConnected<float>>("fc1", 10));
  m.add(std::make_unique<Relu<float>>("relu3"));
  m.add(std::make_unique<FullyConnected<float>>("fc2", 5));
  m.add(std::make_unique<Softmax<float>>("prob"));
  m.add(std::make_unique<Classification<float>>("output"));
  m.build();
  m.initialize();
  Random rng(seed + 100);
  for (auto& [layer, s] : m.state_tensors()) {
    if (layer != "bn1") continue;
    std::vector<float> v(s.tensor->size());
    for (float& x : v) x = s.name == "running_mean" ? float(rng.uniform(-0.5, 0.5)) : float(rng.uniform(0.5, 2.0));
    s.tensor->copy_from(Tensor<float>::from_vector(s.tensor->shape(), v));
  }
  m.input_layer().set_normalization({120.f, 110.f, 100.f}, {60.f, 50.f, 70.f});
  return m;
}

/// An image of random pixels.
inline data::Image random_image(int width, int height, std::uint64_t seed) {
  Random rng(seed);
  data::Image img;
  img.width = width;
  img.height = height;
  img.rgb.resize(size_t(width) * size_t(height) * 3);
  for (auto& b : img.rgb) b = std::uint8_t(rng.uniform(0, 255.99));
  return img;
}

/// Sees the mean colour of an 8x8 image: logits 12 * mean blue and 12 * mean red (0..1), so its
/// classes are "blue" and "red" (the order an image folder's sorted class names give).
inline Model<float> colour_model() {
  Model<float> m(1);
  m.add(std::make_unique<ImageInput<float>>("input", 3, 8, 8));
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
  m.add(std::make_unique<FullyConnected<float>>("fc", 2));
  m.add(std::make_unique<Softmax<float>>("prob"));
  m.add(std::make_unique<Classification<float>>("output"));
  m.build();
  m.input_layer().set_normalization({0, 0, 0}, {255, 255, 255});
  auto& fc = m.layer("fc");
  fc.params()[0]->value.copy_from(Tensor<float>::from_vector(fc.params()[0]->value.shape(), {0, 0, 12, 12, 0, 0}));
  fc.params()[1]->value.copy_from(Tensor<float>::from_vector(fc.params()[1]->value.shape(), {0, 0}));
  return m;
}

/// A size x size image of one colour.
inline data::Image solid(double r, double g, double b, int size) {
  data::Image img;
  img.width = img.height = size;
  for (int i = 0; i < size * size; ++i)
    for (double v : {r, g, b}) img.rgb.push_back(std::uint8_t(v));
  return img;
}

/// Replaces the file DIR/NAME by rename each time a reader closes it (inotify's IN_CLOSE_NOWRITE),
/// with replacements[0], then [1], [0], ... : what a concurrent training run saving its checkpoint
/// does to a program that reads the checkpoint more than once. Stops when destroyed.
class ReplaceAfterEachRead {
 public:
  ReplaceAfterEachRead(const std::filesystem::path& dir, std::string name, std::vector<std::filesystem::path> replacements)
      : dir_(dir), name_(std::move(name)), replacements_(std::move(replacements)) {
    fd_ = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd_ < 0 || ::inotify_add_watch(fd_, dir_.c_str(), IN_CLOSE_NOWRITE) < 0)
      throw std::runtime_error("inotify is not available");
    thread_ = std::thread([this] { watch(); });
  }
  ~ReplaceAfterEachRead() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  /// How many times the file was read (and replaced) so far.
  int reads() const { return reads_; }

 private:
  void watch() {
    alignas(inotify_event) char buf[4096];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      for (ssize_t i = 0; i < n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + i);
        if (e->len && name_ == e->name) {
          const auto next = replacements_[size_t(reads_++) % replacements_.size()];
          const auto tmp = dir_ / (".swap-" + name_);
          std::filesystem::remove(tmp);
          std::filesystem::create_hard_link(next, tmp);
          std::filesystem::rename(tmp, dir_ / name_);
        }
        i += ssize_t(sizeof(inotify_event) + e->len);
      }
    }
  }

  std::filesystem::path dir_;
  std::string name_;
  std::vector<std::filesystem::path> replacements_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> reads_{0};
  std::thread thread_;
};

/// A folder for one test, emptied first.
inline std::filesystem::path fresh_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace ewnet::test
