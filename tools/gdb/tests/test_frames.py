"""pagoda_pt.frames on synthetic tables: which frames are tables, which user pages a root maps
(x86_64 without the shared kernel half), which pages two roots share copy-on-write. The census
as a whole runs on the real kernel (test_gdb_memory.py)."""
import pytest

from pagoda_pt.frames import CensusError
from pagoda_pt.trees import cached, cow_pairs, lower_half, table_frames, user_pages
from ptbuild import AF, AP_EL0, AP_RO, PAGE_DESC, SH_INNER, US, RW, P, ArmTables, PhysMem, X86Tables

KERNEL_VA = 0xFFFF_8000_0000_0000
ARM_USER_RW = PAGE_DESC | AF | SH_INNER | AP_EL0
ARM_USER_RO = ARM_USER_RW | AP_RO


def x86_pair():
    """A parent and a child: two roots sharing one kernel-half table, and two user frames
    mapped read-only in both (copy-on-write), one writable in the child only."""
    mem = PhysMem()
    parent, child = X86Tables(mem), X86Tables(mem)
    shared_a, shared_b, own = 0x800000, 0x801000, 0x802000
    for tables in (parent, child):
        tables.map(0x400000, shared_a, flags=P | US)
        tables.map(0x401000, shared_b, flags=P | US)
    parent.map(0x402000, 0x803000, flags=P | RW | US)
    child.map(0x402000, own, flags=P | RW | US)
    parent.map(KERNEL_VA, 0x200000, flags=P | RW)
    # The child's kernel half is the parent's (the kernel root's) table: one shared PDPT.
    pml4_entry = mem.read64(parent.root + 256 * 8)
    mem.write64(child.root + 256 * 8, pml4_entry)
    return mem, parent, child


def test_x86_table_frames_and_the_kernel_half():
    mem, parent, child = x86_pair()
    whole = table_frames("x86_64", mem.read_phys, child.root)
    own = table_frames("x86_64", lower_half(mem.read_phys, child.root), child.root)
    kernel_tables = table_frames("x86_64", mem.read_phys, parent.root) - \
        table_frames("x86_64", lower_half(mem.read_phys, parent.root), parent.root)
    assert len(own) == 4                     # PML4, PDPT, PD, PT of the user half
    assert whole == own | kernel_tables and len(kernel_tables) == 3
    assert not own & kernel_tables


def test_x86_user_pages_and_cow_pairs():
    mem, parent, child = x86_pair()
    a = user_pages("x86_64", mem.read_phys, parent.root, {"efer": 1 << 11})
    b = user_pages("x86_64", mem.read_phys, child.root, {"efer": 1 << 11})
    assert [p.va for p in a] == [0x400000, 0x401000, 0x402000]       # no kernel page
    shared, writable = cow_pairs(a, b)
    assert [(x.va, x.pa) for x, _ in shared] == [(0x400000, 0x800000), (0x401000, 0x801000)]
    assert writable == []
    # Make one shared frame writable in the child: a fork that forgot to write-protect.
    child.edit(0x401000, "PT", set_bits=RW)
    b = user_pages("x86_64", mem.read_phys, child.root, {"efer": 1 << 11})
    shared, writable = cow_pairs(a, b)
    assert [x.va for x, _ in shared] == [0x400000]
    assert [(x.va, y.writable) for x, y in writable] == [(0x401000, True)]


def test_user_pages_stop_past_their_limit():
    """The audit at every failure lists each root's user pages only up to a bound: a root mapping
    huge ranges (a hostile kernel) ends its census, not the grader's time."""
    mem, parent, _ = x86_pair()
    assert len(user_pages("x86_64", mem.read_phys, parent.root, {"efer": 1 << 11}, limit=3)) == 3
    with pytest.raises(CensusError):
        user_pages("x86_64", mem.read_phys, parent.root, {"efer": 1 << 11}, limit=2)


