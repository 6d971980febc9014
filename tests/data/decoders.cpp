// The bounded decoders (data/decode_png.hpp, decode_jpeg.hpp, decode_webp.hpp): the pixels they
// give, the format taken from the content, and what they really allocate against
// decode_memory_estimate, measured as the peak resident memory of a process that decodes one image.
#include "test_files.hpp"
#include "test_images.hpp"
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>
#include <webp/encode.h>
#include <zlib.h>

#include <ewnet/data/dataset.hpp>
#include <ewnet/data/image.hpp>

using namespace ewnet;
using namespace ewnet::data;
using ewnet::test::TempDir;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<std::uint8_t>;
using ewnet::test::encode_jpeg;
using ewnet::test::repeat_first_scan;

/// A w x h test pattern: smooth gradients with a little texture, so lossy coders keep it close.
Image pattern(int w, int h) {
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(std::size_t(w) * std::size_t(h) * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      std::uint8_t* p = &img.rgb[(std::size_t(y) * std::size_t(w) + std::size_t(x)) * 3];
      p[0] = std::uint8_t(255 * x / std::max(1, w - 1));
      p[1] = std::uint8_t(255 * y / std::max(1, h - 1));
      p[2] = std::uint8_t(((x / 8 + y / 8) % 2) * 64 + 96);
    }
  return img;
}

Bytes encode_webp(const Image& img, bool lossless, bool alpha) {
  std::uint8_t* out = nullptr;
  std::size_t size = 0;
  if (alpha) {
    std::vector<std::uint8_t> rgba(std::size_t(img.width) * std::size_t(img.height) * 4);
    for (std::size_t p = 0; p < rgba.size() / 4; ++p) {
      for (int c = 0; c < 3; ++c) rgba[p * 4 + std::size_t(c)] = img.rgb[p * 3 + std::size_t(c)];
      rgba[p * 4 + 3] = std::uint8_t(p % 256);
    }
    size = lossless ? WebPEncodeLosslessRGBA(rgba.data(), img.width, img.height, img.width * 4, &out)
                    : WebPEncodeRGBA(rgba.data(), img.width, img.height, img.width * 4, 90, &out);
  } else {
    size = lossless ? WebPEncodeLosslessRGB(img.rgb.data(), img.width, img.height, img.width * 3, &out)
                    : WebPEncodeRGB(img.rgb.data(), img.width, img.height, img.width * 3, 90, &out);
  }
  REQUIRE(size > 0);
  Bytes b(out, out + size);
  WebPFree(out);
  return b;
}

void put_be32(Bytes& b, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) b.push_back(std::uint8_t(v >> (8 * i)));
}
void chunk(Bytes& png, const char* type, const Bytes& data) {
  put_be32(png, std::uint32_t(data.size()));
  Bytes body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  png.insert(png.end(), body.begin(), body.end());
  put_be32(png, std::uint32_t(crc32(0, body.data(), uInt(body.size()))));
}

/// A valid 1x1 RGB PNG whose image data inflates to `inflated` bytes (a filter byte and one pixel
/// are all the header asks for): a decompression bomb of a few hundred kilobytes.
Bytes png_bomb(std::size_t inflated) {
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  Bytes ihdr;
  put_be32(ihdr, 1);
  put_be32(ihdr, 1);
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
  chunk(png, "IHDR", ihdr);
  z_stream z{};
  REQUIRE(deflateInit(&z, 9) == Z_OK);
  const Bytes zeros(1 << 20, 0);
  Bytes idat(1 << 16);
  Bytes compressed;
  for (std::size_t fed = 0; fed < inflated || z.avail_in;) {
    if (z.avail_in == 0) {
      const std::size_t n = std::min(zeros.size(), inflated - fed);
      z.next_in = const_cast<Bytef*>(zeros.data());
      z.avail_in = uInt(n);
      fed += n;
    }
    z.next_out = idat.data();
    z.avail_out = uInt(idat.size());
    deflate(&z, Z_NO_FLUSH);
    compressed.insert(compressed.end(), idat.begin(), idat.end() - z.avail_out);
  }
  for (int r = Z_OK; r != Z_STREAM_END;) {
    z.next_out = idat.data();
    z.avail_out = uInt(idat.size());
    r = deflate(&z, Z_FINISH);
    compressed.insert(compressed.end(), idat.begin(), idat.end() - z.avail_out);
  }
  deflateEnd(&z);
  chunk(png, "IDAT", compressed);
  chunk(png, "IEND", {});
  return png;
}


