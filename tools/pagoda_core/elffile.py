"""An ELF file of Pagoda's (a kernel or a user program: ELF64, little-endian on both ISAs), read
with pyelftools (python3-pyelftools): its loadable segments, sections and symbols, what it
holds at an address, and the tables of names the kernel exports.

The names are the kernel's own tables, the ones its reports print from (the x86 exception names,
the AArch64 exception classes and fault statuses): PAGODA_FACT_NAMES (kernel/lib/facts.hpp)
exports each as the object `pagoda_names_<table>`, {const FactName* rows; u64 count}, each row
{u64 key; const char* mnemonic; const char* name}. elf(kernel).names("x86_exceptions") reads
one, so that fault-why, the fault log and the grader print what the kernel prints, from one copy.

Besides pyelftools (imported when a file is read, so ./pagoda starts before setup has installed
it) this module imports only the standard library: the GDB helpers load it by path (as they load
faultlog.py), the CLI and the grader through pagoda_core.kernelinfo and pagoda_grade.symbols.
"""
import functools
import io
import os
import struct
from dataclasses import dataclass

NAMES_PREFIX = "pagoda_names_"
_NAMES = struct.Struct("<QQ")        # FactNames: rows, count
_ROW = struct.Struct("<QQQ")         # FactName: key, mnemonic, name
# More rows than this is no table of names (a damaged ELF, or a symbol that is something else).
MAX_ROWS = 4096
SHF_WRITE, SHF_ALLOC = 1, 2     # a section's flags (Section.flags)


class ElfError(Exception):
    """The file is no whole ELF64 little-endian file, or lacks what was asked of it."""


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD program header."""
    vaddr: int
    paddr: int
    memsz: int
    filesz: int
    offset: int
    flags: int        # PF_X 1, PF_W 2, PF_R 4

    @property
    def perms(self):
        return ("r" if self.flags & 4 else "-") + ("w" if self.flags & 2 else "-") + ("x" if self.flags & 1 else "-")


@dataclass(frozen=True)
class Section:
    """A section header: where the section is linked and where the file holds its bytes."""
    name: str
    addr: int
    offset: int
    size: int
    flags: int        # SHF_WRITE 1, SHF_ALLOC 2, SHF_EXECINSTR 4
    kind: str         # its sh_type: "SHT_PROGBITS", "SHT_NOBITS", ...


class Elf:
    """One ELF64 little-endian file with something to load, from @p path (or its bytes @p data,
    @p path then naming it in messages). Error is what it raises (pagoda_core.kernelinfo's
    subclass raises the CLI's PagodaError)."""
    Error = ElfError

    def __init__(self, path, data=None):
        self.path = path
        if data is None:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise self.Error(f"{path}: {e.strerror}") from None
        self.data = data
        if len(data) < 64 or data[:4] != b"\x7fELF":
            raise self.Error(f"{path} is not an ELF file")
        if data[4] != 2 or data[5] != 1:
            raise self.Error(f"{path} is not a little-endian ELF64 file")
        from elftools.elf.elffile import ELFFile
        self.file = ELFFile(io.BytesIO(data))
        h = self.file.header
        if h.e_phnum == 0 or h.e_phentsize < 56 or h.e_phoff + h.e_phnum * h.e_phentsize > len(data):
            raise self.Error(f"{path} is truncated or damaged: its program headers end past its "
                             f"{len(data)} bytes")
        self.segments = tuple(Segment(p.p_vaddr, p.p_paddr, p.p_memsz, p.p_filesz, p.p_offset, p.p_flags)
                              for p in (s.header for s in self.file.iter_segments()) if p.p_type == "PT_LOAD")
        for s in self.segments:
            if s.offset + s.filesz > len(data):
                raise self.Error(f"{path} is truncated: a loadable segment ends at byte {s.offset + s.filesz} "
                                 f"of a {len(data)}-byte file")
        if not self.segments:
            raise self.Error(f"{path} has nothing to load (no PT_LOAD segment)")

    @functools.cached_property
    def sections(self):
        """Every section header (Section), in the file's order."""
        return tuple(Section(s.name, s["sh_addr"], s["sh_offset"], s["sh_size"], s["sh_flags"], s["sh_type"])
                     for s in self.file.iter_sections())

    def section(self, name):
        """The Section called @p name, or None."""
        return next((s for s in self.sections if s.name == name), None)

    def contents(self, section):
        """The bytes the file holds of @p section (a Section)."""
        return self.data[section.offset:section.offset + section.size]

    def _offset(self, va, size):
        """The file offset of the @p size bytes at virtual address @p va, or None when they are
        not all in one section with contents."""
        return next((s.offset + va - s.addr for s in self.sections
                     if s.kind != "SHT_NOBITS" and s.addr and s.addr <= va and va + size <= s.addr + s.size), None)

    def string_at(self, va):
        """The NUL-terminated string the kernel sees at virtual address @p va."""
        offset = self._offset(va, 1)
        if offset is None:
            raise self.Error(f"{self.path}: address {va:#x} is in no section with contents")
        return self.data[offset:self.data.index(b"\0", offset)].decode(errors="replace")

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

    def image_bytes(self, va, size):
        """The @p size bytes the image holds at link address @p va, from its loadable segments
        (bytes past a segment's file size are zero, as the loader leaves them); None when they
        are not all in one segment."""
        for s in self.segments:
            if s.vaddr <= va and va + size <= s.vaddr + s.memsz:
                start = va - s.vaddr
                chunk = self.data[s.offset + start:s.offset + min(start + size, s.filesz)]
                return chunk + bytes(size - len(chunk))
        return None

    @functools.cached_property
    def symbols(self):
        """{name: value} of the symbol table (.symtab, names as the linker has them; empty when
        stripped)."""
        table = self.file.get_section_by_name(".symtab")
        return {} if table is None else {s.name: s["st_value"] for s in table.iter_symbols() if s.name}

    def load_end(self, ram_base=0):
        """The first byte after the loaded image, as an offset from @p ram_base."""
        return max(s.paddr + s.memsz for s in self.segments) - ram_base

    def load_start(self, ram_base=0):
        """The first byte of the loaded image, as an offset from @p ram_base."""
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


@functools.lru_cache(maxsize=64)
def _elf(cls, path, mtime):
    return cls(path)


def elf(path, cls=Elf):
    """The Elf of @p path, read once while the file is unchanged."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError as e:
        raise cls.Error(f"{path}: {e.strerror}") from None
    return _elf(cls, path, mtime)
