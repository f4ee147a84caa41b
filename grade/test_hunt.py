"""A graded bug hunt (tools/pagoda/hunt.py; the slips: tools/pagoda_core/slips.py): the lab.toml test that says `hunt = [N, ...]`.

The student drew a slip with a token (`./pagoda hunt`), found it with the tools and named it with
`./pagoda hunt answer FUNCTION --category KIND`, which wrote hunt.toml at the root of the tree. The
grader draws the same slip from its own copy of the labs' slips (the token, the ISA and the set of
slips decide it) and checks the answer: the function the slip is in, and its kind when the slip
has one. Nothing here boots a kernel."""
import os

import pytest

from pagoda_core import slips as hunts
from pagoda_core import paths
from pagoda_grade import lab_test, manifest
from pagoda_grade.manifest import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Batch grading hands the submission's answer over here (the grader runs from its own tree).
ANSWER_ENV = "PAGODA_GRADE_HUNT_ANSWER"


def _hunt_tests():
    try:
        labs = manifest.load_all()
    except manifest.ManifestError:
        return []
    return [pytest.param(n, t.id, t.hunt, marks=lab_test(n, t.id), id=f"lab{n}-{t.id}")
            for n, lab in sorted(labs.items()) for t in lab.tests if t.hunt]


@pytest.mark.parametrize("number, test_id, from_labs", _hunt_tests())
def test_hunt(number, test_id, from_labs, arch):
    path = os.environ.get(ANSWER_ENV) or os.path.join(ROOT, hunts.ANSWER_FILE)
    if not os.path.exists(path):
        raise AssertionError(f"no bug hunt answered: {hunts.ANSWER_FILE} is missing (./pagoda hunt --lab "
                             f"{' --lab '.join(map(str, from_labs))}, then ./pagoda hunt answer FUNCTION --category KIND)")
    with open(path, "rb") as f:
        answer = tomllib.load(f)
    token, hunt_arch = str(answer.get("token", "")), str(answer.get("arch", arch))
    records = hunts.candidates(hunts.slip_records(paths.ROOT), hunt_arch, list(from_labs))
    record = hunts.draw(records, token, hunt_arch)
    if record is None:
        raise AssertionError(f"the grader has no slip of lab(s) {', '.join(map(str, from_labs))} on {hunt_arch} to "
                             f"draw token {token!r} from")
    points, sentence = hunts.judge(record, answer.get("function", ""), answer.get("category"))
    if points < 2:
        raise AssertionError(f"bug hunt {token} ({hunt_arch}): {sentence}")
