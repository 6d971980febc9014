// ewnet-calibrate, ewnet-classify (CSV, --reject, --explain) and ewnet-export as a user runs them.
#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <tuple>

#include <ewnet/data/dataset.hpp>
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
std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
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
  REQUIRE(rows[0] == "file,class,probability,top_k,rejected");
  REQUIRE_THAT(rows[1], Catch::Contains("dark.png,,") && Catch::EndsWith(",true"));
  REQUIRE_THAT(rows[2], Catch::StartsWith("\"") && Catch::Contains("grey, bright.png\",,0.5") && Catch::EndsWith(",true"));
  REQUIRE_THAT(rows[3], Catch::Contains("red.png,red,") && Catch::Contains(",red:") && Catch::Contains(";blue:") &&
                            Catch::EndsWith(",false"));
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

TEST_CASE("ewnet-export refuses a calibration that is not a number and a class list of the wrong length",
          "[programs][hostile]") {
  const auto dir = test::fresh_dir("ewnet_test_deploy_export_bad");
  Model<float> m = test::every_layer_model();
  SaveOptions so;
  so.metadata["ewnet.classes"] = R"(["a", "b", "c", "d", "e"])";
  so.metadata[kRejectionMetadataKey] =
      R"({"false_rejection_rate":0.05,"max_probability":null,"energy":1.5,"validation_images":8})";
  save_checkpoint(m, (dir / "nan.safetensors").string(), so);
  auto [status, out] = run(std::string(EWNET_EXPORT_BIN) + " " + q(dir / "nan.safetensors") + " " + q(dir / "x.onnx"));
  INFO(out);
  REQUIRE(status == 1);
  REQUIRE_THAT(out, Catch::Contains("nan.safetensors") && Catch::Contains("ewnet.rejection") &&
                        Catch::Contains("max_probability"));
  REQUIRE_FALSE(std::filesystem::exists(dir / "x.onnx"));
  so.metadata.erase(kRejectionMetadataKey);
  so.metadata["ewnet.classes"] = R"(["a", "b", "c"])";
  save_checkpoint(m, (dir / "three.safetensors").string(), so);
  std::tie(status, out) = run(std::string(EWNET_EXPORT_BIN) + " " + q(dir / "three.safetensors") + " " + q(dir / "x.onnx"));
  REQUIRE(status == 1);
  REQUIRE_THAT(out, Catch::Contains("names 3 classes") && Catch::Contains("5 outputs"));
  // The ONNX file may not be the checkpoint; a good one records the geometry.
  so.metadata["ewnet.classes"] = R"(["a", "b", "c", "d", "e"])";
  so.metadata[data::kResizeMetadataKey] = "crop";
  save_checkpoint(m, (dir / "good.safetensors").string(), so);
  const std::string before = read_bytes(dir / "good.safetensors");
  std::tie(status, out) = run(std::string(EWNET_EXPORT_BIN) + " " + q(dir / "good.safetensors") + " " + q(dir / "good.safetensors"));
  REQUIRE(status == 1);
  REQUIRE_THAT(out, Catch::Contains("one of this run's inputs"));
  REQUIRE(read_bytes(dir / "good.safetensors") == before);
  REQUIRE(run(std::string(EWNET_EXPORT_BIN) + " " + q(dir / "good.safetensors") + " " + q(dir / "good.onnx")).first == 0);
  REQUIRE_THAT(read_bytes(dir / "good.onnx"), Catch::Contains("ewnet.resize") && Catch::Contains("crop: the shorter side"));
}
#endif

namespace {
/// The colour model saved with class names `names` (blue's, red's) and calibrated on `known`.
void calibrated_colours(const std::filesystem::path& dir, const std::string& names) {
  Model<float> m = test::colour_model();
  SaveOptions so;
  so.metadata["ewnet.classes"] = names;
  save_checkpoint(m, (dir / "colours.safetensors").string(), so);
  RejectionThresholds t;
  t.false_rejection_rate = 0.1;
  t.max_probability = 0.9;
  t.energy = 5;
  t.validation_images = 8;
  store_rejection((dir / "colours.safetensors").string(), t, (dir / "colours.safetensors").string());
}
}  // namespace

