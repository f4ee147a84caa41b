/*
 * AArch64 boot stub: from QEMU's entry (EL1, MMU off) to C++ running high.
 *
 * QEMU's virt machine with `-kernel kernel.elf` loads every PT_LOAD segment at its physical
 * address (RAM from 0x40000000), puts the device tree blob at the start of RAM (the image
 * leaves room for it: see docs/boot.md) and jumps to _start with
 *     EL1 (EL2 with virtualization=on), MMU and caches off, D A I F masked,
 *     x0 = 0 (an ELF is not a Linux image: no DTB pointer), no stack.
 *
 * The stub then:
 *   1. drops from EL2 to EL1 if it was entered at EL2;
 *   2. builds two temporary roots with 1 GiB blocks:
 *        TTBR0: identity of [0, 4 GiB): [0, 1 GiB) device memory, RAM normal memory, so the
 *               next instructions keep running and C++ reaches the DTB and the devices;
 *        TTBR1: RAM [1 GiB, 4 GiB) at 0xffff800000000000, the kernel's physical window
 *               (kernel/mm/base/layout.hpp), through which the start code reads the device tree;
 *               [0, 1 GiB) as device memory at 0xffffc00000000000 (kMmioBase + physical:
 *               vm::device_ptr, the PL011 and the GIC); and [1 GiB, 3 GiB) at
 *               0xffffffff80000000, where the kernel is linked (kernel.ld: VMA = LMA +
 *               KERNEL_VIRT_OFFSET);
 *   3. sets MAIR_EL1 (once, for good), TCR_EL1 (48-bit ranges, 4 KiB granules), the two
 *      TTBRs, and SCTLR_EL1 (MMU, caches); sets PSTATE.PAN when the CPU has it;
 *   4. moves to the low ENTRY stack, jumps to the kernel's high address, stops with the
 *      too-little-memory line if the device tree's RAM ends before .bss does (aarch64_check_ram,
 *      start.cpp: clearing it would fault before the vectors are live, a silent spin), clears
 *      .bss, points VBAR_EL1 at the exception vectors and calls aarch64_start(x0 of the entry).
 * Nothing after the entry needs TTBR0's identity but that stack. Leaving it for the kernel's
 * own stack (boot_stack, linked high) and the boot tables for the kernel's own roots is the
 * kernel's job, lab 2's vm::enter_kernel_space() (kernel/mm/vm.cpp).
 * This stub lives in the low, identity-linked .boot section; everything else is linked high.
 */

#include "arch/aarch64/boot_defs.h"

#define BOOT_TABLE_DESC (AARCH64_DESC_VALID | AARCH64_DESC_TABLE)
#define BOOT_DEVICE_BLOCK (AARCH64_DESC_VALID | (AARCH64_ATTR_DEVICE << AARCH64_DESC_ATTR_SHIFT) | AARCH64_DESC_AF | \
                           (1 << AARCH64_DESC_PXN_BIT) | (1 << AARCH64_DESC_UXN_BIT))
#define BOOT_RAM_BLOCK (AARCH64_DESC_VALID | (AARCH64_ATTR_NORMAL << AARCH64_DESC_ATTR_SHIFT) | \
                        AARCH64_DESC_SH_INNER | AARCH64_DESC_AF | (1 << AARCH64_DESC_UXN_BIT))

        .section .boot.text, "ax"
        .global _start
_start:
        msr     daifset, #0xf
        mov     x19, x0                 /* a loader's DTB pointer survives in x19 */
        mrs     x0, CurrentEL
        lsr     x0, x0, #2
        cmp     x0, #2
        b.eq    from_el2
        cmp     x0, #1
        b.ne    wrong_el

el1_entry:
        /* Zero the stub's tables: they are NOLOAD, so they hold whatever RAM held. */
        adrp    x0, boot_tables_start
        adrp    x1, boot_tables_end
1:      stp     xzr, xzr, [x0], #16
        cmp     x0, x1
        b.lo    1b

        /* TTBR0: L0[0] -> L1; L1[0] = [0, 1 GiB) device; L1[1..3] = RAM, identity */
        adrp    x0, boot_l0_low
        adrp    x1, boot_l1_low
        orr     x2, x1, #BOOT_TABLE_DESC
        str     x2, [x0]
        ldr     x2, =BOOT_DEVICE_BLOCK
        str     x2, [x1]
        ldr     x3, =BOOT_RAM_BLOCK
        mov     x4, #BOOT_DEVICE_GIB
