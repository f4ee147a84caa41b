"""Where things are in the tree and in build/."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
BUILD = os.path.join(ROOT, "build")
LABS = os.path.join(ROOT, "labs")
GRADE = os.path.join(ROOT, "grade")
SYSTEM_PYTHON = "/usr/bin/python3"

ARCHES = ("x86_64", "aarch64")
DEFAULT_ARCH = "x86_64"


def build_dir(arch):
    return os.path.join(BUILD, arch)


def kernel_elf(arch=DEFAULT_ARCH):
    return os.path.join(build_dir(arch), "kernel.elf")


def fixtures_elf(arch=DEFAULT_ARCH):
    """The kernel plus the deliberately broken self-tests of the debugging tools' tests."""
    return os.path.join(build_dir(arch), "kernel-fixtures.elf")


def boot_floor_elf(arch=DEFAULT_ARCH):
    """The do-nothing kernel that `pagoda bench boot` compares against."""
    return os.path.join(build_dir(arch), "boot-floor.elf")
