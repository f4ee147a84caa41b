"""One boot of the kernel under the grader: start QEMU, read the serial console, watch QEMU's
exception log, let a test look at the guest from outside, and judge.

Every boot gets its own directory (serial.log, qemu.log, command), a fresh random token on its
command line, and the test's deadline. QEMU runs in its own process group and dies with the
grader process, so a timeout, a failed assertion or even SIGKILL of the grader leaves no QEMU
behind; a witnessed boot keeps nothing on disk but its logs (its RAM is a memfd, its gdbstub one
end of a socketpair), so a SIGKILL leaves no RAM file or socket either.

A boot ends in one of these ways, each reported as what it is:
  the kernel shut down (success / failure exit), the CPU reset (triple fault), the deadline
  passed (timeout), or the grader stopped it: an exception storm in QEMU's log, a log past
  MAX_LOG_BYTES, console output past MAX_SERIAL_BYTES, or one console line past MAX_LINE_BYTES.
"""
import functools
import os
import re
import select
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field

from pagoda_core import faultlog, kernelinfo, paths, qemu, speed
from pagoda_core.ui import PagodaError
from pagoda_core.symbolize import Symbolizer
from pagoda_pt.isa import MACHINES, isa
from pagoda_pt.kernelnames import NO_NAMES, KernelNames

from . import symbols, todo
from .outcomes import (CHECKED, LOG_LIMIT, OUTPUT_LIMIT, STORM, TIMEOUT, BootEnded, CauseSeen, Checks, GradeFailure,
                       escape_controls, findings, kill_lines, never_reached_reason, panic_line, skeleton_headline,
                       token_line, watch_note)
from .idle import IdleWatch
from .proof import new_token, proof
from .rsp import RspError

# Boots whose guest RAM a test keeps after they end, for the audit at a failure (audit.py): the
# last two (a test that compares two boots fails on either).
KEPT_RAM = 2
# A runaway kernel is cut off at these bounds (and judged on what it printed before).
MAX_SERIAL_BYTES = 1024 * 1024
MAX_LINE_BYTES = 64 * 1024
# QEMU's `-d int` log: a boot whose log grows past this is stopped; what is kept of a long log.
MAX_LOG_BYTES = 64 * 1024 * 1024
LOG_KEEP_HEAD = 1024 * 1024
LOG_KEEP_TAIL = 1024 * 1024
# How often the boot loop looks at QEMU's log while nothing else happens, and how much of it it
# reads at a time (a storm writes tens of MB a second; 64 identical exceptions fit in 100 KB).
POLL_SECONDS = 0.05
LOG_READ_BYTES = 256 * 1024


# Replaces `./pagoda gdb` in the line that boots a failed test's boot again (Booter.replay).
GDB_ENV = "PAGODA_GRADE_GDB"


def name_code(symbolizer, address):
    """'function file:line' when @p address is inside a function of the symbolizer's ELF; None
    elsewhere (llvm-symbolizer would name any address after the nearest symbol)."""
    from .symbols import function_at
    try:
        found = function_at(symbolizer.elf, address)
    except (OSError, subprocess.CalledProcessError):
        return None
    if found is None:
        return None
    named = symbolizer.lookup([address]).get(address)
    if named is None or named.startswith("__"):   # (a linker script's marker at the same address: the label's name)
        return f"{found.name}+{address - found.address:#x}" + (f" {named.split(' ', 1)[1]}" if named and " " in named else "")
    return named


def format_args(args):
    """Command-line words for the inputs a test chose: numbers in hex."""
    return " ".join(f"{k}={v:#x}" if isinstance(v, int) else f"{k}={v}" for k, v in (args or {}).items())



