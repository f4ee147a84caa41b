"""`pagoda labs check`: prove that every lab's skeleton is a fair starting point, on every ISA.

For each lab N the labN tree is generated into build/labs-check/labN (incrementally: a second
run rebuilds only what changed), and for each ISA its kernel is built there and the tree's own
./pagoda grades it: every test of an earlier lab must pass (their solutions are in the tree) and
every test of lab N must fail (a lab-N test that passes on the skeleton tests nothing the
student writes). On an ISA a lab does not run on yet (lab.toml's arches) only the earlier labs
that do are graded: the skeleton must not break them there either.
A test that passes on the skeleton on purpose (it shows what the grader checks but tests
nothing the student writes) says so in its lab.toml entry with `passes_on_skeleton = true`;
labs check then requires it to pass there instead. main itself must pass everything, the markers must lint clean, and a trial publication
(build/labs-check/published) must not leak solution text. Logs: build/labs-check/*.log.
With --previous-only, of the earlier labs each tree grades only lab N-1 (half the tests: every
lab is still graded on the skeleton right after it; a skeleton breaking a lab further back is
then found by the run without it); with --own-only (./pagoda test's sample) none of them. With --earlier-once (CI) each tree grades every earlier lab
on one ISA, half the trees on each (a seed choosing which, as `labs mutants --one-isa` splits),
and only lab N-1 on the others.

The reference is a valid submission of every lab: its lab-N regions, handed in as a student
would hand them in (the lab-N files as the lab-(N+1) tree shows them), go into the lab-N tree by
the transplant that grades students (transplant.py: batch.py and the autograder), so a region
that calls what only a region without a skeleton (the reference's own, not published in lab N)
defines does not build. The transplanted kernel is built in the lab-N tree (which is then the
skeleton again) and graded on lab N with the tree's own grader: every test must pass, on every
ISA (logs: build/labs-check/as-submission/labN/). With --one-isa (./pagoda test without --full)
it is built on one ISA only, half the labs on each (the seed choosing which, as `labs mutants
--one-isa` splits), and not graded: what a grade would add is nearly all graded already, since the
lab-(N+1) tree holds the same regions and grades lab N on them. Nor is it graded where the lab-(N+1)
tree of the same run graded lab N on that ISA with every test passing on the same kernel and
programs and the same grader (grade_digest(): equal byte for byte but for the ELFs' debug
information, which names the tree that compiled each object); the verdict says so. The grade then adds no run the other did not: the
reference's lab-N regions handed in are the lab-(N+1) tree's text.
"""
import concurrent.futures
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

from . import mutants, publish, transplant, treebuild
from pagoda_core import paths
from pagoda_core.ui import PagodaError, info

from pagoda_grade import symbols

CHECK_SUBDIR = os.path.join("build", "labs-check")
# Where the reference's submission of each lab is written and its kernels set aside and graded:
# build/labs-check/as-submission/labN/ (submitted/, ARCH/, ARCH.build.log, ARCH/grade.log).
AS_SUBMISSION = "as-submission"
MAX_DETAIL_LINES = 25


@dataclass
class Verdict:
    name: str
    summary: str = ""
    problems: list = field(default_factory=list)
    details: list = field(default_factory=list)     # context printed under the problems
    seconds: float = 0.0

    def line(self):
        head = f"{self.name}: {'ok' if not self.problems else 'PROBLEM'}"
        head += f" — {self.summary}" if self.summary else ""
        lines = [f"{head} ({self.seconds:.1f}s)"]
        lines += [f"  {p}" for p in self.problems]
        lines += [f"    {d}" for d in self.details]
        return "\n".join(lines)


def _error_excerpt(log_path):
    with open(log_path, errors="replace") as f:
        lines = f.read().splitlines()
    errors = [l for l in lines if re.search(r"\berror\b|FAILED:|CMake Error", l)]
    return (errors or lines)[-MAX_DETAIL_LINES:]


