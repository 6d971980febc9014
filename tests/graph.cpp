#include <algorithm>
#include <cmath>
#include <cstring>

#include "test_files.hpp"
#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

namespace {
template <class T>
std::unique_ptr<Conv2d<T>> conv(const std::string& name, int filters, int k = 3) {
  Conv2dOptions o;
  o.filters = filters;
  o.kernel_h = o.kernel_w = k;
  o.same = true;
  return std::make_unique<Conv2d<T>>(name, o);
}

/// A small network with every structural feature: LRN, pooling, an inception module with a
/// projected residual, another with an identity residual, batch norm, dropout, a classifier.
template <class T>
Model<T> small_network(std::uint64_t seed = 1, int classes = 3) {
  Model<T> m(seed);
  m.add(std::make_unique<ImageInput<T>>("input", 3, 8, 8));
  m.add(conv<T>("conv1", 4));
  m.add(std::make_unique<Relu<T>>("relu1"));
  m.add(std::make_unique<CrossChannelNorm<T>>("norm1", CrossChannelNormParams{3, 0.5, 0.75, 2.0}));
  m.add(std::make_unique<MaxPool<T>>("pool1", PoolOptions{3, 2, 1}));
  std::string out = add_inception(m, "inc1", "pool1", InceptionFilters{2, 2, 3, 1, 2, 2}, Residual::identity_or_projection);
  out = add_inception(m, "inc2", out, InceptionFilters{3, 2, 2, 2, 2, 2}, Residual::identity_or_projection);
  m.add(std::make_unique<BatchNorm<T>>("bn"), out);
  m.add(std::make_unique<GlobalAvgPool<T>>("gap"));
  m.add(std::make_unique<Dropout<T>>("drop", 0.25, seed));
  m.add(std::make_unique<FullyConnected<T>>("fc", classes));
  m.add(std::make_unique<Softmax<T>>("softmax"));
  m.add(std::make_unique<Classification<T>>("output"));
  return m;
}
}  // namespace

TEST_CASE("a whole network's gradient matches finite differences of its loss", "[graph][gradient]") {
  Model<double> m = small_network<double>(3);
  Random rng(5);
  const Tensor<double> x = random_tensor<double>({3, 3, 8, 8}, rng);
  const std::vector<int> labels{0, 2, 1};
  // Inference mode makes dropout the identity and batch norm use running statistics, so the loss
  // is a smooth function of the weights; batch statistics are covered by the layer's own test.
  // Non-zero biases keep pre-activations off ReLU's kink at 0, where differences are one-sided.
  for (auto& [layer, p] : m.parameters())
    p->value.copy_from(random_tensor<double>(p->value.shape(), rng, -0.5, 0.5));
  auto loss = [&]() {
    m.forward(x, labels, Mode::inference);
    return double(m.loss());
  };
  loss();
  m.backward();
  size_t checked = 0;
  for (auto& [layer, p] : m.parameters()) {
    const auto g = p->grad.to_vector();
    for (size_t k = 0; k < p->count(); k += 1 + p->count() / 6) {
      double* w = p->value.data() + k;
      const double keep = *w;
      *w = keep + 1e-6;
      const double up = loss();
      *w = keep - 1e-6;
      const double down = loss();
      *w = keep;
      INFO(layer << "." << p->name << "[" << k << "]");
      REQUIRE(g[k] == Approx((up - down) / 2e-6).margin(1e-7).epsilon(1e-4));
      ++checked;
    }
  }
  REQUIRE(checked > 60);
}

TEST_CASE("each training pass draws its dropout masks from the step counter and its backward uses them",
          "[graph][dropout]") {
  Model<double> m(4);
  m.add(std::make_unique<ImageInput<double>>("input", 3, 2, 2));
  m.add(std::make_unique<FullyConnected<double>>("fc1", 8));
  m.add(std::make_unique<Dropout<double>>("drop", 0.5, 4));
  m.add(std::make_unique<FullyConnected<double>>("fc2", 3));
  m.add(std::make_unique<Softmax<double>>("softmax"));
  m.add(std::make_unique<Classification<double>>("output"));
  Random rng(13);
  for (auto& [layer, p] : m.parameters()) p->value.copy_from(random_tensor<double>(p->value.shape(), rng, -0.5, 0.5));
  const Tensor<double> x = random_tensor<double>({2, 3, 2, 2}, rng);
  const std::vector<int> labels{0, 2};
  m.forward(x, labels);  // pass 0: counter 0, then 1
  REQUIRE(m.iteration() == 1);
  const double first = m.loss();
  m.backward();
  const std::vector<double> g = m.layer_as<FullyConnected<double>>("fc1").weight().grad.to_vector();
  m.forward(x, labels);  // pass 1: other masks
  REQUIRE(m.iteration() == 2);
  REQUIRE(m.loss() != first);
  // Pass 0's masks again, from counter 0: finite differences of that loss are its backward's gradient.
  Param<double>& w = m.layer_as<FullyConnected<double>>("fc1").weight();
  for (size_t k = 0; k < w.count(); k += 5) {
    const double keep = w.value.data()[k];
    auto loss_at = [&](double v) {
      w.value.data()[k] = v;
      m.set_iteration(0);
      m.forward(x, labels);
      return double(m.loss());
    };
    const double up = loss_at(keep + 1e-6), down = loss_at(keep - 1e-6);
    w.value.data()[k] = keep;
    INFO("fc1 weight " << k);
    REQUIRE(g[k] == Approx((up - down) / 2e-6).margin(1e-8).epsilon(1e-5));
  }
}

