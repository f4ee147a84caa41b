"""Cheat 3d of issue 51, graded as a submission through `./pagoda grade --batch`: a lab-3 region
redefines a fact the grader reads.

Both submissions are this tree's published lab-3 tree with the reference solution of every lab-3
region, and timer_tick()'s region ends a turn at every tick from user mode (preempt_user compares
each turn with the fact ticks_per_turn). Each then changes that fact from inside a region:

  reset   the same region of kernel/proc/scheduler.cpp says `asm(".set pagoda_fact_ticks_per_turn,
          1")`: the assembler lets `.set` redefine the symbol, the ELF holds one global absolute
          pagoda_fact_ticks_per_turn = 1 (before issue 51: 31/31 on both ISAs);
  shadow  create_process()'s lab-3 region (kernel/proc/process.cpp) defines a local absolute
          symbol of the same name, = 1, beside the global one (= 2): llvm-nm lists the smaller
          first (before issue 51: 31/31 on both ISAs).

The grader takes its facts from the instructor's build of the lab tree and refuses a kernel whose
facts differ: each loses preempt_user and the rest, the fact named in its row (measured on main
bdc2961: 31/31 each; since: 0/31). Each ISA's batch builds the published tree and
two kernels: about 10 minutes on a busy 2-core machine.
"""
import csv
import os
import re
import subprocess

import pytest

from labtree import write
from pagoda import publish
from pagoda_core import paths
from pagoda_core.speed import scaled

# Whole trees built or graded end to end: CI's level (./pagoda test --ci), not the sample's.
pytestmark = pytest.mark.end_to_end

LAB = 3
FACT = "ticks_per_turn"
SCHEDULER, PROCESS = "kernel/proc/scheduler.cpp", "kernel/proc/process.cpp"
# timer_tick()'s solved line, found in the solved tree (spelled out here it would be solution text
# in the student repository, which labs check's leak test refuses).
PREEMPT = re.compile(r"if \(from_user\b[^\n]*turn_is_over\(\)\) schedule\(\);")
CREATE_REGION = "  // >>> lab 3: a root of its own with the program loaded, a kernel stack, and its first frame\n"
EVERY_TICK = "(void)turn_is_over;\n  if (from_user && g_current != nullptr) schedule();"
# submission id -> {file: (text in the solved region, text it becomes)}
CHEATS = {
    "reset": {SCHEDULER: (PREEMPT, EVERY_TICK + f'\n  asm(".set pagoda_fact_{FACT}, 1");')},
    "shadow": {SCHEDULER: (PREEMPT, EVERY_TICK),
               PROCESS: (CREATE_REGION, CREATE_REGION + f'  asm("pagoda_fact_{FACT} = 1");\n')},
}


def lab3_submission(dest, edits, root=paths.ROOT, sources=None):
    """This tree's published lab-3 tree in @p dest, every lab-3 region solved, then @p edits
    ({file: (old, new)}: each old text, once in the file, replaced)."""
    sources = publish.scan(root) if sources is None else sources
    publish.publish_tree(LAB, dest, root, sources)
    for src in sources:
        if src.parsed and any(r.lab == LAB for r in src.parsed.regions):
            with open(os.path.join(dest, src.path), "wb") as f:
                f.write(publish.resolved(src, LAB + 1))
    for rel, (old, new) in edits.items():
        with open(os.path.join(dest, rel)) as f:
            text = f.read()
        if isinstance(old, re.Pattern):
            found = old.findall(text)
            assert len(found) == 1, f"{rel}: {old.pattern!r} matches {len(found)} times in the solved tree"
            old = found[0]
        assert text.count(old) == 1, f"{rel}: {old!r} is not in the solved tree once"
        # (the edit stays inside the region: the line it replaces, or after the region's marker)
        write(dest, rel, text.replace(old, new))
    return dest


def grade_batch(base, arch, names=tuple(CHEATS)):
    """Grades the submissions @p names (CHEATS) of lab 3 on @p arch through `./pagoda grade
    --batch`; returns ({id: CSV row}, the batch's stderr)."""
    subs = os.path.join(base, "submissions")
    sources = publish.scan(paths.ROOT)
    for name in names:
        lab3_submission(os.path.join(subs, name), CHEATS.get(name, {}), sources=sources)
    csv_path = os.path.join(base, "grades.csv")
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), "grade", "--batch", subs,
                          "--lab", str(LAB), "--arch", arch, "-j", "1", "--csv", csv_path,
                          "--work", os.path.join(base, "work")],
                         cwd=paths.ROOT, capture_output=True, text=True, timeout=scaled(3600))
    assert out.returncode == 0, out.stdout + out.stderr
    with open(csv_path, newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}, out.stderr


@pytest.fixture(scope="module", params=["x86_64", "aarch64"])
def graded(request, tmp_path_factory, tree_cache):
    return grade_batch(str(tmp_path_factory.mktemp(f"facts-{request.param}")), request.param)[0]


# What refuses each cheat: the region check (an assembler directive in a region's asm text does not
# build), or, for a symbol the region check lets through, the facts check (graded, refused whole).
REFUSED_BY = {"reset": ("does not build", "the assembler directive .set"),
              "shadow": ("graded", f"fact {FACT}")}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_a_region_that_changes_a_fact_loses_the_turn_checks(graded, name):
    row = graded[name]
    status, words = REFUSED_BY[name]
    assert row["status"] == status, row
    assert int(row[f"lab{LAB}/preempt_user"]) == 0, row
    assert int(row["total"]) < int(row["possible"]) // 2, row
    assert words in " ".join(row.values()), row
