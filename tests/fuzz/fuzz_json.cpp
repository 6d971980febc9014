// libFuzzer target: the JSON parser. Whatever parses must write back to text that parses to the
// same text again; anything else must be an IoError.
#include <cstddef>
#include <cstdint>
#include <string>

#include <ewnet/json.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const ewnet::json::Value v = ewnet::json::parse(text, "fuzz.json");
    const std::string once = v.dump(), pretty = v.dump(2);
    if (ewnet::json::parse(once, "again").dump() != once) __builtin_trap();
    if (ewnet::json::parse(pretty, "pretty").dump() != once) __builtin_trap();
  } catch (const ewnet::IoError&) {
  }
  return 0;
}
