// Image files and data folders nobody vetted: decoder memory bounded from the header, files too
// large to read, top-down BMPs, EXIF orientation, broken symbolic links, split files. (What each
// decoder really allocates, PNG bombs and JPEG scan bombs: decoders.cpp.)
#include "test_files.hpp"
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include <ewnet/data/dataset.hpp>
#include <ewnet/data/image.hpp>

using namespace ewnet;
using namespace ewnet::data;
using ewnet::test::TempDir;
namespace fs = std::filesystem;

namespace {

void put_be32(std::string& s, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) s += char((v >> (8 * i)) & 0xFF);
}
void put_le(std::string& s, std::uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s += char((v >> (8 * i)) & 0xFF);
}

/// A PNG that is a header alone: IHDR of w x h, `depth` bits, colour type `type` (2 RGB, 6 RGBA).
std::vector<std::uint8_t> png_header(std::uint32_t w, std::uint32_t h, int depth, int type) {
  std::string s = "\x89PNG\r\n\x1a\n";
  put_be32(s, 13);
  s += "IHDR";
  put_be32(s, w);
  put_be32(s, h);
  s += char(depth);
  s += char(type);
  s += std::string(3, '\0');
  put_be32(s, 0);  // CRC (stb_image does not check it)
  return std::vector<std::uint8_t>(s.begin(), s.end());
}

/// A 24-bit BMP of w x h; top_down stores the rows from the top with a negative height.
std::vector<std::uint8_t> bmp(int w, int h, bool top_down, const std::vector<std::array<std::uint8_t, 3>>& rows) {
  const int stride = (w * 3 + 3) / 4 * 4;
  std::string s = "BM";
  put_le(s, std::uint32_t(54 + stride * h), 4);
  put_le(s, 0, 4);
  put_le(s, 54, 4);
  put_le(s, 40, 4);
  put_le(s, std::uint32_t(w), 4);
  put_le(s, std::uint32_t(top_down ? -h : h), 4);
  put_le(s, 1, 2);
  put_le(s, 24, 2);
  put_le(s, 0, 4);
  put_le(s, std::uint32_t(stride * h), 4);
  put_le(s, 2835, 4);
  put_le(s, 2835, 4);
  put_le(s, 0, 4);
  put_le(s, 0, 4);
  for (int r = 0; r < h; ++r) {
    const int y = top_down ? r : h - 1 - r;  // the image row stored r-th
    for (int x = 0; x < w; ++x) {
      const auto& c = rows[size_t(y)];
      s += char(c[2]);
      s += char(c[1]);
      s += char(c[0]);  // BGR
    }
    s += std::string(size_t(stride - w * 3), '\0');
  }
  return std::vector<std::uint8_t>(s.begin(), s.end());
}

}  // namespace

TEST_CASE("decoder memory is estimated from the header and bounded before anything is decoded", "[image][hostile]") {
  // 10000 x 10000 RGBA (100 megapixels, within the pixel limit): the RGBA buffer and the RGB
  // result, about 700 MB.
  const auto big = png_header(10000, 10000, 8, 6);
  REQUIRE_THROWS_WITH(decode_image(big, "big.png"),
                      Catch::Contains("big.png") && Catch::Contains("MiB") && Catch::Contains("512 MiB"));
  // libspng reduces 16-bit samples row by row: a 6000 x 6000 RGBA PNG at 16 bits costs what one at
  // 8 bits does (about 250 MB), so it is not refused for its size (it then fails as the header-only
  // file it is, with a bad checksum).
  const auto deep = png_header(6000, 6000, 16, 6);
  REQUIRE_THROWS_WITH(decode_image(deep, "deep.png"), !Catch::Contains("MiB") && Catch::Contains("deep.png"));
  // stb_image holds 16-bit samples as they are: a 16-bit PNM of 6000 x 6000 is refused (about 650 MB).
  const std::string pnm = "P6\n6000 6000\n65535\n";
  REQUIRE_THROWS_WITH(decode_image(std::vector<std::uint8_t>(pnm.begin(), pnm.end()), "deep.ppm"),
                      Catch::Contains("16-bit") && Catch::Contains("MiB"));
  // Radiance HDR: 32-bit float samples; a few bytes of header claim 1.3 GB.
  const std::string hdr = "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8000 +X 8000\n";
  REQUIRE_THROWS_WITH(decode_image(std::vector<std::uint8_t>(hdr.begin(), hdr.end()), "sky.hdr"),
                      Catch::Contains("sky.hdr") && Catch::Contains("HDR") && Catch::Contains("MiB"));
}

