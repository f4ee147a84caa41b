/// @file radix_geometry.hpp
/// @brief The shape of a radix page-table tree, written once for every format.
///
/// Both ISAs' formats (page_table_format.hpp under arch/x86_64 and arch/aarch64) are radix
/// trees of Levels levels over pages of 2^PageShift bytes, each table holding 2^IndexBits
/// entries. Everything below follows from those three numbers; a format derives from
/// RadixGeometry and adds only its own bits.
///
///     virtual address (4 levels, 4 KiB pages, 9 index bits: both ISAs today)
///     63        48 47     39 38     30 29     21 20     12 11          0
///     +-----------+---------+---------+---------+---------+-------------+
///     | sign/TTBR | index 0 | index 1 | index 2 | index 3 | page offset |
///     +-----------+---------+---------+---------+---------+-------------+
///                  level_shift(0) = 39 ...      level_shift(3) = 12 = PageShift
///     entry_span(level) = 1 << level_shift(level): 512 GiB, 1 GiB, 2 MiB, 4 KiB
#pragma once

#include "lib/types.hpp"
#include "mm/base/addr.hpp"

namespace pagoda {

template <usize Levels, u32 PageShift, u32 IndexBits> struct RadixGeometry {
  static constexpr usize kLevels = Levels;
  static constexpr u32 kPageShift = PageShift;
  static constexpr u64 kPageSize = u64{1} << PageShift;
  static constexpr u32 kIndexBits = IndexBits;
  static constexpr usize kEntriesPerTable = usize{1} << IndexBits;

  /// Bit position of the lowest address bit that a level's index covers.
  static constexpr u32 level_shift(usize level) { return kPageShift + kIndexBits * u32(kLevels - 1 - level); }

  /// Bytes one entry at @p level maps.
  static constexpr u64 entry_span(usize level) { return u64{1} << level_shift(level); }

  /// The entry of @p va in its table at @p level.
  static constexpr usize index(VirtAddr va, usize level) {
    return usize((va.value() >> level_shift(level)) & (kEntriesPerTable - 1));
  }
};

}  // namespace pagoda
