// ewnet::Classifier: the same preprocessing and probabilities as the model, any image size,
// batches, class names, and one instance shared by several threads.
#include <catch2/catch.hpp>

#include <cmath>
#include <thread>

#include <ewnet/data/augment.hpp>
#include <ewnet/deploy/classifier.hpp>

#include "deploy_util.hpp"

using namespace ewnet;

namespace {
std::string saved_every_layer_model(const std::string& dir_name) {
  const auto dir = test::fresh_dir(dir_name);
  Model<float> m = test::every_layer_model();
  SaveOptions so;
  so.metadata["ewnet.classes"] = R"(["phone", "drill", "laptop", "watch", "camera"])";
  const std::string path = (dir / "model.safetensors").string();
  save_checkpoint(m, path, so);
  return path;
}
}  // namespace

TEST_CASE("Classifier resizes and normalises as training does and ranks the classes", "[classifier]") {
  const std::string path = saved_every_layer_model("ewnet_test_classifier");
  Classifier c(path);
  REQUIRE(c.classes() == 5);
  REQUIRE(c.class_names()[1] == "drill");
  REQUIRE(c.input_width() == 20);

  // A 37x23 image: resized to 20x20 with the training loader's resize, then the model's forward.
  const data::Image img = test::random_image(37, 23, 5);
  Model<float> reference = model_from_checkpoint<float>(path);
  Tensor<float> x = Tensor<float>::empty({1, 3, 20, 20});
  data::image_to_chw(data::resize_bilinear(img, 20, 20), x.data());
  const std::vector<float> want = reference.forward(x, Mode::inference).to_vector();
  const std::vector<float> logits = reference.activation("fc2").to_vector();

  const ClassifierResult r = c.classify_rgb(img.rgb.data(), img.width, img.height, 3);
  REQUIRE(r.probabilities.size() == 5);
  for (int k = 0; k < 5; ++k) REQUIRE(r.probabilities[size_t(k)] == want[size_t(k)]);
  REQUIRE(r.top.size() == 3);
  REQUIRE(r.top[0].probability >= r.top[1].probability);
  REQUIRE(r.top[1].probability >= r.top[2].probability);
  REQUIRE(r.top[0].probability == *std::max_element(want.begin(), want.end()));
  REQUIRE(r.top[0].name == c.class_names()[size_t(r.top[0].index)]);
  REQUIRE(r.max_probability == r.top[0].probability);
  double lse = 0;
  for (float z : logits) lse += std::exp(double(z));
  REQUIRE(r.energy_score == Approx(std::log(lse)).epsilon(1e-5));
  REQUIRE(r.known);

  // The same image from a file.
  const std::string png = (std::filesystem::path(path).parent_path() / "img.png").string();
  data::write_png(png, img);
  const ClassifierResult f = c.classify_file(png, 3);
  REQUIRE(f.probabilities == r.probabilities);
  REQUIRE_THROWS_WITH(c.classify_file(png + ".missing"), Catch::Contains("img.png.missing"));
  REQUIRE_THROWS_WITH(c.set_reject(true), Catch::Contains("no rejection threshold"));
}

TEST_CASE("Classifier batches give each image's own result", "[classifier]") {
  Classifier c(saved_every_layer_model("ewnet_test_classifier_batch"));
  std::vector<data::Image> images;
  for (int i = 0; i < 4; ++i) images.push_back(test::random_image(15 + 9 * i, 40 - 5 * i, 50 + std::uint64_t(i)));
  const std::vector<ClassifierResult> batch = c.classify_batch(images, 5);
  REQUIRE(batch.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    const ClassifierResult one = c.classify(images[i], 5);
    for (int k = 0; k < 5; ++k) REQUIRE(batch[i].probabilities[size_t(k)] == Approx(one.probabilities[size_t(k)]).margin(1e-6));
    REQUIRE(batch[i].top[0].index == one.top[0].index);
  }
  REQUIRE(c.classify_batch({}).empty());
}

TEST_CASE("one Classifier shared by several threads gives every thread the single-threaded answers",
          "[classifier]") {
  Classifier c(saved_every_layer_model("ewnet_test_classifier_threads"));
  std::vector<data::Image> images;
  for (int i = 0; i < 8; ++i) images.push_back(test::random_image(20 + i, 24 - i, 70 + std::uint64_t(i)));
  std::vector<std::vector<float>> want;
  for (const auto& img : images) want.push_back(c.classify(img).probabilities);
  const int threads = 4, rounds = 6;
  std::vector<int> mismatches(threads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int r = 0; r < rounds; ++r)
        for (size_t i = 0; i < images.size(); ++i) {
          const size_t k = (i + size_t(t)) % images.size();  // threads ask in different orders
          if (c.classify(images[k]).probabilities != want[k]) ++mismatches[size_t(t)];
        }
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) REQUIRE(mismatches[size_t(t)] == 0);
}
