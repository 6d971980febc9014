// ewnet::Classifier: the same preprocessing and probabilities as the model, any image size,
// batches, class names, one instance shared by several threads; the checkpoint read once, its
// geometry honoured, its memory estimated before any batch, a bad calibration reported when used.
#include <catch2/catch.hpp>

#include <cmath>
#include <thread>

#include <ewnet/data/augment.hpp>
#include <ewnet/deploy/classifier.hpp>
#include <ewnet/models/build.hpp>

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
  data::image_to_chw(data::resize_cubic(img, 20, 20), x.data());
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

TEST_CASE("a checkpoint is read once: replaced between reads, it cannot give one model's outputs under "
          "another's names", "[classifier][hostile]") {
  // Two checkpoints of the same architecture, other weights and class names; a watcher replaces
  // model.safetensors by the other one each time a reader closes it (a training run saving
  // best.safetensors by rename while a program reads it).
  const auto dir = test::fresh_dir("ewnet_test_classifier_read_once");
  const data::Image img = test::random_image(40, 40, 9);
  std::vector<std::vector<float>> want;
  const std::vector<std::string> names[2] = {{"a0", "a1", "a2", "a3", "a4"}, {"b0", "b1", "b2", "b3", "b4"}};
  for (int k = 0; k < 2; ++k) {
    // A ResNet-18: large enough that building it takes longer than the watcher needs to swap.
    Model<float> m = build_model<float>("resnet18", 5, 32, std::uint64_t(k + 1));
    SaveOptions so;
    json::Value list = json::Value::array();
    for (const std::string& n : names[k]) list.push_back(n);
    so.metadata["ewnet.classes"] = list.dump();
    save_checkpoint(m, (dir / (k ? "b.safetensors" : "a.safetensors")).string(), so);
    want.push_back(Classifier((dir / (k ? "b.safetensors" : "a.safetensors")).string()).classify(img).probabilities);
  }
  REQUIRE(want[0] != want[1]);
  std::filesystem::create_hard_link(dir / "a.safetensors", dir / "model.safetensors");
  std::unique_ptr<Classifier> c;
  {
    test::ReplaceAfterEachRead swapper(dir, "model.safetensors", {dir / "b.safetensors", dir / "a.safetensors"});
    c = std::make_unique<Classifier>((dir / "model.safetensors").string());
    REQUIRE(swapper.reads() == 1);  // read once (replaced by b just after)
  }
  const int which = c->class_names()[0] == "a0" ? 0 : 1;
  REQUIRE(c->class_names() == names[which]);
  REQUIRE(c->classify(img).probabilities == want[size_t(which)]);
  REQUIRE(which == 0);
}

TEST_CASE("the geometry a checkpoint records is the one the Classifier resizes in", "[classifier][resize]") {
  const auto dir = test::fresh_dir("ewnet_test_classifier_geometry");
  Model<float> m = test::every_layer_model();
  SaveOptions so;
  so.metadata[data::kResizeMetadataKey] = "crop";
  save_checkpoint(m, (dir / "crop.safetensors").string(), so);
  Classifier c((dir / "crop.safetensors").string());
  REQUIRE(c.resize_mode() == data::ResizeMode::crop);
  const data::Image img = test::random_image(61, 33, 4);
  Tensor<float> x = Tensor<float>::empty({1, 3, 20, 20});
  data::image_to_chw(data::resize_for_input(img, 20, data::ResizeMode::crop), x.data());
  REQUIRE(c.classify(img).probabilities == m.forward(x, Mode::inference).to_vector());
  // Decoded and resized at once from a file: the same input.
  data::write_png((dir / "img.png").string(), img);
  REQUIRE(c.load((dir / "img.png").string()).rgb == data::resize_for_input(img, 20, data::ResizeMode::crop).rgb);
  so.metadata[data::kResizeMetadataKey] = "stretch";
  save_checkpoint(m, (dir / "bad.safetensors").string(), so);
  REQUIRE_THROWS_WITH(Classifier((dir / "bad.safetensors").string()),
                      Catch::Contains("bad.safetensors") && Catch::Contains("ewnet.resize") && Catch::Contains("stretch"));
}

TEST_CASE("a checkpoint whose input needs more memory than there is is refused before any batch", "[classifier][hostile]") {
  // A few megabytes of weights declaring a 2048x2048 input: 16 channels at full resolution, then
  // pooled away. Its activations (and their gradients) take gigabytes for one image.
  const auto dir = test::fresh_dir("ewnet_test_classifier_memory");
  Model<float> m(1);
  m.add(std::make_unique<ImageInput<float>>("input", 3, 2048, 2048));
  m.add(test::conv("conv1", 16, 3, 1, 1));
  m.add(std::make_unique<Relu<float>>("relu1"));
  m.add(test::conv("conv2", 16, 3, 1, 1));
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
  m.add(std::make_unique<FullyConnected<float>>("fc", 2));
  m.add(std::make_unique<Softmax<float>>("prob"));
  m.add(std::make_unique<Classification<float>>("output"));
  m.build();
  const std::string path = (dir / "huge-input.safetensors").string();
  save_checkpoint(m, path);
  REQUIRE(std::filesystem::file_size(path) < (1u << 20));
  const std::uint64_t per_image = model_memory(m).per_image;
  REQUIRE(per_image > (std::uint64_t(1) << 30));
  ClassifierOptions o;
  o.memory_limit = std::uint64_t(1) << 30;
  REQUIRE_THROWS_WITH(Classifier(path, o), Catch::Contains("huge-input.safetensors") && Catch::Contains("2048x2048") &&
                                               Catch::Contains("GiB") && Catch::Contains("available"));
  // With room for two images and a half, a batch of five runs in parts of two.
  o.memory_limit = model_memory(m).batch(2) + per_image / 2;
  Classifier c(path, o);
  REQUIRE(c.batch_limit() == 2);
}

TEST_CASE("a calibration that does not read stops rejection only, naming the file and the key", "[classifier]") {
  const auto dir = test::fresh_dir("ewnet_test_classifier_bad_rejection");
  Model<float> m = test::every_layer_model();
  SaveOptions so;
  so.metadata[kRejectionMetadataKey] =
      R"({"false_rejection_rate":0.05,"max_probability":null,"energy":1.5,"validation_images":8})";
  save_checkpoint(m, (dir / "m.safetensors").string(), so);
  Classifier c((dir / "m.safetensors").string());
  REQUIRE(c.classify(test::random_image(20, 20, 1)).top.size() == 3);
  REQUIRE_THROWS_WITH(c.set_reject(true), Catch::Contains("m.safetensors") && Catch::Contains("ewnet.rejection") &&
                                              Catch::Contains("max_probability") && Catch::Contains("null"));
}
