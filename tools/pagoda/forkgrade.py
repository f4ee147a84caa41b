"""Warm graders: `./pagoda grade` run many times in one tree (a lab's slips, `labs mutants`)
without paying Python's start-up each time.

A grade is a process of its own, and about 0.5 CPU-s of a one-test grade is its start-up
(importing ./pagoda's commands, pytest and the grader's modules) before it boots anything. A
warm grader is a process started once per tree and worker thread that imports those modules
from the tree (its own ./pagoda script sets the paths, as for any command), then forks once per
grade: the child is the command `./pagoda ARGS` as a new process would be (its own environment,
working directory, output file), with nothing run yet in the parent but imports, so no state of
one grade reaches the next. Its CPU time (the QEMUs under it included) is the child's alone.

Only for trees built from this repository's own text (the generated lab trees): a student's
tree is graded by a fresh process (batch grading), never by one whose modules were imported
before. The warm grader ends when its standard input closes (its user ended: close()).
"""
import json
import os
import subprocess
import sys
import threading

from pagoda_core import paths


def _preload():
    """Imports what every grade imports besides ./pagoda's commands: pytest, and the grader's and the
    page-table model's modules (a module that needs GDB's Python is left out); asks QEMU once
    for its CPU models and the features it lacks (qemu.machine_args: every boot's question)."""
    import importlib
    import pkgutil
    importlib.import_module("pytest")
    for package in ("pagoda_grade", "pagoda_pt"):
        base = importlib.import_module(package)
        for info in pkgutil.iter_modules(base.__path__):
            try:
                importlib.import_module(f"{package}.{info.name}")
            except ImportError:
                pass
    # (QEMU's answers on its CPU models and the features it lacks: probes of QEMU alone, kept
    # per process; one that fails is not kept, and each grade asks again)
    from pagoda_core import qemu
    for arch in paths.ARCHES:
        try:
            qemu.machine_args(arch)
        except Exception:
            pass


def _child(main, request):
    """In the forked child: the command @p request names, run by @p main (./pagoda's) as a new
    process would run it; never returns."""
    code = 1
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # (what the tree's ./pagoda script sets for every process under it)
        os.environ["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        sys.argv = [os.path.join(paths.ROOT, "pagoda")] + request["args"]
        code = main(request["args"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


def serve(main):
    """The warm grader's loop: one JSON request a line on stdin ({args, env, cwd, log}); for each,
    the child's pid, then {status, cpu} once it ended, one JSON line each on stdout. @p main:
    ./pagoda's (its script imported it: the commands are loaded)."""
    _preload()
    out = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        out.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(main, request)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status, usage = os.wait4(pid, 0)
        out.write(json.dumps({"status": os.waitstatus_to_exitcode(status),
                              "cpu": usage.ru_utime + usage.ru_stime}) + "\n")
        out.flush()


# The warm graders not in use, per tree (run() takes one, or starts one, and puts it back).
_idle = {}
_lock = threading.Lock()
_SERVE = ("import runpy, sys\nmain = runpy.run_path(sys.argv[1], run_name='pagoda_warm')['main']\n"
          "from pagoda import forkgrade\nforkgrade.serve(main)\n")


def _start(tree):
    return subprocess.Popen([paths.SYSTEM_PYTHON, "-c", _SERVE, os.path.join(tree, "pagoda")], cwd=tree,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def run(tree, args, env, log_path):
    """Runs `TREE/pagoda ARGS` (cwd @p tree, environment @p env, output appended to @p log_path) in
    a warm grader of @p tree; (exit status, CPU seconds of the command and everything under it).
    Raises OSError when the tree has no warm grader (this module) or it failed (its caller then
    runs a plain process)."""
    if not os.path.exists(os.path.join(tree, "tools", "pagoda", "forkgrade.py")):
        raise OSError(f"{tree} has no warm grader")
    with _lock:
        idle = _idle.setdefault(os.path.abspath(tree), [])
        warm = idle.pop() if idle else None
    if warm is None:
        warm = _start(tree)
    pid = None
    try:
        warm.stdin.write(json.dumps({"args": list(args), "env": dict(env), "cwd": tree, "log": log_path}) + "\n")
        warm.stdin.flush()
        pid = json.loads(warm.stdout.readline())["pid"]
        done = json.loads(warm.stdout.readline())
    except (OSError, ValueError, KeyError) as e:
        close_one(warm)
        raise OSError(f"the warm grader of {tree} failed: {e}") from None
    except BaseException:
        if pid:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        close_one(warm)
        raise
    with _lock:
        _idle[os.path.abspath(tree)].append(warm)
    return done["status"], done["cpu"]


def close_one(warm):
    try:
        warm.stdin.close()
    except OSError:
        pass
    try:
        warm.wait(timeout=30)
    except subprocess.TimeoutExpired:
        warm.kill()
        warm.wait()


def close():
    """Ends every idle warm grader."""
    with _lock:
        every = [w for idle in _idle.values() for w in idle]
        _idle.clear()
    for warm in every:
        close_one(warm)
