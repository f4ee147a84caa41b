/// @file walk.hpp
/// @brief The record of one page-table walk, level by level, and the explanation of a fault.
///
/// A Walk is what PageTable::query() returns and what every page-fault report prints:
///
///     walk of 0x0000000000100000 through root 0x0000000000213000:
///       PML4[  0] @0x0000000000213000 = 0x0000000000214027  P RW US A
///       PDPT[  0] @0x0000000000214000 = 0x0000000000215027  P RW US A
///       PD  [  0] @0x0000000000215000 = 0x0000000000216027  P RW US A
///       PT  [256] @0x0000000000216800 = 0x0000000000100021  P A
///       -> page 0x0000000000100000 (4 KiB), r-x kernel
///
/// It is arch-independent: level names and entry flags come from the format that made it.
#pragma once

#include "lib/format.hpp"
#include "mm/base/addr.hpp"
#include "mm/base/perms.hpp"

namespace pagoda {

/// Where and why a walk stopped.
enum class WalkStop : u8 {
  Mapped,            ///< reached a leaf: the address is mapped
  NotPresent,        ///< an entry on the way is not present
  NonCanonical,      ///< the address cannot be translated at all
  ReservedBits,      ///< an entry has reserved bits set (the CPU faults with RSVD)
  TableUnreachable,  ///< a table's physical address is not accessible to the kernel
};

/// One level of a walk.
struct WalkLevel {
  const char* name = "";  ///< "PML4", "PDPT", ... or "L0", "L1", ...
  usize level = 0;
  usize index = 0;
  PhysAddr table;  ///< the table read at this level
  u64 entry = 0;
};

struct Walk {
  static constexpr usize kMaxLevels = 5;

  VirtAddr va;
  PhysAddr root;
  WalkLevel levels[kMaxLevels];
  usize depth = 0;  ///< levels[0..depth) were read
  WalkStop stop = WalkStop::NotPresent;
  PhysAddr pa;        ///< the translation, when mapped
  u64 page_size = 0;  ///< bytes the leaf maps, when mapped
  Perms perms;        ///< effective permissions over all levels, when mapped (read
                      ///< false: a held leaf, which the MMU does not use)
  void (*describe_entry)(FormatSink&, u64 entry, usize level) = nullptr;

  bool mapped() const { return stop == WalkStop::Mapped; }

  /// The last level read (where a walk that is not mapped stopped).
  const WalkLevel& last() const { return levels[depth == 0 ? 0 : depth - 1]; }

  /// Prints the walk, one line per level, then the result or the reason it stopped.
  void format(FormatSink& sink) const;

  /// Prints why the walk stopped, e.g. "PDPT entry 2 not present".
  void format_stop(FormatSink& sink) const;
};

/// Prints why @p access at walk.va faults given @p walk: the stop reason when not mapped,
/// "no-access page (held: ...)" for a held leaf (mapped for the kernel, invalid to the MMU), or
/// "kernel touched user memory" / "kernel executed user memory" (a kernel access to a user
/// page: SMAP/SMEP, PAN/PXN), "write to read-only page", "execute of NX page", "user access to
/// supervisor page".
void explain_fault(FormatSink& sink, const Walk& walk, Access access);

}  // namespace pagoda
