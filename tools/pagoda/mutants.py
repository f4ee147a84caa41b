"""`pagoda labs mutants [N ...] [--arch A] [--slip SLUG] [--list]`: prove that the grader catches each realistic
slip a student makes in a lab's own code, and names its cause in the first lines it prints.

Each lab keeps its slips in labs/NN-name/mutants/, one file per slip, SLUG.toml (with
`--slips DIR`, only the slips kept in DIR/NN-name/ or DIR/labN/ are checked instead: a wider set
kept outside the tree, so the grader is measured on bugs it was not written against; DIR may also
hold a README.md and a results/ folder of its own measurements):

    title = "the new root does not share the kernel half"   # the slip, as a student makes it
    function = "AddressSpace::create"  # the function (in the student's region) the slip is in
    seed = "000"                      # optional: the post-mortem (/work/shared/seeds) it is a form of
    arches = ["x86_64", "aarch64"]    # where the slip applies (its edits may touch both arch folders)
    cause = 'does not share the kernel half'   # what the grade must say (see below)
    cause_x86_64 = '...'              # optional: overrides cause on that ISA (so does cause_aarch64)
    test = "hello_user"               # the lab's test that names it every time, and the first to fail
                                      # (an earlier one may catch it first with some tokens); test_x86_64
                                      # and test_aarch64 override it; optional for a --slips DIR set

    region_lab = "7"                  # optional: the edits lie in that earlier lab's regions instead (the
                                      # student's own code of that lab, which this lab's tests see anew,
                                      # e.g. lab 7's eviction on lab 8's two CPUs)

    [[edit]]                          # one or more, applied in order
    file = "arch/x86_64/address_space.cpp"
    find = '''text found exactly once in main, wholly inside the reference part of a LAB NN region'''
    replace = '''the slipped text'''

`cause` is a Python regex, searched (re.search, case-insensitive) in the first 2 non-empty lines
of the reason of the first failing test, tests taken in lab.toml order (a leading `^`, without the
multi-line flag, holds it to line 1 itself).

How a lab N is checked. The slips go, one at a time, into the tree a student has when lab N is
done: the reference of labs <= N with the skeletons of later labs, i.e. the published lab N+1
tree, which `./pagoda labs check` builds in build/labs-check/lab<N+1> (this command regenerates
it there, incrementally, and shares it under a lock); for the last lab it is main's own text, in
build/labs-check/reference. For each slip: its edits are applied, the kernel of each ISA it
applies to is built (ninja recompiles only what the slip touched), the ELFs are set aside, the
tree is restored, and the tree's own grader grades lab N on them one test at a time in lab.toml
order, stopping at the first failure (`./pagoda grade --first-failure`), each grade in a warm
grader of the tree (forkgrade.py: a process forked per grade from one that has imported the
grader once). The builds of a tree follow one another (one source tree); the grades run beside
them and beside each other.

A slip passes when lab N scores below full marks AND the first failing test's first 2 lines
match its cause, and that test is the one its `test` names or one before it. With --slip-test-only (what
./pagoda test passes unless --full) a slip's grade runs that test alone, not the tests before it,
which pass on the slip in the run without it (as in CI): the cause is still named by the test the
slip file says, at about half the cost. With --in-order-once (what CI passes) each slip is graded
on every ISA it applies to, in lab.toml order on one of them (half of each lab's slips on each, a
seed choosing which: by default the commit) and on its own test alone on the others. Anything else (full marks, a cause not named, a slip that does not apply or
does not build, a grader that did not run) is a problem; the command exits 1 if there is one.
Logs and the set-aside ELFs: build/labs-check/mutants/labN/SLUG/ARCH/ (grade.log, the boots'
serial and QEMU logs under logs/). With --repeat K each slip is graded K times, each grade with
tokens of its own (logs of runs after the first: repeat-2/ ... beside them): a problem unless all
K catch it and name it, each in the test its file names or one before it (a token may make an
earlier test catch it), so detection never depends on timing.

With --why (not part of `./pagoda test`), each caught slip's failing boot is replayed under GDB
with the same kernel, command line and memory, and run from stop to stop (where the machine dies,
a process is killed or exits, the run ends) until fault-why names something wrong with the
kernel; that verdict (or the first stop's) is a column: yes (it names the cause), partly (another
of its lines does), no, or n.a. (a boot the grader feeds cannot be replayed alone; a replay that
ran to its end). The replay's GDB output: why.log beside grade.log (tools/pagoda/mutant_why.py).
--json FILE writes every slip's outcome, fault-why's included.

With --solutions, each lab's labs/NN-name/solutions/SLUG.toml are checked instead: other
solutions of the lab, written in the same format (`cause` and `test` left out), whose edits lie
in the lab's own regions like a slip's. One passes when the lab scores full marks with it: the
grader holds the lab's contract, not the reference's design. Staff-only like the slips; not part
of `./pagoda test`.
"""
import concurrent.futures
import dataclasses
import fcntl
import glob
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field

from . import forkgrade, publish, regions, treebuild
from pagoda_core import paths, speed
from pagoda_core.ui import PagodaError, info

from pagoda_grade import manifest, programs, symbols

