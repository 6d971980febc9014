// ewnet/graph.hpp: Model<T>, a graph of named layers (MATLAB's layerGraph / dlnetwork).
//
// Build a model by adding named layers and naming their inputs; by default a layer takes the
// output of the layer added before it. The graph is checked and planned on first use (or by
// build()): every input must name a layer, there must be no cycle and exactly one output, and the
// shapes must fit; errors name the offending layer and the shapes involved.
//
// Auxiliary classifiers (GoogLeNet's, Inception-v3's): side branches that end in a classification
// layer marked AuxiliaryLoss{weight} are the only other outputs allowed. Every layer that does not
// lead to the main output belongs to such a branch; the branches run in training passes with labels
// only (forward(images, labels, Mode::training)), add weight x their cross-entropy to loss() and
// their gradients to the layers they read. Inference, evaluation and forward_from() skip them, so
// the prediction is the same with or without them.
//
// The plan decides, once:
//   - the order of execution (a topological order, stable in the order of addition);
//   - which layers run backward: a layer runs backward only if it, or some layer before it, has a
//     trainable parameter. Backpropagation therefore stops below the lowest trainable layer, and a
//     frozen layer computes no weight gradients (Freezing saves compute, not just the update);
//   - where outputs live: a layer whose only consumer is a depth concatenation writes straight into
//     its channel slice of the concatenation's output, and reads its gradient from the matching
//     slice of the concatenation's gradient (on the CPU engine's blocked layout, for one sample a
//     pass: oneDNN's fast kernels take no other batch stride);
//   - in which layout each activation lives on the CPU engine (layout_plan.hpp): the engine's
//     blocked layout from layer to layer, converted where a layer that cannot run on it reads or
//     writes; everything a caller is handed (prediction(), activation(), output_gradient()) is plain.
// Activations are allocated once per batch size and reused; a step allocates nothing.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <ewnet/layers/batch_norm.hpp>
#include <ewnet/layers/classification.hpp>
#include <ewnet/layers/concat.hpp>
#include <ewnet/layers/conv2d.hpp>
#include <ewnet/layers/input.hpp>
#include <ewnet/layers/layer.hpp>
#include <ewnet/layers/relu.hpp>
#include <ewnet/layers/softmax.hpp>
#include <ewnet/layout_plan.hpp>
#include <ewnet/ops/elementwise.hpp>

namespace ewnet {

template <class T>
class Model {
 public:
  using LayerPtr = std::unique_ptr<Layer<T>>;

  explicit Model(std::uint64_t seed = 0) : seed_(seed) {}
  Model(Model&&) noexcept = default;
  Model& operator=(Model&&) noexcept = default;

  // ---- building ------------------------------------------------------------------------------

  /// Adds a layer fed by the previously added layer (none for an input layer).
  Layer<T>& add(LayerPtr layer) {
    std::vector<std::string> inputs;
    if (layer->max_inputs() != 0 && !nodes_.empty()) inputs.push_back(nodes_.back().layer->name());
    return add(std::move(layer), std::move(inputs));
  }
  /// Adds a layer fed by the named layers, in order.
  Layer<T>& add(LayerPtr layer, std::vector<std::string> inputs) {
    EWNET_CHECK_AS(GraphError, layer != nullptr, "add: null layer");
    EWNET_CHECK_AS(GraphError, find(layer->name()) < 0, "a layer named '", layer->name(),
                   "' is already in the model");
    Node n;
    n.layer = std::move(layer);
    n.inputs = std::move(inputs);
    nodes_.push_back(std::move(n));
    invalidate();
    return *nodes_.back().layer;
  }
  Layer<T>& add(LayerPtr layer, const std::string& input) { return add(std::move(layer), std::vector<std::string>{input}); }

  /// Connects the output of `from` to the next input of `to` (MATLAB's connectLayers).
  void connect(const std::string& from, const std::string& to) {
    node(to).inputs.push_back(from);
    invalidate();
  }
  /// Removes the connection from `from` into `to`.
  void disconnect(const std::string& from, const std::string& to) {
    auto& in = node(to).inputs;
    auto it = std::find(in.begin(), in.end(), from);
    EWNET_CHECK_AS(GraphError, it != in.end(), "layer '", to, "' has no input from '", from, "'");
    in.erase(it);
    invalidate();
  }

  /// Replaces the layer `name` by `layer`, keeping its connections; other layers that took input
  /// from `name` now take it from the new layer's name. The new layer's parameters are fresh.
  Layer<T>& replace(const std::string& name, LayerPtr layer) {
    Node& n = node(name);
    const std::string new_name = layer->name();
    EWNET_CHECK_AS(GraphError, new_name == name || find(new_name) < 0, "replace: a layer named '", new_name,
                   "' is already in the model");
    n.layer = std::move(layer);
    n.fresh = true;
    for (Node& other : nodes_)
      for (std::string& in : other.inputs)
        if (in == name) in = new_name;
    invalidate();
    return *n.layer;
  }

  bool has_layer(const std::string& name) const { return find(name) >= 0; }
  Layer<T>& layer(const std::string& name) { return *node(name).layer; }
  template <class L>
  L& layer_as(const std::string& name) {
    auto* p = dynamic_cast<L*>(node(name).layer.get());
    EWNET_CHECK_AS(GraphError, p != nullptr, "layer '", name, "' is a ", node(name).layer->type(),
                   ", not the type asked for");
    return *p;
  }
  /// Layers in execution order (after build) or in order of addition (before).
  std::vector<Layer<T>*> layers() {
    std::vector<Layer<T>*> out;
    if (built_) for (int i : order_) out.push_back(nodes_[size_t(i)].layer.get());
    else for (Node& n : nodes_) out.push_back(n.layer.get());
    return out;
  }
  const std::vector<std::string>& inputs_of(const std::string& name) { return node(name).inputs; }

  /// The per-sample output shape of a layer: the planned one once the graph is built; before,
  /// inferred from the layers feeding it, so it works while the graph is still being assembled (the
  /// rest of it need not be complete yet). Each layer is inferred once a call: linear in the layers
  /// it depends on, however many paths lead there (an inception network has exponentially many).
  Shape output_shape(const std::string& name) {
    const int i = find_checked(name);
    if (built_) return nodes_[size_t(i)].shape;
    std::vector<char> state(nodes_.size(), 0);  // 0 not seen, 1 on the current path, 2 done
    std::vector<Shape> shapes(nodes_.size());
    return partial_shape(i, state, shapes);
  }
  size_t layer_count() const { return nodes_.size(); }

  /// Checks and plans the graph (called by forward when needed). Throws GraphError or ShapeError.
  void build() {
    if (built_) return;
    resolve_edges();
    topological_order();
    infer_shapes();
    for (Node& n : nodes_) n.layer->set_precision(precision_);  // layers added or replaced since
    plan_fusion();
    built_ = true;
    planned_trainable_.clear();
    refresh_plan();
  }

  // ---- learning-rate factors (0 freezes) -----------------------------------------------------

