// ewnet/data/decode_jpeg.hpp: JPEG through libjpeg-turbo (Debian's libjpeg62-turbo-dev), bounded.
//
// Bounds, besides the header checks every image gets (image_format.hpp):
//   - scans: a progress monitor stops the decode when the file's scan count passes kMaxJpegScans
//     (a progressive file repeating one scan 20,000 times is a pass over the whole image each);
//   - memory: libjpeg's own allowance (max_memory_to_use) is set to decode_memory_estimate's
//     coefficient and row budget, so a file whose scans need more whole-image coefficient memory
//     than its header promised stops with an error instead of allocating it;
//   - completeness: a JPEG that stops in the middle of its scan data is refused (libjpeg, like
//     stb_image, would fill the rest with grey and pass a truncated download as an image).
// libjpeg reports errors through a callback that must not return; it returns here by longjmp, so
// the functions that call libjpeg hold no object with a destructor.
// CMYK and YCCK files (Adobe's, from print workflows) decode to CMYK and are turned into RGB
// here; grey ones are spread to RGB by libjpeg. The EXIF orientation (phone photos) is applied.
#pragma once

#include <climits>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <jpeglib.h>

#include <ewnet/data/image_format.hpp>
#include <ewnet/data/pixels.hpp>
#include <ewnet/error.hpp>

namespace ewnet::data {

namespace detail {

// A complete JPEG has an end-of-image marker (FF D9) after its first start-of-scan (FF DA).
// Entropy-coded data stuffs every FF byte as FF 00, so FF D9 cannot occur inside the scan by
// accident; markers before the scan (an EXIF thumbnail has its own FF D9) are skipped by walking
// the segment lengths.
inline bool jpeg_is_complete(const std::uint8_t* p, std::size_t n) {
  std::size_t i = 2;  // after SOI (FF D8)
  while (i + 4 <= n) {
    if (p[i] != 0xFF) return false;
    const std::uint8_t marker = p[i + 1];
    if (marker == 0xFF) {  // fill byte before a marker
      ++i;
      continue;
    }
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      i += 2;  // markers without a length field
      continue;
    }
    const std::size_t length = (std::size_t{p[i + 2]} << 8) | p[i + 3];
    if (length < 2) return false;
    if (marker == 0xDA) {
      for (std::size_t j = i + 2 + length; j + 1 < n; ++j)
        if (p[j] == 0xFF && p[j + 1] == 0xD9) return true;
      return false;
    }
    i += 2 + length;
  }
  return false;
}

// The EXIF orientation of a JPEG (1 to 8, 1 when absent or unreadable): how the camera was held.
// APP1 "Exif\0\0" holds a TIFF block (byte order "II" or "MM", IFD0's offset at 4) whose first
// directory lists 12-byte entries; tag 0x0112 (a SHORT) is the orientation. Every offset is
// checked against the segment, so a malformed block only means "no orientation".
inline int jpeg_exif_orientation(const std::uint8_t* p, std::size_t n) {
  std::size_t i = 2;
  while (i + 4 <= n && p[i] == 0xFF) {
    const std::uint8_t m = p[i + 1];
    if (m == 0xFF) { ++i; continue; }
    if (m == 0xDA || m == 0xD9) break;  // the scan starts: metadata comes before it
    const std::size_t length = (std::size_t{p[i + 2]} << 8) | p[i + 3];
    if (length < 2 || i + 2 + length > n) break;
    const std::uint8_t* seg = p + i + 4;
    const std::size_t len = length - 2;
    if (m == 0xE1 && len >= 14 && std::memcmp(seg, "Exif\0\0", 6) == 0) {
      const std::uint8_t* t = seg + 6;
      const std::size_t tn = len - 6;
      const bool little = t[0] == 'I' && t[1] == 'I';
      if (!little && !(t[0] == 'M' && t[1] == 'M')) return 1;
      auto u16 = [&](std::size_t at) -> unsigned {
        return little ? unsigned(t[at]) | unsigned(t[at + 1]) << 8 : unsigned(t[at]) << 8 | unsigned(t[at + 1]);
      };
      auto u32 = [&](std::size_t at) -> std::uint32_t {
        return little ? std::uint32_t(u16(at)) | std::uint32_t(u16(at + 2)) << 16
                      : std::uint32_t(u16(at)) << 16 | std::uint32_t(u16(at + 2));
      };
      const std::uint32_t ifd = u32(4);
      if (ifd > tn || tn - ifd < 2) return 1;
      const unsigned count = u16(ifd);
      for (unsigned k = 0; k < count; ++k) {
        const std::size_t e = std::size_t(ifd) + 2 + std::size_t(k) * 12;
        if (e + 12 > tn) return 1;
        if (u16(e) == 0x0112 && u16(e + 2) == 3) {
          const unsigned v = u16(e + 8);
          return v >= 1 && v <= 8 ? int(v) : 1;
        }
      }
      return 1;
    }
    i += 2 + length;
  }
  return 1;
}

// Turns a decoded image upright for EXIF orientation o: 2 mirrors, 3 turns 180 degrees, 4 flips,
// 5 transposes, 6 turns 90 degrees clockwise, 7 transverses, 8 turns 90 degrees anticlockwise.
// For each output pixel (x, y) it reads the source pixel the orientation maps there.
inline Image apply_exif_orientation(const Image& src, int o) {
  if (o <= 1 || o > 8) return src;
  const int W = src.width, H = src.height;
  const bool swap = o >= 5;
  Image out;
  out.width = swap ? H : W;
  out.height = swap ? W : H;
  out.rgb.resize(src.rgb.size());
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (o) {
        case 2: sx = W - 1 - x; break;
        case 3: sx = W - 1 - x; sy = H - 1 - y; break;
        case 4: sy = H - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = H - 1 - x; break;
        case 7: sx = W - 1 - y; sy = H - 1 - x; break;
        case 8: sx = W - 1 - y; sy = x; break;
      }
      std::memcpy(&out.rgb[(std::size_t(y) * std::size_t(out.width) + std::size_t(x)) * 3],
                  &src.rgb[(std::size_t(sy) * std::size_t(W) + std::size_t(sx)) * 3], 3);
    }
  return out;
}

