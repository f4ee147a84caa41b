"""The kernel ELF's symbols, demangled, and its loadable segments: the truth reported addresses
are checked against (where a function is, where the loader put a byte)."""
import bisect
import functools
import struct
import subprocess
from dataclasses import dataclass

from pagoda_core import elffile


@dataclass(frozen=True)
class Symbol:
    name: str        # demangled, with its parameter list
    address: int
    size: int
    kind: str        # nm's letter: T/t code, D/d/B/b/R/r data

    @property
    def end(self):
        return self.address + self.size

    def contains(self, address):
        return self.address <= address < self.address + max(self.size, 1)


def base_name(name):
    """@p name without its parameter list (and a trailing ' const'): 'pagoda::kmain(...)' ->
    'pagoda::kmain'. '(anonymous namespace)' inside the name is kept."""
    if name.endswith(" const"):
        name = name[:-len(" const")]
    if not name.endswith(")"):
        return name
    depth = 0
    for i in range(len(name) - 1, -1, -1):
        if name[i] == ")":
            depth += 1
        elif name[i] == "(":
            depth -= 1
            if depth == 0:
                return name[:i]
    return name


def _plain(name):
    return name.replace("(anonymous namespace)::", "")


@functools.lru_cache(maxsize=8)
def symbol_table(kernel):
    """Every defined symbol of @p kernel with an address (llvm-nm --print-size --demangle)."""
    out = subprocess.run(["llvm-nm", "--demangle", "--defined-only", "--print-size", kernel],
                         capture_output=True, text=True, check=True).stdout
    table = []
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and len(parts[1]) == 16:
            address, size, kind, name = parts
            table.append(Symbol(name, int(address, 16), int(size, 16), kind))
        elif len(parts) >= 3:
            address, kind, name = line.split(" ", 2)
            table.append(Symbol(name, int(address, 16), 0, kind))
    return tuple(table)


@functools.lru_cache(maxsize=8)
def symbols(kernel):
    """{demangled name: address} of every symbol with an address in @p kernel."""
    table = {}
    for s in symbol_table(kernel):
        table.setdefault(s.name, s.address)
    return table


FACT_PREFIX = "pagoda_fact_"


@functools.lru_cache(maxsize=4096)     # (read at every stop: a lab-7 test asks a million times)
def fact(kernel, name):
    """The value the kernel exports as PAGODA_FACT(@p name, ...) (kernel/lib/facts.hpp): the
    absolute symbol pagoda_fact_<name>, e.g. fact(kernel, "window_base"). The layout constants
    and the page size are read this way instead of being copied into the grader. Every name the
    grader reads is declared in its contract (contract.FACTS)."""
    from .contract import lab_of_fact
    lab_of_fact(name)
    table = symbols(kernel)
    if FACT_PREFIX + name not in table:
        known = sorted(n[len(FACT_PREFIX):] for n in table if n.startswith(FACT_PREFIX))
        raise AssertionError(f"{kernel} exports no fact '{name}' (symbol {FACT_PREFIX}{name}); "
                             f"it exports: {', '.join(known) or 'none'}")
    return table[FACT_PREFIX + name]


@functools.lru_cache(maxsize=8)
def _names(kernel):
    """({full name: [Symbol]}, {name without parameters: [Symbol]}, {that without
    '(anonymous namespace)::': [Symbol]}) of @p kernel's symbols, each list in table order."""
    full, base, plain = {}, {}, {}
    for s in symbol_table(kernel):
        short = base_name(s.name)
        full.setdefault(s.name, []).append(s)
        base.setdefault(short, []).append(s)
        plain.setdefault(_plain(short), []).append(s)
    return full, base, plain


def find(kernel, name):
    """The Symbol called @p name: its full demangled name, or its name without the parameter
    list ('pagoda::kmain'), with or without '(anonymous namespace)::'. Exactly one must match."""
    full, base, plain = _names(kernel)
    exact = {s.address: s for s in full.get(name, [])}   # (a constructor's C1 and C2 are one address)
    if len(exact) == 1:
        return next(iter(exact.values()))
    matches = base.get(name) or plain.get(_plain(name), [])
    unique = {s.address: s for s in matches}
    if len(unique) != 1:
        raise AssertionError(f"the kernel has {len(unique)} symbols called {name}"
                             + (": " + ", ".join(s.name for s in matches[:4]) if matches else ""))
    return next(iter(unique.values()))


def address_of(kernel, name):
    """The address of the symbol called @p name (see find())."""
    return find(kernel, name).address


def function_at(kernel, address):
    """The code symbol containing @p address, or None. An assembly routine written without its
    `.size` (a student's copy routine, the vectors) is a label of size 0: an address in the
    kernel's code after such a label, before the next code symbol, is named after it (as GDB
    and llvm-symbolizer do), its size taken to that next symbol, so a PC there is never bare."""
    best = None
    for s in symbol_table(kernel):
        if s.kind in "Tt" and s.contains(address) and (best is None or s.size < best.size):
            best = s
    if best is not None and best.size:
        return best
    starts = _code_starts(kernel)
    i = bisect.bisect_right(starts, (address, chr(0x10ffff))) - 1
    if i < 0 or not any(lo <= address < hi for lo, hi in _code_segments(kernel)):
        return best
    at = starts[i][0]
    there = [s for s in symbol_table(kernel) if s.address == at and _is_label(s)]
    if not there or any(s.size for s in there):    # (past a sized function's end: padding, no function)
        return best
    label = min(there, key=lambda s: (s.kind != "T", s.name))
    end = next((a for a, _ in starts[i + 1:] if a > at), address + 1)
    return Symbol(label.name, at, end - at, label.kind)


