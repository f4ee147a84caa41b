"""The Gradescope autograder and the GitHub Classroom workflow, tried here.

Gradescope: the zip is unpacked the way Gradescope lays it out (source/, run_autograder,
submission/, results/) under a temporary directory standing in for /autograder, the generated
run_autograder grades a published lab-0 tree, and results.json is checked against the fields
Gradescope documents (https://gradescope-autograders.readthedocs.io/en/latest/specs/).
Classroom: the workflow's steps and reporter wiring are checked, and each step's command is
run here: it must pass exactly when the grader says the test passes.
"""
import json
import os
import re
import shutil
import stat
import subprocess
import zipfile

import pytest

from labtree import write
from pagoda import autograder, publish
from pagoda_core import paths
from pagoda_core.speed import scaled  # noqa: E402  (limits for this machine: speed.py)

# Whole trees built or graded end to end: CI's level (./pagoda test --ci), not the sample's.
pytestmark = pytest.mark.end_to_end

# Gradescope's documented results.json fields, and the values of the enumerated ones.
TOP_FIELDS = {"score", "execution_time", "output", "output_format", "test_output_format",
              "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"}
TEST_FIELDS = {"score", "max_score", "status", "name", "name_format", "number", "output",
               "output_format", "tags", "visibility", "extra_data"}
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
FORMATS = {"text", "html", "simple_format", "md", "ansi"}
STATUSES = {"passed", "failed"}


def validate(results):
    """Every field is one Gradescope documents, with the documented type or value."""
    assert set(results) <= TOP_FIELDS, set(results) - TOP_FIELDS
    assert isinstance(results["score"], (int, float))
    assert isinstance(results["execution_time"], (int, float)) and results["execution_time"] >= 0
    assert isinstance(results["output"], str) and results["output"]
    for key in ("output_format", "test_output_format"):
        assert results[key] in FORMATS
    for key in ("visibility", "stdout_visibility"):
        assert results[key] in VISIBILITIES
    assert isinstance(results["extra_data"], dict)
    numbers = set()
    for t in results["tests"]:
        assert set(t) <= TEST_FIELDS, set(t) - TEST_FIELDS
        assert isinstance(t["name"], str) and isinstance(t["output"], str)
        assert isinstance(t["score"], (int, float)) and isinstance(t["max_score"], (int, float))
        assert 0 <= t["score"] <= t["max_score"]
        assert t["status"] in STATUSES and (t["status"] == "passed") == (t["score"] == t["max_score"])
        assert t["visibility"] in VISIBILITIES and t["output_format"] in FORMATS
        assert all(isinstance(tag, str) for tag in t["tags"])
        assert t["number"] not in numbers
        numbers.add(t["number"])
    assert results["score"] == sum(t["score"] for t in results["tests"])


@pytest.fixture(scope="module")
def gradescope(tmp_path_factory, tree_cache):
    """run(tree) -> (results, stdout): run_autograder on a submission laid out as Gradescope does."""
    base = tmp_path_factory.mktemp("gradescope")
    zip_path = str(base / "autograder.zip")
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), "autograder", "gradescope",
                          "--lab", "0", "--out", zip_path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    count = [0]

    def run(tree_maker, prefix=()):
        count[0] += 1
        ag = base / f"autograder{count[0]}"
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(ag / "source")
            for info in z.infolist():      # zipfile drops the modes: put them back
                mode = info.external_attr >> 16
                if mode:
                    os.chmod(ag / "source" / info.filename, stat.S_IMODE(mode))
        shutil.copy(ag / "source" / "run_autograder", ag / "run_autograder")
        # (lab 0 runs no user program: their build from the zip alone is the test below)
        (ag / "results").mkdir()
        tree_maker(str(ag / "submission"))
        proc = subprocess.run([*prefix, str(ag / "run_autograder")], cwd=str(ag), capture_output=True, text=True,
                              env=dict(os.environ, PAGODA_AUTOGRADER_ROOT=str(ag)), timeout=scaled(900))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        run.last = ag
        with open(ag / "results" / "results.json") as f:
            return json.load(f), proc.stdout
    run.zip = zip_path
    return run


def skeleton(dest):
    publish.publish_tree(0, dest, paths.ROOT)


TRAPS = "arch/x86_64/traps.cpp"
SKELETON_PANIC = re.compile(r'  panic\("lab 0: decode the page-fault error code.*?\);\n', re.S)


def broken(dest):
    """The skeleton with a line that does not compile written in lab 0's region."""
    skeleton(dest)
    with open(os.path.join(dest, TRAPS)) as f:
        text = f.read()
    write(dest, TRAPS, SKELETON_PANIC.sub("  not C++ at all;\n", text, count=1))