TEST_CASE("inception branches are written in place into the concatenation", "[graph][concat]") {
  Random rng(6);
  SECTION("plain layout (the reference path): any batch") {
    onednn::ReferenceScope reference;
    Model<float> m = small_network<float>();
    m.forward(random_tensor<float>({2, 3, 8, 8}, rng));
    const Tensor<float>& cat = m.activation("inc1-output");
    REQUIRE(m.activation("inc1-relu_1x1").shares_storage_with(cat));
    REQUIRE(m.activation("inc1-relu_pool_proj").shares_storage_with(cat));
    REQUIRE(m.activation("inc1-relu_3x3").same_view(cat.channels(2, 3)));
  }
  SECTION("the CPU engine's blocked layout: branches of whole blocks, one sample a pass") {
    // oneDNN's fast kernels take a blocked tensor with its dense batch stride only, and a channel
    // slice of a batch has its parent's: with more than one sample the concatenation copies.
    const int b = onednn::preferred_block();
    if (b == 0) {
      WARN("the CPU engine prefers no blocked layout on this processor: nothing to check");
      return;
    }
    Model<float> m(3);
    m.add(std::make_unique<ImageInput<float>>("input", 3, 8, 8));
    m.add(conv<float>("conv1", 2 * b));
    add_inception(m, "inc", "conv1", InceptionFilters{b, b, 2 * b, b, b, b}, Residual::none);
    m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
    m.add(std::make_unique<FullyConnected<float>>("fc", 3));
    const Tensor<float> x = random_tensor<float>({3, 3, 8, 8}, rng);
    m.forward(x.batch(1, 1), Mode::inference);
    REQUIRE(m.layout_of("inc-output") == b);
    for (const char* branch : {"inc-relu_1x1", "inc-relu_3x3", "inc-relu_5x5", "inc-relu_pool_proj"})
      REQUIRE(m.in_place(branch));
    const std::vector<float> alone = m.activation("inc-output").to_vector();
    m.forward(x, Mode::inference);
    for (const char* branch : {"inc-relu_1x1", "inc-relu_3x3", "inc-relu_5x5", "inc-relu_pool_proj"})
      REQUIRE_FALSE(m.in_place(branch));
    const std::vector<float> batch = m.activation("inc-output").batch(1, 1).to_vector();
    REQUIRE(batch == alone);
  }
}

TEST_CASE("on the CPU engine activations stay blocked from layer to layer, converted only for plain layers",
          "[graph][engine]") {
  const int b = onednn::preferred_block();
  Model<float> m = small_network<float>(4);
  Random rng(7);
  const Tensor<float> x = random_tensor<float>({4, 3, 8, 8}, rng);
  const std::vector<int> labels{0, 1, 2, 1};
  m.forward(x, labels);
  for (const char* blocked : {"conv1", "relu1", "norm1", "pool1", "inc1-3x3", "inc2-residual_add", "bn", "gap"})
    CHECK(m.layout_of(blocked) == b);
  // inc1's branches are 2, 3, 2 and 2 channels: not whole blocks, so its concatenation is plain.
  for (const char* plain : {"inc1-output", "drop", "fc", "softmax", "output"}) CHECK(m.layout_of(plain) == 0);
  // The same numbers as the reference loops on plain tensors: outputs, loss, gradients.
  m.backward();
  const std::vector<float> p = m.prediction().to_vector(), g1 = m.layer_as<Conv2d<float>>("conv1").weight().grad.to_vector();
  const std::vector<float> a = m.activation("inc2-output").to_vector(), d = m.output_gradient("pool1").to_vector();
  const float loss = m.loss();
  onednn::ReferenceScope reference;
  Model<float> r = small_network<float>(4);
  r.forward(x, labels);
  r.backward();
  CHECK(r.layout_of("conv1") == 0);
  CHECK(r.loss() == Approx(loss).epsilon(1e-5));
  CHECK(max_rel_diff(p, r.prediction().to_vector()) < 1e-5);
  CHECK(max_rel_diff(a, r.activation("inc2-output").to_vector()) < 1e-5);
  CHECK(max_rel_diff(d, r.output_gradient("pool1").to_vector()) < 1e-5);
  CHECK(max_rel_diff(g1, r.layer_as<Conv2d<float>>("conv1").weight().grad.to_vector()) < 1e-4);
}

TEST_CASE("a sample's outputs do not depend on the batch it is in, bitwise", "[graph][engine][determinism]") {
  // What the feature cache relies on: features computed in one batch equal those computed in any
  // other (train::fit extracts them in dataset order and trains on shuffled batches).
  Model<float> m = small_network<float>(5);
  Random rng(8);
  const Tensor<float> x = random_tensor<float>({5, 3, 8, 8}, rng);
  const std::vector<float> all = m.forward(x, Mode::inference).to_vector();
  const std::vector<float> features = m.activation("gap").to_vector();
  for (int n = 0; n < 5; ++n) {
    INFO("sample " << n);
    REQUIRE(m.forward(x.batch(n, 1), Mode::inference).to_vector() ==
            std::vector<float>(all.begin() + 3 * n, all.begin() + 3 * (n + 1)));
    REQUIRE(m.activation("gap").to_vector() ==
            std::vector<float>(features.begin() + 9 * n, features.begin() + 9 * (n + 1)));
  }
  REQUIRE(m.forward(x.batch(1, 3), Mode::inference).to_vector() == std::vector<float>(all.begin() + 3, all.begin() + 12));
}