CHECK_SUBDIR = os.path.join("build", "labs-check")
MUTANTS_DIR = "mutants"
SOLUTIONS_DIR = "solutions"         # labs/NN-name/solutions/: other full-marks solutions (--solutions)
SLIPS_WORK = "mutants-slips"        # build/labs-check/ folder of the logs of a --slips DIR run
REFERENCE_TREE = "reference"
HEADLINE_LINES = 2
KERNEL_TARGET = "kernel"
KEYS = {"title": str, "function": str, "seed": str, "arches": list, "cause": str, "edit": list,
        "category": str, "test": str, "region_lab": str, **{f"{k}_{a}": str for a in paths.ARCHES for k in ("cause", "test")}}
# The kinds of slip a bug hunt's answer may name (`category`, optional; tools/pagoda/hunt.py).
CATEGORIES = ("address kind", "allocator", "heap", "leak", "missing mapping", "order", "permissions",
              "range", "reference count", "stack", "tlb", "walker", "wrong root", "vma")
EDIT_KEYS = {"file", "find", "replace"}
# Files a mutants folder may hold besides the slips.
OTHER_FILES = {"README.md"}
# Folders a --slips DIR may hold besides the labs' folders: the set's own measurements (runs'
# JSON, its table), kept beside the slips they measure.
SLIPS_OTHER_FOLDERS = {"results"}


@dataclass
class Edit:
    file: str
    find: str
    replace: str


@dataclass
class Mutant:
    lab: int
    slug: str
    path: str                   # relative to the root
    title: str
    function: str
    arches: tuple
    causes: dict                # arch -> regex
    edits: list
    seed: str = None
    category: str = None
    tests: dict = field(default_factory=dict)   # arch -> the test that must name it (`test`)
    solution: bool = False      # another solution (--solutions): it must score full marks

    @property
    def name(self):
        return f"lab{self.lab}/{self.slug}"


# ---- loading and validating -----------------------------------------------------------------

def solution_spans(src, lab):
    """[start, end) character offsets, in @p src's text, of the reference part of every LAB
    @p lab region."""
    starts = [0]
    for line in regions.split_lines(src.text):
        starts.append(starts[-1] + len(line))
    spans = []
    for region in src.parsed.regions:
        if region.lab == lab:
            first = region.begin      # 0-based index of the first solution line
            spans.append((starts[first], starts[first + len(region.solution)]))
    return spans


def _region_lab_at(src, offset):
    """The lab of the region whose lines hold @p offset, or None."""
    line = src.text.count("\n", 0, offset) + 1
    for region in src.parsed.regions:
        if region.begin <= line <= region.end:
            return region.lab
    return None


def _text(value):
    return isinstance(value, str) and value != ""


