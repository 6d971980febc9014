// ewnet/data/resize.hpp: resizing decoded images to a network's square input, in one of two
// geometries, each with the filter it is defined with.
//
//   squash  the whole image to S x S, its aspect ratio not kept (MATLAB's augmentedImageDatastore;
//           ewnet's default, and what every checkpoint without "ewnet.resize" was trained with),
//           filtered by resize_cubic: stb_image_resize's cubics, Mitchell-Netravali (B = C = 1/3)
//           when shrinking, Catmull-Rom when enlarging, integrated over each output pixel's
//           footprint so a large downscale averages rather than aliases.
//   crop    torchvision's evaluation preprocessing for ImageNet weights, Resize(round(S 256/224))
//           + CenterCrop(S): the shorter side to S' = round(S 256 / 224) (256 for S = 224, 342 for
//           Inception-v3's 299), the longer to floor(S' long / short), then the central S x S,
//           its corner at round((side - S) / 2) with Python's round-half-to-even; filtered by
//           resize_bilinear_antialiased, which is Pillow's BILINEAR, what torchvision's Resize
//           runs on the PIL images its loaders give (tests/data/torchvision_preprocess.py compares).
//
// resize_bilinear_antialiased: separable, horizontal pass first (to 8 bits), then vertical. For
// an output of n samples from m, scale s = m / n, the triangle filter f(t) = max(0, 1 - |t|)
// widened to support r = max(s, 1) when shrinking; output sample i, centred at c = (i + 1/2) s in
// input coordinates, takes input samples j in [trunc(c - r + 1/2), trunc(c + r + 1/2)) (clipped to
// the image) with weights f((j - c + 1/2) / max(s, 1)) normalised to sum 1, held as 22-bit fixed
// point (w 2^22 rounded half away from zero), summed with 2^21 added and shifted back, clipped to
// 0..255. Those are Pillow's numbers exactly, so the two agree to the bit on the same pixels.
//
// The geometry is a property of a trained model: the checkpoint records it ("ewnet.resize"),
// ImageCache, Classifier and the ONNX metadata use it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <stb_image_resize.h>

#include <ewnet/data/image_format.hpp>
#include <ewnet/data/pixels.hpp>
#include <ewnet/error.hpp>

