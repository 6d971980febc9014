// What ewnet-train, ewnet-finetune and ewnet-transfer do with what a user hands them: the output
// folder held against every input before anything is read, the resize geometry chosen, recorded
// and kept on resume, the input normalisation of torchvision weights, the image size weights were
// made for, and a --batch larger than the data set (docs/reliability.md).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <tuple>

#include <data.hpp>
#include <ewnet/data/generated.hpp>
#include <ewnet/io/checkpoint.hpp>
#include <ewnet/json.hpp>
#include <ewnet/models/build.hpp>
#include <options.hpp>

#include "test_files.hpp"
#include "torchvision_files.hpp"

namespace fs = std::filesystem;
using ewnet::test::run_command;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string arg(const fs::path& p) { return "\"" + p.string() + "\""; }

/// The geometry group parsed from a command line as the programs parse it.
pipeline::DataOptions geometry(std::vector<std::string> args, int fallback = 64) {
  args.insert(args.begin(), "program");
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  const cli::Args a(int(argv.size()), argv.data(), {"init", "model", "image-size", "resize"}, {});
  pipeline::DataOptions d;
  pipeline::geometry_options(a, pipeline::network_options(a, 10), fallback, d);
  return d;
}

/// A safetensors file with `metadata` and no tensors: what the defaults read of weights.
std::string metadata_file(const ewnet::test::TempDir& dir, const std::string& name,
                          const std::map<std::string, std::string>& metadata) {
  ewnet::io::SafetensorsFile f;
  f.metadata = metadata;
  ewnet::io::write_safetensors(dir.file(name), f);
  return dir.file(name);
}
}  // namespace

TEST_CASE("the data group: --image-size defaults to what --init's weights were made for, each network's sizes",
          "[programs][cli]") {
  const ewnet::test::TempDir dir("ewnet_test_geometry");
  const std::string bare = metadata_file(dir, "bare.safetensors", {});
  // Without a record, the network's design size: 299 for Inception-v3 (the converter's
  // ewnet.image_size says the same), 224 for the others; no weights: the program's fallback.
  CHECK(geometry({"--model", "inception-v3", "--init", bare}).image_size == 299);
  CHECK(geometry({"--model", "resnet18", "--init", bare}).image_size == 224);
  CHECK(geometry({"--model", "inception-v3"}, 80).image_size == 80);
  const std::string recorded = metadata_file(dir, "recorded.safetensors",
                                             {{"ewnet.image_size", "112"}, {ewnet::data::kResizeMetadataKey, "crop"}});
  const pipeline::DataOptions r = geometry({"--model", "googlenet", "--init", recorded});
  CHECK(r.image_size == 112);
  CHECK(r.resize == ewnet::data::ResizeMode::crop);
  CHECK(geometry({"--model", "googlenet", "--init", recorded, "--resize", "squash"}).resize ==
        ewnet::data::ResizeMode::squash);
  // An ewnet checkpoint's own input size.
  ewnet::Model<float> paper = ewnet::build_model<float>("paper", 3, 48, 1);
  ewnet::save_checkpoint(paper, dir.file("paper48.safetensors"));
  CHECK(geometry({"--init", dir.file("paper48.safetensors")}).image_size == 48);
  // 299 is Inception-v3's own and any side from their smallest is torchvision's networks'; the
  // paper's model needs a multiple of 8.
  CHECK(geometry({"--model", "googlenet", "--image-size", "299"}).image_size == 299);
  CHECK_THROWS_WITH(geometry({"--image-size", "299"}), Catch::Contains("multiple of 8 for the paper's model"));
  CHECK_THROWS_WITH(geometry({"--model", "inception-v3", "--image-size", "64"}), Catch::Contains(">= 75"));
  CHECK_THROWS_WITH(geometry({"--resize", "stretch"}),
                    Catch::Contains("--resize") && Catch::Contains("squash or crop"));
  const std::string bad = metadata_file(dir, "bad.safetensors", {{"ewnet.image_size", "huge"}});
  CHECK_THROWS_WITH(geometry({"--model", "resnet18", "--init", bad}),
                    Catch::Contains("bad.safetensors") && Catch::Contains("'huge'"));
  const std::string forged = metadata_file(dir, "forged.safetensors", {{"ewnet.architecture", "{\"layers\": 3}"}});
  CHECK_THROWS_WITH(geometry({"--init", forged}),
                    Catch::Contains("forged.safetensors") && Catch::Contains("ewnet.architecture"));
}

