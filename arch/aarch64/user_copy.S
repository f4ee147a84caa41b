/*
 * The only instructions that touch user memory (kernel/proc/user_memory.hpp), AArch64 side.
 * Each load or store that may fault on a bad user address is in the fix-up table (section
 * pagoda_user_fixups: pairs of the instruction's address and where to resume), so that the
 * synchronous-exception handler resumes there instead of reporting a kernel abort. The caller
 * clears PSTATE.PAN around the call.
 */
    .text

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
