// load_weights(): torchvision-named files (built here without PyTorch) and ewnet checkpoints.
#include "test_util.hpp"

#include <algorithm>
#include <filesystem>

#include <ewnet/io/torchvision.hpp>
#include <ewnet/models/build.hpp>

#include "torchvision_files.hpp"

using namespace ewnet;

namespace {
using test::as_torchvision;

std::string temp(const char* name) { return (std::filesystem::temp_directory_path() / name).string(); }
}  // namespace

TEST_CASE("torchvision-named weights load by name, batch norm included, aux classifiers left out", "[models][io]") {
  Model<float> a = build_model<float>("googlenet", 4, 32, 1);
  Random rng(9);
  for (auto& [layer, p] : a.parameters()) p->value.copy_from(test::random_tensor<float>(p->value.shape(), rng));
  // Running statistics a trained network could have (a variance is positive: a negative one makes
  // NaN that later layers may or may not squash, differently by convolution algorithm).
  for (auto& [layer, s] : a.state_tensors())
    if (layer != "input") s.tensor->copy_from(test::random_tensor<float>(s.tensor->shape(), rng, 0.1, 1));
  io::SafetensorsFile f = as_torchvision(a, true);
  f.metadata["ewnet.input_mean"] = "127.5,127.5,127.5";
  f.metadata["ewnet.input_std"] = "127.5,127.5,127.5";
  const std::string path = temp("ewnet-torchvision-googlenet.safetensors");
  io::write_safetensors(path, f);

  Model<float> b = build_model<float>("googlenet", 4, 32, 2);
  const WeightsLoadResult r = load_weights(b, path);
  REQUIRE_FALSE(r.ewnet_checkpoint);
  REQUIRE(r.classifier_loaded);
  REQUIRE(r.left_out == std::vector<std::string>{"aux1.fc2.weight"});
  const Tensor<float> x = test::random_tensor<float>({2, 3, 32, 32}, rng);
  a.input_layer().set_normalization({127.5f, 127.5f, 127.5f}, {127.5f, 127.5f, 127.5f});
  const std::vector<float> ya = a.forward(x).to_vector(), yb = b.forward(x).to_vector();
  REQUIRE(std::none_of(ya.begin(), ya.end(), [](float v) { return std::isnan(v); }));
  REQUIRE(ya == yb);

  // A file for 4 classes into a 3-class model: an error, unless the classifier may be skipped.
  Model<float> c = build_model<float>("googlenet", 3, 32, 3);
  const std::vector<float> fc_before = c.layer_as<FullyConnected<float>>("fc").weight().value.to_vector();
  REQUIRE_THROWS_WITH(load_weights(c, path), Catch::Contains("fc.weight") && Catch::Contains("shape"));
  WeightsLoadOptions skip;
  skip.skip_classifier_on_mismatch = true;
  REQUIRE_FALSE(load_weights(c, path, skip).classifier_loaded);
  REQUIRE(c.layer_as<FullyConnected<float>>("fc").weight().value.to_vector() == fc_before);
  REQUIRE(test::bitwise_equal(c.layer_as<Conv2d<float>>("conv1.conv").weight().value,
                              a.layer_as<Conv2d<float>>("conv1.conv").weight().value));

  // The wrong network's file names layers the model does not have.
  Model<float> r18 = build_model<float>("resnet18", 4, 32, 1);
  REQUIRE_THROWS_WITH(load_weights(r18, path), Catch::Contains("names no layer"));
  std::filesystem::remove(path);
}

