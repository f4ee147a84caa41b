"""What `./pagoda grade` writes for other programs (JUnit XML), how it selects tests, and how
failure messages treat later labs' skeleton TODO lines."""
import json
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from junit_xsd import schema_errors
from pagoda import junit
from pagoda_core import paths, qemu

from pagoda_grade import manifest, todo
from pagoda_core.speed import scaled  # (limits for this machine: speed.py)


def pagoda(*argv, env=None):
    return subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), *argv],
                          cwd=paths.ROOT, capture_output=True, text=True, timeout=scaled(300),
                          env=dict(os.environ, **(env or {})))


def props(element):
    return {p.get("name"): p.get("value") for p in element.findall("properties/property")}


def test_junit_totals_equal_the_score(tmp_path):
    """A real grade in which some tests fail: every boot runs the shutdown self-test instead of
    the one its test asks for (PAGODA_GRADE_CMDLINE's test= wins). Its JUnit is valid against
    the schema, its points add up to the score, and stderr had one line per test as it ended,
    the last one's running score being the final score."""
    xml_path, json_path = tmp_path / "grade.xml", tmp_path / "grade.json"
    out = pagoda("grade", "lab0", "-j", "2", "--junit", str(xml_path), "--json", str(json_path),
                 env={"PAGODA_GRADE_CMDLINE": "test=shutdown", "PAGODA_GRADE_LOGS": str(tmp_path / "logs")})
    earned, possible = map(int, re.search(r"^Score: (\d+)/(\d+)$", out.stdout, re.M).groups())
    assert 0 < earned < possible, out.stdout
    assert schema_errors(xml_path) == ""
    root = ET.parse(xml_path).getroot()
    cases = root.findall("testsuite/testcase")
    lab0 = manifest.load_all()[0]
    assert [c.get("name") for c in cases] == [t.id for t in lab0.tests]
    suite = props(root.find("testsuite"))
    assert sum(int(suite[f"points.{c.get('name')}"]) for c in cases) == earned == int(suite["points"])
    assert sum(int(suite[f"max_points.{c.get('name')}"]) for c in cases) == possible == int(suite["max_points"])
    failed = [c for c in cases if c.find("failure") is not None]
    suite_element = root.find("testsuite")
    assert int(suite_element.get("failures")) == len(failed) > 0 and int(suite_element.get("tests")) == len(cases)
    for c in failed:
        assert suite[f"points.{c.get('name')}"] == "0" and c.find("failure").text.strip()
    with open(json_path) as f:
        data = json.load(f)
    assert data["earned"] == earned and data["interrupted"] is False
    progress = [l for l in out.stderr.splitlines() if re.match(r"\[\s*\d+/\d+\]", l)]
    assert len(progress) == len(lab0.tests), out.stderr
    assert [int(re.match(r"\[\s*(\d+)/", l)[1]) for l in progress] == list(range(1, len(lab0.tests) + 1))
    assert re.search(rf"\s{earned}/{possible}\s", progress[-1]), progress[-1]
    assert sorted(re.search(r"lab0/(\S+)", l)[1] for l in progress) == sorted(t.id for t in lab0.tests)
    assert max(map(len, progress)) <= 100
    assert sum(" FAIL " in l for l in progress) == len(failed)


def test_junit_reports_a_test_without_a_result_as_an_error():
    lab0 = manifest.load_all()[0]
    first, second = lab0.tests[0], lab0.tests[1]
    results = {(0, first.id): {"outcome": "passed", "duration": 0.5, "reason": ""}}
    root = junit.build([0], {0: lab0}, results, only={first.id, second.id})
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == [first.id, second.id]
    assert cases[1].find("error").get("type") == "no result"
    assert root.find("testsuite").get("errors") == "1"
    assert props(root.find("testsuite"))["points"] == str(first.points)


