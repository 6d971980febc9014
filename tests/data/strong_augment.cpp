// Strong augmentation: each operation against values worked out by hand on tiny images, then
// against Pillow itself (Debian's python3-pil) on random ones, bit for bit; the policy's draws.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <tuple>

#include <ewnet/data/strong_augment.hpp>

#include "test_files.hpp"

using namespace ewnet::data;
using ewnet::Random;

namespace {
const Rgb kGrey{128, 128, 128};

/// An image from rows of pixels, each pixel given as one grey level or as RGB.
Image image_of(int w, int h, const std::vector<Rgb>& pixels) {
  REQUIRE(pixels.size() == size_t(w) * size_t(h));
  Image img;
  img.width = w;
  img.height = h;
  for (const Rgb& p : pixels) img.rgb.insert(img.rgb.end(), p.begin(), p.end());
  return img;
}
Image grey_image(int w, int h, const std::vector<int>& levels) {
  std::vector<Rgb> px;
  for (int v : levels) px.push_back({std::uint8_t(v), std::uint8_t(v), std::uint8_t(v)});
  return image_of(w, h, px);
}
Rgb pixel(const Image& img, int x, int y) {
  const size_t i = 3 * (size_t(y) * size_t(img.width) + size_t(x));
  return {img.rgb[i], img.rgb[i + 1], img.rgb[i + 2]};
}
Image random_image(int w, int h, std::uint64_t seed, int lo = 0, int hi = 256) {
  Random rng(seed);
  Image img;
  img.width = w;
  img.height = h;
  for (int i = 0; i < 3 * w * h; ++i) img.rgb.push_back(std::uint8_t(lo + int(rng.below(std::uint64_t(hi - lo)))));
  return img;
}
}  // namespace

TEST_CASE("enhancements blend towards a degenerate image, truncated and clipped as Pillow does", "[strong_augment]") {
  const Image px = image_of(1, 1, {{101, 200, 7}});
  // brightness: f x, truncated (50.5 -> 50, 3.5 -> 3); above 1 clipped at 255
  REQUIRE(pixel(adjust_brightness(px, 0.5), 0, 0) == Rgb{50, 100, 3});
  REQUIRE(pixel(adjust_brightness(px, 1.5), 0, 0) == Rgb{151, 255, 10});
  REQUIRE(adjust_brightness(px, 1.0).rgb == px.rgb);
  // colour: grey of pure red = (255 * 19595 + 32768) >> 16 = 76
  const Image red = image_of(1, 1, {{255, 0, 0}});
  REQUIRE(pixel(adjust_color(red, 0), 0, 0) == Rgb{76, 76, 76});
  REQUIRE(pixel(adjust_color(red, 0.5), 0, 0) == Rgb{165, 38, 38});  // 76 + (255 - 76)/2 = 165.5
  REQUIRE(pixel(adjust_color(red, 2), 0, 0) == Rgb{255, 0, 0});      // 434 and -76, clipped
  // contrast: black and white average to grey level 127.5, rounded to 128
  const Image bw = image_of(2, 1, {{0, 0, 0}, {255, 255, 255}});
  REQUIRE(pixel(adjust_contrast(bw, 0), 0, 0) == Rgb{128, 128, 128});
  REQUIRE(pixel(adjust_contrast(bw, 0.5), 0, 0) == Rgb{64, 64, 64});
  REQUIRE(pixel(adjust_contrast(bw, 0.5), 1, 0) == Rgb{191, 191, 191});  // 128 + 127/2 = 191.5
  // sharpness: the smoothed centre of a lone 130 is 5 * 130 / 13 = 50; the border is kept
  const Image spot = grey_image(3, 3, {0, 0, 0, 0, 130, 0, 0, 0, 0});
  REQUIRE(pixel(adjust_sharpness(spot, 0), 1, 1) == Rgb{50, 50, 50});
  REQUIRE(pixel(adjust_sharpness(spot, 0), 0, 1) == Rgb{0, 0, 0});
  REQUIRE(pixel(adjust_sharpness(spot, 2), 1, 1) == Rgb{210, 210, 210});  // 50 + 2 (130 - 50)
  // the centre weighs 5 of 13: eight ones around a 14 -> (8 + 5 * 14) / 13 = 6
  const Image mixed = grey_image(3, 3, {1, 1, 1, 1, 14, 1, 1, 1, 1});
  REQUIRE(pixel(adjust_sharpness(mixed, 0), 1, 1) == Rgb{6, 6, 6});
}

