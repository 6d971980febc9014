// ewnet/data/strong_augment.hpp: strong augmentation of 8-bit images (RandAugment, Cubuk et al. 2020,
// as FixMatch, Sohn et al. 2020, draws it) and the strong view of an image: these operations, then
// the weak augmentation of data/augment.hpp (flip, crop, shift, small rotation).
//
// Every operation is Pillow's (ImageEnhance, ImageOps, Image.rotate and Image.transform: what the
// papers' code runs), reproduced to the bit on 8-bit RGB (tests/data/strong_augment.cpp compares):
//   blend(a, x, f)  a + f (x - a) per value in single precision, truncated, clipped to 0..255
//   colour          blend(grey(x), x, f); grey = (19595 R + 38470 G + 7471 B + 2^15) >> 16 (ITU-R 601 luma)
//   contrast        blend(m, x, f); m = the mean grey level of the image, rounded
//   brightness      blend(0, x, f) = f x
//   sharpness       blend(smooth(x), x, f); smooth = the 3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13,
//                   rounded, the border pixels left as they are
//   posterize       keeps the top `bits` bits of each value
//   solarize        v >= threshold becomes 255 - v
//   equalize        per channel: with h the histogram and s = (N - h[last used level]) / 255 (integer
//                   division), level i becomes (s/2 + sum_{j<i} h[j]) / s
//   auto-contrast   per channel: [min, max] stretched to [0, 255], truncated
//   rotate, shear, translate   the output pixel centre (x + 1/2, y + 1/2) maps to the input point
//                   A (x + 1/2, y + 1/2) + t, read by nearest neighbour (the positions in 16.16 fixed
//                   point, as Pillow computes them); points outside the image take `fill`.
//                   rotate(d): by d degrees counter-clockwise about the centre; shear_x(s): x + s y;
//                   translate_x(p): the content moves p pixels left (Pillow's convention)
//   cutout          a square of `fill`, centred at a uniform random pixel, clipped to the image
//                   (DeVries and Taylor 2017; FixMatch applies it after RandAugment)
//
// The policy (strong_augment): N operations drawn uniformly, with replacement, from the list, each at
// a strength s in [0, 1] (a uniform draw for each, FixMatch's "random magnitude", or RandAugment's
// fixed magnitude M/10), then cutout. A strength maps to the parameters of RandAugment's ranges:
// enhancement factors 1 +- 0.9 s, rotation +-30 s degrees, shear +-0.3 s, translation +-0.3 s of
// the side, posterize to 8 - round(4 s) bits, solarize above 256 (1 - s), cutout up to `cutout`
// of the side. Every draw comes from the generator given, in a fixed order, so a seeded generator
// (the loaders draw one per (seed, epoch, sample)) reproduces the same view.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <ewnet/data/augment.hpp>
#include <ewnet/data/image.hpp>
#include <ewnet/error.hpp>
#include <ewnet/random.hpp>

