/*
 * The x86_64 user-mode facts that assembly (switch.S) and C++ (gdt.hpp, user_mode.cpp) share:
 * the segment selectors of ring 3 and the vector number a system-call frame carries. Plain
 * #defines so that both languages include one definition.
 *
 * The GDT order kernel code, kernel data, user data, user code is what SYSCALL and SYSRET
 * need: STAR[47:32] = kernel CS (SS = CS + 8); STAR[63:48] = the base from which SYSRET takes
 * SS = base + 8 and CS = base + 16, both with RPL 3 (see user_mode.cpp).
 */
#pragma once

#include "arch/x86_64/page_defs.h"

#define X86_KERNEL_CODE_SELECTOR 0x08
#define X86_KERNEL_DATA_SELECTOR 0x10
#define X86_USER_DATA_SELECTOR (0x18 | 3)
#define X86_USER_CODE_SELECTOR (0x20 | 3)
#define X86_TSS_SELECTOR 0x28

/* Per-CPU slots (arch_impl/this_cpu.hpp): CPU c's LDTR is c * X86_CPU_SLOT_STRIDE, the byte
   offset of its slot of a per-CPU value (a multiple of 8: a GDT selector with TI 0, RPL 0). The
   system-call entry has one copy per CPU, for X86_SYSCALL_ENTRIES CPUs (kMaxCpus, core/cpu.hpp). */
#define X86_CPU_SLOT_STRIDE 64
#define X86_SYSCALL_ENTRIES 2

/* A TrapFrame built by the system-call entry carries this in its vector field: not an IDT
   vector (those are 0..255), so a frame says how it was made. */
#define X86_SYSCALL_VECTOR 0x100