TEST_CASE("auxiliary classifiers load when model and file both have them, else stay out or fresh",
          "[models][io][auxiliary]") {
  ModelOptions aux;
  aux.auxiliary_classifiers = true;
  Model<float> a = build_model<float>("googlenet", 4, 32, 1, aux);
  Random rng(10);
  for (auto& [layer, p] : a.parameters()) p->value.copy_from(test::random_tensor<float>(p->value.shape(), rng));
  const std::string with = temp("ewnet-torchvision-googlenet-aux.safetensors");
  io::write_safetensors(with, as_torchvision(a, false));

  // Both have them: every tensor loads, the auxiliary ones included.
  Model<float> b = build_model<float>("googlenet", 4, 32, 2, aux);
  WeightsLoadResult r = load_weights(b, with);
  REQUIRE(r.left_out.empty());
  REQUIRE(r.fresh.empty());
  REQUIRE(test::bitwise_equal(b.layer_as<FullyConnected<float>>("aux2.fc1").weight().value,
                              a.layer_as<FullyConnected<float>>("aux2.fc1").weight().value));

  // A model without them: the file's auxiliary tensors are reported and left out.
  Model<float> c = build_model<float>("googlenet", 4, 32, 2);
  r = load_weights(c, with);
  REQUIRE(r.left_out.size() == 18);  // per classifier: conv, 4 batch-norm tensors, fc1 and fc2 with biases
  REQUIRE(r.fresh.empty());

  // A file without them (torchvision's pretrained GoogLeNet): the model's keep their fresh weights.
  Model<float> plain = build_model<float>("googlenet", 4, 32, 1);
  const std::string without = temp("ewnet-torchvision-googlenet-noaux.safetensors");
  io::write_safetensors(without, as_torchvision(plain, false));
  Model<float> d = build_model<float>("googlenet", 4, 32, 3, aux);
  const std::vector<float> fresh = d.layer_as<FullyConnected<float>>("aux1.fc1").weight().value.to_vector();
  r = load_weights(d, without);
  REQUIRE(r.fresh.size() == 8);  // aux1 and aux2: conv.conv, conv.bn, fc1, fc2
  REQUIRE(d.layer_as<FullyConnected<float>>("aux1.fc1").weight().value.to_vector() == fresh);

  // The transfer case: a 4-class file into a 3-class model skips fc and both auxiliary fc2.
  Model<float> e = build_model<float>("googlenet", 3, 32, 3, aux);
  WeightsLoadOptions skip;
  skip.skip_classifier_on_mismatch = true;
  REQUIRE_THROWS_WITH(load_weights(e, with), Catch::Contains("shape"));
  r = load_weights(e, with, skip);
  REQUIRE_FALSE(r.classifier_loaded);
  REQUIRE(e.layer_as<FullyConnected<float>>("aux1.fc2").outputs() == 3);
  REQUIRE(test::bitwise_equal(e.layer_as<FullyConnected<float>>("aux1.fc1").weight().value,
                              a.layer_as<FullyConnected<float>>("aux1.fc1").weight().value));
  // An ewnet checkpoint with them, into a 3-class model with them and into one without.
  const std::string ckpt = temp("ewnet-googlenet-aux-checkpoint.safetensors");
  save_checkpoint(a, ckpt);
  Model<float> f = build_model<float>("googlenet", 3, 32, 3, aux);
  REQUIRE_FALSE(load_weights(f, ckpt, skip).classifier_loaded);
  REQUIRE(test::bitwise_equal(f.layer_as<FullyConnected<float>>("aux2.fc1").weight().value,
                              a.layer_as<FullyConnected<float>>("aux2.fc1").weight().value));
  Model<float> h = build_model<float>("googlenet", 4, 32, 3);
  REQUIRE(load_weights(h, ckpt).left_out.size() == 18);
  for (const std::string& p : {with, without, ckpt}) std::filesystem::remove(p);
}

TEST_CASE("load_weights reads ewnet checkpoints too, skipping a mismatched classifier when asked", "[models][io]") {
  Model<float> a = build_model<float>("resnet18", 6, 32, 1);
  a.input_layer().set_normalization({1, 2, 3}, {4, 5, 6});
  const std::string path = temp("ewnet-torchvision-ewnet.safetensors");
  save_checkpoint(a, path);
  Model<float> b = build_model<float>("resnet18", 2, 32, 5);
  WeightsLoadOptions skip;
  skip.skip_classifier_on_mismatch = true;
  const WeightsLoadResult r = load_weights(b, path, skip);
  REQUIRE(r.ewnet_checkpoint);
  REQUIRE_FALSE(r.classifier_loaded);
  REQUIRE(test::bitwise_equal(b.layer_as<Conv2d<float>>("layer4.1.conv2").weight().value,
                              a.layer_as<Conv2d<float>>("layer4.1.conv2").weight().value));
  REQUIRE(b.input_layer().mean() == std::vector<float>{1, 2, 3});
  std::filesystem::remove(path);
}

