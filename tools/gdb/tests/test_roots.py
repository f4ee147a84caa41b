"""The roots the kernel publishes, root validation, the top-level view (pt-top), the physical
address width and the 'looks like a kernel virtual address' hints, on synthetic memory."""

import struct

import pytest

from pagoda_pt.walker import dump, walk
from pagoda_pt.aarch64 import pa_bits_from_mmfr0
from pagoda_pt.roots import (MISSING, OWN, SHARED, KnownRoot, RegistryError, format_top_level,
                             read_root_table, root_problems, top_level, top_level_problem)
from ptbuild import (AF, PAGE_DESC, RW, SH_INNER, TCR_48BIT_4K, ArmTables, P, PhysMem,
                     X86Tables)

X86 = "x86_64"
HIGH = 0xFFFF_8000_0000_0000
WINDOW_VA_OF = HIGH          # a kernel (window) address: HIGH + physical address


def registry_bytes(slots, capacity=8, magic=b"PGROOTS\0", version=1, slot_size=32, dropped=0):
    """The layout of kernel/mm/space/debug_roots.hpp, written out here independently."""
    data = bytearray(magic + struct.pack("<IIIIQ", version, slot_size, capacity, dropped, 7))
    for i in range(capacity):
        if i < len(slots):
            root, kind, ident, name = slots[i]
            data += struct.pack("<QII", root, kind, ident) + name.encode().ljust(16, b"\0")
        else:
            data += bytes(32)
    return bytes(data)


def reader(data, base=0x1000):
    def read(address, size):
        offset = address - base
        assert 0 <= offset and offset + size <= len(data), (hex(address), size)
        return data[offset:offset + size]
    return read


def test_registry_is_read_by_its_layout():
    data = registry_bytes([(0x12e000, 1, 0, "kernel"), (0, 0, 0, ""), (0x256000, 3, 7, "proc 7"),
                           (0x300000, 9, 0, "")], dropped=2)
    table = read_root_table(reader(data), 0x1000)
    assert [(r.root, r.name, r.kind, r.id) for r in table.roots] == [
        (0x12e000, "kernel", "kernel", 0), (0x256000, "proc 7", "process", 7),
        (0x300000, "slot 3", "kind 9", 0)]
    assert table.dropped == 2 and table.generation == 7
    assert table.kernel().root == 0x12e000
    assert table.find(0x256000 | 0x18).name == "proc 7"     # CR3 flag bits do not matter
    assert table.find(0x999000) is None
    assert KnownRoot(0x256000, "proc 7", "process").label() == "'proc 7' (0x256000)"


@pytest.mark.parametrize("kwargs, message", [
    ({"magic": b"NOTROOTS"}, "no root registry"),
    ({"version": 2}, "version 2"),
    ({"slot_size": 24}, "24-byte slots"),
    ({"capacity": 1 << 20}, "corrupted"),
])
def test_registry_mismatches_are_reported_not_misread(kwargs, message):
    data = registry_bytes([(0x12e000, 1, 0, "kernel")], **{"capacity": 1, **kwargs}) \
        if "capacity" not in kwargs else registry_bytes([], **kwargs)
    with pytest.raises(RegistryError, match=message):
        read_root_table(reader(data + bytes(64)), 0x1000)


# ---- roots: plausible or not ---------------------------------------------------------------

@pytest.fixture
def mem():
    return PhysMem()


def kernel_tree(mem):
    """A root with kernel-half tables at 256 and 511, and an empty lower half (like Pagoda's)."""
    t = X86Tables(mem)
    t.map(HIGH, 0x0, flags=P | RW)
    t.map(0xFFFF_FFFF_8000_0000, 0x10_0000, flags=P)
    return t


def test_a_real_root_passes(mem):
    t = kernel_tree(mem)
    assert root_problems(X86, mem, t.root, 40) == []
    assert root_problems(X86, mem, mem.alloc(), 40) == []          # empty is a root too


def test_roots_that_are_not_physical_addresses(mem):
    t = kernel_tree(mem)
    (why,) = root_problems(X86, mem, WINDOW_VA_OF + t.root, 40)
    assert why == "%#x is a kernel virtual address, not a physical one" % (WINDOW_VA_OF + t.root)
    (why,) = root_problems(X86, mem, 1 << 41, 40)
    assert "above the CPU's 40-bit physical address width" in why
    (why,) = root_problems(X86, mem, 0x7000_0000, 40)
    assert why.startswith("cannot read a table at 0x70000000")


def test_a_page_of_data_is_not_a_root(mem):
    page = mem.alloc()
    words = [(0x6F6C6C6548000000 + i * 0x10001) | P for i in range(512)]   # text-like data
    mem.fill_table(page, words)
    (why,) = root_problems(X86, mem, page, 40)
    assert why.startswith("the page at %#x does not look like a root table: 512 of its 512 "
                          "present entries are malformed (e.g. entry 0 =" % page)


# ---- the top-level view --------------------------------------------------------------------

def process_root(mem, kernel, skip=()):
    """A root that copies the kernel root's kernel half (except @p skip) and maps one page."""
    t = X86Tables(mem)
    for index in range(256, 512):
        if index not in skip:
            mem.write64(t.root + 8 * index, mem.read64(kernel.root + 8 * index))
    t.map(0x1000, 0x30_0000, flags=P | RW | 4)
    return t


