// ewnet/models/inception_v3.hpp: Inception-v3 (Szegedy et al. 2016) as torchvision builds it
// (torchvision.models.inception_v3), with torchvision's module names, so that its state_dict loads
// by name (io/torchvision.hpp). The auxiliary classifier (aux_logits=True) is an option.
//
// Every convolution is a BasicConv2d (conv without bias, batch norm with epsilon 0.001, ReLU):
//   Conv2d_1a_3x3 3x3/2 (32) · Conv2d_2a_3x3 3x3 (32) · Conv2d_2b_3x3 3x3 pad 1 (64) · maxpool1 3x3/2
//   Conv2d_3b_1x1 1x1 (80) · Conv2d_4a_3x3 3x3 (192) · maxpool2 3x3/2
//   Mixed_5b, 5c, 5d  InceptionA (pool features 32, 64, 64): 256, 288, 288 channels
//   Mixed_6a          InceptionB (grid reduction): 768
//   Mixed_6b..6e      InceptionC (c7 = 128, 160, 160, 192): 768, with 1x7 and 7x1 convolutions
//   Mixed_7a          InceptionD (grid reduction): 1280
//   Mixed_7b, 7c      InceptionE: 2048, with 1x3 and 3x1 branches concatenated
//   avgpool (global average) · dropout 0.5 · fc (classes) · prob · output
// Auxiliary classifier (option), reading Mixed_6e:
//   AuxLogits.pool average pooling 5x5/3 · AuxLogits.conv0 BasicConv2d 1x1 (128) · AuxLogits.conv1
//   BasicConv2d 5x5 (768) · AuxLogits.avgpool (global average) · AuxLogits.fc (classes) · prob · output
// with loss weight 0.4 (torchvision's reference training recipe). Its 5x5 convolution needs Mixed_6e
// at 17x17 or more, i.e. images of at least 299x299 (torchvision's limit too).
// The branches' average pools are 3x3/1 pad 1 counting the padding (torch's count_include_pad,
// ewnet's AvgPool); the grid reductions' max pools are 3x3/2 without padding. torchvision's
// functional poolings have no module name: ewnet names them NAME.pool (no parameters).
//
// torchvision's transform_input (on for its pretrained weights) re-normalises ImageNet-normalised
// input to (x - 0.5) / 0.5; ewnet's input layer normalises instead (io/torchvision.hpp sets it).
// Sizes: the smallest input that runs is 75x75 (torchvision's minimum too); 299 is the design size.
#pragma once

#include <cstdint>
#include <string>

#include <ewnet/layers/input.hpp>
#include <ewnet/models/torchvision_blocks.hpp>

