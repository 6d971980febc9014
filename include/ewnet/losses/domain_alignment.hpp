// ewnet/losses/domain_alignment.hpp: distances between the feature distributions of two domains,
// differentiable in both, for aligning the target's features with the source's (the paper's
// section 3 cites MMD, CMD and the Residual Transfer Network, whose feature loss is MMD).
//
// Features are X (m source samples) and Y (n target samples), D values each (a layer's output
// [N, C, H, W] read as N rows of D = C H W; the pooled features are [N, C, 1, 1]).
//
// MMD with a multi-kernel Gaussian (Gretton et al. 2012; DAN, Long et al. 2015; RTN), the biased
// estimate over all pairs of the two batches:
//   MMD^2 = 1/m^2 sum k(x_i, x_j) + 1/n^2 sum k(y_i, y_j) - 2/(mn) sum k(x_i, y_j)
//   k(a, b) = (1/U) sum_u exp(-|a - b|^2 / (g_u s^2))
// with s^2 the mean squared distance between distinct rows of [X; Y] (the bandwidths sit around the
// data's own scale, g_u = 1/4 .. 4 by default) held constant in the gradient, as DAN and its
// successors detach it. With c_ab = 1/m^2, 1/n^2 or -1/(mn) by the pair's domains,
//   dMMD^2/dz_a = -4 sum_b c_ab k'(z_a, z_b) (z_a - z_b),   k'(a, b) = (1/U) sum_u exp(-|a-b|^2/(g_u s^2)) / (g_u s^2)
//
// CORAL (Sun and Saenko 2016, Deep CORAL): the distance between the two covariances,
//   L = |C_X - C_Y|_F^2 / (4 D^2),   C_X = (X - mean X)^T (X - mean X) / (m - 1)
//   dL/dX = (X - mean X)(C_X - C_Y) / (D^2 (m - 1)),   dL/dY = -(Y - mean Y)(C_X - C_Y) / (D^2 (n - 1))
//
// CMD (Zellinger et al. 2017): the distance between means and central moments up to order K,
//   CMD = |E X - E Y| / r + sum_{k=2..K} |c_k(X) - c_k(Y)| / r^k,   c_k(X) = E (X - E X)^k per feature
// with r the width of the features' range (Zellinger's b - a; 1 by default), |.| the Euclidean norm;
//   dc_k(X)/dx_j = (k/m) ((x_j - E X)^(k-1) - c_{k-1}(X)) per feature (c_1 = 0), dE X/dx_j = 1/m,
// and d|v| = v/|v| (0 at v = 0).
//
// Each is computed on the host in double precision (the features are copied: an [N, D] batch is
// small beside a training step) and returns its gradients on the features' device, ready for
// Model::add_output_gradient.
#pragma once

#include <cmath>
#include <vector>

#include <ewnet/error.hpp>
#include <ewnet/tensor.hpp>

namespace ewnet::losses {

template <class T>
struct AlignmentLoss {
  double value = 0;
  Tensor<T> d_source, d_target;  // the gradients, shaped as the source and target features
};

namespace detail {

/// The rows of a feature tensor as doubles.
template <class T>
std::vector<std::vector<double>> rows_of(const Tensor<T>& t) {
  const std::vector<T> v = t.to_vector();
  const size_t D = t.shape().sample_size();
  std::vector<std::vector<double>> rows(size_t(t.n()), std::vector<double>(D));
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t d = 0; d < D; ++d) rows[i][d] = double(v[i * D + d]);
  return rows;
}

template <class T>
Tensor<T> tensor_of(const std::vector<std::vector<double>>& rows, const Tensor<T>& like) {
  std::vector<T> v;
  v.reserve(like.size());
  for (const auto& r : rows)
    for (double x : r) v.push_back(T(x));
  return Tensor<T>::from_vector(like.shape(), v, like.device());
}

template <class T>
void check_features(const char* what, const Tensor<T>& source, const Tensor<T>& target, int min_rows) {
  EWNET_CHECK_AS(ShapeError, source.shape().sample_size() == target.shape().sample_size(), what,
                 ": source features ", source.shape(), " and target features ", target.shape(),
                 " differ in size a sample");
  EWNET_CHECK_AS(ShapeError, source.n() >= min_rows && target.n() >= min_rows, what, ": needs at least ", min_rows,
                 " samples of each domain, got ", source.n(), " and ", target.n());
}

inline double squared_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t d = 0; d < a.size(); ++d) s += (a[d] - b[d]) * (a[d] - b[d]);
  return s;
}

}  // namespace detail

