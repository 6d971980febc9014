// ewnet/onednn/convolution.hpp: 2-D convolution through oneDNN's primitives (ops/conv2d.hpp has
// the math and the reference loops).
//
// Forward (with the bias, and the ReLU that follows as a post-op on the inference path), backward
// data and backward weights (the filter and the bias gradient in one primitive). The weights are
// handed over in whatever layout the primitive asks for (format_tag::any): reordered from ewnet's
// [K, C, kh, kw] once and kept by the layer while they are unchanged (LayerCache), or reordered
// every call when no layer cache is given. Activations are used in their own layout when the
// primitive takes it; a plain NCHW tensor is reordered in and out of the layout the primitive
// chooses (oneDNN's direct convolutions run on channel blocks; on plain NCHW it would fall back to
// im2col and a GEMM).
//
// The algorithm (algorithm_for): a float32 3x3 convolution with stride 1 and at least 32 input and
// output channels runs Winograd's algorithm (F(4x4, 3x3), or F(2x2, 3x3) where oneDNN prefers it),
// the direct one otherwise. Winograd does 2.25x fewer multiplications; on an AVX-512 machine it runs
// ResNet-18's and GoogLeNet's 3x3 layers 1.3x to 2.6x faster than the direct kernels
// (docs/benchmarks.md), with rounding that differs from the direct sum in the last bits (within
// 1e-4 relative of the reference on the layer tests). Where no backward pass follows (inference, a
// frozen base) it always pays: the weights are transformed once and kept with the layer. In
// training the weights are transformed every pass, so a batch needs at least 32 tiles of 4x4
// outputs (a 7x7 map of one sample has 4, and runs 3x slower); a batch's backward passes use its
// forward pass's algorithm. EWNET_CPU_CONV=direct in the environment, or a DirectConvolutionScope,
// keeps every convolution direct.
//
// Precision::bf16 (LayerCache::bf16): the activations and weights enter the primitive in bfloat16
// (reordered on the way in), which accumulates and writes in float32; the weights' and bias's
// gradients are float32 too. bfloat16 convolutions are always direct.
//
// Each output element of a direct convolution is one sum computed by one thread in an order fixed by
// the primitive, whatever the batch size or the thread count: its forward and backward data are
// bitwise the same for a sample alone or in any batch. A Winograd convolution's are the same run to
// run, across thread counts and across batches that run the same algorithm, but the batch size
// chooses the algorithm: a sample alone may round differently from the same sample in a batch.
// Backward weights sums over the batch in per-thread parts added in a fixed order: the same run to
// run for a given thread count.
#pragma once

#include <ewnet/onednn/adapter.hpp>

namespace ewnet::onednn {

/// A convolution's or a pooling window's geometry in oneDNN's terms.
struct Window {
  Dims kernel, strides, padding_l, padding_r;
  void add_to(Key& k) const { k.add(kernel).add(strides).add(padding_l).add(padding_r); }
};

// ---- the algorithm -----------------------------------------------------------------------------

namespace detail {
inline bool direct_by_default() {
  const char* v = std::getenv("EWNET_CPU_CONV");
  return v && std::string(v) == "direct";
}
inline bool& direct_flag() {
  thread_local bool on = direct_by_default();
  return on;
}
}  // namespace detail

/// Keeps every convolution on this thread direct for the scope's lifetime (what a sample's results
/// independent of its batch need; tests compare the two algorithms).
class DirectConvolutionScope {
 public:
  DirectConvolutionScope() : saved_(detail::direct_flag()) { detail::direct_flag() = true; }
  ~DirectConvolutionScope() { detail::direct_flag() = saved_; }
  DirectConvolutionScope(const DirectConvolutionScope&) = delete;
  DirectConvolutionScope& operator=(const DirectConvolutionScope&) = delete;

