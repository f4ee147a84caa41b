"""cpus: every CPU of the machine as the hardware shows it, and on_cpu(), which lets another
command (pt-walk --cpu N) read one CPU's registers.

QEMU's gdbstub shows one thread per vCPU (`info threads`: "Thread 1.2 (CPU#1 [halted ])");
GDB's registers are the selected thread's, so a CPU's PC, privilege and root are read with its
thread selected, and the selection is put back afterwards. QEMU's monitor is not used here: it
answers for one CPU of its own choosing, not the selected thread's.
"""

import re
from contextlib import contextmanager

import gdb

from pagoda_pt.format import ADDR
from pagoda_pt.isa import cpu_registers, cpus_of, isa

from . import kernel, target
from .args import parse
from .registry import CommandError, PagodaCommand, UsageError, command, out

_THREAD = re.compile(r"Thread\s+\d+\.(\d+)\s+\(CPU#(\d+)\s*\[(\w+)\s*\]\)")


def vcpus():
    """[(cpu number, GDB thread, 'running'/'halted'/... as QEMU says)] in CPU order."""
    states = {}
    try:
        text = gdb.execute("info threads", to_string=True)
    except gdb.error:
        text = ""
    for m in _THREAD.finditer(text):
        states[int(m.group(1))] = (int(m.group(2)), m.group(3))
    rows = []
    for thread in gdb.selected_inferior().threads():
        cpu, state = states.get(thread.num, (thread.num - 1, "?"))
        rows.append((cpu, thread, state))
    return sorted(rows, key=lambda row: row[0])


@contextmanager
def on_cpu(number):
    """Within it, GDB's registers are CPU @p number's (None: leave the selection alone); the
    thread selected before is selected again afterwards. CommandError for a CPU the machine
    does not have."""
    if number is None:
        yield
        return
    found = [thread for cpu, thread, _ in vcpus() if cpu == number]
    if not found:
        count = len(gdb.selected_inferior().threads())
        raise CommandError("there is no CPU %d: the machine has %d (CPU 0%s; ./pagoda gdb --smp N boots N)"
                           % (number, count, "-%d" % (count - 1) if count > 1 else ""))
    before = gdb.selected_thread()
    found[0].switch()
    try:
        yield
    finally:
        if before is not None and before.is_valid():
            before.switch()


def cpu_option(args):
    """The CPU number of a --cpu N option of @p args (parsed), or None."""
    text = args.options.get("--cpu")
    if text is None:
        return None
    if not text.isdigit():
        raise UsageError("--cpu %s: a CPU number (0, 1, ...)" % text)
    return int(text)


def _register(name):
    """Register @p name of the selected thread, as the gdbstub spells it in lower or upper case."""
    value = target.register(name)
    return target.register(name.upper()) if value is None else value


def readings(arch):
    """[(cpu, GDB thread, QEMU's state word, isa.Cpu)] of every vCPU, read with its thread
    selected (the selection given back)."""
    rows = []
    for cpu, thread, state in vcpus():
        with on_cpu(cpu):
            values = [_register(name) or 0 for name in cpu_registers(arch)]
        rows.append((cpu, thread, state, cpus_of(arch, [values])[0], values))
    return rows


def _describe(arch, c, raw_root, roots):
    """One CPU's line: its privilege, PC and symbol, root and whose it is."""
    model = isa(arch)
    text = "%-6s pc %s" % ("user" if c.user else "kernel", ADDR % c.pc)
    symbol = kernel.symbol_of(c.pc).split(" in section ")[0]
    if symbol:
        text += " %s" % symbol
    if c.root == 0:
        return text + "; no %s root loaded" % model.lower_root_label
    known = roots.find(c.root) if roots is not None else None
    owner = "unpublished" if known is None else \
        "pid %d (%s)" % (known.id, known.name) if known.kind == "process" else known.name
    return text + "; %s %s%s: %s" % (model.lower_root_label, ADDR % c.root,
                                      model.root_note({model.lower_root: raw_root}), owner)


@command
class Cpus(PagodaCommand):
    """List every CPU: its state, privilege, PC, and the root it translates user addresses with.

Usage: cpus
One line per vCPU (QEMU's gdbstub shows each as a thread; `thread N` selects CPU N-1 for
GDB's own commands): QEMU's state for it (running, halted: waiting for an interrupt),
user or kernel mode, the PC and its symbol, and its root (CR3; TTBR0 on AArch64 with its
ASID) with the process or kernel root the kernel published for it (pt-ps lists them). `*`
marks the CPU GDB's commands read now. Two CPUs may hold the same process's root: each may
cache its translations, so a change to that space must reach both (lab 8's shootdown).
pt-walk --cpu N walks through CPU N's root."""

    name = "cpus"
    usage = "cpus"

    def run(self, arg, from_tty):
        parse(arg, max_positional=0)
        arch = target.require_stopped()
        with target.physical_memory() as read_phys:
            roots, note = kernel.published_roots(read_phys)
        selected = gdb.selected_thread()
        rows = readings(arch)
        for cpu, thread, state, c, values in rows:
            mark = "*" if selected is not None and thread.num == selected.num else " "
            out("%s CPU %d  %-8s %s" % (mark, cpu, state, _describe(arch, c, values[-1], roots)))
        if len(rows) == 1:
            out("(one CPU: ./pagoda gdb --smp 2 boots two)")
        if roots is None and note:
            out("note: " + note)
