/// @file proof.hpp
/// @brief Proof values: milestones bind what they report to the boot's random token.
///
/// The grader puts a fresh random token on every boot's command line. A milestone that proves
/// behaviour prints `proof=` followed by proof(token, value); the grader recomputes it, so output
/// captured from another boot (or typed into the kernel) cannot pass. The function is 64-bit
/// FNV-1a over the token's bytes followed by the value's 8 little-endian bytes; the grader's
/// Python twin is grade/pagoda_grade/proof.py.
#pragma once

#include "lib/string_view.hpp"
#include "lib/types.hpp"

namespace pagoda {

inline constexpr u64 kFnvOffsetBasis = 0xcbf29ce484222325ull;
inline constexpr u64 kFnvPrime = 0x100000001b3ull;

/// The proof of @p value under @p token.
constexpr u64 proof(StringView token, u64 value) {
  u64 h = kFnvOffsetBasis;
  for (char c : token) h = (h ^ u8(c)) * kFnvPrime;
  for (int i = 0; i < 8; ++i) h = (h ^ ((value >> (8 * i)) & 0xff)) * kFnvPrime;
  return h;
}

}  // namespace pagoda
