"""`./pagoda labs mutants --why`: fault-why's verdict on each caught slip (issue 26's third column).

The boot of a caught slip's first failing test is replayed under GDB (`./pagoda gdb --int-log`)
with the slipped kernel, its command line (the grader's token included) and memory. GDB's
`why-stops` runs it from stop to stop (a death, a kill, each exit, the end of the run) with
`fault-why` at each; the replay ends at the first verdict that names something wrong with the
kernel (MARK_WRONG). That verdict line, or the first stop's, is judged against the slip's cause:

    yes      the verdict line names the cause
    partly   another line of fault-why's output names it, the verdict does not
    no       fault-why speaks, and names it nowhere
    n.a.     no verdict: the boot cannot be replayed alone, ran to its end, or GDB failed

A boot the grader fed inputs (Guest.deliver, write_phys, write_virt, write, send in the test's
source, or a stop at pagoda_grader_stop) is "not replayable": never a verdict from a different
boot. A machine that neither dies nor kills within REPLAY_DEADLINE is interrupted, and fault-why
explains where it is. Not part of `./pagoda test`.
"""
import os
import re
import signal
import subprocess

from pagoda_core import paths
from pagoda_pt import contract as C, diagnose

NOT_REPLAYABLE = "not replayable"
REPLAY_DEADLINE = 180.0      # seconds of wall clock (every stop of a replay) before one that never stops is interrupted
AFTER_INTERRUPT = 120.0      # seconds GDB gets, after the interrupt, to run fault-why and exit
# A storming kernel writes QEMU's exception log at ~100 MB/s: when the grader's log of the boot
# is this large, the replay keeps none (fault-why then reads the CPU as it is).
STORM_LOG_BYTES = 64 << 20
MARK_STOP, MARK_WHY, MARK_WRONG = diagnose.MARK_STOP, diagnose.MARK_WHY, diagnose.MARK_WRONG
SERIAL_LOG = re.compile(r"full log: (\S+?serial\.log)")
CMDLINE = re.compile(r'^cmdline: "(.*)"\s*$', re.MULTILINE)
MEMORY = re.compile(r"(?:^|\s)-m\s+(\S+)")
SWAP_DRIVE = re.compile(r"(?:^|\s)-drive\s+file=([^,\s]+),[^\s]*id=pagoda-swap")
# What a test's script calls to feed the guest (grade/pagoda_grade/witness.py's Guest and Snapshot).
FEEDS = re.compile(r"\.(deliver|write_phys|write_virt|write|send)\(")
# Where it stops (the contract's names): the grader's inputs (C.C.GRADER_STOP, never replayed); every
# process's end (C.EXIT: fault-why reads the processes' memory there while they live, so a frame two
# of them share, one writable, is seen there; the program only notices it later); a run's checkpoints
# (C.CHECKPOINT: why-stops looks only at the one after every process is reaped).
# The most stops why-stops explains in one replay.
MAX_STOPS = 16


def serial_log_of(reason):
    """The serial log of the boot a failing test's @p reason names (the last "full log:"), or None."""
    found = SERIAL_LOG.findall(reason or "")
    return found[-1] if found else None


def boot_of(serial_text, command_text=""):
    """(kernel command line, memory or None, swap disk or None) of a grader's boot, from its serial
    log (the kernel's "cmdline:" line) and QEMU's command (-m; the swap drive, whose image the boot's
    folder keeps: its size as ./pagoda gdb --swap takes it, "off" when QEMU had none, None when the
    image is gone); the command line is None when the kernel never printed it."""
    m = CMDLINE.search(serial_text or "")
    mem = MEMORY.search(command_text or "")
    drive = SWAP_DRIVE.search(command_text or "")
    swap = "off" if not drive else f"{os.path.getsize(drive.group(1)) >> 20}M" if os.path.exists(drive.group(1)) \
        else None
    return (m.group(1) if m else None), (mem.group(1) if mem else None), swap


def test_source(text, test_id):
    """The source of `def test_<test_id>(` in a grade/test_labN.py @p text: up to the next
    top-level statement; None when it is not there."""
    m = re.search(r"^def test_%s\(.*?(?=^\S)" % re.escape(test_id), text + "\n#end\n", re.MULTILINE | re.DOTALL)
    return m.group(0) if m else None


