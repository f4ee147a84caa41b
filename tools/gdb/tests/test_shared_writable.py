"""fault-why at a kill in lab 6: two roots map one frame and one of them may write it. Which slip
made it writable is told from who holds it writable and QEMU's log: a forked child, both roots,
or a root whose own write fault on that page the log shows, got it from the copy-on-write fault
(it took a shared frame back instead of copying it); the parent alone, with no such fault, was
left writable by fork's share. Pure rules: pagoda_pt.diagnose.shared_writable and
user_write_protect_faults."""
from pagoda_pt.procs import Vma
from dataclasses import dataclass, field
from typing import Optional

from pagoda_pt.diagnose import shared_writable, user_write_protect_faults
from pagoda_pt.frames import ProcessMemory
from pagoda_pt.trees import UserPage
from pagoda_pt.isa import isa

COW = "gave write permission back while the frame was shared"
FORK = "parent was left writable"
STACK = 0x7FFF_FFFF_E000
DATA = 0x40_2000
P_ROOT, C_ROOT = 0x20_0000, 0x30_0000


def proc(pid, name, root, *pages):
    return ProcessMemory(pid, name, root, set(), [UserPage(va, pa, w, False) for va, pa, w in pages])


PARENTS = {1: 0, 2: 1}


def test_a_forked_child_writable_on_a_shared_frame_names_the_copy_on_write_fault():
    parent = proc(1, "forktree", P_ROOT, (STACK, 0x5000, False), (DATA, 0x6000, False))
    child = proc(2, "forktree", C_ROOT, (STACK, 0x5000, True), (DATA, 0x6000, False))
    sentence = shared_writable([parent, child], PARENTS)
    assert COW in sentence and "frame 0x5000" in sentence and "proc 2 (forktree) at 0x7fffffffe000 WRITABLE" in sentence


def test_a_writable_sibling_that_forked_nobody_names_the_copy_on_write_fault():
    """The parent copied its own page since (it no longer maps the frame); the two children share it."""
    parent = proc(1, "forktree", P_ROOT, (STACK, 0x9000, True))
    first = proc(2, "forktree", C_ROOT, (STACK, 0x5000, True))
    second = proc(3, "forktree", 0x40_0000, (STACK, 0x5000, False))
    sentence = shared_writable([parent, first, second], {1: 0, 2: 1, 3: 1}, write_faults=[])
    assert COW in sentence and "proc 2 (forktree) forked none" in sentence
    # A grandchild shares it with its grandparent left writable: fork's (no fault, nothing protected).
    grandparent = proc(1, "forktree", P_ROOT, (STACK, 0x5000, True))
    grandchild = proc(3, "forktree", 0x40_0000, (STACK, 0x5000, False))
    assert FORK in shared_writable([grandparent, grandchild], {1: 0, 2: 1, 3: 2}, write_faults=[])


def test_both_roots_writable_names_the_copy_on_write_fault():
    parent = proc(1, "forktree", P_ROOT, (STACK, 0x5000, True))
    child = proc(2, "forktree", C_ROOT, (STACK, 0x5000, True))
    assert COW in shared_writable([parent, child], PARENTS, write_faults=[])


def test_the_parent_alone_writable_with_no_write_fault_is_fork_leaving_it_writable():
    parent = proc(1, "forktree", P_ROOT, (STACK, 0x5000, True))
    child = proc(2, "forktree", C_ROOT, (STACK, 0x5000, False))
    assert FORK in shared_writable([parent, child], PARENTS, write_faults=[])
    assert FORK in shared_writable([parent, child], PARENTS, write_faults=None)
    # A write fault on the page, in the child's root (x86_64's log names CR3): still fork's.
    assert FORK in shared_writable([parent, child], PARENTS, write_faults=[(STACK, C_ROOT)])


def test_the_parent_writable_after_its_own_write_fault_is_the_copy_on_write_fault():
    parent = proc(1, "forktree", P_ROOT, (STACK, 0x5000, True))
    child = proc(2, "forktree", C_ROOT, (STACK, 0x5000, False))
    assert COW in shared_writable([parent, child], PARENTS, write_faults=[(STACK, P_ROOT)])
    # AArch64's log names no root: the write is the parent's when no process holds a copy there.
    assert COW in shared_writable([parent, child], PARENTS, write_faults=[(STACK, None)])


def test_the_parent_writable_beside_pages_fork_write_protected_is_the_copy_on_write_fault():
    """No log that names it: the two roots also share a page of the parent's writable data region,
    read-only in both, so fork did write-protect the parent; its one writable shared frame came
    from a fault. A read-only shared page of a read-only region (text) says nothing."""
    text = Vma(start=0x40_0000, end=0x40_1000, read=True, write=False, execute=True)
    data = Vma(start=DATA, end=DATA + 0x1000, read=True, write=True, execute=False)
    parent = proc(1, "forktree", P_ROOT, (STACK, 0x5000, True), (DATA, 0x6000, False), (0x40_0000, 0x7000, False))
    child = proc(2, "forktree", C_ROOT, (STACK, 0x5000, False), (DATA, 0x6000, False), (0x40_0000, 0x7000, False))
    sentence = shared_writable([parent, child], PARENTS, write_faults=[], vmas_of={1: [text, data], 2: [text, data]})
    assert COW in sentence and "0x402000" in sentence
    assert FORK in shared_writable([parent, child], PARENTS, write_faults=[], vmas_of={1: [text], 2: [text]})


