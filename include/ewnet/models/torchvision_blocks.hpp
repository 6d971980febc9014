// ewnet/models/torchvision_blocks.hpp: the pieces torchvision's GoogLeNet, Inception-v3 and
// ResNet-18 are made of, built from ewnet's layers under torchvision's module names, so that a
// torchvision state_dict's keys ("<module>.<parameter>") name ewnet's layers and parameters
// directly (io/torchvision.hpp maps batch norm's weight/bias to ewnet's scale/offset).
//
//   basic_conv   torchvision's BasicConv2d (GoogLeNet, Inception-v3): NAME.conv (no bias),
//                NAME.bn (batch norm, epsilon 0.001), then a ReLU (NAME.relu, no parameters)
//   classifier   global average pooling (AdaptiveAvgPool2d(1)), optional dropout, "fc", then
//                ewnet's softmax and cross-entropy output layers ("prob", "output")
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ewnet/graph.hpp>
#include <ewnet/layers/batch_norm.hpp>
#include <ewnet/layers/classification.hpp>
#include <ewnet/layers/concat.hpp>
#include <ewnet/layers/conv2d.hpp>
#include <ewnet/layers/dropout.hpp>
#include <ewnet/layers/fully_connected.hpp>
#include <ewnet/layers/pooling.hpp>
#include <ewnet/layers/relu.hpp>
#include <ewnet/layers/softmax.hpp>

namespace ewnet::models {

/// A convolution's geometry in torchvision's terms: kernel (kh, kw), stride, padding (ph, pw).
struct ConvSpec {
  int filters;
  int kh, kw;
  int stride = 1;
  int ph = 0, pw = 0;
};
inline ConvSpec conv_spec(int filters, int k, int stride = 1, int pad = 0) { return {filters, k, k, stride, pad, pad}; }

/// An ewnet convolution with torchvision's geometry and no bias (every torchvision convolution of
/// these three networks is followed by batch norm, which has the offset).
template <class T>
std::unique_ptr<Conv2d<T>> make_conv(const std::string& name, const ConvSpec& s) {
  Conv2dOptions o;
  o.filters = s.filters;
  o.kernel_h = s.kh;
  o.kernel_w = s.kw;
  o.stride = s.stride;
  o.padding = s.ph;
  o.padding_w = s.pw;
  o.bias = false;
  return std::make_unique<Conv2d<T>>(name, o);
}

/// torchvision's BasicConv2d: NAME.conv, NAME.bn (epsilon 0.001), NAME.relu. Returns the ReLU's name.
template <class T>
std::string basic_conv(Model<T>& m, const std::string& name, const std::string& input, const ConvSpec& s) {
  m.add(make_conv<T>(name + ".conv", s), input);
  BatchNormParams bn;
  bn.epsilon = 1e-3;
  m.add(std::make_unique<BatchNorm<T>>(name + ".bn", bn));
  m.add(std::make_unique<Relu<T>>(name + ".relu"));
  return name + ".relu";
}

/// Global average pooling `pool`, dropout (probability `dropout`, none when 0), the classifier
/// "fc", softmax "prob" and the cross-entropy output "output".
template <class T>
void classifier_head(Model<T>& m, const std::string& input, const std::string& pool, double dropout, int classes,
                     std::uint64_t seed) {
  m.add(std::make_unique<GlobalAvgPool<T>>(pool), input);
  if (dropout > 0) m.add(std::make_unique<Dropout<T>>("dropout", dropout, seed));
  m.add(std::make_unique<FullyConnected<T>>("fc", classes));
  m.add(std::make_unique<Softmax<T>>("prob"));
  m.add(std::make_unique<Classification<T>>("output"));
}

}  // namespace ewnet::models
