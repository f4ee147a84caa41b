/// @file layout.hpp
/// @brief The map of the kernel's address space (lab 1: the kernel's own identity map).
///
///     virtual = physical for everything the kernel maps
///     0x0000_0000_0000_0000 +------------------------------+
///                           | first MiB: NOT mapped        |  page 0 unmapped: null faults
///     0x0000_0000_0010_0000 +------------------------------+  kKernelLoadBase (1 MiB)
///                           | .text           r-x          |
///                           | .rodata         r--          |
///                           | .data .bss      rw-  NX      |  boot stack, IST stacks
///                           +------------------------------+
///                           | usable RAM      rw-  NX      |  frames the allocator hands out:
///                           |                              |  page tables, its bitmaps
///                           +------------------------------+  end of RAM (-m)
///                           | not mapped                   |
///     0x0000_0000_fee0_0000 | LAPIC page      rw-  NX  UC  |  arch::device_ranges()
///                           | not mapped                   |
///     0x0000_7fff_ffff_ffff +------------------------------+  end of the lower half
///
/// Lab 2 moves the kernel to the top 2 GiB and replaces the identity map by a bounded window.
#pragma once

#include "lib/types.hpp"

namespace pagoda::layout {

/// Physical memory below this is never used or mapped (BIOS data, real-mode leftovers, and
/// page 0, so that null pointers fault).
inline constexpr u64 kLowMemoryEnd = 1 * MiB;

}  // namespace pagoda::layout