namespace ewnet::models {

namespace detail {

template <class T>
std::string concat(Model<T>& m, const std::string& name, std::vector<std::string> inputs) {
  m.add(std::make_unique<Concat<T>>(name), std::move(inputs));
  return name;
}

template <class T>
std::string avg_pool_branch(Model<T>& m, const std::string& name, const std::string& x, int features) {
  m.add(std::make_unique<AvgPool<T>>(name + ".pool", PoolOptions{3, 1, 1}), x);
  return basic_conv(m, name + ".branch_pool", name + ".pool", conv_spec(features, 1));
}

template <class T>
std::string inception_a(Model<T>& m, const std::string& n, const std::string& x, int pool_features) {
  const std::string b1 = basic_conv(m, n + ".branch1x1", x, conv_spec(64, 1));
  std::string b5 = basic_conv(m, n + ".branch5x5_1", x, conv_spec(48, 1));
  b5 = basic_conv(m, n + ".branch5x5_2", b5, conv_spec(64, 5, 1, 2));
  std::string b3 = basic_conv(m, n + ".branch3x3dbl_1", x, conv_spec(64, 1));
  b3 = basic_conv(m, n + ".branch3x3dbl_2", b3, conv_spec(96, 3, 1, 1));
  b3 = basic_conv(m, n + ".branch3x3dbl_3", b3, conv_spec(96, 3, 1, 1));
  const std::string bp = avg_pool_branch(m, n, x, pool_features);
  return concat(m, n + ".concat", {b1, b5, b3, bp});
}

template <class T>
std::string inception_b(Model<T>& m, const std::string& n, const std::string& x) {
  const std::string b3 = basic_conv(m, n + ".branch3x3", x, conv_spec(384, 3, 2));
  std::string bd = basic_conv(m, n + ".branch3x3dbl_1", x, conv_spec(64, 1));
  bd = basic_conv(m, n + ".branch3x3dbl_2", bd, conv_spec(96, 3, 1, 1));
  bd = basic_conv(m, n + ".branch3x3dbl_3", bd, conv_spec(96, 3, 2));
  m.add(std::make_unique<MaxPool<T>>(n + ".pool", PoolOptions{3, 2, 0}), x);
  return concat(m, n + ".concat", {b3, bd, n + ".pool"});
}

template <class T>
std::string inception_c(Model<T>& m, const std::string& n, const std::string& x, int c7) {
  const ConvSpec k1x7{c7, 1, 7, 1, 0, 3}, k7x1{c7, 7, 1, 1, 3, 0};
  const std::string b1 = basic_conv(m, n + ".branch1x1", x, conv_spec(192, 1));
  std::string b7 = basic_conv(m, n + ".branch7x7_1", x, conv_spec(c7, 1));
  b7 = basic_conv(m, n + ".branch7x7_2", b7, k1x7);
  b7 = basic_conv(m, n + ".branch7x7_3", b7, ConvSpec{192, 7, 1, 1, 3, 0});
  std::string bd = basic_conv(m, n + ".branch7x7dbl_1", x, conv_spec(c7, 1));
  bd = basic_conv(m, n + ".branch7x7dbl_2", bd, k7x1);
  bd = basic_conv(m, n + ".branch7x7dbl_3", bd, k1x7);
  bd = basic_conv(m, n + ".branch7x7dbl_4", bd, k7x1);
  bd = basic_conv(m, n + ".branch7x7dbl_5", bd, ConvSpec{192, 1, 7, 1, 0, 3});
  const std::string bp = avg_pool_branch(m, n, x, 192);
  return concat(m, n + ".concat", {b1, b7, bd, bp});
}

template <class T>
std::string inception_d(Model<T>& m, const std::string& n, const std::string& x) {
  std::string b3 = basic_conv(m, n + ".branch3x3_1", x, conv_spec(192, 1));
  b3 = basic_conv(m, n + ".branch3x3_2", b3, conv_spec(320, 3, 2));
  std::string b7 = basic_conv(m, n + ".branch7x7x3_1", x, conv_spec(192, 1));
  b7 = basic_conv(m, n + ".branch7x7x3_2", b7, ConvSpec{192, 1, 7, 1, 0, 3});
  b7 = basic_conv(m, n + ".branch7x7x3_3", b7, ConvSpec{192, 7, 1, 1, 3, 0});
  b7 = basic_conv(m, n + ".branch7x7x3_4", b7, conv_spec(192, 3, 2));
  m.add(std::make_unique<MaxPool<T>>(n + ".pool", PoolOptions{3, 2, 0}), x);
  return concat(m, n + ".concat", {b3, b7, n + ".pool"});
}

template <class T>
std::string inception_e(Model<T>& m, const std::string& n, const std::string& x) {
  const ConvSpec k1x3{384, 1, 3, 1, 0, 1}, k3x1{384, 3, 1, 1, 1, 0};
  const std::string b1 = basic_conv(m, n + ".branch1x1", x, conv_spec(320, 1));
  const std::string b3 = basic_conv(m, n + ".branch3x3_1", x, conv_spec(384, 1));
  const std::string b3a = basic_conv(m, n + ".branch3x3_2a", b3, k1x3);
  const std::string b3b = basic_conv(m, n + ".branch3x3_2b", b3, k3x1);
  std::string bd = basic_conv(m, n + ".branch3x3dbl_1", x, conv_spec(448, 1));
  bd = basic_conv(m, n + ".branch3x3dbl_2", bd, conv_spec(384, 3, 1, 1));
  const std::string bda = basic_conv(m, n + ".branch3x3dbl_3a", bd, k1x3);
  const std::string bdb = basic_conv(m, n + ".branch3x3dbl_3b", bd, k3x1);
  const std::string bp = avg_pool_branch(m, n, x, 192);
  // torchvision concatenates [1x3, 3x1] inside each branch, then the branches: one concatenation
  // of the six in the same order is the same tensor.
  return concat(m, n + ".concat", {b1, b3a, b3b, bda, bdb, bp});
}

/// Inception-v3's auxiliary classifier (torchvision's InceptionAux) reading `x`.
template <class T>
void inception_aux(Model<T>& m, const std::string& x, int classes) {
  const std::string n = "AuxLogits";
  m.add(std::make_unique<AvgPool<T>>(n + ".pool", PoolOptions{5, 3, 0}), x);
  std::string c = basic_conv(m, n + ".conv0", n + ".pool", conv_spec(128, 1));
  c = basic_conv(m, n + ".conv1", c, conv_spec(768, 5));
  m.add(std::make_unique<GlobalAvgPool<T>>(n + ".avgpool"), c);
  m.add(std::make_unique<FullyConnected<T>>(n + ".fc", classes));
  m.add(std::make_unique<Softmax<T>>(n + ".prob"));
  m.add(std::make_unique<Classification<T>>(n + ".output", AuxiliaryLoss{0.4}));
}
}  // namespace detail

/// Inception-v3 for `classes` classes at image_size x image_size; `auxiliary` adds AuxLogits
/// (images of at least 299x299).
template <class T>
Model<T> build_inception_v3(int classes, int image_size, std::uint64_t seed, bool auxiliary = false) {
  EWNET_CHECK(classes >= 2, "inception-v3: needs at least 2 classes, got ", classes);
  EWNET_CHECK(image_size >= 75, "inception-v3: image size must be at least 75 (its design size is 299), got ",
              image_size);
  EWNET_CHECK(!auxiliary || image_size >= 299, "inception-v3: its auxiliary classifier needs images of at least "
              "299x299 (its 5x5 convolution reads Mixed_6e pooled 5x5/3, 17x17 at 299), got ", image_size, "x",
              image_size, "; leave the auxiliary classifier out at smaller sizes");
  Model<T> m(seed);
  m.add(std::make_unique<ImageInput<T>>("input", 3, image_size, image_size));
  std::string x = basic_conv(m, "Conv2d_1a_3x3", "input", conv_spec(32, 3, 2));
  x = basic_conv(m, "Conv2d_2a_3x3", x, conv_spec(32, 3));
  x = basic_conv(m, "Conv2d_2b_3x3", x, conv_spec(64, 3, 1, 1));
  m.add(std::make_unique<MaxPool<T>>("maxpool1", PoolOptions{3, 2, 0}), x);
  x = basic_conv(m, "Conv2d_3b_1x1", "maxpool1", conv_spec(80, 1));
  x = basic_conv(m, "Conv2d_4a_3x3", x, conv_spec(192, 3));
  m.add(std::make_unique<MaxPool<T>>("maxpool2", PoolOptions{3, 2, 0}), x);
  x = detail::inception_a(m, "Mixed_5b", "maxpool2", 32);
  x = detail::inception_a(m, "Mixed_5c", x, 64);
  x = detail::inception_a(m, "Mixed_5d", x, 64);
  x = detail::inception_b(m, "Mixed_6a", x);
  x = detail::inception_c(m, "Mixed_6b", x, 128);
  x = detail::inception_c(m, "Mixed_6c", x, 160);
  x = detail::inception_c(m, "Mixed_6d", x, 160);
  x = detail::inception_c(m, "Mixed_6e", x, 192);
  x = detail::inception_d(m, "Mixed_7a", x);
  x = detail::inception_e(m, "Mixed_7b", x);
  x = detail::inception_e(m, "Mixed_7c", x);
  classifier_head(m, x, "avgpool", 0.5, classes, seed);
  if (auxiliary) detail::inception_aux(m, "Mixed_6e.concat", classes);
  m.build();
  return m;
}

}  // namespace ewnet::models
