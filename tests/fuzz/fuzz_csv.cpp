// libFuzzer target: split files (data::parse_csv, the RFC 4180 reader read_split_file uses) and
// ewnet-collect's manifest records (collect::csv_split, and csv_join back).
#include <cstddef>
#include <cstdint>
#include <string>

#include <ewnet/data/dataset.hpp>

#include "collect/dataset.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto records = ewnet::data::parse_csv(text, "fuzz.csv");
    for (const auto& [line, fields] : records)
      if (line < 1 || fields.empty()) __builtin_trap();
  } catch (const ewnet::IoError&) {
  }
  const std::string line = text.substr(0, text.find('\n'));
  try {
    const auto fields = ewnet::collect::csv_split(line);
    // A joined record splits back to the same fields.
    if (ewnet::collect::csv_split(ewnet::collect::csv_join(fields)) != fields) __builtin_trap();
  } catch (const ewnet::Error&) {
  }
  return 0;
}
