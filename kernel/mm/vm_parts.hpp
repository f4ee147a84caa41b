/// @file vm_parts.hpp
/// @brief What the parts of the kernel's memory manager share, and nothing else includes: vm.cpp
/// (the kernel's map, entering it, the current space), window.cpp (how the kernel reaches
/// physical memory), frames.cpp (the frame allocator, user frames and their references) and
/// fault.cpp (the generic page-fault entry and its reports).
#pragma once

#include "boot/memmap.hpp"
#include "mm/vm.hpp"

namespace pagoda::vm {

/// The frame allocator (frames.cpp; vm::init() starts it).
extern FrameAllocator g_frames;
/// The reference counts of user frames (frames.cpp; lab 6).
extern FrameRefs g_frame_refs;
/// The kernel's own root is live (vm.cpp, enter_kernel_space()).
extern bool g_ready;
/// The kernel's address space, once init() built it (vm.cpp).
extern AddressSpace* g_kernel_space;

/// Records the usable RAM of @p map that the window may show (window.cpp; init() first).
void collect_ram(const MemoryMap& map);
/// Bitmap storage for the allocator: the first fit in reachable usable RAM above the low
/// memory that does not overlap @p avoid (window.cpp).
[[nodiscard]] Result<PhysRange> place_bitmaps(u64 bytes, PhysRange avoid);

}  // namespace pagoda::vm
