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
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
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

/// Largest side and pixel count ewnet decodes. 16384 covers any camera.
inline constexpr int kMaxImageSide = 16384;
inline constexpr long long kMaxImagePixels = 100'000'000;
/// The most memory one image may cost to decode (decode_memory_estimate), checked from the header
/// before anything is allocated: a 50-megapixel 8-bit photo (about 450 MB) passes; a 100-megapixel
/// PNG (about 900 MB) or a large 32-bit-float HDR does not.
inline constexpr std::size_t kMaxDecodeBytes = std::size_t(512) << 20;
/// The largest image file ewnet reads (checked before the file is read whole).
inline constexpr std::uintmax_t kMaxImageFileBytes = std::uintmax_t(256) << 20;

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

// The EXIF orientation of a JPEG (1 to 8, 1 when absent or unreadable): how the camera was held.
// APP1 "Exif\0\0" holds a TIFF block (byte order "II" or "MM", IFD0's offset at 4) whose first
// directory lists 12-byte entries; tag 0x0112 (a SHORT) is the orientation. Every offset is
// checked against the segment, so a malformed block only means "no orientation".
inline int jpeg_exif_orientation(const std::uint8_t* p, std::size_t n) {
  std::size_t i = 2;
  while (i + 4 <= n && p[i] == 0xFF) {
    const std::uint8_t m = p[i + 1];
    if (m == 0xFF) { ++i; continue; }
    if (m == 0xDA || m == 0xD9) break;  // the scan starts: metadata comes before it
    const std::size_t length = (std::size_t{p[i + 2]} << 8) | p[i + 3];
    if (length < 2 || i + 2 + length > n) break;
    const std::uint8_t* seg = p + i + 4;
    const std::size_t len = length - 2;
    if (m == 0xE1 && len >= 14 && std::memcmp(seg, "Exif\0\0", 6) == 0) {
      const std::uint8_t* t = seg + 6;
      const std::size_t tn = len - 6;
      const bool little = t[0] == 'I' && t[1] == 'I';
      if (!little && !(t[0] == 'M' && t[1] == 'M')) return 1;
      auto u16 = [&](std::size_t at) -> unsigned {
        return little ? unsigned(t[at]) | unsigned(t[at + 1]) << 8 : unsigned(t[at]) << 8 | unsigned(t[at + 1]);
      };
      auto u32 = [&](std::size_t at) -> std::uint32_t {
        return little ? std::uint32_t(u16(at)) | std::uint32_t(u16(at + 2)) << 16
                      : std::uint32_t(u16(at)) << 16 | std::uint32_t(u16(at + 2));
      };
      const std::uint32_t ifd = u32(4);
      if (ifd > tn || tn - ifd < 2) return 1;
      const unsigned count = u16(ifd);
      for (unsigned k = 0; k < count; ++k) {
        const std::size_t e = std::size_t(ifd) + 2 + std::size_t(k) * 12;
        if (e + 12 > tn) return 1;
        if (u16(e) == 0x0112 && u16(e + 2) == 3) {
          const unsigned v = u16(e + 8);
          return v >= 1 && v <= 8 ? int(v) : 1;
        }
      }
      return 1;
    }
    i += 2 + length;
  }
  return 1;
}

// Turns a decoded image upright for EXIF orientation o: 2 mirrors, 3 turns 180 degrees, 4 flips,
// 5 transposes, 6 turns 90 degrees clockwise, 7 transverses, 8 turns 90 degrees anticlockwise.
// For each output pixel (x, y) it reads the source pixel the orientation maps there.
inline Image apply_exif_orientation(const Image& src, int o) {
  if (o <= 1 || o > 8) return src;
  const int W = src.width, H = src.height;
  const bool swap = o >= 5;
  Image out;
  out.width = swap ? H : W;
  out.height = swap ? W : H;
  out.rgb.resize(src.rgb.size());
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (o) {
        case 2: sx = W - 1 - x; break;
        case 3: sx = W - 1 - x; sy = H - 1 - y; break;
        case 4: sy = H - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = H - 1 - x; break;
        case 7: sx = W - 1 - y; sy = H - 1 - x; break;
        case 8: sx = W - 1 - y; sy = x; break;
      }
      std::memcpy(&out.rgb[(std::size_t(y) * std::size_t(out.width) + std::size_t(x)) * 3],
                  &src.rgb[(std::size_t(sy) * std::size_t(W) + std::size_t(sx)) * 3], 3);
    }
  return out;
}

inline std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r ? std::string(r) : std::string("unknown reason");
}

}  // namespace detail

/// What decoding an image will allocate at its peak, from its header: stb_image's buffer of the
/// stored samples (1 byte a channel, 2 for 16-bit PNG/PSD/PNM, 4 for float HDR), its conversion to
/// 8 bits for 16-bit and HDR input, the format's working memory (PNG's inflated rows as large as
/// the samples; a JPEG's component planes; GIF's canvas, background and history at 4 bytes a
/// pixel, twice) and ewnet's RGB result.
inline std::size_t decode_memory_estimate(const std::uint8_t* bytes, std::size_t size, const ImageInfo& info) {
  const std::size_t pixels = std::size_t(info.width) * std::size_t(info.height);
  const std::size_t channels = std::size_t(std::max(1, info.channels));
  const int n = int(std::min<std::size_t>(size, INT_MAX));
  std::size_t sample = 1;
  if (stbi_is_hdr_from_memory(bytes, n)) sample = 4;
  else if (stbi_is_16_bit_from_memory(bytes, n)) sample = 2;
  std::size_t total = pixels * channels * sample;    // the decoder's buffer
  if (sample > 1) total += pixels * channels;         // converted to 8 bits
  if (size >= 4 && std::memcmp(bytes, "GIF8", 4) == 0) total += 2 * pixels * 4;
  else total += pixels * channels * sample;           // PNG rows, JPEG planes and the like
  return total + pixels * 3;                          // the RGB Image
}

