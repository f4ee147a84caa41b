/// @file vm_parts.hpp
/// @brief What the parts of the kernel's memory manager share, and nothing else includes: vm.cpp
/// (the kernel's map, entering it, the current space), window.cpp (how the kernel reaches
/// physical memory), frames.cpp (the frame allocator, user frames and their references),
/// fault.cpp (the generic page-fault entry) and fault_report.cpp (what a fault ends with).
#pragma once

#include "boot/memmap.hpp"
#include "mm/space/user_regions.hpp"
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

/// @name What the fault path records for its report (fault.cpp writes, fault_report.cpp reads)
/// @{
/// Why a user fault the record allowed still ends its process: populate() failed, the stack
/// could not grow, the page was already mapped as its region says and the CPU refused the
/// access anyway, or widening its entry failed (lab 6: the copy-on-write fault).
enum class Unresolved : u8 { Populate, Grow, Refault, Widen, SwapIn };
/// Records why the fault of @p access at @p page, which region @p vma allowed, was not resolved
/// (@p error: what failed; @p mapped: the page's permissions, for Refault), for
/// explain_unresolved(); returns FaultDecision::KillProcess. One CPU: the kill report that reads
/// it follows the fault that wrote it.
[[nodiscard]] FaultDecision unresolved(Unresolved why, u64 page, Access access, const Vma& vma,
                                       Error error = Error(Error::NotFound), Perms mapped = {});
/// A Grow verdict the record refused (grow_stack() failed with @p error) for the page @p page
/// below the stack, @p growth the region decide_fault() made: records it, with the reason when
/// the record refused a growth that overlaps nothing (refused_without_overlap()), as unresolved()
/// does; returns FaultDecision::KillProcess.
[[nodiscard]] FaultDecision growth_refused(const UserRegions& regions, const Vma& growth, u64 page, Access access,
                                           Error error);
/// @}

}  // namespace pagoda::vm