def test_every_output_carries_the_grader_s_notes(tmp_path):
    """A note the grader attaches to a test (e.g. "this QEMU cannot emulate umip") reaches every
    output, on a passed test as on a failed one: JUnit (a property, and the failure's text) and
    Gradescope's results.json (the test's output). The JUnit stays valid against the schema."""
    from pagoda import autograder, batch
    lab0 = manifest.load_all()[0]
    first, second = lab0.tests[0], lab0.tests[1]
    results = {(0, first.id): {"outcome": "passed", "duration": 0.5, "reason": "", "note": "noted on a pass"},
               (0, second.id): {"outcome": "failed", "duration": 0.5, "reason": "it broke",
                                "note": "noted on a failure\nsecond line"}}
    root = junit.build([0], {0: lab0}, results, only={first.id, second.id})
    xml_path = tmp_path / "notes.xml"
    ET.ElementTree(root).write(xml_path, encoding="utf-8", xml_declaration=True)
    assert schema_errors(xml_path) == ""
    suite = props(root.find("testsuite"))
    assert suite[f"note.{first.id}"] == "note: noted on a pass"
    assert suite[f"note.{second.id}"] == "note: noted on a failure\nnote: second line"
    failure = root.find("testsuite/testcase[@name='%s']/failure" % second.id)
    assert failure.text.startswith("it broke") and "note: second line" in failure.text
    row = batch.Row(id="alice", results={t: r for (_, t), r in results.items()},
                    points={first.id: first.points})
    shown = {t["name"]: t["output"] for t in autograder.gradescope_results(row, lab0, "x86_64", 1.0)["tests"]}
    assert "note: noted on a pass" in shown[f"lab0/{first.id}"]
    assert "it broke" in shown[f"lab0/{second.id}"] and "note: second line" in shown[f"lab0/{second.id}"]


# A pytest plugin the Ctrl-C test hands the grade (PYTEST_PLUGINS): the grade's pytest holds the
# test it would run third, once its setup is done, and says so in a file, until a signal ends the
# hold. So the Ctrl-C lands at a known point however busy the machine is: two tests ended, one
# cut short in the middle, the rest never started.
HOLD_PLUGIN = """
import os
import time

import pytest

started = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    started.append(item.nodeid)
    if len(started) == int(os.environ["PAGODA_TEST_HOLD_AT"]):
        said = os.environ["PAGODA_TEST_HOLD_FILE"]
        with open(said + ".new", "w") as f:
            f.write(dict(item.user_properties)["pagoda_id"])   # the grader's id of the test
        os.replace(said + ".new", said)                        # whole, or not there yet
        deadline = time.monotonic() + float(os.environ["PAGODA_TEST_HOLD_LIMIT"])
        while time.monotonic() < deadline:   # KeyboardInterrupt (the Ctrl-C passed on) ends it
            time.sleep(0.05)
"""


