// The examples printed in README.md and docs/architecture.md, run as written (with data), so the
// documentation cannot drift from the API.
#include "test_util.hpp"

#include <ewnet/data/unlabeled.hpp>
#include <ewnet/losses/pseudo_labels.hpp>
#include <ewnet/models/paper_model.hpp>

#include <filesystem>
#include <iostream>

using namespace ewnet;

TEST_CASE("docs/architecture.md: a small network, then freeze its base", "[docs]") {
  Random rng(1);
  const Tensor<float> images = test::random_tensor<float>({4, 3, 64, 64}, rng);
  const std::vector<int> labels{0, 3, 5, 7};
  const std::string path = (std::filesystem::temp_directory_path() / "ewnet-docs-source.safetensors").string();

  Model<float> net(/*seed=*/42);
  net.add(std::make_unique<ImageInput<float>>("input", 3, 64, 64));
  Conv2dOptions stem;
  stem.filters = 32; stem.kernel_h = stem.kernel_w = 7; stem.stride = 2; stem.same = true;
  net.add(std::make_unique<Conv2d<float>>("conv1", stem));
  net.add(std::make_unique<Relu<float>>("relu1"));
  net.add(std::make_unique<CrossChannelNorm<float>>("norm1"));
  net.add(std::make_unique<MaxPool<float>>("pool1", PoolOptions{3, 2, 1}));
  std::string out = add_inception(net, "inc1", "pool1", InceptionFilters{16, 16, 32, 4, 8, 8},
                                  Residual::identity_or_projection);
  net.add(std::make_unique<GlobalAvgPool<float>>("gap"), out);
  net.add(std::make_unique<Dropout<float>>("drop", 0.4));
  net.add(std::make_unique<FullyConnected<float>>("fc", 8));
  net.add(std::make_unique<Softmax<float>>("softmax"));
  net.add(std::make_unique<Classification<float>>("output"));
  std::cout << net.summary();

  Sgdm<float> solver;                        // momentum 0.9, L2 1e-4
  net.forward(images, labels);               // images: Tensor<float> [N, 3, 64, 64]
  net.backward();
  solver.step(net, 1e-3);
  save_checkpoint(net, path);

  // Transfer: a new classifier for 4 classes, everything below it frozen.
  net.replace("fc", std::make_unique<FullyConnected<float>>("fc", 4));
  net.freeze_up_to("drop");                  // factors 0: no gradients, no updates below "fc"

  const Tensor<float> conv_before = net.layer_as<Conv2d<float>>("conv1").weight().value.clone();
  net.forward(images, {0, 1, 2, 3});
  net.backward();
  solver.step(net, 1e-3);
  REQUIRE(test::bitwise_equal(net.layer_as<Conv2d<float>>("conv1").weight().value, conv_before));
  REQUIRE(net.layer("conv1").backward_calls() == 1);  // only the step before freezing
  REQUIRE(net.classes() == 4);
  std::filesystem::remove(path);
}

TEST_CASE("README: five lines", "[docs]") {
  // The README's lines at a small image size so the test stays quick.
  Random rng(2);
  const Tensor<float> images = test::random_tensor<float>({2, 3, 64, 64}, rng);
  const std::vector<int> labels{1, 6};
  const std::string path = (std::filesystem::temp_directory_path() / "ewnet-readme-source.safetensors").string();

  auto net = ewnet::build_paper_model<float>({/*classes=*/8, /*image_size=*/64, /*seed=*/1});
  ewnet::Sgdm<float> solver;                               // momentum 0.9, L2 1e-4, as MATLAB
  net.forward(images, labels); net.backward(); solver.step(net, 1e-3);
  ewnet::save_checkpoint(net, path);                      // readable by PyTorch's safetensors

  REQUIRE(net.layer_count() == 67);
  REQUIRE(std::isfinite(net.loss()));
  std::filesystem::remove(path);
}

TEST_CASE("docs/architecture.md: a FixMatch step", "[docs]") {
  Random rng(3);
  const Tensor<float> images = test::random_tensor<float>({2, 3, 32, 32}, rng, 0, 255);
  const std::vector<int> labels{1, 0};
  std::vector<data::Image> pool(3);
  for (data::Image& img : pool) {
    img.width = img.height = 32;
    for (int i = 0; i < 3 * 32 * 32; ++i) img.rgb.push_back(std::uint8_t(rng.below(256)));
  }
  data::UnlabeledPool views;
  for (const data::Image& img : pool) {
    views.images.push_back(&img);
    views.names.push_back("image");
  }
  data::UnlabeledLoaderOptions uo;
  uo.batch = 4;
  data::UnlabeledLoader<float> unlabeled(views, uo);
  auto net = build_paper_model<float>({/*classes=*/2, /*image_size=*/32, /*seed=*/1});
  Sgdm<float> solver;
  const std::uint64_t step = 0;

  data::UnlabeledBatch<float> u;
  unlabeled.batch(step, u);                          // weak and strong views of the same images
  const losses::PseudoLabels pseudo = losses::pseudo_labels(net.forward(u.weak), /*threshold=*/0.95);
  const int B = images.n(), U = u.strong.n();
  Tensor<float> both = Tensor<float>::empty(images.shape().with_batch(B + U));
  both.batch(0, B).copy_from(images);
  both.batch(B, U).copy_from(u.strong);
  std::vector<int> targets = labels;
  targets.insert(targets.end(), pseudo.labels.begin(), pseudo.labels.end());
  // mean over the labelled images + 1.0 x mean over the strong views of the confident ones
  net.forward(both, targets, losses::fixmatch_weights(B, pseudo, /*lambda=*/1.0, B + U));
  net.backward();
  solver.step(net, 1e-3);

  REQUIRE(std::isfinite(net.loss()));
  REQUIRE(pseudo.labels.size() == 4);
}
