/// @file user_space.hpp
/// @brief What AArch64 decides about user space: the ELF machine of its programs and where
///        the user half ends.
#pragma once

#include "arch_impl/page_table_format.hpp"
#include "lib/types.hpp"
#include "proc/elf.hpp"

namespace pagoda::aarch64 {

struct UserSpace {
  /// e_machine of the programs this kernel runs.
  static constexpr elf::Machine kElfMachine = elf::Machine::AArch64;
  /// One past the highest user address: TTBR0's whole 48-bit range (T0SZ = 16). Unlike x86_64's
  /// SYSRET, ERET to any address of the range is safe, so the last page is not held back.
  static constexpr u64 kEnd = u64{1} << PageTableFormat::kVirtualBits;
};

}  // namespace pagoda::aarch64

namespace pagoda::arch {
/// The user-space facts of the ISA this kernel is built for.
using UserSpace = aarch64::UserSpace;
}  // namespace pagoda::arch
