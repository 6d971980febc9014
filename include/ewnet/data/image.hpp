// ewnet/data/image.hpp: decoding image files to 8-bit RGB, within bounds, and writing PNGs.
//
// Every image ewnet reads is checked before it is decoded: a downloaded file or a data set on disk
// can be empty, truncated, not an image at all, claim dimensions that would allocate gigabytes, or
// hold compressed data that costs far more than its header says. The format is decided by the
// content's signature (image_format.hpp), never the file name, and each goes to a decoder whose
// work is bounded: PNG to libspng, JPEG to libjpeg-turbo, WebP to libwebp, BMP, GIF, TGA, PSD, HDR,
// PIC and PNM to stb_image (decode_*.hpp). What a decode will allocate is estimated from the header
// and refused above kMaxDecodeBytes; threads decoding at once share a DecodeBudget.
// decode_for_input and load_for_input resize an image to the network's input as soon as it is
// decoded, under the same reservation, so no full-resolution photo outlives its decode.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <vector>

#include <stb_image_write.h>

#include <ewnet/data/decode_jpeg.hpp>
#include <ewnet/data/decode_png.hpp>
#include <ewnet/data/decode_stb.hpp>
#include <ewnet/data/decode_webp.hpp>
#include <ewnet/data/image_format.hpp>
#include <ewnet/data/pixels.hpp>
#include <ewnet/data/resize.hpp>
#include <ewnet/error.hpp>
#include <ewnet/io/files.hpp>

namespace ewnet::data {

/// A memory allowance shared by threads that decode at once: each decode takes its estimate before
/// it starts and gives it back after, so N threads never hold more than `total` bytes of decoder
/// memory together (a decode larger than the whole allowance waits until it runs alone).
class DecodeBudget {
 public:
  explicit DecodeBudget(std::size_t total) : total_(total) {}
  void acquire(std::size_t n) {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return used_ == 0 || used_ + n <= total_; });
    used_ += n;
  }
  void release(std::size_t n) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      used_ -= n;
    }
    ready_.notify_all();
  }
  std::size_t total() const { return total_; }

 private:
  std::size_t total_, used_ = 0;
  std::mutex mutex_;
  std::condition_variable ready_;
};

namespace detail {

// Holds `bytes` of a DecodeBudget (when there is one) for its lifetime.
class BudgetReservation {
 public:
  BudgetReservation(DecodeBudget* budget, std::size_t bytes) : budget_(budget), bytes_(bytes) {
    if (budget_) budget_->acquire(bytes_);
  }
  ~BudgetReservation() {
    if (budget_) budget_->release(bytes_);
  }
  BudgetReservation(const BudgetReservation&) = delete;
  BudgetReservation& operator=(const BudgetReservation&) = delete;

 private:
  DecodeBudget* budget_;
  std::size_t bytes_;
};

// The header checks and the memory estimate of a decode; `extra` is what the caller adds after it
// (a resize). Throws IoError naming `what` when the estimate is over kMaxDecodeBytes.
inline std::size_t checked_decode_memory(const std::uint8_t* bytes, std::size_t size, const std::string& what,
                                         const ImageInfo& info, std::size_t extra, bool& turned) {
  turned = info.format == ImageFormat::jpeg && jpeg_exif_orientation(bytes, size) != 1;
  const std::size_t need = decode_memory_estimate(info, turned) + extra;
  EWNET_CHECK_AS(IoError, need <= kMaxDecodeBytes, what, ": decoding this ", info.width, "x", info.height, " ",
                 image_format_name(info.format), " (", info.channels, " channels",
                 info.bytes_per_sample == 4 ? ", 32-bit float HDR" : info.bytes_per_sample == 2 ? ", 16-bit" : "",
                 ") would take about ", (need >> 20) + 1, " MiB, over the ", kMaxDecodeBytes >> 20,
                 " MiB an image may use");
  return need;
}

inline Image decode_checked(const std::uint8_t* bytes, std::size_t size, const std::string& what,
                            const ImageInfo& info, bool turned) {
  switch (info.format) {
    case ImageFormat::png: return decode_png(bytes, size, what, info);
    case ImageFormat::jpeg: return decode_jpeg(bytes, size, what, info, jpeg_library_memory(info, turned));
    case ImageFormat::webp: return decode_webp(bytes, size, what, info);
    default: return decode_stb(bytes, size, what, info);
  }
}

}  // namespace detail

/// Decodes an encoded image (PNG, JPEG, WebP, or a format stb_image reads) to 8-bit RGB, a JPEG
/// turned upright by its EXIF orientation; grey is spread to three channels, alpha composited onto
/// white. Throws IoError naming `what` and the reason when the input is empty, not an image,
/// corrupt or truncated, larger than kMaxImageSide / kMaxImagePixels, costlier to decode than
/// kMaxDecodeBytes (checked from the header before any pixel memory is allocated), or a JPEG of
/// more than kMaxJpegScans scans. With a `budget`, waits until the decode's estimate fits in what
/// other threads leave of it.
inline Image decode_image(const std::uint8_t* bytes, std::size_t size, const std::string& what,
                          DecodeBudget* budget = nullptr) {
  const ImageInfo info = probe_image(bytes, size, what);
  bool turned = false;
  const std::size_t need = detail::checked_decode_memory(bytes, size, what, info, 0, turned);
  const detail::BudgetReservation reservation(budget, need);
  return detail::decode_checked(bytes, size, what, info, turned);
}