def test_top_level_of_a_process_root_sharing_the_kernel_half(mem):
    kernel = kernel_tree(mem)
    proc = process_root(mem, kernel)
    view = top_level(X86, mem, proc.root, kernel.root, 40)
    assert [e.index for e in view.entries if e.status == SHARED] == [256, 511]
    assert view.present(True) == 1 and view.present(False) == 2
    assert top_level_problem(view) is None
    text = format_top_level(view, "'proc 1'", "'kernel'")
    assert "[0]          present -> 0x" in text and "not in the kernel root" in text
    assert "[256]        1 shared with the kernel root" in text
    assert "kernel half: 2 of 256 present (2 shared with the kernel root, 0 own, 0 missing)" \
        in text


def test_top_level_shows_a_missing_kernel_half(mem):
    kernel = kernel_tree(mem)
    proc = process_root(mem, kernel, skip=range(256, 512))
    view = top_level(X86, mem, proc.root, kernel.root, 40)
    assert [e.index for e in view.entries if e.status == MISSING] == [256, 511]
    assert top_level_problem(view).startswith("this root has no kernel half")
    text = format_top_level(view)
    assert "[256]        1 MISSING: present in the kernel root, empty here" in text
    assert "[257..510]   254 empty" in text
    assert "problem: this root has no kernel half" in text
    partial = process_root(mem, kernel, skip=(511,))
    problem = top_level_problem(top_level(X86, mem, partial.root, kernel.root, 40))
    assert problem.startswith("1 kernel-half entries of the kernel root are missing here "
                              "(first: PML4[511])")


def test_top_level_own_kernel_tables_are_flagged(mem):
    kernel = kernel_tree(mem)
    proc = process_root(mem, kernel, skip=(511,))
    proc.map(0xFFFF_FFFF_8000_0000, 0x10_0000, flags=P)       # a copy, not the shared table
    view = top_level(X86, mem, proc.root, kernel.root, 40)
    assert view.entries[511].status == OWN
    assert "kernel mappings made later will not appear" in top_level_problem(view)
    assert "own table (the kernel root's is" in format_top_level(view)


def test_top_level_without_a_kernel_root(mem):
    t = X86Tables(mem)
    t.map(0x1000, 0x20_0000)
    view = top_level(X86, mem, t.root)
    assert "the kernel half is empty" in top_level_problem(view)


# ---- the physical address width and kernel virtual addresses in entries ---------------------

def test_an_entry_holding_a_kernel_virtual_address(mem):
    t = X86Tables(mem)
    t.map(0x40_0000, 0x20_0000)
    pt = mem.read64(t.entry_pa(0x40_0000, "PD")) & ~0xFFF
    # make_table_entry(PhysAddr(pointer)) keeps bits 51:12 of the window address.
    t.edit(0x40_0000, "PD", value=((WINDOW_VA_OF + pt) & 0x000F_FFFF_FFFF_F000) | P | RW)
    w = walk(X86, mem, t.root, 0x40_0000, pa_bits=40)
    assert w.stop_reason == ("reserved bit set in PD entry 2: bits 47, 48, 49, 50, 51 above "
                             "MAXPHYADDR=40 (%#x looks like a kernel virtual address, not a "
                             "physical one)" % (WINDOW_VA_OF + pt))
    assert w.levels[-1].output == (WINDOW_VA_OF + pt) & 0x000F_FFFF_FFFF_F000
    # Assuming 52 bits, the entry is not reserved: reading the "table" fails, and says why.
    w = walk(X86, mem, t.root, 0x40_0000)
    assert w.stop_reason.startswith("cannot read PT entry 0 at 0xf8000")
    assert w.stop_reason.endswith("(%#x looks like a kernel virtual address, not a physical "
                                  "one)" % (WINDOW_VA_OF + pt))
    problems = []
    dump(X86, mem, t.root, problems=problems, pa_bits=40)
    assert "looks like a kernel virtual address" in problems[0]


def test_pa_bits_is_the_walkers_width(mem):
    t = X86Tables(mem)
    t.map(0x40_0000, 0x20_0000 | 1 << 44)
    assert walk(X86, mem, t.root, 0x40_0000).mapped               # 52 bits assumed
    assert "above MAXPHYADDR=44" in walk(X86, mem, t.root, 0x40_0000, pa_bits=44).stop_reason


@pytest.mark.parametrize("parange, bits", [(0, 32), (1, 36), (2, 40), (5, 48), (6, 52),
                                           (0x7, None), (0x1125, 48)])
def test_aarch64_parange(parange, bits):
    assert pa_bits_from_mmfr0(parange) == bits


def test_aarch64_pa_bits_narrows_tcr_ips(mem):
    t = ArmTables(mem)
    t.map(0x40_0000, 0x20_0000 | 1 << 44, attrs=AF | SH_INNER)
    regs = {"ttbr0_el1": t.root, "ttbr1_el1": 0, "tcr_el1": TCR_48BIT_4K}
    assert walk("aarch64", mem, None, 0x40_0000, regs).mapped      # IPS: 48 bits
    w = walk("aarch64", mem, None, 0x40_0000, regs, pa_bits=40)
    assert "wider than the 40-bit PA size" in w.stop_reason
    assert PAGE_DESC  # (the descriptor type the builder used)
