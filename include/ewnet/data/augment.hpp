// ewnet/data/augment.hpp: training-time augmentation (as MATLAB's imageDataAugmenter inside an
// augmentedImageDatastore) and the conversion of an 8-bit RGB image to a planar CHW tensor slice.
//
// Every augmentation here is one affine map of the image plane, so the four of them cost a single
// resampling pass:
//   random resized crop  a square window of side s*S (s^2 in [min_area, 1]) anywhere in the image,
//                        stretched back to S x S;
//   translation          the window moves by up to +-translate*S pixels in x and y;
//   rotation             by an angle uniform in [-rotate, +rotate] degrees about the centre;
//   horizontal flip      with probability 1/2.
// For output pixel p (centre-relative), the source point is q = c + t + s * R(theta) * F p, where
// F negates x when flipping; q is sampled bilinearly with edges clamped (replicated), so a rotated
// image has no black corners for the network to learn.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <ewnet/data/image.hpp>
#include <ewnet/random.hpp>

namespace ewnet::data {

struct AugmentOptions {
  bool enabled = true;
  double min_area = 0.64;   // of the random resized crop (0.64: the crop's side is at least 80%)
  double translate = 0.1;   // of the image side, each direction
  double rotate = 10;       // degrees, each direction
  bool flip = true;
};

/// The identity conversion: RGB interleaved uint8 (H x W x 3) to planar CHW values 0..255.
template <class T>
void image_to_chw(const Image& img, T* dst) {
  const size_t plane = size_t(img.width) * size_t(img.height);
  for (size_t i = 0; i < plane; ++i)
    for (size_t c = 0; c < 3; ++c) dst[c * plane + i] = T(img.rgb[3 * i + c]);
}

/// Writes an augmented copy of `img` (square or not; the output has its size) as planar CHW
/// values 0..255. The draws come from `rng` in a fixed order, so a seeded generator reproduces
/// the same augmentation.
template <class T>
void augment_to_chw(const Image& img, T* dst, const AugmentOptions& o, Random& rng) {
  if (!o.enabled) {
    image_to_chw(img, dst);
    return;
  }
  const int W = img.width, H = img.height;
  const double scale = std::sqrt(rng.uniform(std::clamp(o.min_area, 0.01, 1.0), 1.0));
  // A smaller window leaves room to place it: the crop's own freedom, plus the translation.
  const double room_x = (1 - scale) * 0.5 * W + o.translate * W;
  const double room_y = (1 - scale) * 0.5 * H + o.translate * H;
  const double tx = rng.uniform(-room_x, room_x), ty = rng.uniform(-room_y, room_y);
  const double theta = rng.uniform(-o.rotate, o.rotate) * 3.14159265358979323846 / 180.0;
  const bool flip = o.flip && rng.uniform() < 0.5;
  const double cs = std::cos(theta) * scale, sn = std::sin(theta) * scale;
  const double cx = 0.5 * (W - 1), cy = 0.5 * (H - 1);
  const size_t plane = size_t(W) * size_t(H);
  const std::uint8_t* src = img.rgb.data();
  for (int y = 0; y < H; ++y) {
    for (int x = 0; x < W; ++x) {
      const double px = flip ? cx - x : x - cx, py = y - cy;
      const double qx = std::clamp(cx + tx + cs * px - sn * py, 0.0, double(W - 1));
      const double qy = std::clamp(cy + ty + sn * px + cs * py, 0.0, double(H - 1));
      const int x0 = std::min(int(qx), W - 2 < 0 ? 0 : W - 2), y0 = std::min(int(qy), H - 2 < 0 ? 0 : H - 2);
      const int x1 = std::min(x0 + 1, W - 1), y1 = std::min(y0 + 1, H - 1);
      const double fx = qx - x0, fy = qy - y0;
      const size_t o00 = 3 * (size_t(y0) * W + x0), o01 = 3 * (size_t(y0) * W + x1);
      const size_t o10 = 3 * (size_t(y1) * W + x0), o11 = 3 * (size_t(y1) * W + x1);
      for (size_t c = 0; c < 3; ++c) {
        const double top = src[o00 + c] + fx * (src[o01 + c] - src[o00 + c]);
        const double bottom = src[o10 + c] + fx * (src[o11 + c] - src[o10 + c]);
        dst[c * plane + size_t(y) * W + x] = T(top + fy * (bottom - top));
      }
    }
  }
}

}  // namespace ewnet::data