TEST_CASE("the summary lists every layer and counts them as MATLAB does", "[graph]") {
  Model<float> m = small_network<float>();
  const std::string s = m.summary();
  REQUIRE(s.find("inc2-residual_add") != std::string::npos);
  REQUIRE(s.find("4x4x9") != std::string::npos);  // inc1 output: 2 + 3 + 2 + 2 channels at 4x4
  REQUIRE(s.find(std::to_string(m.layer_count()) + " layers") != std::string::npos);
  // input + stem (4) + inc1 (14, projection shortcut + add + relu: 3) + inc2 (14, identity: add +
  // relu: 2) + head (bn, gap, dropout, fc, softmax, output: 6)
  REQUIRE(m.layer_count() == 1 + 4 + 17 + 16 + 6);
}

TEST_CASE("graph errors name the layer and what was expected", "[graph][errors]") {
  SECTION("unknown input") {
    Model<float> m;
    m.add(std::make_unique<ImageInput<float>>("input", 3, 8, 8));
    m.add(conv<float>("conv", 2), "nope");
    REQUIRE_THROWS_WITH(m.build(), Catch::Contains("'conv'") && Catch::Contains("'nope'"));
  }
  SECTION("cycle") {
    Model<float> m;
    m.add(std::make_unique<ImageInput<float>>("input", 3, 8, 8));
    m.add(std::make_unique<Add<float>>("a"), std::vector<std::string>{"input", "b"});
    m.add(std::make_unique<Relu<float>>("b"), "a");
    m.add(std::make_unique<Relu<float>>("c"), "b");
    REQUIRE_THROWS_WITH(m.build(), Catch::Contains("cycle") && Catch::Contains("'a'") && Catch::Contains("'b'"));
  }
  SECTION("dangling output") {
    Model<float> m;
    m.add(std::make_unique<ImageInput<float>>("input", 3, 8, 8));
    m.add(conv<float>("conv", 2));
    m.add(std::make_unique<Relu<float>>("unused"), "input");
    REQUIRE_THROWS_WITH(m.build(), Catch::Contains("'conv'") && Catch::Contains("'unused'"));
  }
  SECTION("shape mismatch names the layer and both shapes") {
    Model<float> m;
    m.add(std::make_unique<ImageInput<float>>("input", 3, 8, 8));
    m.add(conv<float>("a", 4));
    m.add(conv<float>("b", 5), "input");
    m.add(std::make_unique<Add<float>>("sum"), std::vector<std::string>{"a", "b"});
    REQUIRE_THROWS_WITH(m.build(), Catch::Contains("'sum'") && Catch::Contains("8x8x4") && Catch::Contains("8x8x5"));
  }
  SECTION("duplicate name, wrong input count, unknown layer") {
    Model<float> m;
    m.add(std::make_unique<ImageInput<float>>("input", 3, 8, 8));
    REQUIRE_THROWS_AS(m.add(std::make_unique<Relu<float>>("input")), GraphError);
    m.add(std::make_unique<Concat<float>>("cat"), "input");
    REQUIRE_THROWS_WITH(m.build(), Catch::Contains("'cat'") && Catch::Contains("2 or more"));
    REQUIRE_THROWS_WITH(m.layer("missing"), Catch::Contains("'missing'"));
  }
  SECTION("a batch of the wrong size") {
    Model<float> m = small_network<float>();
    REQUIRE_THROWS_WITH(m.forward(Tensor<float>({1, 3, 9, 8})), Catch::Contains("8x8x3") && Catch::Contains("9x8x3"));
  }
}

TEST_CASE("replacing the classifier keeps the connections", "[graph]") {
  Model<float> m = small_network<float>(1, 3);
  REQUIRE(m.classes() == 3);
  m.replace("fc", std::make_unique<FullyConnected<float>>("fc_new", 5));
  REQUIRE(m.classes() == 5);
  REQUIRE(m.inputs_of("softmax") == std::vector<std::string>{"fc_new"});
  Random rng(7);
  const Tensor<float>& p = m.forward(random_tensor<float>({2, 3, 8, 8}, rng));
  REQUIRE(p.shape() == Shape(2, 5, 1, 1));
}

TEST_CASE("freezing skips backward below the lowest trainable layer and keeps weights bitwise", "[graph][freeze]") {
  Model<float> m = small_network<float>();
  Sgdm<float> solver;
  Random rng(8);
  const Tensor<float> x = random_tensor<float>({4, 3, 8, 8}, rng);
  const std::vector<int> labels{0, 1, 2, 1};
  m.freeze_up_to("bn");
  std::map<std::string, Tensor<float>> before;
  for (auto& [layer, p] : m.parameters()) before[layer + "." + p->name] = p->value.clone();
  std::map<std::string, std::uint64_t> calls;
  for (Layer<float>* l : m.layers()) calls[l->name()] = l->backward_calls();
  for (int step = 0; step < 3; ++step) {
    m.forward(x, labels);
    m.backward();
    solver.step(m, 0.1);
  }
  for (auto& [layer, p] : m.parameters()) {
    const bool frozen = layer != "fc";
    INFO(layer << "." << p->name);
    REQUIRE(bitwise_equal(p->value, before[layer + "." + p->name]) == frozen);
  }
  for (Layer<float>* l : m.layers()) {
    INFO(l->name());
    const bool runs = l->name() == "fc" || l->name() == "softmax" || l->name() == "output";
    REQUIRE(l->backward_calls() - calls[l->name()] == (runs ? 3u : 0u));
  }
  // Unfreezing one module brings its backward (and everything above it) back.
  m.set_learn_rate_factors("inc2-3x3", 1, 1);
  m.forward(x, labels);
  m.backward();
  REQUIRE(m.layer("inc2-3x3").backward_calls() == 1);
  REQUIRE(m.layer("inc2-relu_3x3").backward_calls() == 1);
  REQUIRE(m.layer("inc2-3x3_reduce").backward_calls() == 0);
  REQUIRE(m.layer("inc1-output").backward_calls() == 0);
}