@dataclass
class Run(Checks):
    """The outcome of one boot."""
    token: str
    cmdline: str
    memory: str
    lines: list
    exit_code: int | None
    elapsed: float
    directory: str
    log: faultlog.ExceptionLog
    symbolizer: Symbolizer = field(repr=False)
    arch: str = "x86_64"
    args: dict = field(default_factory=dict)
    stop_kind: str | None = None      # TIMEOUT, STORM, LOG_LIMIT, OUTPUT_LIMIT, or None
    stop_reason: str = ""             # the sentence for stop_kind
    # Invariants of the kernel's records the grader's audits found broken at its stops (the
    # process audit, procaudit.py): the cause put before a failing test's reason (causes.audit_first).
    audit_findings: list = field(default_factory=list)
    witness: object = None            # what the witness script returned
    witness_failure: str = ""         # why the script could not finish (the guest never got there)
    # What the grader's watches saw at its stops and left for the test's own checks to explain
    # first (Booter.watch_problems: shared by every boot of the test).
    watch_problems: list = field(default_factory=list)
    # The boot's guest RAM as it was when the boot ended (audit.Remains; witnessed boots only):
    # what the audit of the kernel's records reads at a failure (audit.findings).
    remains: object = field(default=None, repr=False)
    swap_image: str | None = None     # the swap disk's image file, when the boot had one

    @property
    def timed_out(self):
        return self.stop_kind == TIMEOUT

    @property
    def serial_log(self):
        return os.path.join(self.directory, "serial.log")

    @property
    def qemu_log(self):
        return os.path.join(self.directory, "qemu.log")

    def outcome(self):
        """'success', 'failure', 'triple fault', 'timeout', 'exception storm', 'exception log
        limit', 'output limit', or a description of the exit."""
        if self.stop_kind:
            return self.stop_kind
        if self.exit_code == qemu.EXIT_SUCCESS:
            return "success"
        if self.exit_code == qemu.EXIT_FAILURE:
            return "failure"
        if self.exit_code == qemu.EXIT_RESET and self.log.triple_fault:
            return "triple fault"
        return qemu.describe_exit(self.exit_code)

    def symbol_of(self, address):
        """'function file:line' for an address inside a function of the kernel, or None."""
        return name_code(self.symbolizer, address)

    def _kernel_words(self, va, count):
        try:
            return kernelinfo.elf(self.symbolizer.elf).words_at(va, count)
        except (OSError, PagodaError):
            return None

    def fail(self, reason, cause=None):
        """Raises GradeFailure with causes.failure_text(): the cause first, then @p reason (the
        symptom the test saw), what went wrong with the machine, and the context."""
        from . import causes
        raise GradeFailure(causes.failure_text(self, reason, cause))

    # ---- checks on what the kernel printed (believed unless a witness confirms it; check(): Checks)

    def expect_outcome(self, wanted):
        got = self.outcome()
        if got != wanted:
            self.fail(f"expected the kernel to end with {wanted}, but it ended with {got}")

    def search(self, pattern):
        """The first match of @p pattern (a regex) in any serial line, or None."""
        rx = re.compile(pattern)
        for line in self.lines:
            m = rx.search(line)
            if m:
                return m
        return None

    def expect(self, pattern, what):
        """The first match of @p pattern; fails naming @p what when there is none."""
        m = self.search(pattern)
        if m is None:
            self.fail(f"missing: {what} (no line matches /{pattern}/)")
        return m

    def expect_proof(self, printed_hex, value, what):
        """Checks that @p printed_hex is proof(token, value): the line was computed this boot."""
        want = proof(self.token, value)
        if int(printed_hex, 16) != want:
            self.fail(f"{what}: proof {printed_hex} is not this boot's proof of {value} "
                      f"({want:016x}); the line was not computed from this boot's token")

    def symbolized_lines(self):
        return self.symbolizer.annotate(self.lines)

    def require_witness(self, cause=None):
        """What the witness script returned; fails the test when it could not finish (@p cause:
        what the test knows of why, as for fail())."""
        if self.witness is None:
            self.fail(self.witness_failure or "the grader could not look at the guest (its witness script "
                      "returned nothing)", cause=cause)
        return self.witness


