"""x86_64 4-level paging (IA-32e paging, 48-bit virtual addresses).

Reference: Intel SDM Vol. 3A, chapter 4 "Paging", section 4.5 (4-level paging) and
tables 4-14..4-20 (entry formats).  Only the bit layouts were taken from there.

A virtual address is split like this:

   63          48 47      39 38      30 29      21 20      12 11            0
  +--------------+----------+----------+----------+----------+---------------+
  |  sign copy   |   PML4   |   PDPT   |    PD    |    PT    |  page offset  |
  |  of bit 47   |  index   |  index   |  index   |  index   |               |
  +--------------+----------+----------+----------+----------+---------------+

Bits 63:48 must all equal bit 47 ("canonical"), so the usable space is two halves:
0x0000_0000_0000_0000..0x0000_7fff_ffff_ffff and 0xffff_8000_0000_0000..0xffff_ffff_ffff_ffff.
"""

from __future__ import annotations

from typing import Callable, Optional

from .x86_facts import CR0_WP, CR4_LA57, CR4_SMAP, DEFAULT_MAXPHYADDR, EFER_NXE, PTE_P, PTE_PS
from .model import (ADDRESS_MASK, ENTRIES_PER_TABLE, ENTRY_BYTES, PAGE_SHIFT, PAGE_SIZE_4K, Level,
                    Perms, PhysReader, Walk, bit_mask, bits_set, describe_bits, kept_entry_note,
                    kernel_va_hint, normalize_regs, read_entry, read_table)

ARCH = "x86_64"

# ---------------------------------------------------------------------------------------
# Page-table entry, common layout of all four levels:
#
#   63 62    59 58    52 51       M M-1              12 11  9  8   7   6   5   4   3   2   1   0
#  +--+--------+--------+----------+-------------------+-----+---+---+---+---+---+---+---+---+---+
#  |XD|  PKEY  |  AVL   | reserved | physical address  | AVL | G |PS | D | A |PCD|PWT|US |RW | P |
#  +--+--------+--------+----------+-------------------+-----+---+---+---+---+---+---+---+---+---+
#
#  P    present                     PCD  page-level cache disable
#  RW   writable                    A    accessed
#  US   user accessible             D    dirty                  (leaf entries only)
#  PWT  page-level write-through    PS   page size: huge page   (PDPT and PD entries;
#  G    global                      (leaf only)                  reserved in PML4 entries)
#  PKEY protection key (leaf only, used when CR4.PKE=1)
#  XD   execute disable (NX); reserved (must be 0) when EFER.NXE=0
#  M    MAXPHYADDR, the CPU's physical address width (CPUID 0x80000008); bits M..51 are
#       reserved and must be 0.
#
# In a PT entry (4 KiB page) bit 7 is not PS but PAT (bit 2 of the PAT index).
#
# Huge-page entries (PDPT entry with PS=1: 1 GiB page; PD entry with PS=1: 2 MiB page)
# move PAT to bit 12 and shrink the address field:
#
#   1 GiB:   M-1        30 29        13 12  11 ... 0
#           +------------+-------------+---+---------+
#           | frame addr |  reserved   |PAT| as above|
#           +------------+-------------+---+---------+
#   2 MiB:   M-1        21 20        13 12  11 ... 0
#           +------------+-------------+---+---------+
#           | frame addr |  reserved   |PAT| as above|
#           +------------+-------------+---+---------+
# ---------------------------------------------------------------------------------------
PTE_RW = 1 << 1
PTE_US = 1 << 2
PTE_PWT = 1 << 3
PTE_PCD = 1 << 4
PTE_A = 1 << 5
PTE_D = 1 << 6
PTE_PAT = 1 << 7         # PT entries
PTE_G = 1 << 8
PTE_PAT_HUGE = 1 << 12   # 1 GiB / 2 MiB leaf entries
PTE_PKEY_SHIFT = 59
PTE_PKEY_MASK = 0xF
PTE_NX = 1 << 63

PHYS_ADDR_LIMIT = 52     # architectural maximum MAXPHYADDR; bits 52..63 are never address
MAX_PA_BITS = DEFAULT_PA_BITS = DEFAULT_MAXPHYADDR   # (isa.Isa asks each format by these names)
MIN_MAXPHYADDR = 32
HUGE_RESERVED_LOW = 13   # lowest reserved bit in a 1 GiB / 2 MiB leaf (just above PAT)

