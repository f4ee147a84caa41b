"""speed.py: the speed factor, run-queue budgets, and the pytest guard plugin (pytest_speed.py)."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

from pagoda_core import paths, speed


@pytest.fixture
def fresh_factor(monkeypatch):
    monkeypatch.setattr(speed, "_factor", None)
    monkeypatch.setattr(speed, "_cpu_factor", None)
    monkeypatch.setattr(speed, "_measurement", None)
    monkeypatch.delenv(speed.CPU_ENV, raising=False)
    return monkeypatch


def test_the_factor_comes_from_the_environment_and_is_clamped(fresh_factor):
    fresh_factor.setattr(speed, "load_factor", lambda: 1.0)
    fresh_factor.setenv(speed.ENV, "3.5")
    assert speed.factor() == 3.5 and speed.scaled(10) == 35
    fresh_factor.setattr(speed, "_factor", None)
    fresh_factor.setenv(speed.ENV, "0.2")        # never shorter than on the reference machine
    assert speed.factor() == 1.0


def test_a_bad_value_is_measured_instead(fresh_factor):
    fresh_factor.setenv(speed.ENV, "fast")
    fresh_factor.setattr(speed, "measure", lambda: (7.0, 1.5))
    assert speed.factor() == 7.0 and speed.cpu_factor() == 1.5


def test_export_hands_both_factors_to_children(fresh_factor):
    fresh_factor.delenv(speed.ENV, raising=False)
    fresh_factor.setattr(speed, "measure", lambda: (2.25, 1.25))
    assert speed.export() == 2.25
    out = subprocess.run([paths.SYSTEM_PYTHON, "-c", "import os; print(os.environ['PAGODA_SPEED_FACTOR'], "
                          "os.environ['PAGODA_CPU_FACTOR'])"], capture_output=True, text=True)
    assert out.stdout.split() == ["2.25", "1.25"]


def test_measuring_tracks_the_calibration_time(fresh_factor):
    """Wall time gives the speed factor, CPU time the CPU factor: a loaded machine's calibration
    takes 4x the reference's wall time but only its CPU time."""
    ref = speed.REFERENCE_SECONDS
    fresh_factor.setattr(speed, "_calibrate", lambda: (ref * 4, ref * 1.0))
    assert speed.measure() == (pytest.approx(4.0), pytest.approx(1.0))
    fresh_factor.setattr(speed, "_calibrate", lambda: (ref / 3, ref / 3))
    assert speed.measure() == (1.0, 1.0)


def test_the_cpu_factor_comes_from_the_environment_or_the_speed_factor_set_by_hand(fresh_factor):
    fresh_factor.setattr(speed, "measure", lambda: pytest.fail("measured although set"))
    fresh_factor.setenv(speed.ENV, "4")
    fresh_factor.setenv(speed.CPU_ENV, "1.5")
    assert speed.cpu_factor() == 1.5
    fresh_factor.setattr(speed, "_cpu_factor", None)
    fresh_factor.delenv(speed.CPU_ENV)           # only the speed factor (docs/platforms.md): budgets follow it
    assert speed.cpu_factor() == 4.0
    fresh_factor.setattr(speed, "_cpu_factor", None)
    fresh_factor.setenv(speed.CPU_ENV, "9")      # never more than the speed factor
    assert speed.cpu_factor() == 4.0


class FakeMachine:
    """A fake clock and fake schedstat counters for budgets: threads[(pid, tid)] = [run s, wait s]."""

    def __init__(self, monkeypatch):
        self.now = 1000.0
        self.threads = {}
        monkeypatch.setattr(speed, "_now", lambda: self.now)
        monkeypatch.setattr(speed, "_thread_stats", lambda pid: {
            key: (int(run * 1e9), int(wait * 1e9)) for key, (run, wait) in self.threads.items() if key[0] == pid})
        monkeypatch.setattr(speed, "_descendants", lambda pids: sorted({key[0] for key in self.threads} | set(pids)))

    def advance(self, seconds, **work):
        """@p seconds pass; each named thread ("t<pid>_<tid>") ran and waited as given (run, wait)."""
        self.now += seconds
        for name, (run, wait) in work.items():
            pid, tid = map(int, name[1:].split("_"))
            counts = self.threads.setdefault((pid, tid), [0.0, 0.0])
            counts[0] += run
            counts[1] += wait


