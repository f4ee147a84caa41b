"""Lab trees and published repositories of a small synthetic source tree (publish.py)."""
import os
import stat

import pytest

import labtree as c
from labtree import marker, run_git, write
from pagoda import publish
from pagoda_core.ui import PagodaError


def read(root, rel):
    with open(os.path.join(root, rel)) as f:
        return f.read()


def show(repo, rev, rel):
    return run_git(repo, "show", f"{rev}:{rel}")


def solution_lines():
    """Every distinctive solution line of the synthetic tree, by lab."""
    return {0: c.VM_LAB0 + c.LD_LAB0 + c.SH_LAB0, 1: c.VM_LAB1 + c.CMAKE_LAB1, 2: c.VM_LAB2 + c.PY_LAB2}


# ---- publish_tree ------------------------------------------------------------------------------

def test_tree_of_lab1(tree, tmp_path):
    out = str(tmp_path / "lab1")
    files = publish.publish_tree(1, out, tree)
    assert read(out, ".pagoda-lab") == "1\n"
    vm = read(out, "src/vm.cpp")
    assert c.VM_LAB0[0] in vm and c.VM_LAB0_SKEL[0] not in vm            # lab 0 solved
    assert c.VM_LAB1_SKEL[0] + "\n" in vm and c.VM_LAB1[0] not in vm      # lab 1 skeleton
    assert c.VM_LAB2[0] not in vm                                         # lab 2: no skeleton
    assert "int tail_line_stays_everywhere = 1;" in vm
    for rel in ("src/vm.cpp", "kernel.ld", "run.sh", "CMakeLists.txt", "tools/helper.py"):
        assert c.WORD + " " not in read(out, rel), rel                    # no marker left
    assert read(out, "kernel.ld") == ("SECTIONS {\n    /* >>> lab 0 */\n    " + c.LD_LAB0[0] +
                                      "\n    /* <<< lab 0 */\n}\n")
    assert read(out, "CMakeLists.txt") == "project(demo)\n# >>> lab 1\n" + c.CMAKE_LAB1_SKEL[0] + "\n# <<< lab 1\n"
    assert read(out, "tools/helper.py") == "def answer(value):\n# >>> lab 2\n" + c.PY_LAB2_SKEL[0] + "\n# <<< lab 2\n"
    assert read(out, "run.sh") == "#!/bin/sh\n# >>> lab 0\n" + c.SH_LAB0[0] + "\n# <<< lab 0\n"
    # untracked-but-not-ignored files are in; ignored ones are not; binary files are copied as-is
    assert "tools/helper.py" in files and "docs/markers.md" in files
    assert not os.path.exists(os.path.join(out, "ignored.txt"))
    assert not os.path.exists(os.path.join(out, "build"))
    with open(os.path.join(out, "data.bin"), "rb") as f, open(os.path.join(tree, "data.bin"), "rb") as g:
        assert f.read() == g.read()
    assert os.stat(os.path.join(out, "run.sh")).st_mode & stat.S_IXUSR
    assert not os.stat(os.path.join(out, "src/vm.cpp")).st_mode & stat.S_IXUSR


def test_tree_of_lab0_is_all_skeleton(tree, tmp_path):
    out = str(tmp_path / "lab0")
    publish.publish_tree(0, out, tree)
    assert read(out, "kernel.ld") == "SECTIONS {\n    /* >>> lab 0 */\n    " + c.LD_LAB0_SKEL[0] + "\n    /* <<< lab 0 */\n}\n"
    assert read(out, "run.sh") == "#!/bin/sh\n# >>> lab 0\necho todo\n# <<< lab 0\n"
    for lines in solution_lines().values():
        for line in lines:
            assert all(line.strip() not in read(out, rel)
                       for rel in ("src/vm.cpp", "kernel.ld", "run.sh", "CMakeLists.txt", "tools/helper.py"))


def test_incremental_tree_rewrites_only_what_changed(tree, tmp_path):
    out = str(tmp_path / "lab2")
    publish.publish_tree(2, out, tree, incremental=True)
    write(out, "build/x86_64/keep.o", "object")
    write(out, "src/stale.cpp", "gone soon")
    os.utime(os.path.join(out, "CMakeLists.txt"), (1, 1))
    os.utime(os.path.join(out, "src/vm.cpp"), (1, 1))
    write(tree, "src/vm.cpp", read(tree, "src/vm.cpp") + "int added;\n")
    publish.publish_tree(2, out, tree, incremental=True)
    assert os.stat(os.path.join(out, "CMakeLists.txt")).st_mtime == 1       # untouched
    assert os.stat(os.path.join(out, "src/vm.cpp")).st_mtime != 1           # rewritten
    assert read(out, "src/vm.cpp").endswith("int added;\n")
    assert not os.path.exists(os.path.join(out, "src/stale.cpp"))
    assert read(out, "build/x86_64/keep.o") == "object"


