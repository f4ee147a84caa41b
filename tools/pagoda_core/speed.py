"""How slow this machine is now, so that no test fails for slowness alone.

Two tools, both standard library only:

- factor(): the speed factor, >= 1: how much longer than on the reference machine (the
  project's 2-core machine, quiet) a fixed piece of CPU work takes here, wall clock, measured
  once. `./pagoda test` and `./pagoda grade` measure it at their start and export it as
  PAGODA_SPEED_FACTOR, which every process under them (pytest workers, graders of generated
  trees) reads instead of measuring again. It covers a slower CPU and the load at the start.
  scaled(seconds) is a time limit scaled by it, or by the load factor (the load average over
  the CPU count) when the machine has got busier since; hang guards (pytest timeouts, a
  subprocess's timeout in a test) use it.

- Budget: a deadline that counts only the time the watched processes could run. Wall time
  spent waiting for a CPU (the run-queue delay Linux accounts per thread in
  /proc/<pid>/task/<tid>/schedstat) is given back, so a boot on a machine whose load rises
  mid-test gets the time it lost; a guest that hangs (spinning or halted) still runs out of
  budget. The grader's per-test deadline is one (harness.Booter), and so is a batch grade's
  time limit per submission (batch.Deadline, over the whole process tree). Where schedstat is
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


def load_factor():
    """How much busier than its CPUs the machine is now: the 1-minute load average over the CPU
    count, at least 1."""
    try:
        return max(1.0, min(MAX_FACTOR, os.getloadavg()[0] / (os.cpu_count() or 1)))
    except OSError:
        return 1.0


def scaled(seconds):
    """A time limit of @p seconds on the reference machine, for this machine now: scaled by the
    speed factor, or by the load factor when the machine has become busier since it was
    measured."""
    return seconds * max(factor(), load_factor())


# ---- run-queue delay ----------------------------------------------------------------------

def _thread_delays(pid):
    """{(pid, tid): nanoseconds spent runnable but waiting for a CPU} of @p pid's threads ({}
    when the kernel does not say)."""
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


def _descendants(pids):
    """@p pids and every process below them (from each process's parent in /proc/<pid>/stat)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.append(pid)
            todo += children.get(pid, [])
    return found


class Budget:
    """@p seconds (scaled to this machine) of time the watched processes could run.

    left() is how much is left: the scaled seconds, less the wall time since the start, plus the
    time given back. The delays are sampled every SAMPLE_SECONDS (whenever left() is asked);
    each sample gives back the longest run-queue delay any watched thread had in that interval
    (at most the interval), so delays add up across processes that come and go (the boots of
    one test, the tests of one grade). This process is always watched; watch(pid) adds another
    (a QEMU); with @p tree, every process below the watched ones is watched too (a grader run
    and the QEMUs it starts). Without @p watch_self, only what watch() names."""

    SAMPLE_SECONDS = 0.5

    def __init__(self, seconds, scale=True, tree=False, watch_self=True):
        self.given = seconds
        self.seconds = scaled(seconds) if scale else seconds
        self.tree = tree
        self.start = self._sampled = time.monotonic()
        self._pids = []
        self._last = {}
        self._stolen = 0.0
        if watch_self:
            self.watch(os.getpid())

    def watch(self, pid):
        """Watches @p pid from now on (what its threads waited before does not count)."""
        self._pids.append(pid)
        self._last.update(_thread_delays(pid))

    def sample(self):
        now = time.monotonic()
        pids = _descendants(self._pids) if self.tree else self._pids
        delays = {}
        for pid in pids:
            delays.update(_thread_delays(pid))
        # A thread not seen before was born since the last sample: all its delay is new.
        worst = max((d - self._last.get(key, 0) for key, d in delays.items()), default=0)
        self._stolen += max(0.0, min(worst / 1e9, now - self._sampled))
        self._last, self._sampled = delays, now

    def stolen(self):
        """Seconds given back so far."""
        if time.monotonic() - self._sampled >= self.SAMPLE_SECONDS:
            self.sample()
        return self._stolen

    def left(self):
        """Seconds left; <= 0 once spent."""
        left = self.seconds - (time.monotonic() - self.start) + self.stolen()
        if left <= 0 and time.monotonic() > self._sampled:
            self.sample()      # the last interval may give some back
            left = self.seconds - (time.monotonic() - self.start) + self._stolen
        return left

    def expired(self):
        return self.left() <= 0

    def describe(self):
        """How long the budget was, for a message: "10 s (x1.00 for this machine's speed, +3.2 s
        it waited for a CPU)"."""
        return (f"{self.given:g} s (x{self.seconds / self.given if self.given else 1:.2f} for this machine's "
                f"speed, +{self._stolen:.1f} s it waited for a CPU)")
