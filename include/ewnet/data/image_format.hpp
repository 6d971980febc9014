// ewnet/data/image_format.hpp: what an encoded image is and what decoding it will cost, read from
// its bytes before any decoder runs.
//
// The format is decided by the content's signature, never by the file's name: crawled data sets
// hold WebP files named .jpg and PNGs named .jpeg. The header of each format gives the size, the
// channels and what the decoder will need at its peak (decode_memory_estimate); every image is
// checked against the side, pixel and memory limits from that estimate before a decoder allocates
// anything. The estimates are upper bounds of what ewnet's decoders really allocate
// (tests/data/decoders.cpp measures each decoder's peak against them):
//   PNG   (libspng)        the RGB result, an RGBA buffer when the image has alpha, two rows of
//                          raw samples and zlib's window; the chunk cache is capped (kPngChunkCacheBytes)
//   JPEG  (libjpeg-turbo)  for a progressive or multi-scan file the whole image's DCT coefficients
//                          (2 bytes a coefficient, 64 a block, every component at its sampling),
//                          row buffers, the RGB result, and a second RGB image when EXIF turns it
//   WebP  (libwebp)        a lossless file's 32-bit ARGB image (a lossy file's alpha plane is
//                          decoded through one too), an RGBA buffer for alpha, the RGB result
//   other (stb_image)      stb's buffer of the stored samples (1, 2 or 4 bytes a channel), its
//                          conversion to 8 bits, the format's working memory, the RGB result
#pragma once

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <stb_image.h>

#include <ewnet/error.hpp>

namespace ewnet::data {

/// Largest side and pixel count ewnet decodes. 16384 covers any camera.
inline constexpr int kMaxImageSide = 16384;
inline constexpr long long kMaxImagePixels = 100'000'000;
/// The most memory one image may cost to decode (decode_memory_estimate), checked from the header
/// before anything is allocated: a 50-megapixel 8-bit photo (about 450 MB) passes; a 100-megapixel
/// PNG with alpha or a large 32-bit-float HDR does not.
inline constexpr std::size_t kMaxDecodeBytes = std::size_t(512) << 20;
/// The largest image file ewnet reads (checked before the file is read whole).
inline constexpr std::uintmax_t kMaxImageFileBytes = std::uintmax_t(256) << 20;
/// The most scans a JPEG may have. A progressive photo has about 10 (libjpeg's own progression for
/// three components has 10; encoders that tune it stay under 64); each scan is a pass over the
/// whole image's coefficients, so a file that repeats one scan 20,000 times costs minutes.
inline constexpr int kMaxJpegScans = 100;
/// Memory libspng may hold for ancillary chunks (text, ICC profiles, EXIF), decompressed ones included.
inline constexpr std::size_t kPngChunkCacheBytes = std::size_t(8) << 20;

enum class ImageFormat { png, jpeg, webp, gif, bmp, stb_other, unknown };

inline const char* image_format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::png: return "PNG";
    case ImageFormat::jpeg: return "JPEG";
    case ImageFormat::webp: return "WebP";
    case ImageFormat::gif: return "GIF";
    case ImageFormat::bmp: return "BMP";
    case ImageFormat::stb_other: return "image";
    case ImageFormat::unknown: return "unknown";
  }
  return "unknown";
}

/// The format by its signature. TGA has none: anything unrecognised is handed to stb_image, which
/// tries TGA last.
inline ImageFormat image_format(const std::uint8_t* p, std::size_t n) {
  auto starts = [&](const char* sig, std::size_t len) { return n >= len && std::memcmp(p, sig, len) == 0; };
  if (starts("\x89PNG\r\n\x1a\n", 8)) return ImageFormat::png;
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return ImageFormat::jpeg;
  if (n >= 12 && std::memcmp(p, "RIFF", 4) == 0 && std::memcmp(p + 8, "WEBP", 4) == 0) return ImageFormat::webp;
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return ImageFormat::gif;
  if (starts("BM", 2)) return ImageFormat::bmp;
  if (n == 0) return ImageFormat::unknown;
  return ImageFormat::stb_other;
}

