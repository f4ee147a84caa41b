"""At a slip's failing stop, fault-why's verdict and the grade's line 1 name the same cause (issue 52).

For a sample of the in-tree slips, one per lab 3..7, `./pagoda labs mutants N --slip SLUG --arch A
--slip-test-only --why` grades lab N on the slipped kernel (the test the slip's file names) and
replays that test's failing boot under GDB, fault-why at each stop (tools/pagoda/mutant_why.py).
The two agree when the grade's first lines and fault-why's verdict both match the slip's cause
regex and, when either says a cause pagoda_pt.verdicts words for both (verdicts.rule_named), the
other says it in the same words.

Each case is parametrized over the ISAs: `./pagoda test` without --full runs each on one of them
(pytest_cpu.py), --full on both. A case costs the slip's build, one grade and one replay (about
half a minute on a warm tree); the first case of a lab on an ISA also builds that lab's tree."""
import json
import os
import shutil
import subprocess

import pytest

from pagoda_core import paths
from pagoda_pt.verdicts import rule_named

# (lab, slip): a slip whose cause each side names in its own rules (lab 3's RSP0, lab 4's copy
# guard, lab 6's empty record) or through the shared ones (lab 5's kill, lab 7's reverse map).
SAMPLE = [(3, "kstack-set-to-bottom"), (4, "copy_from_user_guard_left_on"), (5, "find-misses-first-page"),
          (6, "fork-without-record"), (7, "cow-break-keeps-old-mapping")]
ARCHES = [pytest.param(a, marks=pytest.mark.skipif(shutil.which(q) is None or shutil.which("gdb-multiarch") is None,
                                                   reason=f"needs {q} and gdb-multiarch"))
          for a, q in (("x86_64", "qemu-system-x86_64"), ("aarch64", "qemu-system-aarch64"))]

# Whole trees built or graded end to end: CI's level (./pagoda test --ci), not the sample's.
pytestmark = [pytest.mark.end_to_end, pytest.mark.timeout(1800)]


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("lab, slip", SAMPLE, ids=[f"lab{n}-{s}" for n, s in SAMPLE])
def test_fault_why_and_line_1_name_the_same_cause(lab, slip, arch, tmp_path):
    out = tmp_path / "slips.json"
    done = subprocess.run([os.path.join(paths.ROOT, "pagoda"), "labs", "mutants", str(lab), "--slip", slip,
                           "--arch", arch, "--slip-test-only", "--why", "--json", str(out), "-p", "1"],
                          cwd=paths.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert out.exists(), done.stdout[-3000:]
    (row,) = json.loads(out.read_text())["slips"]
    assert not row["problem"] and row["named"], f"line 1 does not name the slip: {row['headline']}\n{row['problem']}"
    assert row["why_match"] == "yes", f"fault-why's verdict does not name it ({row['why_match']}): {row['why']}"
    line_1, verdict = " ".join(row["headline"][:2]), row["why"]
    assert rule_named(line_1) == rule_named(verdict), \
        f"line 1 and fault-why word the cause by different rules:\n  line 1:  {line_1}\n  verdict: {verdict}"
