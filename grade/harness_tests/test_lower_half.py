"""vmchecks.lower_half_leftovers(): what the live lower half still maps after lab 2's move, each
leftover named by its kind (a device, the boot stub's entry stack, the image, RAM) and the step
that should have moved it. Runs against the reference kernel ELF's symbols and a made-up walk."""
from dataclasses import dataclass

import pytest

from pagoda_grade.symbols import address_of, fact, physical_of
from pagoda_grade.vmchecks import LEFTOVERS_SHOWN, lower_half_leftovers
from pagoda_pt.isa import MACHINES


@dataclass
class _Perms:
    text: str

    def rwx(self):
        return self.text


@dataclass
class _Run:
    va_start: int
    va_end: int
    pa_start: int
    perms: _Perms


class _Snap:
    """A stopped guest whose lower-half root maps @p runs (and, past the kernel half's base, one
    kernel mapping the check must ignore)."""
    lower_root = 0x5000

    def __init__(self, runs, half):
        self._runs = list(runs) + [_Run(half + 0x1000, half + 0x2000, 0x1000, _Perms("rw-"))]

    def runs(self, root):
        assert root == self.lower_root
        return iter(self._runs)


def test_an_empty_lower_half_has_no_leftovers(reference_kernel):
    half = fact(reference_kernel, "kernel_half_base")
    assert lower_half_leftovers(_Snap([], half), reference_kernel, "x86_64") == []


def test_a_device_at_its_physical_address_is_named_a_device(reference_kernel):
    half = fact(reference_kernel, "kernel_half_base")
    base, size, what = MACHINES["x86_64"].devices[0]
    found = lower_half_leftovers(_Snap([_Run(base, base + 0x1000, base, _Perms("rw-"))], half), reference_kernel,
                                 "x86_64")
    assert len(found) == 1
    assert found[0].startswith(f"the lower half still maps device registers ({what})"), found[0]
    assert "identity" in found[0] and "device_virt()" in found[0], found[0]


@pytest.mark.parametrize("symbol, words", [("boot_entry_stack_bottom", "the boot stub's entry stack"),
                                           ("boot_tables_start", "the boot stub's page tables"),
                                           ("pagoda::kmain", "the kernel image")])
def test_the_boot_stubs_memory_and_the_image_are_told_apart_from_ram(reference_kernel, symbol, words):
    half = fact(reference_kernel, "kernel_half_base")
    at = address_of(reference_kernel, symbol)
    pa = (physical_of(reference_kernel, at) if at >= half else at) & ~0xFFF   # the boot stub is linked low
    found = lower_half_leftovers(_Snap([_Run(pa, pa + 0x1000, pa, _Perms("rw-"))], half), reference_kernel, "x86_64")
    assert found and found[0].startswith(f"the lower half still maps {words}"), found


def test_ram_elsewhere_points_at_the_window_and_the_count_is_kept(reference_kernel):
    half = fact(reference_kernel, "kernel_half_base")
    runs = [_Run(0x4000_0000 + i * 0x20_0000, 0x4000_0000 + i * 0x20_0000 + 0x1000, 0x300_0000 + i * 0x20_0000,
                 _Perms("rw-")) for i in range(LEFTOVERS_SHOWN + 2)]
    found = lower_half_leftovers(_Snap(runs, half), reference_kernel, "x86_64")
    assert found[0].startswith("the lower half still maps RAM") and "window" in found[0], found[0]
    assert "identity" not in found[0]
    assert found[-1] == "... and 2 more mapped run(s) in the lower half", found
