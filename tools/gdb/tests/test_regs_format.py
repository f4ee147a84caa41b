"""Register/error-code decoders and the text formatter."""

import pytest

from pagoda_pt.format import (format_diff, format_gp_error, format_pf_error, format_runs, format_walk,
                              format_x86_regs, human_size, perm_letters, perm_short)
from pagoda_pt.model import CHANGED, ONLY_A, DiffRange, Perms, Run
from pagoda_pt.regs import decode_gp_error, decode_pf_error, decode_x86_regs, paging_mode
from pagoda_pt.walker import dump, walk
from ptbuild import NX, P, RW, US, GiB, KiB, MiB, PhysMem, X86Tables

# Bits written out from the SDM, independently of pagoda_pt.regs.
PE, MP, ET, NE, WP, AM, PG = 1, 2, 0x10, 0x20, 1 << 16, 1 << 18, 1 << 31
PAE, PGE, OSFXSR, OSXMMEXCPT, LA57, PCIDE, SMEP, SMAP = (
    1 << 5, 1 << 7, 1 << 9, 1 << 10, 1 << 12, 1 << 17, 1 << 20, 1 << 21)
SCE, LME, LMA, NXE = 1, 1 << 8, 1 << 10, 1 << 11


def test_decode_x86_regs_long_mode():
    cr0 = PE | MP | ET | NE | WP | AM | PG
    cr4 = PAE | PGE | OSFXSR | OSXMMEXCPT | PCIDE | SMEP | SMAP
    regs = decode_x86_regs(cr0, 0x1234_5000 | 7, cr4, SCE | LME | LMA | NXE)
    assert regs.cr0_flags == ["PE", "MP", "ET", "NE", "WP", "AM", "PG"]
    assert regs.cr4_flags == ["PAE", "PGE", "OSFXSR", "OSXMMEXCPT", "PCIDE", "SMEP", "SMAP"]
    assert regs.efer_flags == ["SCE", "LME", "LMA", "NXE"]
    assert (regs.cr3_root, regs.cr3_pcid, regs.cr3_flags) == (0x1234_5000, 7, [])
    assert regs.paging_mode == "4-level" and regs.notes == []


def test_decode_x86_regs_pwt_pcd_and_notes():
    regs = decode_x86_regs(PE | PG | (1 << 17), 0x8000 | 0x18, PAE, LME | LMA)
    assert regs.cr3_pcid is None and regs.cr3_flags == ["PWT", "PCD"]
    assert regs.cr0_flags == ["PE", "PG", "bit17"]
    assert any("WP=0" in n for n in regs.notes) and any("NXE=0" in n for n in regs.notes)
    text = format_x86_regs(regs)
    assert "CR3   root 0x0000000000008000  PWT PCD" in text and "paging: 4-level" in text


@pytest.mark.parametrize("cr0, cr4, efer, mode", [
    (PE, PAE, LME, "disabled"), (PE | PG, 0, 0, "32-bit"), (PE | PG, PAE, 0, "PAE"),
    (PE | PG, PAE, LME | LMA, "4-level"), (PE | PG, PAE | LA57, LME | LMA, "5-level")])
def test_paging_mode(cr0, cr4, efer, mode):
    assert paging_mode(cr0, cr4, efer) == mode


@pytest.mark.parametrize("code, flags, summary", [
    (0x0, [], "supervisor-mode read: page not present"),
    (0x2, ["W"], "supervisor-mode write: page not present"),
    (0x7, ["P", "W", "U"], "user-mode write: protection violation on a present page"),
    (0x15, ["P", "U", "I/D"],
     "user-mode instruction fetch: protection violation on a present page"),
    (0x9, ["P", "RSVD"], "supervisor-mode read: reserved bit set in a paging-structure entry"),
    (0x25, ["P", "U", "PK"], "user-mode read: protection-key violation (PKRU/PKRS)"),
    (0x43, ["P", "W", "SS"], "supervisor-mode shadow-stack write: protection violation "
                             "on a present page"),
])
def test_decode_pf_error(code, flags, summary):
    error = decode_pf_error(code)
    assert error.flags == flags and error.summary == summary
    assert error.present == bool(code & 1) and error.write == bool(code & 2)
    assert error.user == bool(code & 4) and error.fetch == bool(code & 0x10)


def test_format_pf_error():
    text = format_pf_error(decode_pf_error(6), cr2=0xDEAD000)
    assert text == ("#PF error 0x6 [W U]: user-mode write: page not present "
                    "at 0x000000000dead000")


@pytest.mark.parametrize("code, table, index, ext", [
    (0x10, "GDT", 2, False), (0x0C, "LDT", 1, False), (0x6A, "IDT", 13, False),
    (0x6B, "IDT", 13, True), (0x0, None, 0, False), (0xFFF8, "GDT", 0x1FFF, False)])
def test_decode_gp_error(code, table, index, ext):
    error = decode_gp_error(code)
    assert (error.table, error.index, error.external) == (table, index, ext)


def test_gp_error_summaries():
    assert format_gp_error(decode_gp_error(0x10)) == "#GP error 0x10: GDT entry 2 (selector 0x10)"
    assert decode_gp_error(0x0C).summary == "LDT entry 1 (selector 0xc)"
    assert decode_gp_error(0x6B).summary == \
        "IDT vector 13 (0xd), while delivering an external event (EXT)"
    assert "not caused by a selector" in decode_gp_error(0).summary
    assert format_gp_error(decode_gp_error(0x18), "#TS").startswith("#TS error 0x18")