TEST_CASE("posterize, solarize, equalize and auto-contrast are per-value tables", "[strong_augment]") {
  const Image v = grey_image(4, 1, {183, 100, 127, 200});
  REQUIRE(pixel(posterize(v, 4), 0, 0) == Rgb{176, 176, 176});  // 0b1011'0111 -> 0b1011'0000
  REQUIRE(pixel(posterize(v, 1), 0, 0) == Rgb{128, 128, 128});
  REQUIRE(pixel(posterize(v, 1), 1, 0) == Rgb{0, 0, 0});
  REQUIRE(posterize(v, 8).rgb == v.rgb);
  REQUIRE_THROWS_WITH(posterize(v, 0), Catch::Contains("bits must be in 1..8"));
  const Image s = solarize(v, 128);
  REQUIRE(pixel(s, 2, 0) == Rgb{127, 127, 127});  // below the threshold: kept
  REQUIRE(pixel(s, 3, 0) == Rgb{55, 55, 55});     // 255 - 200
  REQUIRE(solarize(v, 256).rgb == v.rgb);
  // equalize: 300 pixels at 50 and 10 at 100: step (310 - 10) / 255 = 1; level 50 maps to the
  // count below it (0), level 100 to 300, clipped to 255
  std::vector<int> levels(310, 50);
  for (int i = 0; i < 10; ++i) levels[size_t(i)] = 100;
  const Image e = equalize(grey_image(31, 10, levels));
  REQUIRE(pixel(e, 0, 0) == Rgb{255, 255, 255});
  REQUIRE(pixel(e, 20, 5) == Rgb{0, 0, 0});
  // a small image has step 0: unchanged
  REQUIRE(equalize(v).rgb == v.rgb);
  // auto-contrast: [50, 150] stretched to [0, 255]; 100 -> int(100 * 2.55 - 127.5) = 127
  const Image a = auto_contrast(grey_image(3, 1, {50, 100, 150}));
  REQUIRE(pixel(a, 0, 0) == Rgb{0, 0, 0});
  REQUIRE(pixel(a, 1, 0) == Rgb{127, 127, 127});
  REQUIRE(pixel(a, 2, 0) == Rgb{255, 255, 255});
  const Image flat = grey_image(2, 1, {9, 9});
  REQUIRE(auto_contrast(flat).rgb == flat.rgb);
}

TEST_CASE("geometric operations map output pixel centres to input pixels, the outside filled", "[strong_augment]") {
  // 3 x 3 with pixel (x, y) at level 10 y + x + 1
  const Image g = grey_image(3, 3, {1, 2, 3, 11, 12, 13, 21, 22, 23});
  auto level = [](const Image& img, int x, int y) { return int(pixel(img, x, y)[0]); };
  // translate_x(1): pixel x reads x + 1, the content moves left, the right column is filled
  const Image t = translate_x(g, 1, kGrey);
  REQUIRE(level(t, 0, 0) == 2);
  REQUIRE(level(t, 1, 2) == 23);
  REQUIRE(level(t, 2, 1) == 128);
  REQUIRE(level(translate_y(g, -1, kGrey), 0, 1) == 1);  // content moves down
  REQUIRE(level(translate_y(g, -1, kGrey), 0, 0) == 128);
  // rotate(90) counter-clockwise: output (x, y) reads input (2 - y, x), so the top-right corner
  // comes to the top-left
  const Image r = rotate(g, 90, kGrey);
  REQUIRE(level(r, 0, 0) == 3);
  REQUIRE(level(r, 2, 0) == 23);
  REQUIRE(level(r, 0, 2) == 1);
  REQUIRE(level(r, 1, 1) == 12);
  REQUIRE(rotate(g, 0, kGrey).rgb == g.rgb);
  // shear_x(0.5) on 2 x 2: row y reads x + 0.5 (y + 1/2) + 1/2 - 1/2, rounded down: row 0 reads
  // 0.75 and 1.75 (columns 0, 1), row 1 reads 1.25 and 2.25 (column 1, then outside)
  const Image two = grey_image(2, 2, {1, 2, 11, 12});
  const Image sh = shear_x(two, 0.5, kGrey);
  REQUIRE(level(sh, 0, 0) == 1);
  REQUIRE(level(sh, 1, 0) == 2);
  REQUIRE(level(sh, 0, 1) == 12);
  REQUIRE(level(sh, 1, 1) == 128);
  // cutout: a 2 x 2 square centred at (2, 2) covers columns and rows 1..2; at a corner it is clipped
  Image c = grey_image(5, 5, std::vector<int>(25, 0));
  cutout(c, 2, 2, 2, Rgb{7, 8, 9});
  REQUIRE(pixel(c, 1, 1) == Rgb{7, 8, 9});
  REQUIRE(pixel(c, 2, 2) == Rgb{7, 8, 9});
  REQUIRE(pixel(c, 3, 3) == Rgb{0, 0, 0});
  REQUIRE(pixel(c, 0, 1) == Rgb{0, 0, 0});
  Image corner = grey_image(5, 5, std::vector<int>(25, 0));
  cutout(corner, 0, 0, 3, kGrey);
  int filled = 0;
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 5; ++x) filled += pixel(corner, x, y) == kGrey;
  REQUIRE(filled == 9);  // columns and rows 0..2
}

