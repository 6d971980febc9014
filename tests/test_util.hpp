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

/// What check_engine_against_reference compares, each from the CPU engine's primitives and from the
/// reference loops: the output, the input gradients (overwritten, then accumulated onto), and the
/// parameter gradients.
struct EngineRun {
  std::vector<std::vector<float>> values;  // y, dx..., dx accumulated..., dparam...
};

/// Runs `layer` in float on the CPU engine's primitives and on the reference loops, from the same
/// inputs, parameters and dL/dy (random), forward then backward twice (overwriting the input
/// gradients, then adding onto them), and requires every result to agree within `tol` relative to
/// max(1, |reference|). Parameters are drawn from [0.5, 1.5] (scales stay away from 0). The engine
/// run must execute at least `min_primitives` primitives (one per pass: forward, two backward), so
/// a path that silently fell back to the loops fails. With `precision` bf16 the engine runs the
/// layer's matrix products in bfloat16 and every difference is taken relative to the largest
/// reference value (bfloat16 keeps 8 bits of mantissa: about 0.4% an operand).
inline void check_engine_against_reference(Layer<float>& layer, const std::vector<Tensor<float>>& x,
                                           ForwardContext ctx = {Mode::training}, double tol = 2e-5,
                                           std::uint64_t min_primitives = 3, Precision precision = Precision::fp32) {
  std::vector<Shape> shapes;
  for (auto& t : x) shapes.push_back(t.shape());
  Shape out = layer.setup(shapes, Device::cpu);
  out.n = x[0].n();
  Random rng(4321);
  for (Param<float>* p : layer.params()) p->value.copy_from(random_tensor<float>(p->value.shape(), rng, 0.5, 1.5));
  for (Param<float>* p : layer.params()) p->changed();
  const Tensor<float> r = random_tensor<float>(out, rng);
  std::vector<Tensor<float>> start;  // what the accumulating pass adds onto
  for (auto& t : x) start.push_back(random_tensor<float>(t.shape(), rng));
  std::vector<std::vector<float>> state0;  // running statistics, restored before each path
  for (StateTensor<float>& s : layer.state()) state0.push_back(s.tensor->to_vector());

  auto run = [&]() {
    size_t k = 0;
    for (StateTensor<float>& s : layer.state())
      s.tensor->copy_from(Tensor<float>::from_vector(s.tensor->shape(), state0[k++]));
    EngineRun result;
    Tensor<float> y(out);
    std::vector<const Tensor<float>*> in;
    for (auto& t : x) in.push_back(&t);
    layer.forward(in, y, ctx);
    result.values.push_back(y.to_vector());
    for (GradWrite mode : {GradWrite::overwrite, GradWrite::accumulate}) {
      std::vector<Tensor<float>> dx;
      for (auto& s : start) dx.push_back(s.clone());
      BackwardArgs<float> args;
      for (auto& t : x) args.x.push_back(&t);
      args.y = &y;
      args.dy = &r;
      for (auto& d : dx) {
        args.dx.push_back(&d);
        args.dx_mode.push_back(mode);
      }
      args.context = ctx;
      layer.backward(args);
      for (auto& d : dx) result.values.push_back(d.to_vector());
    }
    for (Param<float>* p : layer.params())
      if (p->trainable()) result.values.push_back(p->grad.to_vector());
    for (StateTensor<float>& s : layer.state()) result.values.push_back(s.tensor->to_vector());
    return result;
  };
  const std::uint64_t before = onednn::executed();
  layer.set_precision(precision);
  const EngineRun engine = run();
  layer.set_precision(Precision::fp32);
  const std::uint64_t on_engine = onednn::executed() - before;
  EngineRun reference;
  {
    onednn::ReferenceScope scope;
    reference = run();
  }
  INFO(layer.name() << ": " << on_engine << " primitives executed");
  REQUIRE(on_engine >= min_primitives);
  REQUIRE(onednn::executed() - before == on_engine);  // the reference run executed none
  REQUIRE(engine.values.size() == reference.values.size());
  for (size_t i = 0; i < engine.values.size(); ++i) {
    INFO(layer.name() << ": result " << i << " (0: output, then input gradients, parameter gradients, state)");
    if (precision == Precision::fp32) {
      REQUIRE(max_rel_diff(engine.values[i], reference.values[i]) <= tol);
    } else {
      double largest = 1, worst = 0;
      for (size_t k = 0; k < reference.values[i].size(); ++k) {
        largest = std::max(largest, std::fabs(double(reference.values[i][k])));
        worst = std::max(worst, std::fabs(double(engine.values[i][k]) - double(reference.values[i][k])));
      }
      REQUIRE(worst / largest <= tol);
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
