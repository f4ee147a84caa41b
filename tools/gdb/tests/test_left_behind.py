"""What a reaped process's teardown left behind (labs 3, 6): pagoda_pt.verdicts.left_behind, from
the process table, the kernel's stack slot table and the published roots (one Leftovers record,
which the grader and fault-why each fill with what they saw); and which of fault-why's
verdicts name nothing wrong with the kernel (program_s_own), past which `why-stops` goes on."""
import re

from pagoda_pt.diagnose import NOTHING_WRONG, UNRESOLVED, program_s_own
from pagoda_pt.roots import KnownRoot
from pagoda_pt.verdicts import Leftovers
from pagoda_pt.verdicts import left_behind as rule

KSTACK_CAUSE = r"teardown does not free .*kernel stacks"
ROOT_CAUSE = r"teardown does not free .*roots"
REAPED_CAUSE = r"reaped without being destroyed"
KERNEL = KnownRoot(0x20_0000, "kernel", "kernel")


def proc(pid, root, name="hello"):
    return KnownRoot(root, name, "process", pid)


def left_behind(live_pids, held_slots, taken_slots, published):
    """The rule over the record as fault-why fills it (faults._leaks): from the live pids, the
    stack slots they hold, the slots taken and the published roots."""
    return rule(Leftovers(stacks=[s for s in taken_slots if s not in held_slots],
                          roots=[k for k in published if k.kind == "process" and k.id not in live_pids]))


def test_nothing_is_left_when_every_stack_and_root_has_its_process():
    """A zombie still holds its stack and root until it is reaped: that is no leak."""
    assert left_behind({1, 2}, {0, 1}, [0, 1], [KERNEL, proc(1, 0x30_0000), proc(2, 0x31_0000)]) is None
    assert left_behind(set(), set(), [], [KERNEL]) is None


def test_a_stack_slot_taken_with_no_process_is_the_teardown_s():
    said = left_behind({4}, {3}, [0, 1, 3], [KERNEL, proc(4, 0x39_5000)])
    assert said is not None and re.search(KSTACK_CAUSE, said) and "slots 0, 1" in said, said
    assert not re.search(ROOT_CAUSE, said) and not re.search(REAPED_CAUSE, said)


def test_a_root_published_for_a_pid_no_process_has_is_the_teardown_s():
    said = left_behind({4}, {3}, [3], [KERNEL, proc(1, 0x35_0000), proc(4, 0x39_5000)])
    assert said is not None and re.search(ROOT_CAUSE, said) and "0x350000" in said, said
    assert not re.search(KSTACK_CAUSE, said)


def test_both_left_is_a_process_reaped_without_being_destroyed():
    said = left_behind(set(), set(), [2], [KERNEL, proc(3, 0x36_7000, "forktree")])
    assert said is not None and re.search(REAPED_CAUSE, said), said


def test_a_freed_slot_that_keeps_its_pid_is_a_reap_without_destroying():
    """The grader's evidence (the table read with its Free slots): the same rule, the same cause."""
    said = rule(Leftovers(freed=[(2, 0x31_0000)], where="guest RAM, at wait's return"))
    assert said.startswith("pid 2's slot of the process table (guest RAM, at wait's return)"), said
    assert re.search(REAPED_CAUSE, said) and "0x310000" in said, said
    assert rule(Leftovers()) is None


def test_which_verdicts_are_the_program_s_own():
    """why-stops goes on past these: nothing wrong, or a kill the record refuses (before lab 5, the
    CPU's refusal), unless a cause of the kernel's came first."""
    user = {"user": True, "decision": "deny"}
    assert program_s_own("verdict: " + NOTHING_WRONG + ": no exception is being handled", None, False)
    assert program_s_own("verdict: proc 3 in ring 3: no VMA covers 0x0: the kernel kills the process", user, False)
    assert program_s_own("verdict: proc 3 in ring 3: a write to a read-only page; " + UNRESOLVED,
                         {"user": True}, False)
    assert not program_s_own("verdict: proc 3 ...", user, True)                       # a kill cause came first
    assert not program_s_own("verdict: the kernel's decision ...", {"user": True, "decision": "wrong"}, False)
    assert not program_s_own("verdict: the kernel panicked: ...", None, False)
    assert not program_s_own(None, user, False)


def test_a_page_writable_and_executable_is_named():
    """lab 3: the kernel never grants both; a loader that maps every segment alike does."""
    from pagoda_pt.frames import ProcessMemory
    from pagoda_pt.trees import UserPage
    text = UserPage(0x40_0000, 0x80_0000, False, True)
    data = UserPage(0x40_1000, 0x80_1000, True, False)
    fine = ProcessMemory(1, "hello", 0x30_0000, pages=[text, data])
    assert wx([fine]) is None
    bad = ProcessMemory(2, "hello", 0x31_0000, pages=[text, UserPage(0x40_2000, 0x80_2000, True, True),
                                                      UserPage(0x40_3000, 0x80_3000, True, True, held=True)])
    said = wx([fine, bad])
    assert said is not None and re.search(r"writable and executable", said) and "proc 2 (hello) maps 0x402000 " in said


def wx(processes):
    """pagoda_pt.verdicts.writable_and_executable over the pages as fault-why fills them (faults._wx_story)."""
    from pagoda_pt.verdicts import writable_and_executable
    return writable_and_executable([("proc %d (%s)" % (m.pid, m.name),
                                     [p.va for p in m.pages if p.writable and p.executable and not p.held])
                                    for m in processes])
