/// @file user/lib/arch/aarch64/syscall_arch.hpp
/// @brief The AArch64 system-call instruction: `svc #0` with the number in x8.
///
///     x8 = number   x0 .. x5 = arguments 0..5   -> x0 = result
#pragma once

#include "arch/aarch64/page_defs.h"
#include "lib/types.hpp"

namespace pagoda::user::arch {

/// The ISA's name, as the kernel prints it.
inline constexpr const char* kName = "aarch64";

/// The page size: the kernel's own definition (arch/aarch64/page_defs.h).
inline constexpr u64 kPageSize = AARCH64_PAGE_SIZE;

/// Executes one system call with six arguments (unused ones are passed as 0).
inline i64 syscall6(u64 number, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5) {
  register u64 x8 asm("x8") = number;
  register u64 x0 asm("x0") = a0;
  register u64 x1 asm("x1") = a1;
  register u64 x2 asm("x2") = a2;
  register u64 x3 asm("x3") = a3;
  register u64 x4 asm("x4") = a4;
  register u64 x5 asm("x5") = a5;
  asm volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return i64(x0);
}

/// The virtual counter (CNTVCT_EL0; readable at EL0 once the kernel sets CNTKCTL_EL1.EL0VCTEN),
/// in nanoseconds: counts * 10^9 / CNTFRQ_EL0. Under QEMU's `-icount shift=0` a guest
/// instruction takes one nanosecond of virtual time, so this counts guest instructions, as the
/// x86_64 TSC does there (the counter itself ticks at 62.5 MHz: one count per 16 instructions,
/// the resolution of a measurement).
inline u64 cycle_counter() {
  u64 count, frequency;
  asm volatile("isb; mrs %0, cntvct_el0" : "=r"(count));
  asm volatile("mrs %0, cntfrq_el0" : "=r"(frequency));
  if (frequency == 0) return count;
  constexpr u64 kNanosPerSecond = 1'000'000'000;
  return count / frequency * kNanosPerSecond + count % frequency * kNanosPerSecond / frequency;
}

}  // namespace pagoda::user::arch