def test_ctrl_c_keeps_what_finished(tmp_path):
    """Ctrl-C while the third test of lab 0 runs (held there by HOLD_PLUGIN until the signal),
    after the first two have ended (their lines seen on the terminal): exit status 130, the
    table, and a JSON and a valid JUnit file holding those two tests' results; the held one is
    marked as cut short and the others as never run, none lost and none passed. No QEMU is left."""
    pexpect = pytest.importorskip("pexpect")
    xml_path, json_path = tmp_path / "grade.xml", tmp_path / "grade.json"
    plugin_dir, held_file = tmp_path / "plugin", tmp_path / "held"
    plugin_dir.mkdir()
    (plugin_dir / "pagoda_hold_third.py").write_text(HOLD_PLUGIN)
    limit = scaled(300)
    env = dict(os.environ, PAGODA_GRADE_LOGS=str(tmp_path / "logs"), PYTEST_PLUGINS="pagoda_hold_third",
               PYTHONPATH=os.pathsep.join(filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")])),
               PAGODA_TEST_HOLD_AT="3", PAGODA_TEST_HOLD_FILE=str(held_file),
               PAGODA_TEST_HOLD_LIMIT=str(limit))
    child = pexpect.spawn(paths.SYSTEM_PYTHON, [os.path.join(paths.ROOT, "pagoda"), "grade", "lab0", "-j", "1",
                                                "--junit", str(xml_path), "--json", str(json_path)],
                          cwd=paths.ROOT, timeout=limit, encoding="utf-8", env=env)
    ended = []
    for n in (1, 2):
        child.expect(rf"\[\s*{n}/6\]\s+\d+/\d+\s+lab0/(\S+)\s+(OK|FAIL)")
        ended.append(child.match.group(1))
    deadline = time.monotonic() + limit
    while not held_file.exists() and time.monotonic() < deadline:   # the third test is held
        time.sleep(0.05)
    assert held_file.exists(), f"the third test was never held:\n{child.before}"
    held = held_file.read_text()
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130, child.before
    assert "Score: " in child.before and "interrupted: 2 test(s) had finished" in child.before
    with open(json_path) as f:
        data = json.load(f)
    assert data["interrupted"] is True
    by_id = {r["id"]: r for r in data["results"]}
    lab0 = manifest.load_all()[0]
    tests = [t.id for t in lab0.tests]
    never = set(tests) - set(ended) - {held}
    assert len(tests) == 6 and held in tests and len(never) == 3, (held, ended)
    assert sorted(t for t in tests if by_id.get(t, {}).get("outcome") == "passed") == sorted(ended)
    assert by_id[held]["outcome"] == "incomplete"             # cut short: scores nothing
    assert not set(by_id) & never                             # never started
    assert data["earned"] == sum(t.points for t in lab0.tests if t.id in ended)
    assert schema_errors(xml_path) == ""
    root = ET.parse(xml_path).getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert sorted(cases) == sorted(tests)
    assert all(len(cases[t]) == 0 for t in ended)             # passed: no failure, no error
    assert all(cases[t].find("error") is not None for t in never | {held})
    assert not qemu.processes_mentioning(qemu.MACHINES["x86_64"].binary, str(tmp_path))


def test_batch_only_flags_need_batch():
    """`grade --lab 3` graded every lab, silently; now each mode refuses the other's flags."""
    out = pagoda("grade", "--lab", "3")
    assert out.returncode == 2 and "--lab: only with --batch DIR" in out.stderr
    assert "./pagoda grade lab3" in out.stderr and "Score" not in out.stdout
    out = pagoda("grade", "lab0", "--csv", "x.csv", "--keep")
    assert out.returncode == 2 and "--csv, --keep: only with --batch DIR" in out.stderr
    out = pagoda("grade", "--batch", "nowhere", "--lab", "0", "--csv", "x.csv", "--junit", "x.xml")
    assert out.returncode == 2 and "--junit: not with --batch" in out.stderr


def test_grade_only_some_tests(tmp_path):
    out = pagoda("grade", "lab0", "--test", "trap_pf", "--test", "panic_exit",
                 env={"PAGODA_GRADE_LOGS": str(tmp_path)})
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [l for l in out.stdout.splitlines() if l.startswith("  ")]
    assert [l.split(":")[0].strip() for l in lines] == ["trap_pf", "panic_exit"]
    assert "Score: 6/6" in out.stdout
    bad = pagoda("grade", "lab0", "--test", "nosuch")
    assert bad.returncode == 2 and "no test nosuch in lab0" in bad.stderr


def test_later_labs_todo_lines_are_marked_as_expected():
    tail = "\n".join(["missing: the #PF report", "  | memory: 1 KiB", "  | LAB TODO: lab 1: write x",
                      "  | LAB TODO: lab 2: write y", "  | LAB TODO: lab 0: write z"])
    marked = todo.mark_later_todos(tail, 1).splitlines()
    assert marked[2] == "  | LAB TODO: lab 1: write x"
    assert marked[3] == "  | LAB TODO: lab 2: write y" + todo.NOTE.format(lab=2)
    assert marked[4] == "  | LAB TODO: lab 0: write z"
    assert todo.mark_later_todos(tail, None) == tail


def test_current_lab_reads_the_lab_file(tmp_path):
    assert todo.current_lab(str(tmp_path)) is None
    (tmp_path / ".pagoda-lab").write_text("2\n")
    assert todo.current_lab(str(tmp_path)) == 2
