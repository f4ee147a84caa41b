"""`pagoda build`: configure (once) and build with the CMake presets.

One build at a time per build directory: two ninjas in one directory corrupt each other's state,
and parallel grader tests (or two grades in one clone) all want the kernel. build() holds
build/.build-<preset>.lock while it configures and builds; so does anything else that runs
cmake --build there (locked()).

After each build, build/compile_commands.json is rewritten from the compilation databases CMake
exports in build/<preset>/ (merge_compile_commands): what clangd (.clangd) and the VS Code C/C++
extension (.vscode/settings.json) read, so that an editor knows every file's flags, each arch/
file with its own ISA's.
"""
import argparse
import contextlib
import fcntl
import json
import os
import subprocess

from . import paths
from .ui import PagodaError, info

TARGETS = ("host",) + paths.ARCHES
FIXTURES_TARGET = "kernel-fixtures"


@contextlib.contextmanager
def locked(preset, build_root=None):
    """Holds the build lock of @p build_root/<preset> (default build/<preset>; waits for whoever holds it)."""
    build_root = build_root or paths.BUILD
    os.makedirs(build_root, exist_ok=True)
    with open(os.path.join(build_root, f".build-{preset}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def configure(preset):
    cache = os.path.join(paths.BUILD, preset, "CMakeCache.txt")
    if os.path.exists(cache):
        return
    info(f"configuring build/{preset}")
    result = subprocess.run(["cmake", "--preset", preset], cwd=paths.ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        print(result.stdout)
        raise PagodaError(f"configuring build/{preset} failed (output above)")


def build(preset, quiet=True, target=None):
    """Configures and builds one preset (only @p target when given); raises PagodaError with the
    compiler output on failure. The host tests first get every ISA's user programs built in
    that ISA's kernel build, where they read them (kernel/tests/CMakeLists.txt): compiled once
    for both builds."""
    if preset == "host":
        for arch in paths.ARCHES:
            build(arch, quiet, target=f"user_programs_{arch}")
    with locked(preset):
        configure(preset)
        result = subprocess.run(["cmake", "--build", "--preset", preset] +
                                (["--target", target] if target else []), cwd=paths.ROOT,
                                stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT,
                                text=True)
    merge_compile_commands()
    if result.returncode != 0:
        if quiet:
            print(result.stdout)
        raise PagodaError(f"building build/{preset} failed (output above)")


# Whose flags a file shared by several builds gets in the merged database: the default ISA's,
# then the other's, then the host tests' (a file in arch/ISA/ is only in its own ISA's build).
MERGE_ORDER = (paths.DEFAULT_ARCH,) + tuple(a for a in paths.ARCHES if a != paths.DEFAULT_ARCH) + ("host",)


def merge_compile_commands(build_root=None):
    """Writes BUILD/compile_commands.json: every entry of the build/<preset>/compile_commands.json
    files that exist, one per source file (MERGE_ORDER decides between builds); returns its path,
    or None when no build has exported one yet. Rewritten only when it changes."""
    build_root = build_root or paths.BUILD
    entries, seen = [], set()
    for preset in MERGE_ORDER:
        try:
            with open(os.path.join(build_root, preset, "compile_commands.json")) as f:
                database = json.load(f)
        except (OSError, ValueError):
            continue
        for entry in database:
            source = os.path.normpath(os.path.join(entry.get("directory", ""), entry["file"]))
            if source not in seen:
                seen.add(source)
                entries.append(entry)
    if not entries:
        return None
    path = os.path.join(build_root, "compile_commands.json")
    text = json.dumps(entries, indent=1) + "\n"
    try:
        with open(path) as f:
            if f.read() == text:
                return path
    except OSError:
        pass
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def build_kernel(arch=paths.DEFAULT_ARCH, quiet=True, fixtures=False):
    """Builds the kernel, or with @p fixtures the kernel with the deliberately broken self-tests
    of the debugging tools' tests (an ELF of its own); returns the ELF's path."""
    if fixtures:
        build(arch, quiet, target=FIXTURES_TARGET)
        return paths.fixtures_elf(arch)
    build(arch, quiet)
    return paths.kernel_elf(arch)


def grader_user_programs(root, arch):
    """Builds the user programs of @p arch from the tree at @p root alone (CMake's
    PAGODA_USER_ONLY: user/, kernel/lib/, cmake/ and arch/<isa>/page_defs.h are all it needs), in
    <root>/build/grader-user-<arch>/; returns the directory of their ELFs. The grader's own copy
    of the programs a submission's kernel must embed (grade/pagoda_grade/programs.py)."""
    out = os.path.join(root, "build", f"grader-user-{arch}")
    with locked(f"grader-user-{arch}", os.path.join(root, "build")):
        steps = [] if os.path.exists(os.path.join(out, "CMakeCache.txt")) else \
            [["cmake", "--preset", arch, "-B", out, "-DPAGODA_USER_ONLY=ON"]]
        steps.append(["cmake", "--build", out, "--target", f"user_programs_{arch}"])
        for argv in steps:
            result = subprocess.run(argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if result.returncode != 0:
                raise PagodaError(f"building the grader's user programs ({' '.join(argv)}) failed:\n"
                                  + result.stdout[-4000:])
    return os.path.join(out, "user", arch)


def cmd_build(args):
    targets = list(args.targets or [])
    if args.arch and args.arch not in targets:
        targets.append(args.arch)
    for target in targets or [paths.DEFAULT_ARCH]:
        build(target, quiet=False)
        info(f"built build/{target}" + (f" ({paths.kernel_elf(target)})" if target != "host" else ""))
    return 0


def _target(text):
    # (argparse's choices= rejects an empty nargs="*" list on Python 3.11, hence a type check)
    if text not in TARGETS:
        raise argparse.ArgumentTypeError(f"invalid target '{text}' (choose from {', '.join(TARGETS)})")
    return text


def add_parser(sub):
    p = sub.add_parser("build", help="build the kernel (and, with 'host', the unit tests)",
                       description="Configures on first use and builds with CMake presets and "
                                   "Ninja. Outputs go to build/<target>/; build/<arch>/kernel.elf "
                                   "is the kernel and its GDB symbol file.")
    p.add_argument("targets", nargs="*", type=_target, metavar="TARGET",
                   help=f"what to build: {', '.join(TARGETS)} (default: {paths.DEFAULT_ARCH})")
    p.add_argument("--arch", choices=paths.ARCHES,
                   help="build this ISA's kernel (the same as naming it as a TARGET)")
    p.set_defaults(func=cmd_build)