@pytest.mark.parametrize("size, text", [(512, "512 B"), (4 * KiB, "4 KiB"), (12 * KiB, "12 KiB"),
                                        (3 * MiB // 2, "1.5 MiB"), (2 * MiB, "2 MiB"),
                                        (1 * GiB, "1 GiB"), (1 << 47, "128 TiB")])
def test_human_size(size, text):
    assert human_size(size) == text


def test_perm_strings():
    kernel_text = Perms(True, False, True, False, True, "WB")
    user_data = Perms(True, True, False, True, False, "WB")
    arm_user_text = Perms(True, False, False, True, True)    # UXN, kernel may execute
    arm_user_rwx = Perms(True, True, True, True, False)      # EL0-writable: implicit PXN
    assert perm_short(kernel_text) == "r-x k" and perm_letters(kernel_text) == "R X"
    assert perm_short(user_data) == "rw- u" and perm_letters(user_data) == "R W U"
    assert perm_short(arm_user_text) == "r-- u kx" and perm_letters(arm_user_text) == "R U KX"
    assert perm_short(arm_user_rwx) == "rwx u pxn"
    assert perm_letters(arm_user_rwx) == "R W X U PXN"
    assert perm_short(None) == "unmapped"


def test_format_walk_mapped_and_stopped():
    mem = PhysMem()
    t = X86Tables(mem)
    t.map(0x40_0000, 0x30_0000, flags=P | RW | US)
    lines = format_walk(walk("x86_64", mem, t.root, 0x40_0123)).splitlines()
    assert lines[0] == "VA 0x0000000000400123 (x86_64)"
    assert [line.split()[0] for line in lines[1:5]] == ["PML4", "PDPT", "PD", "PT"]
    pt_entry = t.entry_pa(0x40_0000, "PT")
    assert lines[4] == "  PT   [  0] @ 0x%016x = 0x0000000000300007  P RW US" % pt_entry
    assert lines[1].endswith("-> table 0x%016x" % (mem.read64(t.root) & ~0xFFF))
    assert lines[5] == "  -> PA 0x0000000000300123 (4 KiB page, R W X U, WB)"
    t.edit(0x40_0000, "PDPT", clear_bits=P)
    text = format_walk(walk("x86_64", mem, t.root, 0x40_0000, regs={"cr0": PE | PG}))
    assert "  stopped: PDPT entry 0 not present" in text
    assert "  note: CR0.WP=0" in text


def test_format_runs():
    mem = PhysMem()
    t = X86Tables(mem)
    t.map(0x40_0000, 0x30_0000, flags=P | US)
    t.map(0x40_1000, 0x30_1000, flags=P | US)
    t.map(0xFFFF_8000_0000_0000, 0, size=2 * MiB, flags=P | RW | NX)
    lines = format_runs(dump("x86_64", mem, t.root)).splitlines()
    assert lines == [
        "0x0000000000400000-0x0000000000401fff     8 KiB -> 0x0000000000300000  r-x u  4K WB",
        "0xffff800000000000-0xffff8000001fffff     2 MiB -> 0x0000000000000000  rw- k  2M WB",
        "2 runs, 2.01 MiB mapped"]


def test_format_diff():
    rw = Perms(True, True, False, True, False, "WB")
    ro = Perms(True, False, False, True, False, "WB")
    ranges = [DiffRange(0x1000, 0x3000, ONLY_A, 0x5000, rw, None, None),
              DiffRange(0x4000, 0x5000, CHANGED, 0x9000, rw, 0x9000, ro)]
    lines = format_diff(ranges, "pid1", "pid2").splitlines()
    assert lines[0] == ("only pid1  0x0000000000001000-0x0000000000002fff     8 KiB  "
                        "pid1: 0x0000000000005000 rw- u  pid2: unmapped")
    assert lines[1].startswith("changed    0x0000000000004000-0x0000000000004fff     4 KiB")
    assert lines[1].endswith("pid1: 0x0000000000009000 rw- u  pid2: 0x0000000000009000 r-- u")
    assert format_diff([]) == "no differences"


def test_the_last_run_ends_at_the_last_byte():
    """A run that reaches the top of the address space ends at 0xffffffffffffffff: its
    exclusive end, 2^64, has 17 hex digits (it used to print as 0x10000000000000000)."""
    mem = PhysMem()
    t = X86Tables(mem)
    t.map(0xFFFF_FFFF_FFFF_F000, 0x9000, flags=P)
    (line, total) = format_runs(dump("x86_64", mem, t.root)).splitlines()
    assert line.startswith("0xfffffffffffff000-0xffffffffffffffff     4 KiB -> 0x0000000000009000")
    assert "10000000000000000" not in line
    (diff_line,) = format_diff([DiffRange(0xFFFF_FFFF_FFFF_F000, 1 << 64, ONLY_A, 0x9000,
                                          Perms(True, False, False, False, False), None,
                                          None)]).splitlines()
    assert "-0xffffffffffffffff " in diff_line and "10000000000000000" not in diff_line


def test_run_properties():
    run = Run(0x1000, 0x4000, 0x20000, Perms(True, False, False, False, False), 4096)
    assert run.size == 0x3000 and run.pa_end == 0x23000
