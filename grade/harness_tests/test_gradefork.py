"""A warm grader (tools/pagoda/gradefork.py, how `labs mutants` grades its slips) gives the grade a
new ./pagoda process gives: the same results and the same failure text, pytest's assert
introspection included (the text a slip's cause is matched against)."""
import json
import os
import shutil

from pagoda import gradefork, mutants
from pagoda_core import paths

# The clone's memory_map test, replaced by a plain assert that fails before it boots: pytest
# explains it ("At index 0 diff") only in a test file it rewrote itself.
FAILING = '''@lab_test(0, "memory_map")
def test_memory_map(boot, arch):
    assert ["booted"] == ["warm"]


def _memory_map_was(boot, arch):
    least'''
ORIGINAL = '''@lab_test(0, "memory_map")
def test_memory_map(boot, arch):
    least'''


def clone_with_a_failing_assert(tmp_path):
    """A tree to grade (./pagoda, grade/, labs/, tools/) whose lab 0 passes boot_banner (a real
    boot), then fails memory_map at a plain assert."""
    tree = tmp_path / "tree"
    for part in ("grade", "labs", "tools"):
        shutil.copytree(os.path.join(paths.ROOT, part), tree / part,
                        ignore=shutil.ignore_patterns("__pycache__", "harness_tests", "build"))
    shutil.copy2(os.path.join(paths.ROOT, "pagoda"), tree / "pagoda")
    test_file = tree / "grade" / "test_lab0.py"
    text = test_file.read_text()
    assert text.count(ORIGINAL) == 1
    test_file.write_text(text.replace(ORIGINAL, FAILING))   # (the original is kept, not collected)
    return str(tree)


def grade(tree, kernel, work, server=None):
    os.makedirs(os.path.join(work, "user", "x86_64"))    # (lab 0 runs no user program)
    data = mutants.grade_slip(tree, 0, "x86_64", kernel, work, server)
    assert data is not None, open(os.path.join(work, "grade.log")).read()
    return data, {r["id"]: (r["outcome"], r["reason"]) for r in data["results"]}


def test_a_warm_grade_is_the_grade_a_new_process_gives(tmp_path, reference_kernel):
    tree = clone_with_a_failing_assert(tmp_path)
    cold, cold_results = grade(tree, reference_kernel, str(tmp_path / "cold"))
    server = gradefork.Server(tree)
    try:
        warm, warm_results = grade(tree, reference_kernel, str(tmp_path / "warm"), server)
        again, again_results = grade(tree, reference_kernel, str(tmp_path / "again"), server)
    finally:
        server.close()
    assert cold_results["boot_banner"] == ("passed", "")
    outcome, reason = cold_results["memory_map"]
    assert outcome == "failed" and "At index 0 diff" in reason, reason
    for data, results in ((warm, warm_results), (again, again_results)):
        assert results == cold_results, json.dumps(results, indent=1)
        assert (data["earned"], data["possible"]) == (cold["earned"], cold["possible"])
    # Each grade kept its boots' logs where its own request said (its environment, not the
    # first grade's).
    for work in ("warm", "again"):
        runs = [d for d in os.listdir(tmp_path / work / "logs") if d.startswith("run-")]
        assert len(runs) == 1 and any("boot_banner" in d for d in os.listdir(tmp_path / work / "logs" / runs[0]))
