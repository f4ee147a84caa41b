"""A witnessed boot whose guest idles with nothing that can run again ends at once (idle.py): the
rule over the process table, and the run of idle interrupts in QEMU's log that makes the grader
read it. (Measured on lab6/exit-keeps-orphans: orphan_wait ended after 3 s instead of ~136 s.)"""
import types

from pagoda_core.faultlog import EXCEPTION, INTERRUPT, SOFTWARE
from pagoda_grade.idle import IDLE_STOP, IdleWatch, nothing_can_run
from pagoda_pt.procs import Proc as Rec

READY, RUNNING, SLEEPING, ZOMBIE, WAITING = 1, 2, 3, 4, 5
F = types.SimpleNamespace(ready=READY, running=RUNNING, zombie=ZOMBIE, waiting=WAITING, sleeping=SLEEPING,
                          stack_base=0x100000, stride=0x10000)
IDLE = (0x1000, 0x1040)


def rec(pid, parent, state):
    return Rec(pid, pid, parent, state, "forktree", pid)


def test_only_waiters_and_zombies_with_parents_can_never_run():
    stuck = [rec(1, 0, WAITING), rec(4, 3, ZOMBIE)]
    reason = nothing_can_run(F, stuck)
    assert reason.startswith(IDLE_STOP)
    assert "pid 1 (forktree) waits" in reason and "pid 4 (forktree) has ended" in reason and "pid 3, gone" in reason
    assert "an orphan nothing will reap" in reason and "orphan" not in nothing_can_run(F, [rec(1, 0, WAITING),
                                                                                        rec(4, 1, ZOMBIE)])
    # Anything that still moves: a process ready, running or asleep (a reader of the console
    # sleeps a tick at a time), a zombie the idle loop reaps (no parent), no process at all.
    for moving in (READY, RUNNING, SLEEPING):
        assert nothing_can_run(F, stuck + [rec(7, 1, moving)]) is None
    assert nothing_can_run(F, [rec(1, 0, WAITING), rec(2, 0, ZOMBIE)]) is None
    assert nothing_can_run(F, []) is None


def event(kind, pc, privilege=0, sp=None, root=None, index=0, vector=0x20):
    return types.SimpleNamespace(kind=kind, pc=pc, privilege=privilege, sp=sp, root=root, index=index, vector=vector)


def watch(monkeypatch, table):
    """An IdleWatch over the idle span IDLE, 3 interrupts in a row, whose process table is @p table."""
    import pagoda_grade.procaudit as procaudit
    monkeypatch.setattr(procaudit, "read_procs", lambda read_phys, facts: table)
    return IdleWatch([IDLE], F, lambda pa, size: b"", ticks=3)


def test_the_table_is_read_after_enough_idle_interrupts_in_a_row(monkeypatch):
    w = watch(monkeypatch, [rec(1, 0, WAITING)])
    events = [event(INTERRUPT, 0x1010), event(INTERRUPT, 0x1010)]
    assert w.feed(events) is None                           # two in a row: not yet
    events += [event(SOFTWARE, 0x400000), event(INTERRUPT, 0x1010), event(INTERRUPT, 0x1020)]
    assert w.feed(events) is None                           # a system call between: two again
    events += [event(INTERRUPT, 0x5000)]
    assert w.feed(events) is None                           # an interrupt elsewhere: none
    events += [event(INTERRUPT, 0x1000)] * 3
    assert w.feed(events).startswith(IDLE_STOP)             # three in a row: the table says
    events += [event(EXCEPTION, 0x1010)] + [event(INTERRUPT, 0x1010)] * 2
    assert w.feed(events) is None


def test_a_table_that_still_moves_lets_the_boot_go_on(monkeypatch):
    w = watch(monkeypatch, [rec(1, 0, WAITING), rec(2, 1, SLEEPING)])
    assert w.feed([event(INTERRUPT, 0x1010)] * 10) is None


