// ewnet/models/resnet.hpp: ResNet-18 (He et al. 2016) as torchvision builds it
// (torchvision.models.resnet18), with torchvision's module names, so that its state_dict loads
// by name (io/torchvision.hpp).
//
//   input HxWx3
//   conv1 7x7/2 pad 3 (64, no bias) · bn1 · relu · maxpool 3x3/2 pad 1
//   layer1..layer4: two BasicBlocks each, 64, 128, 256, 512 channels; the first block of layers
//     2-4 has stride 2 and a downsample shortcut (downsample.0: 1x1/2 conv, downsample.1: bn)
//     BasicBlock: conv1 3x3/s pad 1 · bn1 · relu1 · conv2 3x3 pad 1 · bn2 · add(shortcut) · relu
//   avgpool (global average) · fc (classes) · prob (softmax) · output (cross-entropy)
//
// torchvision reuses one ReLU module per block; ewnet has one layer per use, named
// layerL.B.relu1 and layerL.B.relu (ReLUs have no parameters, so no state_dict key differs).
// Five stride-2 stages: the last maps are input/32; any input of at least 32x32 runs (1x1 maps).
#pragma once

#include <cstdint>
#include <string>

#include <ewnet/layers/add.hpp>
#include <ewnet/layers/input.hpp>
#include <ewnet/models/torchvision_blocks.hpp>

namespace ewnet::models {

/// One BasicBlock named `name` (e.g. "layer2.0"); returns the name of its output (the final ReLU).
template <class T>
std::string resnet_basic_block(Model<T>& m, const std::string& name, const std::string& input, int channels,
                               int stride, bool downsample) {
  m.add(make_conv<T>(name + ".conv1", conv_spec(channels, 3, stride, 1)), input);
  m.add(std::make_unique<BatchNorm<T>>(name + ".bn1"));
  m.add(std::make_unique<Relu<T>>(name + ".relu1"));
  m.add(make_conv<T>(name + ".conv2", conv_spec(channels, 3, 1, 1)));
  m.add(std::make_unique<BatchNorm<T>>(name + ".bn2"));
  std::string shortcut = input;
  if (downsample) {
    m.add(make_conv<T>(name + ".downsample.0", conv_spec(channels, 1, stride, 0)), input);
    m.add(std::make_unique<BatchNorm<T>>(name + ".downsample.1"));
    shortcut = name + ".downsample.1";
  }
  m.add(std::make_unique<Add<T>>(name + ".add"), std::vector<std::string>{name + ".bn2", shortcut});
  m.add(std::make_unique<Relu<T>>(name + ".relu"));
  return name + ".relu";
}

template <class T>
Model<T> build_resnet18(int classes, int image_size, std::uint64_t seed) {
  EWNET_CHECK(classes >= 2, "resnet18: needs at least 2 classes, got ", classes);
  EWNET_CHECK(image_size >= 32, "resnet18: image size must be at least 32, got ", image_size);
  Model<T> m(seed);
  m.add(std::make_unique<ImageInput<T>>("input", 3, image_size, image_size));
  m.add(make_conv<T>("conv1", conv_spec(64, 7, 2, 3)));
  m.add(std::make_unique<BatchNorm<T>>("bn1"));
  m.add(std::make_unique<Relu<T>>("relu"));
  m.add(std::make_unique<MaxPool<T>>("maxpool", PoolOptions{3, 2, 1}));
  std::string x = "maxpool";
  const int channels[] = {64, 128, 256, 512};
  for (int l = 0; l < 4; ++l) {
    const std::string layer = "layer" + std::to_string(l + 1);
    const int stride = l == 0 ? 1 : 2;
    x = resnet_basic_block(m, layer + ".0", x, channels[l], stride, stride != 1);
    x = resnet_basic_block(m, layer + ".1", x, channels[l], 1, false);
  }
  classifier_head(m, x, "avgpool", 0, classes, seed);
  m.build();
  return m;
}

}  // namespace ewnet::models