# The levels, top first: name and the VA bit where the level's 9-bit index starts.
INDEX_BITS = 9
INDEX_MASK = (1 << INDEX_BITS) - 1
PML4, PDPT, PD, PT = "PML4", "PDPT", "PD", "PT"
LEVELS = ((PML4, 39), (PDPT, 30), (PD, 21), (PT, PAGE_SHIFT))
HUGE_LEVELS = (PDPT, PD)  # levels whose PS bit makes the entry a leaf
LEVEL_SHIFT = dict(LEVELS)
PAGE_SIZE_NAMES = {PDPT: "1 GiB", PD: "2 MiB", PT: "4 KiB"}

VA_BITS = 48
CANONICAL_SHIFT = VA_BITS - 1                       # bit 47, copied into 63:48
CANONICAL_HIGH = ADDRESS_MASK >> CANONICAL_SHIFT    # all of bits 63:47 set
SIGN_EXTENSION = ADDRESS_MASK ^ ((1 << VA_BITS) - 1)  # 0xffff_0000_0000_0000

# ---------------------------------------------------------------------------------------
# Control registers consulted by the walk (full decoding lives in regs.py):
#
#   CR0:  bit 16 WP   write protect: supervisor writes honour RW
#   CR3:  bits M-1:12 PML4 table address; bits 11:0 PCID (CR4.PCIDE=1) or PWT(3)/PCD(4)
#   CR4:  bit 12 LA57 (5-level paging), bit 20 SMEP, bit 21 SMAP, bit 22 PKE
#   EFER: bit 11 NXE  (XD bits are honoured; otherwise bit 63 is reserved)
# ---------------------------------------------------------------------------------------
CR4_SMEP = 1 << 20
CR4_PKE = 1 << 22

# ---------------------------------------------------------------------------------------
# IA32_PAT MSR: eight 8-bit entries, entry i in bits 8i+2..8i (upper bits reserved).
# A leaf picks entry  PAT<<2 | PCD<<1 | PWT.
#
#   63   56 55   48 47   40 39   32 31   24 23   16 15    8 7     0
#  +-------+-------+-------+-------+-------+-------+-------+-------+
#  | PA7   | PA6   | PA5   | PA4   | PA3   | PA2   | PA1   | PA0   |
#  +-------+-------+-------+-------+-------+-------+-------+-------+
# ---------------------------------------------------------------------------------------
PAT_POWER_ON = 0x0007040600070406   # WB, WT, UC-, UC, WB, WT, UC-, UC
PAT_ENTRY_BITS = 8
PAT_TYPE_MASK = 0x7
PAT_TYPES = {0: "UC", 1: "WC", 4: "WT", 5: "WP", 6: "WB", 7: "UC-"}
PAT_INDEX_PWT = 1
PAT_INDEX_PCD = 2
PAT_INDEX_PAT = 4


def is_canonical(va: int) -> bool:
    """True when bits 63:47 of the 64-bit va are all 0 or all 1."""
    top = (va & ADDRESS_MASK) >> CANONICAL_SHIFT
    return top == 0 or top == CANONICAL_HIGH


def sign_extend(va: int) -> int:
    """Copy bit 47 into bits 63:48 (turn a 48-bit table-derived address canonical)."""
    return va | SIGN_EXTENSION if va >> CANONICAL_SHIFT & 1 else va


# A kernel (upper-half) virtual address has bits 63:47 set.  Stored in an entry, bits 63:52
# may have been masked away as flags (make_table_entry(PhysAddr(pointer)) does that), but bits
# 51:47 of the address field are still all set: a physical address that high exists on no
# machine (it is 2^51 and above), so such an entry holds a virtual address.
_KVA_FIELD_BITS = bit_mask(CANONICAL_SHIFT, PHYS_ADDR_LIMIT - 1)     # bits 51:47


def kernel_va_in(value: int) -> Optional[int]:
    """The kernel virtual address that @p value (an entry, or an address taken from one)
    looks like, page aligned, or None when it does not look like one."""
    value &= ADDRESS_MASK
    if value >> CANONICAL_SHIFT == CANONICAL_HIGH or value & _KVA_FIELD_BITS == _KVA_FIELD_BITS:
        return sign_extend(value & bit_mask(PAGE_SHIFT, PHYS_ADDR_LIMIT - 1) &
                           ((1 << VA_BITS) - 1)) & ~(PAGE_SIZE_4K - 1)
    return None


