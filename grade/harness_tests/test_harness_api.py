"""The harness a lab test is written on (pagoda_grade/labtest.py), over a fake guest: the typed
events a ProcTest and a Trace give (Call, Return, Death, At), and what a test's checks do."""
import pytest

from pagoda_grade import labtest
from pagoda_grade.labtest import At, Call, Death, LabTest, ProcTest, Return, Trace
from pagoda_grade.watch import syscall_number

ENTRY, TICK, BACK, KBACK, EXIT = 0x1000, 0x2000, 0x400100, 0xffff0100, 0x3000
PARENT, CHILD = 0x10000, 0x20000
PROC = {"syscall_entry": ENTRY, "syscall_number": "rax", "syscall_args": ("rdi", "rsi", "rdx", "r10", "r8", "r9"),
        "syscall_return_pc": "rcx", "syscall_result": "rax"}


class Snap:
    def __init__(self, pc, root, **registers):
        self.pc, self.lower_root, self.registers = pc, root, registers

    def register(self, name):
        return self.registers.get(name, 0)

    def read_virt(self, va, size, root=None):
        return b"x" * size


class Guest:
    """Stops at the snapshots it is given, in order, checking each is one the trace asked for."""

    def __init__(self, snaps):
        self.snaps, self.asked = list(snaps), []

    def stop_at_any(self, addresses):
        self.asked.append(set(addresses))
        snap = self.snaps.pop(0)
        assert snap.pc in addresses, (hex(snap.pc), [hex(a) for a in addresses])
        return snap

    def stop_at(self, address):
        return self.stop_at_any([address])


class Deaths:
    exit_at, exec_at = EXIT, EXIT + 1

    def __init__(self):
        self.moments = []

    def addresses(self):
        return [self.exit_at, self.exec_at, TICK]

    def take(self, snap):
        if snap.pc == TICK:
            return True   # (a stop the deaths take too, as they do fork_process: the test's At still comes)
        if snap.pc != self.exit_at:
            return False
        self.moments.append(f"exit of {snap.lower_root:#x}")
        return True


def proc_test(snaps):
    t = object.__new__(ProcTest)
    t.kernel, t.proc, t.names, t.guest = None, PROC, {}, Guest(snaps)
    return t


def test_a_trace_gives_calls_the_returns_it_follows_deaths_and_stops_as_types(monkeypatch):
    monkeypatch.setattr(labtest, "return_address", lambda snap: KBACK)   # (where a kernel function returns)
    fork, wait = syscall_number("Fork"), syscall_number("Wait")
    t = proc_test([Snap(ENTRY, PARENT, rax=fork, rcx=BACK), Snap(EXIT, CHILD), Snap(TICK, CHILD),
                   Snap(BACK, CHILD, rax=0), Snap(BACK, PARENT, rax=(1 << 64) - 10),
                   Snap(ENTRY, PARENT, rax=wait, rcx=BACK, rdi=7), Snap(KBACK, CHILD, rax=5)])
    trace = Trace(t, deaths=Deaths(), at=[TICK], deaths_too=True)
    seen = []
    for ev in trace.events(6):
        match ev:
            case Call(name="Fork"):
                trace.follow(ev, "forked")
            case Call(name="Wait", args=(7, *_)):
                trace.follow_function(ev.snap, "waited", any_root=True)
            case Return(why="forked", result=result):
                seen.append(("fork returned", result))
            case Return(why="waited", result=result):
                seen.append(("wait returned", result))
                break
            case Death(moment=moment):
                seen.append(moment)
            case At(address=address):
                seen.append(("at", address))
    # (the child's arrival at BACK is not the parent's return: only the parent's root is followed)
    assert seen == [f"exit of {CHILD:#x}", ("at", TICK), ("fork returned", -10), ("wait returned", 5)]


def test_a_trace_that_sees_too_many_stops_says_so():
    t = proc_test([Snap(ENTRY, PARENT, rax=syscall_number("Write"))] * 3)
    with pytest.raises(AssertionError, match="followed 3 stops"):
        list(Trace(t).events(3))


def test_call_takes_the_next_call_of_a_name_that_holds_and_says_when_none_came():
    write, yield_ = syscall_number("Write"), syscall_number("Yield")
    t = proc_test([Snap(ENTRY, PARENT, rax=yield_), Snap(ENTRY, PARENT, rax=write, rsi=0x5000, rdx=4),
                   Snap(ENTRY, CHILD, rax=write, rsi=0x5000, rdx=4)])
    c = t.call("Write", where=lambda c: c.root == CHILD)
    assert (c.name, c.root, c.args[1], c.written()) == ("Write", CHILD, 0x5000, b"xxxx")
    t.guest = Guest([Snap(ENTRY, PARENT, rax=yield_)] * 2)
    with pytest.raises(AssertionError, match=f"no system call numbered \\[{write}\\] in 2 calls"):
        t.call("Write", limit=2)


def test_check_fails_with_the_first_problem_and_nothing_else():
    t = object.__new__(LabTest)
    failed = []
    t.fail = failed.append
    t.check(None, "", False, [])
    assert failed == []
    t.check(None, 1 > 2 and "no", "the first", "the second")
    assert failed == ["the first", "the second"]   # (fail() raises in a test: only the first is seen)
