"""The process audit's invariants, in plain Python shared by the grader (grade/pagoda_grade/
procaudit.py, at its stops) and GDB's fault-why (pagoda_gdb/faults.py, where it stops): the
process table and the scheduler's current process, read from guest RAM through read_phys(pa,
size), checked against each other.

    Facts(fact, table_va, table, current)    the layout the kernel exports (process_* facts)
    read_table / read_current                the table's live slots, what g_current points at
    audit_table(...)                         the first broken invariant, as a sentence, or None
    audit(read_phys, symbol, where, ...)     all of it from a symbol(name) -> address reader

Each invariant holds only where the scheduler's records are consistent (a system call's entry, a
context switch, a timer tick, a process's end, the idle loop, a checkpoint of the run): the
callers choose those stops (CONSISTENT_FUNCTIONS).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from . import contract as C

NO_SLOT = 0xFFFF_FFFF
# Functions at whose entry (or anywhere in, for the idle loop) the scheduler's records are
# consistent: the stops where audit_table() may judge them.
CONSISTENT_FUNCTIONS = (C.TIMER_TICK, C.EXIT, C.IDLE, C.CHECKPOINT)


def _u(data, offset, size):
    return int.from_bytes(data[offset:offset + size], "little")


class Facts:
    """The kernel's facts the audit reads: @p fact(name) -> the value of pagoda_fact_<name>
    (AssertionError or None when missing), @p table_va the process table's kernel address,
    @p table and @p current the physical addresses of the table and of g_current."""

    def __init__(self, fact: Callable[[str], int], table_va: int, table: int, current: int):
        f = fact
        self.table_va, self.table, self.current = table_va, table, current
        self.slots, self.size = f("process_count"), f("process_stride")
        self.pid, self.parent, self.state = f("process_pid"), f("process_parent"), f("process_state")
        self.name, self.name_size = f("process_name"), f("process_name_size")
        self.kslot = f("process_kstack_slot")
        self.ready, self.running = f("process_state_ready"), f("process_state_running")
        self.zombie, self.waiting = f("process_state_zombie"), f("process_state_waiting")
        self.sleeping = f("process_state_sleeping")
        self.stack_base, self.stride = f("stack_base"), f("kernel_stack_stride")
        self.guard, self.stack_size = f("kernel_stack_guard"), f("kernel_stack_size")
        self.frame_size, self.frame_result = f("user_frame_size"), f("user_frame_result")
        self.frame_pc, self.frame_sp, self.frame_flags = f("user_frame_pc"), f("user_frame_sp"), f("user_frame_flags")

    def state_name(self, state):
        names = {0: "Free", self.ready: "Ready", self.running: "Running", self.zombie: "a Zombie",
                 self.waiting: "Waiting"}
        return names.get(state, f"in state {state} (Sleeping)" if state == self.sleeping else f"in state {state}")

    def stack_top(self, slot):
        return self.stack_base + slot * self.stride + self.guard + self.stack_size


@dataclass
class Rec:
    """One slot of the process table, as guest RAM holds it."""
    slot: int
    pid: int
    parent: int
    state: int
    name: str
    kslot: int

    @property
    def who(self):
        return f"pid {self.pid} ({self.name})"


def read_table(read_phys, facts):
    """[Rec] of every slot of the process table that is not free, from physical memory."""
    data = read_phys(facts.table, facts.slots * facts.size)
    out = []
    for slot in range(facts.slots):
        p = data[slot * facts.size:(slot + 1) * facts.size]
        pid, state = _u(p, facts.pid, 4), p[facts.state]
        if state == 0:
            continue
        raw = p[facts.name:facts.name + facts.name_size]
        name = raw.split(b"\0", 1)[0].decode(errors="replace") or "?"
        out.append(Rec(slot, pid, _u(p, facts.parent, 4), state, name, _u(p, facts.kslot, 4)))
    return out


def read_current(read_phys, facts, recs):
    """(the Rec the scheduler's g_current points at, or None for the idle loop; the pointer)."""
    pointer = _u(read_phys(facts.current, 8), 0, 8)
    if pointer == 0:
        return None, 0
    offset = pointer - facts.table_va
    if offset < 0 or offset % facts.size or offset // facts.size >= facts.slots:
        return None, pointer
    return next((r for r in recs if r.slot == offset // facts.size), None), pointer


# ---- the table's invariants ---------------------------------------------------------------------

def trap_stack_problem(facts, recs, current, where, trap_stacks):
    """None, or why a trap from user mode would not land on the current process's own kernel
    stack: @p trap_stacks [(what, value)] are where the CPU takes that stack from (TSS.RSP0 and
    the system-call stack; the EL1 stack), read at a stop @p where in @p current."""
    if current is None or current.kslot == NO_SLOT:
        return None
    top = facts.stack_top(current.kslot)
    for what, value in trap_stacks:
        if value == top:
            continue
        slot = (value - 1 - facts.stack_base) // facts.stride if value > facts.stack_base else None
        owner = next((r for r in recs if r.kslot == slot), None) if slot is not None else None
        if value == 0:
            whose = "never set (0)"
        elif slot is None or slot >= facts.slots:
            whose = "on no kernel stack"
        elif value == facts.stack_top(slot):
            whose = f"the top of slot {slot}'s stack" + (f", {owner.who}'s" if owner else ", which no process holds")
        else:
            whose = f"inside slot {slot}'s stack, not its top"
        return (f"{what} is {value:#x} {where} while the CPU runs {current.who}, whose kernel stack (slot "
                f"{current.kslot}) tops at {top:#x}: {whose}, so a trap from user mode would land on a stack that is "
                "not the process's own (the switch must set the next process's kernel stack: arch::set_kernel_stack("
                "its top))")
    return None


def audit_table(facts, recs, current, pointer, where, roots=None, asids=None):
    """The first broken invariant of the process table (@p recs, @p current: what g_current
    points at, @p pointer its value) at a stop @p where ("at the system-call entry") where the
    scheduler's records are consistent, as a sentence; None when they hold. @p roots: {pid: root}
    of the live processes (the kernel's root registry); @p asids: {(pid, root): ASID} the CPU was
    seen to run each process's root with (AArch64), or None."""
    table = "the process table (guest RAM)"
    running = [r for r in recs if r.state == facts.running]
    if pointer and current is None:
        return (f"the scheduler's current process (g_current = {pointer:#x}) points at no slot of {table} {where}: "
                "current() must name the process on the CPU, or be null in the idle loop")
    if current is not None and current.state == 0:
        return (f"the CPU runs {current.who} (g_current) {where}, but its slot of {table} is Free: a process freed "
                "while it still runs")
    if current is not None and current.state != facts.running:
        return (f"the CPU runs {current.who} (the scheduler's g_current) {where}, but its slot of {table} says it is "
                f"{facts.state_name(current.state)}, not Running: the scheduler switched to it without marking it "
                "Running (schedule() makes the process it picks Running, and the one it leaves Ready)")
    others = [r for r in running if current is None or r.slot != current.slot]
    if others:
        r = others[0]
        on = (f"the CPU runs {current.who}" if current is not None else "the CPU is in the idle loop (no process is "
              "current)")
        return (f"{r.who} is Running in {table} {where}, but {on} (the scheduler's g_current): "
                f"{len(running)} process{'es' if len(running) != 1 else ''} Running at once: a process the CPU does not "
                "run must be Ready (or sleeping, waiting, ended): the scheduler switched away from it and left it "
                "Running instead of making it Ready again (a preempted or yielding process goes back to Ready, at the "
                "end of the round), or it was made Running before it ever ran; the round robin never picks it")
    live = {r.pid: r for r in recs}
    for r in recs:
        if r.parent and r.parent not in live:
            return (f"{r.who} has parent pid {r.parent} in {table} {where}, and no process with that pid exists: "
                    "a process that ended left its children to a parent that is gone (exit must give its children "
                    "to the adopter, pid 1, or to the kernel: parent 0)")
        if r.parent == r.pid:
            return f"{r.who} is its own parent in {table} {where}"
    slots = {}
    for r in recs:
        if r.kslot == NO_SLOT:
            continue
        if r.kslot in slots:
            q = slots[r.kslot]
            return (f"{q.who} and {r.who} both hold kernel-stack slot {r.kslot} in {table} {where}: two live "
                    "processes on one kernel stack (a slot taken twice, or given back while its process lived)")
        slots[r.kslot] = r
    by_root = {}
    for pid, root in sorted((roots or {}).items()):
        if pid not in live or live[pid].state == facts.zombie:
            continue
        if root in by_root:
            q = live[by_root[root]]
            return (f"{q.who} and {live[pid].who} have the same root {root:#x} (the kernel's root registry) "
                    f"{where}: two live processes in one address space (a fork or a create that did not make a root "
                    "of its own)")
        by_root[root] = pid
    if asids:
        seen = {}
        for (pid, root), asid in sorted(asids.items()):
            if pid not in live or (roots or {}).get(pid) != root:
                continue   # a process or a root that is gone: its ASID may be handed out again
            if asid in seen:
                q = seen[asid]
                return (f"{live[q[1]].who} (root {q[0]:#x}) and {live[pid].who} (root {root:#x}) both run with ASID "
                        f"{asid} (TTBR0_EL1's ASID field, read at the grader's stops) while both live: two address "
                        "spaces share one ASID, so the TLB entries of one translate the other's addresses "
                        "(allocate_asid() must mark the ASID it hands out taken, and free_asid() give it back only "
                        "when the space ends)")
            seen[asid] = (root, pid)
    return None


def audit(read_phys, symbol: Callable[[str], Optional[int]], where: str, roots: Optional[dict] = None,
          table_name: str = C.PROCESS_TABLE, current_name: str = C.CURRENT) -> Optional[str]:
    """audit_table() over guest RAM (@p read_phys) with the kernel's symbols (@p symbol(name) ->
    address or None: the facts, __kernel_virt_offset, the table and g_current by @p table_name and
    @p current_name), at a stop @p where; None when nothing is broken or the kernel exports no
    process table (a kernel before lab 3)."""
    offset = symbol(C.KERNEL_VIRT_OFFSET)
    table_va, current_va = symbol(table_name), symbol(current_name)
    if None in (offset, table_va, current_va):
        return None

    def fact(name):
        value = symbol(C.fact_symbol(name))
        if value is None:
            raise LookupError(name)
        return value
    try:
        facts = Facts(fact, table_va, table_va - offset, current_va - offset)
    except LookupError:
        return None
    recs = read_table(read_phys, facts)
    current, pointer = read_current(read_phys, facts, recs)
    return audit_table(facts, recs, current, pointer, where, roots)
