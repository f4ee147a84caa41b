"""`pagoda grade --batch DIR --lab N --csv OUT.csv`: grade a class with this tree's grader, -j
submissions at a time, each in its own copy.

A submission is an entry of DIR: a directory, a git repository (branch labN if it has one, else
HEAD; --ref chooses), a git bundle or a .tar/.tar.gz/.zip archive; its id is the entry's name
without the extension. Each is copied (WORK/<id>/submitted, no build/ or .git/), grafted
(transplant.py: this tree's lab-N tree with the submission's solution regions put in; a change
anywhere else is named in its row and not built), built in a sandbox (sandbox.py; only the kernel
ELF is read back) and graded by this tree's grader, hidden tests included, isolated from anything
the submission touched. Logs and results are under WORK/<id>/.

The build and the grading each have a wall-clock limit (--build-time-limit, --time-limit; by default
BUILD_TIME_LIMIT and the lab's test timeouts plus GRADE_MARGIN, scaled by the load -j puts on the
machine), counted as a Deadline (speed.Budget: scaled to the machine, run-queue waits given back).
At the grading limit the grader is interrupted and the tests it did not finish score 0. The CSV
is rewritten after each submission: id, status, points per test, total, possible, seconds, summary.
"""
import collections
import concurrent.futures
import csv
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from . import deps, publish, sandbox, transplant, treebuild
from pagoda_core import build, paths, qemu, slips, speed
from pagoda_core.ui import PagodaError, clip, first_line, info

from pagoda_grade import manifest, programs, symbols

GRADE_MARGIN = 30.0         # seconds added to the lab's test timeouts for the default limit
BUILD_TIME_LIMIT = 300.0    # seconds to configure and build one kernel on the reference machine, one alone
INTERRUPT_GRACE = 10.0      # seconds (a Deadline) the grader gets after SIGINT to write its report
FLOOD_BYTES = 256 << 10     # one boot printing more floods the console (a normal one prints a few KiB)
ARCHIVES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".zip")
MAX_SUMMARY = 400           # characters of a CSV row's summary (cut with an ellipsis)
MAX_NOTE = 200              # characters of one part of it: a first failure, a build error
MAX_ERROR_LINES = 20        # lines of the first build error kept for Gradescope's page
MAX_ANSWER = 64 << 10       # bytes of a bug hunt's answer file read from a submission


@dataclass
class Submission:
    id: str
    path: str
    kind: str          # "dir", "git", "bundle", "archive"


@dataclass
class Row:
    id: str
    status: str = "graded"
    points: dict = field(default_factory=dict)     # test id: points earned
    total: int = 0
    possible: int = 0
    seconds: float = 0.0
    notes: list = field(default_factory=list)
    phases: dict = field(default_factory=dict)     # step: seconds
    test_seconds: float = 0.0                      # what the tests themselves took
    results: dict = field(default_factory=dict)    # test id: the grader's result
    build_log: str = None                          # path of the build log, once built

    build_error: list = field(default_factory=list)  # the first build error's lines, if any

    def summary(self):
        return clip("; ".join(self.notes), MAX_SUMMARY)


def discover(directory):
    """The submissions in @p directory, sorted by id."""
    if not os.path.isdir(directory):
        raise PagodaError(f"--batch {directory}: not a directory")
    found = []
    for name in sorted(os.listdir(directory)):
        if name.startswith("."):
            continue
        path = os.path.join(directory, name)
        if os.path.isfile(path) and name.endswith(".bundle"):
            found.append(Submission(name[:-len(".bundle")], path, "bundle"))
        elif os.path.isfile(path) and name.endswith(ARCHIVES):
            stem = next(name[:-len(e)] for e in sorted(ARCHIVES, key=len, reverse=True) if name.endswith(e))
            found.append(Submission(stem, path, "archive"))
        elif os.path.isdir(path):
            bare = all(os.path.exists(os.path.join(path, p)) for p in ("HEAD", "objects", "refs"))
            git = os.path.exists(os.path.join(path, ".git")) or bare
            found.append(Submission(name[:-4] if bare and name.endswith(".git") else name, path,
                                    "git" if git else "dir"))
        else:
            found.append(Submission(os.path.splitext(name)[0], path, "unknown"))
    ids = [s.id for s in found]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise PagodaError(f"two submissions would have the same id: {', '.join(dup)}")
    return found


