// Shared helpers for ewnet's tests: random tensors, comparisons, and a finite-difference
// gradient check that drives any layer through its public interface.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include <ewnet/model.hpp>

namespace ewnet::test {

template <class T>
Tensor<T> random_tensor(Shape s, Random& rng, double lo = -1, double hi = 1) {
  std::vector<T> v(s.size());
  for (T& x : v) x = T(rng.uniform(lo, hi));
  return Tensor<T>::from_vector(s, v);
}

/// Largest |a - b| / max(1, |b|) over all elements.
template <class T>
double max_rel_diff(const std::vector<T>& a, const std::vector<T>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::fabs(double(a[i]) - double(b[i])) / std::max(1.0, std::fabs(double(b[i]))));
  return m;
}

template <class T>
bool bitwise_equal(const Tensor<T>& a, const Tensor<T>& b) {
  const auto x = a.to_vector(), y = b.to_vector();
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0;
}

/// Checks a layer's backward pass against central differences of L = sum(y .* r) for a fixed
/// random r (so dL/dy = r), for every input element and every parameter element, in double.
/// `x` holds the inputs; `ctx` the forward context (mode, iteration).
inline void check_gradients(Layer<double>& layer, std::vector<Tensor<double>> x, ForwardContext ctx = {},
                            double eps = 1e-6, double tol = 1e-6) {
  std::vector<Shape> shapes;
  for (auto& t : x) shapes.push_back(t.shape());
  Shape out = layer.setup(shapes, Device::cpu);
  out.n = x[0].n();
  Random rng(1234);
  for (Param<double>* p : layer.params()) p->value.copy_from(random_tensor<double>(p->value.shape(), rng, 0.5, 1.5));
  const Tensor<double> r = random_tensor<double>(out, rng);
  Tensor<double> y(out);

  auto loss = [&]() {
    std::vector<const Tensor<double>*> in;
    for (auto& t : x) in.push_back(&t);
    layer.forward(in, y, ctx);
    const auto yv = y.to_vector(), rv = r.to_vector();
    double s = 0;
    for (size_t i = 0; i < yv.size(); ++i) s += yv[i] * rv[i];
    return s;
  };

  loss();
  std::vector<Tensor<double>> dx;
  for (auto& t : x) dx.emplace_back(t.shape());
  BackwardArgs<double> args;
  for (auto& t : x) args.x.push_back(&t);
  args.y = &y;
  args.dy = &r;
  for (auto& d : dx) {
    args.dx.push_back(&d);
    args.dx_mode.push_back(GradWrite::overwrite);
  }
  args.context = ctx;
  layer.backward(args);

  auto numeric = [&](double* p) {
    const double keep = *p;
    *p = keep + eps;
    const double up = loss();
    *p = keep - eps;
    const double down = loss();
    *p = keep;
    return (up - down) / (2 * eps);
  };
  for (size_t i = 0; i < x.size(); ++i) {
    const Tensor<double>& t = x[i];
    for (int n = 0; n < t.n(); ++n)
      for (size_t k = 0; k < t.shape().sample_size(); ++k) {
        const double analytic = dx[i].sample(n)[k];
        const double num = numeric(t.sample(n) + k);
        INFO(layer.name() << ": d/dx" << i << " sample " << n << " element " << k);
        REQUIRE(analytic == Approx(num).margin(tol).epsilon(1e-5));
      }
  }
  for (Param<double>* p : layer.params()) {
    if (!p->trainable()) continue;
    const std::vector<double> g = p->grad.to_vector();
    for (size_t k = 0; k < p->count(); ++k) {
      const double num = numeric(p->value.data() + k);
      INFO(layer.name() << ": d/d" << p->name << " element " << k);
      REQUIRE(g[k] == Approx(num).margin(tol).epsilon(1e-5));
    }
  }
}

/// Runs a layer's forward on CPU inputs and returns the output.
template <class T>
Tensor<T> run_forward(Layer<T>& layer, const std::vector<Tensor<T>>& x, ForwardContext ctx = {}) {
  std::vector<Shape> shapes;
  for (auto& t : x) shapes.push_back(t.shape());
  Shape out = layer.setup(shapes, Device::cpu);
  out.n = x[0].n();
  Tensor<T> y(out);
  std::vector<const Tensor<T>*> in;
  for (auto& t : x) in.push_back(&t);
  layer.forward(in, y, ctx);
  return y;
}

}  // namespace ewnet::test
