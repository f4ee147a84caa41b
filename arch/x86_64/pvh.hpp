/// @file pvh.hpp
/// @brief Reading the PVH boot protocol's hvm_start_info into a BootInfo.
///
/// Layout of what the loader hands over (all little endian, physical addresses):
///
///     hvm_start_info                          hvm_memmap_table_entry (memmap_entries of them)
///     +0   u32 magic = 0x336ec578             +0   u64 addr
///     +4   u32 version (>= 1 has a memmap)    +8   u64 size
///     +8   u32 flags                          +16  u32 type  1 RAM, 2 reserved, 3 ACPI,
///     +12  u32 nr_modules                                    4 ACPI NVS, 5 unusable
///     +16  u64 modlist_paddr                  +20  u32 reserved
///     +24  u64 cmdline_paddr  (NUL-terminated, 0 if none)
///     +32  u64 rsdp_paddr
///     +40  u64 memmap_paddr
///     +48  u32 memmap_entries
///     +52  u32 reserved
#pragma once

#include "boot/bootinfo.hpp"
#include "lib/result.hpp"

namespace pagoda::x86 {

inline constexpr u32 kPvhMagic = 0x336ec578;

/// Copies @p size bytes of physical memory at @p pa into @p out; false when that memory cannot
/// be read. The kernel passes a reader over its boot identity map; host tests pass fake memory.
using PhysReader = bool (*)(void* context, u64 pa, void* out, usize size);

/// Parses the start_info at @p start_info_pa into @p out (memory map normalised, command line
/// copied). Fails with InvalidArgument on a bad magic or unreadable memory, Unsupported for a
/// version without a memory map, Overflow when the map has more regions than MemoryMap holds.
[[nodiscard]] Result<void> pvh_parse(u64 start_info_pa, PhysReader read, void* context, BootInfo& out);

}  // namespace pagoda::x86
