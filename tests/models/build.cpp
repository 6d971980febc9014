// build_model(): the four networks by name, their sizes against torchvision's and their heads.
#include "test_util.hpp"

#include <fstream>
#include <iterator>

#include <ewnet/models/build.hpp>

using namespace ewnet;

TEST_CASE("build_model builds the four networks with torchvision's parameter counts", "[models]") {
  // torchvision 0.14, num_classes=8, aux_logits=False: sum(p.numel() for p in m.parameters()).
  struct Want {
    const char* name;
    int size;
    size_t parameters;
  };
  for (const Want w : {Want{"resnet18", 64, 11180616}, Want{"googlenet", 64, 5608104},
                       Want{"inception-v3", 75, 21801960}, Want{"paper", 64, 1476168}}) {
    INFO(w.name);
    Model<float> m = build_model<float>(w.name, 8, w.size, 1);
    REQUIRE(m.parameter_count() == w.parameters);
    REQUIRE(m.classes() == 8);
    REQUIRE(m.has_layer("fc"));
  }
  REQUIRE_THROWS_WITH(build_model<float>("alexnet", 8, 64, 1), Catch::Contains("no model named 'alexnet'"));
  REQUIRE_THROWS_WITH(build_model<float>("inception-v3", 8, 64, 1), Catch::Contains("at least 75"));
}

TEST_CASE("the auxiliary classifiers are an option with torchvision's names and sizes", "[models][auxiliary]") {
  // torchvision 0.14, num_classes=8, aux_logits=True: sum(p.numel() for p in m.parameters()).
  ModelOptions aux;
  aux.auxiliary_classifiers = true;
  Model<float> g = build_model<float>("googlenet", 8, 64, 1, aux);
  REQUIRE(g.parameter_count() == 9954488);
  REQUIRE(g.auxiliary_losses() == std::vector<std::string>{"aux1.output", "aux2.output"});
  REQUIRE(g.auxiliary_inputs("aux1.output") == std::vector<std::string>{"inception4a.concat"});
  REQUIRE(g.auxiliary_inputs("aux2.output") == std::vector<std::string>{"inception4d.concat"});
  for (const char* n : {"aux1.conv.conv", "aux1.conv.bn", "aux1.fc1", "aux1.fc2", "aux2.fc2"}) REQUIRE(g.has_layer(n));
  REQUIRE(g.layer_as<Classification<float>>("aux2.output").weight() == 0.3);
  REQUIRE(classifier_layers(g) == std::vector<std::string>{"fc", "aux1.fc2", "aux2.fc2"});
  REQUIRE(feature_layer(g) == "avgpool");

  Model<float> i = build_model<float>("inception-v3", 8, 299, 1, aux);
  REQUIRE(i.parameter_count() == 24365808);
  REQUIRE(i.auxiliary_inputs("AuxLogits.output") == std::vector<std::string>{"Mixed_6e.concat"});
  REQUIRE(i.layer_as<Classification<float>>("AuxLogits.output").weight() == 0.4);
  REQUIRE(feature_layer(i) == "avgpool");  // AuxLogits.avgpool is the auxiliary classifier's own
  REQUIRE(i.output_shape("AuxLogits.conv1.relu") == Shape(1, 768, 1, 1));
  REQUIRE_THROWS_WITH(build_model<float>("inception-v3", 8, 298, 1, aux), Catch::Contains("at least 299x299"));
  REQUIRE_THROWS_WITH(build_model<float>("resnet18", 8, 64, 1, aux), Catch::Contains("no auxiliary classifiers"));
  REQUIRE_THROWS_WITH(build_model<float>("paper", 8, 64, 1, aux), Catch::Contains("no auxiliary classifiers"));

  // GoogLeNet's run at its smallest size (inception4a at 2x2, pooled up to 4x4): the prediction is
  // the network's without them, and training adds their losses.
  Model<float> small = build_model<float>("googlenet", 3, 32, 4, aux);
  Model<float> plain = build_model<float>("googlenet", 3, 32, 4);
  Random rng(4);
  const Tensor<float> x = test::random_tensor<float>({2, 3, 32, 32}, rng);
  REQUIRE(small.forward(x).to_vector() == plain.forward(x).to_vector());
  small.forward(x, {0, 2});
  REQUIRE(small.loss() > small.main_loss());
  small.backward();
  REQUIRE(small.layer("aux1.fc1").backward_calls() == 1);
}

