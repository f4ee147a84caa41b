"""`./pagoda labs mutants --why`'s bookkeeping (tools/pagoda/mutant_why.py) without QEMU or GDB:
which boot is replayed and how, when a boot cannot be replayed alone, and how fault-why's
verdict is read from the replay's GDB output and judged against a slip's cause."""
import os

from pagoda import mutant_why as mw
from pagoda import mutants
from pagoda_pt import contract as C

SERIAL = '''Pagoda 0.1 (x86_64) booted; token=00c0ffee
cmdline: "token=00c0ffee run=hello"
vm: on the kernel's root
'''
COMMAND = "qemu-system-x86_64 -M microvm -no-reboot -m 128M -kernel /k.elf -serial stdio -append token=00c0ffee run=hello"

TEST_SOURCE = '''import os


@lab_test(3, "quiet")
def test_quiet(boot, kernel, arch):
    run = boot(args={"run": "hello"})
    assert run.ok, "the kernel does not share the kernel half"


def test_feeds(boot, kernel, arch):
    def script(guest):
        snap = guest.stop_at("pagoda_grader_checkpoint")
        guest.write_phys(0x1000, b"x")
    boot(witness=script)


def test_types(boot, kernel, arch):
    guest.send("ls")
'''

# What a replay's GDB prints around the markers the replay's commands echo.
REPLAY = f'''Breakpoint 1 at 0xffffffff80201000
Breakpoint 3, 0xffffffff80200000 in x86_trap ()
{mw.MARK_STOP}
#0  0xffffffff80200000 in x86_trap ()
#1  0xffffffff80201234 in isr_common ()
{mw.MARK_WHY}
exception: #PF page fault (vector 14) in kernel mode
walk of CR2 in the active root 0x1000: PML4[511] not present
verdict: the active root does not map the kernel half: the new root does not share the kernel's mappings
verdict: a second verdict is never read
'''


def test_the_boot_to_replay_is_the_last_serial_log_the_reason_names():
    reason = ("missing: hello\nboot token 1\n(full log: /a/boot1/serial.log; QEMU log: /a/boot1/qemu.log)\n"
              "then (full log: /a/boot2/serial.log; QEMU log: /a/boot2/qemu.log)")
    assert mw.serial_log_of(reason) == "/a/boot2/serial.log"
    assert mw.serial_log_of("no log at all") is None


def test_the_command_line_memory_and_swap_disk_come_from_the_boot(tmp_path):
    assert mw.boot_of(SERIAL, COMMAND) == ("token=00c0ffee run=hello", "128M", "off")
    assert mw.boot_of("Pagoda 0.1 booted\nPANIC: early\n", "") == (None, None, "off")
    # A lab-7 boot: the swap disk's size is its image's, which the boot's folder keeps.
    image = tmp_path / "swap.img"
    drive = f" -drive file={image},format=raw,if=none,id=pagoda-swap -device virtio-blk-device,drive=pagoda-swap"
    assert mw.boot_of(SERIAL, COMMAND + drive)[2] is None
    with open(image, "wb") as f:
        f.truncate(4 << 20)
    assert mw.boot_of(SERIAL, COMMAND + drive)[2] == "4M"


def test_a_test_that_writes_into_the_guest_feeds_it():
    assert mw.feeds_of(mw.test_source(TEST_SOURCE, "quiet")) == []
    assert mw.feeds_of(mw.test_source(TEST_SOURCE, "feeds")) == ["write_phys"]
    assert mw.feeds_of(mw.test_source(TEST_SOURCE, "types")) == ["send"]
    assert mw.test_source(TEST_SOURCE, "absent") is None


def test_the_first_verdict_after_the_marker_is_read():
    verdict, whole = mw.first_verdict("verdict: printed before fault-why ran\n" + REPLAY)
    assert verdict.startswith("the active root does not map the kernel half")
    assert "walk of CR2" in whole and "printed before" not in whole
    assert mw.first_verdict("GDB failed before fault-why\n") == (None, "")
    assert not mw.stopped_at_grader(REPLAY)
    at_grader = REPLAY.replace("#0  0xffffffff80200000 in x86_trap ()", "#0  pagoda_grader_stop () at selftest.cpp:19")
    assert mw.stopped_at_grader(at_grader)