def broken_cmake(dest):
    """The skeleton with a build file that would not configure: outside every region."""
    skeleton(dest)
    with open(os.path.join(dest, "arch/x86_64/CMakeLists.txt"), "a") as f:
        f.write("\nadd_library(stray STATIC no_such_file.cpp)\n")


def test_the_zip_has_gradescope_s_two_files_at_its_root(gradescope):
    with zipfile.ZipFile(gradescope.zip) as z:
        names = z.namelist()
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        run_autograder = z.read("run_autograder").decode()
    assert "setup.sh" in names and "run_autograder" in names
    assert modes["run_autograder"] & stat.S_IXUSR and modes["setup.sh"] & stat.S_IXUSR
    assert "grade/test_lab0.py" in names and "pagoda" in names and "labs/00-boot/lab.toml" in names
    assert ".pagoda-graded.json" in names and "kernel/main/kmain.cpp" in names
    assert 'chmod -R go-rwx "$AG/source"' in run_autograder     # the hidden tests are root's alone


@pytest.mark.parametrize("lab", [0, 7])
def test_the_zip_holds_the_lab_s_published_tree_and_no_solution(gradescope, tmp_path, lab):
    """What the zip's folder grades in is exactly the tree the lab's students get (lab 0, and
    lab 7, the last); no line of a reference solution of the lab or later is in the zip."""
    from pagoda import transplant
    source, zip_path = tmp_path / "source", gradescope.zip
    if lab:
        zip_path = str(tmp_path / "autograder.zip")
        autograder.gradescope_zip(lab, "x86_64", zip_path)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(source)
        names, graded = z.namelist(), json.loads(z.read(transplant.GRADED_FILE))
        data = b"".join(z.read(n) for n in names if n.startswith(("kernel/", "arch/")))
    assert f"grade/test_lab{lab}.py" in names and graded["lab"] == lab, (names[:5], graded.get("lab"))
    main, zipped = transplant.published(lab, paths.ROOT), transplant.load(lab, str(source))
    # (zipfile drops the modes when it unpacks: the bytes and the regions must be the same)
    assert {p: d for p, (d, _) in zipped.files.items()} == {p: d for p, (d, _) in main.files.items()}
    assert zipped.ranges == main.ranges
    # (the solution lines of the lab and later that its published tree does not show anyway)
    secrets = [line.encode() for line, (path, what) in publish.secrets_for(lab, publish.scan(paths.ROOT)).items()
               if what.startswith("solution text")]
    assert secrets and not [s for s in secrets if s in data][:3]


def test_the_zip_builds_the_grader_s_user_programs_alone(gradescope, tmp_path):
    """What run_autograder does before grading a lab whose tests run user programs: build them
    from the zip's own files (nothing of a kernel is there), the copy every submission's kernel
    must embed."""
    from pagoda_core import build
    source = tmp_path / "source"
    with zipfile.ZipFile(gradescope.zip) as z:
        z.extractall(source)
    out = build.grader_user_programs(str(source), "x86_64")
    built = sorted(os.listdir(out))
    assert "spin.elf" in built and "forktree.elf" in built, built
    mine = os.path.join(paths.build_dir("x86_64"), "user", "x86_64", "embedded", "spin.elf")
    if os.path.exists(mine):   # the same compiler makes the same bytes from the same sources
        with open(mine, "rb") as a, open(os.path.join(out, "embedded", "spin.elf"), "rb") as b:
            assert a.read() == b.read()


def test_run_autograder_grades_a_submission(gradescope):
    results, stdout = gradescope(skeleton)
    validate(results)
    tests = {t["name"]: t for t in results["tests"]}
    assert set(tests) == {"lab0/boot_banner", "lab0/memory_map", "lab0/trap_ud", "lab0/trap_pf",
                          "lab0/timer_ticks", "lab0/panic_exit"}
    assert results["score"] == 13 and sum(t["max_score"] for t in results["tests"]) == 17
    lab0 = {t.id: t for t in publish.load_labs(paths.ROOT)[0].tests}
    for name, t in tests.items():       # a short name; what the test checks opens its output
        assert t["output"].startswith(f"Checks: {lab0[name.split('/')[1]].checks}\n\n"), t["output"]
    pf = tests["lab0/trap_pf"]
    assert pf["status"] == "failed" and pf["score"] == 0
    assert "missing:" in pf["output"] and "last " in pf["output"] and "lines of serial output" in pf["output"]
    assert "<- expected: lab 1 comes later, not the cause" in pf["output"]
    assert tests["lab0/boot_banner"]["status"] == "passed"
    assert results["output"].startswith("Lab 0 (Boot and console) on x86_64: 13/17 points; graded.")
    assert "13/17" in stdout and "  lab0/trap_pf: 0/" in stdout


