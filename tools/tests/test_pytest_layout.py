"""Any set of the project's test directories runs in one pytest command, in any order.

None of them is a package: pytest imports each test file, conftest.py and helper module by its
bare name (its directory put first on sys.path). So two test directories must not hold modules of
the same name, and a test must not `from conftest import` anything: every test directory has a
conftest.py, all of them are modules named `conftest`, and the import finds whichever one the
command loaded last (test_hostile.py once found tools/gdb/tests' conftest instead of its own)."""
import os
import re
import subprocess

from pagoda import test as pagoda_test
from pagoda_core import paths

# The tool suites `./pagoda test` runs in one command, and the grader's own tests (grade/, run
# by `./pagoda grade`, but collectable beside them).
TEST_DIRS = (*pagoda_test.TOOL_TEST_DIRS, "grade")
IMPORTS_A_CONFTEST = re.compile(r"^\s*(?:from\s+conftest\s+import|import\s+conftest\b)", re.M)


def modules(directory):
    """The Python modules pytest may import by bare name from @p directory (not its packages)."""
    return sorted(f[:-3] for f in os.listdir(os.path.join(paths.ROOT, directory))
                  if f.endswith(".py") and f != "conftest.py")


def test_no_two_test_directories_hold_a_module_of_the_same_name():
    where = {}
    for directory in TEST_DIRS:
        for name in modules(directory):
            where.setdefault(name, []).append(directory)
    assert len(where) > 50                              # the directories were read
    clashes = {name: dirs for name, dirs in where.items() if len(dirs) > 1}
    assert not clashes, f"modules named alike in two test directories: {clashes}"


def test_no_test_imports_from_a_conftest():
    found = []
    for directory in TEST_DIRS:
        for name in modules(directory):
            with open(os.path.join(paths.ROOT, directory, name + ".py")) as f:
                if IMPORTS_A_CONFTEST.search(f.read()):
                    found.append(f"{directory}/{name}.py")
    assert not found, f"import from `conftest`, which may be another directory's: {found}"


def test_every_test_directory_collects_in_one_command():
    """The real thing, in an order that once failed (grade/harness_tests before tools/gdb/tests):
    pytest collects every test of every directory with no error. The grader's own tests are
    named file by file: grade/ holds grade/harness_tests, and pytest 8 (Debian 13's) given a
    directory and one inside it collects the inner one alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    dirs = ["grade/harness_tests", "tools/gdb/tests", "tools/tests"]
    assert sorted(dirs + ["grade"]) == sorted(TEST_DIRS)
    grader = [f"grade/{name}.py" for name in modules("grade") if name.startswith("test_")]
    out = subprocess.run([paths.SYSTEM_PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only",
                          "-q", f"--rootdir={paths.ROOT}", *dirs, *grader], cwd=paths.ROOT,
                         capture_output=True, text=True, env=env)
    tail = out.stdout[-3000:] + out.stderr[-2000:]
    assert out.returncode == 0, tail
    ids = [l for l in out.stdout.splitlines() if "::" in l]
    collected = re.search(r"^(\d+) tests collected in ", out.stdout, re.M)
    assert collected and int(collected[1]) == len(ids), tail
    for directory in dirs + ["grade"]:
        assert any(re.match(re.escape(directory) + r"/[^/]+\.py::", i) for i in ids), \
            f"nothing collected from {directory}:\n{tail}"
    assert len(grader) >= 7 and all(any(i.startswith(f + "::") for i in ids) for f in grader), tail