// libjpeg's error manager, returning to the caller by longjmp with the message kept.
struct JpegErrors {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
};

struct JpegProgress {
  jpeg_progress_mgr pub;
  int max_scans;
};

extern "C" inline void ewnet_jpeg_error_exit(j_common_ptr cinfo) {
  JpegErrors* e = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings (a corrupt byte, a bogus progression) are counted, not printed: ewnet reports what it
// skips itself, and a crafted file can raise thousands.
extern "C" inline void ewnet_jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level < 0) ++cinfo->err->num_warnings;
}

extern "C" inline void ewnet_jpeg_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  const JpegProgress* p = reinterpret_cast<const JpegProgress*>(cinfo->progress);
  const int scans = reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number;
  if (scans > p->max_scans) {
    JpegErrors* e = reinterpret_cast<JpegErrors*>(cinfo->err);
    std::snprintf(e->message, sizeof e->message, "more than %d scans (a progressive JPEG has about 10)",
                  p->max_scans);
    std::longjmp(e->jump, 1);
  }
}

// Creates the decompressor in `cinfo` (zeroed, its error manager set) and decodes into `rgb`
// (width * height * 3 bytes, the size the header gave); `row` holds one row of CMYK. Returns false
// with the reason in errors.message. Holds nothing with a destructor (longjmp returns here).
inline bool jpeg_decode_into(jpeg_decompress_struct& cinfo, JpegErrors& errors, JpegProgress& progress,
                             const std::uint8_t* bytes, std::size_t size, const ImageInfo& info, long memory,
                             std::uint8_t* rgb, std::uint8_t* row) {
  if (setjmp(errors.jump)) return false;
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes, static_cast<unsigned long>(size));
  if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK) {
    std::snprintf(errors.message, sizeof errors.message, "no image in the file");
    return false;
  }
  if (int(cinfo.image_width) != info.width || int(cinfo.image_height) != info.height ||
      cinfo.num_components != info.channels) {
    std::snprintf(errors.message, sizeof errors.message, "the decoder reads another frame header than the file's first");
    return false;
  }
  const bool cmyk = cinfo.num_components == 4;
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  cinfo.mem->max_memory_to_use = memory;
  cinfo.progress = &progress.pub;
  jpeg_start_decompress(&cinfo);
  const std::size_t stride = std::size_t(cinfo.output_width) * 3;
  while (cinfo.output_scanline < cinfo.output_height) {
    std::uint8_t* out = rgb + std::size_t(cinfo.output_scanline) * stride;
    JSAMPROW target = cmyk ? row : out;
    if (jpeg_read_scanlines(&cinfo, &target, 1) != 1) {
      std::snprintf(errors.message, sizeof errors.message, "the image data ends early");
      return false;
    }
    if (cmyk) {
      // Adobe's CMYK is stored inverted (255 = no ink): R = C K / 255, likewise G from M, B from Y.
      // Without Adobe's marker the values are ink amounts: R = (255 - C)(255 - K) / 255.
      const bool inverted = cinfo.saw_Adobe_marker;
      for (std::size_t x = 0; x < cinfo.output_width; ++x) {
        const unsigned k = inverted ? row[4 * x + 3] : 255u - row[4 * x + 3];
        for (int c = 0; c < 3; ++c) {
          const unsigned v = inverted ? row[4 * x + c] : 255u - row[4 * x + c];
          out[3 * x + c] = std::uint8_t((v * k + 127) / 255);
        }
      }
    }
  }
  jpeg_finish_decompress(&cinfo);
  return true;
}

