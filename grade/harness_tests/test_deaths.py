"""End to end: a kernel that dies badly, floods, storms or lies about its terminal gets a clear
verdict, the grader stays bounded, and nothing (no QEMU, no file) outlives the grader."""
import os
import signal
import subprocess
import time

import pytest

from pagoda_core import faultlog, paths, qemu
from pagoda_grade import harness, outcomes
from pagoda_grade.harness import Booter, GradeFailure
from pagoda_core.speed import scaled  # noqa: E402  (limits for this machine: speed.py)

ROOT = paths.ROOT


def qemus_mentioning(text):
    """PIDs of QEMU processes whose command line contains @p text."""
    return qemu.processes_mentioning("qemu-system", text)


def failure_of(run):
    with pytest.raises(GradeFailure) as e:
        run.expect(r"^never printed$", "a line the kernel never prints")
    return str(e.value)


def test_triple_fault_names_the_first_fault(reference_kernel, tmp_path):
    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=10)(test="triple_fault")
    assert run.outcome() == "triple fault"
    message = failure_of(run)
    assert "the machine ended with: triple fault" in message
    assert "first fault: #UD invalid opcode (vector 6) at RIP 0x" in message
    assert "#UD -> #GP -> #DF" in message
    assert "selftest triple_fault: start" in message  # the serial tail
    assert str(tmp_path) in message                   # where the full logs are


def test_first_fault_rip_is_named(reference_kernel, tmp_path):
    """docs/grader.md promised it; the summary printed a bare address."""
    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=10)(test="triple_fault")
    assert "<pagoda::arch::force_triple_fault" in failure_of(run)


def test_hang_times_out_and_kills_qemu(reference_kernel, tmp_path):
    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=1.5)(test="hang")
    assert run.outcome() == "timeout"
    assert qemus_mentioning(str(tmp_path)) == []
    with pytest.raises(GradeFailure) as e:
        run.expect_outcome("success")
    assert "did not finish in time" in str(e.value)


def test_tiny_timeout_is_a_timeout(reference_kernel, tmp_path):
    """timeout = 0.001 in a lab.toml ended in FileNotFoundError (no qemu.log yet)."""
    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=0.001)(test="shutdown")
    assert run.outcome() == "timeout"
    assert "did not finish in time" in failure_of(run)


def test_exception_storm_ends_the_boot_with_a_diagnosis(fixture_kernels, tmp_path):
    """The storm fixture's fault handler returns to the faulting instruction forever: the boot
    ends as a storm (not at its deadline), and the log stays small."""
    run = Booter(fixture_kernels["storm"], "x86_64", str(tmp_path), timeout=30)(test="pf", args={"addr": 0x5000_0000_0000})
    assert run.outcome() == "exception storm"
    message = failure_of(run)
    assert "the grader stopped the machine: exception storm: " in message
    assert "identical exceptions, the first: #PF page fault (vector 14) at RIP 0x" in message
    assert "<pagoda::pagoda_selftest_pf" in message
    assert "its handler returns to the faulting instruction" in message
    assert os.path.getsize(run.qemu_log) <= harness.LOG_KEEP_HEAD + harness.LOG_KEEP_TAIL + 100


def test_storm_at_unmapped_code_is_called_that(fixture_kernels, tmp_path):
    run = Booter(fixture_kernels["storm"], "x86_64", str(tmp_path), timeout=30)(
        test="jump_unmapped", args={"addr": 0x6000_0000_0000})
    assert run.outcome() == "exception storm"
    message = failure_of(run)
    assert "at RIP 0x600000000000, CPL 0, CR2 0x600000000000" in message
    assert "the code being executed is not mapped (after a root switch?)" in message


def test_aarch64_exception_loop_is_a_storm_at_the_vector(aarch64_kernel, tmp_path):
    """AArch64 has no triple fault: with VBAR_EL1 = 0 the CPU takes the same abort at the vector,
    0x200, forever. The grader stops it as a storm, names the vector, and keeps the log small."""
    run = Booter(aarch64_kernel, "aarch64", str(tmp_path), timeout=60)(test="triple_fault")
    assert run.outcome() == "exception storm"
    assert qemus_mentioning(str(tmp_path)) == []
    message = failure_of(run)
    assert "identical exceptions, the first: Prefetch Abort (IABT) at PC 0x200, from EL1" in message
    assert ("the exception vector at 0x200 itself cannot be fetched, so every exception faults again at its own "
            "vector: AArch64's triple fault") in message
    assert "selftest triple_fault: start" in message
    # What started it: the undefined instruction, named, before the vector faulted on itself.
    assert "before the storm, the first fault: Undefined Instruction (UNDEF) at PC 0x" in message
    assert "<pagoda::arch::force_triple_fault" in message
    assert os.path.getsize(run.qemu_log) <= harness.LOG_KEEP_HEAD + harness.LOG_KEEP_TAIL + 100