def shown_path(path, root):
    """@p path relative to @p root, or absolute when it lies outside the tree (--slips DIR)."""
    rel = os.path.relpath(path, root)
    return os.path.abspath(path) if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def load_mutant(path, lab, root, labs, by_path, solution=False):
    """A Mutant from the file @p path of lab @p lab, or (None, [problems]); with @p solution, one
    of the lab's other solutions (no cause)."""
    rel = shown_path(path, root)
    problems = []
    try:
        with open(path, encoding="utf-8") as f:
            data = manifest.loads_toml(f.read())   # tomllib, or python3-tomli on Python 3.10
    except (OSError, UnicodeDecodeError, manifest.ManifestError) as e:
        return None, [f"{rel}: {e}"]
    for key in sorted(set(data) - set(KEYS)):
        problems.append(f"{rel}: unknown key '{key}' (known: {', '.join(sorted(KEYS))})")
    for key, kind in KEYS.items():
        if key in data and not isinstance(data[key], kind):
            problems.append(f"{rel}: '{key}' must be a {'list' if kind is list else 'string'}")
    if problems:
        return None, problems
    for key in ("title", "function"):
        if not _text(data.get(key)):
            problems.append(f"{rel}: '{key}' is missing or empty")
    if "title" in data and "\n" in data["title"]:
        problems.append(f"{rel}: 'title' must be one line")
    if "category" in data and data["category"] not in CATEGORIES:
        problems.append(f"{rel}: 'category' must be one of: {', '.join(CATEGORIES)}")
    if "seed" in data and not re.fullmatch(r"\d{3}", data["seed"]):
        problems.append(f"{rel}: 'seed' must name a post-mortem by its number, e.g. \"002\"")
    arches = data.get("arches")
    lab_arches = labs[lab].arches
    if not arches or any(a not in paths.ARCHES for a in arches) or len(set(arches)) != len(arches):
        problems.append(f"{rel}: 'arches' must be a non-empty list of {', '.join(paths.ARCHES)}")
        arches = []
    elif any(a not in lab_arches for a in arches):
        problems.append(f"{rel}: 'arches' names {', '.join(a for a in arches if a not in lab_arches)}, where "
                        f"lab {lab} does not run (its lab.toml: {', '.join(lab_arches)})")
    causes = {}
    for arch in arches:
        pattern = data.get(f"cause_{arch}", data.get("cause"))
        if solution:
            continue
        if not _text(pattern):
            problems.append(f"{rel}: no cause for {arch} ('cause' or 'cause_{arch}')")
            continue
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as e:
            problems.append(f"{rel}: the cause for {arch} is not a valid regex: {e}")
            continue
        causes[arch] = pattern
    tests, ids = {}, [t.id for t in labs[lab].tests]
    for arch in arches:
        test = data.get(f"test_{arch}", data.get("test"))
        if test is not None and test not in ids:
            problems.append(f"{rel}: test '{test}' ({arch}) is not a test of lab {lab} ({', '.join(ids)})")
        elif test is not None:
            tests[arch] = test
    for arch in paths.ARCHES:
        for key in (f"cause_{arch}", f"test_{arch}"):
            if key in data and arch not in (arches or []):
                problems.append(f"{rel}: '{key}' for an ISA the slip does not apply to")
    region_lab = lab
    if "region_lab" in data:
        if not re.fullmatch(r"\d+", data["region_lab"]) or not int(data["region_lab"]) < lab:
            problems.append(f"{rel}: 'region_lab' must name an earlier lab than {lab}, e.g. \"{lab - 1}\"")
        else:
            region_lab = int(data["region_lab"])
    edits = []
    if not data.get("edit"):
        problems.append(f"{rel}: no [[edit]]")
    for k, e in enumerate(data.get("edit") or [], 1):
        where = f"{rel}: edit {k}"
        if not isinstance(e, dict):
            problems.append(f"{where}: must be a table ([[edit]])")
            continue
        for key in sorted(set(e) - EDIT_KEYS):
            problems.append(f"{where}: unknown key '{key}' (known: file, find, replace)")
        if not all(isinstance(e.get(key), str) for key in EDIT_KEYS) or not e["find"] or not e["file"]:
            problems.append(f"{where}: 'file', 'find' and 'replace' are all needed, as strings ('find' not empty)")
            continue
        if e["find"] == e["replace"]:
            problems.append(f"{where}: 'replace' is the same text as 'find': the edit changes nothing")
        src = by_path.get(e["file"])
        if src is None or src.text is None:
            problems.append(f"{where}: {e['file']} is not a text file of the tree")
            continue
        count = src.text.count(e["find"])
        if count != 1:
            problems.append(f"{where}: the find text occurs {count} times in {e['file']}; it must occur exactly "
                            "once (add context lines)")
            continue
        at = src.text.index(e["find"])
        spans = solution_spans(src, region_lab) if src.parsed is not None else []
        if not any(start <= at and at + len(e["find"]) <= end for start, end in spans):
            inside = _region_lab_at(src, at) if src.parsed is not None else None
            why = (" (it starts outside every region)" if inside is None else
                   f" (it starts in a LAB {inside} region)" if inside != region_lab else
                   " (it reaches a marker or the skeleton)")
            problems.append(f"{where}: the find text in {e['file']} is not wholly inside the reference part of a LAB "
                            f"{region_lab} region{why}")
            continue
        edits.append(Edit(e["file"], e["find"], e["replace"]))
    name = data.get("function", "")
    bare = re.sub(r"\(.*$", "", name).split("::")[-1].strip()
    if bare and edits and not any(bare in by_path[e.file].text for e in edits):
        problems.append(f"{rel}: function '{name}': '{bare}' appears in none of the edited files")
    if problems:
        return None, problems
    slug = os.path.splitext(os.path.basename(path))[0]
    return Mutant(lab=lab, slug=slug, path=rel, title=data["title"], function=name, arches=tuple(arches),
                  causes=causes, edits=edits, seed=data.get("seed"), category=data.get("category"), tests=tests,
                  solution=solution), []


def slip_folders(labs, slips_dir=None, folder=MUTANTS_DIR):
    """{lab: the folder holding its slips}: each lab's labs/NN-name/mutants/, or with
    @p slips_dir (a set kept outside the tree, `--slips DIR`) DIR/NN-name/ or DIR/labN/, the
    one that exists. Any other entry of DIR (but a README.md and a results/ folder) is a
    problem, so a misnamed folder is not skipped in silence; (folders, problems)."""
    if slips_dir is None:
        return {n: os.path.join(labs[n].directory, folder) for n in labs}, []
    if not os.path.isdir(slips_dir):
        raise PagodaError(f"--slips {slips_dir}: not a directory")
    names = {}
    for n in labs:
        names[os.path.basename(labs[n].directory)] = n
        names[f"lab{n}"] = n
    folders, problems = {}, []
    for entry in sorted(os.listdir(slips_dir)):
        path = os.path.join(slips_dir, entry)
        if entry in OTHER_FILES or entry.startswith(".") or (entry in SLIPS_OTHER_FOLDERS and os.path.isdir(path)):
            continue
        n = names.get(entry)
        if n is None or not os.path.isdir(path):
            problems.append(f"{os.path.abspath(path)}: not a lab's folder of slips (one of: "
                            f"{', '.join(sorted(names))})")
        elif n in folders:
            problems.append(f"{os.path.abspath(path)}: lab {n} has two folders of slips here")
        else:
            folders[n] = path
    return folders, problems


def load_all(root, labs, sources, slips_dir=None, solutions=False):
    """(every Mutant of every lab, in lab then file order; every problem with the files). The
    slips are each lab's own (labs/NN-name/mutants/) or, with @p slips_dir, only those kept
    there (slip_folders)."""
    by_path = {s.path: s for s in sources}
    folders, problems = slip_folders(labs, slips_dir, SOLUTIONS_DIR if solutions else MUTANTS_DIR)
    mutants = []
    for n in sorted(folders):
        folder = folders[n]
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            path = os.path.join(folder, entry)
            if entry in OTHER_FILES:
                continue
            if not entry.endswith(".toml") or not os.path.isfile(path):
                problems.append(f"{shown_path(path, root)}: not a slip (SLUG.toml) or {', '.join(OTHER_FILES)}")
                continue
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*\.toml", entry):
                problems.append(f"{shown_path(path, root)}: a slip's file name is lower-case letters, digits, "
                                "'-' and '_'")
                continue
            m, found = load_mutant(path, n, root, labs, by_path, solutions)
            problems += found
            if m is not None:
                mutants.append(m)
    return mutants, problems


