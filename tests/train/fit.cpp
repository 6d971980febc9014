// train::fit and its reporter (train/trainer.hpp, train/report.hpp): fit prints nothing by itself,
// tells a reporter each step in order, and trains the same numbers whatever reporter it has, none
// included, and whether it runs at once or is resumed.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <ewnet/data/generated.hpp>
#include <ewnet/layers/batch_norm.hpp>
#include <ewnet/layers/classification.hpp>
#include <ewnet/layers/conv2d.hpp>
#include <ewnet/layers/dropout.hpp>
#include <ewnet/layers/fully_connected.hpp>
#include <ewnet/layers/input.hpp>
#include <ewnet/layers/pooling.hpp>
#include <ewnet/layers/relu.hpp>
#include <ewnet/layers/softmax.hpp>
#include <ewnet/train/trainer.hpp>

#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace ewnet;

namespace {
/// A small generated set (4 classes, 8 images each, 16x16), decoded and split once.
struct SmallData {
  test::TempDir dir{"ewnet-test-fit-data"};
  std::unique_ptr<data::ImageCache> cache;
  data::Split split;
  SmallData() {
    data::GeneratedOptions g;
    g.image_size = 16;
    g.source_per_class = 1;
    g.target_per_class = 8;
    const auto dirs = data::write_generated_dataset(dir.file("data"), g);
    cache = std::make_unique<data::ImageCache>(data::scan_image_folder(dirs.second), 16, nullptr, 1);
    split = data::split_each_label(cache->dataset(), 0.75, 2);
  }
};
const SmallData& small_data() {
  static const SmallData d;
  return d;
}

/// A network with a batch norm and a dropout (whose masks follow the step counter).
Model<float> small_model() {
  Model<float> m(3);
  m.add(std::make_unique<ImageInput<float>>("input", 3, 16, 16));
  Conv2dOptions o;
  o.filters = 4;
  o.same = true;
  m.add(std::make_unique<Conv2d<float>>("conv", o));
  m.add(std::make_unique<BatchNorm<float>>("bn"));
  m.add(std::make_unique<Relu<float>>("relu"));
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
  m.add(std::make_unique<Dropout<float>>("drop", 0.3, 5));
  m.add(std::make_unique<FullyConnected<float>>("fc", 4));
  m.add(std::make_unique<Softmax<float>>("softmax"));
  m.add(std::make_unique<Classification<float>>("output"));
  m.build();
  return m;
}

train::TrainOptions options(const std::string& out, int epochs) {
  train::TrainOptions t;
  t.epochs = epochs;
  t.batch = 8;
  t.schedule = LearnRateSchedule::constant(2e-2);
  t.out_dir = out;
  t.classes = small_data().cache->dataset().classes;
  t.threads = 1;
  return t;
}

train::History fit(const train::TrainOptions& t, train::Reporter* reporter) {
  Model<float> m = small_model();
  return train::fit(m, *small_data().cache, small_data().split, t, reporter);
}

/// Runs f with the process's standard output and error going to a file; returns what they got.
template <class F>
std::string captured(F&& f) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::FILE* sink = std::tmpfile();
  REQUIRE(sink != nullptr);
  const int out = ::dup(1), err = ::dup(2);
  ::dup2(::fileno(sink), 1);
  ::dup2(::fileno(sink), 2);
  try {
    f();
  } catch (...) {
    std::fflush(stdout);
    std::fflush(stderr);
    ::dup2(out, 1);
    ::dup2(err, 2);
    throw;
  }
  std::cout.flush();
  std::cerr.flush();
  std::fflush(stdout);
  std::fflush(stderr);
  ::dup2(out, 1);
  ::dup2(err, 2);
  ::close(out);
  ::close(err);
  std::rewind(sink);
  std::string text;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, sink)) text.append(buf, n);
  std::fclose(sink);
  return text;
}

/// Every call a reporter gets, in order, as a line.
class Recorder : public train::Reporter {
 public:
  std::vector<std::string> calls;
  std::vector<train::Progress> progress;
  void note(const std::string& line) override { calls.push_back("note " + line); }
  void run_started(const train::RunStart& run, const train::History& so_far) override {
    calls.push_back(str("started ", run.training_images, "+", run.validation_images, " images, ", run.batches,
                        " batches, ", so_far.epochs.size(), " epochs done"));
  }
  void iteration_done(const train::Progress& p) override {
    progress.push_back(p);
    calls.push_back(str("iteration ", p.epoch, ".", p.step));
  }
  void epoch_done(const train::EpochRecord& e, const train::History& h) override {
    calls.push_back(str("epoch ", e.epoch, " of ", h.epochs.size(), " at iteration ", e.iteration));
  }
  void run_finished(const train::History& h) override { calls.push_back(str("finished ", h.epochs.size())); }
};

/// What must be equal between two runs of the same settings: everything but the wall-clock times.
void require_same(const train::History& a, const train::History& b) {
  REQUIRE(a.epochs.size() == b.epochs.size());
  for (size_t e = 0; e < a.epochs.size(); ++e) {
    INFO("epoch " << e + 1);
    REQUIRE(a.epochs[e].iteration == b.epochs[e].iteration);
    REQUIRE(a.epochs[e].train_loss == b.epochs[e].train_loss);
    REQUIRE(a.epochs[e].train_accuracy == b.epochs[e].train_accuracy);
    REQUIRE(a.epochs[e].val_loss == b.epochs[e].val_loss);
    REQUIRE(a.epochs[e].val_accuracy == b.epochs[e].val_accuracy);
  }
  REQUIRE(a.iterations.size() == b.iterations.size());
  for (size_t i = 0; i < a.iterations.size(); ++i) {
    INFO("iteration " << i + 1);
    REQUIRE(a.iterations[i].iteration == b.iterations[i].iteration);
    REQUIRE(a.iterations[i].loss == b.iterations[i].loss);
  }
  REQUIRE(a.best_epoch == b.best_epoch);
  REQUIRE(a.images == b.images);
}

/// The tensors of two checkpoints, momentum included, bitwise, and their step counters.
void require_same_checkpoint(const std::string& a, const std::string& b) {
  Model<float> ma = small_model(), mb = small_model();
  load_checkpoint(ma, a);
  load_checkpoint(mb, b);
  REQUIRE(ma.iteration() == mb.iteration());
  auto pa = ma.parameters(), pb = mb.parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].first << "." << pa[i].second->name);
    REQUIRE(pa[i].second->value.to_vector() == pb[i].second->value.to_vector());
    REQUIRE(pa[i].second->velocity.to_vector() == pb[i].second->velocity.to_vector());
  }
  auto sa = ma.state_tensors(), sb = mb.state_tensors();
  for (size_t i = 0; i < sa.size(); ++i) REQUIRE(sa[i].second.tensor->to_vector() == sb[i].second.tensor->to_vector());
}
}  // namespace

TEST_CASE("fit prints nothing without a reporter and writes only its checkpoints", "[train][report]") {
  const test::TempDir dir("ewnet-test-fit-quiet");
  train::TrainOptions t = options(dir.file("run"), 2);
  t.progress = true;  // the standard report's bar; fit alone has none
  // A killed save's leftover, named with the run folder's token (io/files.hpp), which fit removes.
  const std::string token = io::prepare_run_folder(t.out_dir, {}).token();
  std::ofstream(t.out_dir + "/.last.safetensors.ewnet-tmp-" + token + "-999999999") << "a killed save's leftover";
  const std::string printed = captured([&] { fit(t, nullptr); });
  CHECK(printed.empty());
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(t.out_dir)) files.insert(e.path().filename().string());
  CHECK(files == std::set<std::string>{".ewnet-run", ".ewnet-lock", "best.safetensors", "last.safetensors"});
  // The standard report on a stream prints there, and nothing on the process's own output
  // but the progress bar, which a test's stderr (not a terminal here) may still receive.
  std::ostringstream shown;
  train::RunReport report(shown);
  t.out_dir = dir.file("reported");
  t.progress = false;
  CHECK(captured([&] { fit(t, &report); }).empty());
  CHECK_THAT(shown.str(), Catch::Contains("Epoch | Iteration") && Catch::Contains("training finished: 2 epochs"));
}

