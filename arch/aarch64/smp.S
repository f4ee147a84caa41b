/*
 * The start of a secondary CPU (AArch64), from PSCI CPU_ON to the kernel's C++.
 *
 * PSCI starts the CPU at the PHYSICAL address of aarch64_secondary_entry, with the MMU and
 * caches off, at EL1 (or EL2), D A I F masked, x0 = the context id arch::start_cpu() passed: the
 * physical address of aarch64_secondary_params (smp.cpp, struct SecondaryParams, this order).
 * Until the MMU is on, only PC-relative addressing is used (the code runs where it was loaded,
 * KERNEL_VIRT_OFFSET below where it is linked). The entry:
 *   1. drops from EL2 to EL1 if it was entered at EL2 (as boot.S does);
 *   2. sets MAIR_EL1 and TCR_EL1 as the boot CPU has them, TTBR1_EL1 to the kernel's root, and
 *      TTBR0_EL1 to a temporary identity of the GiB of RAM this code is in (read-only, so that
 *      SCTLR_EL1.WXN would allow executing it), then SCTLR_EL1 as the boot CPU has it without
 *      its protections (MMU and caches on; WXN off, SPAN set: PSTATE.PAN stays clear);
 *   3. jumps to its high address, takes its own stack, the exception vectors and the boot
 *      CPU's TTBR0 (which leaves the identity), drops every TLB entry the identity left, and
 *      calls aarch64_secondary_start(cpu) (smp.cpp), which gives the CPU what it must own: its
 *      per-CPU slot (TPIDRRO_EL0), its protections, its GIC interface and timer.
 */
#include "arch/aarch64/boot_defs.h"

#define PARAM_MAIR 0
#define PARAM_TCR 8
#define PARAM_IDENTITY 16
#define PARAM_TTBR1 24
#define PARAM_SCTLR 32
#define PARAM_STACK 40
#define PARAM_TTBR0 48
#define PARAM_CPU 56

        .text
        .global aarch64_secondary_entry
aarch64_secondary_entry:
        msr     daifset, #0xf
        mov     x19, x0
        mrs     x1, CurrentEL
        lsr     x1, x1, #2
        cmp     x1, #2
        b.ne    1f
        mov     x1, #HCR_EL2_RW
        msr     hcr_el2, x1
        mrs     x1, cnthctl_el2
        orr     x1, x1, #CNTHCTL_EL1PCTEN_EL1PCEN
        msr     cnthctl_el2, x1
        msr     cntvoff_el2, xzr
        mov     x1, #SPSR_EL1H_MASKED
        msr     spsr_el2, x1
        adr     x1, 1f
        msr     elr_el2, x1
        eret
1:      ldr     x1, [x19, #PARAM_MAIR]
        msr     mair_el1, x1
        ldr     x1, [x19, #PARAM_TCR]
        msr     tcr_el1, x1
        ldr     x1, [x19, #PARAM_IDENTITY]
        msr     ttbr0_el1, x1
        ldr     x1, [x19, #PARAM_TTBR1]
        msr     ttbr1_el1, x1
        isb
        tlbi    vmalle1
        dsb     nsh
        isb
        ldr     x1, [x19, #PARAM_SCTLR]
        bic     x1, x1, #(1 << 19)      /* WXN off, SPAN on: the protections come in C++ */
        orr     x1, x1, #SCTLR_SPAN
        msr     sctlr_el1, x1
        isb
        ldr     x1, =2f                 /* leave the identity for the kernel's high addresses */
        br      x1
2:      ldr     x19, =aarch64_secondary_params
        ldr     x1, [x19, #PARAM_STACK]
        mov     sp, x1
        ldr     x1, =aarch64_vectors
        msr     vbar_el1, x1
        ldr     x1, [x19, #PARAM_TTBR0]
        msr     ttbr0_el1, x1
        isb
        tlbi    vmalle1                 /* nothing of the identity may stay cached */
        dsb     nsh
        isb
        mov     x29, xzr                /* the end of every backtrace */
        mov     x30, xzr
        ldr     x0, [x19, #PARAM_CPU]
        bl      aarch64_secondary_start
3:      wfi
        b       3b