def test_lint_errors_block_tree_generation(tree, tmp_path):
    write(tree, "src/bad.cpp", marker(1, "BEGIN") + "x\n")
    with pytest.raises(PagodaError, match=r"src/bad.cpp:1: .*has no"):
        publish.publish_tree(1, str(tmp_path / "out"), tree)


def test_lint_reports_file_and_line(tree):
    assert publish.lint(tree) == []
    write(tree, "src/bad.cpp", "a\n" + marker(5, "END"))
    write(tree, "notes.md", "<!-- " + c.WORD + " 1 BEGIN -->\n")
    found = publish.lint(tree)
    assert any(e.startswith("src/bad.cpp:2: ") and "there is no lab 5" in e for e in found)
    assert any(e.startswith("src/bad.cpp:2: ") and "outside any region" in e for e in found)
    assert any(e.startswith("notes.md:1: ") for e in found)
    assert len(found) == 3


# ---- publish -------------------------------------------------------------------------------------

@pytest.fixture
def published(tree, tmp_path):
    repo = str(tmp_path / "published")
    assert publish.publish(repo, tree) == ["lab0", "lab1", "lab2"]
    return repo


def test_branches_history_and_head(published):
    assert run_git(published, "for-each-ref", "--format=%(refname)").split() == \
        ["refs/heads/lab0", "refs/heads/lab1", "refs/heads/lab2"]
    assert run_git(published, "symbolic-ref", "HEAD").strip() == "refs/heads/lab0"
    assert run_git(published, "status", "--porcelain") == ""
    log = run_git(published, "log", "--format=%s|%an|%ae|%P", "lab2").splitlines()
    assert [l.split("|")[0] for l in log] == [
        "lab 2: Higher half — handout and skeleton", "lab 1: Identity map — handout and skeleton",
        "lab 0: Boot — handout and skeleton"]
    assert all(l.split("|")[1:3] == ["Pagoda Labs", "labs@pagoda.invalid"] for l in log)
    assert log[-1].split("|")[3] == ""                                   # lab0 is the root
    assert run_git(published, "rev-parse", "lab1~1") == run_git(published, "rev-parse", "lab0")
    assert run_git(published, "rev-parse", "lab2~1") == run_git(published, "rev-parse", "lab1")
    for n in range(3):
        assert show(published, f"lab{n}", ".pagoda-lab") == f"{n}\n"
    assert run_git(published, "ls-tree", "lab0", "run.sh").startswith("100755 ")