@pytest.fixture
def machine(monkeypatch):
    return FakeMachine(monkeypatch)


def test_the_workers_waits_are_given_back(machine):
    """A spinning vCPU thread that gets a fifth of a core: 0.4 s of each 0.5 s is given back."""
    budget = speed.Budget(2.0, scale=False, watch_self=False)
    budget.watch(7)
    for _ in range(10):
        machine.advance(0.5, t7_2=(0.1, 0.4), t7_1=(0.001, 0.002))
        budget.left()
    assert budget.stolen() == pytest.approx(4.0)
    assert budget.left() == pytest.approx(2.0 - 5.0 + 4.0)
    assert "+4.0 s it waited for a CPU)" in budget.describe()


def test_other_threads_waits_are_not_given_back(machine):
    """QEMU's vCPU thread runs 0.45 s of each 0.5 s; its main loop and the grader wake often and
    wait 0.3 s in all, running little: only the vCPU's 0.05 s is given back."""
    budget = speed.Budget(2.0, scale=False, watch_self=False)
    budget.watch(7)
    budget.watch(8)
    for _ in range(4):
        machine.advance(0.5, t7_2=(0.45, 0.05), t7_1=(0.01, 0.3), t8_8=(0.02, 0.3))
        budget.left()
    assert budget.stolen() == pytest.approx(0.2)
    assert budget.left() == pytest.approx(0.2)


def test_the_worker_is_chosen_per_interval(machine):
    """While the guest is stopped the grader's thread does the work (a page walk): its waits
    are given back then; once the guest runs again, the vCPU's are."""
    budget = speed.Budget(5.0, scale=False, watch_self=False)
    budget.watch(7)
    budget.watch(8)
    machine.advance(0.5, t7_2=(0.0, 0.0), t8_8=(0.2, 0.3))
    budget.left()
    machine.advance(0.5, t7_2=(0.25, 0.25), t8_8=(0.0, 0.01))
    budget.left()
    assert budget.stolen() == pytest.approx(0.55)


def test_a_thread_born_since_gives_back_what_it_waited_and_processes_add_up(machine):
    """Each boot's QEMU is new: a thread not seen before counts from its birth, and the waits of
    boots that came and went add up in a tree budget."""
    budget = speed.Budget(1.0, scale=False, tree=True, watch_self=False)
    budget.watch(5)
    machine.advance(0.5, t9_9=(0.1, 0.25))
    budget.left()
    del machine.threads[(9, 9)]
    machine.advance(0.5, t10_10=(0.2, 0.3))
    budget.left()
    assert budget.stolen() == pytest.approx(0.55)


def test_an_interval_gives_back_at_most_its_own_length(machine):
    budget = speed.Budget(0.1, scale=False, watch_self=False)
    budget.watch(7)
    machine.advance(0.2, t7_1=(0.0, 50.0))      # a nonsense delay cannot buy 50 s
    assert budget.left() == pytest.approx(0.1)


def test_the_give_back_is_capped_so_a_hang_ends(machine):
    """A hanging guest on a machine so busy that every interval is waited whole: the budget of
    B seconds still ends, after (1 + GIVE_BACK_CAP) x B of wall time."""
    budget = speed.Budget(2.0, scale=False, watch_self=False)
    budget.watch(7)
    wall = 0.0
    while budget.left() > 0:
        machine.advance(0.5, t7_2=(0.0, 0.5))
        wall += 0.5
        assert wall < 100, "the budget never ran out"
    assert wall == pytest.approx((1 + speed.GIVE_BACK_CAP) * 2.0, abs=0.5)
    assert f"the most a budget gives back ({speed.GIVE_BACK_CAP:g}x its time)" in budget.describe()


