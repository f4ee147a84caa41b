"""End to end: a kernel that dies badly gets a clear verdict, and no QEMU outlives the grader."""
import os
import signal
import subprocess
import time

import pytest

from pagoda import build, paths, qemu
from pagoda_grade.harness import Booter, GradeFailure

ROOT = paths.ROOT


@pytest.fixture(scope="module")
def kernel():
    return build.build_kernel()


def qemus_mentioning(text):
    """PIDs of QEMU processes whose command line contains @p text."""
    return qemu.processes_mentioning("qemu-system", text)


def test_triple_fault_names_the_first_fault(kernel, tmp_path):
    run = Booter(kernel, "x86_64", str(tmp_path), timeout=10)(test="triple_fault")
    assert run.outcome() == "triple fault"
    with pytest.raises(GradeFailure) as e:
        run.expect(r"^never printed$", "a line the kernel never prints")
    message = str(e.value)
    assert "the machine ended with: triple fault" in message
    assert "first fault: #UD invalid opcode (vector 6)" in message
    assert "#UD -> #GP -> #DF" in message
    assert "selftest triple_fault: start" in message  # the serial tail
    assert str(tmp_path) in message                   # where the full logs are


def test_hang_times_out_and_kills_qemu(kernel, tmp_path):
    start = time.monotonic()
    run = Booter(kernel, "x86_64", str(tmp_path), timeout=1.5)(test="hang")
    assert 1.4 < time.monotonic() - start < 5
    assert run.outcome() == "timeout"
    assert qemus_mentioning(str(tmp_path)) == []
    with pytest.raises(GradeFailure) as e:
        run.expect_outcome("success")
    assert "did not finish in time" in str(e.value)


def test_sigkill_of_grade_leaves_no_qemu(tmp_path):
    logs = str(tmp_path / "logs")
    # Every boot hangs until its test's timeout (10 s): only dying with the grader ends it sooner.
    env = dict(os.environ, PAGODA_GRADE_LOGS=logs, PAGODA_GRADE_CMDLINE="test=hang")
    proc = subprocess.Popen([paths.SYSTEM_PYTHON, os.path.join(ROOT, "pagoda"), "grade", "lab0"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not qemus_mentioning(logs):
        assert proc.poll() is None, "the grade finished before any QEMU was seen"
        assert time.monotonic() < deadline, "no QEMU started within 60 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 3
    while qemus_mentioning(logs) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = qemus_mentioning(logs)
    for pid in left:  # even when this test fails, leave nothing running
        os.kill(pid, signal.SIGKILL)
    assert left == [], "QEMU outlived a SIGKILLed ./pagoda grade"
