"""Lab manifests: labs/NN-name/lab.toml declares each lab's tests, points and timeouts.

    number = 0
    name = "boot"
    title = "Boot and console"
    depends = []
    arches = ["x86_64", "aarch64"]   # optional: the ISAs it runs on (default: x86_64 only)

    [[tests]]
    id = "boot_banner"
    points = 2
    timeout = 10          # seconds for the whole test, every boot included
    checks = "the banner carries this boot's token"
    passes_on_skeleton = true   # optional: the lab hands this working; the test guards it
    hidden = true               # optional: kept out of published branches (see below)
    hunt = [3, 4]               # optional: a graded bug hunt drawn from these labs' slips; no
                                # implementation of its own (grade/test_hunt.py, tools/pagoda/hunt.py)

A hidden test is the instructor's: `./pagoda labs publish` drops its [[tests]] entry from the
published lab.toml and its implementation (grade/hidden/test_labN*.py) from the published tree;
the instructor's `./pagoda grade` (and batch grading, and the autograders built from main) run
it like any other test. Handouts never list it.

`./pagoda labs check` demands that every test of lab N fail on the published lab-N skeleton
(otherwise it tests nothing the student writes), except those marked passes_on_skeleton, which
must pass there.
"""
import glob
import os
import re
from dataclasses import dataclass, field

from pagoda_core import paths
from pagoda_core.paths import ARCHES

# The TOML parser (tomllib, or python3-tomli on Python 3.10; None before setup).
from pagoda_core.tomlparse import MISSING as _NO_TOML, tomllib


def _parser():
    if tomllib is None:
        raise ManifestError(_NO_TOML)
    return tomllib


def loads_toml(text):
    """The table of TOML @p text; ManifestError when it is not TOML."""
    parser = _parser()
    try:
        return parser.loads(text)
    except parser.TOMLDecodeError as e:
        raise ManifestError(str(e)) from None

LABS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "labs")
_DIR_NAME = re.compile(r"^(\d\d)-([a-z0-9-]+)$")


class ManifestError(Exception):
    pass


@dataclass(frozen=True)
class TestSpec:
    id: str
    points: int
    timeout: float
    checks: str
    passes_on_skeleton: bool = False
    hidden: bool = False
    hunt: tuple = ()   # a bug hunt: the labs whose slips it draws from (grade/test_hunt.py implements it)


@dataclass
class Lab:
    number: int
    name: str
    title: str
    directory: str
    depends: list = field(default_factory=list)
    tests: list = field(default_factory=list)
    arches: tuple = ("x86_64",)   # the ISAs the lab runs on; the grader grades it only there

    @property
    def key(self):
        return f"lab{self.number}"

    def test(self, test_id):
        for t in self.tests:
            if t.id == test_id:
                return t
        return None

    @property
    def total_points(self):
        return sum(t.points for t in self.tests)

    @property
    def visible_tests(self):
        """The tests students see (published, in the handout)."""
        return [t for t in self.tests if not t.hidden]


