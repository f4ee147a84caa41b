"""pytest plugin of the Pagoda grader (loaded for everything under grade/).

- ties each test to its manifest entry (labs/NN-name/lab.toml) by @lab_test(N, id), which gives
  its points and its timeout; a manifest test without an implementation, or an implementation
  without a manifest entry, is an error;
- builds the kernel once per process (under a lock, so parallel workers build it once);
- gives each test a `boot` fixture: fresh QEMU per boot, own log directory, per-test deadline;
- keeps each test's result (config._pagoda_results: what `./pagoda grade`, which runs pytest in
  its own process, reads as each test ends, and turns into the score table) and writes them as
  a JSON report (--pagoda-report, for a grader run in another process: batch grading), with,
  per test, the grader process's peak memory so far (peak_rss_kib);
- --pagoda-only=ID,ID runs only those tests (how one Classroom step grades one test);
- --pagoda-in-order runs the tests in lab.toml order (with -x: a grade that stops at the first
  failing test, which is then the first failure in the manifest's order);
- marks skeleton TODO lines of labs later than the tree's (.pagoda-lab, or --pagoda-lab) as
  expected in failure messages.
"""
import fcntl
import json
import os
import re
import resource
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The grader's Python path, set here only (as ./pagoda sets its own): pagoda_core, pagoda_grade and
# pagoda_pt (the page-table model the grader shares with GDB).
sys.path.insert(0, os.path.join(ROOT, "tools", "gdb"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, HERE)

from pagoda_core import build, paths, pytest_speed, qemu  # noqa: E402
from pagoda_grade import churn, logs, manifest, programs, todo  # noqa: E402
from pagoda_grade.harness import Booter, decide  # noqa: E402

# The grader, its xdist workers and their QEMUs all die with whoever started them.
qemu.die_with_parent()

# pytest-timeout's limit is the manifest's, plus this margin for QEMU teardown: the harness's
# own deadline fires first and produces the useful message; this only catches a stuck harness.
# Both are seconds on the reference machine, scaled to this one (pagoda_core/speed.py).
TIMEOUT_MARGIN = 15
# Where boots keep serial.log and qemu.log: one directory per grade (pagoda_grade/logs.py).
LOG_ROOT = logs.log_root(paths.BUILD)


def _start_log_run(config):
    """This grade's log directory: the one `./pagoda grade` made (PAGODA_GRADE_RUN_DIR), else a
    new one (the controller makes it; its xdist workers inherit it)."""
    if hasattr(config, "workerinput"):
        return
    given = os.environ.get(logs.RUN_DIR_ENV)
    if given and os.path.isdir(given):
        return
    run_dir, config._pagoda_log_lock = logs.start_run(LOG_ROOT)
    os.environ[logs.RUN_DIR_ENV] = run_dir


def log_dir():
    """This grade's log directory."""
    return os.environ.get(logs.RUN_DIR_ENV) or LOG_ROOT


def pytest_addoption(parser):
    parser.addoption("--pagoda-report", default=None, help="write per-test results as JSON here")
    parser.addoption("--pagoda-arch", default=paths.DEFAULT_ARCH, choices=paths.ARCHES)
    parser.addoption("--pagoda-kernel", default=None, help="boot this kernel ELF instead of building")
    parser.addoption("--pagoda-user", default=None,
                     help="the grader's own user-program ELFs (default: this tree's build of user/)")
    parser.addoption("--pagoda-only", default=None, help="run only these test ids (comma-separated)")
    parser.addoption("--pagoda-in-order", action="store_true",
                     help="run the tests in lab.toml order (lab by lab), not in file order")
    parser.addoption("--pagoda-lab", default=None, type=int,
                     help="the lab the graded tree is for (default: its .pagoda-lab)")


def _lab_files(config):
    """The lab test files this session collects: grade/test_labN.py and the instructor's hidden
    grade/hidden/test_labN_*.py."""
    files = set()
    for arg in config.args or [HERE]:
        path = os.path.abspath(os.path.join(str(config.invocation_params.dir), arg.split("::")[0]))
        if os.path.isdir(path):
            for d in (path, os.path.join(path, "hidden")):
                if os.path.isdir(d):
                    files.update(os.path.join(d, f) for f in os.listdir(d) if manifest.lab_file_number(f) is not None)
        elif manifest.lab_file_number(path) is not None:
            files.add(path)
    return files


def pytest_configure(config):
    pytest_speed.register(config)   # timeouts scaled to this machine's speed and load
    if config.getoption("--pagoda-user"):   # (xdist workers inherit it)
        os.environ[programs.USER_DIR_ENV] = os.path.abspath(config.getoption("--pagoda-user"))
    config.addinivalue_line("markers", "lab(number, id): the lab test this function implements")
    config._pagoda_labs = manifest.load_all()
    # "lab:id" -> the test's result (pytest_runtest_logreport); a new one each session (./pagoda
    # test grades each ISA in one process)
    config._pagoda_results = pytest_runtest_logreport.results = {}
    given = config.getoption("--pagoda-lab")
    config._pagoda_current_lab = given if given is not None else todo.current_lab(ROOT)
    # Manifest and implementations must agree; checked here, before any worker starts, so that a
    # mismatch is one clear line rather than a crashed worker.
    lab_files = _lab_files(config)
    problems = manifest.check_implementations(config._pagoda_labs, lab_files)
    if config.option.keyword or config.option.markexpr or config.getoption("--pagoda-only"):
        problems = [p for p in problems if "does not implement" not in p]
    if problems:
        raise pytest.UsageError("\n".join(problems))
    if lab_files:  # (the grader's own tests, also under grade/, keep their logs elsewhere)
        _start_log_run(config)


def _lab_marker(item):
    m = item.get_closest_marker("lab")
    return (m.args[0], m.args[1]) if m else None


def pytest_collection_modifyitems(session, config, items):
    labs = config._pagoda_labs
    only = config.getoption("--pagoda-only")
    if only:
        wanted = set(only.split(","))
        keep = [i for i in items if (_lab_marker(i) or (None, None))[1] in wanted]
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
    implemented = set()
    for item in items:
        key = _lab_marker(item)
        if key is None:
            if os.path.basename(str(item.fspath)).startswith("test_lab"):
                raise pytest.UsageError(f"{item.nodeid}: a lab test needs @lab_test(N, 'id')")
            continue
        number, test_id = key
        lab = labs.get(number)
        spec = lab.test(test_id) if lab else None
        if spec is None:
            raise pytest.UsageError(f"{item.nodeid}: lab {number} declares no test '{test_id}' "
                                    "in its lab.toml")
        implemented.add(key)
        item.user_properties.append(("pagoda_lab", number))
        item.user_properties.append(("pagoda_id", test_id))
        item.add_marker(pytest.mark.timeout(spec.timeout + TIMEOUT_MARGIN))
    if config.getoption("--pagoda-in-order"):
        def order(item):
            key = _lab_marker(item)
            if key is None:
                return (-1, -1)
            return (key[0], [t.id for t in labs[key[0]].tests].index(key[1]))
        items.sort(key=order)   # (stable: a test implemented twice keeps its file order)
    # Labs whose test file was collected must implement every declared test.
    collected_labs = {k[0] for k in implemented}
    for number in collected_labs:
        for spec in labs[number].tests:
            if (number, spec.id) not in implemented and not config.option.keyword and \
                    not config.option.markexpr and not only:
                where = " (hidden tests live in grade/hidden/)" if spec.hidden else ""
                raise pytest.UsageError(f"lab {number} declares test '{spec.id}' but no grader "
                                        f"test implements it{where}")


def _build_once(arch):
    os.makedirs(paths.BUILD, exist_ok=True)
    with open(os.path.join(paths.BUILD, f".grade-build-{arch}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build.build_kernel(arch)


def _build_user_programs(arch):
    """This tree's user programs alone (for a kernel given with --pagoda-kernel): the grader's own."""
    os.makedirs(paths.BUILD, exist_ok=True)
    with open(os.path.join(paths.BUILD, f".grade-build-{arch}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build.build(arch, target=f"user_programs_{arch}")


@pytest.fixture(scope="session")
def kernel(pytestconfig):
    """Path of the kernel ELF under test (built once per process, with the user programs)."""
    given = pytestconfig.getoption("--pagoda-kernel")
    if given:
        return given
    return _build_once(pytestconfig.getoption("--pagoda-arch"))


@pytest.fixture(scope="session")
def grader_programs(pytestconfig, arch):
    """For a kernel given with --pagoda-kernel, the grader builds its own user programs once, the
    first time a test of a lab that runs them boots (unless $PAGODA_GRADE_USER_DIR names them):
    the kernel must embed exactly those (grade/pagoda_grade/programs.py). A grade of an earlier
    lab builds none: it would wait for them, under a lock other grades take to build."""
    if pytestconfig.getoption("--pagoda-kernel") and not os.environ.get(programs.USER_DIR_ENV):
        _build_user_programs(arch)


@pytest.fixture(scope="session")
def arch(pytestconfig):
    return pytestconfig.getoption("--pagoda-arch")


@pytest.fixture
def boot(request, kernel, arch):
    """Boots the kernel: boot(test=NAME, memory="128M") -> Run. All boots of one test share the
    test's manifest timeout."""
    props = dict(request.node.user_properties)
    labs = request.config._pagoda_labs
    timeout = 30.0
    if "pagoda_lab" in props:
        timeout = labs[props["pagoda_lab"]].test(props["pagoda_id"]).timeout
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
    runs_programs = props.get("pagoda_lab", -1) >= programs.FIRST_LAB
    if runs_programs:
        request.getfixturevalue("grader_programs")
    booter = Booter(kernel, arch, os.path.join(log_dir(), safe), timeout, programs=runs_programs,
                    drains=props.get("pagoda_lab") in churn.LABS)
    yield booter
    booter.close()   # the guest RAM its boots kept for the audit at a failure


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test's outcome and reason, decided in one place (harness.decide) for its call phase: a test
    that boots fails when it raised, or when its boots left a problem its own checks did not
    explain; the reason is what ./pagoda grade prints (pagoda_reason)."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        # The grader's own peak memory so far (this process; its QEMUs are other processes).
        report.user_properties.append(("pagoda_peak_rss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
        booter = item.funcargs.get("boot") if hasattr(item, "funcargs") else None
        booter = booter if isinstance(booter, Booter) else None
        if booter is not None and booter.notes:
            report.user_properties.append(("pagoda_note", "\n".join(booter.notes)))
        if booter is not None or call.excinfo is not None:
            passed, reason = decide(call.excinfo, booter, item.config._pagoda_current_lab,
                                    dict(item.user_properties).get("pagoda_lab"))
            if not passed:
                shown = booter.picture(reason) if booter is not None else None
                if shown:
                    reason += f"\npicture of the failing moment (open it in a browser): {shown}"
                if report.passed:   # (a problem its boots left: the test itself passed)
                    report.outcome, report.longrepr = "failed", reason
                report.user_properties.append(("pagoda_reason", reason))
    elif call.excinfo is not None and report.failed:
        report.user_properties.append(("pagoda_reason", f"{report.when} error: {call.excinfo.typename}: {call.excinfo.value}"))


def pytest_runtest_logreport(report):
    props = dict(report.user_properties)
    if "pagoda_id" not in props:
        return
    results = pytest_runtest_logreport.results
    key = f"{props['pagoda_lab']}:{props['pagoda_id']}"
    # A test passes only when its call phase passed: one interrupted after its setup (the batch
    # grader's time limit, Ctrl-C) stays "incomplete" and scores nothing.
    entry = results.setdefault(key, {"lab": props["pagoda_lab"], "id": props["pagoda_id"],
                                     "outcome": "incomplete", "duration": 0.0,
                                     "reason": "the test did not finish (the grader was interrupted)"})
    entry["duration"] += report.duration
    if "pagoda_peak_rss_kib" in props:
        entry["peak_rss_kib"] = max(entry.get("peak_rss_kib", 0), props["pagoda_peak_rss_kib"])
    if "pagoda_note" in props:
        entry["note"] = props["pagoda_note"]
    if report.failed or report.skipped:
        entry["outcome"] = "failed" if report.failed else "skipped"
        entry["reason"] = props.get("pagoda_reason") or (report.longreprtext or "")[-2000:] or entry["reason"]
    elif report.when == "call" and report.passed and entry["outcome"] == "incomplete":
        entry["outcome"], entry["reason"] = "passed", ""


def pytest_sessionfinish(session):
    path = session.config.getoption("--pagoda-report")
    if path and not hasattr(session.config, "workerinput"):  # the controller writes it
        with open(path, "w") as f:
            json.dump(list(session.config._pagoda_results.values()), f, indent=1)
