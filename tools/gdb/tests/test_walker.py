"""Walker, dump and diff tests against synthetic page tables (see ptbuild.py)."""

import struct
import time

import pytest

from pagoda_pt.model import CHANGED, ONLY_A, ONLY_B, Perms, Run
from pagoda_pt.walker import diff_runs, dump, walk
from ptbuild import (AF, AP_EL0, AP_RO, APT_NO_EL0, APT_NO_WRITE, BLOCK_DESC, CR0_WP,
                     CR4_PCIDE, EFER_NXE, NX, P, PAGE_DESC, PAT_4K, PAT_HUGE, PCD, PS, PWT, PXN,
                     PXN_TABLE, RW, SH_INNER, TCR_48BIT_4K, TCR_EPD1, TCR_HA, TCR_TBI0, US,
                     UXN, UXN_TABLE, VALID, ArmTables, GiB, KiB, MiB, PhysMem, X86Tables,
                     attr_index)

X86 = "x86_64"
ARM = "aarch64"
HIGH = 0xFFFF_8000_0000_0000        # x86_64 start of the upper (kernel) half
ARM_HIGH = 0xFFFF_0000_0000_0000    # AArch64 TTBR1 range with T1SZ=16


def diff(arch, mem, root_a, root_b, regs=None):
    """The two trees' differences, as GDB's pt-diff computes them (diff_runs of two dumps)."""
    return diff_runs(dump(arch, mem, root_a, regs), dump(arch, mem, root_b, regs))


@pytest.fixture
def mem():
    return PhysMem()


@pytest.fixture
def x86(mem):
    return X86Tables(mem)


def idx(va, shift):
    return (va >> shift) & 511


# ====================================================================== x86_64 walk


def test_x86_4k_page_levels_and_pa(mem, x86):
    va = 0x0000_1234_5678_9000
    x86.map(va, 0x0ABC_D000, flags=P | RW | US)
    w = walk(X86, mem, x86.root, va + 0x123)
    assert w.stop_reason is None
    assert w.pa == 0x0ABC_D123 and w.page_size == 4 * KiB
    assert [lv.name for lv in w.levels] == ["PML4", "PDPT", "PD", "PT"]
    assert [lv.index for lv in w.levels] == [idx(va, s) for s in (39, 30, 21, 12)]
    assert [lv.leaf for lv in w.levels] == [False, False, False, True]
    assert w.levels[0].table_pa == x86.root
    for level in w.levels:
        assert level.entry_pa == level.table_pa + 8 * level.index
        assert level.raw == mem.read64(level.entry_pa)
    for upper, lower in zip(w.levels, w.levels[1:]):
        assert upper.output == lower.table_pa
    assert w.levels[-1].output == 0x0ABC_D000
    assert w.levels[-1].flags == ["P", "RW", "US"]
    assert w.perms == Perms(read=True, write=True, execute=True, user=True,
                            priv_execute=True, cache="WB")


def test_x86_2m_page(mem, x86):
    va = 0x4060_0000
    x86.map(va, 0x8000_0000, size=2 * MiB, flags=P | RW)
    w = walk(X86, mem, x86.root, va + 0x1_2345)
    assert w.pa == 0x8001_2345 and w.page_size == 2 * MiB
    assert [lv.name for lv in w.levels] == ["PML4", "PDPT", "PD"]
    assert w.levels[-1].leaf and "PS" in w.levels[-1].flags
    assert w.levels[-1].output == 0x8000_0000


def test_x86_1g_page(mem, x86):
    va = 0x7F_C000_0000
    x86.map(va, 0x1_4000_0000, size=1 * GiB, flags=P | RW | US)
    w = walk(X86, mem, x86.root, va + 0x2345_6789)
    assert w.pa == 0x1_6345_6789 and w.page_size == 1 * GiB
    assert [lv.name for lv in w.levels] == ["PML4", "PDPT"]
    assert w.levels[-1].leaf


@pytest.mark.parametrize("level, depth", [("PML4", 1), ("PDPT", 2), ("PD", 3), ("PT", 4)])
def test_x86_not_present_at_each_level(mem, x86, level, depth):
    va = 0x0000_0012_3456_7000
    x86.map(va, 0x20_0000)
    x86.edit(va, level, clear_bits=P)
    w = walk(X86, mem, x86.root, va)
    shift = dict((("PML4", 39), ("PDPT", 30), ("PD", 21), ("PT", 12)))[level]
    assert w.pa is None and w.perms is None
    assert w.stop_reason == "%s entry %d not present" % (level, idx(va, shift))
    assert len(w.levels) == depth
    assert w.levels[-1].name == level and not w.levels[-1].leaf


def test_x86_a_held_leaf_is_not_mapped_and_its_frame_is_noted(mem, x86):
    # Pagoda's PROT_NONE page: P clear, a software bit (9) set, frame and attributes kept.
    va = 0x10_0000_0000
    x86.map(va, 0x7FF_B000, flags=P | US | NX)
    x86.edit(va, "PT", clear_bits=P, set_bits=1 << 9)
    w = walk(X86, mem, x86.root, va + 8)
    assert w.pa is None and w.perms is None, "the MMU's view: not mapped"
    assert w.stop_reason == "PT entry 0 not present"
    assert any("frame 0x7ffb000" in note and "held" in note for note in w.notes), w.notes
    assert dump(X86, mem, x86.root) == [], "a held page is not an accessible mapping"
    x86.edit(va, "PT", clear_bits=~0)
    assert walk(X86, mem, x86.root, va).notes == [], "a zero entry has nothing to note"


def test_x86_empty_tree(mem, x86):
    w = walk(X86, mem, x86.root, 0x1000)
    assert w.stop_reason == "PML4 entry 0 not present"


