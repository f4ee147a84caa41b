"""`./pagoda lab start N`: a student's own code moves into the next lab's branch.

The walkthrough publishes this very tree, clones it as a student would, writes the student's
own solutions (the reference with lines of their own added, so that every region conflicts),
and runs the clone's own ./pagoda: lab 0 done -> lab start 1 -> lab 1 done -> lab start 2.
The student's code of both labs must be in lab 2, with no conflict marker anywhere, and the
tree must build and pass labs 0 and 1.
"""
import os
import re
import subprocess

import pytest

import labtree
from labtree import run_git, write
from pagoda import labstart, publish, regions, treebuild
from pagoda_core import paths
from pagoda_core.speed import scaled  # noqa: E402  (limits for this machine: speed.py)

# Whole trees built or graded end to end: CI's level (./pagoda test --ci), not the sample's.
pytestmark = pytest.mark.end_to_end

CONFLICT = re.compile(r"^(<{7}|={7}|>{7}|\|{7})( |$)", re.M)


def student_line(region, style, path):
    """A line only this student wrote: a comment naming the region, indented like its code."""
    first = next((l for l in region.solution if l.strip()), "")
    indent = first[:len(first) - len(first.lstrip())]
    close = f" {style.close}" if style.close else ""
    return f"{indent}{style.open} my own lab {region.lab} code ({os.path.basename(path)}:{region.begin}){close}\n"


def student_text(src, done):
    """@p src as the student has it after doing labs 0..@p done with code of their own: regions
    of those labs hold the reference plus their own line at both ends, later ones the skeleton."""
    out = []
    for seg in src.parsed.segments:
        if isinstance(seg, str):
            out.append(seg)
        elif seg.skeleton is None:      # the reference's own region: no student writes it
            out += seg.solution if seg.lab <= done else []
        else:
            opening, closing = regions.visible_markers(seg, src.parsed.style)
            if seg.lab <= done:
                mine = student_line(seg, src.parsed.style, src.path)
                out += [opening, mine, *seg.solution, mine, closing]
            else:
                out += [opening, *[regions.uncomment(l, src.parsed.style) for l in seg.skeleton_lines], closing]
    return "".join(out)


def with_regions(sources, up_to):
    return [s for s in sources if s.parsed and any(r.lab <= up_to for r in s.parsed.regions)]


def pagoda_in(clone, *argv):
    return subprocess.run([paths.SYSTEM_PYTHON, os.path.join(clone, "pagoda"), *argv], cwd=clone,
                          capture_output=True, text=True, timeout=scaled(600),
                          env=dict(labtree.git_env(), PAGODA_REEXEC="1"))


def do_lab(clone, sources, lab):
    for src in with_regions(sources, lab):
        write(clone, src.path, student_text(src, lab))
    run_git(clone, "commit", "-q", "-am", f"lab {lab} done, my way")


def no_conflict_markers(clone):
    files = run_git(clone, "ls-files").split()
    return [f for f in files if os.path.isfile(os.path.join(clone, f)) and
            CONFLICT.search(open(os.path.join(clone, f), errors="replace").read())]


@pytest.fixture(scope="module")
def classroom(tmp_path_factory, tree_cache):
    """(sources of this tree, a student's clone of its publication up to lab 2)."""
    base = tmp_path_factory.mktemp("classroom")
    sources = publish.scan(paths.ROOT)
    published = str(base / "published")
    publish.publish(published, paths.ROOT, sources=sources, upto=2, check_leaks=False)
    clone = str(base / "student")
    run_git(str(base), "clone", "-q", published, clone)
    return sources, clone


