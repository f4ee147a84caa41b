/// @file this_cpu.hpp
/// @brief How x86_64 finds this CPU's per-CPU slot (core/cpu.hpp's PerCpu) in one instruction.
///
/// The LDT register: gdt_init() gives CPU c (c >= 1) an empty LDT whose descriptor sits at
/// selector c * X86_CPU_SLOT_STRIDE in its own GDT, and leaves the boot CPU's LDTR null (0).
/// SLDT reads it (ring 0; user mode cannot load LDTR, and UMIP keeps it from reading it), so the
/// selector is the byte offset of the CPU's slot, and a read of this CPU's slot is SLDT and one
/// load. The kernel has no other use for an LDT. LDTR is 0 at reset: CPU 0's slot until then.
#pragma once

#include "arch/x86_64/user_defs.h"
#include "lib/types.hpp"

namespace pagoda::arch {

/// The bytes between two CPUs' slots (CPU c's slot is at c * kCpuSlotStride).
inline constexpr usize kCpuSlotStride = X86_CPU_SLOT_STRIDE;

/// The byte offset of this CPU's slot. Volatile: a thread that switched may go on on another CPU.
inline usize this_cpu_slot() {
  usize selector;
  asm volatile("sldt %0" : "=r"(selector));
  return selector;
}

}  // namespace pagoda::arch