def test_x86_rw_cleared_at_pd_makes_page_read_only(mem, x86):
    va = 0x40_0000
    x86.map(va, 0x30_0000, flags=P | RW | US)
    assert walk(X86, mem, x86.root, va).perms.write
    x86.edit(va, "PD", clear_bits=RW)
    w = walk(X86, mem, x86.root, va)
    assert w.pa == 0x30_0000
    assert not w.perms.write and w.perms.user and w.perms.execute


def test_x86_nx_at_pml4_makes_everything_below_non_exec(mem, x86):
    x86.map(0x40_0000, 0x30_0000, flags=P | US)
    x86.map(0x60_0000, 0x40_0000, size=2 * MiB, flags=P | US)
    x86.edit(0x40_0000, "PML4", set_bits=NX)
    for va in (0x40_0000, 0x60_0000):
        w = walk(X86, mem, x86.root, va)
        assert w.pa is not None and not w.perms.execute and not w.perms.priv_execute
    assert "NX" in walk(X86, mem, x86.root, 0x40_0000).levels[0].flags


def test_x86_us_missing_at_one_level_means_supervisor(mem, x86):
    va = 0x40_0000
    x86.map(va, 0x30_0000, flags=P | RW | US)
    x86.edit(va, "PDPT", clear_bits=US)
    w = walk(X86, mem, x86.root, va)
    assert not w.perms.user and w.perms.write


def test_x86_nxe_off_never_marks_non_exec(mem, x86):
    va = 0x40_0000
    x86.map(va, 0x30_0000, flags=P | RW)
    w = walk(X86, mem, x86.root, va, regs={"efer": 0})
    assert w.perms.execute
    assert any("NXE=0" in note for note in w.notes)


def test_x86_nx_bit_with_nxe_off_is_reserved(mem, x86):
    # With EFER.NXE=0 the XD bit is not an execute-disable bit: it is reserved, and the
    # CPU raises #PF with RSVD=1.  The walker reports that rather than "non-exec".
    va = 0x40_0000
    x86.map(va, 0x30_0000, flags=P | RW | NX)
    assert not walk(X86, mem, x86.root, va, regs={"EFER": EFER_NXE}).perms.execute
    w = walk(X86, mem, x86.root, va, regs={"efer": 0})
    assert w.pa is None
    assert w.stop_reason.startswith("reserved bit set in PT entry 0:")
    assert "bit 63" in w.stop_reason


def test_x86_reserved_bit_above_maxphyaddr(mem, x86):
    va = 0x40_0000
    x86.map(va, 0x30_0000)
    x86.edit(va, "PD", set_bits=1 << 45)   # next-table address bit 45
    assert walk(X86, mem, x86.root, va, pa_bits=52).stop_reason.startswith("cannot read")
    w = walk(X86, mem, x86.root, va, pa_bits=40)
    assert w.stop_reason == ("reserved bit set in PD entry 2: bit 45 above MAXPHYADDR=40")
    assert len(w.levels) == 3


def test_x86_ps_in_pml4_is_reserved(mem, x86):
    va = 0x40_0000
    x86.map(va, 0x30_0000)
    x86.edit(va, "PML4", set_bits=PS)
    w = walk(X86, mem, x86.root, va)
    assert w.stop_reason.startswith("reserved bit set in PML4 entry 0:")
    assert "bit 7" in w.stop_reason


def test_x86_huge_page_low_address_bits_reserved(mem, x86):
    va = 0x4000_0000
    x86.map(va, 0x8000_0000, size=2 * MiB)
    x86.edit(va, "PD", set_bits=1 << 13)    # inside the 2 MiB frame: reserved
    w = walk(X86, mem, x86.root, va)
    assert w.stop_reason.startswith("reserved bit set in PD entry 0: bit 13")
    x86.edit(va, "PD", clear_bits=1 << 13, set_bits=PAT_HUGE)  # bit 12 = PAT: fine
    w = walk(X86, mem, x86.root, va)
    assert w.pa == 0x8000_0000 and "PAT" in w.levels[-1].flags


def test_x86_pat_bit7_of_pte_is_not_ps(mem, x86):
    va = 0x40_0000
    x86.map(va, 0x30_0000, flags=P | RW | PAT_4K | PCD | PWT)
    w = walk(X86, mem, x86.root, va)
    assert w.page_size == 4 * KiB
    assert "PAT" in w.levels[-1].flags and "PS" not in w.levels[-1].flags
    assert w.perms.cache == "UC"          # PAT entry 7 of the power-on PAT
    x86.edit(va, "PT", clear_bits=PAT_4K | PWT)
    assert walk(X86, mem, x86.root, va).perms.cache == "UC-"
    # A reprogrammed PAT: entry 4 (PAT=1, PCD=0, PWT=0) = WC (1), entry 0 = WB (6).
    regs = {"pat": 0x0000_0001_0000_0006}
    x86.edit(va, "PT", clear_bits=PCD, set_bits=PAT_4K)
    assert walk(X86, mem, x86.root, va, regs=regs).perms.cache == "WC"
    x86.map(0x4000_0000, 0x8000_0000, size=2 * MiB, flags=P | PAT_HUGE)
    assert walk(X86, mem, x86.root, 0x4000_0000, regs=regs).perms.cache == "WC"
    assert walk(X86, mem, x86.root, 0x4000_0000).perms.cache == "WB"
    assert [r.perms.cache for r in dump(X86, mem, x86.root, regs=regs)] == ["WC", "WC"]


@pytest.mark.parametrize("va", [0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_F000,
                                0x0001_0000_0000_0000, 0x8000_0000_0000_0000])
