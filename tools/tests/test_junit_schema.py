"""`./pagoda grade --junit` against the common JUnit schema (tools/tests/junit.xsd, checked by
xmllint): first that the schema itself rejects what CI tools reject, then that every shape of
document the grade writes passes it."""
import dataclasses
import xml.etree.ElementTree as ET

import pytest

from junit_xsd import schema_errors
from pagoda import junit
from pagoda_grade import manifest

GOOD = """<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="lab0" package="pagoda.x86_64" id="0" timestamp="2024-01-02T03:04:05"
             hostname="h" tests="1" failures="1" errors="0" skipped="0" time="1.5">
    <properties><property name="points" value="0"/></properties>
    <testcase classname="lab0" name="boot_banner" time="1.500">
      <failure type="failed" message="missing: the banner">missing: the banner</failure>
    </testcase>
    <system-out>lab0: 0/2 points</system-out>
    <system-err/>
  </testsuite>
</testsuites>
"""

# What the grade wrote before this schema was checked, and other slips: each must be refused.
BAD = {
    "properties on the root": ("<testsuites>\n  <testsuite", "<testsuites>\n<properties/>\n  <testsuite"),
    "attributes on the root": ("<testsuites>", '<testsuites name="pagoda" tests="1">'),
    "properties in a testcase": ('time="1.500">', 'time="1.500"><properties/>'),
    "no system-out": ("<system-out>lab0: 0/2 points</system-out>", ""),
    "properties after the testcases": ("<properties><property name=\"points\" value=\"0\"/></properties>", ""),
    "a time zone in the timestamp": ("2024-01-02T03:04:05", "2024-01-02T03:04:05Z"),
    "a suite without its id": (' id="0"', ""),
    "two outcomes in one testcase": ("</failure>", '</failure><error type="x"/>'),
    "a failure without its type": ('<failure type="failed"', "<failure"),
}


def write(tmp_path, text, name="doc.xml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_schema_accepts_a_plain_report(tmp_path):
    assert schema_errors(write(tmp_path, GOOD)) == ""


@pytest.mark.parametrize("slip", sorted(BAD))
def test_the_schema_refuses(tmp_path, slip):
    old, new = BAD[slip]
    assert old in GOOD
    errors = schema_errors(write(tmp_path, GOOD.replace(old, new, 1)))
    assert "fails to validate" in errors, slip


def test_every_shape_the_grade_writes_is_valid(tmp_path):
    """Passed, failed, skipped, interrupted and never-run tests, a hidden test, two labs, and
    characters XML must escape in a failure message."""
    labs = manifest.load_all()
    lab0, lab6 = labs[0], labs[6]
    t = lab0.tests
    results = {(0, t[0].id): {"lab": 0, "id": t[0].id, "outcome": "passed", "duration": 1.25, "reason": ""},
               (0, t[1].id): {"lab": 0, "id": t[1].id, "outcome": "failed", "duration": 2.0,
                              "reason": "missing: <the banner> & \"token\"\n  | console tail\x1b[0m"},
               (0, t[2].id): {"lab": 0, "id": t[2].id, "outcome": "skipped", "duration": 0.0, "reason": "skip"},
               (0, t[3].id): {"lab": 0, "id": t[3].id, "outcome": "incomplete", "duration": 0.5,
                              "reason": "the test did not finish (the grader was interrupted)"}}
    lab0 = dataclasses.replace(lab0, tests=list(t) + [dataclasses.replace(t[0], id="secret", hidden=True)])
    path = tmp_path / "grade.xml"
    junit.write(path, [0, 6], {0: lab0, 6: lab6}, results, arch="aarch64")
    assert schema_errors(path) == ""
    root = ET.parse(path).getroot()
    assert root.attrib == {} and root.find("properties") is None
    assert not root.findall(".//testcase/properties")
    kinds = [(c.get("name"), [e.tag + ":" + e.get("type") for e in c]) for c in root.iter("testcase")]
    assert kinds[:4] == [(t[0].id, []), (t[1].id, ["failure:failed"]), (t[2].id, ["failure:skipped"]),
                         (t[3].id, ["error:interrupted"])]
    assert all(k == ["error:no result"] for _, k in kinds[4:len(lab0.tests)])
    assert "console tail\\x1b[0m" in root.find("testsuite/testcase/failure").text   # ESC, shown
    props = {p.get("name"): p.get("value") for p in root.find("testsuite/properties")}
    assert props["hidden.secret"] == "true" and props["points.secret"] == "0"
    assert props["points"] == str(t[0].points) and props["arch"] == "aarch64"
