"""Decoders for x86_64 control registers and exception error codes, for the future
`pt-regs` and `fault-why` commands.  Reference: Intel SDM Vol. 3A sections 2.5
(control registers), 4.1 (paging modes), 4.7 (page-fault error code) and 6.13
(error code format).  Only bit layouts were taken from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .model import PAGE_SHIFT
from .x86_facts import CR0_PG, CR0_WP, DEFAULT_MAXPHYADDR, EFER_LME, EFER_NXE, paging_mode   # (isa.py takes paging_mode from x86_facts alone)

# ---------------------------------------------------------------------------------------
# CR0:
#   31 30 29 28     19 18 17 16 15      6  5  4  3  2  1  0
#  +--+--+--+---------+--+--+--+---------+--+--+--+--+--+--+
#  |PG|CD|NW|         |AM|  |WP|         |NE|ET|TS|EM|MP|PE|
#  +--+--+--+---------+--+--+--+---------+--+--+--+--+--+--+
#  PE protected mode, MP monitor coprocessor, EM x87 emulation, TS task switched,
#  ET extension type, NE native FPU errors, WP supervisor write protect,
#  AM alignment mask, NW not write-through, CD cache disable, PG paging
# ---------------------------------------------------------------------------------------
CR0_BITS = ((0, "PE"), (1, "MP"), (2, "EM"), (3, "TS"), (4, "ET"), (5, "NE"), (16, "WP"),
            (18, "AM"), (29, "NW"), (30, "CD"), (31, "PG"))
CR0_PE = 1 << 0

# ---------------------------------------------------------------------------------------
# CR4:
#   25    24  23  22  21   20   19  18      17    16       14   13   12   11
#  +-----+---+---+---+----+----+--+-------+-----+--------+----+----+----+----+
#  |UINTR|PKS|CET|PKE|SMAP|SMEP|KL|OSXSAVE|PCIDE|FSGSBASE|SMXE|VMXE|LA57|UMIP|
#  +-----+---+---+---+----+----+--+-------+-----+--------+----+----+----+----+
#   10         9      8   7   6   5   4  3   2   1   0
#  +----------+------+---+---+---+---+---+--+---+---+---+
#  |OSXMMEXCPT|OSFXSR|PCE|PGE|MCE|PAE|PSE|DE|TSD|PVI|VME|
#  +----------+------+---+---+---+---+---+--+---+---+---+
# ---------------------------------------------------------------------------------------
CR4_BITS = ((0, "VME"), (1, "PVI"), (2, "TSD"), (3, "DE"), (4, "PSE"), (5, "PAE"),
            (6, "MCE"), (7, "PGE"), (8, "PCE"), (9, "OSFXSR"), (10, "OSXMMEXCPT"),
            (11, "UMIP"), (12, "LA57"), (13, "VMXE"), (14, "SMXE"), (16, "FSGSBASE"),
            (17, "PCIDE"), (18, "OSXSAVE"), (19, "KL"), (20, "SMEP"), (21, "SMAP"),
            (22, "PKE"), (23, "CET"), (24, "PKS"), (25, "UINTR"))
CR4_PCIDE = 1 << 17

# ---------------------------------------------------------------------------------------
# IA32_EFER (MSR 0xC0000080):
#   15  14    13    12   11  10  9  8   7    1  0
#  +---+-----+-----+----+---+---+--+---+------+---+
#  |TCE|FFXSR|LMSLE|SVME|NXE|LMA|  |LME|      |SCE|
#  +---+-----+-----+----+---+---+--+---+------+---+
#  SCE syscall enable, LME long mode enable, LMA long mode active, NXE no-execute enable
# ---------------------------------------------------------------------------------------
EFER_BITS = ((0, "SCE"), (8, "LME"), (10, "LMA"), (11, "NXE"), (12, "SVME"), (13, "LMSLE"),
             (14, "FFXSR"), (15, "TCE"))
EFER_LMA = 1 << 10

# ---------------------------------------------------------------------------------------
# CR3 (4- and 5-level paging):
#   63     52 51         M M-1                     12 11                       0
#  +---------+------------+-------------------------+--------------------------+
#  | (other) |  reserved  |  PML4 table address     |  PCID   (CR4.PCIDE=1)    |
#  +---------+------------+-------------------------+--------------------------+
#  With CR4.PCIDE=0 bits 11:0 hold bit 3 PWT and bit 4 PCD (caching of the PML4 table).
# ---------------------------------------------------------------------------------------
CR3_PCID_MASK = (1 << PAGE_SHIFT) - 1
CR3_PWT = 1 << 3
CR3_PCD = 1 << 4


def _names(value: int, table) -> list[str]:
    """Names of the set bits of value per table; unnamed set bits appear as 'bit<N>'."""
    names = [name for bit, name in table if value >> bit & 1]
    known = 0
    for bit, _ in table:
        known |= 1 << bit
    extra = value & ~known
    names.extend("bit%d" % bit for bit in range(extra.bit_length()) if extra >> bit & 1)
    return names


@dataclass
class X86Regs:
    """Decoded control registers.  paging_mode is one of 'disabled', '32-bit', 'PAE',
    '4-level', '5-level'; cr3_pcid is None unless CR4.PCIDE=1 (then cr3_flags is empty)."""

    cr0_flags: list[str]
    cr3_root: int
    cr3_pcid: Optional[int]
    cr3_flags: list[str]
    cr4_flags: list[str]
    efer_flags: list[str]
    paging_mode: str
    notes: list[str] = field(default_factory=list)


def decode_x86_regs(cr0: int, cr3: int, cr4: int, efer: int,
                    maxphyaddr: int = DEFAULT_MAXPHYADDR) -> X86Regs:
    """Name the set bits of CR0, CR4 and EFER, split CR3 into root table address and
    PCID (or PWT/PCD), work out the paging mode and add notes on settings that change
    what page-table walks mean (WP, NXE, SMEP/SMAP, LME without LMA)."""
    pcide = bool(cr4 & CR4_PCIDE)
    root_mask = ((1 << maxphyaddr) - 1) & ~CR3_PCID_MASK
    cr3_flags = [] if pcide else [n for bit, n in ((CR3_PWT, "PWT"), (CR3_PCD, "PCD"))
                                  if cr3 & bit]
    regs = X86Regs(cr0_flags=_names(cr0, CR0_BITS), cr3_root=cr3 & root_mask,
                   cr3_pcid=cr3 & CR3_PCID_MASK if pcide else None, cr3_flags=cr3_flags,
                   cr4_flags=_names(cr4, CR4_BITS), efer_flags=_names(efer, EFER_BITS),
                   paging_mode=paging_mode(cr0, cr4, efer))
    if cr0 & CR0_PG and not cr0 & CR0_WP:
        regs.notes.append("CR0.WP=0: the kernel can write to read-only pages")
    if regs.paging_mode in ("4-level", "5-level", "PAE") and not efer & EFER_NXE:
        regs.notes.append("EFER.NXE=0: NX bits are reserved; a set NX bit faults")
    if efer & EFER_LME and cr0 & CR0_PG and not efer & EFER_LMA:
        regs.notes.append("EFER.LME=1 but LMA=0: long mode not active")
    return regs


# ---------------------------------------------------------------------------------------
# Page-fault (#PF, vector 14) error code; the faulting address is in CR2:
#   31        16  15  14       7  6  5   4    3    2   1   0
#  +------------+---+------------+--+--+---+----+---+---+---+
#  |  reserved  |SGX|  reserved  |SS|PK|I/D|RSVD|U/S|W/R| P |
#  +------------+---+------------+--+--+---+----+---+---+---+
#  P    0: page not present, 1: protection violation on a present page
#  W/R  1: the access was a write       U/S  1: the access came from user mode (CPL 3)
#  RSVD a reserved bit was set in some paging-structure entry
#  I/D  1: instruction fetch            PK   protection-key violation
#  SS   shadow-stack access             SGX  SGX access-control violation
# ---------------------------------------------------------------------------------------
PF_P = 1 << 0
PF_W = 1 << 1
PF_U = 1 << 2
PF_RSVD = 1 << 3
PF_ID = 1 << 4
PF_PK = 1 << 5
PF_SS = 1 << 6
PF_SGX = 1 << 15
PF_BITS = ((0, "P"), (1, "W"), (2, "U"), (3, "RSVD"), (4, "I/D"), (5, "PK"), (6, "SS"),
           (15, "SGX"))


@dataclass
class PageFaultError:
    """A decoded #PF error code.  summary is one sentence such as
    'user-mode write: protection violation on a present page'."""

    code: int
    flags: list[str]
    present: bool
    write: bool
    user: bool
    reserved_bit: bool
    fetch: bool
    protection_key: bool
    shadow_stack: bool
    sgx: bool
    summary: str


def decode_pf_error(code: int) -> PageFaultError:
    """Decode a page-fault error code (see the diagram above)."""
    who = "user-mode" if code & PF_U else "supervisor-mode"
    if code & PF_ID:
        what = "instruction fetch"
    elif code & PF_SS:
        what = "shadow-stack " + ("write" if code & PF_W else "read")
    else:
        what = "write" if code & PF_W else "read"
    if code & PF_RSVD:
        cause = "reserved bit set in a paging-structure entry"
    elif code & PF_PK:
        cause = "protection-key violation (PKRU/PKRS)"
    elif code & PF_SGX:
        cause = "SGX access-control violation"
    elif code & PF_P:
        cause = "protection violation on a present page"
    else:
        cause = "page not present"
    return PageFaultError(
        code=code, flags=_names(code, PF_BITS), present=bool(code & PF_P),
        write=bool(code & PF_W), user=bool(code & PF_U), reserved_bit=bool(code & PF_RSVD),
        fetch=bool(code & PF_ID), protection_key=bool(code & PF_PK),
        shadow_stack=bool(code & PF_SS), sgx=bool(code & PF_SGX),
        summary="%s %s: %s" % (who, what, cause))


# ---------------------------------------------------------------------------------------
# Selector error code (#GP, #NP, #SS, #TS; also #DF etc. push 0):
#   31          16 15                        3   2    1    0
#  +--------------+---------------------------+-----+-----+-----+
#  |   reserved   |      selector index       | TI  | IDT | EXT |
#  +--------------+---------------------------+-----+-----+-----+
#  EXT  the fault happened while delivering an external event (interrupt, earlier fault)
#  IDT  1: the index refers to an IDT gate (index = vector)
#  TI   (only when IDT=0) 0: GDT, 1: LDT
# ---------------------------------------------------------------------------------------
SEL_EXT = 1 << 0
SEL_IDT = 1 << 1
SEL_TI = 1 << 2
SEL_INDEX_SHIFT = 3
SEL_INDEX_MASK = 0x1FFF


@dataclass
class SelectorError:
    """A decoded selector error code.  table is 'GDT', 'LDT', 'IDT' or None when the code
    is 0 (the fault was not caused by a particular selector)."""

    code: int
    external: bool
    table: Optional[str]
    index: int
    summary: str


def decode_gp_error(code: int) -> SelectorError:
    """Decode the error code of #GP/#TS/#NP/#SS (see the diagram above)."""
    external = bool(code & SEL_EXT)
    index = code >> SEL_INDEX_SHIFT & SEL_INDEX_MASK
    if code == 0:
        return SelectorError(code, False, None, 0,
                             "error code 0: not caused by a selector (e.g. non-canonical "
                             "address, privileged instruction, bad MSR or CR write)")
    if code & SEL_IDT:
        table = "IDT"
        summary = "IDT vector %d (%#x)" % (index, index)
    else:
        table = "LDT" if code & SEL_TI else "GDT"
        selector = index << SEL_INDEX_SHIFT | (code & SEL_TI)
        summary = "%s entry %d (selector %#x)" % (table, index, selector)
    if external:
        summary += ", while delivering an external event (EXT)"
    return SelectorError(code, external, table, index, summary)