def test_x86_non_canonical(mem, x86, va):
    w = walk(X86, mem, x86.root, va)
    assert w.stop_reason.startswith("non-canonical address")
    assert w.levels == [] and mem.reads == 0


def test_x86_high_half(mem, x86):
    va = HIGH + 0x20_3000
    x86.map(va, 0x0020_3000, flags=P | RW)
    w = walk(X86, mem, x86.root, va + 8)
    assert w.levels[0].index == 256
    assert w.pa == 0x20_3008
    assert not w.perms.user
    assert walk(X86, mem, x86.root, 0xFFFF_FFFF_FFFF_F000).stop_reason == \
        "PML4 entry 511 not present"


def test_x86_root_from_cr3_ignores_pcid(mem, x86):
    x86.map(0x40_0000, 0x30_0000)
    regs = {"cr3": x86.root | 0x5, "cr4": CR4_PCIDE}
    assert walk(X86, mem, None, 0x40_0000, regs=regs).pa == 0x30_0000
    assert "no root" in walk(X86, mem, None, 0x40_0000).stop_reason


def test_x86_unreadable_table(mem, x86):
    va = 0x40_0000
    x86.map(va, 0x30_0000)
    x86.edit(va, "PDPT", value=0x7700_0000 | P | RW)   # no memory there
    w = walk(X86, mem, x86.root, va)
    assert w.stop_reason.startswith("cannot read PD entry 2 at 0x77000010")
    assert w.levels[-1].raw is None


def test_x86_wp_and_la57(mem, x86):
    x86.map(0x40_0000, 0x30_0000)
    w = walk(X86, mem, x86.root, 0x40_0000, regs={"cr0": 0x8000_0001})
    assert w.pa == 0x30_0000 and any("CR0.WP=0" in note for note in w.notes)
    w = walk(X86, mem, x86.root, 0x40_0000, regs={"cr0": 0x8000_0001 | CR0_WP})
    assert not any("WP" in note for note in w.notes)
    w = walk(X86, mem, x86.root, 0x40_0000, regs={"cr4": 1 << 12})
    assert "LA57" in w.stop_reason


def test_unknown_arch(mem):
    with pytest.raises(ValueError):
        walk("riscv64", mem, 0, 0)
    assert walk("i386:x86-64", mem, X86Tables(mem).root, 0).stop_reason  # GDB's name


# ====================================================================== x86_64 dump


def runs_tuple(runs):
    return [(r.va_start, r.va_end, r.pa_start, r.page_size) for r in runs]


def test_dump_merges_contiguous_pages(mem, x86):
    for i in range(3):
        x86.map(0x40_0000 + i * 4 * KiB, 0x10_0000 + i * 4 * KiB, flags=P | RW)
    runs = dump(X86, mem, x86.root)
    assert runs_tuple(runs) == [(0x40_0000, 0x40_3000, 0x10_0000, 4 * KiB)]
    assert runs[0].size == 3 * 4 * KiB and runs[0].pa_end == 0x10_3000


def test_dump_pa_gap_and_perm_change_split(mem, x86):
    x86.map(0x40_0000, 0x10_0000, flags=P | RW)
    x86.map(0x40_1000, 0x10_1000, flags=P | RW)
    x86.map(0x40_2000, 0x50_0000, flags=P | RW)           # PA gap
    x86.map(0x40_3000, 0x50_1000, flags=P | RW | NX)      # perms change
    x86.map(0x40_5000, 0x50_3000, flags=P | RW | NX)      # VA gap
    runs = dump(X86, mem, x86.root)
    assert runs_tuple(runs) == [(0x40_0000, 0x40_2000, 0x10_0000, 4 * KiB),
                                (0x40_2000, 0x40_3000, 0x50_0000, 4 * KiB),
                                (0x40_3000, 0x40_4000, 0x50_1000, 4 * KiB),
                                (0x40_5000, 0x40_6000, 0x50_3000, 4 * KiB)]
    assert runs[1].perms.execute and not runs[2].perms.execute


def test_dump_merges_across_table_boundaries(mem, x86):
    # Last page of one PT and first page of the next PT, and across PD/PDPT boundaries.
    for va in (0x3F_F000, 0x40_0000, 0x3FFF_F000, 0x4000_0000):
        x86.map(va, va + 0x1_0000_0000, flags=P | RW)
    runs = dump(X86, mem, x86.root)
    assert runs_tuple(runs) == [(0x3F_F000, 0x40_1000, 0x1_003F_F000, 4 * KiB),
                                (0x3FFF_F000, 0x4000_1000, 0x1_3FFF_F000, 4 * KiB)]


def test_dump_huge_pages(mem, x86):
    x86.map(0x4000_0000, 0x8000_0000, size=2 * MiB, flags=P | RW)
    x86.map(0x4020_0000, 0x8020_0000, size=2 * MiB, flags=P | RW)
    x86.map(0x4040_0000, 0x8040_0000, flags=P | RW)          # 4K right after: own run
    x86.map(0x80_0000_0000, 0x1_0000_0000, size=1 * GiB, flags=P | RW | US)
    runs = dump(X86, mem, x86.root)
    assert runs_tuple(runs) == [(0x4000_0000, 0x4040_0000, 0x8000_0000, 2 * MiB),
                                (0x4040_0000, 0x4040_1000, 0x8040_0000, 4 * KiB),
                                (0x80_0000_0000, 0x80_4000_0000, 0x1_0000_0000, 1 * GiB)]
    assert runs[2].perms.user and not runs[0].perms.user


def test_dump_high_half_is_sign_extended_and_sorted(mem, x86):
    x86.map(HIGH, 0x0, size=2 * MiB, flags=P | RW)
    x86.map(0xFFFF_FFFF_FFFF_F000, 0x9000, flags=P)
    x86.map(0x1000, 0x5000, flags=P | US)
    runs = dump(X86, mem, x86.root)
    assert [r.va_start for r in runs] == [0x1000, HIGH, 0xFFFF_FFFF_FFFF_F000]
    assert runs[-1].va_end == 1 << 64