TEST_CASE("the torchvision networks use torchvision's module names, batch norm after every convolution",
          "[models]") {
  Model<float> r = build_model<float>("resnet18", 4, 32, 1);
  for (const char* n : {"conv1", "bn1", "layer1.0.conv1", "layer2.0.downsample.0", "layer2.0.downsample.1",
                        "layer4.1.bn2", "fc"})
    REQUIRE(r.has_layer(n));
  REQUIRE(r.layer("layer3.0.downsample.1").type() == "batch_norm");
  Model<float> g = build_model<float>("googlenet", 4, 32, 1);
  for (const char* n : {"conv1.conv", "conv1.bn", "inception3a.branch2.1.conv", "inception5b.branch4.1.bn"})
    REQUIRE(g.has_layer(n));
  size_t convs = 0, bns = 0;
  for (Layer<float>* l : g.layers()) {
    convs += l->type() == "conv2d";
    bns += l->type() == "batch_norm";
  }
  REQUIRE(convs == 57);
  REQUIRE(bns == 57);  // torchvision's googlenet state_dict: 57 num_batches_tracked
}

TEST_CASE("every network's head starts at its one global average pooling", "[models]") {
  struct Want {
    const char* name;
    int size;
    const char* feature;
    const char* last_base;
    int features;
  };
  for (const Want w : {Want{"paper", 32, "pool5-gap", "inception_4a-residual_relu", 512},
                       Want{"resnet18", 32, "avgpool", "layer4.1.relu", 512},
                       Want{"googlenet", 32, "avgpool", "inception5b.concat", 1024},
                       Want{"inception-v3", 75, "avgpool", "Mixed_7c.concat", 2048}}) {
    INFO(w.name);
    Model<float> m = build_model<float>(w.name, 3, w.size, 2);
    REQUIRE(feature_layer(m) == w.feature);
    REQUIRE(last_base_layer(m) == w.last_base);
    REQUIRE(m.output_shape(w.feature).c == w.features);
  }
}

TEST_CASE("the torchvision networks run forward and backward at their smallest sizes", "[models]") {
  Random rng(3);
  for (const char* name : {"resnet18", "googlenet"}) {
    INFO(name);
    Model<float> m = build_model<float>(name, 3, 32, 4);
    const Tensor<float> x = test::random_tensor<float>({2, 3, 32, 32}, rng);
    m.forward(x, {0, 2});
    REQUIRE(std::isfinite(m.loss()));
    m.backward();
    REQUIRE(m.prediction().c() == 3);
  }
}

TEST_CASE("docs/models/*.txt are the networks' summaries, as built today", "[models][docs]") {
  // docs/model.md points to these files for the layer lists; regenerate them when this fails:
  // the summary of build_model(name, 1000, design_image_size(name), 0), and NAME-aux.txt with the
  // auxiliary classifiers.
  for (const std::string name : {"googlenet", "resnet18", "inception-v3", "googlenet-aux", "inception-v3-aux"}) {
    INFO(name);
    std::ifstream in(std::string(EWNET_SOURCE_DIR) + "/docs/models/" + name + ".txt");
    REQUIRE(in.good());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ModelOptions o;
    o.auxiliary_classifiers = name.size() > 4 && name.compare(name.size() - 4, 4, "-aux") == 0;
    const std::string net = o.auxiliary_classifiers ? name.substr(0, name.size() - 4) : name;
    Model<float> m = build_model<float>(net, 1000, design_image_size(net), 0, o);
    REQUIRE(text == m.summary());
  }
}