def build_tree(tree, log_path, arch=paths.DEFAULT_ARCH):
    """Builds (treebuild.build: configured once, through the trees' shared object cache) the
    @p arch kernel of a generated tree; returns the ELF or None."""
    open(log_path, "w").close()
    if not treebuild.build(tree, arch, log_path):
        return None
    return os.path.join(tree, "build", arch, "kernel.elf")


def grade_tree(tree, numbers, kernel, base, workers="auto", arch=paths.DEFAULT_ARCH):
    """Runs @p tree's own ./pagoda grade (logs to @p base.grade.log); returns
    ({(lab, id): result}, log path)."""
    json_path, log_path = base + ".grade.json", base + ".grade.log"
    if os.path.exists(json_path):
        os.unlink(json_path)
    argv = [paths.SYSTEM_PYTHON, os.path.join(tree, "pagoda"), "grade", *[f"lab{n}" for n in numbers],
            "--arch", arch, "-j", str(workers), "--json", json_path]
    env = None
    if kernel:      # (the tree's own build: its facts are the tree's, grade.py need not build it again)
        argv += ["--kernel", kernel]
        env = dict(os.environ, **{symbols.FACTS_ENV: ""})
    with open(log_path, "w") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        subprocess.run(argv, cwd=tree, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        with open(json_path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        raise PagodaError(f"the grader of {tree} did not run; see {log_path}")
    return {(r["lab"], r["id"]): r for r in data["results"]}, log_path


def _loaded(path):
    """What a boot and the grader's verdicts read of the ELF @p path: its entry, its segments and
    every section but the debug information (.debug_*: file and line names for messages, and the
    path of the tree that compiled each object, an object of the trees' shared cache naming the
    tree that compiled it first) and the symbols in it, each with its header, as one bytes."""
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        elf = ELFFile(f)
        parts = [f"entry {elf.header['e_entry']}".encode()]
        for seg in elf.iter_segments():
            parts += [f"{seg['p_type']} {seg['p_vaddr']} {seg['p_paddr']} {seg['p_filesz']} {seg['p_memsz']} "
                      f"{seg['p_flags']}".encode(), seg.data()]
        debug = {k for k, sec in enumerate(elf.iter_sections()) if sec.name.startswith(".debug")}
        for sec in elf.iter_sections():
            if sec.name.startswith(".debug"):
                continue
            parts.append(f"{sec.name} {sec['sh_type']} {sec['sh_addr']} {sec['sh_flags']} {sec['sh_size']}".encode())
            if sec["sh_type"] == "SHT_SYMTAB":     # (but the symbols in the debug information: AArch64's $d)
                parts += [f"{y.name} {y['st_value']} {y['st_size']} {y['st_info']} {y['st_shndx']}".encode()
                          for y in sec.iter_symbols() if y["st_shndx"] not in debug]
            elif sec["sh_type"] != "SHT_NOBITS":
                parts.append(sec.data())
    return b"\0".join(p.replace(b"\0", b"\0\0") for p in parts)


def grade_digest(kernel, tree):
    """A digest of everything a grade of @p kernel, built in @p tree, runs and reads: the kernel ELF
    and the user ELFs beside it (user/ARCH/, as mutants.set_aside() and the build leave them) but
    their debug information (_loaded()), the tree's grader (./pagoda, grade/, tools/) and lab
    manifests. Two trees' builds of one text are one digest."""
    digest = hashlib.sha256()
    elfs = [kernel] + sorted(glob.glob(os.path.join(os.path.dirname(kernel), "user", "*", "*.elf")))
    grader = [os.path.join(tree, "pagoda")] + sorted(
        os.path.join(d, f) for top in ("grade", "tools") for d, _, files in os.walk(os.path.join(tree, top))
        if "__pycache__" not in d.split(os.sep) for f in files)
    grader += sorted(glob.glob(os.path.join(tree, "labs", "*", "lab.toml")))
    for path in elfs + grader:
        if path in elfs:
            data = _loaded(path)
        else:
            with open(path, "rb") as f:
                data = f.read()
        name = os.path.relpath(path, os.path.dirname(kernel) if path in elfs else tree)
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


class Proofs:
    """What each tree's grade of this run proved, for the reference's submission of the lab before
    it (check_reference): {(tree's lab, ISA): (grade_digest() of its kernel, the labs whose every test
    passed there)}. A tree checked in this run is expected, and a look-up waits for its check."""

    def __init__(self, expected=()):
        self.expected, self.proved, self.ended = set(expected), {}, set()
        self.changed = threading.Condition()

    def put(self, key, digest, labs):
        with self.changed:
            self.proved[key] = (digest, set(labs))

    def end(self, key):
        """The check of tree and ISA @p key is over (proved or not)."""
        with self.changed:
            self.ended.add(key)
            self.changed.notify_all()

    def passed(self, key, lab, digest):
        """Whether tree and ISA @p key graded @p lab with every test passing on what @p digest names;
        waits for that tree's check when this run makes it."""
        with self.changed:
            if key not in self.expected:
                return False
            self.changed.wait_for(lambda: key in self.ended)
            got = self.proved.get(key)
            return got is not None and got[0] == digest and lab in got[1]


def _first_line(reason):
    lines = [l.strip() for l in (reason or "").splitlines() if l.strip()]
    return lines[0][:160] if lines else "no reason given"


def _graded_labs(tree, labs, upto, arch=paths.DEFAULT_ARCH):
    """The labs up to @p upto that run on @p arch and have grader tests, and those without."""
    runs = [n for n in sorted(labs) if n <= upto and arch in labs[n].arches]
    have = [n for n in runs if os.path.exists(os.path.join(tree, "grade", f"test_lab{n}.py"))]
    missing = [n for n in runs if n not in have]
    return have, missing


def _name(base, arch):
    """A verdict's name: x86_64's is the plain one."""
    return base if arch == paths.DEFAULT_ARCH else f"{base} on {arch}"


def _suffix(arch):
    """Log-file suffix of @p arch (none for x86_64, so its files keep their names)."""
    return "" if arch == paths.DEFAULT_ARCH else f"-{arch}"


def passes_on_skeleton(lab):
    """Ids of @p lab's tests whose lab.toml entry says `passes_on_skeleton = true`."""
    return {t.id for t in lab.tests if t.passes_on_skeleton}


def check_main(root, labs, arch=paths.DEFAULT_ARCH):
    start = time.monotonic()
    v = Verdict(_name("main", arch))
    numbers, missing = _graded_labs(root, labs, max(labs), arch)
    v.problems += [f"lab{n} has no grader tests (grade/test_lab{n}.py)" for n in missing]
    if numbers:
        results, log = grade_tree(root, numbers, None, os.path.join(root, CHECK_SUBDIR, "main" + _suffix(arch)),
                                  arch=arch)
        failed = 0
        for n in numbers:
            for spec in labs[n].tests:
                r = results.get((n, spec.id))
                if not r or r["outcome"] != "passed":
                    failed += 1
                    v.problems.append(f"main: test lab{n}/{spec.id} FAILS on the reference solution: "
                                      f"{_first_line(r and r['reason']) if r else 'no result'}")
        total = sum(len(labs[n].tests) for n in numbers)
        v.summary = f"{total - failed}/{total} tests pass on the reference solution"
        if failed:
            v.details.append(f"grader output: {os.path.relpath(log, root)}")
    v.seconds = time.monotonic() - start
    return v


def check_lab(n, root, labs, sources, workers="auto", arch=paths.DEFAULT_ARCH, earlier_labs=None, proofs=None,
              graded=True):
    """Verdict on the lab-@p n tree on @p arch (built only, unless @p graded), of the labs before
    lab @p n grading the @p earlier_labs last (None: all); what its grade proved goes to @p proofs
    (Proofs)."""
    start = time.monotonic()
    v = Verdict(_name(f"lab{n}", arch))
    tree = os.path.join(root, CHECK_SUBDIR, f"lab{n}")
    with mutants.TreeLock(tree):   # `labs mutants` builds its slips in the same trees
        return _check_lab_locked(n, root, labs, sources, workers, arch, v, start, tree, earlier_labs, proofs,
                                 graded)


def _check_lab_locked(n, root, labs, sources, workers, arch, v, start, tree, earlier_labs, proofs, graded):
    publish.publish_tree(n, tree, root, sources, incremental=True)
    build_log = tree + _suffix(arch) + ".build.log"
    kernel = build_tree(tree, build_log, arch)
    if kernel is None:
        v.problems.append(f"lab{n} skeleton: the kernel does not build "
                          f"(log: {os.path.relpath(build_log, root)})")
        v.details += _error_excerpt(build_log)
        v.seconds = time.monotonic() - start
        return v
    if not graded:
        v.summary = f"builds; not graded on {arch} (--one-isa: graded on the other)"
        v.seconds = time.monotonic() - start
        return v
    numbers, missing = _graded_labs(tree, labs, n, arch)
    v.problems += [f"lab{n} skeleton: lab{k} has no grader tests (grade/test_lab{k}.py)" for k in missing]
    left = [k for k in numbers if earlier_labs is not None and k < n - earlier_labs]
    numbers = [k for k in numbers if k not in left]
    earlier_ok = earlier = failing = given = 0
    runs_here = arch in labs[n].arches
    expected_pass = passes_on_skeleton(labs[n]) if runs_here else set()
    if numbers:
        results, log = grade_tree(tree, numbers, kernel, tree + _suffix(arch), workers, arch)
        for k in numbers:
            for spec in labs[k].visible_tests:   # hidden tests are not in the published tree
                r = results.get((k, spec.id))
                outcome = r["outcome"] if r else None
                if k < n:
                    earlier += 1
                    if outcome == "passed":
                        earlier_ok += 1
                    else:
                        v.problems.append(
                            f"lab{n} skeleton: earlier test lab{k}/{spec.id} FAILS — the lab-{n} "
                            f"skeleton breaks lab {k}: {_first_line(r['reason']) if r else 'no result'}")
                elif spec.id in expected_pass:
                    if outcome == "passed":
                        given += 1
                    else:
                        v.problems.append(
                            f"lab{n} skeleton: test {spec.id} FAILS on the skeleton, but its lab.toml "
                            f"entry says passes_on_skeleton: {_first_line(r['reason']) if r else 'no result'}")
                elif outcome == "passed":
                    v.problems.append(f"lab{n} skeleton: test {spec.id} PASSES on the skeleton — it "
                                      "does not test the student's code")
                elif outcome == "failed":
                    failing += 1
                else:
                    v.problems.append(f"lab{n} skeleton: test {spec.id} has "
                                      f"{'no result (the grader crashed?)' if r is None else 'been ' + outcome}")
        if v.problems:
            v.details.append(f"grader output: {os.path.relpath(log, root)}")
        if proofs is not None:
            proofs.put((n, arch), grade_digest(kernel, tree),
                       [k for k in numbers if k < n and all((results.get((k, s.id)) or {}).get("outcome") == "passed"
                                                            for s in labs[k].visible_tests)])
    total = len(labs[n].visible_tests) - len(expected_pass)
    v.summary = (f"builds; {earlier_ok}/{earlier} earlier tests pass; "
                 f"{failing}/{total} lab-{n} tests fail on the skeleton")
    if not runs_here:
        v.summary = f"builds; {earlier_ok}/{earlier} earlier tests pass (lab {n} does not run on {arch} yet)"
    if expected_pass:
        v.summary += f" ({given}/{len(expected_pass)} pass there on purpose)"
    if left:
        v.summary += f"; labs {left[0]}-{left[-1]} not graded here ({'--own-only' if earlier_labs == 0 else '--previous-only'})"
    v.seconds = time.monotonic() - start
    return v


def reference_submission(n, sources):
    """{path: (bytes, mode)}: the lab-@p n tree as a student who wrote the reference's solution
    hands it in: each file as the lab-(n+1) tree shows it (lab n's regions hold the reference's
    text), for the files of the lab-n tree."""
    return {src.path: (publish.resolved(src, n + 1), src.mode) for src in sources
            if src.link is None and publish.in_tree(src, n)}


def check_reference(n, root, labs, sources, arch=paths.DEFAULT_ARCH, grade=True, proofs=None):
    """Verdict on the reference's lab-@p n regions handed in as a lab-@p n submission: put into
    the lab-n tree by the transplant that grades students (transplant.py, as batch.py and the
    autograder do), its kernel must build on @p arch and, with @p grade, score full marks on lab
    n there (the tree's own grader, every test), unless @p proofs says the lab-(n+1) tree's grade
    in this run passed lab n on the same kernel, programs and grader (grade_digest()). Built in lab n's
    labs-check tree, which is then restored to the skeleton."""
    start = time.monotonic()
    v = Verdict(_name(f"lab{n} reference as a submission", arch))
    work = os.path.join(root, CHECK_SUBDIR, AS_SUBMISSION, f"lab{n}")
    submitted = os.path.join(work, "submitted")
    shutil.rmtree(submitted, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    transplant.write_tree(reference_submission(n, sources), submitted)
    pub = transplant.published(n, root, sources)
    graded = transplant.transplant(pub, submitted)
    changed = {rel: data for rel, (data, _) in graded.files.items() if data != pub.files[rel][0]}
    tree = os.path.join(root, CHECK_SUBDIR, f"lab{n}")
    log = os.path.join(work, f"{arch}.build.log")
    open(log, "w").close()
    cpu = []
    with mutants.TreeLock(tree):   # lab n's skeleton tree, shared with check_lab and `labs mutants`
        publish.publish_tree(n, tree, root, sources, incremental=True)
        originals = {}
        for rel, data in changed.items():
            with open(os.path.join(tree, rel), "rb") as f:
                originals[rel] = f.read()
        try:
            mutants.restore(tree, changed)
            built = mutants.build_kernel(tree, arch, log, cpu)
            kernel = built and mutants.set_aside(tree, arch, os.path.join(work, arch))
        finally:
            mutants.restore(tree, originals)
    build_cpu = sum(cpu)
    if not built:
        v.problems.append(f"lab{n}: the reference's lab-{n} regions, handed in as a lab-{n} submission, do not "
                          f"build on {arch} (log: {os.path.relpath(log, root)})")
        v.details += _error_excerpt(log)
        if graded.left_out:
            v.details.append("left out of the graded tree (not a student's to write): " + ", ".join(graded.left_out))
    elif not grade or arch not in labs[n].arches:
        v.summary = f"builds ({build_cpu:.0f} CPU-s); not graded" + \
            (" (--one-isa)" if arch in labs[n].arches else f" (lab {n} does not run on {arch})")
    elif proofs is not None and proofs.passed((n + 1, arch), n, grade_digest(kernel, tree)):
        v.summary = (f"builds ({build_cpu:.0f} CPU-s); not graded again: the same kernel, programs and grader "
                     f"as the lab{n + 1} tree's, where every lab-{n} test passed")
    else:
        data = mutants.grade_slip(tree, n, arch, kernel, os.path.join(work, arch), whole=True)
        if data is None:
            raise PagodaError(f"the grader of {tree} did not run; see {os.path.join(work, arch, 'grade.log')}")
        results = {r["id"]: r for r in data["results"] if r["lab"] == n}
        earned = possible = 0
        for spec in labs[n].visible_tests:
            r = results.get(spec.id)
            possible += spec.points
            if r and r["outcome"] == "passed":
                earned += spec.points
            else:
                v.problems.append(f"lab{n}: test {spec.id} FAILS on the reference handed in as a submission: "
                                  f"{_first_line(r['reason']) if r else 'no result'}")
        v.summary = (f"builds ({build_cpu:.0f} CPU-s); scores {earned}/{possible} "
                     f"({data[mutants.GRADE_CPU]:.0f} CPU-s)")
        if v.problems:
            v.details.append(f"grader output: {os.path.relpath(os.path.join(work, arch, 'grade.log'), root)}")
    v.seconds = time.monotonic() - start
    return v


def check_leaks(root, sources):
    start = time.monotonic()
    v = Verdict("leaks")
    out = os.path.join(root, CHECK_SUBDIR, "published")
    shutil.rmtree(out, ignore_errors=True)
    branches = publish.publish(out, root, check_leaks=False, sources=sources)
    v.problems = publish.find_leaks(out, root, sources)
    v.summary = (f"trial publication of {len(branches)} branch(es) in "
                 f"{os.path.relpath(out, root)}: {'no' if not v.problems else 'LEAKED'} solution text")
    v.seconds = time.monotonic() - start
    return v


def check(root=paths.ROOT, only=None, jobs=1, clean=False, workers="auto", out=print, skip_main=False,
          earlier_labs=None, one_isa=None, earlier_once=None):
    """Runs every check; prints one verdict per lab; returns the number of problems. Grading
    main itself is left out with @p only or @p skip_main; with @p earlier_labs (a number) each
    lab's tree grades, of the earlier labs, only that many before it (1: --previous-only, 0:
    --own-only); with @p earlier_once (a seed) it grades
    them all on one ISA and only the one before it on the others; with @p one_isa (a seed) each
    lab's reference as a submission is built on one ISA, not graded (else built and graded on each),
    and its skeleton graded on that ISA only (built on each)."""
    start = time.monotonic()
    check_dir = os.path.join(root, CHECK_SUBDIR)
    if clean:
        shutil.rmtree(check_dir, ignore_errors=True)
    os.makedirs(check_dir, exist_ok=True)
    sources = publish.scan(root)
    errors = publish.lint(root, sources)
    lint = Verdict("lint", problems=errors,
                   summary=f"{sum(len(s.parsed.regions) for s in sources if s.parsed)} region(s) "
                           f"in {len(sources)} files")
    lint.seconds = time.monotonic() - start
    out(lint.line())
    if errors:
        out(f"labs check: {len(errors)} problem(s) in {time.monotonic() - start:.1f}s")
        return len(errors)
    labs = publish.load_labs(root)
    if only:
        unknown = [n for n in only if n not in labs]
        if unknown:
            raise PagodaError(f"unknown lab(s): {', '.join(f'lab{n}' for n in unknown)}")
    problems = 0
    numbers = sorted(only or labs)
    # The trial publication (git and Python, no build) runs beside the labs' builds and grades.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as side, \
            concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        leaks = side.submit(check_leaks, root, sources)
        futures = []
        if not only and not skip_main:
            for arch in paths.ARCHES:
                info(f"labs check: grading main ({arch})")
                futures.append(pool.submit(lambda a: [check_main(root, labs, a)], arch))
        # (the last labs first: they grade the most tests, and one left for the end keeps a
        # core alone busy; the verdicts are still printed in lab order)
        # (with @p one_isa, each lab's reference as a submission is built on one ISA and not
        # graded: half the labs on each, the seed choosing which half, as `labs mutants
        # --one-isa` splits its slips; the lab-(N+1) tree's grade of lab N runs the same regions)
        reference_on = {n: paths.ARCHES for n in numbers}
        if one_isa is not None:
            picked = paths.one_isa_each({n: {a: 1 for a in labs[n].arches} for n in numbers}, one_isa)
            reference_on = {n: (picked[n],) for n in numbers}
        # ({ISA: of the labs before it, how many (the last ones) each tree grades there}; an ISA
        # not in it: all of them)
        cut = {n: {} if earlier_labs is None else dict.fromkeys(paths.ARCHES, earlier_labs) for n in numbers}
        if earlier_once is not None:
            tree_arches = {n: {a: 1 for a in _tree_arches(labs, n)} for n in numbers}
            picked = paths.one_isa_each(tree_arches, earlier_once)
            cut = {n: {a: 1 for a in tree_arches[n] if a != picked[n]} for n in numbers}
        # (each tree's grade, for the reference's submission of the lab before it: the trees are
        # started last lab first, so the one a check waits for has started before it)
        proofs = Proofs((n, a) for n in numbers for a in _tree_arches(labs, n))
        by_lab = {n: pool.submit(_check_lab_logged, n, root, labs, sources, workers, cut[n],
                                 reference_on[n], one_isa is None, proofs)
                  for n in sorted(numbers, reverse=True)}
        futures += [by_lab[n] for n in numbers]
        verdict = leaks.result()
        out(verdict.line())
        problems += len(verdict.problems)
        for fut in futures:
            for verdict in fut.result():
                out(verdict.line())
                problems += len(verdict.problems)
    elapsed = time.monotonic() - start
    out(f"labs check: {'all ok' if problems == 0 else f'{problems} problem(s)'} in {elapsed:.1f}s "
        f"({len(numbers)} lab(s){'' if only or skip_main else ' and main'}"
        f"{'; each tree grades only the lab before it of the earlier ones: --previous-only' if earlier_labs == 1 else ''}"
        f"{'; each tree grades its own lab only: --own-only' if earlier_labs == 0 else ''}"
        f"{'; each tree grades every earlier lab on one ISA, only the lab before it on the other: --earlier-once' if earlier_once is not None else ''})")
    return problems


def _tree_arches(labs, n):
    """The ISAs the lab-@p n tree is checked on: where lab n, or a lab before it, runs."""
    return [a for a in paths.ARCHES if any(a in labs[k].arches for k in labs if k <= n)]


def _check_lab_logged(n, root, labs, sources, workers, cut=None, reference_on=paths.ARCHES,
                      graded=True, proofs=None):
    """The verdicts of lab @p n on every ISA where it, or a lab before it, runs (one tree): its
    skeleton's (of the earlier labs only the last @p cut[ISA] where given), then on
    the ISAs @p reference_on the reference's as a submission (built, and graded if @p graded
    and @p proofs does not show the grade made already). Unless @p graded, the skeleton is graded
    only on the ISAs @p reference_on, and built on the others."""
    verdicts = []
    try:
        for arch in _tree_arches(labs, n):
            info(f"labs check: lab{n}: generating, building and grading build/labs-check/lab{n} ({arch})")
            try:
                verdicts.append(check_lab(n, root, labs, sources, workers, arch, (cut or {}).get(arch), proofs,
                                          graded or arch in reference_on))
            except PagodaError as e:
                verdicts.append(Verdict(_name(f"lab{n}", arch), problems=[str(e)]))
            finally:
                if proofs is not None:
                    proofs.end((n, arch))
            if arch not in reference_on:
                continue
            info(f"labs check: lab{n}: the reference as a submission ({arch})")
            try:
                verdicts.append(check_reference(n, root, labs, sources, arch, graded, proofs))
            except PagodaError as e:
                verdicts.append(Verdict(_name(f"lab{n} reference as a submission", arch), problems=[str(e)]))
    finally:   # (whatever ended the checks: the lab before this one waits for none of them)
        for arch in _tree_arches(labs, n) if proofs is not None else ():
            proofs.end((n, arch))
    return verdicts