def test_dump_inherits_table_permissions(mem, x86):
    x86.map(0x40_0000, 0x10_0000, flags=P | RW | US)
    x86.map(0x40_1000, 0x10_1000, flags=P | RW | US)
    x86.edit(0x40_0000, "PD", clear_bits=RW)
    x86.edit(0x40_0000, "PML4", set_bits=NX)
    (run,) = dump(X86, mem, x86.root)
    assert run.size == 8 * KiB
    assert run.perms.user and not run.perms.write and not run.perms.execute


def test_dump_user_and_kernel_filters(mem, x86):
    x86.map(0x40_0000, 0x10_0000, flags=P | RW | US)
    x86.map(HIGH, 0x20_0000, flags=P | RW)
    user = dump(X86, mem, x86.root, user_only=True)
    kernel = dump(X86, mem, x86.root, kernel_only=True)
    assert [r.va_start for r in user] == [0x40_0000]
    assert [r.va_start for r in kernel] == [HIGH]
    with pytest.raises(ValueError):
        dump(X86, mem, x86.root, user_only=True, kernel_only=True)


def test_dump_skips_and_reports_reserved_entries(mem, x86):
    x86.map(0x40_0000, 0x10_0000)
    x86.map(0x40_1000, 0x10_1000 | (1 << 45))
    x86.map(0x40_2000, 0x10_2000 | NX)
    problems = []
    runs = dump(X86, mem, x86.root, regs={"efer": 0}, pa_bits=40, problems=problems)
    assert runs_tuple(runs) == [(0x40_0000, 0x40_1000, 0x10_0000, 4 * KiB)]
    assert len(problems) == 2
    assert "0x401000" in problems[0] and "MAXPHYADDR=40" in problems[0]
    assert "bit 63" in problems[1]


def test_dump_skips_reserved_structure_bits(mem, x86):
    x86.map(0x40_0000, 0x10_0000)                                   # PML4 entry 0
    x86.map(0x80_0000_0000, 0x20_0000)                              # PML4 entry 1
    x86.map(0x4000_0000, 0x8000_0000, size=2 * MiB)                 # 2 MiB, PD
    x86.map(0xC000_0000, 0x1_0000_0000, size=1 * GiB)               # 1 GiB, PDPT
    x86.map(0x1_0000_0000, 0x2_0000_0000, size=1 * GiB)
    x86.edit(0x80_0000_0000, "PML4", set_bits=PS)
    x86.edit(0x4000_0000, "PD", set_bits=1 << 20)
    x86.edit(0xC000_0000, "PDPT", set_bits=1 << 29)
    problems = []
    runs = dump(X86, mem, x86.root, problems=problems)
    assert [r.va_start for r in runs] == [0x40_0000, 0x1_0000_0000]
    assert ["PD entry 0: bit 20" in problems[0], "PDPT entry 3: bit 29" in problems[1],
            "PML4 entry 1: bit 7" in problems[2]] == [True, True, True]


def test_dump_reports_unreadable_table(mem, x86):
    x86.map(0x40_0000, 0x10_0000)
    x86.map(0x4000_0000, 0x10_0000)
    x86.edit(0x4000_0000, "PDPT", value=0x7700_0000 | P | RW)
    problems = []
    runs = dump(X86, mem, x86.root, problems=problems)
    assert len(runs) == 1
    assert problems == ["cannot read PD table at 0x77000000: no memory at 0x77000000"]


def test_dump_reads_each_table_once(mem, x86):
    for i in range(8):
        x86.map(0x40_0000 + i * 4 * KiB, 0x10_0000 + i * 4 * KiB)
    mem.reads = 0
    dump(X86, mem, x86.root)
    assert mem.reads == 4


def test_dump_matches_walk(mem, x86):
    """Every page inside a run translates the way the run says, per walk()."""
    x86.map(0x40_0000, 0x10_0000, flags=P | RW)
    x86.map(0x40_1000, 0x10_1000, flags=P | RW)
    x86.map(0x40_3000, 0x77_0000, flags=P | US)
    x86.map(HIGH + 0x20_0000, 0x40_0000, size=2 * MiB, flags=P | RW | NX)
    for run in dump(X86, mem, x86.root):
        for va in range(run.va_start, run.va_end, 4 * KiB):
            w = walk(X86, mem, x86.root, va)
            assert w.pa == run.pa_start + (va - run.va_start)
            assert w.perms == run.perms and w.page_size == run.page_size


def build_one_gib(mem, va_base, pa_base, hole_index):
    """1 GiB of 4 KiB pages at va_base -> pa_base (PA contiguous), built table by table.
    PTE number hole_index (counting from va_base) is left non-present."""
    root = mem.alloc()
    pdpt, pd = mem.alloc(), mem.alloc()
    mem.write64(root + idx(va_base, 39) * 8, pdpt | P | RW)
    mem.write64(pdpt + idx(va_base, 30) * 8, pd | P | RW)
    pd_entries = []
    for t in range(512):
        pt = mem.alloc()
        first = pa_base + t * 2 * MiB
        entries = [(first + i * 4 * KiB) | P | RW for i in range(512)]
        if t == hole_index // 512:
            entries[hole_index % 512] = 0
        mem.fill_table(pt, entries)
        pd_entries.append(pt | P | RW)
    mem.fill_table(pd, pd_entries)
    return root