def test_a_rootless_write_fault_answered_by_a_copy_elsewhere_cannot_be_told():
    """Fork left the parent writable, or the parent's fault took the frame back; the child's write
    at the same address was copied (a grandchild still shares the frame read-only). A log without
    roots cannot say whose the fault at that address was: the sentence says so and names neither."""
    parent = proc(1, "forktree", P_ROOT, (STACK, 0x5000, True))
    child = proc(2, "forktree", C_ROOT, (STACK, 0x9000, True))
    grandchild = proc(3, "forktree", 0x40_0000, (STACK, 0x5000, False))
    parents = {1: 0, 2: 1, 3: 1}
    sentence = shared_writable([parent, child, grandchild], parents, write_faults=[(STACK, None)])
    assert FORK not in sentence and COW not in sentence and "not in which root" in sentence
    # The log names roots (x86_64): the fault was the child's, so fork left the parent writable.
    assert FORK in shared_writable([parent, child, grandchild], parents, write_faults=[(STACK, C_ROOT)])


def test_read_only_sharing_copies_and_held_pages_are_no_finding():
    parent = proc(1, "forktree", P_ROOT, (STACK, 0x5000, False), (DATA, 0x6000, True))
    child = proc(2, "forktree", C_ROOT, (STACK, 0x5000, False), (DATA, 0x7000, True))
    assert shared_writable([parent, child], PARENTS) is None
    # One root mapping a frame twice, writable: not two processes.
    alone = proc(1, "forktree", P_ROOT, (STACK, 0x5000, True), (DATA, 0x5000, True))
    assert shared_writable([alone], PARENTS) is None
    held = ProcessMemory(2, "forktree", C_ROOT, set(), [UserPage(STACK, 0x5000, True, False, held=True)])
    assert shared_writable([proc(1, "forktree", P_ROOT, (STACK, 0x5000, False)), held], PARENTS) is None


@dataclass
class Ev:
    """Stands in for tools/pagoda_core/faultlog.Event (the fields the rule reads)."""
    kind: str
    vector: int
    privilege: int
    error: Optional[int]
    address: Optional[int]
    root: Optional[int] = None
    pc: int = 0x40_1000
    registers: dict = field(default_factory=dict)


def test_x86_user_write_protect_faults_are_present_write_user_page_faults_with_their_root():
    events = [Ev("exception", 14, 3, 0x7, STACK + 0x68, C_ROOT | 0x18),   # P W U: a copy-on-write fault
              Ev("exception", 14, 3, 0x6, DATA, C_ROOT),                  # not present: a demand fault
              Ev("exception", 14, 3, 0x5, DATA, C_ROOT),                  # a read
              Ev("exception", 14, 0, 0x3, STACK, C_ROOT),                 # the kernel's own write
              Ev("exception", 14, 3, 0x15, DATA, C_ROOT),                 # a fetch
              Ev("interrupt", 32, 3, None, None)]
    assert user_write_protect_faults(events, isa("x86_64")) == [(STACK, C_ROOT)]


def test_aarch64_user_write_protect_faults_are_el0_write_permission_aborts():
    perm_write = (0x24 << 26) | (1 << 6) | 0x0F     # data abort from EL0, WnR, permission fault level 3
    translation_write = (0x24 << 26) | (1 << 6) | 0x07
    perm_read = (0x24 << 26) | 0x0F
    events = [Ev("exception", 4, 0, perm_write, STACK + 8),
              Ev("exception", 4, 0, translation_write, DATA),
              Ev("exception", 4, 0, perm_read, DATA),
              Ev("exception", 4, 1, (0x25 << 26) | (1 << 6) | 0x0F, DATA)]
    assert user_write_protect_faults(events, isa("aarch64")) == [(STACK, None)]



def test_an_undecided_frame_gives_way_to_one_no_write_fault_touched():
    """AArch64's log: write faults at STACK (whose, it cannot say), none at DATA. The parent's writable
    DATA frame shared with its child was never faulted on: fork left it writable."""
    parent = proc(1, "forktree", P_ROOT, (STACK, 0x5000, True), (DATA, 0x6000, True))
    child = proc(2, "forktree", C_ROOT, (STACK, 0x9000, True))
    grandchild = proc(3, "forktree", 0x40_0000, (STACK, 0x5000, False), (DATA, 0x6000, False))
    sentence = shared_writable([parent, child, grandchild], {1: 0, 2: 1, 3: 1}, write_faults=[(STACK, None)])
    assert FORK in sentence and "frame 0x6000" in sentence
