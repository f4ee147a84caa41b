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
 *
 * Every entry for an exception from EL0 first loads SP_EL1 from this CPU's slot of
 * aarch64_user_trap_sp (core/cpu.hpp's PerCpu), the top of the running process's kernel stack (arch::set_kernel_stack() sets it at every switch, before
 * the process's root is loaded; user_mode.cpp), the way x86_64's CPU loads TSS.RSP0: what
 * SP_EL1 held when the kernel returned to EL0 does not matter. x0 waits in TPIDR_EL1 meanwhile.
 *
 * Two entries do more (lab 3):
 *   - lower EL, synchronous: an SVC (ESR_EL1.EC 0x15) goes to aarch64_svc_entry (switch.S), on
 *     a page of its own for the grader's breakpoint, with every register as EL0 left it;
 *   - current EL, synchronous: a kernel stack overflow. AArch64 has no IST: an abort taken
 *     because SP ran into the guard page below a kernel stack would be delivered on the same
 *     SP, and the entry's first store would fault again, forever (the CPU's "triple fault").
 *     So before it pushes anything the entry checks where the frame would go: inside the guard
 *     of a kernel-stack slot (kernel/proc/kernel_stack.hpp; the bounds come from C++ in
 *     aarch64_kstack_area, arch/aarch64/user_mode.cpp) means the stack overflowed, and the frame
 *     is built on a separate overflow stack, with TRAP_KIND_OVERFLOW in its kind, for
 *     aarch64_trap() to report "kernel stack overflow" and panic. The same happens when the
 *     frame's first byte is not mapped writable at all (an address translation, AT S1E1W):
 *     the stack was unmapped under the CPU, and the report says that instead. The check needs two scratch
 *     registers before anything is saved: x0 waits in TPIDR_EL1 (the kernel keeps nothing
 *     there) and x1 in SP_EL0 (in the kernel SP_EL0 is dead: an exception from EL0 saved the
 *     user's in its frame, and the return to EL0 reloads it from there).
 */
#include "arch/aarch64/trap_frame.hpp"

        .cfi_sections .debug_frame     /* for GDB only: .eh_frame is discarded */

#define VECTOR_ENTRY_SIZE 0x80
#define KIND_FIRST_LOWER_EL 8
#define ESR_CLASS_SHIFT 26
#define ESR_CLASS_SVC64 0x15
#define OVERFLOW_STACK_SHIFT 13
#define OVERFLOW_STACK_SIZE (1 << OVERFLOW_STACK_SHIFT)
#define MAX_CPUS 2              /* kMaxCpus (core/cpu.hpp) */

.macro vector_entry kind
        .balign VECTOR_ENTRY_SIZE
        sub     sp, sp, #TRAP_FRAME_SIZE
        stp     x0, x1, [sp, #TRAP_FRAME_X0]
        mov     x0, #\kind
        b       aarch64_trap_entry
.endm

/* From EL0: SP_EL1 = this CPU's slot of aarch64_user_trap_sp (the top of the kernel stack of the
   process running on it). The slot's offset is in TPIDRRO_EL0 (arch_impl/this_cpu.hpp); SP,
   whose value does not matter yet, holds it while x0 takes the address. */
.macro user_trap_stack
        msr     tpidr_el1, x0
        mrs     x0, tpidrro_el0
        mov     sp, x0
        adrp    x0, aarch64_user_trap_sp
        add     x0, x0, #:lo12:aarch64_user_trap_sp
        add     x0, sp, x0
        ldr     x0, [x0]
        mov     sp, x0
        mrs     x0, tpidr_el1
.endm

.macro user_vector_entry kind
        .balign VECTOR_ENTRY_SIZE
        user_trap_stack
        sub     sp, sp, #TRAP_FRAME_SIZE
        stp     x0, x1, [sp, #TRAP_FRAME_X0]
        mov     x0, #\kind
        b       aarch64_trap_entry
.endm

/* Branches to aarch64_kstack_overflow when a TrapFrame pushed now would start in the guard of
   a kernel-stack slot: (SP - TRAP_FRAME_SIZE - base) < area size, and its offset in the slot
   ((... ) & (stride - 1)) below the guard's size. aarch64_kstack_area = {base, area size,
   stride - 1, guard size}. Also when the live tables do not let EL1 write there (AT S1E1W
   sets PAR_EL1.F): the running stack was taken away under the CPU (a switch of roots without
   it). Leaves every register but PAR_EL1 as it found it otherwise. */
.macro kstack_check
        msr     tpidr_el1, x0
        msr     sp_el0, x1
        mov     x0, sp
        sub     x0, x0, #TRAP_FRAME_SIZE
        adrp    x1, aarch64_kstack_area
        ldr     x1, [x1, #:lo12:aarch64_kstack_area]
        sub     x0, x0, x1
        adrp    x1, aarch64_kstack_area
        ldr     x1, [x1, #:lo12:aarch64_kstack_area + 8]
        cmp     x0, x1
        b.hs    1f
        adrp    x1, aarch64_kstack_area
        ldr     x1, [x1, #:lo12:aarch64_kstack_area + 16]
        and     x0, x0, x1
        adrp    x1, aarch64_kstack_area
        ldr     x1, [x1, #:lo12:aarch64_kstack_area + 24]
        cmp     x0, x1
        b.lo    aarch64_kstack_overflow
1:      mov     x0, sp                  /* where the frame would start: mapped writable? */
        sub     x0, x0, #TRAP_FRAME_SIZE
        at      s1e1w, x0
        isb
        mrs     x0, par_el1
        tbnz    x0, #0, aarch64_kstack_overflow   /* PAR_EL1.F: the stack is not mapped */
        mrs     x1, sp_el0
        mrs     x0, tpidr_el1
.endm

        .section .text.vectors, "ax"
        .balign 2048
        .global aarch64_vectors
aarch64_vectors:
        .irp kind, 0, 1, 2, 3
        vector_entry \kind
        .endr
        /* current EL with SP_ELx: the kernel. Its synchronous exceptions check the stack. */
        .balign VECTOR_ENTRY_SIZE
current_el_sync:
        kstack_check
        sub     sp, sp, #TRAP_FRAME_SIZE
        stp     x0, x1, [sp, #TRAP_FRAME_X0]
        mov     x0, #4
        b       aarch64_trap_entry
        .if (. - current_el_sync) > VECTOR_ENTRY_SIZE
        .error "the current-EL synchronous vector entry is longer than its 128 bytes"
        .endif
        .irp kind, 5, 6, 7
        vector_entry \kind
        .endr
        /* lower EL, AArch64: user programs. An SVC is a system call. */
        .balign VECTOR_ENTRY_SIZE
        user_trap_stack
        sub     sp, sp, #TRAP_FRAME_SIZE
        stp     x0, x1, [sp, #TRAP_FRAME_X0]
        mrs     x0, esr_el1
        lsr     x0, x0, #ESR_CLASS_SHIFT
        cmp     x0, #ESR_CLASS_SVC64
        ldr     x0, [sp, #TRAP_FRAME_X0]        /* the program's x0 again, for the breakpoint */
        b.eq    aarch64_svc_entry
        mov     x0, #TRAP_KIND_LOWER_SYNC
        b       aarch64_trap_entry
        .irp kind, 9, 10, 11
        user_vector_entry \kind
        .endr
        .irp kind, 12, 13, 14, 15
        vector_entry \kind
        .endr

/* The kernel stack overflowed (kstack_check): x0 is in TPIDR_EL1, x1 in SP_EL0, SP where it
   ran over. The frame goes on the overflow stack; its sp is the one that ran over. */
aarch64_kstack_overflow:
        mov     x0, sp
        mrs     x1, tpidrro_el0         /* this CPU's: 16 * its index (arch_impl/this_cpu.hpp) */
        lsl     x1, x1, #(OVERFLOW_STACK_SHIFT - 4)
        mov     sp, x1
        adrp    x1, aarch64_overflow_stack_top
        add     x1, x1, #:lo12:aarch64_overflow_stack_top
        add     sp, sp, x1
        sub     sp, sp, #TRAP_FRAME_SIZE
        str     x0, [sp, #TRAP_FRAME_SP]
        mrs     x0, tpidr_el1
        mrs     x1, sp_el0
        stp     x0, x1, [sp, #TRAP_FRAME_X0]
        mov     x0, #(4 + TRAP_KIND_OVERFLOW)
        b       aarch64_trap_entry

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
        tbz     x0, #4, 0f                      /* TRAP_KIND_OVERFLOW: sp is in the frame */
        ldr     x1, [sp, #TRAP_FRAME_SP]
        b       2f
0:      cmp     x0, #KIND_FIRST_LOWER_EL
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

        /* Where a new process starts, too: its first switch returns here with SP at the
           TrapFrame arch::prepare_user_entry() wrote (user_mode.cpp), and ERET enters EL0. */
        .global aarch64_trap_return
aarch64_trap_return:
        /* Back to EL0: with two CPUs this CPU lets the kernel lock go (core/cpu.hpp). */
        adrp    x0, pagoda_kernel_locking
        ldrb    w0, [x0, #:lo12:pagoda_kernel_locking]
        cbz     w0, 4f
        ldr     x0, [sp, #TRAP_FRAME_KIND]
        cmp     x0, #KIND_FIRST_LOWER_EL
        b.lo    4f
        bl      pagoda_kernel_lock_leave
4:      /* The handler may have changed ELR, SPSR or the saved registers: restore them all. */
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

/* The end of the trap entry code. */
        .global aarch64_trap_entry_end
aarch64_trap_entry_end:

        /* Where aarch64_kstack_overflow builds its frame: one stack per CPU, CPU c's top at
           aarch64_overflow_stack_top + c * OVERFLOW_STACK_SIZE (the overflow report panics;
           nothing returns from it). */
        .bss
        .balign 16
        .global aarch64_overflow_stack_bottom, aarch64_overflow_stack_top
aarch64_overflow_stack_bottom:
        .skip   OVERFLOW_STACK_SIZE
aarch64_overflow_stack_top:
        .skip   OVERFLOW_STACK_SIZE * (MAX_CPUS - 1)
