"""fault-why's reading of a forked child that holds nothing of its parent's user half
(pagoda_pt.diagnose.fork_copied_nothing): named only for a child whose record is its parent's,
whose root shares no frame with the parent's and lacks pages the parent maps."""
from dataclasses import replace
from pagoda_pt.procs import KIND_IMAGE, KIND_STACK, Proc, Vma
from collections import namedtuple

from pagoda_pt.diagnose import fork_copied_nothing

Page = namedtuple("Page", "va pa")
TEXT = Vma(start=0x40_0000, end=0x40_2000, read=True, write=False, execute=True, kind=KIND_IMAGE, flags=0)
DATA = Vma(start=0x40_2000, end=0x40_4000, read=True, write=True, execute=False, kind=KIND_IMAGE, flags=0)
STACK = Vma(start=0x7FFF_FFFF_0000, end=0x8000_0000_0000, read=True, write=True, execute=False,
             kind=KIND_STACK, flags=1)
PARENT = Proc(pid=1, name="forktree", parent=0, vmas=[TEXT, DATA, STACK])
CHILD = Proc(pid=2, name="forktree", parent=1, vmas=[TEXT, DATA, STACK])
PARENT_PAGES = [Page(0x40_0000, 0x80_0000), Page(0x40_2000, 0x80_1000), Page(0x7FFF_FFFF_F000, 0x80_2000)]


def test_a_child_with_only_fresh_pages_is_named():
    # What it faulted in since: its text and its stack page, each a new zero-filled frame.
    child = [Page(0x40_0000, 0x90_0000), Page(0x7FFF_FFFF_F000, 0x90_1000)]
    story = fork_copied_nothing(CHILD, PARENT, child, PARENT_PAGES)
    assert story.startswith("proc 2 (forktree), forked by proc 1 (forktree), shares no frame with its parent "
                            "and lacks 1 of the 3 pages the parent maps in the regions their records share "
                            "(0x402000 first): fork copied nothing")


def test_a_child_that_shares_or_copied_is_not_named():
    shared = [Page(0x40_0000, 0x80_0000), Page(0x7FFF_FFFF_F000, 0x90_1000)]
    assert fork_copied_nothing(CHILD, PARENT, shared, PARENT_PAGES) is None
    # An eager copy: every page the parent had, each in a frame of the child's own.
    copied = [Page(p.va, p.pa + 0x10_0000) for p in PARENT_PAGES]
    assert fork_copied_nothing(CHILD, PARENT, copied, PARENT_PAGES) is None


def test_only_a_child_whose_record_is_its_parent_s():
    child = [Page(0x40_0000, 0x90_0000)]
    assert fork_copied_nothing(replace(CHILD, parent=3), PARENT, child, PARENT_PAGES) is None
    assert fork_copied_nothing(replace(CHILD, vmas=[TEXT]), PARENT, child, PARENT_PAGES) is None   # exec
    assert fork_copied_nothing(replace(CHILD, vmas=[]), PARENT, child, PARENT_PAGES) is None
    assert fork_copied_nothing(replace(CHILD, vmas=None), PARENT, child, PARENT_PAGES) is None
    assert fork_copied_nothing(CHILD, replace(PARENT, pid=0), child, PARENT_PAGES) is None
    assert fork_copied_nothing(CHILD, PARENT, child, []) is None


def test_a_fault_on_another_process_s_root_names_the_switch():
    from pagoda_pt.diagnose import foreign_root
    sentence = foreign_root("proc 1 (forktree)", "proc 2 (forktree)", 0x365000)
    assert sentence.startswith("proc 1 (forktree) ran in user mode on proc 2 (forktree)'s root 0x365000, "
                               "not its own: a root other than the current process's was made live")
