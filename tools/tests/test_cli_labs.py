"""The `labs` and `lab` subcommands: help, the real tree's markers, and the verdict logic of
`labs check` and `lab status` on fake grader results (no QEMU here)."""
import json
import os

import pytest

from labtree import write
from pagoda import cli, grade, labcheck, labstatus, publish
from pagoda_core import paths


@pytest.mark.parametrize("argv", [["labs"], ["labs", "lint"], ["labs", "publish"], ["labs", "check"],
                                  ["labs", "mutants"], ["lab"], ["lab", "status"]])
def test_every_subcommand_has_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.parser().parse_args(argv + ["--help"])
    assert e.value.code == 0
    assert "usage: ./pagoda " + " ".join(argv) in capsys.readouterr().out


def test_labs_needs_an_action(capsys):
    with pytest.raises(SystemExit) as e:
        cli.parser().parse_args(["labs"])
    assert e.value.code == 2


def test_the_real_tree_lints_clean():
    """Catches a broken marker in main (and marker-like text in these tools' own sources)."""
    assert publish.lint(paths.ROOT) == []


def test_grade_json(tmp_path):
    results = {(0, "b"): {"lab": 0, "id": "b", "outcome": "failed", "duration": 1.0, "reason": "x"},
               (0, "a"): {"lab": 0, "id": "a", "outcome": "passed", "duration": 0.5, "reason": ""}}
    path = str(tmp_path / "r.json")
    grade.write_json(path, [0], results, 2, 5)
    with open(path) as f:
        data = json.load(f)
    assert data["earned"] == 2 and data["possible"] == 5 and data["labs"] == [0]
    assert [r["id"] for r in data["results"]] == ["a", "b"]


def result(lab, test_id, outcome, reason=""):
    return (lab, test_id), {"lab": lab, "id": test_id, "outcome": outcome, "duration": 0.1,
                            "reason": reason}


@pytest.fixture
def fake_check(tree, monkeypatch):
    """check_lab on the synthetic tree, with the build and the grader replaced by @p results."""
    write(tree, "grade/test_lab0.py", "")
    write(tree, "grade/test_lab1.py", "")
    sources = publish.scan(tree)

    def run(n, results, built=True, arch="x86_64"):
        labs = publish.load_labs(tree)  # (tests may edit a manifest between calls)
        def fake_build(tree_dir, log, arch="x86_64"):
            with open(log, "w") as f:
                f.write("x.cpp:1:1: error: no\n")
            return "kernel.elf" if built else None
        monkeypatch.setattr(labcheck, "build_tree", fake_build)
        monkeypatch.setattr(labcheck, "grade_tree", lambda *a, **k: (dict(results), "grade.log"))
        return labcheck.check_lab(n, tree, labs, sources, arch=arch)
    return run


def test_check_lab_ok(fake_check):
    v = fake_check(1, [result(0, "t0", "passed"), result(1, "t1", "failed", "missing: x")])
    assert v.problems == []
    assert v.line().startswith("lab1: ok — builds; 1/1 earlier tests pass; 1/1 lab-1 tests fail")


def test_check_lab_names_a_test_that_passes_on_the_skeleton(fake_check):
    v = fake_check(1, [result(0, "t0", "passed"), result(1, "t1", "passed")])
    assert v.problems == ["lab1 skeleton: test t1 PASSES on the skeleton — it does not test the "
                          "student's code"]
    assert "PROBLEM" in v.line()


def test_check_lab_names_a_broken_earlier_lab_and_a_missing_result(fake_check):
    v = fake_check(1, [result(0, "t0", "failed", "missing: the banner\nmore")])
    assert v.problems == [
        "lab1 skeleton: earlier test lab0/t0 FAILS — the lab-1 skeleton breaks lab 0: missing: the banner",
        "lab1 skeleton: test t1 has no result (the grader crashed?)"]


def test_check_lab_reports_a_skeleton_that_does_not_build(fake_check):
    v = fake_check(0, [], built=False)
    assert v.problems[0].startswith("lab0 skeleton: the kernel does not build")
    assert v.details == ["x.cpp:1:1: error: no"]


def test_passes_on_skeleton_is_an_explicit_exception(fake_check, tree):
    toml = os.path.join(tree, "labs/01-map/lab.toml")
    with open(toml) as f:
        text = f.read()
    write(tree, "labs/01-map/lab.toml", text.replace('id = "t1"\n', 'id = "t1"\npasses_on_skeleton = true\n'))
    assert fake_check(1, [result(0, "t0", "passed"), result(1, "t1", "passed")]).problems == []
    [problem] = fake_check(1, [result(0, "t0", "passed"), result(1, "t1", "failed", "boom")]).problems
    assert "FAILS on the skeleton, but its lab.toml entry says passes_on_skeleton: boom" in problem


def test_status_report_says_what_to_read_next(tree):
    labs = publish.load_labs(tree)
    lines = []
    done = labstatus.report(labs[1], dict([result(1, "t1", "failed", "missing: the map line")]),
                            tree, lines.append)
    assert not done
    assert lines[0] == "lab1 — Identity map"
    assert lines[1].split() == ["FAIL", "t1", "lab", "1", "works"]
    assert "Read next: labs/01-map/README.md" in lines
    assert "  then make t1 pass: lab 1 works" in lines
    assert "  it fails now with: missing: the map line" in lines


def test_current_lab_comes_from_the_lab_file(tree, tmp_path):
    assert labstatus.current_lab(tree) is None
    out = str(tmp_path / "lab2")
    publish.publish_tree(2, out, tree)
    assert labstatus.current_lab(out) == 2


def test_check_lab_on_an_isa_the_lab_does_not_run_on_grades_the_earlier_labs_there(fake_check, tree):
    toml = os.path.join(tree, "labs/00-boot/lab.toml")
    with open(toml) as f:
        text = f.read()
    write(tree, "labs/00-boot/lab.toml", text.replace("depends = []\n", 'depends = []\narches = ["x86_64", "aarch64"]\n'))
    v = fake_check(1, [result(0, "t0", "passed")], arch="aarch64")
    assert v.problems == []
    assert v.line().startswith("lab1 on aarch64: ok — builds; 1/1 earlier tests pass (lab 1 does not run on aarch64 yet)")
    v = fake_check(1, [result(0, "t0", "failed", "the kernel does not boot")], arch="aarch64")
    assert v.problems == ["lab1 skeleton: earlier test lab0/t0 FAILS — the lab-1 skeleton breaks lab 0: "
                          "the kernel does not boot"]
    v = fake_check(0, [result(0, "t0", "failed", "missing")], arch="aarch64")
    assert v.line().startswith("lab0 on aarch64: ok — builds; 0/0 earlier tests pass; 1/1 lab-0 tests fail")
