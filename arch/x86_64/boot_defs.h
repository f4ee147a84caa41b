/*
 * Constants shared by the x86_64 boot stub (assembly) and the C++ that follows it.
 * Plain #defines so that both languages can include this file.
 */
#pragma once

#include "arch/x86_64/page_defs.h"

#define BOOT_MAP_GIB 4                                  /* the boot identity map covers [0, 4 GiB) */
#define BOOT_MMIO_FIRST_PDE (3 * X86_ENTRIES_PER_TABLE) /* [3 GiB, 4 GiB) is uncached */
#define BOOT_STACK_SIZE (16 * 1024)
#define BOOT_ENTRY_STACK_SIZE (16 * 1024) /* the low stack C++ starts on (boot.S) */

/* Slots of the boot root (see boot.S); mmu.cpp checks them against the layout
   (arch/x86_64/include/arch_impl/layout.hpp). */
#define BOOT_WINDOW_PML4_INDEX 256 /* 0xffff800000000000: the physical window */
#define BOOT_MMIO_PML4_INDEX 384   /* 0xffffc00000000000: devices (kMmioBase) */
#define BOOT_KERNEL_PML4_INDEX 511 /* 0xffffff8000000000 - : the kernel image */
#define BOOT_KERNEL_PDPT_INDEX 510 /* 0xffffffff80000000: KERNEL_VIRT_OFFSET */

#define CR0_WP (1 << 16)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define CR4_PGE (1 << 7) /* global pages: G entries survive CR3 loads */
#define MSR_EFER 0xC0000080
#define EFER_LME (1 << 8)
#define EFER_NXE (1 << 11)

#define CPUID_EXT_MAX 0x80000000
#define CPUID_EXT_FEATURES 0x80000001
#define CPUID_EDX_NX (1 << 20)
#define CPUID_EDX_LM (1 << 29)

/* Descriptor values: 64-bit kernel code (L=1, P, DPL0, execute/read) and flat data. */
#define GDT_KERNEL_CODE64 0x00af9a000000ffff
#define GDT_KERNEL_DATA 0x00cf92000000ffff
#define BOOT_CODE_SELECTOR 0x08
#define BOOT_DATA_SELECTOR 0x10

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define COM1_PORT 0x3f8
#define DEBUG_EXIT_PORT 0xf4
/*
 * isa-debug-exit makes QEMU exit with (value << 1) | 1: 0x10 -> 33 (success), 0x11 -> 35
 * (failure). Both differ from QEMU's own error status (1) and from a reset under -no-reboot (0).
 */
#define DEBUG_EXIT_SUCCESS 0x10
#define DEBUG_EXIT_FAILURE 0x11

/*
 * A secondary CPU's start (ap_trampoline.S, smp.cpp): the STARTUP IPI starts it in real mode at
 * physical page AP_TRAMPOLINE_BASE >> 12, below 1 MiB, where the boot CPU copies the trampoline.
 * The kernel never takes frames below 1 MiB (layout::kLowMemoryEnd).
 */
#define AP_TRAMPOLINE_BASE 0x8000
#define AP_CODE32_SELECTOR 0x08
#define AP_DATA_SELECTOR 0x10
#define AP_CODE64_SELECTOR 0x18
#define GDT_KERNEL_CODE32 0x00cf9a000000ffff
