"""Batch grading end to end: a class of submissions made from this tree, graded with -j 2.

The instructor's tree is a copy of this one with a hidden lab-0 test added, lab 0's test
timeouts shortened (so that the submission that hangs costs seconds, not minutes), and two more
lab-0 regions, empty in the skeleton: one at the top of kmain() and one in the top-level
CMakeLists.txt (a region in a build file runs the student's CMake code at build time, inside
the sandbox). The submissions are its published lab-0 tree with small patches, in every format a
batch accepts:

  adversary directory    the skeleton, and a build that attacks the grader: its CMake region
                         writes a pytest plugin and usercustomize.py into the grader's user site,
                         files into the grader's folders, HOME, /tmp and /etc, and leaves a
                         process running; its top-level CMakeLists.txt (outside the regions)
                         runs a command too. It must score what the skeleton scores, and every
                         later submission what it would alone; nothing of it may be left.
  alice  git bundle      the lab-0 reference solution: full marks, hidden test included
  bob    git repository  the skeleton as published (an uncommitted edit that would not build
                         must be ignored: the commit is graded)
  carol  directory       full solution plus a line that does not compile
  dave   directory       full solution, but kmain() never returns: hangs
  erin   git repository  the skeleton, with the grader's tests rewritten to pass and their
                         points raised, a user program edited and one added: graded with the
                         instructor's files instead, the changes named
  frank  directory       full solution, but kmain() prints without end: floods the console
  notes.txt              not a submission at all

Every CSV row is checked: status, points per test, total, summary. The batch itself runs with
a poisoned Python environment for the grader: a user site (HOME) holding a usercustomize.py
and a pytest plugin that passes every test, PYTEST_PLUGINS and PYTHONPATH naming it. The grader
starts isolated and never loads them.
"""
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import textwrap
import time

import pytest

from labtree import run_git, write
from pagoda import batch, publish
from pagoda_core import paths

from pagoda_grade import manifest
from pagoda_core.speed import scaled  # (limits for this machine: speed.py)

# Whole trees built or graded end to end: CI's level (./pagoda test --ci), not the sample's.
pytestmark = pytest.mark.end_to_end

TIMEOUT = 16         # seconds per lab-0 test in the instructor's copy
TIME_LIMIT = 36      # for grading one submission: 2 tests that hang, and part of a 3rd (the limit gives
                    # back CPU waits over the whole grade, more than a test's own timeout does, so
                    # under load more tests fit: at TIMEOUT 8 all 6 did once, in CI)

HIDDEN_TEST = textwrap.dedent('''\
    """Instructor-only: two boots, two #PF at two addresses the grader picked, each in QEMU's log."""
    from pagoda_grade import lab_test
    from pagoda_grade.witness import expect_fault, pick_page


    @lab_test(0, "pf_each_boot")
    def test_pf_each_boot(boot, kernel):
        seen = set()
        for i in range(2):
            token = boot.fresh_token()
            address = pick_page(token, f"pf_each_boot {i}", [(0x0000_5000_0000_0000, 0x0000_5001_0000_0000)])[0]
            run = boot(test="pf", token=token, args={"addr": address})
            cr2 = int(run.expect(r"^\\s+CR2 (0x[0-9a-f]+)", "the CR2 line")[1], 16)
            if cr2 != address:
                run.fail(f"CR2 {cr2:#x}, expected {address:#x}")
            expect_fault(run, vector=14, address=address, what=f"the write to {address:#x}", kernel=kernel)
            seen.add(cr2)
        assert len(seen) == 2, "two boots faulted at the same address"
    ''')
HIDDEN_ENTRY = ('\n[[tests]]\nid = "pf_each_boot"\npoints = 5\ntimeout = 8\nhidden = true\n'
                'checks = "two boots, two #PF, each at its own address, in the exception log"\n')
KMAIN = "kernel/main/kmain.cpp"
KMAIN_OPEN = re.compile(r"void kmain\([^)]*\)\s*\{\n")
KMAIN_REGION = "  // LAB 0 BEGIN the test's own region: code at the top of kmain()\n  // LAB 0 SKELETON\n  // LAB 0 END\n"
CMAKE_REGION = "# LAB 0 BEGIN the test's own region: a build step\n# LAB 0 SKELETON\n# LAB 0 END\n"
# A pytest plugin that passes every test, and what plants it: what a hostile build would leave
# in the grader's user site.
EVIL_PLUGIN = textwrap.dedent('''\
    import pytest
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        report.outcome = "passed"
    ''')


