"""What the tools learn from the kernel's symbols: where its image is, and the page-table roots
it publishes (kernel/mm/space/debug_roots.hpp, read with pagoda_pt.roots).

  symbol_address(name)   the address of a symbol (assembly labels included), or None
  image()                the image's layout (pagoda_pt.image): bounds, virt_offset, sections
  image_phys(va)         the physical address of a kernel-image address (link map, no walk)
  published_roots(read_phys)  (RootTable or None, note): the roots the kernel published
  core_module(name)      tools/pagoda_core/<name>.py (loaded by path: faultlog, elffile)
  read_table() / read_processes()   the process table (pagoda_pt.procs: Proc, Vma), once per
                         stop within reading_once() (fault-why)

The registry is read at its physical address (its link address minus the image offset), not
through the active root: a root that lacks the kernel half is exactly when it is needed.
"""

import functools
import importlib.util
import os
from contextlib import contextmanager

import gdb

from pagoda_pt import contract as C
from pagoda_pt import procs
from pagoda_pt.image import read_image
from pagoda_pt.roots import RegistryError, read_root_table
from pagoda_pt.walker import virt_reader

from . import registry, target


@functools.lru_cache(maxsize=None)
def symbol_of(addr):
    """'pagoda::kmain(pagoda::BootInfo const&) in section .text', or '' when none."""
    try:
        text = gdb.execute("info symbol %#x" % addr, to_string=True).strip()
    except gdb.error:
        return ""
    return "" if text.startswith("No symbol") else text


def core_module(name):
    """tools/pagoda_core/<name>.py, loaded by path (once): putting tools/ on sys.path would let
    tools/gdb shadow GDB's own `gdb` module. Only the modules that import nothing of pagoda_core
    load this way (faultlog.py, elffile.py)."""
    tools = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    spec = importlib.util.spec_from_file_location("pagoda_" + name, os.path.join(tools, "pagoda_core", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def symbol_address(name):
    """The address of symbol @p name (an assembly label, a variable, a function; a C++ name with
    '(anonymous namespace)' as the kernel's ELF spells it), or None."""
    if "(" in name and not name.startswith("'"):
        name = "'%s'" % name
    try:
        return int(gdb.parse_and_eval("(unsigned long)&%s" % name)) & ((1 << 64) - 1)
    except gdb.error:
        return None


def image():
    """The kernel image's layout (pagoda_pt.image.KernelImage), or None (not our kernel)."""
    return read_image(symbol_address)


def image_phys(va):
    layout = image()
    return layout.phys_of(va) if layout is not None else None


def published_roots(read_phys):
    """(RootTable, note) from `pagoda_debug_roots`; (None, why) when there is none to read."""
    address = symbol_address(C.ROOT_REGISTRY)
    if address is None:
        return None, "this kernel publishes no roots (no %s symbol)" % C.ROOT_REGISTRY
    pa = image_phys(address)
    if pa is None:
        return None, "%s is outside the kernel image" % C.ROOT_REGISTRY
    try:
        table = read_root_table(read_phys, pa)
    except (RegistryError, Exception) as err:  # noqa: BLE001 - a reader failure as well
        return None, "cannot read the published roots: %s" % err
    note = ""
    if table.dropped:
        note = "%d roots were not published (the kernel's table was full)" % table.dropped
    return table, note


# ---- the process table (pagoda_pt.procs) ----------------------------------------------------------

_once = {}     # within reading_once(): the table read at this stop, (layout, procs, pointer)


@contextmanager
def reading_once():
    """Within it, read_table() reads the process table once: fault-why asks for it in many passes
    at one stop, and nothing it does between them writes the table."""
    _once.clear()
    _once["on"] = True
    try:
        yield
    finally:
        _once.clear()


def read_table():
    """(layout, [pagoda_pt.procs.Proc], g_current's value) of every process that is not Free, each
    with its record (Vmas, bounds), read by the one reader (pagoda_pt.procs) with this kernel's
    facts: the table in physical memory, each VMA array through the CPU's own roots; .current
    marks what g_current points at. CommandError when it cannot be read."""
    if "table" in _once:
        return _once["table"]
    lay = procs.Layout.of_symbols(symbol_address)
    if lay is None:
        raise registry.CommandError("the process table cannot be read (this kernel exports no process table, or not "
                           "its facts)")
    arch = target.current_arch()
    regs = target.paging_regs(arch)
    try:
        with target.physical_memory() as read_phys:
            found = procs.read_procs(read_phys, lay, virt_reader(arch, read_phys, regs,
                                                                 pa_bits=target.pa_bits(arch)[0]))
            current, pointer = procs.read_current(read_phys, lay, found)
    except (target.PhysicalReadError, gdb.error) as err:
        raise registry.CommandError("the process table cannot be read (%s)" % err) from None
    if current is not None:
        current.current = True
    if _once:
        _once["table"] = (lay, found, pointer)
    return lay, found, pointer


def read_processes():
    """[pagoda_pt.procs.Proc] of the process table (read_table())."""
    return read_table()[1]