/// Decodes a JPEG whose header `info` was read by probe_image, within `memory` bytes of libjpeg's
/// own allocations (see the file comment), upright by its EXIF orientation.
inline Image decode_jpeg(const std::uint8_t* bytes, std::size_t size, const std::string& what, const ImageInfo& info,
                         std::size_t memory) {
  EWNET_CHECK_AS(IoError, jpeg_is_complete(bytes, size), what,
                 ": truncated JPEG (no end-of-image marker after the image data)");
  Image img;
  img.width = info.width;
  img.height = info.height;
  img.rgb.resize(std::size_t(info.width) * std::size_t(info.height) * 3);
  std::vector<std::uint8_t> row(info.channels == 4 ? std::size_t(info.width) * 4 : 0);
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof cinfo);  // jpeg_destroy_decompress is safe on it even if creating it failed
  JpegErrors errors;
  std::memset(&errors, 0, sizeof errors);
  JpegProgress progress;
  std::memset(&progress, 0, sizeof progress);
  progress.pub.progress_monitor = ewnet_jpeg_progress;
  progress.max_scans = kMaxJpegScans;
  cinfo.err = jpeg_std_error(&errors.pub);
  errors.pub.error_exit = ewnet_jpeg_error_exit;
  errors.pub.emit_message = ewnet_jpeg_emit_message;
  const bool ok = jpeg_decode_into(cinfo, errors, progress, bytes, size, info,
                                   long(std::min<std::size_t>(memory, LONG_MAX)), img.rgb.data(), row.data());
  jpeg_destroy_decompress(&cinfo);
  if (!ok) {
    const std::string why = errors.message;
    if (why.find("Backing store") != std::string::npos)
      throw IoError(str(what, ": this JPEG's scans need more memory than its header implies (over ", (memory >> 20) + 1,
                        " MiB of coefficients and rows)"));
    throw IoError(str(what, ": corrupt or unreadable JPEG (", why, ")"));
  }
  const int orientation = jpeg_exif_orientation(bytes, size);
  if (orientation != 1) return apply_exif_orientation(img, orientation);
  return img;
}

/// libjpeg's allowance for an image: decode_memory_estimate's share that libjpeg allocates itself
/// (all but the RGB images ewnet holds).
inline std::size_t jpeg_library_memory(const ImageInfo& info, bool turned) {
  const std::size_t rgb = std::size_t(info.width) * std::size_t(info.height) * 3;
  return decode_memory_estimate(info, turned) - rgb * (turned ? 2 : 1);
}

}  // namespace detail
}  // namespace ewnet::data