TEST_CASE("a seeded CPU training run is bitwise reproducible", "[graph][determinism]") {
  auto train = [](std::uint64_t seed) {
    Model<float> m = small_network<float>(seed);
    Sgdm<float> solver;
    Random rng(seed);
    const Tensor<float> x = random_tensor<float>({4, 3, 8, 8}, rng);
    for (int step = 0; step < 3; ++step) {
      m.forward(x, {0, 1, 2, 0});
      m.backward();
      solver.step(m, 0.05);
    }
    return m.parameters().back().second->value.to_vector();
  };
  REQUIRE(train(9) == train(9));
  REQUIRE(train(9) != train(10));
}

TEST_CASE("training reduces the loss on a learnable problem", "[graph][training]") {
  Model<float> m = small_network<float>(2);
  Sgdm<float> solver;
  Random rng(3);
  const Tensor<float> x = random_tensor<float>({6, 3, 8, 8}, rng);
  const std::vector<int> labels{0, 1, 2, 0, 1, 2};
  m.forward(x, labels);
  const float first = m.loss();
  for (int step = 0; step < 60; ++step) {
    m.forward(x, labels);
    m.backward();
    solver.step(m, 0.05);
  }
  m.forward(x, labels, Mode::inference);
  REQUIRE(m.loss() < 0.5f * first);
}

TEST_CASE("forward_from a frozen cut equals the full pass, and trains the head alike", "[graph][freeze]") {
  Model<float> a = small_network<float>(4), b = small_network<float>(4);
  Random rng(9);
  const Tensor<float> x = random_tensor<float>({4, 3, 8, 8}, rng);
  const std::vector<int> labels{2, 0, 1, 1};
  REQUIRE_THROWS_WITH(a.forward_from("gap", Tensor<float>({4, 9, 1, 1})), Catch::Contains("trainable"));
  a.freeze_up_to("gap");
  b.freeze_up_to("gap");
  REQUIRE_THROWS_WITH(a.forward_from("inc1-3x3", Tensor<float>({4, 3, 4, 4})), Catch::Contains("reads"));

  a.forward(x, Mode::inference);
  const Tensor<float> features = a.activation("gap").clone();  // computed once, reused each step
  REQUIRE_THROWS_AS(a.forward_from("gap", Tensor<float>({4, 8, 1, 1})), ShapeError);
  Sgdm<float> sa, sb;
  for (int step = 0; step < 3; ++step) {
    a.forward(x, labels);
    a.backward();
    sa.step(a, 0.1);
    b.forward_from("gap", features, labels);
    b.backward();
    sb.step(b, 0.1);
    REQUIRE(test::bitwise_equal(a.prediction(), b.prediction()));
  }
  REQUIRE(test::bitwise_equal(a.layer_as<FullyConnected<float>>("fc").weight().value,
                              b.layer_as<FullyConnected<float>>("fc").weight().value));
  REQUIRE(b.layer("conv1").backward_calls() == 0);
}

TEST_CASE("connections can be removed and made again, as MATLAB's disconnect/connectLayers", "[graph]") {
  Model<float> m;
  m.add(std::make_unique<ImageInput<float>>("input", 3, 4, 4));
  m.add(conv<float>("a", 3));
  m.add(conv<float>("b", 3), "input");
  m.add(std::make_unique<Add<float>>("sum"), std::vector<std::string>{"a", "b"});
  m.build();
  m.disconnect("b", "sum");
  REQUIRE_THROWS_WITH(m.build(), Catch::Contains("'sum'") && Catch::Contains("1 inputs"));
  REQUIRE_THROWS_WITH(m.disconnect("b", "sum"), Catch::Contains("no input from 'b'"));
  m.connect("b", "sum");
  m.build();
  REQUIRE(m.inputs_of("sum") == std::vector<std::string>{"a", "b"});
  Random rng(1);
  REQUIRE(m.forward(random_tensor<float>({2, 3, 4, 4}, rng)).shape() == Shape(2, 3, 4, 4));
}

TEST_CASE("the inference path fuses each convolution with its ReLU and gives the same output bitwise",
          "[graph][inference]") {
  // small_network has conv -> ReLU pairs in the stem and in every inception branch, and its
  // residual projections and pool projections feed more than a ReLU (not fused). BatchNorm and
  // dropout act the same in both modes here: inference uses running statistics either way.
  Model<float> m = small_network<float>(7);
  Random rng(11);
  const Tensor<float> x = random_tensor<float>({5, 3, 8, 8}, rng);
  m.set_inference_fusion(false);
  const std::vector<float> plain = m.forward(x, Mode::inference).to_vector();
  const std::vector<float> relu1 = m.activation("relu1").to_vector();
  REQUIRE_NOTHROW(m.activation("conv1"));  // kept without the fusion
  m.set_inference_fusion(true);
  const std::vector<float> fused = m.forward(x, Mode::inference).to_vector();
  CHECK(fused == plain);
  CHECK(m.activation("relu1").to_vector() == relu1);
  // The fused convolution's own output was not kept: asking for it is an error, not stale data.
  REQUIRE_THROWS_AS(m.activation("conv1"), GraphError);
  REQUIRE_THROWS_WITH(m.activation("conv1"), Catch::Contains("fused with the ReLU 'relu1'"));
  // Training mode never fuses: the convolution's output is there again.
  std::vector<int> labels{0, 1, 2, 0, 1};
  m.forward(x, labels, Mode::training);
  const std::vector<float> c1 = m.activation("conv1").to_vector(), r1 = m.activation("relu1").to_vector();
  for (size_t i = 0; i < c1.size(); ++i) REQUIRE(std::max(c1[i], 0.0f) == r1[i]);
}

