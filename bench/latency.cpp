// bench/latency.cpp: batch-1 latency of ewnet::Classifier, what a camera on a sorting line runs for
// every photo: one 224x224 RGB image in, the ranked classes out (resizing to the model's input,
// normalisation, the forward pass, softmax, ranking), for the paper's model and ResNet-18 (random
// weights; 8 classes). images/s is 1 / latency; the "latency" counter is the latency itself (seconds).
//
// With EWNET_BENCH_ONNX_DIR set, each model is also written there as ONNX by ewnet's own export
// (io/onnx.hpp; NAME.onnx, the names of the benchmarks), so that bench/pytorch_compare.py times
// ONNX Runtime on the very model timed here. EWNET_BENCH_PRECISION=bf16 runs the model in bfloat16.
#include <cstdlib>
#include <filesystem>

#include <ewnet/deploy/classifier.hpp>
#include <ewnet/models/build.hpp>
#ifdef EWNET_BENCH_ONNX
#include <ewnet/io/onnx.hpp>
#endif

#include "bench_util.hpp"

namespace ewnet::bench {
namespace {

constexpr int kLatencySize = 224;

/// The model behind `name` as a checkpoint file (what a Classifier loads), and its ONNX export
/// when asked for.
std::string write_model(const std::string& name) {
  Model<float> m = build_model<float>(name == "paper_model" ? "paper" : name, 8, kLatencySize, 1);
  m.input_layer().set_normalization({125.f, 120.f, 110.f}, {64.f, 60.f, 66.f});
  const std::string path =
      (std::filesystem::temp_directory_path() / ("ewnet-latency-" + name + ".safetensors")).string();
  save_checkpoint(m, path);
#ifdef EWNET_BENCH_ONNX
  if (const char* dir = std::getenv("EWNET_BENCH_ONNX_DIR")) export_onnx(m, std::string(dir) + "/" + name + ".onnx");
#endif
  return path;
}

void latency(benchmark::State& st, const std::string& name) {
  const std::string path = write_model(name);
  Classifier c(path);
  std::filesystem::remove(path);
  c.model().set_precision(bench_precision(Device::cpu));
  Random rng(3);
  std::vector<std::uint8_t> rgb(size_t(3) * kLatencySize * kLatencySize);
  for (std::uint8_t& v : rgb) v = std::uint8_t(rng.uniform(0, 256));
  timed_loop<Device::cpu>(st, [&](int) { benchmark::DoNotOptimize(c.classify_rgb(rgb.data(), kLatencySize, kLatencySize)); });
  set_counters(st, 1, 0, 0);
  // 1 / (iterations / seconds): the seconds an image, printed with an SI prefix (e.g. 23.1ms).
  st.counters["latency"] =
      benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

template <Device D>
void register_all() {
  if constexpr (D == Device::cpu) {
    for (const std::string name : {"paper_model", "resnet18"})
      benchmark::RegisterBenchmark(bench_name(D, "latency/" + name).c_str(),
                                   [name](benchmark::State& st) { latency(st, name); })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace
}  // namespace ewnet::bench

EWNET_BENCH_MAIN(ewnet::bench::register_all)
