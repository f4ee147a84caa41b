"""`pagoda lab status`: where a student stands in the current lab, and what to read next.

A published branch carries .pagoda-lab (the lab number); main has none and is the reference
tree, where every lab's solution is in place.
"""
import os

from . import grade, labstart, publish
from pagoda_core import build, paths
from pagoda_core.ui import PagodaError, first_line
from pagoda_grade import manifest
from pagoda_grade.todo import current_lab


def handout(lab, root=paths.ROOT):
    path = os.path.relpath(os.path.join(lab.directory, "README.md"), root)
    return path if os.path.exists(os.path.join(root, path)) else f"{path} (not written yet)"


def _grade(numbers, arch, workers):
    try:
        kernel = build.build_kernel(arch)
    except PagodaError as e:
        raise PagodaError(f"the kernel does not build, so no test can run: {e}")
    results, _ = grade.run_pytest(numbers, arch, workers, kernel=kernel)
    return results


def report(lab, results, root=paths.ROOT, out=print):
    """Prints one lab's tests (pass/FAIL) and what to read next; returns True if all pass."""
    out(f"lab{lab.number} — {lab.title}")
    first_failure = None
    earned = 0
    for spec in lab.tests:
        r = results.get((lab.number, spec.id))
        ok = bool(r) and r["outcome"] == "passed"
        earned += spec.points if ok else 0
        out(f"  {'pass' if ok else 'FAIL'}  {spec.id:<24} {spec.checks}")
        if not ok and first_failure is None:
            first_failure = (spec, r)
    passed = sum(1 for s in lab.tests if (results.get((lab.number, s.id)) or {}).get("outcome") == "passed")
    out(f"  {passed}/{len(lab.tests)} tests pass, {earned}/{lab.total_points} points")
    if first_failure:
        spec, r = first_failure
        out(f"Read next: {handout(lab, root)}")
        out(f"  then make {spec.id} pass: {spec.checks}")
        why = first_line(r["reason"]) if r else "no result (the grader crashed or timed out)"
        if why:
            out(f"  it fails now with: {why}")
        out(f"  (details: ./pagoda grade lab{lab.number})")
    return first_failure is None


def status(root=paths.ROOT, arch=paths.DEFAULT_ARCH, workers="auto", earlier=False, out=print):
    labs = publish.load_labs(root)
    if not labs:
        raise PagodaError("there are no labs (labs/NN-name/lab.toml)")
    graded = [n for n in sorted(labs) if os.path.exists(manifest.test_file(n)) and arch in labs[n].arches]
    n = current_lab(root)
    if n is None:
        out("This is the reference tree (main): every lab's solution is in it.")
        results = _grade(graded, arch, workers) if graded else {}
        ok = True
        for k in sorted(labs):
            lab = labs[k]
            if k not in graded:
                why = f"does not run on {arch} yet" if arch not in lab.arches else "no grader tests yet"
                out(f"  lab{k} — {lab.title}: {why}; handout {handout(lab, root)}")
                continue
            passed = sum(1 for s in lab.tests if (results.get((k, s.id)) or {}).get("outcome") == "passed")
            ok &= passed == len(lab.tests)
            out(f"  lab{k} — {lab.title}: {passed}/{len(lab.tests)} tests pass; handout {handout(lab, root)}")
        return 0 if ok else 1
    if n not in labs:
        raise PagodaError(f"{publish.LAB_FILE} says lab {n}, but there is no labs/{n:02d}-*/lab.toml")
    lab = labs[n]
    if n not in graded:
        why = f"it does not run on {arch} yet" if arch not in lab.arches else "no grader tests yet"
        out(f"lab{n} — {lab.title}: {why}. Read {handout(lab, root)}")
        return 0
    numbers = [k for k in graded if k < n] + [n] if earlier else [n]
    out(f"This tree is for lab {n} ({publish.LAB_FILE}); the labs before it are solved in it.")
    results = _grade(numbers, arch, workers)
    ok = True
    for k in numbers[:-1]:
        broken = [s.id for s in labs[k].tests if (results.get((k, s.id)) or {}).get("outcome") != "passed"]
        if broken:
            ok = False
            out(f"lab{k} (done before this lab): {', '.join(broken)} FAIL — your changes broke "
                f"lab {k}; ./pagoda grade lab{k} shows why")
        else:
            out(f"lab{k} — {labs[k].title}: all {len(labs[k].tests)} tests still pass")
    ok &= report(lab, results, root, out)
    if ok:
        out(f"Lab {n} is done: every test passes.")
        for line in labstart.next_steps(n, labs):
            out(line)
    elif n + 1 in labs:
        out(f"When lab {n} is done, ./pagoda lab start {n + 1} moves your work into the next lab "
            "(labs/README.md).")
    return 0 if ok else 1