class Session:
    """A running QEMU: its serial output, its log, its time budget (a speed.Budget: the test's
    timeout, scaled to this machine, counting only time QEMU and the grader could run), and
    (when witnessed) its gdbstub.

    pump() is the one place the grader waits: it reads the console, watches the log and enforces
    every bound; the gdbstub client calls it while it waits for the guest."""

    def __init__(self, proc, qemu_log, budget, arch, names=NO_NAMES):
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.qemu_log = qemu_log
        self.budget = budget
        budget.watch(proc.pid)
        self.data = bytearray()
        self.ended = False
        self.stop_kind = None
        self.stop_reason = ""
        self.watcher = faultlog.Watcher(arch, max_bytes=MAX_LOG_BYTES, names=names)
        # The boot's idle.IdleWatch: ends the boot when the guest idles with nothing that can run
        # again (set by Booter._witness; an unwitnessed boot's opens at its first use, open_idle()).
        self.idle = None
        self.open_idle = None
        self._log_offset = 0
        self._last_poll = 0.0
        self._line_start = 0
        self.fed = False    # the grader gave inputs in guest RAM or on the console (not on the command line)

    def stop(self, kind, reason):
        """Ends the boot now, recording why (the first reason wins)."""
        if self.stop_kind is None and not self.ended:
            self.stop_kind, self.stop_reason = kind, reason
        self.ended = True
        qemu.kill_group(self.proc)

    def _take(self, chunk):
        self.data += chunk
        newline = self.data.rfind(b"\n")
        if newline >= 0:
            self._line_start = newline + 1
        if len(self.data) > MAX_SERIAL_BYTES:
            self.stop(OUTPUT_LIMIT, f"console output exceeded {MAX_SERIAL_BYTES} bytes")
        elif len(self.data) - self._line_start > MAX_LINE_BYTES:
            self.stop(OUTPUT_LIMIT, f"a console line exceeded {MAX_LINE_BYTES} bytes without a newline")

    def _watch_log(self, force=False):
        now = time.monotonic()
        if not force and now - self._last_poll < POLL_SECONDS:
            return
        self._last_poll = now
        try:
            size = os.path.getsize(self.qemu_log)
        except OSError:
            return
        if size <= self._log_offset:
            return
        if self.watcher.verdict is not None:
            return  # already judged; what follows is cut away anyway
        with open(self.qemu_log, "rb") as f:
            f.seek(self._log_offset)
            chunk = f.read(min(size - self._log_offset, LOG_READ_BYTES))
        self._log_offset += len(chunk)
        if self.watcher.feed(chunk) and not self.ended:
            kind = STORM if self.watcher.verdict == "storm" else LOG_LIMIT
            self.stop(kind, self.watcher.describe(self.symbolize))
        elif self._idle() is not None and not self.ended:
            reason = self.idle.feed(self.watcher.parser.events)
            if reason:
                # (as at the deadline, which is all that waiting on could bring)
                self.stop(TIMEOUT, reason)

    def _idle(self):
        """The idle watch; an unwitnessed boot's is opened here, once QEMU has made its RAM's memfd
        (the grader types nothing on such a boot: no console input will come)."""
        if self.idle is None and self.open_idle is not None:
            try:
                self.idle, self.open_idle = self.open_idle(), None
            except (AssertionError, OSError):
                return None     # (QEMU has not made it yet)
            if self.idle is not None:
                self.idle.no_more_input()
        return self.idle

    symbolize = None  # set by the Booter: names code addresses in storm messages

    def pump(self, timeout=0.0):
        """Reads what the guest printed (waiting up to @p timeout seconds), watches the log and
        the deadline; returns False once the boot has ended."""
        if self.ended:
            return False
        left = self.budget.left()
        if left <= 0:
            self.stop(TIMEOUT, f"the deadline passed: {self.budget.describe()}")
            return False
        ready, _, _ = select.select([self.fd], [], [], max(0.0, min(timeout, left, POLL_SECONDS)))
        if ready:
            chunk = os.read(self.fd, 65536)
            if chunk:
                self._take(chunk)
            else:
                self.ended = True  # QEMU exited
                self._watch_log(force=True)
                return False
        self._watch_log()
        return not self.ended

    def check(self):
        """For code waiting on the gdbstub: pump once; BootEnded when the boot is over."""
        if not self.pump(0.0):
            raise BootEnded(self.stop_reason or "the kernel exited")

    def run_to_end(self):
        while self.pump(POLL_SECONDS):
            pass

    def drain(self):
        """After QEMU is gone: what it printed that nobody read yet (a boot the grader stopped
        while the guest had output in flight), within the output limits."""
        while len(self.data) <= MAX_SERIAL_BYTES:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0)
                chunk = os.read(self.fd, 65536) if ready else b""
            except (OSError, ValueError):
                return
            if not chunk:
                return
            self.data += chunk

    def send(self, text):
        """Types @p text on the guest's serial console."""
        self.fed = True
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise BootEnded("the kernel exited") from None

    def lines(self):
        return self.data.decode(errors="replace").replace("\r\n", "\n").splitlines()


