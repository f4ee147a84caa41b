"""How slow this machine is now, so that no test fails for slowness alone.

Two tools, both standard library only:

- factor(): the speed factor, >= 1: how much longer than on the reference machine (the
  project's 2-core machine, quiet) a fixed piece of CPU work takes here, wall clock, measured
  once. `./pagoda test` and `./pagoda grade` measure it at their start and export it as
  PAGODA_SPEED_FACTOR, which every process under them (pytest workers, graders of generated
  trees) reads instead of measuring again. It covers a slower CPU and the load at the start.
  scaled(seconds) is a time limit scaled by it; hang guards (pytest timeouts, a subprocess's
  timeout in a test) use it.

- Budget: a deadline that counts only the time the watched processes could run. Wall time
  spent waiting for a CPU (the run-queue delay Linux accounts per thread in
  /proc/<pid>/task/<tid>/schedstat) is given back, so a boot on a machine whose load rises
  mid-test gets exactly the time it lost; a guest that hangs (spinning or halted) still runs
  out of budget. The grader's per-test deadline is one (harness.Booter). Where schedstat is
  not there, a Budget is a plain scaled deadline.
"""
import os
import time

ENV = "PAGODA_SPEED_FACTOR"
MAX_FACTOR = 50.0
# The calibration work, three rounds of it: the CPU seconds it takes on the reference machine
# (/usr/bin/python3 3.11; on a quiet machine its wall time is its CPU time). Long enough (many
# scheduler time slices) that a loaded machine shows in it.
CALIBRATION_LOOPS = 1_600_000
CALIBRATION_ROUNDS = 3
REFERENCE_SECONDS = 0.29

_factor = None


def _calibrate():
    """Wall seconds of the calibration work."""
    start = time.perf_counter()
    x = 0
    for _ in range(CALIBRATION_ROUNDS):
        for i in range(CALIBRATION_LOOPS):
            x = (x * 31 + i) & 0xFFFF_FFFF
    return time.perf_counter() - start


def measure():
    """The speed factor measured now: calibration wall time over the reference's, at least 1."""
    return max(1.0, min(MAX_FACTOR, _calibrate() / REFERENCE_SECONDS))


def factor():
    """The speed factor: $PAGODA_SPEED_FACTOR when set (by whoever started us), else measured
    once in this process."""
    global _factor
    if _factor is None:
        try:
            _factor = max(1.0, min(MAX_FACTOR, float(os.environ[ENV])))
        except (KeyError, ValueError):
            _factor = measure()
    return _factor


def export():
    """Measures the factor (unless set already) and puts it in this process's environment, so
    children inherit it; returns it."""
    value = factor()
    os.environ[ENV] = f"{value:.2f}"
    return value


def scaled(seconds):
    """A time limit of @p seconds on the reference machine, for this machine."""
    return seconds * factor()


# ---- run-queue delay ----------------------------------------------------------------------

def _thread_delays(pid):
    """{tid: nanoseconds spent runnable but waiting for a CPU} of @p pid's threads ({} when the
    kernel does not say)."""
    delays = {}
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return delays
    for tid in tids:
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                delays[(pid, int(tid))] = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            pass
    return delays


class Budget:
    """@p seconds (scaled by the speed factor) of time the watched processes could run.

    left() is how much is left: the scaled seconds, less the wall time since the start, plus
    the longest run-queue delay any watched thread has had since (the time the slowest of them
    was kept from running). This process is always watched; watch(pid) adds another (a QEMU)."""

    def __init__(self, seconds, scale=True):
        self.given = seconds
        self.seconds = scaled(seconds) if scale else seconds
        self.start = time.monotonic()
        self._base = {}
        self._pids = []
        self._stolen = 0.0
        self.watch(os.getpid())

    def watch(self, pid):
        self._pids.append(pid)
        for key, delay in _thread_delays(pid).items():
            self._base.setdefault(key, delay)

    def stolen(self):
        """Seconds of run-queue delay given back so far (never decreases)."""
        for pid in self._pids:
            for key, delay in _thread_delays(pid).items():
                base = self._base.setdefault(key, 0 if pid != os.getpid() else delay)
                self._stolen = max(self._stolen, (delay - base) / 1e9)
        return self._stolen

    def left(self):
        """Seconds left; <= 0 once spent. Cheap while far from the end: the delays are read
        only when wall time alone would have spent the budget."""
        left = self.seconds - (time.monotonic() - self.start)
        if left > 0:
            return left + self._stolen
        return left + self.stolen()

    def expired(self):
        return self.left() <= 0

    def describe(self):
        """How long the budget was, for a message: "10 s (x1.00 for this machine's speed, +3.2 s
        it waited for a CPU)"."""
        return (f"{self.given:g} s (x{self.seconds / self.given if self.given else 1:.2f} for this machine's "
                f"speed, +{self.stolen():.1f} s it waited for a CPU)")
