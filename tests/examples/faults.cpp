// Faults a training run must survive or refuse: divergence, a second run on the same folder, a
// resume under other settings, stale temporary files.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <limits>
#include <fstream>
#include <iterator>
#include <sstream>
#include <tuple>

#include <ewnet/data/generated.hpp>
#include <ewnet/layers/batch_norm.hpp>
#include <ewnet/layers/classification.hpp>
#include <ewnet/layers/conv2d.hpp>
#include <ewnet/layers/fully_connected.hpp>
#include <ewnet/layers/input.hpp>
#include <ewnet/layers/pooling.hpp>
#include <ewnet/layers/softmax.hpp>
#include <data.hpp>
#include <ewnet/train/trainer.hpp>

#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace ewnet;

namespace {
const fs::path kRoot = fs::temp_directory_path() / ("ewnet_test_faults_" + std::to_string(::getpid()));

/// A small generated target set (4 classes, 6 images each) cached at 16x16.
const pipeline::Data& small_data() {
  static const pipeline::Data d = [] {
    data::GeneratedOptions g;
    g.image_size = 16;
    g.source_per_class = 1;
    g.target_per_class = 6;
    const auto dirs = data::write_generated_dataset((kRoot / "data").string(), g);
    pipeline::DataOptions o;
    o.dir = dirs.second;
    o.image_size = 16;
    o.threads = 1;
    std::ostringstream quiet;
    return pipeline::load_data(o, quiet);
  }();
  return d;
}

Model<float> small_model(int classes) {
  Model<float> m(1);
  m.add(std::make_unique<ImageInput<float>>("input", 3, 16, 16));
  Conv2dOptions o;
  o.filters = 4;
  o.same = true;
  m.add(std::make_unique<Conv2d<float>>("conv", o));
  // No ReLU after the batch norm: max(0, NaN) would hide the NaN these tests plant in it.
  m.add(std::make_unique<BatchNorm<float>>("bn"));
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
  m.add(std::make_unique<FullyConnected<float>>("fc", classes));
  m.add(std::make_unique<Softmax<float>>("softmax"));
  m.add(std::make_unique<Classification<float>>("output"));
  m.build();
  return m;
}

train::TrainOptions options(const pipeline::Data& d, const std::string& out, int epochs) {
  train::TrainOptions t;
  t.epochs = epochs;
  t.batch = 8;
  t.schedule = LearnRateSchedule::constant(1e-2);
  t.out_dir = (kRoot / out).string();
  t.classes = d.classes;
  t.progress = false;
  t.threads = 1;
  return t;
}
}  // namespace

TEST_CASE("a non-finite validation loss stops the run and nothing of that epoch is saved", "[faults]") {
  const pipeline::Data& d = small_data();
  Model<float> m = small_model(int(d.classes.size()));
  // Running statistics that are NaN leave training (batch statistics) finite and make every
  // inference-mode output NaN: the validation loss diverges while the training loss does not.
  for (auto& [layer, s] : m.state_tensors())
    if (s.name == "running_var") fill(*s.tensor, std::numeric_limits<float>::quiet_NaN());
  fs::remove_all(kRoot / "nan");
  std::ostringstream log;
  REQUIRE_THROWS_WITH(train::fit(m, *d.cache, d.split, options(d, "nan", 2), log),
                      Catch::Contains("validation loss became") && Catch::Contains("nan after epoch 1"));
  CHECK_FALSE(fs::exists(kRoot / "nan" / "best.safetensors"));
  CHECK_FALSE(fs::exists(kRoot / "nan" / "last.safetensors"));
}

TEST_CASE("an output folder belongs to one run: a second is refused naming the holder", "[faults]") {
  const fs::path dir = kRoot / "locked";
  fs::create_directories(dir);
  {
    const io::OutputLock held(dir.string());
    const pipeline::Data& d = small_data();
    Model<float> m = small_model(int(d.classes.size()));
    std::ostringstream log;
    REQUIRE_THROWS_WITH(train::fit(m, *d.cache, d.split, options(d, "locked", 1), log),
                        Catch::Contains("in use by another run") &&
                            Catch::Contains("process " + std::to_string(::getpid())));
    CHECK_FALSE(fs::exists(dir / "last.safetensors"));
  }
  // Released with its holder: the folder is free again.
  REQUIRE_NOTHROW(io::OutputLock(dir.string()));
}

