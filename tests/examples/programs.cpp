// The programs' command-line contract: --help, usage errors, and a clear error for CUDA.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <ewnet/data/generated.hpp>
#include <ewnet/data/image.hpp>
#include <ewnet/io/checkpoint.hpp>
#include <ewnet/models/paper_model.hpp>
#include <ewnet/onednn/adapter.hpp>

#include "test_files.hpp"

#ifdef EWNET_TRANSFER_BIN
namespace {
/// Runs a command; returns its exit status and its stdout, with stderr unless `stdout_only`.
std::pair<int, std::string> run(const std::string& command, bool stdout_only = false) {
  return ewnet::test::run_command(command, stdout_only);
}
const std::string kTransfer = std::string("\"") + EWNET_TRANSFER_BIN + "\"";
const std::string kClassify = std::string("\"") + EWNET_CLASSIFY_BIN + "\"";
}  // namespace

TEST_CASE("ewnet-transfer --help describes the generated default and exits 0") {
  const auto [status, out] = run(kTransfer + " --help");
  REQUIRE(status == 0);
  REQUIRE_THAT(out, Catch::Contains("usage: ewnet-transfer") && Catch::Contains("GENERATED"));
}

TEST_CASE("ewnet-transfer --recipe paper states the paper's settings and names ewnet's own choices") {
  // A run that stops at the data: the settings are printed before anything is loaded.
  const auto [status, out] = run(kTransfer + " --recipe paper --source ewnet_no_such_dir --target ewnet_no_such_dir");
  REQUIRE(status == 1);
  CHECK_THAT(out, Catch::Contains("--recipe paper: as the paper states: 224x224 images, batch 64, source rate 0.001") &&
                      Catch::Contains("320 + 320 epochs") && Catch::Contains("the base frozen") &&
                      Catch::Contains("ewnet's choices where the paper states none: momentum 0.9"));
  const auto [bad, msg] = run(kTransfer + " --recipe head");
  CHECK(bad == 2);
  CHECK_THAT(msg, Catch::Contains("unknown fine-tuning recipe 'head'"));
}

TEST_CASE("the CPU engine is reported once, on stderr, and is no generic fallback here") {
  const auto [status, out] = run(kTransfer + " --source ewnet_no_such_dir --target ewnet_no_such_dir");
  REQUIRE(status == 1);
  CHECK_THAT(out, Catch::Contains("CPU: oneDNN ") && !Catch::Contains("warning: the CPU engine"));
  const auto [status2, stdout_only] = run(kTransfer + " --source ewnet_no_such_dir --target ewnet_no_such_dir", true);
  CHECK(stdout_only.find("CPU: oneDNN") == std::string::npos);
}

TEST_CASE("bad arguments exit 2 with a usage line") {
  for (const char* args : {" --epochs", " --no-such-option", " --source onlyone", " --batch zero",
                           " --device tpu"}) {
    INFO(args);
    const auto [status, out] = run(kTransfer + args);
    REQUIRE(status == 2);
    REQUIRE_THAT(out, Catch::Contains("usage: ewnet-transfer"));
  }
  const auto [status, out] = run(kClassify);
  REQUIRE(status == 2);
  REQUIRE_THAT(out, Catch::Contains("usage: ewnet-classify"));
}

TEST_CASE("asking for --device cuda without a usable CUDA device is a clear error with exit status 1") {
  // The data folders do not exist either, so a build with a GPU fails fast too (on the data).
  const auto [status, out] = run(kTransfer + " --device cuda --source ewnet_no_such_dir --target ewnet_no_such_dir");
  REQUIRE(status == 1);
#ifdef EWNET_PROGRAMS_WITHOUT_CUDA
  REQUIRE_THAT(out, Catch::Contains("CUDA"));
#endif
}

