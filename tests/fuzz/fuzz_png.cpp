// libFuzzer target: PNG bytes through ewnet's bounded decoder, libspng (the row-by-row inflation, the chunk limits, tRNS and 16-bit conversion). Inputs whose
// signature is not PNG are passed over, so the search stays in the format. Any input must give an
// image of the size it claims or an IoError. (Debian's library is prebuilt: coverage guides the
// search through ewnet's code around it, and its limits are what is tried.)
#include <cstddef>
#include <cstdint>

#include <ewnet/data/image.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (ewnet::data::image_format(data, size) != ewnet::data::ImageFormat::png) return 0;
  try {
    const ewnet::data::Image img = ewnet::data::decode_image(data, size, "fuzz.png");
    if (img.rgb.size() != std::size_t(img.width) * std::size_t(img.height) * 3) __builtin_trap();
  } catch (const ewnet::IoError&) {
  }
  return 0;
}
