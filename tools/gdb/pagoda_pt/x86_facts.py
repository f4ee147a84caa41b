"""The x86_64 facts every Python reader needs, once: the exception vectors and the physical-address
mask. Readers: the ISA object (isa.py, which the grader's witness and the GDB commands ask), the
debugger's fault-why (diagnose_x86_64.py) and the fault-log witness (tools/pagoda_core/faultlog.py).
The kernel's own copies, for its printed reports and its tables, are arch/x86_64/traps.cpp's names and
arch/x86_64/page_table_format.hpp's kAddressMask.

Pure data: it imports nothing, so any side may load it. Reference: Intel SDM Vol. 3A, 4.5 and
6.3.1, 6.15 (only the bit positions, vector numbers, names and error-code rules were taken).
"""

# The physical address bits (51:12) of a page-table entry and of CR3.
FRAME_MASK = 0x000F_FFFF_FFFF_F000

# vector -> (mnemonic, name) of each defined exception, in the kernel's words (arch/x86_64/traps.cpp;
# tools/tests/test_x86_facts.py keeps the two the same); the vectors missing here are reserved
# (9, the coprocessor segment overrun, among them: no 64-bit CPU raises it).
EXCEPTIONS = {
    0: ("#DE", "divide error"), 1: ("#DB", "debug"), 2: ("NMI", "non-maskable interrupt"),
    3: ("#BP", "breakpoint"), 4: ("#OF", "overflow"), 5: ("#BR", "bound range exceeded"),
    6: ("#UD", "invalid opcode"), 7: ("#NM", "device not available"), 8: ("#DF", "double fault"),
    10: ("#TS", "invalid TSS"), 11: ("#NP", "segment not present"), 12: ("#SS", "stack-segment fault"),
    13: ("#GP", "general protection fault"), 14: ("#PF", "page fault"),
    16: ("#MF", "x87 floating-point error"), 17: ("#AC", "alignment check"), 18: ("#MC", "machine check"),
    19: ("#XM", "SIMD floating-point error"), 20: ("#VE", "virtualization exception"),
    21: ("#CP", "control protection"), 28: ("#HV", "hypervisor injection"), 29: ("#VC", "VMM communication"),
    30: ("#SX", "security exception"),
}
DOUBLE_FAULT, GENERAL_PROTECTION, PAGE_FAULT = 8, 13, 14
# Vectors for which the CPU pushes an error code (the kernel's stubs push 0 for the others).
ERROR_CODE_VECTORS = frozenset((8, 10, 11, 12, 13, 14, 17, 21, 29, 30))
# ... and those whose error code is a selector error code (index, table, external).
SELECTOR_VECTORS = (10, 11, 12, 13)
# The first vector that is an interrupt rather than an exception.
FIRST_INTERRUPT = 32
# RFLAGS: IF (bit 9) lets maskable interrupts in; bit 1 always reads 1 (a saved RFLAGS without it is
# no RFLAGS).
RFLAGS_IF = 1 << 9
RFLAGS_RESERVED = 1 << 1
