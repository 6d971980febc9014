// Inference speed of the paper's model in ewnet on the CPU, and the same model as ONNX for
// bench/onnxruntime_compare.py, which times ONNX Runtime on it with the same batch and threads.
//   ewnet_bench_inference SIZE BATCH REPEATS MODEL.onnx
// writes MODEL.onnx, then prints one JSON line: the best and the median milliseconds a batch over
// REPEATS timed forward passes (after one untimed warm-up). Threads: OPENBLAS_NUM_THREADS.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <ewnet/io/onnx.hpp>
#include <ewnet/models/paper_model.hpp>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: ewnet_bench_inference SIZE BATCH REPEATS MODEL.onnx\n");
    return 2;
  }
  const int size = std::atoi(argv[1]), batch = std::atoi(argv[2]), repeats = std::atoi(argv[3]);
  ewnet::Model<float> model = ewnet::build_paper_model<float>({8, size, 1});
  model.input_layer().set_normalization({125.f, 120.f, 110.f}, {64.f, 60.f, 66.f});
  ewnet::export_onnx(model, argv[4]);
  ewnet::Random rng(2);
  std::vector<float> v(size_t(batch) * 3 * size_t(size) * size_t(size));
  for (float& x : v) x = float(rng.uniform(0, 255));
  const ewnet::Tensor<float> x = ewnet::Tensor<float>::from_vector({batch, 3, size, size}, v);
  model.forward(x, ewnet::Mode::inference);
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    model.forward(x, ewnet::Mode::inference);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("{\"best_ms\": %.3f, \"median_ms\": %.3f}\n", ms.front(), ms[ms.size() / 2]);
  return 0;
}
