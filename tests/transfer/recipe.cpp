// The recipes and their freeze plans (transfer/recipe.hpp), decided on a network without training
// it or running a program: what each recipe freezes, slows and caches on the paper's model,
// ResNet-18 and GoogLeNet with its auxiliary classifiers, and what train_from changes.
#include <catch2/catch.hpp>

#include <ewnet/models/build.hpp>
#include <ewnet/transfer/recipe.hpp>

using namespace ewnet;
using namespace ewnet::transfer;

namespace {
FinetuneOptions options(const Recipe& r, const std::string& train_from = "") {
  FinetuneOptions f;
  f.recipe = r;
  f.train_from = train_from;
  return f;
}

struct Expected {
  std::string frozen_to, slow_to, cache_features;
};

void check(Model<float>& m, const FinetuneOptions& f, const Expected& e) {
  const FreezePlan p = plan_recipe(m, f);
  CHECK(p.frozen_to == e.frozen_to);
  CHECK(p.slow_to == e.slow_to);
  CHECK(p.cache_features == e.cache_features);
  // Deciding changed nothing: every layer still trains.
  for (auto& [layer, param] : m.parameters()) {
    INFO(layer << "." << param->name);
    REQUIRE(param->learn_rate_factor == 1);
  }
}
}  // namespace

TEST_CASE("the recipes' plans for the paper's model", "[transfer][recipe]") {
  Model<float> m = build_paper_model<float>({4, 32, 0});
  const std::string base = kLastFrozenLayer;  // inception_4a-residual_relu, feeding pool5-gap
  SECTION("frozen-base: the base frozen, the head from features computed once") {
    check(m, options(Recipe::of(Method::frozen_base)), {base, "", kFeatureLayer});
  }
  SECTION("frozen-base-augmented: the base frozen, augmented images through it") {
    check(m, options(Recipe::of(Method::frozen_base_augmented)), {base, "", ""});
  }
  SECTION("last-block: inception_4a at the base factor, everything before it frozen") {
    check(m, options(Recipe::of(Method::last_block)), {"inception_3b-residual_relu", base, ""});
  }
  SECTION("all: nothing frozen, the base at the base factor") {
    check(m, options(Recipe::of(Method::all)), {"", base, ""});
  }
  SECTION("paper: frozen-base's plan") { check(m, options(Recipe::paper()), {base, "", kFeatureLayer}); }
  SECTION("train_from overrides the method's boundary (the base then at the full rate) and never caches") {
    check(m, options(Recipe::of(Method::frozen_base), "head"), {base, "", ""});
    check(m, options(Recipe::of(Method::frozen_base), "all"), {"", "", ""});
    check(m, options(Recipe::of(Method::all), "inception_4a"), {"inception_3b-residual_relu", "", ""});
    check(m, options(Recipe::of(Method::all), "inception_4a-3x3"), {"inception_4a-relu_3x3_reduce", "", ""});
    REQUIRE_THROWS_WITH(plan_recipe(m, options(Recipe::of(Method::all), "nothing")),
                        Catch::Contains("no layer or module named 'nothing'"));
  }
  SECTION("without the feature cache, frozen-base runs the whole model") {
    FinetuneOptions f = options(Recipe::of(Method::frozen_base));
    f.feature_cache = false;
    check(m, f, {base, "", ""});
  }
}

TEST_CASE("the recipes' plans for ResNet-18: its frozen batch norms cache, last-block is the paper's",
          "[transfer][recipe]") {
  Model<float> m = build_model<float>("resnet18", 4, 32, 0);
  const std::string base = "layer4.1.relu";
  check(m, options(Recipe::of(Method::frozen_base)), {base, "", "avgpool"});
  check(m, options(Recipe::of(Method::frozen_base_augmented)), {base, "", ""});
  check(m, options(Recipe::of(Method::all)), {"", base, ""});
  check(m, options(Recipe::of(Method::all), "layer4"), {"layer3.1.relu", "", ""});
  REQUIRE_THROWS_WITH(plan_recipe(m, options(Recipe::of(Method::last_block))),
                      Catch::Contains("defined for the paper's model") && Catch::Contains("--train-from MODULE"));
}

TEST_CASE("a frozen base's auxiliary classifiers are left out, and its features still cache", "[transfer][recipe]") {
  ModelOptions aux;
  aux.auxiliary_classifiers = true;
  Model<float> m = build_model<float>("googlenet", 4, 32, 0, aux);
  const FreezePlan head = plan_recipe(m, options(Recipe::of(Method::frozen_base)));
  CHECK(head.auxiliary_left_out == std::vector<std::string>{"aux1.output", "aux2.output"});
  CHECK(head.cache_features == "avgpool");
  // Training from inception4e on: aux2 reads inception4d, aux1 inception4a, both frozen.
  CHECK(plan_recipe(m, options(Recipe::of(Method::all), "inception4e")).auxiliary_left_out.size() == 2);
  // Every layer trains: both stay.
  CHECK(plan_recipe(m, options(Recipe::of(Method::all))).auxiliary_left_out.empty());
  REQUIRE(m.auxiliary_losses().size() == 2);  // deciding removed nothing
}

TEST_CASE("the presets: four methods by name and the paper's, which states its settings", "[transfer][recipe]") {
  for (Method m : methods()) {
    const Recipe r = Recipe::named(method_name(m));
    CHECK(r.method == m);
    CHECK_FALSE(r.stated);
    CHECK(parse_method(method_name(m)) == m);
  }
  const Recipe paper = Recipe::named("paper");
  CHECK(paper.method == Method::frozen_base);
  REQUIRE(paper.stated);
  CHECK(paper.stated->image_size == 224);
  CHECK(paper.stated->batch == 64);
  CHECK(paper.stated->epochs == 320);
  CHECK(paper.stated->source_rate == 1e-3);
  CHECK(paper.stated->target_rate == 1e-3);
  CHECK(paper.stated->drop_factor == 0.5);
  CHECK(paper.stated->drop_period == 20);
  CHECK(paper.stated->train_fraction == 0.8);
  CHECK(Recipe::named(method_name(kDefaultRecipe)).method == Method::all);
  REQUIRE_THROWS_WITH(Recipe::named("head"), Catch::Contains("unknown fine-tuning recipe 'head'") &&
                                                 Catch::Contains("paper"));
  // Whether the base trains (a new classifier then learns faster under MATLAB's recipe).
  CHECK(trains_base(options(Recipe::of(Method::all))));
  CHECK(trains_base(options(Recipe::of(Method::last_block))));
  CHECK_FALSE(trains_base(options(Recipe::paper())));
  CHECK_FALSE(trains_base(options(Recipe::of(Method::all), "head")));
  CHECK(trains_base(options(Recipe::of(Method::frozen_base), "inception_4a")));
}