TEST_CASE("a frozen base runs the fused path in training too, with the same loss and gradients bitwise",
          "[graph][inference][freeze]") {
  Random rng(12);
  const Tensor<float> x = random_tensor<float>({4, 3, 8, 8}, rng);
  const std::vector<int> labels{2, 0, 1, 1};
  std::vector<float> loss, grad;
  for (bool fusion : {false, true}) {
    Model<float> m = small_network<float>(9);
    m.freeze_up_to("pool1");  // conv1 and relu1 need no gradient
    m.set_inference_fusion(fusion);
    m.forward(x, labels, Mode::training);
    m.backward();
    loss.push_back(m.loss());
    grad.push_back(m.layer_as<FullyConnected<float>>("fc").weight().grad.to_vector()[3]);
    if (fusion) {
      REQUIRE_THROWS_WITH(m.activation("conv1"), Catch::Contains("fused"));
      REQUIRE_NOTHROW(m.activation("inc2-3x3"));  // it trains: its output is kept for backward
    }
  }
  CHECK(loss[0] == loss[1]);
  CHECK(grad[0] == grad[1]);
}

namespace {
/// input 3x8x8 -> conv1 3x3 (4) -> relu1 -> pool1 2x2 -> mid 3x3 (5) -> relu2 -> main head: gap,
/// fc (3), softmax, output; with `aux`, a side branch from relu2: adaptive pooling to 2x2, fc (3),
/// softmax, and an auxiliary loss of weight 0.4.
template <class T>
Model<T> branched_network(bool aux, std::uint64_t seed = 2) {
  Model<T> m(seed);
  m.add(std::make_unique<ImageInput<T>>("input", 3, 8, 8));
  m.add(conv<T>("conv1", 4));
  m.add(std::make_unique<Relu<T>>("relu1"));
  m.add(std::make_unique<MaxPool<T>>("pool1", PoolOptions{2, 2, 0}));
  m.add(conv<T>("mid", 5));
  m.add(std::make_unique<Relu<T>>("relu2"));
  m.add(std::make_unique<GlobalAvgPool<T>>("gap"));
  m.add(std::make_unique<FullyConnected<T>>("fc", 3));
  m.add(std::make_unique<Softmax<T>>("prob"));
  m.add(std::make_unique<Classification<T>>("output"));
  if (aux) {
    m.add(std::make_unique<AdaptiveAvgPool<T>>("aux.pool", 2, 2), "relu2");
    m.add(std::make_unique<FullyConnected<T>>("aux.fc", 3));
    m.add(std::make_unique<Softmax<T>>("aux.prob"));
    m.add(std::make_unique<Classification<T>>("aux.output", AuxiliaryLoss{0.4}));
  }
  m.build();
  return m;
}

double mean_cross_entropy(const std::vector<double>& probs, const std::vector<int>& labels, int classes) {
  double s = 0;
  for (size_t n = 0; n < labels.size(); ++n) s -= std::log(probs[n * size_t(classes) + size_t(labels[n])]);
  return s / double(labels.size());
}
}  // namespace

TEST_CASE("an auxiliary classifier adds its weighted loss and gradient in training only", "[graph][auxiliary]") {
  Model<double> m = branched_network<double>(true);
  Model<double> plain = branched_network<double>(false);
  REQUIRE(m.auxiliary_losses() == std::vector<std::string>{"aux.output"});
  REQUIRE(m.is_auxiliary("aux.fc"));
  REQUIRE_FALSE(m.is_auxiliary("relu2"));
  REQUIRE(m.auxiliary_inputs("aux.output") == std::vector<std::string>{"relu2"});
  REQUIRE(m.prediction_layer() == "prob");
  Random rng(7);
  for (auto& [layer, p] : m.parameters()) p->value.copy_from(random_tensor<double>(p->value.shape(), rng, -0.5, 0.5));
  for (auto& [layer, p] : plain.parameters()) {
    for (auto& [other, q] : m.parameters())
      if (other == layer && q->name == p->name) p->value.copy_from(q->value);
  }
  const Tensor<double> x = random_tensor<double>({4, 3, 8, 8}, rng);
  const std::vector<int> labels{0, 2, 1, 2};

  // Training: loss() is the main loss plus 0.4 x the auxiliary cross-entropy.
  m.forward(x, labels, Mode::training);
  const double main = mean_cross_entropy(m.activation("prob").to_vector(), labels, 3);
  const double aux = mean_cross_entropy(m.activation("aux.prob").to_vector(), labels, 3);
  REQUIRE(double(m.main_loss()) == Approx(main).epsilon(1e-12));
  REQUIRE(double(m.loss()) == Approx(main + 0.4 * aux).epsilon(1e-12));
  m.backward();
  // The shared layers' gradients are those of that sum: finite differences through both branches.
  for (const std::string layer : {"conv1", "mid", "aux.fc", "fc"}) {
    Param<double>& p = *m.layer(layer).params()[0];
    const std::vector<double> g = p.grad.to_vector();
    for (size_t k = 0; k < p.count(); k += 1 + p.count() / 5) {
      double* w = p.value.data() + k;
      const double keep = *w;
      *w = keep + 1e-6;
      m.forward(x, labels, Mode::training);
      const double up = m.loss();
      *w = keep - 1e-6;
      m.forward(x, labels, Mode::training);
      const double down = m.loss();
      *w = keep;
      INFO(layer << " weight " << k);
      REQUIRE(g[k] == Approx((up - down) / 2e-6).epsilon(1e-6).margin(1e-9));
    }
  }

  // Inference and evaluation: the auxiliary branch does not run; the prediction and the loss are
  // the model's without it, bitwise.
  const std::uint64_t aux_backward = m.layer("aux.fc").backward_calls();
  m.forward(x, labels, Mode::inference);
  plain.forward(x, labels, Mode::inference);
  REQUIRE(m.prediction().to_vector() == plain.prediction().to_vector());
  REQUIRE(m.loss() == plain.loss());
  m.backward();
  REQUIRE(m.layer("aux.fc").backward_calls() == aux_backward);
  REQUIRE(m.layer("fc").backward_calls() > aux_backward);
}

