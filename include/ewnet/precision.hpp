// ewnet/precision.hpp: the precision of a model's matrix products (convolutions, fully connected
// layers) on the CPU engine.
//
//   fp32  everything in float32 (the default, and the only precision elsewhere);
//   bf16  the matrix products read their activations and weights in bfloat16 (8 bits of
//         mantissa) and accumulate and write in float32: the master weights, their gradients, the
//         SGDM state and every other layer stay float32. oneDNN runs these products on AVX512-BF16
//         or AMX; other processors get an error naming what is missing (onednn::require_bf16).
#pragma once

#include <string>

#include <ewnet/error.hpp>

namespace ewnet {

enum class Precision { fp32, bf16 };

inline const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }

inline Precision parse_precision(const std::string& name) {
  if (name == "fp32" || name == "float32") return Precision::fp32;
  if (name == "bf16" || name == "bfloat16") return Precision::bf16;
  throw Error(str("unknown precision \"", name, "\": expected fp32 or bf16"));
}

}  // namespace ewnet