def test_dump_one_gib_of_4k_pages(mem):
    va_base, pa_base, hole = HIGH + 0x4000_0000, 0x1_0000_0000, 100_000
    root = build_one_gib(mem, va_base, pa_base, hole)
    mem.reads = 0
    start = time.perf_counter()
    runs = dump(X86, mem, root)
    elapsed = time.perf_counter() - start
    print("\n1 GiB of 4 KiB pages (262143 PTEs): dump took %.3f s" % elapsed)
    hole_va = va_base + hole * 4 * KiB
    assert runs_tuple(runs) == [
        (va_base, hole_va, pa_base, 4 * KiB),
        (hole_va + 4 * KiB, va_base + 1 * GiB, pa_base + (hole + 1) * 4 * KiB, 4 * KiB)]
    assert mem.reads == 1 + 1 + 1 + 512
    assert sum(r.size for r in runs) == 1 * GiB - 4 * KiB


# ====================================================================== diff


def test_diff_identical(mem):
    a = X86Tables(mem)
    b = X86Tables(mem)
    for t in (a, b):
        t.map(0x40_0000, 0x10_0000)
    assert diff(X86, mem, a.root, b.root) == []


def test_diff_kinds(mem):
    a, b = X86Tables(mem), X86Tables(mem)
    both = [(0x40_0000, 0x10_0000, P | RW)]
    for t in (a, b):
        for va, pa, fl in both:
            t.map(va, pa, flags=fl)
    a.map(0x50_0000, 0x20_0000)                       # only in A (2 pages, merge)
    a.map(0x50_1000, 0x20_1000)
    b.map(0x60_0000, 0x30_0000)                       # only in B
    a.map(0x70_0000, 0x40_0000, flags=P | RW)         # different PA
    b.map(0x70_0000, 0x48_0000, flags=P | RW)
    a.map(0x80_0000, 0x50_0000, flags=P | RW)         # different perms
    b.map(0x80_0000, 0x50_0000, flags=P)
    result = diff(X86, mem, a.root, b.root)
    assert [(d.va_start, d.va_end, d.kind) for d in result] == [
        (0x50_0000, 0x50_2000, ONLY_A), (0x60_0000, 0x60_1000, ONLY_B),
        (0x70_0000, 0x70_1000, CHANGED), (0x80_0000, 0x80_1000, CHANGED)]
    assert result[0].a_pa == 0x20_0000 and result[0].b_pa is None
    assert result[1].a_perms is None and result[1].b_pa == 0x30_0000
    assert (result[2].a_pa, result[2].b_pa) == (0x40_0000, 0x48_0000)
    assert result[3].a_perms.write and not result[3].b_perms.write


def test_diff_ignores_page_size_only(mem):
    a, b = X86Tables(mem), X86Tables(mem)
    a.map(0x4000_0000, 0x8000_0000, size=2 * MiB, flags=P | RW)
    for i in range(512):
        b.map(0x4000_0000 + i * 4 * KiB, 0x8000_0000 + i * 4 * KiB, flags=P | RW)
    assert diff(X86, mem, a.root, b.root) == []
    b.edit(0x4010_0000, "PT", clear_bits=P)
    (only,) = diff(X86, mem, a.root, b.root)
    assert (only.va_start, only.kind, only.a_pa) == (0x4010_0000, ONLY_A, 0x8010_0000)


def test_diff_runs_partial_overlap():
    rw = Perms(True, True, False, False, False, "WB")
    a = [Run(0x1000, 0x5000, 0x10000, rw, 4096)]
    b = [Run(0x3000, 0x7000, 0x12000, rw, 4096)]
    result = diff_runs(a, b)
    assert [(d.va_start, d.va_end, d.kind) for d in result] == [
        (0x1000, 0x3000, ONLY_A), (0x5000, 0x7000, ONLY_B)]
    # A is contiguous across 0x2000, B jumps there: two CHANGED ranges, not one.
    b = [Run(0x1000, 0x2000, 0x50000, rw, 4096), Run(0x2000, 0x3000, 0x70000, rw, 4096)]
    assert [(d.va_start, d.b_pa) for d in diff_runs(a, b)] == [
        (0x1000, 0x50000), (0x2000, 0x70000), (0x3000, None)]
    assert [(d.va_start, d.a_pa) for d in diff_runs(b, a)] == [
        (0x1000, 0x50000), (0x2000, 0x70000), (0x3000, None)]
    b = [Run(0x3000, 0x7000, 0x99000, rw, 4096)]
    result = diff_runs(a, b)
    assert [(d.va_start, d.va_end, d.kind, d.a_pa, d.b_pa) for d in result] == [
        (0x1000, 0x3000, ONLY_A, 0x10000, None),
        (0x3000, 0x5000, CHANGED, 0x12000, 0x99000),
        (0x5000, 0x7000, ONLY_B, None, 0x9B000)]


# ====================================================================== AArch64

ARM_MAIR = 0x04 | (0xFF << 8)      # attr0 Device-nGnRE, attr1 Normal write-back


@pytest.fixture
def arm(mem):
    """A TTBR0 (user) tree, a TTBR1 (kernel) tree and the matching registers."""
    low, high = ArmTables(mem), ArmTables(mem)
    regs = {"TTBR0_EL1": low.root | (5 << 48), "TTBR1_EL1": high.root,
            "TCR_EL1": TCR_48BIT_4K, "MAIR_EL1": ARM_MAIR}
    return low, high, regs


