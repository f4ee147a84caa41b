/// @file layout.hpp
/// @brief The map of the kernel's address space: where everything lives, in one place.
///
/// The names are generic; their values belong to the platform
/// (`arch/<isa>/include/arch_impl/layout.hpp`) and are exported to the grader as ELF symbols
/// (kernel/mm/base/facts.cpp). On x86_64:
///
///     virtual address                        what                              permissions
///     0x0000_0000_0000_0000 +------------------------------------------+
///                           | user half: EMPTY in the kernel's root;   |
///                           | each process maps its own (lab 3)        |
///     0x0000_7fff_ffff_ffff +------------------------------------------+
///                           | (non-canonical hole)                     |
///     0xffff_8000_0000_0000 +------------------------------------------+ kKernelHalfBase
///                           | physical window: RAM [kWindowPhysBase,   | = kWindowBase; rw- NX
///                           | + kWindowSize) at kWindowBase + (physical|
///                           | - kWindowPhysBase); page tables, kernel  |
///                           | heap, kernel stacks                      |
///     0xffff_8000_0400_0000 +------------------------------------------+ + kWindowSize (64 MiB)
///                           | nothing: RAM above the window is mapped  |
///                           | only on demand (temporary mappings, l.4) |
///     0xffff_c000_0000_0000 +------------------------------------------+ kMmioBase
///                           | device registers at kMmioBase + physical | rw- NX uncached
///     0xffff_e000_0000_0000 +------------------------------------------+ kTempMapBase
///                           | temporary mappings (lab 4)               |
///     0xffff_ff00_0000_0000 +------------------------------------------+ kStackBase
///                           | kernel stacks, each above a guard that   |
///                           | is never mapped (lab 3)                  |
///     0xffff_ffff_8000_0000 +------------------------------------------+ kKernelImageBase
///                           | .text  r-x   .rodata  r--   .data .bss rw- NX (boot stack,
///                           | IST stacks); linked here, loaded at 1 MiB physical
///     0xffff_ffff_ffff_ffff +------------------------------------------+
///
/// Physical memory below kLowMemoryEnd is never used (on the PC: the first MiB). On QEMU's
/// AArch64 `virt` machine RAM starts at 0x4000_0000, so kWindowPhysBase is that, not 0.
///
/// How the kernel half is shared by every address space is the arch's business
/// (arch::ArchAddressSpace): on x86_64 every top-level entry of the upper half points to a
/// table allocated once at boot, and a process root copies those entries; on AArch64 the upper
/// half is translated by TTBR1, one root for all.
#pragma once

#include "arch_impl/layout.hpp"
#include "lib/types.hpp"

namespace pagoda::layout {

using arch::layout::kKernelHalfBase;   ///< first address of the kernel half
using arch::layout::kWindowBase;       ///< where the physical window starts (virtual)
using arch::layout::kWindowPhysBase;   ///< the physical address it shows at kWindowBase
using arch::layout::kWindowSize;       ///< bytes of RAM the window maps
using arch::layout::kMmioBase;         ///< device registers at kMmioBase + physical
using arch::layout::kTempMapBase;      ///< temporary mappings (lab 4)
using arch::layout::kStackBase;        ///< kernel stacks with guard pages (lab 3)
using arch::layout::kKernelImageBase;  ///< where the kernel image is linked
using arch::layout::kLowMemoryEnd;     ///< physical memory below this is never used

static_assert(kWindowBase >= kKernelHalfBase, "the window is kernel memory");
static_assert(kWindowBase + kWindowSize <= kMmioBase && kMmioBase < kTempMapBase && kTempMapBase < kStackBase &&
                  kStackBase < kKernelImageBase,
              "the areas of the kernel half are in the order drawn above");
static_assert(kLowMemoryEnd <= kWindowPhysBase + kWindowSize, "the window reaches RAM the kernel may use");

}  // namespace pagoda::layout
