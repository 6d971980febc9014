// SHA-256 (FIPS 180-4), used to name kept images and to find exact duplicates.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace ewnet::collect {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  /// Finishes the hash; the object must not be updated afterwards.
  std::array<std::uint8_t, 32> digest();
  /// Lower-case hex of digest().
  std::string hex();

 private:
  void block(const std::uint8_t* p);
  std::array<std::uint32_t, 8> h_;
  std::array<std::uint8_t, 64> buf_{};
  std::size_t buffered_ = 0;
  std::uint64_t total_bytes_ = 0;
};

/// Hex SHA-256 of a byte range.
std::string sha256_hex(const void* data, std::size_t size);
inline std::string sha256_hex(const std::string& s) { return sha256_hex(s.data(), s.size()); }

}  // namespace ewnet::collect
