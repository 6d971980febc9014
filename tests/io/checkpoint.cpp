#include "test_files.hpp"
#include "test_util.hpp"

#include <filesystem>
#include <fstream>

using namespace ewnet;
using namespace ewnet::test;
namespace fs = std::filesystem;

namespace {
Model<float> net(int classes, std::uint64_t seed = 1) {
  Model<float> m(seed);
  m.add(std::make_unique<ImageInput<float>>("input", 3, 6, 6));
  Conv2dOptions o;
  o.filters = 4;
  o.same = true;
  m.add(std::make_unique<Conv2d<float>>("conv", o));
  m.add(std::make_unique<BatchNorm<float>>("bn"));
  m.add(std::make_unique<Relu<float>>("relu"));
  add_inception(m, "inc", "relu", InceptionFilters{2, 2, 2, 1, 1, 1}, Residual::identity_or_projection);
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
  m.add(std::make_unique<FullyConnected<float>>("fc", classes));
  m.add(std::make_unique<Softmax<float>>("softmax"));
  m.add(std::make_unique<Classification<float>>("output"));
  return m;
}


void train_a_bit(Model<float>& m, int steps) {
  Sgdm<float> solver;
  Random rng(4);
  const Tensor<float> x = random_tensor<float>({4, 3, 6, 6}, rng);
  for (int i = 0; i < steps; ++i) {
    m.forward(x, std::vector<int>(4, i % m.classes()));
    m.backward();
    solver.step(m, 0.05);
  }
}
}  // namespace

TEST_CASE("checkpoint round trip is bitwise, including running statistics and momentum", "[checkpoint]") {
  TempDir dir;
  Model<float> a = net(3, 1);
  a.input_layer().set_normalization({0.1f, 0.2f, 0.3f}, {1.5f, 2.5f, 3.5f});
  train_a_bit(a, 3);
  save_checkpoint(a, dir.file("a.safetensors"), {true, {{"epoch", "7"}}});

  Model<float> b = net(3, 99);  // different initialisation
  const auto meta = load_checkpoint(b, dir.file("a.safetensors"));
  REQUIRE(meta.at("epoch") == "7");
  REQUIRE(b.iteration() == 3);
  auto pa = a.parameters(), pb = b.parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    REQUIRE(bitwise_equal(pa[i].second->value, pb[i].second->value));
    REQUIRE(bitwise_equal(pa[i].second->velocity, pb[i].second->velocity));
  }
  auto sa = a.state_tensors(), sb = b.state_tensors();
  for (size_t i = 0; i < sa.size(); ++i) REQUIRE(bitwise_equal(*sa[i].second.tensor, *sb[i].second.tensor));

  // The same predictions, and the architecture alone rebuilds the model.
  Random rng(5);
  const Tensor<float> x = random_tensor<float>({2, 3, 6, 6}, rng);
  const Tensor<float> ya = a.forward(x).clone();
  REQUIRE(bitwise_equal(b.forward(x), ya));
  Model<float> c = model_from_checkpoint<float>(dir.file("a.safetensors"));
  REQUIRE(c.layer_count() == a.layer_count());
  REQUIRE(bitwise_equal(c.forward(x), ya));
}

TEST_CASE("the file is valid safetensors: header length, JSON, offsets", "[checkpoint]") {
  TempDir dir;
  Model<float> a = net(2);
  save_checkpoint(a, dir.file("a.safetensors"), {false, {}});
  std::ifstream in(dir.file("a.safetensors"), std::ios::binary);
  std::uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  in.read(header.data(), std::streamsize(n));
  const json::Value h = json::parse(header);
  const json::Value& w = h.at("fc.weight");
  REQUIRE(w.at("dtype").as_string() == "F32");
  REQUIRE(w.at("shape").as_array().size() == 2);
  REQUIRE(w.at("shape").as_array()[0].as_int() == 2);
  REQUIRE(h.at("conv.weight").at("shape").as_array().size() == 4);
  REQUIRE(h.at("__metadata__").at("format").as_string() == "pt");
  REQUIRE(!h.contains("fc.weight.momentum"));
  REQUIRE((8 + n) % 8 == 0);
}

TEST_CASE("partial load: everything but the classifier", "[checkpoint][transfer]") {
  TempDir dir;
  Model<float> source = net(8, 1);
  train_a_bit(source, 2);
  save_checkpoint(source, dir.file("source.safetensors"));

  Model<float> target = net(4, 2);
  REQUIRE_THROWS_WITH(load_checkpoint(target, dir.file("source.safetensors")),
                      Catch::Contains("fc.weight") && Catch::Contains("[8, ") && Catch::Contains("[4, "));
  LoadOptions skip;
  skip.skip_layers = {"fc"};
  const auto fc_before = target.layer_as<FullyConnected<float>>("fc").weight().value.clone();
  load_checkpoint(target, dir.file("source.safetensors"), skip);
  REQUIRE(bitwise_equal(target.layer_as<Conv2d<float>>("conv").weight().value,
                        source.layer_as<Conv2d<float>>("conv").weight().value));
  REQUIRE(bitwise_equal(target.layer_as<FullyConnected<float>>("fc").weight().value, fc_before));
}