def test_four_busy_processes_per_core_stay_under_the_cap(machine):
    """The cap's promise: a worker sharing its core fairly with four busy processes runs a fifth of
    the time; a correct kernel that needs its whole budget of running still finishes in it."""
    budget = speed.Budget(3.0, scale=False, watch_self=False)
    budget.watch(7)
    ran = 0.0
    while ran < 3.0 - 1e-9:
        assert budget.left() > 0, f"ran out after {ran:.1f} s of running"
        machine.advance(0.5, t7_2=(0.1, 0.4))
        ran += 0.1
    assert budget.stolen() == pytest.approx(12.0) == pytest.approx(budget.cap / 2)


def test_a_budget_is_scaled_by_the_cpu_factor_not_the_load_at_creation(fresh_factor):
    """Made at a load of 8 per core with a speed factor of 5 measured then, a budget is as long as
    a quiet one on the same CPU: the give-back answers for the load, once."""
    fresh_factor.setenv(speed.ENV, "5")
    fresh_factor.setenv(speed.CPU_ENV, "1.2")
    fresh_factor.setattr(speed.os, "getloadavg", lambda: (8.0 * (os.cpu_count() or 1), 0.0, 0.0))
    assert speed.Budget(10).seconds == pytest.approx(12.0)
    assert speed.Budget(10, scale=False).seconds == 10
    assert speed.scaled(10) == 80                # hang guards that see no run-queue still follow the load


def test_scaled_follows_the_load_when_it_rises(fresh_factor):
    fresh_factor.setenv(speed.ENV, "2")
    fresh_factor.setattr(speed.os, "getloadavg", lambda: (8.0 * (os.cpu_count() or 1), 0.0, 0.0))
    assert speed.scaled(10) == 80
    fresh_factor.setattr(speed.os, "getloadavg", lambda: (0.5, 0.0, 0.0))
    assert speed.scaled(10) == 20


schedstat = pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/schedstat"),
                               reason="this kernel keeps no run-queue delays")


@schedstat
def test_run_queue_delay_is_really_measured():
    """Two CPU-bound processes on one CPU: each waits about half the time, and the budget of one
    of them sees it."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    saved = os.sched_getaffinity(0)
    hog = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
    try:
        os.sched_setaffinity(0, {cpu})
        budget = speed.Budget(1.0, scale=False)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            pass
        assert budget.stolen() > 0.2, budget.stolen()
        assert budget.left() > 0.2
    finally:
        os.sched_setaffinity(0, saved)
        hog.kill()
        hog.wait()


GUARDED = textwrap.dedent("""\
    import time
    import pytest

    @pytest.mark.timeout(1)
    def test_slow():
        time.sleep(1.6)
    """)


@pytest.mark.parametrize("factor, passes", [("2", True), ("1", False)])
def test_timeout_marks_are_scaled_by_the_factor(tmp_path, factor, passes):
    (tmp_path / "conftest.py").write_text(   # (a quiet machine: the load factor held at 1)
        f"import sys\nsys.path.insert(0, {os.path.join(paths.ROOT, 'tools')!r})\n"
        "from pagoda_core import pytest_speed, speed\nspeed.load_factor = lambda: 1.0\n\n"
        "def pytest_configure(config):\n    pytest_speed.register(config)\n")
    (tmp_path / "test_guarded.py").write_text(GUARDED)
    env = dict(os.environ, PAGODA_SPEED_FACTOR=factor, PAGODA_BUSY_EXTENSIONS="0")
    out = subprocess.run([paths.SYSTEM_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=speed.scaled(60))
    assert (out.returncode == 0) == passes, out.stdout[-3000:]
    if not passes:
        assert "Timeout >1s (the test's 1 s on the reference machine x 1.00 for this machine" in out.stdout
