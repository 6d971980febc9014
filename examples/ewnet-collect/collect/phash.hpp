// Perceptual hash for near-duplicate detection.
#pragma once

#include <cstdint>

#include <ewnet/data/image.hpp>

namespace ewnet::collect {

/// 64-bit difference hash (dHash): the image is reduced to 9x8 grey cells by area averaging, and
/// bit (row * 8 + col) is set when cell (row, col) is brighter than its right neighbour. Recompression,
/// rescaling and small edits change few bits; different pictures differ in about half of them.
std::uint64_t dhash(const data::Image& img);

/// Number of differing bits.
int hamming_distance(std::uint64_t a, std::uint64_t b);

}  // namespace ewnet::collect
