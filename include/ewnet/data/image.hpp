// ewnet/data/image.hpp: decoding, resizing and writing 8-bit RGB images.
//
// Decoding goes through stb_image (JPEG, PNG, BMP, GIF, TGA, PSD, HDR, PIC, PNM). The
// implementation lives in the compiled libstb that ewnet_deps::stb links, so this header only
// declares and never defines STB_IMAGE_IMPLEMENTATION. Every image ewnet reads is checked before
// it is decoded: a downloaded file or a data set on disk can be empty, truncated, not an image at
// all, or claim dimensions that would allocate gigabytes.
#pragma once

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>

#include <ewnet/error.hpp>

namespace ewnet::data {

/// An 8-bit RGB image, interleaved (R, G, B per pixel), rows top to bottom.
struct Image {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;  // width * height * 3 bytes
};

/// What the header of an encoded image says, read without decoding the pixels.
struct ImageInfo {
  int width = 0, height = 0;
  int channels = 0;  // as stored: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
};

/// Largest side and pixel count ewnet decodes. 16384 covers any camera; 100 megapixels of RGB
/// is 300 MB, the most a single image may cost before it is refused.
inline constexpr int kMaxImageSide = 16384;
inline constexpr long long kMaxImagePixels = 100'000'000;

namespace detail {

// stb_image accepts a JPEG that stops in the middle of its scan data and fills the missing part
// with grey, so a truncated download would pass as an image. A complete JPEG has an end-of-image
// marker (FF D9) after its first start-of-scan (FF DA). Entropy-coded data stuffs every FF byte
// as FF 00, so FF D9 cannot occur inside the scan by accident; markers before the scan (an EXIF
// thumbnail has its own FF D9) are skipped by walking the segment lengths.
inline bool jpeg_is_complete(const std::uint8_t* p, std::size_t n) {
  std::size_t i = 2;  // after SOI (FF D8)
  while (i + 4 <= n) {
    if (p[i] != 0xFF) return false;
    const std::uint8_t marker = p[i + 1];
    if (marker == 0xFF) {  // fill byte before a marker
      ++i;
      continue;
    }
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      i += 2;  // markers without a length field
      continue;
    }
    const std::size_t length = (std::size_t{p[i + 2]} << 8) | p[i + 3];
    if (length < 2) return false;
    if (marker == 0xDA) {
      for (std::size_t j = i + 2 + length; j + 1 < n; ++j)
        if (p[j] == 0xFF && p[j + 1] == 0xD9) return true;
      return false;
    }
    i += 2 + length;
  }
  return false;
}

// Reads the dimensions straight from a PNG, JPEG, GIF or BMP header. stb_image refuses images
// over 1 GiB of pixels with a generic "unknown image type", so the size limit is checked here
// first to say what is actually wrong with a decompression bomb.
inline bool header_dimensions(const std::uint8_t* p, std::size_t n, long long& w, long long& h) {
  auto be16 = [&](std::size_t i) { return (static_cast<long long>(p[i]) << 8) | p[i + 1]; };
  auto be32 = [&](std::size_t i) { return (be16(i) << 16) | be16(i + 2); };
  auto le16 = [&](std::size_t i) { return (static_cast<long long>(p[i + 1]) << 8) | p[i]; };
  auto le32s = [&](std::size_t i) {
    return static_cast<long long>(static_cast<std::int32_t>(static_cast<std::uint32_t>((le16(i + 2) << 16) | le16(i))));
  };
  if (n >= 24 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0 && std::memcmp(p + 12, "IHDR", 4) == 0) {
    w = be32(16);
    h = be32(20);
    return true;
  }
  if (n >= 10 && std::memcmp(p, "GIF8", 4) == 0) {
    w = le16(6);
    h = le16(8);
    return true;
  }
  if (n >= 26 && p[0] == 'B' && p[1] == 'M') {
    w = le32s(18);
    h = le32s(22);
    if (w < 0) w = -w;
    if (h < 0) h = -h;  // a negative height means rows stored top-down
    return true;
  }
  if (n >= 4 && p[0] == 0xFF && p[1] == 0xD8) {
    for (std::size_t i = 2; i + 9 <= n;) {
      if (p[i] != 0xFF) return false;
      const std::uint8_t m = p[i + 1];
      if (m == 0xFF) {
        ++i;
        continue;
      }
      // SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
      if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
        h = be16(i + 5);
        w = be16(i + 7);
        return true;
      }
      if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
        i += 2;
        continue;
      }
      if (m == 0xDA) return false;
      i += 2 + static_cast<std::size_t>(be16(i + 2));
    }
  }
  return false;
}

inline void check_dimensions(long long w, long long h, const std::string& what) {
  EWNET_CHECK_AS(IoError, w > 0 && h > 0, what, ": image has no pixels (", w, "x", h, ")");
  EWNET_CHECK_AS(IoError, w <= kMaxImageSide && h <= kMaxImageSide && w * h <= kMaxImagePixels, what,
                 ": image dimensions ", w, "x", h, " exceed the limit (", kMaxImageSide, " per side, ",
                 kMaxImagePixels / 1'000'000, " megapixels)");
}

inline bool is_jpeg(const std::uint8_t* p, std::size_t n) {
  return n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF;
}

inline std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r ? std::string(r) : std::string("unknown reason");
}

}  // namespace detail

