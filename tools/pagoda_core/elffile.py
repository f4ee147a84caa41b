"""A kernel ELF read straight from the file (ELF64, little-endian: both ISAs Pagoda targets): its
sections, loadable segments and symbols, and the tables of names the kernel exports.

The names are the kernel's own tables, the ones its reports print from (the x86 exception names,
the AArch64 exception classes and fault statuses): PAGODA_FACT_NAMES (kernel/lib/facts.hpp)
exports each as the object `pagoda_names_<table>`, {const FactName* rows; u64 count}, each row
{u64 key; const char* mnemonic; const char* name}. fact_names(kernel, "x86_exceptions") reads
one, so that fault-why, the fault log and the grader print what the kernel prints, from one copy.

This module imports only the standard library: the GDB helpers load it by path (as they load
faultlog.py), the CLI and the grader through pagoda_core.kernelinfo.
"""
import functools
import os
import struct
from dataclasses import dataclass

NAMES_PREFIX = "pagoda_names_"
_NAMES = struct.Struct("<QQ")        # FactNames: rows, count
_ROW = struct.Struct("<QQQ")         # FactName: key, mnemonic, name
# More rows than this is no table of names (a damaged ELF, or a symbol that is something else).
MAX_ROWS = 4096


class ElfError(Exception):
    """The file is no whole ELF64 little-endian file, or lacks what was asked of it."""


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
    """The sections and loadable segments of one ELF64 little-endian file. Error is what it
    raises (pagoda_core.kernelinfo's subclass raises the CLI's PagodaError)."""
    Error = ElfError

    def __init__(self, path):
        self.path = path
        try:
            with open(path, "rb") as f:
                self.data = f.read()
        except OSError as e:
            raise self.Error(f"{path}: {e.strerror}")
        if self.data[:4] != b"\x7fELF" or self.data[4] != 2 or self.data[5] != 1:
            raise self.Error(f"{path} is not a little-endian ELF64 file")
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

    def _offset(self, va, size):
        """The file offset of the @p size bytes at virtual address @p va, or None when they are
        not all in one section with contents."""
        for s in self.sections:
            if not s.nobits and s.addr and s.addr <= va and va + size <= s.addr + s.size:
                return s.offset + va - s.addr
        return None

    def string_at(self, va):
        """The NUL-terminated string the kernel sees at virtual address @p va."""
        offset = self._offset(va, 1)
        if offset is None:
            raise self.Error(f"{self.path}: address {va:#x} is in no section with contents")
        return self._cstring(offset)

    def bytes_at(self, va, size):
        """The @p size bytes at virtual address @p va, or None when they are not all in one
        section with contents."""
        offset = self._offset(va, size)
        return None if offset is None else self.data[offset:offset + size]

    def words_at(self, va, count):
        """@p count little-endian 32-bit words (AArch64 instructions) at virtual address @p va, or
        None when they are not all in one section with contents."""
        data = self.bytes_at(va, 4 * count)
        return None if data is None else list(struct.unpack(f"<{count}I", data))

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
            raise self.Error(f"{self.path} has no loadable segment")
        return max(s.paddr + s.memsz for s in self.segments) - ram_base

    def load_start(self, ram_base=0):
        """The first byte of the loaded image, as an offset from @p ram_base."""
        if not self.segments:
            raise self.Error(f"{self.path} has no loadable segment")
        return min(s.paddr for s in self.segments) - ram_base

    @functools.lru_cache(maxsize=None)
    def names(self, table):
        """{key: (mnemonic or None, name)} of the kernel's table of names @p table
        (PAGODA_FACT_NAMES(table, ...)); Error when the kernel exports no such table or it
        cannot be read whole."""
        where = self.symbols.get(NAMES_PREFIX + table)
        if where is None:
            known = sorted(n[len(NAMES_PREFIX):] for n in self.symbols if n.startswith(NAMES_PREFIX))
            raise self.Error(f"{self.path} exports no table of names '{table}' (symbol {NAMES_PREFIX}{table}); "
                             f"it exports: {', '.join(known) or 'none'}")
        head = self.bytes_at(where, _NAMES.size)
        rows, count = _NAMES.unpack(head) if head else (0, 0)
        data = self.bytes_at(rows, count * _ROW.size) if head and 0 < count <= MAX_ROWS else None
        if data is None:
            raise self.Error(f"{self.path}: the table of names '{table}' ({count} rows at {rows:#x}) is not "
                             "in the file")
        return {key: (self.string_at(mnemonic) if mnemonic else None, self.string_at(name))
                for key, mnemonic, name in _ROW.iter_unpack(data)}


@functools.lru_cache(maxsize=8)
def _elf(cls, path, mtime):
    return cls(path)


def elf(path, cls=Elf):
    """The Elf of @p path, read once while the file is unchanged."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError as e:
        raise cls.Error(f"{path}: {e.strerror}")
    return _elf(cls, path, mtime)


def fact_names(kernel, table):
    """{key: (mnemonic or None, name)} of the table of names @p table the kernel ELF @p kernel
    exports (see the module's text); ElfError when it exports none."""
    return elf(kernel).names(table)