TEST_CASE("auxiliary classifiers: the graph's rules, removal, checkpoints", "[graph][auxiliary]") {
  SECTION("one main loss; an auxiliary loss ends its branch") {
    Model<float> m = branched_network<float>(false);
    m.add(std::make_unique<Softmax<float>>("p2"), "fc");
    m.add(std::make_unique<Classification<float>>("second"), "p2");
    REQUIRE_THROWS_WITH(m.build(), Catch::Contains("two main loss layers") && Catch::Contains("AuxiliaryLoss"));
    Model<float> a = branched_network<float>(true);
    a.add(std::make_unique<Relu<float>>("after"), "aux.output");
    REQUIRE_THROWS_WITH(a.build(), Catch::Contains("'aux.output' must be the last layer"));
    Model<float> d = branched_network<float>(true);
    d.add(std::make_unique<Relu<float>>("dangling"), "relu1");
    REQUIRE_THROWS_WITH(d.build(), Catch::Contains("'dangling'") && Catch::Contains("exactly one output"));
    REQUIRE_THROWS_WITH(Classification<float>("w", AuxiliaryLoss{0}), Catch::Contains("positive"));
    REQUIRE_THROWS_WITH(branched_network<float>(true).auxiliary_inputs("output"), Catch::Contains("not an auxiliary"));
  }
  SECTION("removing the branch leaves the model without it") {
    Model<float> m = branched_network<float>(true);
    Model<float> plain = branched_network<float>(false);
    m.remove_auxiliary("aux.output");
    REQUIRE(m.layer_count() == plain.layer_count());
    REQUIRE_FALSE(m.has_layer("aux.pool"));
    REQUIRE(m.auxiliary_losses().empty());
    Random rng(8);
    const Tensor<float> x = random_tensor<float>({2, 3, 8, 8}, rng);
    REQUIRE(m.forward(x).to_vector() == plain.forward(x).to_vector());
  }
  SECTION("forward_from skips the branch, which reads the base before the cut") {
    Model<float> m = branched_network<float>(true);
    m.freeze_up_to("relu2");
    REQUIRE(m.can_run_from("relu2"));
    REQUIRE_FALSE(m.trains_up_to("relu2"));
    Random rng(9);
    const Tensor<float> x = random_tensor<float>({2, 3, 8, 8}, rng);
    m.forward(x, Mode::inference);
    const Tensor<float> features = m.activation("relu2").clone();
    m.forward_from("relu2", features, std::vector<int>{1, 2});
    REQUIRE(m.loss() == m.main_loss());
  }
  SECTION("a checkpoint keeps the branch and its weight") {
    const TempDir dir("ewnet-test-aux");
    Model<float> m = branched_network<float>(true);
    save_checkpoint(m, dir.file("m.safetensors"));
    Model<float> back = model_from_checkpoint<float>(dir.file("m.safetensors"));
    REQUIRE(back.auxiliary_losses() == std::vector<std::string>{"aux.output"});
    REQUIRE(back.layer_as<Classification<float>>("aux.output").weight() == 0.4);
    REQUIRE(back.layer_as<AdaptiveAvgPool<float>>("aux.pool").out_h() == 2);
    Random rng(10);
    const Tensor<float> x = random_tensor<float>({2, 3, 8, 8}, rng);
    const std::vector<int> labels{0, 1};
    m.forward(x, labels);
    back.forward(x, labels);
    REQUIRE(m.loss() == back.loss());
  }
}

namespace {
/// A ReLU that counts how often its shape is inferred.
class CountingRelu : public Relu<float> {
 public:
  CountingRelu(std::string name, int& count) : Relu<float>(std::move(name)), count_(count) {}
  Shape setup(const std::vector<Shape>& in, Device d) override {
    ++count_;
    return Relu<float>::setup(in, d);
  }

 private:
  int& count_;
};
}  // namespace

TEST_CASE("output_shape infers each layer once however many paths lead to it", "[graph]") {
  // 16 diamonds (two branches, concatenated, halved again by a 1x1 convolution): 2^16 paths from
  // the last layer to the input, as an inception network has exponentially many (Inception-v3's
  // 11 modules of 4 to 6 branches: one inference per path took hours).
  int count = 0;
  Model<float> m;
  m.add(std::make_unique<ImageInput<float>>("input", 2, 4, 4));
  std::string x = "input";
  const int diamonds = 16;
  for (int d = 0; d < diamonds; ++d) {
    const std::string a = "a" + std::to_string(d), b = "b" + std::to_string(d), c = "c" + std::to_string(d);
    m.add(std::make_unique<CountingRelu>(a, count), x);
    m.add(std::make_unique<CountingRelu>(b, count), x);
    m.add(std::make_unique<Concat<float>>(c), std::vector<std::string>{a, b});
    m.add(conv<float>("p" + std::to_string(d), 2, 1), c);
    x = "p" + std::to_string(d);
  }
  REQUIRE(m.output_shape(x) == Shape(1, 2, 4, 4));  // before build: inferred
  REQUIRE(count == 2 * diamonds);
  m.build();
  count = 0;
  REQUIRE(m.output_shape(x) == Shape(1, 2, 4, 4));  // after build: the planned shape
  REQUIRE(count == 0);
}