/// What the header of an encoded image says, read without decoding the pixels.
struct ImageInfo {
  int width = 0, height = 0;
  int channels = 0;  // as stored: 1 grey, 2 grey+alpha, 3 RGB (or YCbCr), 4 RGBA (or CMYK)
  ImageFormat format = ImageFormat::unknown;
  int bytes_per_sample = 1;  // 2 for 16-bit PNG/PSD/PNM, 4 for float HDR
  bool alpha = false;        // PNG and WebP: an alpha channel or a transparent colour
  // JPEG: the components' sampling factors, and whether the coefficients of the whole image are
  // kept (progressive, or a first scan that does not hold every component).
  int jpeg_h[4] = {1, 1, 1, 1}, jpeg_v[4] = {1, 1, 1, 1};
  bool jpeg_buffered = false;
  bool webp_lossless = false, webp_animated = false;
};

namespace detail {

inline std::uint32_t be16(const std::uint8_t* p) { return std::uint32_t(p[0]) << 8 | p[1]; }
inline std::uint32_t be32(const std::uint8_t* p) { return be16(p) << 16 | be16(p + 2); }
inline std::uint32_t le16(const std::uint8_t* p) { return std::uint32_t(p[1]) << 8 | p[0]; }
inline std::uint32_t le24(const std::uint8_t* p) { return std::uint32_t(p[2]) << 16 | le16(p); }
inline std::uint32_t le32(const std::uint8_t* p) { return le16(p + 2) << 16 | le16(p); }

inline void check_dimensions(long long w, long long h, const std::string& what) {
  EWNET_CHECK_AS(IoError, w > 0 && h > 0, what, ": image has no pixels (", w, "x", h, ")");
  EWNET_CHECK_AS(IoError, w <= kMaxImageSide && h <= kMaxImageSide && w * h <= kMaxImagePixels, what,
                 ": image dimensions ", w, "x", h, " exceed the limit (", kMaxImageSide, " per side, ",
                 kMaxImagePixels / 1'000'000, " megapixels)");
}

// PNG: the IHDR chunk comes first (width, height, bit depth, colour type, ..., interlace); a tRNS
// chunk before the first IDAT adds alpha.
inline bool png_info(const std::uint8_t* p, std::size_t n, ImageInfo& info) {
  if (n < 33 || std::memcmp(p + 12, "IHDR", 4) != 0) return false;
  info.width = int(std::min<std::uint32_t>(be32(p + 16), INT_MAX));
  info.height = int(std::min<std::uint32_t>(be32(p + 20), INT_MAX));
  const int depth = p[24], type = p[25];
  static const int channels_of_type[7] = {1, 0, 3, 3, 2, 0, 4};
  if (type > 6 || channels_of_type[type] == 0) return false;
  info.channels = channels_of_type[type];
  info.bytes_per_sample = depth == 16 ? 2 : 1;
  info.alpha = type == 4 || type == 6;
  for (std::size_t i = 8; i + 8 <= n;) {
    const std::uint32_t len = be32(p + i);
    if (std::memcmp(p + i + 4, "IDAT", 4) == 0) break;
    if (std::memcmp(p + i + 4, "tRNS", 4) == 0) info.alpha = true;
    if (len > n - i - 8) break;
    i += std::size_t(len) + 12;
  }
  return true;
}

// JPEG: markers up to the frame header (SOF0..SOF15 but DHT C4, JPG C8 and DAC CC) give the size
// and each component's sampling factors; the first start-of-scan says how many components it holds.
inline bool jpeg_info(const std::uint8_t* p, std::size_t n, ImageInfo& info) {
  bool frame = false;
  for (std::size_t i = 2; i + 4 <= n;) {
    if (p[i] != 0xFF) return frame;
    const std::uint8_t m = p[i + 1];
    if (m == 0xFF) {
      ++i;
      continue;
    }
    if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
      i += 2;
      continue;
    }
    const std::size_t len = be16(p + i + 2);
    if (len < 2 || i + 2 + len > n) return frame;
    const std::uint8_t* s = p + i + 4;
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
      if (len < 8) return false;
      info.height = int(be16(s + 1));
      info.width = int(be16(s + 3));
      info.channels = s[5];
      if (info.channels < 1 || info.channels > 4 || len < 8 + 3 * std::size_t(info.channels)) return false;
      for (int c = 0; c < info.channels; ++c) {
        info.jpeg_h[c] = std::max(1, s[6 + 3 * c + 1] >> 4);
        info.jpeg_v[c] = std::max(1, s[6 + 3 * c + 1] & 15);
      }
      // SOF2, 6, 10, 14 are progressive.
      info.jpeg_buffered = (m & 3) == 2;
      frame = true;
    } else if (m == 0xDA) {
      if (frame && len >= 3 && s[0] < info.channels) info.jpeg_buffered = true;
      return frame;
    }
    i += 2 + len;
  }
  return frame;
}

