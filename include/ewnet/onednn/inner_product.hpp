// ewnet/onednn/inner_product.hpp: the fully connected layer through oneDNN's inner-product
// primitive (ops/fully_connected.hpp has the math and the reference GEMMs).
//
// x is [N, C, H, W] in its own layout; the weights are ewnet's [K, C*H*W], which is oneDNN's
// [K, C, H, W] in oihw order, handed to the primitive in the layout it asks for (kept by the
// layer's cache while unchanged); y and dy are [N, K]. Precision::bf16 as for convolutions
// (onednn/convolution.hpp): x, w and dy enter in bfloat16, results are float32.
#pragma once

#include <ewnet/onednn/convolution.hpp>

namespace ewnet::onednn {

namespace detail {
inline memory::desc ip_weights_desc(const Tensor<float>& x, memory::dim k) {
  return memory::desc({k, x.c(), x.h(), x.w()}, memory::data_type::f32, memory::format_tag::oihw);
}
/// [N, K, 1, 1] as oneDNN's [N, K] (with its batch stride).
inline memory::desc matrix_desc(const Tensor<float>& y) {
  return memory::desc({y.n(), y.c()}, memory::data_type::f32, Dims{memory::dim(y.batch_stride()), 1});
}
inline dnnl::inner_product_forward::primitive_desc ip_pd(const memory::desc& x, const memory::desc& w, bool bias,
                                                         const memory::desc& y, memory::data_type in) {
  dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_training, with_type(x, in), with_type(any_layout(w), in),
                                      bias ? vector_desc(w.dims()[0]) : memory::desc(), y);
  return dnnl::inner_product_forward::primitive_desc(d, base_attr(), engine());
}
}  // namespace detail

/// y = x w^T + b (b may be null).
inline void inner_product_forward(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* b,
                                  const Tensor<float>& y, LayerCache* cache) {
  if (x.n() == 0) return;
  const memory::desc xd = desc_of(x), wd = detail::ip_weights_desc(x, y.c()), yd = detail::matrix_desc(y);
  const memory::data_type in = detail::operand_type(cache);
  Key key("ip_fwd");
  key.add(xd).add(wd).add(yd).add(b != nullptr).add(std::int64_t(in));
  const Entry& e = primitive_cache().get(key, [&] {
    auto pd = detail::ip_pd(xd, wd, b != nullptr, yd, in);
    return Entry{pd, dnnl::inner_product_forward(pd)};
  });
  const memory weights =
      detail::weights_for(wrap(wd, w.data()), e.pd.weights_desc(), cache, LayerCache::forward_weights);
  Args args{{DNNL_ARG_SRC, as_layout(wrap(x), e.pd.src_desc(), Slot::src)},
            {DNNL_ARG_WEIGHTS, weights},
            {DNNL_ARG_DST, wrap(yd, y.data())}};
  if (b) args[DNNL_ARG_BIAS] = wrap(detail::vector_desc(y.c()), b->data());
  execute(e, args);
}

/// dx = dy w (or dx += it when `accumulate`).
inline void inner_product_backward_data(const Tensor<float>& dy, const Tensor<float>& w, const Tensor<float>& dx,
                                        bool accumulate, LayerCache* cache) {
  if (dx.n() == 0) return;
  const memory::desc dxd = desc_of(dx), wd = detail::ip_weights_desc(dx, dy.c()), dyd = detail::matrix_desc(dy);
  const memory::data_type in = detail::operand_type(cache);
  Key key("ip_bwd_data");
  key.add(dxd).add(wd).add(dyd).add(std::int64_t(in));
  const Entry& e = primitive_cache().get(key, [&] {
    dnnl::inner_product_backward_data::desc d(dxd, with_type(detail::any_layout(wd), in), with_type(dyd, in));
    const auto hint = detail::ip_pd(dxd, wd, false, dyd, in);
    dnnl::inner_product_backward_data::primitive_desc pd(d, base_attr(), engine(), hint);
    return Entry{pd, dnnl::inner_product_backward_data(pd)};
  });
  const memory weights =
      detail::weights_for(wrap(wd, w.data()), e.pd.weights_desc(), cache, LayerCache::backward_weights);
  const memory user_dx = wrap(dx);
  const memory diff_src = detail::output_for(user_dx, e.pd.diff_src_desc(), accumulate);
  execute(e, {{DNNL_ARG_DIFF_DST, as_layout(wrap(dyd, dy.data()), e.pd.diff_dst_desc(), Slot::src)},
              {DNNL_ARG_WEIGHTS, weights},
              {DNNL_ARG_DIFF_SRC, diff_src}});
  detail::finish(diff_src, user_dx, accumulate);
}

/// dw = dy^T x and db = the column sums of dy (each overwritten; either may be null). `cache` only
/// says the precision (may be null).
inline void inner_product_backward_weights(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>* dw,
                                           const Tensor<float>* db, const LayerCache* cache) {
  if (!dw && !db) return;
  if (x.n() == 0) {
    if (dw) dw->zero();
    if (db) db->zero();
    return;
  }
  const memory::desc xd = desc_of(x), wd = detail::ip_weights_desc(x, dy.c()), dyd = detail::matrix_desc(dy);
  const memory::data_type in = detail::operand_type(cache);
  Key key("ip_bwd_weights");
  key.add(xd).add(wd).add(dyd).add(db != nullptr).add(std::int64_t(in));
  const Entry& e = primitive_cache().get(key, [&] {
    dnnl::inner_product_backward_weights::desc d(with_type(xd, in), detail::any_layout(wd),
                                                 db ? detail::vector_desc(dy.c()) : memory::desc(), with_type(dyd, in));
    const auto hint = detail::ip_pd(xd, wd, db != nullptr, dyd, in);
    dnnl::inner_product_backward_weights::primitive_desc pd(d, base_attr(), engine(), hint);
    return Entry{pd, dnnl::inner_product_backward_weights(pd)};
  });
  const memory user_dw = dw ? wrap(wd, dw->data()) : memory();
  const memory diff_w = dw ? detail::output_for(user_dw, e.pd.diff_weights_desc(), false)
                           : scratch_memory(e.pd.diff_weights_desc(), Slot::dst);
  Args args{{DNNL_ARG_SRC, as_layout(wrap(x), e.pd.src_desc(), Slot::src)},
            {DNNL_ARG_DIFF_DST, as_layout(wrap(dyd, dy.data()), e.pd.diff_dst_desc(), Slot::extra)},
            {DNNL_ARG_DIFF_WEIGHTS, diff_w}};
  if (db) args[DNNL_ARG_DIFF_BIAS] = wrap(detail::vector_desc(dy.c()), db->data());
  execute(e, args);
  if (dw) detail::finish(diff_w, user_dw, false);
}

}  // namespace ewnet::onednn
