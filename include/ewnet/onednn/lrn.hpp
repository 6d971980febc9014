// ewnet/onednn/lrn.hpp: cross-channel (local response) normalization through oneDNN's LRN
// primitive, lrn_across_channels (ops/cross_channel_norm.hpp has the math and the reference loops).
//
// oneDNN's window is centred, so it computes ewnet's definition for odd window sizes only (the
// operation keeps even sizes on the reference loops). In a pass whose backward will run, the
// forward primitive leaves its workspace in the layer's cache for the backward primitive; without
// one the backward pass runs the forward primitive again to get it. Plain tensors are reordered
// into channel blocks and back: oneDNN's LRN backward on plain NCHW is its scalar reference.
#pragma once

#include <ewnet/onednn/convolution.hpp>

namespace ewnet::onednn {

struct LrnParams {
  memory::dim size;
  float alpha, beta, k;
  void add_to(Key& key) const {
    key.add(size);
    for (float f : {alpha, beta, k}) {
      std::int32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      key.add(bits);
    }
  }
};

namespace detail {
/// The layout the LRN primitive runs in for a tensor described by `d`: its own when blocked, else
/// the engine's channel blocks.
inline memory::desc lrn_layout(const memory::desc& d) {
  if (d.data.format_kind == dnnl_blocked && d.data.format_desc.blocking.inner_nblks > 0) return d;
  return memory::desc(d.dims(), d.data_type(),
                      preferred_block() == 8 ? memory::format_tag::nChw8c : memory::format_tag::nChw16c);
}
inline dnnl::lrn_forward::primitive_desc lrn_pd(dnnl::prop_kind prop, const memory::desc& x, const LrnParams& p) {
  dnnl::lrn_forward::desc d(prop, dnnl::algorithm::lrn_across_channels, x, p.size, p.alpha, p.beta, p.k);
  return dnnl::lrn_forward::primitive_desc(d, base_attr(), engine());
}
inline const Entry& lrn_forward_entry(dnnl::prop_kind prop, const memory::desc& x, const LrnParams& p) {
  Key key("lrn_fwd");
  key.add(std::int64_t(prop)).add(x);
  p.add_to(key);
  return primitive_cache().get(key, [&] {
    auto pd = lrn_pd(prop, x, p);
    return Entry{pd, dnnl::lrn_forward(pd)};
  });
}
}  // namespace detail

/// y = LRN(x); x and y share one descriptor (oneDNN's LRN reads and writes one layout).
inline void lrn_forward(const Tensor<float>& x, const Tensor<float>& y, const LrnParams& p, bool keep,
                        LayerCache* cache) {
  if (x.n() == 0) return;
  keep = keep && cache;
  const auto prop = keep ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  const memory::desc xd = detail::lrn_layout(desc_of(x));
  const Entry& e = detail::lrn_forward_entry(prop, xd, p);
  const memory user_y = wrap(y);
  const memory dst = detail::output_for(user_y, xd, false);
  Args args{{DNNL_ARG_SRC, as_layout(wrap(x), xd, Slot::src)}, {DNNL_ARG_DST, dst}};
  if (keep) args[DNNL_ARG_WORKSPACE] = cache->keep(e.pd.workspace_desc(), y.data());
  else if (cache) cache->forget();
  execute(e, args);
  detail::finish(dst, user_y, false);
}

/// dx = the gradient of LRN (or dx += it when `accumulate`); x and y are the forward pass's.
inline void lrn_backward(const Tensor<float>& x, const Tensor<float>& y, const Tensor<float>& dy,
                         const Tensor<float>& dx, const LrnParams& p, bool accumulate, LayerCache* cache) {
  if (x.n() == 0) return;
  const memory::desc xd = detail::lrn_layout(desc_of(x));
  const memory src = as_layout(wrap(x), xd, Slot::src);
  const Entry& fwd = detail::lrn_forward_entry(dnnl::prop_kind::forward_training, xd, p);
  Key key("lrn_bwd");
  key.add(xd);
  p.add_to(key);
  const Entry& e = primitive_cache().get(key, [&] {
    dnnl::lrn_backward::desc d(dnnl::algorithm::lrn_across_channels, xd, xd, p.size, p.alpha, p.beta, p.k);
    const auto hint = detail::lrn_pd(dnnl::prop_kind::forward_training, xd, p);
    dnnl::lrn_backward::primitive_desc pd(d, base_attr(), engine(), hint);
    return Entry{pd, dnnl::lrn_backward(pd)};
  });
  memory ws;
  if (!cache || !cache->kept(fwd.pd.workspace_desc(), y.data(), ws)) {
    ws = scratch_memory(fwd.pd.workspace_desc(), Slot::extra);
    execute(fwd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, scratch_memory(xd, Slot::dst)}, {DNNL_ARG_WORKSPACE, ws}});
  }
  const memory user_dx = wrap(dx);
  const memory diff_src = detail::output_for(user_dx, xd, accumulate);
  execute(e, {{DNNL_ARG_SRC, src},
              {DNNL_ARG_DIFF_DST, as_layout(wrap(dy), xd, Slot::weights)},
              {DNNL_ARG_WORKSPACE, ws},
              {DNNL_ARG_DIFF_SRC, diff_src}});
  detail::finish(diff_src, user_dx, accumulate);
}

}  // namespace ewnet::onednn
