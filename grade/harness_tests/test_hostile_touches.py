"""Issue 51, cheat 5d: a first touch the kernel makes itself is no touch.

fixtures/common/touchburst.cpp is wholeregion (test_hostile.py) in disguise: the first user fault
in a region of at most 64 pages is resolved as the reference resolves it, then the handler reads
one byte of every other page of the region with proc::copy_from_user(), so QEMU's log shows a
kernel fault at each page (x86_64: CPL 0 at x86_user_copy; AArch64: a data abort from EL1), in
one burst after the one user fault. The grader of main bdc2961 counted any fault at a page as
its touch and gave it 38/38 on both ISAs; TouchWatch (vmawatch.py) now counts a kernel fault only
in a system call of the process, never one taken while the kernel handles a fault from user mode.
`lazy` and every test whose run brings in a small region (all of lab 5) must fail, naming the
pages the kernel read itself."""
import pytest

from graderrun import run_grader

UNTOUCHED = "maps user pages that nothing touched"
NESTED = "came while it handled a fault from user mode, in no system call of the process"
# The tests the burst must cost (the goal: lazy and the first-touch checks). A few, for
# time: lazy; random_ops, whose honest run has the most kernel faults in system calls (reads into
# pages no user fault brought in, each of which must still count); bss_data, an image region.
TARGETS = ("lazy", "random_ops", "bss_data")


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_a_kernel_that_reads_a_region_in_its_fault_handler_loses_the_first_touch_tests(arch, request, tmp_path):
    kernels = request.getfixturevalue("fixture_kernels" if arch == "x86_64" else "aarch64_fixture_kernels")
    results = run_grader(tmp_path, kernels["touchburst"], (5,), only=TARGETS, workers=2, arch=arch)
    assert set(results) == set(TARGETS)
    for test_id in TARGETS:
        outcome, reason = results[test_id]
        assert outcome == "failed", f"touchburst ({arch}) scored {test_id}"
        # (NESTED names the kernel's own faults at the pages: the disguise ran, and was seen through)
        assert UNTOUCHED in reason and NESTED in reason, f"touchburst/{test_id} ({arch}): {reason[:800]}"
