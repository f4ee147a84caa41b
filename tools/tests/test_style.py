"""The house style, checked in seconds without building anything (CONTRIBUTING.md):

- pyflakes (Debian's python3-pyflakes, which ./pagoda setup installs) reports nothing in any
  tracked Python file: the *.py files and the scripts whose first line names python
  (./pagoda, tools/fresh-machine);
- clang-format (the tree's .clang-format) would change nothing in the kernel's C++: every
  *.cpp, *.hpp and *.h under kernel/, arch/ and user/. Until the tree has been reformatted once,
  .clang-format carries a NOT-YET-APPLIED line and this check is skipped, saying so; it is
  skipped in a student's lab tree too (its skeletons and the student's code are theirs to lay out).

Each check is also run on a small tree of its own that breaks it, so neither can pass by finding
nothing to look at.
"""
import os
import shutil
import subprocess

import pytest

from pagoda import publish
from pagoda_core import paths

CXX_ROOTS = ("kernel", "arch", "user")
CXX_SUFFIXES = (".cpp", ".hpp", ".h")
NOT_YET = "NOT-YET-APPLIED"


def tracked(root):
    """The tree's tracked files (relative paths), or every file outside build/ and .git/ where
    there is no git repository (a copy of the tree)."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True)
    if out.returncode == 0:
        return [p for p in out.stdout.decode().split("\0") if p and os.path.isfile(os.path.join(root, p))]
    files = []
    for top, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not (top == root and d in ("build", ".git"))]
        files += [os.path.relpath(os.path.join(top, n), root) for n in names]
    return sorted(files)


def is_python(root, rel):
    if rel.endswith(".py"):
        return True
    if "." in os.path.basename(rel):
        return False
    try:
        with open(os.path.join(root, rel), "rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def python_files(root):
    return [rel for rel in tracked(root) if is_python(root, rel)]


def cxx_files(root):
    return [rel for rel in tracked(root) if rel.split("/")[0] in CXX_ROOTS and rel.endswith(CXX_SUFFIXES)]


def pyflakes_report(root):
    """pyflakes' warnings (one line each) about the tree's Python files; [] when there are none."""
    files = python_files(root)
    assert files, f"no Python files found in {root}"
    out = subprocess.run([paths.SYSTEM_PYTHON, "-m", "pyflakes", *files], cwd=root, capture_output=True, text=True)
    if "No module named pyflakes" in out.stderr:
        raise AssertionError("pyflakes is missing: run ./pagoda setup (package python3-pyflakes)")
    lines = (out.stdout + out.stderr).splitlines()
    assert out.returncode == 0 or lines, f"pyflakes failed without a word (exit {out.returncode})"
    return lines


def clang_format_report(root):
    """The kernel files clang-format would change, with its first complaint about each; []."""
    if shutil.which("clang-format") is None:
        raise AssertionError("clang-format is missing: run ./pagoda setup (package clang-format)")
    files = cxx_files(root)
    assert files, f"no C++ files under {', '.join(CXX_ROOTS)} in {root}"
    out = subprocess.run(["clang-format", "--dry-run", "--Werror", "--style=file", *files], cwd=root,
                         capture_output=True, text=True)
    if out.returncode == 0:
        return []
    complaints = {}
    for line in out.stderr.splitlines():
        if ": error: code should be clang-formatted" in line:
            complaints.setdefault(line.split(":")[0], line)
    return list(complaints.values()) or out.stderr.splitlines()[-5:] or [f"clang-format exited {out.returncode}"]


def not_yet_applied(root):
    with open(os.path.join(root, ".clang-format")) as f:
        return NOT_YET in f.read()


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# ---- the tree ---------------------------------------------------------------------------------

def test_pyflakes_finds_nothing_in_the_trees_python():
    report = pyflakes_report(paths.ROOT)
    assert not report, ("pyflakes (python3 -m pyflakes FILE) warns about the tree's Python:\n  "
                        + "\n  ".join(report))


def test_the_kernels_cxx_is_as_clang_format_lays_it_out():
    if not_yet_applied(paths.ROOT):
        pytest.skip(f".clang-format says {NOT_YET}: the kernel has not been reformatted yet")
    if os.path.exists(os.path.join(paths.ROOT, publish.LAB_FILE)):
        pytest.skip("a student's lab tree: its skeletons and the student's own code are not checked")
    version = subprocess.run(["clang-format", "--version"], capture_output=True, text=True).stdout.strip()
    report = clang_format_report(paths.ROOT)
    assert not report, (f"{version} would change {len(report)} file(s); run clang-format -i on them "
                        "(CONTRIBUTING.md):\n  " + "\n  ".join(report))


# ---- each check catches what it is for ---------------------------------------------------------

def test_pyflakes_check_names_an_unused_import_in_a_script(tmp_path):
    root = str(tmp_path)
    write(root, "tools/ok.py", "import os\nprint(os.sep)\n")
    write(root, "tools/run", "#!/usr/bin/python3\nimport sys\nprint(f'done')\n")
    write(root, "notes.txt", "import nothing\n")
    assert python_files(root) == ["tools/ok.py", "tools/run"]
    report = pyflakes_report(root)
    assert any("tools/run:2" in line and "'sys' imported but unused" in line for line in report), report
    assert any("tools/run:3" in line and "f-string is missing placeholders" in line for line in report), report
    assert not any("ok.py" in line for line in report), report


def test_clang_format_check_names_a_misformatted_kernel_file(tmp_path):
    root = str(tmp_path)
    shutil.copy(os.path.join(paths.ROOT, ".clang-format"), root)
    write(root, "kernel/good.cpp", "int f(int* p) { return *p; }\n")
    write(root, "arch/x86_64/bad.hpp", "int  g(int *p)\n{\n    return *p;\n}\n")
    write(root, "tools/ignored.cpp", "int  h ( ) ;\n")
    assert cxx_files(root) == ["arch/x86_64/bad.hpp", "kernel/good.cpp"]
    report = clang_format_report(root)
    assert len(report) == 1 and report[0].startswith("arch/x86_64/bad.hpp"), report
