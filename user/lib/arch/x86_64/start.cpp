// _start for x86_64 user programs: the first instruction a process runs (the ELF entry).
//
// The kernel enters with argc in rdi and argv in rsi (kernel/lib/abi.hpp, "Process entry"),
// which are already the first two arguments of the C calling convention, so _start only
// marks the outermost frame, aligns the stack for the call, and calls the generic start-up.
asm(R"(
    .section .text._start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    xor %ebp, %ebp              # no caller: a frame-pointer walk stops here
    and $-16, %rsp              # the call below leaves rsp = 16n - 8 in its callee, as the ABI wants
    call pagoda_user_start      # (argc, argv); calls main, then exit; never returns
    ud2
    .size _start, . - _start
)");
