"""Tests of ./pagoda's own modules (tools/pagoda). They import the package directly; the
lab-machinery tests share labtree.py (a module name of its own: several conftest.py files
meet in one `./pagoda test` run)."""
import fcntl
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# The Python path of these tests, as ./pagoda sets its own: tools/ (pagoda, pagoda_core), grade/
# (pagoda_grade), tools/gdb/ (pagoda_pt) and this directory (labtree).
for _path in (os.path.join(ROOT, "tools", "gdb"), os.path.join(ROOT, "grade"), os.path.join(ROOT, "tools"), HERE):
    sys.path.insert(0, _path)

import labtree  # noqa: E402
from pagoda import mutants, publish, treebuild  # noqa: E402
from pagoda_core import paths, pytest_cpu, pytest_speed  # noqa: E402


def pytest_configure(config):
    pytest_speed.register(config)   # timeout marks scaled to this machine's speed and load
    pytest_cpu.register(config)     # each test's CPU time, the dearest listed after the run
    # Every lab tree these tests grade (batch submissions, the Gradescope and Classroom runs, each
    # in a work directory of its own) compiles through one object cache (batch.Batch.cache): the
    # first build fills it, the others compile only what their patches changed. It is the cache of
    # `labs check` and `labs mutants` (build/labs-check/ccache), whose lab-0 tree is these tests'
    # trees but for their patches: whichever of them compiles a file first, in ./pagoda test's
    # steps that run side by side, compiles it for the others.
    os.environ.setdefault(treebuild.TREE_CACHE_VARIABLE,
                          os.path.join(paths.ROOT, mutants.CHECK_SUBDIR, treebuild.CACHE_DIR))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    return str(labtree.build_tree(str(root)))


@pytest.fixture(scope="session")
def tree_cache(request, tmp_path_factory):
    """The object cache the lab trees these tests grade compile through ($PAGODA_TREE_CACHE),
    filled once per run before the first of them builds: otherwise the trees that start building
    together (batch grading's -j 2, a Gradescope run on the other worker) all compile every file.
    The first worker to need it builds the published lab-0 tree through the cache; the others
    wait for it (a lock beside the cache), then find it filled for this run."""
    cache = os.environ[treebuild.TREE_CACHE_VARIABLE]
    if not treebuild.launcher(str(tmp_path_factory.getbasetemp()), cache):
        return cache                      # no ccache: every tree builds in full, as before
    run = getattr(request.config, "workerinput", {}).get("testrunuid") or f"pid {os.getpid()}"
    os.makedirs(cache, exist_ok=True)
    mark = os.path.join(cache, "filled-for-run")
    with open(cache + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(mark) as f:
                if f.read() == run:
                    return cache
        except OSError:
            pass
        tree = str(tmp_path_factory.mktemp("tree-cache") / "lab0")
        publish.publish_tree(0, tree, paths.ROOT)
        arch = paths.DEFAULT_ARCH
        for argv in (treebuild.configure_argv(tree, arch, cache), ["cmake", "--build", "--preset", arch]):
            if argv and subprocess.run(argv, cwd=tree, capture_output=True).returncode != 0:
                break                     # the tests that build will say what is wrong
        shutil.rmtree(tree, ignore_errors=True)
        with open(mark, "w") as f:
            f.write(run)
    return cache
