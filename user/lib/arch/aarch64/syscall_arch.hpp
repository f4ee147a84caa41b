/// @file user/lib/arch/aarch64/syscall_arch.hpp
/// @brief The AArch64 system-call instruction: `svc #0` with the number in x8.
///
///     x8 = number   x0 .. x5 = arguments 0..5   -> x0 = result
///
/// Written with the x86_64 one; it runs once the AArch64 port has user mode (until then the
/// host tests only build and validate the AArch64 user programs).
#pragma once

#include "lib/types.hpp"

namespace pagoda::user::arch {

/// The ISA's name, as the kernel prints it.
inline constexpr const char* kName = "aarch64";

/// Executes one system call with six arguments (unused ones are passed as 0).
inline i64 syscall6(u64 number, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5) {
  register u64 x8 asm("x8") = number;
  register u64 x0 asm("x0") = a0;
  register u64 x1 asm("x1") = a1;
  register u64 x2 asm("x2") = a2;
  register u64 x3 asm("x3") = a3;
  register u64 x4 asm("x4") = a4;
  register u64 x5 asm("x5") = a5;
  asm volatile("svc #0"
               : "+r"(x0)
               : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
               : "memory");
  return i64(x0);
}

/// The virtual counter (CNTVCT_EL0; readable at EL0 once the kernel sets CNTKCTL_EL1.EL0VCTEN).
/// Under QEMU's `-icount` it advances with guest instructions, at the counter's frequency.
inline u64 cycle_counter() {
  u64 v;
  asm volatile("isb; mrs %0, cntvct_el0" : "=r"(v));
  return v;
}

}  // namespace pagoda::user::arch
