// Transfer against scratch (transfer/compare.hpp): the statistics against values computed by hand,
// the summary's entries, the console lines and the chart's panels.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include <ewnet/transfer/compare.hpp>

using namespace ewnet;
using namespace ewnet::transfer;

namespace {
/// A stage whose epochs validated at `accuracies` (loss 1 - accuracy), 48 validation images.
StageResult stage(StageKind kind, Method method, const std::vector<double>& accuracies) {
  StageResult s;
  s.kind = kind;
  s.method = method;
  s.folder = "run/" + s.name();
  for (size_t e = 0; e < accuracies.size(); ++e) {
    train::EpochRecord r;
    r.epoch = int(e) + 1;
    r.val_accuracy = accuracies[e];
    r.val_loss = 1 - accuracies[e];
    s.history.epochs.push_back(r);
    if (accuracies[e] > s.history.best_val_accuracy) {
      s.history.best_val_accuracy = accuracies[e];
      s.history.best_epoch = r.epoch;
    }
  }
  s.history.seconds = 6;
  return s;
}
}  // namespace

TEST_CASE("the mean over the epochs and the standard error, by hand", "[transfer][compare]") {
  CHECK(mean_validation_accuracy(stage(StageKind::scratch, Method::all, {0.5, 0.75, 1.0}).history) == 0.75);
  CHECK(mean_validation_accuracy(train::History{}) == 0);
  // sqrt(0.75 * 0.25 / 48) = sqrt(1 / 256) = 1/16
  CHECK(standard_error(0.75, 48) == 0.0625);
  CHECK(standard_error(0.25, 48) == 0.0625);
  CHECK(standard_error(1.0, 48) == 0);
  CHECK(standard_error(0.5, 0) == 0);
}

TEST_CASE("transfer against scratch: the gain, the noise and the verdict", "[transfer][compare]") {
  const StageResult transfer = stage(StageKind::transfer, Method::all, {0.5, 0.75, 1.0});  // mean 0.75
  const StageResult scratch = stage(StageKind::scratch, Method::all, {0.25, 0.25});        // mean 0.25
  const Comparison c = compare(transfer, scratch, 48);
  CHECK(c.method == Method::all);
  CHECK(c.mean_gain == Approx(50).epsilon(1e-12));
  CHECK(c.best_gain == Approx(75).epsilon(1e-12));
  CHECK(c.one_image == Approx(100.0 / 48).epsilon(1e-12));
  // Twice the standard error of the difference: 2 sqrt(1/256 + 1/256) = sqrt(2) / 8, in points.
  CHECK(c.noise == Approx(100 * std::sqrt(2.0) / 8).epsilon(1e-12));
  CHECK(c.outside_noise);
  CHECK(c.verdict() == "a clear gain");
  CHECK(compare(scratch, transfer, 48).verdict() == "a clear loss");
  // 5 points on 48 images is inside the noise (about 20 points there).
  const Comparison close =
      compare(stage(StageKind::transfer, Method::frozen_base, {0.5}), stage(StageKind::scratch, Method::all, {0.45}), 48);
  CHECK(close.mean_gain == Approx(5).epsilon(1e-9));
  CHECK_FALSE(close.outside_noise);
  CHECK(close.verdict() == "inside the noise of this validation set");
  REQUIRE_THROWS_WITH(compare(transfer, scratch, 0), Catch::Contains("no validation images"));

  const json::Value v = c.to_json();
  CHECK(v.at("recipe").as_string() == "all");
  CHECK(v.at("mean_accuracy_gain_points").as_number() == c.mean_gain);
  CHECK(v.at("two_standard_errors_points").as_number() == c.noise);
  CHECK(v.at("outside_noise").as_bool());
  CHECK_THAT(comparison_text(c),
             Catch::StartsWith("transfer, all against scratch: +50.0 points of mean accuracy over the epochs, +75.0 at "
                               "the best epoch; one validation image is 2.1 points and twice the standard error of the "
                               "difference 17.7, so this is a clear gain"));
}

TEST_CASE("the stages by kind, never by their names: summary entries, lines and chart series", "[transfer][compare]") {
  const std::vector<StageResult> stages{stage(StageKind::source, Method::all, {0.5, 0.5}),
                                        stage(StageKind::transfer, Method::all, {0.5, 0.75, 1.0}),
                                        stage(StageKind::transfer, Method::frozen_base, {0.5, 0.5, 0.5}),
                                        stage(StageKind::scratch, Method::all, {0.25, 0.25, 0.25})};
  CHECK(stages[0].name() == "source, from scratch");
  CHECK(stages[2].name() == "transfer, frozen-base");
  CHECK(stages[3].name() == "target, from scratch");

  json::Value summary = json::Value::object();
  add_stages(summary, stages);
  CHECK(summary.at("source").at("epochs").as_int() == 2);
  CHECK(summary.at("transfer").at("all").at("best_epoch").as_int() == 3);
  CHECK(summary.at("transfer").at("all").at("mean_validation_accuracy").as_number() == 0.75);
  CHECK(summary.at("transfer").at("frozen-base").at("final_validation_accuracy").as_number() == 0.5);
  CHECK(summary.at("scratch").at("seconds_per_epoch").as_number() == 2);
  CHECK(summary.at("scratch").at("folder").as_string() == "run/target, from scratch");

  const std::string table = summary_table(stages);
  CHECK_THAT(table, Catch::Contains("transfer, all                       100.00% (3 of 3)          100.00%   75.00%  2.00 s"));
  CHECK(std::count(table.begin(), table.end(), '\n') == 5);

  // The chosen recipe is the first transfer stage; no comparison without scratch or validation images.
  const std::optional<Comparison> chosen = compare_stages(stages, 48);
  REQUIRE(chosen);
  CHECK(chosen->method == Method::all);
  CHECK(chosen->mean_gain == compare(stages[1], stages[3], 48).mean_gain);
  CHECK_FALSE(compare_stages(stages, 0));
  CHECK_FALSE(compare_stages({stages[0], stages[1]}, 48));
  const Comparison& c = *chosen;
  const std::vector<train::Panel> panels = comparison_panels(stages, &c);
  REQUIRE(panels.size() == 2);
  CHECK(panels[0].title == "Validation accuracy on the target (transfer +50.0 points over the epochs, noise +-17.7)");
  REQUIRE(panels[0].series.size() == 3);  // the source is not on the target's chart
  CHECK(panels[0].series[0].name == "transfer, all");
  CHECK(panels[0].series[0].colour == "#1b9e77");
  CHECK(panels[0].series[1].colour == "#7570b3");
  CHECK(panels[0].series[2].name == "from scratch");
  CHECK(panels[0].series[2].colour == "#d95f02");
  CHECK(panels[0].series[0].y == std::vector<double>{50, 75, 100});
  CHECK(panels[1].series[0].y == std::vector<double>{0.5, 0.25, 0.0});
  CHECK(comparison_panels(stages, nullptr)[0].title == "Validation accuracy on the target");
}
