// ewnet/data/generated.hpp: the generated default data set: procedurally drawn, device-like
// objects in two domains, written to disk as image folders so a user can look at them.
//
//   source  8 classes of electronic devices (phone, tablet, laptop, camera, watch, speaker,
//           remote, router), standing in for the paper's 8 smartphone models;
//   target  4 classes of handheld tools (drill, screwdriver, stapler, pliers), standing in for its
//           4 electric screwdrivers.
// Both domains are drawn from the same primitives (rounded bodies, screens, circles, stripes,
// button grids, handles) on the same kinds of background, so features learned on the source are
// useful on the target: the relation transfer learning relies on. Every image varies in position,
// size, colours, background and noise, all drawn from (seed, domain, class, index), so a seed
// reproduces the set byte for byte. It is generated data, not photographs, and says so in a
// GENERATED.txt beside the classes.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <ewnet/data/image.hpp>
#include <ewnet/random.hpp>

namespace ewnet::data {

struct GeneratedOptions {
  std::uint64_t seed = 1;
  int image_size = 96;          // written images are square
  int source_per_class = 40;
  int target_per_class = 64;    // about 51 validation images at 80/20: one image is under 2 points
};

inline const std::vector<std::string>& generated_source_classes() {
  static const std::vector<std::string> c = {"camera", "laptop", "phone", "remote",
                                             "router", "speaker", "tablet", "watch"};
  return c;
}
inline const std::vector<std::string>& generated_target_classes() {
  static const std::vector<std::string> c = {"drill", "pliers", "screwdriver", "stapler"};
  return c;
}

namespace detail {

struct Rgb {
  double r, g, b;
};

/// A canvas in unit coordinates (0..1 across the image), so shapes do not depend on the size.
class Canvas {
 public:
  explicit Canvas(int size) : n_(size) {
    img_.width = img_.height = size;
    img_.rgb.assign(size_t(size) * size * 3, 0);
  }
  Image& image() { return img_; }

  /// Fills pixels whose centre satisfies inside(x, y) (unit coordinates).
  template <class F>
  void fill(const Rgb& c, F inside) {
    for (int y = 0; y < n_; ++y)
      for (int x = 0; x < n_; ++x)
        if (inside((x + 0.5) / n_, (y + 0.5) / n_)) set(x, y, c);
  }
  void rect(double x0, double y0, double x1, double y1, double radius, const Rgb& c) {
    fill(c, [&](double x, double y) {
      if (x < x0 || x > x1 || y < y0 || y > y1) return false;
      // Rounded corners: outside the quarter circle of radius r at each corner.
      const double dx = std::max({x0 + radius - x, 0.0, x - (x1 - radius)});
      const double dy = std::max({y0 + radius - y, 0.0, y - (y1 - radius)});
      return dx * dx + dy * dy <= radius * radius;
    });
  }
  void ellipse(double cx, double cy, double rx, double ry, const Rgb& c) {
    fill(c, [&](double x, double y) {
      const double u = (x - cx) / rx, v = (y - cy) / ry;
      return u * u + v * v <= 1;
    });
  }
  /// A thick segment from (x0, y0) to (x1, y1): points within width/2 of it.
  void line(double x0, double y0, double x1, double y1, double width, const Rgb& c) {
    const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    fill(c, [&](double x, double y) {
      const double t = len2 > 0 ? std::clamp(((x - x0) * dx + (y - y0) * dy) / len2, 0.0, 1.0) : 0.0;
      const double ex = x0 + t * dx - x, ey = y0 + t * dy - y;
      return ex * ex + ey * ey <= 0.25 * width * width;
    });
  }
  /// A vertical gradient background between two colours.
  void background(const Rgb& top, const Rgb& bottom) {
    for (int y = 0; y < n_; ++y) {
      const double t = double(y) / std::max(1, n_ - 1);
      const Rgb c{top.r + t * (bottom.r - top.r), top.g + t * (bottom.g - top.g), top.b + t * (bottom.b - top.b)};
      for (int x = 0; x < n_; ++x) set(x, y, c);
    }
  }
  /// Sensor-like Gaussian noise of standard deviation `amplitude` on every channel value.
  void noise(Random& rng, double amplitude) {
    for (std::uint8_t& v : img_.rgb) v = std::uint8_t(std::lround(std::clamp(v + amplitude * rng.normal(), 0.0, 255.0)));
  }

