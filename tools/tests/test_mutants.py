"""`./pagoda labs mutants` on a tiny synthetic lab: the slip files' validation, and a whole run
(the published tree, real CMake builds of a "kernel" that is a copy of the source, and a
grader of a few lines that the tree carries as its own ./pagoda), without QEMU."""
import dataclasses
import os
import shutil
import textwrap

import pytest

from labtree import write
from pagoda import mutants, publish
from pagoda_core import paths

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("ninja") is None,
                                reason="needs cmake and ninja (./pagoda setup)")

# The synthetic tree's grader: lab 1 has two tests in this order, t1 (the identity map) and
# t1b (the TLB flush); lab 2 has t2. A test passes when the "kernel" (a copy of src/vm.cpp)
# holds its solution line. With --first-failure it stops at the first failing test.
FAKE_PAGODA = textwrap.dedent('''\
    #!/usr/bin/python3
    import json, sys
    args = sys.argv[1:]
    assert args[0] == "grade", args
    lab = int(args[1][3:])
    opt = lambda name: args[args.index(name) + 1]
    kernel = open(opt("--kernel")).read()
    tests = {1: [("t1", "map_identity_range(root, 0, kernel_end_address);",
                  "the identity map is missing: the kernel faulted at its first instruction after paging"),
                 ("t1b", "flush_whole_tlb_now();", "a stale TLB entry: the old translation was still used")],
             2: [("t2", "secret_helper_for_lab2 = 1234567;", "the lab-2 helper is wrong")]}[lab]
    results, earned = [], 0
    for tid, needle, why in tests:
        ok = needle in kernel
        earned += ok
        results.append({"lab": lab, "id": tid, "outcome": "passed" if ok else "failed", "duration": 0.0,
                        "reason": "" if ok else why + "\\nboot token 00 (the second line)\\n  | console"})
        if not ok and "--first-failure" in args:
            break
    with open(opt("--json"), "w") as f:
        json.dump({"labs": [lab], "earned": earned, "possible": len(tests), "results": results}, f)
    with open("grades.log", "a") as f:
        f.write(" ".join(args[:2]) + " ran " + ",".join(r["id"] for r in results) + "\\n")
''')

CMAKE = textwrap.dedent('''\
    cmake_minimum_required(VERSION 3.20)
    project(demo NONE)
    set(out ${CMAKE_BINARY_DIR}/kernel.elf)
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -DIN=${CMAKE_SOURCE_DIR}/src/vm.cpp -DOUT=${out} -P ${CMAKE_SOURCE_DIR}/compile.cmake
      DEPENDS ${CMAKE_SOURCE_DIR}/src/vm.cpp)
    add_custom_target(kernel ALL DEPENDS ${out})
''')
COMPILE = textwrap.dedent('''\
    file(READ ${IN} text)
    if(text MATCHES "SYNTAX_ERROR")
      message(FATAL_ERROR "src/vm.cpp:1:1: error: expected ';'")
    endif()
    file(WRITE ${OUT} "${text}")
    file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/user/x86_64)
    file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/user/x86_64/hello.elf "user program")
''')
# (version 3, as the tree's own CMakePresets.json: CMake 3.22, Ubuntu 22.04's, reads no later one)
PRESETS = ('{"version": 3, "configurePresets": [{"name": "x86_64", "generator": "Ninja", '
           '"binaryDir": "${sourceDir}/build/x86_64"}], "buildPresets": [{"name": "x86_64", '
           '"configurePreset": "x86_64"}]}\n')

LAB1_TWO_TESTS = '\n[[tests]]\nid = "t1b"\npoints = 1\ntimeout = 5\nchecks = "the TLB is flushed"\n'


def slip(title="the identity map is not made", function="map_kernel", find="    map_identity_range(root, 0, kernel_end_address);\n",
         replace="", file="src/vm.cpp", cause="identity map", extra=""):
    def lit(text):
        return "'''" + ("\n" if text.startswith("\n") or "\n" in text else "") + text + "'''"
    return (f'title = "{title}"\nfunction = "{function}"\narches = ["x86_64"]\ncause = \'{cause}\'\n{extra}\n'
            f'[[edit]]\nfile = "{file}"\nfind = {lit(find)}\nreplace = {lit(replace)}\n')


@pytest.fixture
def lab_tree(tree):
    with open(os.path.join(tree, "labs/01-map/lab.toml"), "a") as f:
        f.write(LAB1_TWO_TESTS)
    write(tree, "pagoda", FAKE_PAGODA, mode=0o755)
    write(tree, "CMakeLists.txt", CMAKE)
    write(tree, "compile.cmake", COMPILE)
    write(tree, "CMakePresets.json", PRESETS)
    return tree


def add_slip(tree, lab_dir, name, text):
    write(tree, f"labs/{lab_dir}/mutants/{name}.toml", text)


def load(tree):
    sources = publish.scan(tree)
    return mutants.load_all(tree, publish.load_labs(tree), sources)


# ---- the slip files -------------------------------------------------------------------------

def test_a_good_slip_loads(lab_tree):
    add_slip(lab_tree, "01-map", "no-map", slip(extra='seed = "002"'))
    [m], problems = load(lab_tree)
    assert problems == []
    assert (m.name, m.lab, m.arches, m.seed, m.function) == ("lab1/no-map", 1, ("x86_64",), "002", "map_kernel")
    assert m.causes == {"x86_64": "identity map"}


@pytest.mark.parametrize("text, problem", [
    (slip(extra='colour = "red"'), "unknown key 'colour'"),
    (slip(find="flush_whole_tlb_now();\n    flush"), "occurs 0 times"),
    (slip(find="u64"), "occurs 2 times"),
    (slip(find="int tail_line_stays_everywhere = 1;"), "not wholly inside the reference part of a LAB 1 region "
                                                       "(it starts outside every region)"),
    (slip(find="static int secret_helper_for_lab2", function="secret_helper_for_lab2"),
     "not wholly inside the reference part of a LAB 1 region (it starts in a LAB 2 region)"),
    (slip(find='panic("lab 1: write map_kernel()");'), "(it reaches a marker or the skeleton)"),
    (slip(find="    map_identity_range(root, 0, kernel_end_address);\n    flush_whole_tlb_now();\n// LAB"),
     "(it reaches a marker or the skeleton)"),
    (slip(cause="(unclosed"), "not a valid regex"),
    (slip(function="no_such_function"), "'no_such_function' appears in none of the edited files"),
    (slip(replace="    map_identity_range(root, 0, kernel_end_address);\n"), "changes nothing"),
    (slip(file="src/nothing.cpp"), "is not a text file of the tree"),
    (slip().replace('arches = ["x86_64"]', 'arches = ["aarch64"]'), "lab 1 does not run"),
    (slip().replace('arches = ["x86_64"]', 'arches = ["riscv"]'), "'arches' must be a non-empty list"),
    (slip().replace("cause = 'identity map'", ""), "no cause for x86_64"),
    (slip().replace('title = "the identity map is not made"\n', ""), "'title' is missing"),
    (slip(extra='seed = "two"'), "'seed' must name a post-mortem"),
    (slip().split("[[edit]]")[0], "no [[edit]]"),
    (slip().replace('file = "src/vm.cpp"\n', 'file = "src/vm.cpp"\nline = 3\n'), "unknown key 'line'"),
    (slip(extra='region_lab = "1"'), "'region_lab' must name an earlier lab than 1"),
])
def test_a_bad_slip_is_refused_with_its_reason(lab_tree, text, problem):
    add_slip(lab_tree, "01-map", "bad", text)
    found, problems = load(lab_tree)
    assert found == []
    assert any(problem in p and p.startswith("labs/01-map/mutants/bad.toml") for p in problems), problems


def test_a_slip_may_lie_in_an_earlier_labs_region_it_names(lab_tree):
    """(lab 8's slips in the student's own lab 7 code, which two CPUs show anew)"""
    add_slip(lab_tree, "02-higher", "old-code", slip(extra='region_lab = "1"'))
    [m], problems = load(lab_tree)
    assert problems == [] and m.name == "lab2/old-code"
    add_slip(lab_tree, "02-higher", "old-code", slip())
    _, problems = load(lab_tree)
    assert any("not wholly inside the reference part of a LAB 2 region (it starts in a LAB 1 region)" in p
               for p in problems), problems


def test_the_folder_holds_only_slips(lab_tree):
    write(lab_tree, "labs/01-map/mutants/README.md", "what these are\n")
    write(lab_tree, "labs/01-map/mutants/notes.txt", "x\n")
    _, problems = load(lab_tree)
    assert problems == ["labs/01-map/mutants/notes.txt: not a slip (SLUG.toml) or README.md"]


def test_the_real_slips_are_valid():
    """Every slip file of the real labs loads (the find texts are where they must be)."""
    sources = publish.scan(paths.ROOT)
    _, problems = mutants.load_all(paths.ROOT, publish.load_labs(paths.ROOT), sources)
    assert problems == []


def test_the_first_failing_test_is_judged_in_manifest_order(lab_tree):
    add_slip(lab_tree, "01-map", "s", slip())
    [m], _ = load(lab_tree)
    specs = publish.load_labs(lab_tree)[1].tests
    data = {"earned": 1, "possible": 2, "results": [
        {"lab": 1, "id": "t1b", "outcome": "passed", "reason": ""},
        {"lab": 1, "id": "t1", "outcome": "failed", "reason": "\n  the identity map is missing\nline two\nline three"}]}
    o = mutants.judge(mutants.Outcome(m, "x86_64"), data, specs)
    assert (o.test, o.headline, o.named, o.ok) == ("t1", ["the identity map is missing", "line two"], True, True)
    data["results"][1]["reason"] = "something else\nline two\nthe identity map (third line: too late)"
    o = mutants.judge(mutants.Outcome(m, "x86_64"), data, specs)
    assert not o.named and "do not name the cause" in o.problem
    data = {"earned": 2, "possible": 2, "results": [{"lab": 1, "id": t, "outcome": "passed"} for t in ("t1", "t1b")]}
    assert "scored full marks" in mutants.judge(mutants.Outcome(m, "x86_64"), data, specs).problem


def test_another_solution_loads_without_a_cause_and_passes_only_at_full_marks(lab_tree):
    text = slip(replace="    map_identity_range(root, 0, kernel_end_address + 0);\n").replace("cause = 'identity map'\n", "")
    write(lab_tree, "labs/01-map/solutions/other.toml", text)
    labs = publish.load_labs(lab_tree)
    assert load(lab_tree) == ([], [])   # (not a slip: the slips' folder is another)
    [m], problems = mutants.load_all(lab_tree, labs, publish.scan(lab_tree), solutions=True)
    assert problems == [] and m.solution and m.causes == {}
    full = {"earned": 2, "possible": 2, "results": [{"lab": 1, "id": t, "outcome": "passed"} for t in ("t1", "t1b")]}
    assert mutants.judge(mutants.Outcome(m, "x86_64"), full, labs[1].tests).ok
    part = {"earned": 1, "possible": 2, "results": [{"lab": 1, "id": "t1", "outcome": "passed"},
                                                    {"lab": 1, "id": "t1b", "outcome": "failed", "reason": "stale"}]}
    o = mutants.judge(mutants.Outcome(m, "x86_64"), part, labs[1].tests)
    assert not o.ok and o.problem == "another solution scored 1/2: t1b failed"
    assert publish.is_staff_only("labs/01-map/solutions/other.toml")


# ---- a whole run ------------------------------------------------------------------------------

def test_a_run_applies_builds_grades_and_restores(lab_tree):
    add_slip(lab_tree, "01-map", "a-no-map", slip())
    add_slip(lab_tree, "01-map", "b-no-flush", slip(title="the TLB is not flushed", find="    flush_whole_tlb_now();\n",
                                                     replace="    // (no flush)\n", cause="stale TLB"))
    add_slip(lab_tree, "01-map", "c-wrong-cause", slip(cause="kernel stack"))
    add_slip(lab_tree, "01-map", "d-harmless", slip(title="a harmless change", find="    flush_whole_tlb_now();\n",
                                                    replace="    flush_whole_tlb_now();  // flush\n", cause="x"))
    add_slip(lab_tree, "01-map", "e-no-build", slip(replace="    SYNTAX_ERROR\n"))
    add_slip(lab_tree, "02-higher", "f-last-lab", slip(function="secret_helper_for_lab2", cause="lab-2 helper",
                                                       find="static int secret_helper_for_lab2 = 1234567;",
                                                       replace="static int secret_helper_for_lab2 = 7654321;"))
    lines = []
    problems = mutants.run(lab_tree, arches=("x86_64",), out=lines.append, workers=2)
    text = "\n".join(lines)
    rows = {l.split()[0]: l for l in lines if l.startswith("lab") and " x86_64 " in l}
    assert rows["lab1/a-no-map"].split()[2:5] == ["0/2", "t1", "yes"]
    assert rows["lab1/b-no-flush"].split()[2:5] == ["1/2", "t1b", "yes"]
    assert rows["lab1/c-wrong-cause"].split()[2:5] == ["0/2", "t1", "NO"]
    assert rows["lab1/d-harmless"].split()[2:5] == ["2/2", "-", "NO"]
    assert rows["lab1/e-no-build"].split()[2:5] == ["-", "-", "NO"]
    assert rows["lab2/f-last-lab"].split()[2:5] == ["0/1", "t2", "yes"]
    assert problems == 3
    assert "lab1/c-wrong-cause (x86_64): caught by t1, but its first 2 lines do not name the cause /kernel stack/" in text
    assert "lab1/d-harmless (x86_64): not caught: lab 1 scored full marks with the slip" in text
    assert "lab1/e-no-build (x86_64): the slipped kernel does not build" in text and "error: expected ';'" in text
    assert "3/6 slips caught and named" in lines[-1]

    # Lab 1's slips went into the published lab-2 tree, lab 2's (the last lab) into the reference
    # tree; both are back to their unslipped text, and each grade stopped at its first failure.
    check = os.path.join(lab_tree, "build", "labs-check")
    sources = publish.scan(lab_tree)
    vm = next(s for s in sources if s.path == "src/vm.cpp")
    with open(os.path.join(check, "lab2", "src", "vm.cpp"), "rb") as f:
        assert f.read() == publish.resolved(vm, 2)
    with open(os.path.join(check, "reference", "src", "vm.cpp"), "rb") as f:
        assert f.read() == vm.data
    assert not os.path.exists(os.path.join(check, "reference", publish.LAB_FILE))
    # The slips quote solutions: no published branch carries them (the reference tree is main).
    assert not os.path.exists(os.path.join(check, "lab2", "labs", "01-map", "mutants"))
    assert os.path.exists(os.path.join(check, "reference", "labs", "01-map", "mutants", "a-no-map.toml"))
    with open(os.path.join(check, "lab2", "grades.log")) as f:
        ran = sorted(f.read().splitlines())
    assert ran == ["grade lab1 ran t1", "grade lab1 ran t1", "grade lab1 ran t1,t1b", "grade lab1 ran t1,t1b"]
    # The set-aside kernel of a slip is the slipped one, with the user programs beside it.
    slipped = os.path.join(check, "mutants", "lab1", "a-no-map", "x86_64")
    with open(os.path.join(slipped, "kernel.elf")) as f:
        assert "map_identity_range" not in f.read()
    assert os.path.exists(os.path.join(slipped, "user", "x86_64", "hello.elf"))


def test_list_builds_nothing(lab_tree):
    add_slip(lab_tree, "01-map", "no-map", slip(extra='seed = "002"'))
    lines = []
    assert mutants.run(lab_tree, listing=True, out=lines.append) == 0
    assert lines == ["lab1/no-map  [x86_64]  map_kernel: the identity map is not made (seed 002)",
                     "labs mutants: 1 slip(s) in 1 lab(s)"]
    assert not os.path.exists(os.path.join(lab_tree, "build", "labs-check"))