TEST_CASE("ewnet-classify --reject: a class named 'unknown' is not a rejection; hidden folders are not searched",
          "[programs][hostile]") {
  const auto dir = test::fresh_dir("ewnet_test_deploy_unknown_class");
  calibrated_colours(dir, R"(["blue", "unknown"])");  // the red class is called "unknown"
  std::filesystem::create_directories(dir / "photos" / ".thumbs");
  data::write_png((dir / "photos" / "dark.png").string(), test::solid(10, 10, 10, 8));   // rejected
  data::write_png((dir / "photos" / "red.png").string(), test::solid(250, 0, 0, 8));     // the class "unknown"
  data::write_png((dir / "photos" / ".thumbs" / "t.png").string(), test::solid(0, 0, 250, 8));
  const auto csv = dir / "out.csv";
  auto [status, out] = run(std::string(EWNET_CLASSIFY_BIN) + " " + q(dir / "colours.safetensors") + " " +
                           q(dir / "photos") + " --reject --no-progress --csv " + q(csv));
  INFO(out);
  REQUIRE(status == 0);
  const auto rows = lines(csv);
  REQUIRE(rows.size() == 3);  // .thumbs/ passed over
  REQUIRE_THAT(rows[1], Catch::Contains("dark.png,,") && Catch::EndsWith(",true"));
  REQUIRE_THAT(rows[2], Catch::Contains("red.png,unknown,") && Catch::EndsWith(",false"));
  REQUIRE_THAT(out, Catch::Contains("dark.png: unknown (rejected);") && Catch::Contains("red.png: unknown 100.0%") &&
                        !Catch::Contains("thumbs"));
  std::tie(status, out) = ewnet::test::run_command(std::string(EWNET_CLASSIFY_BIN) + " " +
                                                   q(dir / "colours.safetensors") + " " + q(dir / "photos") +
                                                   " --reject --json", true);
  REQUIRE(status == 0);
  const json::Value doc = json::parse(out);
  const auto& results = doc.at("results").as_array();
  REQUIRE(results.size() == 2);
  REQUIRE(results[0].at("rejected").as_bool());
  REQUIRE(results[0].at("class").is_null());
  REQUIRE_FALSE(results[1].at("rejected").as_bool());
  REQUIRE(results[1].at("class").as_string() == "unknown");
  // --csv may not name one of the inputs: the checkpoint, a photo.
  const std::string before = read_bytes(dir / "colours.safetensors");
  for (const auto& target : {dir / "colours.safetensors", dir / "photos" / "red.png"}) {
    std::tie(status, out) = run(std::string(EWNET_CLASSIFY_BIN) + " " + q(dir / "colours.safetensors") + " " +
                                q(dir / "photos") + " --csv " + q(target));
    REQUIRE(status == 1);
    REQUIRE_THAT(out, Catch::Contains("--csv") && Catch::Contains("input"));
  }
  REQUIRE(read_bytes(dir / "colours.safetensors") == before);
  REQUIRE(data::load_image((dir / "photos" / "red.png").string()).rgb == test::solid(250, 0, 0, 8).rgb);
}

namespace {
/// Runs `program` with `args` (output discarded); returns its exit status and its peak resident
/// memory in bytes (wait4's ru_maxrss).
std::pair<int, long long> run_measured(const std::string& program, const std::vector<std::string>& args) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::vector<char*> argv{const_cast<char*>(program.c_str())};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::freopen("/dev/null", "w", stdout);
    std::freopen("/dev/null", "w", stderr);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  rusage usage{};
  REQUIRE(::wait4(pid, &status, 0, &usage) == pid);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, usage.ru_maxrss * 1024LL};
}
}  // namespace

