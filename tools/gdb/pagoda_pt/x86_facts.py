"""The x86_64 facts every Python reader needs, once: the exception vectors it reasons about, which
of them push an error code, and the physical-address mask. Readers: the ISA object (isa.py, which
the grader's witness and the GDB commands ask), the debugger's fault-why (diagnose_x86_64.py) and the
fault-log witness (tools/pagoda_core/faultlog.py). The exceptions' names are not here: the readers
take them from the kernel ELF (kernelnames.py). The mask is the kernel's kAddressMask
(arch/x86_64/page_table_format.hpp), exported as the fact address_mask; the ISA object is built
before any kernel is read, so it keeps this copy, which the tests compare with the fact.

Pure data and one pure function (the paging mode): it imports nothing, so any side may load it. Reference: Intel SDM Vol. 3A, 4.5 and
6.3.1, 6.15 (only the bit positions, vector numbers and error-code rules were taken).
"""

# The physical address bits (51:12) of a page-table entry and of CR3.
FRAME_MASK = 0x000F_FFFF_FFFF_F000

# The vectors the readers reason about (Intel SDM Vol. 3A, table 6-1). Their names are the kernel's:
# fault-why, the fault log and the grader read them from the kernel ELF (kernelnames.py; the table
# is arch/x86_64/traps.cpp's kExceptionNames), and tools/tests/test_x86_facts.py checks that the
# kernel names these numbers as they are used here.
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
# A page-table entry's present bit, and its page-size bit (a PDPT or PD entry that is a leaf).
PTE_P, PTE_PS = 1 << 0, 1 << 7
# RFLAGS.AC: STAC sets it: supervisor accesses to user pages allowed despite SMAP (CR4.SMAP).
RFLAGS_AC, CR4_SMAP = 1 << 18, 1 << 21
# The bits that select the paging mode (SDM 4.1.1): CR0.PG, CR4.PAE, CR4.LA57, EFER.LME.
CR0_PG, CR4_PAE, CR4_LA57, EFER_LME = 1 << 31, 1 << 5, 1 << 12, 1 << 8
# CR0.WP (supervisor writes honour RW) and EFER.NXE (XD bits honoured; else bit 63 reserved).
CR0_WP, EFER_NXE = 1 << 16, 1 << 11
# The architectural maximum MAXPHYADDR, assumed when CPUID is not at hand.
DEFAULT_MAXPHYADDR = 52


def paging_mode(cr0: int, cr4: int, efer: int) -> str:
    """The paging mode selected by CR0.PG, CR4.PAE, EFER.LME and CR4.LA57 (SDM 4.1.1)."""
    if not cr0 & CR0_PG:
        return "disabled"
    if not cr4 & CR4_PAE:
        return "32-bit"
    if not efer & EFER_LME:
        return "PAE"
    return "5-level" if cr4 & CR4_LA57 else "4-level"
