// libFuzzer target: a checkpoint's architecture JSON to a model (model_from_architecture), with the
// parameter budget a small checkpoint file would give. Any input must give a model or an IoError.
#include <cstddef>
#include <cstdint>
#include <string>

#include <ewnet/io/checkpoint.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const ewnet::json::Value arch = ewnet::json::parse(text, "fuzz (architecture)");
    ewnet::Model<float> m = ewnet::model_from_architecture<float>(arch, "fuzz.safetensors", 1u << 20);
    (void)m.classes();
  } catch (const ewnet::IoError&) {
  }
  return 0;
}
