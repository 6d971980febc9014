// ewnet/data/pixels.hpp: the decoded image every decoder returns (8-bit RGB), and the conversion of
// a decoder's grey, grey+alpha, RGB or RGBA samples to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ewnet::data {

/// An 8-bit RGB image, interleaved (R, G, B per pixel), rows top to bottom.
struct Image {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;  // width * height * 3 bytes
};

namespace detail {

/// `count` pixels of `channels` 8-bit samples to RGB: grey is copied to all three channels; alpha
/// is composited onto white, the background a photographed device sits on when its cut-out is
/// shown: out = (c a + 255 (255 - a)) / 255, rounded.
inline void samples_to_rgb(const std::uint8_t* src, int channels, std::size_t count, std::uint8_t* dst) {
  auto over_white = [](unsigned c, unsigned a) {
    return static_cast<std::uint8_t>((c * a + 255u * (255u - a) + 127u) / 255u);
  };
  for (std::size_t i = 0; i < count; ++i, dst += 3) {
    switch (channels) {
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
}

}  // namespace detail
}  // namespace ewnet::data
