// The paper's model: 67 layers, the task-specific head, input sizes.
#include <catch2/catch.hpp>

#include <ewnet/model.hpp>
#include <ewnet/models/paper_model.hpp>

using namespace ewnet;

TEST_CASE("the paper's model has 67 layers counted the MATLAB way and ends in the named head") {
  Model<float> m = build_paper_model<float>({8, 224, 0});
  REQUIRE(m.layer_count() == 67);
  REQUIRE_THAT(m.summary(), Catch::Contains("67 layers"));
  REQUIRE(m.input_shape() == Shape(1, 3, 224, 224));
  REQUIRE(m.classes() == 8);
  REQUIRE(m.output_shape(kLastFrozenLayer) == Shape(1, 512, 28, 28));
  const auto layers = m.layers();
  REQUIRE(layers.back()->name() == kOutputLayer);
  REQUIRE(layers[layers.size() - 3]->name() == kClassifierLayer);
  // Freezing up to kLastFrozenLayer leaves exactly the classifier trainable.
  m.freeze_up_to(kLastFrozenLayer);
  for (auto& [layer, p] : m.parameters()) REQUIRE(p->trainable() == (layer == kClassifierLayer));
}

TEST_CASE("the paper's model runs at small input sizes and refuses sizes that do not fit") {
  for (int size : {32, 64}) {
    Model<float> m = build_paper_model<float>({4, size, 1});
    const Tensor<float> x({2, 3, size, size});
    const std::vector<float> p = m.forward(x).to_vector();
    REQUIRE(p.size() == 8);
    REQUIRE(p[0] + p[1] + p[2] + p[3] == Approx(1).epsilon(1e-5));
  }
  REQUIRE_THROWS_AS(build_paper_model<float>({4, 36, 0}), Error);
  REQUIRE_THROWS_AS(build_paper_model<float>({1, 64, 0}), Error);
}