/// A memory allowance shared by threads that decode at once: each decode takes its estimate before
/// it starts and gives it back after, so N threads never hold more than `total` bytes of decoder
/// memory together (a decode larger than the whole allowance waits until it runs alone).
class DecodeBudget {
 public:
  explicit DecodeBudget(std::size_t total) : total_(total) {}
  void acquire(std::size_t n) {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return used_ == 0 || used_ + n <= total_; });
    used_ += n;
  }
  void release(std::size_t n) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      used_ -= n;
    }
    ready_.notify_all();
  }
  std::size_t total() const { return total_; }

 private:
  std::size_t total_, used_ = 0;
  std::mutex mutex_;
  std::condition_variable ready_;
};

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
  // A BMP whose rows run top-down stores a negative height; stb's info passes it on as it is.
  if (size >= 2 && bytes[0] == 'B' && bytes[1] == 'M' && info.height < 0 && info.height > INT_MIN)
    info.height = -info.height;
  return info;
}

/// Decodes an encoded image (any format stb_image reads) to 8-bit RGB, a JPEG turned upright by
/// its EXIF orientation. Grey is copied to all three channels; alpha is composited onto white, the
/// background a photographed device sits on when its cut-out is shown. Throws IoError naming
/// `what` and the reason when the input is empty, not an image, corrupt or truncated, larger than
/// kMaxImageSide / kMaxImagePixels, or costlier to decode than kMaxDecodeBytes (all checked from
/// the header before any pixel memory is allocated). With a `budget`, waits until the decode's
/// estimate fits in what other threads leave of it.
inline Image decode_image(const std::uint8_t* bytes, std::size_t size, const std::string& what,
                          DecodeBudget* budget = nullptr) {
  const ImageInfo info = probe_image(bytes, size, what);
  detail::check_dimensions(info.width, info.height, what);
  if (detail::is_jpeg(bytes, size))
    EWNET_CHECK_AS(IoError, detail::jpeg_is_complete(bytes, size), what,
                   ": truncated JPEG (no end-of-image marker after the image data)");
  const std::size_t need = decode_memory_estimate(bytes, size, info);
  EWNET_CHECK_AS(IoError, need <= kMaxDecodeBytes, what, ": decoding this ", info.width, "x", info.height, " image (",
                 info.channels, " channels", stbi_is_hdr_from_memory(bytes, int(size)) ? ", 32-bit float HDR"
                 : stbi_is_16_bit_from_memory(bytes, int(size)) ? ", 16-bit" : "",
                 ") would take about ", (need >> 20) + 1, " MiB, over the ", kMaxDecodeBytes >> 20,
                 " MiB an image may use");
  struct Reservation {
    DecodeBudget* budget;
    std::size_t bytes;
    ~Reservation() { if (budget) budget->release(bytes); }
  } reservation{budget, need};
  if (budget) budget->acquire(need);

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
  // Phone photos are stored as the sensor saw them and carry the way up in EXIF.
  if (detail::is_jpeg(bytes, size)) {
    const int orientation = detail::jpeg_exif_orientation(bytes, size);
    if (orientation != 1) return detail::apply_exif_orientation(img, orientation);
  }
  return img;
}

inline Image decode_image(const std::vector<std::uint8_t>& bytes, const std::string& what) {
  return decode_image(bytes.data(), bytes.size(), what);
}

/// Reads a whole file into memory. Throws IoError naming the path when it cannot be opened or read.
inline std::vector<std::uint8_t> read_file_bytes(const std::string& path,
                                                 std::uintmax_t max_bytes = kMaxImageFileBytes) {
  // The size is checked before the file is read whole (a sparse 2.5 GB file costs nothing on disk).
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  EWNET_CHECK_AS(IoError, !ec && std::filesystem::is_regular_file(st), path, ": cannot open for reading (",
                 ec ? ec.message() : std::string("not a regular file"), ")");
  const std::uintmax_t file_bytes = std::filesystem::file_size(path, ec);
  EWNET_CHECK_AS(IoError, !ec && file_bytes <= max_bytes, path, ": ", file_bytes, " bytes is larger than the ",
                 max_bytes >> 20, " MiB a file may have here");
  std::ifstream in(path, std::ios::binary);
  EWNET_CHECK_AS(IoError, in.good(), path, ": cannot open for reading");
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EWNET_CHECK_AS(IoError, !in.bad(), path, ": read error");
  return bytes;
}

/// Reads and decodes an image file; errors name the path.
inline Image load_image(const std::string& path, DecodeBudget* budget = nullptr) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), path, budget);
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