TEST_CASE("sample weights and gradients added at layer outputs train the sum of every term", "[graph][semi-supervised]") {
  // J = sum_n w_n CE_n (main) + 0.4 sum_n w_n CE_n (auxiliary) + sum r . gap + sum s . fc: the
  // objective of a semi-supervised step (weighted pseudo-labels, a feature loss, a logit loss).
  Model<double> m = branched_network<double>(true);
  Random rng(17);
  for (auto& [layer, p] : m.parameters()) p->value.copy_from(random_tensor<double>(p->value.shape(), rng, -0.5, 0.5));
  const Tensor<double> x = random_tensor<double>({4, 3, 8, 8}, rng);
  const std::vector<int> labels{0, 2, 1, 2};
  const std::vector<double> weights{0.5, 0.5, 0.0, 0.25};
  const Tensor<double> r = random_tensor<double>({4, 5, 1, 1}, rng), s = random_tensor<double>({4, 3, 1, 1}, rng);
  auto dot = [](const Tensor<double>& a, const Tensor<double>& b) {
    const auto u = a.to_vector(), v = b.to_vector();
    double d = 0;
    for (size_t i = 0; i < u.size(); ++i) d += u[i] * v[i];
    return d;
  };
  auto objective = [&]() {
    m.forward(x, labels, weights, Mode::training);
    return double(m.loss()) + dot(m.activation("gap"), r) + dot(m.activation("fc"), s);
  };
  // The weighted losses by hand: sum_n w_n (-log p[n, t_n]), the auxiliary one times 0.4.
  m.forward(x, labels, weights, Mode::training);
  double main = 0, aux = 0;
  const auto p = m.activation("prob").to_vector(), q = m.activation("aux.prob").to_vector();
  for (size_t n = 0; n < 4; ++n) {
    main -= weights[n] * std::log(p[n * 3 + size_t(labels[n])]);
    aux -= weights[n] * std::log(q[n * 3 + size_t(labels[n])]);
  }
  REQUIRE(double(m.main_loss()) == Approx(main).epsilon(1e-12));
  REQUIRE(double(m.loss()) == Approx(main + 0.4 * aux).epsilon(1e-12));
  m.add_output_gradient("gap", r);
  m.add_output_gradient("fc", s);
  m.backward();
  for (const std::string layer : {"conv1", "mid", "fc", "aux.fc"}) {
    Param<double>& w = *m.layer(layer).params()[0];
    const std::vector<double> g = w.grad.to_vector();
    for (size_t k = 0; k < w.count(); k += 1 + w.count() / 5) {
      double* v = w.value.data() + k;
      const double keep = *v;
      *v = keep + 1e-6;
      const double up = objective();
      *v = keep - 1e-6;
      const double down = objective();
      *v = keep;
      INFO(layer << " weight " << k);
      REQUIRE(g[k] == Approx((up - down) / 2e-6).epsilon(1e-6).margin(1e-9));
    }
  }

  // Weights 1/N are the mean loss; a forward without weights is the mean again.
  m.forward(x, labels, std::vector<double>(4, 0.25), Mode::inference);
  const double weighted_mean = m.loss();
  m.forward(x, labels, Mode::inference);
  REQUIRE(double(m.loss()) == Approx(weighted_mean).epsilon(1e-12));

  // An added gradient serves one backward: a forward pass drops it.
  m.forward(x, labels, Mode::training);
  m.backward();
  const std::vector<double> plain = m.layer("mid").params()[0]->grad.to_vector();
  m.add_output_gradient("gap", r);
  m.forward(x, labels, Mode::training);
  m.backward();
  REQUIRE(m.layer("mid").params()[0]->grad.to_vector() == plain);
  m.add_output_gradient("gap", r);
  m.backward();
  REQUIRE(m.layer("mid").params()[0]->grad.to_vector() != plain);
}

TEST_CASE("sample weights and added gradients are checked", "[graph][semi-supervised][errors]") {
  Model<double> m = branched_network<double>(false);
  Random rng(3);
  const Tensor<double> x = random_tensor<double>({2, 3, 8, 8}, rng);
  REQUIRE_THROWS_WITH(m.add_output_gradient("gap", Tensor<double>({2, 5, 1, 1})),
                      Catch::Contains("call forward(images, labels) first"));
  REQUIRE_THROWS_WITH(m.forward(x, std::vector<int>{0, 1}, std::vector<double>{1}),
                      Catch::Contains("2 labels and 1 sample weights for a batch of 2"));
  REQUIRE_THROWS_WITH(m.forward(x, std::vector<int>{0, 1}, std::vector<double>{1, -1}),
                      Catch::Contains("sample weight -1 of sample 1"));
  m.forward(x, std::vector<int>{0, 1}, std::vector<double>{1, 0});
  REQUIRE_THROWS_WITH(m.add_output_gradient("gap", Tensor<double>({3, 5, 1, 1})),
                      Catch::Contains("a gradient of shape") && Catch::Contains("for 'gap'"));
  REQUIRE_THROWS_WITH(m.add_output_gradient("nowhere", Tensor<double>({2, 5, 1, 1})), Catch::Contains("no layer named"));
  // Nothing up to the pooled features trains: a feature loss could change nothing.
  m.freeze_up_to("gap");
  m.forward(x, std::vector<int>{0, 1});
  REQUIRE_THROWS_WITH(m.add_output_gradient("gap", Tensor<double>({2, 5, 1, 1})),
                      Catch::Contains("no gradient flows through 'gap'"));
  REQUIRE_NOTHROW(m.add_output_gradient("fc", Tensor<double>({2, 3, 1, 1})));
}