TEST_CASE("ewnet-classify resizes each photo as it is decoded: a batch of large photos costs one", "[programs][hostile]") {
  // 12-megapixel photos (36 MB each decoded): a batch of 12 held at full resolution took 430 MB more
  // than one.
  const auto dir = test::fresh_dir("ewnet_test_deploy_big_photos");
  calibrated_colours(dir, R"(["blue", "red"])");
  std::filesystem::create_directories(dir / "one");
  std::filesystem::create_directories(dir / "twelve");
  data::Image big;
  big.width = 4000;
  big.height = 3000;
  big.rgb.assign(std::size_t(4000) * 3000 * 3, 0);
  for (std::size_t i = 0; i < big.rgb.size(); ++i) big.rgb[i] = std::uint8_t((i / 3 % 4000) * 255 / 4000);
  std::vector<std::uint8_t> jpg;
  stbi_write_jpg_to_func([](void* c, void* d, int n) {
    auto* v = static_cast<std::vector<std::uint8_t>*>(c);
    v->insert(v->end(), static_cast<std::uint8_t*>(d), static_cast<std::uint8_t*>(d) + n);
  }, &jpg, big.width, big.height, 3, big.rgb.data(), 80);
  std::ofstream(dir / "one" / "p0.jpg", std::ios::binary).write(reinterpret_cast<const char*>(jpg.data()),
                                                                 std::streamsize(jpg.size()));
  for (int i = 0; i < 12; ++i)
    std::filesystem::create_hard_link(dir / "one" / "p0.jpg", dir / "twelve" / ("p" + std::to_string(i) + ".jpg"));
  const std::string ckpt = (dir / "colours.safetensors").string();
  const auto [one_status, one] = run_measured(EWNET_CLASSIFY_BIN, {ckpt, (dir / "one").string(), "--no-progress"});
  const auto [all_status, all] = run_measured(EWNET_CLASSIFY_BIN, {ckpt, (dir / "twelve").string(), "--no-progress"});
  REQUIRE(one_status == 0);
  REQUIRE(all_status == 0);
  INFO("peak for one photo " << (one >> 20) << " MiB, for twelve " << (all >> 20) << " MiB");
  REQUIRE(all < one + (64 << 20));
}

TEST_CASE("ewnet-classify: a calibration that is not a number is an error only with --reject, naming file and key",
          "[programs][hostile]") {
  const auto dir = test::fresh_dir("ewnet_test_deploy_nan_rejection");
  Model<float> m = test::colour_model();
  SaveOptions so;
  so.metadata["ewnet.classes"] = R"(["blue", "red"])";
  so.metadata[kRejectionMetadataKey] =
      R"({"false_rejection_rate":0.05,"max_probability":0.5,"energy":null,"validation_images":8})";
  save_checkpoint(m, (dir / "c.safetensors").string(), so);
  data::write_png((dir / "red.png").string(), test::solid(250, 0, 0, 8));
  REQUIRE(run(std::string(EWNET_CLASSIFY_BIN) + " " + q(dir / "c.safetensors") + " " + q(dir / "red.png")).first == 0);
  const auto [status, out] = run(std::string(EWNET_CLASSIFY_BIN) + " " + q(dir / "c.safetensors") + " " +
                                 q(dir / "red.png") + " --reject");
  REQUIRE(status == 1);
  REQUIRE_THAT(out, Catch::Contains("c.safetensors") && Catch::Contains("ewnet.rejection") && Catch::Contains("energy"));
}