inline Image decode_image(const std::vector<std::uint8_t>& bytes, const std::string& what) {
  return decode_image(bytes.data(), bytes.size(), what);
}

/// decode_image, then resize_for_input to size x size in geometry `mode`, under one reservation
/// of `budget` that covers both: the full-resolution image is gone when this returns.
inline Image decode_for_input(const std::uint8_t* bytes, std::size_t size, const std::string& what, int input_size,
                              ResizeMode mode, DecodeBudget* budget = nullptr) {
  const ImageInfo info = probe_image(bytes, size, what);
  bool turned = false;
  // Either way up: EXIF may turn the image before it is resized.
  const std::size_t resize = std::max(resize_memory_estimate(info.width, info.height, input_size),
                                      resize_memory_estimate(info.height, info.width, input_size));
  const std::size_t need = detail::checked_decode_memory(bytes, size, what, info, resize, turned);
  const detail::BudgetReservation reservation(budget, need);
  return resize_for_input(detail::decode_checked(bytes, size, what, info, turned), input_size, mode);
}

/// Reads a whole file into memory. Throws IoError naming the path when it cannot be opened or read.
inline std::vector<std::uint8_t> read_file_bytes(const std::string& path,
                                                 std::uintmax_t max_bytes = kMaxImageFileBytes) {
  // The size is checked before the file is read whole (a sparse 2.5 GB file costs nothing on disk).
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  EWNET_CHECK_AS(IoError, !ec && std::filesystem::is_regular_file(st), path, ": cannot open for reading (",
                 ec ? ec.message() : std::string("not a regular file"), ")");
  const std::uintmax_t file_bytes = std::filesystem::file_size(path, ec);
  EWNET_CHECK_AS(IoError, !ec && file_bytes <= max_bytes, path, ": ", file_bytes, " bytes is larger than the ",
                 max_bytes >> 20, " MiB a file may have here");
  std::ifstream in(path, std::ios::binary);
  EWNET_CHECK_AS(IoError, in.good(), path, ": cannot open for reading");
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EWNET_CHECK_AS(IoError, !in.bad(), path, ": read error");
  return bytes;
}

/// What training does with an image file's bytes before it keeps the image (load_image): refuses a
/// file over kMaxImageFileBytes, then decode_image. A program that gathers files for training
/// (ewnet-collect) checks them with this, so it keeps nothing training would refuse.
inline Image decode_image_file(const std::uint8_t* bytes, std::size_t size, const std::string& what,
                               DecodeBudget* budget = nullptr) {
  EWNET_CHECK_AS(IoError, size <= kMaxImageFileBytes, what, ": ", size, " bytes is larger than the ",
                 kMaxImageFileBytes >> 20, " MiB an image file may have");
  return decode_image(bytes, size, what, budget);
}

/// Reads and decodes an image file; errors name the path.
inline Image load_image(const std::string& path, DecodeBudget* budget = nullptr) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), path, budget);
}

/// Reads, decodes and resizes an image file to the network's input (decode_for_input); errors name the path.
inline Image load_for_input(const std::string& path, int input_size, ResizeMode mode, DecodeBudget* budget = nullptr) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return decode_for_input(bytes.data(), bytes.size(), path, input_size, mode, budget);
}

/// The bytes of `img` as a PNG file.
inline std::vector<std::uint8_t> encode_png(const Image& img) {
  EWNET_CHECK_AS(IoError, img.width > 0 && img.height > 0 &&
                     img.rgb.size() == static_cast<std::size_t>(img.width) * std::size_t(img.height) * 3,
                 "cannot encode an empty or inconsistent image as PNG");
  std::vector<std::uint8_t> out;
  const int ok = stbi_write_png_to_func(
      [](void* context, void* data, int n) {
        auto* o = static_cast<std::vector<std::uint8_t>*>(context);
        o->insert(o->end(), static_cast<std::uint8_t*>(data), static_cast<std::uint8_t*>(data) + n);
      },
      &out, img.width, img.height, 3, img.rgb.data(), img.width * 3);
  EWNET_CHECK_AS(IoError, ok, "cannot encode a ", img.width, "x", img.height, " image as PNG");
  return out;
}

/// Writes a PNG as every output is written (io::write_file_atomically: a temporary, flushed, then
/// renamed). Throws IoError naming the path when the image is empty or the file cannot be written.
inline void write_png(const std::string& path, const Image& img) {
  EWNET_CHECK_AS(IoError, img.width > 0 && img.height > 0 &&
                     img.rgb.size() == static_cast<std::size_t>(img.width) * std::size_t(img.height) * 3,
                 path, ": cannot write an empty or inconsistent image as PNG");
  const std::vector<std::uint8_t> png = encode_png(img);
  io::write_file_atomically(path, png.data(), png.size());
}

}  // namespace ewnet::data