def kva_hint(value: int) -> str:
    """The hint of model.kernel_va_hint() for an entry or address @p value, or ''."""
    return kernel_va_hint(kernel_va_in(value))


class _Config:
    """What the walk needs from the registers, decoded once."""

    def __init__(self, regs: dict, maxphyaddr: int):
        if not MIN_MAXPHYADDR <= maxphyaddr <= PHYS_ADDR_LIMIT:
            raise ValueError("maxphyaddr must be in %d..%d, got %r"
                             % (MIN_MAXPHYADDR, PHYS_ADDR_LIMIT, maxphyaddr))
        self.maxphyaddr = maxphyaddr
        efer = regs.get("efer")
        cr0 = regs.get("cr0")
        cr4 = regs.get("cr4")
        self.nxe = True if efer is None else bool(efer & EFER_NXE)
        self.nx_bit = PTE_NX if self.nxe else 0
        self.la57 = cr4 is not None and bool(cr4 & CR4_LA57)
        self.smep = cr4 is not None and bool(cr4 & CR4_SMEP)
        self.smap = cr4 is not None and bool(cr4 & CR4_SMAP)
        self.pke = cr4 is not None and bool(cr4 & CR4_PKE)
        self.pat_msr = regs.get("pat", PAT_POWER_ON)
        self.cr3 = regs.get("cr3")
        # Physical address field and the bits above MAXPHYADDR.
        self.addr_mask = bit_mask(PAGE_SHIFT, maxphyaddr - 1)
        self.phys_reserved = (bit_mask(maxphyaddr, PHYS_ADDR_LIMIT - 1)
                              if maxphyaddr < PHYS_ADDR_LIMIT else 0)
        common = self.phys_reserved | (0 if self.nxe else PTE_NX)
        self.reserved = {
            (PML4, False): common | PTE_PS,
            (PDPT, False): common,
            (PDPT, True): common | bit_mask(HUGE_RESERVED_LOW, LEVEL_SHIFT[PDPT] - 1),
            (PD, False): common,
            (PD, True): common | bit_mask(HUGE_RESERVED_LOW, LEVEL_SHIFT[PD] - 1),
            (PT, True): common,
        }
        self.notes = []
        if cr0 is not None and not cr0 & CR0_WP:
            self.notes.append("CR0.WP=0: supervisor-mode writes ignore RW (read-only "
                              "pages are writable by the kernel)")
        if not self.nxe:
            self.notes.append("EFER.NXE=0: no execute protection; bit 63 (XD) is reserved")
        self._perms_cache: dict[int, Perms] = {}

    def cache_type(self, pat_index: int) -> str:
        """Memory type chosen by PAT entry pat_index, e.g. 'WB'."""
        code = self.pat_msr >> (PAT_ENTRY_BITS * pat_index) & PAT_TYPE_MASK
        return PAT_TYPES.get(code, "PAT%d?" % code)

    def perms_for_key(self, key: int) -> Perms:
        """Perms for a combined key: RW/US set only if set at every level, NX if at any
        level (and NXE), plus the leaf's PWT/PCD/PAT bits (PAT at bit 7 or 12)."""
        perms = self._perms_cache.get(key)
        if perms is None:
            pat_index = ((PAT_INDEX_PWT if key & PTE_PWT else 0) |
                         (PAT_INDEX_PCD if key & PTE_PCD else 0) |
                         (PAT_INDEX_PAT if key & (PTE_PAT | PTE_PAT_HUGE) else 0))
            executable = not key & self.nx_bit
            perms = Perms(read=True, write=bool(key & PTE_RW), execute=executable,
                          user=bool(key & PTE_US), priv_execute=executable,
                          cache=self.cache_type(pat_index))
            self._perms_cache[key] = perms
        return perms

    def reserved_parts(self, raw: int, name: str, leaf: bool) -> list[str]:
        """Explain every reserved bit set in raw, grouped by why it is reserved."""
        parts = []
        above = bits_set(raw & self.phys_reserved, self.maxphyaddr, PHYS_ADDR_LIMIT - 1)
        if above:
            parts.append("%s above MAXPHYADDR=%d" % (describe_bits(above), self.maxphyaddr))
        if not self.nxe and raw & PTE_NX:
            parts.append("bit 63 (XD) while EFER.NXE=0")
        if name == PML4 and raw & PTE_PS:
            parts.append("bit 7 (PS) must be 0 in a PML4 entry")
        if leaf and name in HUGE_LEVELS:
            low = bits_set(raw, HUGE_RESERVED_LOW, LEVEL_SHIFT[name] - 1)
            if low:
                parts.append("%s below the %s frame address" % (describe_bits(low),
                                                                PAGE_SIZE_NAMES[name]))
        return parts


