/// @file layout.hpp
/// @brief Seam: the AArch64 (QEMU virt) values of the address-space layout that
/// kernel/mm/base/layout.hpp draws and names. Generic code includes mm/base/layout.hpp and asks for these
/// by name.
///
/// The kernel half is TTBR1_EL1's whole range (T1SZ = 16): one root for every address space.
/// Within it the areas sit where they do on x86_64, so the two layouts differ only where the
/// machines do: the half starts lower (0xffff_0000_0000_0000, 256 TiB) and RAM, hence the
/// window, starts at 1 GiB physical.
#pragma once

#include "lib/types.hpp"

namespace pagoda::arch::layout {

/// The first address of the upper (kernel) half: TTBR1's range.
inline constexpr u64 kKernelHalfBase = 0xffff'0000'0000'0000ull;

/// The physical window: RAM [kWindowPhysBase, kWindowPhysBase + kWindowSize) appears at
/// kWindowBase + (physical - kWindowPhysBase). QEMU virt's RAM starts at 1 GiB.
inline constexpr u64 kWindowBase = 0xffff'8000'0000'0000ull;
inline constexpr u64 kWindowPhysBase = 0x4000'0000ull;
/// How much RAM the window maps. The grader boots with more RAM than this, so that frames
/// above the window really are unmapped.
inline constexpr u64 kWindowSize = 64 * MiB;

/// Device registers appear at kMmioBase + physical address, as Device-nGnRnE memory.
inline constexpr u64 kMmioBase = 0xffff'c000'0000'0000ull;

/// Temporary mappings of arbitrary frames (lab 4).
inline constexpr u64 kTempMapBase = 0xffff'e000'0000'0000ull;

/// Kernel stacks, each with an unmapped guard page below it (lab 3).
inline constexpr u64 kStackBase = 0xffff'ff00'0000'0000ull;

/// Where the start of RAM appears in the kernel image's mapping: the image is linked at
/// kKernelImageBase + (physical - kWindowPhysBase), the top 2 GiB (kernel.ld).
inline constexpr u64 kKernelImageBase = 0xffff'ffff'8000'0000ull;

/// Physical memory below this is never used: on virt nothing below 1 GiB is RAM (flash and
/// device registers), and page 0, so that null pointers fault, is not RAM at all.
inline constexpr u64 kLowMemoryEnd = kWindowPhysBase;

}  // namespace pagoda::arch::layout
