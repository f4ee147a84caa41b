"""`pagoda grade [LAB...]`: run the grader and print the score table.

Each selected lab's tests run in parallel under pytest (one fresh QEMU per test). As each test
ends, a line with its result and the running score goes to stderr. The table (stdout) then lists
every test the lab's manifest declares, even one that crashed, timed out or never ran (with 0
points), then `Score: a/b`. The exit status is 0 only at full marks.

Ctrl-C stops the grader (the tests running score nothing) and still prints the table and writes
--json and --junit for the tests that finished; the exit status is then 130.
"""
import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading

from . import batch, deps, junit
from pagoda_core import build, elffile, paths, speed
from pagoda_core.ui import PagodaError, clip, first_line, info

from pagoda_grade import logs, manifest, outcomes, programs, symbols

REASON_INDENT = "      "
MAX_REASON_LINES = 60
INTERRUPT_GRACE = 60.0     # seconds pytest gets, after Ctrl-C, to stop its workers and boots
# Flags that only mean something with --batch (argparse dest: the option as the user wrote it).
BATCH_ONLY = {"lab": "--lab", "csv": "--csv", "time_limit": "--time-limit",
              "build_time_limit": "--build-time-limit", "ref": "--ref", "work": "--work", "keep": "--keep"}
# Flags of a grade of this tree that --batch has no use for.
NOT_BATCH = {"json": "--json", "junit": "--junit", "test": "--test", "kernel": "--kernel",
             "first_failure": "--first-failure"}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a grade; carries the results of the tests that had finished."""

    def __init__(self, results):
        super().__init__("the grade was interrupted")
        self.results = results


class Listener:
    """The plugin run_pytest() gives pytest: the grader's result of each test (the entry
    grade/conftest.py records, also for a test an xdist worker ran: its reports reach these hooks
    here) as the test ends, and whether Ctrl-C stopped the session."""

    def __init__(self, progress):
        self.progress, self.terminal = progress, sys.stderr
        self.config, self.keys, self.interrupted, self.limit = None, {}, False, None

    @property
    def results(self):
        """{(lab, id): result} of every test that started."""
        done = getattr(self.config, "_pagoda_results", {})
        return {(r["lab"], r["id"]): r for r in done.values()}

    def pytest_configure(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report):
        props = dict(report.user_properties)
        if "pagoda_id" in props:
            self.keys[report.nodeid] = f"{props['pagoda_lab']}:{props['pagoda_id']}"

    def pytest_runtest_logfinish(self, nodeid):
        entry = self.config._pagoda_results.get(self.keys.get(nodeid))
        line = self.progress(entry) if entry and self.progress else None
        if line:
            print(line, file=self.terminal, flush=True)

    def pytest_keyboard_interrupt(self):
        """The first Ctrl-C: pytest stops (its running tests score nothing). A second one, or
        INTERRUPT_GRACE seconds, interrupt that too."""
        self.interrupted = True
        self.limit = threading.Timer(INTERRUPT_GRACE, signal.pthread_kill,
                                     (threading.main_thread().ident, signal.SIGINT))
        self.limit.daemon = True
        self.limit.start()


@contextlib.contextmanager
def output_to(log):
    """Sends this process's descriptors 1 and 2 (pytest's output, and its workers' and their
    children's) to the open file @p log (None: leaves them); yields a stream on the stderr they
    had (the terminal's)."""
    if log is None:
        yield sys.stderr
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        with open(saved[1], "w", closefd=False) as terminal:
            yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)