def decode_flags(raw: int, name: str, leaf: bool, nxe: bool = True) -> list[str]:
    """Short names of the meaningful set bits of one entry at level `name`.

    D, G and PKEY are only meaningful in leaf entries; bit 7 is PS in PDPT/PD entries
    and PAT in PT entries; a huge leaf's PAT is bit 12.  NX is shown even when NXE=0
    (it is then a reserved bit, which the walk reports)."""
    names = []
    for bit, label in ((PTE_P, "P"), (PTE_RW, "RW"), (PTE_US, "US"), (PTE_PWT, "PWT"),
                       (PTE_PCD, "PCD"), (PTE_A, "A")):
        if raw & bit:
            names.append(label)
    if leaf and raw & PTE_D:
        names.append("D")
    if name == PT:
        if raw & PTE_PAT:
            names.append("PAT")
    elif raw & PTE_PS:
        names.append("PS")
    if leaf and raw & PTE_G:
        names.append("G")
    if leaf and name in HUGE_LEVELS and raw & PTE_PAT_HUGE:
        names.append("PAT")
    pkey = raw >> PTE_PKEY_SHIFT & PTE_PKEY_MASK
    if leaf and pkey:
        names.append("PKEY=%d" % pkey)
    if raw & PTE_NX:
        names.append("NX")
    return names


def walk(read_phys: PhysReader, root_pa: Optional[int], va: int,
         regs: Optional[dict] = None, maxphyaddr: int = DEFAULT_MAXPHYADDR) -> Walk:
    """Translate va through the 4-level tree whose PML4 is at root_pa (CR3 from regs when
    root_pa is None).  regs may hold cr0, cr3, cr4, efer, pat.  Never raises for bad
    tables or unreadable memory: the result's stop_reason says what went wrong."""
    regs = normalize_regs(regs)
    cfg = _Config(regs, maxphyaddr)
    va &= ADDRESS_MASK
    result = Walk(arch=ARCH, va=va)
    result.notes.extend(cfg.notes)
    if root_pa is None:
        if cfg.cr3 is None:
            result.stop_reason = "no root table: pass root_pa or CR3 in regs"
            return result
        root_pa = cfg.cr3
    if cfg.la57:
        result.stop_reason = "CR4.LA57=1: 5-level paging is not supported by this walker"
        return result
    if not is_canonical(va):
        result.stop_reason = "non-canonical address: bits 63:48 must all equal bit 47"
        return result

    table = root_pa & cfg.addr_mask
    writable = user = True
    no_exec = False
    for name, shift in LEVELS:
        index = va >> shift & INDEX_MASK
        entry_pa = table + index * ENTRY_BYTES
        try:
            raw = read_entry(read_phys, entry_pa)
        except Exception as err:  # noqa: BLE001 - any reader failure ends the walk
            result.levels.append(Level(name, table, index, entry_pa, None))
            source = result.levels[-2].raw if len(result.levels) > 1 else root_pa
            result.stop_reason = "cannot read %s entry %d at %#x: %s%s" % (
                name, index, entry_pa, err, kva_hint(source))
            return result
        leaf = name == PT or (name in HUGE_LEVELS and bool(raw & PTE_PS))
        level = Level(name, table, index, entry_pa, raw,
                      decode_flags(raw, name, leaf, cfg.nxe), leaf)
        result.levels.append(level)
        if not raw & PTE_P:
            level.leaf = False
            result.stop_reason = "%s entry %d not present" % (name, index)
            if leaf:
                frame = raw & cfg.addr_mask & ~((1 << shift) - 1)
                note = kept_entry_note("%s entry %d" % (name, index), raw, frame)
                if note:
                    result.notes.append(note)
            return result
        page_size = 1 << shift
        level.output = raw & cfg.addr_mask
        if leaf:
            level.output &= ~(page_size - 1)
        if raw & cfg.reserved[(name, leaf)]:
            level.output = raw & bit_mask(PAGE_SHIFT, PHYS_ADDR_LIMIT - 1)   # all of it
            result.stop_reason = "reserved bit set in %s entry %d: %s%s" % (
                name, index, "; ".join(cfg.reserved_parts(raw, name, leaf)), kva_hint(raw))
            return result
        writable = writable and bool(raw & PTE_RW)
        user = user and bool(raw & PTE_US)
        no_exec = no_exec or bool(raw & cfg.nx_bit)
        if not leaf:
            table = level.output
            continue
        key = (PTE_RW if writable else 0) | (PTE_US if user else 0) | \
              (PTE_NX if no_exec else 0) | (raw & (PTE_PWT | PTE_PCD))
        key |= raw & (PTE_PAT if name == PT else PTE_PAT_HUGE)
        result.perms = cfg.perms_for_key(key)
        result.page_size = page_size
        result.pa = level.output | (va & (page_size - 1))
        result.notes.extend(_leaf_notes(cfg, raw, result.perms))
        if kernel_va_in(raw) is not None:
            result.notes.append("the page's frame address" + kva_hint(raw))
        return result
    raise AssertionError("unreachable: the PT level is always a leaf")