namespace ewnet::data {

enum class ResizeMode { squash, crop };

/// The checkpoint metadata key that records a model's geometry ("squash" or "crop"); absent means squash.
inline constexpr const char* kResizeMetadataKey = "ewnet.resize";

inline const char* resize_mode_name(ResizeMode m) { return m == ResizeMode::crop ? "crop" : "squash"; }

inline ResizeMode parse_resize_mode(const std::string& s) {
  if (s == "squash") return ResizeMode::squash;
  if (s == "crop") return ResizeMode::crop;
  throw Error(str("unknown resize mode '", s, "' (squash or crop)"));
}

/// The geometry a model file's metadata records (kResizeMetadataKey; squash when absent, as every
/// file written before it was recorded). Throws IoError naming `path` and the key for another value.
inline ResizeMode recorded_resize_mode(const std::map<std::string, std::string>& metadata, const std::string& path) {
  const auto it = metadata.find(kResizeMetadataKey);
  if (it == metadata.end()) return ResizeMode::squash;
  try {
    return parse_resize_mode(it->second);
  } catch (const Error& e) {
    throw IoError(str(path, ": metadata '", kResizeMetadataKey, "': ", e.what()));
  }
}

/// One sentence saying what a geometry does to an image, for programs and the ONNX metadata.
inline std::string resize_mode_description(ResizeMode m, int size) {
  if (m == ResizeMode::crop)
    return str("crop: the shorter side resized to ", std::lround(size * 256.0 / 224.0),
               " with Pillow's bilinear filter (antialiased), then the central ", size, "x", size,
               " (torchvision's Resize + CenterCrop)");
  return str("squash: the whole image resized to ", size, "x", size,
             " (aspect ratio not kept) with cubic filters (Mitchell shrinking, Catmull-Rom enlarging)");
}

namespace detail {

inline void check_resize(const Image& src, int width, int height) {
  EWNET_CHECK_AS(ShapeError, src.width > 0 && src.height > 0 &&
                     src.rgb.size() == static_cast<std::size_t>(src.width) * std::size_t(src.height) * 3,
                 "resize: source image is empty or its pixel buffer does not match ", src.width, "x", src.height);
  EWNET_CHECK_AS(ShapeError, width > 0 && height > 0 && width <= kMaxImageSide && height <= kMaxImageSide,
                 "resize: target size ", width, "x", height, " is out of range");
}

inline constexpr int kResizePrecision = 22;  // Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2

// The taps of a 1-D antialiased bilinear resize from `in` samples to `out` (see the file comment):
// for output i, the first input sample first[i], count[i] samples, weights[i * taps ...].
struct BilinearTaps {
  int taps = 0;
  std::vector<int> first, count;
  std::vector<std::int32_t> weights;
};

inline BilinearTaps bilinear_taps(int in, int out) {
  const double scale = double(in) / double(out), widen = std::max(scale, 1.0), support = widen;
  BilinearTaps t;
  t.taps = int(std::ceil(support)) * 2 + 1;
  t.first.resize(std::size_t(out));
  t.count.resize(std::size_t(out));
  t.weights.assign(std::size_t(out) * std::size_t(t.taps), 0);
  std::vector<double> w(std::size_t(t.taps));
  for (int i = 0; i < out; ++i) {
    const double centre = (i + 0.5) * scale;
    const int lo = std::max(0, int(centre - support + 0.5));
    const int hi = std::min(in, int(centre + support + 0.5));
    const int n = std::max(0, hi - lo);
    double sum = 0;
    for (int j = 0; j < n; ++j) {
      const double x = std::fabs((j + lo - centre + 0.5) / widen);
      w[std::size_t(j)] = x < 1 ? 1 - x : 0;
      sum += w[std::size_t(j)];
    }
    for (int j = 0; j < n; ++j) {
      const double v = sum != 0 ? w[std::size_t(j)] / sum : w[std::size_t(j)];
      const double fixed = v * double(1 << kResizePrecision);
      t.weights[std::size_t(i) * std::size_t(t.taps) + std::size_t(j)] =
          std::int32_t(v < 0 ? std::trunc(-0.5 + fixed) : std::trunc(0.5 + fixed));
    }
    t.first[std::size_t(i)] = lo;
    t.count[std::size_t(i)] = n;
  }
  return t;
}

inline std::uint8_t clip_fixed(std::int64_t acc) {
  const std::int64_t v = acc >> kResizePrecision;
  return std::uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace detail

/// Resizes to width x height with stb_image_resize's default filters: Mitchell-Netravali when
/// shrinking, Catmull-Rom when enlarging (see the file comment). The squash geometry's filter.
inline Image resize_cubic(const Image& src, int width, int height) {
  detail::check_resize(src, width, height);
  Image out;
  out.width = width;
  out.height = height;
  if (width == src.width && height == src.height) {
    out.rgb = src.rgb;
    return out;
  }
  out.rgb.resize(std::size_t(width) * std::size_t(height) * 3);
  if (!stbir_resize_uint8(src.rgb.data(), src.width, src.height, src.width * 3, out.rgb.data(), width, height,
                          width * 3, 3))
    throw Error(str("resize: stb_image_resize failed for ", src.width, "x", src.height, " -> ", width, "x", height));
  return out;
}

/// Resizes to width x height with Pillow's BILINEAR filter, antialiased when shrinking (see the
/// file comment): what torchvision's Resize does to a PIL image. The crop geometry's filter.
inline Image resize_bilinear_antialiased(const Image& src, int width, int height) {
  detail::check_resize(src, width, height);
  const bool horizontal = width != src.width, vertical = height != src.height;
  const detail::BilinearTaps tx = detail::bilinear_taps(src.width, width);
  const detail::BilinearTaps ty = detail::bilinear_taps(src.height, height);
  // The horizontal pass covers only the rows the vertical one reads.
  const int row0 = vertical ? ty.first[0] : 0;
  const int rows = vertical ? ty.first[std::size_t(height) - 1] + ty.count[std::size_t(height) - 1] - row0 : src.height;
  Image mid;
  const Image* cur = &src;
  int cur_row0 = 0;
  if (horizontal) {
    mid.width = width;
    mid.height = rows;
    mid.rgb.resize(std::size_t(width) * std::size_t(rows) * 3);
    for (int y = 0; y < rows; ++y) {
      const std::uint8_t* in = &src.rgb[std::size_t(y + row0) * std::size_t(src.width) * 3];
      std::uint8_t* o = &mid.rgb[std::size_t(y) * std::size_t(width) * 3];
      for (int x = 0; x < width; ++x) {
        const std::int32_t* k = &tx.weights[std::size_t(x) * std::size_t(tx.taps)];
        const int first = tx.first[std::size_t(x)], n = tx.count[std::size_t(x)];
        for (int c = 0; c < 3; ++c) {
          std::int64_t acc = std::int64_t(1) << (detail::kResizePrecision - 1);
          for (int j = 0; j < n; ++j) acc += std::int64_t(in[std::size_t(first + j) * 3 + std::size_t(c)]) * k[j];
          o[std::size_t(x) * 3 + std::size_t(c)] = detail::clip_fixed(acc);
        }
      }
    }
    cur = &mid;
    cur_row0 = row0;
  }
  if (!vertical) {
    if (horizontal) return mid;
    return src;
  }
  Image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(std::size_t(width) * std::size_t(height) * 3);
  const std::size_t stride = std::size_t(cur->width) * 3;
  for (int y = 0; y < height; ++y) {
    const std::int32_t* k = &ty.weights[std::size_t(y) * std::size_t(ty.taps)];
    const int first = ty.first[std::size_t(y)] - cur_row0, n = ty.count[std::size_t(y)];
    std::uint8_t* o = &out.rgb[std::size_t(y) * std::size_t(width) * 3];
    for (std::size_t i = 0; i < std::size_t(width) * 3; ++i) {
      std::int64_t acc = std::int64_t(1) << (detail::kResizePrecision - 1);
      for (int j = 0; j < n; ++j) acc += std::int64_t(cur->rgb[std::size_t(first + j) * stride + i]) * k[j];
      o[i] = detail::clip_fixed(acc);
    }
  }
  return out;
}

/// The size of the image the crop geometry resizes to before cropping S x S from its centre:
/// torchvision's Resize(S') of an image w x h, S' = round(S 256 / 224) on the shorter side.
inline void crop_resize_size(int w, int h, int size, int& rw, int& rh) {
  const long long shorter = std::lround(size * 256.0 / 224.0);
  if (w <= h) {
    rw = int(shorter);
    rh = int(double(shorter * h) / double(w));  // Python's int(): truncation
  } else {
    rh = int(shorter);
    rw = int(double(shorter * w) / double(h));
  }
  rw = std::max(rw, size);
  rh = std::max(rh, size);
}

/// The image as the network sees it: size x size in geometry `mode` (see the file comment).
inline Image resize_for_input(const Image& src, int size, ResizeMode mode) {
  if (mode == ResizeMode::squash) return resize_cubic(src, size, size);
  int rw = 0, rh = 0;
  crop_resize_size(src.width, src.height, size, rw, rh);
  const Image r = resize_bilinear_antialiased(src, rw, rh);
  // torchvision's CenterCrop: int(round((side - S) / 2.0)), Python rounding half to even.
  const int left = int(std::nearbyint((rw - size) / 2.0)), top = int(std::nearbyint((rh - size) / 2.0));
  Image out;
  out.width = size;
  out.height = size;
  out.rgb.resize(std::size_t(size) * std::size_t(size) * 3);
  for (int y = 0; y < size; ++y)
    std::copy_n(&r.rgb[(std::size_t(top + y) * std::size_t(rw) + std::size_t(left)) * 3], std::size_t(size) * 3,
                &out.rgb[std::size_t(y) * std::size_t(size) * 3]);
  return out;
}

/// Memory resize_for_input takes beyond its source, at most: the resized image before the crop,
/// the horizontal pass's rows, stb_image_resize's float rows, and the result.
inline std::size_t resize_memory_estimate(int width, int height, int size) {
  int rw = 0, rh = 0;
  crop_resize_size(width, height, size, rw, rh);
  const std::size_t out = std::size_t(rw) * std::size_t(rh) * 3;
  return out + std::size_t(rw) * std::size_t(height) * 3 + 64 * (std::size_t(width) + std::size_t(rw)) * 12 +
         std::size_t(size) * std::size_t(size) * 3 + (std::size_t(1) << 20);
}

}  // namespace ewnet::data
