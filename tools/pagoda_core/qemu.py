"""How Pagoda starts QEMU, and what its exit status means.

The machine choices are measured and explained in docs/boot.md: on x86_64, microvm boots a PVH
kernel the fastest of the x86 machines here (no PCI enumeration, no legacy firmware), and still
has the ISA devices the kernel uses (COM1, PIT, LAPIC, isa-debug-exit); on AArch64, virt with a
Cortex-A76 (ARMv8.2: it has PAN, the A57 does not), or `max` on a QEMU that has
no A76, such as 6.2 (cpu_model()), and semihosting for the exit status.
"""
import argparse
import ctypes
import os
import re
import resource
import shutil
import signal
import subprocess
import threading
from pagoda_pt.isa import MACHINES
from pagoda_pt.machines import Machine
from pagoda_pt.model import PAGE_SIZE_4K

from . import paths
from .ui import PagodaError

# The same statuses on both ISAs. x86_64: isa-debug-exit makes QEMU exit with (value << 1) | 1
# (arch/x86_64/boot_defs.h); AArch64: semihosting SYS_EXIT passes the status as it is
# (arch/aarch64/boot_defs.h).
EXIT_SUCCESS = 33         # the kernel's shutdown(Success)
EXIT_FAILURE = 35         # the kernel's shutdown(Failure): a panic
EXIT_RESET = 0            # x86_64: -no-reboot turned a reset (a triple fault) into an exit;
                          # AArch64: a PSCI power-off or reset (semihosting off). Never a status above.
EXIT_QEMU_ERROR = 1       # QEMU itself refused to start (bad option, missing file, ...)


DEFAULT_MEMORY = "128M"
_MEMORY_SIZE = re.compile(r"^[1-9][0-9]*[MG]?$")


def memory_mib(size):
    """QEMU's -m size ('128M', '1G', '64': MiB) in MiB."""
    return int(size[:-1]) * (1024 if size[-1] == "G" else 1) if size[-1] in "MG" else int(size)


def memory_size(text):
    """argparse type for guest RAM sizes such as 128M or 1G."""
    if not _MEMORY_SIZE.match(text):
        raise argparse.ArgumentTypeError(f"'{text}' is not a memory size like 128M or 1G")
    return text


def parse_cpu_help(text):
    """The CPU model names in QEMU's `-cpu help` output @p text (ARM's form: a heading line,
    then one indented name a line)."""
    return [line.split()[0] for line in text.splitlines() if line[:1].isspace() and line.strip()]


def choose_cpu(preferred, available):
    """The first model of @p preferred in @p available; the first preferred when none is (QEMU
    then names the missing model in its own error, which the grader shows)."""
    return next((model for model in preferred if model in available), preferred[0])


def _binary_key(binary):
    """(real path, mtime) of the QEMU @p binary on PATH: what a probe's answer is cached by, so
    that each installed QEMU (and each version of it) is asked once per process; None when
    there is no such binary."""
    path = shutil.which(binary)
    try:
        return None if path is None else (os.path.realpath(path), os.stat(path).st_mtime_ns)
    except OSError:
        return None


_cpu_models = {}   # _binary_key -> the models its `-cpu help` lists


def available_cpus(binary):
    """The CPU models the QEMU @p binary on PATH lists (asked once per binary and version of
    it in a process); None when it cannot be asked."""
    key = _binary_key(binary)
    if key is None:
        return None
    path = key[0]
    if key not in _cpu_models:
        try:
            out = subprocess.run([path, "-M", "virt", "-cpu", "help"], stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if out.returncode != 0:
            return None
        _cpu_models[key] = parse_cpu_help(out.stdout)
    return _cpu_models[key]


def cpu_model(arch=paths.DEFAULT_ARCH):
    """The -cpu model the kernel of @p arch runs on with the installed QEMU (MACHINES'
    cpu_models, the first this QEMU has), or None where the machine's args name it."""
    m = MACHINES[arch]
    if not m.cpu_models:
        return None
    return choose_cpu(m.cpu_models, available_cpus(m.binary) or ())


# ---- The swap disk (lab 7; docs/boot.md, "The swap disk") -------------------------------------

SWAP_LAB = 7             # `./pagoda run` attaches a swap disk from this lab on (and in the reference tree)
DEFAULT_SWAP = "16M"
SWAP_IMAGE = "swap.img"  # the image's name in the boot's own directory
SECTOR_BYTES = 512       # the unit of a virtio-blk request's position; a slot is a page (PAGE_SIZE_4K)
# QEMU's trace of each request, logged with -d beside the exceptions: virtio_blk_handle_write and
# virtio_blk_handle_read ("sector S nsectors N") when the device takes it, virtio_blk_req_complete
# ("status S") when it answers.
SWAP_TRACE = "trace:virtio_blk_handle_*,trace:virtio_blk_req_complete"


class SwapDisk:
    """A swap disk for one boot: the raw image @p directory/swap.img, made sparse at @p size bytes
    (@p pages, {slot: bytes}, written in), on a modern virtio-mmio virtio-blk device. A bad disk
    for a test: @p readonly, @p modern False (legacy), @p device (more device properties),
    @p failing_slot (blkdebug fails every write to that slot with EIO)."""

    def __init__(self, directory, size, readonly=False, modern=True, device="", failing_slot=None, pages=None):
        self.image = os.path.join(directory, SWAP_IMAGE)
        self.readonly, self.modern, self.device = readonly, modern, device
        if os.path.lexists(self.image):
            os.unlink(self.image)
        with open(self.image, "wb") as f:
            f.truncate(size)
            for slot, data in (pages or {}).items():
                f.seek(slot * PAGE_SIZE_4K)
                f.write(data)
        self.file = self.image
        if failing_slot is not None:
            rules = os.path.join(directory, "swap.blkdebug")
            with open(rules, "w") as f:
                f.write(f'[inject-error]\nevent = "write_aio"\nerrno = "5"\n'
                        f'sector = "{failing_slot * PAGE_SIZE_4K // SECTOR_BYTES}"\nonce = "off"\n')
            self.file = f"blkdebug:{rules}:{self.image}"

    def args(self):
        """QEMU's arguments that attach the disk."""
        drive = f"file={self.file.replace(',', ',,')},format=raw,if=none,id=pagoda-swap,cache=unsafe"
        return [*(("-global", "virtio-mmio.force-legacy=false") if self.modern else ()),
                "-drive", drive + (",readonly=on" if self.readonly else ""),
                "-device", "virtio-blk-device,drive=pagoda-swap" + (f",{self.device}" if self.device else "")]


def command(kernel, cmdline="", arch=paths.DEFAULT_ARCH, memory=DEFAULT_MEMORY, serial="stdio",
            log_items=None, log_file=None, gdb_socket=None, paused=False, extra=(), swap=None, cpus=1):
    """The QEMU argument vector that boots @p kernel with @p cmdline (and the SwapDisk @p swap,
    whose requests join the log when there is one) on @p cpus vCPUs: more than one run in turn on
    one host thread (round-robin TCG, 2-core CI; the kernel brings up at most kMaxCpus)."""
    m = MACHINES[arch]
    model = cpu_model(arch)
    argv = [m.binary, *machine_args(arch), *(("-cpu", model) if model else ()), "-nodefaults", "-display", "none", "-no-reboot",
            "-m", memory, "-kernel", kernel, "-serial", serial]
    if cpus > 1:
        argv += ["-smp", str(cpus), "-accel", "tcg,thread=single"]
    if cmdline:
        argv += ["-append", cmdline]
    if log_items:
        argv += ["-d", f"{log_items},{SWAP_TRACE}" if swap else log_items]
    if log_file:
        argv += ["-D", log_file]
    if gdb_socket:
        argv += ["-chardev", f"socket,path={gdb_socket},server=on,wait=off,id=gdb0", "-gdb", "chardev:gdb0"]
    if paused:
        argv += ["-S"]
    if swap:
        argv += swap.args()
    return argv + list(extra)


# QEMU's warning for a feature -cpu asks for and the accelerator cannot give, e.g.
# "qemu-system-x86_64: warning: TCG doesn't support requested feature: CPUID.07H:ECX.umip [bit 2]"
# (the register part names CPUID's leaf and register; a feature without a name has no ".name").
_MISSING_FEATURE = re.compile(r"doesn't support requested feature: ([^\s\[]+) \[bit (\d+)\]")
_missing_features = {}   # (_binary_key, the machine's arguments) -> frozenset


def parse_missing_features(stderr_text):
    """The names (lower case, e.g. {"umip"}) of the requested CPU features QEMU said, in
    @p stderr_text, that it cannot give the guest."""
    names = set()
    for m in _MISSING_FEATURE.finditer(stderr_text):
        where = m[1]
        names.add(where.rsplit(".", 1)[1].lower() if "." in where.split(":", 1)[-1] else where)
    return frozenset(names)


def requested_features(arch):
    """The features the grader's -cpu adds to its model (lower case, e.g. {"smep", "umip"})."""
    args = MACHINES[arch].args
    model = args[args.index("-cpu") + 1] if "-cpu" in args else ""
    return frozenset(f[1:].lower() for f in model.split(",")[1:] if f.startswith("+"))


def missing_cpu_features(arch=paths.DEFAULT_ARCH):
    """The features of requested_features(@p arch) that this machine's QEMU cannot emulate, as
    QEMU itself reports them: it is started once per process with the grader's machine and CPU,
    stopped (-S) before any guest instruction, and told to quit; its warnings are read. An
    outside fact about QEMU (QEMU 6.2's TCG has no UMIP), never the kernel's word. Raises
    RuntimeError when QEMU will not start, so that a broken probe requires every feature."""
    m = MACHINES[arch]
    if not requested_features(arch):
        return frozenset()
    key = (_binary_key(m.binary) or m.binary, m.args)
    if key not in _missing_features:
        argv = [m.binary, *m.args, "-nodefaults", "-display", "none", "-S", "-monitor", "stdio"]
        proc = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = proc.communicate(b"quit\n", timeout=600)
        finally:
            kill_group(proc)
        text = err.decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"QEMU did not start to report its CPU features (status {proc.returncode}): "
                               f"{text.strip() or 'no message'}")
        _missing_features[key] = parse_missing_features(text) & requested_features(arch)
    return _missing_features[key]


def machine_args(arch=paths.DEFAULT_ARCH):
    """The machine's arguments without the -cpu features this QEMU lacks (missing_cpu_features), so
    that QEMU does not warn about them on every start; the guest is the same either way. When
    the probe fails, everything is asked for."""
    args = MACHINES[arch].args
    if not requested_features(arch):
        return args
    try:
        missing = missing_cpu_features(arch)
    except (RuntimeError, OSError, subprocess.SubprocessError, PagodaError):
        return args   # not installed, or will not start: the boot itself then says why
    if not missing:
        return args
    at = args.index("-cpu") + 1
    kept = [f for f in args[at].split(",") if not (f.startswith("+") and f[1:].lower() in missing)]
    return (*args[:at], ",".join(kept), *args[at + 1:])


def describe_exit(code, log_text="", arch=paths.DEFAULT_ARCH):
    """A short phrase for QEMU's exit status (and, for a reset, its log)."""
    if code == EXIT_SUCCESS:
        return "clean shutdown"
    if code == EXIT_FAILURE:
        return "kernel panic (failure status)"
    if code == EXIT_RESET:
        if "Triple fault" in log_text:
            return "triple fault (the CPU reset itself)"
        machine = MACHINES.get(arch)
        return (machine or Machine).reset_exit
    if code == EXIT_QEMU_ERROR:
        return "QEMU failed to start (its own message is in the output)"
    if code is not None and code < 0:
        return f"QEMU killed by signal {-code}"
    return f"QEMU exited with status {code} (an error starting QEMU?)"


_PR_SET_PDEATHSIG = 1


def open_guest_ram(pid, mode=os.O_RDONLY):
    """An fd on QEMU's memfd guest RAM (memory-backend-memfd): nothing of it is ever on disk."""
    fd_dir = f"/proc/{pid}/fd"
    for name in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("/memfd:memory-backend-memfd"):
            return os.open(os.path.join(fd_dir, name), mode)
    raise AssertionError("QEMU has no memfd guest RAM to read")


def die_with_parent():
    """Asks the kernel to SIGKILL this process when its parent dies (even by SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _child_setup(parent_pid, new_group):
    def setup():
        if new_group:
            os.setpgid(0, 0)
        die_with_parent()
        # No core file: a guest makes QEMU abort at will (an unknown semihosting call), and the
        # core would be a file of the guest's RAM left in our working directory.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
    return setup


def popen_keeping_interrupts(argv, setup, **popen_args):
    """subprocess.Popen(@p argv, preexec_fn=@p setup, ...) that loses no Ctrl-C: with a preexec_fn
    CPython drops a KeyboardInterrupt raised in its at-fork hooks, and one raised after the exec
    loses the child. In the main thread a SIGINT meanwhile is only noted, then handed to this
    process's handler once the child (and its group) is killed and reaped. Elsewhere, plain Popen."""
    noted, previous = [], None
    if threading.current_thread() is threading.main_thread() and callable(signal.getsignal(signal.SIGINT)):
        previous = signal.signal(signal.SIGINT, lambda signum, frame: noted.append(frame))
    try:
        proc = subprocess.Popen(argv, preexec_fn=setup, **popen_args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if noted:
        try:
            previous(signal.SIGINT, noted[0])
        except BaseException:
            _kill(proc)
            raise
    return proc


def spawn(argv, new_group=True, **popen_args):
    """Starts QEMU so that it cannot outlive this process: it dies with its parent, and in its
    own process group so kill_group() ends it and anything it started. A Ctrl-C while it starts
    is this process's KeyboardInterrupt, QEMU killed (popen_keeping_interrupts)."""
    if shutil.which(argv[0]) is None:
        raise PagodaError(f"{argv[0]} is not installed: run ./pagoda setup")
    return popen_keeping_interrupts(argv, _child_setup(os.getpid(), new_group), **popen_args)


def _kill(proc):
    """Kills @p proc and, when it leads a process group of its own, that group; reaps it."""
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def kill_group(proc):
    """Kills @p proc's whole process group (spawned with new_group) and reaps it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def processes_mentioning(program_prefix, text):
    """PIDs of running processes whose command line starts with @p program_prefix and contains
    @p text (for tests that prove nothing outlives them)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith(program_prefix) and text in cmd:
            found.append(int(pid))
    return found
