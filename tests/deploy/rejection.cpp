// Rejection of unknown inputs: the threshold, the AUROC, and a case built so that the answer is
// known: a model that sees red and blue, shown grey.
#include <catch2/catch.hpp>

#include <ewnet/deploy/classifier.hpp>
#include <ewnet/deploy/rejection.hpp>

#include "deploy_util.hpp"

using namespace ewnet;

TEST_CASE("the calibrated threshold rejects the chosen fraction of known scores", "[rejection]") {
  std::vector<double> s;
  for (int i = 99; i >= 0; --i) s.push_back(i);
  REQUIRE(calibrate_threshold(s, 0.05) == 5);
  REQUIRE(accepted_fraction(s, 5) == Approx(0.95));
  REQUIRE(calibrate_threshold(s, 0) == 0);
  REQUIRE_THROWS(calibrate_threshold({}, 0.05));
  REQUIRE_THROWS(calibrate_threshold(s, 1.0));
}

TEST_CASE("AUROC by ranks", "[rejection]") {
  REQUIRE(rejection_auroc({3, 4, 5}, {0, 1, 2}) == 1.0);
  REQUIRE(rejection_auroc({0, 1}, {2, 3}) == 0.0);
  REQUIRE(rejection_auroc({1, 1}, {1, 1}) == 0.5);
  // known {1, 3}, unknown {2, 3}: pairs (1,2) 0, (1,3) 0, (3,2) 1, (3,3) 0.5 -> 1.5 / 4
  REQUIRE(rejection_auroc({1, 3}, {2, 3}) == Approx(0.375));
}

using test::colour_model;
using test::solid;

TEST_CASE("a calibrated checkpoint rejects what it was not trained on and keeps what it was", "[rejection]") {
  const auto dir = test::fresh_dir("ewnet_test_rejection");
  Model<float> m = colour_model();
  const std::string path = (dir / "colours.safetensors").string();
  SaveOptions so;
  so.metadata["ewnet.classes"] = R"(["blue", "red"])";
  save_checkpoint(m, path, so);

  // Known images: red or blue of varied brightness, some with a tint of the other colour.
  Random rng(4);
  std::vector<data::Image> known;
  for (int i = 0; i < 40; ++i) {
    const double v = rng.uniform(150, 255), tint = rng.uniform(0, 60);
    known.push_back(i % 2 ? solid(v, 0, tint, 8) : solid(tint, 0, v, 8));
  }
  Classifier c(path);
  std::vector<double> msp, energy;
  for (const auto& r : c.classify_batch(known)) {
    msp.push_back(r.max_probability);
    energy.push_back(r.energy_score);
  }
  const RejectionThresholds t = calibrate_rejection(msp, energy, 0.05);
  REQUIRE(t.validation_images == 40);
  store_rejection(path, t, path);

  // Unknown: dark images (no evidence for either colour) and grey ones (red and blue at once).
  // Both scores reject the dark ones; only the maximum probability rejects bright grey, whose logits
  // are both large: the energy score reads that as confidence (docs/deployment.md).
  const std::vector<data::Image> dark = {solid(0, 0, 0, 8), solid(30, 30, 30, 8), solid(60, 0, 0, 8)};
  const std::vector<data::Image> grey = {solid(128, 128, 128, 8), solid(220, 220, 220, 8)};
  for (RejectionScore score : {RejectionScore::max_probability, RejectionScore::energy}) {
    INFO(rejection_score_name(score));
    Classifier calibrated(path);
    REQUIRE(calibrated.thresholds().calibrated());
    REQUIRE(calibrated.thresholds().max_probability == Approx(t.max_probability));
    calibrated.set_reject(true, score);
    int kept = 0;
    for (const auto& r : calibrated.classify_batch(known)) kept += r.known;
    REQUIRE(kept >= 38);  // at most 5% of 40 rejected
    for (const auto& r : calibrated.classify_batch(dark)) REQUIRE_FALSE(r.known);
    const auto g = calibrated.classify_batch(grey);
    if (score == RejectionScore::max_probability) {
      for (const auto& r : g) REQUIRE_FALSE(r.known);
    } else {
      REQUIRE(g[1].known);
    }
  }
}
