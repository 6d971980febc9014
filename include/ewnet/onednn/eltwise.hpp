// ewnet/onednn/eltwise.hpp: the element-wise layers through oneDNN's primitives: ReLU (eltwise),
// addition (binary), and the gradient routing of addition and concatenation (reorder, with a sum
// post-op to accumulate).
//
// oneDNN's eltwise primitive reads and writes one descriptor, and its binary primitive falls back
// to a scalar reference loop when its operands' strides differ (measured: 100 times slower than
// the loops). So these functions run a primitive when the operands share a descriptor and return
// false otherwise (a ReLU writing into a concatenation's channel slice has the slice's batch
// stride, its input its own): the caller then runs ewnet's loops (ops/activation.hpp,
// ops/elementwise.hpp), which take any batch stride.
#pragma once

#include <ewnet/onednn/adapter.hpp>

namespace ewnet::onednn {

/// y = max(x, 0) when x and y share a descriptor (in place included); false otherwise.
inline bool relu_forward(const Tensor<float>& x, const Tensor<float>& y) {
  const memory::desc xd = desc_of(x);
  if (!(xd == desc_of(y))) return false;
  if (x.n() == 0) return true;
  Key key("relu_fwd");
  key.add(xd);
  const Entry& e = primitive_cache().get(key, [&] {
    dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_training, dnnl::algorithm::eltwise_relu, xd, 0.f, 0.f);
    dnnl::eltwise_forward::primitive_desc pd(d, base_attr(), engine());
    return Entry{pd, dnnl::eltwise_forward(pd)};
  });
  execute(e, {{DNNL_ARG_SRC, wrap(x)}, {DNNL_ARG_DST, wrap(y)}});
  return true;
}

/// dx = dy where y > 0, else 0 (from the output y), when dy and dx share a descriptor and nothing
/// is to be accumulated; false otherwise.
inline bool relu_backward(const Tensor<float>& y, const Tensor<float>& dy, const Tensor<float>& dx, bool accumulate) {
  const memory::desc gd = desc_of(dy), yd = desc_of(y);
  if (accumulate || !(gd == desc_of(dx))) return false;
  if (y.n() == 0) return true;
  Key key("relu_bwd");
  key.add(gd).add(yd);
  const Entry& e = primitive_cache().get(key, [&] {
    const auto alg = dnnl::algorithm::eltwise_relu_use_dst_for_bwd;
    dnnl::eltwise_forward::primitive_desc hint(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, alg, yd, 0.f, 0.f), engine());
    dnnl::eltwise_backward::desc d(alg, gd, yd, 0.f, 0.f);
    dnnl::eltwise_backward::primitive_desc pd(d, base_attr(), engine(), hint);
    return Entry{pd, dnnl::eltwise_backward(pd)};
  });
  execute(e, {{DNNL_ARG_DST, wrap(y)}, {DNNL_ARG_DIFF_DST, wrap(dy)}, {DNNL_ARG_DIFF_SRC, wrap(dx)}});
  return true;
}

/// y = a + b when all three share a descriptor (in place included); false otherwise.
inline bool add_forward(const Tensor<float>& a, const Tensor<float>& b, const Tensor<float>& y) {
  const memory::desc d = desc_of(a);
  if (!(d == desc_of(b)) || !(d == desc_of(y))) return false;
  if (a.n() == 0) return true;
  Key key("add");
  key.add(d);
  const Entry& e = primitive_cache().get(key, [&] {
    dnnl::binary::primitive_desc pd(dnnl::binary::desc(dnnl::algorithm::binary_add, d, d, d), base_attr(), engine());
    return Entry{pd, dnnl::binary(pd)};
  });
  execute(e, {{DNNL_ARG_SRC_0, wrap(a)}, {DNNL_ARG_SRC_1, wrap(b)}, {DNNL_ARG_DST, wrap(y)}});
  return true;
}

/// dst = src, or dst += src when `accumulate`, in any two layouts and batch strides; false when
/// both are plain and nothing is to be accumulated (a row copy, the caller's: oneDNN's reorder of
/// plain strided views is its generic loop).
inline bool copy(const Tensor<float>& src, const Tensor<float>& dst, bool accumulate) {
  const memory::desc sd = desc_of(src), dd = desc_of(dst);
  const auto plain = [](const memory::desc& d) { return d.data.format_desc.blocking.inner_nblks == 0; };
  if (!accumulate && plain(sd) && plain(dd)) return false;
  if (src.n() == 0) return true;
  reorder(wrap(sd, src.data()), wrap(dd, dst.data()), accumulate);
  return true;
}

}  // namespace ewnet::onednn
