"""How slow this machine is now, so that no test fails for slowness alone (standard library only).

- factor(): the speed factor, >= 1: how much longer than on the reference machine (the project's
  2-core machine, quiet) a fixed piece of CPU work takes here, wall clock, measured once and
  exported (export()) to every process under `./pagoda test` and `./pagoda grade`.
  cpu_factor() counts only its CPU time: the CPU's own slowness. scaled(seconds) is for hang
  guards that cannot see what the machine did to them (pytest timeouts).
- Budget: a deadline that gives back the time the watched work waited for a CPU (the run-queue
  delay in /proc/<pid>/task/<tid>/schedstat), up to GIVE_BACK_CAP: a boot on a machine whose load
  rises mid-test gets the time it lost, and a guest that hangs still runs out. The grader's
  per-test deadline is one (harness.Booter), and so is batch.Deadline.
"""
import os
import resource
import subprocess
import time

ENV = "PAGODA_SPEED_FACTOR"
CPU_ENV = "PAGODA_CPU_FACTOR"
MAX_FACTOR = 50.0
# The calibration work, three rounds of it: the CPU seconds it takes on the reference machine
# (/usr/bin/python3 3.11; on a quiet machine its wall time is its CPU time). Long enough (many
# scheduler time slices) that a loaded machine shows in it.
CALIBRATION_LOOPS = 1_600_000
CALIBRATION_ROUNDS = 3
REFERENCE_SECONDS = 0.29

_factor = None
_cpu_factor = None
_measurement = None       # measure()'s answer, taken at most once in a process
_now = time.monotonic     # the clock budgets read (a test's fake clock replaces it)


def _calibrate():
    """(wall seconds, CPU seconds) of the calibration work."""
    wall, cpu = time.perf_counter(), time.process_time()
    x = 0
    for _ in range(CALIBRATION_ROUNDS):
        for i in range(CALIBRATION_LOOPS):
            x = (x * 31 + i) & 0xFFFF_FFFF
    return time.perf_counter() - wall, time.process_time() - cpu


def _clamp(value):
    return max(1.0, min(MAX_FACTOR, value))


def measure():
    """(speed factor, CPU factor) measured now: the calibration's wall time, and its CPU time,
    over the reference's, each at least 1."""
    wall, cpu = _calibrate()
    return _clamp(wall / REFERENCE_SECONDS), _clamp(cpu / REFERENCE_SECONDS)


def _from_env(name):
    try:
        return _clamp(float(os.environ[name]))
    except (KeyError, ValueError):
        return None


def _measured():
    """(speed factor, CPU factor) from one calibration in this process: both factors read it."""
    global _measurement
    if _measurement is None:
        _measurement = measure()
    return _measurement


def factor():
    """The speed factor: $PAGODA_SPEED_FACTOR when set (by whoever started us), else measured
    once in this process."""
    global _factor
    if _factor is None:
        _factor = _from_env(ENV) or _measured()[0]
    return _factor


def cpu_factor():
    """How much slower than the reference machine's this CPU is while it runs (time spent waiting
    for it not counted), at most the speed factor; budgets are scaled by it. $PAGODA_CPU_FACTOR
    when set; else, when only $PAGODA_SPEED_FACTOR is (set by hand: docs/platforms.md), that;
    else measured once in this process, with the speed factor."""
    global _cpu_factor
    if _cpu_factor is None:
        value = _from_env(CPU_ENV) or _from_env(ENV) or _measured()[1]
        _cpu_factor = min(value, factor())
    return _cpu_factor


def export():
    """Measures both factors (unless set already) and puts them in this process's environment,
    so children inherit them; returns the speed factor."""
    value, cpu = factor(), cpu_factor()     # both before either is set: cpu_factor() reads ENV
    os.environ[ENV] = f"{value:.2f}"
    os.environ[CPU_ENV] = f"{cpu:.2f}"
    return value


def load_factor():
    """How much busier than its CPUs the machine is now: the 1-minute load average over the CPU
    count, at least 1."""
    try:
        return _clamp(os.getloadavg()[0] / (os.cpu_count() or 1))
    except OSError:
        return 1.0


def scaled(seconds):
    """A time limit of @p seconds on the reference machine, for this machine now: scaled by the
    speed factor, or by the load factor when the machine has become busier since it was
    measured."""
    return seconds * max(factor(), load_factor())


# ---- run-queue delay ----------------------------------------------------------------------