def test_the_marks_in_the_replay_s_own_command_line_are_not_marks():
    """why.log opens with the replay's command, which names both marks inside quotes; the kernel's
    serial output follows it. Neither is fault-why's: a cause the kernel's PANIC line names must not
    make fault-why's verdict 'partly', and the frames after the real stop mark say where it stopped."""
    command = "$ ./pagoda gdb --ex 'echo %s\\n' --ex 'bt 4' --ex 'echo %s\\n' --ex fault-why\n" % (
        mw.MARK_STOP, mw.MARK_WHY)
    serial = "[serial] PANIC: the kernel wrote through their user address\n"
    stopped = REPLAY.replace("#0  0xffffffff80200000 in x86_trap ()", "#0  pagoda::panic_end () at panic.cpp:30")
    output = command + serial + stopped
    verdict, whole = mw.first_verdict(output)
    assert verdict.startswith("the active root does not map the kernel half")
    assert "PANIC" not in whole and "--ex" not in whole
    assert mw.judge_verdict(verdict, whole, r"through their user address") == "no"
    assert mw.stop_kind(output) == "panic"
    assert not mw.stopped_at_grader(output)
    at_grader = command + stopped.replace("#0  pagoda::panic_end () at panic.cpp:30",
                                          "#0  pagoda_grader_stop () at selftest.cpp:19")
    assert mw.stopped_at_grader(at_grader)


def test_the_verdict_is_judged_against_the_cause():
    whole = REPLAY.split(mw.MARK_WHY, 1)[1]
    verdict = mw.first_verdict(REPLAY)[0]
    assert mw.judge_verdict(verdict, whole, r"does not share the kernel") == "yes"
    assert mw.judge_verdict(verdict, whole, r"PML4\[511\] not present") == "partly"
    assert mw.judge_verdict(verdict, whole, r"kernel stack") == "no"
    assert mw.judge_verdict(None, "", r"anything") == "n.a."
    # "Nothing is wrong" names no cause, though a cause's pattern may match its words.
    nothing = mw.diagnose.NOTHING_WRONG + ": the IDT's gates and handlers are usable"
    assert mw.judge_verdict(nothing, "walk of CR2\nverdict: " + nothing, r"hand|clock") == "no"
    assert mw.judge_verdict(nothing, "the clock's hand\nverdict: " + nothing, r"hand|clock") == "partly"


def test_the_replay_command_boots_the_slipped_kernel_as_the_grader_did():
    argv = mw.gdb_argv("/t/pagoda", "aarch64", "/s/kernel.elf", "token=1 run=hello", "128M", int_log=True)
    assert argv[1:3] == ["/t/pagoda", "gdb"]
    assert argv[argv.index("--kernel") + 1] == "/s/kernel.elf"
    assert argv[argv.index("--arch") + 1] == "aarch64"
    assert "--stop-at-kill" in argv and "--int-log" in argv and "--batch" in argv
    after = argv[argv.index("--") + 1:]
    assert after == ["--cmdline", "token=1 run=hello", "--memory", "128M"]
    exs = [argv[i + 1] for i, a in enumerate(argv) if a == "--ex"]
    # Every stop is a breakpoint set before why-stops runs on from one to the next.
    assert exs[-1].startswith("why-stops")
    assert {f"break {C.GRADER_STOP}", f"break {C.EXIT}", f"break {C.CHECKPOINT}"} <= set(exs[:-1])
    assert "--int-log" not in mw.gdb_argv("/t/pagoda", "x86_64", "/k", "run=x", None, int_log=False)
    argv = mw.gdb_argv("/t/pagoda", "x86_64", "/k", "run=x", None, int_log=False, swap="4M")
    assert argv[argv.index("--") + 1:] == ["--cmdline", "run=x", "--swap", "4M"]


def _outcome(tmp_path, test_id, test_source=TEST_SOURCE, serial=SERIAL):
    boot = tmp_path / "logs" / "boot1"
    boot.mkdir(parents=True)
    (boot / "serial.log").write_text(serial)
    (boot / "command").write_text(COMMAND)
    tree = tmp_path / "tree"
    (tree / "grade").mkdir(parents=True)
    (tree / "grade" / "test_lab3.py").write_text(test_source)
    m = mutants.Mutant(lab=3, slug="root-without-kernel-half", path="labs/03/mutants/x.toml", title="t",
                       function="f", arches=("x86_64",), causes={"x86_64": "does not (share|map) the kernel half"},
                       edits=[])
    o = mutants.Outcome(m, "x86_64", test=test_id, log=str(tmp_path / "grade.log"), kernel="/s/kernel.elf",
                        reason=f"headline\n(full log: {boot}/serial.log; QEMU log: {boot}/qemu.log)")
    return o, str(tree)


def test_a_caught_slip_gets_fault_whys_verdict(tmp_path):
    o, tree = _outcome(tmp_path, "quiet")
    seen = []

    def replay(argv, log_path):
        seen.append(argv)
        return REPLAY, False
    mw.why(o, tree, str(tmp_path), pagoda="/t/pagoda", replay=replay)
    assert o.why_match == "yes", o.why
    assert o.why.startswith("[stop] the active root does not map the kernel half"), o.why
    assert "token=00c0ffee run=hello" in seen[0]
    assert o.why_log == os.path.join(str(tmp_path), "why.log")
    head, row = mutants.table([o], why=True)
    assert "  fault-why  " in head and row.split()[5] == "yes"
    assert "| [stop] the active root does not map the kernel half" in row
    assert mutants.to_json([o])[0]["why_match"] == "yes"