def _leaf_notes(cfg: _Config, raw: int, perms: Perms) -> list[str]:
    notes = []
    if perms.user and cfg.smep:
        notes.append("CR4.SMEP=1: supervisor mode cannot execute this user page")
    if perms.user and cfg.smap:
        notes.append("CR4.SMAP=1: supervisor data access to this user page faults "
                     "unless EFLAGS.AC=1")
    pkey = raw >> PTE_PKEY_SHIFT & PTE_PKEY_MASK
    if cfg.pke and perms.user and pkey:
        notes.append("protection key %d (CR4.PKE=1): PKRU may further restrict user "
                     "access" % pkey)
    return notes


Problem = Optional[Callable[[str], None]]


def leaves(read_phys: PhysReader, root_pa: Optional[int], regs: Optional[dict] = None,
           pa_bits: int = DEFAULT_MAXPHYADDR, problem: Problem = None, held_mask: int = 0):
    """Every present leaf of the tree under root_pa (CR3 when None) as (va, pa, size, perms), in
    increasing VA order: the caller may stop at any leaf, and no table is read before the leaves
    ahead of it are asked for (each table with one read_phys call).  Entries with reserved bits
    (which would fault) and unreadable tables are skipped and reported through problem(message)
    when given.  With @p held_mask (the kernel's fact held_entry_bit: Pagoda's software bit of a
    held leaf), a not-present leaf with that bit set (a PROT_NONE page whose frame the kernel
    keeps) is yielded too, with Perms(read=False, ..., cache="held"): the MMU ignores it, the
    kernel's records do not."""
    regs = normalize_regs(regs)
    cfg = _Config(regs, pa_bits)
    cfg.held_mask = held_mask
    if root_pa is None:
        if cfg.cr3 is None:
            raise ValueError("no root table: pass root_pa or CR3 in regs")
        root_pa = cfg.cr3
    if cfg.la57:
        raise ValueError("CR4.LA57=1: 5-level paging is not supported")
    report = problem or (lambda message: None)
    yield from _Dumper(read_phys, cfg, report).table(0, root_pa & cfg.addr_mask, 0, PTE_RW | PTE_US, 0)


