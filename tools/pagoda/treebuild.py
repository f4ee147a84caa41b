"""Configuring the generated lab trees (`labs check`, `labs mutants`) so that a source file the
trees share is compiled once.

The seven lab trees and the reference tree under build/labs-check differ from each other only in
the files that hold lab regions; every other file (the user programs, most of the kernel) is the
same text in each. When ccache is installed (./pagoda setup installs it), each tree's build runs
the compilers through it, with one cache for all trees, build/labs-check/ccache:

- base_dir is the tree itself, so ccache hashes the paths under the tree relative to the build
  directory (`../../kernel/mm/vm.cpp`) and the same file in two trees has the same key;
- hash_dir is off, so the build directory's own path is not part of the key either. An object
  reused from another tree names that tree's directory as its DWARF compilation directory:
  the file names under it are the same, and the grader's symbolizer keeps only the part from
  kernel/ or arch/ on;
- ccache hands the compiler those relative paths, so the trees add `-fmacro-prefix-map=../../=`:
  __FILE__ in a panic or a Result is `kernel/mm/vm.cpp`, as in a tree built without ccache.

A hit needs the same compiler, the same flags and the same bytes in the source and in every
header it includes (ccache's direct mode hashes them all; the preprocessor mode, its fallback,
hashes the preprocessed text), so a reused object is the object the compiler would have made.
`labs check --clean` deletes build/labs-check, the cache with it: a full rebuild (a cache named
by $PAGODA_TREE_CACHE, outside it, stays). Without ccache the trees build as before, each in full.

The settings are part of each tree's CMake cache (the launcher is `env CCACHE_...=... ccache`),
so a build started by hand in a tree uses the same cache.

Batch grading (batch.py) builds each submission's tree the same way, through one cache for the
whole batch (see Batch.cache): a class's submissions differ from each other in the same few files.
Only trusted builds write that cache; a submission's sandboxed build reads it (CCACHE_READONLY).

build() is the one way `labs check` and `labs mutants` build a tree: configure (once), then build
(the whole tree, or one target). It lets one build run at a time in a process: ninja already
keeps every core busy, and two trees built side by side with a cold cache would each compile
the sources they share (the second finds them in the cache only after the first). Grades run
beside a build; only builds wait for each other.
"""
import os
import re
import shutil
import threading

from pagoda_core import speed

CACHE_DIR = "ccache"
# Names another object cache for every generated tree (and batch grading's, batch.py): .ci/run
# keeps one outside the fresh clone it runs in, so that CI's next run on the machine finds what
# this one compiled (a slip's header edit recompiles 20-40 files on each ISA).
TREE_CACHE_VARIABLE = "PAGODA_TREE_CACHE"
LANGUAGES = ("C", "CXX")     # CMake has no launcher for ASM; the few .S files compile each time
# Ninja runs every compiler from build/<arch>, two levels below the tree.
RELATIVE_PREFIX_MAP = "-fmacro-prefix-map=../../="


# One build at a time in this process (see the module's docstring).
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
    """The CMake cache entries @p tree's builds need: the launcher, and (with it) a macro prefix map
    for the relative paths ccache hands the compiler, so that __FILE__ stays `kernel/...` as in
    a tree built without ccache (the project's own map covers only the absolute path)."""
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
    """Configures @p tree's @p arch build when needed (configure_argv, through the object cache
    @p cache when given) and builds it: @p target alone (ninja rebuilds only what changed since
    the last build and what depends on it), or everything. Appends both commands and their
    output to @p log_path; True when it built.
    Waits for any other build of this process to end first. @p cpu, a list, gets the CPU
    seconds the build's commands used (the compilers under them included)."""
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
