// ewnet/onednn/pooling.hpp: max and average pooling through oneDNN's primitives (ops/pooling.hpp
// has the math, the padding rules and the reference loops).
//
// Max pooling's backward pass routes each gradient to the first position of its window holding the
// maximum (row-major), as ewnet's loops do: it reads the argmax the forward pass kept in the layer's
// cache, or runs the forward pass again to get it when there is none (a forward pass that kept
// nothing, or an operation called without a layer). Average pooling counts the padding
// (pooling_avg_include_padding, as cuDNN's COUNT_INCLUDE_PADDING), except global pooling, which has
// none.
#pragma once

#include <ewnet/onednn/convolution.hpp>

namespace ewnet::onednn {

namespace detail {
inline dnnl::pooling_v2_forward::primitive_desc pooling_pd(dnnl::prop_kind prop, dnnl::algorithm alg,
                                                           const memory::desc& x, const memory::desc& y,
                                                           const Window& win) {
  dnnl::pooling_v2_forward::desc d(prop, alg, x, y, win.strides, win.kernel, Dims(win.kernel.size(), 0),
                                   win.padding_l, win.padding_r);
  return dnnl::pooling_v2_forward::primitive_desc(d, base_attr(), engine());
}

inline const Entry& pooling_forward_entry(dnnl::prop_kind prop, dnnl::algorithm alg, const memory::desc& x,
                                          const memory::desc& y, const Window& win) {
  Key key("pool_fwd");
  key.add(std::int64_t(prop)).add(std::int64_t(alg)).add(x).add(y);
  win.add_to(key);
  return primitive_cache().get(key, [&] {
    auto pd = pooling_pd(prop, alg, x, y, win);
    return Entry{pd, dnnl::pooling_v2_forward(pd)};
  });
}
}  // namespace detail

/// y = pooling of x. Max pooling in a pass whose backward will run (`keep` and a cache) leaves its
/// argmax in `cache` for max_pool_backward.
inline void pool_forward(const Tensor<float>& x, const Tensor<float>& y, const Window& win, bool max, bool keep,
                         LayerCache* cache) {
  if (x.n() == 0) return;
  keep = keep && max && cache;
  const auto alg = max ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_include_padding;
  const auto prop = keep ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  const Entry& e = detail::pooling_forward_entry(prop, alg, desc_of(x), desc_of(y), win);
  Args args{{DNNL_ARG_SRC, wrap(x)}, {DNNL_ARG_DST, wrap(y)}};
  if (keep) args[DNNL_ARG_WORKSPACE] = cache->keep(e.pd.workspace_desc(), y.data());
  else if (cache) cache->forget();
  execute(e, args);
}

/// dx = the gradient of pooling (or dx += it when `accumulate`); x and y are the forward pass's.
inline void pool_backward(const Tensor<float>& x, const Tensor<float>& y, const Tensor<float>& dy,
                          const Tensor<float>& dx, const Window& win, bool max, bool accumulate, LayerCache* cache) {
  if (dx.n() == 0) return;
  const auto alg = max ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_include_padding;
  const memory::desc xd = desc_of(x), yd = desc_of(y), dyd = desc_of(dy), dxd = desc_of(dx);
  const Entry& fwd = detail::pooling_forward_entry(dnnl::prop_kind::forward_training, alg, xd, yd, win);
  Key key("pool_bwd");
  key.add(std::int64_t(alg)).add(xd).add(yd).add(dyd).add(dxd);
  win.add_to(key);
  const Entry& e = primitive_cache().get(key, [&] {
    dnnl::pooling_v2_backward::desc d(alg, dxd, dyd, win.strides, win.kernel, Dims(win.kernel.size(), 0),
                                      win.padding_l, win.padding_r);
    const auto hint = detail::pooling_pd(dnnl::prop_kind::forward_training, alg, xd, yd, win);
    dnnl::pooling_v2_backward::primitive_desc pd(d, base_attr(), engine(), hint);
    return Entry{pd, dnnl::pooling_v2_backward(pd)};
  });
  Args args{{DNNL_ARG_DIFF_DST, wrap(dy)}};
  if (max) {
    memory ws;
    if (!cache || !cache->kept(fwd.pd.workspace_desc(), y.data(), ws)) {
      // No argmax kept for this output: find it again (the output itself is recomputed into scratch).
      ws = scratch_memory(fwd.pd.workspace_desc(), Slot::extra);
      execute(fwd, {{DNNL_ARG_SRC, wrap(x)}, {DNNL_ARG_DST, scratch_memory(yd, Slot::src)}, {DNNL_ARG_WORKSPACE, ws}});
    }
    args[DNNL_ARG_WORKSPACE] = ws;
  }
  const memory user_dx = wrap(dx);
  const memory diff_src = detail::output_for(user_dx, e.pd.diff_src_desc(), accumulate);
  args[DNNL_ARG_DIFF_SRC] = diff_src;
  execute(e, args);
  detail::finish(diff_src, user_dx, accumulate);
}

}  // namespace ewnet::onednn