def outside_the_regions(dest):
    """The skeleton with two build files changed outside every region: the top-level
    CMakeLists.txt would run a command (an adversary's), arch/x86_64/CMakeLists.txt would not
    configure."""
    broken_cmake(dest)
    with open(os.path.join(dest, "CMakeLists.txt"), "a") as f:
        f.write(f'execute_process(COMMAND touch "{dest}/pwned")\n')


@pytest.fixture(scope="module")
def outside(gradescope):
    """(results, stdout, the autograder's folder) of outside_the_regions, graded once for the two
    tests below: as root, in Gradescope's container (no CAP_SYS_ADMIN: no namespaces can be made);
    as another user, as that user."""
    prefix = ("setpriv", "--bounding-set=-sys_admin", "--") if os.geteuid() == 0 else ()
    results, stdout = gradescope(outside_the_regions, prefix=prefix)
    return results, stdout, gradescope.last


LEFT_OUT = ("- changes outside the solution regions were not built (the instructor's text was used): "
            "CMakeLists.txt, arch/x86_64/CMakeLists.txt\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="Gradescope runs run_autograder as root")
def test_run_autograder_as_root_in_a_container_without_namespaces(outside):
    """Gradescope's container: root, but without CAP_SYS_ADMIN (no namespaces can be made). The
    build then runs in the uid sandbox alone, and grades as anywhere else; an adversary's build
    files are named and never run."""
    results, stdout, folder = outside
    validate(results)
    assert results["score"] == 13 and "13/17" in stdout
    assert LEFT_OUT in results["output"], results["output"]
    with open(folder / "work" / "submission" / "build.log") as f:
        assert "(no namespaces on this machine)" in f.read() and not os.path.exists(folder / "submission" / "pwned")


def test_a_submission_that_does_not_build(gradescope):
    """The first compiler error, with its source line, paths relative to the student's tree; not
    the compiler's command line (it says -Werror) nor the grading container's paths."""
    results, _ = gradescope(broken)
    validate(results)
    assert results["score"] == 0 and results["extra_data"]["status"] == "does not build"
    out = results["output"]
    assert re.search(r"^- does not build: arch/x86_64/traps\.cpp:\d+:\d+: error: ", out, re.M), out
    # clang's snippet: the line, then a caret under it; clang 16 and later put the line's number and
    # a bar before both (Debian 13's clang 19: "   75 | not C++ at all;" and "      | ^").
    assert re.search(r"^    arch/x86_64/traps\.cpp:\d+:\d+: error: .*\n    (?: *\d+ \| )?  not C\+\+ at all;\n"
                     r"    (?: +\| )?\s*\^", out, re.M), out
    assert "-Werror" not in out and "/submission" not in out and "autograder" not in out
    assert all("Not run: the kernel does not build" in t["output"] for t in results["tests"])


def test_a_build_file_changed_outside_the_regions_is_named_and_not_built(outside):
    """A student's edit of a CMake file (no region there) would make the build fail; the tree is
    graded without it, and the feedback names it."""
    results, _, _ = outside
    validate(results)
    assert results["extra_data"]["status"] == "graded" and results["score"] == 13, results["output"]
    assert LEFT_OUT in results["output"], results["output"]


def test_setup_sh_installs_the_grading_packages(gradescope, tmp_path):
    with zipfile.ZipFile(gradescope.zip) as z:
        script = z.read("setup.sh").decode()
    (tmp_path / "setup.sh").write_text(script)
    (tmp_path / "bin").mkdir()
    calls = tmp_path / "calls"
    write(str(tmp_path), "bin/apt-get", f"#!/bin/sh\necho \"$*\" >> {calls}\n", mode=0o755)
    out = subprocess.run(["bash", str(tmp_path / "setup.sh")], capture_output=True, text=True,
                         env=dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}"))
    assert out.returncode == 0, out.stderr
    update, install = open(calls).read().splitlines()
    assert update == "update -q"
    packages = install.split()
    assert {"clang", "lld", "llvm", "cmake", "ninja-build", "qemu-system-x86",
            "python3-pytest", "python3-pytest-timeout", "python3-tomli"} <= set(packages)
    assert not [p for p in packages if re.search(r"-\d+(-dev)?$", p)], packages   # no version pinned
    assert "doxygen" not in packages and "qemu-system-arm" not in packages


# ---- GitHub Classroom ----------------------------------------------------------------------------

def workflow_steps(text):
    """[(id, {with key: value})] of the command-grader steps, read from the generated YAML."""
    steps = []
    for block in re.split(r"\n    - name: ", text)[1:]:
        if "autograding-command-grader" not in block:
            continue
        sid = re.search(r"^      id: (\S+)$", block, re.M)[1]
        given = dict(re.findall(r"^        ([a-z-]+): (.*)$", block, re.M))
        steps.append((sid, given))
    return steps


@pytest.mark.parametrize("lab", [1, 7])
def test_classroom_workflow_reports_points_per_test(tmp_path, lab):
    out = tmp_path / "classroom.yml"
    proc = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), "autograder", "classroom",
                           "--lab", str(lab), "--grader-repo", "course/pagoda-grader", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    from pagoda_grade import manifest
    spec = manifest.load_all()[lab]
    steps = workflow_steps(text)
    assert [s[1]["test-name"] for s in steps] == [f"lab{lab}/{t.id}" for t in spec.visible_tests]
    assert [int(s[1]["max-score"]) for s in steps] == [t.points for t in spec.visible_tests]
    assert all(s[1]["command"].endswith(f"--test {t.id}") for s, t in zip(steps, spec.visible_tests))
    assert all(1 <= int(s[1]["timeout"]) <= 10 for s in steps)            # minutes
    ids = [s[0] for s in steps]
    assert re.search(r"uses: classroom-resources/autograding-grading-reporter@v1\n", text)
    assert f"runners: {','.join(ids)}\n" in text
    for sid in ids:     # the reporter reads <ID>_RESULTS, base64 JSON from the step's output
        assert f'{sid.upper()}_RESULTS: "${{{{steps.{sid}.outputs.result}}}}"' in text
    assert "'on':\n- push\n" in text and "checks: write" in text
    # The grader is the instructor's, checked out beside the submission: never the student's copy.
    assert "repository: course/pagoda-grader\n" in text and "ref: main\n" in text and "path: grader\n" in text
    assert "path: submission\n" in text and f"grader/pagoda autograder run --lab {lab}" in text
    assert "/usr/bin/python3 ./pagoda" not in text   # no step runs the student's copy of anything