def test_aarch64_user_pages_cover_the_whole_ttbr0_tree():
    mem = PhysMem(first_free=0x4000_0000)
    tables = ArmTables(mem)
    tables.map(0x400000, 0x4100_0000, attrs=ARM_USER_RO)
    tables.map(0xFFFF_FFFF_F000, 0x4100_1000, attrs=ARM_USER_RW)        # L0 entry 511: the stack
    pages = user_pages("aarch64", mem.read_phys, tables.root)
    assert [(p.va, p.pa, p.writable) for p in pages] == [
        (0x400000, 0x4100_0000, False), (0xFFFF_FFFF_F000, 0x4100_1000, True)]
    assert len(table_frames("aarch64", mem.read_phys, tables.root)) == 7   # L0, 2x(L1, L2, L3)


def test_the_cached_reader_reads_each_table_once():
    mem, parent, _ = x86_pair()
    read = cached(mem.read_phys)
    table_frames("x86_64", read, parent.root)
    first = mem.reads
    table_frames("x86_64", read, parent.root)
    assert mem.reads == first


X86_HELD = 1 << 9        # the kernel's held_entry_bit fact on x86_64 (Format::kHeld)
ARM_HELD = 1 << 55       # ... and on AArch64


def test_x86_held_pages_are_user_pages_that_allow_nothing():
    """A PROT_NONE page keeps its frame in a held leaf (P clear, the software bit set): vma-list
    showed a PROT_NONE region with no pages, and the census did not attribute its frame."""
    mem, parent, _ = x86_pair()
    parent.edit(0x402000, "PT", set_bits=X86_HELD, clear_bits=P)
    regs = {"efer": 1 << 11}
    assert [p.va for p in user_pages("x86_64", mem.read_phys, parent.root, regs)] == [0x400000, 0x401000]
    pages = user_pages("x86_64", mem.read_phys, parent.root, regs, held_mask=X86_HELD)
    assert [(p.va, p.pa, p.held, p.writable) for p in pages] == [
        (0x400000, 0x800000, False, False), (0x401000, 0x801000, False, False), (0x402000, 0x803000, True, False)]


def test_aarch64_held_pages_are_user_pages_that_allow_nothing():
    mem = PhysMem(first_free=0x4000_0000)
    tables = ArmTables(mem)
    tables.map(0x400000, 0x4100_0000, attrs=ARM_USER_RW)
    tables.edit(0x400000, 3, set_bits=ARM_HELD, clear_bits=1)          # bit 0 clear: held
    assert user_pages("aarch64", mem.read_phys, tables.root) == []
    [page] = user_pages("aarch64", mem.read_phys, tables.root, held_mask=ARM_HELD)
    assert (page.va, page.pa, page.held) == (0x400000, 0x4100_0000, True)


def test_aarch64_pages_whose_access_flag_the_clock_cleared_keep_their_frames():
    """Lab 7's clock clears AF (the next use faults to set it again): the MMU does not translate
    the page now, yet it keeps its frame, which the census counts as the process's."""
    mem = PhysMem(first_free=0x4000_0000)
    tables = ArmTables(mem)
    tables.map(0x400000, 0x4100_0000, attrs=ARM_USER_RW & ~AF)
    assert user_pages("aarch64", mem.read_phys, tables.root) == []
    [page] = user_pages("aarch64", mem.read_phys, tables.root, held_mask=ARM_HELD)
    assert (page.va, page.pa, page.held, page.writable) == (0x400000, 0x4100_0000, False, True)


def _census(misowned=(), overmapped=()):
    from pagoda_pt.frames import Census
    return Census("x86_64", 16, 0, ["free"] * 16, {}, [1] * 16, {}, [],
                  misowned=list(misowned), overmapped=list(overmapped))