# ---- trees ------------------------------------------------------------------------------------

def tree_for(n, labs, root):
    """(the lab the tree is published for, or None for the reference; its directory) of the tree
    a student has when lab @p n is done."""
    if n + 1 in labs:
        return n + 1, os.path.join(root, CHECK_SUBDIR, f"lab{n + 1}")
    return None, os.path.join(root, CHECK_SUBDIR, REFERENCE_TREE)


class TreeLock:
    """Holds the lock of a generated tree (`labs check` and `labs mutants` share the trees) until
    the end of a `with` block, or until release(), which another thread may call (after the tree's
    last grade)."""

    def __init__(self, tree):
        os.makedirs(os.path.dirname(tree), exist_ok=True)
        self.file = open(tree + ".lock", "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def release(self):
        if not self.file.closed:
            self.file.close()


def build_kernel(tree, arch, log_path, cpu=None):
    """Builds (treebuild.build: configured once, through the trees' shared object cache) the
    kernel of @p tree for @p arch, and the user programs it embeds, nothing else; True when it
    built. Appends to @p log_path; @p cpu (a list) gets the CPU seconds it took."""
    return treebuild.build(tree, arch, log_path, target=KERNEL_TARGET, cpu=cpu)


def first_error(log_path):
    """The first compiler error line of a build log (or its last line)."""
    try:
        with open(log_path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "no build log"
    errors = [l for l in lines if re.search(r"\berror\b", l)]
    return ((errors or lines or ["empty build log"])[0]).strip()[:200]


def set_aside(tree, arch, dest):
    """Copies the kernel ELF of @p tree's @p arch build and the user ELFs beside it (the grader
    reads them there) into @p dest; the kernel's new path."""
    build = os.path.join(tree, "build", arch)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(os.path.join(dest, "user", arch))
    kernel = os.path.join(dest, "kernel.elf")
    shutil.copy2(os.path.join(build, "kernel.elf"), kernel)
    for elf in glob.glob(os.path.join(build, "user", arch, "*.elf")):
        shutil.copy2(elf, os.path.join(dest, "user", arch))
    return kernel


def apply_edits(tree, edits):
    """Applies @p edits to @p tree's files; returns {path: original bytes} (to restore), or raises
    PagodaError (with everything restored) when a find text is not there exactly once."""
    originals = {}
    try:
        for k, e in enumerate(edits, 1):
            path = os.path.join(tree, e.file)
            if e.file not in originals:
                with open(path, "rb") as f:
                    originals[e.file] = f.read()
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
            count = text.count(e.find)
            if count != 1:
                raise PagodaError(f"edit {k}: the find text occurs {count} times in the tree's {e.file} "
                                  "(the published text differs from main's there)")
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(text.replace(e.find, e.replace))
    except BaseException:
        restore(tree, originals)
        raise
    return originals


def restore(tree, originals):
    for rel, data in originals.items():
        with open(os.path.join(tree, rel), "wb") as f:
            f.write(data)


# ---- grading and judging ----------------------------------------------------------------------

@dataclass
class Outcome:
    mutant: Mutant
    arch: str
    earned: int = None
    possible: int = None
    test: str = None            # the first failing test
    headline: list = field(default_factory=list)
    named: bool = False
    problem: str = ""           # empty: caught and named
    log: str = ""
    seconds: float = 0.0
    reason: str = ""            # the first failing test's whole reason
    kernel: str = ""            # the slipped kernel that was graded
    why: str = ""               # --why: fault-why's first verdict on a replay, or why there is none
    why_match: str = ""         # --why: yes / partly / no / n.a. (tools/pagoda/mutant_why.py)
    why_log: str = ""
    build_cpu: float = 0.0      # CPU seconds: the slip's build on this ISA, its grade (QEMUs included)
    grade_cpu: float = 0.0

    @property
    def ok(self):
        return not self.problem

    @property
    def score(self):
        return "-" if self.earned is None else f"{self.earned}/{self.possible}"


def headline_of(reason):
    """The first HEADLINE_LINES non-empty lines of a test's reason."""
    return [l.strip() for l in (reason or "").splitlines() if l.strip()][:HEADLINE_LINES]


def judge(outcome, data, specs):
    """Fills @p outcome from the grade's JSON @p data; @p specs are lab N's tests in order."""
    results = {r["id"]: r for r in data.get("results", []) if r.get("lab") == outcome.mutant.lab}
    outcome.earned, outcome.possible = data.get("earned"), data.get("possible")
    first = next((s for s in specs if results.get(s.id, {}).get("outcome") != "passed"), None)
    if outcome.mutant.solution:
        full = first is None and outcome.earned is not None and outcome.earned >= outcome.possible
        if not full:
            outcome.test = first.id if first else ""
            r = results.get(first.id) if first else None
            outcome.headline = headline_of(r["reason"] if r else "")
            outcome.problem = f"another solution scored {outcome.earned}/{outcome.possible}" + (
                f": {first.id} failed" if first else "")
        return outcome
    if first is None or (outcome.earned is not None and outcome.earned >= outcome.possible):
        outcome.problem = f"not caught: lab {outcome.mutant.lab} scored full marks with the slip"
        return outcome
    outcome.test = first.id
    r = results.get(first.id)
    outcome.reason = r["reason"] if r else "no result: the grader stopped before this test"
    outcome.headline = headline_of(outcome.reason)
    pattern = outcome.mutant.causes[outcome.arch]
    outcome.named = re.search(pattern, "\n".join(outcome.headline), re.IGNORECASE) is not None
    if not outcome.named:
        outcome.problem = (f"caught by {first.id}, but its first {HEADLINE_LINES} lines do not name the cause "
                           f"/{pattern}/")
    # (a test before the slip's own may catch it first with some tokens; one after it may not)
    expected, order = outcome.mutant.tests.get(outcome.arch), [s.id for s in specs]
    if expected in order and order.index(first.id) > order.index(expected):
        outcome.problem = "; ".join(filter(None, (outcome.problem, (
            f"the first failing test is {first.id}: {expected}, the test the slip file says names it, passed "
            "(correct its 'test' if the change that moved it is right)"))))
    return outcome


# The key grade_slip() adds to the grade's JSON: the CPU seconds the grade took (its QEMUs included).
GRADE_CPU = "pagoda_grade_cpu"


def grade_slip(tree, lab, arch, kernel, work, test=None, whole=False, warm=False):
    """Runs @p tree's own grader on lab @p lab with @p kernel, stopping at the first failure (or
    on @p test alone; every test with @p whole); the JSON it wrote (with the grade's CPU seconds under GRADE_CPU), or None
    (its log: @p work/grade.log). With @p warm, in a warm grader of the tree (forkgrade.py: for a
    tree graded many times, a lab's slips), else in a process of its own."""
    json_path = os.path.join(work, "grade.json")
    # The user programs: the copies set_aside() took from the slip's own build. A slip edits only
    # lab regions and user/ has none, so they are the programs the grader would build from the
    # tree; read from the copies, the grade neither runs a second ninja in the build directory
    # the next slip is building in, nor reads programs that build may be rewriting.
    added = {"PAGODA_GRADE_LOGS": os.path.join(work, "logs"),
             programs.USER_DIR_ENV: os.path.join(os.path.dirname(kernel), "user", arch),
             symbols.FACTS_ENV: ""}    # (the kernel is the tree's own build: its facts are the tree's)
    args = ["grade", f"lab{lab}", "--arch", arch, "-j", "1", *(("--test", test) if test else () if whole else ("--first-failure",)),
            "--kernel", kernel, "--json", json_path]
    argv = [paths.SYSTEM_PYTHON, os.path.join(tree, "pagoda"), *args]
    log_path = os.path.join(work, "grade.log")
    env = dict(os.environ, **added)
    with open(log_path, "w") as log:
        log.write(f"$ {' '.join(argv)}\n")
    cpu = None
    if warm:    # (the tree is this repository's text: a warm grader of it may run the command)
        try:
            _, cpu = forkgrade.run(tree, args, env, log_path)
        except OSError as e:
            with open(log_path, "a") as log:
                log.write(f"({e}: graded by a process of its own)\n")
    if cpu is None:
        with open(log_path, "a") as log:
            _, cpu = speed.run_logged(argv, log, cwd=tree, env=env)
    try:
        with open(json_path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    data[GRADE_CPU] = cpu
    return data


class Runner:
    """Builds the slips of each lab in its tree, one after another, and grades them in a pool."""

    def __init__(self, root, labs, sources, grade_workers, out, why=False, work=MUTANTS_DIR, repeat=1,
                 slip_test_only=False, in_order_on=None):
        self.root, self.labs, self.sources = root, labs, sources
        # (@p slip_test_only: every grade runs the slip's own test alone; @p in_order_on, {slip
        # name: ISA}: only the grade on that ISA runs the tests before it too)
        self.slip_test_only, self.in_order_on = slip_test_only, in_order_on
        self.why = why
        self.repeat = max(1, repeat)
        # (warm graders, forkgrade.py, pay their start-up back from a tree's second grade on: a
        # run of one or two grades starts none)
        self.warm = False
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, grade_workers))
        self.out = out
        self.work = os.path.join(root, CHECK_SUBDIR, work)
        self.lab_times = {}         # lab -> [start, end]
        self.tree_cpu = []          # CPU seconds of each build of an unchanged tree
        self.lock = threading.Lock()

    def _time(self, lab, start, end):
        with self.lock:
            span = self.lab_times.setdefault(lab, [start, end])
            span[0], span[1] = min(span[0], start), max(span[1], end)

    def run_lab(self, n, mutants, arches):
        """Builds every slip of lab @p n (on @p arches) and queues its grades; a list of futures
        of Outcomes."""
        start = time.monotonic()
        published, tree = tree_for(n, self.labs, self.root)
        lock = TreeLock(tree)
        futures = []
        try:
            info(f"labs mutants: lab{n}: generating {os.path.relpath(tree, self.root)}")
            publish.publish_tree(published, tree, self.root, self.sources, incremental=True)
            if published is None:
                for stale in (publish.LAB_FILE, publish.REGIONS_FILE):
                    if os.path.exists(os.path.join(tree, stale)):
                        os.unlink(os.path.join(tree, stale))
            lab_dir = os.path.join(self.work, f"lab{n}")
            os.makedirs(lab_dir, exist_ok=True)
            needed = [a for a in arches if any(a in m.arches for m in mutants)]
            broken = {}
            for arch in needed:
                log = os.path.join(lab_dir, f"tree-{arch}.build.log")
                open(log, "w").close()
                info(f"labs mutants: lab{n}: building the unchanged tree ({arch})")
                if not build_kernel(tree, arch, log, self.tree_cpu):
                    broken[arch] = (f"the tree without the slip does not build on {arch} "
                                    f"({os.path.relpath(log, self.root)}): {first_error(log)}")
            specs = [s for s in self.labs[n].tests if published is None or not s.hidden]
            for m in mutants:
                futures += self._slip(n, m, [a for a in arches if a in m.arches], tree, lab_dir, broken, specs)
        except BaseException:
            lock.release()
            raise
        self._time(n, start, time.monotonic())

        def release_when_graded():
            concurrent.futures.wait(futures)
            lock.release()
        threading.Thread(target=release_when_graded, daemon=True).start()
        return futures

    def _slip(self, n, m, arches, tree, lab_dir, broken, specs):
        futures = []
        slip_dir = os.path.join(lab_dir, m.slug)
        shutil.rmtree(slip_dir, ignore_errors=True)
        os.makedirs(slip_dir)
        try:
            originals = apply_edits(tree, m.edits)
        except PagodaError as e:
            return [_resolved(Outcome(m, a, problem=f"the slip does not apply: {e}")) for a in arches]
        kernels = {}
        try:
            for arch in arches:
                if arch in broken:
                    futures.append(_resolved(Outcome(m, arch, problem=broken[arch])))
                    continue
                log = os.path.join(slip_dir, f"{arch}.build.log")
                open(log, "w").close()
                info(f"labs mutants: {m.name}: building ({arch})")
                cpu = []
                if not build_kernel(tree, arch, log, cpu):
                    futures.append(_resolved(Outcome(m, arch, log=log, build_cpu=sum(cpu), problem=f"the slipped kernel "
                                                f"does not build ({os.path.relpath(log, self.root)}): {first_error(log)}")))
                    continue
                kernels[arch] = (set_aside(tree, arch, os.path.join(slip_dir, arch)), sum(cpu))
        finally:
            restore(tree, originals)
        for arch, (kernel, cpu) in kernels.items():
            futures.append(self.pool.submit(self._grade, n, m, arch, tree, kernel, specs, cpu))
        return futures

    def _grade(self, n, m, arch, tree, kernel, specs, build_cpu=0.0):
        """The Outcome of grading slip @p m's @p kernel; with --repeat K, of K grades, each with
        tokens of its own (the grader draws a fresh one per boot): a problem unless every one
        caught and named the slip (each judged as one grade is: _grade_once)."""
        start = time.monotonic()
        runs = [self._grade_once(n, m, arch, tree, kernel, specs, build_cpu, i) for i in range(self.repeat)]
        outcome = next((o for o in runs if not o.ok), runs[0])
        if self.repeat > 1 and not outcome.ok:
            good = sum(1 for o in runs if o.ok)
            outcome.problem = (f"not one verdict in {self.repeat} grades with tokens of their own: caught and named in "
                               f"{good}; " + "; ".join(f"run {i + 1}: {o.test or '-'}, {'named' if o.named else 'NOT named'}"
                                                        for i, o in enumerate(runs))
                               + f" (first run that missed: {outcome.problem or '-'})")
        outcome.grade_cpu = sum(o.grade_cpu for o in runs)
        outcome.seconds = time.monotonic() - start
        return outcome

    def _grade_once(self, n, m, arch, tree, kernel, specs, build_cpu, run):
        start = time.monotonic()
        work = os.path.dirname(kernel) if run == 0 else os.path.join(os.path.dirname(kernel), f"repeat-{run + 1}")
        os.makedirs(work, exist_ok=True)
        info(f"labs mutants: {m.name}: grading lab{n} ({arch})" + (f", run {run + 1} of {self.repeat}"
                                                                  if self.repeat > 1 else ""))
        alone = self.slip_test_only or (self.in_order_on is not None and self.in_order_on.get(m.name) != arch)
        own = alone and next((s for s in specs if s.id == m.tests.get(arch)), None)
        if own:
            specs = [own]
        data = grade_slip(tree, n, arch, kernel, work, test=own.id if own else None, warm=self.warm)
        outcome = Outcome(m, arch, log=os.path.join(work, "grade.log"), kernel=kernel, build_cpu=build_cpu)
        if data is None:
            outcome.problem = f"the grader did not run (see {os.path.relpath(outcome.log, self.root)})"
        else:
            outcome.grade_cpu = data.get(GRADE_CPU, 0.0)
            judge(outcome, data, specs)
            if self.why and outcome.test and run == 0:
                info(f"labs mutants: {m.name}: replaying {outcome.test}'s boot under GDB for fault-why ({arch})")
                from . import mutant_why    # (fault-why's model, pagoda_pt.diagnose: for --why alone)
                mutant_why.why(outcome, tree, self.root)
        outcome.seconds = time.monotonic() - start
        self._time(n, start, time.monotonic())
        return outcome


def _resolved(value):
    f = concurrent.futures.Future()
    f.set_result(value)
    return f


# ---- the command --------------------------------------------------------------------------------

def _cut(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."


def table(outcomes, why=False):
    """The result table, one row per slip and ISA, as lines; with @p why, fault-why's columns
    (does its verdict name the cause; the verdict) after the headline's."""
    rows = [("slip", "ISA", "score", "first failing test", "named", "headline")]
    if why:
        rows[0] = rows[0][:5] + ("fault-why", "headline | fault-why's verdict")
    for o in outcomes:
        head = o.headline[0] if o.headline else o.problem
        row = (o.mutant.name, o.arch, o.score, o.test or "-", "-" if o.mutant.solution else "yes" if o.named else "NO")
        if why:
            rows.append(row + (o.why_match or "n.a.", _cut(head, 70) + " | " + _cut(o.why or "-", 90)))
        else:
            rows.append(row + (_cut(head, 110),))
    fixed = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(fixed)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:fixed], widths)) + "  " + r[fixed] for r in rows]
    return lines


