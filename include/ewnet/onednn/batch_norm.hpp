// ewnet/onednn/batch_norm.hpp: batch normalization through oneDNN's primitive (ops/batch_norm.hpp
// has the math and the reference loops).
//
// Training: the primitive computes the batch mean and (biased) variance and normalises; ewnet
// keeps the mean (the saved_mean the other paths keep too), 1/sqrt(var + eps) (saved_invstd) and,
// in the layer's cache, the variance itself for the backward primitive, and updates the running
// statistics as the other paths do. Inference (and a frozen layer) normalises with the running
// statistics (use_global_stats); its backward pass is the same primitive with global statistics,
// which gives dx = dy * gamma / sqrt(var + eps) and the parameter gradients at those statistics.
#pragma once

#include <cmath>

#include <ewnet/onednn/convolution.hpp>

namespace ewnet::onednn {

namespace detail {
inline dnnl::normalization_flags bn_flags(bool global_stats) {
  auto f = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  return global_stats ? f | dnnl::normalization_flags::use_global_stats : f;
}
inline dnnl::batch_normalization_forward::primitive_desc bn_pd(dnnl::prop_kind prop, const memory::desc& x,
                                                               float eps, bool global_stats) {
  dnnl::batch_normalization_forward::desc d(prop, x, eps, bn_flags(global_stats));
  return dnnl::batch_normalization_forward::primitive_desc(d, base_attr(), engine());
}
inline std::int32_t float_bits(float f) {
  std::int32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
inline memory channel_vector(const Tensor<float>& t) { return wrap(vector_desc(memory::dim(t.size())), t.data()); }
}  // namespace detail

/// y = gamma * (x - mean) / sqrt(var + eps) + beta over each channel, with the batch's statistics
/// (`global` false: they are written to mean and var) or the given ones (`global` true: read).
inline void batch_norm_forward(const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta,
                               const Tensor<float>& y, const memory& mean, const memory& var, float eps, bool global) {
  if (x.n() == 0) return;
  const memory::desc xd = desc_of(x);
  const auto prop = global ? dnnl::prop_kind::forward_inference : dnnl::prop_kind::forward_training;
  Key key("bn_fwd");
  key.add(xd).add(global).add(detail::float_bits(eps));
  const Entry& e = primitive_cache().get(key, [&] {
    auto pd = detail::bn_pd(prop, xd, eps, global);
    return Entry{pd, dnnl::batch_normalization_forward(pd)};
  });
  const memory user_y = wrap(y);
  const memory dst = detail::output_for(user_y, xd, false);
  execute(e, {{DNNL_ARG_SRC, wrap(x)},
              {DNNL_ARG_DST, dst},
              {DNNL_ARG_SCALE, detail::channel_vector(gamma)},
              {DNNL_ARG_SHIFT, detail::channel_vector(beta)},
              {DNNL_ARG_MEAN, mean},
              {DNNL_ARG_VARIANCE, var}});
  detail::finish(dst, user_y, false);
}

/// The gradients at the statistics `mean` and `var` (the batch's when `global` is false, whose
/// dependence on x then enters dx); dx, dgamma, dbeta may each be null.
inline void batch_norm_backward(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& gamma,
                                const memory& mean, const memory& var, const Tensor<float>* dx, bool accumulate,
                                const Tensor<float>* dgamma, const Tensor<float>* dbeta, float eps, bool global) {
  if (x.n() == 0) return;
  const memory::desc xd = desc_of(x);
  Key key("bn_bwd");
  key.add(xd).add(global).add(detail::float_bits(eps));
  const Entry& e = primitive_cache().get(key, [&] {
    dnnl::batch_normalization_backward::desc d(dnnl::prop_kind::backward, xd, xd, eps, detail::bn_flags(global));
    const auto hint = detail::bn_pd(dnnl::prop_kind::forward_training, xd, eps, global);
    dnnl::batch_normalization_backward::primitive_desc pd(d, base_attr(), engine(), hint);
    return Entry{pd, dnnl::batch_normalization_backward(pd)};
  });
  const memory user_dx = dx ? wrap(*dx) : memory();
  const memory diff_src = dx ? detail::output_for(user_dx, xd, accumulate) : scratch_memory(xd, Slot::dst);
  const memory::desc cd = detail::vector_desc(x.c());
  const size_t cbytes = cd.get_size();
  // Gradients nobody asked for go to scratch; so does the shift argument 2.6's backward primitive
  // checks for but does not read.
  char* unwanted = static_cast<char*>(scratch(Slot::weights, 3 * cbytes));
  execute(e, {{DNNL_ARG_SRC, wrap(x)},
              {DNNL_ARG_DIFF_DST, as_layout(wrap(dy), xd, Slot::src)},
              {DNNL_ARG_SCALE, detail::channel_vector(gamma)},
              {DNNL_ARG_SHIFT, wrap(cd, unwanted + 2 * cbytes)},
              {DNNL_ARG_MEAN, mean},
              {DNNL_ARG_VARIANCE, var},
              {DNNL_ARG_DIFF_SRC, diff_src},
              {DNNL_ARG_DIFF_SCALE, dgamma ? detail::channel_vector(*dgamma) : wrap(cd, unwanted)},
              {DNNL_ARG_DIFF_SHIFT, dbeta ? detail::channel_vector(*dbeta) : wrap(cd, unwanted + cbytes)}});
  if (dx) detail::finish(diff_src, user_dx, accumulate);
}

/// Training: normalises with the batch's statistics, writes saved_mean, saved_invstd and (in the
/// layer's cache, for the backward pass) the batch variance, and moves the running statistics
/// (the unbiased variance, as ops/batch_norm.hpp defines).
inline void batch_norm_forward_training(const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta,
                                        const Tensor<float>& y, const Tensor<float>& saved_mean,
                                        const Tensor<float>& saved_invstd, const Tensor<float>& running_mean,
                                        const Tensor<float>& running_var, double eps, double momentum,
                                        LayerCache* cache) {
  if (x.n() == 0) return;
  const memory::desc cd = detail::vector_desc(x.c());
  const memory var = cache ? cache->keep(cd, x.data()) : scratch_memory(cd, Slot::extra);
  batch_norm_forward(x, gamma, beta, y, detail::channel_vector(saved_mean), var, float(eps), false);
  const float* v = static_cast<const float*>(var.get_data_handle());
  const double m = double(x.n()) * double(x.shape().plane());
  const float mom = float(momentum);
  for (int c = 0; c < x.c(); ++c) {
    saved_invstd.data()[c] = float(1.0 / std::sqrt(double(v[c]) + eps));
    const float mean = saved_mean.data()[c], unbiased = float(m > 1 ? double(v[c]) * m / (m - 1) : double(v[c]));
    running_mean.data()[c] = (1.f - mom) * running_mean.data()[c] + mom * mean;
    running_var.data()[c] = (1.f - mom) * running_var.data()[c] + mom * unbiased;
  }
}

/// The batch-statistics gradients: the variance from the forward pass that normalised this x when
/// the cache kept it, else recovered from saved_invstd.
inline void batch_norm_backward_training(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& gamma,
                                         const Tensor<float>& saved_mean, const Tensor<float>& saved_invstd,
                                         const Tensor<float>* dx, bool accumulate, const Tensor<float>* dgamma,
                                         const Tensor<float>* dbeta, double eps, LayerCache* cache) {
  if (x.n() == 0) return;
  const memory::desc cd = detail::vector_desc(x.c());
  memory var;
  if (!cache || !cache->kept(cd, x.data(), var)) {
    var = scratch_memory(cd, Slot::extra);
    float* v = static_cast<float*>(var.get_data_handle());
    for (int c = 0; c < x.c(); ++c) {
      const double s = saved_invstd.data()[c];
      v[c] = float(1.0 / (s * s) - eps);
    }
  }
  batch_norm_backward(x, dy, gamma, detail::channel_vector(saved_mean), var, dx, accumulate, dgamma, dbeta,
                      float(eps), false);
}

}  // namespace ewnet::onednn
