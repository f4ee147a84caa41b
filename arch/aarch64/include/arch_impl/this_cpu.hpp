/// @file this_cpu.hpp
/// @brief How AArch64 finds this CPU's per-CPU slot (core/cpu.hpp's PerCpu) in one instruction.
///
/// TPIDRRO_EL0 holds the slot's byte offset, 16 * the CPU's index: EL1 writes it (boot.S's
/// C++ entry for the boot CPU, smp.S for the others); EL0 may read it, never write it. The
/// vectors read it too: the stack for traps from EL0 is per CPU (vectors.S).
#pragma once

#include "lib/types.hpp"

namespace pagoda::arch {

/// The bytes between two CPUs' slots (CPU c's slot is at c * kCpuSlotStride).
inline constexpr usize kCpuSlotStride = 16;

/// The byte offset of this CPU's slot. Volatile: a thread that switched may go on on another CPU.
inline usize this_cpu_slot() {
  usize offset;
  asm volatile("mrs %0, tpidrro_el0" : "=r"(offset));
  return offset;
}

}  // namespace pagoda::arch
