/// @file mmu.hpp
/// @brief The arch functions the memory manager needs beyond the format and address spaces.
///
/// Implemented by `arch/<isa>/mmu.cpp`. Kept apart from core/arch.hpp so that the CPU seam
/// everyone includes does not pull in the memory manager.
#pragma once

#include "lib/format.hpp"
#include "lib/types.hpp"
#include "mm/base/addr.hpp"
#include "mm/space/critical_ranges.hpp"

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

/// Adds to @p out what the CPU needs mapped the instant after this CPU loads a new root, as of
/// now, most telling first (mm/space/critical_ranges.hpp): AddressSpace::activate() walks each in the
/// new root before loading it. Called on every switch: keep it cheap (no allocation, no walk).
///
/// x86_64 (arch/x86_64/critical_ranges.cpp): the running stack (from a trap frame's room below
/// RSP to the top of the stack), the instruction after the CR3 write, the trap entry, the IDT,
/// GDT and TSS as the CPU's registers give them, the IST stacks, TSS.RSP0's stack once set, and
/// the kernel text. AArch64: SP and the exception stack, the instruction after the TTBR write,
/// VBAR_EL1's vectors, the kernel text.
void critical_ranges(CriticalRanges& out);

/// The stacks of a switch, as of now (mm/space/critical_ranges.hpp, SwitchStacks): read at every
/// switch before anything else, so a few loads and compares, never a walk.
SwitchStacks switch_stacks();

/// Physical ranges of device registers the kernel must map (uncached) to keep working.
Span<const PhysRange> device_ranges();
/// The page tables the boot stub built; free once the kernel runs on its own tables.
PhysRange boot_page_tables();
/// The boot stub's entry stack, the low stack the kernel's C++ starts on (linked low: its
/// virtual addresses are its physical ones, reached through the boot tables' identity); free
/// once the kernel runs on its own stack (vm::enter_kernel_space()).
PhysRange boot_entry_stack();
/// Copies one page (kPageSize bytes) from @p from to @p to, both page aligned and not
/// overlapping: the inner loop of an eager fork and of a copy-on-write break. Each ISA does it
/// its cheapest way without FP/SIMD registers (x86_64: `rep movsq`; AArch64: a loop of paired
/// 64-bit loads and stores, 64 bytes a turn).
void copy_page(void* to, const void* from);
/// Fills one page (kPageSize bytes, page aligned) at @p page with zeros: new page tables,
/// demand-zero pages (x86_64: `rep stosq`; AArch64: paired stores of the zero register).
void zero_page(void* page);
/// Prints a self-check of the CPU's paging controls, e.g. "NX on, WP on"; false if one is off.
bool paging_controls_ok(FormatSink& sink);

}  // namespace pagoda::arch