def test_a_boot_the_grader_feeds_is_not_replayed(tmp_path):
    o, tree = _outcome(tmp_path, "feeds")

    def replay(argv, log_path):
        raise AssertionError("a fed boot must not be replayed")
    mw.why(o, tree, str(tmp_path), replay=replay)
    assert o.why_match == "n.a." and o.why.startswith(mw.NOT_REPLAYABLE) and "write_phys" in o.why


def test_a_replay_that_stops_for_the_grader_has_no_verdict(tmp_path):
    o, tree = _outcome(tmp_path, "quiet")
    at_grader = REPLAY.replace("#0  0xffffffff80200000 in x86_trap ()", "#0  pagoda_grader_stop () at s.cpp:19")
    mw.why(o, tree, str(tmp_path), replay=lambda argv, log: (at_grader, False))
    assert o.why_match == "n.a." and o.why.startswith(mw.NOT_REPLAYABLE)


def test_a_replay_that_runs_to_its_end_has_no_verdict(tmp_path):
    o, tree = _outcome(tmp_path, "quiet")
    ended = "Remote connection closed\nwhy-stops: The program is not being run.\n"
    seen = []
    mw.why(o, tree, str(tmp_path), replay=lambda argv, log: (seen.append(argv), (ended, False))[1])
    assert o.why_match == "n.a." and "ran to its end" in o.why
    assert len(seen) == 1


def stop(frame0, verdict, wrong):
    """One stop as why-stops prints it."""
    return (f"{mw.MARK_STOP}\n#0  {frame0}\n{mw.MARK_WHY}\nsome line of fault-why\nverdict: {verdict}\n"
            + (f"{mw.MARK_WRONG}\n" if wrong else ""))


def test_the_first_stop_marked_wrong_is_judged():
    """why-stops goes on past a kill the record refuses (the program's own) and an exit where nothing
    is wrong; the stop it marks wrong is the one judged, wherever it comes."""
    kill = stop("pagoda::proc::user_fault (fault=...) at run.cpp:263", "proc 3 (probe) in ring 3: no VMA covers 0x0", False)
    at_exit = stop("pagoda::proc::exit_current (info=...) at scheduler.cpp:178", "nothing is wrong that I can see", False)
    end = stop("pagoda_grader_checkpoint (a=1381322291, b=1, c=2) at selftest.cpp:22",
               "exit's teardown does not free the kernel stacks: kernel stack slot 0 is still taken", True)
    output = "Breakpoint 1 at 0x1\n" + kill + at_exit + end
    verdict, whole = mw.first_verdict(output)
    assert verdict.startswith("exit's teardown does not free the kernel stacks"), verdict
    assert "no VMA covers" not in whole and mw.MARK_WRONG not in whole
    assert mw.stop_kind(output) == "end"
    assert mw.judge_verdict(verdict, whole, r"teardown does not free .*kernel stacks") == "yes"
    # None marked wrong: the first stop's verdict is judged (the grader's death, if it named it).
    verdict, _ = mw.first_verdict("Breakpoint 1 at 0x1\n" + kill + at_exit)
    assert verdict.startswith("proc 3 (probe)") and mw.stop_kind(kill + at_exit) == "kill"
    # A stop at the grader's inputs is the first stop, wherever a wrong one follows.
    assert mw.stopped_at_grader(stop("pagoda_grader_stop () at selftest.cpp:19", "x", False) + end)
    assert not mw.stopped_at_grader(kill + end)


def test_the_stop_is_named():
    assert mw.stop_kind(REPLAY) == "stop"
    assert mw.stop_kind(REPLAY, interrupted=True) == "interrupted"
    at = lambda frame0: REPLAY.replace("#0  0xffffffff80200000 in x86_trap ()", frame0)
    assert mw.stop_kind(at("#0  pagoda::panic_end () at panic.cpp:30")) == "panic"
    assert mw.stop_kind(at("#0  pagoda::proc::user_fault (frame=...) at run.cpp:9")) == "kill"
    assert mw.stop_kind("Program received signal SIGQUIT, Quit.\n" + REPLAY) == "triple fault"


def test_why_counts_only_replayed_slips():
    class O:
        def __init__(self, match):
            self.why_match = match
    line = mutants.why_counts([O("yes"), O("yes"), O("no"), O("partly"), O("n.a.")])
    assert "for 2 of 4 replayed" in line and "no verdict for 1" in line
