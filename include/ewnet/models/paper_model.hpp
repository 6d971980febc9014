// ewnet/models/paper_model.hpp: the hybrid inception-residual classifier of "Transfer learning
// approach towards a smarter recycling" (section 3, "Implementation", figure 3), assembled from the
// library's layers. The paper gives the parts and the layer count, not the filter counts, the
// pooling or the shortcut type: what follows marks ewnet's choices (docs/model.md separates the two).
//
//   input HxWx3
//   stem:   7x7/2 conv, ReLU, 3x3/2 max pool, cross-channel norm,
//           1x1 conv, ReLU, 3x3 conv, ReLU, cross-channel norm, 3x3/2 max pool      (GoogLeNet's stem)
//   body:   inception 3a, 3b, 4a (GoogLeNet's filter counts), each wrapped in a residual connection
//           with a 1x1 projection shortcut, since every module changes the channel count
//           (192 -> 256 -> 480 -> 512)
//   head:   global average pooling, dropout 0.4, fully connected (classes), softmax, classification
//
// Layer count as MATLAB counts it (every layer, input and output included):
//   1 input + 10 stem + 3 x 17 inception-with-projection + 5 head = 67.
// An inception module is 6 convolutions + 6 ReLUs + 1 max pool + 1 concatenation = 14 layers; the
// residual adds a shortcut convolution, an addition and a ReLU = 17. GoogLeNet's max pool between
// 3b and 4a is left out (ewnet's choice): with it the count would be 68, not the paper's 67. The
// paper does not say where (or whether) it pools between the stem and the head.
// docs/model.md lists every layer.
//
// Three stride-2 stages (conv1, pool1, pool2) make the modules work at input/8, so image_size must
// be a multiple of 8 and at least 32 (4x4 maps for the 5x5 branches).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <ewnet/blocks/inception.hpp>
#include <ewnet/graph.hpp>
#include <ewnet/layers/classification.hpp>
#include <ewnet/layers/conv2d.hpp>
#include <ewnet/layers/cross_channel_norm.hpp>
#include <ewnet/layers/dropout.hpp>
#include <ewnet/layers/fully_connected.hpp>
#include <ewnet/layers/input.hpp>
#include <ewnet/layers/pooling.hpp>
#include <ewnet/layers/relu.hpp>
#include <ewnet/layers/softmax.hpp>

namespace ewnet {

struct PaperModelOptions {
  int classes = 8;
  int image_size = 224;     // square input; the paper's is 224, 64 or 112 make CPU runs quick
  std::uint64_t seed = 0;   // initial weights and the dropout masks
};

/// Names of the layers fine-tuning works with.
inline constexpr const char* kInputLayer = "input";
/// The task-specific classifier, replaced for a new target's classes.
inline constexpr const char* kClassifierLayer = "fc";
/// The last layer of the transferable part; fine-tuning freezes every layer up to and including it,
/// leaving the task-specific head (pooling, dropout, fc, softmax, output) to train.
inline constexpr const char* kLastFrozenLayer = "inception_4a-residual_relu";
/// The global average pooling at the start of the head: its output (a 512-vector an image) is the
/// last activation that depends on the frozen base alone, and only dropout and the classifier read
/// it. Fine-tuning the head computes it once per image and trains from it (train::TrainOptions::
/// feature_cache).
inline constexpr const char* kFeatureLayer = "pool5-gap";
inline constexpr const char* kOutputLayer = "output";
/// The layer count the paper gives (figure 3).
inline constexpr int kPaperModelLayers = 67;

/// The inception modules in order, for options such as --train-from.
inline const char* const kPaperModules[] = {"inception_3a", "inception_3b", "inception_4a"};

/// A fresh fully connected classifier for `classes` outputs, named kClassifierLayer.
template <class T>
std::unique_ptr<Layer<T>> make_paper_classifier(int classes) {
  return std::make_unique<FullyConnected<T>>(kClassifierLayer, classes);
}

template <class T>
Model<T> build_paper_model(const PaperModelOptions& o) {
  EWNET_CHECK(o.classes >= 2, "paper model: needs at least 2 classes, got ", o.classes);
  EWNET_CHECK(o.image_size >= 32 && o.image_size % 8 == 0, "paper model: image size must be a multiple of 8 and ",
              "at least 32, got ", o.image_size);
  Model<T> m(o.seed);
  auto conv = [&](const std::string& name, int filters, int k, int stride) {
    Conv2dOptions c;
    c.filters = filters;
    c.kernel_h = c.kernel_w = k;
    c.stride = stride;
    c.same = true;
    m.add(std::make_unique<Conv2d<T>>(name, c));
  };
  // GoogLeNet's local response normalisation: window 5, alpha 1e-4, beta 0.75, k 1.
  CrossChannelNormParams lrn;
  lrn.k = 1.0;

  m.add(std::make_unique<ImageInput<T>>(kInputLayer, 3, o.image_size, o.image_size));
  conv("conv1-7x7_s2", 64, 7, 2);
  m.add(std::make_unique<Relu<T>>("conv1-relu_7x7"));
  m.add(std::make_unique<MaxPool<T>>("pool1-3x3_s2", PoolOptions{3, 2, 1}));
  m.add(std::make_unique<CrossChannelNorm<T>>("pool1-norm1", lrn));
  conv("conv2-3x3_reduce", 64, 1, 1);
  m.add(std::make_unique<Relu<T>>("conv2-relu_3x3_reduce"));
  conv("conv2-3x3", 192, 3, 1);
  m.add(std::make_unique<Relu<T>>("conv2-relu_3x3"));
  m.add(std::make_unique<CrossChannelNorm<T>>("conv2-norm2", lrn));
  m.add(std::make_unique<MaxPool<T>>("pool2-3x3_s2", PoolOptions{3, 2, 1}));

  // GoogLeNet's 3a, 3b and 4a: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection.
  const InceptionFilters f3a{64, 96, 128, 16, 32, 32};     // 256 channels out
  const InceptionFilters f3b{128, 128, 192, 32, 96, 64};   // 480
  const InceptionFilters f4a{192, 96, 208, 16, 48, 64};    // 512
  std::string x = "pool2-3x3_s2";
  x = add_inception(m, kPaperModules[0], x, f3a, Residual::identity_or_projection);
  x = add_inception(m, kPaperModules[1], x, f3b, Residual::identity_or_projection);
  x = add_inception(m, kPaperModules[2], x, f4a, Residual::identity_or_projection);

  m.add(std::make_unique<GlobalAvgPool<T>>(kFeatureLayer), x);
  m.add(std::make_unique<Dropout<T>>("pool5-drop", 0.4, o.seed));
  m.add(make_paper_classifier<T>(o.classes));
  m.add(std::make_unique<Softmax<T>>("prob"));
  m.add(std::make_unique<Classification<T>>(kOutputLayer));
  m.build();
  EWNET_CHECK(int(m.layer_count()) == kPaperModelLayers, "paper model: built ", m.layer_count(),
              " layers instead of ", kPaperModelLayers);
  return m;
}

}  // namespace ewnet