def decide(excinfo, booter, lab, test_lab):
    """Where a test is decided, the one place: (True, "") when it passed, else (False, the reason
    the grade prints). It failed when its call raised (@p excinfo, pytest's ExceptionInfo) or, having
    passed, when its boots (@p booter, None for a test that boots nothing) left a problem no check
    of its own explained (Booter.unexplained_problem()). The reason: Booter.verdict(), the TODO
    lines of labs after the tree's (@p lab; None: the test's, @p test_lab) marked, control
    characters escaped. grade/conftest.py asks once per test; ./pagoda grade prints the answer."""
    if excinfo is None:
        if booter is None:
            return True, ""
        try:
            booter.unexplained_problem()
            return True, ""
        except GradeFailure as e:
            error, name = e, "GradeFailure"
    else:
        error, name = excinfo.value, excinfo.typename
    reason = str(error) if isinstance(error, AssertionError) and str(error) else f"{name}: {error}"
    lab = test_lab if lab is None else lab
    if booter is not None:
        reason = booter.verdict(reason, lab, test_lab)
    return False, escape_controls(todo.mark_later_todos(reason, lab))


def _at_inspect_ready(inspect):
    def script(guest):
        inspect(guest.stop_at_line(r"^inspect: ready$", delay=0.05))
        guest.end()
    return script