def parse_lab_names(names, labs, arch=paths.DEFAULT_ARCH):
    """Turns ['lab0', '1', 'all'] into sorted lab numbers; rejects unknown ones clearly. 'all'
    (or nothing) means every lab with tests that runs on @p arch."""
    if not names or names == ["all"]:
        return sorted(n for n in labs if os.path.exists(manifest.test_file(n)) and arch in labs[n].arches)
    chosen = set()
    for name in names:
        m = re.fullmatch(r"(?:lab)?(\d+)", name)
        if not m or int(m[1]) not in labs:
            known = ", ".join(f"lab{n}" for n in sorted(labs))
            raise PagodaError(f"unknown lab '{name}' (known: {known}, or 'all')")
        if not os.path.exists(manifest.test_file(int(m[1]))):
            raise PagodaError(f"lab{m[1]} has no grader tests yet (grade/test_lab{m[1]}.py)")
        lab = labs[int(m[1])]
        if arch not in lab.arches:
            raise PagodaError(f"lab{m[1]} does not run on {arch} yet (it runs on {', '.join(lab.arches)}: "
                              f"'arches' in {os.path.relpath(os.path.join(lab.directory, 'lab.toml'), paths.ROOT)})")
        chosen.add(int(m[1]))
    return sorted(chosen)


def run_pytest(numbers, arch, workers, kernel=None, verbose=False, extra=(), only=None, progress=None,
               first_failure=False):
    """Runs the grader (pytest, in this process) on @p numbers (only the test ids @p only, if
    given); returns {(lab, id): result dict} and pytest's status. @p progress, if given, is
    called with each test's result as the test ends and returns the line to show for it on
    stderr. With @p first_failure the tests run one at a time in lab.toml order and the grade
    stops at the first that fails. On Ctrl-C the grader is stopped and Interrupted is raised with
    the results of the tests that finished (a second Ctrl-C stops it at once)."""
    import pytest
    # pytest's output goes to this grade's own log directory. (--tb=native: the reason is the
    # grader's own text; pytest's long traceback cost ~0.4 CPU-s a failure, for the log alone)
    os.makedirs(paths.BUILD, exist_ok=True)
    run_dir, lock = logs.start_run(logs.log_root(paths.BUILD))
    log = os.path.join(run_dir, "pytest.log")
    args = ["-p", "no:cacheprovider", "-q", "-rN", "--tb=native", f"--pagoda-arch={arch}"]
    if first_failure:
        args += ["-x", "--pagoda-in-order"]
    elif str(workers) != "1":   # -j 1: no xdist at all (workers arrives as text from the command line)
        args += ["-n", str(workers)]
    if kernel:
        args += [f"--pagoda-kernel={kernel}"]
    if only:
        args += [f"--pagoda-only={','.join(only)}"]
    args += [f for n in numbers for f in manifest.test_files(n)] + list(extra)
    given, cwd = os.environ.get(logs.RUN_DIR_ENV), os.getcwd()
    os.environ[logs.RUN_DIR_ENV] = run_dir
    listener, status = Listener(progress), None
    try:
        with open(log, "w") as out, output_to(None if verbose else out) as listener.terminal:
            os.chdir(paths.GRADE)
            try:
                status = int(pytest.main(args, plugins=[listener]))
            except KeyboardInterrupt:   # a second Ctrl-C while pytest stopped
                listener.interrupted = True
    finally:
        if listener.limit:
            listener.limit.cancel()
        os.chdir(cwd)
        if given is None:
            os.environ.pop(logs.RUN_DIR_ENV, None)
        else:
            os.environ[logs.RUN_DIR_ENV] = given
        lock.close()
    results = listener.results
    if listener.interrupted:
        raise Interrupted(results)
    if status not in (0, 1) and not results:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise PagodaError(f"the grader could not run (pytest status {status}; its output: {log}):\n{tail}")
    return results, status