  void set_learn_rate_factors(const std::string& name, double weight, double bias) {
    node(name).layer->set_learn_rate_factors(weight, bias);
    replan_backward();
  }
  /// Sets the factors of every layer from the first in execution order up to and including `name`.
  void set_learn_rate_factors_up_to(const std::string& name, double weight, double bias) {
    build();
    const int stop = find(name);
    EWNET_CHECK_AS(GraphError, stop >= 0, "no layer named '", name, "'");
    for (int i : order_) {
      nodes_[size_t(i)].layer->set_learn_rate_factors(weight, bias);
      if (i == stop) break;
    }
    replan_backward();
  }
  /// Freezes every layer up to and including `name` (factors 0): their weights stay bitwise
  /// unchanged, their gradients are never computed, and nothing below them runs backward.
  void freeze_up_to(const std::string& name) { set_learn_rate_factors_up_to(name, 0, 0); }
  void freeze_all() {
    for (Node& n : nodes_) n.layer->set_learn_rate_factors(0, 0);
    replan_backward();
  }

  // ---- running -------------------------------------------------------------------------------

  /// Runs the network on a batch and returns the prediction (the output of the layer that feeds
  /// the loss layer, or of the last layer). Does not evaluate the loss.
  const Tensor<T>& forward(const Tensor<T>& images, Mode mode = Mode::inference) {
    run_forward(images, mode, false);
    return prediction();
  }
  /// Runs the network and the loss on a labelled batch (training mode by default); the mean loss
  /// stays on the device until loss() asks for it.
  const Tensor<T>& forward(const Tensor<T>& images, const std::vector<int>& labels, Mode mode = Mode::training) {
    build();
    EWNET_CHECK_AS(GraphError, loss_node_ >= 0, "the model has no classification (loss) layer");
    EWNET_CHECK_AS(ShapeError, labels.size() == size_t(images.n()), labels.size(), " labels for a batch of ",
                   images.n(), " images");
    set_loss_labels(labels, nullptr, mode);
    run_forward(images, mode, true);
    return prediction();
  }

  /// The same with a weight for each sample: the loss is sum_n w_n CE_n instead of the mean (weights
  /// 1/N give the mean), and so are the auxiliary classifiers' (layers/classification.hpp). One pass
  /// can so join parts with their own weights: labelled images, pseudo-labelled ones (FixMatch),
  /// and images that are there for their features or predictions only (weight 0, any valid label).
  const Tensor<T>& forward(const Tensor<T>& images, const std::vector<int>& labels, const std::vector<double>& weights,
                           Mode mode = Mode::training) {
    build();
    EWNET_CHECK_AS(GraphError, loss_node_ >= 0, "the model has no classification (loss) layer");
    EWNET_CHECK_AS(ShapeError, labels.size() == size_t(images.n()) && weights.size() == size_t(images.n()),
                   labels.size(), " labels and ", weights.size(), " sample weights for a batch of ", images.n(),
                   " images");
    set_loss_labels(labels, &weights, mode);
    run_forward(images, mode, true);
    return prediction();
  }

  /// The same with labels already on the model's device ([N,1,1,1] int32, each in [0, classes)):
  /// no host copy, so a CUDA step can be captured into a graph. The labels are range-checked where
  /// they are used: on the CPU at once (ShapeError), on the GPU by the kernels, a bad one making
  /// the next synchronisation (loss(), a copy to the host) throw DeviceError.
  const Tensor<T>& forward(const Tensor<T>& images, const Tensor<std::int32_t>& labels, Mode mode = Mode::training) {
    build();
    EWNET_CHECK_AS(GraphError, loss_node_ >= 0, "the model has no classification (loss) layer");
    EWNET_CHECK_AS(ShapeError, labels.size() == size_t(images.n()), labels.size(), " labels for a batch of ",
                   images.n(), " images");
    loss_layer().set_labels(labels);
    loss_layer().clear_sample_weights();
    if (mode == Mode::training)
      for (int a : aux_loss_nodes_) {
        classification(a).set_labels(labels);
        classification(a).clear_sample_weights();
      }
    run_forward(images, mode, true);
    return prediction();
  }

  /// Runs only the layers after `cut`, on `activations` standing for cut's output: with the base
  /// frozen, features computed once by forward() (activation(cut)) can be reused every epoch, so
  /// fine-tuning the head costs the head alone. Everything up to `cut` must be frozen and no later
  /// layer may read a layer before it (GraphError otherwise). backward() then works as usual.
  /// Auxiliary classifiers do not run (they read the base this skips).
  const Tensor<T>& forward_from(const std::string& cut, const Tensor<T>& activations, Mode mode = Mode::inference) {
    run_from(cut, activations, mode, false);
    return prediction();
  }
  const Tensor<T>& forward_from(const std::string& cut, const Tensor<T>& activations, const std::vector<int>& labels,
                                Mode mode = Mode::training) {
    build();
    EWNET_CHECK_AS(GraphError, loss_node_ >= 0, "the model has no classification (loss) layer");
    EWNET_CHECK_AS(ShapeError, labels.size() == size_t(activations.n()), labels.size(),
                   " labels for a batch of ", activations.n());
    loss_layer().set_labels(labels, device_);
    loss_layer().clear_sample_weights();
    run_from(cut, activations, mode, true);
    return prediction();
  }

  /// True when forward_from(cut) can run: no layer after `cut` reads a layer before it (auxiliary
  /// classifiers aside), and nothing up to and including `cut` trains.
  bool can_run_from(const std::string& cut) {
    size_t pos = 0;
    return has_layer(cut) && cut_problem(cut, pos).empty();
  }

  /// Adds `gradient` to dL/d(output of `name`) in the next backward(): the gradient of a loss term
  /// computed outside the graph from that layer's activation of the last forward pass (a domain-
  /// alignment loss on the pooled features, an entropy loss on the logits). It has the layer's
  /// output shape for that batch and lives on the model's device; it is used by the next backward
  /// only (a forward pass drops it), and several add up. Throws GraphError when no gradient flows
  /// through that layer (nothing up to it trains: the term could change nothing).
  void add_output_gradient(const std::string& name, const Tensor<T>& gradient) {
    EWNET_CHECK(loss_ready_, "add_output_gradient: call forward(images, labels) first");
    const int i = find_checked(name);
    Node& n = nodes_[size_t(i)];
    EWNET_CHECK_AS(GraphError, n.needs_grad, "add_output_gradient: no gradient flows through '", name,
                   "' (nothing up to it trains, or it is the loss layer)");
    EWNET_CHECK_AS(ShapeError, gradient.shape() == n.out.shape(), "add_output_gradient: a gradient of shape ",
                   gradient.shape(), " for '", name, "', whose output is ", n.out.shape());
    EWNET_CHECK_AS(DeviceError, gradient.device() == device_, "add_output_gradient: the gradient is on ",
                   device_name(gradient.device()), " but the model is on ", device_name(device_));
    Tensor<T> copy = Tensor<T>::empty(gradient.shape(), device_);
    copy.copy_from(gradient);
    output_gradients_.emplace_back(i, std::move(copy));
  }

