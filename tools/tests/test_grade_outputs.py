"""What `./pagoda grade` writes for other programs (JUnit XML), how it selects tests, and how
failure messages treat later labs' skeleton TODO lines."""
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from pagoda import junit, paths

sys.path.insert(0, paths.GRADE)
from pagoda_grade import manifest, todo  # noqa: E402
from pagoda.speed import scaled  # noqa: E402  (limits for this machine: speed.py)


def pagoda(*argv, env=None):
    return subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), *argv],
                          cwd=paths.ROOT, capture_output=True, text=True, timeout=scaled(300),
                          env=dict(os.environ, **(env or {})))


def props(element):
    return {p.get("name"): p.get("value") for p in element.findall("properties/property")}


def test_junit_totals_equal_the_score(tmp_path):
    """A real grade in which some tests fail: every boot runs the shutdown self-test instead of
    the one its test asks for (PAGODA_GRADE_CMDLINE's test= wins)."""
    xml_path, json_path = tmp_path / "grade.xml", tmp_path / "grade.json"
    out = pagoda("grade", "lab0", "-j", "2", "--junit", str(xml_path), "--json", str(json_path),
                 env={"PAGODA_GRADE_CMDLINE": "test=shutdown", "PAGODA_GRADE_LOGS": str(tmp_path / "logs")})
    earned, possible = map(int, re.search(r"^Score: (\d+)/(\d+)$", out.stdout, re.M).groups())
    assert 0 < earned < possible, out.stdout
    root = ET.parse(xml_path).getroot()
    cases = root.findall("testsuite/testcase")
    lab0 = manifest.load_all()[0]
    assert [c.get("name") for c in cases] == [t.id for t in lab0.tests]
    assert sum(int(props(c)["points"]) for c in cases) == earned
    assert sum(int(props(c)["max_points"]) for c in cases) == possible
    assert props(root) == {"points": str(earned), "max_points": str(possible)}
    assert props(root.find("testsuite"))["points"] == str(earned)
    failed = [c for c in cases if c.find("failure") is not None]
    assert int(root.get("failures")) == len(failed) > 0 and int(root.get("tests")) == len(cases)
    for c in failed:
        assert props(c)["points"] == "0" and c.find("failure").text.strip()
    with open(json_path) as f:
        assert json.load(f)["earned"] == earned


def test_junit_reports_a_test_without_a_result_as_an_error():
    lab0 = manifest.load_all()[0]
    first, second = lab0.tests[0], lab0.tests[1]
    results = {(0, first.id): {"outcome": "passed", "duration": 0.5, "reason": ""}}
    root = junit.build([0], {0: lab0}, results, only={first.id, second.id})
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == [first.id, second.id]
    assert cases[1].find("error").get("type") == "no result"
    assert root.get("errors") == "1" and props(root)["points"] == str(first.points)


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
