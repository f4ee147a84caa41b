"""tmpmap: the temporary-mapping slots of lab 4 (kernel/mm/tempmap/temp_map.hpp), and what fault-why
adds when a fault lies in their area.

The slots are read from the kernel's own TempMapArea (TempMapArea::s_current, in guest RAM, by
pagoda_pt.tempmap, the grader's reader too): how deep the stack is, the frame each live slot maps and the kernel address of its
page-level entry. Each slot's address is walked in the active root, so a slot whose entry is not
the one the root walks (written into a table the live root does not use) shows at once. A
slot's owner is the TempMap guard that holds it, found among the locals of the stopped call
stack when the compiler kept them ("?" otherwise).
"""
import gdb

from pagoda_pt import contract as C
from pagoda_pt.format import ADDR
from pagoda_pt.image import CensusError
from pagoda_pt.model import PAGE_SIZE_4K as PAGE
from pagoda_pt.tempmap import read_temp_area

from . import kernel, target
from .args import parse
from .registry import CommandError, PagodaCommand, command, out



def read_area():
    """The temp-map area the kernel uses (pagoda_pt.tempmap.TempArea), None before vm::init()
    made it. CommandError when the kernel has no temporary mappings at all."""
    try:
        with target.physical_memory() as read_phys:
            return read_temp_area(read_phys, kernel.symbol_address)
    except CensusError as err:
        raise CommandError(str(err)) from None


def _function_of(block, frame):
    """The name (without parameters) of the function whose code @p block belongs to, inlined
    ones included."""
    while block is not None and block.function is None:
        block = block.superblock
    name = block.function.print_name if block is not None else (frame.name() or "?")
    return name.split("(")[0]


def owners():
    """{slot: 'function: variable'} of the live TempMap guards among the stopped call stack's
    locals (those the compiler kept)."""
    found = {}
    try:
        frame = gdb.newest_frame()
    except gdb.error:
        return found
    while frame is not None:
        try:
            block = frame.block()
        except RuntimeError:
            block = None
        while block is not None and not block.is_global and not block.is_static:
            for symbol in block:
                if not symbol.is_variable and not symbol.is_argument:
                    continue
                if (symbol.type.strip_typedefs().unqualified().tag or "") != C.TEMP_MAP:
                    continue
                try:
                    value = symbol.value(frame)
                    if value.is_optimized_out or int(value["area_"]) == 0:
                        continue
                    found.setdefault(int(value["slot_"]), "%s: %s" % (_function_of(block, frame), symbol.name))
                except (gdb.error, gdb.MemoryError):
                    continue
            block = block.superblock
        try:
            frame = frame.older()
        except gdb.error:
            break
    return found


def entry_physical(arch, regs, entry_va):
    """The physical address of a slot's entry (a kernel address), walked in the active root."""
    from .paging import walk_address
    w = walk_address(arch, regs, entry_va & ~(PAGE - 1))
    return w.pa + entry_va % PAGE if w.mapped else None


def slot_report(arch, regs, area, slot, who=None):
    """(line, problem): one slot as tmpmap prints it, and a sentence when its address does not
    translate to its frame through its own entry in the active root."""
    from .paging import walk_address
    va, live = area.slots[slot].va, area.slots[slot].live
    w = walk_address(arch, regs, va)
    walked = w.levels[-1].entry_pa if w.levels else None
    written = entry_physical(arch, regs, area.slots[slot].entry)
    problem = None
    if live:
        frame = area.slots[slot].frame
        state = "live  frame %s" % (ADDR % frame)
        if written is not None and walked != written:
            problem = ("its entry is written at PA %s, but the active root walks %s for it (%s): the slot's entry "
                       "is in a table the live root does not use" % (
                           ADDR % written, ADDR % walked if walked is not None else "nothing",
                           w.stop_reason or "mapped"))
        elif not w.mapped:
            problem = "live, yet not mapped in the active root (%s)" % w.stop_reason
        elif w.pa != frame:
            problem = "live for frame %s, yet the active root maps it to %s" % (ADDR % frame, ADDR % w.pa)
    else:
        state = "free"
        if w.mapped:
            problem = "free, yet still mapped to %s (an entry not cleared)" % (ADDR % w.pa)
    owner = (who or {}).get(slot, "?") if live else "-"
    line = "  %4d  %s  %-28s %-40s %s" % (slot, ADDR % va, state, owner,
                                          "entry @PA " + ADDR % written if written is not None else "entry ?")
    return line, problem


def describe_fault(arch, regs, address):
    """Lines fault-why adds for a fault at @p address when it lies in the temp-map area: which
    slot, live or free, and whether the active root walks the slot's own entry; [] otherwise."""
    base = kernel.symbol_address(C.fact_symbol("temp_map_base"))
    end = kernel.symbol_address(C.fact_symbol("stack_base"))
    if base is None or end is None or not base <= address < end:
        return []
    try:
        area = read_area()
    except CommandError:
        return []
    if area is None:
        return ["  temp-map   %s is in the temp-map area, which the kernel has not made yet" % (ADDR % address)]
    index = (address - base) // PAGE
    slot, cpu = index % len(area.slots), index // len(area.slots)
    if cpu != area.cpu:
        return ["  temp-map   %s is slot %d of CPU %d, not this CPU's area" % (ADDR % address, slot, cpu)]
    line, problem = slot_report(arch, regs, area, slot, owners())
    where = "temp-map slot %d of CPU %d" % (slot, cpu)
    if not area.slots[slot].live:
        verdict = ("%s is %s, which is free (%d live): a pointer kept after its TempMap guard released the slot"
                   % (ADDR % address, where, area.depth))
    else:
        verdict = "%s is %s, live (frame %s): %s" % (ADDR % address, where, ADDR % area.slots[slot].frame,
                                                     area.shared_entry() or problem or "its mapping looks right now")
    return ["  temp-map   " + line.strip(), "verdict: " + verdict]


@command
class TmpMap(PagodaCommand):
    """List the temporary-mapping slots (lab 4) and check each one in the active root.

Usage: tmpmap
One line per slot of this CPU's TempMapArea: slot, virtual address, live (with the frame it
maps) or free, the owner (the function and TempMap variable holding the slot, when its locals
are on the stopped call stack; '?' when the compiler did not keep them), and the physical
address of the slot's page-level entry. Each slot's address is walked in the active root: a
live slot that does not translate through its own entry to its frame, or a free slot still
mapped, is named below the table."""

    name = "tmpmap"
    usage = "tmpmap"

    def run(self, arg, from_tty):
        parse(arg, max_positional=0)
        arch = target.require_stopped()
        area = read_area()
        if area is None:
            raise CommandError("the temp-map area is not made yet (vm::init() makes it; lab 4)")
        regs = target.paging_regs(arch)
        reason = target.paging_off_reason(arch, regs)
        if reason:
            raise CommandError(reason)
        who = owners()
        out("temp-map slots of CPU %d: %d live of %d; %d maps since boot" % (
            area.cpu, area.depth, len(area.slots), area.maps))
        out("  %4s  %-18s  %-28s %-40s %s" % ("SLOT", "VA", "STATE", "OWNER", "ENTRY"))
        problems = []
        for slot in range(len(area.slots)):
            line, problem = slot_report(arch, regs, area, slot, who)
            out(line)
            if problem:
                problems.append("slot %d: %s" % (slot, problem))
        for problem in problems:
            out("problem: " + problem)
