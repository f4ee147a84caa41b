"""Where things are in the tree and in build/."""
import hashlib
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


# The pytest marker of a tools-test module whose tests build or grade whole trees: CI's level of
# `./pagoda test`, left out of its sample (registered by pytest_cpu.register).
END_TO_END_MARK = "end_to_end"


def seeded_order(names, seed):
    """@p names in an order @p seed shuffles (sha256 of the seed and the name): the same for the
    same seed on any machine."""
    return sorted(names, key=lambda name: hashlib.sha256(f"{seed}/{name}".encode()).hexdigest())


def one_isa_each(cases, seed):
    """{case: the one ISA it runs on} of @p cases ({name: {ISA: its weight}}): a case with one ISA
    keeps it; the others, in an order @p seed shuffles (seeded_order()), each take
    the ISA with the least weight so far (the first of ARCHES on a tie). How `labs mutants
    --one-isa` and the tool tests without --full split their runs half and half."""
    counts, picked = dict.fromkeys(ARCHES, 0), {}
    for name, isas in cases.items():
        if len(isas) == 1:
            (picked[name], weight), = isas.items()
            counts[picked[name]] += weight
    for name in seeded_order(set(cases) - set(picked), seed):
        picked[name] = min(cases[name], key=lambda a: (counts[a], ARCHES.index(a)))
        counts[picked[name]] += cases[name][picked[name]]
    return picked
