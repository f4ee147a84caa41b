"""What a kernel ELF tells without booting it: its self-tests and the least RAM it boots in.

Read from the file (pagoda_core/elffile.py), so that `./pagoda run --test nosuch` and
`./pagoda run -m 1M` are refused before QEMU starts.
"""
import struct

from . import elffile, qemu
from .ui import PagodaError

from pagoda_pt.model import PAGE_SIZE_4K

SELFTEST_SECTION = "pagoda_selftests"
# One descriptor per PAGODA_SELFTEST (kernel/core/selftest.hpp): {const char* name; void (*run)(...)}.
SELFTEST_ENTRY = struct.Struct("<QQ")
PAGE = PAGE_SIZE_4K
MiB = 1 << 20


class Elf(elffile.Elf):
    """The sections, segments and symbols of one kernel ELF (pagoda_core/elffile.py), refusing
    what is wrong with it as the CLI does (PagodaError)."""
    Error = PagodaError


def elf(path):
    """The Elf of @p path, read once while the file is unchanged."""
    return elffile.elf(path, Elf)


def selftests(kernel):
    """The names of the self-tests @p kernel registers (the order of its pagoda_selftests table)."""
    e = elf(kernel)
    sec = e.section(SELFTEST_SECTION)
    if sec is None:
        return []
    data = e.contents(sec)
    return [e.string_at(name) for name, _ in SELFTEST_ENTRY.iter_unpack(data[:len(data) // 16 * 16])]


def minimum_memory(kernel, machine):
    """The least RAM, in whole MiB, that @p kernel boots in on @p machine (a qemu.Machine): RAM
    must hold the image (its end, from the ELF's load addresses) and, beside it, the frames the
    kernel takes at boot (machine.boot_frames, measured; see qemu.py). Those frames may lie
    below the image as well as above it, but never in the RAM the kernel leaves alone at the
    bottom (machine.low_reserved), rounded up to a MiB."""
    image = elf(kernel)
    end = image.load_end(machine.ram_base)
    size = end - image.load_start(machine.ram_base)
    need = max(end, machine.low_reserved + size + machine.boot_frames * PAGE)
    return -(-need // MiB)


def embedded_programs(kernel):
    """The names of the user programs @p kernel carries (pagoda_program_NAME_begin symbols)."""
    return sorted(name[len("pagoda_program_"):-len("_begin")] for name in elf(kernel).symbols
                  if name.startswith("pagoda_program_") and name.endswith("_begin"))


def check_boot_arguments(kernel, arch, memory, test):
    """Refuses, before QEMU starts, a self-test @p kernel does not have and a RAM size it
    cannot boot in (it would hang silently or panic)."""
    if test is not None:
        known = selftests(kernel)
        if test not in known:
            raise PagodaError(f"the kernel has no self-test '{test}'; known self-tests: "
                              f"{' '.join(known) or '(none)'}")
    least = minimum_memory(kernel, qemu.MACHINES[arch])
    if qemu.memory_mib(memory) < least:
        raise PagodaError(f"-m {memory} is too little RAM: this kernel boots in {least}M or more "
                          f"(its image ends at {elf(kernel).load_end(qemu.MACHINES[arch].ram_base) / 2**20:.2f} "
                          f"MiB into RAM, and it needs {qemu.MACHINES[arch].boot_frames * PAGE // 1024} KiB "
                          "of page tables to boot)")
