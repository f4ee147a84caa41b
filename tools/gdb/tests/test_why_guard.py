"""fault-why's rule for a user copy run with the CPU's guard up (lab 4's copy_from_user_guard_left_on):
on synthetic QEMU log events it names UserAccessScope, the slip file's cause, and says nothing for a
copy inside its scope, a CPU without SMAP, a write permission fault (a read-only page), or a fault
outside the copies."""
from types import SimpleNamespace

from pagoda_pt.verdicts import copy_with_guard_up
from pagoda_pt.isa import isa

COPY, RESUME = 0xffffffff8013e06f, 0xffffffff8013e075
USER_END = 0x8000_0000_0000          # x86_64
A64_USER_END = 0x1_0000_0000_0000    # AArch64: TTBR0's 48 bits
SMAP_ON, AC = 0x300020, 1 << 18


def x86_event(pc, address, error=0x1, rflags=0x2, cr4=SMAP_ON, privilege=0):
    return SimpleNamespace(kind="exception", vector=14, pc=pc, address=address, privilege=privilege, error=error,
                           registers={"RFL": rflags, "CR4": cr4}, arch="x86_64")


def a64_event(pc, address, esr):
    return SimpleNamespace(kind="exception", vector=4, pc=pc, address=address, privilege=1, error=esr, registers={},
                           arch="aarch64")


def test_a_copy_with_smap_on_and_ac_clear_is_named():
    said = copy_with_guard_up([x86_event(COPY, 0x7FFFFFFFEDF0)], {COPY: RESUME}, USER_END, isa("x86_64"))
    assert said is not None and "UserAccessScope" in said and "RFLAGS.AC clear" in said, said


def test_a_copy_that_lifted_smap_or_runs_without_it_says_nothing():
    model, fixups = isa("x86_64"), {COPY: RESUME}
    assert copy_with_guard_up([x86_event(COPY, 0x0, error=0, rflags=0x2 | AC)], fixups, USER_END, model) is None
    assert copy_with_guard_up([x86_event(COPY, 0x0, error=0, cr4=0x20)], fixups, USER_END, model) is None
    assert copy_with_guard_up([x86_event(COPY + 2, 0x7FFFFFFFE000)], fixups, USER_END, model) is None
    assert copy_with_guard_up([x86_event(COPY, 0x7FFFFFFFE000, privilege=3)], fixups, USER_END, model) is None


def test_a_read_permission_fault_of_a_copy_is_pan_on_aarch64():
    model, fixups = isa("aarch64"), {COPY: RESUME}
    said = copy_with_guard_up([a64_event(COPY, 0xFFFFFFFFFDE8, 0x9600000F)], fixups, A64_USER_END, model)
    assert said is not None and "PAN" in said and "UserAccessScope" in said, said
    # a write to a read-only page (WnR set) and a translation fault (a bad pointer) are no guard
    assert copy_with_guard_up([a64_event(COPY, 0xFFFFFFFFFDE8, 0x9600004F)], fixups, A64_USER_END, model) is None
    assert copy_with_guard_up([a64_event(COPY, 0x0, 0x96000006)], fixups, A64_USER_END, model) is None