def feeds_of(source):
    """The calls by which a test's @p source feeds the guest (sorted, unique)."""
    return sorted(set(FEEDS.findall(source or "")))


def _marks(output, mark):
    """The (start, end) of every line of @p output that is @p mark alone, as GDB prints it. The
    replay's own command line (the first line of why.log) may name the marks inside quotes: never a
    mark."""
    return [(m.start(), m.end()) for m in re.finditer(r"^%s[ \t]*$" % re.escape(mark), output, re.MULTILINE)]


def _stops(output):
    """[(text before the stop, its frames, fault-why's output or None, marked wrong)] of every stop
    why-stops explained, in order."""
    marks = _marks(output, MARK_STOP)
    found = []
    for i, (start, end) in enumerate(marks):
        block = output[end:marks[i + 1][0] if i + 1 < len(marks) else len(output)]
        why = _marks(block, MARK_WHY)
        wrong = _marks(block, MARK_WRONG)
        frames = block[:why[0][0]] if why else block
        text = None
        if why:
            text = block[why[0][1]:wrong[0][0] if wrong else len(block)]
        found.append((output[:start], frames, text, bool(wrong)))
    return found


def _judged(output):
    """The stop judged: the first marked wrong, else the first; None when there is none."""
    stops = _stops(output)
    return next((s for s in stops if s[3]), stops[0] if stops else None)


def first_verdict(output):
    """(the judged stop's fault-why verdict line without "verdict: ", that stop's whole fault-why
    output) from a replay's GDB output; (None, "") when no stop has one."""
    stop = _judged(output)
    text = (stop[2] if stop else None) or ""
    for line in text.splitlines():
        if line.startswith("verdict: "):
            return line[len("verdict: "):].strip(), text
    return None, text


def stopped_at_grader(output):
    """True when the replay's first stop is pagoda_grader_stop (the boot awaits the grader)."""
    stops = _stops(output)
    frame0 = next((l for l in (stops[0][1] if stops else "").splitlines() if l.startswith("#0")), "")
    return re.search(r"\b%s\b" % C.GRADER_STOP, frame0) is not None


def stop_kind(output, interrupted=False):
    """Where the judged stop is, from its frames: "panic", "kill" (a process killed for a fault),
    "exit", "end" (the run's end), "triple fault" (the machine paused), "interrupted" (it did
    neither in time), or "stop"."""
    if interrupted:
        return "interrupted"
    stop = _judged(output)
    before, frames = (stop[0], stop[1]) if stop else (output, "")
    frames = " ".join(l for l in frames.splitlines() if l.startswith("#"))
    if "panic_end" in frames:
        return "panic"
    if "user_fault" in frames:
        return "kill"
    if C.EXIT.rsplit("::", 1)[-1] in frames:
        return "exit"
    if C.CHECKPOINT in frames:
        return "end"
    if "SIGQUIT" in before or "shutdown" in before.lower():
        return "triple fault"
    return "stop"


def ended_without_stop(output):
    """True when the guest ran to its end (QEMU exited) instead of stopping."""
    return re.search(r"Remote connection closed|The program is not being run|\[Inferior \d+ .*exited",
                     output) is not None


def judge_verdict(verdict, whole, pattern):
    """yes / partly / no for a @p verdict against the slip's cause regex @p pattern."""
    if verdict is None:
        return "n.a."
    if verdict.startswith(diagnose.NOTHING_WRONG):
        # It names no cause, whatever the pattern finds in what it looked at ("hand" in "handlers").
        verdict, whole = "", (whole or "").replace(verdict, "")
    if verdict and re.search(pattern, verdict, re.IGNORECASE):
        return "yes"
    if re.search(pattern, whole or "", re.IGNORECASE):
        return "partly"
    return "no"


def gdb_argv(pagoda, arch, kernel, cmdline, memory, int_log, swap=None):
    """The `./pagoda gdb` command of a replay: breakpoints at the grader's stop, each process's exit
    and the run's checkpoints (besides --stop-at-kill's and the panic's), then why-stops."""
    argv = [paths.SYSTEM_PYTHON, pagoda, "gdb", "--arch", arch, "--kernel", kernel, "--stop-at-kill", "--batch"]
    if int_log:
        argv.append("--int-log")
    argv += ["--ex", f"break {C.GRADER_STOP}", "--ex", f"break {C.EXIT}", "--ex", f"break {C.CHECKPOINT}",
             "--ex", f"why-stops {MAX_STOPS}", "--", "--cmdline", cmdline]
    if memory:
        argv += ["--memory", memory]
    if swap:
        argv += ["--swap", swap]
    return argv