[[maybe_unused]] long status_kib(const char* key) {  // unused in sanitizer builds
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::string(key).size()));
  return -1;
}

/// The most resident memory decoding `bytes` added, in bytes, measured in a child process: its
/// peak (VmHWM) reset to the current size before the decode (/proc/self/clear_refs, "5"), read
/// after. -1 when it cannot be measured here (sanitizers change every allocation's cost).
long long decode_peak_bytes(const Bytes& bytes) {
#if defined(__SANITIZE_ADDRESS__)
  (void)bytes;
  return -1;
#else
  int pipe_fd[2];
  REQUIRE(::pipe(pipe_fd) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    long long result = -1;
    {
      std::ofstream reset("/proc/self/clear_refs");
      reset << "5";
      reset.flush();
      if (reset.good()) {
        const long before = status_kib("VmRSS:");
        try {
          const Image img = decode_image(bytes, "measured");
          result = (status_kib("VmHWM:") - before) * 1024LL;
        } catch (...) {
          result = -2;
        }
      }
    }
    (void)!::write(pipe_fd[1], &result, sizeof result);
    ::_exit(0);
  }
  long long result = -1;
  REQUIRE(::read(pipe_fd[0], &result, sizeof result) == ssize_t(sizeof result));
  ::close(pipe_fd[0]);
  ::close(pipe_fd[1]);
  ::waitpid(pid, nullptr, 0);
  REQUIRE(result != -2);  // the child's decode failed
  return result;
#endif
}

void check_within_estimate(const Bytes& bytes, const char* what) {
  const ImageInfo info = probe_image(bytes.data(), bytes.size(), what);
  const std::size_t estimate = decode_memory_estimate(info);
  const long long peak = decode_peak_bytes(bytes);
  if (peak == -1) {
    WARN(what << ": peak memory not measurable here (sanitizer build or no /proc/self/clear_refs)");
    return;
  }
  INFO(what << " " << info.width << "x" << info.height << ": peak " << (peak >> 10) << " KiB, estimate "
            << (estimate >> 10) << " KiB");
  CHECK(peak > 0);
  CHECK(std::size_t(peak) <= estimate);
}

double mean_difference(const Image& a, const Image& b) {
  REQUIRE(a.rgb.size() == b.rgb.size());
  double d = 0;
  for (std::size_t i = 0; i < a.rgb.size(); ++i) d += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return d / double(a.rgb.size());
}

int max_difference(const Image& a, const Image& b) {
  REQUIRE(a.width == b.width);
  REQUIRE(a.height == b.height);
  int d = 0;
  for (std::size_t i = 0; i < a.rgb.size(); ++i) d = std::max(d, std::abs(int(a.rgb[i]) - int(b.rgb[i])));
  return d;
}

}  // namespace

