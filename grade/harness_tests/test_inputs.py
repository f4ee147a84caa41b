"""Inputs the grader picks at run time come from the set that is valid for each check, for any
token (checked over many tokens here, on the host), and the token of a known flake passes."""
import pytest

from graderrun import run_grader
from pagoda_grade import bootram, witness
from pagoda_grade.proof import new_token
from test_lab0 import PF_PROBE_RANGE
from pagoda_grade.vmchecks import GRADER_RAM

TOKENS = [new_token() for _ in range(20000)] + ["a84c6929d420c693"]
# lab 2's window_conversions failed for this token on the reference kernel: its probe page,
# derived from the token inside the kernel, landed in the kernel image (which the window skips).
FLAKY_WINDOW_TOKEN = "a84c6929d420c693"


def inside(value, ranges):
    return any(a <= value < b for a, b in ranges)


def test_window_probes_are_always_window_ram(reference_kernel):
    valid = bootram.window_ram(reference_kernel, "x86_64", GRADER_RAM)
    image = witness.image_physical(reference_kernel)
    assert valid and all(b <= image[0] or a >= image[1] for a, b in valid)
    for token in TOKENS:
        probes = witness.pick_page(token, "window", valid, count=2)
        assert len(set(probes)) == 2
        for pa in probes:
            assert pa % witness.PAGE == 0 and inside(pa, valid), (token, hex(pa))
            assert not image[0] <= pa < image[1]


def test_aarch64_window_probes_miss_the_device_tree_and_the_image(aarch64_kernel):
    """QEMU virt's RAM starts at 0x40000000 with QEMU's 1 MiB device tree, which the kernel keeps."""
    valid = bootram.window_ram(aarch64_kernel, "aarch64", GRADER_RAM)
    image = witness.image_physical(aarch64_kernel)
    assert valid[0][0] == 0x4010_0000 and all(b <= image[0] or a >= image[1] for a, b in valid)
    for token in TOKENS[:5000]:
        for pa in witness.pick_page(token, "window", valid, count=2):
            assert inside(pa, valid) and pa >= 0x4010_0000 and not image[0] <= pa < image[1], (token, hex(pa))


def test_page_picks_stay_in_their_ranges():
    ranges = [(0x1000, 0x3000), (0x10_0000, 0x10_0800), (0x20_0000, 0x20_2000)]  # one range too small
    for token in TOKENS[:5000]:
        (page,) = witness.pick_page(token, "t", ranges)
        assert page in (0x1000, 0x2000, 0x20_0000, 0x20_1000)
        (pf,) = witness.pick_page(token, "trap_pf", [PF_PROBE_RANGE])
        assert PF_PROBE_RANGE[0] <= pf < PF_PROBE_RANGE[1]
        n = witness.pick_in(token, "n", 3, 12)
        assert 3 <= n <= 12
    with pytest.raises(ValueError):
        witness.pick_page("t", "t", [(0, 0x1000)], count=2)


def test_picks_are_reproducible_from_the_token():
    assert witness.pick_page("abc", "x", [(0, 1 << 40)]) == witness.pick_page("abc", "x", [(0, 1 << 40)])
    assert witness.pick_page("abc", "x", [(0, 1 << 40)]) != witness.pick_page("abd", "x", [(0, 1 << 40)])


def test_the_token_that_made_window_conversions_flaky_passes(reference_kernel, tmp_path):
    results = run_grader(tmp_path, reference_kernel, (2,), keyword="window_conversions",
                         env={"PAGODA_GRADE_TOKEN": FLAKY_WINDOW_TOKEN})
    assert results["window_conversions"][0] == "passed", results["window_conversions"][1][:2000]
