"""Architecture-neutral result types shared by the walkers, dump, diff and the formatter.

Nothing in here knows about a particular MMU.  The x86_64 and AArch64 modules fill these
records in; the formatter and the future GDB commands only read them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, Optional

# A PhysReader reads `size` bytes of guest physical memory starting at `pa` and returns
# them as bytes (little-endian memory, as on both supported architectures).  It may raise
# any exception for unreadable memory; the walkers turn that into a stop reason.
PhysReader = Callable[[int, int], bytes]

PAGE_SHIFT = 12
PAGE_SIZE_4K = 1 << PAGE_SHIFT

TABLE_BYTES = PAGE_SIZE_4K                   # one translation table with a 4 KiB granule
ENTRY_BYTES = 8                              # every descriptor is one 64-bit word
ENTRIES_PER_TABLE = TABLE_BYTES // ENTRY_BYTES
_TABLE_FORMAT = "<%dQ" % ENTRIES_PER_TABLE   # '<512Q': the whole table in one unpack
_ENTRY_FORMAT = "<Q"

ADDRESS_BITS = 64
ADDRESS_MASK = (1 << ADDRESS_BITS) - 1


@dataclass(frozen=True)
class Perms:
    """Effective access rights of one mapped page, after combining every level.

    read/write/execute are the rights of the mode that owns the page: user mode when
    `user` is True, supervisor/EL1 otherwise.  `priv_execute` says whether privileged code
    may execute the page (on x86_64 it always equals `execute`; on AArch64 PXN and UXN
    are separate).  `cache` is a short memory-type description ("WB", "UC", "Normal-WB
    ISH", "attr2", ...) or "" when unknown.
    """

    read: bool
    write: bool
    execute: bool
    user: bool
    priv_execute: bool
    cache: str = ""

    def rwx(self) -> str:
        """The classic three-character string, e.g. 'r-x'."""
        return ("r" if self.read else "-") + ("w" if self.write else "-") + \
               ("x" if self.execute else "-")


@dataclass
class Level:
    """One step of a page-table walk: the entry that was read and what it means.

    name      'PML4', 'PDPT', 'PD', 'PT' (x86_64) or 'L0'..'L3' (AArch64)
    table_pa  physical address of the table that was indexed
    index     entry number inside that table
    entry_pa  physical address of the entry (table_pa + 8 * index)
    raw       the 64-bit entry as read, or None if it could not be read
    flags     short names of the set/meaningful bits ('P', 'RW', 'NX', 'AF', 'AP=01', ...)
    leaf      True when this entry maps memory (page or huge page/block)
    output    next table address (non-leaf) or the frame/block base address (leaf);
              None when the entry is not valid
    """

    name: str
    table_pa: int
    index: int
    entry_pa: int
    raw: Optional[int]
    flags: list[str] = field(default_factory=list)
    leaf: bool = False
    output: Optional[int] = None


@dataclass
class Walk:
    """The translation of one virtual address.

    pa, page_size and perms are set only when the address is mapped; otherwise
    stop_reason is a human sentence saying why the walk stopped.  notes carries remarks
    that do not stop the walk (e.g. 'CR0.WP=0: supervisor writes ignore RW').
    """

    arch: str
    va: int
    levels: list[Level] = field(default_factory=list)
    pa: Optional[int] = None
    page_size: Optional[int] = None
    perms: Optional[Perms] = None
    stop_reason: Optional[str] = None
    notes: list[str] = field(default_factory=list)

    @property
    def mapped(self) -> bool:
        return self.pa is not None


@dataclass(frozen=True)
class Run:
    """A maximal range [va_start, va_end) mapped to contiguous physical memory
    [pa_start, pa_start + size) with one page size and identical effective permissions."""

    va_start: int
    va_end: int
    pa_start: int
    perms: Perms
    page_size: int

    @property
    def size(self) -> int:
        return self.va_end - self.va_start

    @property
    def pa_end(self) -> int:
        return self.pa_start + self.size


# Kinds of DiffRange.
ONLY_A = "only_a"
ONLY_B = "only_b"
CHANGED = "changed"


@dataclass(frozen=True)
class DiffRange:
    """A VA range [va_start, va_end) where two address spaces disagree.

    kind is ONLY_A (mapped only in A), ONLY_B (only in B) or CHANGED (mapped in both but
    to a different physical address or with different permissions).  a_pa/a_perms and
    b_pa/b_perms describe the mapping of va_start on each side (None when unmapped); the
    range is physically contiguous on each mapped side.
    """

    va_start: int
    va_end: int
    kind: str
    a_pa: Optional[int]
    a_perms: Optional[Perms]
    b_pa: Optional[int]
    b_perms: Optional[Perms]

    @property
    def size(self) -> int:
        return self.va_end - self.va_start


def read_table(read_phys: PhysReader, table_pa: int) -> tuple[int, ...]:
    """Read one whole 4 KiB translation table with a single read_phys call and return
    its 512 entries.  Raises whatever read_phys raises, or ValueError on a short read."""
    data = read_phys(table_pa, TABLE_BYTES)
    if len(data) != TABLE_BYTES:
        raise ValueError("short read of table at %#x: %d bytes" % (table_pa, len(data)))
    return struct.unpack(_TABLE_FORMAT, data)


def read_entry(read_phys: PhysReader, entry_pa: int) -> int:
    """Read one 64-bit little-endian entry.  Raises whatever read_phys raises."""
    data = read_phys(entry_pa, ENTRY_BYTES)
    if len(data) != ENTRY_BYTES:
        raise ValueError("short read of entry at %#x: %d bytes" % (entry_pa, len(data)))
    return struct.unpack(_ENTRY_FORMAT, data)[0]


def bit_mask(lo: int, hi: int) -> int:
    """Bits hi..lo (inclusive) set."""
    return ((1 << (hi + 1)) - 1) & ~((1 << lo) - 1)


def bits_set(value: int, lo: int, hi: int) -> list[int]:
    """The numbers of the bits in value[hi:lo] (inclusive) that are 1."""
    return [b for b in range(lo, hi + 1) if value >> b & 1]


def describe_bits(bits: list[int]) -> str:
    """'bit 13' / 'bits 13, 40' for a stop reason."""
    return ("bit " if len(bits) == 1 else "bits ") + ", ".join(str(b) for b in bits)


def kernel_va_hint(va: Optional[int]) -> str:
    """' (0x... looks like a kernel virtual address, not a physical one)' when an entry's
    address turned out to be the kernel virtual address @p va, '' for None."""
    if va is None:
        return ""
    return " (%#x looks like a kernel virtual address, not a physical one)" % va


def kept_entry_note(where: str, raw: int, frame: int) -> Optional[str]:
    """The note for an entry the MMU treats as invalid although it is not zero (None for a
    zero entry): the MMU ignores every other bit, which the OS may use. Pagoda keeps the frame
    of a PROT_NONE page in such an entry (a *held* leaf: its own software bit set, the address
    and attributes kept), so that the page keeps its contents while nothing may touch it, and
    from lab 7 the slot of a swapped-out page (a swap entry: pt-walk names its slot)."""
    if not raw:
        return None
    return ("%s is invalid to the MMU but not zero (%#x): the MMU ignores its other bits; Pagoda "
            "keeps a PROT_NONE page's frame in such a held entry (frame %#x here, if it is one), or "
            "a swapped-out page's slot in a swap entry (lab 7)" % (where, raw, frame))


def normalize_regs(regs: Optional[dict]) -> dict:
    """Register dictionaries may use any case ('CR4', 'tcr_el1'); return a lower-case copy."""
    if not regs:
        return {}
    return {str(k).lower(): v for k, v in regs.items() if v is not None}