  /// Back-propagates the loss of the last labelled forward pass (the mean, or the weighted sum),
  /// with the gradients added by add_output_gradient.
  void backward() {
    EWNET_CHECK(loss_ready_, "backward: call forward(images, labels) first");
    std::fill(grad_written_.begin(), grad_written_.end(), false);
    std::fill(other_grad_written_.begin(), other_grad_written_.end(), false);
    for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
      Node& n = nodes_[size_t(*it)];
      if (!n.runs_backward || (auxiliary_[size_t(*it)] && !aux_ran_)) continue;
      // Its consumers have written dL/d(output); the terms from outside the graph join them.
      for (const auto& [node, gradient] : output_gradients_)
        if (node == *it) {
          copy_gradient(gradient, n.grad, grad_written_[size_t(node)] ? GradWrite::accumulate : GradWrite::overwrite);
          grad_written_[size_t(node)] = true;
        }
      // The argument lists were sized in allocate(); only the write modes change per step.
      BackwardArgs<T>& args = n.backward_args;
      args.context = last_context_;
      fold_other_gradient(*it);
      for (size_t k = 0; k < n.in_idx.size(); ++k) {
        const size_t src = size_t(n.in_idx[k]);
        if (!args.dx[k]) continue;
        // A converted copy's gradient is added up apart, then folded in before its producer runs.
        std::vector<bool>& written = n.reads_other[k] && nodes_[src].other_is_copy ? other_grad_written_ : grad_written_;
        args.dx_mode[k] = written[src] ? GradWrite::accumulate : GradWrite::overwrite;
        written[src] = true;
      }
      n.layer->backward(args);
      n.layer->count_backward();
    }
    output_gradients_.clear();
  }

  /// The loss of the last labelled forward pass (copies it to the host; the mean, or the weighted
  /// sum of a pass with sample weights): after a training
  /// pass of a model with auxiliary classifiers, the objective trained, main loss + the sum of
  /// weight x auxiliary loss; otherwise the main loss alone (main_loss()).
  T loss() const {
    EWNET_CHECK(loss_ready_, "loss: call forward(images, labels) first");
    double total = classification(loss_node_).reduce(nodes_[size_t(loss_node_)].out);
    if (aux_ran_)
      for (int a : aux_loss_nodes_) total += classification(a).weight() * classification(a).reduce(nodes_[size_t(a)].out);
    return T(total);
  }
  /// The main classifier's mean loss of the last labelled forward pass, without auxiliary terms.
  T main_loss() const {
    EWNET_CHECK(loss_ready_, "loss: call forward(images, labels) first");
    return T(classification(loss_node_).reduce(nodes_[size_t(loss_node_)].out));
  }

  /// The output of the last forward pass (class probabilities for a classifier).
  const Tensor<T>& prediction() const { return plain_output(nodes_[size_t(prediction_node_)]); }
  /// The name of the layer whose output is the prediction (the main loss layer's input).
  const std::string& prediction_layer() {
    build();
    return nodes_[size_t(prediction_node_)].layer->name();
  }

  // ---- auxiliary classifiers -----------------------------------------------------------------

  /// True when `name` belongs to an auxiliary classifier (it does not lead to the main output).
  bool is_auxiliary(const std::string& name) {
    build();
    return auxiliary_[size_t(find_checked(name))];
  }
  /// The auxiliary loss layers, in execution order.
  std::vector<std::string> auxiliary_losses() {
    build();
    std::vector<std::string> out;
    for (int i : order_)
      if (std::find(aux_loss_nodes_.begin(), aux_loss_nodes_.end(), i) != aux_loss_nodes_.end())
        out.push_back(nodes_[size_t(i)].layer->name());
    return out;
  }
  /// The layers of the main path an auxiliary classifier reads (where its branch leaves it).
  std::vector<std::string> auxiliary_inputs(const std::string& loss) {
    const std::vector<bool> branch = branch_of(loss);
    std::vector<std::string> out;
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (branch[i])
        for (int j : nodes_[i].in_idx)
          if (!auxiliary_[size_t(j)] &&
              std::find(out.begin(), out.end(), nodes_[size_t(j)].layer->name()) == out.end())
            out.push_back(nodes_[size_t(j)].layer->name());
    return out;
  }
  /// Removes the auxiliary classifier ending in `loss`: the loss layer and every layer that leads
  /// to it and to no other output. The rest of the model, its parameters included, is unchanged.
  void remove_auxiliary(const std::string& loss) {
    const std::vector<bool> branch = branch_of(loss);
    std::vector<Node> kept;
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (!branch[i]) kept.push_back(std::move(nodes_[i]));
    nodes_ = std::move(kept);
    invalidate();
    build();
  }
  /// Whether `name` or a layer before it trains under the current learning-rate factors, so that
  /// backward runs through it: false when everything up to it is frozen (an auxiliary classifier
  /// reading only such layers trains nothing but itself).
  bool trains_up_to(const std::string& name) {
    build();
    refresh_plan();
    return nodes_[size_t(find_checked(name))].runs_backward;
  }
  /// The output of any layer from the last forward pass. A convolution whose output only feeds a
  /// ReLU (or a batch normalization, then maybe a ReLU), in a pass that needs no gradient through
  /// them (inference, or a frozen base), has written the last fused layer's output directly and
  /// kept none of its own (nor has the batch normalization, when a ReLU follows it): asking for it
  /// is an error (read the last layer's, or turn the fusion off with set_inference_fusion(false)).
  const Tensor<T>& activation(const std::string& name) {
    const int i = find_checked(name);
    if (size_t(i) < fused_last_pass_.size() && fused_last_pass_[size_t(i)]) {
      const int conv = fused_into_[size_t(i)] >= 0 ? fused_into_[size_t(i)] : i;
      const ConvFusion& f = conv_fusion_[size_t(conv)];
      const std::string bn = f.bn >= 0 ? nodes_[size_t(f.bn)].layer->name() : "";
      const std::string relu = f.relu >= 0 ? nodes_[size_t(f.relu)].layer->name() : "";
      throw GraphError(str("the output of '", name, "' was not kept by the last pass: it was fused with ",
                           bn.empty() || bn == name ? "" : "the batch normalization '" + bn + "'",
                           bn.empty() || bn == name || relu.empty() ? "" : " and ",
                           relu.empty() ? "" : "the ReLU '" + relu + "'",
                           " that follows it; read that layer's output, or call set_inference_fusion(false)"));
    }
    return plain_copy(nodes_[size_t(i)].out, nodes_[size_t(i)].user_out);
  }

  /// True when `name` writes straight into its slice of a concatenation's output (no copy); planned
  /// per batch size, so after a forward pass.
  bool in_place(const std::string& name) { return node(name).alias_of >= 0; }
  /// The layout the last forward pass kept `name`'s output in: 0 plain, else the CPU engine's
  /// channels per block (layout_plan.hpp). activation() hands it out plain either way.
  int layout_of(const std::string& name) { return node(name).out.block(); }

  /// The inference path (on by default): a convolution whose output only feeds a ReLU computes
  /// max(0, conv + bias) straight into the ReLU's output, in one pass, and the ReLU is not run
  /// (bitwise the same result), wherever no backward pass reads their separate outputs: in
  /// Mode::inference, and in training below the lowest trainable layer. On the CPU engine a batch
  /// normalization that is a convolution's only reader and normalises with its running statistics
  /// (inference, or frozen) is folded into the convolution's weights too, with the ReLU after it
  /// (the same result to rounding; the same bits in inference and in a frozen base's training pass).
  void set_inference_fusion(bool on) { inference_fusion_ = on; }
  bool inference_fusion() const { return inference_fusion_; }
  /// The gradient with respect to a layer's output from the last backward pass (empty when that
  /// layer needed none).
  const Tensor<T>& output_gradient(const std::string& name) {
    Node& n = node(name);
    return plain_copy(n.grad, n.user_grad);
  }

