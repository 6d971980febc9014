// cuda/sgdm_tables.hpp: how many SGDM slot tables kernels/sgdm.cu keeps on the device (one per
// model it updates), for the tests.
#pragma once

#include <cstddef>

namespace ewnet::cuda::detail {

/// The most slot tables kept; beyond it the least recently used one is released.
constexpr std::size_t kMaxSgdmTables = 16;
/// The slot tables kept now.
std::size_t sgdm_table_count();

}  // namespace ewnet::cuda::detail