namespace ewnet::data {

using Rgb = std::array<std::uint8_t, 3>;

// ---- the operations -----------------------------------------------------------------------------

namespace detail {

/// Pillow's blend of two 8-bit values: a + f (x - a) in single precision, truncated toward zero,
/// clipped when f leaves [0, 1].
inline std::uint8_t blend_value(int a, int x, float f) {
  const float v = float(a) + f * float(x - a);
  if (v <= 0.0f) return 0;
  if (v >= 255.0f) return 255;
  return std::uint8_t(v);
}

/// blend(degenerate, img, f) for every value.
inline Image blend(const Image& degenerate, const Image& img, double factor) {
  Image out = img;
  const float f = float(factor);
  for (size_t i = 0; i < img.rgb.size(); ++i) out.rgb[i] = blend_value(degenerate.rgb[i], img.rgb[i], f);
  return out;
}

/// The grey level of an RGB pixel (ITU-R 601-2 luma, 16-bit fixed point, rounded).
inline std::uint8_t grey_level(const std::uint8_t* p) {
  return std::uint8_t((std::uint32_t(p[0]) * 19595u + std::uint32_t(p[1]) * 38470u + std::uint32_t(p[2]) * 7471u +
                       0x8000u) >> 16);
}

/// Applies one 256-entry table per channel.
inline Image apply_tables(const Image& img, const std::array<std::array<std::uint8_t, 256>, 3>& lut) {
  Image out = img;
  for (size_t i = 0; i < img.rgb.size(); ++i) out.rgb[i] = lut[i % 3][img.rgb[i]];
  return out;
}

inline std::array<std::array<std::uint64_t, 256>, 3> histograms(const Image& img) {
  std::array<std::array<std::uint64_t, 256>, 3> h{};
  for (size_t i = 0; i < img.rgb.size(); ++i) ++h[i % 3][img.rgb[i]];
  return h;
}

inline long long floor_div(long long v, long long d) { return v >= 0 ? v / d : -((-v + d - 1) / d); }

}  // namespace detail

/// ImageEnhance.Color: 0 gives the grey image, 1 the image, above 1 more saturated.
inline Image adjust_color(const Image& img, double factor) {
  Image grey = img;
  for (size_t p = 0; p + 2 < img.rgb.size(); p += 3)
    grey.rgb[p] = grey.rgb[p + 1] = grey.rgb[p + 2] = detail::grey_level(&img.rgb[p]);
  return detail::blend(grey, img, factor);
}

/// ImageEnhance.Contrast: 0 gives a flat image at the mean grey level, 1 the image.
inline Image adjust_contrast(const Image& img, double factor) {
  double sum = 0;
  const size_t pixels = img.rgb.size() / 3;
  for (size_t p = 0; p < pixels; ++p) sum += detail::grey_level(&img.rgb[3 * p]);
  const int mean = pixels ? int(sum / double(pixels) + 0.5) : 0;
  Image flat = img;
  std::fill(flat.rgb.begin(), flat.rgb.end(), std::uint8_t(mean));
  return detail::blend(flat, img, factor);
}

/// ImageEnhance.Brightness: 0 gives black, 1 the image.
inline Image adjust_brightness(const Image& img, double factor) {
  Image black = img;
  std::fill(black.rgb.begin(), black.rgb.end(), std::uint8_t(0));
  return detail::blend(black, img, factor);
}

/// ImageEnhance.Sharpness: 0 gives the smoothed image, 1 the image, above 1 sharper.
inline Image adjust_sharpness(const Image& img, double factor) {
  Image smooth = img;
  const int W = img.width, H = img.height;
  for (int y = 1; y + 1 < H; ++y)
    for (int x = 1; x + 1 < W; ++x)
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) sum += img.rgb[3 * (size_t(y + dy) * size_t(W) + size_t(x + dx)) + size_t(c)];
        sum += 4 * img.rgb[3 * (size_t(y) * size_t(W) + size_t(x)) + size_t(c)];  // the centre weighs 5
        smooth.rgb[3 * (size_t(y) * size_t(W) + size_t(x)) + size_t(c)] = std::uint8_t((2 * sum + 13) / 26);
      }
  return detail::blend(smooth, img, factor);
}

/// ImageOps.posterize: keeps the top `bits` (1..8) bits of every value.
inline Image posterize(const Image& img, int bits) {
  EWNET_CHECK(bits >= 1 && bits <= 8, "posterize: bits must be in 1..8, got ", bits);
  const std::uint8_t mask = std::uint8_t(0xFF << (8 - bits));
  Image out = img;
  for (std::uint8_t& v : out.rgb) v = std::uint8_t(v & mask);
  return out;
}

/// ImageOps.solarize: every value at or above `threshold` (0..256) is inverted.
inline Image solarize(const Image& img, int threshold) {
  Image out = img;
  for (std::uint8_t& v : out.rgb)
    if (int(v) >= threshold) v = std::uint8_t(255 - v);
  return out;
}