2:      orr     x2, x3, x4, lsl #AARCH64_L1_BLOCK_SHIFT
        str     x2, [x1, x4, lsl #3]
        add     x4, x4, #1
        cmp     x4, #BOOT_MAP_GIB
        b.lo    2b

        /* TTBR1: L0[511] -> L1; L1[510], L1[511] = RAM [1 GiB, 3 GiB) at -2 GiB */
        adrp    x0, boot_l0_high
        adrp    x1, boot_l1_high
        orr     x2, x1, #BOOT_TABLE_DESC
        str     x2, [x0, #(8 * BOOT_KERNEL_L0_INDEX)]
        mov     x4, #0
3:      add     x5, x4, #(RAM_BASE >> AARCH64_L1_BLOCK_SHIFT)
        orr     x2, x3, x5, lsl #AARCH64_L1_BLOCK_SHIFT
        add     x6, x4, #BOOT_KERNEL_L1_INDEX
        str     x2, [x1, x6, lsl #3]
        add     x4, x4, #1
        cmp     x4, #BOOT_KERNEL_GIB
        b.lo    3b

        /* TTBR1: L0[256] -> L1 window; L1[0..2] = RAM [1 GiB, 4 GiB): the physical window */
        adrp    x1, boot_l1_window
        orr     x2, x1, #BOOT_TABLE_DESC
        str     x2, [x0, #(8 * BOOT_WINDOW_L0_INDEX)]
        mov     x4, #0
4:      add     x5, x4, #(RAM_BASE >> AARCH64_L1_BLOCK_SHIFT)
        orr     x2, x3, x5, lsl #AARCH64_L1_BLOCK_SHIFT
        str     x2, [x1, x4, lsl #3]
        add     x4, x4, #1
        cmp     x4, #BOOT_WINDOW_GIB
        b.lo    4b

        /* TTBR1: L0[384] -> L1 devices; L1[0] = [0, 1 GiB) device memory at kMmioBase */
        adrp    x1, boot_l1_mmio
        orr     x2, x1, #BOOT_TABLE_DESC
        str     x2, [x0, #(8 * BOOT_MMIO_L0_INDEX)]
        ldr     x2, =BOOT_DEVICE_BLOCK
        str     x2, [x1]

        /* The tables were written with the MMU (and so the caches) off: drop any stale cache
           line over them before the table walker, which reads through the caches, sees them. */
        mrs     x2, ctr_el0
        ubfx    x2, x2, #16, #4         /* DminLine: log2 of the line size in words */
        mov     x3, #4
        lsl     x3, x3, x2              /* line size in bytes */
        adrp    x0, boot_tables_start
        adrp    x1, boot_tables_end
5:      dc      ivac, x0
        add     x0, x0, x3
        cmp     x0, x1
        b.lo    5b
        dsb     sy

        ldr     x0, =AARCH64_MAIR_VALUE
        msr     mair_el1, x0
        ldr     x0, =TCR_BOOT_VALUE
        mrs     x1, id_aa64mmfr0_el1
        and     x1, x1, #0xf            /* PARange; IPS takes the same encoding, up to 48 bits */
        mov     x2, #5
        cmp     x1, x2
        csel    x1, x2, x1, hi
        bfi     x0, x1, #TCR_IPS_SHIFT, #3
        msr     tcr_el1, x0
        adrp    x0, boot_l0_low
        msr     ttbr0_el1, x0
        adrp    x0, boot_l0_high
        msr     ttbr1_el1, x0
        isb
        tlbi    vmalle1                 /* nothing a previous run left may be used */
        dsb     nsh
        isb

        ldr     x0, =SCTLR_BOOT_VALUE
        mrs     x1, id_aa64mmfr1_el1
        ubfx    x1, x1, #ID_MMFR1_PAN_SHIFT, #4
        cbz     x1, 6f
        bic     x0, x0, #SCTLR_SPAN     /* with PAN: every exception into EL1 sets PSTATE.PAN */
6:      msr     sctlr_el1, x0
        isb
        cbz     x1, 7f
        mov     x2, #(1 << PSTATE_PAN_BIT)
        msr     s3_0_c4_c2_3, x2        /* PSTATE.PAN = 1: no kernel access to user pages */
7:      adrp    x0, boot_entry_stack_top  /* low: reached through TTBR0's identity */
        add     x0, x0, #:lo12:boot_entry_stack_top
        mov     sp, x0
        ldr     x0, =boot_high_entry    /* leave the identity-linked code for good */
        br      x0

/* Entered at EL2 (virt,virtualization=on): run the kernel at EL1, with the timers usable. */
from_el2:
        mov     x0, #HCR_EL2_RW
        msr     hcr_el2, x0
        mrs     x0, cnthctl_el2
        orr     x0, x0, #CNTHCTL_EL1PCTEN_EL1PCEN
        msr     cnthctl_el2, x0
        msr     cntvoff_el2, xzr
        mov     x0, #SPSR_EL1H_MASKED
        msr     spsr_el2, x0
        adr     x0, el1_entry
        msr     elr_el2, x0
        eret

/* Neither EL1 nor EL2: say so on the PL011 and exit with the failure status. */
wrong_el:
        adr     x1, wrong_el_message
        ldr     x2, =PL011_BASE
8:      ldrb    w3, [x1], #1
        cbz     w3, 9f
        str     w3, [x2]
        b       8b
9:      mov     x0, #SEMIHOSTING_SYS_EXIT
        adr     x1, exit_failure_block
        hlt     #SEMIHOSTING_HLT
10:     wfe
        b       10b

/* ---- linked high ---------------------------------------------------------------------- */
        .text
boot_high_entry:
        mov     x0, x19                 /* too little RAM for .bss: say so and stop (start.cpp) */
        bl      aarch64_check_ram
        ldr     x0, =__bss_start
        ldr     x1, =__bss_end
1:      stp     xzr, xzr, [x0], #16
        cmp     x0, x1
        b.lo    1b
        ldr     x0, =aarch64_vectors
        msr     vbar_el1, x0
        msr     tpidrro_el0, xzr        /* the boot CPU's per-CPU slot: 0 (arch_impl/this_cpu.hpp) */
        isb
        mov     x29, xzr                /* the end of every backtrace */
        mov     x30, xzr
        mov     x0, x19
        bl      aarch64_start
2:      wfi
        b       2b

/* arch::run_on_stack(top = x0, fn = x1, arg = x2) (core/arch.hpp): SP = top, then fn(arg). */
        .global pagoda_run_on_stack
pagoda_run_on_stack:
        mov     sp, x0
        mov     x29, xzr                /* the end of every backtrace */
        mov     x30, xzr
        mov     x0, x2
        blr     x1
3:      brk     #0                      /* fn returned: there is nothing to return to */
        b       3b

/* ---- data ------------------------------------------------------------------------------ */
        .section .boot.rodata, "a"
wrong_el_message:
        .asciz  "Pagoda: entered at an exception level other than EL1 or EL2; cannot boot\n"
        .balign 8
exit_failure_block:
        .quad   ADP_STOPPED_APPLICATION_EXIT
        .quad   EXIT_STATUS_FAILURE

        /* Low and physical: the boot tables (free once the kernel runs on its own tables).
           The linker script brackets them with boot_tables_start/end. */
        .section .boot.bss, "aw", %nobits
        .balign AARCH64_PAGE_SIZE
        .global boot_l0_low, boot_l0_high
boot_l0_low:    .skip AARCH64_PAGE_SIZE
boot_l1_low:    .skip AARCH64_PAGE_SIZE
boot_l0_high:   .skip AARCH64_PAGE_SIZE
boot_l1_high:   .skip AARCH64_PAGE_SIZE
boot_l1_window: .skip AARCH64_PAGE_SIZE
boot_l1_mmio:   .skip AARCH64_PAGE_SIZE

        /* The entry stack: low and physical, the stack the kernel's C++ starts on, until
           vm::enter_kernel_space() moves to boot_stack and gives its frames to the allocator.
           Its own section, after the tables (kernel.ld). */
        .section .boot.stack, "aw", %nobits
        .balign AARCH64_PAGE_SIZE
        .global boot_entry_stack_bottom, boot_entry_stack_top
boot_entry_stack_bottom:
        .skip   BOOT_ENTRY_STACK_SIZE
boot_entry_stack_top:

        /* The kernel's own stack, linked high like the rest of the kernel, above a guard page
           that the kernel's root leaves unmapped (vm::init): an overflow faults there and is
           reported as one, as a process's kernel stack's is (kernel/proc/kernel_stack.hpp). */
        .section .bss
        .balign AARCH64_PAGE_SIZE
        .global boot_stack_guard
boot_stack_guard:
        .skip   AARCH64_PAGE_SIZE
        .global boot_stack_bottom, boot_stack_top
boot_stack_bottom:
        .skip   BOOT_STACK_SIZE
boot_stack_top:
