"""A submission whose build reads the grading machine (issue 51, cheat "3e"): a region that
`.incbin`s, `#include`s or `__has_include`-probes /etc/passwd, the batch's work folder (an
earlier submission's kernel), the instructor's build/ and tools/. Two defences, each tested
without the other:

- the region check (transplant.region_problem) refuses such region text: the submission does
  not build, and its row names the file, the line and the rule;
- the sandbox's root (sandbox.py) holds nothing of the machine but the tree and the toolchain:
  the compiler, called in the sandbox directly, and a build step in a CMake region (which the
  region check does not read) find none of those files.

Every lab's own regions (reference and skeleton) pass the region check: honest work builds."""
import csv
import os
import shutil
import subprocess
import tempfile
import textwrap

import pytest

from labtree import write
from pagoda import publish, regions, sandbox, transplant
from pagoda_core import paths
from pagoda_core.speed import scaled

import test_batch
from test_sandbox import modes

# Whole trees built or graded end to end: CI's level (./pagoda test --ci), not the sample's.
pytestmark = pytest.mark.end_to_end


# ---- the region check ------------------------------------------------------------------------

def test_every_labs_regions_pass_the_region_check():
    """The reference's and the skeleton's text of every student region in this tree."""
    checked, refused = 0, []
    for src in publish.scan(paths.ROOT):
        for r in (src.parsed.regions if src.parsed else []):
            if r.skeleton is None:
                continue
            skeleton = "".join(regions.uncomment(l, src.parsed.style) for l in r.skeleton_lines)
            for what, text in (("reference", "".join(r.solution)), ("skeleton", skeleton)):
                checked += 1
                problem = transplant.region_problem(src.path, text)
                if problem:
                    refused.append(f"{src.path}:{r.begin} (lab {r.lab}, {what}): {problem[1]}")
    assert refused == [] and checked > 100


REFUSED = [
    ("a.cpp", 'asm(".incbin \\"/etc/passwd\\"");', ".incbin in an asm statement"),
    ("a.cpp", 'asm volatile("nop\\n\\t.set pagoda_fact_ticks_per_turn, 1");', ".set in an asm statement"),
    ("a.cpp", 'asm("\\x2eincbin \\"/etc/passwd\\"");', ".incbin in an asm statement"),
    ("a.cpp", 'asm(R"(.incbin "/etc/passwd")");', ".incbin in an asm statement"),
    ("a.cpp", 'asm("." "pushsection x");', ".pushsection in an asm statement"),
    ("a.cpp", 'PAGODA_WRITE_SYSREG("ttbr0_el1\\n.incbin \\"/etc/passwd\\"", 0);', ".incbin in a string"),
    ("a.cpp", "#include \"/etc/passwd\"\n", "a preprocessor line"),
    ("a.cpp", "  %:include <x>\n", "a preprocessor line"),
    ("a.cpp", "x = 1; /* */ #\\\ninclude \"x\"\n", "a preprocessor line"),
    ("a.cpp", "#if __has_include(\"/etc/passwd\")\n#endif\n", "a preprocessor line"),
    ("a.cpp", "bool b = __has_include(\"/etc/passwd\");\n", "__has_include"),
    ("a.cpp", '_Pragma("GCC dependency \\"/etc/passwd\\"")', "_Pragma"),
    ("a.cpp", "return;\n}\n}  // namespace\n#include <x>\nnamespace {\nvoid f() {\n", "a preprocessor line"),
    ("a.cpp", "return;\n}\n}  // namespace\nnamespace {\nvoid f() {\n", "closes what the region did not open"),
    ("a.cpp", "if (x) {\n", "does not close"),
    ("a.cpp", "asm(text);", "not a string literal"),
    ("a.S", '.incbin "/etc/passwd"\n', ".incbin"),
    ("a.S", "1:  .set x, 1\n", ".set"),
    ("a.S", "mov x0, #1 ; .include \"x\"\n", ".include"),
    ("a.S", "#include \"/etc/passwd\"\n", "a preprocessor line"),
    ("a.S", ".section .rodata\n", ".section .rodata"),
    ("a.S", "pagoda_fact_x = 5\n", "assignment"),
    ("a.ld", "INCLUDE /etc/passwd\n", "INCLUDE"),
    ("a.ld", 'X = "a";\n', "quoted"),
    ("a.ld", "#include \"/etc/passwd\"\n", "a preprocessor line"),
]
ALLOWED = [
    ("a.cpp", 'asm volatile("invlpg (%0)" :: "r"(a) : "memory");'),
    ("a.cpp", 'asm volatile("msr ttbr0_el1, %0" :: "r"(x));'),
    ("a.cpp", "auto s = \"a.b .c\"; char c = '#'; int n = 1'000; if (n) { f(); }\n"),
    ("a.cpp", 'println("vm: .text mapped at {}", x);'),
    ("a.S", '.section pagoda_user_fixups, "a"\n.balign 8\n.quad 1b, 2b\n'),
    ("a.S", "1:  ldrb w3, [x1], #1\n    b.ne 1b\n"),
    ("a.ld", "KERNEL_VIRT_OFFSET = 0xffff800000000000;\n"),   # (an assignment; not the solution's value)
]


@pytest.mark.parametrize("path,text,rule", REFUSED)
def test_region_text_that_reads_the_machine_is_refused(path, text, rule):
    problem = transplant.region_problem(path, text)
    assert problem is not None and rule in problem[1], problem


@pytest.mark.parametrize("path,text", ALLOWED)
def test_region_text_a_lab_needs_passes(path, text):
    assert transplant.region_problem(path, text) is None


def test_a_refused_region_names_file_line_and_rule(tmp_path):
    """Through transplant(): the line is the submission's own (below its region's marker)."""
    pub = transplant.Published(0, {"k.cpp": (b"void f() {\n  // >>> lab 0\n  // <<< lab 0\n}\n", 0o644)},
                               {"k.cpp": [(2, 2)]})
    write(str(tmp_path), "k.cpp", "void f() {\n  // >>> lab 0\n  int x = 0;\n"
          "  asm(\".incbin \\\"/etc/passwd\\\"\");\n  // <<< lab 0\n}\n")
    graded = transplant.transplant(pub, str(tmp_path))
    assert graded.refused == ["k.cpp:4: a solution region may not hold the assembler directive .incbin in "
                              "an asm statement (inline assembly stays in the given helpers)"]


# ---- the sandbox's root, the region check bypassed -------------------------------------------

@pytest.fixture
def walkable():
    """A folder any user may walk to (not pytest's own, which is root's alone): what a build
    must not read there, it could reach by its permissions."""
    path = tempfile.mkdtemp(prefix="pagoda-hostile-")
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def probe_source(targets):
    """C that pulls each of @p targets into its object three ways (symbols inc<i>, has<i>)."""
    text = ""
    for i, t in enumerate(targets):
        text += (f'asm(".section .rodata\\n.globl inc{i}\\ninc{i}:\\n.incbin \\"{t}\\"\\n.previous");\n'
                 f'#if __has_include("{t}")\nint has{i} = 1;\n#endif\n')
    return text


@pytest.mark.parametrize("mode", [m for m in modes() if m != "uid"])
def test_the_build_root_holds_only_its_tree(mode, walkable):
    """The compiler in the sandbox (as a build step in any region could call it) finds none of
    the machine's files: /etc, the batch's work folder, the instructor's build/ and tools/; the
    tree's own file it does find (the probe works)."""
    outside = ["/etc/passwd",
               write(walkable, "work/alice/kernel.elf", b"\x7fELF alice", mode=0o644),  # an earlier submission's
               write(walkable, "build/x86_64/kernel.elf", b"\x7fELF solutions", mode=0o644),  # the instructor's
               os.path.join(paths.ROOT, "tools", "pagoda", "batch.py")]
    stage, box = sandbox.staging_dir(), None
    try:
        tree = os.path.join(stage, "tree")
        write(tree, "own.txt", "the tree's own file\n")
        os.chmod(tree, 0o755)
        box = sandbox.Sandbox(os.path.join(stage, "box"), os.path.join(tree, "build"), mode=mode).prepare()

        def compile_(name, targets):
            write(tree, name, probe_source(targets), mode=0o644)
            return subprocess.run(box.wrap(["clang", "-c", name, "-o", f"build/{name}.o"], tree), cwd=tree,
                                  env=box.environment(), capture_output=True, text=True, errors="replace")

        own = compile_("own.c", [os.path.join(tree, "own.txt")])
        assert own.returncode == 0, own.stderr
        for i, target in enumerate(outside):
            r = compile_(f"p{i}.c", [target])
            assert r.returncode != 0 and "Could not find incbin file" in r.stderr, (target, r.stderr)
            include = subprocess.run(box.wrap(["clang", "-E", "-x", "c", "-"], tree), cwd=tree,
                                     env=box.environment(), input=f'#include "{target}"\n', capture_output=True,
                                     text=True, errors="replace")
            assert include.returncode != 0 and "file not found" in include.stderr, (target, include.stderr)
            has = subprocess.run(box.wrap(["clang", "-E", "-P", "-x", "c", "-"], tree), cwd=tree,
                                 env=box.environment(), input=f'#if __has_include("{target}")\nFOUND\n#endif\n',
                                 capture_output=True, text=True, errors="replace")
            assert has.returncode == 0 and "FOUND" not in has.stdout, (target, has.stdout)
    finally:
        if box is not None:
            box.clean()
            box.release()
        shutil.rmtree(stage, ignore_errors=True)


# ---- graded as a class is --------------------------------------------------------------------

def cmake_probe(targets):
    """CMake code (a build step in a CMake region, which the region check does not read) that
    reads each of @p targets and fails the build naming what it read."""
    code = ""
    for i, t in enumerate(targets):
        code += textwrap.dedent(f'''\
            if(EXISTS "{t}" OR IS_DIRECTORY "{t}")
              message(FATAL_ERROR "PROBE LEAKED: {t} exists")
            endif()
            execute_process(COMMAND cat "{t}" RESULT_VARIABLE probe_status_{i} OUTPUT_QUIET ERROR_QUIET)
            if(probe_status_{i} EQUAL 0)
              message(FATAL_ERROR "PROBE LEAKED: {t} read")
            endif()
            message(STATUS "PROBE: {t} unreadable")
            ''')
    return code


@pytest.fixture(scope="module")
def graded(tree_cache):
    # (in a folder any user may walk to, as an instructor's checkout may be: see walkable())
    base = tempfile.mkdtemp(prefix="pagoda-hostile-")
    os.chmod(base, 0o711)
    try:
        yield grade_class(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def grade_class(base):
    root = test_batch.instructor_tree(base)
    sources = publish.scan(root)
    write(root, "build/x86_64/kernel.elf", b"\x7fELF the instructor's kernel, every lab solved", mode=0o644)
    work = os.path.join(root, "build", "batch")          # the default work folder
    first = os.path.join(work, "a_first", "kernel.elf")
    targets = ["/etc/passwd", first, os.path.join(root, "build", "x86_64", "kernel.elf"),
               os.path.join(root, "tools", "pagoda", "batch.py"), os.path.join(root, "grade", "conftest.py")]
    subs = os.path.join(base, "submissions")
    test_batch.lab0_tree(root, sources, os.path.join(subs, "a_first"), solved=False)
    region = {
        "incbin": '  asm(".pushsection .rodata\\n.incbin \\"%s\\"\\n.popsection");\n' % first,
        "include": '#include "/etc/passwd"\n',
        "has_include": '#if __has_include("%s")\n  println("found it");\n#endif\n' % first,
    }
    for name, code in region.items():
        test_batch.patch_kmain(test_batch.lab0_tree(root, sources, os.path.join(subs, name), solved=False), code)
    probe = test_batch.lab0_tree(root, sources, os.path.join(subs, "probe"), solved=False)
    with open(os.path.join(probe, "CMakeLists.txt")) as f:
        text = f.read()
    end = text.index("# <<< lab 0")
    write(probe, "CMakeLists.txt", text[:end] + cmake_probe(targets) + text[end:])
    csv_path = os.path.join(base, "grades.csv")
    # (-j 1: a_first is graded, its kernel in the work folder, before the others build; the
    # grading itself is cut short: only the builds matter here)
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(root, "pagoda"), "grade", "--batch", subs, "--lab", "0",
                          "-j", "1", "--csv", csv_path, "--time-limit", "1"],
                         cwd=root, capture_output=True, text=True, timeout=scaled(900))
    assert out.returncode == 0, out.stdout + out.stderr
    with open(csv_path, newline="") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    return {"rows": rows, "work": work, "targets": targets, "first": first}


@pytest.mark.parametrize("name,rule", [("incbin", "the assembler directive .pushsection in an asm statement"),
                                       ("include", "a preprocessor line"), ("has_include", "a preprocessor line")])
def test_a_region_that_reads_the_machine_does_not_build(graded, name, rule):
    row = graded["rows"][name]
    assert row["status"] == "does not build" and row["total"] == "0", row
    assert row["summary"].startswith(f"does not build: {test_batch.KMAIN}:") and rule in row["summary"], row["summary"]


def test_a_build_step_reads_nothing_outside_its_tree(graded):
    """The CMake region's probe, which the region check lets through, builds: it read nothing."""
    assert os.path.exists(graded["first"])              # what it looked for was there
    row = graded["rows"]["probe"]
    assert row["status"] != "does not build", row
    with open(os.path.join(graded["work"], "probe", "build.log")) as f:
        log = f.read()
    assert "LEAKED" not in log
    for t in graded["targets"]:
        assert f"PROBE: {t} unreadable" in log


def test_work_folders_are_the_graders_alone(graded):
    for name in graded["rows"]:
        folder = os.path.join(graded["work"], name)
        assert os.stat(folder).st_mode & 0o077 == 0, folder
    assert os.stat(graded["work"]).st_mode & 0o066 == 0

