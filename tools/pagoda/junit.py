"""JUnit XML of a grade: what CI servers and LMS importers read (`./pagoda grade --junit FILE`).

One <testsuite> per lab, one <testcase> per test of its manifest (classname "labN", name the
test id), in manifest order, including tests that never produced a result (an <error>). Points
are properties: each testcase has `points` (earned) and `max_points`; each testsuite and the
<testsuites> root carry `points` and `max_points` totals, so that an importer that reads only
the root gets the score. A failed test's <failure> holds the grader's whole message.
"""
import socket
import time
import xml.etree.ElementTree as ET


def _properties(parent, pairs):
    props = ET.SubElement(parent, "properties")
    for name, value in pairs:
        ET.SubElement(props, "property", name=name, value=str(value))


def _first_line(text):
    return next((l.strip() for l in (text or "").splitlines() if l.strip()), "")


def build(numbers, labs, results, only=None, arch=None):
    """The <testsuites> element for labs @p numbers given the grader's @p results
    ({(lab, id): {outcome, duration, reason}}); @p only restricts each lab to those ids."""
    root = ET.Element("testsuites", name="pagoda")
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0, "points": 0, "max": 0}
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    for n in numbers:
        lab = labs[n]
        specs = [t for t in lab.tests if not only or t.id in only]
        suite = ET.SubElement(root, "testsuite", name=f"lab{n}", timestamp=stamp,
                              hostname=socket.gethostname())
        counts = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0, "points": 0, "max": 0}
        cases = []
        for spec in specs:
            r = results.get((n, spec.id))
            passed = bool(r) and r["outcome"] == "passed"
            duration = r["duration"] if r else 0.0
            case = ET.Element("testcase", classname=f"lab{n}", name=spec.id, time=f"{duration:.3f}")
            pairs = [("points", spec.points if passed else 0), ("max_points", spec.points),
                     ("checks", spec.checks)]
            if spec.hidden:
                pairs.append(("hidden", "true"))
            if arch:
                pairs.append(("arch", arch))
            _properties(case, pairs)
            if r is None:
                counts["errors"] += 1
                err = ET.SubElement(case, "error", type="no result",
                                    message="no result: the grader crashed or was stopped before this test finished")
                err.text = err.get("message")
            elif not passed:
                counts["failures"] += 1
                fail = ET.SubElement(case, "failure", type=r["outcome"],
                                     message=_first_line(r["reason"]) or r["outcome"])
                fail.text = r["reason"] or r["outcome"]
            counts["tests"] += 1
            counts["time"] += duration
            counts["points"] += spec.points if passed else 0
            counts["max"] += spec.points
            cases.append(case)
        _properties(suite, [("points", counts["points"]), ("max_points", counts["max"]),
                            ("title", lab.title)])
        suite.extend(cases)
        for key in ("tests", "failures", "errors"):
            suite.set(key, str(counts[key]))
            totals[key] += counts[key]
        suite.set("skipped", "0")
        suite.set("time", f"{counts['time']:.3f}")
        totals["time"] += counts["time"]
        totals["points"] += counts["points"]
        totals["max"] += counts["max"]
    for key in ("tests", "failures", "errors"):
        root.set(key, str(totals[key]))
    root.set("time", f"{totals['time']:.3f}")
    props = ET.Element("properties")
    for name, value in (("points", totals["points"]), ("max_points", totals["max"])):
        ET.SubElement(props, "property", name=name, value=str(value))
    root.insert(0, props)
    return root


def write(path, numbers, labs, results, only=None, arch=None):
    tree = ET.ElementTree(build(numbers, labs, results, only, arch))
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
