"""JUnit XML of a grade: what CI servers and LMS importers read (`./pagoda grade --junit FILE`).

The document follows the common JUnit schema (Apache Ant's format, as its XSD pins it down; also
valid for Jenkins' junit-10 schema); tools/tests/test_junit_schema.py validates it:

    <testsuites>                      no attributes
      <testsuite name="labN" package="pagoda.ARCH" id="0" timestamp hostname
                 tests failures errors skipped time>
        <properties>                  exactly one, first: the only place for properties
          points, max_points          the lab's score
          title, arch
          points.ID, max_points.ID    each test's points earned and possible
          checks.ID                   what the test checks (its lab.toml description)
          hidden.ID = true            a hidden test
          note.ID                     the grader's notes on a test, passed or not
        </properties>
        <testcase classname="labN" name="ID" time="SECONDS">     one per test of the manifest,
          <failure type message>the grader's whole message</failure>       in manifest order
          or <error type="no result"|"interrupted" message>...</error>  (never ran / cut short)
        </testcase>
        <system-out>the lab's score line</system-out>
        <system-err/>
      </testsuite>
    </testsuites>
"""
import re
import socket
import time
import xml.etree.ElementTree as ET

from pagoda_core.ui import first_line
from pagoda_grade.outcomes import note_lines

# Characters XML 1.0 cannot carry at all, even escaped (a console's ESC, a NUL): shown as \xNN.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value):
    return _NOT_XML.sub(lambda m: f"\\x{ord(m[0]):02x}", str(value))


def _hostname():
    return socket.gethostname().strip() or "localhost"


def build(numbers, labs, results, only=None, arch=None):
    """The <testsuites> element for labs @p numbers given the grader's @p results
    ({(lab, id): {outcome, duration, reason}}); @p only restricts each lab to those ids."""
    root = ET.Element("testsuites")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")      # local time, no zone: the schema's pattern
    for index, n in enumerate(numbers):
        lab = labs[n]
        specs = [t for t in lab.tests if not only or t.id in only]
        suite = ET.SubElement(root, "testsuite", name=f"lab{n}",
                              package=f"pagoda.{arch}" if arch else "pagoda", id=str(index),
                              timestamp=stamp, hostname=_hostname())
        props = ET.SubElement(suite, "properties")
        counts = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0, "points": 0, "max": 0}
        per_test = []
        for spec in specs:
            r = results.get((n, spec.id))
            passed = bool(r) and r["outcome"] == "passed"
            duration = r["duration"] if r else 0.0
            case = ET.SubElement(suite, "testcase", classname=f"lab{n}", name=spec.id, time=f"{duration:.3f}")
            per_test += [(f"points.{spec.id}", spec.points if passed else 0),
                         (f"max_points.{spec.id}", spec.points), (f"checks.{spec.id}", spec.checks)]
            if spec.hidden:
                per_test.append((f"hidden.{spec.id}", "true"))
            if note_lines(r):
                per_test.append((f"note.{spec.id}", "\n".join(note_lines(r))))
            if r is None or r["outcome"] == "incomplete":
                counts["errors"] += 1
                kind = "no result" if r is None else "interrupted"
                text = ("no result: the grader crashed or was stopped before this test finished"
                        if r is None else r["reason"] or "the test did not finish")
                err = ET.SubElement(case, "error", type=kind, message=first_line(_text(text)))
                err.text = _text(text)
            elif not passed:
                counts["failures"] += 1
                fail = ET.SubElement(case, "failure", type=r["outcome"],
                                     message=first_line(_text(r["reason"] or "")) or r["outcome"])
                fail.text = _text("\n".join([r["reason"] or r["outcome"]] + note_lines(r)))
            counts["tests"] += 1
            counts["time"] += duration
            counts["points"] += spec.points if passed else 0
            counts["max"] += spec.points
        pairs = [("points", counts["points"]), ("max_points", counts["max"]), ("title", lab.title)]
        pairs += [("arch", arch)] if arch else []
        for name, value in pairs + per_test:
            ET.SubElement(props, "property", name=name, value=_text(value))
        ET.SubElement(suite, "system-out").text = f"lab{n}: {counts['points']}/{counts['max']} points"
        ET.SubElement(suite, "system-err")
        for key in ("tests", "failures", "errors"):
            suite.set(key, str(counts[key]))
        suite.set("skipped", "0")
        suite.set("time", f"{counts['time']:.3f}")
    return root


def write(path, numbers, labs, results, only=None, arch=None):
    tree = ET.ElementTree(build(numbers, labs, results, only, arch))
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
