"""pytest plugin of the Pagoda grader (loaded for everything under grade/).

- ties each test to its manifest entry (labs/NN-name/lab.toml) by @lab_test(N, id), which gives
  its points and its timeout; a manifest test without an implementation, or an implementation
  without a manifest entry, is an error;
- builds the kernel once per process (under a lock, so parallel workers build it once);
- gives each test a `boot` fixture: fresh QEMU per boot, own log directory, per-test deadline;
- writes a JSON report (--pagoda-report) that `./pagoda grade` turns into the score table;
- --pagoda-only=ID,ID runs only those tests (how one Classroom step grades one test);
- marks skeleton TODO lines of labs later than the tree's (.pagoda-lab, or --pagoda-lab) as
  expected in failure messages.
"""
import fcntl
import json
import os
import re
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, HERE)

from pagoda import build, paths, qemu  # noqa: E402
from pagoda_grade import manifest, todo  # noqa: E402
from pagoda_grade.harness import Booter  # noqa: E402

# The grader, its xdist workers and their QEMUs all die with whoever started them.
qemu.die_with_parent()

# pytest-timeout's limit is the manifest's, plus this margin for QEMU teardown: the harness's
# own deadline fires first and produces the useful message; this only catches a stuck harness.
TIMEOUT_MARGIN = 15
# Where each boot keeps serial.log and qemu.log; PAGODA_GRADE_LOGS moves it (tests of the grader).
LOG_ROOT = os.environ.get("PAGODA_GRADE_LOGS") or os.path.join(paths.BUILD, "grade")


def pytest_addoption(parser):
    parser.addoption("--pagoda-report", default=None, help="write per-test results as JSON here")
    parser.addoption("--pagoda-arch", default=paths.DEFAULT_ARCH, choices=paths.ARCHES)
    parser.addoption("--pagoda-kernel", default=None, help="boot this kernel ELF instead of building")
    parser.addoption("--pagoda-only", default=None, help="run only these test ids (comma-separated)")
    parser.addoption("--pagoda-lab", default=None, type=int,
                     help="the lab the graded tree is for (default: its .pagoda-lab)")


def pytest_configure(config):
    config.addinivalue_line("markers", "lab(number, id): the lab test this function implements")
    config._pagoda_labs = manifest.load_all()
    config._pagoda_results = {}
    given = config.getoption("--pagoda-lab")
    config._pagoda_current_lab = given if given is not None else todo.current_lab(ROOT)


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


@pytest.fixture(scope="session")
def kernel(pytestconfig):
    """Path of the kernel ELF under test (built once per process)."""
    given = pytestconfig.getoption("--pagoda-kernel")
    return given or _build_once(pytestconfig.getoption("--pagoda-arch"))


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
    return Booter(kernel, arch, os.path.join(LOG_ROOT, safe), timeout)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and report.when == "call":
        e = call.excinfo.value
        if isinstance(e, AssertionError) and str(e):
            reason = str(e)
        else:
            reason = f"{call.excinfo.typename}: {e}"
        lab = item.config._pagoda_current_lab
        if lab is None:
            lab = dict(item.user_properties).get("pagoda_lab")
        report.user_properties.append(("pagoda_reason", todo.mark_later_todos(reason, lab)))
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
    if report.failed or report.skipped:
        entry["outcome"] = "failed" if report.failed else "skipped"
        entry["reason"] = props.get("pagoda_reason") or (report.longreprtext or "")[-2000:] or entry["reason"]
    elif report.when == "call" and report.passed and entry["outcome"] == "incomplete":
        entry["outcome"], entry["reason"] = "passed", ""


pytest_runtest_logreport.results = {}


def pytest_sessionfinish(session):
    path = session.config.getoption("--pagoda-report")
    if path and not hasattr(session.config, "workerinput"):  # the controller writes it
        with open(path, "w") as f:
            json.dump(list(pytest_runtest_logreport.results.values()), f, indent=1)
