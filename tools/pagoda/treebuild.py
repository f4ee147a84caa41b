"""Building the generated lab trees (`labs check`, `labs mutants`, batch grading) so that a
source file the trees share is compiled once.

The trees differ only in the files that hold lab regions. When ccache is installed, every tree
compiles through one cache (build/labs-check/ccache, or $PAGODA_TREE_CACHE): CCACHE_BASEDIR is
the tree and hash_dir is off, so the same file in two trees has the same key, and
-fmacro-prefix-map keeps __FILE__ `kernel/...` (the grader's symbolizer keeps only the part from
kernel/ or arch/ of a reused object's DWARF paths). A hit needs the same compiler, flags and
bytes of the source and every header: a reused object is the one the compiler would have made.
The settings live in each tree's CMake cache, so a build started by hand uses them too. Batch
grading's submissions only read the cache (CCACHE_READONLY). Without ccache each tree builds in full.

build() runs one build at a time in a process: ninja already keeps every core busy, and two cold
trees side by side would each compile what they share.
"""
import os
import re
import shutil
import threading

from pagoda_core import speed

CACHE_DIR = "ccache"
# Another object cache for every generated tree (.ci/run keeps one outside its fresh clone).
TREE_CACHE_VARIABLE = "PAGODA_TREE_CACHE"
LANGUAGES = ("C", "CXX")     # CMake has no launcher for ASM; the few .S files compile each time
# Ninja runs every compiler from build/<arch>, two levels below the tree.
RELATIVE_PREFIX_MAP = "-fmacro-prefix-map=../../="


_BUILDING = threading.Lock()


def cache_dir(tree):
    """The shared object cache of the trees beside @p tree (build/labs-check/ccache), or
    $PAGODA_TREE_CACHE when set."""
    return os.environ.get(TREE_CACHE_VARIABLE) or os.path.join(os.path.dirname(os.path.abspath(tree)), CACHE_DIR)


def launcher(tree, cache=None):
    """The compiler launcher (a CMake list) for @p tree, or "" when ccache is not installed;
    @p cache: the object cache, when not the one beside the tree (cache_dir)."""
    ccache = shutil.which("ccache")
    if ccache is None:
        return ""
    return ";".join([shutil.which("env") or "/usr/bin/env",
                     f"CCACHE_DIR={os.path.abspath(cache or cache_dir(tree))}",
                     f"CCACHE_BASEDIR={os.path.abspath(tree)}",
                     "CCACHE_NOHASHDIR=1",
                     ccache])


def settings(tree, cache=None):
    """The CMake cache entries @p tree's builds need: the launcher and, with it, the prefix map for
    the relative paths ccache hands the compiler."""
    wrap = launcher(tree, cache)
    flags = RELATIVE_PREFIX_MAP if wrap else ""
    return {**{f"CMAKE_{lang}_COMPILER_LAUNCHER": wrap for lang in LANGUAGES},
            **{f"CMAKE_{lang}_FLAGS": flags for lang in LANGUAGES}}


def _cached(cache_file):
    """{entry: value} of a CMakeCache.txt, or None without the file."""
    try:
        with open(cache_file, errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return dict(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*):[A-Z]+=(.*)$", text, re.MULTILINE))


def configure_argv(tree, arch, cache=None):
    """The cmake command that configures @p tree's @p arch build, or None when its cache is
    already configured that way (through ccache when it is installed, else without it), with
    @p cache as the object cache when given (else cache_dir(tree))."""
    wanted = settings(tree, cache)
    cached = _cached(os.path.join(tree, "build", arch, "CMakeCache.txt"))
    if cached is not None and all(cached.get(k, "") == v for k, v in wanted.items()):
        return None
    return ["cmake", "--preset", arch] + [f"-D{k}={v}" for k, v in wanted.items()]


def build(tree, arch, log_path, target=None, cpu=None, cache=None):
    """Configures @p tree's @p arch build when needed (configure_argv) and builds @p target, or
    everything, after any other build of this process; output appended to @p log_path; True when
    it built. @p cpu, a list, gets the CPU seconds of each command (its compilers included)."""
    steps = [["cmake", "--build", "--preset", arch] + (["--target", target] if target else [])]
    with _BUILDING:
        configure = configure_argv(tree, arch, cache)
        with open(log_path, "a") as log:
            for argv in ([configure] if configure else []) + steps:
                log.write(f"$ {' '.join(argv)}\n")
                log.flush()
                code, seconds = speed.run_logged(argv, log, cwd=tree)
                if cpu is not None:
                    cpu.append(seconds)
                if code != 0:
                    return False
    return True
