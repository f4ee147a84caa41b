"""fault-why on x86_64: gathers the facts pagoda_pt.diagnose_x86_64 reasons about.

  the trap frame     the innermost x86_trap on GDB's stack, its `frame` argument (or, when
                     that is optimized out, the stack pointer x86_trap_common passed)
  the CPU            CR0/CR2/CR3/CR4/EFER, RIP, RSP; IDT, GDT and TR from QEMU's monitor
  the kernel         its image bounds, trap entry stubs; its published roots, fix-up table, stacks
                     and names, and QEMU's log, from the look (faults.Look: each read once)

Everything read through virtual addresses (the frame, instructions) is read before the
physical-memory mode is switched on for the walks.
"""

from dataclasses import replace

import gdb

from pagoda_pt import contract as C
from pagoda_pt.diagnose_x86_64 import TRAP_FRAME_FIELDS, TrapFrameAt, X86Facts, explain_with_fault

from . import faults, kernel, session, target
from .paging import symbol_of

TRAP_FRAME_OFFSETS = {name: 8 * i for i, name in enumerate(TRAP_FRAME_FIELDS)}


def instruction_at(address):
    try:
        text = gdb.execute("x/i %#x" % address, to_string=True).strip()
    except gdb.error:
        return None
    return text[2:].strip() if text.startswith("=>") else text


def _trap():
    found = faults.find_trap_frame(C.X86.TRAP, "rsp")
    if found is None:
        return None
    level, address = found
    trap = TrapFrameAt(address=address, level=level)
    try:
        trap.fields = faults.read_trap_frame(address, C.X86.TRAP_FRAME, TRAP_FRAME_OFFSETS)
    except (gdb.error, gdb.MemoryError) as err:
        trap.read_error = str(err)
    return trap


def _image():
    layout = kernel.image()
    return None if layout is None else replace(layout, trap_entry=kernel.symbol_address(C.X86.VECTOR_STUBS))


def explain(look):
    """(the lines of fault-why for the machine as it is stopped now, the user page fault being
    handled or None: see diagnose_x86_64.explain_with_fault), from @p look (faults.Look)."""
    regs = target.x86_control_regs()
    regs["rip"] = target.register("rip") or 0
    regs["rsp"] = target.register("rsp") or 0
    system = target.x86_system_regs()
    if regs.get("cr2") is None:
        regs["cr2"] = system.get("CR2")
    trap = _trap()
    instructions = {regs["rip"]: instruction_at(regs["rip"])}
    if trap is not None and trap.fields is not None:
        instructions[trap.fields["rip"]] = instruction_at(trap.fields["rip"])
    bits = look.pa_bits
    idt, gdt, tr = system.get("IDT"), system.get("GDT"), system.get("TR")
    symbols = {}

    def symbol(address):
        if address not in symbols:
            symbols[address] = symbol_of(address)
        return symbols[address]

    syscall, (roots, note), fixups = look.syscall, look.roots, look.fixups
    with target.physical_memory() as read_phys:
        facts = X86Facts(
            regs=regs, read_phys=read_phys, pa_bits=bits,
            idt=(idt["base"], idt["limit"]) if idt else None,
            gdt=(gdt["base"], gdt["limit"]) if gdt else None,
            tr=(tr["selector"], tr["base"], tr["limit"]) if tr else None,
            roots=roots, image=_image(), trap=trap, stop=session.last_stop_signal(),
            log=look.log.parsed if look.log is not None else None, log_hint=look.log_hint, symbol=symbol, instruction=instructions.get, stacks=look.stacks,
            fixups=fixups, user_end=look.user_end, syscall=syscall, names=look.names)
        lines, fault = explain_with_fault(facts)
    if note and roots is not None:
        lines.insert(-1, "note: " + note)
    return lines, fault
