// ewnet/data/decode_webp.hpp: WebP through libwebp (Debian's libwebp-dev).
//
// Still images, lossy or lossless, with or without alpha, decoded into a buffer ewnet allocates
// (libwebp's external-memory mode), so what libwebp allocates itself is its working state: a
// lossless image's (or a lossy image's alpha plane's) 32-bit pixels, a few rows (decode_memory_estimate).
// WebP's sides are at most 16383 by the format. Animations are refused (ewnet reads still images).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <webp/decode.h>

#include <ewnet/data/image_format.hpp>
#include <ewnet/data/pixels.hpp>
#include <ewnet/error.hpp>

namespace ewnet::data::detail {

inline const char* webp_status_text(VP8StatusCode s) {
  switch (s) {
    case VP8_STATUS_OK: return "ok";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated data";
  }
  return "unknown error";
}

/// Decodes a WebP whose header `info` was read by probe_image.
inline Image decode_webp(const std::uint8_t* bytes, std::size_t size, const std::string& what, const ImageInfo& info) {
  EWNET_CHECK_AS(IoError, !info.webp_animated, what, ": an animated WebP (ewnet reads still images)");
  WebPDecoderConfig config;
  EWNET_CHECK_AS(IoError, WebPInitDecoderConfig(&config), what, ": libwebp version mismatch");
  const VP8StatusCode probed = WebPGetFeatures(bytes, size, &config.input);
  EWNET_CHECK_AS(IoError, probed == VP8_STATUS_OK, what, ": corrupt or unreadable WebP (", webp_status_text(probed), ")");
  EWNET_CHECK_AS(IoError, !config.input.has_animation, what, ": an animated WebP (ewnet reads still images)");
  EWNET_CHECK_AS(IoError, config.input.width == info.width && config.input.height == info.height, what,
                 ": corrupt WebP (the decoder reads ", config.input.width, "x", config.input.height, ", the header says ",
                 info.width, "x", info.height, ")");
  const bool alpha = config.input.has_alpha;
  const std::size_t count = std::size_t(info.width) * std::size_t(info.height), channels = alpha ? 4 : 3;
  Image img;
  img.width = info.width;
  img.height = info.height;
  img.rgb.resize(count * 3);
  std::vector<std::uint8_t> rgba(alpha ? count * 4 : 0);
  config.output.colorspace = alpha ? MODE_RGBA : MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = alpha ? rgba.data() : img.rgb.data();
  config.output.u.RGBA.stride = int(std::size_t(info.width) * channels);
  config.output.u.RGBA.size = count * channels;
  config.options.use_threads = 0;
  const VP8StatusCode decoded = WebPDecode(bytes, size, &config);
  WebPFreeDecBuffer(&config.output);  // external memory: frees only libwebp's own state
  EWNET_CHECK_AS(IoError, decoded == VP8_STATUS_OK, what, ": corrupt or unreadable WebP (", webp_status_text(decoded),
                 ")");
  if (alpha) samples_to_rgb(rgba.data(), 4, count, img.rgb.data());
  return img;
}

}  // namespace ewnet::data::detail
