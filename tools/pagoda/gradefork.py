"""A warm grader: many `./pagoda grade` runs of one tree without a new Python each time.

`labs mutants` grades every slip with the tree's own `./pagoda grade`. Started as a new process,
each grade imports ./pagoda, then pytest and the grader again (about half a CPU-second, more than
a short grade's boots cost). A Server is instead one process per tree, started from the tree
itself (its own tools/ and grade/ on the path), that imports pytest and the grader's modules
once and then forks for every grade: the fork runs `./pagoda grade ARGS` in-process
(pagoda.cli.main) and its pytest in a further fork (grade.PYTEST_IN_FORK), so each grade starts
from the same warm, untouched state and none sees what another did.

What is not imported ahead: conftest.py and the test files, which pytest must import itself so
that it rewrites their asserts (the failure messages a slip's cause is matched against), and
pytest's plugins, which it marks for rewriting too.

A grade's answer is the same as a new process's: the same arguments, directory, environment and
log; only the time to start differs. One request at a time per server (a grading thread keeps
its own); the server dies with its parent.
"""
import json
import os
import signal
import subprocess
import sys
import threading

from pagoda_core import forked, paths

# Modules a grade imports, imported once in the server (see the module's docstring for what not).
WARM_MODULES = ("pytest", "pagoda.grade", "pagoda_grade.harness", "pagoda_grade.lifecycle",
                "pagoda_grade.witness", "pagoda_grade.processes", "pagoda_grade.vmas", "pagoda_grade.causes",
                "pagoda_grade.vmchecks", "pagoda_grade.tlb", "pagoda_grade.symbols", "pagoda_grade.outcomes",
                "pagoda_grade.manifest", "pagoda_grade.programs", "pagoda_grade.todo", "pagoda_grade.logs")


def serve(main, stdin=sys.stdin, stdout=sys.stdout):
    """The server's loop: a request per line ({"argv", "cwd", "env", "log"}), a reply per line
    ({"status": the grade's exit status, "cpu": the CPU seconds it and every process under it
    used}) once that grade has ended; ends at end of input.
    @p main is ./pagoda's (pagoda.cli.main), which the server's command line hands in."""
    import importlib
    for name in WARM_MODULES:
        importlib.import_module(name)
    from pagoda import grade
    grade.PYTEST_IN_FORK = True
    # Ctrl-C reaches the server with its parent: the grade running then stops as a new process's
    # would (its fork takes Python's handler back) and the server waits for the end of its input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(main, request)   # (does not return)
        _, status, usage = os.wait4(pid, 0)
        stdout.write(json.dumps({"status": os.waitstatus_to_exitcode(status),
                                 "cpu": usage.ru_utime + usage.ru_stime}) + "\n")
        stdout.flush()


def _child(main, request):
    def body():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from pagoda_core.qemu import die_with_parent
        die_with_parent()           # (the server's death ends its grades)
        with open(request["log"], "a") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.update(request["env"])
        return main(request["argv"])
    forked.exit_after(body)


class Server:
    """A warm grader of @p tree (started at once): grade() runs `./pagoda grade ARGS` there."""

    def __init__(self, tree):
        from pagoda_core.qemu import die_with_parent
        self.tree = tree
        path = [os.path.join(tree, p) for p in ("tools", "grade", "tools/gdb")]
        code = (f"import sys; sys.path[:0] = {path!r}; "
                "from pagoda import cli, gradefork; gradefork.serve(cli.main)")
        self.proc = subprocess.Popen([paths.SYSTEM_PYTHON, "-c", code], cwd=tree, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
        self.lock = threading.Lock()
        self.cpu = 0.0      # the CPU seconds of the last grade (its QEMUs' included)

    def grade(self, argv, log, env):
        """The exit status of `./pagoda ARGV` (a grade) run in the tree with @p env added to the
        environment, its output appended to @p log; None when the server is gone. Its CPU time:
        self.cpu."""
        with self.lock:
            try:
                self.proc.stdin.write(json.dumps({"argv": argv, "cwd": self.tree, "env": env, "log": log}) + "\n")
                self.proc.stdin.flush()
                reply = self.proc.stdout.readline()
            except (OSError, ValueError):
                return None
        if not reply:
            return None
        reply = json.loads(reply)
        self.cpu = reply.get("cpu", 0.0)
        return reply["status"]

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()