struct MmdOptions {
  std::vector<double> bandwidth_multipliers{0.25, 0.5, 1, 2, 4};  // g_u
  double bandwidth = 0;  // s^2; 0: the mean squared distance between distinct rows of both batches
};

/// The mean squared distance between distinct rows of [source; target]: MMD's base bandwidth s^2.
template <class T>
double mean_squared_distance(const Tensor<T>& source, const Tensor<T>& target) {
  auto z = detail::rows_of(source);
  for (auto& r : detail::rows_of(target)) z.push_back(std::move(r));
  double sum = 0;
  for (size_t a = 0; a < z.size(); ++a)
    for (size_t b = a + 1; b < z.size(); ++b) sum += detail::squared_distance(z[a], z[b]);
  const double pairs = double(z.size()) * double(z.size() - 1) / 2;
  return pairs > 0 ? sum / pairs : 0.0;
}

/// Squared MMD between the two batches with the multi-kernel Gaussian, and its gradients.
template <class T>
AlignmentLoss<T> mmd(const Tensor<T>& source, const Tensor<T>& target, const MmdOptions& o = {}) {
  detail::check_features("mmd", source, target, 1);
  EWNET_CHECK(!o.bandwidth_multipliers.empty(), "mmd: no kernel bandwidths");
  const double s2 = o.bandwidth > 0 ? o.bandwidth : mean_squared_distance(source, target);
  const auto x = detail::rows_of(source), y = detail::rows_of(target);
  const size_t m = x.size(), n = y.size(), D = x[0].size();
  auto row = [&](size_t a) -> const std::vector<double>& { return a < m ? x[a] : y[a - m]; };
  std::vector<std::vector<double>> grad(m + n, std::vector<double>(D, 0.0));
  AlignmentLoss<T> out;
  if (!(s2 > 0)) {  // every row the same: the distributions agree, and the kernel has no scale
    out.d_source = detail::tensor_of(std::vector<std::vector<double>>(grad.begin(), grad.begin() + std::ptrdiff_t(m)), source);
    out.d_target = detail::tensor_of(std::vector<std::vector<double>>(grad.begin() + std::ptrdiff_t(m), grad.end()), target);
    return out;
  }
  const double U = double(o.bandwidth_multipliers.size());
  for (size_t a = 0; a < m + n; ++a)
    for (size_t b = 0; b < m + n; ++b) {
      const bool as = a < m, bs = b < m;
      const double c = as && bs ? 1.0 / double(m * m) : (!as && !bs ? 1.0 / double(n * n) : -1.0 / double(m * n));
      const double d2 = detail::squared_distance(row(a), row(b));
      double k = 0, dk = 0;
      for (double g : o.bandwidth_multipliers) {
        const double e = std::exp(-d2 / (g * s2));
        k += e / U;
        dk += e / (g * s2 * U);
      }
      out.value += c * k;
      if (a == b) continue;
      for (size_t d = 0; d < D; ++d) grad[a][d] += -4 * c * dk * (row(a)[d] - row(b)[d]);
    }
  out.d_source = detail::tensor_of(std::vector<std::vector<double>>(grad.begin(), grad.begin() + std::ptrdiff_t(m)), source);
  out.d_target = detail::tensor_of(std::vector<std::vector<double>>(grad.begin() + std::ptrdiff_t(m), grad.end()), target);
  return out;
}

/// CORAL: the squared Frobenius distance between the two feature covariances over 4 D^2, and its
/// gradients. Needs two samples of each domain.
template <class T>
AlignmentLoss<T> coral(const Tensor<T>& source, const Tensor<T>& target) {
  detail::check_features("coral", source, target, 2);
  auto x = detail::rows_of(source), y = detail::rows_of(target);
  const size_t D = x[0].size();
  // Centres the rows in place and returns their covariance, D x D row-major.
  auto covariance = [D](std::vector<std::vector<double>>& r) {
    std::vector<double> mean(D, 0.0), c(D * D, 0.0);
    for (const auto& v : r)
      for (size_t d = 0; d < D; ++d) mean[d] += v[d] / double(r.size());
    for (auto& v : r)
      for (size_t d = 0; d < D; ++d) v[d] -= mean[d];
    for (const auto& v : r)
      for (size_t i = 0; i < D; ++i)
        for (size_t j = 0; j < D; ++j) c[i * D + j] += v[i] * v[j] / double(r.size() - 1);
    return c;
  };
  const std::vector<double> cx = covariance(x), cy = covariance(y);
  std::vector<double> diff(D * D);
  AlignmentLoss<T> out;
  for (size_t i = 0; i < D * D; ++i) {
    diff[i] = cx[i] - cy[i];
    out.value += diff[i] * diff[i] / (4.0 * double(D) * double(D));
  }
  auto gradient = [&](const std::vector<std::vector<double>>& centred, double sign) {
    std::vector<std::vector<double>> g(centred.size(), std::vector<double>(D, 0.0));
    const double scale = sign / (double(D) * double(D) * double(centred.size() - 1));
    for (size_t r = 0; r < centred.size(); ++r)
      for (size_t i = 0; i < D; ++i) {
        if (centred[r][i] == 0) continue;
        for (size_t j = 0; j < D; ++j) g[r][j] += scale * centred[r][i] * diff[i * D + j];
      }
    return g;
  };
  out.d_source = detail::tensor_of(gradient(x, 1.0), source);
  out.d_target = detail::tensor_of(gradient(y, -1.0), target);
  return out;
}