def test_a_student_walks_through_two_labs(classroom):
    sources, clone = classroom
    assert run_git(clone, "branch", "--show-current").strip() == "lab0"
    do_lab(clone, sources, 0)

    out = pagoda_in(clone, "lab", "start")            # the lab after this branch's: 1
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Merged lab0 (your work) into lab1." in out.stdout
    assert "conflict(s) inside solution regions were resolved in favour of your code" in out.stdout
    assert run_git(clone, "branch", "--show-current").strip() == "lab1"
    assert open(os.path.join(clone, publish.LAB_FILE)).read() == "1\n"
    for src in with_regions(sources, 0):               # lab 0 mine, lab 1 still the skeleton
        assert open(os.path.join(clone, src.path)).read() == student_text(src, 0), src.path

    do_lab(clone, sources, 1)
    out = pagoda_in(clone, "lab", "start", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert run_git(clone, "branch", "--show-current").strip() == "lab2"
    assert run_git(clone, "status", "--porcelain", "--untracked-files=no") == ""
    assert no_conflict_markers(clone) == []
    mine = 0
    for src in with_regions(sources, 1):               # labs 0 and 1 mine, lab 2 the skeleton
        text = open(os.path.join(clone, src.path)).read()
        assert text == student_text(src, 1), src.path
        mine += text.count("my own lab ")
    done = [r for s in sources if s.parsed for r in s.parsed.regions if r.lab <= 1 and r.skeleton is not None]
    assert mine == 2 * len(done) and {r.lab for r in done} == {0, 1}
    # Nothing else differs from the published lab 2 tree.
    changed = set(run_git(clone, "diff", "--name-only", "origin/lab2", "HEAD").split())
    assert changed == {s.path for s in with_regions(sources, 1)}

    # The merged tree works: the student's labs 0 and 1 pass. Its build compiles through the object
    # cache the tool tests' other lab trees share (conftest.py): configured here, so that ./pagoda's
    # build finds it configured; a file is recompiled unless those trees compiled the same text.
    configure = treebuild.configure_argv(clone, paths.DEFAULT_ARCH, os.environ[treebuild.TREE_CACHE_VARIABLE])
    if configure:
        done = subprocess.run(configure, cwd=clone, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    out = pagoda_in(clone, "grade", "lab0", "lab1", "-j", "2")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


# ---- the rules, on the small synthetic tree ------------------------------------------------------

@pytest.fixture
def student(tree, tmp_path):
    published = str(tmp_path / "published")
    publish.publish(published, tree)
    clone = str(tmp_path / "clone")
    run_git(str(tmp_path), "clone", "-q", published, clone)
    return clone


def test_the_overview_s_git_diff_works_in_a_student_s_clone(student):
    """labs/README.md's `git diff lab2 lab3` failed in a clone, which has origin/lab2 and only
    the checked-out lab as a local branch. Its command, with this small tree's labs 1 and 2."""
    with open(os.path.join(paths.LABS, "README.md")) as f:
        commands = re.findall(r"`(git diff (\S*)lab\d (\S*)lab\d)`", f.read())
    assert commands, "labs/README.md shows no git diff between two lab branches"
    for _, first, second in commands:
        out = subprocess.run(["git", "diff", "--stat", f"{first}lab1", f"{second}lab2"], cwd=student,
                             capture_output=True, text=True, env=labtree.git_env())
        assert out.returncode == 0 and out.stdout.strip(), out.stderr
    bare = subprocess.run(["git", "diff", "lab1", "lab2"], cwd=student, capture_output=True, text=True)
    assert bare.returncode != 0            # why the overview names origin/


def test_a_conflict_outside_regions_stops_with_a_list(student, tree):
    # lab 0's region in src/vm.cpp (resolved for the student) and a line outside any region
    # that lab 1 also changes: .pagoda-lab.
    path = os.path.join(student, "src/vm.cpp")
    text = open(path).read().replace(labtree.VM_LAB0_SKEL[0], "u64 lab0_answer = my_answer();")
    write(student, "src/vm.cpp", text)
    write(student, publish.LAB_FILE, "0\n# my notes\n")
    run_git(student, "commit", "-q", "-am", "work")
    outcome = labstart.start(1, student, env=labtree.git_env())
    assert outcome.resolved == {"src/vm.cpp": 1}
    assert list(outcome.left) == [publish.LAB_FILE]
    lines = []
    assert labstart.report(outcome, publish.load_labs(student), student, lines.append) == 1
    assert any(l.startswith("  .pagoda-lab:1 (line 1 of lab1)") for l in lines)
    assert "u64 lab0_answer = my_answer();" in open(path).read()
    assert CONFLICT.search(open(os.path.join(student, publish.LAB_FILE)).read())
    assert run_git(student, "diff", "--name-only", "--diff-filter=U").split() == [publish.LAB_FILE]


def test_refusals(student):
    write(student, "src/vm.cpp", "changed\n")
    with pytest.raises(Exception, match="uncommitted changes"):
        labstart.start(1, student)
    run_git(student, "checkout", "-q", "src/vm.cpp")
    with pytest.raises(Exception, match="there is no branch lab7"):
        labstart.start(7, student)
    with pytest.raises(Exception, match="lab start moves your work forward"):
        labstart.start(0, student)


def test_merge3_and_regions():
    base = ["a\n", "SKEL\n", "z\n"]
    ours = ["a\n", "REF1\n", "REF2\n", "z\n"]
    theirs = ["a\n", "MINE\n", "z\n"]
    text, resolved, left = labstart.resolve_file(base, ours, theirs, [(1, 3)])
    assert (text, resolved, left) == ("a\nMINE\nz\n", 1, [])
    text, resolved, left = labstart.resolve_file(base, ours, theirs, [(2, 3)])   # half outside
    assert resolved == 0 and left == [(2, 2)] and "<<<<<<< lab branch\nREF1\nREF2\n|||||||" in text
    # one-sided changes merge whatever the regions
    assert labstart.resolve_file(base, ours, base, [])[0] == "a\nREF1\nREF2\nz\n"
    assert labstart.resolve_file(base, base, theirs, [])[0] == "a\nMINE\nz\n"


def test_regions_are_found_again_when_they_moved():
    lines = ["x\n", "r1\n", "r2\n", "y\n"]
    entry = {"lab": 0, "first": 2, "count": 2, "digest": publish.region_digest(["r1\n", "r2\n"])}
    assert labstart.locate_regions([entry], lines) == [(1, 3)]
    assert labstart.locate_regions([entry], ["new\n"] + lines) == [(2, 4)]
    assert labstart.locate_regions([entry], ["x\n", "r1\n"]) == []


def test_status_and_start_give_the_same_next_steps(tree):
    labs = publish.load_labs(tree)
    steps = labstart.next_steps(0, labs)
    assert steps[1] == "  ./pagoda lab start 1"
    assert labstart.next_steps(2, labs)[0].startswith("Lab 2 is the last lab")
    from pagoda import labstatus
    import inspect
    assert "labstart.next_steps(n, labs)" in inspect.getsource(labstatus.status)