def _load(path):
    where = os.path.relpath(path, os.path.dirname(LABS_DIR))
    parser = _parser()
    try:
        with open(path, "rb") as f:
            data = parser.load(f)
    except parser.TOMLDecodeError as e:
        raise ManifestError(f"{where}: {e}") from None
    for key, kind in (("number", int), ("name", str), ("title", str)):
        if not isinstance(data.get(key), kind):
            raise ManifestError(f"{where}: '{key}' must be a {kind.__name__}")
    directory = os.path.basename(os.path.dirname(path))
    m = _DIR_NAME.match(directory)
    if not m or int(m[1]) != data["number"]:
        raise ManifestError(f"{where}: lab number {data['number']} does not match folder {directory}")
    arches = data.get("arches", ["x86_64"])
    if not isinstance(arches, list) or not arches or any(a not in ARCHES for a in arches):
        raise ManifestError(f"{where}: 'arches' must be a non-empty list of {', '.join(ARCHES)}")
    lab = Lab(number=data["number"], name=data["name"], title=data["title"],
              directory=os.path.dirname(path), depends=list(data.get("depends", [])), arches=tuple(arches))
    seen = set()
    for t in data.get("tests", []):
        tid = t.get("id")
        if not isinstance(tid, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", tid):
            raise ManifestError(f"{where}: test id {tid!r} must be lower_snake_case")
        if tid in seen:
            raise ManifestError(f"{where}: test id {tid} declared twice")
        seen.add(tid)
        points, timeout = t.get("points"), t.get("timeout")
        if not isinstance(points, int) or points <= 0:
            raise ManifestError(f"{where}: test {tid}: points must be a positive integer")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ManifestError(f"{where}: test {tid}: timeout must be a positive number of seconds")
        given = t.get("passes_on_skeleton", False)
        if not isinstance(given, bool):
            raise ManifestError(f"{where}: test {tid}: passes_on_skeleton must be true or false")
        hidden = t.get("hidden", False)
        if not isinstance(hidden, bool):
            raise ManifestError(f"{where}: test {tid}: hidden must be true or false")
        hunt = t.get("hunt", [])
        if not isinstance(hunt, list) or any(not isinstance(n, int) for n in hunt):
            raise ManifestError(f"{where}: test {tid}: hunt must be a list of lab numbers")
        lab.tests.append(TestSpec(id=tid, points=points, timeout=float(timeout),
                                  checks=str(t.get("checks", "")), passes_on_skeleton=given,
                                  hidden=hidden, hunt=tuple(hunt)))
    return lab


def load_all(labs_dir=LABS_DIR):
    """Every lab with a manifest, by number."""
    labs = {}
    for path in sorted(glob.glob(os.path.join(labs_dir, "[0-9][0-9]-*", "lab.toml"))):
        lab = _load(path)
        if lab.number in labs:
            raise ManifestError(f"two labs are numbered {lab.number}")
        labs[lab.number] = lab
    for lab in labs.values():
        for d in lab.depends:
            if d not in labs or d >= lab.number:
                raise ManifestError(f"lab {lab.number} depends on lab {d}, which is not an earlier lab")
    return labs


def implemented_tests(path):
    """{(lab, id)} a grader test file implements: its @lab_test(N, "id") decorators, read with
    the ast module (nothing is imported or run)."""
    import ast
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list:
                if isinstance(d, ast.Call) and getattr(d.func, "id", getattr(d.func, "attr", "")) == "lab_test" \
                        and len(d.args) == 2 and all(isinstance(a, ast.Constant) for a in d.args):
                    found.add((d.args[0].value, d.args[1].value))
    return found


def lab_file_number(path):
    """N for a lab test file, grade/test_labN.py or grade/hidden/test_labN_*.py; else None."""
    m = re.fullmatch(r"test_lab(\d+)(?:_\w+)?\.py", os.path.basename(path))
    return int(m[1]) if m else None


def check_implementations(labs, test_files):
    """Problems (one sentence each) between @p labs' manifests and the lab test files in
    @p test_files (grade/test_labN.py, grade/hidden/test_labN_*.py): a declared test without an
    implementation, an implementation of a test no manifest declares."""
    problems = []
    done_by_lab = {}
    for path in sorted(test_files):
        number = lab_file_number(path)
        if number is None:
            continue
        where = os.path.relpath(path, os.path.dirname(LABS_DIR))
        done = done_by_lab.setdefault(number, set())
        lab = labs.get(number)
        for n, tid in sorted(implemented_tests(path)):
            if n != number:
                problems.append(f"{where}: @lab_test({n}, '{tid}') belongs in grade/test_lab{n}.py")
            elif lab is None or lab.test(tid) is None:
                problems.append(f"{where}: implements test '{tid}', which lab {number}'s lab.toml does not declare")
            done.add((n, tid))
    for number, done in sorted(done_by_lab.items()):
        lab = labs.get(number)
        for spec in lab.tests if lab else ():
            if (number, spec.id) not in done and not spec.hunt:
                hint = " (hidden tests live in grade/hidden/)" if getattr(spec, "hidden", False) else ""
                problems.append(f"lab {number} declares test '{spec.id}' in its lab.toml, but grade/test_lab{number}.py "
                                f"does not implement it{hint}")
    return problems


def test_file(number):
    """grade/test_labN.py of this tree, lab @p number's grader tests."""
    return os.path.join(paths.GRADE, f"test_lab{number}.py")


def test_files(number, grade_dir=None):
    """Lab @p number's grader files: grade/test_labN.py and, in the instructor's tree, its
    hidden tests grade/hidden/test_labN_*.py (never published); grade/test_hunt.py too when the
    lab has a graded bug hunt. @p grade_dir: another tree's grade/ (a submission's)."""
    grade_dir = grade_dir or paths.GRADE
    hidden = sorted(glob.glob(os.path.join(grade_dir, "hidden", f"test_lab{number}_*.py")))
    files = [os.path.join(grade_dir, f"test_lab{number}.py")] + hidden
    try:
        labs = load_all(os.path.join(os.path.dirname(grade_dir), "labs"))
    except ManifestError:
        labs = {}
    if number in labs and any(t.hunt for t in labs[number].tests):
        files.append(os.path.join(grade_dir, "test_hunt.py"))   # a graded bug hunt
    return files
