/// @file trap_frame.hpp
/// @brief The register frame x86_trap_common (vectors.S) builds on every interrupt/exception.
#pragma once

#include "lib/types.hpp"

namespace pagoda::x86 {

/// Saved state of the interrupted code, lowest address first (the order vectors.S pushes in
/// reverse).
struct TrapFrame {
  u64 r15, r14, r13, r12, r11, r10, r9, r8;
  u64 rbp, rdi, rsi, rdx, rcx, rbx, rax;
  u64 vector;
  u64 error;                     ///< the CPU's error code, or 0 for vectors without one
  u64 rip, cs, rflags, rsp, ss;  ///< pushed by the CPU

  /// Privilege level the trap came from.
  u32 cpl() const { return u32(cs & 3); }
};
static_assert(sizeof(TrapFrame) == 22 * 8);

}  // namespace pagoda::x86