def cpu_summary(outcomes, trees_cpu=0.0, dearest=5):
    """Where the CPU time went, as a line: the slips' builds, their grades (QEMUs included), per
    run, and the @p dearest runs; @p trees_cpu: the builds of the unchanged trees."""
    builds, grades = sum(o.build_cpu for o in outcomes), sum(o.grade_cpu for o in outcomes)
    runs = max(1, len(outcomes))
    top = sorted(outcomes, key=lambda o: -(o.build_cpu + o.grade_cpu))[:dearest]
    return (f"labs mutants: CPU {builds + grades + trees_cpu:.0f}s: the slips' builds {builds:.0f}s "
            f"({builds / runs:.1f}s a run), their grades {grades:.0f}s ({grades / runs:.1f}s a run), the unchanged "
            f"trees' builds {trees_cpu:.0f}s; dearest: "
            + ", ".join(f"{o.mutant.name} ({o.arch}) {o.build_cpu + o.grade_cpu:.0f}s" for o in top))


def why_counts(outcomes):
    """"fault-why names the cause for N of M replayable slips" and the tallies, as a line."""
    tally = {k: sum(1 for o in outcomes if o.why_match == k) for k in ("yes", "partly", "no", "n.a.")}
    replayable = tally["yes"] + tally["partly"] + tally["no"]
    return (f"labs mutants --why: fault-why's verdict names the cause for {tally['yes']} of {replayable} replayed "
            f"slip(s) (partly {tally['partly']}, no {tally['no']}); no verdict for {tally['n.a.']} "
            f"(not replayable, ran to its end, or not caught)")


