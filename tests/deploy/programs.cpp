// ewnet-calibrate, ewnet-classify (CSV, --reject, --explain) and ewnet-export as a user runs them.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <ewnet/deploy/rejection.hpp>
#include <ewnet/io/checkpoint.hpp>

#include "deploy_util.hpp"
#include "test_files.hpp"

#ifdef EWNET_CLASSIFY_BIN
using namespace ewnet;

namespace {
using ewnet::test::run_command;
std::pair<int, std::string> run(const std::string& command) { return run_command(command); }
std::string q(const std::filesystem::path& p) { return "\"" + p.string() + "\""; }
std::vector<std::string> lines(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::vector<std::string> v;
  for (std::string l; std::getline(f, l);) v.push_back(l);
  return v;
}
}  // namespace

TEST_CASE("ewnet-calibrate stores thresholds and ewnet-classify --reject --csv answers unknown below them",
          "[programs]") {
  const auto dir = test::fresh_dir("ewnet_test_deploy_programs");
  Model<float> m = test::colour_model();
  SaveOptions so;
  so.metadata["ewnet.classes"] = R"(["blue", "red"])";
  const auto ckpt = dir / "colours.safetensors";
  save_checkpoint(m, ckpt.string(), so);
  Random rng(8);
  for (const char* cls : {"blue", "red"}) {
    std::filesystem::create_directories(dir / "known" / cls);
    for (int i = 0; i < 20; ++i) {
      const double v = rng.uniform(150, 255), tint = rng.uniform(0, 60);
      const bool red = std::string(cls) == "red";
      data::write_png((dir / "known" / cls / ("img" + std::to_string(i) + ".png")).string(),
                      test::solid(red ? v : tint, 0, red ? tint : v, 12));
    }
  }
  std::filesystem::create_directories(dir / "unknown");
  data::write_png((dir / "unknown" / "dark.png").string(), test::solid(10, 10, 10, 12));
  data::write_png((dir / "unknown" / "grey, bright.png").string(), test::solid(128, 128, 128, 12));
  data::write_png((dir / "unknown" / "red.png").string(), test::solid(240, 0, 0, 12));

  {
    const auto [status, out] = run(std::string(EWNET_CALIBRATE_BIN) + " " + q(ckpt) + " " + q(dir / "known") +
                                   " --rate 0.1 --unknown " + q(dir / "unknown"));
    INFO(out);
    REQUIRE(status == 0);
    REQUIRE_THAT(out, Catch::Contains("reject below max probability") && Catch::Contains("AUROC"));
  }
  const auto meta = read_checkpoint_metadata(ckpt.string());
  REQUIRE(meta.count(kRejectionMetadataKey) == 1);
  const auto t = RejectionThresholds::from_json(json::parse(meta.at(kRejectionMetadataKey), "metadata"));
  REQUIRE(t.false_rejection_rate == 0.1);
  REQUIRE(t.validation_images == 8);  // 20% of each class

  const auto csv = dir / "out.csv";
  const auto [status, out] = run(std::string(EWNET_CLASSIFY_BIN) + " " + q(ckpt) + " " + q(dir / "unknown") +
                                 " --reject --top 2 --no-progress --csv " + q(csv));
  INFO(out);
  REQUIRE(status == 0);
  const auto rows = lines(csv);
  REQUIRE(rows.size() == 4);
  REQUIRE(rows[0] == "file,class,probability,top_k");
  REQUIRE_THAT(rows[1], Catch::Contains("dark.png,unknown,"));
  REQUIRE_THAT(rows[2], Catch::StartsWith("\"") && Catch::Contains("grey, bright.png\",unknown,0.5"));
  REQUIRE_THAT(rows[3], Catch::Contains("red.png,red,") && Catch::Contains(",red:") && Catch::Contains(";blue:"));
  REQUIRE_THAT(out, Catch::Contains("unknown (rejected)"));

  // Without --reject every image gets a class; a bad --reject-score is a usage error.
  const auto [plain, text] = run(std::string(EWNET_CLASSIFY_BIN) + " " + q(ckpt) + " " + q(dir / "unknown"));
  REQUIRE(plain == 0);
  REQUIRE_THAT(text, !Catch::Contains("rejected"));
  REQUIRE(run(std::string(EWNET_CLASSIFY_BIN) + " " + q(ckpt) + " " + q(dir / "unknown") + " --reject-score x").first == 2);
}

TEST_CASE("ewnet-classify --explain writes a heat map over each image", "[programs]") {
  const auto dir = test::fresh_dir("ewnet_test_deploy_explain");
  Model<float> m = test::every_layer_model();
  const auto ckpt = dir / "model.safetensors";
  save_checkpoint(m, ckpt.string());
  std::filesystem::create_directories(dir / "images" / "a");
  std::filesystem::create_directories(dir / "images" / "b");
  data::write_png((dir / "images" / "a" / "x.png").string(), test::random_image(30, 22, 1));
  data::write_png((dir / "images" / "b" / "x.png").string(), test::random_image(18, 25, 2));
  const auto [status, out] = run(std::string(EWNET_CLASSIFY_BIN) + " " + q(ckpt) + " " + q(dir / "images") +
                                 " --explain " + q(dir / "heat"));
  INFO(out);
  REQUIRE(status == 0);
  const data::Image h1 = data::load_image((dir / "heat" / "x.gradcam.png").string());
  const data::Image h2 = data::load_image((dir / "heat" / "x-2.gradcam.png").string());
  REQUIRE((h1.width == 30 && h1.height == 22));
  REQUIRE((h2.width == 18 && h2.height == 25));
}

#ifdef EWNET_EXPORT_BIN
TEST_CASE("ewnet-export writes an ONNX file with the checkpoint's classes", "[programs]") {
  const auto dir = test::fresh_dir("ewnet_test_deploy_export");
  Model<float> m = test::every_layer_model();
  SaveOptions so;
  so.metadata["ewnet.classes"] = R"(["a", "b", "c", "d", "e"])";
  save_checkpoint(m, (dir / "m.safetensors").string(), so);
  const auto [status, out] = run(std::string(EWNET_EXPORT_BIN) + " " + q(dir / "m.safetensors") + " " + q(dir / "m.onnx"));
  INFO(out);
  REQUIRE(status == 0);
  REQUIRE_THAT(out, Catch::Contains("5 classes") && Catch::Contains("opset 13"));
  std::ifstream f(dir / "m.onnx", std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  REQUIRE_THAT(ss.str(), Catch::Contains(R"(["a","b","c","d","e"])"));
  REQUIRE(run(std::string(EWNET_EXPORT_BIN) + " " + q(dir / "m.safetensors")).first == 2);
}
#endif
#endif