// WebP: a RIFF container holding one VP8 (lossy), VP8L (lossless) or VP8X (extended: alpha,
// animation) chunk first.
inline bool webp_info(const std::uint8_t* p, std::size_t n, ImageInfo& info) {
  if (n < 30) return false;
  const std::uint8_t* c = p + 12;
  info.channels = 3;
  if (std::memcmp(c, "VP8 ", 4) == 0) {
    // frame tag (3 bytes), start code 9D 01 2A, then 14-bit width and height
    if (c[11] != 0x9D || c[12] != 0x01 || c[13] != 0x2A) return false;
    info.width = int(le16(c + 14) & 0x3FFF);
    info.height = int(le16(c + 16) & 0x3FFF);
  } else if (std::memcmp(c, "VP8L", 4) == 0) {
    if (c[8] != 0x2F) return false;
    const std::uint32_t bits = le32(c + 9);
    info.width = int((bits & 0x3FFF) + 1);
    info.height = int(((bits >> 14) & 0x3FFF) + 1);
    info.alpha = (bits >> 28) & 1;
    info.webp_lossless = true;
  } else if (std::memcmp(c, "VP8X", 4) == 0) {
    info.alpha = (c[8] & 0x10) != 0;
    info.webp_animated = (c[8] & 0x02) != 0;
    info.width = int(le24(c + 12) + 1);
    info.height = int(le24(c + 15) + 1);
    // The image chunk after the extended header (and any ICCP) says whether it is lossless; an
    // unknown layout counts as lossless, the costlier kind.
    info.webp_lossless = true;
    for (std::size_t i = 30; i + 8 <= n;) {
      const std::uint32_t len = le32(p + i + 4);
      if (std::memcmp(p + i, "VP8 ", 4) == 0) {
        info.webp_lossless = false;
        break;
      }
      if (std::memcmp(p + i, "VP8L", 4) == 0) break;
      if (len > n - i - 8) break;
      i += 8 + std::size_t(len) + (len & 1);
    }
  } else {
    return false;
  }
  if (info.alpha) info.channels = 4;
  return true;
}

// BMP and GIF dimensions, for a clear size error where stb refuses a large header as "unknown".
inline bool bmp_gif_dimensions(const std::uint8_t* p, std::size_t n, long long& w, long long& h) {
  if (n >= 10 && std::memcmp(p, "GIF8", 4) == 0) {
    w = le16(p + 6);
    h = le16(p + 8);
    return true;
  }
  if (n >= 26 && p[0] == 'B' && p[1] == 'M') {
    w = std::llabs(static_cast<std::int32_t>(le32(p + 18)));
    h = std::llabs(static_cast<std::int32_t>(le32(p + 22)));  // a negative height: rows stored top-down
    return true;
  }
  return false;
}

inline std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r ? std::string(r) : std::string("unknown reason");
}

}  // namespace detail

/// Reads the format, size and channels from the header. Throws IoError naming `what` when the bytes
/// are empty, not an image ewnet reads, too large to hand to a decoder (over 2 GiB), or of
/// dimensions over the limits (then the message gives the dimensions and the limit).
inline ImageInfo probe_image(const std::uint8_t* bytes, std::size_t size, const std::string& what) {
  EWNET_CHECK_AS(IoError, bytes != nullptr && size > 0, what, ": empty input, not an image");
  EWNET_CHECK_AS(IoError, size <= static_cast<std::size_t>(INT_MAX), what, ": ", size,
                 " bytes is too large for an image file");
  ImageInfo info;
  info.format = image_format(bytes, size);
  bool known = false;
  switch (info.format) {
    case ImageFormat::png: known = detail::png_info(bytes, size, info); break;
    case ImageFormat::jpeg: known = detail::jpeg_info(bytes, size, info); break;
    case ImageFormat::webp: known = detail::webp_info(bytes, size, info); break;
    default: {
      if (stbi_info_from_memory(bytes, int(size), &info.width, &info.height, &info.channels)) {
        known = true;
        if (stbi_is_hdr_from_memory(bytes, int(size))) info.bytes_per_sample = 4;
        else if (stbi_is_16_bit_from_memory(bytes, int(size))) info.bytes_per_sample = 2;
        // stb passes a top-down BMP's negative height on as it is.
        if (info.format == ImageFormat::bmp && info.height < 0 && info.height > INT_MIN) info.height = -info.height;
      } else {
        long long w = 0, h = 0;
        if (detail::bmp_gif_dimensions(bytes, size, w, h)) detail::check_dimensions(w, h, what);
        throw IoError(str(what, ": not a readable image (", detail::stb_reason(), ")"));
      }
    }
  }
  EWNET_CHECK_AS(IoError, known, what, ": not a readable image (malformed ", image_format_name(info.format),
                 " header)");
  detail::check_dimensions(info.width, info.height, what);
  return info;
}

