"""The process audit's invariants, in plain Python shared by the grader (grade/pagoda_grade/
procaudit.py, at its stops) and GDB's fault-why (pagoda_gdb/faults.py, where it stops): the
process table and the scheduler's current process, read from guest RAM through read_phys(pa,
size) by the one reader (pagoda_pt/procs.py), checked against each other.

    audit_table(...)                         the first broken invariant, as a sentence, or None
    stalled_wait(rows)                       nothing can run and a parent waits for a child that ended

Each invariant holds only where the scheduler's records are consistent (a system call's entry, a
context switch, a timer tick, a process's end, the idle loop, a checkpoint of the run): the
callers choose those stops (CONSISTENT_FUNCTIONS).
"""
from __future__ import annotations

from typing import Optional

from .procs import NO_SLOT

from . import contract as C
# Functions at whose entry (or anywhere in, for the idle loop) the scheduler's records are
# consistent: the stops where audit_table() may judge them.
CONSISTENT_FUNCTIONS = (C.TIMER_TICK, C.EXIT, C.IDLE, C.CHECKPOINT)


# ---- the table's invariants ---------------------------------------------------------------------

def trap_stack_problem(facts, recs, current, where, trap_stacks):
    """None, or why a trap from user mode would not land on the current process's own kernel
    stack: @p trap_stacks [(what, value)] are where the CPU takes that stack from (TSS.RSP0 and
    the system-call stack; the EL1 stack; None: not found), seen at a stop @p where in @p current."""
    if current is None or current.kslot == NO_SLOT:
        return None
    top = facts.stack_top(current.kslot)
    for what, value in trap_stacks:
        if value == top:
            continue
        slot = (value - 1 - facts.stack_base) // facts.stride if (value or 0) > facts.stack_base else None
        owner = next((r for r in recs if r.kslot == slot), None) if slot is not None else None
        if value is None:
            whose = "not found (the entry, run from this stop, never set its stack pointer)"
        elif value == 0:
            whose = "never set (0)"
        elif slot is None or slot >= facts.slots:
            whose = "on no kernel stack"
        elif value == facts.stack_top(slot):
            whose = f"the top of slot {slot}'s stack" + (f", {owner.who}'s" if owner else ", which no process holds")
        else:
            whose = f"inside slot {slot}'s stack, not its top"
        shown = "unknown" if value is None else hex(value)
        return (f"{what} is {shown} {where} while the CPU runs {current.who}, whose kernel stack (slot "
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


def stalled_wait(rows: list) -> Optional[str]:
    """The cause of a machine that idles with work left, from the process table (@p rows:
    pagoda_pt.procs.Proc; state_word "waiting" only in wait()), or None when it sees none.

    Only when nothing is ready or running (the machine has nothing to do but wait): a process
    waiting in wait() while a child of its own has already ended (a zombie) was never made
    ready again, so the child's exit did not wake it. A zombie that is the current process is
    still on its way out (exit_current() has not reached the wake-up yet) and is not counted."""
    if any(r.state_word in ("ready", "running") for r in rows):
        return None
    for parent in sorted(rows, key=lambda r: r.pid):
        if parent.state_word != "waiting":
            continue
        ended = [c for c in rows if c.parent == parent.pid and c.state_word == "zombie"
                 and not c.current]
        if ended:
            child = min(ended, key=lambda r: r.pid)
            return ("nothing can run: proc %d (%s) waits in wait() while its child proc %d (%s) has "
                    "already ended (a zombie, not yet reaped): the child's exit did not wake the waiting "
                    "parent (exit must make a Waiting parent Ready), or the parent went to wait after "
                    "the child ended without looking at its children again"
                    % (parent.pid, parent.name, child.pid, child.name))
    return None
