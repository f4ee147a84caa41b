"""tmpmap: the temporary-mapping slots of lab 4 (kernel/mm/tempmap/temp_map.hpp), and what fault-why
adds when a fault lies in their area.

The slots are read from the kernel's own TempMapArea (TempMapArea::s_current, through its debug
information): how deep the stack is, the frame each live slot maps and the kernel address of its
page-level entry. Each slot's address is walked in the active root, so a slot whose entry is not
the one the root walks (written into a table the live root does not use) shows at once. A
slot's owner is the TempMap guard that holds it, found among the locals of the stopped call
stack when the compiler kept them ("?" otherwise).
"""
import gdb

from pagoda_pt import contract as C
from pagoda_pt.model import PAGE_SIZE_4K as PAGE

from . import kernel, target
from .args import parse
from .registry import CommandError, PagodaCommand, command, out

ADDR = "0x%016x"
MASK64 = (1 << 64) - 1


def _u64(value):
    """An integer from a gdb.Value: a number, a pointer, or a PhysAddr/VirtAddr (value_)."""
    kind = value.type.strip_typedefs()
    if kind.code == gdb.TYPE_CODE_STRUCT:
        return int(value["value_"]) & MASK64
    return int(value) & MASK64


def _fact(name):
    address = kernel.symbol_address(C.fact_symbol(name))
    if address is None:
        raise CommandError("this kernel exports no fact %s: it has no temp-map area (lab 4)" % name)
    return address


def read_area():
    """The state of the temp-map area the kernel uses: a dict, or None before vm::init() made it.
    CommandError when the kernel has no temporary mappings at all."""
    try:
        pointer = gdb.parse_and_eval(C.TEMP_AREA)
    except gdb.error:
        raise CommandError("this kernel has no temporary mappings (no %s)" % C.TEMP_AREA) from None
    if int(pointer) == 0:
        return None
    area = pointer.dereference()
    slots = _fact("temp_map_slots")
    cpu = int(area["cpu_"])
    base = _fact("temp_map_base")
    return dict(slots=slots, cpu=cpu, depth=int(area["depth_"]), maps=int(area["maps_"]),
                ready=int(area["tlb_"]) != 0,
                frames=[_u64(area["frames_"][i]) for i in range(slots)],
                entries=[_u64(area["entries_"][i]) for i in range(slots)],
                va=[base + (cpu * slots + s) * PAGE for s in range(slots)])


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
    va = area["va"][slot]
    live = slot < area["depth"]
    w = walk_address(arch, regs, va)
    walked = w.levels[-1].entry_pa if w.levels else None
    written = entry_physical(arch, regs, area["entries"][slot])
    problem = None
    if live:
        frame = area["frames"][slot]
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
    slot, cpu = index % area["slots"], index // area["slots"]
    if cpu != area["cpu"]:
        return ["  temp-map   %s is slot %d of CPU %d, not this CPU's area" % (ADDR % address, slot, cpu)]
    line, problem = slot_report(arch, regs, area, slot, owners())
    where = "temp-map slot %d of CPU %d" % (slot, cpu)
    if slot >= area["depth"]:
        verdict = ("%s is %s, which is free (%d live): a pointer kept after its TempMap guard released the slot"
                   % (ADDR % address, where, area["depth"]))
    else:
        verdict = "%s is %s, live (frame %s): %s" % (ADDR % address, where, ADDR % area["frames"][slot],
                                                     problem or "its mapping looks right now")
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
        target.require_stopped()
        arch = target.current_arch()
        area = read_area()
        if area is None or not area["ready"]:
            raise CommandError("the temp-map area is not made yet (vm::init() makes it; lab 4)")
        regs = target.paging_regs(arch)
        reason = target.paging_off_reason(arch, regs)
        if reason:
            raise CommandError(reason)
        who = owners()
        out("temp-map slots of CPU %d: %d live of %d; %d maps since boot" % (
            area["cpu"], area["depth"], area["slots"], area["maps"]))
        out("  %4s  %-18s  %-28s %-40s %s" % ("SLOT", "VA", "STATE", "OWNER", "ENTRY"))
        problems = []
        for slot in range(area["slots"]):
            line, problem = slot_report(arch, regs, area, slot, who)
            out(line)
            if problem:
                problems.append("slot %d: %s" % (slot, problem))
        for problem in problems:
            out("problem: " + problem)
