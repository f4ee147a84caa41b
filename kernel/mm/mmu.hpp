/// @file mmu.hpp
/// @brief The arch functions the memory manager needs beyond the format and address spaces.
///
/// Implemented by `arch/<isa>/mmu.cpp`. Kept apart from core/arch.hpp so that the CPU seam
/// everyone includes does not pull in the memory manager.
#pragma once

#include "lib/format.hpp"
#include "lib/types.hpp"
#include "mm/addr.hpp"

namespace pagoda::arch {

/// The roots the CPU translates through now: one on x86_64 (CR3); two on AArch64 (TTBR0 for
/// the lower half, TTBR1 for the upper).
struct LiveRoots {
  static constexpr usize kMax = 2;
  PhysAddr roots[kMax];
  const char* names[kMax] = {};  ///< "CR3", or "TTBR0"/"TTBR1"
  usize count = 0;
};

/// What the CPU uses now, read from the hardware (for fault reports and self-tests).
LiveRoots live_roots();
/// The live root that translates @p va.
PhysAddr live_root_for(VirtAddr va);

/// Physical ranges of device registers the kernel must map (uncached) to keep working.
Span<const PhysRange> device_ranges();
/// The page tables the boot stub built; free once the kernel runs on its own tables.
PhysRange boot_page_tables();
/// Prints a self-check of the CPU's paging controls, e.g. "NX on, WP on"; false if one is off.
bool paging_controls_ok(FormatSink& sink);

}  // namespace pagoda::arch