TEST_CASE("docs/model.md: a ResNet-18 for 4 classes from ImageNet-shaped weights", "[models][docs]") {
  // The file the converter would write for torchvision's resnet18 (1000 classes), with random values.
  Model<float> imagenet = build_model<float>("resnet18", 1000, 32, 7);
  io::SafetensorsFile f = as_torchvision(imagenet, false);
  const std::string file = temp("ewnet-docs-resnet18.safetensors");
  io::write_safetensors(file, f);

  auto net = ewnet::build_model<float>("resnet18", /*classes*/ 4, /*image_size*/ 224, /*seed*/ 0);  // or "paper", "googlenet", "inception-v3"
  ewnet::WeightsLoadOptions o;
  o.skip_classifier_on_mismatch = true;                    // ImageNet's 1000-class fc stays out
  ewnet::load_weights(net, file, o);     // tools/torch_to_safetensors.py --model resnet18 --pretrained

  REQUIRE(net.classes() == 4);
  REQUIRE(test::bitwise_equal(net.layer_as<Conv2d<float>>("layer3.1.conv1").weight().value,
                              imagenet.layer_as<Conv2d<float>>("layer3.1.conv1").weight().value));
  std::filesystem::remove(file);
}

TEST_CASE("a torchvision network's normalisation comes with it whatever the file's origin", "[models][io]") {
  // A state_dict converted without normalisation (an older converter, another tool): ImageNet's,
  // torchvision's convention, for each of its networks; the paper's model gets none.
  for (const char* name : {"resnet18", "googlenet", "inception-v3"}) {
    INFO(name);
    const int size = std::string(name) == "inception-v3" ? 75 : 32;
    Model<float> src = build_model<float>(name, 3, size, 1);
    const std::string path = temp("ewnet-torchvision-no-normalisation.safetensors");
    io::write_safetensors(path, as_torchvision(src, false));
    Model<float> m = build_model<float>(name, 3, size, 2);
    const WeightsLoadResult r = load_weights(m, path);
    REQUIRE(r.normalization == NormalizationSource::torchvision_default);
    REQUIRE(r.normalization_set());
    REQUIRE(r.network == name);
    REQUIRE(m.input_layer().mean()[0] == Approx(123.675f));
    REQUIRE(m.input_layer().stddev()[2] == Approx(57.375f));
    const std::string sentence = normalization_sentence(r, m, path);
    REQUIRE_THAT(sentence, Catch::Contains("ImageNet's") && Catch::Contains("123.7, 116.3, 103.5") &&
                               Catch::Contains("records none") && Catch::Contains(name));
    std::filesystem::remove(path);
  }
  // The file's own wins, and says so.
  Model<float> src = build_model<float>("googlenet", 3, 32, 1);
  io::SafetensorsFile f = as_torchvision(src, false);
  f.metadata["ewnet.input_mean"] = "127.5,127.5,127.5";
  f.metadata["ewnet.input_std"] = "127.5,127.5,127.5";
  const std::string path = temp("ewnet-torchvision-half.safetensors");
  io::write_safetensors(path, f);
  Model<float> m = build_model<float>("googlenet", 3, 32, 2);
  const WeightsLoadResult r = load_weights(m, path);
  REQUIRE(r.normalization == NormalizationSource::file);
  REQUIRE(m.input_layer().mean()[1] == 127.5f);
  REQUIRE_THAT(normalization_sentence(r, m, path), Catch::Contains("127.5") && Catch::Contains("records it") &&
                                                       !Catch::Contains("ImageNet"));
  // A deviation that is not positive is refused before anything loads.
  f.metadata["ewnet.input_std"] = "127.5,0,127.5";
  io::write_safetensors(path, f);
  Model<float> n = build_model<float>("googlenet", 3, 32, 2);
  REQUIRE_THROWS_WITH(load_weights(n, path), Catch::Contains("ewnet.input_std"));
  std::filesystem::remove(path);
  // Inception-v3's weights are made for 299 pixels, the others' for 224.
  REQUIRE(design_image_size("inception-v3") == 299);
  REQUIRE(design_image_size("resnet18") == 224);
}
