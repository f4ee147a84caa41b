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
 */
#define STUB_SIZE 16

        .text
        .balign STUB_SIZE
        .global x86_vector_stubs
x86_vector_stubs:
        .set vector, 0
        .rept 256
        .balign STUB_SIZE
        /* #DF 8, #TS 10, #NP 11, #SS 12, #GP 13, #PF 14, #AC 17, #CP 21, #VC 29, #SX 30 */
        .if (vector == 8) || (vector == 10) || (vector == 11) || (vector == 12) || (vector == 13) || (vector == 14) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
        .else
        pushq   $0
        .endif
        pushq   $vector
        jmp     x86_trap_common
        .set vector, vector + 1
        .endr

x86_trap_common:
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
        cld
        call    x86_trap
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
        popq    %rax
        addq    $16, %rsp               /* vector and error code */
        iretq