class Progress:
    """The line of each finished test, with the running score:
    `[ 3/12]  9/33  lab0/trap_pf  OK  1.2s`, and for a failure its first line."""

    LINE_WIDTH = 100

    def __init__(self, numbers, labs, only=None):
        self.points = {(n, t.id): t.points for n in numbers for t in labs[n].tests
                       if not only or t.id in only}
        self.possible = sum(self.points.values())
        self.name_width = max((len(f"lab{n}/{i}") for n, i in self.points), default=0)
        self.earned = 0
        self.seen = set()

    def __call__(self, r):
        key = (r["lab"], r["id"])
        if key not in self.points or key in self.seen:
            return None
        self.seen.add(key)
        passed = r["outcome"] == "passed"
        self.earned += self.points[key] if passed else 0
        total = len(self.points)
        head = (f"[{len(self.seen):>{len(str(total))}}/{total}] "
                f"{self.earned:>{len(str(self.possible))}}/{self.possible}  "
                f"{f'lab{key[0]}/{key[1]}':<{self.name_width}}  "
                f"{'OK' if passed else 'FAIL':<4} {r['duration']:5.1f}s")
        if not passed:
            why = first_line(r["reason"] or r["outcome"])
            if why and self.LINE_WIDTH - len(head) - 2 > 10:
                head += "  " + clip(why, self.LINE_WIDTH - len(head) - 2)
        return head


NOT_RUN = "not run: the grade stopped at the first failing test (--first-failure)"


def print_table(numbers, labs, results, out=sys.stdout, only=None, first_failure=False, interrupted=False):
    """Prints the score table (of the tests @p only, if given); returns (earned, possible).
    With @p first_failure a test without a result after a failed one was not run."""
    earned = possible = 0
    stopped = False
    if interrupted:
        print("Interrupted (Ctrl-C): the tests that had not finished score nothing.", file=out)
    for n in numbers:
        lab = labs[n]
        lab_earned = lab_possible = 0
        print(f"lab{n} — {lab.title}", file=out)
        for spec in lab.tests:
            if only and spec.id not in only:
                continue
            r = results.get((n, spec.id))
            possible += spec.points
            lab_possible += spec.points
            name = spec.id + (" (hidden)" if spec.hidden else "")
            if r and r["outcome"] == "passed":
                lab_earned += spec.points
                print(f"  {name}: OK ({r['duration']:.2f}s)", file=out)
                for line in outcomes.note_lines(r):
                    print(REASON_INDENT + line, file=out)
                continue
            if r is None and stopped:
                print(f"  {name}: FAIL ({NOT_RUN})", file=out)
                continue
            stopped = first_failure
            if r is None:
                reason = ("not run: the grade was interrupted first" if interrupted else
                          "no result: the grader crashed or was stopped before this test finished")
                print(f"  {name}: FAIL", file=out)
            else:
                reason = r["reason"] or r["outcome"]
                reason = "\n".join([reason] + outcomes.note_lines(r))
                print(f"  {name}: FAIL ({r['duration']:.2f}s)", file=out)
            lines = reason.splitlines()
            for line in lines[:MAX_REASON_LINES]:
                print(REASON_INDENT + line, file=out)
            if len(lines) > MAX_REASON_LINES:
                print(REASON_INDENT + f"... ({len(lines) - MAX_REASON_LINES} more lines)", file=out)
        earned += lab_earned
        if len(numbers) > 1:
            print(f"  lab{n}: {lab_earned}/{lab_possible}", file=out)
    print(f"Score: {earned}/{possible}", file=out)
    return earned, possible


def write_json(path, numbers, results, earned, possible, interrupted=False):
    """The machine-readable score: what `pagoda labs check` reads from a generated tree.
    "interrupted" is true when Ctrl-C stopped the grade (the results are those that finished)."""
    data = {"labs": numbers, "earned": earned, "possible": possible, "interrupted": interrupted,
            "results": sorted(results.values(), key=lambda r: (r["lab"], r["id"]))}
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def check_only(numbers, labs, only):
    """Rejects a --test id that none of the chosen labs declares."""
    known = {t.id for n in numbers for t in labs[n].tests}
    unknown = [t for t in only or () if t not in known]
    if unknown:
        raise PagodaError(f"no test {', '.join(unknown)} in {', '.join(f'lab{n}' for n in numbers)} "
                          f"(tests: {', '.join(sorted(known))})")