TEST_CASE("every operation equals Pillow's on random images, bit for bit", "[strong_augment][pillow]") {
  ewnet::test::TempDir dir("ewnet-strong-augment");
  const std::string python = "/usr/bin/python3";
  const auto probe = ewnet::test::run_command(python + " -c 'import PIL.Image'");
  if (probe.first != 0) {
    if (std::getenv("CI")) FAIL("Pillow (python3-pil) is missing: tools/install-deps.sh installs it");
    std::printf("skipped: Debian's python3 with Pillow (python3-pil) is not installed\n");
    std::exit(77);
  }
  // Two inputs: full-range noise (odd, non-square) and a narrow range (auto-contrast and equalize
  // stretch it), the second large enough for equalize's step to be above zero.
  const std::map<std::string, Image> inputs = {{"noise", random_image(9, 7, 5)},
                                               {"narrow", random_image(20, 16, 6, 60, 91)}};
  for (const auto& [name, img] : inputs) {
    std::ofstream f(dir.file(name + ".ppm"), std::ios::binary);
    f << "P6\n" << img.width << " " << img.height << "\n255\n";
    f.write(reinterpret_cast<const char*>(img.rgb.data()), std::streamsize(img.rgb.size()));
  }
  // name -> (Pillow's expression on `im`, ewnet's operation)
  using Op = std::function<Image(const Image&)>;
  const std::vector<std::tuple<std::string, std::string, Op>> ops = {
      {"color0", "ImageEnhance.Color(im).enhance(0.0)", [](const Image& i) { return adjust_color(i, 0.0); }},
      {"color03", "ImageEnhance.Color(im).enhance(0.3)", [](const Image& i) { return adjust_color(i, 0.3); }},
      {"color17", "ImageEnhance.Color(im).enhance(1.7)", [](const Image& i) { return adjust_color(i, 1.7); }},
      {"contrast045", "ImageEnhance.Contrast(im).enhance(0.45)", [](const Image& i) { return adjust_contrast(i, 0.45); }},
      {"contrast19", "ImageEnhance.Contrast(im).enhance(1.9)", [](const Image& i) { return adjust_contrast(i, 1.9); }},
      {"brightness006", "ImageEnhance.Brightness(im).enhance(0.06)", [](const Image& i) { return adjust_brightness(i, 0.06); }},
      {"brightness18", "ImageEnhance.Brightness(im).enhance(1.8)", [](const Image& i) { return adjust_brightness(i, 1.8); }},
      {"sharpness01", "ImageEnhance.Sharpness(im).enhance(0.1)", [](const Image& i) { return adjust_sharpness(i, 0.1); }},
      {"sharpness16", "ImageEnhance.Sharpness(im).enhance(1.6)", [](const Image& i) { return adjust_sharpness(i, 1.6); }},
      {"posterize3", "ImageOps.posterize(im, 3)", [](const Image& i) { return posterize(i, 3); }},
      {"posterize6", "ImageOps.posterize(im, 6)", [](const Image& i) { return posterize(i, 6); }},
      {"solarize77", "ImageOps.solarize(im, 77)", [](const Image& i) { return solarize(i, 77); }},
      {"solarize200", "ImageOps.solarize(im, 200)", [](const Image& i) { return solarize(i, 200); }},
      {"equalize", "ImageOps.equalize(im)", [](const Image& i) { return equalize(i); }},
      {"autocontrast", "ImageOps.autocontrast(im)", [](const Image& i) { return auto_contrast(i); }},
      {"rotate17", "im.rotate(17, fillcolor=(128, 128, 128))", [](const Image& i) { return rotate(i, 17, kGrey); }},
      {"rotate-23.5", "im.rotate(-23.5, fillcolor=(128, 128, 128))", [](const Image& i) { return rotate(i, -23.5, kGrey); }},
      {"rotate30", "im.rotate(30, fillcolor=(128, 128, 128))", [](const Image& i) { return rotate(i, 30, kGrey); }},
      {"shearx03", "im.transform(im.size, Image.AFFINE, (1, 0.3, 0, 0, 1, 0), fillcolor=(128, 128, 128))",
       [](const Image& i) { return shear_x(i, 0.3, kGrey); }},
      {"shearx-017", "im.transform(im.size, Image.AFFINE, (1, -0.17, 0, 0, 1, 0), fillcolor=(128, 128, 128))",
       [](const Image& i) { return shear_x(i, -0.17, kGrey); }},
      {"sheary025", "im.transform(im.size, Image.AFFINE, (1, 0, 0, 0.25, 1, 0), fillcolor=(128, 128, 128))",
       [](const Image& i) { return shear_y(i, 0.25, kGrey); }},
      {"translatex3", "im.transform(im.size, Image.AFFINE, (1, 0, 3, 0, 1, 0), fillcolor=(128, 128, 128))",
       [](const Image& i) { return translate_x(i, 3, kGrey); }},
      {"translatex-2.6", "im.transform(im.size, Image.AFFINE, (1, 0, -2.6, 0, 1, 0), fillcolor=(128, 128, 128))",
       [](const Image& i) { return translate_x(i, -2.6, kGrey); }},
      {"translatey4.2", "im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, 4.2), fillcolor=(128, 128, 128))",
       [](const Image& i) { return translate_y(i, 4.2, kGrey); }},
  };
  std::string script = "import sys\nfrom PIL import Image, ImageEnhance, ImageOps\nd = sys.argv[1]\n"
                       "for name in ('noise', 'narrow'):\n    im = Image.open(f'{d}/{name}.ppm').convert('RGB')\n";
  for (const auto& [op, expression, unused] : ops)
    script += "    open(f'{d}/{name}-" + op + ".rgb', 'wb').write((" + expression + ").tobytes())\n";
  std::ofstream(dir.file("reference.py")) << script;
  const auto [status, output] = ewnet::test::run_command(python + " " + dir.file("reference.py") + " " + dir.path.string());
  INFO(output);
  REQUIRE(status == 0);
  for (const auto& [name, img] : inputs)
    for (const auto& [op, expression, apply] : ops) {
      std::ifstream f(dir.file(name + "-" + op + ".rgb"), std::ios::binary);
      const std::vector<std::uint8_t> expected((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      const Image mine = apply(img);
      int differ = 0;
      for (size_t i = 0; i < mine.rgb.size() && i < expected.size(); ++i) differ += mine.rgb[i] != expected[i];
      INFO(name << ", " << expression << ": " << differ << " of " << expected.size() << " values differ");
      REQUIRE(mine.rgb.size() == expected.size());
      REQUIRE(differ == 0);
    }
}

TEST_CASE("the policy draws N operations and cutout from the generator, reproducibly", "[strong_augment]") {
  const Image img = random_image(16, 16, 7);
  StrongAugmentOptions o;
  Random a(3, 9), b(3, 9), c(4, 9);
  const Image x = strong_augment(img, o, a), y = strong_augment(img, o, b), z = strong_augment(img, o, c);
  REQUIRE(x.rgb == y.rgb);
  REQUIRE(x.rgb != z.rgb);
  REQUIRE(x.width == 16);
  REQUIRE(x.rgb.size() == img.rgb.size());
  // Magnitude 0 leaves every operation that has a magnitude as the identity, cutout included.
  StrongAugmentOptions zero;
  zero.magnitude = 0;
  zero.ops = {StrongOp::rotate, StrongOp::color, StrongOp::posterize, StrongOp::solarize, StrongOp::shear_x,
              StrongOp::translate_y, StrongOp::sharpness, StrongOp::contrast, StrongOp::brightness};
  zero.operations = 4;
  Random r(1);
  REQUIRE(strong_augment(img, zero, r).rgb == img.rgb);
  // Off: the image itself; strong_view_to_chw off: exactly the weak augmentation.
  StrongAugmentOptions off;
  off.enabled = false;
  Random r2(2);
  REQUIRE(strong_augment(img, off, r2).rgb == img.rgb);
  std::vector<float> weak(3 * 256), view(3 * 256);
  Random w1(5), w2(5);
  AugmentOptions geometric;
  augment_to_chw(img, weak.data(), geometric, w1);
  strong_view_to_chw(img, view.data(), geometric, off, w2);
  REQUIRE(weak == view);
  // Cutout alone at full strength covers half the side: an 8 x 8 square of the fill.
  StrongAugmentOptions cut;
  cut.operations = 0;
  cut.magnitude = 10;
  cut.fill = Rgb{1, 2, 3};
  const Image black = grey_image(16, 16, std::vector<int>(256, 0));
  Random r3(8);
  const Image holed = strong_augment(black, cut, r3);
  int filled = 0;
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) filled += pixel(holed, x, y) == Rgb{1, 2, 3};
  REQUIRE(filled > 0);
  REQUIRE(filled <= 64);
  REQUIRE(describe(o) == "RandAugment, 2 of 14 operations at random magnitudes, then cutout up to 0.5 of the side");
  StrongAugmentOptions bad;
  bad.magnitude = 11;
  REQUIRE_THROWS_WITH(check(bad), Catch::Contains("magnitude must be in 0..10"));
}