/// ImageOps.equalize: per channel, the histogram spread over the 256 levels.
inline Image equalize(const Image& img) {
  const auto h = detail::histograms(img);
  std::array<std::array<std::uint8_t, 256>, 3> lut{};
  for (int c = 0; c < 3; ++c) {
    std::uint64_t total = 0, last = 0;
    int used = 0;
    for (int i = 0; i < 256; ++i)
      if (h[size_t(c)][size_t(i)]) {
        total += h[size_t(c)][size_t(i)];
        last = h[size_t(c)][size_t(i)];
        ++used;
      }
    const std::uint64_t step = used <= 1 ? 0 : (total - last) / 255;
    std::uint64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
      lut[size_t(c)][size_t(i)] = step ? std::uint8_t(std::min<std::uint64_t>(n / step, 255)) : std::uint8_t(i);
      n += h[size_t(c)][size_t(i)];
    }
  }
  return detail::apply_tables(img, lut);
}

/// ImageOps.autocontrast (no cut-off): per channel, the darkest level becomes 0 and the lightest 255.
inline Image auto_contrast(const Image& img) {
  const auto h = detail::histograms(img);
  std::array<std::array<std::uint8_t, 256>, 3> lut{};
  for (int c = 0; c < 3; ++c) {
    int lo = 0, hi = 255;
    while (lo < 255 && !h[size_t(c)][size_t(lo)]) ++lo;
    while (hi > 0 && !h[size_t(c)][size_t(hi)]) --hi;
    for (int i = 0; i < 256; ++i) {
      if (hi <= lo) {
        lut[size_t(c)][size_t(i)] = std::uint8_t(i);
        continue;
      }
      const double scale = 255.0 / (hi - lo), offset = -lo * scale;
      const int v = int(i * scale + offset);  // truncated toward zero, as Python's int()
      lut[size_t(c)][size_t(i)] = std::uint8_t(std::clamp(v, 0, 255));
    }
  }
  return detail::apply_tables(img, lut);
}

/// Image.transform(size, AFFINE, a, NEAREST, fillcolor=fill): the output pixel (x, y) takes the
/// input pixel at (a0 X + a1 Y + a2, a3 X + a4 Y + a5) with X = x + 1/2, Y = y + 1/2, rounded down;
/// outside the input, `fill`. As Pillow: a pure scale and shift (a1 = a3 = 0) in double precision,
/// anything else in 16.16 fixed point.
inline Image affine_nearest(const Image& img, const std::array<double, 6>& a, Rgb fill) {
  const int W = img.width, H = img.height;
  Image out;
  out.width = W;
  out.height = H;
  out.rgb.resize(img.rgb.size());
  auto put = [&](int x, int y, long long sx, long long sy) {
    const size_t o = 3 * (size_t(y) * size_t(W) + size_t(x));
    if (sx >= 0 && sx < W && sy >= 0 && sy < H) {
      const size_t i = 3 * (size_t(sy) * size_t(W) + size_t(sx));
      std::copy_n(&img.rgb[i], 3, &out.rgb[o]);
    } else {
      std::copy(fill.begin(), fill.end(), &out.rgb[o]);
    }
  };
  // Pillow's coordinate to pixel index: below zero is outside (-1), else truncation.
  auto index = [](double v) { return v < 0.0 ? -1LL : (long long)v; };
  if (a[1] == 0 && a[3] == 0) {
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) put(x, y, index(a[2] + a[0] * (x + 0.5)), index(a[5] + a[4] * (y + 0.5)));
    return out;
  }
  auto fixed = [](double v) { return (long long)std::floor(v * 65536.0 + 0.5); };
  const long long a0 = fixed(a[0]), a1 = fixed(a[1]), a3 = fixed(a[3]), a4 = fixed(a[4]);
  const long long a2 = fixed(a[2] + a[0] * 0.5 + a[1] * 0.5), a5 = fixed(a[5] + a[3] * 0.5 + a[4] * 0.5);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const long long fx = a2 + a1 * y + a0 * x, fy = a5 + a4 * y + a3 * x;
      put(x, y, detail::floor_div(fx, 65536), detail::floor_div(fy, 65536));
    }
  return out;
}

