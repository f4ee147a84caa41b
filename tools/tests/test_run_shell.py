"""`./pagoda run` on a terminal: the shell a student uses (lab 6), --quiet, Ctrl-A M and
--memview-at (physical memory drawn), and which boots start the shell.

The end-to-end tests drive ./pagoda through a pseudo-terminal (pexpect), as a student's
terminal would: what is typed is chosen at run time (random words), and what comes back must
come through the shell and the programs (echo prints its arguments, nothing else). Every wait is
for an event (a line, a prompt), never a fixed delay. Ctrl-A X ends QEMU; a QEMU left behind
fails the test.
"""
import argparse
import os
import random
import re
import shutil

import pytest

from pagoda import memview, run
from pagoda_core import build, kernelinfo, paths, qemu
from pagoda_core.ui import PagodaError
from pagoda_core.speed import scaled  # (limits for this machine: speed.py)

pexpect = pytest.importorskip("pexpect")
ARCHES = [pytest.param(a, marks=pytest.mark.skipif(shutil.which(qemu.MACHINES[a].binary) is None,
                                                   reason=qemu.MACHINES[a].binary + " missing"))
          for a in ("x86_64", "aarch64")]
BOOT_TIMEOUT = scaled(300)        # the first run may build the kernel
PROMPT = r"\$ "
# What the kernel prints about the processes' lives (kernel/proc/run.hpp), which --quiet hides.
LIFECYCLE = re.compile(r"^(run: |proc \d+ \(\w+\): (started|spawned|exec|reaped))", re.M)


def spawn(*args):
    child = pexpect.spawn("/usr/bin/python3", [os.path.join(paths.ROOT, "pagoda"), "run", *args],
                          cwd=paths.ROOT, timeout=BOOT_TIMEOUT, encoding="utf-8",
                          codec_errors="replace", dimensions=(50, 160))
    child.transcript = []
    child.logfile_read = _Transcript(child.transcript)
    return child


class _Transcript:
    """Keeps what the terminal showed (for the failure message and the checks on lines)."""

    def __init__(self, parts):
        self.parts = parts

    def write(self, text):
        self.parts.append(text)

    def flush(self):
        pass


def screen(child):
    """What the terminal showed so far, without colours and carriage returns."""
    return re.sub(r"\x1b\[[0-9;]*m", "", "".join(child.transcript)).replace("\r", "")


def command(child, text, *expect):
    """Types @p text and Enter, waits for each pattern of @p expect in turn, then the prompt."""
    child.send(text + "\r")
    for pattern in expect:
        child.expect(pattern)
    child.expect(PROMPT)


def background(child, text):
    """Starts @p text in the background (`&`); its pid, once the prompt is back."""
    child.send(text + " &\r")
    child.expect(r"\[(\d+)\]\r*\n")
    pid = child.match.group(1)
    child.expect(PROMPT)
    return pid