class Deadline(speed.Budget):
    """speed.Budget of @p seconds on the reference machine, giving back the time the commands it
    watch()es (and their children) waited for a CPU."""

    def __init__(self, seconds):
        super().__init__(seconds, tree=True, watch_self=False)


def _wait(proc, deadline):
    """Waits for @p proc to end until @p deadline (a Deadline watching it: its left() grows back
    by the time the command waited for a CPU); returns whether it ended."""
    while True:
        left = deadline.left()
        if left <= 0:
            return proc.poll() is not None
        try:
            proc.wait(timeout=min(left, 1.0))
            return True
        except subprocess.TimeoutExpired:
            pass


def lab_spec(number, root=paths.ROOT):
    """The manifest of lab @p number, which must have grader tests (PagodaError otherwise)."""
    labs = manifest.load_all(os.path.join(root, "labs"))
    if number not in labs:
        raise PagodaError(f"--lab {number}: there is no lab {number} (labs: {', '.join(map(str, sorted(labs)))})")
    if not os.path.exists(os.path.join(root, "grade", f"test_lab{number}.py")):
        raise PagodaError(f"lab {number} has no grader tests (grade/test_lab{number}.py)")
    return labs[number]


class Batch:
    """What every submission is graded with: this tree's grader, lab @p lab's tests."""

    def __init__(self, lab, arch, work, time_limit, ref=None, keep=False, root=paths.ROOT,
                 build_time_limit=None, jobs=1, sandbox_mode=None):
        self.root = root
        self.lab = lab
        self.arch = arch
        self.work = work
        self.ref = ref
        self.keep = keep
        self.spec = lab_spec(lab, root)
        scale = max(1.0, jobs / (os.cpu_count() or 1))     # submissions sharing each core
        self.time_limit = time_limit or (sum(t.timeout for t in self.spec.tests) + GRADE_MARGIN) * scale
        self.build_time_limit = build_time_limit or BUILD_TIME_LIMIT * scale
        self.user_dir = None    # the grader's own build of the user programs (prepare())
        self.facts = None       # the published tree's facts, the grader's constants (prepare())
        # The object cache (treebuild.py): written only by prepare()'s trusted build, read-only for
        # the submissions' (CCACHE_READONLY: none can plant an object in another's kernel).
        self.cache = os.environ.get(treebuild.TREE_CACHE_VARIABLE) or os.path.join(work, "ccache")
        # The tree every submission is graded in, before its regions go in (transplant.py).
        self.published = transplant.load(lab, root)
        try:
            self.sandbox_mode = sandbox.detect(sandbox_mode)
        except sandbox.SandboxError as e:
            raise PagodaError(str(e))
        self.lock = threading.Lock()
        self.running = {}       # submission id: Popen, for interrupting on Ctrl-C

    def prepare(self):
        """Builds, once, what every submission is graded with: from programs.FIRST_LAB on, the
        grader's own build of the user programs (each kernel must embed them); and the lab's
        published tree, trusted: its kernel's facts are the grader's constants (symbols.FACTS_ENV),
        and its build fills the object cache the submissions' builds read."""
        if self.user_dir is None and self.lab >= programs.FIRST_LAB:
            self.user_dir = build.grader_user_programs(self.root, self.arch)
        if self.facts is None:
            tree = os.path.join(self.work, "published")
            shutil.rmtree(tree, ignore_errors=True)
            transplant.write_tree(self.published.files, tree)
            log = os.path.join(self.work, "published-build.log")
            if not treebuild.build(tree, self.arch, log, cache=self.cache):
                raise PagodaError(f"lab {self.lab}'s published tree does not build here: see {log}")
            self.facts = os.path.join(self.work, f"facts-lab{self.lab}-{self.arch}.json")
            try:
                symbols.write_facts(os.path.join(tree, "build", self.arch, "kernel.elf"), self.facts)
            except (OSError, AssertionError) as e:
                raise PagodaError(f"lab {self.lab}'s published kernel gives no facts to grade with: {e}")
            shutil.rmtree(tree, ignore_errors=True)
        return self

    # ---- steps ------------------------------------------------------------------------------

    def copy(self, sub, tree, scratch):
        """Puts @p sub's files into @p tree; returns a note or raises PagodaError."""
        if sub.kind in ("dir", "archive"):
            top = sub.path
            if sub.kind == "archive":
                shutil.unpack_archive(sub.path, scratch)
                entries = [e for e in os.listdir(scratch) if not e.startswith(".")]
                top = os.path.join(scratch, entries[0]) if len(entries) == 1 and \
                    os.path.isdir(os.path.join(scratch, entries[0])) else scratch
            shutil.copytree(top, tree, symlinks=True, ignore=lambda d, names: [
                n for n in names if n in (".git", "build") and os.path.samefile(d, top)])
            return None
        if sub.kind not in ("git", "bundle"):
            raise PagodaError("not a directory, git repository, git bundle or archive")
        repo = os.path.join(scratch, "repo.git")
        r = subprocess.run(["git", "clone", "-q", "--bare", "--no-hardlinks", sub.path, repo],
                           capture_output=True, env=publish.isolated_git_env())
        if r.returncode != 0:
            raise PagodaError(f"git clone failed: {r.stderr.decode(errors='replace').strip()}")
        ref = self.ref
        if ref is None:
            has_lab = subprocess.run(["git", "--git-dir", repo, "rev-parse", "-q", "--verify",
                                      f"refs/heads/lab{self.lab}"], capture_output=True).returncode == 0
            ref = f"lab{self.lab}" if has_lab else "HEAD"
        commit = subprocess.run(["git", "--git-dir", repo, "rev-parse", "-q", "--verify", f"{ref}^{{commit}}"],
                                capture_output=True, text=True)
        if commit.returncode != 0:
            raise PagodaError(f"the repository has no {ref}")
        os.makedirs(tree)
        archive = subprocess.Popen(["git", "--git-dir", repo, "archive", "--format=tar", commit.stdout.strip()],
                                   stdout=subprocess.PIPE)
        untar = subprocess.run(["tar", "-x", "-C", tree], stdin=archive.stdout, capture_output=True)
        archive.stdout.close()
        if archive.wait() != 0 or untar.returncode != 0:
            raise PagodaError(f"could not extract {ref}: {untar.stderr.decode(errors='replace').strip()}")
        shutil.rmtree(repo)
        return f"graded {ref} ({commit.stdout.strip()[:12]})"

    def _run(self, sub_id, argv, cwd, log_path, deadline, env=None, interrupt=False, box=None):
        """Runs @p argv in its own process group, output to @p log_path, until @p deadline;
        returns (status, timed out). On the deadline: SIGINT first if @p interrupt (the grader
        then writes its report), SIGKILL after INTERRUPT_GRACE or at once. With @p box (a
        sandbox.Sandbox) the command runs in it, with its environment."""
        if deadline.left() <= 0:
            return None, True

        def child_setup():
            os.setpgid(0, 0)
            qemu.die_with_parent()
            if interrupt:   # (a SIGINT ignored by whoever started the batch would be ignored here too)
                signal.signal(signal.SIGINT, signal.SIG_DFL)

        with open(log_path, "a") as log:
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            if box is not None:
                argv, env = box.wrap(argv, cwd), box.environment(env)
            proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env, preexec_fn=child_setup)
            with self.lock:
                self.running[sub_id] = proc
            deadline.watch(proc.pid)
            try:
                if _wait(proc, deadline):
                    return proc.returncode, False
                if interrupt:
                    os.killpg(proc.pid, signal.SIGINT)
                    grace = Deadline(INTERRUPT_GRACE)
                    grace.watch(proc.pid)
                    if _wait(proc, grace):
                        return proc.returncode, True
                qemu.kill_group(proc)
                return proc.returncode, True
            finally:
                with self.lock:
                    self.running.pop(sub_id, None)
                if proc.poll() is None:
                    qemu.kill_group(proc)

    def build(self, sub_id, tree, log, deadline, box, row=None):
        """Builds @p tree's kernel in the sandbox @p box; returns (build status note or None).
        A failed build's first error (paths relative to @p tree) goes into @p row.build_error."""
        configure = treebuild.configure_argv(tree, self.arch, self.cache)
        steps = [configure] if configure else []
        steps.append(["cmake", "--build", "--preset", self.arch])
        with open(log, "a") as f:
            f.write(f"# sandbox: {box.describe()}\n")
        # (the object cache is read, never written: see __init__)
        env = {"CCACHE_READONLY": "1", "CCACHE_NOSTATS": "1", "CCACHE_TEMPDIR": box.tmp}
        for argv in steps:
            status, late = self._run(sub_id, argv, tree, log, deadline, env=env, box=box)
            if late:
                return f"the build ran past its {deadline.seconds:.0f} s time limit"
            if status != 0:
                error = first_build_error(log, tree)
                if row is not None:
                    row.build_error = error
                return "does not build: " + clip(one_line(error), MAX_NOTE)
        return None

    def run_grader(self, sub_id, kernel, base, deadline):
        """Runs this tree's grader on @p kernel, isolated from everything a submission could have
        touched: `python3 -I` (no user site, no PYTHON* variables, not the working folder),
        no plugin loaded but the ones named here, from this tree's grade/ (hidden tests included).
        Returns (results, late, status)."""
        report = os.path.join(base, "results.json")
        argv = [paths.SYSTEM_PYTHON, "-I", "-m", "pytest", "-p", "no:cacheprovider", "-p", "pytest_timeout",
                "-q", "-rN", f"--pagoda-report={report}", f"--pagoda-arch={self.arch}",
                f"--pagoda-kernel={kernel}", f"--pagoda-lab={self.lab}",
                *manifest.test_files(self.lab, os.path.join(self.root, "grade"))]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST", "PAGODA_GRADE_"))}
        # (a failure's replay line is for the student, whose own tree builds this kernel: no --kernel)
        env.update(PAGODA_GRADE_LOGS=os.path.join(base, "boots"), PAGODA_GRADE_SOURCE=self.root,
                   PAGODA_GRADE_GDB="./pagoda gdb", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
        if self.user_dir:
            env["PAGODA_GRADE_USER_DIR"] = self.user_dir
        if self.facts:
            env[symbols.FACTS_ENV] = self.facts
        if os.path.exists(os.path.join(base, slips.ANSWER_FILE)):
            env["PAGODA_GRADE_HUNT_ANSWER"] = os.path.join(base, slips.ANSWER_FILE)
        status, late = self._run(sub_id, argv, os.path.join(self.root, "grade"),
                                 os.path.join(base, "grade.log"), deadline, env=env, interrupt=True)
        try:
            with open(report) as f:
                results = {r["id"]: r for r in json.load(f) if r["lab"] == self.lab}
        except (OSError, ValueError):
            results = None
        return results, late, status

    # ---- one submission ---------------------------------------------------------------------

    def grade_one(self, sub):
        start = time.monotonic()
        row = Row(sub.id, possible=sum(t.points for t in self.spec.tests))
        row.points = {t.id: 0 for t in self.spec.tests}
        base = os.path.join(self.work, sub.id)
        shutil.rmtree(base, ignore_errors=True)
        private(self.work, 0o711)   # (the object cache in it stays reachable: a uid sandbox reads it)
        os.makedirs(base)
        private(base, 0o700)        # its kernel, logs and results: no other submission's build reads them
        submitted, scratch = os.path.join(base, "submitted"), os.path.join(base, "scratch")
        os.makedirs(scratch)
        t = time.monotonic()
        try:
            note = self.copy(sub, submitted, scratch)
            graded = transplant.transplant(self.published, submitted)
            answer = transplant.read_regular(os.path.join(submitted, slips.ANSWER_FILE), MAX_ANSWER)
            if answer is not None:      # a graded bug hunt's answer: data, for test_hunt.py
                with open(os.path.join(base, slips.ANSWER_FILE), "wb") as f:
                    f.write(answer)
        except (PagodaError, OSError, shutil.ReadError) as e:
            row.status = "bad submission"
            row.notes.append(f"cannot read the submission ({sub.kind}): {e}")
            row.seconds = time.monotonic() - start
            return row
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            if not self.keep:
                shutil.rmtree(submitted, ignore_errors=True)
        row.notes += [n for n in (note, graded.note()) if n]
        if graded.refused:      # built as a build error is: it scores nothing
            row.status = "does not build"
            row.build_error = graded.refused[:MAX_ERROR_LINES]
            row.notes.insert(0, "does not build: " + clip(graded.refused[0], MAX_NOTE))
            row.seconds = time.monotonic() - start
            return row
        # The graded tree, and the sandbox's HOME and TMPDIR, in a folder the sandbox's user can
        # walk to (the batch's own folder may sit below one it cannot enter).
        stage = sandbox.staging_dir()
        tree = os.path.join(stage, "tree")
        box, cleaned = None, False
        try:
            transplant.write_tree(graded.files, tree)
            row.phases["copy"] = time.monotonic() - t
            box = sandbox.Sandbox(os.path.join(stage, "sandbox"), os.path.join(tree, "build"),
                                  readable=[self.cache], mode=self.sandbox_mode).prepare()
            t = time.monotonic()
            row.build_log = os.path.join(base, "build.log")
            problem = self.build(sub.id, tree, row.build_log, Deadline(self.build_time_limit), box, row)
            box.clean()     # nothing of the build runs on, and only then is its output read
            cleaned = True
            kernel = None
            if problem is None:
                kernel = sandbox.take_kernel(os.path.join(tree, "build"), f"{self.arch}/kernel.elf",
                                             os.path.join(base, "kernel.elf"))
                if kernel is None:
                    problem = f"does not build: the build made no build/{self.arch}/kernel.elf"
            row.phases["build"] = time.monotonic() - t
            if kernel is None:
                row.status = "time limit" if "time limit" in problem else "does not build"
                row.notes.insert(0, problem)
                return row
        except sandbox.SandboxError as e:
            row.status = "grader error"
            row.notes.insert(0, f"no sandbox for the build: {e}")
            return row
        finally:
            if box is not None:
                if not cleaned:
                    box.clean()
                box.release()
            if self.keep and os.path.isdir(tree):
                shutil.rmtree(os.path.join(base, "tree"), ignore_errors=True)
                shutil.move(tree, os.path.join(base, "tree"))
            shutil.rmtree(stage, ignore_errors=True)
            row.seconds = time.monotonic() - start

        t = time.monotonic()
        results, late, status = self.run_grader(sub.id, kernel, base, Deadline(self.time_limit))
        row.phases["grade"] = time.monotonic() - t
        row.seconds = time.monotonic() - start
        if results is None:
            row.status = "time limit" if late else "grader error"
            row.notes.insert(0, f"the grader stopped at the {self.time_limit:.0f} s time limit "
                                "before reporting" if late else
                             f"the grader did not run (status {status}); see {os.path.join(base, 'grade.log')}")
            return row
        self.score(row, results, late, base)
        return row

    def score(self, row, results, late, base):
        timed_out, failures = [], []
        row.results = results
        for spec in self.spec.tests:
            r = results.get(spec.id)
            if r is None:
                continue
            row.test_seconds += r["duration"]
            if r["outcome"] == "passed":
                row.points[spec.id] = spec.points
                continue
            if r["duration"] >= spec.timeout - 0.5:
                timed_out.append(spec.id)
            failures.append((spec.id, clip(first_line(r["reason"]), MAX_NOTE)))
        row.total = sum(row.points.values())
        missing = [t.id for t in self.spec.tests if t.id not in results]
        if late:
            row.status = "time limit"
            row.notes.insert(0, f"stopped at the {self.time_limit:.0f} s time limit; "
                                f"{len(missing)} test(s) never ran")
        elif missing:
            row.notes.append(f"no result for {', '.join(missing)}")
        if timed_out:
            row.notes.append(f"hangs: {len(timed_out)} test(s) ran into their timeout "
                             f"({', '.join(timed_out)})")
        flood = biggest_console(os.path.join(base, "boots"))
        if flood >= FLOOD_BYTES:
            row.notes.append(f"floods the console: {flood / 2**10:.0f} KiB in one boot")
        if failures:
            test_id, why = failures[0]
            more = f" (+{len(failures) - 1} more failing)" if len(failures) > 1 else ""
            row.notes.append(f"first failure: {test_id}: {why}{more}")

    def interrupt_all(self):
        with self.lock:
            procs = list(self.running.values())
        for proc in procs:
            qemu.kill_group(proc)


def private(folder, mode):
    """Gives @p folder (the grader's) @p mode when it is not already that closed."""
    if os.stat(folder).st_mode & 0o777 & ~mode:
        os.chmod(folder, mode)


# Where an error starts in a build log, and how far it goes: a compiler's diagnostic and its
# source and caret lines; the linker's and its ">>>" lines; CMake's and its indented message.
_COMPILER_ERROR = re.compile(r"^\S.*?:\d+:(\d+:)? (fatal )?error: ")
_LINKER_ERROR = re.compile(r"^(\S*ld(\.lld)?|clang(\+\+)?(-\d+)?): error: ")
_CMAKE_ERROR = re.compile(r"^CMake Error\b")
_FROM_BUILD_DIR = re.compile(r"(^|[\s(])\.\./\.\./(?=[\w.])")
_INCLUDED_FROM = re.compile(r"^In file included from |^\s+from \S+:\d+")
_NEXT_THING = re.compile(r"^(\S.*?:\d+:(\d+:)? (fatal error|error|warning|note): |\d+ errors? generated|"
                         r"ninja: |FAILED: |\[\d+/\d+\] |\$ |-- |CMake )")


def first_build_error(log, tree=None):
    """The first compiler, linker or CMake error in the build log @p log, as lines (the message
    with what follows it: source and caret, '>>>' references, CMake's indented text), with
    paths under @p tree made relative to it. The log's last line when it names no error."""
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    if tree:
        prefix = os.path.join(os.path.realpath(tree), "")
        lines = [l.replace(prefix, "").replace(os.path.join(tree, ""), "") for l in lines]
        # Compiled through the object cache (treebuild.py), the compiler names the tree's files
        # relative to build/<arch>, two levels down.
        lines = [_FROM_BUILD_DIR.sub(r"\1", l) for l in lines]
    for i, line in enumerate(lines):
        if _COMPILER_ERROR.match(line) or _LINKER_ERROR.match(line):
            start = i
            while start > 0 and _INCLUDED_FROM.match(lines[start - 1]):
                start -= 1
            block = lines[start:i + 1]
            for more in lines[i + 1:]:
                if _NEXT_THING.match(more) or (_LINKER_ERROR.match(line) and not more.startswith(">>>")):
                    break
                block.append(more)
            return block[:MAX_ERROR_LINES]
        if _CMAKE_ERROR.match(line):
            block = [line]
            for more in lines[i + 1:]:
                if more and not more[0].isspace():
                    break
                block.append(more)
            while block and not block[-1].strip():
                block.pop()
            return block[:MAX_ERROR_LINES]
    tail = [l for l in lines if l.strip() and not l.startswith("$ ")]
    return tail[-1:] or ["the build failed with no output"]


def one_line(block):
    """A build error's lines as one line: the message, and for CMake its indented text (a
    compiler's source and caret lines are left out)."""
    if block and _CMAKE_ERROR.match(block[0]):
        return " ".join(l.strip() for l in block if l.strip())
    head = next((l for l in block if not _INCLUDED_FROM.match(l)), block[0] if block else "")
    return head.strip()


def biggest_console(boots):
    return max((os.path.getsize(p) for p in glob.glob(os.path.join(boots, "**", "serial.log"), recursive=True)),
               default=0)


def write_csv(path, batch, rows):
    """One row per finished submission, sorted by id (rewritten as rows arrive)."""
    tests = [t.id for t in batch.spec.tests]
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "status", *[f"lab{batch.lab}/{t}" for t in tests], "total", "possible",
                    "seconds", "summary"])
        for row in sorted(rows, key=lambda r: r.id):
            w.writerow([row.id, row.status, *[row.points[t] for t in tests], row.total, row.possible,
                        f"{row.seconds:.1f}", row.summary()])
    os.replace(tmp, path)


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def run(submissions, batch, jobs, csv_path, out=sys.stderr):
    """Grades @p submissions, @p jobs at a time; returns the rows."""
    rows, start = [], time.monotonic()
    tty = out.isatty()

    def progress(row):
        done = len(rows)
        elapsed = time.monotonic() - start
        eta = elapsed / done * (len(submissions) - done)
        text = (f"batch: {done}/{len(submissions)} done, elapsed {_clock(elapsed)}, ETA {_clock(eta)}; "
                f"{row.id}: {row.total}/{row.possible} ({row.status})")
        out.write(("\r\033[K" + text) if tty else text + "\n")
        out.flush()

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(batch.grade_one, s): s for s in submissions}
        for fut in concurrent.futures.as_completed(futures):
            try:
                row = fut.result()
            except Exception as e:  # a bug here must not lose the other submissions
                row = Row(futures[fut].id, status="grader error", notes=[f"{type(e).__name__}: {e}"],
                          possible=sum(t.points for t in batch.spec.tests),
                          points={t.id: 0 for t in batch.spec.tests})
            rows.append(row)
            write_csv(csv_path, batch, rows)
            progress(row)
    except KeyboardInterrupt:
        for f in futures:
            f.cancel()
        batch.interrupt_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if tty:
        out.write("\n")
    return rows


