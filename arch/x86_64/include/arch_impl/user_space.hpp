/// @file user_space.hpp
/// @brief What x86_64 decides about user space: the ELF machine of its programs and where
///        the user half ends.
#pragma once

#include "arch_impl/page_table_format.hpp"
#include "lib/types.hpp"
#include "proc/elf.hpp"

namespace pagoda::x86 {

struct UserSpace {
  /// e_machine of the programs this kernel runs.
  static constexpr elf::Machine kElfMachine = elf::Machine::X86_64;
  /// One past the highest user address. The lower canonical half ends at 2^47, but its last
  /// page stays out of reach: a `syscall` at its very end would leave RIP = 2^47 for SYSRET,
  /// and on Intel CPUs SYSRET to a non-canonical RIP raises a general-protection fault in ring 0,
  /// still on the user's stack.
  static constexpr u64 kEnd = (u64{1} << (PageTableFormat::kVirtualBits - 1)) - PageTableFormat::kPageSize;
};

}  // namespace pagoda::x86

namespace pagoda::arch {
/// The user-space facts of the ISA this kernel is built for.
using UserSpace = x86::UserSpace;
}  // namespace pagoda::arch
