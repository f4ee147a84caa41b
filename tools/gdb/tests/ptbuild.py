"""Synthetic physical memory and page-table builders for the walker tests.

The bit values here are written out independently from the spec on purpose (not
imported from pagoda_pt), so a wrong constant in the package makes a test fail.
"""

import struct

FRAME = 4096
ENTRIES = 512
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# x86_64 entry bits (Intel SDM Vol. 3A tables 4-15..4-20).
P, RW, US, PWT, PCD, A, D, PS, G = 1, 2, 4, 8, 16, 32, 64, 128, 256
PAT_4K = 128
PAT_HUGE = 1 << 12
NX = 1 << 63
EFER_NXE = 1 << 11
CR0_WP = 1 << 16
CR4_PCIDE = 1 << 17

# AArch64 descriptor bits (Arm ARM D8, 4 KiB granule).
VALID, TABLE = 1, 2
PAGE_DESC = VALID | TABLE           # L3 page: bits 1:0 = 11
BLOCK_DESC = VALID                  # L1/L2 block: bits 1:0 = 01
AF = 1 << 10
AP_EL0 = 1 << 6                     # AP[1]
AP_RO = 1 << 7                      # AP[2]
SH_INNER = 3 << 8
PXN, UXN = 1 << 53, 1 << 54
PXN_TABLE, UXN_TABLE = 1 << 59, 1 << 60
APT_NO_EL0, APT_NO_WRITE = 1 << 61, 1 << 62


def attr_index(n):
    return n << 2


class PhysMem:
    """Sparse physical memory of 4 KiB frames.  Reading an unbacked frame raises
    MemoryError (like GDB failing to read).  Counts read_phys calls."""

    def __init__(self, first_free=0x100000):
        self.frames = {}
        self.next_free = first_free
        self.reads = 0

    def alloc(self):
        pa = self.next_free
        self.next_free += FRAME
        self.frames[pa // FRAME] = bytearray(FRAME)
        return pa

    def write64(self, pa, value):
        frame = self.frames[pa // FRAME]
        struct.pack_into("<Q", frame, pa % FRAME, value)

    def read64(self, pa):
        return struct.unpack("<Q", self.read_phys(pa, 8))[0]

    def fill_table(self, pa, entries):
        assert len(entries) == ENTRIES and pa % FRAME == 0
        self.frames[pa // FRAME][:] = struct.pack("<512Q", *entries)

    def read_phys(self, pa, size):
        self.reads += 1
        out = bytearray()
        while size:
            frame = self.frames.get(pa // FRAME)
            if frame is None:
                raise MemoryError("no memory at %#x" % pa)
            offset = pa % FRAME
            chunk = min(size, FRAME - offset)
            out += frame[offset:offset + chunk]
            pa += chunk
            size -= chunk
        return bytes(out)

    __call__ = read_phys


# ------------------------------------------------------------------------------- x86_64
X86_LEVELS = (("PML4", 39), ("PDPT", 30), ("PD", 21), ("PT", 12))
X86_LEAF_LEVEL = {4 * KiB: "PT", 2 * MiB: "PD", 1 * GiB: "PDPT"}
ADDR_MASK = ((1 << 52) - 1) & ~0xFFF


class X86Tables:
    """A 4-level tree.  map() creates missing tables with table_flags (default P RW US,
    so only the leaf restricts); edit() changes one existing entry afterwards."""

    def __init__(self, mem):
        self.mem = mem
        self.root = mem.alloc()

    def _slot(self, va, level, create, table_flags=P | RW | US):
        table = self.root
        for name, shift in X86_LEVELS:
            entry_pa = table + ((va >> shift) & 511) * 8
            if name == level:
                return entry_pa
            entry = self.mem.read64(entry_pa)
            if not entry & P:
                assert create, "no %s table on the way to %#x" % (name, va)
                entry = self.mem.alloc() | table_flags
                self.mem.write64(entry_pa, entry)
            table = entry & ADDR_MASK
        raise AssertionError(level)

    def map(self, va, pa, size=4 * KiB, flags=P | RW, table_flags=P | RW | US):
        level = X86_LEAF_LEVEL[size]
        assert va % size == 0 and pa % size == 0
        leaf = pa | flags | (PS if size != 4 * KiB else 0)
        self.mem.write64(self._slot(va, level, True, table_flags), leaf)

    def entry_pa(self, va, level):
        return self._slot(va, level, False)

    def edit(self, va, level, set_bits=0, clear_bits=0, value=None):
        pa = self.entry_pa(va, level)
        old = self.mem.read64(pa)
        self.mem.write64(pa, value if value is not None else (old | set_bits) & ~clear_bits)


# ------------------------------------------------------------------------------ AArch64
ARM_SHIFTS = (39, 30, 21, 12)
ARM_LEAF_LEVEL = {4 * KiB: 3, 2 * MiB: 2, 1 * GiB: 1}
ARM_OA_MASK = ((1 << 48) - 1) & ~0xFFF
LEAF_DEFAULT = AF | SH_INNER


class ArmTables:
    """One stage-1 tree for a 48-bit range (4 levels from L0)."""

    def __init__(self, mem):
        self.mem = mem
        self.root = mem.alloc()

    def _slot(self, va, level, create, table_bits=0):
        table = self.root
        for lvl, shift in enumerate(ARM_SHIFTS):
            entry_pa = table + ((va >> shift) & 511) * 8
            if lvl == level:
                return entry_pa
            entry = self.mem.read64(entry_pa)
            if not entry & VALID:
                assert create, "no L%d table on the way to %#x" % (lvl, va)
                entry = self.mem.alloc() | VALID | TABLE | table_bits
                self.mem.write64(entry_pa, entry)
            table = entry & ARM_OA_MASK
        raise AssertionError(level)

    def map(self, va, pa, size=4 * KiB, attrs=LEAF_DEFAULT, table_bits=0):
        level = ARM_LEAF_LEVEL[size]
        assert pa % size == 0
        kind = PAGE_DESC if level == 3 else BLOCK_DESC
        self.mem.write64(self._slot(va, level, True, table_bits), pa | kind | attrs)

    def entry_pa(self, va, level):
        return self._slot(va, level, False)

    def edit(self, va, level, set_bits=0, clear_bits=0, value=None):
        pa = self.entry_pa(va, level)
        old = self.mem.read64(pa)
        self.mem.write64(pa, value if value is not None else (old | set_bits) & ~clear_bits)


# TCR_EL1 with T0SZ=T1SZ=16, TG0=4K (00), TG1=4K (10), IPS=48 bits (101).
TCR_48BIT_4K = 16 | (16 << 16) | (0b10 << 30) | (0b101 << 32)
TCR_TBI0 = 1 << 37
TCR_HA = 1 << 39
TCR_EPD1 = 1 << 23
