// data/resize.hpp: the antialiased bilinear filter against Pillow's numbers and a double-precision
// reference, the crop geometry's sizes and corner, and the geometry the image cache applies.
// (Parity with torchvision on real photos: torchvision_preprocess.py.)
#include "test_files.hpp"
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <sstream>

#include <ewnet/data/loader.hpp>
#include <ewnet/data/resize.hpp>

using namespace ewnet;
using namespace ewnet::data;
namespace fs = std::filesystem;

namespace {

std::vector<int> numbers(const std::string& csv) {
  std::vector<int> v;
  std::stringstream ss(csv);
  for (std::string item; std::getline(ss, item, ',');) v.push_back(std::stoi(item));
  return v;
}

// The 8 x 6 image and what Pillow 9.4's Image.resize(size, BILINEAR) made of it.
const char* kSource =
    "0,0,255,37,5,235,74,20,215,111,45,195,148,80,175,185,125,155,222,180,135,3,245,115,11,29,242,48,34,222,85,49,202,"
    "122,74,182,159,109,162,196,154,142,233,209,122,14,18,102,22,58,229,59,63,209,96,78,189,133,103,169,170,138,149,"
    "207,183,129,244,238,109,25,47,89,33,87,216,70,92,196,107,107,176,144,132,156,181,167,136,218,212,116,255,11,96,"
    "36,76,76,44,116,203,81,121,183,118,136,163,155,161,143,192,196,123,229,241,103,10,40,83,47,105,63,55,145,190,92,"
    "150,170,129,165,150,166,190,130,203,225,110,240,14,90,21,69,70,58,134,50";
const char* kPillow3x5 =
    "43,16,230,132,73,182,146,168,134,56,49,215,145,106,167,159,143,119,69,83,201,158,137,153,172,126,105,81,116,186,"
    "166,167,138,119,109,90,94,149,171,176,166,123,96,94,75";
const char* kPillow13x4 =
    "4,11,250,20,13,242,42,17,229,65,26,217,88,38,205,111,53,192,134,74,180,156,96,168,179,124,155,202,155,143,225,189,"
    "131,100,173,118,7,160,110,20,52,232,36,54,224,58,58,211,81,67,199,104,79,187,127,94,174,150,115,162,172,137,150,"
    "195,165,137,218,186,125,241,202,113,116,110,100,23,41,92,35,93,213,51,95,205,73,99,192,96,108,180,119,120,168,142,"
    "135,155,165,156,143,187,178,131,210,206,118,204,158,106,174,53,94,95,67,81,38,82,73,51,134,195,67,136,187,89,140,"
    "174,112,149,162,135,161,150,158,176,137,181,197,125,203,201,113,226,130,100,160,85,88,25,60,76,38,96,63,54,123,55";

Image from_numbers(const char* csv, int w, int h) {
  const std::vector<int> v = numbers(csv);
  REQUIRE(v.size() == std::size_t(w * h * 3));
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.assign(v.begin(), v.end());
  return img;
}

// The same filter in double precision with no rounding between the passes.
double reference(const Image& src, int w, int h, int x, int y, int c) {
  auto taps = [](int in, int out, int i, std::vector<std::pair<int, double>>& t) {
    const double scale = double(in) / out, widen = std::max(scale, 1.0), centre = (i + 0.5) * scale;
    double sum = 0;
    t.clear();
    for (int j = 0; j < in; ++j) {
      const double d = std::fabs((j + 0.5 - centre) / widen);
      if (d < 1) {
        t.push_back({j, 1 - d});
        sum += 1 - d;
      }
    }
    for (auto& p : t) p.second /= sum;
  };
  std::vector<std::pair<int, double>> tx, ty;
  taps(src.width, w, x, tx);
  taps(src.height, h, y, ty);
  double v = 0;
  for (auto [j, wy] : ty)
    for (auto [i, wx] : tx) v += wy * wx * src.rgb[(std::size_t(j) * std::size_t(src.width) + std::size_t(i)) * 3 + std::size_t(c)];
  return v;
}

}  // namespace