def test_arm_ttbr0_4k_page(mem, arm):
    low, _, regs = arm
    va = 0x0000_0040_1234_5000
    low.map(va, 0x8765_4000, attrs=AF | SH_INNER | AP_EL0 | UXN | attr_index(1))
    w = walk(ARM, mem, None, va + 0x10, regs=regs)
    assert w.stop_reason is None
    assert w.pa == 0x8765_4010 and w.page_size == 4 * KiB
    assert [lv.name for lv in w.levels] == ["L0", "L1", "L2", "L3"]
    assert w.levels[0].table_pa == low.root            # ASID bits stripped
    assert [lv.index for lv in w.levels] == [idx(va, s) for s in (39, 30, 21, 12)]
    assert w.levels[0].flags == ["VALID", "TABLE"]
    assert w.levels[-1].flags == ["VALID", "PAGE", "AttrIndx=1", "AP=01", "SH=ISH", "AF",
                                  "UXN"]
    p = w.perms
    assert p.user and p.write and not p.execute and not p.priv_execute
    assert p.cache == "Normal-WB ISH"
    assert any("implicit PXN" in note for note in w.notes)


def test_arm_ttbr1_4k_page_kernel(mem, arm):
    _, high, regs = arm
    va = ARM_HIGH + 0x8_0000
    high.map(va, 0x4008_0000, attrs=AF | SH_INNER | UXN | attr_index(1))   # AP=00
    w = walk(ARM, mem, None, va, regs=regs)
    assert w.pa == 0x4008_0000
    assert w.levels[0].table_pa == high.root
    p = w.perms
    assert not p.user and p.write and p.execute and p.priv_execute


def test_arm_2m_and_1g_blocks(mem, arm):
    _, high, regs = arm
    high.map(ARM_HIGH + 0x20_0000, 0x4020_0000, size=2 * MiB, attrs=AF | PXN | attr_index(0))
    high.map(ARM_HIGH + 0x4000_0000, 0x8000_0000, size=1 * GiB)
    w = walk(ARM, mem, None, ARM_HIGH + 0x21_2345, regs=regs)
    assert w.pa == 0x4021_2345 and w.page_size == 2 * MiB
    assert [lv.name for lv in w.levels] == ["L0", "L1", "L2"]
    assert "BLOCK" in w.levels[-1].flags and "PXN" in w.levels[-1].flags
    assert not w.perms.execute and w.perms.cache == "Device-nGnRE"
    w = walk(ARM, mem, None, ARM_HIGH + 0x7FFF_FFFF, regs=regs)
    assert w.pa == 0xBFFF_FFFF and w.page_size == 1 * GiB and len(w.levels) == 2


@pytest.mark.parametrize("ap, user, write", [(0, False, True), (AP_EL0, True, True),
                                             (AP_RO, False, False),
                                             (AP_RO | AP_EL0, True, False)])
def test_arm_ap_decoding(mem, arm, ap, user, write):
    low, _, regs = arm
    low.map(0x40_0000, 0x10_0000, attrs=AF | ap)
    w = walk(ARM, mem, None, 0x40_0000, regs=regs)
    assert (w.perms.user, w.perms.write) == (user, write)
    assert "AP=%d%d" % (bool(ap & AP_RO), bool(ap & AP_EL0)) in w.levels[-1].flags
    # EL0-writable pages are never kernel-executable; the others are unless PXN.
    assert w.perms.priv_execute == (not (user and write))


@pytest.mark.parametrize("bits, execute, priv_execute", [
    (AP_RO | AP_EL0, True, True), (AP_RO | AP_EL0 | UXN, False, True),
    (AP_RO | AP_EL0 | PXN, True, False), (AP_RO | PXN, False, False),
    (AP_RO | UXN, True, True)])
def test_arm_uxn_pxn(mem, arm, bits, execute, priv_execute):
    low, _, regs = arm
    low.map(0x40_0000, 0x10_0000, attrs=AF | bits)
    p = walk(ARM, mem, None, 0x40_0000, regs=regs).perms
    assert (p.execute, p.priv_execute) == (execute, priv_execute)


def test_arm_table_limits(mem, arm):
    low, _, regs = arm
    low.map(0x40_0000, 0x10_0000, attrs=AF | AP_EL0)
    low.edit(0x40_0000, 1, set_bits=APT_NO_WRITE | UXN_TABLE)
    w = walk(ARM, mem, None, 0x40_0000, regs=regs)
    assert w.perms.user and not w.perms.write and not w.perms.execute
    assert "APT=10" in w.levels[1].flags and "UXNT" in w.levels[1].flags
    (run,) = dump(ARM, mem, None, regs=regs)
    assert run.perms == w.perms
    low.edit(0x40_0000, 0, set_bits=APT_NO_EL0 | PXN_TABLE)
    w = walk(ARM, mem, None, 0x40_0000, regs=regs)
    assert not w.perms.user and not w.perms.execute
    (run,) = dump(ARM, mem, None, regs=regs)
    assert run.perms == w.perms


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_arm_invalid_descriptor(mem, arm, level):
    low, _, regs = arm
    va = 0x12_3456_7000
    low.map(va, 0x10_0000)
    low.edit(va, level, clear_bits=VALID)
    w = walk(ARM, mem, None, va, regs=regs)
    shift = (39, 30, 21, 12)[level]
    assert w.stop_reason == "L%d entry %d invalid (translation fault)" % (level,
                                                                          idx(va, shift))
    assert len(w.levels) == level + 1 and w.pa is None


def test_arm_a_held_page_is_invalid_and_its_frame_is_noted(mem, arm):
    # Pagoda's PROT_NONE page: bit 0 clear, a software bit (55) set, frame and attributes kept.
    low, _, regs = arm
    va = 0x10_0000_0000
    low.map(va, 0x47FF_B000)
    low.edit(va, 3, clear_bits=VALID, set_bits=1 << 55)
    w = walk(ARM, mem, None, va, regs=regs)
    assert w.pa is None and w.stop_reason == "L3 entry 0 invalid (translation fault)"
    assert any("frame 0x47ffb000" in note and "held" in note for note in w.notes), w.notes
    assert dump(ARM, mem, None, regs=regs) == []


