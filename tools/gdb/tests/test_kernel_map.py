"""fault-why's rules on the kernel's own map (labs 1-2), on synthetic walks: an image segment mapped
with other permissions than its ELF's (pagoda_pt.diagnose.image_permission_problem), and a device
the kernel touched where the active root maps nothing (device_at), told by the base its address
was made from. Each is the verdict of the slip it names (lab1 data_read_only, text_writable,
devices_unmapped; lab2 devices_identity, devices_in_window)."""
from dataclasses import dataclass
from typing import Optional

from pagoda_pt.diagnose import device_at, image_permission_problem
from pagoda_pt.model import Perms

PAGE = 4096
TEXT = (0xFFFF_FFFF_8010_D000, 0xFFFF_FFFF_8014_3000, "r-x")
RODATA = (0xFFFF_FFFF_8014_3000, 0xFFFF_FFFF_8016_0000, "r--")
DATA = (0xFFFF_FFFF_8016_0000, 0xFFFF_FFFF_8026_0000, "rw-")
GUARD = 0xFFFF_FFFF_8020_0000          # the boot stack's guard page: left unmapped on purpose


@dataclass
class FakeWalk:
    mapped: bool
    perms: Optional[Perms] = None


def perms(rwx, user=False):
    return Perms(rwx[0] == "r", rwx[1] == "w", rwx[2] == "x", user, rwx[2] == "x")


def walker(overrides=None, unmapped=()):
    """A root that maps the three segments with their own permissions, but @p overrides
    {segment: 'rwx'} and nothing in @p unmapped pages."""
    overrides = overrides or {}

    def walk(va):
        if va & ~(PAGE - 1) in unmapped:
            return FakeWalk(False)
        for seg in (TEXT, RODATA, DATA):
            if seg[0] <= va < seg[1]:
                return FakeWalk(True, perms(overrides.get(seg, seg[2])))
        return FakeWalk(False)
    return walk


SEGMENTS = [TEXT, RODATA, DATA]


def test_the_reference_map_is_no_finding():
    assert image_permission_problem(SEGMENTS, walker(), "'kernel' (0x26a000)") is None
    # The guard page, and any page not mapped, are other rules' business.
    assert image_permission_problem(SEGMENTS, walker(unmapped=(GUARD, DATA[1] - PAGE)), "k", skip=(GUARD,)) is None


def test_data_mapped_read_only_is_named():
    story = image_permission_problem(SEGMENTS, walker({DATA: "r--"}), "'kernel' (0x26a000)")
    assert story.startswith("the kernel's data and bss (its globals and the boot stack) is mapped r-- in the active "
                            "root 'kernel' (0x26a000) (page 0xffffffff80160000), but its ELF segment "
                            "[0xffffffff80160000, 0xffffffff80260000) is rw-: it is not writable")


def test_text_writable_or_data_executable_or_user_is_named():
    assert "kernel's text is mapped rwx" in image_permission_problem(SEGMENTS, walker({TEXT: "rwx"}), "k")
    assert ": it is writable (code or constants" in image_permission_problem(SEGMENTS, walker({TEXT: "rw-"}), "k")
    assert "executable (data the CPU may run as code)" in image_permission_problem(SEGMENTS, walker({DATA: "rwx"}), "k")
    assert "read-only data is mapped rw-" in image_permission_problem(SEGMENTS, walker({RODATA: "rw-"}), "k")

    def user(va):
        return FakeWalk(True, perms("r-x", user=True)) if TEXT[0] <= va < TEXT[1] else walker()(va)
    assert "reachable from user mode" in image_permission_problem(SEGMENTS, user, "k")


APIC = (0xFEE0_0000, PAGE, "the local APIC")
UART = (0x0900_0000, PAGE, "the PL011 UART")
MMIO, WINDOW = 0xFFFF_C000_0000_0000, 0xFFFF_8000_0000_0000
BASES = {"identity": 0, "device area": MMIO, "window": WINDOW}


def test_a_device_at_its_device_area_address_was_never_mapped():
    story = device_at(MMIO + 0x0900_0018, (APIC, UART), BASES, False, "'kernel' (0x401ac000)")
    assert story == ("the kernel touched the PL011 UART (physical 0x9000018) at 0xffffc00009000018, which the active "
                     "root 'kernel' (0x401ac000) does not map: the device ranges were never mapped in the kernel's "
                     "root (each of arch::device_ranges() must be mapped, uncached, kernel only)")


def test_a_device_at_its_physical_address():
    """Lab 1 (the kernel itself runs from the lower half): the ranges were not mapped. Lab 2 on: the
    identity is device_virt()'s slip."""
    assert "device ranges were never mapped" in device_at(0xFEE0_00F0, (APIC,), BASES, True, "k")
    assert "device's physical address used as a virtual one" in device_at(0xFEE0_00F0, (APIC,), BASES, False, "k")


def test_a_device_in_the_window_is_device_virt_s():
    assert "window's address for that physical address" in device_at(WINDOW + 0xFEE0_0000, (APIC,), BASES, False, "k")


def test_no_device_no_finding():
    assert device_at(MMIO + 0x5000_0000, (APIC, UART), BASES, False, "k") is None
    assert device_at(0x10_0000, (APIC, UART), BASES, True, "k") is None
    assert device_at(0x0900_0000, (UART,), {"identity": 0, "device area": None}, True, "k") is not None


def test_only_a_published_root_that_is_not_the_boot_stub_s_is_judged():
    """A panic before the kernel's root is loaded stops on the boot stub's rwx tables (published
    as 'boot'): judging them named 'text mapped rwx' at 6 lab 1-2 panics that had other causes."""
    from pagoda_pt.roots import KnownRoot, RootTable, kernel_map_live
    table = RootTable(roots=[KnownRoot(0x101000, "boot", "boot"), KnownRoot(0x26B000, "kernel", "kernel"),
                             KnownRoot(0x37F000, "hello", "process", 1)])
    assert not kernel_map_live(table, [0x101000, 0x101000])        # x86_64: CR3 is both roots
    assert not kernel_map_live(table, [0x999000])                   # never published
    assert not kernel_map_live(None, [0x26B000])
    assert kernel_map_live(table, [0x26B000, 0x26B000])
    assert kernel_map_live(table, [0x101000, 0x26B000])             # AArch64: TTBR1 the kernel's
    assert kernel_map_live(table, [0x37F000])