def poisoned_home(base):
    """A HOME whose user site loads EVIL_PLUGIN into every pytest (usercustomize.py and a pytest11
    entry point), and the environment that names it too."""
    import site
    home = os.path.join(base, "home")
    user_site = site.getusersitepackages().replace(os.path.expanduser("~"), home, 1)
    write(user_site, "pagoda_evil.py", EVIL_PLUGIN)
    write(user_site, "usercustomize.py", "import os\nos.environ['PYTEST_PLUGINS'] = 'pagoda_evil'\n")
    write(user_site, "pagoda_evil-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: pagoda-evil\nVersion: 1.0\n")
    write(user_site, "pagoda_evil-1.0.dist-info/entry_points.txt", "[pytest11]\nevil = pagoda_evil\n")
    env = dict(os.environ, HOME=home, PYTEST_PLUGINS="pagoda_evil", PYTHONPATH=user_site)
    return home, user_site, env


def hostile_cmake(token, targets):
    """CMake code that attacks the grader from the build: writes each of @p targets (files of the
    grader's machine), and starts a process that outlives the build (its command line holds
    @p token)."""
    script = "".join(f"mkdir -p {os.path.dirname(t)} 2>/dev/null; echo pwned > {t} 2>/dev/null; " for t in targets)
    daemon = f"setsid sh -c 'while true; do sleep 5; done' {token} </dev/null >/dev/null 2>&1 &"
    return f'execute_process(COMMAND sh -c "{script}{daemon} true")\n'


def instructor_tree(base):
    """A copy of this tree (its files as git lists them) with a hidden test, short timeouts and
    two empty lab-0 regions (KMAIN_REGION, CMAKE_REGION)."""
    root = os.path.join(base, "instructor")
    for rel in publish.source_files(paths.ROOT):
        src, dest = os.path.join(paths.ROOT, rel), os.path.join(root, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(src, dest, follow_symlinks=False)
    toml = os.path.join(root, "labs/00-boot/lab.toml")
    with open(toml) as f:
        text = re.sub(r"(?m)^timeout = \d+", f"timeout = {TIMEOUT}", f.read())
    write(root, "labs/00-boot/lab.toml", text + HIDDEN_ENTRY)
    write(root, "grade/hidden/test_lab0_pf_each_boot.py", HIDDEN_TEST)
    with open(os.path.join(root, KMAIN)) as f:
        text = f.read()
    m = KMAIN_OPEN.search(text)
    write(root, KMAIN, text[:m.end()] + KMAIN_REGION + text[m.end():])
    with open(os.path.join(root, "CMakeLists.txt")) as f:
        write(root, "CMakeLists.txt", f.read() + CMAKE_REGION)
    run_git(root, "init", "-q", "-b", "main")
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "instructor")
    return root


def patch_kmain(tree, code):
    """Puts @p code at the top of kmain(): in the test's own region (below its visible marker)."""
    path = os.path.join(tree, KMAIN)
    with open(path) as f:
        text = f.read()
    m = re.search(r"// >>> lab 0: the test's own region.*\n", text)
    assert m, "the region at the top of kmain() not found"
    write(tree, KMAIN, text[:m.end()] + code + text[m.end():])


def lab0_tree(root, sources, dest, solved):
    publish.publish_tree(0, dest, root, sources)
    if solved:   # the student's lab-0 work: the reference solution of every lab-0 region
        for src in sources:
            if src.parsed and any(r.lab == 0 for r in src.parsed.regions):
                with open(os.path.join(dest, src.path), "wb") as f:
                    f.write(publish.resolved(src, 1))
    return dest


def as_repo(tree):
    run_git(tree, "init", "-q", "-b", "lab0")
    run_git(tree, "add", "-A")
    run_git(tree, "commit", "-q", "-m", "my lab 0")
    return tree


@pytest.fixture(scope="module")
def graded(tmp_path_factory, tree_cache):
    base = str(tmp_path_factory.mktemp("batch"))
    root = instructor_tree(base)
    sources = publish.scan(root)
    subs = os.path.join(base, "submissions")
    os.makedirs(subs)
    scratch = os.path.join(base, "scratch")

    alice = as_repo(lab0_tree(root, sources, os.path.join(scratch, "alice"), solved=True))
    run_git(alice, "bundle", "create", "-q", os.path.join(subs, "alice.bundle"), "--all")

    bob = as_repo(lab0_tree(root, sources, os.path.join(subs, "bob"), solved=False))
    write(bob, KMAIN, "this uncommitted edit would not compile\n")

    carol = lab0_tree(root, sources, os.path.join(subs, "carol"), solved=True)
    patch_kmain(carol, "  this is not C++;\n")

    dave = lab0_tree(root, sources, os.path.join(subs, "dave"), solved=True)
    patch_kmain(dave, "  for (;;) arch::wait_for_interrupt();\n")

    erin = lab0_tree(root, sources, os.path.join(subs, "erin"), solved=False)
    lab0 = manifest.load_all(os.path.join(root, "labs"))[0]
    write(erin, "grade/test_lab0.py", "from pagoda_grade import lab_test\n" + "".join(
        f"\n\n@lab_test(0, {t.id!r})\ndef test_{t.id}(boot):\n    pass\n" for t in lab0.visible_tests))
    toml = os.path.join(erin, "labs/00-boot/lab.toml")
    with open(toml) as f:
        write(erin, "labs/00-boot/lab.toml", f.read().replace("points = 4", "points = 40"))
    with open(os.path.join(erin, "user/programs/spin.cpp"), "a") as f:
        f.write("// a student's edit\n")
    write(erin, "user/programs/mine.cpp", "int main() { return 0; }\n")
    as_repo(erin)

    frank = lab0_tree(root, sources, os.path.join(subs, "frank"), solved=True)
    patch_kmain(frank, '  for (;;) println("all work and no play makes a dull kernel, all work and no play");\n')

    write(subs, "notes.txt", "not a submission\n")

    home, user_site, env = poisoned_home(base)
    token = f"pagoda-adversary-{os.getpid()}-{time.monotonic_ns()}"
    attacked = [os.path.join(user_site, "usercustomize.py.new"), os.path.join(user_site, "pagoda_evil2.py"),
                os.path.join(home, "pwned"), os.path.join(root, "grade", "conftest_pwned.py"),
                os.path.join("/tmp", token), os.path.join("/etc", token), os.path.join(base, token)]
    adversary = lab0_tree(root, sources, os.path.join(subs, "adversary"), solved=False)
    with open(os.path.join(adversary, "CMakeLists.txt")) as f:
        text = f.read()
    end = text.index("# <<< lab 0")          # the region's last line: the attack goes in the region
    write(adversary, "CMakeLists.txt", hostile_cmake(token + "-outside", attacked) + text[:end] +
          hostile_cmake(token, attacked) + text[end:])
    write(adversary, "grade/conftest.py", "raise SystemExit('the submission's grader files ran')\n")

    csv_path = os.path.join(base, "grades.csv")
    work = os.path.join(base, "work")
    start = time.monotonic()
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(root, "pagoda"), "grade", "--batch", subs,
                          "--lab", "0", "-j", "2", "--csv", csv_path, "--work", work,
                          "--time-limit", str(TIME_LIMIT)],
                         cwd=root, capture_output=True, text=True, timeout=scaled(900), env=env)
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out.stdout + out.stderr
    with open(csv_path, newline="") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    return {"rows": rows, "lab": lab0, "stderr": out.stderr, "work": work, "elapsed": elapsed,
            "csv": csv_path, "attacked": attacked, "token": token}


def points(row, lab):
    return {t.id: int(row[f"lab0/{t.id}"]) for t in lab.tests}


def test_every_submission_has_its_row(graded):
    assert sorted(graded["rows"]) == ["adversary", "alice", "bob", "carol", "dave", "erin", "frank", "notes"]
    header = open(graded["csv"]).readline().strip().split(",")
    assert header[:2] == ["id", "status"] and header[-4:] == ["total", "possible", "seconds", "summary"]
    assert "lab0/pf_each_boot" in header                  # the hidden test is graded
    for row in graded["rows"].values():
        assert int(row["possible"]) == graded["lab"].total_points == 22
        assert int(row["total"]) == sum(points(row, graded["lab"]).values())


def test_full_marks_from_a_bundle(graded):
    row = graded["rows"]["alice"]
    assert row["status"] == "graded" and row["total"] == "22", row
    assert row["summary"].startswith("graded lab0 (")
    # (the staff's slips, labs/*/mutants/, are in no published tree: their absence is no difference)
    assert "outside the solution regions" not in row["summary"], row["summary"]


def test_partial_from_a_repository_grades_the_commit(graded):
    row = graded["rows"]["bob"]
    p = points(row, graded["lab"])
    assert row["status"] == "graded" and row["total"] == "13", row
    assert p["trap_pf"] == 0 and p["pf_each_boot"] == 0 and p["boot_banner"] == 2
    assert "first failure: trap_pf: " in row["summary"]
    with open(os.path.join(graded["work"], "bob", "results.json")) as f:
        reason = next(r["reason"] for r in json.load(f) if r["id"] == "trap_pf")
    # the lab-1 skeleton's TODO line is in the console tail, marked as not the cause
    assert "LAB TODO: lab 1:" in reason and "<- expected: lab 1 comes later, not the cause" in reason


def test_does_not_build(graded):
    row = graded["rows"]["carol"]
    assert row["status"] == "does not build" and row["total"] == "0", row
    assert row["summary"].startswith("does not build: ") and "kmain.cpp" in row["summary"]
    assert "error" in row["summary"]


def test_hangs_until_the_time_limit(graded):
    row = graded["rows"]["dave"]
    assert row["status"] == "time limit" and row["total"] == "0", row
    assert re.search(rf"stopped at the {TIME_LIMIT} s time limit; [1-9] test\(s\) never ran", row["summary"])
    # (at least the first test ran into its timeout; at loads beyond the budgets' give-back cap
    # the limit may stop the second one first)
    assert re.search(r"hangs: [1-9] test\(s\) ran into their timeout \(boot_banner[,)]", row["summary"])


def test_edited_tests_are_ignored_and_named(graded):
    row = graded["rows"]["erin"]
    assert row["status"] == "graded" and row["total"] == "13", row
    assert points(row, graded["lab"])["trap_pf"] == 0
    assert "changes outside the solution regions were not built (the instructor's text was used): " \
           "grade/test_lab0.py, labs/00-boot/lab.toml, user/programs/spin.cpp, user/programs/mine.cpp (added)" \
           in row["summary"], row["summary"]


def test_a_hostile_build_reaches_nothing(graded):
    """The adversary scores what the skeleton scores (bob), names what it changed outside its
    regions, and left nothing: no file where it wrote, no process running. (Every other row
    scoring what it would alone is the other tests'.)"""
    row = graded["rows"]["adversary"]
    assert row["status"] == "graded" and row["total"] == "13", row
    assert points(row, graded["lab"]) == points(graded["rows"]["bob"], graded["lab"])
    assert "CMakeLists.txt:1, " in row["summary"] and "grade/conftest.py" in row["summary"], row["summary"]
    assert [p for p in graded["attacked"] if os.path.lexists(p)] == []
    from pagoda_core import qemu
    assert qemu.processes_mentioning("sh", graded["token"]) == []


def test_floods_the_console(graded):
    """Printing without end never scores: each boot is stopped at the grader's console cap ("console
    output exceeded ...") or, on a slow machine, runs into its timeout first."""
    row = graded["rows"]["frank"]
    assert row["status"] in ("graded", "time limit") and row["total"] == "0", row
    assert re.search(r"floods the console: \d+ KiB in one boot", row["summary"])


def test_not_a_submission(graded):
    row = graded["rows"]["notes"]
    assert row["status"] == "bad submission" and row["total"] == "0"


def test_progress_and_timing_lines(graded):
    err = graded["stderr"]
    assert re.search(r"batch: 8/8 done, elapsed \d+:\d\d, ETA 0:00; ", err)
    assert "batch: 8 submission(s) in " in err and "overhead beyond the tests" in err
    print(f"\nbatch of 8 with -j 2: {graded['elapsed']:.1f} s\n" +
          "\n".join(l for l in err.splitlines() if l.startswith("pagoda: batch:")))


def test_submission_discovery(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b.bundle").write_text("")
    (tmp_path / "c.tar.gz").write_text("")
    (tmp_path / "d.git").mkdir()
    for p in ("HEAD", "objects", "refs"):
        (tmp_path / "d.git" / p).mkdir() if p != "HEAD" else (tmp_path / "d.git" / p).write_text("")
    (tmp_path / ".hidden").write_text("")
    found = [(s.id, s.kind) for s in batch.discover(str(tmp_path))]
    assert found == [("a", "dir"), ("b", "bundle"), ("c", "archive"), ("d", "git")]


def test_default_limits_scale_with_the_load_and_the_machine(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(batch.speed, "_factor", 3.0)
    monkeypatch.setattr(batch.speed, "_cpu_factor", 1.5)   # a deadline follows the CPU factor, not the load
    monkeypatch.setattr(batch.speed, "load_factor", lambda: 1.0)
    one = batch.Batch(0, "x86_64", str(tmp_path), None, jobs=1)
    four = batch.Batch(0, "x86_64", str(tmp_path), None, jobs=4)
    assert one.build_time_limit == batch.BUILD_TIME_LIMIT
    assert four.build_time_limit == batch.BUILD_TIME_LIMIT * 2
    assert batch.Deadline(four.build_time_limit).seconds == batch.BUILD_TIME_LIMIT * 2 * 1.5
    assert four.time_limit == 2 * one.time_limit
    assert batch.Batch(0, "x86_64", str(tmp_path), 99, build_time_limit=7, jobs=4).build_time_limit == 7


# ---- the time limit, piece by piece --------------------------------------------------------------

def bare_batch():
    import threading
    b = object.__new__(batch.Batch)
    b.lock, b.running = threading.Lock(), {}
    return b


def test_the_limit_interrupts_first_then_kills(tmp_path, monkeypatch):
    from pagoda_core import qemu
    mark = tmp_path / "interrupted"
    polite = ("import signal, sys, time\n"
              f"def stop(*a):\n    open({str(mark)!r}, 'w').write('yes'); sys.exit(3)\n"
              "signal.signal(signal.SIGINT, stop)\ntime.sleep(60)\n")
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)\n"
    b, log = bare_batch(), str(tmp_path / "log")
    status, late = b._run("x", [paths.SYSTEM_PYTHON, "-c", polite], str(tmp_path), log,
                          batch.Deadline(1.0), interrupt=True)
    assert late and status == 3 and mark.read_text() == "yes"
    monkeypatch.setattr(batch, "INTERRUPT_GRACE", 0.5)
    start = time.monotonic()
    status, late = b._run("x", [paths.SYSTEM_PYTHON, "-c", stubborn + f"# {tmp_path}"], str(tmp_path),
                          log, batch.Deadline(1.0), interrupt=True)
    assert late and status == -9 and time.monotonic() - start < scaled(5)
    assert qemu.processes_mentioning(paths.SYSTEM_PYTHON, str(tmp_path)) == []
    # A batch started with SIGINT ignored (nohup, `cmd &` in a script, CI) still interrupts a
    # grader that relies on Python's default handler (as pytest does), rather than killing it
    # after the grace with no report.
    default = ("import sys, time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
               f"    open({str(mark)!r}, 'w').write('default'); sys.exit(4)\n")
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        status, late = b._run("x", [paths.SYSTEM_PYTHON, "-c", default], str(tmp_path), log,
                              batch.Deadline(1.0), interrupt=True)
    finally:
        signal.signal(signal.SIGINT, old)
    assert late and status == 4 and mark.read_text() == "default"
    assert b._run("x", ["true"], str(tmp_path), log, batch.Deadline(5)) == (0, False)


def test_an_interrupted_test_scores_nothing(tmp_path):
    """Every boot hangs (PAGODA_GRADE_CMDLINE); SIGINT while the test waits for its timeout must
    leave it 'incomplete', not passed (its setup had passed)."""
    from pagoda_core import qemu
    report, logs = tmp_path / "report.json", tmp_path / "logs"
    proc = subprocess.Popen([paths.SYSTEM_PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                             f"--pagoda-report={report}", "--pagoda-only=timer_ticks", "test_lab0.py"],
                            cwd=paths.GRADE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PAGODA_GRADE_CMDLINE="test=hang", PAGODA_GRADE_LOGS=str(logs)),
                            # Ctrl-C's SIGINT, even when these tests run with SIGINT ignored (started
                            # by `cmd &` in a script, as CI may be): Python keeps an ignored SIGINT,
                            # and the hang would run into its timeout and fail instead.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + scaled(60)
    while not qemu.processes_mentioning("qemu-system", str(logs)):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(2)
    proc.wait(timeout=scaled(30))
    [entry] = json.load(open(report))
    assert entry["id"] == "timer_ticks" and entry["outcome"] == "incomplete"
    assert qemu.processes_mentioning("qemu-system", str(logs)) == []
