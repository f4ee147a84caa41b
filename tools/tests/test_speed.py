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
    fresh_factor.setattr(speed, "measure", lambda: 7.0)
    assert speed.factor() == 7.0


def test_export_hands_the_factor_to_children(fresh_factor):
    fresh_factor.delenv(speed.ENV, raising=False)
    fresh_factor.setattr(speed, "measure", lambda: 2.25)
    assert speed.export() == 2.25
    out = subprocess.run([paths.SYSTEM_PYTHON, "-c", "import os; print(os.environ['PAGODA_SPEED_FACTOR'])"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "2.25"


def test_measuring_tracks_the_calibration_time(fresh_factor):
    fresh_factor.setattr(speed, "_calibrate", lambda: speed.REFERENCE_SECONDS * 4)
    assert speed.measure() == pytest.approx(4.0)
    fresh_factor.setattr(speed, "_calibrate", lambda: speed.REFERENCE_SECONDS / 3)
    assert speed.measure() == 1.0


def test_a_budget_gives_back_the_time_spent_waiting_for_a_cpu(monkeypatch):
    threads = {}
    monkeypatch.setattr(speed, "_thread_delays", lambda pid: dict(threads))
    monkeypatch.setattr(speed.Budget, "SAMPLE_SECONDS", 0.0)      # a sample at every look
    budget = speed.Budget(1.0, scale=False)
    time.sleep(0.3)
    threads[(1, 1)] = int(0.25e9)                # a thread born since, that waited 0.25 s
    left, elapsed = budget.left(), time.monotonic() - budget.start
    assert budget.stolen() == pytest.approx(0.25)
    assert left == pytest.approx(1.0 - elapsed + 0.25, abs=0.05)
    assert "+0.2 s it waited for a CPU" in budget.describe()
    del threads[(1, 1)]                          # it ends; another waits 0.3 s: the delays add up
    time.sleep(0.6)
    threads[(2, 2)] = int(0.3e9)
    budget.left()
    assert budget.stolen() == pytest.approx(0.55)
    time.sleep(1.2)                              # no more waiting: the budget runs out
    assert budget.expired()


def test_an_interval_gives_back_at_most_its_own_length(monkeypatch):
    threads = {}
    monkeypatch.setattr(speed, "_thread_delays", lambda pid: dict(threads))
    budget = speed.Budget(0.1, scale=False)
    time.sleep(0.2)
    threads[(1, 1)] = int(50e9)                  # a nonsense delay cannot buy 50 s
    assert budget.left() <= 0.1


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
