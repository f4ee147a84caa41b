"""`pagoda test`: everything that must pass before a change lands.

Steps (each prints one result line):
  host     host unit tests of the arch-independent kernel code: each GoogleTest binary run
           once (not once per test, as ctest would), the other ctest tests through ctest
  tools    pytest suites of the tools (GDB walker core, grader harness, ./pagoda itself), on every
           CPU, a test file on one worker (xdist's loadscope), so a module's shared fixture (a
           boot, a GDB session, a graded batch) is set up once; each test's CPU time, its
           children's included, is listed in build/tools-tests.log (pagoda_core/pytest_cpu.py);
           a case parametrized over the ISAs runs on one ISA (half on each, the commit choosing
           which; pytest_cpu.py), or with --full on each; without --ci or --full, the modules
           marked end_to_end (whole trees built or graded: the batch, the autograders, the hostile
           kernels, fault-why's agreement, a student's lab start) are left out
  grade    the grader on every implemented lab, on each ISA it runs on (lab.toml's arches),
           which must score full marks
  handouts ./pagoda labs tables: every handout's test table is the one its lab.toml gives
  docs     ./pagoda docs --check: Doxygen builds the documentation without a warning about a
           documented header or a page
  labs     ./pagoda labs check: every published lab builds, passes the labs before it and
           fails its own tests on the skeleton, and the reference's regions handed in as that
           lab's submission build and score full marks (in parallel; main's own grade is the
           grade step's, not done again); without --ci or --full, each tree built on each ISA
           and graded on one, on its own lab's tests alone (--own-only), and the reference as a
           submission built on that ISA, not graded (--one-isa); with --ci, every earlier lab on
           one ISA per tree and only the last on the other (--earlier-once), the reference graded
           on each (but where the next lab's tree passed it on the same kernel, programs and
           grader in the same run: labcheck.py)
  mutants  ./pagoda labs mutants: every known slip of every lab (labs/NN-name/mutants/) is
           caught by the grader, and the first failing test's first lines name its cause: one
           in four of each lab's slips (--share 4), each on one ISA (--one-isa: half of each
           lab's on each; the commit choosing which) and on the test its file names alone
           (--slip-test-only); with --ci every slip on every ISA it applies to, the lab's tests
           in order up to the first that fails on one of them (the commit choosing which) and its
           own test alone on the other (--in-order-once); with --full in order on every ISA

Three levels: without a flag, a sample for a developer's machine; --ci, what .ci/run runs (every
slip and every lab's reference on both ISAs; what it leaves out of --full, it rotates by commit,
so two commits cover what one --full run does); --full, everything on every ISA.

Two steps run at a time, each in a process of its own: one alone leaves a core idle while it
waits (QEMU boots one after another, Doxygen on one core, a build's serial link, a pool's last
test), and the machine's cores are the run's real budget. A step that uses what another proves
starts after it (labs after grade; mutants after labs, whose trees and object cache it reuses);
the longest chain of them (grade, labs, mutants) is started first, the other steps fill the
second place (STEPS, STEPS_AT_ONCE). Each step's output is shown, with its result line, when it
ends; the lines come in the order the steps end.

First the speed factor is measured and exported (PAGODA_SPEED_FACTOR, tools/pagoda_core/speed.py):
every time limit under it is scaled to this machine, so a slow or busy machine makes the run
longer, never red. Each step's line gives its wall time and the CPU time it used (its process's
and every process under it that ended: the machine-independent measure of its cost).
"""
import argparse
import json
import os
import re
import subprocess
import threading
import time

from . import deps, docs, grade, handouts, labs
from pagoda_core import build, paths, speed
from pagoda_core.ui import PagodaError, info

TOOL_TEST_DIRS = ("tools/gdb/tests", "tools/tests", "grade/harness_tests")


