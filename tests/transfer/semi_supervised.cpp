// Semi-supervised fine-tuning (transfer/semi_supervised.hpp, train/unlabeled_batches.hpp): the
// methods as options, the refusal of validation images, a fit that learns from unlabelled images
// (one step counted a step, the unlabelled stream drawn as said), what a resume must find
// unchanged, and the semi-supervised stage in the comparison.
#include <catch2/catch.hpp>

#include <filesystem>
#include <sstream>

#include <data.hpp>
#include <ewnet/data/generated.hpp>
#include <ewnet/transfer/compare.hpp>
#include <ewnet/transfer/stages.hpp>

#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace ewnet;
using namespace ewnet::transfer;

namespace {
SemiSupervisedRecipe method(const std::string& m) {
  SemiSupervisedRecipe r;
  r.method = m;
  return r;
}

/// The generated target (4 classes) at 32x32, and another draw of it as unlabelled images.
struct Generated {
  test::TempDir dir{"ewnet-test-semi-supervised"};
  pipeline::Data target, source;
  std::unique_ptr<data::UnlabeledImages> unlabeled;
  Generated() {
    data::GeneratedOptions g;
    g.image_size = 32;
    g.source_per_class = 4;
    g.target_per_class = 10;
    const auto [source_dir, target_dir] = data::write_generated_dataset(dir.file("data"), g);
    g.seed += 11;
    const auto more = data::write_generated_dataset(dir.file("more"), g);
    std::ostringstream quiet;
    pipeline::DataOptions o;
    o.image_size = 32;
    o.seed = 1;
    o.dir = target_dir;
    target = pipeline::load_data(o, quiet);
    o.dir = source_dir;
    source = pipeline::load_data(o, quiet);
    unlabeled = std::make_unique<data::UnlabeledImages>(more.second, 32, nullptr, 1);
  }
};
const Generated& generated() {
  static const Generated g;
  return g;
}

train::TrainOptions options(const pipeline::Data& d, const std::string& out, int epochs) {
  train::TrainOptions t;
  t.epochs = epochs;
  t.batch = 8;
  t.schedule = LearnRateSchedule::constant(3e-3);
  t.seed = 5;
  t.out_dir = out;
  t.progress = false;
  t.threads = 1;
  return pipeline::on_data(t, d, "generated");
}
}  // namespace

TEST_CASE("semi-supervised methods are named terms joined by '+'", "[transfer][semi]") {
  const losses::SemiSupervisedOptions f = objective_options(method("fixmatch"));
  CHECK(f.pseudo_labels);
  CHECK(f.distribution_alignment);
  CHECK(f.entropy_weight == 0);
  CHECK(f.alignment == losses::FeatureAlignment::none);
  const losses::SemiSupervisedOptions c = objective_options(method("fixmatch+entropy+coral"));
  CHECK(c.pseudo_labels);
  CHECK(c.entropy_weight == 0.1);
  CHECK(c.alignment == losses::FeatureAlignment::coral);
  const losses::SemiSupervisedOptions m = objective_options(method("mmd"));
  CHECK_FALSE(m.pseudo_labels);
  CHECK(m.alignment == losses::FeatureAlignment::mmd);
  CHECK(needs_source_images(method("entropy+cmd")));
  CHECK_FALSE(needs_source_images(method("fixmatch+entropy")));
  CHECK_THROWS_WITH(objective_options(method("mixup")), Catch::Contains("unknown semi-supervised method 'mixup'"));
  CHECK_THROWS_WITH(objective_options(method("fixmatch+")), Catch::Contains("unknown semi-supervised method"));
  CHECK_THROWS_WITH(objective_options(method("mmd+coral")), Catch::Contains("one feature alignment at a time"));
  SemiSupervisedRecipe r = method("fixmatch");
  r.threshold = 1.5;
  CHECK_THROWS_WITH(objective_options(r), Catch::Contains("threshold"));
}

