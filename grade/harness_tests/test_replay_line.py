"""Every failing test ends with the line that boots its boot again in GDB (harness.Booter.replay,
with_replay): `./pagoda gdb` with the same kernel and command line, stopping where the boot died.
That the line really stops there, on each ISA, was checked by hand (see the commit)."""
import os
import shlex
from types import SimpleNamespace

from pagoda_core import paths
from pagoda_grade.harness import GDB_ENV, Booter
from pagoda_grade.outcomes import STORM

CMDLINE = "token=0123abcd run=vmas:lazy"


def run(lines=(), outcome="success", arch="x86_64", memory="128M"):
    return SimpleNamespace(lines=list(lines), outcome=lambda: outcome, arch=arch, memory=memory, cmdline=CMDLINE)


def replay(run, kernel=None, fed=False):
    line = Booter.replay(SimpleNamespace(kernel=kernel or paths.kernel_elf(run.arch)), run, fed)
    return line, shlex.split(line[line.index("./pagoda"):])


def test_a_kill_stops_at_the_kill_with_the_same_command_line(monkeypatch):
    monkeypatch.delenv(GDB_ENV, raising=False)
    line, words = replay(run(["proc 1 (vmas): killed: page fault: ... no VMA covers 0x400000"], "success"))
    assert words == ["./pagoda", "gdb", "--stop-at-kill", "--", "--cmdline", CMDLINE]
    assert "kills a process" in line and "VMA" not in line    # (no word of the kernel's: no cause named twice)


def test_a_panic_stops_where_pagoda_gdb_always_does_and_the_machine_is_the_same(monkeypatch):
    monkeypatch.delenv(GDB_ENV, raising=False)
    line, words = replay(run(["PANIC: lab 3: write switch_to()"], "failure", arch="aarch64", memory="256M"))
    assert words == ["./pagoda", "gdb", "--arch", "aarch64", "--", "-m", "256M", "--cmdline", CMDLINE]
    assert "panic" in line
    # (a witness's failure is recorded after the line is made: the panic alone says where it stops)
    line, _ = replay(run(["PANIC: smp_lazy_idle: spin never slept on CPU 1 again"], "success"))
    assert "stops at the kernel's panic" in line and "nothing died" not in line


def test_a_triple_fault_or_a_storm_keeps_the_interrupt_log_and_another_kernel_is_named(monkeypatch):
    monkeypatch.delenv(GDB_ENV, raising=False)
    for outcome in ("triple fault", STORM):
        assert "--int-log" in replay(run(outcome=outcome))[1]
    kernel = os.path.join(paths.ROOT, "build", "labs-check", "x", "kernel.elf")
    assert replay(run(), kernel=kernel)[1][2:4] == ["--kernel", "build/labs-check/x/kernel.elf"]
    line, words = replay(run(), kernel="/elsewhere/kernel.elf", fed=True)
    assert words[2:4] == ["--kernel", "/elsewhere/kernel.elf"] and "--stop-at-kill" not in words
    assert "inputs in its RAM" in line
    monkeypatch.setenv(GDB_ENV, "./pagoda hunt gdb")
    assert replay(run(), kernel="/elsewhere/kernel.elf")[1][:3] == ["./pagoda", "hunt", "gdb"]
    assert "--kernel" not in replay(run(), kernel="/elsewhere/kernel.elf")[1]


def test_the_line_follows_the_token_line_of_the_boot_it_names_else_it_ends_the_message():
    booter = SimpleNamespace(replays=[("aaaa", "replay of aaaa"), ("bbbb", "replay of bbbb")])
    reason = "the cause\nthe symptom\nboot token aaaa (PAGODA_GRADE_TOKEN=aaaa repeats the grader's choices)\n  | tail"
    assert Booter.with_replay(booter, reason).splitlines() == [
        "the cause", "the symptom", "boot token aaaa (PAGODA_GRADE_TOKEN=aaaa repeats the grader's choices)",
        "replay of aaaa", "  | tail"]
    assert Booter.with_replay(booter, "the cause").splitlines() == [
        "the cause", "boot token bbbb (PAGODA_GRADE_TOKEN=bbbb repeats the grader's choices)", "replay of bbbb"]
    assert Booter.with_replay(SimpleNamespace(replays=[]), "the cause") == "the cause"


def test_inputs_in_guest_ram_or_on_the_console_are_noted_and_filling_free_frames_is_not():
    import io
    from pagoda_grade.harness import Session
    from pagoda_grade.witness import Guest
    guest = Guest.__new__(Guest)
    guest.session = SimpleNamespace(fed=False)
    guest.client = SimpleNamespace(write_memory=lambda *a, **k: None)
    guest.write_phys(0x1000, b"x")
    assert guest.session.fed
    guest.session.fed = False
    guest.write(0xffff800000001000, b"x")
    assert guest.session.fed
    session = Session.__new__(Session)
    session.fed, session.proc = False, SimpleNamespace(stdin=io.BytesIO())
    session.send("forktree basic 3\n")
    assert session.fed


def test_a_check_failed_at_a_grader_s_stop_stops_there_the_n_th_time(monkeypatch):
    monkeypatch.delenv(GDB_ENV, raising=False)
    stop = (0xffffffff8011d7b0, 3, "the 3rd evict_frame() entry")
    line = Booter.replay(SimpleNamespace(kernel=paths.kernel_elf("x86_64")), run(), False, stop)
    words = shlex.split(line[line.index("./pagoda"):])
    assert words == ["./pagoda", "gdb", "--ex", "break *0xffffffff8011d7b0", "--ex", "ignore $bpnum 2", "--",
                     "--cmdline", CMDLINE]
    assert "it stops at the 3rd evict_frame() entry" in line
    first = Booter.replay(SimpleNamespace(kernel=paths.kernel_elf("x86_64")), run(), False, stop[:1] + (1, "x"))
    assert "ignore" not in first


def test_the_stop_s_count_reads_as_an_ordinal():
    from pagoda_grade.witness import ordinal
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 111, 158)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "111th", "158th"]