TEST_CASE("on the CPU engine a batch norm with running statistics is folded into the convolution before it",
          "[graph][inference][engine]") {
  // conv (no bias) -> batch norm -> ReLU, as torchvision's GoogLeNet and Inception-v3 are built.
  auto network = [](bool frozen) {
    Model<float> m(6);
    m.add(std::make_unique<ImageInput<float>>("input", 3, 8, 8));
    Conv2dOptions o;
    o.filters = 20;
    o.padding = 1;
    o.bias = false;
    m.add(std::make_unique<Conv2d<float>>("conv", o));
    m.add(std::make_unique<BatchNorm<float>>("bn"));
    m.add(std::make_unique<Relu<float>>("relu"));
    m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
    m.add(std::make_unique<FullyConnected<float>>("fc", 3));
    m.add(std::make_unique<Softmax<float>>("softmax"));
    m.add(std::make_unique<Classification<float>>("output"));
    Random rng(2);
    m.build();
    auto& bn = m.layer_as<BatchNorm<float>>("bn");
    bn.state()[0].tensor->copy_from(random_tensor<float>({1, 20, 1, 1}, rng, -0.5, 0.5));
    bn.state()[1].tensor->copy_from(random_tensor<float>({1, 20, 1, 1}, rng, 0.5, 2));
    bn.params()[0]->value.copy_from(random_tensor<float>({1, 20, 1, 1}, rng, 0.5, 1.5));
    bn.params()[0]->changed();
    if (frozen) m.freeze_up_to("relu");
    return m;
  };
  Random rng(3);
  const Tensor<float> x = random_tensor<float>({4, 3, 8, 8}, rng);
  const std::vector<int> labels{0, 1, 2, 0};
  Model<float> m = network(false);
  m.set_inference_fusion(false);
  const std::vector<float> separate = m.forward(x, Mode::inference).to_vector();
  const std::vector<float> relu_separate = m.activation("relu").to_vector();
  m.set_inference_fusion(true);
  const std::vector<float> folded = m.forward(x, Mode::inference).to_vector();
  CHECK(max_rel_diff(m.activation("relu").to_vector(), relu_separate) < 1e-5);
  CHECK(max_rel_diff(folded, separate) < 1e-5);
  if (onednn::preferred_block() > 0) {
    REQUIRE_THROWS_WITH(m.activation("bn"), Catch::Contains("fused with") && Catch::Contains("'relu'"));
    REQUIRE_THROWS_WITH(m.activation("conv"), Catch::Contains("batch normalization 'bn'"));
  }
  // Training with the batch norm learning: its batch statistics, nothing folded.
  m.forward(x, labels, Mode::training);
  REQUIRE_NOTHROW(m.activation("bn"));
  // A frozen base folds in its training passes as in inference: the same bits.
  Model<float> f = network(true);
  const std::vector<float> inference = f.forward(x, Mode::inference).to_vector();
  f.forward(x, labels, Mode::training);
  REQUIRE(f.prediction().to_vector() == inference);
}

TEST_CASE("a model in bfloat16 trains with float32 master weights and solver state", "[graph][engine][bf16]") {
  Random rng(21);
  const Tensor<float> x = random_tensor<float>({4, 3, 8, 8}, rng);
  const std::vector<int> labels{0, 1, 2, 1};
  if (!onednn::bf16_supported()) {
    Model<float> m = small_network<float>(6);
    REQUIRE_THROWS_WITH(m.set_precision(Precision::bf16), Catch::Contains("AVX512-BF16"));
    return;
  }
  std::vector<float> initial;
  struct Run {
    std::vector<float> loss, weights;
  };
  const auto train = [&](Precision p) {
    Model<float> m = small_network<float>(6);
    m.set_precision(p);
    REQUIRE(m.precision() == p);
    m.build();
    initial = m.layer_as<Conv2d<float>>("conv1").weight().value.to_vector();
    Sgdm<float> solver;
    Run r;
    for (int step = 0; step < 3; ++step) {
      m.forward(x, labels);
      r.loss.push_back(m.loss());
      m.backward();
      solver.step(m, 0.05);
    }
    r.weights = m.layer_as<Conv2d<float>>("conv1").weight().value.to_vector();
    return r;
  };
  const Run fp32 = train(Precision::fp32), bf16 = train(Precision::bf16);
  std::vector<float> loss[2] = {fp32.loss, bf16.loss}, weights[2] = {fp32.weights, bf16.weights};
  // Run to run, bfloat16 is as reproducible as float32 (the conversions round to nearest even).
  REQUIRE(train(Precision::bf16).weights == bf16.weights);
  // bfloat16 operands: close to the float32 run, not equal to it.
  for (int step = 0; step < 3; ++step) CHECK(loss[1][size_t(step)] == Approx(loss[0][size_t(step)]).epsilon(2e-2));
  CHECK(weights[0] != initial);  // it learned
  CHECK(weights[1] != weights[0]);
  CHECK(max_rel_diff(weights[1], weights[0]) < 1e-2);
  // The master weights stay float32: updates smaller than bfloat16's spacing are kept (some
  // weights have bits below bfloat16's 16 high ones).
  const auto below_bf16 = [](float v) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return (bits & 0xffffu) != 0;
  };
  CHECK(std::count_if(weights[1].begin(), weights[1].end(), below_bf16) > 0);
  // A layer replaced later (a new classifier) runs in the model's precision too; CUDA refuses it.
  Model<float> m = small_network<float>(6);
  m.set_precision(Precision::bf16);
  m.replace("fc", std::make_unique<FullyConnected<float>>("fc", 3));
  m.forward(x, labels);
  REQUIRE(std::isfinite(m.loss()));
  REQUIRE_THROWS_AS(m.to(Device::cuda), DeviceError);
}