def grade(names, arch=paths.DEFAULT_ARCH, workers="auto", kernel=None, verbose=False, out=sys.stdout,
          json_out=None, junit_out=None, only=None, first_failure=False, progress=False):
    """Grades labs @p names; prints the table to @p out and, with @p progress, a line per test
    on stderr as it ends. Returns (earned, possible); Ctrl-C raises Interrupted after the table,
    --json and --junit of what finished."""
    labs = manifest.load_all()
    numbers = parse_lab_names(names, labs, arch)
    if not numbers:
        raise PagodaError(f"no lab has grader tests for {arch} yet")
    check_only(numbers, labs, only)
    if kernel is None:
        build.build_kernel(arch)
    elif symbols.FACTS_ENV not in os.environ:
        # A kernel from elsewhere: this tree's own build's facts are the grader's constants (a
        # caller whose --kernel is this tree's own build says so with an empty FACTS_ENV).
        facts = os.path.join(paths.BUILD, f"facts-{arch}.json")
        try:
            symbols.write_facts(build.build_kernel(arch), facts)
        except AssertionError as e:
            raise PagodaError(f"this tree's own kernel gives no facts to grade --kernel with: {e}")
        os.environ[symbols.FACTS_ENV] = facts
    elif any(n >= programs.FIRST_LAB for n in numbers) and not os.environ.get(programs.USER_DIR_ENV):
        build.build(arch, target=f"user_programs_{arch}")   # the grader's own, which the kernel must embed
    interrupted = None
    try:
        results, _ = run_pytest(numbers, arch, workers, kernel=kernel, verbose=verbose, only=only,
                                progress=Progress(numbers, labs, only) if progress else None,
                                first_failure=first_failure)
    except Interrupted as e:
        results, interrupted = e.results, e
    earned, possible = print_table(numbers, labs, results, out=out, only=only, first_failure=first_failure,
                                   interrupted=bool(interrupted))
    if json_out:
        write_json(json_out, numbers, results, earned, possible, interrupted=bool(interrupted))
    if junit_out:
        junit.write(junit_out, numbers, labs, results, only=only, arch=arch)
    if interrupted:
        done = sum(1 for r in results.values() if r["outcome"] in ("passed", "failed"))
        written = " and ".join(f for f in (json_out, junit_out) if f)
        info(f"interrupted: {done} test(s) had finished" + (f"; their results are in {written}" if written else ""))
        raise interrupted
    return earned, possible


def check_kernel_file(path):
    """Rejects a --kernel that is not a whole loadable ELF file (missing, not ELF, truncated),
    before any QEMU is started for it."""
    try:
        elffile.Elf(path)
    except elffile.ElfError as e:
        raise PagodaError(f"--kernel {e} (build one with ./pagoda build)")


def check_batch_flags(args):
    """Refuses flags that mean nothing in this mode (exit 2), instead of ignoring them."""
    if args.batch:
        given = [flag for dest, flag in NOT_BATCH.items() if getattr(args, dest)]
        if given:
            raise PagodaError(f"{', '.join(given)}: not with --batch (each submission's results are "
                              "in its row of --csv and in WORK/ID/results.json)")
        return
    given = [flag for dest, flag in BATCH_ONLY.items() if getattr(args, dest) not in (None, False)]
    if given:
        hint = f" (to grade lab {args.lab} here: ./pagoda grade lab{args.lab})" if args.lab is not None else ""
        raise PagodaError(f"{', '.join(given)}: only with --batch DIR{hint}")


