"""Test rig for the GDB commands: a paused QEMU with a unix-socket gdbstub, and batch GDB
sessions that run a list of steps and hand back every step's output.

    with Machine(kernel, test="pf") as m:
        results = run_steps(kernel, m.socket, [
            ("brk", "cmd", "break pagoda::kmain"), ("go", "cmd", "continue"),
            ("kmain", "eval", "&pagoda::kmain"),
            ("walk", "cmd", "pt-walk {kmain:#x}"),        # {name} = an earlier eval result
        ])
    results["walk"].output, results["walk"].error, results["kmain"].value

Steps run inside GDB by gdb_driver.py: 'cmd' is gdb.execute(..., to_string=True) (GDB's
error message is kept instead of raising), 'eval' is int(parse_and_eval(...)), 'python' runs
a Python statement (for checks that need the gdb module directly), 'continue_for' continues
and interrupts the machine after that many seconds, as Ctrl-C would, 'continue_until' does that
again and again until a GDB expression holds at a stop (bounded by the session's deadline, the
run's timeout less a fifth, so that the steps after it still report).  QEMU is always killed
(Machine is a context manager around qemu.spawn / qemu.kill_group); GDB runs under a timeout.
"""
import fcntl
import re
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
GDB_DIR = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(GDB_DIR))

from pagoda_core import build, paths, qemu
from pagoda_core.speed import scaled  # (limits for this machine: speed.py)
from pagoda_pt import contract as C

GDB = "gdb-multiarch"
QEMU = "qemu-system-x86_64"
QEMU_AARCH64 = "qemu-system-aarch64"
DRIVER = os.path.join(HERE, "gdb_driver.py")
GDB_TIMEOUT = scaled(60)


def missing_tools(qemu_binary=QEMU):
    """Why the GDB tests cannot run here, or '' when they can."""
    absent = [tool for tool in (GDB, qemu_binary) if shutil.which(tool) is None]
    return ("not installed: " + ", ".join(absent)) if absent else ""


