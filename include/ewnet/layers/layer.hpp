// ewnet/layers/layer.hpp: the Layer interface, and the parameters a layer owns.
//
// A layer is a named node of a Model's graph. It computes one output from one or more inputs,
// per mini-batch, and back-propagates: given dL/dy it writes dL/dx for each input the graph asks
// for, and dL/dparam for each of its trainable parameters. Shapes are checked once, when the
// graph is built (setup), not in every step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ewnet/json.hpp>
#include <ewnet/ops/common.hpp>
#include <ewnet/precision.hpp>
#include <ewnet/random.hpp>
#include <ewnet/tensor.hpp>

namespace ewnet {

enum class Mode { training, inference };

/// Which of a layer's two learning-rate factors governs a parameter (MATLAB's
/// WeightLearnRateFactor / BiasLearnRateFactor; Caffe's first and second lr_mult).
enum class ParamRole { weight, bias };

/// Told of each parameter allocation on its thread before it happens, and may refuse it by throwing:
/// the checkpoint loader's budget against forged architectures (io/param_budget.hpp) is one.
class ParamAllocationGuard {
 public:
  virtual void allocating(const std::string& param, std::uint64_t values) = 0;

 protected:
  ~ParamAllocationGuard() = default;
};

namespace detail {
/// The guard watching this thread's parameter allocations (none: nullptr).
inline ParamAllocationGuard*& param_allocation_guard() {
  static thread_local ParamAllocationGuard* guard = nullptr;
  return guard;
}
}  // namespace detail

/// A learnable tensor with its gradient, its momentum buffer and its multipliers.
template <class T>
struct Param {
  std::string name;        // "weight", "bias", "scale", "offset"
  ParamRole role = ParamRole::weight;
  Tensor<T> value;
  Tensor<T> grad;
  Tensor<T> velocity;      // the solver's momentum, saved with training checkpoints
  std::vector<int> dims;   // the logical shape written to checkpoints ([K, D] for a linear layer)
  double learn_rate_factor = 1;
  double l2_factor = 1;
  /// Advanced whenever `value` changes (changed()): every writer of parameter values in ewnet calls
  /// it (a solver step, loading a checkpoint, initialisation, a move to another device), and code
  /// that writes value.data() itself must too. The CPU engine keeps the weights reordered into its
  /// primitives' layout while the version is unchanged (onednn::LayerCache).
  std::uint64_t version = 0;

  bool trainable() const { return learn_rate_factor != 0; }
  void changed() { ++version; }
  size_t count() const { return value.size(); }

  void allocate(Shape shape, std::vector<int> logical_dims, Device device) {
    if (ParamAllocationGuard* guard = detail::param_allocation_guard()) guard->allocating(name, shape.size());
    value = Tensor<T>(shape, device);
    grad = Tensor<T>(shape, device);
    velocity = Tensor<T>(shape, device);
    dims = std::move(logical_dims);
    changed();
  }
  void to(Device device) {
    if (value.device() == device) return;
    changed();
    value = value.to(device);
    grad = grad.to(device);
    velocity = velocity.to(device);
  }
};

/// A named non-learned tensor saved with the model (batch-norm running statistics, the input
/// layer's normalisation).
template <class T>
struct StateTensor {
  std::string name;
  Tensor<T>* tensor;
  std::vector<int> dims;
};

/// How a layer runs on the CPU engine's blocked layout (the plan step in layout_plan.hpp reads it).
enum class EngineLayout {
  plain,          // reads and writes plain tensors only
  reads_any,      // reads either layout, writes plain
  follows_input,  // runs in its input's layout and writes its output in it
  blocked         // reads either layout, writes the engine's blocked layout
};

/// What a layer's forward pass is given besides its inputs.
struct ForwardContext {
  Mode mode = Mode::inference;
  std::uint64_t iteration = 0;  // the model's step counter: dropout draws its mask from it
  /// Whether a backward pass through this layer may follow. Model sets it false where none will
  /// (inference, a frozen base): the CPU engine's layers then keep nothing for one (max pooling's
  /// argmax, LRN's workspace); a backward pass after all recomputes what it needs.
  bool backward_follows = true;
};

/// What a layer's backward pass reads and writes.
template <class T>
struct BackwardArgs {
  std::vector<const Tensor<T>*> x;  // the inputs of the forward pass
  const Tensor<T>* y = nullptr;      // the output of the forward pass
  const Tensor<T>* dy = nullptr;     // dL/dy (null for a loss layer, which starts the pass)
  std::vector<Tensor<T>*> dx;        // where to write dL/dx[i]; null where no gradient is wanted
  std::vector<GradWrite> dx_mode;    // overwrite, or accumulate onto an earlier consumer's share
  ForwardContext context;            // the forward pass's mode and iteration
};

template <class T>
class Layer {
 public:
  explicit Layer(std::string name) : name_(std::move(name)) {
    EWNET_CHECK_AS(GraphError, !name_.empty(), "a layer needs a non-empty name");
  }
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  const std::string& name() const { return name_; }
  void rename(std::string name) { name_ = std::move(name); }

