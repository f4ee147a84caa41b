"""`pagoda test`: everything that must pass before a change lands.

Steps, in order (each prints one result line):
  host     host unit tests of the arch-independent kernel code (GoogleTest through ctest)
  tools    pytest suites of the tools (GDB walker core, grader harness, ./pagoda itself)
  grade    the grader on every implemented lab, on each ISA it runs on (lab.toml's arches),
           which must score full marks
  handouts ./pagoda labs tables: every handout's test table is the one its lab.toml gives
  docs     ./pagoda docs --check: Doxygen builds the documentation without a warning about a
           documented header or a page
  labs     ./pagoda labs check: every published lab builds, passes the labs before it and
           fails its own tests on the skeleton
  mutants  ./pagoda labs mutants: every known slip of every lab (labs/NN-name/mutants/) is
           caught by the grader, and the first failing test's first lines name its cause
"""
import os
import re
import subprocess
import sys
import time

from . import build, deps, docs, grade, handouts, paths
from .ui import PagodaError, info

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


def describe_host_failures(failures):
    """What to print for failed host tests: each one's assertion text and how to rerun it."""
    out = []
    for name, lines in failures.items():
        out.append(f"host test {name} FAILED:")
        out += ["  " + l for l in lines[-60:]] or ["  (no output)"]
        if "." in name and not name.startswith("format_compile_fail"):
            out.append(f"  rerun it: {HOST_TEST_BINARY} --gtest_filter={name}")
    return out


def step_host(verbose):
    build.build("host")
    out = subprocess.run(["ctest", "--preset", "host", "-j", str(os.cpu_count() or 1)],
                         cwd=paths.ROOT, capture_output=True, text=True)
    summary = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", out.stdout)
    log = os.path.join(paths.BUILD, "host-tests.log")
    with open(log, "w") as f:
        f.write(out.stdout + out.stderr)
    if verbose:
        print(out.stdout + out.stderr)
    elif out.returncode != 0:
        failures = host_failures(out.stdout)
        print("\n".join(describe_host_failures(failures)) if failures else out.stdout + out.stderr)
        print(f"(ctest's whole output: {os.path.relpath(log, paths.ROOT)})")
    detail = f"{summary[3]} ctest tests, {summary[2]} failed" if summary else "no ctest summary"
    return out.returncode == 0 and summary is not None and int(summary[3]) > 0, detail


def step_tools(verbose):
    dirs = [d for d in TOOL_TEST_DIRS if os.path.isdir(os.path.join(paths.ROOT, d))]
    out = subprocess.run([paths.SYSTEM_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-n", "auto", *dirs], cwd=paths.ROOT, capture_output=True, text=True)
    last = [l for l in out.stdout.splitlines() if l.strip()][-1:] or ["no pytest output"]
    if verbose or out.returncode != 0:
        print(out.stdout[-20000:] + out.stderr[-5000:])
    return out.returncode == 0, f"{', '.join(dirs)}: {last[0].strip('= ')}"


def step_grade(verbose):
    ok, scores = True, []
    for arch in paths.ARCHES:
        earned, possible = grade.grade(["all"], arch=arch, verbose=verbose)
        ok = ok and earned == possible and possible > 0
        scores.append(f"{arch} {earned}/{possible}")
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


def step_labs(verbose):
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), "labs", "check"],
                         cwd=paths.ROOT, capture_output=True, text=True)
    if verbose or out.returncode != 0:
        print(out.stdout[-20000:] + out.stderr[-5000:])
    last = [l for l in out.stdout.splitlines() if l.strip()][-1:] or ["no output"]
    return out.returncode == 0, last[0]


def step_mutants(verbose):
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), "labs", "mutants"],
                         cwd=paths.ROOT, capture_output=True, text=True)
    if verbose or out.returncode != 0:
        print(out.stdout[-20000:] + out.stderr[-5000:])
    last = [l for l in out.stdout.splitlines() if l.strip()][-1:] or ["no output"]
    return out.returncode == 0, last[0]


STEPS = (("host", step_host), ("tools", step_tools), ("grade", step_grade),
         ("handouts", step_handouts), ("docs", step_docs), ("labs", step_labs),
         ("mutants", step_mutants))


def cmd_test(args):
    deps.ensure()
    chosen = [(n, f) for n, f in STEPS if not args.only or n in args.only]
    passed = failed = 0
    for name, step in chosen:
        start = time.monotonic()
        info(f"test: {name} ...")
        try:
            ok, detail = step(args.verbose)
        except PagodaError as e:
            ok, detail = False, str(e)
        mark = "ok" if ok else "FAILED"
        print(f"pagoda test: {name}: {mark} ({detail}; {time.monotonic() - start:.1f}s)", flush=True)
        passed, failed = passed + ok, failed + (not ok)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def add_parser(sub):
    p = sub.add_parser("test", help="host unit tests, tool tests and the grader on every lab",
                       description=__doc__.split("\n", 1)[1] if __doc__ else None,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=[n for n, _ in STEPS], metavar="STEP",
                   help="run only these steps: " + ", ".join(n for n, _ in STEPS))
    p.add_argument("-v", "--verbose", action="store_true", help="show each step's full output")
    p.set_defaults(func=cmd_test)