TEST_CASE("unlabelled images equal to a validation image are refused unless transductive", "[transfer][semi]") {
  const Generated& g = generated();
  const data::ImageCache& cache = *g.target.cache;
  // The whole target as "unlabelled": its validation images are among them.
  std::vector<size_t> all(cache.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  const data::UnlabeledPool leaky = data::pool_of(cache, all);
  CHECK_THROWS_WITH(semi_supervised_training(method("fixmatch"), leaky, cache, g.target.split),
                    Catch::Contains(std::to_string(g.target.split.validation.size()) + " of the " +
                                    std::to_string(all.size()) + " unlabelled images are validation images"));
  SemiSupervisedRecipe transductive = method("fixmatch");
  transductive.transductive = true;
  const auto t = semi_supervised_training(transductive, leaky, cache, g.target.split);
  CHECK(t->setting.transductive);
  CHECK(t->setting.validation_images == g.target.split.validation.size());
  CHECK_THAT(t->setting.line(), Catch::StartsWith("transductive (asked for)"));
  // The training images alone are inductive.
  const auto i = semi_supervised_training(method("fixmatch"), data::pool_of(cache, g.target.split.train), cache,
                                          g.target.split);
  CHECK_THAT(i->setting.line(), Catch::StartsWith("inductive: "));
  // Alignment needs the source's images.
  CHECK_THROWS_WITH(semi_supervised_training(method("mmd"), data::pool_of(*g.unlabeled), cache, g.target.split),
                    Catch::Contains("give the source images too"));
}

TEST_CASE("fit learns from unlabelled images: one step a step, the stream drawn as said", "[transfer][semi]") {
  const Generated& g = generated();
  test::TempDir out("ewnet-test-semi-fit");
  const data::UnlabeledPool source = data::pool_of(*g.source.cache, g.source.split.train);
  auto u = semi_supervised_training(method("fixmatch+entropy+mmd"), data::pool_of(*g.unlabeled), *g.target.cache,
                                    g.target.split, source);
  u->ratio = 2;
  train::TrainOptions t = options(g.target, out.file("semi"), 2);
  t.unlabeled = u;
  // A fresh paper model at 32x32, every layer training, its input normalised as train_network does.
  Model<float> m = build_model<float>("paper", 4, 32, 5);
  transfer::detail::normalise_on_training_split(m, *g.target.cache, g.target.split, nullptr, "");
  const train::History h = train::fit(m, *g.target.cache, g.target.split, t);
  const long long steps = 2 * ((long long)(g.target.split.train.size() + 7) / 8);
  CHECK(h.epochs.size() == 2);
  CHECK((long long)m.iteration() == steps);  // the weak views' pass is no step of its own
  CHECK(u->tally->steps == steps);
  CHECK(u->tally->unlabeled == steps * 2 * 8);
  CHECK(u->tally->entropy_sum > 0);
  CHECK(u->tally->alignment_sum > 0);
  CHECK(std::isfinite(h.epochs.back().train_loss));
  // The training accuracy counts the labelled images only.
  CHECK(h.images == 2 * (long long)g.target.split.train.size());
  CHECK_THAT(train::tally_text(*u), Catch::Contains(std::to_string(steps) + " steps with "));

  // The run's settings name the semi-supervised part, so a resume without it (or with another
  // method) is refused; a run without unlabelled images keeps the settings it always had.
  const json::Value with = train::run_settings(t, *g.target.cache, g.target.split);
  CHECK(with.find("semi_supervised"));
  train::TrainOptions plain = t;
  plain.unlabeled = nullptr;
  const json::Value without = train::run_settings(plain, *g.target.cache, g.target.split);
  CHECK_FALSE(without.find("semi_supervised"));
  CHECK_FALSE(without.find("strong_augment"));
  CHECK(train::settings_differences(with, without).size() == 1);
  CHECK(train::settings_differences(without, with).size() == 1);
  plain.resume = true;
  plain.epochs = 3;
  Model<float> again = build_model<float>("paper", 4, 32, 5);
  CHECK_THROWS_WITH(train::fit(again, *g.target.cache, g.target.split, plain),
                    Catch::Contains("semi_supervised (checkpoint {") && Catch::Contains("now absent)"));
}

TEST_CASE("the semi-supervised stage in the summary, against its recipe without unlabelled images",
          "[transfer][semi]") {
  auto stage = [](StageKind kind, const std::vector<double>& accuracies) {
    StageResult s;
    s.kind = kind;
    s.method = Method::all;
    for (size_t e = 0; e < accuracies.size(); ++e) {
      train::EpochRecord r;
      r.epoch = int(e) + 1;
      r.val_accuracy = accuracies[e];
      s.history.epochs.push_back(r);
      if (accuracies[e] > s.history.best_val_accuracy) {
        s.history.best_val_accuracy = accuracies[e];
        s.history.best_epoch = r.epoch;
      }
    }
    return s;
  };
  StageResult semi = stage(StageKind::semi_supervised, {0.5, 1.0});
  semi.semi_supervised = "fixmatch";
  semi.setting = "inductive";
  CHECK(semi.name() == "transfer, all + unlabelled (fixmatch)");
  const std::vector<StageResult> stages{stage(StageKind::transfer, {0.25, 0.75}), semi,
                                        stage(StageKind::scratch, {0.25, 0.25})};
  const std::optional<Comparison> c = compare_semi_supervised(stages, 48);
  REQUIRE(c);
  CHECK(c->mean_gain == Approx(25).epsilon(1e-12));
  CHECK(c->best_gain == Approx(25).epsilon(1e-12));
  CHECK_THAT(comparison_text(*c), Catch::StartsWith("transfer, all + unlabelled (fixmatch) against transfer, all: "
                                                    "+25.0 points of mean accuracy"));
  CHECK(c->to_json().at("against").as_string() == "transfer, all");
  CHECK_FALSE(compare_semi_supervised({stages[0], stages[2]}, 48));
  CHECK_FALSE(compare_semi_supervised({stages[1], stages[2]}, 48));
  // The chosen recipe against scratch is still the supervised transfer stage.
  CHECK(compare_stages(stages, 48)->stage == "transfer, all");
  json::Value summary = json::Value::object();
  add_stages(summary, stages);
  CHECK(summary.at("semi_supervised").at("method").as_string() == "fixmatch");
  CHECK(summary.at("semi_supervised").at("setting").as_string() == "inductive");
  CHECK(summary.at("semi_supervised").at("best_validation_accuracy").as_number() == 1.0);
  const std::vector<train::Panel> panels = comparison_panels(stages, nullptr, &*c);
  CHECK_THAT(panels[0].title, Catch::Contains("unlabelled images +25.0 points over the epochs"));
  CHECK(panels[0].series.size() == 3);
}