# The most a budget gives back, as a multiple of its seconds: a budget of B seconds lasts at
# most (1 + GIVE_BACK_CAP) x B of wall time, whatever the load, so a hanging kernel costs a
# bounded time. Why 8 cannot fail a correct kernel at four busy processes per core: Linux's
# scheduler shares a core fairly among runnable threads of equal weight (and, with autogroup,
# among sessions, which only helps ours), so with k busy processes per core the worker runs at
# least 1/(k + 1) of the time it wants a CPU: it waits at most k seconds for each second it
# runs. Until a correct kernel is done, its worker has run (or slept) for less than B, so at
# most k x B is given back: 4 x B at four busy processes per core, half the cap. The other half
# is room for the grader's own threads and for as much load again from elsewhere; only beyond
# about 8 busy processes per core can a test that needs its whole budget run out of it.
GIVE_BACK_CAP = 8.0


def _thread_stats(pid):
    """{(pid, tid): (nanoseconds on a CPU, nanoseconds runnable but waiting for one)} of @p
    pid's threads ({} when the kernel does not say)."""
    stats = {}
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return stats
    for tid in tids:
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                fields = f.read().split()
            stats[(pid, int(tid))] = (int(fields[0]), int(fields[1]))
        except (OSError, ValueError, IndexError):
            pass
    return stats


def give_back(before, after, interval):
    """Seconds one sample interval of @p interval seconds gives back, from the threads' schedstat
    counters at its start (@p before) and end (@p after), {(pid, tid): (run ns, wait ns)}: the
    run-queue wait of the interval's worker, the thread that wanted a CPU most in it (ran plus
    waited the longest; on a tie, the one that waited longer), at most the interval. A thread
    not in @p before was born since: all its counts are new. Other threads' waits are not
    given back: a QEMU's helper threads, the grader's idle wake-ups and a build's small jobs
    wait a little often, and giving back the worst of them made nearly every interval count
    whole on a busy machine."""
    worker = (0, 0)
    for key, (run, wait) in after.items():
        run0, wait0 = before.get(key, (0, 0))
        ran, waited = max(0, run - run0), max(0, wait - wait0)
        if (ran + waited, waited) > (worker[0] + worker[1], worker[1]):
            worker = (ran, waited)
    return max(0.0, min(worker[1] / 1e9, interval))


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
    """@p seconds (on the reference machine, scaled by cpu_factor(), not by the load: the
    give-back answers for that) of time the watched work could run.

    left() is the scaled seconds, less the wall time since the start, plus what is given back
    (at most GIVE_BACK_CAP x the scaled seconds): every SAMPLE_SECONDS, its worker's run-queue
    wait (give_back()). This process is watched unless not @p watch_self; watch(pid) adds one
    (a QEMU); with @p tree, every process below the watched ones too."""

    SAMPLE_SECONDS = 0.5

    def __init__(self, seconds, scale=True, tree=False, watch_self=True):
        self.given = seconds
        self.seconds = seconds * cpu_factor() if scale else seconds
        self.cap = GIVE_BACK_CAP * self.seconds
        self.tree = tree
        self.start = self._sampled = _now()
        self._pids = []
        self._last = {}
        self._stolen = 0.0
        if watch_self:
            self.watch(os.getpid())

    def watch(self, pid):
        """Watches @p pid from now on (what its threads did before does not count)."""
        self._pids.append(pid)
        self._last.update(_thread_stats(pid))

    def sample(self):
        now = _now()
        pids = _descendants(self._pids) if self.tree else self._pids
        stats = {}
        for pid in pids:
            stats.update(_thread_stats(pid))
        self._stolen = min(self.cap, self._stolen + give_back(self._last, stats, now - self._sampled))
        self._last, self._sampled = stats, now

    def stolen(self):
        """Seconds given back so far."""
        if _now() - self._sampled >= self.SAMPLE_SECONDS:
            self.sample()
        return self._stolen

    def left(self):
        """Seconds left; <= 0 once spent."""
        left = self.seconds - (_now() - self.start) + self.stolen()
        if left <= 0 and _now() > self._sampled:
            self.sample()      # the last interval may give some back
            left = self.seconds - (_now() - self.start) + self._stolen
        return left

    def describe(self):
        """How long the budget was, for a message: "10 s (x1.00 for this machine's speed, +3.2 s
        it waited for a CPU)", and when the give-back reached its cap, that it did."""
        capped = (f", the most a budget gives back ({GIVE_BACK_CAP:g}x its time)"
                  if self.cap and self._stolen >= self.cap else "")
        return (f"{self.given:g} s (x{self.seconds / self.given if self.given else 1:.2f} for this machine's "
                f"speed, +{self._stolen:.1f} s it waited for a CPU{capped})")


def cpu_seconds():
    """CPU time (user + system) of this process and of its children that have ended."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_logged(argv, log, **popen_args):
    """Runs @p argv, its output appended to the open file @p log, and reaps it with wait4:
    (its exit code, the CPU seconds it and every process under it that ended used). An
    exception while it runs (a Ctrl-C) kills it first."""
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **popen_args)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime
