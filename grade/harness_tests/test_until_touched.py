"""Watch.until_touched (pagoda_grade/watch.py), the wait of lab 3's roots_verified for spin to map its spin_stop page,
over a fake guest: only the test's deadline bounds it, never a count of stops.

Why: under load (CI, session 34) roots_verified failed the reference on AArch64 with "0x402018
is not mapped in root 0x401c1000". QEMU's log showed spin preempted at its entry point, before
its first instruction, 30 ticks in a row (each tick fell due while the kernel switched to it),
and the grader gave up after 50 stops. Starving the reference's QEMU (SIGSTOP 60 ms, SIGCONT
1 ms) reproduces it."""
import pytest

from pagoda_grade import watch as watch_module
from pagoda_grade.watch import Watch

SPIN_ROOT = 0x401C1000
STOP_VA = 0x402018


class FakeWalk:
    def __init__(self, mapped):
        self.mapped = mapped


class FakeSnap:
    def __init__(self, mapped, roots):
        self._mapped = mapped
        self.roots = roots

    def walk(self, va, root):
        assert (va, root) == (STOP_VA, SPIN_ROOT)
        return FakeWalk(self._mapped)


class FakeGuest:
    """A guest whose spin maps its page at the @p maps_at-th look (None: never) and whose root
    leaves the registry at the @p ends_at-th look (None: never)."""

    def __init__(self, maps_at=None, ends_at=None):
        self.maps_at, self.ends_at = maps_at, ends_at
        self.looks = 0
        self.pauses = []
        self.waiting = []
        self.quiet = []

    def stop_after(self, seconds, what=None):
        self.pauses.append(seconds)
        self.waiting.append(what)

    def stop_at_any(self, addresses):
        self.quiet.append(tuple(addresses))
        self.looks += 1
        if self.looks > 10_000:
            raise AssertionError("the test's deadline passed")   # (what the real guest's budget does)
        mapped = self.maps_at is not None and self.looks >= self.maps_at
        gone = self.ends_at is not None and self.looks >= self.ends_at
        return FakeSnap(mapped, set() if gone else {SPIN_ROOT})


@pytest.fixture
def watch(monkeypatch):
    monkeypatch.setattr(watch_module, "process_roots", lambda snap, kernel: {r: "spin (pid 1)" for r in snap.roots})
    w = Watch.__new__(Watch)   # (no kernel ELF: only what until_touched reads)
    w.kernel = None
    w.proc = {"switch": "the switch"}
    return w


def test_waits_past_any_count_of_stops(watch):
    # 50 stops were the old bound; a starved spinner may need many more.
    guest = FakeGuest(maps_at=400)
    snap = watch.until_touched(guest, FakeSnap(False, {SPIN_ROOT}), STOP_VA, SPIN_ROOT, "spin to map spin_stop")
    assert snap is not None and snap.walk(STOP_VA, SPIN_ROOT).mapped
    assert guest.looks == 400


def test_each_look_runs_the_guest_free_then_stops_at_a_quiet_point(watch):
    guest = FakeGuest(maps_at=12)
    watch.until_touched(guest, FakeSnap(False, {SPIN_ROOT}), STOP_VA, SPIN_ROOT, "spin to map spin_stop")
    assert set(guest.quiet) == {("the switch", "pagoda::proc::timer_tick")}
    # The free runs grow (a few cheap looks first) up to a cap; the deadline's reason names the wait.
    assert guest.pauses[0] < 0.1 and max(guest.pauses) == 0.5 and guest.pauses == sorted(guest.pauses)
    assert set(guest.waiting) == {"spin to map spin_stop"}


def test_already_mapped_runs_nothing(watch):
    guest = FakeGuest()
    first = FakeSnap(True, {SPIN_ROOT})
    assert watch.until_touched(guest, first, STOP_VA, SPIN_ROOT, "x") is first
    assert guest.looks == 0 and guest.pauses == []


def test_a_process_that_ended_ends_the_wait(watch):
    guest = FakeGuest(ends_at=3)
    assert watch.until_touched(guest, FakeSnap(False, {SPIN_ROOT}), STOP_VA, SPIN_ROOT, "x") is None
    assert guest.looks == 3
