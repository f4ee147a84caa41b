/*
 * The 256 interrupt entry stubs and the common trap path.
 *
 * Every stub is 16 bytes (x86_vector_stubs + 16 * vector). The CPU pushes an error code for
 * some exceptions only; the stubs of the others push a zero, so all frames look alike:
 *
 *     higher addresses
 *       SS, RSP, RFLAGS, CS, RIP      pushed by the CPU
 *       error code (or 0)             pushed by the CPU or the stub
 *       vector number                 pushed by the stub
 *       RAX RBX RCX RDX RSI RDI RBP R8 ... R15   pushed by x86_trap_common
 *     lower addresses  <- RSP = struct TrapFrame* passed to x86_trap()
 *
 * Unwind information (CFI) describes this frame, so that a debugger's backtrace from a panic
 * in a trap continues into the function that was interrupted (docs/debugging.md). The kernel
 * is built without .eh_frame (-fno-asynchronous-unwind-tables; the linker script discards it),
 * but with -g the compiler writes the same rules to .debug_frame, which GDB reads; these
 * directives go there too (.cfi_sections). The CFA is the address just above the CPU's frame
 * (above SS), and every register of the interrupted code is found in memory below it:
 */
#define STUB_SIZE 16

/* Offsets from the CFA of what the CPU pushes (DWARF numbers: 49 RFLAGS, 51 CS, 52 SS). */
#define CFA_SS          -8
#define CFA_RSP         -16
#define CFA_RFLAGS      -24
#define CFA_CS          -32
#define CFA_RIP         -40
#define CFA_ERROR       -48
#define CFA_VECTOR      -56
#define DWARF_RFLAGS    49
#define DWARF_CS        51
#define DWARF_SS        52
/* CS's offset in the whole frame, from RSP once the registers are saved (15 of them, vector, error, RIP). */
#define FRAME_CS        (15 * 8 + 16 + 8)

        .cfi_sections .debug_frame

/* The rules every point of the trap path shares: where the CPU saved the interrupted state. */
.macro  trap_frame_cfi cfa_offset
        .cfi_startproc simple
        .cfi_signal_frame
        .cfi_def_cfa %rsp, \cfa_offset
        .cfi_offset %rip, CFA_RIP
        .cfi_offset %rsp, CFA_RSP
        .cfi_offset DWARF_RFLAGS, CFA_RFLAGS
        .cfi_offset DWARF_CS, CFA_CS
        .cfi_offset DWARF_SS, CFA_SS
.endm

/* A push or pop of one register of the interrupted code, with its unwind rule. */
.macro  save reg
        pushq   %\reg
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %\reg, 0
.endm
.macro  restore reg
        popq    %\reg
        .cfi_adjust_cfa_offset -8
        .cfi_restore %\reg
.endm

        .text
        .balign STUB_SIZE
        .global x86_vector_stubs
        .type   x86_vector_stubs, @function
x86_vector_stubs:
        .set vector, 0
        .rept 256
        .balign STUB_SIZE
        /* #DF 8, #TS 10, #NP 11, #SS 12, #GP 13, #PF 14, #AC 17, #CP 21, #VC 29, #SX 30 */
        .if (vector == 8) || (vector == 10) || (vector == 11) || (vector == 12) || (vector == 13) || (vector == 14) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
        trap_frame_cfi -CFA_ERROR                /* RSP points at the CPU's error code */
        .else
        trap_frame_cfi -CFA_RIP                  /* RSP points at RIP */
        pushq   $0
        .cfi_adjust_cfa_offset 8
        .endif
        pushq   $vector
        .cfi_adjust_cfa_offset 8
        jmp     x86_trap_common
        .cfi_endproc
        .set vector, vector + 1
        .endr
        .size   x86_vector_stubs, . - x86_vector_stubs

        .type   x86_trap_common, @function
x86_trap_common:
        trap_frame_cfi -CFA_VECTOR               /* RSP points at the vector number */
        /* RFLAGS.AC is the user's after a trap from ring 3 (only SYSCALL's SFMASK clears it):
           clear it, so that SMAP guards the kernel from the first instruction. Flags only. */
        testb   $1, x86_smap_enabled(%rip)
        jz      1f
        clac
1:      save    rax
        save    rbx
        save    rcx
        save    rdx
        save    rsi
        save    rdi
        save    rbp
        save    r8
        save    r9
        save    r10
        save    r11
        save    r12
        save    r13
        save    r14
        save    r15
        movq    %rsp, %rdi
        cld
        call    x86_trap
        /* Where a new process starts, too: its first switch returns here with RSP at the
           TrapFrame arch::prepare_user_entry() wrote (user_mode.cpp), and IRETQ enters ring 3. */
        .global x86_trap_return
x86_trap_return:
        /* Back to ring 3: with two CPUs this CPU lets the kernel lock go (core/cpu.hpp). */
        testb   $1, pagoda_kernel_locking(%rip)
        jz      2f
        testb   $3, FRAME_CS(%rsp)
        jz      2f
        call    pagoda_kernel_lock_leave
2:      restore r15
        restore r14
        restore r13
        restore r12
        restore r11
        restore r10
        restore r9
        restore r8
        restore rbp
        restore rdi
        restore rsi
        restore rdx
        restore rcx
        restore rbx
        restore rax
        addq    $16, %rsp               /* vector and error code */
        .cfi_adjust_cfa_offset -16
        iretq
        .cfi_endproc
        .size   x86_trap_common, . - x86_trap_common

/* The end of the trap entry code: [x86_vector_stubs, x86_trap_entry_end) must be mapped and
   executable in every root (arch/x86_64/critical_ranges.cpp checks it before a switch). */
        .global x86_trap_entry_end
x86_trap_entry_end:
