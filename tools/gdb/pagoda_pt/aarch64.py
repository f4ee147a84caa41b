"""AArch64 stage-1 translation for the EL1&0 regime, 4 KiB granule, up to 48-bit VAs.

Reference: Arm ARM (DDI 0487), chapter D8 "The AArch64 Virtual Memory System
Architecture" (descriptor formats, TCR_EL1, TTBRn_EL1, access permissions).  Only the bit
layouts and rules were taken from there.

Two VA ranges, each with its own table root:

   63    56 55 54     48 47     39 38     30 29     21 20     12 11           0
  +--------+--+---------+---------+---------+---------+---------+--------------+
  |  tag   |  | all = 55|   L0    |   L1    |   L2    |   L3    | page offset  |
  |(TBI=1) |  |         |  index  |  index  |  index  |  index  |              |
  +--------+--+---------+---------+---------+---------+---------+--------------+
             ^
             bit 55 selects the range: 0 -> TTBR0_EL1 (low, user), 1 -> TTBR1_EL1 (high)

With TnSZ=16 a range is 48 bits: 0x0000_0000_0000_0000..0x0000_ffff_ffff_ffff for TTBR0
and 0xffff_0000_0000_0000..0xffff_ffff_ffff_ffff for TTBR1.  The bits above the range
(63:48, or 55:48 when top-byte-ignore TBIn=1) must all equal bit 55.  A larger TnSZ makes
the range smaller and the walk start at L1 (TnSZ 25..33) or with a shorter L0 table.
"""

from __future__ import annotations

from typing import Callable, Optional

from .model import (ADDRESS_BITS, ADDRESS_MASK, ENTRY_BYTES, PAGE_SHIFT, Level, Perms,
                    PhysReader, Walk, bit_mask, kept_entry_note, kernel_va_hint, normalize_regs,
                    read_entry, read_table)

ARCH = "aarch64"

# ---------------------------------------------------------------------------------------
# TCR_EL1 (fields this walker reads):
#
#   42  41  40  39  38   37   36  34..32 31 30 29 28 27 26 25 24  23  22  21..16
#  +---+---+---+---+----+----+--+-------+-----+-----+-----+-----+----+--+-------+
#  |...|...|HD |HA |TBI1|TBI0|AS|  IPS  | TG1 | SH1 |ORGN1|IRGN1|EPD1|A1| T1SZ  |
#  +---+---+---+---+----+----+--+-------+-----+-----+-----+-----+----+--+-------+
#   15 14 13 12 11 10 9  8   7   6   5..0
#  +-----+-----+-----+-----+----+--+------+
#  | TG0 | SH0 |ORGN0|IRGN0|EPD0|  | T0SZ |
#  +-----+-----+-----+-----+----+--+------+
#
#  TnSZ  the range is 2^(64-TnSZ) bytes     EPDn  1: walks through TTBRn fault
#  TG0   00 4 KiB, 01 64 KiB, 10 16 KiB     TG1   10 4 KiB, 01 16 KiB, 11 64 KiB
#  IPS   physical size 000 32, 001 36, 010 40, 011 42, 100 44, 101 48, 110 52 bits
#  TBIn  top byte ignored in addresses of range n
#  HA    hardware sets the access flag (no access-flag faults)
# ---------------------------------------------------------------------------------------
TCR_TSZ_MASK = 0x3F
TCR_T0SZ_SHIFT = 0
TCR_T1SZ_SHIFT = 16
TCR_EPD0 = 1 << 7
TCR_EPD1 = 1 << 23
TCR_TG_MASK = 0x3
TCR_TG0_SHIFT = 14
TCR_TG1_SHIFT = 30
TCR_IPS_SHIFT = 32
TCR_IPS_MASK = 0x7
TCR_TBI0 = 1 << 37
TCR_TBI1 = 1 << 38
TCR_HA = 1 << 39

TG0_GRANULES = {0b00: 4096, 0b01: 65536, 0b10: 16384}
TG1_GRANULES = {0b10: 4096, 0b01: 16384, 0b11: 65536}
IPS_BITS = {0b000: 32, 0b001: 36, 0b010: 40, 0b011: 42, 0b100: 44, 0b101: 48, 0b110: 52}

DEFAULT_TSZ = 16                 # 48-bit ranges
MAX_TSZ_4K = 39                  # smallest range a 4 KiB-granule walk supports (25 bits)
OA_BITS = 48                     # output address width of the 4 KiB descriptor format
MAX_PA_BITS, DEFAULT_PA_BITS = OA_BITS, None   # (isa.Isa asks each format by these names: None, the tables say)
GRANULE_4K = 1 << PAGE_SHIFT
TTBR_SELECT_BIT = 55
TOP_BYTE_SHIFT = 56

# ---------------------------------------------------------------------------------------
# TTBR0_EL1 / TTBR1_EL1:
#
#   63       48 47                                   1   0
#  +-----------+--------------------------------------+-----+
#  |   ASID    |  BADDR: base of the first table      | CnP |
#  +-----------+--------------------------------------+-----+
# ---------------------------------------------------------------------------------------
TTBR_BADDR_MASK = ((1 << OA_BITS) - 1) & ~1

# SCTLR_EL1 bits consulted: M (MMU on) and WXN (writable implies execute-never).
SCTLR_M = 1 << 0
SCTLR_WXN = 1 << 19

# ---------------------------------------------------------------------------------------
# Descriptors, 4 KiB granule, 48-bit output addresses.  Bit 0 = 0: invalid (faults).
#
# Table descriptor (L0, L1, L2; bits 1:0 = 11):
#
#   63  62 61  60    59    58   52 51  48 47                 12 11      2  1  0
#  +---+-----+-----+-----+-------+------+---------------------+---------+--+--+
#  |NST|APT  |UXNT |PXNT | ignore| res0 | next table address  | ignored | 1| 1|
#  +---+-----+-----+-----+-------+------+---------------------+---------+--+--+
#   APTable bit 61: no EL0 access below;  bit 62: no writes below.
#
# Block (L1, L2; bits 1:0 = 01) and page (L3; bits 1:0 = 11) descriptor:
#
#   63 59 58 55 54  53  52   51  50 49 48 47            n n-1   12 11  10  9  8 7  6  5  4    2  1  0
#  +-----+-----+---+---+----+---+--+-----+---------------+--------+---+---+-----+-----+--+-------+--+--+
#  |ign. | SW  |UXN|PXN|CONT|DBM|GP|res0 | output address| (res0) |nG |AF | SH  | AP  |NS|AttrIdx|T |1 |
#  +-----+-----+---+---+----+---+--+-----+---------------+--------+---+---+-----+-----+--+-------+--+--+
#   n = 30 for an L1 block (1 GiB), 21 for an L2 block (2 MiB), 12 for an L3 page (4 KiB).
#   A block at L0 and a "block" (bit 1 = 0) at L3 are invalid with the 4 KiB granule.
#
#   AP[2:1] (bits 7:6)   EL1 (kernel)   EL0 (user)      SH (bits 9:8)
#        00              read/write     none               00 non-shareable
#        01              read/write     read/write         10 outer shareable
#        10              read-only      none               11 inner shareable
#        11              read-only      read-only
#   Also: a page writable at EL0 is never executable at EL1 (implicit PXN).
# ---------------------------------------------------------------------------------------
DESC_VALID = 1 << 0
DESC_TABLE = 1 << 1              # L0-L2: table (1) vs block (0); L3: page (1) vs reserved
DESC_ATTRINDX_SHIFT = 2
DESC_ATTRINDX_MASK = 0x7
DESC_NS = 1 << 5
DESC_AP_SHIFT = 6
DESC_AP_MASK = 0x3
DESC_SH_SHIFT = 8
DESC_SH_MASK = 0x3
DESC_AF = 1 << 10
DESC_NG = 1 << 11
DESC_GP = 1 << 50
DESC_DBM = 1 << 51
DESC_CONT = 1 << 52
DESC_PXN = 1 << 53
DESC_UXN = 1 << 54
DESC_PXN_TABLE = 1 << 59
DESC_UXN_TABLE = 1 << 60
DESC_AP_TABLE_SHIFT = 61
DESC_NS_TABLE = 1 << 63

AP_EL0 = 0b01                    # AP[1]: EL0 may access
AP_RO = 0b10                     # AP[2]: read-only
APT_NO_EL0 = 0b01                # APTable[0]
APT_NO_WRITE = 0b10              # APTable[1]

SH_NAMES = {0b00: "NSH", 0b01: "SH?", 0b10: "OSH", 0b11: "ISH"}

# ---------------------------------------------------------------------------------------
# MAIR_EL1: eight 8-bit memory attributes; AttrIndx picks one.
#
#   Attr byte:  7      4 3      0
#              +--------+--------+   outer = 0000: Device, inner bits 3:2 pick
#              | outer  | inner  |       00 nGnRnE, 01 nGnRE, 10 nGRE, 11 GRE
#              +--------+--------+   otherwise Normal; each nibble is
#                                      0100 non-cacheable, 10RW write-through,
#                                      11RW write-back, 00RW/01RW (RW!=0) transient WT/WB
# ---------------------------------------------------------------------------------------
MAIR_ATTR_BITS = 8
MAIR_ATTR_MASK = 0xFF
MAIR_NIBBLE_BITS = 4
MAIR_NIBBLE_MASK = 0xF
MAIR_DEVICE_TYPE_SHIFT = 2
MAIR_DEVICE_TYPE_MASK = 0x3
DEVICE_TYPES = {0b00: "nGnRnE", 0b01: "nGnRE", 0b10: "nGRE", 0b11: "GRE"}
NIBBLE_NC = 0b0100
NIBBLE_KIND_SHIFT = 2
NIBBLE_ALLOC_MASK = 0b0011
NIBBLE_KINDS = {0b10: "WT", 0b11: "WB", 0b00: "WT-transient", 0b01: "WB-transient"}

INDEX_BITS = 9
LEVEL_NAMES = ("L0", "L1", "L2", "L3")
LAST_LEVEL = 3


def level_shift(level: int) -> int:
    """VA bit where the index for `level` starts (L3: 12, L2: 21, L1: 30, L0: 39)."""
    return PAGE_SHIFT + INDEX_BITS * (LAST_LEVEL - level)


def _nibble_name(nibble: int) -> str:
    if nibble == NIBBLE_NC:
        return "NC"
    if nibble >> NIBBLE_KIND_SHIFT in (0b00, 0b01) and not nibble & NIBBLE_ALLOC_MASK:
        return "?"
    return NIBBLE_KINDS[nibble >> NIBBLE_KIND_SHIFT]


def decode_mair_attr(attr: int) -> str:
    """Name one MAIR attribute byte: 'Device-nGnRnE', 'Normal-WB', 'Normal-oWB-iNC'."""
    outer = attr >> MAIR_NIBBLE_BITS & MAIR_NIBBLE_MASK
    inner = attr & MAIR_NIBBLE_MASK
    if outer == 0:
        return "Device-" + DEVICE_TYPES[inner >> MAIR_DEVICE_TYPE_SHIFT & MAIR_DEVICE_TYPE_MASK]
    o, i = _nibble_name(outer), _nibble_name(inner)
    return "Normal-" + o if o == i else "Normal-o%s-i%s" % (o, i)


class Region:
    """One VA range (TTBR0 or TTBR1) as configured by TCR_EL1 and the TTBR."""

    def __init__(self, name: str, tsz: int, granule: Optional[int], tbi: bool,
                 disabled: bool, upper: bool, root: Optional[int]):
        self.name = name
        self.tsz = tsz
        self.va_bits = ADDRESS_BITS - tsz
        self.granule = granule
        self.tbi = tbi
        self.disabled = disabled
        self.upper = upper
        self.tsz_ok = DEFAULT_TSZ <= tsz <= MAX_TSZ_4K
        # Levels below the top each resolve INDEX_BITS; the top one takes what is left.
        # (An unsupported TnSZ is reported by problem(); lay out a 48-bit range instead.)
        resolved = (self.va_bits if self.tsz_ok else ADDRESS_BITS - DEFAULT_TSZ) - PAGE_SHIFT
        levels = -(-resolved // INDEX_BITS)
        self.start_level = LAST_LEVEL + 1 - levels
        self.top_index_bits = resolved - INDEX_BITS * (levels - 1)
        self.top_entries = 1 << self.top_index_bits
        table_bytes = self.top_entries * ENTRY_BYTES
        self.root = None if root is None else root & TTBR_BADDR_MASK & ~(table_bytes - 1)
        self.base = (ADDRESS_MASK ^ ((1 << self.va_bits) - 1)) if upper else 0

    def problem(self) -> Optional[str]:
        """Why this range cannot be walked at all, or None."""
        return self.config_problem() or self.root_problem()

    def root_problem(self) -> Optional[str]:
        if self.root is None:
            return "VA is in the %s range but no %s table was given" % (self.name, self.name)
        return None

    def config_problem(self) -> Optional[str]:
        """Why TCR_EL1 makes this range unwalkable (disabled/unsupported), or None."""
        if self.disabled:
            return "TCR_EL1.EPD%d=1: walks through %s are disabled" % (self.upper, self.name)
        if self.granule != GRANULE_4K:
            size = "unknown" if self.granule is None else "%d KiB" % (self.granule >> 10)
            return "%s uses a %s granule; only 4 KiB is supported" % (self.name, size)
        if not self.tsz_ok:
            return "T%dSZ=%d is outside %d..%d" % (self.upper, self.tsz, DEFAULT_TSZ,
                                                   MAX_TSZ_4K)
        return None

    def contains(self, va: int) -> bool:
        """Do the bits above the range (up to 63, or 55 with TBI) all equal bit 55?"""
        top = TOP_BYTE_SHIFT if self.tbi else ADDRESS_BITS
        if self.va_bits >= top:
            return True
        high = va >> self.va_bits & ((1 << (top - self.va_bits)) - 1)
        return high == (((1 << (top - self.va_bits)) - 1) if self.upper else 0)


# ID_AA64MMFR0_EL1.PARange (bits 3:0): the physical address size this CPU implements.  The
# effective output size is the smaller of it and TCR_EL1.IPS.
ID_AA64MMFR0_PARANGE_MASK = 0xF
PARANGE_BITS = IPS_BITS          # the same encoding as TCR_EL1.IPS


def pa_bits_from_mmfr0(mmfr0: int) -> Optional[int]:
    """The physical address width ID_AA64MMFR0_EL1 reports, or None for a reserved value."""
    return PARANGE_BITS.get(mmfr0 & ID_AA64MMFR0_PARANGE_MASK)


pa_bits_decode = pa_bits_from_mmfr0     # (isa.Isa's name for the ID register's decoder)


def kernel_va_in(value: int) -> Optional[int]:
    """The TTBR1 (kernel) virtual address @p value (a descriptor or an address) looks like,
    page aligned, or None.  A descriptor's bits 63:48 are attributes, so only a value with all
    of them set (an unmasked kernel pointer) is recognised."""
    value &= ADDRESS_MASK
    if value >> OA_BITS == (1 << (ADDRESS_BITS - OA_BITS)) - 1:
        return value & ~((1 << PAGE_SHIFT) - 1)
    return None


def kva_hint(value: int) -> str:
    """The hint of model.kernel_va_hint() for an entry or address @p value, or ''."""
    return kernel_va_hint(kernel_va_in(value))


class _Config:
    """Registers decoded once: the two ranges, PA size, HA, WXN, MAIR."""

    def __init__(self, regs: dict, root_pa, pa_bits: Optional[int] = None):
        tcr = regs.get("tcr_el1")
        self.notes = []
        if tcr is None:
            self.notes.append("TCR_EL1 not given: assuming T0SZ=T1SZ=16, 4 KiB granule, "
                              "48-bit PA")
            t0sz = t1sz = DEFAULT_TSZ
            tg0 = tg1 = GRANULE_4K
            epd0 = epd1 = tbi0 = tbi1 = self.ha = False
            self.pa_bits = OA_BITS
        else:
            t0sz = tcr >> TCR_T0SZ_SHIFT & TCR_TSZ_MASK
            t1sz = tcr >> TCR_T1SZ_SHIFT & TCR_TSZ_MASK
            tg0 = TG0_GRANULES.get(tcr >> TCR_TG0_SHIFT & TCR_TG_MASK)
            tg1 = TG1_GRANULES.get(tcr >> TCR_TG1_SHIFT & TCR_TG_MASK)
            epd0, epd1 = bool(tcr & TCR_EPD0), bool(tcr & TCR_EPD1)
            tbi0, tbi1 = bool(tcr & TCR_TBI0), bool(tcr & TCR_TBI1)
            self.ha = bool(tcr & TCR_HA)
            self.pa_bits = min(IPS_BITS.get(tcr >> TCR_IPS_SHIFT & TCR_IPS_MASK, OA_BITS),
                               OA_BITS)
        if pa_bits is not None:
            if not min(PARANGE_BITS.values()) <= pa_bits <= max(PARANGE_BITS.values()):
                raise ValueError("pa_bits must be in %d..%d, got %r" % (
                    min(PARANGE_BITS.values()), max(PARANGE_BITS.values()), pa_bits))
            self.pa_bits = min(self.pa_bits, pa_bits)
        root0, root1 = _roots(root_pa, regs)
        self.regions = (Region("TTBR0_EL1", t0sz, tg0, tbi0, epd0, False, root0),
                        Region("TTBR1_EL1", t1sz, tg1, tbi1, epd1, True, root1))
        sctlr = regs.get("sctlr_el1")
        self.wxn = sctlr is not None and bool(sctlr & SCTLR_WXN)
        if sctlr is not None and not sctlr & SCTLR_M:
            self.notes.append("SCTLR_EL1.M=0: the MMU is off, the CPU uses VA == PA")
        self.mair = regs.get("mair_el1")
        self.addr_mask = bit_mask(PAGE_SHIFT, OA_BITS - 1)
        self.too_wide = bit_mask(self.pa_bits, OA_BITS - 1) if self.pa_bits < OA_BITS else 0
        self._perms_cache: dict[tuple, Perms] = {}

    def perms(self, raw: int, ap_table: int, uxn_table: bool, pxn_table: bool) -> Perms:
        """Effective Perms of leaf descriptor raw under the accumulated table limits."""
        leaf_bits = raw & LEAF_PERM_BITS
        key = (leaf_bits, ap_table, uxn_table, pxn_table)
        perms = self._perms_cache.get(key)
        if perms is None:
            perms = self._compute_perms(leaf_bits, ap_table, uxn_table, pxn_table)
            self._perms_cache[key] = perms
        return perms

    def _compute_perms(self, raw: int, ap_table: int, uxn_table: bool,
                       pxn_table: bool) -> Perms:
        ap = raw >> DESC_AP_SHIFT & DESC_AP_MASK
        if ap_table & APT_NO_EL0:
            ap &= ~AP_EL0
        if ap_table & APT_NO_WRITE:
            ap |= AP_RO
        user = bool(ap & AP_EL0)
        write = not ap & AP_RO
        uxn = uxn_table or bool(raw & DESC_UXN) or (self.wxn and write)
        pxn = pxn_table or bool(raw & DESC_PXN) or (self.wxn and write) or (user and write)
        return Perms(read=True, write=write, execute=not (uxn if user else pxn),
                     user=user, priv_execute=not pxn, cache=self.cache_name(raw))

    def cache_name(self, raw: int) -> str:
        index = raw >> DESC_ATTRINDX_SHIFT & DESC_ATTRINDX_MASK
        share = SH_NAMES[raw >> DESC_SH_SHIFT & DESC_SH_MASK]
        if self.mair is None:
            return "attr%d %s" % (index, share)
        kind = decode_mair_attr(self.mair >> (MAIR_ATTR_BITS * index) & MAIR_ATTR_MASK)
        return kind if kind.startswith("Device") else "%s %s" % (kind, share)


LEAF_PERM_BITS = ((DESC_AP_MASK << DESC_AP_SHIFT) | DESC_UXN | DESC_PXN |
                  (DESC_ATTRINDX_MASK << DESC_ATTRINDX_SHIFT) | (DESC_SH_MASK << DESC_SH_SHIFT))


def _roots(root_pa, regs: dict) -> tuple[Optional[int], Optional[int]]:
    """(TTBR0 table, TTBR1 table).  root_pa None: both from the TTBRn_EL1 registers; an
    int: the TTBR0 (per-process, low range) table, TTBR1 still from regs; a pair: both."""
    ttbr0, ttbr1 = regs.get("ttbr0_el1"), regs.get("ttbr1_el1")
    if root_pa is None:
        return ttbr0, ttbr1
    if isinstance(root_pa, (tuple, list)):
        if len(root_pa) != 2:
            raise ValueError("an AArch64 root pair must be (ttbr0_table, ttbr1_table)")
        return root_pa[0], root_pa[1]
    return root_pa, ttbr1


def decode_flags(raw: int, level: int) -> list[str]:
    """Short names for descriptor raw at `level` (0..3): VALID, TABLE/BLOCK/PAGE, the
    table limits (PXNT, UXNT, APT=nn, NST) or the leaf attributes (AttrIndx=n, NS, AP=nn,
    SH=.., AF, nG, GP, DBM, CONT, PXN, UXN).  An invalid descriptor has no flags."""
    if not raw & DESC_VALID:
        return []
    names = ["VALID"]
    if level < LAST_LEVEL and raw & DESC_TABLE:
        names.append("TABLE")
        for bit, label in ((DESC_PXN_TABLE, "PXNT"), (DESC_UXN_TABLE, "UXNT")):
            if raw & bit:
                names.append(label)
        ap_table = raw >> DESC_AP_TABLE_SHIFT & DESC_AP_MASK
        if ap_table:
            names.append("APT=%s" % format(ap_table, "02b"))
        if raw & DESC_NS_TABLE:
            names.append("NST")
        return names
    if level == LAST_LEVEL and not raw & DESC_TABLE:
        names.append("RESERVED")
        return names
    names.append("PAGE" if level == LAST_LEVEL else "BLOCK")
    names.append("AttrIndx=%d" % (raw >> DESC_ATTRINDX_SHIFT & DESC_ATTRINDX_MASK))
    if raw & DESC_NS:
        names.append("NS")
    names.append("AP=%s" % format(raw >> DESC_AP_SHIFT & DESC_AP_MASK, "02b"))
    names.append("SH=%s" % SH_NAMES[raw >> DESC_SH_SHIFT & DESC_SH_MASK])
    for bit, label in ((DESC_AF, "AF"), (DESC_NG, "nG"), (DESC_GP, "GP"), (DESC_DBM, "DBM"),
                       (DESC_CONT, "CONT"), (DESC_PXN, "PXN"), (DESC_UXN, "UXN")):
        if raw & bit:
            names.append(label)
    return names


def walk(read_phys: PhysReader, root_pa, va: int, regs: Optional[dict] = None,
         pa_bits: Optional[int] = None) -> Walk:
    """Translate va with the EL1&0 stage-1 tables.  regs may hold ttbr0_el1, ttbr1_el1,
    tcr_el1, mair_el1, sctlr_el1.  root_pa: None (tables from the TTBRs), an int (the
    TTBR0 table; TTBR1 from regs) or a pair (ttbr0_table, ttbr1_table).  pa_bits is the
    CPU's physical address size (ID_AA64MMFR0_EL1.PARange) when known.  Never raises for
    bad tables or unreadable memory: stop_reason says what went wrong."""
    regs = normalize_regs(regs)
    cfg = _Config(regs, root_pa, pa_bits)
    va &= ADDRESS_MASK
    result = Walk(arch=ARCH, va=va)
    result.notes.extend(cfg.notes)
    region = cfg.regions[va >> TTBR_SELECT_BIT & 1]
    problem = region.config_problem()
    if problem:
        result.stop_reason = problem
        return result
    if not region.contains(va):
        result.stop_reason = ("non-canonical address: VA bits %d:%d must all equal bit %d "
                              "(%s, T%dSZ=%d)" % ((TOP_BYTE_SHIFT if region.tbi else
                                                   ADDRESS_BITS) - 1, region.va_bits,
                                                  TTBR_SELECT_BIT, region.name,
                                                  region.upper, region.tsz))
        return result
    problem = region.root_problem()
    if problem:
        result.stop_reason = problem
        return result

    table = region.root
    ap_table = 0
    uxn_table = pxn_table = False
    for level in range(region.start_level, LAST_LEVEL + 1):
        name = LEVEL_NAMES[level]
        shift = level_shift(level)
        bits = region.top_index_bits if level == region.start_level else INDEX_BITS
        index = va >> shift & ((1 << bits) - 1)
        entry_pa = table + index * ENTRY_BYTES
        try:
            raw = read_entry(read_phys, entry_pa)
        except Exception as err:  # noqa: BLE001 - any reader failure ends the walk
            result.levels.append(Level(name, table, index, entry_pa, None))
            result.stop_reason = "cannot read %s entry %d at %#x: %s" % (
                name, index, entry_pa, err)
            return result
        is_table = level < LAST_LEVEL and bool(raw & DESC_TABLE)
        entry = Level(name, table, index, entry_pa, raw, decode_flags(raw, level),
                      leaf=not is_table)
        result.levels.append(entry)
        where = "%s entry %d" % (name, index)
        if not raw & DESC_VALID:
            entry.leaf = False
            result.stop_reason = "%s invalid (translation fault)" % where
            if level > 0 and not is_table:  # bit 1 as a page (L3) or a block (L1, L2) has it
                note = kept_entry_note(where, raw, raw & cfg.addr_mask & ~((1 << shift) - 1))
                if note:
                    result.notes.append(note)
            return result
        if level == 0 and not is_table:
            entry.leaf = False
            result.stop_reason = ("%s: block descriptor not allowed at L0 with the 4 KiB "
                                  "granule (translation fault)" % where)
            return result
        if level == LAST_LEVEL and not raw & DESC_TABLE:
            entry.leaf = False
            result.stop_reason = "%s: reserved descriptor, bit 1 clear at L3 " \
                                 "(translation fault)" % where
            return result
        size = 1 << shift
        entry.output = raw & cfg.addr_mask
        if entry.leaf:
            entry.output &= ~(size - 1)
        if raw & cfg.too_wide:
            result.stop_reason = ("%s: output address %#x wider than the %d-bit PA size "
                                  "(address size fault)%s"
                                  % (where, entry.output, cfg.pa_bits, kva_hint(raw)))
            return result
        if is_table:
            ap_table |= raw >> DESC_AP_TABLE_SHIFT & DESC_AP_MASK
            uxn_table = uxn_table or bool(raw & DESC_UXN_TABLE)
            pxn_table = pxn_table or bool(raw & DESC_PXN_TABLE)
            table = entry.output
            continue
        if not raw & DESC_AF and not cfg.ha:
            result.stop_reason = ("%s: AF clear, the first access takes an access flag "
                                  "fault (TCR_EL1.HA=0)" % where)
            return result
        result.perms = cfg.perms(raw, ap_table, uxn_table, pxn_table)
        result.page_size = size
        result.pa = entry.output | (va & (size - 1))
        if result.perms.user and result.perms.write and not result.perms.priv_execute \
                and not raw & DESC_PXN and not pxn_table and not cfg.wxn:
            result.notes.append("writable at EL0, so never executable at EL1 (implicit PXN)")
        return result
    raise AssertionError("unreachable: L3 always ends the walk")


def leaves(read_phys: PhysReader, root_pa, regs: Optional[dict] = None,
           problem: Optional[Callable[[str], None]] = None, pa_bits: Optional[int] = None,
           held_mask: int = 0):
    """Every valid leaf of both ranges (TTBR0 then TTBR1, so VA increases) as (va, pa, size,
    perms): the caller may stop at any leaf, and no table is read before the leaves ahead of it
    are asked for.  Ranges without a table, disabled or unsupported ranges, unreadable tables,
    invalid descriptors at L0/L3 that would fault, address size faults and AF-clear leaves
    (without TCR_EL1.HA) are skipped and reported through problem(message) when given.  root_pa
    as in walk().  With @p held_mask (the kernel's fact held_entry_bit: Pagoda's software bit of
    a held leaf), an invalid leaf with that bit set (a PROT_NONE page whose frame the kernel
    keeps) is yielded too, with Perms(read=False, ..., cache="held"): the MMU ignores it, the
    kernel's records do not; and so is an AF-clear leaf (lab 7's clock clears AF, and the next use
    faults to set it: the page keeps its frame)."""
    regs = normalize_regs(regs)
    cfg = _Config(regs, root_pa, pa_bits)
    cfg.held_mask = held_mask
    report = problem or (lambda message: None)
    for region in cfg.regions:
        why = region.problem()
        if why:
            if region.root is not None or region.disabled:
                report(why)
            continue
        yield from _Dumper(read_phys, cfg, report, region).table(
            region.start_level, region.root, region.base, 0, False, False)


class _Dumper:
    """Recursive descent over one range's tree, a generator of leaves."""

    def __init__(self, read_phys, cfg: _Config, report, region: Region):
        self.read_phys = read_phys
        self.cfg = cfg
        self.report = report
        self.region = region

    def table(self, level: int, table_pa: int, va_base: int, ap_table: int,
              uxn_table: bool, pxn_table: bool) -> None:
        name = LEVEL_NAMES[level]
        try:
            entries = read_table(self.read_phys, table_pa)
        except Exception as err:  # noqa: BLE001
            self.report("cannot read %s table at %#x: %s" % (name, table_pa, err))
            return
        cfg = self.cfg
        shift = level_shift(level)
        size = 1 << shift
        count = self.region.top_entries if level == self.region.start_level \
            else len(entries)
        leaf_addr = cfg.addr_mask & ~(size - 1)
        perms = cfg.perms
        held_mask = getattr(cfg, "held_mask", 0)
        for index in range(count):
            raw = entries[index]
            if not raw & DESC_VALID:
                if held_mask and raw & held_mask and level > 0 and (level == LAST_LEVEL or not raw & DESC_TABLE):
                    user = bool((raw >> DESC_AP_SHIFT) & 1)   # AP[1]: EL0 may access
                    yield (va_base + (index << shift), raw & leaf_addr, size,
                           Perms(False, False, False, user, False, "held"))
                continue
            va = va_base + (index << shift)
            is_table = raw & DESC_TABLE
            if level < LAST_LEVEL and is_table:
                if raw & cfg.too_wide:
                    self.report("va %#x: %s entry %d: table address beyond the PA size"
                                % (va, name, index))
                    continue
                yield from self.table(level + 1, raw & cfg.addr_mask, va,
                                      ap_table | (raw >> DESC_AP_TABLE_SHIFT & DESC_AP_MASK),
                                      uxn_table or bool(raw & DESC_UXN_TABLE),
                                      pxn_table or bool(raw & DESC_PXN_TABLE))
                continue
            if level == 0 or (level == LAST_LEVEL and not is_table):
                self.report("va %#x: %s entry %d: invalid descriptor type" % (va, name, index))
                continue
            if raw & cfg.too_wide:
                self.report("va %#x: %s entry %d: output address beyond the PA size"
                            % (va, name, index))
                continue
            if not raw & DESC_AF and not cfg.ha and not held_mask:
                self.report("va %#x: %s entry %d: AF clear (access flag fault)"
                            % (va, name, index))
                continue
            yield va, raw & leaf_addr, size, perms(raw, ap_table, uxn_table, pxn_table)


# ---------------------------------------------------------------------------------------
# The top-level table on its own (pt-top, root checks): L0 of a 48-bit, 4 KiB-granule range.
# ---------------------------------------------------------------------------------------
TOP_LEVEL_NAME = LEVEL_NAMES[0]
# A TTBR0 root holds only the lower range; the kernel's half is TTBR1's own tree.
KERNEL_HALF_FIRST_INDEX = None


def top_level_entry(raw: int, pa_bits: int = OA_BITS):
    """(valid, next table PA or None, flags, problem or None) of one L0 descriptor."""
    if not raw & DESC_VALID:
        return False, None, [], None
    flags = decode_flags(raw, 0)
    if not raw & DESC_TABLE:
        return True, None, flags, "block descriptor at L0 (translation fault)"
    output = raw & bit_mask(PAGE_SHIFT, OA_BITS - 1)
    if pa_bits < OA_BITS and raw & bit_mask(pa_bits, OA_BITS - 1):
        return True, output, flags, ("table address beyond the %d-bit PA size%s"
                                     % (pa_bits, kva_hint(raw)))
    return True, output, flags, None
