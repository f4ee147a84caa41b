"""What a kernel ELF tells without booting it: its self-tests and the least RAM it boots in.

Read straight from the file (ELF64, little-endian: both architectures Pagoda targets), so that
`./pagoda run --test nosuch` and `./pagoda run -m 1M` are refused before QEMU starts.
"""
import functools
import struct
from dataclasses import dataclass

from . import qemu
from .ui import PagodaError

from pagoda_pt.model import PAGE_SIZE_4K

SELFTEST_SECTION = "pagoda_selftests"
# One descriptor per PAGODA_SELFTEST (kernel/core/selftest.hpp): {const char* name; void (*run)(...)}.
SELFTEST_ENTRY = struct.Struct("<QQ")
PAGE = PAGE_SIZE_4K
MiB = 1 << 20


@dataclass(frozen=True)
class Section:
    name: str
    addr: int
    offset: int
    size: int
    nobits: bool


@dataclass(frozen=True)
class Segment:
    vaddr: int
    paddr: int
    filesz: int
    memsz: int


class Elf:
    """The sections and loadable segments of one ELF64 little-endian file."""

    def __init__(self, path):
        self.path = path
        try:
            with open(path, "rb") as f:
                self.data = f.read()
        except OSError as e:
            raise PagodaError(f"{path}: {e.strerror}")
        if self.data[:4] != b"\x7fELF" or self.data[4] != 2 or self.data[5] != 1:
            raise PagodaError(f"{path} is not a little-endian ELF64 file")
        phoff, shoff = struct.unpack_from("<QQ", self.data, 0x20)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", self.data, 0x36)
        self.segments = []
        for i in range(phnum):
            p_type, _, _, vaddr, paddr, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", self.data,
                                                                            phoff + i * phentsize)
            if p_type == 1:  # PT_LOAD
                self.segments.append(Segment(vaddr, paddr, filesz, memsz))
        raw = [struct.unpack_from("<IIQQQQIIQQ", self.data, shoff + i * shentsize) for i in range(shnum)]
        names = raw[shstrndx][4] if shnum else 0
        self.sections = [Section(self._cstring(names + r[0]), r[3], r[4], r[5], r[1] == 8) for r in raw]

    def _cstring(self, offset):
        end = self.data.index(b"\0", offset)
        return self.data[offset:end].decode(errors="replace")

    def section(self, name):
        return next((s for s in self.sections if s.name == name), None)

    def string_at(self, va):
        """The NUL-terminated string the kernel sees at virtual address @p va."""
        for s in self.sections:
            if not s.nobits and s.addr and s.addr <= va < s.addr + s.size:
                return self._cstring(s.offset + va - s.addr)
        raise PagodaError(f"{self.path}: address {va:#x} is in no section with contents")

    def words_at(self, va, count):
        """@p count little-endian 32-bit words (AArch64 instructions) at virtual address @p va, or
        None when they are not all in one section with contents."""
        for s in self.sections:
            if not s.nobits and s.addr and s.addr <= va and va + 4 * count <= s.addr + s.size:
                return list(struct.unpack_from(f"<{count}I", self.data, s.offset + va - s.addr))
        return None

    @functools.cached_property
    def symbols(self):
        """{name: value} of the symbol table (.symtab; empty when stripped)."""
        table, strings = self.section(".symtab"), self.section(".strtab")
        found = {}
        if table is None or strings is None:
            return found
        for offset in range(table.offset, table.offset + table.size, 24):  # Elf64_Sym
            name, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", self.data, offset)
            if name:
                found[self._cstring(strings.offset + name)] = value
        return found

    def load_end(self, ram_base=0):
        """The first byte after the loaded image, as an offset from @p ram_base."""
        if not self.segments:
            raise PagodaError(f"{self.path} has no loadable segment")
        return max(s.paddr + s.memsz for s in self.segments) - ram_base

    def load_start(self, ram_base=0):
        """The first byte of the loaded image, as an offset from @p ram_base."""
        if not self.segments:
            raise PagodaError(f"{self.path} has no loadable segment")
        return min(s.paddr for s in self.segments) - ram_base


@functools.lru_cache(maxsize=8)
def _elf(path, mtime):
    return Elf(path)


def elf(path):
    import os
    return _elf(path, os.stat(path).st_mtime_ns)


def selftests(kernel):
    """The names of the self-tests @p kernel registers (the order of its pagoda_selftests table)."""
    e = elf(kernel)
    sec = e.section(SELFTEST_SECTION)
    if sec is None:
        return []
    data = e.data[sec.offset:sec.offset + sec.size]
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