def test_arm_bad_descriptor_types(mem, arm):
    low, _, regs = arm
    low.map(0x40_0000, 0x10_0000)
    low.edit(0x40_0000, 3, clear_bits=2)                  # "block" at L3
    w = walk(ARM, mem, None, 0x40_0000, regs=regs)
    assert "reserved descriptor" in w.stop_reason and w.stop_reason.startswith("L3 entry 0")
    low.edit(0x40_0000, 0, value=0x8000_0000 | BLOCK_DESC | AF)   # block at L0
    w = walk(ARM, mem, None, 0x40_0000, regs=regs)
    assert "block descriptor not allowed at L0" in w.stop_reason


def test_arm_access_flag(mem, arm):
    low, _, regs = arm
    low.map(0x40_0000, 0x10_0000, attrs=SH_INNER)     # AF clear
    w = walk(ARM, mem, None, 0x40_0000, regs=regs)
    assert w.pa is None and "AF clear" in w.stop_reason
    regs = dict(regs, TCR_EL1=TCR_48BIT_4K | TCR_HA)
    assert walk(ARM, mem, None, 0x40_0000, regs=regs).pa == 0x10_0000


@pytest.mark.parametrize("va", [0x0001_0000_0000_0000, 0xFF7F_0000_0000_0000,
                                0x00FF_FFFF_FFFF_F000, 0x7FFF_0000_0000_0000])
def test_arm_non_canonical(mem, arm, va):
    _, _, regs = arm
    w = walk(ARM, mem, None, va, regs=regs)
    assert w.stop_reason.startswith("non-canonical address") and w.levels == []


def test_arm_top_byte_ignore(mem, arm):
    low, _, regs = arm
    low.map(0x40_0000, 0x10_0000)
    tagged = 0x5A00_0000_0040_0000
    assert walk(ARM, mem, None, tagged, regs=regs).stop_reason.startswith("non-canonical")
    regs = dict(regs, TCR_EL1=TCR_48BIT_4K | TCR_TBI0)
    assert walk(ARM, mem, None, tagged, regs=regs).pa == 0x10_0000
    # Bit 55, not bit 63, selects TTBR1: a tag with bit 63 clear still goes to TTBR1.
    _, high, _ = arm
    high.map(ARM_HIGH + 0x1000, 0x20_0000)
    regs = dict(regs, TCR_EL1=TCR_48BIT_4K | (1 << 38))   # TBI1
    w = walk(ARM, mem, None, 0x5AFF_0000_0000_1000, regs=regs)
    assert w.pa == 0x20_0000 and w.levels[0].table_pa == high.root


def test_arm_root_selection(mem, arm):
    low, high, regs = arm
    low.map(0x40_0000, 0x10_0000)
    high.map(ARM_HIGH, 0x20_0000)
    # An int root is the TTBR0 table; TTBR1 still comes from regs (or is missing).
    assert walk(ARM, mem, low.root, 0x40_0000).pa == 0x10_0000
    w = walk(ARM, mem, low.root, ARM_HIGH)
    assert w.stop_reason == "VA is in the TTBR1_EL1 range but no TTBR1_EL1 table was given"
    assert walk(ARM, mem, low.root, ARM_HIGH, regs=regs).pa == 0x20_0000
    assert walk(ARM, mem, (None, high.root), ARM_HIGH).pa == 0x20_0000
    assert any("TCR_EL1 not given" in n for n in walk(ARM, mem, low.root, 0x40_0000).notes)


def test_arm_unsupported_configs(mem, arm):
    low, _, regs = arm
    low.map(0x40_0000, 0x10_0000)
    tg0_64k = TCR_48BIT_4K | (0b01 << 14)
    w = walk(ARM, mem, None, 0x40_0000, regs=dict(regs, TCR_EL1=tg0_64k))
    assert "64 KiB granule" in w.stop_reason
    w = walk(ARM, mem, None, ARM_HIGH, regs=dict(regs, TCR_EL1=TCR_48BIT_4K | TCR_EPD1))
    assert "EPD1" in w.stop_reason


def test_arm_39_bit_range_starts_at_l1(mem):
    # T0SZ=25: a 39-bit range, the walk starts at L1 with a full 512-entry table.
    l1 = mem.alloc()
    l2, l3 = mem.alloc(), mem.alloc()
    va = 0x40_1234_5000
    mem.write64(l1 + idx(va, 30) * 8, l2 | VALID | 2)
    mem.write64(l2 + idx(va, 21) * 8, l3 | VALID | 2)
    mem.write64(l3 + idx(va, 12) * 8, 0x9000_0000 | PAGE_DESC | AF)
    tcr = 25 | (25 << 16) | (0b10 << 30) | (0b101 << 32)
    regs = {"ttbr0_el1": l1, "tcr_el1": tcr}
    w = walk(ARM, mem, None, va, regs=regs)
    assert [lv.name for lv in w.levels] == ["L1", "L2", "L3"] and w.pa == 0x9000_0000
    assert walk(ARM, mem, None, 0x80_0000_0000, regs=regs).stop_reason.startswith(
        "non-canonical")
    (run,) = dump(ARM, mem, None, regs=regs)
    assert (run.va_start, run.pa_start) == (va, 0x9000_0000)


def test_arm_address_size_fault(mem, arm):
    low, _, regs = arm
    low.map(0x40_0000, 0x100_0000_0000)          # PA bit 40 set
    tcr_40bit = (TCR_48BIT_4K & ~(0b111 << 32)) | (0b010 << 32)
    assert walk(ARM, mem, None, 0x40_0000, regs=regs).pa == 0x100_0000_0000
    w = walk(ARM, mem, None, 0x40_0000, regs=dict(regs, TCR_EL1=tcr_40bit))
    assert "address size fault" in w.stop_reason


