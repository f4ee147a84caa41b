"""What the tools learn from the kernel's symbols: where its image is, and the page-table roots
it publishes (kernel/mm/space/debug_roots.hpp, read with pagoda_pt.roots).

  symbol_address(name)   the address of a symbol (assembly labels included), or None
  image()                the linker script's bounds: start, end, virt_offset, text, sections
  image_phys(va)         the physical address of a kernel-image address (link map, no walk)
  published_roots(read_phys)  (RootTable or None, note): the roots the kernel published

The registry is read at its physical address (its link address minus the image offset), not
through the active root: a root that lacks the kernel half is exactly when it is needed.
"""

from dataclasses import dataclass

import gdb

from pagoda_pt.roots import REGISTRY_SYMBOL, RegistryError, read_root_table


def symbol_address(name):
    """The address of symbol @p name (an assembly label, a variable, a function), or None."""
    try:
        return int(gdb.parse_and_eval("(unsigned long)&%s" % name)) & ((1 << 64) - 1)
    except gdb.error:
        return None


# The sections the linker script bounds with symbols (arch/x86_64/kernel.ld): what a kernel maps
# one by one with its own permissions.
SECTIONS = ((".text", "__text_start", "__text_end"), (".rodata", "__rodata_start", "__rodata_end"),
            (".data/.bss", "__data_start", "__data_end"))


@dataclass
class Image:
    start: int
    end: int
    virt_offset: int
    text_start: int
    text_end: int
    sections: tuple = ()    # ((name, start, end), ...)

    def phys(self, va):
        """The physical address of @p va when it lies in the image, else None."""
        return va - self.virt_offset if self.start <= va < self.end else None


def image():
    """The kernel image's bounds from the linker script's symbols, or None (not our kernel)."""
    names = ("__kernel_start", "__kernel_end", "__kernel_virt_offset", "__text_start",
             "__text_end")
    values = [symbol_address(name) for name in names]
    if None in values:
        return None
    sections = []
    for name, start, end in SECTIONS:
        bounds = symbol_address(start), symbol_address(end)
        if None not in bounds and bounds[0] < bounds[1]:
            sections.append((name,) + bounds)
    return Image(*values, sections=tuple(sections))


def image_phys(va):
    layout = image()
    return layout.phys(va) if layout is not None else None


def published_roots(read_phys):
    """(RootTable, note) from `pagoda_debug_roots`; (None, why) when there is none to read."""
    address = symbol_address(REGISTRY_SYMBOL)
    if address is None:
        return None, "this kernel publishes no roots (no %s symbol)" % REGISTRY_SYMBOL
    pa = image_phys(address)
    if pa is None:
        return None, "%s is outside the kernel image" % REGISTRY_SYMBOL
    try:
        table = read_root_table(read_phys, pa)
    except (RegistryError, Exception) as err:  # noqa: BLE001 - a reader failure as well
        return None, "cannot read the published roots: %s" % err
    note = ""
    if table.dropped:
        note = "%d roots were not published (the kernel's table was full)" % table.dropped
    return table, note