TEST_CASE("ewnet-classify ranks the classes of each image and skips a bad file") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "ewnet_test_classify";
  fs::remove_all(dir);
  fs::create_directories(dir / "images");
  // A 4-class checkpoint with class names, as ewnet-finetune writes one.
  ewnet::Model<float> model = ewnet::build_paper_model<float>({4, 32, 5});
  ewnet::SaveOptions save;
  save.metadata["ewnet.classes"] = R"(["drill", "pliers", "screwdriver", "stapler"])";
  ewnet::save_checkpoint(model, (dir / "model.safetensors").string(), save);
  ewnet::data::Image img;
  img.width = img.height = 40;
  img.rgb.assign(40 * 40 * 3, 0);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = std::uint8_t(i * 7);
  ewnet::data::write_png((dir / "images" / "tool.png").string(), img);
  std::ofstream(dir / "images" / "notes.jpg") << "not an image";

  const auto [status, out] = run(kClassify + " \"" + (dir / "model.safetensors").string() + "\" \"" +
                                 (dir / "images").string() + "\" --json --top 2", true);
  REQUIRE(status == 0);
  const ewnet::json::Value v = ewnet::json::parse(out, "ewnet-classify output");
  REQUIRE(v.at("skipped_files").as_int() == 1);
  const auto& results = v.at("results").as_array();
  REQUIRE(results.size() == 1);
  const auto& top = results[0].at("top").as_array();
  REQUIRE(top.size() == 2);
  const double p0 = top[0].at("probability").as_number(), p1 = top[1].at("probability").as_number();
  REQUIRE(p0 >= p1);
  REQUIRE(p0 + p1 <= 1.0 + 1e-6);
  const std::string names = "drill pliers screwdriver stapler";
  REQUIRE(names.find(top[0].at("class").as_string()) != std::string::npos);

  const auto [bad, message] = run(kClassify + " \"" + (dir / "missing.safetensors").string() + "\" \"" +
                                  (dir / "images").string() + "\"");
  REQUIRE(bad == 1);
  REQUIRE_THAT(message, Catch::Contains("missing.safetensors"));
  fs::remove_all(dir);
}
#endif

#if defined(EWNET_TRANSFER_BIN) && defined(EWNET_TRAIN_BIN) && defined(EWNET_FINETUNE_BIN)
namespace {
/// A tiny generated data set (40x40, 5 images a class) in a folder of its own, removed at the end,
/// and the command prefixes of ewnet-train and ewnet-finetune.
struct TinyRun {
  ewnet::test::TempDir temp;
  const std::filesystem::path& dir = temp.path;
  std::string source, target;
  const std::string train = std::string("\"") + EWNET_TRAIN_BIN + "\"";
  const std::string finetune = std::string("\"") + EWNET_FINETUNE_BIN + "\"";
  const std::string quick = " --epochs 1 --batch 8 --image-size 32 --no-progress";
  explicit TinyRun(const std::string& name) : temp(name) {
    ewnet::data::GeneratedOptions g;
    g.image_size = 40;
    g.source_per_class = 5;
    g.target_per_class = 5;
    std::tie(source, target) = ewnet::data::write_generated_dataset((dir / "data").string(), g);
  }
};
}  // namespace

