/*
 * The only instructions that touch user memory (kernel/proc/user_memory.hpp). Each may fault on
 * a bad user address; the fix-up table (section pagoda_user_fixups: pairs of the faulting
 * instruction's address and where to resume) lets the page-fault handler resume at the second
 * address instead of reporting a kernel fault (proc::user_fixup_for(), arch/x86_64/traps.cpp).
 * The caller lifts SMAP around the call.
 *
 * System V: arguments in RDI, RSI, RDX; the result in RAX; RCX and the argument registers may
 * be clobbered. `rep movsb` copies RCX bytes from (RSI) to (RDI), counting RCX down: when it
 * faults, RCX holds the bytes still to copy.
 */
    .text

    // LAB 4 BEGIN the copies that may fault on a user address, and their entries in the fix-up table
/* u64 x86_user_copy(void* dst, const void* src, u64 n): bytes NOT copied (0: all of them). */
    .globl x86_user_copy
    .type x86_user_copy, @function
x86_user_copy:
    mov %rdx, %rcx
1:  rep movsb                   /* a fault leaves the bytes still to copy in RCX */
    xor %eax, %eax
    ret
2:  mov %rcx, %rax
    ret
    .size x86_user_copy, . - x86_user_copy

/* i64 x86_user_string_copy(char* dst, const char* src, u64 max): the length of the string at
 * src when its NUL lies within max bytes (copied with the NUL), max when it does not (max bytes
 * copied, no NUL), -1 when reading src faulted. */
    .globl x86_user_string_copy
    .type x86_user_string_copy, @function
x86_user_string_copy:
    xor %eax, %eax
3:  cmp %rdx, %rax
    jae 5f
4:  movb (%rsi,%rax), %cl       /* may fault */
    movb %cl, (%rdi,%rax)
    test %cl, %cl
    jz 5f
    inc %rax
    jmp 3b
5:  ret
6:  mov $-1, %rax
    ret
    .size x86_user_string_copy, . - x86_user_string_copy

    .section pagoda_user_fixups, "a"
    .balign 8
    .quad 1b, 2b
    .quad 4b, 6b
    // LAB 4 SKELETON
    // /* Lab 4: write both copies here (their contracts: kernel/proc/arch.hpp), and put every
    //  * instruction that may fault on a user address in the fix-up table with where to resume:
    //  *     .section pagoda_user_fixups, "a"
    //  *     .balign 8
    //  *     .quad <faulting instruction>, <where to resume>          */
    //     .globl x86_user_copy
    //     .type x86_user_copy, @function
    //     .globl x86_user_string_copy
    //     .type x86_user_string_copy, @function
    // x86_user_copy:
    // x86_user_string_copy:
    //     jmp pagoda_user_copy_missing  /* panics: "lab 4: write the copies of arch/x86_64/user_copy.S" */
    // LAB 4 END
