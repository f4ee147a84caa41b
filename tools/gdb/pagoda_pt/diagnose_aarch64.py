"""AArch64 rules of fault-why that need no GDB (pure): the GDB layer (pagoda_gdb/faults_aarch64.py)
decodes the trap frame (ESR, FAR, ELR, SPSR) and walks the addresses; these functions turn what it
found into the sentences that name a cause. The neutral rules of a kernel access on a process's
behalf (the user copies, a system call's pointers) are pagoda_pt.diagnose's; this module gives them
the AArch64 facts (which routines copy, which half an address is in).

SPSR_EL1 and PSTATE, the bits read here (Arm ARM C5.2.18):

   63      32 31 30 29 28       22 21      9  8  7  6  5  4  3    0
  +----------+--+--+--+--+-- ... --+---+ ... +--+--+--+--+--+------+
  |   res0   | N| Z| C| V|   ...   |PAN|     | D| A| I| F|nRW|  M   |
  +----------+--+--+--+--+-- ... --+---+ ... +--+--+--+--+--+------+
   M[3:0]: 0b0000 EL0t, 0b0100 EL1t, 0b0101 EL1h (M[3:2] is the exception level)
"""

from __future__ import annotations

from typing import Optional

from . import contract as C
from .aarch64 import DESC_AP_MASK, DESC_AP_SHIFT, DESC_UXN, DESC_UXN_TABLE, SCTLR_WXN
from .diagnose import user_code_at_kernel_privilege
from .model import Walk

# The routines of arch/aarch64/user_copy.S: the only kernel code that touches user memory, each
# load or store that may fault in the fix-up table (section pagoda_user_fixups).
USER_COPY_ROUTINES = (C.AARCH64.USER_COPY, C.AARCH64.USER_STRING_COPY)
SPSR_MODE_MASK = 0xF
SPSR_MODES = {0b0000: "EL0t", 0b0100: "EL1t", 0b0101: "EL1h"}
TTBR1_SELECT_BIT = 55        # VA bit 55 picks TTBR1_EL1 (the kernel half) over TTBR0_EL1

# Ranks (diagnose.Explanation: lower is more fundamental), beside diagnose's shared ones.
RANK_USER_CODE_AT_EL1 = 7


def mode_name(spsr: int) -> str:
    """'EL0t', 'EL1h', ... of an SPSR (or 'M=0x.' for the modes Pagoda never uses)."""
    mode = spsr & SPSR_MODE_MASK
    return SPSR_MODES.get(mode, "M=%#x" % mode)


def exception_level(spsr: int) -> int:
    return spsr >> 2 & 3


def in_kernel_half(va: int) -> bool:
    """True when @p va is translated by TTBR1_EL1 (the kernel half)."""
    return bool(va >> TTBR1_SELECT_BIT & 1)


def _el0_may_execute_descriptors(walk: Walk) -> bool:
    """The descriptors on the way let EL0 execute: no UXN in the leaf, no UXNTable above it."""
    leaf = walk.levels[-1].raw
    tables = [level.raw for level in walk.levels[:-1] if level.raw is not None]
    return leaf is not None and not leaf & DESC_UXN and not any(raw & DESC_UXN_TABLE for raw in tables)


def wxn_refused_fetch(walk: Walk, far: int, sctlr: Optional[int]) -> Optional[str]:
    """The cause of a permission fault on an instruction fetch from EL0 when the page is writable
    at EL0 and its descriptors let EL0 execute it: SCTLR_EL1.WXN makes a writable page never
    executable, so the page was mapped writable and executable (W^X refused it). None otherwise."""
    if not walk.mapped or not walk.perms.user or not walk.perms.write or not _el0_may_execute_descriptors(walk):
        return None
    leaf = walk.levels[-1]
    wxn = "SCTLR_EL1.WXN is set" if sctlr is not None and sctlr & SCTLR_WXN else \
        "SCTLR_EL1.WXN must be set (nothing else refuses this fetch)"
    return ("the page at %#x is mapped writable and executable for EL0 (%s[%d]: AP=%s, UXN=0), and %s: a "
            "writable page never executes, so the process's code cannot run. The loader mapped a segment "
            "writable and executable: give each page its segment's own rights (code r-x, data rw-)"
            % (far, leaf.name, leaf.index, format(leaf.raw >> DESC_AP_SHIFT & DESC_AP_MASK, "02b"), wxn))


def user_code_at_el1(spsr: int, elr: int, walk_of_elr: Walk, process: str) -> Optional[str]:
    """The cause of an exception taken from EL1 while the PC was on a user page EL0 may execute:
    the CPU was running the process's own code at kernel privilege, so the exception return that
    entered it (ERET with SPSR_EL1's mode) kept EL1. None when the evidence is not there."""
    w = walk_of_elr
    if exception_level(spsr) == 0 or in_kernel_half(elr) or not w.mapped or not w.perms.user \
            or not _el0_may_execute_descriptors(w):
        return None
    mode = mode_name(spsr)
    return user_code_at_kernel_privilege(
        elr, "at EL%d" % exception_level(spsr), process,
        "its PSTATE says %s, not EL0t; an exception return whose SPSR_EL1 names %s does not enter EL0, and the "
        "process's first instruction is fetched at EL1, where a user page never executes (PXN)" % (mode, mode))
