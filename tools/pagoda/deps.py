"""`pagoda setup`: find the tools Pagoda needs and install the missing ones from Debian's apt.

Every requirement names how to check for it and which Debian package provides it. Python
modules are checked under /usr/bin/python3, the interpreter that runs ./pagoda and the grader
(PyPI is unreachable here, so Python dependencies are Debian python3-* packages).
"""
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from . import paths
from .ui import PagodaError, info


def _system_python_has(module):
    """Whether /usr/bin/python3 can import @p module: looked up in this process when it is that
    interpreter (the usual case: it is ./pagoda's), else by asking it."""
    if os.path.realpath(sys.executable) == os.path.realpath(paths.SYSTEM_PYTHON):
        return importlib.util.find_spec(module) is not None
    result = subprocess.run([paths.SYSTEM_PYTHON, "-c", f"import {module}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return result.returncode == 0


@dataclass(frozen=True)
class Requirement:
    name: str          # what the user sees
    package: str       # the Debian package providing it
    purpose: str       # why Pagoda needs it
    kind: str          # "exe", "python" or "file"
    probe: str         # executable name, module name, or glob pattern

    def present(self):
        if self.kind == "exe":
            return shutil.which(self.probe) is not None
        if self.kind == "file":
            return bool(glob.glob(self.probe))
        if self.kind == "python":
            return _system_python_has(self.probe)
        raise ValueError(self.kind)


REQUIREMENTS = (
    Requirement("clang++", "clang", "compiles the kernel and the host tests", "exe", "clang++"),
    Requirement("ld.lld", "lld", "links the kernel", "exe", "ld.lld"),
    Requirement("llvm-symbolizer", "llvm", "names the addresses in backtraces", "exe", "llvm-symbolizer"),
    Requirement("llvm-objcopy", "llvm", "strips the user programs embedded in the kernel", "exe",
                "llvm-objcopy"),
    Requirement("sanitizer runtimes", "libclang-rt-14-dev", "host tests run under ASan and UBSan",
                "file", "/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.asan-x86_64.a"),
    Requirement("cmake", "cmake", "configures the build", "exe", "cmake"),
    Requirement("ninja", "ninja-build", "runs the build", "exe", "ninja"),
    Requirement("GoogleTest", "libgtest-dev", "host unit tests", "file",
                "/usr/lib/*/cmake/GTest/GTestConfig.cmake"),
    Requirement("qemu-system-x86_64", "qemu-system-x86", "runs the x86_64 kernel", "exe",
                "qemu-system-x86_64"),
    Requirement("gdb-multiarch", "gdb-multiarch", "./pagoda gdb and the page-table commands", "exe",
                "gdb-multiarch"),
    Requirement("pytest", "python3-pytest", "runs the grader", "python", "pytest"),
    Requirement("pytest-xdist", "python3-pytest-xdist", "grades tests in parallel", "python", "xdist"),
    Requirement("pytest-timeout", "python3-pytest-timeout", "stops a grader test that hangs",
                "python", "pytest_timeout"),
    Requirement("pexpect", "python3-pexpect", "drives interactive sessions in tests", "python",
                "pexpect"),
    Requirement("doxygen", "doxygen", "builds the HTML documentation (./pagoda docs)", "exe",
                "doxygen"),
    Requirement("dot", "graphviz", "draws the documentation's diagrams", "exe", "dot"),
)


def missing():
    """The requirements not satisfied on this machine."""
    return [r for r in REQUIREMENTS if not r.present()]


def check(verbose=True):
    """Reports each missing requirement with its fix; True when nothing is missing."""
    absent = missing()
    if verbose:
        if not absent:
            info("setup --check: everything Pagoda needs is installed")
        for r in absent:
            print(f"missing: {r.name} ({r.purpose}); fix: apt-get install {r.package}")
    return not absent


def install(requirements):
    """Installs the packages of @p requirements with apt-get, saying what and why."""
    packages = sorted({r.package for r in requirements})
    for r in requirements:
        info(f"installing {r.package} for {r.name}: {r.purpose}")
    prefix = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise PagodaError("installing packages needs root: run as root or install sudo, or "
                              f"install by hand: apt-get install {' '.join(packages)}")
        prefix = ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (prefix + ["apt-get", "update", "-qq"],
                prefix + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + packages):
        info("$ " + " ".join(cmd))
        if subprocess.run(cmd, env=env).returncode != 0:
            raise PagodaError(f"'{' '.join(cmd)}' failed; install by hand: "
                              f"apt-get install {' '.join(packages)}")
    still = [r.name for r in missing()]
    if still:
        raise PagodaError(f"still missing after apt-get: {', '.join(still)}")


def ensure():
    """Installs what is missing, quietly when nothing is (run by run, test and grade)."""
    absent = missing()
    if absent:
        info("some tools are missing; running setup first")
        install(absent)


def cmd_setup(args):
    if args.check:
        return 0 if check() else 1
    absent = missing()
    if not absent:
        info("setup: everything Pagoda needs is already installed")
        return 0
    install(absent)
    info("setup: done")
    return 0


def add_parser(sub):
    p = sub.add_parser("setup", help="install the Debian packages Pagoda needs (idempotent)",
                       description="Installs the missing tools with apt-get and says what it "
                                   "installs. Running it again installs nothing.")
    p.add_argument("--check", action="store_true",
                   help="install nothing; list each missing tool with its fix, exit 1 if any")
    p.set_defaults(func=cmd_setup)


if __name__ == "__main__":
    sys.exit(0 if check() else 1)