TEST_CASE("a resume under other settings or data is refused naming each field", "[faults]") {
  const pipeline::Data& d = small_data();
  fs::remove_all(kRoot / "resume");
  std::ostringstream log;
  {
    Model<float> m = small_model(int(d.classes.size()));
    train::fit(m, *d.cache, d.split, options(d, "resume", 1), log);
  }
  // A leftover of a killed save, from a process that is gone, named with the folder's token; and a
  // file of the user's that merely looks like one (never touched).
  const std::string token = io::run_folder_token((kRoot / "resume").string());
  REQUIRE(token.size() == 16);
  const fs::path stale = kRoot / "resume" / (".last.safetensors.ewnet-tmp-" + token + "-999999999");
  const fs::path lookalike = kRoot / "resume" / "last.safetensors.tmp-999999999";
  std::ofstream(stale) << "half a checkpoint";
  std::ofstream(lookalike) << "someone's file";
  train::TrainOptions t = options(d, "resume", 2);
  t.resume = true;
  t.seed = 7;
  t.batch = 4;
  t.schedule = LearnRateSchedule::constant(0.5);
  data::Split other = d.split;
  std::swap(other.train.front(), other.validation.front());
  Model<float> m = small_model(int(d.classes.size()));
  REQUIRE_THROWS_WITH(train::fit(m, *d.cache, other, t, log),
                      Catch::Contains("cannot resume") && Catch::Contains("seed (checkpoint \"0\", now \"7\")") &&
                          Catch::Contains("batch (checkpoint 8, now 4)") && Catch::Contains("schedule") &&
                          Catch::Contains("files_digest"));
  CHECK_FALSE(fs::exists(stale));  // cleaned at the start of the run
  CHECK(fs::exists(lookalike));
  // The same settings resume; an explicit allowance lets a changed one through with a warning.
  t = options(d, "resume", 2);
  t.resume = true;
  REQUIRE(train::fit(m, *d.cache, d.split, t, log).epochs.size() == 2);
  t.epochs = 3;
  t.batch = 4;
  t.allow_changed_settings = true;
  std::ostringstream warned;
  REQUIRE(train::fit(m, *d.cache, d.split, t, warned).epochs.size() == 3);
  CHECK_THAT(warned.str(), Catch::Contains("warning: resuming with a changed setting: batch"));
}

TEST_CASE("run files are written atomically: a failed write leaves the previous file", "[faults]") {
  const fs::path dir = kRoot / "atomic";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "log.csv").string();
  train::write_text_file(path, "first\n");
  // Block the temporary name: the write fails, names the file, and the old contents survive.
  fs::create_directory(io::temporary_name(path));
  REQUIRE_THROWS_WITH(train::write_text_file(path, "second\n"), Catch::Contains("log.csv"));
  fs::remove(io::temporary_name(path));
  std::ifstream in(path);
  REQUIRE(std::string(std::istreambuf_iterator<char>(in), {}) == "first\n");
}

#ifdef EWNET_CLASSIFY_BIN
using ewnet::test::run_command;

TEST_CASE("ewnet-classify: non-finite output, wrong class lists, hidden and empty folders", "[faults]") {
  const fs::path dir = kRoot / "classify";
  fs::remove_all(dir);
  fs::create_directories(dir / "images");
  fs::create_directories(dir / "empty");
  const std::string classify = std::string("\"") + EWNET_CLASSIFY_BIN + "\" ";
  Model<float> m = small_model(3);
  data::Image img;
  img.width = img.height = 16;
  img.rgb.assign(16 * 16 * 3, 90);
  data::write_png((dir / "images" / "tool.png").string(), img);
  // A macOS resource fork: hidden, and not an image.
  std::ofstream(dir / "images" / "._tool.png") << "\x00\x05\x16\x07 resource fork";

  SaveOptions named;
  named.metadata["ewnet.classes"] = R"(["a", "b", "c"])";
  save_checkpoint(m, (dir / "good.safetensors").string(), named);
  auto [status, out] = run_command(classify + "\"" + (dir / "good.safetensors").string() + "\" \"" +
                                   (dir / "images").string() + "\"");
  INFO(out);
  REQUIRE(status == 0);
  CHECK_THAT(out, !Catch::Contains("._tool.png"));

  std::tie(status, out) = run_command(classify + "\"" + (dir / "good.safetensors").string() + "\" \"" +
                                      (dir / "empty").string() + "\"");
  REQUIRE(status == 1);
  CHECK_THAT(out, Catch::Contains("no image files"));

  SaveOptions wrong;
  wrong.metadata["ewnet.classes"] = R"(["a", "b"])";
  save_checkpoint(m, (dir / "wrong.safetensors").string(), wrong);
  std::tie(status, out) = run_command(classify + "\"" + (dir / "wrong.safetensors").string() + "\" \"" +
                                      (dir / "images").string() + "\"");
  REQUIRE(status == 1);
  CHECK_THAT(out, Catch::Contains("names 2 classes but the model has 3 outputs"));

  // Weights are finite, the running variance is not a tensor check can see as wrong in itself
  // (negative): inference then computes the square root of a negative number, NaN.
  for (auto& [layer, s] : m.state_tensors())
    if (s.name == "running_var") fill(*s.tensor, -4.0f);
  save_checkpoint(m, (dir / "nan.safetensors").string(), named);
  std::tie(status, out) = run_command(classify + "\"" + (dir / "nan.safetensors").string() + "\" \"" +
                                      (dir / "images").string() + "\"");
  REQUIRE(status == 1);
  CHECK_THAT(out, Catch::Contains("not a number") && Catch::Contains("nan.safetensors"));
  CHECK_THAT(out, !Catch::Contains("-nan%"));
}
#endif