def test_a_process_left_running_while_the_cpu_idles_is_named(monkeypatch):
    """A Running process while the CPU idles with no current process: the scheduler picks only
    Ready ones, so it never runs again (slip lab3/schedule-lone-process-to-idle)."""
    import pagoda_grade.procaudit as procaudit
    from pagoda_grade.idle import left_running
    table = [rec(1, 0, RUNNING)]
    monkeypatch.setattr(procaudit, "read_current", lambda read_phys, facts, recs: (None, 0))
    reason = left_running(F, table, None)
    assert reason.startswith(IDLE_STOP) and "pid 1 (forktree) is Running" in reason and "idle loop" in reason
    assert left_running(F, [rec(1, 0, SLEEPING)], None) is None
    # A process that waits in the kernel (a self-test, a system call that sleeps there) is current.
    monkeypatch.setattr(procaudit, "read_current", lambda read_phys, facts, recs: (recs[0], 0xffff0000))
    assert left_running(F, table, None) is None


def test_a_process_left_running_after_a_tick_in_its_kernel_code_names_kernel_preemption(monkeypatch):
    """Slip lab3/preempt-any-running-process: a tick in a system call switched the process out, and
    it stays Running. x86_64's log shows the interrupt's RSP (on that process's kernel stack) and
    CR3; the rule names kernel preemption only when the process never ran in user mode after it."""
    import pagoda_grade.procaudit as procaudit
    monkeypatch.setattr(procaudit, "read_current", lambda read_phys, facts, recs: (None, 0))
    table = [rec(2, 0, RUNNING)]            # (its kernel stack is slot 2: 0x120000-0x130000)
    w = watch(monkeypatch, table)

    def log(*events):                       # (a log's events are numbered in order)
        for i, e in enumerate(events):
            e.index = i
        return list(events) + [event(INTERRUPT, 0x1010, index=len(events) + i) for i in range(3)]

    def tick(sp=0x12ff00):
        return event(INTERRUPT, 0x8000, sp=sp, root=0x5000)

    def user():
        return event(INTERRUPT, 0x400000, privilege=3, sp=0x7fff00, root=0x5000)

    assert "kernel code was preempted" in w.feed(log(user(), tick())).split(";")[0]
    w = watch(monkeypatch, table)           # seen in user mode after the tick: another cause
    assert "kernel code was preempted" not in w.feed(log(tick(), user()))
    w = watch(monkeypatch, table)           # a tick on another process's kernel stack: not its
    assert "kernel code was preempted" not in w.feed(log(user(), tick(0x13ff00)))


def test_a_console_reader_waits_forever_only_once_the_grader_types_no_more(monkeypatch):
    """The process sleeping in read() (the console's held line names it) may still get a line
    while the witness script runs; after it nothing is typed (slip lab4/copy_to_user_ignores_bytes_left:
    badptr's bad buffer passed for good, it waited for input until the deadline)."""
    import pagoda_grade.procaudit as procaudit
    table = [rec(1, 0, WAITING), rec(2, 1, SLEEPING)]
    monkeypatch.setattr(procaudit, "read_procs", lambda read_phys, facts: table)
    held = {"reader": 2}
    w = IdleWatch([IDLE], F, lambda pa, size: held["reader"].to_bytes(size, "little") if pa == 0x9000 else b"",
                  ticks=3, reader=0x9000)
    events = [event(INTERRUPT, 0x1010)] * 3
    assert w.feed(events) is None                           # the grader may still type
    events += [event(INTERRUPT, 0x1010)] * 2
    assert w.feed(events) is None and w.run == 2
    w.no_more_input()
    events += [event(INTERRUPT, 0x1010)]
    assert w.feed(events) is None                           # counted afresh: a line typed last still comes
    events += [event(INTERRUPT, 0x1010)] * 2
    reason = w.feed(events)
    assert reason.startswith(IDLE_STOP) and "pid 2 (forktree) waits for console input the grader never types" \
        in reason and "pid 1 (forktree) waits" in reason
    # Not the reader (another sleeper, no reader at all), or the reader not asleep: it still moves.
    for reader, state in ((3, SLEEPING), (0, SLEEPING), (2, READY)):
        held["reader"], table[1] = reader, rec(2, 1, state)
        events += [event(INTERRUPT, 0x1010)] * 3
        assert w.feed(events) is None, (reader, state)
    # A kernel that does not say where its reader is: the rule is off.
    w.reader, held["reader"], table[1] = None, 2, rec(2, 1, SLEEPING)
    events += [event(INTERRUPT, 0x1010)] * 3
    assert w.feed(events) is None
