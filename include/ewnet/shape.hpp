// ewnet/shape.hpp: the NCHW shape of a tensor.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>

#include <ewnet/error.hpp>

namespace ewnet {

/// An NCHW shape: batch, channels, height, width. Vectors (a fully connected layer's output,
/// class scores) are (n, k, 1, 1), as in cuDNN and MATLAB's 1x1xK activations.
struct Shape {
  int n = 0, c = 0, h = 0, w = 0;

  constexpr Shape() = default;
  constexpr Shape(int n_, int c_, int h_, int w_) : n(n_), c(c_), h(h_), w(w_) {}

  /// Elements of one sample (c*h*w).
  size_t sample_size() const { return size_t(c) * size_t(h) * size_t(w); }
  /// Elements of one channel plane (h*w).
  size_t plane() const { return size_t(h) * size_t(w); }
  /// Elements in all (n*c*h*w).
  size_t size() const { return size_t(n) * sample_size(); }
  /// The same shape with another batch size.
  Shape with_batch(int batch) const { return {batch, c, h, w}; }
  bool valid() const { return n >= 0 && c > 0 && h > 0 && w > 0; }

  friend bool operator==(const Shape& a, const Shape& b) {
    return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w;
  }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) {
    return os << '[' << s.n << 'x' << s.c << 'x' << s.h << 'x' << s.w << ']';
  }
  /// Per-sample shape as MATLAB prints activations: HxWxC.
  std::string hwc() const { return str(h, "x", w, "x", c); }
};

}  // namespace ewnet