class _Dumper:
    """Recursive descent over the tree, a generator of leaves.  The permission state travels
    down as allow (RW|US bits still granted by every level) and no_exec (PTE_NX once any level
    set NX with NXE on), so a leaf's Perms key is one AND and one OR."""

    def __init__(self, read_phys: PhysReader, cfg: _Config, report: Callable[[str], None]):
        self.read_phys = read_phys
        self.cfg = cfg
        self.report = report

    def _read(self, name: str, table_pa: int):
        try:
            return read_table(self.read_phys, table_pa)
        except Exception as err:  # noqa: BLE001
            self.report("cannot read %s table at %#x: %s%s" % (name, table_pa, err,
                                                                kva_hint(table_pa)))
            return None

    def table(self, depth: int, table_pa: int, va_base: int, allow: int,
              no_exec: int) -> None:
        name, shift = LEVELS[depth]
        entries = self._read(name, table_pa)
        if entries is None:
            return
        cfg = self.cfg
        if name == PT:
            yield from self._pt(entries, va_base, allow, no_exec)
            return
        huge_ok = name in HUGE_LEVELS
        page_size = 1 << shift
        leaf_addr = cfg.addr_mask & ~(page_size - 1)
        leaf_bits = PTE_PWT | PTE_PCD | PTE_PAT_HUGE
        held_mask = cfg.held_mask
        for index in range(ENTRIES_PER_TABLE):
            raw = entries[index]
            if not raw & PTE_P:
                if held_mask and raw & held_mask and huge_ok and raw & PTE_PS:
                    va = va_base + (index << shift)
                    yield (sign_extend(va) if depth == 0 else va, raw & leaf_addr, page_size,
                           Perms(False, False, False, bool(allow & raw & PTE_US), False, "held"))
                continue
            va = va_base + (index << shift)
            if depth == 0:
                va = sign_extend(va)
            leaf = huge_ok and bool(raw & PTE_PS)
            if raw & cfg.reserved[(name, leaf)]:
                self.report("va %#x: reserved bit set in %s entry %d: %s%s" % (
                    va, name, index, "; ".join(cfg.reserved_parts(raw, name, leaf)),
                    kva_hint(raw)))
                continue
            sub_allow = allow & raw
            sub_no_exec = no_exec | (raw & cfg.nx_bit)
            if leaf:
                key = (sub_allow & (PTE_RW | PTE_US)) | sub_no_exec | (raw & leaf_bits)
                yield va, raw & leaf_addr, page_size, cfg.perms_for_key(key)
            else:
                yield from self.table(depth + 1, raw & cfg.addr_mask, va, sub_allow & (PTE_RW | PTE_US),
                                      sub_no_exec)

    def _pt(self, entries, va_base: int, allow: int, no_exec: int) -> None:
        # The hot loop: 512 entries per PT, up to 262144 per GiB mapped.
        cfg = self.cfg
        perms_for_key = cfg.perms_for_key
        reserved = cfg.reserved[(PT, True)]
        addr_mask = cfg.addr_mask
        key_mask = allow | PTE_PWT | PTE_PCD | PTE_PAT | cfg.nx_bit
        held_mask = cfg.held_mask
        for index in range(ENTRIES_PER_TABLE):
            raw = entries[index]
            if not raw & PTE_P:
                if held_mask and raw & held_mask:
                    yield (va_base + (index << PAGE_SHIFT), raw & addr_mask, PAGE_SIZE_4K,
                           Perms(False, False, False, bool(allow & raw & PTE_US), False, "held"))
                continue
            va = va_base + (index << PAGE_SHIFT)
            if raw & reserved:
                self.report("va %#x: reserved bit set in PT entry %d: %s%s" % (
                    va, index, "; ".join(cfg.reserved_parts(raw, PT, True)), kva_hint(raw)))
                continue
            yield va, raw & addr_mask, PAGE_SIZE_4K, perms_for_key((raw & key_mask) | no_exec)


# ---------------------------------------------------------------------------------------
# The top-level table on its own (pt-top, root checks).
# ---------------------------------------------------------------------------------------
TOP_LEVEL_NAME = PML4
# PML4 index of 0xffff_8000_0000_0000: entries from here on map the upper (kernel) half,
# which every root shares with the kernel's own root.
KERNEL_HALF_FIRST_INDEX = 1 << (INDEX_BITS - 1)


def top_level_entry(raw: int, pa_bits: int = DEFAULT_MAXPHYADDR):
    """(present, next table PA or None, flags, problem or None) of one PML4 entry; problem
    says why the CPU would fault on it (reserved bits), with a hint for a virtual address."""
    if not raw & PTE_P:
        return False, None, [], None
    cfg = _Config({}, pa_bits)
    problem = None
    if raw & cfg.reserved[(PML4, False)]:
        problem = "; ".join(cfg.reserved_parts(raw, PML4, False)) + kva_hint(raw)
    return True, raw & cfg.addr_mask, decode_flags(raw, PML4, False), problem