def test_arm_dump_both_halves(mem, arm):
    low, high, regs = arm
    low.map(0x40_0000, 0x10_0000, attrs=AF | AP_EL0)
    low.map(0x40_1000, 0x10_1000, attrs=AF | AP_EL0)
    low.map(0x40_2000, 0x10_2000, attrs=AF | AP_EL0 | UXN)        # perms change
    low.map(0x40_3000, 0x10_3000, attrs=SH_INNER)                 # AF clear: skipped
    high.map(ARM_HIGH, 0x4000_0000, size=2 * MiB, attrs=AF)
    high.map(ARM_HIGH + 0x20_0000, 0x4020_0000, size=2 * MiB, attrs=AF)
    high.map(0xFFFF_FFFF_FFFF_F000, 0x5000, attrs=AF)
    problems = []
    runs = dump(ARM, mem, None, regs=regs, problems=problems)
    assert runs_tuple(runs) == [(0x40_0000, 0x40_2000, 0x10_0000, 4 * KiB),
                                (0x40_2000, 0x40_3000, 0x10_2000, 4 * KiB),
                                (ARM_HIGH, ARM_HIGH + 0x40_0000, 0x4000_0000, 2 * MiB),
                                (0xFFFF_FFFF_FFFF_F000, 1 << 64, 0x5000, 4 * KiB)]
    assert len(problems) == 1 and "AF clear" in problems[0]
    assert [r.va_start for r in dump(ARM, mem, None, regs=regs, user_only=True)] == \
        [0x40_0000, 0x40_2000]
    assert [r.va_start for r in dump(ARM, mem, None, regs=regs, kernel_only=True)] == \
        [ARM_HIGH, 0xFFFF_FFFF_FFFF_F000]
    for run in runs:
        w = walk(ARM, mem, None, run.va_end - 4 * KiB, regs=regs)
        assert w.pa == run.pa_end - 4 * KiB and w.perms == run.perms


def test_arm_diff_process_tables(mem, arm):
    low, high, regs = arm
    other = ArmTables(mem)
    high.map(ARM_HIGH, 0x4000_0000, size=2 * MiB)       # shared kernel half
    low.map(0x40_0000, 0x10_0000, attrs=AF | AP_EL0)
    other.map(0x40_0000, 0x10_0000, attrs=AF | AP_EL0 | AP_RO)
    (change,) = diff(ARM, mem, low.root, other.root, regs=regs)
    assert change.kind == CHANGED and change.va_start == 0x40_0000
    assert change.a_perms.write and not change.b_perms.write


def test_unaligned_reader_result_is_rejected(mem, x86):
    """A reader returning the wrong number of bytes is reported, not mis-decoded."""
    x86.map(0x40_0000, 0x10_0000)

    def short(pa, size):
        return mem(pa, size)[:size - 1]
    w = walk(X86, short, x86.root, 0x40_0000)
    assert w.stop_reason.startswith("cannot read PML4 entry 0")
    problems = []
    assert dump(X86, short, x86.root, problems=problems) == []
    assert problems and "short read" in problems[0]
    assert struct.calcsize("<512Q") == 4096


def test_x86_smep_smap_notes(mem, x86):
    x86.map(0x40_0000, 0x30_0000, flags=P | US)
    x86.map(HIGH, 0x31_0000, flags=P)
    cr4 = (1 << 20) | (1 << 21)
    notes = walk(X86, mem, x86.root, 0x40_0000, regs={"cr4": cr4}).notes
    assert any("SMEP" in n for n in notes) and any("SMAP" in n for n in notes)
    assert walk(X86, mem, x86.root, HIGH, regs={"cr4": cr4}).notes == []


def test_arm_sctlr_wxn_and_mmu_off(mem, arm):
    low, high, regs = arm
    high.map(ARM_HIGH, 0x20_0000)                                  # kernel RW, no XN bits
    assert walk(ARM, mem, None, ARM_HIGH, regs=regs).perms.execute
    wxn = dict(regs, SCTLR_EL1=1 | (1 << 19))
    w = walk(ARM, mem, None, ARM_HIGH, regs=wxn)
    assert w.perms.write and not w.perms.execute and w.notes == []
    w = walk(ARM, mem, None, ARM_HIGH, regs=dict(regs, SCTLR_EL1=0))
    assert any("MMU is off" in n for n in w.notes)


@pytest.mark.parametrize("attr, name", [(0x00, "Device-nGnRnE"), (0x04, "Device-nGnRE"),
                                        (0x0C, "Device-GRE"), (0xFF, "Normal-WB"),
                                        (0x44, "Normal-NC"), (0xBB, "Normal-WT"),
                                        (0x4F, "Normal-oNC-iWB")])
def test_arm_mair_decoding(attr, name):
    from pagoda_pt.aarch64 import decode_mair_attr
    assert decode_mair_attr(attr) == name


# ---- whole trees, bounded (pagoda_pt.trees.runs: every census and the grader walk through it) ----

def test_a_tree_whose_tables_lead_back_to_the_root_is_refused():
    from pagoda_pt.image import CensusError
    from pagoda_pt.trees import kernel_pages, user_pages
    mem = PhysMem()
    root, below = mem.alloc(), mem.alloc()
    mem.write64(root, below | P | RW | US)
    mem.write64(below, root | P | RW | US)
    cycle = r"page-table cycle at root table %#x: an entry below it points back" % root
    with pytest.raises(CensusError, match=cycle):
        user_pages(X86, mem.read_phys, root)
    with pytest.raises(CensusError, match=cycle):
        list(kernel_pages(X86, mem.read_phys, root, 0, 1 << 47))
