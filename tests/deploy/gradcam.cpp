// Grad-CAM on a case whose answer is known: a small network trained to tell a red patch from a
// blue one on a noisy background must point at the patch.
#include <catch2/catch.hpp>

#include <ewnet/data/augment.hpp>
#include <ewnet/deploy/classifier.hpp>
#include <ewnet/deploy/gradcam.hpp>

#include "deploy_util.hpp"

using namespace ewnet;

namespace {
constexpr int kSize = 16, kPatch = 4;

/// Dim noise everywhere; one 4x4 patch at (px, py), red for class 0, blue for class 1.
data::Image patch_image(int cls, int px, int py, Random& rng) {
  data::Image img;
  img.width = img.height = kSize;
  for (int i = 0; i < kSize * kSize * 3; ++i) img.rgb.push_back(std::uint8_t(rng.uniform(0, 100)));
  for (int y = py; y < py + kPatch; ++y)
    for (int x = px; x < px + kPatch; ++x) {
      std::uint8_t* p = &img.rgb[size_t(y * kSize + x) * 3];
      p[0] = cls == 0 ? 230 : 40;
      p[1] = 40;
      p[2] = cls == 0 ? 40 : 230;
    }
  return img;
}

Model<float> patch_model() {
  Model<float> m(11);
  m.add(std::make_unique<ImageInput<float>>("input", 3, kSize, kSize));
  m.add(test::conv("conv1", 8, 3, 1, 1));
  m.add(std::make_unique<Relu<float>>("relu1"));
  m.add(test::conv("conv2", 8, 3, 1, 1));
  m.add(std::make_unique<Relu<float>>("relu2"));
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
  m.add(std::make_unique<FullyConnected<float>>("fc", 2));
  m.add(std::make_unique<Softmax<float>>("prob"));
  m.add(std::make_unique<Classification<float>>("output"));
  m.build();
  m.initialize();
  m.input_layer().set_normalization({70, 70, 70}, {60, 60, 60});
  return m;
}
}  // namespace

TEST_CASE("Grad-CAM points at the region that decides the class", "[gradcam]") {
  Model<float> m = patch_model();
  Sgdm<float> solver;
  Random rng(21);
  const int batch = 16;
  for (int step = 0; step < 300; ++step) {
    Tensor<float> x = Tensor<float>::empty({batch, 3, kSize, kSize});
    std::vector<int> labels;
    for (int i = 0; i < batch; ++i) {
      const int cls = int(rng.below(2));
      labels.push_back(cls);
      data::image_to_chw(patch_image(cls, int(rng.below(kSize - kPatch + 1)), int(rng.below(kSize - kPatch + 1)), rng),
                         x.data() + size_t(i) * size_t(3 * kSize * kSize));
    }
    m.forward(x, labels);
    m.backward();
    solver.step(m, 0.02);
  }
  const auto dir = test::fresh_dir("ewnet_test_gradcam");
  const std::string path = (dir / "patches.safetensors").string();
  save_checkpoint(m, path);
  Classifier c(path);

  int correct = 0, on_patch = 0;
  const int trials = 20;
  for (int t = 0; t < trials; ++t) {
    const int cls = t % 2, px = int(rng.below(kSize - kPatch + 1)), py = int(rng.below(kSize - kPatch + 1));
    const data::Image img = patch_image(cls, px, py, rng);
    correct += c.classify(img).top[0].index == cls;
    const HeatMap h = c.explain(img, cls);
    REQUIRE(h.layer == "relu2");
    REQUIRE(h.width == kSize);
    REQUIRE(h.class_index == cls);
    const size_t peak = size_t(std::max_element(h.values.begin(), h.values.end()) - h.values.begin());
    const int x = int(peak) % kSize, y = int(peak) / kSize;
    // the peak within the patch or the ring of pixels a 3x3 convolution sees around it
    on_patch += x >= px - 1 && x <= px + kPatch && y >= py - 1 && y <= py + kPatch;
    if (t == 0) {
      const data::Image over = overlay_heat_map(img, h);
      REQUIRE(over.width == img.width);
      data::write_png((dir / "heat.png").string(), over);
    }
  }
  INFO(correct << " of " << trials << " classified correctly, peaks on the patch in " << on_patch);
  REQUIRE(correct >= 18);
  REQUIRE(on_patch >= 18);
}