TEST_CASE("ewnet-finetune and ewnet-transfer --unlabeled learn from unlabelled images and say which setting ran",
          "[programs]") {
  namespace fs = std::filesystem;
  const TinyRun t("ewnet_test_unlabeled");
  const fs::path& dir = t.dir;
  // Unlabelled images: another draw of the generated target, in a layout of its own.
  ewnet::data::GeneratedOptions g;
  g.image_size = 40;
  g.source_per_class = 1;
  g.target_per_class = 4;
  g.seed += 17;
  const std::string more = ewnet::data::write_generated_dataset((dir / "more").string(), g).second;
  const auto [s0, o0] = run(t.train + " \"" + t.source + "\" --out \"" + (dir / "src").string() + "\"" + t.quick);
  INFO(o0);
  REQUIRE(s0 == 0);
  const std::string finetune = t.finetune + " \"" + (dir / "src" / "best.safetensors").string() + "\" \"" + t.target +
                               "\" --epochs 2 --batch 8 --no-progress";

  const auto [s1, o1] = run(finetune + " --unlabeled \"" + more + "\" --semi-supervised fixmatch+mmd --source-images \"" +
                            t.source + "\" --out \"" + (dir / "semi").string() + "\"");
  INFO(o1);
  REQUIRE(s1 == 0);
  CHECK_THAT(o1, Catch::Contains("16 unlabelled images") &&
                     Catch::Contains("semi-supervised: FixMatch pseudo-labels (threshold 0.95") &&
                     Catch::Contains("mmd on the pooled features") &&
                     Catch::Contains("setting: inductive: 16 unlabelled images, none of them a validation image") &&
                     Catch::Contains("semi-supervised steps: 4 steps with 32 unlabelled views"));
  std::ifstream in(dir / "semi" / "report.json");
  const std::string report((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK_THAT(report, Catch::Contains("\"setting\": \"inductive\""));

  // The target folder holds its own validation images: refused (their labels would reach training
  // through pseudo-labels), unless the transductive setting is asked for.
  const auto [s2, o2] = run(finetune + " --unlabeled \"" + t.target + "\" --semi-supervised fixmatch --out \"" +
                            (dir / "leak").string() + "\"");
  CHECK(s2 == 1);
  CHECK_THAT(o2, Catch::Contains("4 of the 20 unlabelled images are validation images") &&
                     Catch::Contains("transductive setting explicitly"));
  CHECK_FALSE(fs::exists(dir / "leak" / "best.safetensors"));
  const auto [s3, o3] = run(finetune + " --unlabeled \"" + t.target + "\" --transductive --semi-supervised entropy --out \"" +
                            (dir / "transductive").string() + "\"");
  INFO(o3);
  CHECK(s3 == 0);
  CHECK_THAT(o3, Catch::Contains("setting: transductive (asked for): 20 unlabelled images, 4 of them validation images"));

  // The whole pipeline: the semi-supervised stage beside the recipe, weighed against it.
  const auto [s4, o4] = run(std::string("\"") + EWNET_TRANSFER_BIN + "\" --source \"" + t.source + "\" --target \"" +
                            t.target + "\" --unlabeled \"" + more + "\" --augment strong " +
                            "--source-epochs 1 --target-epochs 1 --batch 8 --image-size 32 --no-progress --out \"" +
                            (dir / "pipeline").string() + "\"");
  INFO(o4);
  REQUIRE(s4 == 0);
  // The default method, MMD, against the source stage's training images.
  CHECK_THAT(o4, Catch::Contains("transfer with unlabelled images, recipe all + mmd") &&
                     Catch::Contains("32 source images") &&
                     Catch::Contains("transfer, all + unlabelled (mmd) against transfer, all: ") &&
                     Catch::Contains("learned from in the inductive setting") &&
                     Catch::Contains("strong augmentation of the labelled images: RandAugment"));
  std::ifstream sin(dir / "pipeline" / "summary.json");
  const std::string summary((std::istreambuf_iterator<char>(sin)), std::istreambuf_iterator<char>());
  CHECK_THAT(summary, Catch::Contains("\"semi_supervised_comparison\"") && Catch::Contains("\"setting\": \"inductive\""));
  CHECK(fs::exists(dir / "pipeline" / "semi-supervised" / "best.safetensors"));

  // What the options refuse, before any data is read.
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {" --transductive", "--transductive goes with --unlabeled DIR"},
           {" --semi-supervised fixmatch", "--semi-supervised goes with --unlabeled DIR"},
           {" --unlabeled x --semi-supervised mixup", "unknown semi-supervised method 'mixup'"},
           {" --unlabeled x --semi-supervised mmd+coral", "one feature alignment at a time"},
           {" --unlabeled x --semi-supervised mmd", "give --source-images DIR"},
           {" --unlabeled x", "--semi-supervised mmd aligns the target's features with the source's"},
           {" --unlabeled x --semi-supervised entropy --source-images y",
            "--source-images goes with --unlabeled and a method that aligns"},
           {" --unlabeled x --threshold 1.5", "--threshold must be in (0, 1]"},
           {" --unlabeled x --unlabeled-ratio 0", "--unlabeled-ratio needs an integer >= 1"},
           {" --augment heavy", "--augment must be standard or strong"}}) {
    INFO(args);
    const auto [status, out] = run(finetune + args);
    CHECK(status == 2);
    CHECK_THAT(out, Catch::Contains(message) && Catch::Contains("usage: ewnet-finetune"));
  }
  const auto [s5, o5] = run(finetune + " --unlabeled \"" + (dir / "no-such-folder").string() + "\" --semi-supervised entropy");
  CHECK(s5 == 1);
  CHECK_THAT(o5, Catch::Contains("unlabelled image folder not found"));
}
TEST_CASE("ewnet-train and ewnet-finetune take --model and --init: a torchvision network, MATLAB's recipe",
          "[programs]") {
  namespace fs = std::filesystem;
  const TinyRun t("ewnet_test_model_init");
  const fs::path& dir = t.dir;
  const std::string &source = t.source, &target = t.target, &train = t.train, &finetune = t.finetune, &quick = t.quick;

  // GoogLeNet from random weights on the 8 source classes.
  const auto [s1, o1] = run(train + " \"" + source + "\" --model googlenet --out \"" + (dir / "g8").string() + "\"" + quick);
  INFO(o1);
  REQUIRE(s1 == 0);
  // Started from that 8-class checkpoint on the 4 target classes: the classifier is replaced and
  // learns at factor 10, every other tensor comes from the file.
  const auto [s2, o2] = run(train + " \"" + target + "\" --model googlenet --init \"" + (dir / "g8" / "best.safetensors").string() +
                            "\" --out \"" + (dir / "g4").string() + "\"" + quick);
  INFO(o2);
  REQUIRE(s2 == 0);
  REQUIRE_THAT(o2, Catch::Contains("all but the classifier") && Catch::Contains("learning-rate factor 10"));
  REQUIRE(ewnet::model_from_checkpoint<float>((dir / "g4" / "best.safetensors").string()).classes() == 4);
  // The paper's recipe freezes up to GoogLeNet's head and trains it from features computed once:
  // its frozen batch norms normalise with their running statistics (train::can_cache_features).
  const auto [s3, o3] = run(finetune + " \"" + (dir / "g4" / "best.safetensors").string() + "\" \"" + target +
                            "\" --recipe frozen-base --epochs 1 --no-progress --out \"" + (dir / "ft").string() + "\"");
  INFO(o3);
  REQUIRE(s3 == 0);
  REQUIRE_THAT(o3, Catch::Contains("frozen up to and including 'inception5b.concat'") &&
                       Catch::Contains("the head trains from the features of 'avgpool' computed once"));
  // --model/--init instead of a checkpoint, and --train-from a torchvision module's name.
  const auto [s4, o4] = run(finetune + " --model googlenet --init \"" + (dir / "g8" / "best.safetensors").string() +
                            "\" --image-size 32 --train-from inception5b \"" + target +
                            "\" --epochs 1 --no-progress --out \"" + (dir / "ft2").string() + "\"");
  INFO(o4);
  REQUIRE(s4 == 0);
  REQUIRE_THAT(o4, Catch::Contains("frozen up to and including 'inception5a.concat'") &&
                       Catch::Contains("learning-rate factor 10"));
  const auto [s5, o5] = run(train + " \"" + source + "\" --model alexnet" + quick);
  REQUIRE(s5 == 2);
  REQUIRE_THAT(o5, Catch::Contains("--model must be paper, googlenet, resnet18 or inception-v3"));
}

