/// @file arch_impl/layout.hpp
/// @brief Seam: the x86_64 (PC) values of the address-space layout that kernel/mm/base/layout.hpp
/// draws and names. Generic code includes mm/base/layout.hpp and asks for these by name.
#pragma once

#include "lib/types.hpp"

namespace pagoda::arch::layout {

/// The first address of the upper (kernel) half: PML4 entries 256..511.
inline constexpr u64 kKernelHalfBase = 0xffff'8000'0000'0000ull;

/// The physical window: RAM [kWindowPhysBase, kWindowPhysBase + kWindowSize) appears at
/// kWindowBase + (physical - kWindowPhysBase). On the PC, RAM starts at 0.
inline constexpr u64 kWindowBase = 0xffff'8000'0000'0000ull;
inline constexpr u64 kWindowPhysBase = 0;
/// How much RAM the window maps. The grader boots with more RAM than this, so that frames
/// above the window really are unmapped.
inline constexpr u64 kWindowSize = 64 * MiB;

/// Device registers appear at kMmioBase + physical address, uncached.
inline constexpr u64 kMmioBase = 0xffff'c000'0000'0000ull;

/// Temporary mappings of arbitrary frames (lab 4).
inline constexpr u64 kTempMapBase = 0xffff'e000'0000'0000ull;

/// Kernel stacks, each with an unmapped guard page below it (lab 3).
inline constexpr u64 kStackBase = 0xffff'ff00'0000'0000ull;

/// Where the kernel image is linked: virtual = physical + this (kernel.ld, KERNEL_VIRT_OFFSET):
/// the top 2 GiB, which -mcmodel=kernel addresses with sign-extended 32-bit displacements.
inline constexpr u64 kKernelImageBase = 0xffff'ffff'8000'0000ull;

/// A PC fact: physical memory below 1 MiB (BIOS data, real-mode leftovers, and page 0, so that
/// null pointers fault) is never used or mapped.
inline constexpr u64 kLowMemoryEnd = 1 * MiB;

}  // namespace pagoda::arch::layout