def to_json(outcomes):
    """The outcomes as JSON-ready dicts (--json)."""
    return [{"slip": o.mutant.name, "arch": o.arch, "title": o.mutant.title, "earned": o.earned,
             "possible": o.possible, "test": o.test, "headline": o.headline, "named": o.named,
             "cause": o.mutant.causes.get(o.arch), "problem": o.problem,
             "why": o.why or None, "why_match": o.why_match or None,
             "why_log": o.why_log or None, "seconds": round(o.seconds, 2), "build_cpu": round(o.build_cpu, 2),
             "grade_cpu": round(o.grade_cpu, 2)} for o in outcomes]


def describe_problems(outcomes, root):
    lines = []
    for o in outcomes:
        if o.ok:
            continue
        lines.append(f"{o.mutant.name} ({o.arch}): {o.problem}")
        lines.append(f"  slip: {o.mutant.title} (in {o.mutant.function}; {o.mutant.path})")
        for h in o.headline:
            lines.append(f"  | {_cut(h, 300)}")
        if o.log:
            lines.append(f"  log: {os.path.relpath(o.log, root)}")
    return lines


def select(mutants, labs, numbers, arches, slugs=None):
    if numbers:
        unknown = [n for n in numbers if n not in labs]
        if unknown:
            raise PagodaError(f"unknown lab(s): {', '.join(f'lab{n}' for n in unknown)}")
        mutants = [m for m in mutants if m.lab in numbers]
    if slugs:
        unknown = [s for s in slugs if not any(s in (m.slug, m.name) for m in mutants)]
        if unknown:
            raise PagodaError(f"no slip {', '.join(unknown)} (./pagoda labs mutants --list lists them)")
        mutants = [m for m in mutants if m.slug in slugs or m.name in slugs]
    return [m for m in mutants if any(a in m.arches for a in arches)]


