"""A guest reaches no host file through Arm semihosting, however QEMU is started (AArch64).

The kernel ends QEMU with its exit status through semihosting (SYS_EXIT). With
`-semihosting-config target=native` QEMU served the other calls too, as its own user: the fixture
kernel `semihost` (fixtures/aarch64/semihost.cpp: the reference kernel plus semihosting calls)
read the grader's test file and printed it, created files in the grader's log folder and ran a
shell command there, and scored trap_ud, trap_pf and timer_ticks (6/6 in lab 0) without taking
one exception or interrupt: it rewrote its own qemu.log with the lines QEMU would have logged.
With target=gdb (pagoda_pt/machines.py) QEMU keeps SYS_EXIT and hands the file calls to the
debugger on its gdbstub, or drops them when there is none; the grader's client refuses them
(rsp.py), and so does the guard `./pagoda gdb` puts in front of GDB (tools/pagoda/stubguard.py)."""
import glob
import os
import resource
import shutil
import signal
import subprocess

import pytest

from graderrun import run_grader
from pagoda_core import paths, qemu
from pagoda_core.speed import scaled

SECRET = "semihost-secret-5d1c"           # in DIR/secret.txt, which the fixture tries to print
GRADER_TEST = "grader-test-text-93be"     # in the test_lab0.py of QEMU's working directory
QEMU_DEADLINE = 300                       # seconds (scaled): a boot ends long before


def _folder(tmp_path):
    """DIR for semihost_dir=DIR: the secret there, nothing else."""
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET + "\n")
    return folder


def _planted(root):
    """Files the fixture creates (semihost-planted.txt, semihost-system.txt) anywhere under @p root."""
    return sorted(glob.glob(os.path.join(str(root), "**", "semihost-*.txt"), recursive=True))


@pytest.mark.parametrize("test, status", [("ud", qemu.EXIT_FAILURE), ("shutdown", qemu.EXIT_SUCCESS)])
def test_a_boot_without_a_debugger_reaches_no_host_file(test, status, aarch64_fixture_kernels, tmp_path):
    """QEMU as the grader's plain boots, `./pagoda run` and the benches start it (no gdbstub):
    every file call is dropped, and the exit statuses are the semihosting ones, as before."""
    folder = _folder(tmp_path)
    (tmp_path / "test_lab0.py").write_text(f'"""{GRADER_TEST}"""\n')   # the grader's, where QEMU runs
    log = tmp_path / "boot" / "qemu.log"
    log.parent.mkdir()
    argv = qemu.command(aarch64_fixture_kernels["semihost"], f"semihost_dir={folder} test={test}", arch="aarch64",
                        log_items="int,cpu_reset", log_file=str(log))
    proc = qemu.spawn(argv, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out = proc.communicate(timeout=scaled(QEMU_DEADLINE))[0].decode(errors="replace")
    finally:
        qemu.kill_group(proc)
    assert proc.returncode == status, out[-3000:]
    assert f"fixture semihost: read {folder}/secret.txt: refused" in out, out[-3000:]   # it tried
    assert SECRET not in out and GRADER_TEST not in out
    assert not _planted(tmp_path)
    assert sorted(os.listdir(folder)) == ["secret.txt"] and os.listdir(log.parent) == ["qemu.log"]
    assert "[Undefined Instruction]" not in log.read_text(errors="replace")   # neither taken nor forged


def test_the_grader_refuses_file_io_and_forged_logs_score_nothing(aarch64_fixture_kernels, tmp_path):
    """Through the grader: the three lab-0 tests the fixture won by forging its log fail as a
    kernel that never traps fails, and a witnessed boot (null_faults: the gdbstub attached, so
    every call reaches the grader's client) goes on past the refused calls and passes."""
    folder = _folder(tmp_path)
    results = run_grader(tmp_path, aarch64_fixture_kernels["semihost"], (0, 1), workers=2, arch="aarch64",
                         only=("trap_ud", "trap_pf", "timer_ticks", "null_faults"),
                         env={"PAGODA_GRADE_CMDLINE": f"semihost_dir={folder}"})
    for test_id in ("trap_ud", "trap_pf"):
        outcome, reason = results[test_id]
        assert outcome == "failed" and "QEMU's exception log shows no exception" in reason, reason[:800]
    outcome, reason = results["timer_ticks"]
    assert outcome == "failed" and "hardware interrupts, fewer than" in reason, reason[:800]
    assert results["null_faults"][0] == "passed", results["null_faults"][1][:1500]
    # The witnessed boot's calls were answered (-1), not dropped (as without a debugger: 0).
    serial = glob.glob(str(tmp_path / "logs" / "*" / "test_lab1.py_test_null_faults" / "boot*" / "serial.log"))
    assert serial and f"read {folder}/secret.txt: refused (result -1)" in open(serial[0]).read()
    assert not _planted(tmp_path)
    with open(os.path.join(paths.GRADE, "test_lab0.py")) as f:
        grader_line = f.readline().strip()
    for path in glob.glob(str(tmp_path / "logs" / "**" / "serial.log"), recursive=True):
        text = open(path, errors="replace").read()
        assert SECRET not in text and grader_line not in text, path
    assert not any(SECRET in reason or grader_line in reason for _, reason in results.values())


@pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="no gdb-multiarch")
def test_pagoda_gdb_keeps_the_guest_s_file_io_from_gdb(aarch64_fixture_kernels, tmp_path):
    """GDB would carry out a File-I/O request on its own host (open, read, write): `./pagoda gdb`
    connects it through the guard, which refuses them; the exit status still reaches GDB."""
    folder = _folder(tmp_path)
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), "gdb", "--arch", "aarch64",
                          "--kernel", aarch64_fixture_kernels["semihost"], "--batch", "--ex", "continue",
                          "--test", "shutdown", "--cmdline", f"semihost_dir={folder}"],
                         cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=scaled(QEMU_DEADLINE))
    text = out.stdout + out.stderr
    assert "exited with code 041" in text, text[-3000:]              # 33: the semihosting exit
    assert "refused the guest's semihosting call 'open'" in text, text[-3000:]
    assert SECRET not in text
    assert not _planted(tmp_path) and sorted(os.listdir(folder)) == ["secret.txt"]


def test_qemu_leaves_no_core_file_when_a_guest_makes_it_abort(aarch64_fixture_kernels, tmp_path):
    """An unknown semihosting operation makes QEMU abort; its core, where core files are on,
    would be a file of the guest's RAM in the grader's working directory. QEMU dumps none."""
    pattern = open("/proc/sys/kernel/core_pattern").read().strip()
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if "/" in pattern or pattern.startswith("|") or hard == 0:
        pytest.skip(f"core files do not land in the working directory here (core_pattern {pattern!r}, "
                    f"hard limit {hard})")
    argv = qemu.command(aarch64_fixture_kernels["semihost"], "test=semihost_abort", arch="aarch64")
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))   # as on a machine with core files on
    try:
        proc = qemu.spawn(argv, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
    try:
        out = proc.communicate(timeout=scaled(QEMU_DEADLINE))[0].decode(errors="replace")
    finally:
        qemu.kill_group(proc)
    assert proc.returncode == -signal.SIGABRT, out[-2000:]
    assert "Unsupported SemiHosting" in out
    assert os.listdir(tmp_path) == []