 private:
  void set(int x, int y, const Rgb& c) {
    std::uint8_t* p = &img_.rgb[3 * (size_t(y) * n_ + x)];
    p[0] = std::uint8_t(std::clamp(c.r, 0.0, 255.0));
    p[1] = std::uint8_t(std::clamp(c.g, 0.0, 255.0));
    p[2] = std::uint8_t(std::clamp(c.b, 0.0, 255.0));
  }
  int n_;
  Image img_;
};

inline Rgb random_colour(Random& rng, double lo, double hi) {
  return {rng.uniform(lo, hi), rng.uniform(lo, hi), rng.uniform(lo, hi)};
}
inline Rgb shade(const Rgb& c, double f) { return {c.r * f, c.g * f, c.b * f}; }

/// A grid of small dots (buttons, keys, LEDs) inside a box.
inline void dot_grid(Canvas& cv, double x0, double y0, double x1, double y1, int cols, int rows, double r,
                     const Rgb& c) {
  for (int j = 0; j < rows; ++j)
    for (int i = 0; i < cols; ++i)
      cv.ellipse(x0 + (i + 0.5) * (x1 - x0) / cols, y0 + (j + 0.5) * (y1 - y0) / rows, r, r, c);
}
/// Horizontal stripes (a keyboard, a grille, a grip) inside a box.
inline void stripes(Canvas& cv, double x0, double y0, double x1, double y1, int count, const Rgb& c) {
  const double h = (y1 - y0) / (2 * count);
  for (int k = 0; k < count; ++k) cv.rect(x0, y0 + (2 * k + 0.5) * h, x1, y0 + (2 * k + 1.5) * h, 0, c);
}

/// The colours of one object: a body, a darker shade of it, a screen and a metal trim.
struct Palette {
  Rgb body, dark, screen, metal;
};

/// Draws the palette's colours from `rng`, in the order every generated set has drawn them.
inline Palette random_palette(Random& rng) {
  const Rgb body = random_colour(rng, 30, 200);
  const Rgb screen{rng.uniform(10, 60), rng.uniform(40, 110), rng.uniform(90, 200)};
  const Rgb metal = random_colour(rng, 150, 230);
  return {body, shade(body, 0.35), screen, metal};
}

/// One of the 8 source devices (class order of generated_source_classes()) centred at (cx, cy), scale s.
inline void draw_device(Canvas& cv, int cls, double cx, double cy, double s, const Palette& c) {
  switch (cls) {
    case 0:  // camera: wide body, big lens, a flash
      cv.rect(cx - 0.34 * s, cy - 0.2 * s, cx + 0.34 * s, cy + 0.22 * s, 0.05 * s, c.body);
      cv.ellipse(cx, cy + 0.01 * s, 0.16 * s, 0.16 * s, c.dark);
      cv.ellipse(cx, cy + 0.01 * s, 0.09 * s, 0.09 * s, c.screen);
      cv.rect(cx + 0.18 * s, cy - 0.16 * s, cx + 0.28 * s, cy - 0.1 * s, 0.01 * s, c.metal);
      break;
    case 1:  // laptop: screen above, keyboard below
      cv.rect(cx - 0.32 * s, cy - 0.34 * s, cx + 0.32 * s, cy + 0.02 * s, 0.02 * s, c.body);
      cv.rect(cx - 0.28 * s, cy - 0.3 * s, cx + 0.28 * s, cy - 0.02 * s, 0, c.screen);
      cv.rect(cx - 0.4 * s, cy + 0.04 * s, cx + 0.4 * s, cy + 0.26 * s, 0.02 * s, c.metal);
      stripes(cv, cx - 0.34 * s, cy + 0.06 * s, cx + 0.34 * s, cy + 0.24 * s, 4, c.dark);
      break;
    case 2:  // phone: tall body, screen, one button
      cv.rect(cx - 0.17 * s, cy - 0.36 * s, cx + 0.17 * s, cy + 0.36 * s, 0.06 * s, c.body);
      cv.rect(cx - 0.14 * s, cy - 0.29 * s, cx + 0.14 * s, cy + 0.24 * s, 0.01 * s, c.screen);
      cv.ellipse(cx, cy + 0.3 * s, 0.03 * s, 0.03 * s, c.metal);
      break;
    case 3:  // remote: narrow body, grid of buttons
      cv.rect(cx - 0.1 * s, cy - 0.4 * s, cx + 0.1 * s, cy + 0.4 * s, 0.05 * s, c.body);
      dot_grid(cv, cx - 0.08 * s, cy - 0.25 * s, cx + 0.08 * s, cy + 0.35 * s, 3, 6, 0.022 * s, c.metal);
      cv.ellipse(cx, cy - 0.32 * s, 0.035 * s, 0.035 * s, Rgb{200, 40, 40});
      break;
    case 4:  // router: flat body, antennas, LEDs
      cv.rect(cx - 0.36 * s, cy, cx + 0.36 * s, cy + 0.16 * s, 0.03 * s, c.body);
      cv.line(cx - 0.26 * s, cy, cx - 0.32 * s, cy - 0.36 * s, 0.035 * s, c.dark);
      cv.line(cx + 0.26 * s, cy, cx + 0.32 * s, cy - 0.36 * s, 0.035 * s, c.dark);
      dot_grid(cv, cx - 0.28 * s, cy + 0.05 * s, cx + 0.28 * s, cy + 0.11 * s, 5, 1, 0.018 * s, Rgb{60, 220, 60});
      break;
    case 5:  // speaker: tall box, two drivers
      cv.rect(cx - 0.2 * s, cy - 0.38 * s, cx + 0.2 * s, cy + 0.38 * s, 0.03 * s, c.body);
      cv.ellipse(cx, cy - 0.18 * s, 0.1 * s, 0.1 * s, c.dark);
      cv.ellipse(cx, cy + 0.14 * s, 0.16 * s, 0.16 * s, c.dark);
      cv.ellipse(cx, cy + 0.14 * s, 0.05 * s, 0.05 * s, c.metal);
      break;
    case 6:  // tablet: near-square body, large screen
      cv.rect(cx - 0.3 * s, cy - 0.36 * s, cx + 0.3 * s, cy + 0.36 * s, 0.05 * s, c.body);
      cv.rect(cx - 0.26 * s, cy - 0.32 * s, cx + 0.26 * s, cy + 0.32 * s, 0.01 * s, c.screen);
      break;
    default:  // watch: round face, strap
      cv.rect(cx - 0.1 * s, cy - 0.42 * s, cx + 0.1 * s, cy + 0.42 * s, 0.02 * s, c.dark);
      cv.ellipse(cx, cy, 0.19 * s, 0.19 * s, c.metal);
      cv.ellipse(cx, cy, 0.15 * s, 0.15 * s, c.screen);
      cv.line(cx, cy, cx + 0.08 * s, cy - 0.06 * s, 0.02 * s, c.metal);
      break;
  }
}

/// One of the 4 target tools (class order of generated_target_classes()) centred at (cx, cy), scale s.
inline void draw_tool(Canvas& cv, int cls, double cx, double cy, double s, const Palette& c) {
  switch (cls) {
    case 0:  // drill: body with a round motor end, a chuck, a grip handle
      cv.rect(cx - 0.3 * s, cy - 0.26 * s, cx + 0.18 * s, cy - 0.04 * s, 0.06 * s, c.body);
      cv.ellipse(cx - 0.28 * s, cy - 0.15 * s, 0.1 * s, 0.12 * s, c.dark);
      cv.rect(cx + 0.18 * s, cy - 0.19 * s, cx + 0.38 * s, cy - 0.11 * s, 0, c.metal);
      cv.rect(cx - 0.14 * s, cy - 0.06 * s, cx + 0.02 * s, cy + 0.36 * s, 0.03 * s, c.body);
      stripes(cv, cx - 0.13 * s, cy + 0.02 * s, cx + 0.01 * s, cy + 0.3 * s, 4, c.dark);
      break;
    case 1:  // pliers: two crossing handles, round pivot
      cv.line(cx - 0.3 * s, cy + 0.38 * s, cx + 0.08 * s, cy - 0.1 * s, 0.07 * s, c.body);
      cv.line(cx + 0.3 * s, cy + 0.38 * s, cx - 0.08 * s, cy - 0.1 * s, 0.07 * s, c.body);
      cv.line(cx + 0.08 * s, cy - 0.1 * s, cx - 0.04 * s, cy - 0.38 * s, 0.05 * s, c.metal);
      cv.line(cx - 0.08 * s, cy - 0.1 * s, cx + 0.04 * s, cy - 0.38 * s, 0.05 * s, c.metal);
      cv.ellipse(cx, cy - 0.1 * s, 0.05 * s, 0.05 * s, c.dark);
      break;
    case 2:  // screwdriver: striped handle, thin shaft
      cv.rect(cx - 0.08 * s, cy + 0.02 * s, cx + 0.08 * s, cy + 0.42 * s, 0.05 * s, c.body);
      stripes(cv, cx - 0.07 * s, cy + 0.08 * s, cx + 0.07 * s, cy + 0.36 * s, 3, c.dark);
      cv.rect(cx - 0.02 * s, cy - 0.42 * s, cx + 0.02 * s, cy + 0.02 * s, 0, c.metal);
      break;
    default:  // stapler: long flat top arm over a base, a screen-like strip of metal
      cv.rect(cx - 0.4 * s, cy + 0.08 * s, cx + 0.4 * s, cy + 0.2 * s, 0.03 * s, c.dark);
      cv.rect(cx - 0.38 * s, cy - 0.1 * s, cx + 0.36 * s, cy + 0.06 * s, 0.07 * s, c.body);
      cv.rect(cx - 0.3 * s, cy - 0.06 * s, cx + 0.2 * s, cy + 0.0 * s, 0.01 * s, c.metal);
      cv.ellipse(cx - 0.36 * s, cy + 0.07 * s, 0.05 * s, 0.05 * s, c.metal);
      break;
  }
}

/// Draws one object of `cls` in `domain` (0 source, 1 target) centred at (cx, cy), scale s.
inline void draw_object(Canvas& cv, int domain, int cls, double cx, double cy, double s, Random& rng) {
  const Palette colours = random_palette(rng);
  if (domain == 0) draw_device(cv, cls, cx, cy, s, colours);
  else draw_tool(cv, cls, cx, cy, s, colours);
}

}  // namespace detail

/// Draws image `index` of class `cls` in domain 0 (source) or 1 (target).
inline Image generate_image(const GeneratedOptions& o, int domain, int cls, int index) {
  Random rng(o.seed, (std::uint64_t(domain) << 48) | (std::uint64_t(cls) << 32) | std::uint64_t(index));
  detail::Canvas cv(o.image_size);
  cv.background(detail::random_colour(rng, 90, 250), detail::random_colour(rng, 60, 240));
  // A few faint distractor blobs, so the object, not the background, decides the class.
  for (int k = int(rng.below(3)); k > 0; --k)
    cv.ellipse(rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.1), rng.uniform(0.03, 0.1),
               detail::random_colour(rng, 80, 220));
  const double s = rng.uniform(0.7, 1.05);
  const double cx = 0.5 + rng.uniform(-0.12, 0.12), cy = 0.5 + rng.uniform(-0.1, 0.1);
  detail::draw_object(cv, domain, cls, cx, cy, s, rng);
  cv.noise(rng, 6.0);
  return std::move(cv.image());
}