def test_a_mapped_frame_the_allocator_freed_is_the_story():
    from pagoda_pt.frames import FREE, TABLE, mapped_frame_story
    assert mapped_frame_story(_census()) is None
    story = mapped_frame_story(_census(misowned=[(0x7ffd000, 0x409000, "proc 1 (forktree)", FREE)]))
    assert story.startswith("frame 0x7ffd000 is mapped at 0x409000 by proc 1 (forktree), yet it is free in "
                            "the frame allocator: a frame freed while it is still mapped (")
    again = mapped_frame_story(_census(misowned=[(0x7ffd000, 0x409000, "proc 1 (a)", TABLE),
                                                 (0x7ffe000, 0x40a000, "proc 1 (a)", FREE)]))
    assert "yet it is a page table of a published root (and 1 more): a frame freed while it is still " \
           "mapped and given out again" in again


def test_more_mappings_than_references_is_the_story_when_nothing_is_misowned():
    from pagoda_pt.frames import FREE, mapped_frame_story
    maps = [("proc 1 (a)", 0x409000), ("proc 2 (a)", 0x409000)]
    story = mapped_frame_story(_census(overmapped=[(0x7ffd000, maps, 1)]))
    assert story.startswith("frame 0x7ffd000 is mapped by 2 user pages (proc 1 (a) at 0x409000, proc 2 (a) "
                            "at 0x409000) but its reference count is 1: a frame freed while it is still mapped")
    both = mapped_frame_story(_census(misowned=[(0x1000, 0x400000, "proc 3 (b)", FREE)],
                                      overmapped=[(0x7ffd000, maps, 1)]))
    assert both.startswith("frame 0x1000 is mapped at 0x400000 by proc 3 (b)")


def test_a_count_above_the_frame_s_mappings_is_a_reference_not_dropped():
    """lab 6: an unmap (exit, munmap, a copy) that frees at count 1 but never drops a reference leaves
    the survivor's frame counted twice: it is never freed."""
    import re
    from pagoda_pt.frames import ProcessMemory, count_left_story
    from pagoda_pt.trees import UserPage
    census = _census()
    parent = ProcessMemory(1, "forktree", 0x30_0000)
    page = UserPage(0x40_9000, 0x5000, True, False)
    census.mappings[5] = [(parent, page)]
    assert count_left_story(census) is None
    census.refs[5] = 2
    story = count_left_story(census)
    assert story is not None and re.search(r"did not drop its reference", story) and "frame 0x5000" in story, story
    # Two mappings, count 2 (copy-on-write after fork): as it should be.
    census.mappings[5].append((ProcessMemory(2, "forktree", 0x31_0000), page))
    assert count_left_story(census) is None


def test_frame_refs_reads_the_kernels_table():
    """frame_refs() on a table the test lays out: the kernel's record {table, entries} at its
    variable, a u16 of references beyond the first per frame, some past the reader's zero-skipping
    chunk; the answers when the kernel has no table or its pointer leads outside the image."""
    from pagoda_pt.frames import frame_refs
    from pagoda_pt.image import KernelImage
    from pagoda_pt import contract as C
    offset = 0xFFFF_FFFF_8000_0000
    image = KernelImage(start=offset + 0x100000, end=offset + 0x200000, virt_offset=offset)
    mem = PhysMem(first_free=0x100000)
    record = mem.alloc()
    table = [mem.alloc() for _ in range(3)]          # 3 pages: 6,144 entries
    entries = 3 * 4096 // 2
    extra = {3: 1, 2047: 4, 2048: 2, 6143: 0xFFFF}   # (the last chunk boundary, the last entry)
    for i, value in extra.items():
        frame = mem.frames[(table[0] + 2 * i) // 4096]
        frame[(2 * i) % 4096:(2 * i) % 4096 + 2] = value.to_bytes(2, "little")
    mem.write64(record, offset + table[0])
    mem.write64(record + 8, entries)
    def symbol(name):
        return offset + record if name == C.FRAME_REFS else None

    assert frame_refs(mem.read_phys, image, symbol) == \
        (entries, {i: 1 + v for i, v in extra.items()})
    assert frame_refs(mem.read_phys, image, lambda n: None) == (0, {})
    mem.write64(record, 0x1234_5000)                 # a pointer outside the image
    assert frame_refs(mem.read_phys, image, symbol) == (0, {})
