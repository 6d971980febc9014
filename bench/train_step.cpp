// bench/train_step.cpp: one training step of the paper's model (forward with the loss, backward,
// SGDM update): batch 32 at 112x112 on the CPU, batch 64 at 224x224 on a GPU. Two variants:
//   full       every layer trains;
//   finetune   the transferable base is frozen (Model::freeze_up_to(kLastFrozenLayer)), so only
//              the head trains and backward stops at the classifier: the step is the forward pass
//              plus the head's backward.
// An epoch is a sequence of identical steps, so the ratio of the two step rates is the ratio of
// a full and a fine-tuning epoch with data loading left out.
#include "bench_util.hpp"

namespace ewnet::bench {
namespace {

/// The forward pass alone (training mode, with the loss): the floor of the fine-tuning step, which
/// must still run the whole frozen base forward on every batch.
template <Device D>
void forward(benchmark::State& st) {
  const int N = batch_for(D), S = image_size_for(D), classes = 8;
  Model<float> m = build_paper_model<float>(PaperModelOptions{classes, S, 1});
  m.to(D);
  auto xs = rotating_inputs({N, 3, S, S}, D, 1);
  const auto labels = cyclic_labels(N, classes, D);
  timed_loop<D>(st, [&](int i) { m.forward(xs[size_t(i) % xs.size()], labels, Mode::training); });
  set_counters(st, N, model_flops(m, N, true, false), 0);
}

template <Device D>
void step(benchmark::State& st, bool finetune) {
  const int N = batch_for(D), S = image_size_for(D), classes = 8;
  Model<float> m = build_paper_model<float>(PaperModelOptions{classes, S, 1});
  m.to(D);
  if (finetune) m.freeze_up_to(kLastFrozenLayer);
  Sgdm<float> solver;
  auto xs = rotating_inputs({N, 3, S, S}, D, 1);
  const auto labels = cyclic_labels(N, classes, D);
  timed_loop<D>(st, [&](int i) {
    m.forward(xs[size_t(i) % xs.size()], labels, Mode::training);
    m.backward();
    solver.step(m, 1e-3);
  });
  set_counters(st, N, model_flops(m, N, true, true), 0);
}

template <Device D>
void register_all() {
  benchmark::RegisterBenchmark(bench_name(D, "paper_model/forward").c_str(), [](benchmark::State& st) { forward<D>(st); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  for (bool finetune : {false, true}) {
    const std::string name = bench_name(D, finetune ? "paper_model/finetune_step" : "paper_model/train_step");
    benchmark::RegisterBenchmark(name.c_str(), [finetune](benchmark::State& st) { step<D>(st, finetune); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace
}  // namespace ewnet::bench

int main(int argc, char** argv) {
  using ewnet::Device;
  return ewnet::bench::bench_main(argc, argv, &ewnet::bench::register_all<Device::cpu>,
#ifdef EWNET_WITH_CUDA
                                  &ewnet::bench::register_all<Device::cuda>
#else
                                  nullptr
#endif
  );
}
