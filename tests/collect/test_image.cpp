// ewnet/data/image.hpp: decoding checks, colour conversion, resizing, writing.
#include <catch2/catch.hpp>

#include <ewnet/data/image.hpp>

#include "fixtures.hpp"

using namespace ewnet_test;
using ewnet::IoError;
using ewnet::data::Image;
using ewnet::data::decode_image;

namespace {

std::uint32_t crc32(const std::string& s) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// A PNG signature and an IHDR chunk that claims the given size, followed by no pixel data.
std::string png_header(std::uint32_t w, std::uint32_t h) {
  std::string ihdr = "IHDR" + be32(w) + be32(h) + std::string("\x08\x02\x00\x00\x00", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + ihdr + be32(crc32(ihdr));
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("decode_image reads PNG and JPEG as RGB", "[image]") {
  const Image src = blocks(1);
  const std::string png = png_bytes(src);
  const Image a = decode_image(u8(png), png.size(), "a.png");
  CHECK(a.width == 200);
  CHECK(a.height == 150);
  CHECK(a.rgb == src.rgb);

  const std::string jpg = jpg_bytes(src);
  const Image b = decode_image(u8(jpg), jpg.size(), "b.jpg");
  REQUIRE(b.width == 200);
  REQUIRE(b.height == 150);
  REQUIRE(b.rgb.size() == src.rgb.size());
  double err = 0;
  for (std::size_t i = 0; i < src.rgb.size(); ++i) err += std::abs(int(b.rgb[i]) - int(src.rgb[i]));
  CHECK(err / src.rgb.size() < 8.0);  // lossy, but close
}

TEST_CASE("grey images are expanded to RGB", "[image]") {
  std::vector<std::uint8_t> grey = {0, 64, 128, 255, 10, 20};
  const std::string png = png_bytes(grey.data(), 3, 2, 1);
  const Image img = decode_image(u8(png), png.size(), "grey.png");
  REQUIRE(img.rgb.size() == 18);
  for (int i = 0; i < 6; ++i) {
    CHECK(img.rgb[3 * i] == grey[i]);
    CHECK(img.rgb[3 * i + 1] == grey[i]);
    CHECK(img.rgb[3 * i + 2] == grey[i]);
  }
}

TEST_CASE("alpha is composited onto white", "[image]") {
  // Opaque red, fully transparent green, half-transparent black.
  std::vector<std::uint8_t> rgba = {255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 0, 128};
  const std::string png = png_bytes(rgba.data(), 3, 1, 4);
  const Image img = decode_image(u8(png), png.size(), "alpha.png");
  REQUIRE(img.rgb.size() == 9);
  CHECK(std::vector<int>(img.rgb.begin(), img.rgb.begin() + 3) == std::vector<int>{255, 0, 0});
  CHECK(std::vector<int>(img.rgb.begin() + 3, img.rgb.begin() + 6) == std::vector<int>{255, 255, 255});
  CHECK(int(img.rgb[6]) == 127);  // 255 * (255 - 128) / 255, rounded

  std::vector<std::uint8_t> ga = {0, 0, 200, 255};  // grey+alpha: transparent black, opaque 200
  const std::string png2 = png_bytes(ga.data(), 2, 1, 2);
  const Image img2 = decode_image(u8(png2), png2.size(), "ga.png");
  CHECK(int(img2.rgb[0]) == 255);
  CHECK(int(img2.rgb[3]) == 200);
}

TEST_CASE("broken input is rejected with a message naming it", "[image]") {
  const std::string jpg = jpg_bytes(blocks(2));
  const std::string truncated = jpg.substr(0, jpg.size() / 2);
  std::string msg = error_of([&] { decode_image(u8(truncated), truncated.size(), "cut.jpg"); });
  CHECK_THAT(msg, Catch::Contains("cut.jpg") && Catch::Contains("truncated"));

  const std::string png = png_bytes(blocks(3));
  const std::string cut_png = png.substr(0, png.size() / 2);
  msg = error_of([&] { decode_image(u8(cut_png), cut_png.size(), "cut.png"); });
  CHECK_THAT(msg, Catch::Contains("cut.png"));

  msg = error_of([&] { decode_image(nullptr, 0, "empty.jpg"); });
  CHECK_THAT(msg, Catch::Contains("empty.jpg") && Catch::Contains("empty"));

  const std::string html = "<!DOCTYPE html><html><body>not an image</body></html>";
  msg = error_of([&] { decode_image(u8(html), html.size(), "page.jpg"); });
  CHECK_THAT(msg, Catch::Contains("page.jpg") && Catch::Contains("not a readable image"));
}

TEST_CASE("absurd dimensions are rejected before decoding", "[image]") {
  const std::string huge = png_header(100000, 100000);
  const std::string msg = error_of([&] { decode_image(u8(huge), huge.size(), "bomb.png"); });
  CHECK_THAT(msg, Catch::Contains("bomb.png") && Catch::Contains("100000x100000") && Catch::Contains("limit"));

  const std::string wide = png_header(20000, 10);
  CHECK_THAT(error_of([&] { decode_image(u8(wide), wide.size(), "wide.png"); }), Catch::Contains("exceed"));
  // 12000 x 9000 is within the side limit but over 100 megapixels.
  const std::string many = png_header(12000, 9000);
  CHECK_THAT(error_of([&] { decode_image(u8(many), many.size(), "many.png"); }), Catch::Contains("megapixels"));

  CHECK_THROWS_WITH(ewnet::data::probe_image(u8(huge), huge.size(), "bomb.png"), Catch::Contains("100000x100000"));
  const std::string png = png_bytes(blocks(1));
  const auto info = ewnet::data::probe_image(u8(png), png.size(), "ok.png");
  CHECK(info.width == 200);
  CHECK(info.height == 150);
  CHECK(info.channels == 3);
}

TEST_CASE("load_image, write_png and resize_bilinear", "[image]") {
  ScratchDir dir("image");
  CHECK_THAT(error_of([&] { ewnet::data::load_image(dir / "missing.png"); }), Catch::Contains("missing.png"));

  const Image src = blocks(4);
  ewnet::data::write_png(dir / "out.png", src);
  const Image back = ewnet::data::load_image(dir / "out.png");
  CHECK(back.rgb == src.rgb);
  CHECK_THROWS_AS(ewnet::data::write_png(dir / "no/such/dir/x.png", src), IoError);

  // Shrinking a fine checkerboard averages it to grey instead of picking one colour.
  Image board;
  board.width = board.height = 64;
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x)
      for (int c = 0; c < 3; ++c) board.rgb.push_back((x + y) % 2 ? 255 : 0);
  const Image small = ewnet::data::resize_cubic(board, 8, 8);
  REQUIRE(small.rgb.size() == 8 * 8 * 3);
  for (auto v : small.rgb) CHECK(std::abs(int(v) - 128) < 20);

  const Image big = ewnet::data::resize_cubic(src, 400, 300);
  CHECK(big.width == 400);
  CHECK(big.height == 300);
  CHECK_THROWS_AS(ewnet::data::resize_cubic(src, 0, 10), ewnet::ShapeError);
  CHECK_THROWS_AS(ewnet::data::resize_cubic(Image(), 10, 10), ewnet::ShapeError);
}
