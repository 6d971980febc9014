// bench/inception.cpp: one inception module at GoogLeNet's sizes (3a: 192 -> 256 channels at
// 28x28; 3b: 256 -> 480 at 28x28; 4a: 480 -> 512 at 14x14), with and without its residual
// connection (a 1x1 projection, since every module changes the channel count), forward, backward
// and both, batch 32 on the CPU and 64 on a GPU.
//
// The module is driven through a Model, as in training, so that the branches write into their
// slices of the concatenation. A loss needs a classifier: global average pooling, a 10-way fully
// connected layer, softmax and cross-entropy follow the module (under 0.1% of its FLOPs);
// bench/pytorch_compare.py builds the same head. The input needs no gradient, as in a network
// whose first layer this would be.
#include "bench_util.hpp"

namespace ewnet::bench {
namespace {

struct ModuleSpec {
  const char* name;
  int in_channels, size;
  InceptionFilters filters;
};

const ModuleSpec kModules[] = {
    {"3a", 192, 28, {64, 96, 128, 16, 32, 32}},
    {"3b", 256, 28, {128, 128, 192, 32, 96, 64}},
    {"4a", 480, 14, {192, 96, 208, 16, 48, 64}},
};

enum class Phase { forward, backward, forward_backward };
const char* phase_name(Phase p) {
  return p == Phase::forward ? "forward" : p == Phase::backward ? "backward" : "forward_backward";
}

Model<float> module_model(const ModuleSpec& s, bool residual) {
  Model<float> m(1);
  m.add(std::make_unique<ImageInput<float>>("input", s.in_channels, s.size, s.size));
  const std::string out = add_inception(m, std::string("inception_") + s.name, "input", s.filters,
                                        residual ? Residual::identity_or_projection : Residual::none);
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"), out);
  m.add(std::make_unique<FullyConnected<float>>("fc", 10));
  m.add(std::make_unique<Softmax<float>>("prob"));
  m.add(std::make_unique<Classification<float>>("output"));
  m.build();
  return m;
}

template <Device D>
void run(benchmark::State& st, const ModuleSpec& s, bool residual, Phase phase) {
  const int N = batch_for(D);
  Model<float> m = module_model(s, residual);
  prepare(m, D);
  auto xs = rotating_inputs({N, s.in_channels, s.size, s.size}, D, 1);
  const auto labels = cyclic_labels(N, 10, D);
  auto fwd = [&](int i) { m.forward(xs[size_t(i) % xs.size()], labels, Mode::training); };
  if (phase == Phase::forward) timed_loop<D>(st, fwd);
  if (phase == Phase::backward) timed_loop<D>(st, fwd, [&](int) { m.backward(); });
  if (phase == Phase::forward_backward)
    timed_loop<D>(st, [&](int i) {
      fwd(i);
      m.backward();
    });
  set_counters(st, N, model_flops(m, N, phase != Phase::backward, phase != Phase::forward), 0);
}

template <Device D>
void register_all() {
  for (const ModuleSpec& s : kModules)
    for (bool residual : {false, true})
      for (Phase p : {Phase::forward, Phase::backward, Phase::forward_backward}) {
        const std::string name = bench_name(D, str("inception_", s.name, residual ? "_residual/" : "/", phase_name(p)));
        benchmark::RegisterBenchmark(name.c_str(), [&s, residual, p](benchmark::State& st) { run<D>(st, s, residual, p); })
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
      }
}

}  // namespace
}  // namespace ewnet::bench

EWNET_BENCH_MAIN(ewnet::bench::register_all)
