// ewnet/data/decode_png.hpp: PNG through libspng (Debian's libspng-dev), bounded.
//
// libspng inflates the image data a row at a time into the caller's buffer and stops at the last
// row, so the memory it takes is set by the header, whatever the compressed stream holds: a 1x1
// PNG whose data inflates to 2 GiB costs a row (stb_image inflated the whole stream first), and
// the data past the last row is never inflated. Its limits are set besides: the side
// (kMaxImageSide), and the memory kept for ancillary chunks, decompressed text and ICC profiles
// included, each and all together (kPngChunkCacheBytes). CRCs and zlib's checksum are checked: a corrupt file is an error, never
// an image with garbage rows.
// An image with alpha (an alpha channel or a tRNS colour) is decoded to RGBA and composited onto
// white; any other to RGB directly. 16-bit samples are reduced to 8 bits by libspng; gamma and
// colour profiles are not applied (as torchvision's loaders do not).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <spng.h>

#include <ewnet/data/image_format.hpp>
#include <ewnet/data/pixels.hpp>
#include <ewnet/error.hpp>

namespace ewnet::data::detail {

/// Decodes a PNG whose header `info` was read by probe_image.
inline Image decode_png(const std::uint8_t* bytes, std::size_t size, const std::string& what, const ImageInfo& info) {
  std::unique_ptr<spng_ctx, void (*)(spng_ctx*)> ctx(spng_ctx_new(0), spng_ctx_free);
  if (!ctx) throw std::bad_alloc();
  auto check = [&](int r, const char* step) {
    if (r != 0) throw IoError(str(what, ": corrupt or unreadable PNG (", step, ": ", spng_strerror(r), ")"));
  };
  check(spng_set_image_limits(ctx.get(), kMaxImageSide, kMaxImageSide), "limits");
  check(spng_set_chunk_limits(ctx.get(), kPngChunkCacheBytes, kPngChunkCacheBytes), "limits");
  check(spng_set_png_buffer(ctx.get(), bytes, size), "input");
  spng_ihdr ihdr{};
  check(spng_get_ihdr(ctx.get(), &ihdr), "header");
  EWNET_CHECK_AS(IoError, int(ihdr.width) == info.width && int(ihdr.height) == info.height, what,
                 ": corrupt PNG (the decoder reads another header than the file's first)");
  const int format = info.alpha ? SPNG_FMT_RGBA8 : SPNG_FMT_RGB8;
  std::size_t length = 0;
  check(spng_decoded_image_size(ctx.get(), format, &length), "size");
  const std::size_t count = std::size_t(info.width) * std::size_t(info.height);
  EWNET_CHECK_AS(IoError, length == count * (info.alpha ? 4 : 3), what, ": PNG decoder reports ", length,
                 " bytes for ", info.width, "x", info.height);
  Image img;
  img.width = info.width;
  img.height = info.height;
  if (!info.alpha) {
    img.rgb.resize(length);
    check(spng_decode_image(ctx.get(), img.rgb.data(), length, format, 0), "image data");
    return img;
  }
  std::vector<std::uint8_t> rgba(length);
  check(spng_decode_image(ctx.get(), rgba.data(), length, format, SPNG_DECODE_TRNS), "image data");
  img.rgb.resize(count * 3);
  samples_to_rgb(rgba.data(), 4, count, img.rgb.data());
  return img;
}

}  // namespace ewnet::data::detail