/// Writes DIR/source/<class>/NNN.png and DIR/target/<class>/NNN.png with a GENERATED.txt in each
/// domain folder, unless the folder already holds a set generated with the same options (the
/// GENERATED.txt text matches). Returns {source dir, target dir}. Each domain is written into a
/// folder of its own first and renamed into place whole, so processes generating the same set at
/// once never read each other's half-written files (the first rename wins; the others are dropped).
inline std::pair<std::string, std::string> write_generated_dataset(const std::string& dir,
                                                                   const GeneratedOptions& o) {
  namespace fs = std::filesystem;
  const std::string stamp = str("Generated data, not photographs: procedurally drawn device-like objects ",
                                "written by ewnet (include/ewnet/data/generated.hpp).\nseed ", o.seed, ", ",
                                o.image_size, "x", o.image_size, " pixels, ", o.source_per_class,
                                " source and ", o.target_per_class, " target images a class.\n");
  const char* domains[2] = {"source", "target"};
  for (int d = 0; d < 2; ++d) {
    const fs::path root = fs::path(dir) / domains[d];
    const std::string want = stamp + "domain: " + domains[d] + "\n";
    auto complete = [&](const fs::path& folder) {
      std::ifstream in(folder / "GENERATED.txt");
      const std::string existing((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      return existing == want;
    };
    if (complete(root)) continue;
    // Only a set ewnet generated (with other options) is replaced; anything else is left alone.
    EWNET_CHECK_AS(IoError, !fs::exists(root) || fs::exists(root / "GENERATED.txt"), root.string(),
                   " exists and holds no GENERATED.txt: not overwriting a folder ewnet did not write");
    const fs::path staging = fs::path(dir) / str(".", domains[d], ".tmp-", ::getpid());
    fs::remove_all(staging);
    const auto& classes = d == 0 ? generated_source_classes() : generated_target_classes();
    const int per_class = d == 0 ? o.source_per_class : o.target_per_class;
    for (size_t c = 0; c < classes.size(); ++c) {
      const fs::path folder = staging / classes[c];
      fs::create_directories(folder);
      for (int i = 0; i < per_class; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "%03d.png", i);
        write_png((folder / name).string(), generate_image(o, d, int(c), i));
      }
    }
    {
      std::ofstream out(staging / "GENERATED.txt");
      out << want;
      EWNET_CHECK_AS(IoError, out.good(), (staging / "GENERATED.txt").string(), ": cannot write");
    }
    if (complete(root)) {  // another process finished first
      fs::remove_all(staging);
      continue;
    }
    std::error_code ec;
    if (fs::exists(root / "GENERATED.txt")) fs::remove_all(root, ec);  // generated with other options
    fs::rename(staging, root, ec);
    if (ec) {
      fs::remove_all(staging);
      EWNET_CHECK_AS(IoError, complete(root), root.string(), ": cannot write the generated data (", ec.message(), ")");
    }
  }
  return {(fs::path(dir) / "source").string(), (fs::path(dir) / "target").string()};
}

}  // namespace ewnet::data
