/// @file elf_target.hpp
/// @brief The ELF target of the running kernel: its ISA's machine and user address range.
#pragma once

#include "arch_impl/page_table_format.hpp"
#include "arch_impl/user_space.hpp"
#include "proc/elf.hpp"

namespace pagoda::elf {

/// The lowest address a user mapping may have on every ISA: the pages below it stay unmapped,
/// so a null pointer, or a small offset from one, faults. (User programs are linked at
/// 0x400000, user/user.ld.)
inline constexpr u64 kUserBase = 64 * KiB;

/// What programs must fit to run on this kernel.
inline constexpr Target kernel_target() {
  return Target{arch::UserSpace::kElfMachine, kUserBase, arch::UserSpace::kEnd, arch::PageTableFormat::kPageSize};
}

}  // namespace pagoda::elf