  /// Short type name, as in checkpoints ("conv2d", "relu", ...).
  virtual std::string type() const = 0;
  /// One line for a summary: "7x7 convolution, 64 filters, stride 2, padding 3".
  virtual std::string describe() const { return type(); }
  /// How many inputs the layer takes; max_inputs() < 0 means any number from min_inputs().
  virtual int min_inputs() const { return 1; }
  virtual int max_inputs() const { return 1; }
  /// True for the loss layer that ends a graph.
  virtual bool is_loss() const { return false; }

  /// Checks the per-sample input shapes (n is ignored), creates or re-creates the parameters to
  /// fit them, and returns the per-sample output shape. Throws ShapeError naming both shapes.
  virtual Shape setup(const std::vector<Shape>& inputs, Device device) = 0;
  /// Draws fresh initial parameters.
  virtual void initialize(Random&) {}
  /// How the layer's float CPU path runs on the engine's layout in blocks of `block` channels,
  /// for these per-sample input shapes (layout_plan.hpp). Plain unless a layer says otherwise.
  virtual EngineLayout engine_layout(const std::vector<Shape>& /*inputs*/, int /*block*/) const {
    return EngineLayout::plain;
  }
  /// The precision of the layer's matrix products, if it has any (Model::set_precision sets every
  /// layer's; precision.hpp).
  virtual void set_precision(Precision) {}

  virtual void forward(const std::vector<const Tensor<T>*>& x, const Tensor<T>& y, const ForwardContext& ctx) = 0;
  virtual void backward(const BackwardArgs<T>& args) = 0;

  virtual std::vector<Param<T>*> params() { return {}; }
  virtual std::vector<StateTensor<T>> state() { return {}; }
  /// The layer's hyper-parameters, enough to rebuild it (see layers/registry.hpp).
  virtual json::Value config() const { return json::Value::object(); }

  /// Moves parameters, state and scratch to a device.
  virtual void to(Device device) {
    for (Param<T>* p : params()) p->to(device);
    for (StateTensor<T>& s : state())
      if (s.tensor->device() != device) *s.tensor = s.tensor->to(device);
  }

  /// Sets the learning-rate factors of weight-like and bias-like parameters (0 freezes).
  void set_learn_rate_factors(double weight, double bias) {
    EWNET_CHECK(weight >= 0 && bias >= 0, "layer '", name_, "': learning-rate factors must be >= 0, got ", weight,
                " and ", bias);
    for (Param<T>* p : params()) p->learn_rate_factor = p->role == ParamRole::weight ? weight : bias;
  }
  void set_l2_factors(double weight, double bias) {
    for (Param<T>* p : params()) p->l2_factor = p->role == ParamRole::weight ? weight : bias;
  }
  /// True when the layer has parameters and none of them trains.
  bool frozen() {
    auto ps = params();
    if (ps.empty()) return false;
    for (Param<T>* p : ps)
      if (p->trainable()) return false;
    return true;
  }
  bool has_trainable_params() {
    for (Param<T>* p : params())
      if (p->trainable()) return true;
    return false;
  }
  size_t param_count() {
    size_t n = 0;
    for (Param<T>* p : params()) n += p->count();
    return n;
  }

  /// How many times backward has run (tests use it to prove that frozen layers are skipped).
  std::uint64_t backward_calls() const { return backward_calls_; }
  void count_backward() { ++backward_calls_; }

 private:
  std::string name_;
  std::uint64_t backward_calls_ = 0;
};

}  // namespace ewnet