def run_replay(argv, log_path, deadline=REPLAY_DEADLINE):
    """Runs a replay's GDB; (its output, whether it had to be interrupted). GDB is interrupted
    (SIGINT: it stops the guest and goes on with its commands) after @p deadline seconds, and
    killed with its process group if it is still there AFTER_INTERRUPT seconds later (QEMU
    dies with its parent)."""
    interrupted = False
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(repr(a) if " " in a else a for a in argv) + "\n")
        log.flush()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            interrupted = True
            _signal_gdb(proc, signal.SIGINT)
            try:
                proc.wait(timeout=AFTER_INTERRUPT)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        except BaseException:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
            raise
    with open(log_path, errors="replace") as f:
        return f.read(), interrupted


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _signal_gdb(proc, sig):
    """@p sig to the GDB under `./pagoda gdb` (./pagoda ignores SIGINT while GDB runs; QEMU is in
    a group of its own): every process of the replay's session whose command is GDB's."""
    try:
        out = subprocess.run(["ps", "-o", "pid=,comm=", "-s", str(proc.pid)], capture_output=True,
                             text=True).stdout
    except OSError:
        out = ""
    pids = [int(p) for p, comm in (l.split(None, 1) for l in out.splitlines() if l.strip())
            if comm.strip().startswith("gdb")]
    for pid in pids or [proc.pid]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def why(outcome, tree, root, pagoda=None, replay=run_replay):
    """Fills @p outcome.why / why_match / why_log for a caught slip (@p outcome.test failed);
    @p tree is the tree whose grader graded it (its grade/test_labN.py is read)."""
    o = outcome
    work = os.path.dirname(o.log) if o.log else None
    pattern = o.mutant.causes[o.arch]
    o.why_match = "n.a."
    serial = serial_log_of(o.reason)
    if serial is None or not os.path.exists(serial):
        o.why = "no boot to replay: the failing test's reason names no serial log"
        return o
    try:
        with open(serial, errors="replace") as f:
            serial_text = f.read()
        command_path = os.path.join(os.path.dirname(serial), "command")
        command = open(command_path, errors="replace").read() if os.path.exists(command_path) else ""
    except OSError as e:
        o.why = f"no boot to replay: {e}"
        return o
    cmdline, memory, swap = boot_of(serial_text, command)
    if cmdline is None:
        o.why = f"{NOT_REPLAYABLE}: the kernel died before it printed its command line"
        return o
    try:
        with open(os.path.join(tree, "grade", f"test_lab{o.mutant.lab}.py")) as f:
            feeds = feeds_of(test_source(f.read(), o.test))
    except OSError:
        feeds = []
    if feeds:
        o.why = (f"{NOT_REPLAYABLE}: the grader feeds this boot ({o.test} calls "
                 f"{', '.join(x + '()' for x in feeds)})")
        return o
    qemu_log = os.path.join(os.path.dirname(serial), "qemu.log")
    storm = os.path.exists(qemu_log) and os.path.getsize(qemu_log) > STORM_LOG_BYTES
    argv = gdb_argv(pagoda or os.path.join(root, "pagoda"), o.arch, o.kernel, cmdline, memory, not storm, swap)
    o.why_log = os.path.join(work, "why.log")
    output, interrupted = replay(argv, o.why_log)
    if stopped_at_grader(output):
        o.why = f"{NOT_REPLAYABLE}: the boot stops at {C.GRADER_STOP}() for the grader's inputs"
        return o
    verdict, whole = first_verdict(output)
    if verdict is None:
        o.why = ("the replay ran to its end: nothing died, nothing exited" if ended_without_stop(output)
                 else f"no verdict from fault-why (see {os.path.relpath(o.why_log, root)})")
        return o
    o.why = f"[{stop_kind(output, interrupted)}] {verdict}"
    o.why_match = judge_verdict(verdict, whole, pattern)
    return o