def _is_label(s):
    """A code symbol that may name the code after it: not an assembler's mapping symbol ($x)
    nor a linker script's section marker (__text_start)."""
    return s.kind in "Tt" and not s.name.startswith(("$", "__"))


@functools.lru_cache(maxsize=8)
def _code_starts(kernel):
    """[(address, name)] of @p kernel's code symbols (_is_label), sorted."""
    return sorted((s.address, s.name) for s in symbol_table(kernel) if _is_label(s))


@functools.lru_cache(maxsize=8)
def _code_segments(kernel):
    return [(g.vaddr, g.vaddr + g.memsz) for g in segments(kernel) if g.flags & 1]


# The kernel's and the programs' files themselves: pagoda_core/elffile.py (pyelftools).
ElfError, Segment = elffile.ElfError, elffile.Segment


def segments(kernel):
    """The PT_LOAD segments of @p kernel; ElfError when it is not a whole ELF64 little-endian
    file (a truncated file, a header that points past its end)."""
    return elffile.elf(kernel).segments


def parse_segments(data, what="the file"):
    """The PT_LOAD segments of the ELF file whose bytes are @p data (@p what names it)."""
    return elffile.Elf(what, data).segments


def physical_of(kernel, va):
    """Where the loader put the byte the kernel links at @p va (its load address)."""
    for s in segments(kernel):
        if s.vaddr <= va < s.vaddr + s.memsz:
            return s.paddr + (va - s.vaddr)
    raise AssertionError(f"{va:#x} is in no loadable segment of {kernel}")


@functools.lru_cache(maxsize=8)
def read_only_image(kernel):
    """((section name, link address, physical address, bytes), ...) of every section of @p kernel
    that the loader places and nothing may write: its code and read-only data (allocated, with
    contents, not writable), but for the boot stub's (.boot*: its frames are given to the
    allocator once the kernel runs high)."""
    from elftools.elf.constants import SH_FLAGS
    out = []
    for s in elffile.elf(kernel).file.iter_sections():
        flags = s["sh_flags"]
        if (s["sh_type"] == "SHT_PROGBITS" and s["sh_size"] and flags & SH_FLAGS.SHF_ALLOC
                and not flags & SH_FLAGS.SHF_WRITE and not s.name.startswith(".boot")):
            out.append((s.name, s["sh_addr"], physical_of(kernel, s["sh_addr"]), s.data()))
    return tuple(out)


def image_change(kernel, read_phys):
    """None, or a sentence naming where guest RAM (@p read_phys(pa, size)) holds @p kernel's code or
    read-only data (read_only_image()) differently from the ELF: the first changed byte, its
    function (or data symbol) and how many bytes differ. The grader's breakpoints are QEMU's own
    and never written into guest RAM, so any difference is the guest's doing."""
    for name, va, pa, built in read_only_image(kernel):
        held = read_phys(pa, len(built))
        if held == built:
            continue
        first = next(i for i in range(0, len(built), 4096) if held[i:i + 4096] != built[i:i + 4096])
        first = next(i for i in range(first, len(built)) if held[i] != built[i])
        count = sum(a != b for a, b in zip(held[first:], built[first:]))
        where = function_at(kernel, va + first) or next(
            (t for t in symbol_table(kernel) if t.kind in "RrDd" and t.size and t.contains(va + first)), None)
        return (f"the kernel's {name} in guest RAM is not the one built: {count} byte{'s' * (count > 1)} differ "
                f"from the kernel ELF, the first at {va + first:#x}"
                + (f" (in {base_name(where.name)})" if where else "")
                + ": the kernel's code and read-only data never change once loaded (written at run time, through "
                "the physical window or a frame of the kernel image handed out as free and reused?)")
    return None


def read_image(kernel, va, size):
    """The @p size bytes the kernel file holds at link address @p va (from its loadable segments;
    bytes past a segment's file size are zero, as the loader leaves them)."""
    data = elffile.elf(kernel).image_bytes(va, size)
    if data is None:
        raise AssertionError(f"[{va:#x}, +{size}) is in no loadable segment of {kernel}")
    return data


@functools.lru_cache(maxsize=8)
def user_fixups(kernel):
    """{faulting instruction: resume address} of the kernel's user-copy fix-up table (lab 4,
    kernel/proc/user_memory.hpp), read from the ELF file between __start_pagoda_user_fixups and
    __stop_pagoda_user_fixups; {} for a kernel without one (labs 0-3)."""
    table = symbols(kernel)
    from .contract import USER_FIXUPS
    start, stop = (table.get(n) for n in USER_FIXUPS)
    if start is None or stop is None or stop <= start:
        return {}
    raw = read_image(kernel, start, stop - start)
    pairs = struct.iter_unpack("<QQ", raw[:len(raw) // 16 * 16])
    return {fault: resume for fault, resume in pairs}