TEST_CASE("a run too large for the machine is refused before anything is decoded", "[faults]") {
  // 1000 images at 4096 x 4096 with batch 64: about 47 GiB of cache alone.
  const pipeline::MemoryEstimate m = pipeline::estimate_memory(1000, 4096, 64);
  CHECK(m.cache == 1000ull * 4096 * 4096 * 3);
  CHECK(m.training > m.cache);  // 64 images' activations and gradients through 67 layers
  REQUIRE_THROWS_WITH(pipeline::check_memory(m, 4096, 64, std::uint64_t(8) << 30),
                      Catch::Contains("--image-size 4096 with --batch 64") && Catch::Contains("8.0 GiB available"));
  REQUIRE_NOTHROW(pipeline::check_memory(pipeline::estimate_memory(24, 32, 8), 32, 8, std::uint64_t(8) << 30));
  // A batch holds at most the images there are: --batch 100000 on 12 images costs what 12 do (it
  // was charged for 100000, 182 GiB, and refused).
  const pipeline::MemoryEstimate huge = pipeline::estimate_memory(12, 224, 100000);
  CHECK(huge.training == pipeline::estimate_memory(12, 224, 12).training);
  REQUIRE_NOTHROW(pipeline::check_memory(huge, 224, 100000, std::uint64_t(8) << 30));
  // The network's share is ewnet::model_memory's (the estimate Classifier checks), scaled by the pixels.
  const pipeline::Footprint paper = pipeline::footprint("paper");
  const std::uint64_t parameters = paper.parameters * 3 * sizeof(float);
  CHECK(pipeline::estimate_memory(12, paper.size, 5).training - parameters ==
        5 * paper.memory.per_image + paper.memory.scratch);
  // A size no input may have blames the option, not every image.
  pipeline::DataOptions o;
  o.dir = (kRoot / "no-such-folder").string();
  o.image_size = 20000;
  std::ostringstream quiet;
  REQUIRE_THROWS_WITH(pipeline::load_data(o, quiet), Catch::Contains("--image-size 20000 is out of range"));
}

namespace {
/// An identity layer that runs out of memory on its n-th forward pass (what a huge activation
/// allocation inside a layer looks like to the training loop).
class OutOfMemoryAt : public Layer<float> {
 public:
  OutOfMemoryAt(std::string name, int n) : Layer<float>(std::move(name)), n_(n) {}
  std::string type() const override { return "out_of_memory_at"; }
  Shape setup(const std::vector<Shape>& in, Device) override { return in[0]; }
  void forward(const std::vector<const Tensor<float>*>& x, const Tensor<float>& y, const ForwardContext&) override {
    if (++calls_ >= n_) throw std::bad_alloc();
    y.copy_from(*x[0]);
  }
  void backward(const BackwardArgs<float>& a) override {
    if (a.dx[0]) copy_gradient(*a.dy, *a.dx[0], a.dx_mode[0]);
  }

 private:
  int n_, calls_ = 0;
};
}  // namespace

TEST_CASE("running out of memory during training is an error naming the run and not a crash", "[faults]") {
  const pipeline::Data& d = small_data();
  Model<float> m(1);
  m.add(std::make_unique<ImageInput<float>>("input", 3, 16, 16));
  m.add(std::make_unique<OutOfMemoryAt>("hungry", 3));
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
  m.add(std::make_unique<FullyConnected<float>>("fc", int(d.classes.size())));
  m.add(std::make_unique<Softmax<float>>("softmax"));
  m.add(std::make_unique<Classification<float>>("output"));
  fs::remove_all(kRoot / "oom");
  std::ostringstream log;
  REQUIRE_THROWS_WITH(train::fit(m, *d.cache, d.split, options(d, "oom", 2), log),
                      Catch::Contains("out of memory while training into") && Catch::Contains("oom") &&
                          Catch::Contains("lower the batch or the image size"));
  CHECK_FALSE(fs::exists(kRoot / "oom" / "best.safetensors"));
}