  // ---- parameters, device, summary -----------------------------------------------------------

  /// Every parameter with its layer's name, in execution order.
  std::vector<std::pair<std::string, Param<T>*>> parameters() {
    build();
    std::vector<std::pair<std::string, Param<T>*>> out;
    for (int i : order_)
      for (Param<T>* p : nodes_[size_t(i)].layer->params()) out.emplace_back(nodes_[size_t(i)].layer->name(), p);
    return out;
  }
  /// Every saved non-learned tensor (running statistics, input normalisation) with its layer's name.
  std::vector<std::pair<std::string, StateTensor<T>>> state_tensors() {
    build();
    std::vector<std::pair<std::string, StateTensor<T>>> out;
    for (int i : order_)
      for (StateTensor<T>& s : nodes_[size_t(i)].layer->state()) out.emplace_back(nodes_[size_t(i)].layer->name(), s);
    return out;
  }
  /// Every parameter in execution order, without layer names: the list the solver walks each
  /// step, kept since build() (valid until the graph changes).
  const std::vector<Param<T>*>& parameter_list() {
    build();
    return param_list_;
  }
  size_t parameter_count() {
    size_t n = 0;
    for (auto& [name, p] : parameters()) n += p->count();
    return n;
  }

  /// Re-draws every layer's initial parameters from the model seed (each layer from the seed and
  /// its name, so adding a layer does not change the others).
  void initialize() {
    build();
    for (Node& n : nodes_) initialize_node(n);
  }
  std::uint64_t seed() const { return seed_; }

  /// The precision of the matrix products (precision.hpp): bf16 runs the convolutions and fully
  /// connected layers with bfloat16 operands on the CPU engine, everything else (the master
  /// weights, the gradients, the solver's state) staying float32. Only a float model on the CPU
  /// engine takes it; elsewhere, and on a processor without AVX512-BF16 or AMX, it is an error
  /// naming what is missing.
  void set_precision(Precision p) {
    if (p == Precision::bf16) {
      EWNET_CHECK_AS(DeviceError, (std::is_same_v<T, float> && device_ == Device::cpu),
                     "bfloat16 matrix products run on the CPU engine: a float model on the CPU (this one is ",
                     std::is_same_v<T, float> ? "float" : "double", " on ", device_name(device_), ")");
      EWNET_CHECK_AS(DeviceError, onednn::enabled(), "bfloat16 matrix products run on the CPU engine's primitives, "
                     "which the reference path (EWNET_CPU_REFERENCE) turns off");
      onednn::require_bf16();
    }
    precision_ = p;
    for (Node& n : nodes_) n.layer->set_precision(p);
  }
  Precision precision() const { return precision_; }

  void to(Device device) {
    EWNET_CHECK_AS(DeviceError, device == Device::cpu || precision_ == Precision::fp32,
                   "a bfloat16 model runs on the CPU engine only; set_precision(Precision::fp32) first");
    if (device == Device::cuda) {
#ifdef EWNET_WITH_CUDA
      EWNET_CHECK_AS(DeviceError, cuda::available(), "the CUDA device was asked for, but no CUDA GPU is present");
#else
      detail::no_cuda();
#endif
    }
    device_ = device;
    for (Node& n : nodes_) n.layer->to(device);
    batch_ = -1;  // activations are re-allocated on the new device at the next forward
  }
  Device device() const { return device_; }

  /// The input layer's per-sample shape.
  Shape input_shape() {
    build();
    return nodes_[size_t(input_node_)].shape;
  }
  ImageInput<T>& input_layer() {
    build();
    return dynamic_cast<ImageInput<T>&>(*nodes_[size_t(input_node_)].layer);
  }
  /// The main classification (loss) layer.
  Classification<T>& loss_layer() {
    build();
    EWNET_CHECK_AS(GraphError, loss_node_ >= 0, "the model has no classification (loss) layer");
    return classification(loss_node_);
  }
  /// Number of classes the classifier predicts.
  int classes() { return int(prediction_shape().c); }
  Shape prediction_shape() {
    build();
    return nodes_[size_t(prediction_node_)].shape;
  }
  /// The model's step counter: the training passes run so far. Each training pass draws its dropout
  /// masks from it, then advances it (one pass a step: a step's backward reuses its pass's masks).
  std::uint64_t iteration() const { return iteration_; }
  void set_iteration(std::uint64_t it) { iteration_ = it; }

  /// A table of every layer: index, name, description, output size (HxWxC), parameters, and
  /// the total layer count as MATLAB counts it (every layer, input and output included).
  std::string summary() {
    build();
    std::ostringstream os;
    size_t wname = 5;
    for (Node& n : nodes_) wname = std::max(wname, n.layer->name().size());
    char line[512];
    std::snprintf(line, sizeof line, "%4s  %-*s  %-66s  %-13s  %10s  %s\n", "#", int(wname), "layer", "type",
                  "output", "params", "trainable");
    os << line;
    size_t idx = 0, trainable = 0;
    for (int i : order_) {
      Node& n = nodes_[size_t(i)];
      const size_t pc = n.layer->param_count();
      if (n.layer->has_trainable_params()) trainable += pc;
      std::snprintf(line, sizeof line, "%4zu  %-*s  %-66.66s  %-13s  %10zu  %s\n", ++idx, int(wname),
                    n.layer->name().c_str(), n.layer->describe().c_str(), n.shape.hwc().c_str(), pc,
                    pc == 0 ? "" : (n.layer->frozen() ? "frozen" : "yes"));
      os << line;
    }
    os << nodes_.size() << " layers, " << parameter_count() << " parameters (" << trainable << " trainable)\n";
    return os.str();
  }

  /// The graph's connections as "from -> to" lines (for documentation and checkpoints).
  std::vector<std::pair<std::string, std::string>> connections() {
    build();
    std::vector<std::pair<std::string, std::string>> out;
    for (int i : order_)
      for (const std::string& in : nodes_[size_t(i)].inputs) out.emplace_back(in, nodes_[size_t(i)].layer->name());
    return out;
  }

 private:
  /// The layers a convolution runs inside itself on the inference path (node indices, or -1).
  struct ConvFusion {
    int bn = -1, relu = -1;
  };
  struct Node {
    LayerPtr layer;
    std::vector<std::string> inputs;
    std::vector<int> in_idx;
    std::vector<int> consumers;
    Shape shape;           // per-sample output shape
    Tensor<T> out, grad;   // batch activations and dL/d(out)
    bool needs_grad = false;
    bool runs_backward = false;
    int alias_of = -1;     // the concat node whose output slice holds this node's output
    int alias_offset = 0;  // first channel of that slice
    bool fresh = true;     // parameters not yet initialised
    std::vector<Param<T>*> params;  // the layer's parameters, listed once by build()
    std::vector<const Tensor<T>*> forward_inputs;  // built with the buffers, reused every step
    BackwardArgs<T> backward_args;
    // The output and its gradient in the other layout, for consumers that read that one
    // (layout_plan.hpp): a converted copy (refreshed after the layer runs; its gradient folded in
    // before the layer's backward pass), or a view when both layouts hold the same bytes.
    Tensor<T> other, other_grad;
    bool other_is_copy = false;
    std::vector<bool> reads_other;  // per input: this node reads the producer's `other`
    Tensor<T> user_out, user_grad;  // plain copies handed out by activation() and output_gradient()
  };