_CTEST_RESULT = re.compile(r"^\s*\d+/\d+ Test\s+#\d+: (\S+) \.*\s*(\*\*\*)?(\w[\w ]*?)\s+[0-9.]+ sec")
_CTEST_BOUNDARY = re.compile(r"^\s+Start\s+\d+: |^\s*\d+/\d+ Test\s+#|^\d+% tests passed")
# GoogleTest's frame around a test's output: not what went wrong.
_GTEST_CHROME = re.compile(r"^(\[[ =-]{10}\]|\[ RUN      \]|\[  PASSED  \]|\[  FAILED  \]|Running main\(\)|"
                           r"Note: Google Test filter|\s*\d+ FAILED TESTS?$)")
HOST_TEST_BINARY = os.path.join("build", "host", "kernel", "tests", "kernel_host_tests")


def host_failures(ctest_output):
    """{test name: its output lines without GoogleTest's frame} for each failed test in the
    output of ctest --output-on-failure (the host preset turns that on)."""
    failures, current = {}, None
    for line in ctest_output.splitlines():
        m = _CTEST_RESULT.match(line)
        if m:
            current = m[1] if m[3] != "Passed" else None
            if current:
                failures[current] = []
            continue
        if _CTEST_BOUNDARY.match(line):
            current = None
            continue
        if current and line.strip() and not _GTEST_CHROME.match(line):
            failures[current].append(line)
    return failures


def describe_host_failures(failures, binaries=None):
    """What to print for failed host tests: each one's assertion text and how to rerun it
    (@p binaries: test name -> the GoogleTest binary it is in, relative to the tree)."""
    out = []
    for name, lines in failures.items():
        out.append(f"host test {name} FAILED:")
        out += ["  " + l for l in lines[-60:]] or ["  (no output)"]
        if "." in name and not name.startswith("format_compile_fail"):
            out.append(f"  rerun it: {(binaries or {}).get(name, HOST_TEST_BINARY)} --gtest_filter={name}")
    return out


def gtest_failures(report):
    """(number of tests, {test name: its failure messages' lines}) of a GoogleTest JSON report
    (--gtest_output=json)."""
    failures, count = {}, 0
    for suite in report.get("testsuites", []):
        for case in suite.get("testsuite", []):
            count += 1
            if case.get("failures"):
                failures[f"{suite['name']}.{case['name']}"] = [
                    line for f in case["failures"] for line in f.get("failure", "").splitlines() if line.strip()]
    return count, failures


def _host_tests(wanted):
    """What ctest would run in build/host, from its own list, of the labs @p wanted(lab) accepts:
    {GoogleTest binary: (the arguments its tests are run with, less the filter; GoogleTest's names
    of its tests)}, the names of the other tests, and {lab: count} of the tests left out (a
    test's lab: its label labN, kernel/tests/CMakeLists.txt; else 0)."""
    out = subprocess.run(["ctest", "--preset", "host", "--show-only=json-v1"], cwd=paths.ROOT,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise PagodaError(f"ctest cannot list the host tests: {out.stderr.strip()[-2000:]}")
    binaries, others, left_out = {}, [], {}
    for t in json.loads(out.stdout).get("tests", []):
        labels = [l for p in t.get("properties", []) if p.get("name") == "LABELS" for l in p["value"]]
        lab, command = next((int(l[3:]) for l in labels if re.fullmatch(r"lab\d+", l)), 0), t.get("command") or []
        test = [a.split("=", 1)[1] for a in command if a.startswith("--gtest_filter=")]
        if not wanted(lab):
            left_out[lab] = left_out.get(lab, 0) + 1
        elif test:
            binaries.setdefault(command[0], ([a for a in command[1:] if not a.startswith("--gtest_filter=")], []))
            binaries[command[0]][1].extend(test)
        else:
            others.append(t["name"])
    return binaries, others, left_out


# `./pagoda test --lab N`: the host step runs lab N's host tests alone (None: every lab up to the
# tree's, all of them on main).
HOST_LAB = None


def _host_labs():
    """(which labs' host tests run: a test's lab -> bool, what to say of those left out: {lab:
    count} -> str)."""
    from pagoda_grade import todo
    if HOST_LAB is not None:
        return (lambda k: k == HOST_LAB), lambda out: f"{sum(out.values())} tests of other labs not run (--lab {HOST_LAB})"
    lab = todo.current_lab(paths.ROOT)
    return (lambda k: lab is None or k <= lab), lambda out: (
        f"{sum(out.values())} tests of lab{'s' * (len(out) > 1)} {', '.join(map(str, sorted(out)))} skipped: their "
        f"code is a skeleton on this branch of lab {lab} (./pagoda test --only host --lab {lab + 1} runs lab {lab + 1}'s)")


def step_host(verbose):
    """Each GoogleTest binary runs once, whole (ctest would start it once per test: five times
    the CPU), at the same time as ctest runs the tests that are not GoogleTest's."""
    build.build("host")
    wanted, say_left_out = _host_labs()
    binaries, others, left_out = _host_tests(wanted)
    expected = sum(len(names) for _, names in binaries.values())
    log_dir = os.path.join(paths.BUILD, "host-tests")
    os.makedirs(log_dir, exist_ok=True)
    running = []
    for binary, (extra, names) in binaries.items():
        base = os.path.join(log_dir, os.path.basename(binary))
        if os.path.exists(base + ".json"):
            os.unlink(base + ".json")
        output = open(base + ".log", "w")
        only = [f"--gtest_filter={':'.join(names)}"] if left_out else []
        running.append((binary, base, output, subprocess.Popen(
            [binary, *extra, *only, f"--gtest_output=json:{base}.json"], cwd=os.path.dirname(binary),
            stdout=output, stderr=subprocess.STDOUT)))
    ctest = None
    if others:
        pattern = "^(" + "|".join(re.escape(n) for n in others) + ")$"
        ctest = subprocess.run(["ctest", "--preset", "host", "-j", str(os.cpu_count() or 1), "-R", pattern],
                               cwd=paths.ROOT, capture_output=True, text=True)
    failures, where, ran, problems = {}, {}, 0, []
    for binary, base, output, proc in running:
        status = proc.wait()
        output.close()
        rel = os.path.relpath(binary, paths.ROOT)
        try:
            with open(base + ".json") as f:
                count, failed = gtest_failures(json.load(f))
        except (OSError, ValueError):
            with open(base + ".log", errors="replace") as f:
                tail = f.read().splitlines()[-40:]
            failures[f"{rel} (ended with status {status} before writing its report)"] = tail
            continue
        ran += count
        failures.update(failed)
        where.update((name, rel) for name in failed)
        if status != 0 and not failed:
            problems.append(f"{rel} exited with status {status} though no test failed (see {base}.log)")
    if ctest is not None:
        with open(os.path.join(log_dir, "ctest.log"), "w") as f:
            f.write(ctest.stdout + ctest.stderr)
        summary = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", ctest.stdout)
        if summary is None:
            problems.append("ctest printed no summary: " + (ctest.stdout + ctest.stderr)[-2000:])
        else:
            ran += int(summary[3])
        failures.update(host_failures(ctest.stdout))
    if ran - len(others) != expected and not any("before writing" in n for n in failures):
        problems.append(f"GoogleTest ran {ran - len(others)} tests where ctest lists {expected}")
    if verbose:
        for _, base, _, _ in running:
            with open(base + ".log", errors="replace") as f:
                print(f.read())
        if ctest is not None:
            print(ctest.stdout + ctest.stderr)
    if failures or problems:
        print("\n".join(describe_host_failures(failures, where) + problems))
        print(f"(every binary's output: {os.path.relpath(log_dir, paths.ROOT)}/)")
    detail = (f"{ran} tests ({ran - len(others)} GoogleTest, in {len(binaries)} runs; {len(others)} ctest), "
              f"{len(failures)} failed")
    if left_out:
        detail += "; " + say_left_out(left_out)
    return not failures and not problems and ran > 0, detail


def step_tools(verbose):
    dirs = [d for d in TOOL_TEST_DIRS if os.path.isdir(os.path.join(paths.ROOT, d))]
    # (without --full, each case parametrized over the ISAs on one of them: pagoda_core/pytest_cpu.py)
    env = {k: v for k, v in os.environ.items() if k != "PAGODA_ONE_ISA"}
    if LEVEL != "full":
        env["PAGODA_ONE_ISA"] = labs.head_commit()
        # (the ISA pick may leave out every case that boots the fixture kernel: it is compiled
        # here whatever the pick, as a kernel change must keep it compiling)
        build.build_kernel("x86_64", fixtures=True)
    # (the sample leaves the end-to-end modules to CI: they are four fifths of the step's CPU time)
    sample = ["-m", f"not {paths.END_TO_END_MARK}"] if LEVEL == "sample" else []
    out = subprocess.run([paths.SYSTEM_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "auto", "--dist",
                          "loadscope", "--durations=60", *sample, *dirs], cwd=paths.ROOT, env=env, capture_output=True,
                         text=True)
    log = os.path.join(paths.BUILD, "tools-tests.log")
    with open(log, "w") as f:
        f.write(out.stdout + out.stderr)
    last = [l for l in out.stdout.splitlines() if l.strip()][-1:] or ["no pytest output"]
    if verbose or out.returncode != 0:
        print(out.stdout[-20000:] + out.stderr[-5000:])
        print(f"(pytest's whole output, the slowest tests and the dearest in CPU time included: "
              f"{os.path.relpath(log, paths.ROOT)})")
    left = re.search(r"(\d+) deselected", last[0])
    sample = "" if LEVEL == "full" else (f"; ONE ISA PER CASE (seed {env['PAGODA_ONE_ISA'] or 'none'}): "
                                         f"{left[1] if left else 0} ISA cases left to --full"
                                         + ("; NO END-TO-END MODULE (their tests are not counted here): left to "
                                            "--ci" if LEVEL == "sample" else ""))
    return out.returncode == 0, f"{', '.join(dirs)}: {last[0].strip('= ')}{sample}"


# What earlier steps of this run proved, for later ones to reuse ("grade": main scores full
# marks on every ISA).
PROVED = set()


def step_grade(verbose):
    ok, scores = True, []
    for arch in paths.ARCHES:
        earned, possible = grade.grade(["all"], arch=arch, verbose=verbose)
        ok = ok and earned == possible and possible > 0
        scores.append(f"{arch} {earned}/{possible}")
    if ok:
        PROVED.add("grade")
    return ok, "score " + ", ".join(scores)


def step_handouts(verbose):
    problems = handouts.stale(paths.ROOT)
    for rel, _, _, message in problems:
        print(message)
    if problems:
        print("regenerate them with ./pagoda labs tables --write (./pagoda labs tables shows the diff)")
    count = len(handouts.publish.load_labs(paths.ROOT))
    return not problems, f"{count} handout(s), {len(problems)} with a stale test table"


def step_docs(verbose):
    report = docs.generate()
    if verbose or report.failing:
        docs.print_warnings(report)
    return not report.failing, docs.summary(report)


# Labs checked at once: a lab's grading waits on QEMU while another lab builds. Each lab's grade
# runs its tests one at a time (-j 1): the labs side by side keep the cores busy, and pytest-xdist's
# workers in every grade would only add interpreters (a lab-3 tree's labs 0-3: 6.1 CPU-s with
# -j auto, 4.7 with -j 1).
LABS_PARALLEL = 3


def run_pagoda(verbose, *words):
    """./pagoda @p words as a step: (it exited 0, its last line); its output shown when @p verbose
    or it failed."""
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), *words], cwd=paths.ROOT,
                         capture_output=True, text=True)
    if verbose or out.returncode != 0:
        print(out.stdout[-20000:] + out.stderr[-5000:])
    last = [l for l in out.stdout.splitlines() if l.strip()][-1:] or ["no output"]
    return out.returncode == 0, last[0]


def step_labs(verbose):
    # (--skip-main: main's full marks on every ISA, proved by the grade step)
    return run_pagoda(verbose, "labs", "check", "--parallel", str(LABS_PARALLEL), "-j", "1",
                      *(["--skip-main"] if "grade" in PROVED else []),
                      *LEVEL_WORDS[LEVEL]["labs"])


# How much of the checks this run makes: "sample" (no flag), "ci" (--ci: .ci/run) or "full"
# (--full); the labs and mutants steps' words for each (the tools step: one ISA per case
# unless "full").
LEVEL = "sample"
LEVEL_WORDS = {"sample": {"labs": ["--own-only", "--one-isa"],
                          "mutants": ["--share", "4", "--one-isa", "--slip-test-only"]},
               "ci": {"labs": ["--earlier-once"], "mutants": ["--in-order-once"]},
               "full": {"labs": [], "mutants": []}}


def step_mutants(verbose):
    return run_pagoda(verbose, "labs", "mutants", *LEVEL_WORDS[LEVEL]["mutants"])


# The steps: (name, function(verbose) -> (ok, detail), the steps it must start after: those whose
# result it uses). A step is added here and nowhere else (--only's choices, the help and the
# order they start in come from this table: the first ready step in it starts next).
STEPS = (("grade", step_grade, ()), ("labs", step_labs, ("grade",)), ("mutants", step_mutants, ("labs",)),
         ("host", step_host, ()), ("tools", step_tools, ()), ("handouts", step_handouts, ()),
         ("docs", step_docs, ()))