/// Reads the dimensions from the header. Throws IoError naming `what` when the bytes are empty,
/// not a format stb_image knows, too large to hand to stb (over 2 GiB), or a header stb refuses
/// because of its size (then the message gives the dimensions and the limit).
inline ImageInfo probe_image(const std::uint8_t* bytes, std::size_t size, const std::string& what) {
  EWNET_CHECK_AS(IoError, bytes != nullptr && size > 0, what, ": empty input, not an image");
  EWNET_CHECK_AS(IoError, size <= static_cast<std::size_t>(INT_MAX), what, ": ", size,
                 " bytes is too large for an image file");
  ImageInfo info;
  if (!stbi_info_from_memory(bytes, static_cast<int>(size), &info.width, &info.height, &info.channels)) {
    long long w = 0, h = 0;
    if (detail::header_dimensions(bytes, size, w, h)) detail::check_dimensions(w, h, what);
    throw IoError(str(what, ": not a readable image (", detail::stb_reason(), ")"));
  }
  return info;
}

/// Decodes an encoded image (any format stb_image reads) to 8-bit RGB. Grey is copied to all three
/// channels; alpha is composited onto white, the background a photographed device sits on when its
/// cut-out is shown. Throws IoError naming `what` and the reason when the input is empty, not an
/// image, corrupt or truncated, or larger than kMaxImageSide / kMaxImagePixels (checked from the
/// header before any pixel memory is allocated).
inline Image decode_image(const std::uint8_t* bytes, std::size_t size, const std::string& what) {
  const ImageInfo info = probe_image(bytes, size, what);
  detail::check_dimensions(info.width, info.height, what);
  if (detail::is_jpeg(bytes, size))
    EWNET_CHECK_AS(IoError, detail::jpeg_is_complete(bytes, size), what,
                   ": truncated JPEG (no end-of-image marker after the image data)");

  int w = 0, h = 0, n = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes, static_cast<int>(size), &w, &h, &n, 0), stbi_image_free);
  if (!pixels) throw IoError(str(what, ": corrupt or truncated image (", detail::stb_reason(), ")"));
  EWNET_CHECK_AS(IoError, w == info.width && h == info.height && n >= 1 && n <= 4, what,
                 ": decoder returned an unexpected layout");

  Image img;
  img.width = w;
  img.height = h;
  const std::size_t count = static_cast<std::size_t>(w) * static_cast<std::size_t>(h);
  img.rgb.resize(count * 3);
  const stbi_uc* src = pixels.get();
  std::uint8_t* dst = img.rgb.data();
  // Compositing onto white: out = (c * a + 255 * (255 - a)) / 255, rounded.
  auto over_white = [](unsigned c, unsigned a) {
    return static_cast<std::uint8_t>((c * a + 255u * (255u - a) + 127u) / 255u);
  };
  for (std::size_t i = 0; i < count; ++i, dst += 3) {
    switch (n) {
      case 1:
        dst[0] = dst[1] = dst[2] = src[i];
        break;
      case 2:
        dst[0] = dst[1] = dst[2] = over_white(src[2 * i], src[2 * i + 1]);
        break;
      case 3:
        dst[0] = src[3 * i];
        dst[1] = src[3 * i + 1];
        dst[2] = src[3 * i + 2];
        break;
      default:
        for (int c = 0; c < 3; ++c) dst[c] = over_white(src[4 * i + c], src[4 * i + 3]);
        break;
    }
  }
  return img;
}

inline Image decode_image(const std::vector<std::uint8_t>& bytes, const std::string& what) {
  return decode_image(bytes.data(), bytes.size(), what);
}

/// Reads a whole file into memory. Throws IoError naming the path when it cannot be opened or read.
inline std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EWNET_CHECK_AS(IoError, in.good(), path, ": cannot open for reading");
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EWNET_CHECK_AS(IoError, !in.bad(), path, ": read error");
  return bytes;
}

/// Reads and decodes an image file; errors name the path.
inline Image load_image(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), path);
}

/// Resizes to width x height. Uses stb_image_resize, whose filters integrate over the source
/// footprint of each output pixel (Mitchell when shrinking, Catmull-Rom when enlarging), so a
/// large downscale averages rather than aliases.
inline Image resize_bilinear(const Image& src, int width, int height) {
  EWNET_CHECK_AS(ShapeError, src.width > 0 && src.height > 0 &&
                     src.rgb.size() == static_cast<std::size_t>(src.width) * src.height * 3,
                 "resize: source image is empty or its pixel buffer does not match ", src.width, "x",
                 src.height);
  EWNET_CHECK_AS(ShapeError, width > 0 && height > 0 && width <= kMaxImageSide && height <= kMaxImageSide,
                 "resize: target size ", width, "x", height, " is out of range");
  Image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(static_cast<std::size_t>(width) * height * 3);
  if (width == src.width && height == src.height) {
    out.rgb = src.rgb;
    return out;
  }
  if (!stbir_resize_uint8(src.rgb.data(), src.width, src.height, src.width * 3, out.rgb.data(), width,
                          height, width * 3, 3))
    throw Error(str("resize: stb_image_resize failed for ", src.width, "x", src.height, " -> ", width,
                    "x", height));
  return out;
}

/// Writes a PNG. Throws IoError naming the path when the image is empty or the file cannot be written.
inline void write_png(const std::string& path, const Image& img) {
  EWNET_CHECK_AS(IoError, img.width > 0 && img.height > 0 &&
                     img.rgb.size() == static_cast<std::size_t>(img.width) * img.height * 3,
                 path, ": cannot write an empty or inconsistent image as PNG");
  if (!stbi_write_png(path.c_str(), img.width, img.height, 3, img.rgb.data(), img.width * 3))
    throw IoError(str(path, ": cannot write PNG"));
}

}  // namespace ewnet::data
