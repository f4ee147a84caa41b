/// @file user/lib/arch/x86_64/syscall_arch.hpp
/// @brief The x86_64 system-call instruction: `syscall` with the number in rax.
///
///     rax = number   rdi rsi rdx r10 r8 r9 = arguments 0..5   -> rax = result
///
/// The CPU itself overwrites rcx (with the return address) and r11 (with RFLAGS), so both are
/// clobbered. r10 stands in for rcx, which the C calling convention would use for argument 3.
#pragma once

#include "arch/x86_64/page_defs.h"
#include "lib/types.hpp"

namespace pagoda::user::arch {

/// The ISA's name, as the kernel prints it.
inline constexpr const char* kName = "x86_64";

/// The page size: the kernel's own definition (arch/x86_64/page_defs.h).
inline constexpr u64 kPageSize = X86_PAGE_SIZE;

/// Executes one system call with six arguments (unused ones are passed as 0).
inline i64 syscall6(u64 number, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5) {
  register u64 r10 asm("r10") = a3;
  register u64 r8 asm("r8") = a4;
  register u64 r9 asm("r9") = a5;
  u64 result;
  asm volatile("syscall"
               : "=a"(result)
               : "a"(number), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  return i64(result);
}

/// The time-stamp counter (RDTSC; allowed in ring 3 while CR4.TSD is clear). Under QEMU's
/// `-icount shift=0` it counts guest instructions: `./pagoda bench syscall|switch` rely on that.
inline u64 cycle_counter() {
  u32 lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (u64(hi) << 32) | lo;
}

}  // namespace pagoda::user::arch
