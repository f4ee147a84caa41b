/*
 * Constants shared by the AArch64 boot stub (assembly) and the C++ that follows it.
 * Plain #defines so that both languages can include this file. The paging facts themselves
 * (granule, descriptor bits, MAIR) are in page_defs.h.
 */
#pragma once

#include "arch/aarch64/page_defs.h"

#define BOOT_STACK_SIZE (16 * 1024)
#define BOOT_ENTRY_STACK_SIZE (16 * 1024) /* the low stack C++ starts on (boot.S) */

/* QEMU virt: RAM starts at 1 GiB; everything below is flash and device registers. */
#define RAM_BASE 0x40000000
#define PL011_BASE 0x09000000 /* the boot console until the device tree is read */

/*
 * The boot maps, all 1 GiB blocks:
 *   TTBR0: [0, 4 GiB) to itself: [0, 1 GiB) as device memory (flash, GIC, PL011, ...),
 *          [1 GiB, 4 GiB) as normal RAM (QEMU virt puts up to 3 GiB of RAM there);
 *   TTBR1: the physical window, RAM [1 GiB, 4 GiB) at 0xffff800000000000 (L0 slot 256), and
 *          RAM [1 GiB, 3 GiB) at 0xffffffff80000000, where the kernel is linked (L0 slot 511,
 *          L1 slots 510 and 511).
 * mmu.cpp checks these slots against the layout and the format.
 */
#define BOOT_MAP_GIB 4
#define BOOT_DEVICE_GIB 1
#define BOOT_WINDOW_L0_INDEX 256
#define BOOT_MMIO_L0_INDEX 384 /* 0xffffc00000000000: devices (kMmioBase) */
#define BOOT_WINDOW_GIB (BOOT_MAP_GIB - BOOT_DEVICE_GIB)
#define BOOT_KERNEL_L0_INDEX 511
#define BOOT_KERNEL_L1_INDEX 510
#define BOOT_KERNEL_GIB 2

/*
 * TCR_EL1: T0SZ = T1SZ = 16 (two 48-bit ranges), 4 KiB granules, walks inner-shareable and
 * write-back cacheable in both ranges, 8-bit ASIDs taken from TTBR0; IPS is filled in from
 * ID_AA64MMFR0_EL1 at boot.
 */
#define TCR_T0SZ_16 (16 << 0)
#define TCR_IRGN0_WB (1 << 8)
#define TCR_ORGN0_WB (1 << 10)
#define TCR_SH0_INNER (3 << 12)
#define TCR_TG0_4K (0 << 14)
#define TCR_T1SZ_16 (16 << 16)
#define TCR_IRGN1_WB (1 << 24)
#define TCR_ORGN1_WB (1 << 26)
#define TCR_SH1_INNER (3 << 28)
#define TCR_TG1_4K (2 << 30)
#define TCR_IPS_SHIFT 32
#define TCR_BOOT_VALUE                                                                                   \
  (TCR_T0SZ_16 | TCR_IRGN0_WB | TCR_ORGN0_WB | TCR_SH0_INNER | TCR_TG0_4K | TCR_T1SZ_16 | TCR_IRGN1_WB | \
   TCR_ORGN1_WB | TCR_SH1_INNER | TCR_TG1_4K)

/*
 * SCTLR_EL1: MMU (M), data and instruction caches (C, I), stack alignment checks (SA, SA0),
 * EL0 may use WFI/WFE (nTWI, nTWE), plus the bits that read as one on ARMv8.0 (11, 20, 22, 23,
 * 28, 29). Bit 23 is SPAN from ARMv8.1 on: the stub clears it when the CPU has PAN, so that
 * every exception into EL1 sets PSTATE.PAN. WXN stays off: the boot map's blocks are
 * writable and executable at once (the switch to the kernel's own tables turns it on).
 */
#define SCTLR_M (1 << 0)
#define SCTLR_C (1 << 2)
#define SCTLR_SA (1 << 3)
#define SCTLR_SA0 (1 << 4)
#define SCTLR_I (1 << 12)
#define SCTLR_NTWI (1 << 16)
#define SCTLR_NTWE (1 << 18)
#define SCTLR_SPAN (1 << 23)
#define SCTLR_RES1 ((1 << 11) | (1 << 20) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29))
#define SCTLR_BOOT_VALUE (SCTLR_RES1 | SCTLR_M | SCTLR_C | SCTLR_SA | SCTLR_SA0 | SCTLR_I | SCTLR_NTWI | SCTLR_NTWE)

#define ID_MMFR1_PAN_SHIFT 20 /* ID_AA64MMFR1_EL1.PAN: nonzero when PAN exists */
#define PSTATE_PAN_BIT 22     /* the PAN register (S3_0_C4_C2_3) holds PSTATE.PAN here */

/* EL2 -> EL1 (QEMU's virt,virtualization=on enters at EL2). */
#define HCR_EL2_RW (1 << 31)       /* EL1 runs in AArch64 */
#define CNTHCTL_EL1PCTEN_EL1PCEN 3 /* EL1 may use the physical counter and timer */
#define SPSR_EL1H_MASKED 0x3c5     /* EL1 with SP_EL1, D A I F masked */

/*
 * Semihosting (QEMU's -semihosting-config enable=on,target=native): HLT #0xF000 with the
 * operation in x0 and its parameter block in x1. SYS_EXIT with ADP_Stopped_ApplicationExit
 * and a status makes QEMU exit with that status. The statuses are the x86_64 ones (33, 35):
 * distinct from QEMU's own error (1) and from a guest power-off or reset (0).
 */
#define SEMIHOSTING_HLT 0xf000
#define SEMIHOSTING_SYS_EXIT 0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define EXIT_STATUS_SUCCESS 33
#define EXIT_STATUS_FAILURE 35

/* PSCI through HVC (the conduit QEMU virt's device tree names): the fallback power-off. */
#define PSCI_SYSTEM_OFF 0x84000008
