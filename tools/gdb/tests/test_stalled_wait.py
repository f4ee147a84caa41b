"""fault-why on a machine that idles with work left (pagoda_pt.procaudit.stalled_wait): a parent
waiting in wait() for a child that has already ended is named; anything that can still run, or
a child still on its way out, is not a stall."""
from pagoda_pt.procaudit import stalled_wait
from pagoda_pt.procs import Proc


def row(pid, state, parent=0, name="p", current=False):
    return Proc(pid=pid, name=name, state_word=state, parent=parent, current=current)


def test_a_parent_waiting_for_a_zombie_child_is_named():
    rows = [row(1, "waiting", name="forktest"), row(2, "zombie", parent=1, name="forktest"),
            row(3, "sleeping", parent=1)]
    sentence = stalled_wait(rows)
    assert sentence.startswith("nothing can run: proc 1 (forktest) waits in wait() while its child "
                               "proc 2 (forktest) has already ended")
    assert "did not wake the waiting parent" in sentence


def test_a_machine_that_can_still_run_is_not_stalled():
    for other in ("ready", "running"):
        assert stalled_wait([row(1, "waiting"), row(2, "zombie", parent=1), row(3, other)]) is None


def test_a_zombie_that_is_still_the_current_process_is_on_its_way_out():
    assert stalled_wait([row(1, "waiting"), row(2, "zombie", parent=1, current=True)]) is None


def test_waiting_for_a_child_that_has_not_ended_is_not_a_stall():
    assert stalled_wait([row(1, "waiting"), row(2, "sleeping", parent=1)]) is None
    # Another process's zombie is not this parent's business.
    assert stalled_wait([row(1, "waiting"), row(2, "waiting"), row(3, "zombie", parent=2),
                         row(4, "sleeping", parent=1)]).startswith("nothing can run: proc 2 ")
    assert stalled_wait([]) is None