def test_console_flood_is_an_output_limit(reference_kernel, tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "MAX_SERIAL_BYTES", 200_000)  # the console is slow under TCG
    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=60)(test="flood")
    assert run.outcome() == "output limit"
    message = failure_of(run)
    assert "console output exceeded 200000 bytes" in message
    assert "did not finish in time" not in message


def test_endless_line_is_an_output_limit_and_stays_short(reference_kernel, tmp_path):
    """A single endless line produced 9 MB of grader output."""
    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=30)(test="flood_line")
    assert run.outcome() == "output limit"
    message = failure_of(run)
    assert f"a console line exceeded {harness.MAX_LINE_BYTES} bytes without a newline" in message
    assert len(message) < 20_000
    assert "more characters)" in message


def test_guest_terminal_escapes_are_shown_escaped(reference_kernel, tmp_path):
    """A guest could clear the screen and draw a fake score over the real one."""
    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=10)(test="escapes")
    message = failure_of(run)
    assert "\x1b" not in message and "\x07" not in message and "\x9b" not in message
    assert "\\x1b[2J\\x1b[HScore: 999/999 (drawn by the guest)" in message
    assert "\\x07bell \\x9b31m" in message
    assert outcomes.escape_controls("a\tb\nc\x1b") == "a\tb\nc\\x1b"


def test_sigkill_of_grade_leaves_no_qemu(tmp_path):
    """...and no file outside its log directory (it left an empty /tmp/pagoda-grade-*.json)."""
    logs = str(tmp_path / "logs")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # Every boot hangs until its test's timeout (10 s): only dying with the grader ends it sooner.
    env = dict(os.environ, PAGODA_GRADE_LOGS=logs, PAGODA_GRADE_CMDLINE="test=hang", TMPDIR=str(tmp))
    proc = subprocess.Popen([paths.SYSTEM_PYTHON, os.path.join(ROOT, "pagoda"), "grade", "lab0"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + scaled(60)
    while not qemus_mentioning(logs):
        assert proc.poll() is None, "the grade finished before any QEMU was seen"
        assert time.monotonic() < deadline, "no QEMU started within 60 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_no_qemu_left(logs)
    assert [f for f in os.listdir(tmp) if f.startswith("pagoda")] == []   # (pytest keeps its own pytest-of-*)
    [run] = [d for d in os.listdir(logs) if d.startswith("run-")]
    assert os.path.exists(os.path.join(logs, run, "pytest.log"))   # pytest's output: in the grade's own directory


def assert_no_qemu_left(logs):
    deadline = time.monotonic() + scaled(3)
    while qemus_mentioning(logs) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = qemus_mentioning(logs)
    for pid in left:  # even when this test fails, leave nothing running
        os.kill(pid, signal.SIGKILL)
    assert left == [], "QEMU outlived a SIGKILLed grader"


def test_sigkill_during_a_witnessed_boot_leaves_no_file(tmp_path, reference_kernel):
    """kill -9 of the grader while it looks at a guest left a sparse RAM file in the boot's
    directory and a /tmp/pagoda-mon-* directory; now the RAM is a memfd and the gdbstub a
    socketpair, so nothing is ever on disk but the logs."""
    logs, tmp = tmp_path / "logs", tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, PAGODA_GRADE_LOGS=str(logs), PAGODA_GRADE_CMDLINE="test=hang", TMPDIR=str(tmp))
    proc = subprocess.Popen([paths.SYSTEM_PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                             f"--pagoda-kernel={reference_kernel}", "test_lab1.py", "-k", "tables_verified"],
                            cwd=paths.GRADE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + scaled(60)
    while not [p for p in qemus_mentioning(str(logs)) if b"memory-backend" in open(f"/proc/{p}/cmdline", "rb").read()]:
        assert proc.poll() is None, "the grader finished before a witnessed QEMU was seen"
        assert time.monotonic() < deadline, "no witnessed QEMU started within 60 s"
        time.sleep(0.005)
    time.sleep(0.5)  # the grader is attached and waiting for the guest
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_no_qemu_left(str(logs))
    leftovers = [os.path.join(d, f) for d, _, files in os.walk(logs) for f in files
                 if f not in ("serial.log", "qemu.log", "command", ".lock")]
    assert leftovers == []
    assert os.listdir(tmp) == []


def test_a_storm_log_is_cut_at_its_bound(tmp_path):
    """The log kept of a boot is bounded whatever QEMU wrote."""
    path = tmp_path / "qemu.log"
    path.write_bytes(b"x" * 100 + b"\n" + b"     0: v=20 e=0000 i=0 cpl=0\n" * 400000)
    faultlog.cut_file(str(path), harness.LOG_KEEP_HEAD, harness.LOG_KEEP_TAIL)
    assert os.path.getsize(path) <= harness.LOG_KEEP_HEAD + harness.LOG_KEEP_TAIL + 100