TEST_CASE("ewnet-train --aux trains GoogLeNet's auxiliary classifiers and fine-tuning replaces or leaves them out",
          "[programs][auxiliary]") {
  namespace fs = std::filesystem;
  const TinyRun t("ewnet_test_aux_programs");
  const fs::path& dir = t.dir;
  const std::string &source = t.source, &target = t.target, &train = t.train, &finetune = t.finetune, &quick = t.quick;
  const auto [s1, o1] = run(train + " \"" + source + "\" --model googlenet --aux --out \"" + (dir / "g8").string() +
                            "\"" + quick);
  INFO(o1);
  REQUIRE(s1 == 0);
  const std::string checkpoint = (dir / "g8" / "best.safetensors").string();
  ewnet::Model<float> m = ewnet::model_from_checkpoint<float>(checkpoint);
  REQUIRE(m.auxiliary_losses() == std::vector<std::string>{"aux1.output", "aux2.output"});
  // Every layer trains: both auxiliary classifiers stay, replaced for the 4 target classes.
  const auto [s2, o2] = run(finetune + " \"" + checkpoint + "\" \"" + target + "\" --epochs 1 --batch 8 --no-progress --out \"" +
                            (dir / "all").string() + "\"");
  INFO(o2);
  REQUIRE(s2 == 0);
  REQUIRE_THAT(o2, !Catch::Contains("left out"));
  ewnet::Model<float> all = ewnet::model_from_checkpoint<float>((dir / "all" / "best.safetensors").string());
  REQUIRE(all.layer_as<ewnet::FullyConnected<float>>("aux2.fc2").outputs() == 4);
  // Training from inception5a on: both read only frozen layers (inception4a, inception4d), left out.
  const auto [s3, o3] = run(finetune + " \"" + checkpoint + "\" \"" + target + "\" --train-from inception5a --epochs 1 "
                            "--batch 8 --no-progress --out \"" + (dir / "late").string() + "\"");
  INFO(o3);
  REQUIRE(s3 == 0);
  REQUIRE_THAT(o3, Catch::Contains("'aux1.output' is left out") && Catch::Contains("'aux2.output' is left out"));
  // The frozen-base recipe: both left out, and the head trains from features computed once.
  const auto [s4, o4] = run(finetune + " \"" + checkpoint + "\" \"" + target + "\" --recipe frozen-base --epochs 1 "
                            "--batch 8 --no-progress --out \"" + (dir / "head").string() + "\"");
  INFO(o4);
  REQUIRE(s4 == 0);
  REQUIRE_THAT(o4, Catch::Contains("'aux1.output' is left out") && Catch::Contains("computed once"));
  const auto [s5, o5] = run(train + " \"" + source + "\" --model resnet18 --aux" + quick);
  REQUIRE(s5 == 2);
  REQUIRE_THAT(o5, Catch::Contains("resnet18 has no auxiliary classifiers"));
  // Resuming that run without --aux: refused, naming the layers that differ.
  const auto [s6, o6] = run(train + " \"" + source + "\" --model googlenet --resume --out \"" + (dir / "g8").string() +
                            "\" --epochs 2 --batch 8 --image-size 32 --no-progress");
  REQUIRE(s6 == 1);
  REQUIRE_THAT(o6, Catch::Contains("another network") && Catch::Contains("layers only in the checkpoint: 'aux1."));
}
TEST_CASE("precision bf16 trains and fine-tunes in bfloat16 where the processor has it, a clear error elsewhere",
          "[programs][bf16]") {
  namespace fs = std::filesystem;
  const TinyRun t("ewnet_test_precision");
  const fs::path& dir = t.dir;
  const std::string &source = t.source, &target = t.target, &train = t.train, &finetune = t.finetune, &quick = t.quick;
  // Capped below AVX512-BF16 (what a processor without it gets): refused before the data are read.
  const auto [s1, o1] = run("ONEDNN_MAX_CPU_ISA=AVX512_CORE DNNL_MAX_CPU_ISA=AVX512_CORE " + train + " \"" + source +
                            "\" --precision bf16 --out \"" + (dir / "capped").string() + "\"" + quick);
  CHECK(s1 == 1);
  CHECK_THAT(o1, Catch::Contains("bfloat16 matrix products need a processor with AVX512-BF16 or AMX") &&
                     Catch::Contains("--precision fp32"));
  CHECK(!fs::exists(dir / "capped" / "last.safetensors"));
  for (const char* bad : {" --precision fp16", " --precision bf16 --device cuda"}) {
    INFO(bad);
    const auto [s, o] = run(train + " \"" + source + "\"" + bad + quick);
    CHECK(s == 2);
    CHECK_THAT(o, Catch::Contains("--precision"));
  }
  if (!ewnet::onednn::bf16_supported()) {
    WARN("this processor has no AVX512-BF16 or AMX: the bfloat16 run is not tried (the error above is)");
    return;
  }
  const auto [s2, o2] = run(train + " \"" + source + "\" --precision bf16 --out \"" + (dir / "bf16").string() + "\"" + quick);
  INFO(o2);
  REQUIRE(s2 == 0);
  CHECK_THAT(o2, Catch::Contains("(bfloat16 matrix products)"));
  std::ifstream report(dir / "bf16" / "report.json");
  const std::string json((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
  CHECK_THAT(json, Catch::Contains("\"compute_precision\": \"bf16\""));
  // Fine-tuning the bfloat16 run's checkpoint (float32 weights, as every checkpoint) in bfloat16.
  const auto [s3, o3] = run(finetune + " \"" + (dir / "bf16" / "best.safetensors").string() + "\" \"" + target +
                            "\" --precision bf16 --epochs 1 --no-progress --out \"" + (dir / "ft").string() + "\"");
  INFO(o3);
  REQUIRE(s3 == 0);
  CHECK_THAT(o3, Catch::Contains("(bfloat16 matrix products)"));
}
#endif
