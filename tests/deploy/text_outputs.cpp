// Names of any bytes through every text output: a data set whose class and file names hold
// Latin-1 bytes, commas, quotes, CR, LF, tabs, "<&>" and 250 bytes is trained (report.json,
// confusion.svg, the charts, the checkpoint), classified (--json, --csv, --explain) and exported
// (the ONNX metadata); each output must parse with a strict reader (strict_parse.py: UTF-8, then
// json, xml.etree, csv, the safetensors header) and hold every name, transcoded the one way
// (ewnet/text.hpp).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <ewnet/data/loader.hpp>
#include <ewnet/text.hpp>
#include <ewnet/train/trainer.hpp>
#ifdef EWNET_EXPORT_BIN
#include <ewnet/io/onnx.hpp>
#endif

#include "deploy_util.hpp"
#include "test_files.hpp"

#ifdef EWNET_CLASSIFY_BIN
using namespace ewnet;
namespace fs = std::filesystem;

namespace {
std::string q(const fs::path& p) {
  // Single quotes for the shell: the names hold double quotes, CR, LF and tabs.
  std::string s = "'";
  for (char c : p.string()) s += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return s + "'";
}
}  // namespace

TEST_CASE("every text output parses with a strict reader, whatever bytes the names hold", "[programs][text][hostile]") {
  const fs::path dir = test::fresh_dir("ewnet_test_text_outputs");
  const std::vector<std::string> classes = {"caf\xE9", "a,b \"q\"", "cr\rlf\n tab\t", "<&>", std::string(250, 'x')};
  const std::vector<std::string> files = {"M\xFCll,\"1\"\r\n\t<&>.png", std::string(246, 'y') + ".png", "plain.png"};
  std::string expected;  // the names, as every output must hold them
  for (size_t c = 0; c < classes.size(); ++c) {
    fs::create_directories(dir / "data" / classes[c]);
    expected += text::to_utf8(classes[c]) + '\0';
    for (size_t f = 0; f < files.size(); ++f)
      data::write_png((dir / "data" / classes[c] / files[f]).string(),
                      test::solid(40.0 * double(c), 200 - 30.0 * double(f), 100, 8));
  }
  for (const std::string& f : files) expected += text::to_utf8(f) + '\0';
  std::ofstream(dir / "names.bin", std::ios::binary) << expected;

  // Training (library): report.json, confusion.svg, training-curves.svg, the checkpoints.
  const data::ImageCache cache(data::scan_image_folder((dir / "data").string()), 8, nullptr, 1);
  Model<float> m(1);
  m.add(std::make_unique<ImageInput<float>>("input", 3, 8, 8));
  m.add(test::conv("conv", 4, 3, 1, 1));  // a spatial output for Grad-CAM (--explain)
  m.add(std::make_unique<Relu<float>>("relu"));
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
  m.add(std::make_unique<FullyConnected<float>>("fc", int(classes.size())));
  m.add(std::make_unique<Softmax<float>>("prob"));
  m.add(std::make_unique<Classification<float>>("output"));
  m.build();
  m.input_layer().set_normalization({128, 128, 128}, {64, 64, 64});
  train::TrainOptions t;
  t.epochs = 1;
  t.batch = 4;
  t.out_dir = (dir / "run").string();
  t.classes = cache.dataset().classes;
  t.progress = false;
  t.threads = 1;
  t.metadata["ewnet.data"] = (dir / "data").string();
  std::ostringstream log;
  const data::Split split = data::split_each_label(cache.dataset(), 0.6, 1);
  train::fit(m, cache, split, t, log);
  // The split digest ewnet-calibrate compares is the one training records.
  const json::Value settings =
      json::parse(read_checkpoint_metadata((dir / "run" / "best.safetensors").string()).at("ewnet.train.settings"));
  REQUIRE(settings.at("files_digest").as_string() == data::split_digest(cache.dataset(), split));

  // Classifying (the program): --json on stdout, --csv, --explain with a 246-byte stem.
  const std::string ckpt = (dir / "run" / "best.safetensors").string();
  const auto [status, json_out] = test::run_command(std::string(EWNET_CLASSIFY_BIN) + " " + q(ckpt) + " " +
                                                    q(dir / "data") + " --json --top 5 --no-progress --csv " +
                                                    q(dir / "out.csv") + " --explain " + q(dir / "heat"), true);
  INFO(json_out);
  REQUIRE(status == 0);
  std::ofstream(dir / "classify.json", std::ios::binary) << json_out;
  size_t heat_maps = 0;
  for (const auto& e : fs::directory_iterator(dir / "heat")) heat_maps += e.path().extension() == ".png";
  REQUIRE(heat_maps == classes.size() * files.size());

  std::string parse = "/usr/bin/python3 " + q(fs::path(EWNET_TEST_SOURCE_DIR) / "strict_parse.py") + " --names " +
                      q(dir / "names.bin");
  for (const char* f : {"report.json", "confusion.svg", "training-curves.svg", "best.safetensors", "last.safetensors"})
    parse += " " + q(dir / "run" / f);
  parse += " " + q(dir / "classify.json") + " " + q(dir / "out.csv");
  const auto [parsed, report] = test::run_command(parse);
  INFO(report);
  REQUIRE(parsed == 0);

#ifdef EWNET_EXPORT_BIN
  // Exporting (the program): every metadata value of the ONNX file is UTF-8, the classes JSON.
  REQUIRE(test::run_command(std::string(EWNET_EXPORT_BIN) + " " + q(ckpt) + " " + q(dir / "m.onnx")).first == 0);
  onnx::ModelProto model;
  std::ifstream in(dir / "m.onnx", std::ios::binary);
  REQUIRE(model.ParseFromIstream(&in));
  bool found = false;
  for (const auto& p : model.metadata_props()) {
    INFO(p.key());
    REQUIRE(text::is_valid_utf8(p.value()));
    if (p.key() != "ewnet.classes") continue;
    const json::Value names = json::parse(p.value());
    for (size_t c = 0; c < classes.size(); ++c) REQUIRE(names.as_array()[c].as_string() == text::to_utf8(t.classes[c]));
    found = true;
  }
  REQUIRE(found);
#endif
}
#endif
