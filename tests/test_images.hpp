// JPEG fixtures built with libjpeg-turbo's encoder, for the decoder tests and ewnet-collect's:
// baseline or progressive, 4:4:4 or 4:2:0, RGB or Adobe CMYK, and a progressive "scan bomb".
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <jpeglib.h>

#include <catch2/catch.hpp>

#include <ewnet/data/pixels.hpp>

namespace ewnet::test {

using data::Image;

/// A JPEG through libjpeg-turbo's encoder: progressive or baseline, 4:4:4 or 4:2:0, or CMYK (with
/// Adobe's marker, whose CMYK is stored inverted: C = R, M = G, Y = B, K = 255 means the colour).
inline std::vector<std::uint8_t> encode_jpeg(const Image& img, bool progressive, bool subsample, bool cmyk, int quality = 92) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* out = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &out, &size);
  c.image_width = JDIMENSION(img.width);
  c.image_height = JDIMENSION(img.height);
  c.input_components = cmyk ? 4 : 3;
  c.in_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  if (!subsample)
    for (int i = 0; i < c.num_components; ++i) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  std::vector<std::uint8_t> row(std::size_t(img.width) * 4);
  while (c.next_scanline < c.image_height) {
    const std::uint8_t* src = &img.rgb[std::size_t(c.next_scanline) * std::size_t(img.width) * 3];
    JSAMPROW r = const_cast<std::uint8_t*>(src);
    if (cmyk) {
      for (int x = 0; x < img.width; ++x) {
        for (int k = 0; k < 3; ++k) row[std::size_t(x) * 4 + std::size_t(k)] = src[std::size_t(x) * 3 + std::size_t(k)];
        row[std::size_t(x) * 4 + 3] = 255;
      }
      r = row.data();
    }
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::vector<std::uint8_t> b(out, out + size);
  std::free(out);
  return b;
}

/// A progressive JPEG whose first scan (the DC coefficients) is repeated `extra` more times right
/// after itself: the "scan bomb", each scan a pass over the whole image's coefficients, which
/// stb_image decoded however many there were.
inline std::vector<std::uint8_t> repeat_first_scan(const std::vector<std::uint8_t>& jpg, int extra) {
  std::size_t i = 2, scan = 0, scan_end = 0;
  while (i + 4 <= jpg.size() && jpg[i] == 0xFF && jpg[i + 1] != 0xD9) {
    const std::size_t len = std::size_t(jpg[i + 2]) << 8 | jpg[i + 3];
    std::size_t end = i + 2 + len;
    if (jpg[i + 1] == 0xDA) {
      while (!(jpg[end] == 0xFF && jpg[end + 1] != 0 && !(jpg[end + 1] >= 0xD0 && jpg[end + 1] <= 0xD7))) ++end;
      scan = i;
      scan_end = end;
      break;
    }
    i = end;
  }
  REQUIRE(scan_end > scan);
  std::vector<std::uint8_t> out(jpg.begin(), jpg.begin() + std::ptrdiff_t(scan_end));
  for (int k = 0; k < extra; ++k) out.insert(out.end(), jpg.begin() + std::ptrdiff_t(scan), jpg.begin() + std::ptrdiff_t(scan_end));
  out.insert(out.end(), jpg.begin() + std::ptrdiff_t(scan_end), jpg.end());
  return out;
}

}  // namespace ewnet::test