TEST_CASE("ewnet-calibrate refuses data with other class names or another split than the checkpoint's",
          "[programs][hostile]") {
  const auto dir = test::fresh_dir("ewnet_test_deploy_calibrate_data");
  Random rng(3);
  for (const char* cls : {"blue", "red"}) {
    std::filesystem::create_directories(dir / "known" / cls);
    for (int i = 0; i < 10; ++i) {
      const bool red = std::string(cls) == "red";
      const double v = rng.uniform(150, 255);
      data::write_png((dir / "known" / cls / ("i" + std::to_string(i) + ".png")).string(),
                      test::solid(red ? v : 20, 0, red ? 20 : v, 8));
    }
  }
  // The checkpoint of a run trained on this folder split with seed 3.
  const data::Dataset ds = data::scan_image_folder((dir / "known").string());
  json::Value settings = json::Value::object();
  settings["seed"] = "3";
  settings["files_digest"] = data::split_digest(ds, data::split_each_label(ds, 0.8, 3));
  Model<float> m = test::colour_model();
  SaveOptions so;
  so.metadata["ewnet.classes"] = R"(["blue", "rot"])";
  so.metadata["ewnet.train.settings"] = settings.dump();
  save_checkpoint(m, (dir / "c.safetensors").string(), so);
  const std::string cmd = std::string(EWNET_CALIBRATE_BIN) + " " + q(dir / "c.safetensors") + " " + q(dir / "known");
  auto [status, out] = run(cmd + " --seed 3");
  INFO(out);
  REQUIRE(status == 1);
  REQUIRE_THAT(out, Catch::Contains("'red' in the data, 'rot' in the checkpoint"));
  so.metadata["ewnet.classes"] = R"(["blue", "red"])";
  save_checkpoint(m, (dir / "c.safetensors").string(), so);
  std::tie(status, out) = run(cmd);
  REQUIRE(status == 1);
  REQUIRE_THAT(out, Catch::Contains("split of seed 3") && Catch::Contains("--seed 3"));
  std::tie(status, out) = run(cmd + " --seed 3");
  REQUIRE(status == 0);
  // A file more in a class: not the data it was trained on.
  data::write_png((dir / "known" / "red" / "new.png").string(), test::solid(200, 0, 0, 8));
  std::tie(status, out) = run(cmd + " --seed 3");
  REQUIRE(status == 1);
  REQUIRE_THAT(out, Catch::Contains("not the data") && Catch::Contains("digest"));
}

TEST_CASE("ewnet-calibrate reads the checkpoint once: the thresholds land on the weights measured",
          "[programs][hostile]") {
  const auto dir = test::fresh_dir("ewnet_test_deploy_calibrate_once");
  for (const char* cls : {"blue", "red"}) {
    std::filesystem::create_directories(dir / "known" / cls);
    for (int i = 0; i < 10; ++i)
      data::write_png((dir / "known" / cls / ("i" + std::to_string(i) + ".png")).string(),
                      test::solid(cls[0] == 'r' ? 100 + 15 * i : 0, 0, cls[0] == 'b' ? 100 + 15 * i : 0, 8));
  }
  // Two checkpoints: the colour model, and one whose classifier weights are doubled.
  Model<float> a = test::colour_model(), b = test::colour_model();
  auto& fc = b.layer("fc");
  fc.params()[0]->value.copy_from(Tensor<float>::from_vector(fc.params()[0]->value.shape(), {0, 0, 24, 24, 0, 0}));
  SaveOptions so;
  so.metadata["ewnet.classes"] = R"(["blue", "red"])";
  save_checkpoint(a, (dir / "a.safetensors").string(), so);
  save_checkpoint(b, (dir / "b.safetensors").string(), so);
  std::filesystem::create_hard_link(dir / "a.safetensors", dir / "model.safetensors");
  {
    test::ReplaceAfterEachRead swapper(dir, "model.safetensors", {dir / "b.safetensors", dir / "a.safetensors"});
    const auto [status, out] = run(std::string(EWNET_CALIBRATE_BIN) + " " + q(dir / "model.safetensors") + " " +
                                   q(dir / "known") + " --out " + q(dir / "calibrated.safetensors"));
    INFO(out);
    REQUIRE(status == 0);
    REQUIRE(swapper.reads() == 1);
  }
  // The written checkpoint holds a's weights, and the thresholds a gives.
  const io::SafetensorsFile written = io::read_safetensors((dir / "calibrated.safetensors").string());
  REQUIRE(written.tensors.at("fc.weight").bytes == io::read_safetensors((dir / "a.safetensors").string()).tensors.at("fc.weight").bytes);
  std::filesystem::remove(dir / "model.safetensors");
  std::filesystem::create_hard_link(dir / "a.safetensors", dir / "model.safetensors");
  REQUIRE(run(std::string(EWNET_CALIBRATE_BIN) + " " + q(dir / "model.safetensors") + " " + q(dir / "known") +
              " --out " + q(dir / "quiet.safetensors")).first == 0);
  REQUIRE(written.metadata.at(kRejectionMetadataKey) ==
          io::read_safetensors((dir / "quiet.safetensors").string()).metadata.at(kRejectionMetadataKey));
}
#endif
