// ewnet/blocks/inception.hpp: adds an inception module (GoogLeNet's, with dimension reductions),
// optionally wrapped in a residual connection.
//
//              +-> 1x1 conv -> relu ------------------------------+
//              +-> 1x1 conv (3x3 reduce) -> relu -> 3x3 conv -> relu +
//   input -----+-> 1x1 conv (5x5 reduce) -> relu -> 5x5 conv -> relu +-> depth concat [-> add -> relu]
//              +-> 3x3 max pool (stride 1) -> 1x1 conv (projection) -> relu
//              +-> (residual) identity, or 1x1 conv projection when channel counts differ ----^
// Each branch's last ReLU writes straight into its channel slice of the concatenation.
#pragma once

#include <memory>
#include <string>

#include <ewnet/graph.hpp>
#include <ewnet/layers/add.hpp>
#include <ewnet/layers/concat.hpp>
#include <ewnet/layers/conv2d.hpp>
#include <ewnet/layers/pooling.hpp>
#include <ewnet/layers/relu.hpp>

namespace ewnet {

struct InceptionFilters {
  int conv1x1 = 64;
  int reduce3x3 = 96, conv3x3 = 128;
  int reduce5x5 = 16, conv5x5 = 32;
  int pool_proj = 32;
  int outputs() const { return conv1x1 + conv3x3 + conv5x5 + pool_proj; }
};

enum class Residual { none, identity_or_projection };

/// Adds the module's layers named "<prefix>-..." fed by layer `input`, and returns the name of
/// its output layer ("<prefix>-output" concat, or "<prefix>-residual_relu" with a residual).
template <class T>
std::string add_inception(Model<T>& m, const std::string& prefix, const std::string& input,
                          const InceptionFilters& f, Residual residual = Residual::none) {
  auto conv = [&](const std::string& name, const std::string& from, int filters, int k) {
    Conv2dOptions o;
    o.filters = filters;
    o.kernel_h = o.kernel_w = k;
    o.same = true;
    m.add(std::make_unique<Conv2d<T>>(prefix + "-" + name, o), from);
    m.add(std::make_unique<Relu<T>>(prefix + "-relu_" + name));
    return prefix + "-relu_" + name;
  };
  const std::string b1 = conv("1x1", input, f.conv1x1, 1);
  const std::string r3 = conv("3x3_reduce", input, f.reduce3x3, 1);
  const std::string b3 = conv("3x3", r3, f.conv3x3, 3);
  const std::string r5 = conv("5x5_reduce", input, f.reduce5x5, 1);
  const std::string b5 = conv("5x5", r5, f.conv5x5, 5);
  m.add(std::make_unique<MaxPool<T>>(prefix + "-pool", PoolOptions{3, 1, 1}), input);
  const std::string bp = conv("pool_proj", prefix + "-pool", f.pool_proj, 1);
  const std::string out = prefix + "-output";
  m.add(std::make_unique<Concat<T>>(out), {b1, b3, b5, bp});
  if (residual == Residual::none) return out;

  // Identity when the module keeps the channel count, else a 1x1 projection of the input.
  const int input_channels = m.output_shape(input).c;
  std::string shortcut = input;
  if (input_channels != f.outputs()) {
    Conv2dOptions o;
    o.filters = f.outputs();
    o.kernel_h = o.kernel_w = 1;
    m.add(std::make_unique<Conv2d<T>>(prefix + "-shortcut", o), input);
    shortcut = prefix + "-shortcut";
  }
  m.add(std::make_unique<Add<T>>(prefix + "-residual_add"), {out, shortcut});
  m.add(std::make_unique<Relu<T>>(prefix + "-residual_relu"));
  return prefix + "-residual_relu";
}

}  // namespace ewnet