class Booter:
    """Boots one kernel ELF; a test's `boot` fixture is one of these."""

    @functools.cached_property
    def kernel_names(self):
        """The kernel's tables of names (pagoda_pt.kernelnames), read from its ELF: QEMU's log is
        described in the kernel's words."""
        return KernelNames.read(isa(self.arch), kernelinfo.elf(self.kernel).names)

    def __init__(self, kernel, arch, directory, timeout, programs=False, drains=False):
        self.kernel = kernel
        self.arch = arch
        self.directory = directory
        self.timeout = timeout
        self.programs = programs   # the test runs user programs: the kernel must embed the grader's
        self.drains = drains       # its runs drain the frame allocator at their start and end (churn.py)
        self.count = 0
        self.symbolizer = Symbolizer(kernel)
        self.serial_lines = []   # every boot's console lines, in boot order (for the failure's headline)
        # What a watch the grader runs at every stop (programs.ImageWatch) found wrong: not raised
        # there, so that the test's own checks name a kernel bug that explains it first; the test
        # fails with it when nothing else fails it (unexplained_problem(), grade/conftest.py).
        self.watch_problems = []
        # The kernel's code or read-only data changed in guest RAM, seen as a witnessed boot ended
        # (symbols.image_change): said after a failing test's reason, and fails a test that passed.
        self.image_problems = []
        # What the grader's audits found broken at its stops (procaudit.ProcessAudit): the first
        # heads a failure of the test (Run.fail, causes.audit_first); it never fails one itself.
        self.audit_findings = []
        # Checks of a boot's whole serial output (bytes), made once it has ended and been drained:
        # each returns a finding for audit_findings, or None (watch.WriteWatch).
        self.serial_checks = []
        # What the test wants said even when it passes (e.g. a check this QEMU cannot make):
        # the grade prints it under the test (grade/conftest.py, tools/pagoda/grade.py).
        self.notes = []
        # Shared by all boots of one test: @p timeout seconds on the reference machine, scaled
        # by the speed factor, not counting time the grader or its QEMUs waited for a CPU.
        self.budget = speed.Budget(timeout)
        # The guest RAM of the last boots (audit.Remains), kept for the audit at a failure.
        self.kept_ram = []
        self.last_boot = None   # (token, directory) of the last boot, for failures outside Run.fail
        self.last_run = None    # the last boot's Run (its fault and its kept RAM: picture())
        self.drain_findings = []   # (what a boot's drains found, its (token, directory)): end_audit()
        self.replays = []       # (token, the `./pagoda gdb` line that boots it again) of each boot

    def keep_ram(self, remains):
        """Keeps @p remains for the Run; gives back all but the last KEPT_RAM boots' RAM."""
        if remains is not None:
            self.kept_ram.append(remains)
        while len(self.kept_ram) > KEPT_RAM:
            self.kept_ram.pop(0).close()

    def close(self):
        """Gives back every boot's kept RAM (the test is over)."""
        while self.kept_ram:
            self.kept_ram.pop().close()

    def note(self, text):
        """Says @p text under the test's result, passed or failed (once)."""
        if text not in self.notes:
            self.notes.append(text)

    def fresh_token(self):
        """A token for the next boot (PAGODA_GRADE_TOKEN when set): tests that derive their
        inputs from the token take it first and pass it to the boot."""
        return os.environ.get("PAGODA_GRADE_TOKEN") or new_token()

    def __call__(self, test=None, memory=qemu.DEFAULT_MEMORY, extra_cmdline="", token=None,
                 args=None, witness=None, inspect=None, swap=None, cpus=1):
        """Boots once and returns the Run.

        @p args are inputs the test chose, put on the command line as key=value words.
        @p witness, a callable taking a witness.Guest, makes the boot witnessed: QEMU starts
        stopped, with its RAM readable by the grader and a gdbstub; the callable looks at the
        guest (stopping it where it likes) while it runs, and its return value is Run.witness.
        An AssertionError it raises fails the test with the boot's context; when it returns,
        the guest runs on to its end.

        @p inspect, a callable taking a witness.Snapshot, is for kernels that announce the moment
        themselves (the debugging tools' fixtures): the guest is stopped when it prints
        `inspect: ready`, and the callable looks at it. Graded tests pick their moments.

        @p swap attaches a swap disk: its size in bytes, or a dict of qemu.SwapDisk's options
        (size, readonly, modern, device, failing_slot). Its image, made in the boot's directory,
        is Run.swap_image (read it once the boot has ended); QEMU's trace of its requests is in
        the boot's qemu.log, beside the exceptions. @p cpus: the vCPUs (lab 8: 2, run in turn)."""
        if inspect is not None:
            witness = _at_inspect_ready(inspect)
        if self.count == 0:
            from .symbols import fact_problems
            problems = fact_problems(self.kernel)
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise GradeFailure(problems[0] + more + "\n(the grader booted nothing: its checks use the "
                                   "course's constants, which the kernel exports as the lab gives them)")
        if self.programs and self.count == 0:
            from .programs import embedded_problems
            problems = embedded_problems(self.kernel, self.arch)
            if problems:
                raise GradeFailure(problems[0] + "\n(the grader booted nothing: a test that runs user programs "
                                   "relies on them being the grader's)")
        # PAGODA_GRADE_TOKEN reproduces a boot whose token a failure message gave.
        token = token or self.fresh_token()
        args = {**args, "drain": "on"} if self.drains and args and "run" in args else args
        # PAGODA_GRADE_CMDLINE is appended to every boot (its test= wins): a debugging aid, and
        # how the grader's own tests make every boot of a real grade hang.
        cmdline = " ".join(filter(None, [f"token={token}", f"test={test}" if test else "", format_args(args),
                                         extra_cmdline, os.environ.get("PAGODA_GRADE_CMDLINE", "")]))
        self.count += 1
        directory = os.path.join(self.directory, f"boot{self.count}")
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        qemu_log = os.path.join(directory, "qemu.log")
        # Every boot's RAM is a memfd the grader can read: a witness's, and the idle watch's.
        extra, pass_fds, ours, theirs = ["-object", f"memory-backend-memfd,id=pagoda-ram,size={memory},share=on",
                                         "-machine", "memory-backend=pagoda-ram"], (), None, None
        if witness is not None:
            ours, theirs = socket.socketpair()
            pass_fds = (theirs.fileno(),)
            extra += ["-chardev", f"socket,id=pagoda-gdb,fd={theirs.fileno()}", "-gdb", "chardev:pagoda-gdb", "-S"]
        disk = None if swap is None else qemu.SwapDisk(directory, **(swap if isinstance(swap, dict) else
                                                                     {"size": swap}))
        argv = qemu.command(self.kernel, cmdline, arch=self.arch, memory=memory, serial="stdio",
                            log_items="int,cpu_reset", log_file=qemu_log, extra=extra, swap=disk, cpus=cpus)
        with open(os.path.join(directory, "command"), "w") as f:
            f.write(" ".join(argv) + "\n")

        start = time.monotonic()
        proc = qemu.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          pass_fds=pass_fds)
        witness_result, witness_error, witness_failure = None, None, ""
        self._remains = None
        session = None
        try:
            # (inside the try: a Ctrl-C while the Session reads the kernel's names still ends QEMU)
            if theirs is not None:
                theirs.close()
            session = Session(proc, qemu_log, self.budget, self.arch, self.kernel_names)
            session.symbolize = lambda a: name_code(self.symbolizer, a)
            if witness is not None:
                witness_result, witness_error, witness_failure = self._witness(witness, session, ours, memory)
            else:
                session.open_idle = functools.partial(self._idle_watch, proc.pid, qemu.memory_mib(memory) << 20)
            if session.idle is not None:
                session.idle.no_more_input()    # (the grader types only from its witness script)
            session.run_to_end()
        finally:
            qemu.kill_group(proc)
            if session is not None:
                session.ended = True
                session.drain()
                if session.idle is not None:
                    session.idle.close()
            for stream in (proc.stdout, proc.stdin):
                try:
                    stream.close()
                except OSError:
                    pass
            if ours is not None:
                ours.close()
        elapsed = time.monotonic() - start
        session._watch_log(force=True)
        if session.stop_kind != OUTPUT_LIMIT:   # (cut short: what is missing may have been dropped)
            self.audit_findings += filter(None, (check(bytes(session.data)) for check in self.serial_checks))
        self.serial_checks.clear()

        text = session.data.decode(errors="replace").replace("\r\n", "\n")
        self.serial_lines += text.splitlines()
        with open(os.path.join(directory, "serial.log"), "w") as f:
            f.write(text)
        faultlog.cut_file(qemu_log, LOG_KEEP_HEAD, LOG_KEEP_TAIL)
        run = Run(token=token, cmdline=cmdline, memory=memory, lines=text.splitlines(),
                  audit_findings=self.audit_findings,
                  exit_code=None if session.stop_kind else proc.returncode, elapsed=elapsed,
                  directory=directory, log=faultlog.parse_file(qemu_log, self.arch, self.kernel_names),
                  symbolizer=self.symbolizer, arch=self.arch, args=dict(args or {}),
                  stop_kind=session.stop_kind, stop_reason=session.stop_reason, witness=witness_result,
                  witness_failure=witness_failure, watch_problems=self.watch_problems, remains=self._remains,
                  swap_image=disk.image if disk else None)
        self.last_boot, self.last_run = (token, directory), run
        self.replays.append((token, self.replay(run, session.fed, getattr(witness_error, "stop", None))))
        if self._remains is not None:
            self._remains.boot = self.last_boot
            if args and "drain" in args:   # (its RAM as the run left it: churn.given_back_problem)
                from . import churn
                problem = churn.given_back_problem(self.kernel, self.arch, self._remains, token)
                self.drain_findings += [(problem, self.last_boot)] if problem else []
        if witness_error is not None:   # (a CauseSeen is named first, before what the machine did after)
            run.fail(str(witness_error), cause=str(witness_error) if isinstance(witness_error, CauseSeen) else None)
        return run

    def replay(self, run, fed, stop=None):
        """The line that boots @p run again in GDB: the same kernel and command line, stopped where
        it died (a check failed at a grader's stop, @p stop = (pc, n, its words): a breakpoint there
        that stops the n-th time; a kill: --stop-at-kill; a panic: ./pagoda gdb's own breakpoint on
        panic_end; a triple fault or an exception storm: --int-log, for fault-why to name the first
        fault).
        PAGODA_GRADE_GDB replaces `./pagoda gdb --kernel ELF` where that is another command (a
        hunt's tree is debugged with `./pagoda hunt gdb`)."""
        words = (os.environ.get(GDB_ENV) or "./pagoda gdb").split() + ["--arch", run.arch] * (run.arch != paths.DEFAULT_ARCH)
        elf = os.path.abspath(self.kernel)
        if GDB_ENV not in os.environ and elf != os.path.abspath(paths.kernel_elf(run.arch)):
            words += ["--kernel", os.path.relpath(elf, paths.ROOT) if elf.startswith(paths.ROOT + os.sep) else elf]
        outcome = run.outcome()
        # (neutral words: this line may be a failure's second, which `labs mutants` reads for the cause)
        if stop is not None:
            pc, n, seen = stop
            words += ["--ex", f"break *{pc:#x}"] + ["--ex", f"ignore $bpnum {n - 1}"] * (n > 1)
            where = f"continue: it stops at {seen}, where the grader saw it"
        elif kill_lines(run.lines, at_most=1):
            words.append("--stop-at-kill")
            where = "it stops where the kernel kills a process"
        elif panic_line("\n".join(run.lines)):   # (whatever the outcome: a witness's failure is set after this)
            where = "it stops at the kernel's panic"
        elif outcome in ("triple fault", STORM):
            words.append("--int-log")
            where = "the machine stops at a triple fault, or loops: Ctrl-C; fault-why names the fault that began it"
        else:
            where = "nothing died in it: it runs to its end"
        words += ["--"] + ["-m", run.memory] * (run.memory != qemu.DEFAULT_MEMORY) + ["--cmdline", run.cmdline]
        fed = "; the grader also gave it inputs in its RAM or on its console, which this boot does not get" * fed
        return f"in GDB, the same kernel and command line ({where}{fed}): {shlex.join(words)}"

    def with_replay(self, reason):
        """@p reason with the replay() line of the boot it names after its token line; without
        one, the last boot's token line and replay() line at its end (never its first two lines,
        where `labs mutants` looks for the cause). Unchanged when the test booted nothing."""
        if not self.replays:
            return reason
        lines = reason.splitlines()
        at = next((i for i, l in enumerate(lines) if l.startswith("boot token ")), None)
        if at is None:
            lines.append(token_line(self.replays[-1][0]))
            at = len(lines) - 1
        named = lines[at].split()[2]
        lines.insert(at + 1, next((r for t, r in reversed(self.replays) if t == named), self.replays[-1][1]))
        return "\n".join(lines)

    def verdict(self, error, lab, test_lab):
        """The reason of a test that failed with @p error: the lab-@p test_lab skeleton the kernel
        reached first (no later than lab @p lab, the tree's), the error, what the watches saw
        that it does not already say, the replay line."""
        reason = skeleton_headline(error, self.serial_lines, min(test_lab, lab)) if test_lab is not None else error
        seen = "\n".join(filter(None, [watch_note(self.watch_problems, reason),
                                      watch_note(self.image_problems, reason, "as a boot ended")]))
        return self.with_replay(reason + "\n" + seen if seen else reason)

    def unexplained_problem(self):
        """Raises GradeFailure with the first broken invariant or watch problem of this test's boots
        that no check of its own explained (it passed): first what an audit found broken at the
        grader's stops (audit_findings: the process audit), then the frame and heap audit of the
        RAM the last boots left (end_audit()), then what a watch recorded (watch_problems). On a
        correct kernel there is none of them: each is a kernel bug, whatever the test's own checks
        saw. Nothing when there is none."""
        if self.image_problems:
            raise GradeFailure(self.image_problems[0] + "\n(the grader compared the kernel's code and read-only data "
                               "in guest RAM with the ELF it booted, as the boot ended)" + self._boot_context(self.last_boot))
        if self.audit_findings:
            more = len(self.audit_findings) - 1
            raise GradeFailure(self.audit_findings[0].splitlines()[0]
                               + "\n(the grader's process audit, reading the process table in guest RAM at its "
                               "stops, found this broken though the test's own checks passed"
                               + (f"; {more} more finding{'s' * (more > 1)})" if more else ")")
                               + self._boot_context(self.last_boot))
        found, boot = self.end_audit()
        if found:
            raise GradeFailure(found[0] + "\n(the grader audited the kernel's frame and heap records in guest RAM "
                               "as the test's last boot ended: broken though the test's own checks passed)"
                               + "".join(f"\n  {f}" for f in found[1:4]) + self._boot_context(boot))
        if self.watch_problems:
            more = len(self.watch_problems) - 1
            raise GradeFailure(self.watch_problems[0] + (f"\n(and {more} more such problem{'s' * (more > 1)} at "
                                                         "the grader's stops)" if more else ""))

    def picture(self, reason):
        """Writes the picture of the failing moment (pagoda_pt.picture) as picture.html beside the
        last boot's logs: the guest RAM it left (else the last RAM kept), the first fault the
        kernel took in QEMU's log (else the last fault), line 1 of @p reason. Its path, or None
        when the test booted nothing or the page could not be written (the grade never depends on
        it)."""
        run = self.last_run
        if run is None:
            return None
        from pagoda_pt import picture
        from pagoda_pt.isa import cpus_of
        from . import causes
        from .witness import ARCHES
        start = time.monotonic()
        try:
            first = causes.first_kernel_fault(run)
            which = "The first fault the kernel itself took"
            if first is None and run.log.faults:
                first, which = run.log.faults[-1], "The last fault QEMU logged (one the kernel may have answered)"
            fault = first and picture.Fault(first.address, first.pc, first.privilege != ARCHES[run.arch].kernel_privilege,
                                            first.describe(run.symbol_of), first.root, which)
            remains = next((r for r in ([run.remains] + self.kept_ram[::-1]) if r is not None and r.fd is not None), None)
            title = f"Pagoda: {os.path.basename(self.directory)} failed"
            if remains is None:
                snap = picture.Snapshot(title, run.arch, reason.split("\n", 1)[0], fault, notes=[
                    "the grader kept no guest RAM of this test's boots (it watched none of them through the gdbstub)"])
            else:
                snap = picture.take(run.arch, remains.read_phys, symbols.reader(self.kernel), title,
                                    reason.split("\n", 1)[0], fault)
                snap.cpus = cpus_of(run.arch, getattr(remains, "cpus", []))
            snap.notes.append(f"boot token {run.token}; written in {time.monotonic() - start:.2f} s of grader time")
            path = os.path.join(run.directory, "picture.html")
            with open(path, "w") as f:
                f.write(picture.to_html(snap))
            return path
        except Exception:   # (a page the grader cannot draw is no failure of the kernel's)
            return None

    def end_audit(self):
        """The frame and heap audit (audit.audit_ram) of the guest RAM each kept boot left as it
        ended, the last boot first: (the findings of the first boot that has any, that boot's
        (token, directory)); else what the drains of the first boot that ended with a drain problem
        found (churn.given_back_problem, read as each boot ended); else ([], None). Once per test, at
        its end."""
        from . import audit
        for remains in reversed(self.kept_ram):
            if remains.fd is None:
                continue
            found = audit.audit_ram(self.kernel, self.arch, remains.read_phys)
            if found:
                return found, remains.boot
        if self.drain_findings:
            return [self.drain_findings[0][0]], self.drain_findings[0][1]
        return [], None

    @staticmethod
    def _boot_context(boot):
        """The lines naming boot @p boot ((token, directory) or None) after a failure raised
        outside Run.fail: its token and its logs (what `labs mutants --why` replays)."""
        if boot is None:
            return ""
        token, directory = boot
        return (f"\n{token_line(token)}"
                f"\nthat boot's logs (full log: {os.path.join(directory, 'serial.log')}; "
                f"QEMU log: {os.path.join(directory, 'qemu.log')})")

    def _idle_watch(self, pid, ram_size):
        """The idle.IdleWatch of an unwitnessed boot (QEMU @p pid, @p ram_size bytes of RAM), or None."""
        fd = qemu.open_guest_ram(pid)
        try:
            return IdleWatch.of(self.kernel, MACHINES[self.arch].ram_base, fd, ram_size)
        finally:
            os.close(fd)

    def _witness(self, script, session, sock, memory):
        """Runs the witness script against the live guest; returns (its result, its failed check,
        why it could not finish)."""
        from . import witness  # (imports the walker; only witnessed boots need it)
        guest, cpus = None, []
        try:
            guest = witness.Guest.attach(self, session, sock, qemu.memory_mib(memory) << 20)
            session.idle = IdleWatch.of(self.kernel, guest.machine.ram_base, guest.ram_fd, guest.ram_size)
            return script(guest), None, ""
        except (BootEnded, RspError) as e:
            if isinstance(e, RspError) and session.pump(0.0):
                raise   # the machine still runs: a fault of the grader's, not the guest's end
            where = guest.waiting_for if guest is not None and guest.waiting_for else "the grader's checks"
            how = session.stop_reason if session.stop_kind else f"the kernel exited first ({e})"
            panicked = panic_line(session.data)
            found = findings(session.data)
            if panicked and not session.stop_kind:
                # The panic itself heads the failure (causes.headline()): the cause before the
                # symptom; what the kernel said before it follows the symptom.
                how = "the kernel panicked first" + ("; before that: " + "; ".join(found) if found else "")
                found = []
            return None, None, never_reached_reason(where, how, found)
        except AssertionError as e:
            if not session.ended:
                cpus = guest.cpu_readings() if guest is not None else []    # (the failing moment's)
                session.stop(CHECKED, "")
            return None, e, ""
        finally:
            if guest is not None:
                from . import audit
                try:
                    self._remains = audit.keep(guest)
                    self.keep_ram(self._remains)
                except OSError:
                    self._remains = None
                if self._remains is not None:
                    self._remains.cpus = cpus
                try:
                    changed = self._remains and symbols.image_change(self.kernel, self._remains.read_phys)
                except (OSError, ValueError, AssertionError):
                    changed = None
                if changed and changed not in self.image_problems:
                    self.image_problems.append(changed)
                guest.release()