/// CMD up to order `moments` (Zellinger's 5 by default) with features of range width `range`.
template <class T>
AlignmentLoss<T> cmd(const Tensor<T>& source, const Tensor<T>& target, int moments = 5, double range = 1) {
  detail::check_features("cmd", source, target, 1);
  EWNET_CHECK(moments >= 1 && moments <= 16, "cmd: moments must be in 1..16, got ", moments);
  EWNET_CHECK(range > 0 && std::isfinite(range), "cmd: the range must be positive, got ", range);
  const auto x = detail::rows_of(source), y = detail::rows_of(target);
  const size_t D = x[0].size();
  // Per feature: the mean, and the central moments c_1..c_K (c_1 = 0).
  struct Moments {
    std::vector<double> mean;
    std::vector<std::vector<double>> c;  // c[k][d], k = 0..K (c[0] = 1, c[1] = 0)
  };
  auto moments_of = [&](const std::vector<std::vector<double>>& r) {
    Moments s;
    s.mean.assign(D, 0.0);
    for (const auto& v : r)
      for (size_t d = 0; d < D; ++d) s.mean[d] += v[d] / double(r.size());
    s.c.assign(size_t(moments) + 1, std::vector<double>(D, 0.0));
    for (const auto& v : r)
      for (size_t d = 0; d < D; ++d) {
        const double u = v[d] - s.mean[d];
        double power = 1;
        for (size_t k = 0; k <= size_t(moments); ++k, power *= u) s.c[k][d] += power / double(r.size());
      }
    s.c[1].assign(D, 0.0);  // exactly, not as rounded
    return s;
  };
  const Moments mx = moments_of(x), my = moments_of(y);
  AlignmentLoss<T> out;
  // Term k: the difference vector, its norm, and the unit direction scaled by 1/range^k.
  std::vector<std::vector<double>> unit(size_t(moments) + 1, std::vector<double>(D, 0.0));
  for (size_t k = 1; k <= size_t(moments); ++k) {
    std::vector<double> delta(D);
    double norm2 = 0;
    for (size_t d = 0; d < D; ++d) {
      delta[d] = k == 1 ? mx.mean[d] - my.mean[d] : mx.c[k][d] - my.c[k][d];
      norm2 += delta[d] * delta[d];
    }
    const double norm = std::sqrt(norm2), scale = 1.0 / std::pow(range, double(k));
    out.value += scale * norm;
    if (norm > 0)
      for (size_t d = 0; d < D; ++d) unit[k][d] = scale * delta[d] / norm;
  }
  auto gradient = [&](const std::vector<std::vector<double>>& r, const Moments& s, double sign) {
    const double N = double(r.size());
    std::vector<std::vector<double>> g(r.size(), std::vector<double>(D, 0.0));
    for (size_t j = 0; j < r.size(); ++j)
      for (size_t d = 0; d < D; ++d) {
        const double u = r[j][d] - s.mean[d];
        double v = unit[1][d] / N;
        double power = u;  // u^(k-1) for k = 2
        for (size_t k = 2; k <= size_t(moments); ++k, power *= u)
          v += unit[k][d] * double(k) / N * (power - s.c[k - 1][d]);
        g[j][d] = sign * v;
      }
    return g;
  };
  out.d_source = detail::tensor_of(gradient(x, mx, 1.0), source);
  out.d_target = detail::tensor_of(gradient(y, my, -1.0), target);
  return out;
}

}  // namespace ewnet::losses
