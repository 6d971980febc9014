// ewnet/memory.hpp: what running a model will take, estimated before the first batch is
// allocated, and what the machine has.
//
// A model allocates its activations at the first forward pass for a batch size (graph.hpp): every
// layer's output, and a gradient beside each output that needs one (any layer with trainable
// parameters before it, in inference too: Grad-CAM uses them). So a batch of N costs
//   N (2 sum_layers |output| + |input|) sizeof(T)
// plus each CPU thread's im2col scratch for the largest convolution (C kh kw Ho Wo values). A
// checkpoint of a few megabytes can declare an input of 2048x2048, whose activations take
// gigabytes for one image: programs check this estimate against the memory available first.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include <unistd.h>

#include <ewnet/graph.hpp>

namespace ewnet {

/// Memory this process may still take: MemAvailable from /proc/meminfo, else the physical memory.
inline std::uint64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  std::uint64_t kib = 0;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib << 10;
  return std::uint64_t(::sysconf(_SC_PHYS_PAGES)) * std::uint64_t(::sysconf(_SC_PAGESIZE));
}

/// "1.5 GiB": a byte count for messages.
inline std::string gib_text(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", double(bytes) / double(std::uint64_t(1) << 30));
  return text;
}

struct ModelMemory {
  std::uint64_t per_image = 0;  // activations, their gradients and the input, for one image
  std::uint64_t scratch = 0;    // the CPU threads' im2col buffers, whatever the batch
  std::uint64_t batch(std::uint64_t n) const { return n * per_image + scratch; }
};

/// The estimate of the file comment for `model` (built; no batch needs to have run).
template <class T>
ModelMemory model_memory(Model<T>& model) {
  ModelMemory m;
  std::uint64_t values = 0, col = 0;
  for (Layer<T>* l : model.layers()) {
    const Shape out = model.output_shape(l->name());
    values += 2 * std::uint64_t(out.sample_size());
    if (l->type() != "conv2d") continue;
    for (Param<T>* p : l->params()) {
      if (p->name != "weight" || p->dims.size() != 4) continue;
      // C kh kw per output pixel
      col = std::max(col, std::uint64_t(p->dims[1]) * std::uint64_t(p->dims[2]) * std::uint64_t(p->dims[3]) *
                              std::uint64_t(out.h) * std::uint64_t(out.w));
    }
  }
  values += std::uint64_t(model.input_shape().sample_size());
  m.per_image = values * sizeof(T);
  m.scratch = col * sizeof(T) * std::max(1u, std::thread::hardware_concurrency());
  return m;
}

}  // namespace ewnet