def descendants(pid):
    """PIDs of every running process below @p pid (children, their children, ...)."""
    parents = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                parents[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def quit_qemu(child):
    child.send("\x01x")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.exitstatus      # Ctrl-A X is a clean quit for ./pagoda


@pytest.mark.timeout(900)
@pytest.mark.parametrize("arch", ARCHES)
def test_a_shell_session(arch):
    """help, echo, `;`, $?, Ctrl-C on a spinning program, a background job whose output lands
    above a redrawn prompt, jobs, kill, a missing program, Ctrl-C at the prompt, exit."""
    word, other = ("w%08x" % random.getrandbits(32) for _ in range(2))
    kernel = build.build_kernel(arch)
    child = spawn("--arch", arch)
    try:
        child.expect(r"proc 1 \(sh\): started")
        child.expect(PROMPT)
        # This session's QEMU (other tests may boot the same kernel at the same time).
        ours = set(qemu.processes_mentioning(qemu.MACHINES[arch].binary, kernel)) & descendants(child.pid)
        assert ours, "the QEMU of ./pagoda run is not among its descendants"
        # help: the builtins, then every program the kernel carries.
        command(child, "help", r"builtins:", r"kill \[-t\] PID", r"programs \(run one by name")
        listed = set(child.before.split())
        assert set(kernelinfo.embedded_programs(kernel)) <= listed, child.before
        # echo prints its arguments, and nothing else (no proof: this boot has no token).
        command(child, f"echo {word}   shell", rf"\n{word} shell\r*\n")
        # `;` runs one command, then the next.
        command(child, f"echo {word}; echo {other} ; exit_status_is_next", rf"\n{word}\r*\n",
                rf"\n{other}\r*\n", r"sh: exit_status_is_next: ENOENT")
        command(child, "echo $?", r"\n127\r*\n")
        # Ctrl-C ends the foreground program: spin never stops by itself (it has nothing to count
        # to that it could reach); the kernel's console ends it, and the shell goes on.
        child.send("spin 99999999999999\r")
        child.expect(r"proc (\d+) \(spin\): exec")
        spin = child.match.group(1)
        child.send("\x03")
        child.expect(r"\^C")
        child.expect(rf"proc {spin} \(spin\): reaped: killed \(interrupted\)")
        child.expect(PROMPT)
        command(child, "echo $?", r"\n136\r*\n")       # 128 + Termination::Interrupted
        assert "spin: pid" not in screen(child)          # it never finished counting
        # Ctrl-C ends the foreground program's descendants too: forktree and its 3 children
        # (they sleep until ended); `wait` reaps the children the shell adopted.
        child.send("forktree hang 3\r")
        child.expect(r"forktree: hang: pid (\d+) and 3 children waiting")
        child.send("\x03")
        child.expect(r"\^C")
        child.expect(PROMPT)
        command(child, "wait")
        assert len(re.findall(r"\(forktree\): reaped: killed \(interrupted\)", screen(child))) == 4, screen(child)
        # A background job: its lines land above the prompt, which is drawn again below them
        # with what was typed so far; its end is reported before the next prompt.
        ticker = background(child, "ticker 2 30")
        child.send("ech")
        child.expect(rf"ticker: pid {ticker} line 1 of 2\r*\n\$ ech")
        child.expect(rf"ticker: pid {ticker} line 2 of 2\r*\n\$ ech")
        command(child, f"o {word}", rf"\n{word}\r*\n", rf"\[{ticker}\] done: ticker: exit 0")
        # jobs and kill: a background spin, listed, then ended.
        job = background(child, "spin 99999999999999")
        command(child, "jobs", rf"\[{job}\] running: spin")
        command(child, f"kill {job}")
        command(child, "wait", rf"proc {job} \(spin\): reaped: killed \(killed\)",
                rf"\[{job}\] done: spin: killed \(killed\)")
        command(child, "kill 9999", r"sh: kill: 9999: ESRCH")
        # Ctrl-C at the prompt drops the line being typed.
        child.send(f"echo {other}\x03")
        child.expect(r"\^C")
        child.expect(PROMPT)
        command(child, "echo $?", r"\n136\r*\n")
        assert screen(child).count(f"\n{other}\n") == 1     # only the first echo of it ran
        # exit ends the shell, and with it the boot.
        child.send("exit 3\r")
        child.expect(r"proc 1 \(sh\): reaped: exited with code 3")
        child.expect(pexpect.EOF)
        child.close()
    finally:
        if child.isalive():
            quit_qemu(child)
    assert not ours & set(qemu.processes_mentioning(qemu.MACHINES[arch].binary, kernel))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("arch", ARCHES)
def test_quiet_and_the_memory_picture_at_fork(arch):
    """--quiet: no lifecycle line, ever. --memview-at fork: the map each time a fork has shared
    the parent's pages (the shell's own fork of echo: its pages shared copy-on-write, both pids),
    and below it the swap slots and the resident user frames of both (lab 7).
    Ctrl-A M still draws it on demand, through the same connection."""
    word = "w%08x" % random.getrandbits(32)
    child = spawn("--arch", arch, "--quiet", "--memview-at", "fork")
    try:
        child.expect(PROMPT)
        command(child, f"echo {word}", r"memview at fork: fork has copied or shared",
                r"one cell = \d+ frames? \(\d+ KiB\); .*S shared (\d+)", rf"\n{word}\r*\n")
        text = screen(child)
        heading = text.rindex("memview at fork")
        census = re.search(r"S shared (\d+), .* pid 1 'sh' \d+, \S+ pid (\d+) 'sh'", text[heading:])
        assert census and int(census.group(1)) > 0, text[heading:]
        # Swap is on (the disk ./pagoda run attaches from lab 7 on): the slots, and the frames the
        # frame table calls resident, by process, its reverse map agreeing with every root.
        assert re.search(r"swap slots: one cell = \d+ slots?; 0 of \d+ in use", text[heading:]), text[heading:]
        assert re.search(r"resident user frames: \d+, no cap \(the frame table\), 0 pinned; 1 pid 1 'sh' \d+, "
                         r"\S pid %s 'sh' \d+\n" % census.group(2), text[heading:]), text[heading:]
        assert "disagreement" not in text[heading:], text[heading:]
        # The same moment as a page (pagoda_pt/picture.py): both processes' roots in it.
        assert "memview: this moment as a page: build/memview.html" in text[heading:], text[heading:]
        with open(memview.PAGE) as f:
            page = f.read()
        assert "<h3 id=pid-1>" in page and f"<h3 id=pid-{census.group(2)}>" in page
        child.send("\x01m")
        child.expect(r"memview \(Ctrl-A M\)")
        child.expect(r"one cell = ")
        command(child, f"echo {word}", rf"\n{word}\r*\n")
        assert not LIFECYCLE.search(screen(child)), LIFECYCLE.search(screen(child)).group(0)
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


def test_memview_events_are_checked_up_front():
    assert memview.parse_event("fork").function == "pagoda::proc::fork_process"
    assert memview.parse_event("pagoda::proc::reap:return").at_return
    assert not memview.parse_event("pagoda::proc::reap").at_return
    for bad in ("", "forks:x", ":return"):
        with pytest.raises(PagodaError, match="not an event"):
            memview.parse_event(bad)


def options(**given):
    args = argparse.Namespace(test=None, cmdline="", no_shell=False, shell=False)
    for key, value in given.items():
        setattr(args, key, value)
    return args


def test_which_boots_start_the_shell(monkeypatch):
    from pagoda import labstatus
    from pagoda_core import kernelinfo
    monkeypatch.setattr(kernelinfo, "embedded_programs", lambda kernel: ["echo", "sh"])
    monkeypatch.setattr(labstatus, "current_lab", lambda root: None)
    assert run.shell_words(options(), "k") == ("run=sh", "")
    assert run.shell_words(options(no_shell=True), "k") == ("", "")
    assert run.shell_words(options(test="vm"), "k") == ("", "")
    assert run.shell_words(options(cmdline="run=hello quiet"), "k") == ("", "")
    with pytest.raises(PagodaError, match="exclude each other"):
        run.shell_words(options(shell=True, test="vm"), "k")
    # A branch before lab 6: boot as before, and say why.
    monkeypatch.setattr(labstatus, "current_lab", lambda root: 3)
    words, note = run.shell_words(options(), "k")
    assert words == "" and "lab 3's branch: the shell comes with lab 6" in note
    assert run.shell_words(options(shell=True), "k") == ("run=sh", "")
    monkeypatch.setattr(labstatus, "current_lab", lambda root: 6)
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