def cmd_batch(args):
    if args.lab is None or not args.csv:
        raise PagodaError("--batch needs --lab N and --csv FILE")
    if args.labs:
        raise PagodaError("--batch grades one lab, given with --lab; drop the LAB arguments")
    jobs = (os.cpu_count() or 1) if args.jobs == "auto" else int(args.jobs)
    deps.ensure(deps.needed(grading_only=True, arches=[args.arch]))
    speed.export()
    submissions = discover(args.batch)
    if not submissions:
        raise PagodaError(f"no submissions in {args.batch}")
    work = os.path.abspath(args.work or os.path.join(paths.BUILD, "batch"))
    os.makedirs(work, exist_ok=True)
    batch = Batch(args.lab, args.arch, work, args.time_limit, ref=args.ref, keep=args.keep,
                  build_time_limit=args.build_time_limit, jobs=jobs).prepare()
    info(f"batch: grading {len(submissions)} submission(s) of lab {args.lab}, {jobs} at a time, "
         f"each with {batch.build_time_limit:.0f} s to build and {batch.time_limit:.0f} s to grade; "
         f"copies and logs in {work}")
    start = time.monotonic()
    rows = run(submissions, batch, jobs, os.path.abspath(args.csv))
    elapsed = time.monotonic() - start
    by_status = collections.Counter(r.status for r in rows)
    graded = [r for r in rows if "grade" in r.phases]
    info(f"batch: {len(rows)} submission(s) in {elapsed:.1f} s with -j {jobs}: " +
         ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) + f"; CSV: {args.csv}")
    if graded:
        avg = {k: sum(r.phases.get(k, 0) for r in graded) / len(graded) for k in ("copy", "build", "grade")}
        overhead = sum(r.seconds - r.test_seconds for r in graded) / len(graded)
        info(f"batch: per graded submission: copy+check {avg['copy']:.1f} s, build {avg['build']:.1f} s, "
             f"grader {avg['grade']:.1f} s of which tests {sum(r.test_seconds for r in graded) / len(graded):.1f} s; "
             f"overhead beyond the tests {overhead:.1f} s")
    return 0
