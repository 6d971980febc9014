// libFuzzer target: image bytes through ewnet's decoder (header checks, the memory estimate, the
// JPEG completeness and EXIF walks, then stb_image and the RGB conversion). Any input must give an
// image of the size it claims or an IoError. (Debian's libstb is a prebuilt library, so coverage
// guides the search through ewnet's code, not inside stb_image.)
#include <cstddef>
#include <cstdint>

#include <ewnet/data/image.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const ewnet::data::Image img = ewnet::data::decode_image(data, size, "fuzz.img");
    if (img.rgb.size() != std::size_t(img.width) * std::size_t(img.height) * 3) __builtin_trap();
  } catch (const ewnet::IoError&) {
  }
  return 0;
}
