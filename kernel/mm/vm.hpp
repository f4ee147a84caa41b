/// @file vm.hpp
/// @brief The kernel's virtual memory: the frame allocator, the kernel page table, and the
/// fault walk every page-fault report prints.
#pragma once

#include "arch_impl/page_table_format.hpp"
#include "boot/bootinfo.hpp"
#include "core/arch.hpp"
#include "mm/frame_allocator.hpp"
#include "mm/page_table.hpp"

namespace pagoda::vm {

static_assert(ValidPageTableFormat<arch::PageTableFormat>, "the arch's page-table format is incomplete");
using KernelPageTable = PageTable<arch::PageTableFormat>;

/// Starts the frame allocator on @p boot's memory map, builds the kernel's own page tables
/// (text `r-x`, rodata `r--`, data and bss `rw-` NX, usable RAM `rw-` NX, devices uncached,
/// nothing else: page 0 and the first MiB stay unmapped), switches to them and reclaims the
/// boot stub's tables. @p boot must outlive the kernel. Error::NotImplemented from a lab
/// skeleton is returned before anything was switched: the kernel can carry on on the boot
/// tables.
[[nodiscard]] Result<void> init(const BootInfo& boot);

/// True once init() succeeded.
bool ready();

/// The frame allocator (usable once init() has started it).
FrameAllocator& frames();

/// A handle on the kernel's page table (valid once ready()).
KernelPageTable kernel_table();

/// @name The physical window (kernel/mm/layout.hpp)
/// The kernel reaches usable RAM below reachable_limit() at layout::kWindowBase + physical
/// address; nothing else has a kernel-virtual address unless something maps it.
/// @{

/// The end of the RAM the kernel can reach through its window.
PhysAddr reachable_limit();
/// The kernel's pointer to physical memory [pa, pa + size), or nullptr when the kernel cannot
/// reach it (not usable RAM, or above the window).
void* phys_to_ptr(PhysAddr pa, usize size);
/// The window address of @p pa; InvalidArgument outside the window.
[[nodiscard]] Result<VirtAddr> try_phys_to_virt(PhysAddr pa);
/// The window address of @p pa; panics outside the window.
VirtAddr phys_to_virt(PhysAddr pa);
/// The physical address of window address @p va; InvalidArgument for any other address.
[[nodiscard]] Result<PhysAddr> try_virt_to_phys(VirtAddr va);
/// The physical address of window address @p va; panics for any other address.
PhysAddr virt_to_phys(VirtAddr va);
/// Where device registers at @p pa are mapped (layout::kMmioBase + pa).
VirtAddr device_virt(PhysAddr pa);
/// A pointer to device registers at @p pa, valid before and after the kernel's own tables.
void* device_ptr(PhysAddr pa);
/// Maps usable RAM below reachable_limit(), except @p skip, into @p table (used by init()).
[[nodiscard]] Result<void> map_ram(KernelPageTable& table, const MemoryMap& map, PhysRange skip);
/// @}

/// The walk of @p va through the page tables the CPU uses now.
Walk walk_active(VirtAddr va);

/// Prints the walk of @p va through the active root and the reason @p access faults there;
/// what every page-fault report ends with.
void report_fault(FormatSink& sink, VirtAddr va, Access access);

}  // namespace pagoda::vm
