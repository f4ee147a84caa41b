/// @file random.hpp
/// @brief A small deterministic generator for tests that the grader seeds (xorshift64*).
///
/// Kernel self-tests and user programs draw their cases from it with a seed taken from the
/// boot's token or a grader-chosen argument, so a run is reproducible from its command line and
/// the same on every ISA. Not for anything that must be unpredictable.
#pragma once

#include "lib/types.hpp"

namespace pagoda {

struct TestRandom {
  u64 state;  ///< never 0 (xorshift stays at 0): seed with `seed | 1`

  constexpr u64 next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545f4914f6cdd1dull;
  }

  /// A number in [0, @p n) (n > 0; the slight bias of the modulo does not matter to a test).
  constexpr u64 below(u64 n) { return next() % n; }
};

}  // namespace pagoda