# Steps running at once: each of them keeps about one core busy on its own, and more at once only
# share the same cores (a longer run for each, and more load for their time limits to scale by).
STEPS_AT_ONCE = 2
STEP_DIR = os.path.join("build", "test-steps")     # each step's output and result


def _load():
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _level(args):
    return "full" if args.full else "ci" if args.ci else "sample"


def cmd_step(args):
    """One step, in the process `./pagoda test` started for it (--step): runs it and writes its
    (ok, detail) to --result as JSON."""
    global LEVEL, HOST_LAB
    LEVEL, HOST_LAB = _level(args), args.lab
    PROVED.clear()
    PROVED.update(p for p in (args.proved or "").split(",") if p)
    function = dict((n, f) for n, f, _ in STEPS)[args.step]
    try:
        ok, detail = function(args.verbose)
    except PagodaError as e:    # a failed step
        ok, detail = False, str(e)
    with open(args.result, "w") as f:
        json.dump({"ok": bool(ok), "detail": detail}, f)
    return 0 if ok else 1


class StepRun:
    """A step running in its own process (`./pagoda test --step NAME`): its output goes to
    build/test-steps/NAME.out (shown when it ends), its progress lines to our stderr; wait()
    reaps it with wait4, whose resource usage is the step's CPU time (every process under it
    that ended included)."""

    def __init__(self, name, verbose, proved, done):
        os.makedirs(os.path.join(paths.ROOT, STEP_DIR), exist_ok=True)
        base = os.path.join(paths.ROOT, STEP_DIR, name)
        self.name, self.out, self.result = name, base + ".out", base + ".json"
        if os.path.exists(self.result):
            os.unlink(self.result)
        argv = [paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), "test", "--step", name,
                "--result", self.result, "--proved", ",".join(sorted(proved))] + (["-v"] if verbose else []) \
            + ({"sample": [], "ci": ["--ci"], "full": ["--full"]}[LEVEL]) + (["--lab", str(HOST_LAB)] if HOST_LAB is not None else [])
        from pagoda_core.qemu import die_with_parent
        self.start = time.monotonic()
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(argv, cwd=paths.ROOT, stdout=out, stderr=None, stdin=subprocess.DEVNULL,
                                         preexec_fn=die_with_parent)
        self.ok, self.detail, self.seconds, self.cpu = False, "", 0.0, 0.0
        self.thread = threading.Thread(target=self._wait, args=(done,), daemon=True)
        self.thread.start()

    def _wait(self, done):
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.cpu = usage.ru_utime + usage.ru_stime
            self.seconds = time.monotonic() - self.start
            with open(self.result) as f:
                result = json.load(f)
            self.ok, self.detail = bool(result["ok"]) and self.proc.returncode == 0, result["detail"]
        except (OSError, ValueError, KeyError):
            self.ok, self.detail = False, (f"the step's process ended with status {self.proc.returncode} "
                                           f"before its result (its output: {os.path.relpath(self.out, paths.ROOT)})")
        finally:
            done.put(self)      # (always: the run waits for every step it started)

    def output(self):
        try:
            with open(self.out, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def cmd_test(args):
    if args.step:
        return cmd_step(args)
    global LEVEL, HOST_LAB
    LEVEL, HOST_LAB = _level(args), args.lab
    deps.ensure(deps.REQUIREMENTS)
    os.environ[deps.TESTS_ENV] = "1"   # (the tests' own tools are here: their tests must not skip)
    PROVED.clear()
    factor = speed.export()
    info(f"test: speed factor {factor:.2f} (time limits scaled by it; load average {_load()} on "
         f"{os.cpu_count()} CPUs)")
    if LEVEL == "sample":
        info("test: a sample, not CI's run: the mutants step grades ONE IN FOUR of each lab's slips, each on ONE "
             "ISA (half on each, chosen by the commit) and on the test its file names alone; the tools step runs "
             "each case parametrized over the ISAs on one and leaves its end-to-end modules out; labs check grades "
             "each lab's skeleton on one ISA (built on both) on its own lab's tests alone, and builds each lab's "
             "reference as a submission on that ISA without grading it; "
             "./pagoda test --ci (CI) grades every slip on each ISA, ./pagoda test --full all of it")
    elif LEVEL == "ci":
        info("test: CI's run: every slip on each ISA (in lab.toml order on one, chosen by the commit, its own test "
             "alone on the other), each tool case parametrized over the ISAs on one, every earlier lab in each "
             "lab's tree on one ISA; ./pagoda test --full does all of it on each")
    import queue
    chosen = [(n, f, [a for a in after if not args.only or a in args.only])
              for n, f, after in STEPS if not args.only or n in args.only]
    waiting, running, ended = list(chosen), {}, set()
    done = queue.Queue()
    passed = failed = 0
    run_start, run_cpu = time.monotonic(), speed.cpu_seconds()
    while waiting or running:
        for step in [s for s in waiting if all(a in ended for a in s[2])]:
            if len(running) >= STEPS_AT_ONCE:
                break
            waiting.remove(step)
            info(f"test: {step[0]} ... (load average {_load()})")
            running[step[0]] = StepRun(step[0], args.verbose, PROVED, done)
        run = done.get()
        run.thread.join()
        del running[run.name]
        ended.add(run.name)
        if run.ok and run.name == "grade":
            PROVED.add("grade")
        text = run.output()
        if text.strip():
            print(text.rstrip("\n"))
        mark = "ok" if run.ok else "FAILED"
        print(f"pagoda test: {run.name}: {mark} ({run.detail}; {run.seconds:.1f}s, CPU {run.cpu:.0f}s)", flush=True)
        passed, failed = passed + run.ok, failed + (not run.ok)
    info(f"test: {time.monotonic() - run_start:.0f}s, CPU {speed.cpu_seconds() - run_cpu:.0f}s; load average "
         f"now {_load()}")
    print(f"{passed} passed, {failed} failed" + {
        "sample": " (a sample of slips and earlier labs: ./pagoda test --full for all)",
        "ci": " (CI's run: ./pagoda test --full for every check on each ISA)", "full": ""}[LEVEL])
    return 0 if failed == 0 else 1


def add_parser(sub):
    p = sub.add_parser("test", help="host unit tests, tool tests and the grader on every lab",
                       description=__doc__.split("\n", 1)[1] if __doc__ else None,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=[n for n, _, _ in STEPS], metavar="STEP",
                   help="run only these steps: " + ", ".join(n for n, _, _ in STEPS))
    p.add_argument("-v", "--verbose", action="store_true", help="show each step's full output")
    level = p.add_mutually_exclusive_group()
    level.add_argument("--ci", action="store_true",
                       help="what CI (.ci/run) runs: every slip on every ISA it applies to, what --full adds "
                            "besides rotated by commit (see above); without it or --full, each slip on one ISA")
    level.add_argument("--full", action="store_true",
                       help="every check on every ISA: every slip in lab.toml order on each, every tool case "
                            "on each, every earlier lab in each lab's tree on each")
    p.add_argument("--lab", type=int, metavar="N",
                   help="the host step runs lab N's host tests alone (default: those of every lab up to the "
                        "branch's, .pagoda-lab; on main all)")
    # (how ./pagoda test runs each step in a process of its own: not for the command line)
    p.add_argument("--step", choices=[n for n, _, _ in STEPS], help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--proved", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_test)
