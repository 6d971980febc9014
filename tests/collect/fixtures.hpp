// Test images made in memory, and a scratch folder per test under the system temp directory.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <stb_image_write.h>

#include <ewnet/data/image.hpp>

namespace ewnet_test {

// A picture of 8x6 flat blocks with colours drawn from `seed`: different seeds give unrelated
// perceptual hashes, and flat blocks compress well and survive JPEG.
inline ewnet::data::Image blocks(int seed, int w = 200, int h = 150) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::uniform_int_distribution<int> d(0, 255);
  std::vector<std::uint8_t> palette(8 * 6 * 3);
  for (auto& c : palette) c = static_cast<std::uint8_t>(d(rng));
  ewnet::data::Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(static_cast<std::size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int b = (y * 6 / h) * 8 + (x * 8 / w);
      for (int c = 0; c < 3; ++c) img.rgb[(static_cast<std::size_t>(y) * w + x) * 3 + c] = palette[b * 3 + c];
    }
  return img;
}

inline void append_bytes(void* ctx, void* data, int size) {
  auto* out = static_cast<std::string*>(ctx);
  out->append(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

inline std::string png_bytes(const std::uint8_t* pixels, int w, int h, int channels) {
  std::string out;
  stbi_write_png_to_func(append_bytes, &out, w, h, channels, pixels, w * channels);
  return out;
}

inline std::string png_bytes(const ewnet::data::Image& img) { return png_bytes(img.rgb.data(), img.width, img.height, 3); }

inline std::string jpg_bytes(const ewnet::data::Image& img, int quality = 92) {
  std::string out;
  stbi_write_jpg_to_func(append_bytes, &out, img.width, img.height, 3, img.rgb.data(), quality);
  return out;
}

inline const std::uint8_t* u8(const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

/// A fresh, empty folder under the system temp directory, removed when the object goes.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("ewnet-collect-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace ewnet_test
