"""fault-why's rule for a process's record against the pages its root maps (lab 5: the VMA set's
own rules broken): pagoda_pt.diagnose.record_against_pages. One VMA holding pages of different
permissions, some wider than it grants, is two regions merged although their permissions differ;
a hole whose edge leaves pages munmap took in the record is cut a page off."""
from pagoda_pt.procs import KIND_ANONYMOUS, KIND_HEAP, KIND_IMAGE, KIND_STACK, Vma
import re

from pagoda_pt.diagnose import record_against_pages
from pagoda_pt.trees import UserPage

AT, PAGE = 0x10_0000_0000, 0x1000
MERGE_CAUSE = r"merged .*permissions differ|permissions differ.* merged|different permissions"
HOLE_CAUSE = r"one page (off|into the hole|short)"


def vma(start, end, write=True, execute=False, kind=KIND_ANONYMOUS, flags=0, offset=0, file_size=0):
    return Vma(start=start, end=end, read=True, write=write, execute=execute, kind=kind, flags=flags,
                offset=offset, file_size=file_size)


def page(i, write=True, execute=False, held=False, base=AT):
    return UserPage(base + i * PAGE, 0x80_0000 + i * PAGE, write, execute, held)


def test_a_vma_whose_pages_have_different_permissions_was_merged():
    """mprotect(PROT_READ) of page 0 of two touched rw- pages, then merged back into one r-- VMA."""
    said = record_against_pages([vma(AT, AT + 2 * PAGE, write=False)], [page(0, write=False), page(1)], "proc 1 (vmas)")
    assert said is not None and re.search(MERGE_CAUSE, said), said
    assert "%#x is mapped rw-" % (AT + PAGE) in said and "proc 1 (vmas)" in said


def test_pages_narrower_than_their_vma_are_normal():
    """Copy-on-write leaves pages read-only in a writable VMA until the write fault widens them; held
    (PROT_NONE) pages are not the MMU's."""
    assert record_against_pages([vma(AT, AT + 2 * PAGE)], [page(0, write=False), page(1)]) is None
    assert record_against_pages([vma(AT, AT + 2 * PAGE, write=False)], [page(0, write=False), page(1, held=True)]) is None


def test_pages_all_wider_than_their_vma_are_a_record_only_change():
    """mprotect(PROT_READ) that changed the VMA but left the page brought in writable: no page of the
    VMA has its permissions, so nothing was merged; the record alone changed."""
    said = record_against_pages([vma(AT, AT + PAGE, write=False), vma(AT + PAGE, AT + 2 * PAGE)], [page(0), page(1)],
                                "proc 1 (vmas)")
    assert said is not None and re.search(r"mprotect changed the VMA but not the page", said), said
    assert not re.search(MERGE_CAUSE, said)


def eight_pages_with_a_hole(tail_start):
    """vmas's hole(): 8 rw- pages all touched, pages 3-4 munmapped (so unmapped); the record's tail
    starts at @p tail_start (page 5 when right)."""
    pages = [page(i) for i in (0, 1, 2, 5, 6, 7)]
    return [vma(AT, AT + 3 * PAGE), vma(AT + tail_start * PAGE, AT + 8 * PAGE)], pages


def test_a_hole_whose_end_is_cut_a_page_short_is_named():
    said = record_against_pages(*eight_pages_with_a_hole(4), "proc 1 (vmas)")
    assert said is not None and re.search(HOLE_CAUSE, said), said
    assert "[%#x, %#x)" % (AT + 4 * PAGE, AT + 5 * PAGE) in said


def test_a_hole_cut_right_is_not():
    assert record_against_pages(*eight_pages_with_a_hole(5)) is None


def test_a_hole_whose_start_is_cut_late_is_named():
    vmas = [vma(AT, AT + 4 * PAGE), vma(AT + 5 * PAGE, AT + 8 * PAGE)]
    said = record_against_pages(vmas, [page(i) for i in (0, 1, 2, 5, 6, 7)])
    assert said is not None and "starts 1 page late" in said and re.search(HOLE_CAUSE, said), said


def test_neighbours_that_were_never_one_region_or_never_touched_say_nothing():
    """A gap between regions of different kinds (the stack below the heap), or a region whose pages
    were never brought in (lazy), is no evidence of a cut."""
    pages = [page(i) for i in (0, 1, 2, 6, 7)]
    assert record_against_pages([vma(AT, AT + 3 * PAGE), vma(AT + 5 * PAGE, AT + 8 * PAGE, kind=KIND_STACK, flags=1)],
                                pages) is None
    assert record_against_pages([vma(AT, AT + 3 * PAGE), vma(AT + 4 * PAGE, AT + 8 * PAGE)],
                                [page(i) for i in (0, 1, 2)]) is None