#if defined(EWNET_TRANSFER_BIN) && defined(EWNET_TRAIN_BIN) && defined(EWNET_FINETUNE_BIN)
namespace {
/// A tiny generated data set (40x40, 5 images a class: 40 source and 20 target images) in a folder
/// of its own, and the programs' command prefixes.
struct Tiny {
  ewnet::test::TempDir temp;
  const fs::path& dir = temp.path;
  fs::path source, target;
  const std::string train = std::string("\"") + EWNET_TRAIN_BIN + "\"";
  const std::string finetune = std::string("\"") + EWNET_FINETUNE_BIN + "\"";
  const std::string transfer = std::string("\"") + EWNET_TRANSFER_BIN + "\"";
  const std::string quick = " --epochs 1 --batch 8 --image-size 32 --no-progress";
  explicit Tiny(const std::string& name) : temp(name) {
    ewnet::data::GeneratedOptions g;
    g.image_size = 40;
    g.source_per_class = 5;
    g.target_per_class = 5;
    std::tie(source, target) = ewnet::data::write_generated_dataset((dir / "data").string(), g);
  }
};
// What load_data prints once it has scanned and decoded a data set.
const char* kLoaded = " images in ";
}  // namespace

TEST_CASE("a run's output folder is held against every input before anything is read", "[programs][faults]") {
  const Tiny t("ewnet_test_run_inputs");
  // The data folder itself, a folder inside it, a file system's root.
  auto [s1, o1] = run_command(t.train + " " + arg(t.source) + " --out " + arg(t.source) + t.quick);
  CHECK(s1 == 1);
  CHECK_THAT(o1, Catch::Contains("is one of the run's inputs") && !Catch::Contains(kLoaded));
  auto [s2, o2] = run_command(t.train + " " + arg(t.source) + " --out " + arg(t.source / "run") + t.quick);
  CHECK(s2 == 1);
  CHECK_THAT(o2, Catch::Contains("lies inside the input folder") && !Catch::Contains(kLoaded));
  CHECK_FALSE(fs::exists(t.source / "run"));
  auto [s3, o3] = run_command(t.train + " " + arg(t.source) + " --out /" + t.quick);
  CHECK(s3 == 1);
  CHECK_THAT(o3, Catch::Contains("root of the file system") && !Catch::Contains(kLoaded));
  // A folder of the user's own files, one named as ewnet names its checkpoints: refused, untouched.
  fs::create_directories(t.dir / "mine");
  std::ofstream(t.dir / "mine" / "notes.txt") << "my notes";
  std::ofstream(t.dir / "mine" / "best.safetensors") << "my own file";
  auto [s4, o4] = run_command(t.train + " " + arg(t.source) + " --out " + arg(t.dir / "mine") + t.quick);
  CHECK(s4 == 1);
  CHECK_THAT(o4, Catch::Contains("holds files ewnet did not write") && !Catch::Contains(kLoaded));
  CHECK(slurp(t.dir / "mine" / "notes.txt") == "my notes");
  CHECK(slurp(t.dir / "mine" / "best.safetensors") == "my own file");
  CHECK_FALSE(fs::exists(t.dir / "mine" / ".ewnet-run"));

  // Fine-tuning into the source run's folder would replace the source checkpoint it reads.
  const fs::path run = t.dir / "run";
  auto [s5, o5] = run_command(t.train + " " + arg(t.source) + " --out " + arg(run) + t.quick);
  INFO(o5);
  REQUIRE(s5 == 0);
  CHECK_THAT(o5, Catch::Contains("input normalisation: (mean ") && Catch::Contains("the training split's statistics"));
  const std::string before = slurp(run / "best.safetensors");
  auto [s6, o6] = run_command(t.finetune + " " + arg(run / "best.safetensors") + " " + arg(t.target) +
                              " --epochs 1 --no-progress --out " + arg(run));
  CHECK(s6 == 1);
  CHECK_THAT(o6, Catch::Contains("best.safetensors lies inside the output folder") && !Catch::Contains(kLoaded));
  CHECK(slurp(run / "best.safetensors") == before);
  // The same for --init's weights, and for ewnet-transfer's data folders.
  auto [s7, o7] = run_command(t.train + " " + arg(t.target) + " --init " + arg(run / "best.safetensors") +
                              " --out " + arg(run) + t.quick);
  CHECK(s7 == 1);
  CHECK_THAT(o7, Catch::Contains("lies inside the output folder") && !Catch::Contains(kLoaded));
  CHECK(slurp(run / "best.safetensors") == before);
  auto [s9, o9] = run_command(t.transfer + " --source " + arg(t.source) + " --target " + arg(t.target) +
                              " --out " + arg(t.target / "run") + " --source-epochs 1 --target-epochs 1 "
                              "--image-size 32 --no-progress");
  CHECK(s9 == 1);
  CHECK_THAT(o9, Catch::Contains("lies inside the input folder") && !Catch::Contains(kLoaded));
  CHECK_FALSE(fs::exists(t.target / "run"));
}