def build_kernel(arch="x86_64", fixtures=False):
    """The kernel under test: $PAGODA_GDB_TEST_KERNEL, or build/<arch>/kernel.elf built once
    (under the grader's lock, so parallel test processes do not build at the same time).
    With @p fixtures: build/<arch>/kernel-fixtures.elf, the kernel with the deliberately
    broken self-tests (arch/<arch>/fixtures/)."""
    given = os.environ.get("PAGODA_GDB_TEST_KERNEL")
    if given and not fixtures:
        return given
    os.makedirs(paths.BUILD, exist_ok=True)
    with open(os.path.join(paths.BUILD, f".grade-build-{arch}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build.build_kernel(arch, fixtures=fixtures)


def qemus_mentioning(text):
    """PIDs of QEMU processes whose command line contains @p text."""
    return qemu.processes_mentioning("qemu-system", text)


class Machine:
    """QEMU paused at reset (-S), gdbstub on a unix socket in a private directory, serial
    console to a file, a swap disk there when asked; a triple fault pauses it (-action
    shutdown=pause), as in ./pagoda gdb."""

    def __init__(self, kernel, test=None, memory="128M", int_log=False, cmdline="", arch="x86_64", swap=None,
                 cpus=1):
        self.dir = tempfile.mkdtemp(prefix="pagoda-gdbtest-")
        # (a swap disk of @p swap bytes, as ./pagoda gdb --swap attaches one: lab 7)
        self.swap = qemu.SwapDisk(self.dir, swap) if swap else None
        self.socket = os.path.join(self.dir, "gdb.sock")
        self.serial = os.path.join(self.dir, "serial.log")
        self.int_log = os.path.join(self.dir, "qemu-int.log") if int_log else None
        words = " ".join(filter(None, [f"test={test}" if test else "", cmdline]))
        self.argv = qemu.command(kernel, words, arch=arch, memory=memory,
                                 serial=f"file:{self.serial}",
                                 log_items="int,cpu_reset" if int_log else None,
                                 log_file=self.int_log, gdb_socket=self.socket, paused=True,
                                 extra=("-action", "shutdown=pause"), swap=self.swap, cpus=cpus)
        self.proc = None

    def __enter__(self):
        self.proc = qemu.spawn(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + scaled(10)
            while not os.path.exists(self.socket):
                assert self.proc.poll() is None, f"QEMU exited: {self.proc.returncode}"
                assert time.monotonic() < deadline, "QEMU never created its gdbstub socket"
                time.sleep(0.01)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            qemu.kill_group(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def serial_text(self):
        try:
            with open(self.serial, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


@dataclass
class Step:
    name: str
    output: str = ""
    error: str = ""
    value: int = None


def gdb_argv(kernel, *extra, helpers=True):
    # (auto-load off: a kernel.elf-gdb.py next to the kernel must not load the helpers twice)
    argv = [GDB, "-batch", "-nx", "-q", "-iex", "set auto-load python-scripts off", kernel]
    if helpers:
        argv += ["-ex", f"python import sys; sys.path.insert(0, {GDB_DIR!r}); "
                        "import pagoda_gdb; pagoda_gdb.register_all()"]
    return argv + list(extra)


def run_steps(kernel, socket, steps, attach="--no-entry --no-panic-break", timeout=GDB_TIMEOUT):
    """Runs @p steps [(name, kind, text)] in one batch GDB connected to @p socket by
    `pagoda-attach SOCKET <attach>` (not connected when attach is None); returns {name: Step}."""
    with tempfile.TemporaryDirectory(prefix="pagoda-gdbsteps-") as tmp:
        spec = os.path.join(tmp, "steps.json")
        results = os.path.join(tmp, "results.json")
        with open(spec, "w") as f:
            json.dump({"steps": steps, "results": results, "deadline": time.time() + 0.8 * timeout}, f)
        pre = ["-ex", "set pagoda-serial-on-stop off"]
        if attach is not None:
            pre += ["-ex", f"pagoda-attach {socket} {attach}"]
        env = dict(os.environ, PAGODA_GDB_STEPS=spec)
        proc = subprocess.run(gdb_argv(kernel, *pre, "-x", DRIVER), env=env,
                              capture_output=True, text=True, timeout=timeout)
        if not os.path.exists(results):
            raise AssertionError(f"GDB produced no results (status {proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        with open(results) as f:
            data = json.load(f)
    assert "Traceback" not in proc.stderr, proc.stderr
    return {row["name"]: Step(**row) for row in data}


def monitor_gva2gpa(text):
    """QEMU's answer: the physical address, or None for 'Unmapped'."""
    text = text.strip()
    if text.startswith("gpa: "):
        return int(text[5:], 16)
    assert "Unmapped" in text, text
    return None


def kernel_symbol(kernel, name):
    """The address of @p name in the kernel's ELF (nm), chosen before the boot."""
    out = subprocess.run(["nm", kernel], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2] == name:
            return int(fields[0], 16)
    raise AssertionError("no symbol %s in %s" % (name, kernel))


def ps_rows(text):
    """{pid: (active, name, state, root)} from pt-ps."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^([* ])\s+(\d+)\s+(\S+)\s+(\S+)\s+slot \d+\s+(0x[0-9a-f]+)$", line)
        if m:
            rows[int(m.group(2))] = (m.group(1) == "*", m.group(3), m.group(4), int(m.group(5), 16))
    return rows


def argument_page(kernel):
    """The page under the user stack's top: the one page the loader maps before a process runs
    (lab 5 loads lazily), holding argv; the same address in every process, its own frame."""
    top = kernel_symbol(kernel, C.fact_symbol("user_stack_top"))
    return top - kernel_symbol(kernel, C.fact_symbol("page_size"))
TTBR_BADDR = 0x0000_FFFF_FFFF_F000


def logged_chain(why):
    """The exceptions fault-why's one line of QEMU's log (faultlog's summary) names, as
    '#PF -> #DF -> triple fault', from fault-why's output @p why."""
    (line,) = [text for text in why.splitlines() if text.startswith("QEMU's interrupt log: ")]
    many = re.search(r"\d+ exceptions logged \(([^)]*)\)", line)
    chain = many.group(1) if many else re.match(r"QEMU's interrupt log: first fault: (\S+)", line).group(1)
    return chain + (" -> triple fault" if "then a triple fault" in line else "")