def one_isa_each(mutants, arches, seed):
    """@p mutants with each slip's ISAs cut to one of @p arches (`--one-isa`), chosen by
    paths.one_isa_each lab by lab: every slip runs once; both ISAs get half of each lab's slips;
    which half changes with the seed (./pagoda test: the commit)."""
    out = []
    for n in sorted({m.lab for m in mutants}):
        lab = [m for m in mutants if m.lab == n]
        picked = paths.one_isa_each({m.name: {a: 1 for a in arches if a in m.arches} for m in lab}, seed)
        out += [dataclasses.replace(m, arches=(picked[m.name],)) for m in lab]
    return out


def one_in(mutants, share, seed):
    """@p mutants cut to one in @p share of each lab's slips (rounded up; in their order), the first
    of paths.seeded_order() by @p seed (`--share`)."""
    kept = set()
    for n in {m.lab for m in mutants}:
        lab = paths.seeded_order([m.name for m in mutants if m.lab == n], seed)
        kept.update(lab[:-(-len(lab) // share)])
    return [m for m in mutants if m.name in kept]


def run(root=paths.ROOT, numbers=None, arches=paths.ARCHES, listing=False, workers=None, out=print, slugs=None,
        why=False, json_path=None, slips_dir=None, one_isa=None, repeat=1, slip_test_only=False, solutions=False,
        in_order_once=None, share=1):
    """The command: returns the number of problems. @p why replays each caught slip's failing
    boot for fault-why (tools/pagoda/mutant_why.py); @p json_path gets every outcome as JSON.
    @p slips_dir: check the slips kept there (slip_folders) instead of the labs' own; their logs
    go to build/labs-check/SLIPS_WORK/. With @p one_isa (a seed: one_isa_each()) each slip runs on
    one ISA only, and the last line says so. @p repeat: grades of each slip (Runner._grade).
    @p slip_test_only: each slip's grade runs the test its file names alone. With @p in_order_once
    (a seed) each slip runs on every ISA, in lab.toml order on one (one_isa_each()'s pick), its own
    test alone on the others. @p share: one in that many of each lab's slips (one_in(), seeded as
    one_isa, or by in_order_once)."""
    start = time.monotonic()
    sources = publish.scan(root)
    errors = publish.lint(root, sources)
    if errors:
        for e in errors:
            out(e)
        out(f"labs mutants: the region markers have {len(errors)} error(s) (./pagoda labs lint)")
        return len(errors)
    labs = publish.load_labs(root)
    mutants, problems = load_all(root, labs, sources, slips_dir, solutions)
    for p in problems:
        out(p)
    chosen = select(mutants, labs, numbers, arches, slugs)
    slips = len(chosen)
    if share > 1:
        chosen = one_in(chosen, share, one_isa if one_isa is not None else in_order_once)
    if listing or problems:
        for m in chosen:
            out(f"{m.name}  [{', '.join(m.arches)}]  {m.function}: {m.title}"
                + (f" (seed {m.seed})" if m.seed else ""))
        out(f"labs mutants: {len(chosen)} slip(s) in {len({m.lab for m in chosen})} lab(s)"
            + (f"; {len(problems)} problem(s) in the slip files" if problems else ""))
        return len(problems)
    if not chosen:
        out("labs mutants: no slips to check" + (f" in {', '.join(f'lab{n}' for n in numbers)}" if numbers else ""))
        return 0
    every = sum(len([a for a in m.arches if a in arches]) for m in chosen)
    if one_isa is not None:
        chosen = one_isa_each(chosen, arches, one_isa)
    in_order_on = None if in_order_once is None else \
        {m.name: m.arches[0] for m in one_isa_each(chosen, arches, in_order_once)}
    runner = Runner(root, labs, sources, workers or os.cpu_count() or 1, out, why=why,
                    work=SOLUTIONS_DIR if solutions else MUTANTS_DIR if slips_dir is None else SLIPS_WORK,
                    repeat=repeat, slip_test_only=slip_test_only, in_order_on=in_order_on)
    runner.warm = sum(len([a for a in m.arches if a in arches]) for m in chosen) * max(1, repeat) > 2
    futures = []
    try:
        for n in sorted({m.lab for m in chosen}):
            futures += runner.run_lab(n, [m for m in chosen if m.lab == n], arches)
        outcomes = [f.result() for f in futures]
    finally:
        runner.pool.shutdown(wait=True, cancel_futures=True)
        forkgrade.close()
    outcomes.sort(key=lambda o: (o.mutant.lab, o.mutant.slug, paths.ARCHES.index(o.arch)))
    for line in table(outcomes, why=why):
        out(line)
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"why": why, "slips": to_json(outcomes)}, f, indent=1)
    bad = [o for o in outcomes if not o.ok]
    if bad:
        out("")
        for line in describe_problems(bad, root):
            out(line)
    times = ", ".join(f"lab{n} {span[1] - span[0]:.0f}s" for n, span in sorted(runner.lab_times.items()))
    out(cpu_summary(outcomes, sum(runner.tree_cpu)))
    if why:
        out(why_counts(outcomes))
    sample = ""
    if share > 1:
        sample = (f"; ONE IN {share} SLIPS of each lab: {len(chosen)} of {slips} (the others: without --share)")
    if one_isa is not None:
        per = ", ".join(f"{sum(1 for o in outcomes if o.arch == a)} on {a}" for a in arches)
        sample += (f"; ONE ISA PER SLIP ({per}; seed {one_isa or 'none'}): {every - len(outcomes)} of the "
                  f"{every} slip-ISA runs not made, each ISA of every slip: without --one-isa")
    if slip_test_only:
        alone = sum(1 for o in outcomes if o.arch in o.mutant.tests)
        sample += (f"; {alone} graded on the test their file names alone (the tests before it: without "
                   "--slip-test-only)")
    if in_order_on is not None:
        alone = sum(1 for o in outcomes if in_order_on.get(o.mutant.name) != o.arch and o.arch in o.mutant.tests)
        sample += (f"; in lab.toml order on one ISA per slip (seed {in_order_once or 'none'}), {alone} graded on "
                   "their own test alone on the other: in order on each without --in-order-once")
    out(f"labs mutants: {len(outcomes) - len(bad)}/{len(outcomes)} "
        + ("solutions at full marks " if solutions else "slips caught and named ")
        + f"({len({o.mutant.name for o in outcomes})} slip(s){sample}) in {time.monotonic() - start:.0f}s ({times})")
    return len(bad)