TEST_CASE("bad checkpoints are errors naming the file and tensor, and change nothing", "[checkpoint][errors]") {
  TempDir dir;
  Model<float> a = net(3);
  save_checkpoint(a, dir.file("good.safetensors"));
  const auto size = fs::file_size(dir.file("good.safetensors"));

  Model<float> b = net(3, 42);
  b.build();
  const auto before = b.layer_as<Conv2d<float>>("conv").weight().value.clone();

  SECTION("missing file") {
    REQUIRE_THROWS_WITH(load_checkpoint(b, dir.file("nope.safetensors")), Catch::Contains("nope.safetensors"));
  }
  SECTION("truncated at every kind of place") {
    for (std::uintmax_t keep : {std::uintmax_t(0), std::uintmax_t(5), std::uintmax_t(40), size / 2, size - 1}) {
      fs::copy_file(dir.file("good.safetensors"), dir.file("cut.safetensors"), fs::copy_options::overwrite_existing);
      fs::resize_file(dir.file("cut.safetensors"), keep);
      INFO("kept " << keep << " of " << size << " bytes");
      REQUIRE_THROWS_AS(load_checkpoint(b, dir.file("cut.safetensors")), IoError);
    }
  }
  SECTION("another architecture") {
    Model<float> other(1);
    other.add(std::make_unique<ImageInput<float>>("input", 3, 6, 6));
    Conv2dOptions o;
    o.filters = 5;
    other.add(std::make_unique<Conv2d<float>>("conv", o));
    other.add(std::make_unique<GlobalAvgPool<float>>("gap"));
    other.add(std::make_unique<FullyConnected<float>>("fc", 3));
    other.add(std::make_unique<Softmax<float>>("softmax"));
    other.add(std::make_unique<Classification<float>>("output"));
    save_checkpoint(other, dir.file("other.safetensors"));
    REQUIRE_THROWS_WITH(load_checkpoint(b, dir.file("other.safetensors")), Catch::Contains("conv.weight"));
  }
  SECTION("another element type") {
    Model<double> d(1);
    d.add(std::make_unique<ImageInput<double>>("input", 3, 6, 6));
    Conv2dOptions o;
    o.filters = 4;
    o.same = true;
    d.add(std::make_unique<Conv2d<double>>("conv", o));
    d.add(std::make_unique<GlobalAvgPool<double>>("gap"));
    d.add(std::make_unique<FullyConnected<double>>("fc", 3));
    d.add(std::make_unique<Softmax<double>>("softmax"));
    d.add(std::make_unique<Classification<double>>("output"));
    save_checkpoint(d, dir.file("double.safetensors"));
    LoadOptions partial;
    partial.ignore_unused = true;
    REQUIRE_THROWS_WITH(load_checkpoint(b, dir.file("double.safetensors"), partial),
                        Catch::Contains("F64") && Catch::Contains("F32"));
  }
  SECTION("not a checkpoint at all") {
    std::ofstream(dir.file("text.safetensors")) << "this is not a checkpoint, just some text";
    REQUIRE_THROWS_AS(load_checkpoint(b, dir.file("text.safetensors")), IoError);
  }
  REQUIRE(bitwise_equal(b.layer_as<Conv2d<float>>("conv").weight().value, before));
}

TEST_CASE("a failed save leaves the previous checkpoint intact", "[checkpoint][errors]") {
  TempDir dir;
  Model<float> a = net(3);
  save_checkpoint(a, dir.file("ckpt.safetensors"));
  const auto size = fs::file_size(dir.file("ckpt.safetensors"));
  std::ifstream original(dir.file("ckpt.safetensors"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(original)), std::istreambuf_iterator<char>());
  REQUIRE_THROWS_AS(save_checkpoint(a, dir.file("no-such-dir/ckpt.safetensors")), IoError);
  // Block the temporary file's name so that this save fails midway: the old file must survive.
  const std::string blocker = io::temporary_name(dir.file("ckpt.safetensors"));
  fs::create_directory(blocker);
  train_a_bit(a, 1);
  REQUIRE_THROWS_WITH(save_checkpoint(a, dir.file("ckpt.safetensors")), Catch::Contains("temporary"));
  std::ifstream after(dir.file("ckpt.safetensors"), std::ios::binary);
  REQUIRE(std::string((std::istreambuf_iterator<char>(after)), std::istreambuf_iterator<char>()) == bytes);
  fs::remove(blocker);
  // Saving over an existing file replaces it atomically and leaves no temporary behind.
  save_checkpoint(a, dir.file("ckpt.safetensors"));
  REQUIRE(fs::file_size(dir.file("ckpt.safetensors")) == size);
  size_t files = 0;
  for (auto& e : fs::directory_iterator(dir.path)) {
    (void)e;
    ++files;
  }
  REQUIRE(files == 1);
}
