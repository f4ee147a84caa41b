/*
 * The exception vector table (VBAR_EL1) and the common trap path.
 *
 * Sixteen entries of 0x80 bytes, in four groups by where the exception came from, each with
 * one entry per type (synchronous, IRQ, FIQ, SError):
 *
 *     VBAR_EL1 + 0x000  current EL, SP_EL0     (never used: the kernel runs on SP_EL1)
 *              + 0x200  current EL, SP_ELx     the kernel itself
 *              + 0x400  lower EL, AArch64      user programs (lab 3)
 *              + 0x600  lower EL, AArch32      (unsupported)
 *
 * Every entry makes room for a TrapFrame (trap_frame.hpp) on the current stack, saves x0 and
 * x1, puts the entry's number in x0 and branches to aarch64_trap_entry, which saves the rest:
 *
 *     higher addresses
 *       frame record {x29, ELR}        so a backtrace goes on into the interrupted code
 *       kind, FAR, ESR, SPSR, ELR, SP  (SP as it was before the exception)
 *       x30 ... x0
 *     lower addresses  <- SP = struct TrapFrame* passed to aarch64_trap()
 */
#include "arch/aarch64/trap_frame.hpp"

        .cfi_sections .debug_frame     /* for GDB only: .eh_frame is discarded */

#define VECTOR_ENTRY_SIZE 0x80
#define KIND_FIRST_LOWER_EL 8

.macro vector_entry kind
        .balign VECTOR_ENTRY_SIZE
        sub     sp, sp, #TRAP_FRAME_SIZE
        stp     x0, x1, [sp, #TRAP_FRAME_X0]
        mov     x0, #\kind
        b       aarch64_trap_entry
.endm

        .section .text.vectors, "ax"
        .balign 2048
        .global aarch64_vectors
aarch64_vectors:
        .irp kind, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        vector_entry \kind
        .endr

/* For GDB: the caller of this "function" is the interrupted code, at ELR, with the stack
   pointer it had (from EL1) and its x29 as saved here. */
        .global aarch64_trap_entry
        .type   aarch64_trap_entry, %function
aarch64_trap_entry:
        .cfi_startproc
        .cfi_signal_frame
        .cfi_def_cfa sp, TRAP_FRAME_SIZE
        .cfi_offset x29, TRAP_FRAME_X29 - TRAP_FRAME_SIZE
        .cfi_offset x30, TRAP_FRAME_ELR - TRAP_FRAME_SIZE
        stp     x2, x3, [sp, #16]
        stp     x4, x5, [sp, #32]
        stp     x6, x7, [sp, #48]
        stp     x8, x9, [sp, #64]
        stp     x10, x11, [sp, #80]
        stp     x12, x13, [sp, #96]
        stp     x14, x15, [sp, #112]
        stp     x16, x17, [sp, #128]
        stp     x18, x19, [sp, #144]
        stp     x20, x21, [sp, #160]
        stp     x22, x23, [sp, #176]
        stp     x24, x25, [sp, #192]
        stp     x26, x27, [sp, #208]
        stp     x28, x29, [sp, #224]
        str     x30, [sp, #240]
        str     x0, [sp, #TRAP_FRAME_KIND]
        cmp     x0, #KIND_FIRST_LOWER_EL
        b.hs    1f
        add     x1, sp, #TRAP_FRAME_SIZE        /* from EL1: the stack before the frame */
        b       2f
1:      mrs     x1, sp_el0                      /* from EL0: the user's stack pointer */
2:      mrs     x2, elr_el1
        stp     x1, x2, [sp, #TRAP_FRAME_SP]
        mrs     x3, spsr_el1
        mrs     x4, esr_el1
        stp     x3, x4, [sp, #TRAP_FRAME_SPSR]
        mrs     x5, far_el1
        str     x5, [sp, #TRAP_FRAME_FAR]
        stp     x29, x2, [sp, #TRAP_FRAME_RECORD]
        add     x29, sp, #TRAP_FRAME_RECORD
        mov     x0, sp
        bl      aarch64_trap

        /* The handler may have changed ELR, SPSR or the saved registers: restore them all. */
        ldp     x1, x2, [sp, #TRAP_FRAME_SP]
        ldr     x3, [sp, #TRAP_FRAME_SPSR]
        msr     elr_el1, x2
        msr     spsr_el1, x3
        ldr     x0, [sp, #TRAP_FRAME_KIND]
        cmp     x0, #KIND_FIRST_LOWER_EL
        b.lo    3f
        msr     sp_el0, x1
3:      ldp     x0, x1, [sp, #0]
        ldp     x2, x3, [sp, #16]
        ldp     x4, x5, [sp, #32]
        ldp     x6, x7, [sp, #48]
        ldp     x8, x9, [sp, #64]
        ldp     x10, x11, [sp, #80]
        ldp     x12, x13, [sp, #96]
        ldp     x14, x15, [sp, #112]
        ldp     x16, x17, [sp, #128]
        ldp     x18, x19, [sp, #144]
        ldp     x20, x21, [sp, #160]
        ldp     x22, x23, [sp, #176]
        ldp     x24, x25, [sp, #192]
        ldp     x26, x27, [sp, #208]
        ldp     x28, x29, [sp, #224]
        ldr     x30, [sp, #240]
        add     sp, sp, #TRAP_FRAME_SIZE
        eret
        .cfi_endproc
        .size   aarch64_trap_entry, . - aarch64_trap_entry
