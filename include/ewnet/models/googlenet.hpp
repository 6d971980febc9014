// ewnet/models/googlenet.hpp: GoogLeNet (Szegedy et al. 2015) as torchvision builds it
// (torchvision.models.googlenet), with torchvision's module names, so that its state_dict loads by
// name (io/torchvision.hpp). The two auxiliary classifiers (aux_logits=True) are an option.
//
// torchvision's version differs from the 2015 paper (and from the paper model's stem here): batch
// norm after every convolution instead of local response normalisation, and a 3x3 convolution
// where the paper's "5x5" branch has 5x5. Every convolution is a BasicConv2d (conv without bias,
// batch norm epsilon 0.001, ReLU):
//   conv1 7x7/2 pad 3 (64) · maxpool1 3x3/2 ceil · conv2 1x1 (64) · conv3 3x3 pad 1 (192) · maxpool2 3x3/2 ceil
//   inception3a, 3b · maxpool3 3x3/2 ceil · inception4a..4e · maxpool4 2x2/2 ceil · inception5a, 5b
//   Inception(ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
//     branch1: 1x1 · branch2: 1x1, 3x3 pad 1 · branch3: 1x1, 3x3 pad 1 · branch4: max pool 3x3/1
//     pad 1 ceil, 1x1 · concatenated in that order
//   avgpool (global average) · dropout 0.2 · fc (classes) · prob · output
// Auxiliary classifiers (option): aux1 reads inception4a, aux2 inception4d, each
//   NAME.pool adaptive average pooling to 4x4 · NAME.conv BasicConv2d 1x1 (128) · NAME.fc1 (1024)
//   · NAME.relu · NAME.dropout 0.7 · NAME.fc2 (classes) · NAME.prob · NAME.output
// with the loss weight 0.3 of the GoogLeNet paper (graph.hpp: they run in training passes only).
// Ceil-mode pooling is PyTorch's ceil_mode=True (ops/pooling.hpp). torchvision's transform_input
// (on for its pretrained weights) is done by ewnet's input normalisation (io/torchvision.hpp).
// Sizes: at least 32x32 (5 stride-2 stages; ceil mode keeps every map at least 1x1).
#pragma once

#include <cstdint>
#include <string>

#include <ewnet/layers/input.hpp>
#include <ewnet/models/torchvision_blocks.hpp>

namespace ewnet::models {

struct GoogLeNetInception {
  int ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj;
};

namespace detail {
template <class T>
std::string googlenet_inception(Model<T>& m, const std::string& n, const std::string& x, const GoogLeNetInception& f) {
  const std::string b1 = basic_conv(m, n + ".branch1", x, conv_spec(f.ch1x1, 1));
  std::string b2 = basic_conv(m, n + ".branch2.0", x, conv_spec(f.ch3x3red, 1));
  b2 = basic_conv(m, n + ".branch2.1", b2, conv_spec(f.ch3x3, 3, 1, 1));
  std::string b3 = basic_conv(m, n + ".branch3.0", x, conv_spec(f.ch5x5red, 1));
  b3 = basic_conv(m, n + ".branch3.1", b3, conv_spec(f.ch5x5, 3, 1, 1));
  m.add(std::make_unique<MaxPool<T>>(n + ".branch4.0", PoolOptions{3, 1, 1, true}), x);
  const std::string b4 = basic_conv(m, n + ".branch4.1", n + ".branch4.0", conv_spec(f.pool_proj, 1));
  m.add(std::make_unique<Concat<T>>(n + ".concat"), std::vector<std::string>{b1, b2, b3, b4});
  return n + ".concat";
}

/// GoogLeNet's auxiliary classifier NAME reading `x` (torchvision's InceptionAux).
template <class T>
void googlenet_aux(Model<T>& m, const std::string& n, const std::string& x, int classes, std::uint64_t seed) {
  m.add(std::make_unique<AdaptiveAvgPool<T>>(n + ".pool", 4, 4), x);
  const std::string c = basic_conv(m, n + ".conv", n + ".pool", conv_spec(128, 1));
  m.add(std::make_unique<FullyConnected<T>>(n + ".fc1", 1024), c);
  m.add(std::make_unique<Relu<T>>(n + ".relu"));
  m.add(std::make_unique<Dropout<T>>(n + ".dropout", 0.7, seed));
  m.add(std::make_unique<FullyConnected<T>>(n + ".fc2", classes));
  m.add(std::make_unique<Softmax<T>>(n + ".prob"));
  m.add(std::make_unique<Classification<T>>(n + ".output", AuxiliaryLoss{0.3}));
}
}  // namespace detail

/// GoogLeNet for `classes` classes at image_size x image_size; `auxiliary` adds aux1 and aux2.
template <class T>
Model<T> build_googlenet(int classes, int image_size, std::uint64_t seed, bool auxiliary = false) {
  EWNET_CHECK(classes >= 2, "googlenet: needs at least 2 classes, got ", classes);
  EWNET_CHECK(image_size >= 32, "googlenet: image size must be at least 32, got ", image_size);
  Model<T> m(seed);
  m.add(std::make_unique<ImageInput<T>>("input", 3, image_size, image_size));
  std::string x = basic_conv(m, "conv1", "input", conv_spec(64, 7, 2, 3));
  m.add(std::make_unique<MaxPool<T>>("maxpool1", PoolOptions{3, 2, 0, true}), x);
  x = basic_conv(m, "conv2", "maxpool1", conv_spec(64, 1));
  x = basic_conv(m, "conv3", x, conv_spec(192, 3, 1, 1));
  m.add(std::make_unique<MaxPool<T>>("maxpool2", PoolOptions{3, 2, 0, true}), x);
  x = detail::googlenet_inception(m, "inception3a", "maxpool2", {64, 96, 128, 16, 32, 32});
  x = detail::googlenet_inception(m, "inception3b", x, {128, 128, 192, 32, 96, 64});
  m.add(std::make_unique<MaxPool<T>>("maxpool3", PoolOptions{3, 2, 0, true}), x);
  x = detail::googlenet_inception(m, "inception4a", "maxpool3", {192, 96, 208, 16, 48, 64});
  x = detail::googlenet_inception(m, "inception4b", x, {160, 112, 224, 24, 64, 64});
  x = detail::googlenet_inception(m, "inception4c", x, {128, 128, 256, 24, 64, 64});
  x = detail::googlenet_inception(m, "inception4d", x, {112, 144, 288, 32, 64, 64});
  x = detail::googlenet_inception(m, "inception4e", x, {256, 160, 320, 32, 128, 128});
  m.add(std::make_unique<MaxPool<T>>("maxpool4", PoolOptions{2, 2, 0, true}), x);
  x = detail::googlenet_inception(m, "inception5a", "maxpool4", {256, 160, 320, 32, 128, 128});
  x = detail::googlenet_inception(m, "inception5b", x, {384, 192, 384, 48, 128, 128});
  classifier_head(m, x, "avgpool", 0.2, classes, seed);
  if (auxiliary) {
    detail::googlenet_aux(m, "aux1", "inception4a.concat", classes, seed);
    detail::googlenet_aux(m, "aux2", "inception4d.concat", classes, seed);
  }
  m.build();
  return m;
}

}  // namespace ewnet::models
