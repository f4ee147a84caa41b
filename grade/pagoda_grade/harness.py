"""One boot of the kernel under the grader: start QEMU, read the serial console, judge.

Every boot gets its own directory (serial.log, qemu.log), a fresh random token on its command
line, and a deadline. QEMU runs in its own process group and dies with the grader process, so
a timeout, a failed assertion or even SIGKILL of the grader leaves no QEMU behind.
"""
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from pagoda import faultlog, qemu
from pagoda.symbolize import Symbolizer

from .inspect import READY_LINE, Inspector, Monitor
from .proof import new_token, proof

TAIL_LINES = 40
# A runaway kernel printing without end is cut off here (and judged on what it printed).
MAX_SERIAL_BYTES = 4 * 1024 * 1024
# Only this much of QEMU's interrupt log is read when summarising the first fault.
MAX_QEMU_LOG_BYTES = 16 * 1024 * 1024


def inspect_ready(data):
    """True once the serial output holds the inspection line."""
    return (READY_LINE + "\n").encode() in data.replace(b"\r\n", b"\n")


def memory_bytes(size):
    """QEMU's -m size ('128M', '1G') in bytes."""
    units = {"M": 1 << 20, "G": 1 << 30}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size) << 20


class GradeFailure(AssertionError):
    """A test's verdict, with everything a student needs to start debugging."""


@dataclass
class Run:
    """The outcome of one boot."""
    token: str
    cmdline: str
    memory: str
    lines: list
    exit_code: int | None
    timed_out: bool
    elapsed: float
    directory: str
    faults: faultlog.FaultLog
    symbolizer: Symbolizer = field(repr=False)

    @property
    def serial_log(self):
        return os.path.join(self.directory, "serial.log")

    @property
    def qemu_log(self):
        return os.path.join(self.directory, "qemu.log")

    def outcome(self):
        """'success', 'failure', 'triple fault', 'timeout', or a description of the exit."""
        if self.timed_out:
            return "timeout"
        if self.exit_code == qemu.EXIT_SUCCESS:
            return "success"
        if self.exit_code == qemu.EXIT_FAILURE:
            return "failure"
        if self.exit_code == qemu.EXIT_RESET and self.faults.triple_fault:
            return "triple fault"
        return qemu.describe_exit(self.exit_code)

    def fail(self, reason):
        """Raises GradeFailure: the reason, what went wrong with the machine, and the context."""
        parts = [reason]
        outcome = self.outcome()
        if outcome == "timeout":
            parts.append("the kernel did not finish in time (hung, or looping)")
        elif outcome not in ("success", "failure"):
            parts.append(f"the machine ended with: {outcome}")
        summary = self.faults.summary()
        if summary and outcome not in ("success",):
            parts.append(summary)
        tail = self.symbolizer.annotate(self.lines[-TAIL_LINES:])
        parts.append(f"last {len(tail)} lines of serial output (full log: {self.serial_log}; "
                     f"QEMU log: {self.qemu_log}):")
        parts.extend("  | " + l for l in tail)
        raise GradeFailure("\n".join(parts))

    # ---- checks -----------------------------------------------------------------------------

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


class Booter:
    """Boots one kernel ELF; a test's `boot` fixture is one of these."""

    def __init__(self, kernel, arch, directory, timeout):
        self.kernel = kernel
        self.arch = arch
        self.directory = directory
        self.timeout = timeout
        self.count = 0
        self.symbolizer = Symbolizer(kernel)
        self.deadline = time.monotonic() + timeout  # shared by all boots of one test

    def __call__(self, test=None, memory=qemu.DEFAULT_MEMORY, extra_cmdline="", token=None, inspect=None):
        """Boots once. With @p inspect (a callable taking an Inspector), the guest's RAM is a
        file and its monitor a socket: when the kernel prints the inspection line, the callable
        examines the halted guest, then QEMU is told to quit."""
        token = token or new_token()
        # PAGODA_GRADE_CMDLINE is appended to every boot (its test= wins): a debugging aid, and
        # how the grader's own tests make every boot of a real grade hang.
        cmdline = " ".join(filter(None, [f"token={token}", f"test={test}" if test else "", extra_cmdline,
                                         os.environ.get("PAGODA_GRADE_CMDLINE", "")]))
        self.count += 1
        directory = os.path.join(self.directory, f"boot{self.count}")
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        qemu_log = os.path.join(directory, "qemu.log")
        extra, sock_dir = [], None
        if inspect is not None:
            sock_dir = tempfile.mkdtemp(prefix="pagoda-mon-")  # unix socket paths must be short
            ram_path = os.path.join(directory, "ram")
            extra = ["-object", f"memory-backend-file,id=pagoda-ram,size={memory},mem-path={ram_path},share=on",
                     "-machine", "memory-backend=pagoda-ram",
                     "-monitor", f"unix:{os.path.join(sock_dir, 'mon.sock')},server=on,wait=off"]
        argv = qemu.command(self.kernel, cmdline, arch=self.arch, memory=memory, serial="stdio",
                            log_items="int,cpu_reset", log_file=qemu_log, extra=extra)
        with open(os.path.join(directory, "command"), "w") as f:
            f.write(" ".join(argv) + "\n")

        start = time.monotonic()
        proc = qemu.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
        data, timed_out, inspected, inspect_error = bytearray(), False, False, None
        try:
            fd = proc.stdout.fileno()
            while True:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > MAX_SERIAL_BYTES:
                    timed_out = True
                    break
                if inspect is not None and not inspected and inspect_ready(data):
                    inspected = True
                    inspect_error = self._inspect(inspect, sock_dir, ram_path, memory)
        finally:
            qemu.kill_group(proc)
            proc.stdout.close()
            if sock_dir:
                shutil.rmtree(sock_dir, ignore_errors=True)
                if os.path.exists(ram_path):
                    os.unlink(ram_path)
        elapsed = time.monotonic() - start

        text = data.decode(errors="replace").replace("\r\n", "\n")
        with open(os.path.join(directory, "serial.log"), "w") as f:
            f.write(text)
        with open(qemu_log, "rb") as f:
            log_text = f.read(MAX_QEMU_LOG_BYTES).decode(errors="replace")
        run = Run(token=token, cmdline=cmdline, memory=memory, lines=text.splitlines(),
                  exit_code=None if timed_out else proc.returncode, timed_out=timed_out,
                  elapsed=elapsed, directory=directory, faults=faultlog.parse(log_text),
                  symbolizer=self.symbolizer)
        if inspect is not None and not inspected:
            run.fail(f"the kernel never printed '{READY_LINE}' and halted for inspection")
        if inspect_error is not None:
            run.fail(str(inspect_error))
        return run

    def _inspect(self, inspect, sock_dir, ram_path, memory):
        """Runs @p inspect on the halted guest; returns its failure (or None)."""
        monitor = Monitor(os.path.join(sock_dir, "mon.sock"), self.deadline)
        inspector = None
        try:
            inspector = Inspector(self.arch, monitor, ram_path, memory_bytes(memory))
            inspect(inspector)
            return None
        except AssertionError as e:
            return e
        finally:
            if inspector:
                inspector.close()
            monitor.quit()