 private:
  bool saved_;
};

/// Training batches with fewer 4x4 output tiles than this run a 3x3 convolution directly.
constexpr memory::dim winograd_min_tiles = 32;

/// Whether a forward pass is followed by a backward pass (training) or not (inference, a frozen base).
enum class Pass { training, inference };

/// The algorithm a convolution of source `x` into `y` with this window and operand type runs (the
/// rule is in the file's head); backward passes ask with Pass::training.
inline dnnl::algorithm algorithm_for(const memory::desc& x, const memory::desc& y, const Window& win,
                                     memory::data_type in, Pass pass) {
  const Dims xd = x.dims(), yd = y.dims();
  const bool eligible = !detail::direct_flag() && in == memory::data_type::f32 && win.kernel == Dims{3, 3} &&
                        win.strides == Dims{1, 1} && xd[1] >= 32 && yd[1] >= 32;
  const memory::dim tiles = yd[0] * ((yd[2] + 3) / 4) * ((yd[3] + 3) / 4);
  const bool pays = pass == Pass::inference || tiles >= winograd_min_tiles;
  return eligible && pays ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
}

/// True when this engine has Winograd kernels (oneDNN's are for AVX-512 and up): asked once, of a
/// layer the rule sends to them.
inline bool winograd_supported() {
  static const bool yes = [] {
    const memory::desc x({1, 32, 16, 16}, memory::data_type::f32, memory::format_tag::any),
        w({32, 32, 3, 3}, memory::data_type::f32, memory::format_tag::any);
    try {
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_winograd, x,
                                        w, memory::desc(), x, {1, 1}, {1, 1}, {1, 1});
      dnnl::convolution_forward::primitive_desc(d, engine());
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return yes;
}

namespace detail {

/// `d` with its layout left to the primitive when it is plain NCHW (which oneDNN's direct
/// convolutions do not run on), as it is otherwise.
inline memory::desc activation_layout(const memory::desc& d) {
  if (d.data.format_kind == dnnl_blocked && d.data.format_desc.blocking.inner_nblks > 0) return d;
  return memory::desc(d.dims(), d.data_type(), memory::format_tag::any);
}
inline memory::desc any_layout(const memory::desc& d) {
  return memory::desc(d.dims(), d.data_type(), memory::format_tag::any);
}
inline memory::desc vector_desc(memory::dim n) { return memory::desc({n}, memory::data_type::f32, memory::format_tag::x); }

/// The element type the matrix products read: bfloat16 when the layer asks for it.
inline memory::data_type operand_type(const LayerCache* cache) {
  return cache && cache->bf16 ? memory::data_type::bf16 : memory::data_type::f32;
}

/// The forward primitive descriptor (also the hint the backward primitives need); `in` is the
/// element type of the source and the weights.
inline dnnl::convolution_forward::primitive_desc forward_pd(const memory::desc& x, const memory::desc& w, bool bias,
                                                              const memory::desc& y, const Window& win, bool relu,
                                                              memory::data_type in, dnnl::algorithm alg,
                                                              Pass pass = Pass::training) {
  // Winograd's inference kernels keep the weights transformed; the direct ones are the training
  // kernels in both passes (the inference path's bits are the training pass's).
  const bool inference = pass == Pass::inference && alg == dnnl::algorithm::convolution_winograd;
  const auto prop = inference ? dnnl::prop_kind::forward_inference : dnnl::prop_kind::forward_training;
  dnnl::convolution_forward::desc d(prop, alg,
                                    with_type(activation_layout(x), in), with_type(any_layout(w), in),
                                    bias ? vector_desc(w.dims()[0]) : memory::desc(), activation_layout(y),
                                    win.strides, win.padding_l, win.padding_r);
  dnnl::primitive_attr attr = base_attr();
  if (relu) {
    dnnl::post_ops po;
    po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(po);
  }
  return dnnl::convolution_forward::primitive_desc(d, attr, engine());
}

/// The weights in the primitive's layout: the layer's kept copy, or a reorder into scratch.
inline memory weights_for(const memory& plain, const memory::desc& want, LayerCache* cache, LayerCache::Use use) {
  if (cache) return cache->weights(use, plain, want);
  return as_layout(plain, want, Slot::weights);
}

/// Memory to write a result for `user` in: `user` itself when the primitive writes its layout and
/// nothing is to be accumulated, else scratch (then finish() moves it over).
inline memory output_for(const memory& user, const memory::desc& produced, bool accumulate) {
  if (!accumulate && produced == user.get_desc()) return user;
  return scratch_memory(produced, Slot::dst);
}
inline void finish(const memory& produced, const memory& user, bool accumulate) {
  if (produced.get_data_handle() != user.get_data_handle() || accumulate) reorder(produced, user, accumulate);
}

/// make(alg) for the rule's algorithm, or make(direct) when this engine has no Winograd kernel for
/// the shape (oneDNN's are for AVX-512 and up).
template <class Make>
Entry with_algorithm(dnnl::algorithm alg, Make&& make) {
  if (alg == dnnl::algorithm::convolution_winograd) {
    try {
      return make(alg);
    } catch (const dnnl::error&) {
    }
  }
  return make(dnnl::algorithm::convolution_direct);
}

}  // namespace detail

/// y = conv(x, w) + b (b may be null), max(0, .) when `relu`; `pass` says whether a backward pass
/// follows.
inline void conv2d_forward(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* b,
                           const Tensor<float>& y, const Window& win, bool relu, Pass pass, LayerCache* cache) {
  if (x.n() == 0) return;
  const memory::desc xd = desc_of(x), wd = desc_of(w), yd = desc_of(y);
  const memory::data_type in = detail::operand_type(cache);
  Key key("conv_fwd");
  key.add(xd).add(wd).add(yd).add(b != nullptr).add(relu).add(std::int64_t(in));
  win.add_to(key);
  const dnnl::algorithm alg = algorithm_for(xd, yd, win, in, pass);
  key.add(std::int64_t(alg)).add(std::int64_t(pass));
  const Entry& e = primitive_cache().get(key, [&] {
    return detail::with_algorithm(alg, [&](dnnl::algorithm a) {
      auto pd = detail::forward_pd(xd, wd, b != nullptr, yd, win, relu, in, a, pass);
      return Entry{pd, dnnl::convolution_forward(pd)};
    });
  });
  const memory user_y = wrap(y);
  const memory dst = detail::output_for(user_y, e.pd.dst_desc(), false);
  Args args{{DNNL_ARG_SRC, as_layout(wrap(x), e.pd.src_desc(), Slot::src)},
            {DNNL_ARG_WEIGHTS, detail::weights_for(wrap(w), e.pd.weights_desc(), cache, LayerCache::forward_weights)},
            {DNNL_ARG_DST, dst}};
  if (b) args[DNNL_ARG_BIAS] = wrap(detail::vector_desc(y.c()), b->data());
  execute(e, args);
  detail::finish(dst, user_y, false);
}

/// dx = conv_transpose(dy, w), or dx += it when `accumulate`.
inline void conv2d_backward_data(const Tensor<float>& dy, const Tensor<float>& w, const Tensor<float>& dx,
                                 const Window& win, bool accumulate, LayerCache* cache) {
  if (dy.n() == 0) return;
  const memory::desc dyd = desc_of(dy), wd = desc_of(w), dxd = desc_of(dx);
  const memory::data_type in = detail::operand_type(cache);
  Key key("conv_bwd_data");
  key.add(dyd).add(wd).add(dxd).add(std::int64_t(in));
  win.add_to(key);
  const dnnl::algorithm alg = algorithm_for(dxd, dyd, win, in, Pass::training);
  key.add(std::int64_t(alg));
  const Entry& e = primitive_cache().get(key, [&] {
    return detail::with_algorithm(alg, [&](dnnl::algorithm a) {
      auto hint = detail::forward_pd(dxd, wd, false, dyd, win, false, in, a);
      dnnl::convolution_backward_data::desc d(a, detail::activation_layout(dxd), with_type(detail::any_layout(wd), in),
                                              with_type(detail::activation_layout(dyd), in), win.strides,
                                              win.padding_l, win.padding_r);
      dnnl::convolution_backward_data::primitive_desc pd(d, base_attr(), engine(), hint);
      return Entry{pd, dnnl::convolution_backward_data(pd)};
    });
  });
  const memory user_dx = wrap(dx);
  const memory diff_src = detail::output_for(user_dx, e.pd.diff_src_desc(), accumulate);
  execute(e, {{DNNL_ARG_DIFF_DST, as_layout(wrap(dy), e.pd.diff_dst_desc(), Slot::src)},
              {DNNL_ARG_WEIGHTS, detail::weights_for(wrap(w), e.pd.weights_desc(), cache, LayerCache::backward_weights)},
              {DNNL_ARG_DIFF_SRC, diff_src}});
  detail::finish(diff_src, user_dx, accumulate);
}

/// dw = sum over the batch of dy (*) x, and db = the sum of dy over the batch and the pixels
/// (each overwritten; either may be null). `cache` only says the precision (may be null).
inline void conv2d_backward_weights(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>* dw,
                                    const Tensor<float>* db, const Shape& wshape, const Window& win,
                                    const LayerCache* cache) {
  if (!dw && !db) return;
  if (x.n() == 0) {
    if (dw) dw->zero();
    if (db) db->zero();
    return;
  }
  const memory::desc xd = desc_of(x), dyd = desc_of(dy);
  const memory::desc wd({wshape.n, wshape.c, wshape.h, wshape.w}, memory::data_type::f32, memory::format_tag::oihw);
  const memory::data_type in = detail::operand_type(cache);
  Key key("conv_bwd_weights");
  key.add(xd).add(dyd).add(wd).add(db != nullptr).add(std::int64_t(in));
  win.add_to(key);
  const dnnl::algorithm alg = algorithm_for(xd, dyd, win, in, Pass::training);
  key.add(std::int64_t(alg));
  const Entry& e = primitive_cache().get(key, [&] {
    return detail::with_algorithm(alg, [&](dnnl::algorithm a) {
      auto hint = detail::forward_pd(xd, wd, db != nullptr, dyd, win, false, in, a);
      dnnl::convolution_backward_weights::desc d(a, with_type(detail::activation_layout(xd), in),
                                                 detail::any_layout(wd),
                                                 db ? detail::vector_desc(wshape.n) : memory::desc(),
                                                 with_type(detail::activation_layout(dyd), in), win.strides,
                                                 win.padding_l, win.padding_r);
      dnnl::convolution_backward_weights::primitive_desc pd(d, base_attr(), engine(), hint);
      return Entry{pd, dnnl::convolution_backward_weights(pd)};
    });
  });
  // A filter gradient nobody asked for still has to go somewhere: scratch.
  const memory user_dw = dw ? wrap(wd, dw->data()) : memory();
  const memory diff_w = dw ? detail::output_for(user_dw, e.pd.diff_weights_desc(), false)
                           : scratch_memory(e.pd.diff_weights_desc(), Slot::dst);
  Args args{{DNNL_ARG_SRC, as_layout(wrap(x), e.pd.src_desc(), Slot::src)},
            {DNNL_ARG_DIFF_DST, as_layout(wrap(dy), e.pd.diff_dst_desc(), Slot::extra)},
            {DNNL_ARG_DIFF_WEIGHTS, diff_w}};
  if (db) args[DNNL_ARG_DIFF_BIAS] = wrap(detail::vector_desc(wshape.n), db->data());
  execute(e, args);
  if (dw) detail::finish(diff_w, user_dw, false);
}

}  // namespace ewnet::onednn