/// Image.rotate(degrees, NEAREST, fillcolor=fill): counter-clockwise about the image's centre.
inline Image rotate(const Image& img, double degrees, Rgb fill) {
  if (std::fmod(degrees, 360.0) == 0) return img;
  const double t = -degrees * 3.14159265358979323846 / 180.0;
  // Pillow rounds the matrix to 15 decimals, so that a right angle gives exact zeros and ones.
  auto r15 = [](double v) { return std::round(v * 1e15) / 1e15; };
  const double c = r15(std::cos(t)), s = r15(std::sin(t));
  const double cx = img.width / 2.0, cy = img.height / 2.0;
  // The inverse map about the centre: q = R (p - centre) + centre.
  return affine_nearest(img, {c, s, c * -cx + s * -cy + cx, -s, c, -s * -cx + c * -cy + cy}, fill);
}

/// transform(AFFINE, (1, s, 0, 0, 1, 0)): row y reads x + s y (about the top-left corner).
inline Image shear_x(const Image& img, double s, Rgb fill) { return affine_nearest(img, {1, s, 0, 0, 1, 0}, fill); }
inline Image shear_y(const Image& img, double s, Rgb fill) { return affine_nearest(img, {1, 0, 0, s, 1, 0}, fill); }
/// transform(AFFINE, (1, 0, p, 0, 1, 0)): pixel x reads x + p, so the content moves p pixels left.
inline Image translate_x(const Image& img, double p, Rgb fill) { return affine_nearest(img, {1, 0, p, 0, 1, 0}, fill); }
inline Image translate_y(const Image& img, double p, Rgb fill) { return affine_nearest(img, {1, 0, 0, 0, 1, p}, fill); }

/// Fills the square of side `side` centred at (cx, cy) - columns [max(0, cx - side/2), + side) and
/// the same rows, clipped to the image - with `fill`.
inline void cutout(Image& img, int cx, int cy, int side, Rgb fill) {
  const int x0 = std::max(0, cx - side / 2), y0 = std::max(0, cy - side / 2);
  const int x1 = std::min(img.width, x0 + side), y1 = std::min(img.height, y0 + side);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) std::copy(fill.begin(), fill.end(), &img.rgb[3 * (size_t(y) * size_t(img.width) + size_t(x))]);
}

// ---- the policy ---------------------------------------------------------------------------------

/// RandAugment's operations, as FixMatch lists them.
enum class StrongOp {
  identity, auto_contrast, equalize, rotate, solarize, color, posterize, contrast, brightness, sharpness,
  shear_x, shear_y, translate_x, translate_y
};

inline const std::vector<StrongOp>& all_strong_ops() {
  static const std::vector<StrongOp> ops = {
      StrongOp::identity,   StrongOp::auto_contrast, StrongOp::equalize,  StrongOp::rotate,  StrongOp::solarize,
      StrongOp::color,      StrongOp::posterize,     StrongOp::contrast,  StrongOp::brightness,
      StrongOp::sharpness,  StrongOp::shear_x,       StrongOp::shear_y,   StrongOp::translate_x,
      StrongOp::translate_y};
  return ops;
}

inline const char* strong_op_name(StrongOp op) {
  switch (op) {
    case StrongOp::identity: return "identity";
    case StrongOp::auto_contrast: return "auto-contrast";
    case StrongOp::equalize: return "equalize";
    case StrongOp::rotate: return "rotate";
    case StrongOp::solarize: return "solarize";
    case StrongOp::color: return "colour";
    case StrongOp::posterize: return "posterize";
    case StrongOp::contrast: return "contrast";
    case StrongOp::brightness: return "brightness";
    case StrongOp::sharpness: return "sharpness";
    case StrongOp::shear_x: return "shear-x";
    case StrongOp::shear_y: return "shear-y";
    case StrongOp::translate_x: return "translate-x";
    case StrongOp::translate_y: return "translate-y";
  }
  return "?";
}

struct StrongAugmentOptions {
  bool enabled = true;
  int operations = 2;      // N, drawn with replacement (RandAugment's and FixMatch's 2)
  int magnitude = -1;      // M in 0..10 for every operation; negative: a uniform strength each (FixMatch)
  double cutout = 0.5;     // the largest cutout side, as a fraction of the image side (0: no cutout)
  Rgb fill{128, 128, 128}; // what geometric operations bring in from outside, and cutout's colour
  std::vector<StrongOp> ops = all_strong_ops();
};

