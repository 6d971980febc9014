// libFuzzer target: safetensors bytes through io::parse_safetensors (what read_safetensors runs on
// a file's contents). Any input must give a SafetensorsFile or an IoError, nothing else.
#include <cstddef>
#include <cstdint>

#include <ewnet/io/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const ewnet::io::SafetensorsFile f = ewnet::io::parse_safetensors(data, size, "fuzz.safetensors");
    for (const auto& [name, t] : f.tensors)
      if (t.bytes.size() != t.elements() * ewnet::io::dtype_size(t.dtype)) __builtin_trap();
  } catch (const ewnet::IoError&) {
  }
  return 0;
}
