// ewnet/data/decode_stb.hpp: the formats stb_image reads that have no library of their own here:
// BMP, GIF (the first frame), TGA, PSD, Radiance HDR, Softimage PIC, PNM.
//
// These are uncompressed or run-length formats whose decoder allocates what the header declares
// (decode_memory_estimate checks it first), so stb_image's lack of limits does no harm there.
// PNG, JPEG and WebP, whose compressed data can cost far more than the header says, go to
// libspng, libjpeg-turbo and libwebp, which bound it. The implementation lives in the compiled
// libstb that ewnet_deps::stb links, so this header only declares and never defines
// STB_IMAGE_IMPLEMENTATION.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <stb_image.h>

#include <ewnet/data/image_format.hpp>
#include <ewnet/data/pixels.hpp>
#include <ewnet/error.hpp>

namespace ewnet::data::detail {

/// Decodes an image of a format stb_image reads, whose header `info` was read by probe_image.
inline Image decode_stb(const std::uint8_t* bytes, std::size_t size, const std::string& what, const ImageInfo& info) {
  int w = 0, h = 0, n = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_memory(bytes, int(size), &w, &h, &n, 0),
                                                   stbi_image_free);
  if (!pixels) throw IoError(str(what, ": corrupt or truncated image (", stb_reason(), ")"));
  EWNET_CHECK_AS(IoError, w == info.width && h == info.height && n >= 1 && n <= 4, what,
                 ": decoder returned an unexpected layout");
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(std::size_t(w) * std::size_t(h) * 3);
  samples_to_rgb(pixels.get(), n, std::size_t(w) * std::size_t(h), img.rgb.data());
  return img;
}

}  // namespace ewnet::data::detail
