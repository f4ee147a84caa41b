"""Hostile kernels (grade/harness_tests/fixtures/) lose the points of the tests they target.

Each fixture is the reference kernel with a few functions replaced to lie to the grader. The
grader before the witnesses (main at 511b324) gave them these points; the reference kernel gets
full marks on the same tests (the `grade` step of ./pagoda test)."""
import pytest

from conftest import run_grader
from pagoda_grade.manifest import load_all

# fixture -> {test id: words its failure reason must contain}
TARGETS = {
    # prints the fault report letter for letter, never takes the fault
    "liar_fault": {t: "the kernel reported a fault the CPU never took"
                   for t in ("trap_ud", "trap_pf", "write_text_faults", "nx_stack", "null_faults",
                             "low_addresses_fault")},
    # raises the timer's vector with `int $0x20`: the counter advances, the timer never fires
    "fake_ticks": {"timer_ticks": "software-raised interrupts do not count"},
    # a stray RWX mapping in the live root, a clean decoy root loaded for the announced snapshot
    "decoy": {"tables_verified": "but nothing may be mapped there",
              "tables_verified_high": "top-level entries of the lower half are present"},
}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fixture_loses_the_points_it_targets(name, fixture_kernels, tmp_path):
    targets = TARGETS[name]
    results = run_grader(tmp_path, fixture_kernels[name], (0, 1, 2), keyword=" or ".join(targets))
    assert set(results) == set(targets)
    for test_id, words in targets.items():
        outcome, reason = results[test_id]
        assert outcome == "failed", f"{name} scored {test_id}"
        assert words in reason, f"{name}/{test_id}: {reason[:600]}"
        assert f"fixture {name}" in reason or name == "decoy", "the fixture's replacement did not run"


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_kernel_without_vm_work_scores_nothing_witnessed(arch, request, tmp_path):
    """Issue 10's kernel: no page tables of its own, every expected line printed (the old grader
    gave it 41/41 on labs 1-2). It may keep runs_high at most, which it would earn honestly: the
    boot stub and the high link (lab 2 work it inherits) do run it in the top 2 GiB. The AArch64
    port (fixtures/aarch64/novm.cpp) fakes that ISA's abort reports and level names."""
    kernels = request.getfixturevalue("fixture_kernels" if arch == "x86_64" else "aarch64_fixture_kernels")
    results = run_grader(tmp_path, kernels["novm"], (1, 2), workers=2, arch=arch)
    labs = load_all()
    assert set(results) == {t.id for n in (1, 2) for t in labs[n].tests}
    passed = {t for t, (outcome, _) in results.items() if outcome == "passed"}
    assert passed <= {"runs_high"}, {t: results[t][1][:300] for t in passed}


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_kernel_without_processes_scores_nothing_in_lab3(arch, request, tmp_path):
    """Lab 3's liar (fixtures/common/noproc.cpp, the same on both ISAs): every line of every
    program and of the kernel printed, proofs computed from the token, frames balanced, and no
    process ever made. The grader waits for what it can see (the run's checkpoints, the
    system-call entry, QEMU's log) and gives it nothing."""
    import os
    import shutil
    kernels = request.getfixturevalue("fixture_kernels" if arch == "x86_64" else "aarch64_fixture_kernels")
    kernel = tmp_path / "noproc.elf"
    shutil.copy(kernels["noproc"], kernel)
    # the user programs the tests read symbols from, as next to a built kernel
    os.symlink(os.path.join(os.path.dirname(os.path.dirname(kernels["noproc"])), "user"), tmp_path / "user")
    results = run_grader(tmp_path, str(kernel), (3,), workers=2, arch=arch)
    assert len(results) == 8
    passed = {t: reason[:300] for t, (outcome, reason) in results.items() if outcome != "failed"}
    assert not passed, passed
