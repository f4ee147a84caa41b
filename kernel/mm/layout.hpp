/// @file layout.hpp
/// @brief The map of the kernel's address space: where everything lives, in one place.
///
///     virtual address                        what                              permissions
///     0x0000_0000_0000_0000 +------------------------------------------+
///                           | user half: EMPTY in the kernel's root;   |
///                           | each process maps its own (lab 3)        |
///     0x0000_7fff_ffff_ffff +------------------------------------------+
///                           | (non-canonical hole)                     |
///     0xffff_8000_0000_0000 +------------------------------------------+ kWindowBase
///                           | physical window: RAM [0, kWindowSize)    | rw- NX
///                           | at kWindowBase + physical address;       |
///                           | page tables, kernel heap, kernel stacks  |
///     0xffff_8000_0400_0000 +------------------------------------------+ + kWindowSize (64 MiB)
///                           | nothing: RAM above the window is mapped  |
///                           | only on demand (temporary mappings, l.4) |
///     0xffff_c000_0000_0000 +------------------------------------------+ kMmioBase
///                           | device registers at kMmioBase + physical | rw- NX uncached
///     0xffff_e000_0000_0000 +------------------------------------------+ kTempMapBase
///                           | temporary mappings (lab 4)               |
///     0xffff_ff00_0000_0000 +------------------------------------------+ kStackBase
///                           | kernel stacks, each below a guard page   |
///                           | that is never mapped (lab 3)             |
///     0xffff_ffff_8000_0000 +------------------------------------------+ kernel image
///                           | .text  r-x   .rodata  r--   .data .bss rw- NX (boot stack,
///                           | IST stacks); linked here, loaded at 1 MiB physical
///     0xffff_ffff_ffff_ffff +------------------------------------------+
///
/// Every top-level entry of the upper half points to a table allocated once at boot (vm.cpp,
/// prepare_kernel_half), so kernel mappings added later appear in every process's root, whose
/// upper half is a copy of these entries.
#pragma once

#include "lib/types.hpp"

namespace pagoda::layout {

/// Physical memory below this is never used or mapped (BIOS data, real-mode leftovers, and
/// page 0, so that null pointers fault).
inline constexpr u64 kLowMemoryEnd = 1 * MiB;

/// The first address of the upper (kernel) half.
inline constexpr u64 kKernelHalfBase = 0xffff'8000'0000'0000ull;

/// The physical window: RAM [0, kWindowSize) appears at kWindowBase + physical address.
inline constexpr u64 kWindowBase = 0xffff'8000'0000'0000ull;
/// How much RAM the window maps. The grader boots with more RAM than this, so that frames
/// above the window really are unmapped.
inline constexpr u64 kWindowSize = 64 * MiB;

/// Device registers appear at kMmioBase + physical address, uncached.
inline constexpr u64 kMmioBase = 0xffff'c000'0000'0000ull;

/// Temporary mappings of arbitrary frames (lab 4).
inline constexpr u64 kTempMapBase = 0xffff'e000'0000'0000ull;

/// Kernel stacks, each with an unmapped guard page below it (lab 3).
inline constexpr u64 kStackBase = 0xffff'ff00'0000'0000ull;

/// Where the kernel image is linked: virtual = physical + this (kernel.ld, KERNEL_VIRT_OFFSET).
inline constexpr u64 kKernelImageBase = 0xffff'ffff'8000'0000ull;

}  // namespace pagoda::layout