TEST_CASE("the crop geometry (--resize crop) is recorded in the checkpoints, kept on resume and followed by "
          "fine-tuning", "[programs]") {
  const Tiny t("ewnet_test_resize");
  const fs::path crop = t.dir / "crop";
  auto [s1, o1] = run_command(t.train + " " + arg(t.source) + " --resize crop --out " + arg(crop) + t.quick);
  INFO(o1);
  REQUIRE(s1 == 0);
  CHECK_THAT(o1, Catch::Contains("cached at 32x32 (crop)"));
  const auto meta = ewnet::read_checkpoint_metadata((crop / "best.safetensors").string());
  CHECK(meta.at(ewnet::data::kResizeMetadataKey) == "crop");
  CHECK(ewnet::json::parse(meta.at("ewnet.train.settings"), "settings").at("resize").as_string() == "crop");
  // Resuming the run in the other geometry is a changed setting, named.
  auto [s2, o2] = run_command(t.train + " " + arg(t.source) + " --resize squash --resume --out " + arg(crop) +
                              " --epochs 2 --batch 8 --image-size 32 --no-progress");
  CHECK(s2 == 1);
  CHECK_THAT(o2, Catch::Contains("resize (checkpoint \"crop\", now \"squash\")"));
  // Fine-tuning takes the source's geometry unless told otherwise.
  auto [s3, o3] = run_command(t.finetune + " " + arg(crop / "best.safetensors") + " " + arg(t.target) +
                              " --epochs 1 --batch 8 --no-progress --out " + arg(t.dir / "ft"));
  INFO(o3);
  REQUIRE(s3 == 0);
  CHECK_THAT(o3, Catch::Contains("cached at 32x32 (crop)"));
  CHECK(ewnet::read_checkpoint_metadata((t.dir / "ft" / "best.safetensors").string())
            .at(ewnet::data::kResizeMetadataKey) == "crop");
  auto [s4, o4] = run_command(t.finetune + " " + arg(crop / "best.safetensors") + " " + arg(t.target) +
                              " --resize squash --epochs 1 --batch 8 --no-progress --out " + arg(t.dir / "ft2"));
  REQUIRE(s4 == 0);
  CHECK_THAT(o4, Catch::Contains("cached at 32x32 (squash)"));
  auto [s5, o5] = run_command(t.train + " " + arg(t.source) + " --resize stretch" + t.quick);
  CHECK(s5 == 2);
  CHECK_THAT(o5, Catch::Contains("--resize"));
}

TEST_CASE("torchvision weights (--init) that record no normalisation get ImageNet's, and the run says so",
          "[programs]") {
  const Tiny t("ewnet_test_init_normalisation");
  // A resnet18 state_dict converted by a tool that records no normalisation (random values).
  ewnet::Model<float> imagenet = ewnet::build_model<float>("resnet18", 10, 32, 7);
  const std::string weights = t.temp.file("resnet18.safetensors");
  ewnet::io::write_safetensors(weights, ewnet::test::as_torchvision(imagenet, false));
  auto [s, o] = run_command(t.finetune + " --model resnet18 --init " + arg(weights) + " " + arg(t.target) +
                            " --image-size 32 --recipe frozen-base --epochs 1 --batch 8 --no-progress --out " +
                            arg(t.dir / "r18"));
  INFO(o);
  REQUIRE(s == 0);
  CHECK_THAT(o, Catch::Contains("input normalisation: ImageNet's (mean 123.7, 116.3, 103.5; deviation 58.4, 57.1, "
                                "57.4 on 0..255), the torchvision convention for resnet18") &&
                    Catch::Contains("records none"));
  ewnet::Model<float> m = ewnet::model_from_checkpoint<float>((t.dir / "r18" / "best.safetensors").string());
  CHECK(m.input_layer().mean()[0] == Approx(123.675f));
  CHECK(m.input_layer().stddev()[2] == Approx(57.375f));
}

TEST_CASE("the image size follows the weights: Inception-v3's 299 by default with --init", "[programs]") {
  const Tiny t("ewnet_test_init_size");
  // Weights with no tensors: the images are cached at the size the default chose, then loading fails.
  const std::string bare = metadata_file(t.temp, "inception.safetensors", {});
  auto [s, o] = run_command(t.finetune + " --model inception-v3 --init " + arg(bare) + " " + arg(t.target) +
                            " --epochs 1 --batch 4 --no-progress --out " + arg(t.dir / "v3"));
  CHECK(s == 1);
  CHECK_THAT(o, Catch::Contains("cached at 299x299"));
}

TEST_CASE("a --batch larger than the data set is charged for the images there are", "[programs]") {
  const Tiny t("ewnet_test_huge_batch");
  auto [s, o] = run_command(t.train + " " + arg(t.target) + " --batch 100000 --epochs 1 --image-size 32 "
                            "--no-progress --out " + arg(t.dir / "run"));
  INFO(o);
  CHECK(s == 0);
}
#endif