/// What decoding the image will allocate at its peak, from its header (see the file comment), the
/// RGB result included; `turned` adds the second RGB image EXIF orientation makes.
inline std::size_t decode_memory_estimate(const ImageInfo& info, bool turned = false) {
  const std::size_t w = std::size_t(info.width), h = std::size_t(info.height), pixels = w * h;
  const std::size_t channels = std::size_t(std::max(1, info.channels));
  const std::size_t rgb = pixels * 3, fixed = std::size_t(1) << 20;  // 1 MiB: decoder state, zlib, tables
  switch (info.format) {
    case ImageFormat::png: {
      const std::size_t row = w * channels * std::size_t(info.bytes_per_sample) + 1;
      return rgb + (info.alpha ? pixels * 4 : 0) + 4 * row + kPngChunkCacheBytes + fixed;
    }
    case ImageFormat::jpeg: {
      int hmax = 1, vmax = 1;
      for (std::size_t c = 0; c < channels && c < 4; ++c) {
        hmax = std::max(hmax, info.jpeg_h[c]);
        vmax = std::max(vmax, info.jpeg_v[c]);
      }
      // A component's blocks: ceil(ceil(W h_i / hmax) / 8) wide, rounded up to a multiple of h_i
      // (libjpeg's padding to whole MCUs), likewise down; 64 coefficients of 2 bytes a block.
      std::size_t coefficients = 0;
      for (std::size_t c = 0; c < channels && c < 4; ++c) {
        const std::size_t hi = std::size_t(info.jpeg_h[c]), vi = std::size_t(info.jpeg_v[c]);
        const std::size_t bw = ((w * hi + hmax - 1) / std::size_t(hmax) + 7) / 8, bh = ((h * vi + vmax - 1) / std::size_t(vmax) + 7) / 8;
        coefficients += (bw + hi - 1) / hi * hi * ((bh + vi - 1) / vi * vi) * 128;
      }
      // Rows: the decoder's sample rows for a row group of every component (up to 4 x 8 vmax rows
      // with its context rows), the upsampler's and the colour converter's; 64 rows a component.
      const std::size_t padded = (w + 8 * std::size_t(hmax) - 1) / (8 * std::size_t(hmax)) * 8 * std::size_t(hmax);
      const std::size_t rows = 64 * channels * padded * std::size_t(vmax);
      return (info.jpeg_buffered ? coefficients : 0) + rows + rgb * (turned ? 2 : 1) + fixed;
    }
    case ImageFormat::webp:
      // A lossy image's alpha plane is itself compressed losslessly, and decoded through the same
      // 32-bit pixels (measured: 8 bytes a pixel at the peak for lossy RGBA).
      return (info.webp_lossless || info.alpha ? pixels * 4 : 0) + (info.alpha ? pixels * 4 : 0) + rgb + 64 * w * 4 +
             fixed;
    case ImageFormat::gif:
      // stb: the stored samples, the working copy, its canvas, background and history (4 bytes a pixel, twice).
      return pixels * channels * 2 + 2 * pixels * 4 + rgb + fixed;
    default: {
      const std::size_t sample = std::size_t(info.bytes_per_sample);
      std::size_t total = pixels * channels * sample;  // stb's buffer
      if (sample > 1) total += pixels * channels;       // converted to 8 bits
      total += pixels * channels * sample;              // the format's working rows and the like
      return total + rgb + fixed;
    }
  }
}

}  // namespace ewnet::data