def cmd_grade(args):
    check_batch_flags(args)
    if args.batch:
        return batch.cmd_batch(args)
    deps.ensure(deps.needed(grading_only=True, arches=[args.arch]))
    if args.kernel:
        check_kernel_file(args.kernel)
    speed.export()   # measured once here, not in every pytest worker
    try:
        kernel = os.path.abspath(args.kernel) if args.kernel else None   # pytest runs in grade/
        earned, possible = grade(args.labs, args.arch, args.jobs, kernel, args.verbose,
                                 json_out=args.json, junit_out=args.junit, only=args.test,
                                 first_failure=args.first_failure, progress=True)
    except manifest.ManifestError as e:
        raise PagodaError(f"bad lab manifest: {e}")
    return 0 if earned == possible else 1


def jobs_argument(text):
    """argparse type for -j/--jobs: 'auto' or a positive number (kept as text for pytest -n)."""
    if text == "auto" or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError("must be 'auto' or a positive number")


def add_parser(sub):
    p = sub.add_parser("grade", help="grade labs: one line per test and the score",
                       description="Builds the kernel and runs the grader on the given labs "
                                   "(default: every lab with tests): a line per test on stderr as "
                                   "it ends, with the running score, then the table on stdout. "
                                   "Exits 0 only at full marks (130 after Ctrl-C, which still "
                                   "writes --json and --junit for the tests that finished). "
                                   "Logs of each boot are kept under build/grade/.")
    p.add_argument("labs", nargs="*", metavar="LAB", help="lab0, lab1, ... or a number, or 'all'")
    p.add_argument("--arch", choices=paths.ARCHES, default=paths.DEFAULT_ARCH)
    p.add_argument("-j", "--jobs", type=jobs_argument, default="auto",
                   help="parallel QEMU boots: a number or 'auto' (one per core; the default)")
    p.add_argument("--kernel", metavar="ELF",
                   help="grade this kernel ELF instead of this tree's own (which is still built: its facts are the "
                        "constants the kernel must export; labs 3 and up: it must embed the user programs of this "
                        "tree's user/; docs/grader.md)")
    p.add_argument("-v", "--verbose", action="store_true", help="show pytest's own output")
    p.add_argument("--json", metavar="FILE",
                   help="also write the results as JSON: {labs, earned, possible, results: "
                        "[{lab, id, outcome, duration, reason}]}")
    p.add_argument("--junit", metavar="FILE",
                   help="also write JUnit XML: one testcase per test, points as properties")
    p.add_argument("--test", action="append", metavar="ID",
                   help="grade only this test (repeatable); the score counts only these")
    p.add_argument("-x", "--first-failure", action="store_true",
                   help="run the tests one at a time in lab.toml order and stop at the first that "
                        "fails (the rest score 0, marked 'not run'): the quickest answer to 'what "
                        "is the first thing wrong'")
    b = p.add_argument_group("batch grading (instructors; see docs/instructors.md): these need --batch")
    b.add_argument("--batch", metavar="DIR",
                   help="grade every submission in DIR (directories, git repositories, git "
                        "bundles), each in its own copy with this tree's grader; needs --lab and --csv")
    b.add_argument("--lab", type=int, metavar="N", help="with --batch: the lab to grade")
    b.add_argument("--csv", metavar="FILE", help="with --batch: one row per submission")
    b.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="with --batch: wall-clock limit for grading one submission (default: the "
                        "lab's test timeouts added up, plus 30 s, scaled as the build's)")
    b.add_argument("--build-time-limit", type=float, metavar="SECONDS",
                   help="with --batch: wall-clock limit for building one submission (default 300 s, "
                        "times the load -j puts on the cores and the machine's measured speed factor)")
    b.add_argument("--ref", metavar="REF",
                   help="with --batch: what to grade in a git submission (default: its branch labN "
                        "if it has one, else HEAD)")
    b.add_argument("--work", metavar="DIR",
                   help="with --batch: where the copies and logs go (default build/batch)")
    b.add_argument("--keep", action="store_true",
                   help="with --batch: keep each copy's build outputs (default: only the logs)")
    p.set_defaults(func=cmd_grade)