TEST_CASE("PNG, JPEG and WebP decode to the pixels encoded, the format read from the content", "[image][decoders]") {
  const Image img = pattern(67, 45);
  REQUIRE(max_difference(decode_image(encode_png(img), "a.png"), img) == 0);
  REQUIRE(max_difference(decode_image(encode_webp(img, true, false), "a.webp"), img) == 0);
  CHECK(max_difference(decode_image(encode_webp(img, false, false), "b.webp"), img) <= 40);
  for (bool progressive : {false, true}) {
    INFO("progressive " << progressive);
    CHECK(max_difference(decode_image(encode_jpeg(img, progressive, false, false, 100), "a.jpg"), img) <= 12);
    // 4:2:0 halves the chroma's resolution: the 8-pixel checks of the blue channel blur at their edges.
    CHECK(mean_difference(decode_image(encode_jpeg(img, progressive, true, false, 100), "b.jpg"), img) <= 3);
  }
  // Adobe CMYK, baseline and progressive: inverted ink turned back into RGB.
  for (bool progressive : {false, true})
    CHECK(max_difference(decode_image(encode_jpeg(img, progressive, false, true, 100), "cmyk.jpg"), img) <= 6);
  // Alpha composited onto white: a lossless RGBA WebP whose alpha runs 0..255 along each row.
  const Image over = decode_image(encode_webp(img, true, true), "alpha.webp");
  for (std::size_t p : {std::size_t(0), std::size_t(200), std::size_t(255)}) {
    const unsigned a = unsigned(p % 256), c = img.rgb[p * 3];
    CHECK(over.rgb[p * 3] == (c * a + 255 * (255 - a) + 127) / 255);
  }

  // Names lie: a WebP named .jpg and a PNG named .jpeg read as what they are, in a data set too.
  TempDir dir;
  fs::create_directories(dir.path / "cls");
  const Bytes webp = encode_webp(img, true, false), png = encode_png(img);
  std::ofstream(dir.path / "cls" / "photo.jpg", std::ios::binary).write(reinterpret_cast<const char*>(webp.data()),
                                                                        std::streamsize(webp.size()));
  std::ofstream(dir.path / "cls" / "scan.jpeg", std::ios::binary).write(reinterpret_cast<const char*>(png.data()),
                                                                        std::streamsize(png.size()));
  std::ofstream(dir.path / "cls" / "real.webp", std::ios::binary).write(reinterpret_cast<const char*>(webp.data()),
                                                                        std::streamsize(webp.size()));
  REQUIRE(max_difference(load_image(dir.file("cls/photo.jpg")), img) == 0);
  REQUIRE(max_difference(load_image(dir.file("cls/scan.jpeg")), img) == 0);
  const Dataset d = scan_image_folder(dir.path.string());
  REQUIRE(d.size() == 3);
  REQUIRE(d.skipped.empty());
}

