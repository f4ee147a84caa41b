"""`./pagoda run` on a terminal: it drops into the shell (lab 6), a typed command runs, Ctrl-A M
(--memview) draws physical memory, and which boots start the shell.

The end-to-end tests drive ./pagoda through a pseudo-terminal (pexpect), as a student's
terminal would: the command typed is chosen at run time, and its output must come back through
the shell (the echo program prints its arguments). Ctrl-A X ends QEMU; a QEMU left behind fails
the test.
"""
import argparse
import os
import random
import re
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from pagoda import memview, qemu, run  # noqa: E402
from pagoda.ui import PagodaError  # noqa: E402
from pagoda.speed import scaled  # noqa: E402  (limits for this machine: speed.py)

pexpect = pytest.importorskip("pexpect")
ARCHES = [pytest.param(a, marks=pytest.mark.skipif(shutil.which(qemu.MACHINES[a].binary) is None,
                                                   reason=qemu.MACHINES[a].binary + " missing"))
          for a in ("x86_64", "aarch64")]
BOOT_TIMEOUT = scaled(300)        # the first run may build the kernel


def spawn(*args):
    child = pexpect.spawn("/usr/bin/python3", [os.path.join(ROOT, "pagoda"), "run", *args],
                          cwd=ROOT, timeout=BOOT_TIMEOUT, encoding="utf-8",
                          codec_errors="replace", dimensions=(50, 160))
    return child


def quit_qemu(child):
    child.send("\x01x")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.exitstatus      # Ctrl-A X is a clean quit for ./pagoda


@pytest.mark.timeout(600)
@pytest.mark.parametrize("arch", ARCHES)
def test_run_drops_into_the_shell_and_draws_memory(arch):
    word = "w%08x" % random.getrandbits(32)
    child = spawn("--arch", arch, "--memview")
    try:
        child.expect(r"proc 1 \(sh\): started")
        child.expect(r"\$ ")
        child.send(f"echo {word} shell\r")
        child.expect(rf"echo: argc 3: {word} shell proof=")
        child.expect(r"\$ ")
        child.send("\x01m")
        child.expect(r"one cell = \d+ frames? \(\d+ KiB\); K kernel image \d+, T page table \d+")
        child.expect(r"1 pid 1 'sh' (\d+)")
        assert int(child.match.group(1)) >= 1
        # The guest runs on after the picture, and the keys still reach the shell.
        child.send("echo $?\r")
        child.expect(r"echo: argc 2: 0 proof=")
        child.expect(r"\$ ")
    finally:
        if child.isalive():
            quit_qemu(child)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("arch", ARCHES[:1])
def test_no_shell_boots_as_before(arch):
    child = spawn("--arch", arch, "--no-shell")
    try:
        child.expect(r"\(sh\): started|idle: nothing to run")
        assert child.match.group(0).startswith("idle"), child.before
    finally:
        if child.isalive():
            quit_qemu(child)


def options(**given):
    args = argparse.Namespace(test=None, cmdline="", no_shell=False, shell=False)
    for key, value in given.items():
        setattr(args, key, value)
    return args


def test_which_boots_start_the_shell(monkeypatch):
    from pagoda import kernelinfo, labstatus
    monkeypatch.setattr(kernelinfo, "embedded_programs", lambda kernel: ["echo", "sh"])
    monkeypatch.setattr(labstatus, "current_lab", lambda: None)
    assert run.shell_words(options(), "k") == ("run=sh", "")
    assert run.shell_words(options(no_shell=True), "k") == ("", "")
    assert run.shell_words(options(test="vm"), "k") == ("", "")
    assert run.shell_words(options(cmdline="run=hello quiet"), "k") == ("", "")
    with pytest.raises(PagodaError, match="exclude each other"):
        run.shell_words(options(shell=True, test="vm"), "k")
    # A branch before lab 6: boot as before, and say why.
    monkeypatch.setattr(labstatus, "current_lab", lambda: 3)
    words, note = run.shell_words(options(), "k")
    assert words == "" and "lab 3's branch: the shell comes with lab 6" in note
    assert run.shell_words(options(shell=True), "k") == ("run=sh", "")
    monkeypatch.setattr(labstatus, "current_lab", lambda: 6)
    assert run.shell_words(options(), "k") == ("run=sh", "")
    # A kernel without the shell program.
    monkeypatch.setattr(kernelinfo, "embedded_programs", lambda kernel: ["echo"])
    words, note = run.shell_words(options(), "k")
    assert words == "" and "no shell" in note
    with pytest.raises(PagodaError, match="no shell"):
        run.shell_words(options(shell=True), "k")


def test_the_hotkey_filter_passes_other_keys_on():
    keys = memview.KeyFilter()
    assert keys.feed(b"ls\r") == (b"ls\r", 0)
    assert keys.feed(b"a\x01mb") == (b"ab", 1)
    assert keys.feed(b"\x01") == (b"", 0)          # wait for the key after Ctrl-A
    assert keys.feed(b"x") == (b"\x01x", 0)         # Ctrl-A X reaches QEMU
    assert keys.feed(b"\x01M\x01h") == (b"\x01h", 1)
    assert re.fullmatch(rb"\x01", memview.HOTKEY)