def test_a_first_failure_grade_marks_the_tests_after_the_failure_as_not_run(lab_tree, capsys):
    """--first-failure: the table says which tests never ran (after the first that failed)."""
    import io
    from pagoda import grade
    labs = publish.load_labs(lab_tree)
    out = io.StringIO()
    results = {(1, "t1"): {"lab": 1, "id": "t1", "outcome": "failed", "duration": 0.1, "reason": "the map is wrong"}}
    grade.print_table([1], labs, results, out=out, first_failure=True)
    lines = out.getvalue().splitlines()
    assert lines[1].strip() == "t1: FAIL (0.10s)" and lines[2].strip() == "the map is wrong"
    assert lines[3].strip() == f"t1b: FAIL ({grade.NOT_RUN})"
    out = io.StringIO()
    grade.print_table([1], labs, results, out=out)        # without it: a test with no result is a crash
    assert "no result: the grader crashed" in out.getvalue()


def test_slips_can_be_chosen_by_name(lab_tree):
    add_slip(lab_tree, "01-map", "no-map", slip())
    add_slip(lab_tree, "01-map", "no-flush", slip(find="    flush_whole_tlb_now();\n", replace="", cause="stale"))
    lines = []
    assert mutants.run(lab_tree, listing=True, out=lines.append, slugs=["no-flush"]) == 0
    assert lines[0].startswith("lab1/no-flush ") and lines[-1] == "labs mutants: 1 slip(s) in 1 lab(s)"
    lines = []
    mutants.run(lab_tree, listing=True, out=lines.append, slugs=["lab1/no-map"])
    assert lines[0].startswith("lab1/no-map ")
    with pytest.raises(mutants.PagodaError, match="no slip nothing"):
        mutants.run(lab_tree, listing=True, out=lines.append, slugs=["nothing"])


def test_slips_kept_outside_the_tree_are_checked_instead_of_the_labs_own(lab_tree, tmp_path):
    """--slips DIR: DIR/NN-name/ or DIR/labN/ hold the slips; the labs' own are not loaded, a
    folder that names no lab is a problem (but results/, the set's own measurements), and the
    run grades them like the in-tree ones."""
    add_slip(lab_tree, "01-map", "in-tree", slip())
    outside = tmp_path / "outside"
    (outside / "01-map").mkdir(parents=True)
    (outside / "01-map" / "no-flush.toml").write_text(
        slip(find="    flush_whole_tlb_now();\n", replace="", cause="stale TLB"))
    (outside / "README.md").write_text("the outside set\n")
    (outside / "results").mkdir()                          # the set's own measurements: not slips
    (outside / "results" / "table.txt").write_text("slip ISA caught\n")
    lines = []
    assert mutants.run(lab_tree, listing=True, out=lines.append, slips_dir=str(outside)) == 0
    assert lines == ["lab1/no-flush  [x86_64]  map_kernel: the identity map is not made",
                     "labs mutants: 1 slip(s) in 1 lab(s)"]
    (outside / "01-map").rename(outside / "lab1")
    lines = []
    assert mutants.run(lab_tree, listing=True, out=lines.append, slips_dir=str(outside)) == 0
    assert lines[0].startswith("lab1/no-flush ")
    (outside / "lab9").mkdir()
    lines = []
    assert mutants.run(lab_tree, listing=True, out=lines.append, slips_dir=str(outside)) == 1
    assert any("lab9: not a lab's folder of slips" in line for line in lines)
    (outside / "lab9").rmdir()
    (outside / "results.toml").write_text("")               # only a folder named results/ is let through
    lines = []
    assert mutants.run(lab_tree, listing=True, out=lines.append, slips_dir=str(outside)) == 1
    assert any("results.toml: not a lab's folder of slips" in line for line in lines)
    (outside / "results.toml").unlink()
    lines = []
    assert mutants.run(lab_tree, arches=("x86_64",), out=lines.append, workers=1, slips_dir=str(outside)) == 0
    assert lines[-1].startswith("labs mutants: 1/1 slips caught and named")
    assert os.path.exists(os.path.join(lab_tree, "build/labs-check", mutants.SLIPS_WORK, "lab1/no-flush/x86_64"))
    with pytest.raises(mutants.PagodaError, match="not a directory"):
        mutants.run(lab_tree, listing=True, out=lines.append, slips_dir=str(tmp_path / "none"))


def test_repeated_grades_must_agree(lab_tree, monkeypatch):
    """--repeat K: one slip graded K times (each grade with tokens of its own) is a problem unless
    every grade caught and named it, even when most did; each may name it in a test of its own
    (a token can make a test before the file's catch it: each grade is judged alone)."""
    add_slip(lab_tree, "01-map", "s", slip())
    [m], _ = load(lab_tree)
    verdicts = iter([("t1", True), ("t1", True), ("t1b", False)])

    def once(self, n, m, arch, tree, kernel, specs, build_cpu, run):
        test, named = next(verdicts)
        return mutants.Outcome(m, arch, test=test, named=named, problem="" if named else "not named")
    monkeypatch.setattr(mutants.Runner, "_grade_once", once)
    runner = mutants.Runner(lab_tree, publish.load_labs(lab_tree), [], 1, print, repeat=3)
    o = runner._grade(1, m, "x86_64", lab_tree, "kernel.elf", [])
    assert not o.ok and "caught and named in 2" in o.problem and "run 3: t1b, NOT named" in o.problem, o.problem
    verdicts = iter([("t1", True)] * 3)
    assert runner._grade(1, m, "x86_64", lab_tree, "kernel.elf", []).ok
    verdicts = iter([("t1", True), ("t0", True), ("t1", True)])
    assert runner._grade(1, m, "x86_64", lab_tree, "kernel.elf", []).ok
    runner.pool.shutdown()


def test_in_order_once_grades_each_isa_in_order_on_one_of_them(lab_tree, monkeypatch, tmp_path):
    """--in-order-once (CI): a slip is graded on every ISA it applies to, in lab.toml order on the
    one the seed picks (the tests before its own too) and on its own test alone on the other."""
    add_slip(lab_tree, "01-map", "s", slip(extra='test = "t1b"'))
    [m], _ = load(lab_tree)
    m = dataclasses.replace(m, arches=("x86_64", "aarch64"), tests={"x86_64": "t1b", "aarch64": "t1b"})
    calls = []
    monkeypatch.setattr(mutants, "grade_slip", lambda tree, n, arch, kernel, work, test=None, warm=False: calls.append((arch, test)))
    [ordered] = mutants.one_isa_each([m], paths.ARCHES, "a seed")
    runner = mutants.Runner(lab_tree, publish.load_labs(lab_tree), [], 1, print,
                            in_order_on={m.name: ordered.arches[0]})
    specs = publish.load_labs(lab_tree)[1].tests
    for arch in m.arches:
        runner._grade_once(1, m, arch, lab_tree, str(tmp_path / arch / "kernel.elf"), specs, 0.0, 0)
    runner.pool.shutdown()
    other = next(a for a in m.arches if a != ordered.arches[0])
    assert sorted(calls) == sorted([(ordered.arches[0], None), (other, "t1b")]), calls


def test_share_keeps_one_in_k_of_each_lab_s_slips_the_seed_choosing():
    slips = [mutants.Mutant(lab, f"s{i}", "", "", "", paths.ARCHES, {}, []) for lab, count in ((3, 10), (5, 1))
             for i in range(count)]
    picked = mutants.one_in(slips, 4, "seed a")
    assert [m.lab for m in picked].count(3) == 3 and [m.lab for m in picked].count(5) == 1   # (10/4, 1/4 rounded up)
    assert mutants.one_in(slips, 1, "seed a") == slips
    others = {m.name for seed in ("seed b", "seed c", "seed d") for m in mutants.one_in(slips, 4, seed)}
    assert others - {m.name for m in picked}, "every seed picked the same slips"
