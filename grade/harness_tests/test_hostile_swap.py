"""Lab 7's cheats of issue 51 (grade/harness_tests/fixtures/common/): each does the lab's work but
does one step its own way inside the solution regions' functions (make_room, evict_for_memory,
the disk's read), and loses every test that witnesses that step, on both ISAs. Graded as a
submission is: the grader in its own process on the fixture's ELF (graderrun.run_grader), only
the tests the cheat must lose (the rest cost time and prove nothing here).

The grader of main bdc2961 gave them, x86_64 / AArch64: clockfifo 33/36 and 33/36 (only
`clock_victim` failed, "the grader recomputed only 0 choices of the clock"), ramread 33/36 and
33/36 (only `one_page_out` looked for reads), nocap 24/36 and 24/36 (four tests believed the cap
the kernel publishes)."""
import pytest

from graderrun import run_grader
from pagoda_grade.manifest import load_all

# Whole trees built or graded end to end: CI's level (./pagoda test --ci), not the sample's.
pytestmark = pytest.mark.end_to_end

LAB7 = tuple(t.id for t in load_all()[7].tests)
# The tests that watch the clock (clock=, steer=: a stop at every choose_victim()). preemption does
# not: the clock is clock_victim's subject, and preemption checks what swapping under preemption does.
CLOCKED = ("release_slots", "syscall_buffers", "clock_victim", "reverse_map")
# The tests that set a cap below what their programs map.
CAPPED = ("release_slots", "syscall_buffers", "disk_full", "overcommit", "clock_victim", "dirty_only", "reverse_map",
          "preemption")

# fixture -> {test id: words its failure reason must hold}
CHEATS = {
    # make_room() and evict_for_memory() take the frame after the hand; choose_victim() never called
    "clockfifo": {t: "was evicted without the clock choosing it" for t in CLOCKED},
    # every slot written to the disk, read back from a copy in kernel RAM: every test brings a page
    # it saw evicted back (even write_back's and shared_eviction's programs read their pages again)
    "ramread": {t: "but QEMU's trace shows no read of slot" for t in LAB7},
    # userframes= ignored, 0 written over pagoda_swap_state.frame_cap; disk_full's big program
    # never fills the disk then
    "nocap": dict({t: "above the cap of" for t in CAPPED}, disk_full="no process was killed"),
}


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
@pytest.mark.parametrize("name", sorted(CHEATS))
def test_a_lab7_cheat_loses_every_test_of_the_step_it_skips(name, arch, request, tmp_path):
    targets = CHEATS[name]
    kernels = request.getfixturevalue("fixture_kernels" if arch == "x86_64" else "aarch64_fixture_kernels")
    results = run_grader(tmp_path, kernels[name], (7,), only=targets, arch=arch)
    assert set(results) == set(targets)
    for test_id, words in targets.items():
        outcome, reason = results[test_id]
        assert outcome == "failed", f"{name} ({arch}) scored {test_id}"
        assert words in reason, f"{name}/{test_id} ({arch}): {reason[:800]}"
    if name == "nocap":   # under half of lab 7, whatever the tests not run here give it
        spec = load_all()[7]
        kept = spec.total_points - sum(spec.test(t).points for t in targets)
        assert 2 * kept < spec.total_points, (name, kept, spec.total_points)
