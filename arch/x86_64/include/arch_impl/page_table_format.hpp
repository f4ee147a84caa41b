/// @file page_table_format.hpp
/// @brief The x86_64 4-level page-table format: the only place that knows x86 PTE bits.
///
/// Generic code (kernel/mm/page_table.hpp) walks "levels" 0..3 and asks this format for the
/// index of a virtual address at a level, and for the meaning of an entry.
///
///     virtual address (48-bit, 4-level paging)
///     63          48 47      39 38      30 29      21 20      12 11         0
///     +-------------+----------+----------+----------+----------+------------+
///     | sign of 47  |PML4 index|PDPT index| PD index | PT index |page offset |
///     +-------------+----------+----------+----------+----------+------------+
///       level:          0          1          2          3
///       one entry maps: 512 GiB    1 GiB      2 MiB      4 KiB
///
///     page-table entry (every level)
///     63  62  59 58  52 51                      12 11 9  8   7   6   5   4    3   2   1   0
///     +--+------+------+--------------------------+----+---+---+---+---+---+----+---+---+---+
///     |XD|  PK  |avail |  physical address 51:12  |avl | G |PS | D | A |PCD|PWT |US |RW | P |
///     +--+------+------+--------------------------+----+---+---+---+---+---+----+---+---+---+
///     P   present              RW  writable             US  user accessible
///     PWT write-through        PCD cache disable        A   accessed      D  dirty
///     PS  in a PDPT/PD entry: maps a 1 GiB/2 MiB page    (in a PT entry bit 7 is PAT)
///     G   global               XD  execute disable (with EFER.NXE)
///     A table entry's RW/US/XD restrict everything below it: a page is writable only if RW is
///     set at every level, user-accessible only if US is set at every level, executable only if
///   XD is clear at every level.
#pragma once

#include "lib/format.hpp"
#include "mm/addr.hpp"
#include "mm/perms.hpp"

namespace pagoda::x86 {

struct PageTableFormat {
  static constexpr usize kLevels = 4;
  static constexpr usize kEntriesPerTable = 512;
  static constexpr u64 kPageSize = 4 * KiB;
  static constexpr const char* kArchName = "x86_64";

  static constexpr u64 kPresent = 1ull << 0;
  static constexpr u64 kWritable = 1ull << 1;
  static constexpr u64 kUser = 1ull << 2;
  static constexpr u64 kWriteThrough = 1ull << 3;
  static constexpr u64 kCacheDisable = 1ull << 4;
  static constexpr u64 kAccessed = 1ull << 5;
  static constexpr u64 kDirty = 1ull << 6;
  static constexpr u64 kHuge = 1ull << 7;
  static constexpr u64 kGlobal = 1ull << 8;
  static constexpr u64 kNoExecute = 1ull << 63;
  static constexpr u64 kAddressMask = 0x000f'ffff'ffff'f000ull;  // bits 51:12

  static constexpr u32 kIndexBits = 9;
  static constexpr u32 kPageShift = 12;
  static constexpr u32 kVirtualBits = 48;
  static constexpr usize kPml4 = 0, kPdpt = 1, kPd = 2, kPt = 3;

  static constexpr const char* level_name(usize level) {
    constexpr const char* kNames[kLevels] = {"PML4", "PDPT", "PD", "PT"};
    return kNames[level];
  }

  /// Bit position of the lowest address bit that a level's index covers.
  static constexpr u32 level_shift(usize level) { return kPageShift + kIndexBits * u32(kLevels - 1 - level); }

  /// Bytes one entry at @p level maps.
  static constexpr u64 entry_span(usize level) { return u64{1} << level_shift(level); }

  static constexpr usize index(VirtAddr va, usize level) {
    return usize((va.value() >> level_shift(level)) & (kEntriesPerTable - 1));
  }

  /// Bits 63:47 all equal (48-bit virtual addresses).
  static constexpr bool is_canonical(VirtAddr va) {
    const u64 top = va.value() >> (kVirtualBits - 1);
    return top == 0 || top == (~u64{0} >> (kVirtualBits - 1));
  }

  /// The lowest address of the upper (kernel) half.
  static constexpr VirtAddr kUpperHalfStart = VirtAddr(~u64{0} << (kVirtualBits - 1));

  static constexpr bool is_present(u64 e, usize) { return e & kPresent; }

  /// True when @p e (present) maps a page instead of pointing to a table.
  static constexpr bool is_leaf(u64 e, usize level) {
    return level == kPt || ((level == kPdpt || level == kPd) && (e & kHuge));
  }

  /// True when @p e (present) has bits set that the CPU reserves (it would fault with RSVD).
  static constexpr bool has_reserved_bits(u64 e, usize level) {
    if (level == kPml4 && (e & kHuge)) return true;
    if (is_leaf(e, level) && level != kPt) {
      // Large pages: bits between the PAT bit (12) and the page's alignment must be zero.
      const u64 low = ((u64{1} << level_shift(level)) - 1) & kAddressMask & ~(u64{1} << kPageShift);
      return e & low;
    }
    return false;
  }

  /// The physical address an entry points to (a table, or the page it maps).
  static constexpr PhysAddr output_address(u64 e, usize level) {
    if (is_leaf(e, level) && level != kPt) return PhysAddr(e & kAddressMask & ~(entry_span(level) - 1));
    return PhysAddr(e & kAddressMask);
  }

  /// An entry pointing to the next-level table at @p table. Table entries permit everything;
  /// the leaf decides (see the layout above).
  static constexpr u64 make_table_entry(PhysAddr table, usize) {
    return (table.value() & kAddressMask) | kPresent | kWritable | kUser;
  }

  /// A 4 KiB leaf (level kPt) mapping @p page with @p perms.
  static constexpr u64 make_page_entry(PhysAddr page, Perms perms) {
    u64 e = (page.value() & kAddressMask) | kPresent;
    if (perms.write) e |= kWritable;
    if (perms.user) e |= kUser;
    if (!perms.execute) e |= kNoExecute;
    if (perms.caching == Caching::Uncached) e |= kCacheDisable | kWriteThrough;
    return e;
  }

  /// What an entry allows, by itself (a table entry restricts the whole subtree).
  static constexpr Perms entry_perms(u64 e, usize) {
    Perms p;
    p.read = true;
    p.write = e & kWritable;
    p.user = e & kUser;
    p.execute = !(e & kNoExecute);
    p.caching = (e & kCacheDisable) ? Caching::Uncached : Caching::WriteBack;
    return p;
  }

  /// Prints the entry's flags, e.g. "P RW US A NX".
  static void describe_entry(FormatSink& sink, u64 e, usize level) {
    struct Flag {
      u64 bit;
      const char* name;
    };
    constexpr Flag kFlags[] = {{kPresent, "P"},     {kWritable, "RW"},    {kUser, "US"},
                               {kWriteThrough, "PWT"}, {kCacheDisable, "PCD"}, {kAccessed, "A"},
                               {kDirty, "D"},       {kGlobal, "G"},       {kNoExecute, "NX"}};
    bool first = true;
    for (const Flag& f : kFlags) {
      if (!(e & f.bit)) continue;
      format_to(sink, "{}{}", first ? "" : " ", f.name);
      first = false;
    }
    if ((e & kHuge) && level != kPt) format_to(sink, "{}PS", first ? "" : " ");
  }
};

}  // namespace pagoda::x86

namespace pagoda::arch {
/// The page-table format of the ISA this kernel is built for.
using PageTableFormat = x86::PageTableFormat;
}  // namespace pagoda::arch