def test_a_hole_between_pages_never_touched_on_either_side_says_nothing():
    """The page before the hole was never brought in either: the unmapped pages past it may be lazy
    ones, not ones munmap took."""
    assert record_against_pages([vma(AT, AT + 3 * PAGE), vma(AT + 4 * PAGE, AT + 8 * PAGE)],
                                [page(i) for i in (0, 1, 5, 6, 7)]) is None


MUNMAP_CAUSE = r"munmap left .* mapped"
BRK_CAUSE = r"shr[ai]nk.* (still mapped|left .* mapped)|left .* heap pages mapped"


def test_pages_no_vma_covers_are_a_removal_that_left_them_mapped():
    """munmap of pages 3-4 took them out of the record but left them mapped."""
    stack = vma(0x7FFF_FFFF_0000, 0x8000_0000_0000, kind=KIND_STACK, flags=1)
    vmas = [vma(AT, AT + 3 * PAGE), vma(AT + 5 * PAGE, AT + 8 * PAGE), stack]
    said = record_against_pages(vmas, [page(i) for i in range(8)], "proc 1 (vmas)")
    assert said is not None and re.search(MUNMAP_CAUSE, said) and not re.search(BRK_CAUSE, said), said
    # No grows-down VMA: the loader did not record the stack, and its pages lie in no VMA from the
    # start (user_fault_decision names the loader): not a removal's.
    assert record_against_pages(vmas[:2], [page(i) for i in range(8)]) is None
    # Above the heap's break: brk's shrink.
    heap = 0x40_9000
    vmas = [vma(0x40_0000, 0x40_9000, write=False, execute=True, kind=KIND_IMAGE), vma(heap, heap + PAGE, kind=KIND_HEAP), stack]
    pages = [page(i, base=heap) for i in range(4)]
    said = record_against_pages(vmas, pages, "proc 1 (vmas)", heap=(heap, heap + PAGE))
    assert said is not None and re.search(BRK_CAUSE, said) and "3 heap pages" in said, said


def test_every_page_in_a_vma_says_nothing():
    assert record_against_pages([vma(AT, AT + 8 * PAGE)], [page(i) for i in range(8)]) is None


def test_pages_left_in_an_mmap_hole_are_munmap_s_not_the_heap_s():
    """The hole's pages lie above the heap's break too, but not from the break up: the mmap area's."""
    heap = 0x40_9000
    stack = vma(0x7FFF_FFFF_0000, 0x8000_0000_0000, kind=KIND_STACK, flags=1)
    vmas = [vma(0x40_0000, heap, write=False, execute=True, kind=KIND_IMAGE), vma(AT, AT + 3 * PAGE),
            vma(AT + 5 * PAGE, AT + 8 * PAGE), stack]
    said = record_against_pages(vmas, [page(i) for i in range(8)], "proc 1 (vmas)", heap=(heap, heap))
    assert said is not None and re.search(MUNMAP_CAUSE, said) and not re.search(BRK_CAUSE, said), said


def test_a_shrink_s_pages_are_brk_s_whatever_was_mapped_among_them_since():
    """vmas:brk: the heap shrank to its start, then a page among the ones left mapped got a VMA of its own."""
    heap = 0x40_9000
    stack = vma(0x7FFF_FFFF_0000, 0x8000_0000_0000, kind=KIND_STACK, flags=1)
    vmas = [vma(0x40_0000, heap, write=False, execute=True, kind=KIND_IMAGE),
            vma(heap + PAGE, heap + 2 * PAGE, write=False), stack]
    pages = [page(i, base=heap) for i in range(8) if i != 1]
    said = record_against_pages(vmas, pages, "proc 1 (vmas)", heap=(heap, heap))
    assert said is not None and re.search(BRK_CAUSE, said), said


def test_a_record_that_breaks_the_sets_own_rules_is_named_first():
    """An empty region (a removal at a region's own end kept a [end, end) tail), an image region with
    more file bytes than room or a wrapped file size, an overlap: named whatever the pages say."""
    empty = record_against_pages([vma(AT, AT + PAGE), vma(AT + 2 * PAGE, AT + 2 * PAGE)], [page(0)], "proc 1 (vmas)")
    assert empty is not None and "empty region" in empty and "proc 1 (vmas)" in empty, empty
    room = record_against_pages([vma(AT, AT + PAGE, kind=KIND_IMAGE, offset=0x1000, file_size=0x3048)], [])
    assert room is not None and "more file bytes than" in room, room
    wrapped = record_against_pages([vma(AT, AT + PAGE, kind=KIND_IMAGE, offset=0x1000, file_size=(1 << 64) - 0xfe8)], [])
    assert wrapped is not None and "a cut past the file bytes leaves the tail none" in wrapped, wrapped
    overlap = record_against_pages([vma(AT, AT + 2 * PAGE), vma(AT + PAGE, AT + 3 * PAGE, write=False)], [])
    assert overlap is not None and "not sorted and disjoint" in overlap, overlap
    assert record_against_pages([vma(AT, AT + PAGE, kind=KIND_IMAGE, offset=0x1000, file_size=0x800)], []) is None
