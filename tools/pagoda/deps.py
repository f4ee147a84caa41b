"""`pagoda setup`: find the tools Pagoda needs and install the missing ones from Debian's apt.

Every requirement names how to check for it and which Debian package provides it. Python
modules are checked under /usr/bin/python3, the interpreter that runs ./pagoda and the grader
(PyPI is unreachable here, so Python dependencies are Debian python3-* packages).

Installing is quiet: one line per package as apt finishes setting it up; apt's and dpkg's own
output goes to a log file (build/setup.log) whose path is printed, and whose tail is shown if
apt fails. This module imports nothing outside the standard library: it runs before anything
else is installed.
"""
import contextlib
import fcntl
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from pagoda_core import paths
from pagoda_core.ui import PagodaError, info


def _system_python_has(module):
    """Whether /usr/bin/python3 can import @p module: looked up in this process when it is that
    interpreter (the usual case: it is ./pagoda's), else by asking it."""
    if os.path.realpath(sys.executable) == os.path.realpath(paths.SYSTEM_PYTHON):
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):   # a finder that refuses it: not importable
            return False
    result = subprocess.run([paths.SYSTEM_PYTHON, "-c", f"import {module}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return result.returncode == 0


def _ask(argv):
    """@p argv's standard output, stripped ("" when it cannot run or fails)."""
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=dict(os.environ, LC_ALL="C"))
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


# ---- what the compiler says -------------------------------------------------------------
# Nothing below names an LLVM version, a host ISA or an install prefix: the distribution's
# default clang (14 or newer) says where its runtimes are, and apt says what it calls them.

def clang_major():
    """The major version of the clang on PATH (None when there is none)."""
    m = re.match(r"(\d+)", _ask(["clang", "-dumpversion"]))
    return int(m[1]) if m else None


def sanitizer_runtime():
    """The AddressSanitizer runtime the host tests link, where clang looks for it: the compiler
    names its own builtins library (directory and naming scheme: old per-OS layout or per-target
    layout, with or without the host ISA in the name), and the ASan runtime sits beside it under
    the same scheme. None without a clang."""
    builtins = _ask(["clang", "-rtlib=compiler-rt", "-print-libgcc-file-name"])
    if "builtins" not in os.path.basename(builtins):
        return None
    return os.path.join(os.path.dirname(builtins), os.path.basename(builtins).replace("builtins", "asan", 1))


def _apt_has(package):
    """Whether apt knows a real (installable) package of that name."""
    return bool(_ask(["apt-cache", "show", "--no-all-versions", package]))


def _apt_clang_major():
    """The major version of the clang apt would install (its versionless package's dependency)."""
    m = re.search(r"Depends: clang-(\d+)\b", _ask(["apt-cache", "depends", "clang"]))
    return int(m[1]) if m else None


def sanitizer_package():
    """The package of clang's sanitizer runtimes: the versionless libclang-rt-dev where apt has
    one (Debian 12 and 13, Ubuntu 24.04), else the versioned package of the installed clang's
    LLVM (or the one apt's clang would bring): libclang-rt-N-dev, or libclang-common-N-dev on
    Ubuntu 22.04, whose LLVM 14 still ships the runtimes there (clang depends on it, so they
    come with clang)."""
    if _apt_has("libclang-rt-dev"):
        return "libclang-rt-dev"
    major = clang_major() or _apt_clang_major()
    if not major:
        return "libclang-rt-dev"
    for name in (f"libclang-rt-{major}-dev", f"libclang-common-{major}-dev"):
        if _apt_has(name):
            return name
    return f"libclang-rt-{major}-dev"


@dataclass(frozen=True)
class Requirement:
    name: str          # what the user sees
    package: object    # the Debian/Ubuntu package providing it (or a function naming it)
    purpose: str       # why Pagoda needs it
    kind: str          # "exe", "python", "file" or "runtime"
    probe: object      # executable name, module name(s), glob pattern, or a function giving a path
    grading: bool = False  # needed to build a kernel and grade it (what autograders install)
    tests: bool = False    # needed only by the tools' tests: setup and `./pagoda test` install it
    arch: str = None   # needed only for this target architecture

    @property
    def package_name(self):
        return self.package() if callable(self.package) else self.package

    def present(self):
        if self.kind == "exe":
            return shutil.which(self.probe) is not None
        if self.kind == "file":
            return bool(glob.glob(self.probe))
        if self.kind == "runtime":
            path = self.probe()
            return path is not None and os.path.exists(path)
        if self.kind == "python":   # one module, or a tuple of modules any of which will do
            return any(_system_python_has(m) for m in ((self.probe,) if isinstance(self.probe, str) else self.probe))
        raise ValueError(self.kind)


# Versionless package names: the same on Debian 12 and 13 and Ubuntu 22.04 and 24.04 (only the
# sanitizer runtimes have none everywhere: sanitizer_package() asks). Requirements that others
# need come after them (the runtime's package is named by the clang installed before it).
REQUIREMENTS = (
    Requirement("clang++", "clang", "compiles the kernel and the host tests", "exe", "clang++",
                grading=True),
    Requirement("ld.lld", "lld", "links the kernel and the user programs", "exe", "ld.lld", grading=True),
    Requirement("llvm-symbolizer", "llvm", "names the addresses in backtraces", "exe",
                "llvm-symbolizer", grading=True),
    Requirement("llvm-objcopy", "llvm", "strips the user programs embedded in the kernel", "exe",
                "llvm-objcopy", grading=True),
    Requirement("cmake", "cmake", "configures the build", "exe", "cmake", grading=True),
    Requirement("ninja", "ninja-build", "runs the build", "exe", "ninja", grading=True),
    Requirement("GoogleTest", "libgtest-dev", "host unit tests", "file",
                "/usr/lib/*/cmake/GTest/GTestConfig.cmake"),
    Requirement("qemu-system-x86_64", "qemu-system-x86", "runs the x86_64 kernel", "exe",
                "qemu-system-x86_64", grading=True, arch="x86_64"),
    Requirement("qemu-system-aarch64", "qemu-system-arm", "runs the AArch64 kernel", "exe",
                "qemu-system-aarch64", grading=True, arch="aarch64"),
    Requirement("ccache", "ccache", "compiles a source file the generated lab trees share once "
                "(./pagoda labs check and labs mutants; without it each tree builds in full)", "exe", "ccache"),
    Requirement("bwrap", "bubblewrap", "sandboxes a submission's build when grading runs without root "
                "(./pagoda grade --batch, autograders)", "exe", "bwrap", grading=True),
    Requirement("gdb-multiarch", "gdb-multiarch", "./pagoda gdb and the page-table commands", "exe",
                "gdb-multiarch"),
    Requirement("pytest", "python3-pytest", "runs the grader", "python", "pytest", grading=True),
    Requirement("pytest-xdist", "python3-pytest-xdist", "grades tests in parallel", "python", "xdist",
                grading=True),
    Requirement("pytest-timeout", "python3-pytest-timeout", "stops a grader test that hangs",
                "python", "pytest_timeout", grading=True),
    Requirement("pyelftools", "python3-pyelftools", "reads the kernel's and the programs' ELF files",
                "python", "elftools", grading=True),
    # Python 3.11 has tomllib; 3.10 (Ubuntu 22.04) has the same parser as the tomli package.
    Requirement("a TOML parser", "python3-tomli", "reads the labs' manifests (lab.toml)", "python",
                ("tomllib", "tomli"), grading=True),
    Requirement("pexpect", "python3-pexpect", "drives interactive sessions in tests", "python",
                "pexpect"),
    Requirement("xmllint", "libxml2-utils", "validates the JUnit XML of a grade against its schema in "
                "the tools' tests", "exe", "xmllint"),
    Requirement("pyflakes", "python3-pyflakes", "checks the tree's Python for unused imports and undefined "
                "names (tools/tests/test_style.py)", "python", "pyflakes"),
    Requirement("clang-format", "clang-format", "lays out the kernel's C++ and checks its layout "
                "(.clang-format, tools/tests/test_style.py)", "exe", "clang-format"),
    Requirement("doxygen", "doxygen", "builds the HTML documentation (./pagoda docs)", "exe",
                "doxygen"),
    Requirement("dot", "graphviz", "draws the documentation's diagrams", "exe", "dot"),
    Requirement("sanitizer runtimes", sanitizer_package, "host tests run under ASan and UBSan",
                "runtime", sanitizer_runtime),
    Requirement("chromium", "chromium", "loads the picture of a failing moment in a real browser in the tools' "
                "tests (tools/tests/test_picture.py)", "exe", "chromium", tests=True),
)
# Set by `./pagoda test` once it has installed every requirement, the tests' own too: a test whose
# tool is missing then fails instead of skipping.
TESTS_ENV = "PAGODA_TEST_DEPS"


def needed(grading_only=False, arches=None):
    """The requirements of everything (or, with @p grading_only, of building and grading a
    kernel for @p arches, by default every architecture)."""
    return [r for r in REQUIREMENTS
            if (not grading_only or r.grading) and (r.arch is None or arches is None or r.arch in arches)]


def missing(requirements=REQUIREMENTS):
    """The requirements not satisfied on this machine."""
    return [r for r in requirements if not r.present()]


def packages(requirements):
    """The Debian packages of @p requirements, in order, each once."""
    return list(dict.fromkeys(r.package_name for r in requirements))


def check(verbose=True, requirements=REQUIREMENTS):
    """Reports each missing requirement with its fix; True when nothing is missing."""
    absent = missing(requirements)
    if verbose:
        if not absent:
            info("setup --check: everything Pagoda needs is installed")
        for r in absent:
            print(f"missing: {r.name} ({r.purpose}); fix: apt-get install {r.package_name}")
        if absent:
            print(f"install them all with: ./pagoda setup   "
                  f"(or apt-get install {' '.join(packages(absent))})")
    return not absent


LOG_TAIL_LINES = 25
# dpkg says this when it has configured a package: the moment to print its one line.
_SETTING_UP = re.compile(r"^Setting up ([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9]+)? ")


def log_path():
    """Where apt's output goes: $PAGODA_SETUP_LOG, else build/setup.log, else (build/ not
    writable) a temporary file."""
    if os.environ.get("PAGODA_SETUP_LOG"):
        return os.environ["PAGODA_SETUP_LOG"]
    try:
        os.makedirs(paths.BUILD, exist_ok=True)
        path = os.path.join(paths.BUILD, "setup.log")
        open(path, "a").close()
        return path
    except OSError:
        fd, path = tempfile.mkstemp(prefix="pagoda-setup-", suffix=".log")
        os.close(fd)
        return path


def _tail(path, lines=LOG_TAIL_LINES):
    with open(path, errors="replace") as f:
        return f.read().splitlines()[-lines:]


def _run_logged(cmd, env, log, on_line=None):
    """Runs @p cmd with its output appended to @p log (a file object); @p on_line sees each
    line. Returns the exit status (127 if the program is missing)."""
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    try:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
    except OSError as e:
        log.write(f"{cmd[0]}: {e.strerror}\n")
        return 127
    for raw in proc.stdout:
        line = raw.decode(errors="replace")
        log.write(line)
        if on_line:
            on_line(line.rstrip("\n"))
    log.flush()
    return proc.wait()


# The locks apt and dpkg take (fcntl record locks on these files) while another package manager
# runs: an unattended upgrade after a fresh boot, a second `apt-get`, another ./pagoda's setup.
APT_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock",
             "/var/cache/apt/archives/lock")
# How long apt itself waits for its lock (its DPkg::Lock::Timeout, seconds) before failing:
# after our own wait, only a package manager that starts in the same instant meets it.
APT_LOCK_TIMEOUT = 1800
# Where two ./pagoda commands that both find something missing take turns: the second waits for
# the first to install, then installs only what is still missing (often nothing).
SETUP_LOCK = os.path.join(tempfile.gettempdir(), "pagoda-setup.lock")


def lock_holder(path):
    """None when no process holds the fcntl lock of the file @p path (or it does not exist), else
    a description of who does ('pid 812 (unattended-upgr)', from /proc/locks)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        inode = os.fstat(fd).st_ino
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)   # (a reader's lock: never blocks apt for long)
            fcntl.lockf(fd, fcntl.LOCK_UN)
            return None
        except OSError:
            pass
    finally:
        os.close(fd)
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 5 and fields[5].split(":")[-1] == str(inode) and fields[4].isdigit():
                    pid = fields[4]
                    try:
                        with open(f"/proc/{pid}/comm") as c:
                            return f"pid {pid} ({c.read().strip()})"
                    except OSError:
                        return f"pid {pid}"
    except OSError:
        pass
    return "another process"


def wait_for_package_manager(locks=APT_LOCKS, poll=1.0):
    """Returns once no process holds apt's or dpkg's locks (@p locks), having said once what it
    waits for: a fresh machine's unattended upgrade holds them for minutes, and apt-get run
    meanwhile fails at once. No limit: the one who waits can see what it waits for and end it."""
    said = False
    while True:
        held = [(path, who) for path in locks for who in [lock_holder(path)] if who]
        if not held:
            return
        if not said:
            path, who = held[0]
            info(f"setup: waiting for another package manager to finish ({who} holds {path})")
            said = True
        time.sleep(poll)


@contextlib.contextmanager
def setup_turn(path=SETUP_LOCK):
    """Holds the lock that lets one ./pagoda install at a time on this machine; a second waits,
    saying so once, until the first is done."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            info("setup: another ./pagoda is installing packages; waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def install(requirements):
    """Installs the packages of @p requirements with apt-get: one line per package on the
    terminal (printed when dpkg has set it up), everything apt and dpkg say in the log.

    Two rounds when some package is named by asking (the sanitizer runtimes): first the packages
    whose names are fixed (after apt-get update, so apt knows the distribution's names), then
    those, named by the clang the first round installed."""
    fixed = [r for r in requirements if not callable(r.package)]
    asked = [r for r in requirements if callable(r.package)]
    names = list(dict.fromkeys(r.package if not callable(r.package) else r.name for r in requirements))
    prefix = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise PagodaError("installing packages needs root: run as root or install sudo, or "
                              f"install by hand: apt-get install {' '.join(packages(requirements))}")
        prefix = ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    path = log_path()
    start = time.monotonic()
    info(f"setup: installing {len(names)} package(s) with apt-get; its output goes to {path}")
    why, done, installed = {}, set(), []

    def on_line(line):
        m = _SETTING_UP.match(line)
        if m and m[1] in why and m[1] not in done:
            done.add(m[1])
            info(f"  installed {m[1]} ({why[m[1]]})")

    def run(cmd, pkgs):
        wait_for_package_manager()
        at = len(prefix) + 2    # (after `apt-get update` or `apt-get install`)
        cmd = cmd[:at] + ["-o", f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT}"] + cmd[at:]
        status = _run_logged(cmd, env, log, on_line)
        if status != 0:
            tail = "\n  ".join(_tail(path))
            raise PagodaError(f"'{' '.join(cmd)}' failed (status {status}); the end of {path}:\n  "
                              f"{tail}\ninstall by hand: apt-get install {' '.join(pkgs)}")

    with open(path, "a") as log:
        log.write(f"\n==== ./pagoda setup, {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(names)}\n")
        run(prefix + ["apt-get", "update", "-q"], packages(fixed))
        for group in (fixed, asked):
            if group is asked:   # what the first round brought needs no package of its own
                group = [r for r in group if not r.present()]
            if not group:
                continue
            pkgs = packages(group)
            for r in group:
                why.setdefault(r.package_name, f"{r.name}: {r.purpose}")
            log.write(f"==== packages: {' '.join(pkgs)}\n")
            run(prefix + ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + pkgs, pkgs)
            installed += pkgs
    for p in dict.fromkeys(installed):     # already up to date, or set up without dpkg saying so
        if p not in done:
            info(f"  {p}: apt-get had nothing to set up ({why[p]})")
    still = [r.name for r in missing(requirements)]
    if still:
        raise PagodaError(f"still missing after apt-get: {', '.join(still)} (apt's output: {path})")
    info(f"setup: {len(dict.fromkeys(installed))} package(s) installed in {time.monotonic() - start:.0f}s")


def install_missing(requirements):
    """Installs what of @p requirements is missing, one ./pagoda at a time (setup_turn()): what a
    command that waited for another's install still misses once it is done (often nothing)."""
    with setup_turn():
        absent = missing(requirements)
        if absent:
            install(absent)


def ensure(requirements=None):
    """Installs what is missing of @p requirements (by default all but the tests' own), quietly when
    nothing is (run by run, test and grade)."""
    if requirements is None:
        requirements = [r for r in REQUIREMENTS if not r.tests]
    absent = missing(requirements)
    if absent:
        info(f"missing: {', '.join(r.name for r in absent)}; running ./pagoda setup first")
        install_missing(requirements)


def _chosen(args):
    arches = [args.arch] if getattr(args, "arch", None) else None
    return needed(grading_only=args.grading, arches=arches)


def cmd_setup(args):
    wanted = _chosen(args)
    if args.list:
        print(" ".join(packages(wanted)))
        return 0
    if args.check:
        return 0 if check(requirements=wanted) else 1
    if not missing(wanted):
        info("setup: everything Pagoda needs is already installed")
        return 0
    install_missing(wanted)
    return 0


def add_parser(sub):
    p = sub.add_parser("setup", help="install the Debian packages Pagoda needs (idempotent)",
                       description="Installs the missing tools with apt-get, one line per package; "
                                   "apt's own output goes to build/setup.log. Running it again "
                                   "installs nothing.")
    p.add_argument("--check", action="store_true",
                   help="install nothing; list each missing tool with its fix, exit 1 if any")
    p.add_argument("--grading", action="store_true",
                   help="only what building and grading a kernel needs (what autograders install)")
    p.add_argument("--arch", choices=paths.ARCHES,
                   help="with --grading: only this architecture's emulator")
    p.add_argument("--list", action="store_true",
                   help="print the Debian packages (of the selection) on one line and exit")
    p.set_defaults(func=cmd_setup)


if __name__ == "__main__":
    sys.exit(0 if check() else 1)