TEST_CASE("resize_bilinear_antialiased is Pillow's BILINEAR to the bit", "[image][resize]") {
  const Image src = from_numbers(kSource, 8, 6);
  REQUIRE(resize_bilinear_antialiased(src, 3, 5).rgb == from_numbers(kPillow3x5, 3, 5).rgb);
  REQUIRE(resize_bilinear_antialiased(src, 13, 4).rgb == from_numbers(kPillow13x4, 13, 4).rgb);
  // And within a rounding of the filter computed in doubles, shrinking and enlarging.
  for (auto [w, h] : {std::make_pair(3, 5), std::make_pair(13, 4), std::make_pair(5, 11), std::make_pair(8, 6)}) {
    const Image r = resize_bilinear_antialiased(src, w, h);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c)
          REQUIRE(std::fabs(r.rgb[(std::size_t(y) * std::size_t(w) + std::size_t(x)) * 3 + std::size_t(c)] -
                            reference(src, w, h, x, y, c)) <= 1.01);
  }
  REQUIRE(resize_bilinear_antialiased(src, 8, 6).rgb == src.rgb);
}

TEST_CASE("the crop geometry: shorter side to round(S 256/224), then the centre, rounded half to even", "[image][resize]") {
  int w = 0, h = 0;
  crop_resize_size(300, 200, 64, w, h);  // S' = round(73.14) = 73; long side int(73 * 300 / 200) = 109
  REQUIRE((w == 109 && h == 73));
  crop_resize_size(200, 300, 224, w, h);
  REQUIRE((w == 256 && h == 384));
  crop_resize_size(500, 375, 299, w, h);  // Inception-v3: 342 (torchvision's resize_size for it)
  REQUIRE((w == 456 && h == 342));
  Image src;
  src.width = 300;
  src.height = 200;
  src.rgb.resize(300 * 200 * 3);
  for (std::size_t i = 0; i < src.rgb.size(); ++i) src.rgb[i] = std::uint8_t((i * 7919) % 251);
  const Image resized = resize_bilinear_antialiased(src, 109, 73);
  const Image crop = resize_for_input(src, 64, ResizeMode::crop);
  REQUIRE((crop.width == 64 && crop.height == 64));
  // Corner: round((109 - 64) / 2) = round(22.5) = 22 and round((73 - 64) / 2) = round(4.5) = 4.
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x)
      for (int c = 0; c < 3; ++c)
        REQUIRE(crop.rgb[(std::size_t(y) * 64 + std::size_t(x)) * 3 + std::size_t(c)] ==
                resized.rgb[(std::size_t(y + 4) * 109 + std::size_t(x + 22)) * 3 + std::size_t(c)]);
  REQUIRE(resize_for_input(src, 64, ResizeMode::squash).rgb == resize_cubic(src, 64, 64).rgb);
  REQUIRE(parse_resize_mode("crop") == ResizeMode::crop);
  REQUIRE_THROWS_WITH(parse_resize_mode("fit"), Catch::Contains("squash or crop"));
}

TEST_CASE("the image cache resizes in the geometry it is given, as each image is decoded", "[image][resize][loader]") {
  ewnet::test::TempDir dir;
  Image src;
  src.width = 90;
  src.height = 40;
  src.rgb.resize(90 * 40 * 3);
  for (std::size_t i = 0; i < src.rgb.size(); ++i) src.rgb[i] = std::uint8_t((i * 31) % 253);
  for (const char* c : {"a", "b"}) {
    fs::create_directories(dir.path / c);
    write_png((dir.path / c / "x.png").string(), src);
  }
  const Dataset d = scan_image_folder(dir.path.string());
  const ImageCache squash(d, 16, nullptr, 2), crop(d, 16, nullptr, 2, ResizeMode::crop);
  REQUIRE(crop.resize_mode() == ResizeMode::crop);
  REQUIRE(squash.image(0).rgb == resize_cubic(src, 16, 16).rgb);
  REQUIRE(crop.image(1).rgb == resize_for_input(src, 16, ResizeMode::crop).rgb);
  REQUIRE(crop.image(1).rgb != squash.image(1).rgb);
}
