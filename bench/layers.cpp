// bench/layers.cpp: each layer kind alone, at the shapes of the paper model's stem and modules,
// forward and backward: convolution, cross-channel normalization, ReLU, max pooling,
// concatenation, addition, dropout, softmax with cross-entropy, fully connected, the SGDM update.
//
// Shapes follow the training step of each device (bench_util.hpp): batch 32 at 112x112 on the CPU,
// so the stem runs at 56x56 and 28x28 and the modules at 14x14; batch 64 at 224x224 on a GPU
// (112, 56 and 28). Counters: images/s, FLOP/s for convolutions and fully connected layers, and
// the bytes each element-wise operation must read and write at least once.
#include <functional>

#include "bench_util.hpp"

namespace ewnet::bench {
namespace {

using Body = std::function<void(benchmark::State&)>;

void add(const std::string& name, Body body) {
  benchmark::RegisterBenchmark(name.c_str(), [body](benchmark::State& st) { body(st); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

constexpr double kF = sizeof(float);

template <Device D>
void conv(const std::string& name, int C, int K, int k, int stride, int H) {
  add(bench_name(D, "conv/" + name + "/forward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    Conv2dGeometry g{k, k, stride, stride, (k - 1) / 2, (k - 1) / 2};
    const int Ho = g.out_h(H);
    auto xs = rotating_inputs({N, C, H, H}, D, 1);
    Tensor<float> w = random_tensor({K, C, k, k}, D, 2, -0.1, 0.1), b = random_tensor({1, K, 1, 1}, D, 3);
    Tensor<float> y = Tensor<float>::empty({N, K, Ho, Ho}, D);
    timed_loop<D>(st, [&](int i) { conv2d_forward(xs[size_t(i) % xs.size()], w, &b, y, g); });
    set_counters(st, N, N * conv_flops(C, K, k, k, Ho, Ho), 0);
  });
  add(bench_name(D, "conv/" + name + "/backward_data"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    Conv2dGeometry g{k, k, stride, stride, (k - 1) / 2, (k - 1) / 2};
    const int Ho = g.out_h(H);
    auto dys = rotating_inputs({N, K, Ho, Ho}, D, 1);
    Tensor<float> w = random_tensor({K, C, k, k}, D, 2, -0.1, 0.1);
    Tensor<float> dx = Tensor<float>::empty({N, C, H, H}, D);
    timed_loop<D>(st, [&](int i) { conv2d_backward_data(dys[size_t(i) % dys.size()], w, dx, g); });
    set_counters(st, N, N * conv_flops(C, K, k, k, Ho, Ho), 0);
  });
  add(bench_name(D, "conv/" + name + "/backward_filter"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    Conv2dGeometry g{k, k, stride, stride, (k - 1) / 2, (k - 1) / 2};
    const int Ho = g.out_h(H);
    auto xs = rotating_inputs({N, C, H, H}, D, 1);
    Tensor<float> dy = random_tensor({N, K, Ho, Ho}, D, 2);
    Tensor<float> dw = Tensor<float>::empty({K, C, k, k}, D), db = Tensor<float>::empty({1, K, 1, 1}, D);
    timed_loop<D>(st, [&](int i) {
      conv2d_backward_filter(xs[size_t(i) % xs.size()], dy, dw, g);
      conv2d_backward_bias(dy, db);
    });
    set_counters(st, N, N * conv_flops(C, K, k, k, Ho, Ho), 0);
  });
}

template <Device D>
void lrn(const std::string& name, int C, int H) {
  CrossChannelNormParams p;  // the paper model's: window 5, alpha 1e-4, beta 0.75, k 1
  p.k = 1.0;
  add(bench_name(D, "cross_channel_norm/" + name + "/forward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    auto xs = rotating_inputs({N, C, H, H}, D, 1);
    Tensor<float> y = Tensor<float>::empty(xs[0].shape(), D), s = Tensor<float>::empty(xs[0].shape(), D);
    timed_loop<D>(st, [&](int i) { cross_channel_norm_forward(xs[size_t(i) % xs.size()], y, s, p); });
    set_counters(st, N, 0, 3 * kF * xs[0].size());
  });
  add(bench_name(D, "cross_channel_norm/" + name + "/backward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    Tensor<float> x = random_tensor({N, C, H, H}, D, 1), dy = random_tensor({N, C, H, H}, D, 2);
    Tensor<float> y = Tensor<float>::empty(x.shape(), D), s = Tensor<float>::empty(x.shape(), D);
    Tensor<float> dx = Tensor<float>::empty(x.shape(), D);
    cross_channel_norm_forward(x, y, s, p);
    timed_loop<D>(st, [&](int) { cross_channel_norm_backward(x, y, dy, s, dx, p); });
    set_counters(st, N, 0, 5 * kF * x.size());
  });
}

template <Device D>
void relu(const std::string& name, int C, int H) {
  add(bench_name(D, "relu/" + name + "/forward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    auto xs = rotating_inputs({N, C, H, H}, D, 1);
    Tensor<float> y = Tensor<float>::empty(xs[0].shape(), D);
    timed_loop<D>(st, [&](int i) { relu_forward(xs[size_t(i) % xs.size()], y); });
    set_counters(st, N, 0, 2 * kF * y.size());
  });
  add(bench_name(D, "relu/" + name + "/backward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    auto ys = rotating_inputs({N, C, H, H}, D, 1);
    Tensor<float> dy = random_tensor(ys[0].shape(), D, 2), dx = Tensor<float>::empty(ys[0].shape(), D);
    timed_loop<D>(st, [&](int i) { relu_backward(ys[size_t(i) % ys.size()], dy, dx); });
    set_counters(st, N, 0, 3 * kF * dx.size());
  });
}

template <Device D>
void max_pool(const std::string& name, int C, int H, int stride) {
  const PoolGeometry g{3, 3, stride, stride, 1, 1};
  add(bench_name(D, "max_pool/" + name + "/forward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    auto xs = rotating_inputs({N, C, H, H}, D, 1);
    Tensor<float> y = Tensor<float>::empty({N, C, g.out_h(H), g.out_w(H)}, D);
    timed_loop<D>(st, [&](int i) { max_pool_forward(xs[size_t(i) % xs.size()], y, g); });
    set_counters(st, N, 0, kF * (xs[0].size() + y.size()));
  });
  add(bench_name(D, "max_pool/" + name + "/backward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    Tensor<float> x = random_tensor({N, C, H, H}, D, 1), dx = Tensor<float>::empty(x.shape(), D);
    Tensor<float> y = Tensor<float>::empty({N, C, g.out_h(H), g.out_w(H)}, D);
    Tensor<float> dy = random_tensor(y.shape(), D, 2);
    max_pool_forward(x, y, g);
    timed_loop<D>(st, [&](int) { max_pool_backward(x, y, dy, dx, g); });
    set_counters(st, N, 0, kF * (2 * x.size() + 2 * y.size()));
  });
}

/// Depth concatenation of an inception module's four branches when they could not be written in
/// place (the graph normally places them, and then concatenation moves nothing).
template <Device D>
void concat(const std::string& name, std::vector<int> channels, int H) {
  add(bench_name(D, "concat/" + name + "/forward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    int total = 0;
    std::vector<Tensor<float>> parts;
    for (int c : channels) {
      parts.push_back(random_tensor({N, c, H, H}, D, std::uint64_t(total) + 1));
      total += c;
    }
    Tensor<float> y = Tensor<float>::empty({N, total, H, H}, D);
    timed_loop<D>(st, [&](int) {
      int c0 = 0;
      for (const Tensor<float>& p : parts) {
        y.channels(c0, p.c()).copy_from(p);
        c0 += p.c();
      }
    });
    set_counters(st, N, 0, 2 * kF * y.size());
  });
  add(bench_name(D, "concat/" + name + "/backward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    int total = 0;
    std::vector<Tensor<float>> parts;
    for (int c : channels) {
      parts.push_back(Tensor<float>::empty({N, c, H, H}, D));
      total += c;
    }
    Tensor<float> dy = random_tensor({N, total, H, H}, D, 1);
    timed_loop<D>(st, [&](int) {
      int c0 = 0;
      for (const Tensor<float>& p : parts) {
        copy_gradient(dy.channels(c0, p.c()), p);
        c0 += p.c();
      }
    });
    set_counters(st, N, 0, 2 * kF * dy.size());
  });
}

template <Device D>
void addition(const std::string& name, int C, int H) {
  add(bench_name(D, "add/" + name + "/forward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    auto as = rotating_inputs({N, C, H, H}, D, 1);
    Tensor<float> b = random_tensor(as[0].shape(), D, 2), y = Tensor<float>::empty(as[0].shape(), D);
    timed_loop<D>(st, [&](int i) { add_forward(as[size_t(i) % as.size()], b, y); });
    set_counters(st, N, 0, 3 * kF * y.size());
  });
  // Backward hands dy to both addends: the first overwrites, the second accumulates.
  add(bench_name(D, "add/" + name + "/backward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    Tensor<float> dy = random_tensor({N, C, H, H}, D, 1), da = Tensor<float>::empty(dy.shape(), D);
    Tensor<float> db = random_tensor(dy.shape(), D, 2);
    timed_loop<D>(st, [&](int) {
      copy_gradient(dy, da, GradWrite::overwrite);
      copy_gradient(dy, db, GradWrite::accumulate);
    });
    set_counters(st, N, 0, 5 * kF * dy.size());
  });
}

template <Device D>
void dropout(const std::string& name, int C, int H) {
  add(bench_name(D, "dropout/" + name + "/forward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    auto xs = rotating_inputs({N, C, H, H}, D, 1);
    Tensor<float> y = Tensor<float>::empty(xs[0].shape(), D);
    timed_loop<D>(st, [&](int i) {
      dropout_forward(xs[size_t(i) % xs.size()], y, DropoutParams{0.4, 7, std::uint64_t(i)});
    });
    set_counters(st, N, 0, 2 * kF * y.size());
  });
  add(bench_name(D, "dropout/" + name + "/backward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    Tensor<float> dy = random_tensor({N, C, H, H}, D, 1), dx = Tensor<float>::empty(dy.shape(), D);
    timed_loop<D>(st, [&](int i) { dropout_backward(dy, dx, DropoutParams{0.4, 7, std::uint64_t(i)}); });
    set_counters(st, N, 0, 2 * kF * dy.size());
  });
}

template <Device D>
void softmax_loss(const std::string& name, int classes) {
  add(bench_name(D, "softmax_cross_entropy/" + name + "/forward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    Tensor<float> x = random_tensor({N, classes, 1, 1}, D, 1), p = Tensor<float>::empty(x.shape(), D);
    Tensor<float> loss = Tensor<float>::empty({N, 1, 1, 1}, D);
    const auto labels = cyclic_labels(N, classes, D);
    timed_loop<D>(st, [&](int) {
      softmax_forward(x, p);
      cross_entropy_forward(p, labels, loss);
    });
    set_counters(st, N, 0, kF * (2 * x.size() + N));
  });
  add(bench_name(D, "softmax_cross_entropy/" + name + "/backward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    Tensor<float> x = random_tensor({N, classes, 1, 1}, D, 1), p = Tensor<float>::empty(x.shape(), D);
    Tensor<float> dx = Tensor<float>::empty(x.shape(), D);
    const auto labels = cyclic_labels(N, classes, D);
    softmax_forward(x, p);
    timed_loop<D>(st, [&](int) { softmax_cross_entropy_backward(p, labels, dx, 1.0f / float(N)); });
    set_counters(st, N, 0, kF * 2 * x.size());
  });
}

template <Device D>
void fully_connected(const std::string& name, int inputs, int outputs) {
  add(bench_name(D, "fully_connected/" + name + "/forward_backward"), [=](benchmark::State& st) {
    const int N = batch_for(D);
    Tensor<float> x = random_tensor({N, inputs, 1, 1}, D, 1), w = random_tensor({outputs, inputs, 1, 1}, D, 2);
    Tensor<float> b = random_tensor({1, outputs, 1, 1}, D, 3), y = Tensor<float>::empty({N, outputs, 1, 1}, D);
    Tensor<float> dw = Tensor<float>::empty(w.shape(), D), db = Tensor<float>::empty(b.shape(), D);
    Tensor<float> dx = Tensor<float>::empty(x.shape(), D);
    timed_loop<D>(st, [&](int) {
      fully_connected_forward(x, w, &b, y);
      fully_connected_backward_data(y, w, dx);
      fully_connected_backward_weights(x, y, &dw, &db);
    });
    set_counters(st, N, 3 * 2.0 * N * inputs * outputs, 0);
  });
}

/// One SGDM update of every parameter of the paper model (all trainable).
template <Device D>
void sgdm() {
  add(bench_name(D, "sgdm/paper_model/update"), [](benchmark::State& st) {
    Model<float> m = build_paper_model<float>(PaperModelOptions{8, image_size_for(D), 1});
    m.to(D);
    std::vector<SgdmSlot<float>> slots;
    size_t count = 0;
    std::vector<Tensor<float>> grads;
    for (auto& [layer, p] : m.parameters()) {
      grads.push_back(random_tensor(p->value.shape(), D, count + 1, -1e-3, 1e-3));
      slots.push_back(SgdmSlot<float>{p->value.data(), grads.back().data(), p->velocity.data(), p->count(), 1e-3f,
                                      1e-4f});
      count += p->count();
    }
    timed_loop<D>(st, [&](int) { sgdm_update(D, slots, 0.9f); });
    // Reads weights, gradients and velocities; writes weights and velocities.
    set_counters(st, 0, 0, 5 * kF * double(count));
    st.counters["parameters"] = double(count);
  });
}

/// The ceilings the other figures are read against: a large matrix product through the library's
/// fully connected layer (oneDNN's inner product on the CPU, cuBLAS on a GPU), the best FLOP/s a
/// convolution lowered to GEMM can reach; and a large device-to-device copy, the bandwidth an element-wise
/// operation can reach.
template <Device D>
void references() {
  add(bench_name(D, "reference/gemm_2048"), [](benchmark::State& st) {
    const int n = 2048;
    Tensor<float> x = random_tensor({n, n, 1, 1}, D, 1), w = random_tensor({n, n, 1, 1}, D, 2);
    Tensor<float> y = Tensor<float>::empty({n, n, 1, 1}, D);
    onednn::LayerCache cache;  // the weights reordered once, as a layer keeps them
    timed_loop<D>(st, [&](int) { fully_connected_forward(x, w, static_cast<const Tensor<float>*>(nullptr), y, &cache); });
    set_counters(st, 0, 2.0 * n * n * double(n), 0);
  });
  // The bfloat16 ceiling (AVX512-BF16 or AMX): the same product with bfloat16 operands and float32
  // accumulation, oneDNN's matmul on operands already in bfloat16 (no conversion timed).
  if constexpr (D == Device::cpu) {
    if (onednn::bf16_supported()) {
      add(bench_name(D, "reference/gemm_2048_bf16"), [](benchmark::State& st) {
        const int n = 2048;
        using dt = dnnl::memory::data_type;
        const dnnl::memory::desc a({n, n}, dt::bf16, dnnl::memory::format_tag::ab),
            b({n, n}, dt::bf16, dnnl::memory::format_tag::any), c({n, n}, dt::f32, dnnl::memory::format_tag::ab);
        const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), onednn::engine());
        const dnnl::matmul mm(pd);
        const Tensor<float> x = random_tensor({n, n, 1, 1}, D, 1), w = random_tensor({n, n, 1, 1}, D, 2);
        Tensor<float> y = Tensor<float>::empty({n, n, 1, 1}, D);
        const dnnl::memory::desc plain({n, n}, dt::f32, dnnl::memory::format_tag::ab);
        dnnl::memory am(a, onednn::engine()), bm(pd.weights_desc(), onednn::engine());
        onednn::reorder(onednn::wrap(plain, x.data()), am);
        onednn::reorder(onednn::wrap(plain, w.data()), bm);
        const dnnl::memory cm = onednn::wrap(c, y.data());
        timed_loop<D>(st, [&](int) {
          cpu::use_engine_threads();
          mm.execute(onednn::stream(), {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
          onednn::stream().wait();
        });
        set_counters(st, 0, 2.0 * n * n * double(n), 0);
      });
    }
  }
  add(bench_name(D, "reference/copy_256MiB"), [](benchmark::State& st) {
    const Shape s{64, 1024, 1024, 1};
    Tensor<float> a = random_tensor(s, D, 1), b = Tensor<float>::empty(s, D);
    timed_loop<D>(st, [&](int) { b.copy_from(a); });
    set_counters(st, 0, 0, 2 * kF * double(s.size()));
  });
}

template <Device D>
void register_all() {
  references<D>();
  const int S = image_size_for(D);
  const int s2 = S / 2, s4 = S / 4, s8 = S / 8;
  // Stem.
  conv<D>("conv1_7x7s2_3to64", 3, 64, 7, 2, S);
  conv<D>("conv2_reduce_1x1_64to64", 64, 64, 1, 1, s4);
  conv<D>("conv2_3x3_64to192", 64, 192, 3, 1, s4);
  // Inception 3a's branches, 3b's 3x3, and 4a's residual projection.
  conv<D>("3a_1x1_192to64", 192, 64, 1, 1, s8);
  conv<D>("3a_3x3_96to128", 96, 128, 3, 1, s8);
  conv<D>("3a_5x5_16to32", 16, 32, 5, 1, s8);
  conv<D>("3b_3x3_128to192", 128, 192, 3, 1, s8);
  conv<D>("4a_shortcut_1x1_480to512", 480, 512, 1, 1, s8);
  lrn<D>("norm1_64", 64, s4);
  lrn<D>("norm2_192", 192, s4);
  relu<D>("conv1_64", 64, s2);
  relu<D>("3a_3x3_128", 128, s8);
  max_pool<D>("pool1_3x3s2_64", 64, s2, 2);
  max_pool<D>("pool2_3x3s2_192", 192, s4, 2);
  max_pool<D>("3a_pool_3x3s1_192", 192, s8, 1);
  concat<D>("3a_256", {64, 128, 32, 32}, s8);
  addition<D>("3a_residual_256", 256, s8);
  dropout<D>("head_512", 512, 1);
  dropout<D>("4a_512", 512, s8);
  softmax_loss<D>("head_8", 8);
  fully_connected<D>("head_512to8", 512, 8);
  sgdm<D>();
}

}  // namespace
}  // namespace ewnet::bench

EWNET_BENCH_MAIN(ewnet::bench::register_all)