TEST_CASE("corrupt and truncated PNG, JPEG and WebP files are errors naming the file", "[image][decoders]") {
  const Image img = pattern(40, 30);
  for (auto [name, bytes] : {std::make_pair("cut.png", encode_png(img)), std::make_pair("cut.webp", encode_webp(img, false, false)),
                             std::make_pair("cut.jpg", encode_jpeg(img, true, false, false))}) {
    INFO(name);
    Bytes cut(bytes.begin(), bytes.begin() + std::ptrdiff_t(bytes.size() * 2 / 3));
    REQUIRE_THROWS_WITH(decode_image(cut, name), Catch::Contains(name));
    Bytes flipped = bytes;
    for (std::size_t i = bytes.size() / 2; i < bytes.size() / 2 + 40; ++i) flipped[i] ^= 0x5A;
    try {
      const Image x = decode_image(flipped, name);  // a JPEG's flipped bits may still decode: as an image of its size
      REQUIRE(x.rgb.size() == std::size_t(x.width) * std::size_t(x.height) * 3);
    } catch (const IoError& e) {
      REQUIRE_THAT(e.what(), Catch::Contains(name));
    }
  }
  // An animated WebP is refused with the reason (VP8X with the animation flag).
  Bytes anim = {'R', 'I', 'F', 'F', 30, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'X', 10, 0, 0, 0,
                0x02, 0, 0, 0, 9, 0, 0, 9, 0, 0, 'A', 'N', 'I', 'M', 6, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  REQUIRE_THROWS_WITH(decode_image(anim, "anim.webp"), Catch::Contains("anim.webp") && Catch::Contains("animated"));
}

TEST_CASE("a PNG whose data inflates far beyond its rows costs its rows", "[image][decoders][hostile]") {
  // 1x1 pixel, 256 MiB of zeros inflated: stb_image inflated all of it (2.2 GB for a 2 GiB one).
  const Bytes bomb = png_bomb(std::size_t(256) << 20);
  REQUIRE(bomb.size() < (std::size_t(1) << 20));
  const Image img = decode_image(bomb, "bomb.png");
  REQUIRE((img.width == 1 && img.height == 1));
  check_within_estimate(bomb, "bomb.png");
  const long long peak = decode_peak_bytes(bomb);
  if (peak >= 0) CHECK(peak < (16 << 20));
}

TEST_CASE("a progressive JPEG of more scans than kMaxJpegScans is refused", "[image][decoders][hostile]") {
  const Bytes jpg = encode_jpeg(pattern(96, 64), true, true, false);
  // libjpeg's progression for three components has 10 scans: 80 more is a long file, within the limit.
  REQUIRE_NOTHROW(decode_image(repeat_first_scan(jpg, 80), "long.jpg"));
  const Bytes bomb = repeat_first_scan(jpg, 400);
  REQUIRE_THROWS_WITH(decode_image(bomb, "bomb.jpg"),
                      Catch::Contains("bomb.jpg") && Catch::Contains("more than 100 scans"));
}

TEST_CASE("what each decoder allocates stays within decode_memory_estimate, measured", "[image][decoders][hostile]") {
  // Progressive and multi-scan JPEGs keep every coefficient of the image (2 bytes each, 64 a block
  // of each component): 6 bytes a pixel for 4:4:4, 8 for CMYK, besides the RGB result.
  const Image big = pattern(1600, 1200);
  check_within_estimate(encode_jpeg(big, true, false, false), "progressive 4:4:4 JPEG");
  check_within_estimate(encode_jpeg(big, true, true, false), "progressive 4:2:0 JPEG");
  check_within_estimate(encode_jpeg(big, false, true, false), "baseline 4:2:0 JPEG");
  check_within_estimate(encode_jpeg(big, true, false, true), "progressive CMYK JPEG");
  check_within_estimate(encode_jpeg(big, false, false, true), "baseline CMYK JPEG");
  check_within_estimate(encode_png(big), "RGB PNG");
  const Image mid = pattern(900, 700);
  check_within_estimate(encode_webp(mid, true, true), "lossless RGBA WebP");
  check_within_estimate(encode_webp(mid, false, true), "lossy RGBA WebP");
  check_within_estimate(encode_webp(mid, false, false), "lossy WebP");
}

TEST_CASE("the first round's limits hold on the new decoders: sides, pixels and memory from the header",
          "[image][decoders][hostile]") {
  // A WebP header of 16383 x 16383 (268 megapixels): over the pixel limit.
  Bytes webp = encode_webp(pattern(8, 8), true, false);
  const std::uint32_t bits = (16383u - 1) | (16383u - 1) << 14;
  for (int i = 0; i < 4; ++i) webp[21 + std::size_t(i)] = std::uint8_t(bits >> (8 * i));
  REQUIRE_THROWS_WITH(decode_image(webp, "huge.webp"), Catch::Contains("huge.webp") && Catch::Contains("exceed"));
  // A lossless WebP of 9000 x 9000 (81 megapixels, within the limit): 11 bytes a pixel, 850 MiB.
  const std::uint32_t nine = (9000u - 1) | (9000u - 1) << 14;
  for (int i = 0; i < 4; ++i) webp[21 + std::size_t(i)] = std::uint8_t(nine >> (8 * i));
  REQUIRE_THROWS_WITH(decode_image(webp, "big.webp"), Catch::Contains("WebP") && Catch::Contains("512 MiB"));
  // A progressive 4:4:4 CMYK JPEG frame header of 9000 x 7000: 8 bytes of coefficients a pixel.
  Bytes jpg = encode_jpeg(pattern(16, 16), true, false, true);
  for (std::size_t i = 2; i + 9 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC2) {
      jpg[i + 5] = 7000 >> 8;
      jpg[i + 6] = 7000 & 255;
      jpg[i + 7] = 9000 >> 8;
      jpg[i + 8] = 9000 & 255;
      break;
    }
  REQUIRE_THROWS_WITH(decode_image(jpg, "big.jpg"), Catch::Contains("JPEG") && Catch::Contains("512 MiB"));
}