  int find(const std::string& name) const {
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].layer->name() == name) return int(i);
    return -1;
  }
  int find_checked(const std::string& name) const {
    const int i = find(name);
    EWNET_CHECK_AS(GraphError, i >= 0, "no layer named '", name, "' in the model");
    return i;
  }
  Shape partial_shape(int i, std::vector<char>& state, std::vector<Shape>& shapes) {
    Node& n = nodes_[size_t(i)];
    if (state[size_t(i)] == 2) return shapes[size_t(i)];
    EWNET_CHECK_AS(GraphError, state[size_t(i)] == 0, "the model has a cycle through layer '", n.layer->name(), "'");
    state[size_t(i)] = 1;
    std::vector<Shape> in;
    for (const std::string& s : n.inputs) in.push_back(partial_shape(find_checked(s), state, shapes));
    const int count = int(in.size());
    EWNET_CHECK_AS(GraphError, count >= n.layer->min_inputs() && (n.layer->max_inputs() < 0 || count <= n.layer->max_inputs()),
                   "layer '", n.layer->name(), "' has ", count, " inputs");
    shapes[size_t(i)] = n.layer->setup(in, device_);
    state[size_t(i)] = 2;
    return shapes[size_t(i)];
  }
  Node& node(const std::string& name) {
    const int i = find(name);
    EWNET_CHECK_AS(GraphError, i >= 0, "no layer named '", name, "' in the model");
    return nodes_[size_t(i)];
  }
  void invalidate() {
    built_ = false;
    checked_cut_ = -1;
    batch_ = -1;
    loss_ready_ = false;
    aux_ran_ = false;
    output_gradients_.clear();
  }

  void resolve_edges() {
    EWNET_CHECK_AS(GraphError, !nodes_.empty(), "the model has no layers");
    input_node_ = loss_node_ = -1;
    aux_loss_nodes_.clear();
    for (Node& n : nodes_) {
      n.in_idx.clear();
      n.consumers.clear();
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {
      Node& n = nodes_[i];
      const Layer<T>& l = *n.layer;
      const int count = int(n.inputs.size());
      EWNET_CHECK_AS(GraphError, count >= l.min_inputs() && (l.max_inputs() < 0 || count <= l.max_inputs()),
                     "layer '", l.name(), "' (", l.type(), ") has ", count, " inputs; it takes ",
                     l.max_inputs() < 0 ? str(l.min_inputs(), " or more")
                                        : (l.min_inputs() == l.max_inputs() ? str(l.min_inputs())
                                                                             : str(l.min_inputs(), " to ", l.max_inputs())));
      for (const std::string& in : n.inputs) {
        const int j = find(in);
        EWNET_CHECK_AS(GraphError, j >= 0, "layer '", l.name(), "' takes input from '", in,
                       "', which is not a layer of the model");
        EWNET_CHECK_AS(GraphError, j != int(i), "layer '", l.name(), "' takes its own output as input");
        n.in_idx.push_back(j);
        nodes_[size_t(j)].consumers.push_back(int(i));
      }
      if (dynamic_cast<ImageInput<T>*>(n.layer.get())) {
        EWNET_CHECK_AS(GraphError, input_node_ < 0, "the model has two input layers ('",
                       nodes_[size_t(input_node_)].layer->name(), "' and '", l.name(), "')");
        input_node_ = int(i);
      }
      if (l.is_loss()) {
        const auto* c = dynamic_cast<const Classification<T>*>(&l);
        if (c && c->auxiliary()) {
          aux_loss_nodes_.push_back(int(i));
        } else {
          EWNET_CHECK_AS(GraphError, loss_node_ < 0, "the model has two main loss layers ('",
                         nodes_[size_t(loss_node_)].layer->name(), "' and '", l.name(),
                         "'); an auxiliary classifier's loss is a Classification with AuxiliaryLoss{weight}");
          loss_node_ = int(i);
        }
      }
    }
    EWNET_CHECK_AS(GraphError, input_node_ >= 0, "the model has no image input layer");
    int sinks = 0, main_sink = -1;
    std::string sink_names;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const Node& n = nodes_[i];
      if (!n.consumers.empty()) {
        EWNET_CHECK_AS(GraphError, !n.layer->is_loss(), "loss layer '", n.layer->name(), "' must be the last layer");
        continue;
      }
      if (std::find(aux_loss_nodes_.begin(), aux_loss_nodes_.end(), int(i)) != aux_loss_nodes_.end()) continue;
      ++sinks;
      main_sink = int(i);
      sink_names += (sink_names.empty() ? "'" : ", '") + n.layer->name() + "'";
    }
    EWNET_CHECK_AS(GraphError, sinks == 1, "the model must end in exactly one output layer (besides auxiliary "
                   "classifiers' losses); the outputs of ", sink_names, " are not used by any layer");
    // The main path: the output and every layer leading to it. The others serve auxiliary losses.
    auxiliary_.assign(nodes_.size(), true);
    std::vector<int> stack{main_sink};
    while (!stack.empty()) {
      const int i = stack.back();
      stack.pop_back();
      if (!auxiliary_[size_t(i)]) continue;
      auxiliary_[size_t(i)] = false;
      for (int j : nodes_[size_t(i)].in_idx) stack.push_back(j);
    }
    main_sink_ = main_sink;
  }

  /// The nodes that lead to the auxiliary loss `loss` and to no other output, the loss included.
  std::vector<bool> branch_of(const std::string& loss) {
    build();
    const int l = find_checked(loss);
    EWNET_CHECK_AS(GraphError, std::find(aux_loss_nodes_.begin(), aux_loss_nodes_.end(), l) != aux_loss_nodes_.end(),
                   "'", loss, "' is not an auxiliary classifier's loss layer");
    // In reverse execution order: a node is in the branch when all its consumers are.
    std::vector<bool> in(nodes_.size(), false);
    in[size_t(l)] = true;
    for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
      Node& n = nodes_[size_t(*it)];
      if (*it == l || !auxiliary_[size_t(*it)] || n.consumers.empty()) continue;
      bool all = true;
      for (int c : n.consumers) all = all && in[size_t(c)];
      in[size_t(*it)] = all;
    }
    return in;
  }

  /// Sets the labels (and the sample weights, or none) of the main loss and, in training, of the
  /// auxiliary classifiers' losses.
  void set_loss_labels(const std::vector<int>& labels, const std::vector<double>* weights, Mode mode) {
    std::vector<int> losses{loss_node_};
    if (mode == Mode::training) losses.insert(losses.end(), aux_loss_nodes_.begin(), aux_loss_nodes_.end());
    for (int l : losses) {
      classification(l).set_labels(labels, device_);
      if (weights) classification(l).set_sample_weights(*weights);
      else classification(l).clear_sample_weights();
    }
  }

  Classification<T>& classification(int node) const {
    return static_cast<Classification<T>&>(*nodes_[size_t(node)].layer);
  }

  /// Kahn's algorithm, taking ready layers in the order they were added.
  void topological_order() {
    std::vector<int> pending(nodes_.size());
    for (size_t i = 0; i < nodes_.size(); ++i) pending[i] = int(nodes_[i].in_idx.size());
    std::set<int> ready;
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (pending[i] == 0) ready.insert(int(i));
    order_.clear();
    while (!ready.empty()) {
      const int i = *ready.begin();
      ready.erase(ready.begin());
      order_.push_back(i);
      for (int c : nodes_[size_t(i)].consumers)
        if (--pending[size_t(c)] == 0) ready.insert(c);
    }
    if (order_.size() != nodes_.size()) {
      std::string cyc;
      for (size_t i = 0; i < nodes_.size(); ++i)
        if (pending[i] > 0) cyc += (cyc.empty() ? "'" : ", '") + nodes_[i].layer->name() + "'";
      throw GraphError(str("the model has a cycle through layers ", cyc));
    }
  }

  void infer_shapes() {
    for (int i : order_) {
      Node& n = nodes_[size_t(i)];
      std::vector<Shape> in;
      for (int j : n.in_idx) in.push_back(nodes_[size_t(j)].shape);
      try {
        n.shape = n.layer->setup(in, device_);
      } catch (const ShapeError& e) {
        std::string from;
        for (size_t k = 0; k < n.inputs.size(); ++k)
          from += str(k ? ", '" : "'", n.inputs[k], "' ", in[k].hwc());
        throw ShapeError(str("layer '", n.layer->name(), "' (", n.layer->type(), ")",
                             from.empty() ? "" : " with input " + from, ": ", e.what()));
      }
      if (n.fresh) initialize_node(n);
    }
    param_list_.clear();
    for (int i : order_) {
      Node& n = nodes_[size_t(i)];
      n.params = n.layer->params();
      param_list_.insert(param_list_.end(), n.params.begin(), n.params.end());
    }
    prediction_node_ = loss_node_ >= 0 ? nodes_[size_t(loss_node_)].in_idx[0] : main_sink_;
  }

  void initialize_node(Node& n) {
    Random rng(seed_, hash_name(n.layer->name()));
    n.layer->initialize(rng);
    for (Param<T>* p : n.layer->params()) p->changed();
    n.fresh = false;
  }

  /// Marks softmax -> classification pairs for the fused gradient, and what each convolution may
  /// run inside itself on the inference path: the batch normalization that is the only reader of
  /// its output, then the ReLU that is the only reader of that (or of the convolution's).
  void plan_fusion() {
    conv_fusion_.assign(nodes_.size(), ConvFusion());
    fused_into_.assign(nodes_.size(), -1);
    const auto sole_reader = [&](int i) {
      const Node& n = nodes_[size_t(i)];
      if (n.consumers.size() != 1 || nodes_[size_t(n.consumers[0])].in_idx.size() != 1) return -1;
      return n.consumers[0];
    };
    for (int i : order_) {
      if (!dynamic_cast<Conv2d<T>*>(nodes_[size_t(i)].layer.get())) continue;
      ConvFusion& f = conv_fusion_[size_t(i)];
      int j = sole_reader(i);
      if (j >= 0 && dynamic_cast<BatchNorm<T>*>(nodes_[size_t(j)].layer.get())) {
        f.bn = j;
        j = sole_reader(j);
      }
      if (j >= 0 && dynamic_cast<Relu<T>*>(nodes_[size_t(j)].layer.get())) f.relu = j;
      if (f.bn >= 0) fused_into_[size_t(f.bn)] = i;
      if (f.relu >= 0) fused_into_[size_t(f.relu)] = i;
    }
    for (Node& n : nodes_)
      if (auto* s = dynamic_cast<Softmax<T>*>(n.layer.get())) s->set_fused_with_loss(false);
    std::vector<int> losses = aux_loss_nodes_;
    if (loss_node_ >= 0) losses.push_back(loss_node_);
    for (int l : losses) {
      Node& loss = nodes_[size_t(l)];
      Node& src = nodes_[size_t(loss.in_idx[0])];
      auto* softmax = dynamic_cast<Softmax<T>*>(src.layer.get());
      const bool fused = softmax && src.consumers.size() == 1;
      if (fused) softmax->set_fused_with_loss(true);
      classification(l).set_softmax_input(fused);
    }
  }

  /// Decides which layers run backward and which outputs need a gradient.
  void plan_backward() {
    checked_cut_ = -1;
    std::vector<bool> upstream_trainable(nodes_.size(), false);
    for (int i : order_) {
      Node& n = nodes_[size_t(i)];
      bool up = n.layer->has_trainable_params();
      for (int j : n.in_idx) up = up || upstream_trainable[size_t(j)];
      upstream_trainable[size_t(i)] = up;
    }
    for (int i : order_) {
      Node& n = nodes_[size_t(i)];
      n.runs_backward = upstream_trainable[size_t(i)];
      n.needs_grad = upstream_trainable[size_t(i)] && !n.layer->is_loss();
    }
    grad_written_.assign(nodes_.size(), false);
    batch_ = -1;  // gradient buffers follow the plan
  }
  void replan_backward() {
    if (built_) plan_backward();
  }

  /// The CPU engine's channels per block for this model's activations, or 0 (plain): only float
  /// models on the CPU, with the primitives on (onednn::enabled()).
  int engine_block() const {
    if constexpr (std::is_same_v<T, float>)
      if (onednn::runs_on(device_)) return onednn::preferred_block();
    return 0;
  }

  /// The layout plan step (layout_plan.hpp) for the engine's current block.
  void plan_layouts() {
    const int block = engine_block();
    std::vector<LayoutNode> info(nodes_.size());
    for (int i : order_) {
      Node& n = nodes_[size_t(i)];
      std::vector<Shape> in;
      for (int j : n.in_idx) in.push_back(nodes_[size_t(j)].shape);
      info[size_t(i)].inputs = n.in_idx;
      info[size_t(i)].rule = block ? n.layer->engine_layout(in, block) : EngineLayout::plain;
    }
    layouts_ = ewnet::plan_layouts(info, order_, block);
  }

  /// Allocates activations and gradients for a batch size in the planned layouts, placing
  /// concatenation inputs in their slices of the concatenated output, and the converted copies
  /// the plan asks for.
  void allocate(int batch) {
    plan_layouts();
    place_concat_inputs(batch);
    allocate_outputs(batch);
    allocate_other_layouts(batch);
    build_argument_lists();
    other_grad_written_.assign(nodes_.size(), false);
    planned_block_ = layouts_.block;
    batch_ = batch;
  }

  /// The layout node i's output is planned in (0: plain, else the block).
  int planned_layout(int i) const { return layouts_.output[size_t(i)]; }

  /// Marks the inputs of each concatenation that can write straight into their slice of its output
  /// (alias_of, alias_offset).
  void place_concat_inputs(int batch) {
    for (Node& n : nodes_) n.alias_of = -1;
    for (int i : order_) {
      Node& n = nodes_[size_t(i)];
      if (!dynamic_cast<Concat<T>*>(n.layer.get())) continue;
      // A blocked slice is a dense tensor for one sample only (oneDNN's fast kernels take no other
      // batch stride; measured in docs/benchmarks.md): with more, the concatenation copies.
      if (planned_layout(i) && batch != 1) continue;
      int offset = 0;
      for (int j : n.in_idx) {
        Node& s = nodes_[size_t(j)];
        const bool placeable = s.consumers.size() == 1 && s.alias_of < 0 && j != input_node_ &&
                               !dynamic_cast<Concat<T>*>(s.layer.get()) && planned_layout(j) == planned_layout(i);
        if (placeable) {
          s.alias_of = i;
          s.alias_offset = offset;
        }
        offset += s.shape.c;
      }
    }
  }

  /// Each node's output and gradient: its own buffers, or its slice of a concatenation's.
  void allocate_outputs(int batch) {
    for (int i : order_) {
      Node& n = nodes_[size_t(i)];
      if (n.alias_of >= 0) continue;
      n.out = Tensor<T>::empty(n.shape.with_batch(batch), device_, planned_layout(i));
      n.grad = n.needs_grad ? Tensor<T>::empty(n.shape.with_batch(batch), device_, planned_layout(i)) : Tensor<T>();
    }
    for (int i : order_) {
      Node& n = nodes_[size_t(i)];
      if (n.alias_of < 0) continue;
      Node& c = nodes_[size_t(n.alias_of)];
      n.out = c.out.channels(n.alias_offset, n.shape.c);
      // The concat needs a gradient whenever one of its inputs does (it runs backward then).
      n.grad = n.needs_grad ? c.grad.channels(n.alias_offset, n.shape.c) : Tensor<T>();
    }
  }

  /// The converted copy (other, other_grad) of each output a consumer, or the caller for the
  /// prediction, reads in the other layout: a view where both layouts hold the same bytes.
  void allocate_other_layouts(int batch) {
    std::vector<int> other_block(nodes_.size(), -1);
    for (int i : order_)
      for (size_t k = 0; k < nodes_[size_t(i)].in_idx.size(); ++k) {
        const int j = nodes_[size_t(i)].in_idx[k];
        if (layouts_.input[size_t(i)][k] != planned_layout(j)) other_block[size_t(j)] = layouts_.input[size_t(i)][k];
      }
    if (planned_layout(prediction_node_)) other_block[size_t(prediction_node_)] = 0;
    for (int i : order_) {
      Node& n = nodes_[size_t(i)];
      n.other = n.other_grad = Tensor<T>();
      n.other_is_copy = false;
      const int b = other_block[size_t(i)];
      if (b < 0) continue;
      // One pixel a sample and whole blocks of channels: both layouts hold the same bytes.
      const int blk = std::max(b, planned_layout(i));
      if (n.shape.plane() == 1 && n.shape.c % blk == 0) {
        n.other = b ? n.out.blocked_view(b) : n.out.plain_view();
        if (n.needs_grad) n.other_grad = b ? n.grad.blocked_view(b) : n.grad.plain_view();
      } else {
        n.other = Tensor<T>::empty(n.shape.with_batch(batch), device_, b);
        if (n.needs_grad) n.other_grad = Tensor<T>::empty(n.shape.with_batch(batch), device_, b);
        n.other_is_copy = true;
      }
    }
  }

  /// Argument lists that point at the buffers above, so a step builds none of them.
  void build_argument_lists() {
    for (int i : order_) {
      Node& n = nodes_[size_t(i)];
      n.forward_inputs.clear();
      n.reads_other.assign(n.in_idx.size(), false);
      BackwardArgs<T>& a = n.backward_args;
      a = BackwardArgs<T>();
      a.y = &n.out;
      a.dy = n.layer->is_loss() ? nullptr : &n.grad;
      for (size_t k = 0; k < n.in_idx.size(); ++k) {
        Node& s = nodes_[size_t(n.in_idx[k])];
        const bool other = layouts_.input[size_t(i)][k] != planned_layout(n.in_idx[k]);
        n.reads_other[k] = other;
        n.forward_inputs.push_back(other ? &s.other : &s.out);
        a.x.push_back(other ? &s.other : &s.out);
        a.dx.push_back(s.needs_grad ? (other ? &s.other_grad : &s.grad) : nullptr);
        a.dx_mode.push_back(GradWrite::overwrite);
      }
    }
  }

  /// After node `i` ran: its converted copy, if it has one, from its output.
  void refresh_other(Node& n) {
    if (n.other_is_copy) copy_gradient(n.out, n.other);
  }
  /// Before node `i`'s backward pass: the gradient its consumers left in its converted copy, added
  /// to (or written over) its own.
  void fold_other_gradient(int i) {
    Node& n = nodes_[size_t(i)];
    if (!other_grad_written_[size_t(i)]) return;
    copy_gradient(n.other_grad, n.grad, grad_written_[size_t(i)] ? GradWrite::accumulate : GradWrite::overwrite);
    grad_written_[size_t(i)] = true;
    other_grad_written_[size_t(i)] = false;
  }
  /// A node's output as the caller sees it: plain.
  const Tensor<T>& plain_output(const Node& n) const { return n.out.blocked() ? n.other : n.out; }
  /// `t` itself when plain, else converted into `copy` (kept for the next call).
  const Tensor<T>& plain_copy(const Tensor<T>& t, Tensor<T>& copy) const {
    if (!t.blocked() || t.empty()) return t;
    if (t.same_as_plain()) {
      copy = t.plain_view();
      return copy;
    }
    if (copy.shape() != t.shape() || copy.blocked() || copy.shares_storage_with(t)) copy = Tensor<T>::empty(t.shape(), device_);
    copy_gradient(t, copy);
    return copy;
  }

  /// Re-plans backward when a learning-rate factor changed since the last plan (factors may be
  /// set on the parameters directly).
  /// Runs on every forward pass, so it reads the parameter lists kept since build() and a reused
  /// flag vector: it allocates nothing.
  void refresh_plan() {
    trainable_now_.resize(order_.size());
    for (size_t k = 0; k < order_.size(); ++k) {
      bool t = false;
      for (const Param<T>* p : nodes_[size_t(order_[k])].params) t = t || p->trainable();
      trainable_now_[k] = t;
    }
    if (trainable_now_ != planned_trainable_) {
      plan_backward();
      planned_trainable_ = trainable_now_;
    }
  }

  void run_forward(const Tensor<T>& images, Mode mode, bool with_loss) {
    build();
    refresh_plan();
    Node& in = nodes_[size_t(input_node_)];
    static_cast<ImageInput<T>&>(*in.layer).check_batch(images);
    EWNET_CHECK_AS(DeviceError, images.device() == device_, "the batch is on ", device_name(images.device()),
                   " but the model is on ", device_name(device_));
    if (batch_ != images.n() || planned_block_ != engine_block()) allocate(images.n());
    nodes_[size_t(input_node_)].forward_inputs.assign(1, &images);
    run_layers(0, mode, with_loss);
  }

  /// The part of convolution i's planned fusion this pass runs: none where a backward pass will
  /// read their separate outputs (training above a frozen base); the batch normalization only with
  /// its running statistics (inference, or frozen) and on the CPU engine, which folds it.
  ConvFusion active_fusion(int i, Mode mode) {
    ConvFusion f = conv_fusion_[size_t(i)];
    const auto no_backward = [&](int j) { return mode == Mode::inference || !nodes_[size_t(j)].runs_backward; };
    if (!inference_fusion_ || !no_backward(i)) return ConvFusion();
    if (f.bn >= 0) {
      auto& bn = static_cast<BatchNorm<T>&>(*nodes_[size_t(f.bn)].layer);
      const bool folds = engine_block() > 0 && no_backward(f.bn) && bn.uses_running_stats(ForwardContext{mode});
      if (!folds) return ConvFusion();  // the ReLU reads the batch norm's output: it cannot run inside either
    }
    if (f.relu >= 0 && !no_backward(f.relu)) f.relu = -1;
    return f;
  }

  /// Runs the layers at positions [first, end) of the execution order, each planned convolution
  /// with the layers it runs inside itself (active_fusion) as one step.
  void run_layers(size_t first, Mode mode, bool with_loss) {
    last_context_ = ForwardContext{mode, iteration_};
    output_gradients_.clear();  // they belonged to the previous pass
    if (mode == Mode::training) ++iteration_;
    fused_last_pass_.assign(nodes_.size(), false);
    ran_inside_.assign(nodes_.size(), false);
    // Auxiliary classifiers run in labelled training passes over the whole model only.
    aux_ran_ = !aux_loss_nodes_.empty() && with_loss && mode == Mode::training && first == 0;
    for (size_t k = first; k < order_.size(); ++k) {
      const int i = order_[k];
      Node& n = nodes_[size_t(i)];
      if (n.layer->is_loss() && !with_loss) continue;
      if (auxiliary_[size_t(i)] && !aux_ran_) continue;
      if (ran_inside_[size_t(i)]) continue;
      const ConvFusion f = active_fusion(i, mode);
      if (f.bn >= 0 || f.relu >= 0) {
        auto& conv = static_cast<Conv2d<T>&>(*n.layer);
        Node& last = nodes_[size_t(f.relu >= 0 ? f.relu : f.bn)];
        if (f.bn >= 0) {
          static_cast<BatchNorm<T>&>(*nodes_[size_t(f.bn)].layer).running_affine(fold_scale_, fold_shift_);
          conv.forward_folded(n.forward_inputs, last.out, fold_scale_, fold_shift_, f.relu >= 0);
          ran_inside_[size_t(f.bn)] = true;
          fused_last_pass_[size_t(f.bn)] = f.relu >= 0;
        } else {
          conv.forward_relu(n.forward_inputs, last.out);
        }
        if (f.relu >= 0) ran_inside_[size_t(f.relu)] = true;
        fused_last_pass_[size_t(i)] = true;
        refresh_other(last);
        continue;
      }
      // Layers keep nothing for a backward pass that will not run through them.
      ForwardContext ctx = last_context_;
      ctx.backward_follows = mode == Mode::training && n.runs_backward;
      n.layer->forward(n.forward_inputs, n.out, ctx);
      refresh_other(n);
    }
    loss_ready_ = with_loss;
  }

  /// Why forward_from(cut) cannot run (empty when it can): a layer after `cut` reads a layer
  /// before it, or something up to `cut` trains. `pos` receives cut's place in the execution order.
  std::string cut_problem(const std::string& cut, size_t& pos) {
    build();
    refresh_plan();
    const int c = find_checked(cut);
    pos = size_t(std::find(order_.begin(), order_.end(), c) - order_.begin());
    std::vector<bool> before(nodes_.size(), false);
    for (size_t k = 0; k < pos; ++k) before[size_t(order_[k])] = true;
    for (size_t k = pos + 1; k < order_.size(); ++k)
      if (!auxiliary_[size_t(order_[k])])  // auxiliary classifiers do not run from a cut
        for (int j : nodes_[size_t(order_[k])].in_idx)
        if (before[size_t(j)])
          return str("layer '", nodes_[size_t(order_[k])].layer->name(), "' after it reads '",
                     nodes_[size_t(j)].layer->name(), "' before it");
    if (nodes_[size_t(c)].runs_backward)
      return "it or a layer before it is trainable, and its gradient would need the layers skipped";
    return "";
  }

  size_t check_cut(const std::string& cut) {
    build();
    refresh_plan();
    const int c = find_checked(cut);
    if (c == checked_cut_) return checked_cut_pos_;  // checked already under the current plan
    size_t pos = 0;
    const std::string problem = cut_problem(cut, pos);
    EWNET_CHECK_AS(GraphError, problem.empty(), "cannot run from '", cut, "': ", problem);
    checked_cut_ = c;
    checked_cut_pos_ = pos;
    return pos;
  }

  void run_from(const std::string& cut, const Tensor<T>& activations, Mode mode, bool with_loss) {
    const size_t pos = check_cut(cut);
    Node& c = nodes_[size_t(order_[pos])];
    EWNET_CHECK_AS(ShapeError, activations.shape() == c.shape.with_batch(activations.n()), "forward_from '", cut,
                   "': activations of shape ", activations.shape(), " for a layer whose output is ",
                   c.shape.hwc(), " a sample");
    EWNET_CHECK_AS(DeviceError, activations.device() == device_, "the activations are on ",
                   device_name(activations.device()), " but the model is on ", device_name(device_));
    if (batch_ != activations.n() || planned_block_ != engine_block()) allocate(activations.n());
    copy_gradient(activations, c.out);
    refresh_other(c);
    run_layers(pos + 1, mode, with_loss);
  }

  std::uint64_t seed_;
  std::vector<Node> nodes_;
  std::vector<int> order_;
  std::vector<bool> grad_written_;
  std::vector<bool> other_grad_written_;  // per node: a consumer wrote its converted copy's gradient
  LayoutPlan layouts_;                    // the layout of every activation (plan_layouts)
  int planned_block_ = -1;                // the engine's block the buffers were laid out for
  std::vector<bool> planned_trainable_, trainable_now_;
  std::vector<Param<T>*> param_list_;  // every parameter in execution order, kept since build()
  int checked_cut_ = -1;               // the cut forward_from last accepted, valid until the plan changes
  size_t checked_cut_pos_ = 0;
  int input_node_ = -1, loss_node_ = -1, prediction_node_ = -1, main_sink_ = -1;
  std::vector<int> aux_loss_nodes_;    // the auxiliary classifiers' loss layers
  std::vector<bool> auxiliary_;        // per node: serves an auxiliary classifier only
  bool aux_ran_ = false;               // the last pass ran the auxiliary classifiers
  std::vector<ConvFusion> conv_fusion_;  // per node: what a convolution may run inside itself
  std::vector<int> fused_into_;          // per node: the convolution a batch norm or ReLU may run inside, or -1
  std::vector<bool> fused_last_pass_;    // per node: its output was not kept by the last pass (fused)
  std::vector<bool> ran_inside_;         // per node: the last pass ran it inside a convolution
  std::vector<T> fold_scale_, fold_shift_;  // a folded batch norm's affine map, reused
  bool inference_fusion_ = true;
  bool built_ = false;
  bool loss_ready_ = false;
  int batch_ = -1;
  Device device_ = Device::cpu;
  Precision precision_ = Precision::fp32;
  std::uint64_t iteration_ = 0;
  ForwardContext last_context_;
  std::vector<std::pair<int, Tensor<T>>> output_gradients_;  // add_output_gradient's, for the next backward
};

}  // namespace ewnet