def test_diff_lab0_lab1_is_exactly_the_lab0_solutions(published):
    changed = run_git(published, "diff", "--name-only", "lab0", "lab1").split()
    assert sorted(changed) == [".pagoda-lab", ".pagoda-regions.json", "kernel.ld", "run.sh", "src/vm.cpp"]
    diff = run_git(published, "diff", "-U0", "lab0", "lab1", "--", "kernel.ld", "run.sh", "src/vm.cpp")
    removed = [l[1:].strip() for l in diff.splitlines() if l.startswith("-") and not l.startswith("---")]
    added = [l[1:].strip() for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    assert sorted(removed) == sorted(s.strip() for s in c.VM_LAB0_SKEL + c.LD_LAB0_SKEL + ["echo todo"])
    assert sorted(added) == sorted(s.strip() for s in c.VM_LAB0 + c.LD_LAB0 + c.SH_LAB0)


def test_publish_is_reproducible_from_a_commit(tree, tmp_path):
    run_git(tree, "add", "-A")
    run_git(tree, "commit", "-q", "-m", "source")
    first, second = str(tmp_path / "p1"), str(tmp_path / "p2")
    publish.publish(first, tree)
    publish.publish(second, tree)
    assert run_git(first, "rev-parse", "lab2") == run_git(second, "rev-parse", "lab2")


def test_publish_refuses_a_non_empty_directory(tree, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "file").write_text("x")
    with pytest.raises(PagodaError, match="not an empty directory"):
        publish.publish(str(out), tree)
    publish.publish(str(tmp_path / "empty-ok"), tree)


# ---- leak check ----------------------------------------------------------------------------------

def test_no_stripped_solution_text_anywhere_in_a_branch_history(published, tree):
    """The property itself, checked directly: every blob of every commit of labN is free of
    every distinctive solution line of labs >= N."""
    for n in range(3):
        secret = [l.strip() for lab, lines in solution_lines().items() if lab >= n for l in lines]
        blobs = publish.reachable_blobs(published, f"lab{n}")
        assert len(blobs) > 10
        for path, data in blobs:
            for line in secret:
                assert line.encode() not in data, (n, path, line)
    assert publish.find_leaks(published, tree) == []


def commit_file(repo, branch, rel, text):
    run_git(repo, "checkout", "-q", branch)
    if text is None:
        run_git(repo, "rm", "-q", rel)
    else:
        write(repo, rel, text)
        run_git(repo, "add", rel)
    run_git(repo, "commit", "-q", "-m", f"edit {rel}")


def test_leak_check_catches_a_planted_leak_even_in_history(published, tree):
    # lab1's solution, planted in lab1 (where it is a secret) and then deleted again
    commit_file(published, "lab1", "notes.txt", "remember: " + c.VM_LAB1[1].strip() + "\n")
    commit_file(published, "lab1", "notes.txt", None)
    assert "notes.txt" not in run_git(published, "ls-tree", "-r", "--name-only", "lab1")
    [leak] = publish.find_leaks(published, tree)
    assert leak.startswith("lab1: notes.txt contains solution text of the LAB 1 region at src/vm.cpp:")
    assert c.VM_LAB1[1].strip() in leak


def test_leak_check_allows_earlier_solutions_and_flags_other_refs(published, tree):
    # lab 0's solution in lab1 is expected (lab1 ships it); lab 2's is not
    commit_file(published, "lab1", "ok.txt", c.VM_LAB0[0] + "\n")
    assert publish.find_leaks(published, tree) == []
    commit_file(published, "lab2", "py.txt", c.PY_LAB2[0] + "\n")
    [leak] = publish.find_leaks(published, tree)
    assert leak.startswith("lab2: py.txt contains solution text of the LAB 2 region at tools/helper.py")
    # a branch of another name gets the strictest check: no solution of any lab
    run_git(published, "branch", "main", "lab1")
    assert any(l.startswith("main: ok.txt") for l in publish.find_leaks(published, tree))


def test_solution_lines_shown_elsewhere_are_not_secrets(tree):
    sources = publish.scan(tree)
    secrets = publish.secrets_for(0, sources)
    assert "int tail_line_stays_everywhere = 1;" not in secrets
    assert c.VM_LAB2[0] in secrets and c.VM_LAB0[0] in secrets
    assert c.VM_LAB0[0] not in publish.secrets_for(1, sources)
    write(tree, "src/public.cpp", "// also here: " + c.VM_LAB2[0] + "\n")
    assert c.VM_LAB2[0] not in publish.secrets_for(0, publish.scan(tree))


def test_a_solution_copied_into_given_code_is_a_leak_even_though_the_lines_are_public(tree):
    """A region's code written out again outside the regions (a helper that repeats the
    answer) is in plain view in every branch: the line check skips such lines, the block
    check does not, whatever the copy's indentation, comments and surroundings."""
    write(tree, "src/helper.cpp", "// copied from vm.cpp\nvoid helper() {\n  if (x) {\n"
          "      map_identity_range(root, 0, kernel_end_address);  // same call\n"
          "         flush_whole_tlb_now();\n  }\n}\n")
    sources = publish.scan(tree)
    assert c.VM_LAB1[0].strip() not in publish.secrets_for(1, sources)     # public: no line leak
    out = os.path.join(os.path.dirname(tree), "pub-copy")
    with pytest.raises(PagodaError) as e:
        publish.publish(out, tree, sources=sources)
    assert "lab0: src/helper.cpp contains solution code of the LAB 1 region at src/vm.cpp:" in str(e.value)
    assert "lab1: src/helper.cpp contains solution code of the LAB 1 region" in str(e.value)
    assert "lab2: src/helper.cpp" not in str(e.value)    # lab 2's branch ships lab 1's solution


def test_a_commented_out_copy_is_a_leak_and_skeleton_lines_are_not(tree):
    blocks = publish.secret_blocks(0, publish.scan(tree))
    assert [b.text for b in blocks if b.what.startswith("solution code of the LAB 1 region at src/vm.cpp")] == \
        ["map_identity_range(root, 0, kernel_end_address);\nflush_whole_tlb_now();"]
    assert publish.block_leaks("/* map_identity_range(root, 0, kernel_end_address);\n"
                               " * flush_whole_tlb_now(); */\n", blocks)
    assert not publish.block_leaks("map_identity_range(root, 0, kernel_end_address);\n", blocks)


def test_a_file_that_is_one_region_without_a_skeleton_is_in_the_branches_after_its_lab_only(tree, tmp_path):
    """(kernel/tests/fork_copy_test.cpp: the test of code only the reference has ships with it.)
    Its lines are common test code, found in other files too: no leak while it is not there."""
    common = ["#include <gtest/gtest.h>", '#include "host_support.hpp"', '#include "page_table_fakes.hpp"',
              "ASSERT_TRUE(result.is_error());"]
    write(tree, "tests/given_test.cpp", "\n".join(common) + "\n")
    write(tree, "tests/reference_only_test.cpp", c.region(1, common + ["TEST(Reference, WalksItsOwnWay) {}"]))
    run_git(tree, "add", "tests")
    repo = str(tmp_path / "published")
    publish.publish(repo, tree)
    assert "tests/reference_only_test.cpp" not in run_git(repo, "ls-tree", "-r", "--name-only", "lab1").split()
    assert "TEST(Reference" in show(repo, "lab2", "tests/reference_only_test.cpp")
    assert c.WORD not in show(repo, "lab2", "tests/reference_only_test.cpp")
