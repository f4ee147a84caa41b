/*
 * The only instructions that touch user memory (kernel/proc/user_memory.hpp), AArch64 side.
 * Each load or store that may fault on a bad user address is in the fix-up table (section
 * pagoda_user_fixups: pairs of the instruction's address and where to resume), so that the
 * synchronous-exception handler resumes there instead of reporting a kernel abort
 * (proc::user_fixup_for(), arch/aarch64/traps.cpp). The caller clears PSTATE.PAN around the call.
 *
 * AAPCS64: arguments in x0, x1, x2; the result in x0; x0-x17 may be clobbered.
 */
    .text

    // LAB 4 BEGIN the copies that may fault on a user address, and their entries in the fix-up table
/* u64 aarch64_user_copy(void* dst, const void* src, u64 n): bytes NOT copied (0: all). */
    .globl aarch64_user_copy
    .type aarch64_user_copy, %function
aarch64_user_copy:
    cbz x2, 3f
1:  ldrb w3, [x1], #1           /* may fault (a user source) */
2:  strb w3, [x0], #1           /* may fault (a user destination) */
    subs x2, x2, #1
    b.ne 1b
3:  mov x0, x2                  /* 0 on success; after a fault, the bytes left */
    ret
    .size aarch64_user_copy, . - aarch64_user_copy

/* i64 aarch64_user_string_copy(char* dst, const char* src, u64 max): the length of the string
 * at src when its NUL lies within max bytes (copied with the NUL), max when it does not, -1 when
 * reading src faulted. */
    .globl aarch64_user_string_copy
    .type aarch64_user_string_copy, %function
aarch64_user_string_copy:
    mov x4, #0
4:  cmp x4, x2
    b.hs 6f
5:  ldrb w3, [x1, x4]           /* may fault */
    strb w3, [x0, x4]
    cbz w3, 6f
    add x4, x4, #1
    b 4b
6:  mov x0, x4
    ret
7:  mov x0, #-1
    ret
    .size aarch64_user_string_copy, . - aarch64_user_string_copy

    .section pagoda_user_fixups, "a"
    .balign 8
    .quad 1b, 3b
    .quad 2b, 3b
    .quad 5b, 7b
    // LAB 4 SKELETON
    // /* Lab 4: write both copies here (their contracts: kernel/proc/arch.hpp), and put every
    //  * load or store that may fault on a user address in the fix-up table with where to resume:
    //  *     .section pagoda_user_fixups, "a"
    //  *     .balign 8
    //  *     .quad <faulting instruction>, <where to resume>          */
    //     .globl aarch64_user_copy
    //     .type aarch64_user_copy, %function
    //     .globl aarch64_user_string_copy
    //     .type aarch64_user_string_copy, %function
    // aarch64_user_copy:
    // aarch64_user_string_copy:
    //     b pagoda_user_copy_missing  /* panics: "lab 4: write the copies of arch/aarch64/user_copy.S" */
    // LAB 4 END
