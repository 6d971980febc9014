// libFuzzer target: image bytes of any format through ewnet's decoder (the signature dispatch, the
// header probes and memory estimates, then libspng, libjpeg-turbo, libwebp or stb_image and the RGB
// conversion; fuzz_png, fuzz_jpeg and fuzz_webp stay inside one format each). Any input must give
// an image of the size it claims or an IoError. (The decoders are prebuilt Debian libraries, so
// coverage guides the search through ewnet's code, not inside them.)
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
