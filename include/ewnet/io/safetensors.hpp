// ewnet/io/safetensors.hpp: reading and writing the safetensors format.
//
// Layout (the format PyTorch, JAX and others read with the `safetensors` package):
//   bytes 0..7    N, the header length, unsigned 64-bit little-endian
//   bytes 8..8+N  a JSON object: for each tensor {"dtype": "F32", "shape": [...],
//                 "data_offsets": [begin, end]} (offsets into the data block, end exclusive),
//                 and optionally "__metadata__": {string: string}
//   then          the data block, each tensor's elements row-major, little-endian
// Writing is atomic (io/files.hpp's AtomicFile): the file is written unnamed beside the target,
// flushed to disk, then renamed over the target and the folder flushed, so a crash or a kill
// mid-save leaves the previous file intact and no checkpoint-sized leftover.
// Reading validates everything (lengths, offsets, overlaps, dtype sizes) before trusting it, and
// every error names the file and the tensor.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <ewnet/error.hpp>
#include <ewnet/io/files.hpp>
#include <ewnet/json.hpp>

namespace ewnet::io {

struct SafeTensor {
  std::string dtype;              // "F32", "F64", "I32", ...
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;

  /// The element count; throws when a dimension is negative or the product overflows (a shape
  /// [2^33, 2^31] must not wrap to 0 and pass as an empty tensor).
  size_t elements() const {
    size_t n = 1;
    for (auto d : shape) {
      EWNET_CHECK_AS(IoError, d >= 0, "negative dimension ", d);
      EWNET_CHECK_AS(IoError, !__builtin_mul_overflow(n, size_t(d), &n), "shape's element count overflows");
    }
    return n;
  }
};

inline size_t dtype_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

template <class T>
const char* dtype_of();
template <> inline const char* dtype_of<float>() { return "F32"; }
template <> inline const char* dtype_of<double>() { return "F64"; }
template <> inline const char* dtype_of<std::int32_t>() { return "I32"; }
template <> inline const char* dtype_of<std::int64_t>() { return "I64"; }

/// The contents of a safetensors file: named tensors and string metadata.
struct SafetensorsFile {
  std::map<std::string, SafeTensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// Writes `file` to `path` atomically (temporary file, fsync, rename).
inline void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  json::Value header = json::Value::object();
  if (!file.metadata.empty()) {
    json::Value meta = json::Value::object();
    for (const auto& [k, v] : file.metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::uint64_t offset = 0;
  for (const auto& [name, t] : file.tensors) {
    EWNET_CHECK_AS(IoError, dtype_size(t.dtype) != 0, path, ": tensor '", name, "' has unknown dtype ", t.dtype);
    EWNET_CHECK_AS(IoError, t.bytes.size() == t.elements() * dtype_size(t.dtype), path, ": tensor '", name, "' holds ",
                   t.bytes.size(), " bytes for ", t.elements(), " elements of ", t.dtype);
    json::Value e = json::Value::object();
    e["dtype"] = t.dtype;
    json::Value shape = json::Value::array();
    for (auto d : t.shape) shape.push_back(json::Value(static_cast<long long>(d)));
    e["shape"] = shape;
    e["data_offsets"] = json::Value::Array{json::Value(static_cast<unsigned long long>(offset)),
                                           json::Value(static_cast<unsigned long long>(offset + t.bytes.size()))};
    header[name] = e;
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8) text += ' ';  // align the data block to 8 bytes

  AtomicFile out(path);
  std::uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = std::uint8_t(std::uint64_t(text.size()) >> (8 * i));
  out.write(len, 8);
  out.write(text.data(), text.size());
  for (const auto& [name, t] : file.tensors) out.write(t.bytes.data(), t.bytes.size());
  out.commit();
}

/// Validates and decodes a whole safetensors file held in memory; `path` names it in errors.
inline SafetensorsFile parse_safetensors(const std::uint8_t* bytes, std::size_t size, const std::string& path) {
  EWNET_CHECK_AS(IoError, size >= 8, path, ": truncated (", size, " bytes; a safetensors file starts with an 8-byte header length)");
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(bytes[i]) << (8 * i);
  EWNET_CHECK_AS(IoError, n <= size - 8 && n <= (std::uint64_t(100) << 20), path, ": header length ", n,
                 " does not fit the file of ", size, " bytes (truncated or not a safetensors file)");
  const std::string text(reinterpret_cast<const char*>(bytes) + 8, size_t(n));
  // A header lists a few numbers a tensor: a million values is thousands of tensors' worth.
  json::Limits limits;
  limits.max_depth = 8;
  limits.max_values = std::size_t(1) << 20;
  const json::Value header = json::parse(text, path + " (header)", limits);
  EWNET_CHECK_AS(IoError, header.is_object(), path, ": header is not a JSON object");
  const std::uint64_t data_size = size - 8 - n;
  const std::uint8_t* data = bytes + 8 + n;

  SafetensorsFile file;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (const auto& [name, e] : header.as_object()) {
    if (name == "__metadata__") {
      try {
        for (const auto& [k, v] : e.as_object()) file.metadata[k] = v.as_string();
      } catch (const Error& err) {
        throw IoError(str(path, ": __metadata__: ", err.what(), " (it maps names to strings)"));
      }
      continue;
    }
    SafeTensor t;
    try {
      t.dtype = e.at("dtype").as_string();
      EWNET_CHECK_AS(IoError, dtype_size(t.dtype) != 0, "unknown dtype ", t.dtype);
      for (const auto& d : e.at("shape").as_array()) {
        EWNET_CHECK_AS(IoError, d.as_int() >= 0, "negative dimension");
        t.shape.push_back(d.as_int());
      }
      size_t bytes = 0;
      EWNET_CHECK_AS(IoError, !__builtin_mul_overflow(t.elements(), dtype_size(t.dtype), &bytes),
                     "shape's byte count overflows");
      const auto& off = e.at("data_offsets").as_array();
      EWNET_CHECK_AS(IoError, off.size() == 2, "data_offsets needs two numbers");
      EWNET_CHECK_AS(IoError, off[0].as_int() >= 0 && off[1].as_int() >= 0, "negative data_offsets");
      const std::uint64_t b = std::uint64_t(off[0].as_int()), end = std::uint64_t(off[1].as_int());
      EWNET_CHECK_AS(IoError, b <= end && end <= data_size, "data [", b, ", ", end, ") lies outside the ", data_size,
                     "-byte data block (truncated file?)");
      EWNET_CHECK_AS(IoError, end - b == bytes, "holds ", end - b, " bytes but its shape and ", t.dtype, " need ", bytes);
      t.bytes.assign(data + b, data + end);
      ranges.emplace_back(b, end);
    } catch (const Error& err) {
      throw IoError(str(path, ": tensor '", name, "': ", err.what()));
    }
    file.tensors.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    EWNET_CHECK_AS(IoError, ranges[i].first >= ranges[i - 1].second, path, ": tensors overlap in the data block");
  return file;
}

/// Reads and validates a whole safetensors file (a regular file only).
inline SafetensorsFile read_safetensors(const std::string& path) {
  // Only a regular file: a directory's "size" is garbage and a FIFO blocks forever.
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  EWNET_CHECK_AS(IoError, !ec && std::filesystem::exists(st), "cannot open checkpoint ", path, ": ",
                 ec ? ec.message() : std::string("no such file"));
  EWNET_CHECK_AS(IoError, std::filesystem::is_regular_file(st), path, ": not a regular file (",
                 std::filesystem::is_directory(st) ? "a directory" : "a device, FIFO or socket",
                 "); a checkpoint is a .safetensors file");
  std::ifstream in(path, std::ios::binary);
  EWNET_CHECK_AS(IoError, in.good(), "cannot open checkpoint ", path, ": ", std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  EWNET_CHECK_AS(IoError, end >= 0, path, ": cannot determine the file's size");
  in.seekg(0);
  std::vector<std::uint8_t> bytes(static_cast<size_t>(end));
  in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size()));
  EWNET_CHECK_AS(IoError, in.good() || bytes.empty(), path, ": read error");
  return parse_safetensors(bytes.data(), bytes.size(), path);
}

}  // namespace ewnet::io