/// One line for a run's summary.
inline std::string describe(const StrongAugmentOptions& o) {
  if (!o.enabled) return "off";
  std::string s = str("RandAugment, ", o.operations, " of ", o.ops.size(), " operations at ",
                      o.magnitude < 0 ? std::string("random magnitudes") : str("magnitude ", o.magnitude, "/10"));
  if (o.cutout > 0) s += str(", then cutout up to ", o.cutout, " of the side");
  return s;
}

inline void check(const StrongAugmentOptions& o) {
  EWNET_CHECK(o.operations >= 0 && o.operations <= 16, "strong augmentation: operations must be in 0..16, got ",
              o.operations);
  EWNET_CHECK(o.magnitude <= 10, "strong augmentation: magnitude must be in 0..10 (or negative for random), got ",
              o.magnitude);
  EWNET_CHECK(o.cutout >= 0 && o.cutout <= 1, "strong augmentation: cutout must be in [0, 1], got ", o.cutout);
  EWNET_CHECK(o.operations == 0 || !o.ops.empty(), "strong augmentation: no operations to draw from");
}

/// Applies operation `op` at strength s in [0, 1] with direction `sign` (+1 or -1) for the
/// operations that have one.
inline Image apply_strong_op(const Image& img, StrongOp op, double s, int sign, Rgb fill) {
  const double factor = 1 + sign * 0.9 * s;
  switch (op) {
    case StrongOp::identity: return img;
    case StrongOp::auto_contrast: return auto_contrast(img);
    case StrongOp::equalize: return equalize(img);
    case StrongOp::rotate: return rotate(img, sign * 30 * s, fill);
    case StrongOp::solarize: return solarize(img, int(std::lround(256 * (1 - s))));
    case StrongOp::color: return adjust_color(img, factor);
    case StrongOp::posterize: return posterize(img, 8 - int(std::lround(4 * s)));
    case StrongOp::contrast: return adjust_contrast(img, factor);
    case StrongOp::brightness: return adjust_brightness(img, factor);
    case StrongOp::sharpness: return adjust_sharpness(img, factor);
    case StrongOp::shear_x: return shear_x(img, sign * 0.3 * s, fill);
    case StrongOp::shear_y: return shear_y(img, sign * 0.3 * s, fill);
    case StrongOp::translate_x: return translate_x(img, sign * 0.3 * s * img.width, fill);
    case StrongOp::translate_y: return translate_y(img, sign * 0.3 * s * img.height, fill);
  }
  return img;
}

/// RandAugment then cutout, every draw from `rng` in a fixed order: for each operation its index,
/// its strength and its sign; then cutout's strength and centre.
inline Image strong_augment(const Image& img, const StrongAugmentOptions& o, Random& rng) {
  if (!o.enabled) return img;
  Image out = img;
  const auto strength = [&] { return o.magnitude < 0 ? rng.uniform() : std::max(0, o.magnitude) / 10.0; };
  for (int i = 0; i < o.operations; ++i) {
    const StrongOp op = o.ops[size_t(rng.below(o.ops.size()))];
    const double s = strength();
    const int sign = rng.uniform() < 0.5 ? -1 : 1;
    out = apply_strong_op(out, op, s, sign, o.fill);
  }
  if (o.cutout > 0) {
    const int side = int(std::lround(strength() * o.cutout * std::min(img.width, img.height)));
    const int cx = int(rng.below(std::uint64_t(std::max(1, img.width))));
    const int cy = int(rng.below(std::uint64_t(std::max(1, img.height))));
    cutout(out, cx, cy, side, o.fill);
  }
  return out;
}

/// The strong view as planar CHW values 0..255: strong_augment, then the weak augmentation
/// (augment_to_chw) of the result, both drawing from `rng`.
template <class T>
void strong_view_to_chw(const Image& img, T* dst, const AugmentOptions& weak, const StrongAugmentOptions& strong,
                        Random& rng) {
  if (!strong.enabled) {
    augment_to_chw(img, dst, weak, rng);
    return;
  }
  augment_to_chw(strong_augment(img, strong, rng), dst, weak, rng);
}

}  // namespace ewnet::data
