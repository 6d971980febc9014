// bench/train_step.cpp: one training step of the paper's model (forward with the loss, backward,
// SGDM update): batch 32 at 112x112 on the CPU, batch 64 at 224x224 on a GPU; the same step and the
// inference pass of the three torchvision networks (torchvision_NAME/train_step, /inference). Two variants:
//   full       every layer trains;
//   finetune   the transferable base is frozen (Model::freeze_up_to(kLastFrozenLayer)), so only
//              the head trains and backward stops at the classifier: the step is the forward pass
//              plus the head's backward.
// An epoch is a sequence of identical steps, so the ratio of the two step rates is the ratio of
// a full and a fine-tuning epoch with data loading left out, when fine-tuning runs the frozen base.
//
// Epochs of 4 mini-batches (128 images on the CPU, 256 on a GPU), data loading left out:
//   train_epoch              4 full steps;
//   finetune_epoch_cached    4 head steps as train::fit runs them with a feature cache: the
//                            activations of kFeatureLayer for every image are computed beforehand,
//                            and each step gathers a shuffled batch of them and runs
//                            forward_from(kFeatureLayer), backward and the update;
//   feature_extraction       the one-time cost that cache needs: an inference pass over the 4
//                            batches, the activations copied to the host.
#include <numeric>

#include <ewnet/models/build.hpp>
#include <ewnet/train/batches.hpp>

#include "bench_util.hpp"

