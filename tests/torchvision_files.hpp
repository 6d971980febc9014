// A torchvision state_dict as tools/torch_to_safetensors.py writes one, built from an ewnet model's
// tensors without PyTorch, for tests that load torchvision weights.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include <ewnet/graph.hpp>
#include <ewnet/io/safetensors.hpp>

namespace ewnet::test {

inline io::SafeTensor f32(const Tensor<float>& t, const std::vector<int>& dims) {
  io::SafeTensor s;
  s.dtype = "F32";
  s.shape.assign(dims.begin(), dims.end());
  const std::vector<float> v = t.to_vector();
  s.bytes.resize(v.size() * 4);
  std::memcpy(s.bytes.data(), v.data(), s.bytes.size());
  return s;
}

/// A state_dict as torchvision names it, from an ewnet model's tensors (batch norm's scale and
/// offset under weight and bias, a num_batches_tracked per batch norm, aux tensors if asked). Its
/// metadata records nothing: what a converter that records no normalisation wrote.
inline io::SafetensorsFile as_torchvision(Model<float>& m, bool aux) {
  io::SafetensorsFile f;
  for (auto& [layer, p] : m.parameters()) {
    std::string name = p->name == "scale" ? "weight" : p->name == "offset" ? "bias" : p->name;
    f.tensors[layer + "." + name] = f32(p->value, p->dims);
  }
  for (auto& [layer, s] : m.state_tensors()) {
    if (layer == "input") continue;
    f.tensors[layer + "." + s.name] = f32(*s.tensor, s.dims);
    io::SafeTensor count;
    count.dtype = "I64";
    count.bytes.resize(8);
    f.tensors[layer + ".num_batches_tracked"] = count;
  }
  if (aux) f.tensors["aux1.fc2.weight"] = f32(Tensor<float>({1, 2, 1, 1}), {1, 2});
  return f;
}

}  // namespace ewnet::test