def test_classroom_needs_the_grader_s_repository(tmp_path):
    proc = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), "autograder", "classroom",
                           "--lab", "1", "--grader-repo", "not a repo", "--out", str(tmp_path / "x.yml")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "OWNER/NAME" in proc.stderr


def test_each_classroom_command_passes_exactly_when_its_test_does(tmp_path, tree_cache):
    """The workflow's steps, run here as the runner would: the submission (the lab-0 skeleton,
    its grader files rewritten to pass everything) in submission/, this tree's grader in grader/;
    the grading step grades with grader/'s tests, then trap_pf's step fails and boot_banner's
    passes."""
    text = autograder.classroom_workflow(0, "x86_64", "course/pagoda-grader")
    commands = {s[1]["test-name"]: s[1]["command"] for s in workflow_steps(text)}
    grade = re.search(r"^      run: (.*grader/pagoda autograder run.*)$", text, re.M)[1]
    assert grade.startswith("sudo /usr/bin/python3 grader/pagoda")    # root: the build's own user
    if os.geteuid() == 0:
        grade = grade[len("sudo "):]
    workspace = tmp_path / "workspace"
    publish.publish_tree(0, str(workspace / "submission"), paths.ROOT)
    with open(workspace / "submission" / "grade" / "test_lab0.py", "w") as f:   # a student's "tests"
        f.write("raise SystemExit('the student copy of the tests ran')\n")
    os.symlink(paths.ROOT, workspace / "grader")
    if os.geteuid() != 0:
        pytest.skip("the workflow's grading step runs as root (sudo)")
    # (a generous limit of its own: the machine running this test may be far busier than a runner)
    out = subprocess.run(grade.split() + ["--time-limit", "1500"], cwd=workspace, capture_output=True, text=True,
                         timeout=scaled(1800))
    assert out.returncode == 0, out.stdout + out.stderr
    for name, expect in (("lab0/boot_banner", 0), ("lab0/trap_pf", 1)):
        argv = commands[name].split()
        assert argv[:2] == ["/usr/bin/python3", "grader/pagoda"]
        out = subprocess.run(argv, cwd=workspace, capture_output=True, text=True, timeout=scaled(60))
        assert out.returncode == expect, out.stdout + out.stderr
        assert out.stdout.strip()