TEST_CASE("threads decoding at once share one memory allowance", "[image][hostile]") {
  DecodeBudget budget(1000);
  budget.acquire(600);
  std::atomic<bool> second{false};
  std::thread t([&] {
    budget.acquire(600);  // must wait: 600 + 600 > 1000
    second = true;
    budget.release(600);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  REQUIRE_FALSE(second.load());
  budget.release(600);
  t.join();
  REQUIRE(second.load());
  budget.acquire(5000);  // larger than the whole allowance: runs alone rather than never
  budget.release(5000);
}

TEST_CASE("a file too large to be an image is refused before it is read", "[image][hostile]") {
  TempDir dir;
  {
    std::ofstream(dir.file("huge.jpg"), std::ios::binary) << "\xFF\xD8\xFF";
  }
  fs::resize_file(dir.file("huge.jpg"), kMaxImageFileBytes + 1);  // sparse: costs nothing on disk
  REQUIRE_THROWS_WITH(load_image(dir.file("huge.jpg")), Catch::Contains("huge.jpg") && Catch::Contains("larger than"));
  fs::create_directories(dir.path / "folder.png");
  REQUIRE_THROWS_WITH(load_image(dir.file("folder.png")), Catch::Contains("not a regular file"));
}

TEST_CASE("a top-down BMP decodes the right way up", "[image][hostile]") {
  const std::vector<std::array<std::uint8_t, 3>> rows = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
  for (bool top_down : {false, true}) {
    INFO("top-down " << top_down);
    const Image img = decode_image(bmp(5, 3, top_down, rows), "rows.bmp");
    REQUIRE(img.width == 5);
    REQUIRE(img.height == 3);
    for (int y = 0; y < 3; ++y)
      for (int c = 0; c < 3; ++c) REQUIRE(img.rgb[size_t(y * 5 * 3 + c)] == rows[size_t(y)][size_t(c)]);
  }
}

TEST_CASE("a JPEG's EXIF orientation is applied", "[image][hostile]") {
  // 32 x 16: left half red, right half blue.
  Image src;
  src.width = 32;
  src.height = 16;
  src.rgb.resize(32 * 16 * 3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 32; ++x) {
      std::uint8_t* p = &src.rgb[size_t((y * 32 + x) * 3)];
      p[0] = x < 16 ? 255 : 0;
      p[2] = x < 16 ? 0 : 255;
    }
  std::vector<std::uint8_t> jpg;
  stbi_write_jpg_to_func([](void* c, void* d, int n) {
    auto* v = static_cast<std::vector<std::uint8_t>*>(c);
    v->insert(v->end(), static_cast<std::uint8_t*>(d), static_cast<std::uint8_t*>(d) + n);
  }, &jpg, 32, 16, 3, src.rgb.data(), 95);
  REQUIRE(jpg.size() > 4);
  auto with_orientation = [&](int o, bool big_endian) {
    std::string tiff = big_endian ? std::string("MM\0\x2a\0\0\0\x08", 8) : std::string("II\x2a\0\x08\0\0\0", 8);
    auto u16 = [&](unsigned v) {
      tiff += big_endian ? char(v >> 8) : char(v & 0xFF);
      tiff += big_endian ? char(v & 0xFF) : char(v >> 8);
    };
    u16(1);          // one entry
    u16(0x0112);     // orientation
    u16(3);          // SHORT
    u16(1); u16(0);  // count 1 (32 bits)
    u16(unsigned(o)); u16(0);
    tiff += std::string(4, '\0');  // no next IFD
    std::string app1 = std::string("Exif\0\0", 6) + tiff;
    std::vector<std::uint8_t> out(jpg.begin(), jpg.begin() + 2);
    out.push_back(0xFF);
    out.push_back(0xE1);
    out.push_back(std::uint8_t((app1.size() + 2) >> 8));
    out.push_back(std::uint8_t((app1.size() + 2) & 0xFF));
    out.insert(out.end(), app1.begin(), app1.end());
    out.insert(out.end(), jpg.begin() + 2, jpg.end());
    return out;
  };
  auto red = [](const Image& img, int x, int y) { return img.rgb[size_t((y * img.width + x) * 3)] > 128; };
  for (bool be : {false, true}) {
    const Image plain = decode_image(with_orientation(1, be), "o1.jpg");
    REQUIRE((plain.width == 32 && plain.height == 16));
    REQUIRE((red(plain, 2, 8) && !red(plain, 29, 8)));
    // 6: turned 90 degrees clockwise to be upright: the left (red) half becomes the top.
    const Image cw = decode_image(with_orientation(6, be), "o6.jpg");
    REQUIRE((cw.width == 16 && cw.height == 32));
    REQUIRE((red(cw, 8, 2) && !red(cw, 8, 29)));
    // 8: anticlockwise: the left half becomes the bottom.
    const Image ccw = decode_image(with_orientation(8, be), "o8.jpg");
    REQUIRE((ccw.width == 16 && ccw.height == 32));
    REQUIRE((!red(ccw, 8, 2) && red(ccw, 8, 29)));
    // 3: half a turn: the left half becomes the right.
    const Image half = decode_image(with_orientation(3, be), "o3.jpg");
    REQUIRE((half.width == 32 && !red(half, 2, 8) && red(half, 29, 8)));
  }
}

TEST_CASE("a folder scan skips broken links with a reason, and lists WebP files as images", "[dataset][hostile]") {
  TempDir dir;
  Image img;
  img.width = img.height = 4;
  img.rgb.assign(48, 100);
  for (const char* c : {"a", "b"}) {
    fs::create_directories(dir.path / c);
    write_png((dir.path / c / "1.png").string(), img);
  }
  fs::create_symlink(dir.path / "a" / "loop.png", dir.path / "a" / "loop.png");  // points at itself
  fs::create_symlink(dir.path / "a" / "gone.png", dir.path / "a" / "dangling.png");
  fs::create_directory_symlink(dir.path / "c", dir.path / "c");                    // a folder loop
  std::ofstream(dir.path / "b" / "photo.webp") << "RIFF\0\0\0\0WEBPVP8 ";
  const Dataset d = scan_image_folder(dir.path.string());
  REQUIRE(d.classes == std::vector<std::string>{"a", "b"});
  REQUIRE(d.size() == 3);  // the WebP is an image file (this one is broken: the loader says so)
  REQUIRE(d.samples[2].relative == "b/photo.webp");
  REQUIRE(d.skipped.size() == 3);
  std::string all;
  for (const std::string& s : d.skipped) all += s + "\n";
  CHECK_THAT(all, Catch::Contains("loop.png: symbolic link loop") && Catch::Contains("dangling.png: dangling") &&
                      Catch::Contains("/c: symbolic link loop"));
}

TEST_CASE("split files: unknown values name the line, BOM and RFC 4180 quoting are read", "[dataset][hostile]") {
  TempDir dir;
  Image img;
  img.width = img.height = 4;
  img.rgb.assign(48, 100);
  for (const char* f : {"a/1.png", "a/2,x.png", "b/1.png", "b/2.png"}) {
    fs::create_directories((dir.path / f).parent_path());
    write_png((dir.path / f).string(), img);
  }
  const Dataset d = scan_image_folder(dir.path.string());
  const std::string csv = dir.file("split.csv");
  std::ofstream(csv) << "\xEF\xBB\xBF" "file,label,split\r\n"
                        "a/1.png,a,train\r\n"
                        "\"a/2,x.png\",\"a\",\"val\"\r\n"
                        "b/1.png,b,train\r\n"
                        "\"b/2.png\",\"b \"\"quoted\"\"\nlabel\",test\r\n";
  const Split s = split_from_file(d, csv);
  REQUIRE(s.train.size() == 2);
  REQUIRE(s.validation.size() == 2);
  REQUIRE(s.warnings.empty());
  // One part of a train/val/test file at a time (ewnet-calibrate): the other part is known, not
  // an error, and left out.
  const Split val_only = split_from_file(d, csv, {"train"}, {"val"}, {"test"});
  REQUIRE(val_only.validation.size() == 1);
  REQUIRE_THROWS_WITH(split_from_file(d, csv, {"train"}, {"val"}), Catch::Contains("unknown split 'test'"));

  std::ofstream(csv) << "file,split\na/1.png,train\n\"a/2,x.png\",val\nb/1.png,train\nb/2.png,Val\n";
  REQUIRE_THROWS_WITH(split_from_file(d, csv), Catch::Contains("split.csv:5") && Catch::Contains("'Val'"));
  std::ofstream(csv) << "file,split\na/1.png,train\n\"a/2,x.png\",train\nb/1.png,train\nb/2.png,val\n";
  const Split one = split_from_file(d, csv);
  REQUIRE(one.warnings.size() == 1);
  CHECK_THAT(one.warnings[0], Catch::Contains("'a' has no validation image"));
  std::ofstream(csv) << "file,split\na/1.png,train\na/1.png,val\n";
  REQUIRE_THROWS_WITH(split_from_file(d, csv), Catch::Contains("split.csv:3") && Catch::Contains("listed again"));
  std::ofstream(csv) << "file,split\n\"a/1.png,train\n";
  REQUIRE_THROWS_WITH(split_from_file(d, csv), Catch::Contains("never closed"));
}

TEST_CASE("a class with a single image is trained and a warning says it is never validated", "[dataset][hostile]") {
  Dataset d;
  d.classes = {"a", "b"};
  for (int i = 0; i < 5; ++i) d.samples.push_back({"a" + std::to_string(i), "a/" + std::to_string(i), 0});
  d.samples.push_back({"b0", "b/0", 1});
  const Split s = split_each_label(d, 0.8, 1);
  REQUIRE(s.warnings.size() == 1);
  CHECK_THAT(s.warnings[0], Catch::Contains("'b' has a single image"));
}