TEST_CASE("a custom reporter gets each call in order", "[train][report]") {
  const test::TempDir dir("ewnet-test-fit-calls");
  const data::Split& split = small_data().split;
  REQUIRE(split.train.size() == 24);  // 3 mini-batches of 8
  REQUIRE(split.validation.size() == 8);
  Recorder r;
  train::TrainOptions t = options(dir.file("run"), 2);
  t.resume = true;  // nothing there yet: a note says so
  const train::History h = fit(t, &r);
  const std::vector<std::string> expected{
      "note nothing to resume in " + t.out_dir + "; starting from the beginning",
      "started 24+8 images, 3 batches, 0 epochs done",
      "iteration 1.1", "iteration 1.2", "iteration 1.3", "epoch 1 of 1 at iteration 3",
      "iteration 2.1", "iteration 2.2", "iteration 2.3", "epoch 2 of 2 at iteration 6",
      "finished 2"};
  CHECK(r.calls == expected);
  REQUIRE(r.progress.size() == 6);
  for (size_t i = 0; i < r.progress.size(); ++i) {
    const train::Progress& p = r.progress[i];
    INFO("iteration " << i + 1);
    CHECK(p.epochs == 2);
    CHECK(p.batches == 3);
    CHECK(p.iteration.iteration == (long long)(i + 1));
    CHECK(p.iteration.loss == h.iterations[i].loss);
    CHECK(p.iterations == (long long)(i + 1));
  }
  // The epoch's running means: after its last mini-batch, the epoch's figures.
  CHECK(r.progress[2].epoch_loss == h.epochs[0].train_loss);
  CHECK(r.progress[5].epoch_accuracy == h.epochs[1].train_accuracy);

  // Resumed after its second epoch to a third: the note, then the epochs so far.
  Recorder again;
  t.epochs = 3;
  fit(t, &again);
  REQUIRE(again.calls.size() == 7);
  CHECK_THAT(again.calls[0], Catch::StartsWith("note resuming from " + t.out_dir + "/last.safetensors after epoch 2"));
  CHECK(again.calls[1] == "started 24+8 images, 3 batches, 2 epochs done");
  CHECK(again.calls[2] == "iteration 3.1");
  CHECK(again.calls[5] == "epoch 3 of 3 at iteration 9");
  CHECK(again.calls[6] == "finished 3");
}

TEST_CASE("fit trains the same numbers with any reporter or none, at once or resumed", "[train][report]") {
  const test::TempDir dir("ewnet-test-fit-same");
  std::ostringstream shown;
  train::RunReport report(shown);
  Recorder recorder;
  const train::History standard = fit(options(dir.file("standard"), 3), &report);
  const train::History none = fit(options(dir.file("none"), 3), nullptr);
  const train::History recorded = fit(options(dir.file("recorded"), 3), &recorder);
  fit(options(dir.file("resumed"), 1), nullptr);
  train::TrainOptions rest = options(dir.file("resumed"), 3);
  rest.resume = true;
  const train::History resumed = fit(rest, &recorder);
  for (const train::History* h : {&none, &recorded, &resumed}) require_same(standard, *h);
  for (const char* run : {"none", "recorded", "resumed"}) {
    INFO(run);
    require_same_checkpoint(train::last_checkpoint(dir.file("standard")), train::last_checkpoint(dir.file(run)));
    require_same_checkpoint(train::best_checkpoint(dir.file("standard")), train::best_checkpoint(dir.file(run)));
  }
  // Twice the same: the report's files too, but for the times.
  const train::History again = fit(options(dir.file("again"), 3), &report);
  require_same(standard, again);
  auto csv = [&](const std::string& run) {
    std::ifstream in(dir.file(run) + "/log.csv");
    std::string text((std::istreambuf_iterator<char>(in)), {}), masked;
    // epoch,iteration,time_elapsed_s,...: the third column is a wall-clock time.
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      const size_t a = line.find(',', line.find(',') + 1), b = line.find(',', a + 1);
      masked += line.substr(0, a) + line.substr(b) + "\n";
    }
    return masked;
  };
  CHECK(csv("standard") == csv("again"));
  CHECK(csv("standard").find("\n3,9,") != std::string::npos);
}
