#include "collect/phash.hpp"

#include <vector>

namespace ewnet::collect {

std::uint64_t dhash(const data::Image& img) {
  constexpr int kCols = 9, kRows = 8;
  // Box average: each cell covers the source pixels whose index maps into it, so every pixel counts
  // once regardless of how the size divides; a tiny source repeats pixels instead.
  std::vector<double> sum(kCols * kRows, 0.0);
  std::vector<int> count(kCols * kRows, 0);
  const int w = img.width, h = img.height;
  if (w <= 0 || h <= 0) return 0;
  if (w >= kCols && h >= kRows) {
    for (int y = 0; y < h; ++y) {
      const int cy = static_cast<int>(static_cast<long long>(y) * kRows / h);
      const std::uint8_t* row = img.rgb.data() + static_cast<std::size_t>(y) * w * 3;
      for (int x = 0; x < w; ++x) {
        const int cx = static_cast<int>(static_cast<long long>(x) * kCols / w);
        // ITU-R BT.601 luma.
        sum[cy * kCols + cx] += 0.299 * row[3 * x] + 0.587 * row[3 * x + 1] + 0.114 * row[3 * x + 2];
        ++count[cy * kCols + cx];
      }
    }
  } else {
    for (int cy = 0; cy < kRows; ++cy)
      for (int cx = 0; cx < kCols; ++cx) {
        const int x = cx * w / kCols, y = cy * h / kRows;
        const std::uint8_t* p = img.rgb.data() + (static_cast<std::size_t>(y) * w + x) * 3;
        sum[cy * kCols + cx] = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        count[cy * kCols + cx] = 1;
      }
  }
  std::uint64_t hash = 0;
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < kCols - 1; ++c) {
      const double left = sum[r * kCols + c] / count[r * kCols + c];
      const double right = sum[r * kCols + c + 1] / count[r * kCols + c + 1];
      if (left > right) hash |= std::uint64_t{1} << (r * 8 + c);
    }
  return hash;
}

int hamming_distance(std::uint64_t a, std::uint64_t b) {
  int n = 0;
  for (std::uint64_t x = a ^ b; x != 0; x &= x - 1) ++n;
  return n;
}

}  // namespace ewnet::collect
