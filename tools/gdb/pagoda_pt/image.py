"""The kernel image's layout, from its symbols: the one reader of where the kernel is linked and
loaded, its sections, how a kernel must map them, and where a kernel pointer lies in physical
memory. Behind GDB's fault-why and kernel helpers (pagoda_gdb/kernel.py), the frame census, the
swap and temp-map readers, and the grader's expected kernel map (witness.kernel_image_regions).
Plain Python like the rest of pagoda_pt: symbol(name) -> address or None (a fact's value for
pagoda_fact_<name>). The ELF file itself is pagoda_core/elffile.py's.

    __kernel_start, __kernel_end            the image's link bounds (the linker script's)
    __kernel_virt_offset                    link address - load address
    __kernel_phys_start, __kernel_phys_end  where the loader puts it
    __text_start/_end, __rodata_start/_end, __data_start/_end   the sections it maps one by one
    pagoda_fact_window_base, _window_phys_base, _window_size   the window onto RAM
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

from . import contract as C
from .model import PAGE_SIZE_4K as PAGE

KERNEL_START, KERNEL_END, VIRT_OFFSET = C.KERNEL_START, C.KERNEL_END, C.KERNEL_VIRT_OFFSET
PHYS_START, PHYS_END = C.KERNEL_PHYS_START, C.KERNEL_PHYS_END
# The sections the linker script bounds with symbols (arch/*/kernel.ld): what a kernel maps one by
# one with its own permissions.
SECTIONS = tuple((".data/.bss" if s == "data" else "." + s, lo, hi) for s, (lo, hi) in C.SECTIONS.items())
WINDOW_FACTS = ("window_base", "window_phys_base", "window_size")
PERMS = {".text": "r-x", ".rodata": "r--", ".data/.bss": "rw-"}   # what each section is mapped


class CensusError(Exception):
    """The kernel does not publish what a reader needs (a message the user can act on)."""


class Section(NamedTuple):
    name: str
    start: int
    end: int


class Part(NamedTuple):
    """Whole pages of the image a kernel maps with one set of permissions."""
    va: int
    end: int
    pa: int
    perms: str          # 'r-x', 'r--', 'rw-'
    what: str           # '.text', ".data/.bss below the boot stack's guard page", ...
    content: tuple      # [start, end) of the section's own bytes in it


@dataclass(frozen=True)
class KernelImage:
    start: int               # [start, end): the image at its link addresses
    end: int
    virt_offset: int         # link address - load address
    phys_start: int = 0      # [phys_start, phys_end): where it is loaded (0, 0: not known)
    phys_end: int = 0
    sections: tuple = ()     # Section, those the linker script bounds
    window: Optional[tuple] = None       # (base, phys_base, size) of the window onto RAM
    trap_entry: Optional[int] = None     # x86_64's vector stubs, when a caller adds them

    def phys_of(self, va: int) -> Optional[int]:
        """The load address of @p va when it lies in the image, else None."""
        return va - self.virt_offset if self.start <= va < self.end else None

    def section_of(self, va: int) -> Optional[Section]:
        return next((s for s in self.sections if s.start <= va < s.end), None)

    def parts(self, guard: Optional[int] = None) -> list:
        """The image as a kernel must map it: each section's pages at their link and load
        addresses with its permissions (PERMS), less the page at @p guard (the boot stack's guard,
        left unmapped)."""
        out = []
        for s in self.sections:
            va, end = s.start & ~(PAGE - 1), -(-s.end // PAGE) * PAGE
            cut = [(va, end, "")]
            if guard is not None and va <= guard < end:
                cut = [(a, b, w) for a, b, w in ((va, guard, " below the boot stack's guard page"),
                                                 (guard + PAGE, end, " from the boot stack up")) if a < b]
            out += [Part(a, b, self.phys_of(a), PERMS[s.name], s.name + w, (max(a, s.start), min(b, s.end)))
                    for a, b, w in cut]
        return out

    def pa(self, va: int) -> Optional[int]:
        """The physical address of a kernel pointer @p va: the image's (its link map), the
        window's, or, below the window, the address itself when it lies in the window's RAM (lab
        1's identity map, whose pointers are physical); None for any other."""
        if self.start <= va < self.end:
            return va - self.virt_offset
        if self.window is None:
            return None
        base, phys, size = self.window
        if va < base:
            return va if phys <= va < phys + size else None
        if va < base + size:
            return va - base + phys
        return va - self.virt_offset if va >= self.virt_offset else None

    def must_pa(self, va: int, what: str = "a kernel pointer") -> int:
        pa = self.pa(va)
        if pa is None:
            raise CensusError("%s (%#x) is in neither the kernel image nor the window" % (what, va))
        return pa

    def static_pa(self, symbol, name: str) -> int:
        """The load address of the kernel variable @p name; CensusError when there is none."""
        return self.must_pa(require(symbol, name), name)


def require(symbol, name: str) -> int:
    value = symbol(name)
    if value is None:
        raise CensusError("this kernel has no %s symbol" % name)
    return value


def fact(symbol, name: str) -> int:
    """The kernel's fact @p name (pagoda_fact_<name>); CensusError when it exports none."""
    return require(symbol, C.fact_symbol(name))


def read_image(symbol) -> Optional[KernelImage]:
    """The kernel image @p symbol's kernel describes, or None when it lacks the linker script's
    bounds (not our kernel). The load bounds and the window are there when the kernel has them."""
    start, end, offset = (symbol(n) for n in (KERNEL_START, KERNEL_END, VIRT_OFFSET))
    if None in (start, end, offset):
        return None
    bounds = [Section(name, symbol(lo), symbol(hi)) for name, lo, hi in SECTIONS]
    window = tuple(symbol(C.fact_symbol(n)) for n in WINDOW_FACTS)
    return KernelImage(start, end, offset, symbol(PHYS_START) or 0, symbol(PHYS_END) or 0,
                       tuple(s for s in bounds if None not in s and s.start < s.end), None if None in window else window)


def kernel_image(symbol) -> KernelImage:
    """read_image(), with the load bounds and the window a reader of kernel records needs;
    CensusError naming the first symbol the kernel lacks."""
    image = read_image(symbol)
    for name in (KERNEL_START, KERNEL_END, VIRT_OFFSET, PHYS_START, PHYS_END) + tuple(
            C.fact_symbol(n) for n in WINDOW_FACTS):
        require(symbol, name)
    return image