namespace ewnet::bench {
namespace {

/// The forward pass alone (training mode, with the loss): the floor of the fine-tuning step, which
/// must still run the whole frozen base forward on every batch.
template <Device D>
void forward(benchmark::State& st) {
  const int N = batch_for(D), S = image_size_for(D), classes = 8;
  Model<float> m = build_paper_model<float>(PaperModelOptions{classes, S, 1});
  prepare(m, D);
  auto xs = rotating_inputs({N, 3, S, S}, D, 1);
  const auto labels = cyclic_labels(N, classes, D);
  timed_loop<D>(st, [&](int i) { m.forward(xs[size_t(i) % xs.size()], labels, Mode::training); });
  set_counters(st, N, model_flops(m, N, true, false), 0);
}

/// Inference: the forward pass without labels, in inference mode (what ewnet-classify and
/// ewnet::Model::forward(images) run), of the network build_model() names.
template <Device D>
void inference(benchmark::State& st, const std::string& network) {
  const int N = batch_for(D), S = image_size_for(D), classes = 8;
  Model<float> m = build_model<float>(network, classes, S, 1);
  prepare(m, D);
  auto xs = rotating_inputs({N, 3, S, S}, D, 1);
  timed_loop<D>(st, [&](int i) { m.forward(xs[size_t(i) % xs.size()], Mode::inference); });
  set_counters(st, N, model_flops(m, N, true, false), 0);
}

template <Device D>
void step(benchmark::State& st, const std::string& network, bool finetune) {
  const int N = batch_for(D), S = image_size_for(D), classes = 8;
  Model<float> m = build_model<float>(network, classes, S, 1);
  prepare(m, D);
  if (finetune) m.freeze_up_to(last_base_layer(m));
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

constexpr int kEpochBatches = 4;

template <Device D>
void train_epoch(benchmark::State& st) {
  const int N = batch_for(D), S = image_size_for(D), classes = 8;
  Model<float> m = build_paper_model<float>(PaperModelOptions{classes, S, 1});
  prepare(m, D);
  Sgdm<float> solver;
  auto xs = rotating_inputs({N, 3, S, S}, D, 1);
  const auto labels = cyclic_labels(N, classes, D);
  timed_loop<D>(st, [&](int) {
    for (int b = 0; b < kEpochBatches; ++b) {
      m.forward(xs[size_t(b) % xs.size()], labels, Mode::training);
      m.backward();
      solver.step(m, 1e-3);
    }
  }, 1);
  set_counters(st, kEpochBatches * N, kEpochBatches * model_flops(m, N, true, true), 0);
}

/// The activations of kFeatureLayer for the epoch's kEpochBatches batches, on the host.
Tensor<float> extract(Model<float>& m, const std::vector<Tensor<float>>& xs, int N) {
  Tensor<float> features = Tensor<float>::empty(m.output_shape(kFeatureLayer).with_batch(kEpochBatches * N));
  for (int b = 0; b < kEpochBatches; ++b) {
    m.forward(xs[size_t(b) % xs.size()], Mode::inference);
    features.batch(b * N, N).copy_from(m.activation(kFeatureLayer));
  }
  return features;
}

template <Device D>
void feature_extraction(benchmark::State& st) {
  const int N = batch_for(D), S = image_size_for(D), classes = 8;
  Model<float> m = build_paper_model<float>(PaperModelOptions{classes, S, 1});
  prepare(m, D);
  m.freeze_up_to(kLastFrozenLayer);
  auto xs = rotating_inputs({N, 3, S, S}, D, 1);
  timed_loop<D>(st, [&](int) { benchmark::DoNotOptimize(extract(m, xs, N)); }, 1);
  set_counters(st, kEpochBatches * N, kEpochBatches * model_flops(m, N, true, false), 0);
}

template <Device D>
void finetune_epoch_cached(benchmark::State& st) {
  const int N = batch_for(D), S = image_size_for(D), classes = 8, images = kEpochBatches * N;
  Model<float> m = build_paper_model<float>(PaperModelOptions{classes, S, 1});
  prepare(m, D);
  m.freeze_up_to(kLastFrozenLayer);
  Sgdm<float> solver;
  const Tensor<float> features = extract(m, rotating_inputs({N, 3, S, S}, D, 1), N);
  std::vector<size_t> samples(size_t(images), 0);
  std::iota(samples.begin(), samples.end(), size_t(0));
  std::vector<size_t> rows(static_cast<size_t>(N));
  std::vector<int> labels(static_cast<size_t>(N));
  Tensor<float> rows_host, staged;
  timed_loop<D>(st, [&](int epoch) {
    const std::vector<size_t> order = data::epoch_order(samples, true, 0, epoch);
    for (int b = 0; b < kEpochBatches; ++b) {
      for (int i = 0; i < N; ++i) {
        rows[size_t(i)] = order[size_t(b * N + i)];
        labels[size_t(i)] = int(rows[size_t(i)] % size_t(classes));
      }
      train::gather_rows(features, rows, rows_host);
      m.forward_from(kFeatureLayer, train::on_device(rows_host, D, staged), labels, Mode::training);
      m.backward();
      solver.step(m, 1e-3);
    }
  }, 1);
  set_counters(st, images, 0, 0);
}

template <Device D>
void register_all() {
  benchmark::RegisterBenchmark(bench_name(D, "paper_model/forward").c_str(), [](benchmark::State& st) { forward<D>(st); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  for (const std::string network : {"paper", "resnet18", "googlenet", "inception-v3"}) {
    const std::string prefix = network == "paper" ? "paper_model/" : "torchvision_" + network + "/";
    benchmark::RegisterBenchmark(bench_name(D, prefix + "inference").c_str(),
                                 [network](benchmark::State& st) { inference<D>(st, network); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
    for (bool finetune : {false, true}) {
      if (finetune && network != "paper") continue;
      const std::string name = bench_name(D, prefix + (finetune ? "finetune_step" : "train_step"));
      benchmark::RegisterBenchmark(name.c_str(), [network, finetune](benchmark::State& st) {
        step<D>(st, network, finetune);
      })->UseManualTime()->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::RegisterBenchmark(bench_name(D, "paper_model/train_epoch").c_str(),
                               [](benchmark::State& st) { train_epoch<D>(st); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(bench_name(D, "paper_model/feature_extraction").c_str(),
                               [](benchmark::State& st) { feature_extraction<D>(st); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(bench_name(D, "paper_model/finetune_epoch_cached").c_str(),
                               [](benchmark::State& st) { finetune_epoch_cached<D>(st); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

}  // namespace
}  // namespace ewnet::bench

EWNET_BENCH_MAIN(ewnet::bench::register_all)
