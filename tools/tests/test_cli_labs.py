"""The `labs` and `lab` subcommands: help, the real tree's markers, and the verdict logic of
`labs check` and `lab status` on fake grader results (no QEMU here)."""
import json
import os
import shutil
import subprocess

import pytest

from labtree import VM_LAB1, VM_LAB1_SKEL, VM_LAB2, write
from pagoda import cli, grade, labcheck, labstatus, mutants, publish
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

    def run(n, results, built=True, arch="x86_64", graded=True, earlier_labs=None):
        labs = publish.load_labs(tree)  # (tests may edit a manifest between calls)
        def fake_build(tree_dir, log, arch="x86_64"):
            with open(log, "w") as f:
                f.write("x.cpp:1:1: error: no\n")
            return "kernel.elf" if built else None
        monkeypatch.setattr(labcheck, "build_tree", fake_build)
        monkeypatch.setattr(labcheck, "grade_tree", lambda *a, **k: (dict(results), "grade.log"))
        return labcheck.check_lab(n, tree, labs, sources, arch=arch, graded=graded, earlier_labs=earlier_labs)
    return run


def test_check_lab_ok(fake_check):
    v = fake_check(1, [result(0, "t0", "passed"), result(1, "t1", "failed", "missing: x")])
    assert v.problems == []
    assert v.line().startswith("lab1: ok — builds; 1/1 earlier tests pass; 1/1 lab-1 tests fail")


def test_check_lab_on_an_isa_it_only_builds_on_grades_nothing(fake_check):
    # (a result that would be a problem, were it graded)
    v = fake_check(1, [result(0, "t0", "failed")], graded=False)
    assert v.problems == [] and "builds; not graded on x86_64" in v.line()
    assert fake_check(1, [result(0, "t0", "failed")]).problems


def test_check_lab_own_only_grades_no_earlier_lab(fake_check):
    v = fake_check(1, [result(0, "t0", "failed"), result(1, "t1", "failed")], earlier_labs=0)
    assert v.problems == [] and "labs 0-0 not graded here (--own-only)" in v.line()
    assert fake_check(1, [result(0, "t0", "failed"), result(1, "t1", "failed")], earlier_labs=1).problems


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


@pytest.fixture
def fake_reference(tree, monkeypatch):
    """check_reference on the synthetic tree, with the build and the grader replaced: returns
    (verdict, the text of src/vm.cpp the build saw)."""
    sources = publish.scan(tree)

    def run(n, built=True, outcome="passed", proofs=None):
        labs = publish.load_labs(tree)
        seen = []
        monkeypatch.setattr(labcheck, "grade_digest", lambda kernel, where: "digest")

        def fake_build(tree_dir, arch, log, cpu=None):
            with open(os.path.join(tree_dir, "src/vm.cpp")) as f:
                seen.append(f.read())
            with open(log, "w") as f:
                f.write("src/vm.cpp:1:1: error: use of undeclared identifier\n")
            return built
        monkeypatch.setattr(mutants, "build_kernel", fake_build)
        monkeypatch.setattr(mutants, "set_aside", lambda *a: "kernel.elf")
        monkeypatch.setattr(mutants, "grade_slip", lambda *a, **k: {
            mutants.GRADE_CPU: 1.0, "results": [{"lab": n, "id": f"t{n}", "outcome": outcome, "reason": "boom"}]})
        return labcheck.check_reference(n, tree, labs, sources, proofs=proofs), seen[0]
    return run


def test_check_reference_builds_the_reference_regions_in_the_skeleton_tree(fake_reference, tree):
    v, built = fake_reference(1)
    assert v.problems == [] and "scores 1/1" in v.line()
    assert all(line in built for line in VM_LAB1) and VM_LAB1_SKEL[0] not in built
    with open(os.path.join(tree, labcheck.CHECK_SUBDIR, "lab1", "src/vm.cpp")) as f:
        assert VM_LAB1_SKEL[0] in f.read()     # the skeleton tree is restored


def test_check_reference_names_a_build_failure_and_what_was_left_out(fake_reference):
    v, built = fake_reference(2, built=False)
    assert VM_LAB2[0] not in built              # the reference's own region: no student writes it
    assert "do not build on x86_64" in v.problems[0]
    assert v.details[-1].startswith("left out of the graded tree") and "src/vm.cpp" in v.details[-1]


def test_check_reference_wants_full_marks(fake_reference):
    v, _ = fake_reference(1, outcome="failed")
    assert v.problems == ["lab1: test t1 FAILS on the reference handed in as a submission: boom"]


def test_check_reference_is_graded_once_where_the_next_tree_passed_the_same_kernel(fake_reference):
    """Not graded again only where the lab-2 tree of this run passed lab 1 on the same digest."""
    def proofs(digest="digest", passed=(1,), expected=True):
        p = labcheck.Proofs([(2, "x86_64")] if expected else [])
        p.put((2, "x86_64"), digest, passed)
        p.end((2, "x86_64"))
        return p
    v, _ = fake_reference(1, outcome="failed", proofs=proofs())
    assert v.problems == [] and "not graded again" in v.line() and "lab2 tree" in v.line()
    for other in (proofs(digest="another"), proofs(passed=(0,)), proofs(expected=False)):
        v, _ = fake_reference(1, outcome="failed", proofs=other)
        assert v.problems == ["lab1: test t1 FAILS on the reference handed in as a submission: boom"]


needs_clang = pytest.mark.skipif(not (shutil.which("clang") and shutil.which("ld.lld")), reason="no clang and ld.lld")


@needs_clang
def test_grade_digest_leaves_out_only_the_debug_information(tmp_path):
    """Two trees' builds of one text (their debug information names the tree) are one digest;
    other code, or another grader, is another."""
    def tree(name, code="int f(void) { return 1; }", grader="def test(): pass\n"):
        root = str(tmp_path / name)
        write(root, "pagoda", "#!/usr/bin/env python3\n")
        write(root, "grade/test_lab1.py", grader)
        write(root, "labs/01-x/lab.toml", "number = 1\n")
        build = os.path.join(root, "build", "x86_64")
        write(root, "k.c", code + "\nvoid _start(void) { f(); }\n")
        os.makedirs(os.path.join(build, "user", "x86_64"))
        subprocess.run(["clang", "--target=x86_64-unknown-none", "-ffreestanding", "-g", "-c", "k.c", "-o", "k.o"],
                       cwd=root, check=True)
        for elf in ("kernel.elf", "user/x86_64/init.elf"):
            subprocess.run(["ld.lld", "k.o", "-o", os.path.join(build, elf)], cwd=root, check=True)
        return labcheck.grade_digest(os.path.join(build, "kernel.elf"), root)
    same = tree("lab1")
    assert tree("lab2") == same
    assert tree("lab3", code="int f(void) { return 2; }") != same
    assert tree("lab4", grader="def test(): assert False\n") != same
