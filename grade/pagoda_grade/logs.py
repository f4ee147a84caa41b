"""Where a grade keeps its logs: one directory per grade under the log root (build/grade/, or
PAGODA_GRADE_LOGS), `last` pointing to the newest, only the newest RUNS_KEPT kept.

Each grade holds an exclusive lock on its directory's `.lock` while it runs, so that pruning never
removes a directory in use, and two grades in one clone never share a file: the boots' serial and
QEMU logs and pytest's own output (pytest.log) are all inside the grade's directory. `./pagoda
grade` makes the directory before it starts pytest and names it in PAGODA_GRADE_RUN_DIR; a pytest
started without it (the grader's own tests, a hand-run pytest) makes its own."""
import fcntl
import os
import shutil
import tempfile
import time

RUN_DIR_ENV = "PAGODA_GRADE_RUN_DIR"
ROOT_ENV = "PAGODA_GRADE_LOGS"
RUNS_KEPT = 5


def log_root(build_dir):
    """The directory grades keep their logs in."""
    return os.environ.get(ROOT_ENV) or os.path.join(build_dir, "grade")


def start_run(root):
    """Makes a new grade's directory in @p root, locked; returns (its path, the lock's open
    file: the lock lasts as long as the file stays open, or the process lives)."""
    os.makedirs(root, exist_ok=True)
    run_dir = tempfile.mkdtemp(prefix=time.strftime("run-%Y%m%d-%H%M%S-"), dir=root)
    lock = open(os.path.join(run_dir, ".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    link = os.path.join(root, "last")
    tmp = f"{link}.{os.getpid()}"
    try:
        os.symlink(os.path.basename(run_dir), tmp)
        os.replace(tmp, link)
    except OSError:
        pass
    prune(root, run_dir)
    return run_dir, lock


def prune(root, current):
    """Removes old grades' directories beyond the newest RUNS_KEPT, never one in use."""
    runs = sorted(d for d in os.listdir(root) if d.startswith("run-"))
    for name in runs[:-RUNS_KEPT]:
        path = os.path.join(root, name)
        if path == current:
            continue
        try:
            with open(os.path.join(path, ".lock"), "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # another grade is running with it
        except OSError:
            pass
        shutil.rmtree(path, ignore_errors=True)
