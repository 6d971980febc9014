// ewnet/optim/sgdm.hpp: stochastic gradient descent with momentum over a Model's parameters.
//
//   v = momentum * v - lr * lr_factor * (g + l2 * l2_factor * w);   w = w + v
// (ops/sgdm.hpp). Defaults are MATLAB's trainingOptions('sgdm'): momentum 0.9, L2 1e-4, and bias
// L2 factor 0 (set on the layers). Parameters whose learning-rate factor is 0 are left out
// entirely: frozen weights stay bitwise unchanged, weight decay included. The solver writes the
// parameters and their momentum, nothing else of the model: the step counter that dropout draws
// from is the model's own (each training pass advances it, graph.hpp).
#pragma once

#include <vector>

#include <ewnet/graph.hpp>
#include <ewnet/ops/sgdm.hpp>

namespace ewnet {

struct SgdmOptions {
  double momentum = 0.9;
  double l2 = 1e-4;
};

template <class T>
class Sgdm {
 public:
  explicit Sgdm(SgdmOptions o = {}) : opt_(o) {
    EWNET_CHECK(o.momentum >= 0 && o.momentum < 1, "sgdm: momentum must be in [0, 1), got ", o.momentum);
    EWNET_CHECK(o.l2 >= 0, "sgdm: L2 factor must be >= 0, got ", o.l2);
  }
  const SgdmOptions& options() const { return opt_; }

  /// Applies one update with base learning rate `learn_rate` to the gradients of the last
  /// backward pass.
  void step(Model<T>& model, double learn_rate) {
    slots_.clear();
    for (Param<T>* p : model.parameter_list()) {
      if (!p->trainable()) continue;
      p->changed();
      slots_.push_back(SgdmSlot<T>{p->value.data(), p->grad.data(), p->velocity.data(), p->count(),
                                   T(learn_rate * p->learn_rate_factor), T(opt_.l2 * p->l2_factor)});
    }
    sgdm_update(model.device(), slots_, T(opt_.momentum));
  }

  /// Zeroes every momentum buffer (a fresh start, e.g. after replacing the classifier).
  static void reset_momentum(Model<T>& model) {
    for (Param<T>* p : model.parameter_list()) p->velocity.zero();
  }

 private:
  SgdmOptions opt_;
  std::vector<SgdmSlot<T>> slots_;  // reused: no allocation after the first step
};

}  // namespace ewnet
