// _start for AArch64 user programs: the first instruction a process runs (the ELF entry).
//
// The kernel enters with argc in x0 and argv in x1 (kernel/lib/abi.hpp, "Process entry"),
// already the first two arguments of the procedure-call standard, so _start only marks the
// outermost frame, aligns sp, and calls the generic start-up.
asm(R"(
    .section .text._start, "ax", %progbits
    .globl _start
    .type _start, %function
_start:
    mov x29, xzr                // no caller: a frame-record walk stops here
    mov x30, xzr
    mov x9, sp
    and x9, x9, #~15            // sp must be 16-byte aligned at every access
    mov sp, x9
    bl pagoda_user_start        // (argc, argv); calls main, then exit; never returns
    brk #0
    .size _start, . - _start
)");
