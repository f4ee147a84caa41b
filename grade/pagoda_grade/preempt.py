"""Preemption seen, not believed (lab 3's preempt_user): the trace of the spinners' system calls
and context switches against QEMU's log, each turn's length from the scheduler's own tick count,
and a spinner that starves while the timer keeps ending turns. docs/grader.md, "Lab 3"."""
import re

from pagoda_pt import contract
from .processes import process_roots
from .symbols import address_of
from .watch import u64
from .witness import ARCHES


# Preemption is seen, not believed: while two spinners count, the grader stops the guest at every
# system-call entry and every context switch, and reads QEMU's log (line-buffered: at a stop it
# holds every exception taken before it) at each stop. A spinner must never make a system call
# (spin makes none while it counts), and must be seen preempted:
#   - where the log names the root of an interrupt (x86_64's CR3): a timer interrupt in user mode
#     inside spin's loop with the spinner's root, followed by a context switch before any system
#     call from it;
#   - where it does not (AArch64): the switches load the spinner's root, then another, then the
#     spinner's again, with timer interrupts in user mode inside spin's loop logged meanwhile.
# Neither depends on whether a kernel loads the next root before or after its switch of stacks.
# The trace ends once each spinner was seen preempted, or once the timer has interrupted spin's
# loop TRACE_TICKS times without it.
TRACE_TICKS = 40


TRACE_POLL = 0.2   # seconds between looks at QEMU's log while no stop comes


def trace_preemption(guest, watch, spinners, spin_main):
    """What the grader saw while the spinners ran: per spinner root, the system calls it made
    (their numbers) and the number of times it was seen preempted; the roots the switches loaded."""
    entry = address_of(watch.kernel, watch.proc["syscall_entry"])
    switch = address_of(watch.kernel, watch.proc["switch"])
    timer, user = watch.proc["timer_vector"], watch.proc["user_privilege"]
    calls = {r: [] for r in spinners}
    preempted = {r: 0 for r in spinners}
    pending = {r: False for r in spinners}     # x86_64: ticked in ring 3, not yet switched out
    state = {r: None for r in spinners}        # AArch64: None, "in" (seen loaded), "out" (another loaded since)
    ticked = {r: 0 for r in spinners}          # AArch64: spin ticks since the spinner was last seen loaded
    order = []
    seen = len(guest.log_events())
    ticks = 0
    # Each turn's length in ticks: the scheduler's g_turn_began (guest RAM), set to the tick count
    # at every switch, read at each one; a spinner switched out is preempted (it never calls).
    turn_began = address_of(watch.kernel, contract.TURN_BEGAN)
    begin, turns = {}, []                      # root -> tick count when its turn began; (root, ticks) ended
    while True:
        snap = guest.stop_at_any([entry, switch], within=TRACE_POLL)
        events = guest.log_events()
        for e in events[seen:]:
            if e.kind == "interrupt" and e.vector == timer and e.privilege == user and spin_main.contains(e.pc):
                ticks += 1
                if e.root in pending:
                    pending[e.root] = True
                elif e.root is None:
                    for r in spinners:
                        ticked[r] += state[r] is not None
        seen = len(events)
        root = snap.lower_root
        if snap.pc == entry and root in calls:
            calls[root].append(snap.register(watch.proc["syscall_number"]))
            pending[root] = False
        elif snap.pc == switch:
            now = u64(snap.read_virt(turn_began, 8))
            prev = order[-1] if order else None
            if prev in begin and not calls[prev]:
                turns.append((prev, now - begin[prev]))
            begin.pop(prev, None)
            if root in spinners:
                begin[root] = now
            order.append(root)
            for r in spinners:
                if pending[r]:
                    preempted[r] += 1
                    pending[r] = False
                if root == r:
                    if state[r] == "out" and ticked[r] and not calls[r]:
                        preempted[r] += 1
                    state[r], ticked[r] = "in", 0
                elif state[r] == "in":
                    state[r] = "out"
        if (all(preempted.values()) and turns) or ticks >= TRACE_TICKS:
            break
    return dict(calls=calls, preempted=preempted, order=order, ticks=ticks, turns=turns)


def short_turn_problem(turns, per_turn, arch):
    """Why the spinners' turns (@p turns: (root, ticks from its switch in to its switch out)) show
    a preemption before the turn was over (None when none did)."""
    short = [(root, n) for root, n in turns if n < per_turn]
    if not short:
        return None
    root, n = short[0]
    mode = ARCHES[arch].user_mode
    return (f"a spinner lost the CPU before its turn was over: spin (root {root:#x}) was switched out {n} tick(s) after "
            f"it was switched in ({len(short)} of the {len(turns)} turns the grader timed were shorter than "
            f"{per_turn} ticks; the scheduler's g_turn_began read from guest RAM at each switch): timer_tick() ends the "
            f"turn at any tick from {mode}; it must wait until the turn is over (turn_is_over(): the turn's first tick "
            "may have fallen due before the process ran at all)")


def preemption_problem(trace, root, arch):
    """Why the trace does not show @p root preempted (None: it does)."""
    made = trace["calls"][root]
    ring3 = ARCHES[arch].user_mode
    if made:
        return (f"spin (root {root:#x}) made {len(made)} system call(s) (number {made[0]} first) while the grader "
                "traced it: spin never makes one while it counts, so the process that ran is not the grader's spin, or "
                "something made it call the kernel (preemption means the timer takes the CPU, not the program)")
    if not trace["preempted"][root]:
        shown = ", ".join(f"{r:#x}" for r in trace["order"][:8]) or "none"
        return (f"the grader traced every context switch while two spinners counted: spin's root {root:#x} was never "
                f"switched out after a timer interrupt in {ring3} inside spin's loop (QEMU's log shows "
                f"{trace['ticks']} such interrupts meanwhile; the switches loaded: {shown}"
                f"{' ...' if len(trace['order']) > 8 else ''}): the timer interrupt from user mode does not preempt "
                "the running process")
    return None


def wait_for_ticker_end(guest, watch):
    """Runs the guest until the ticker process ends (its exit_current(), or it is no longer in
    the process table): it is the third process of preempt_user's run."""
    from pagoda_grade.procaudit import Facts, read_current, read_procs
    facts = Facts.of(watch.kernel)
    if facts is None:
        return
    exit_at = address_of(watch.kernel, contract.EXIT)
    snap = guest.snapshot()
    while any(r.name == "ticker" and r.state != facts.zombie for r in read_procs(snap.read_phys, facts)):
        snap = guest.stop_at_any([exit_at], what="the ticker to end (exit_current), leaving the two spinners")
        current, _ = read_current(snap.read_phys, facts, read_procs(snap.read_phys, facts))
        if current is not None and current.name == "ticker":
            return


# A spinner that is starved: the timer kept interrupting spin's loop in user mode (QEMU's log),
# so turns kept ending, yet one spinner's count stood still. With kTicksPerTurn ticks a turn and
# three processes, a fair round robin gives each spinner a turn within a few ticks; STARVE_TICKS
# such interrupts with no progress is a scheduler that never picks it (counted in guest events,
# never in wall-clock time).
STARVE_TICKS = 48


class SpinProgress:
    """Each spinner's last count and the number of timer interrupts in user mode inside spin's
    loop (QEMU's log) when it last moved: starved() names a spinner that stood still while the
    timer kept ending turns."""

    def __init__(self, spinners):
        self.spinners = spinners
        self.last = {r: None for r in spinners}
        self.mark = {r: 0 for r in spinners}

    @staticmethod
    def ticks(guest, watch, spin_main):
        """Timer interrupts taken in user mode inside spin's loop so far (QEMU's log)."""
        timer, user = watch.proc["timer_vector"], watch.proc["user_privilege"]
        return sum(1 for e in guest.log_events() if e.kind == "interrupt" and e.vector == timer
                   and e.privilege == user and spin_main.contains(e.pc))

    def starved(self, guest, watch, snap, counts, spin_main):
        ticks = self.ticks(guest, watch, spin_main)
        for root, count in zip(self.spinners, counts):
            if count != self.last[root]:
                self.last[root], self.mark[root] = count, ticks
        moving = [r for r in self.spinners if ticks - self.mark[r] < STARVE_TICKS]
        stuck = [r for r in self.spinners if r not in moving]
        if not stuck or not moving:
            return None
        return starvation_problem(snap, watch, stuck[0], moving[0], ticks - self.mark[stuck[0]], self.last)


def starvation_problem(snap, watch, stuck, other, ticks, counts):
    """The sentence for a spinner (root @p stuck) whose count stood still for @p ticks timer
    interrupts in user mode while the one in root @p other counted on: what the process table
    (guest RAM) says of it now, and what the scheduler must do."""
    from pagoda_grade.procaudit import Facts, read_current, read_procs
    labels = process_roots(snap, watch.kernel)
    pid = {r: int(m[1]) for r, label in labels.items() if (m := re.search(r"\(pid (\d+)\)", label))}
    facts = Facts.of(watch.kernel)
    state, on_cpu = "", ""
    if facts is not None and stuck in pid:
        recs = read_procs(snap.read_phys, facts)
        rec = next((r for r in recs if r.pid == pid[stuck]), None)
        current, _ = read_current(snap.read_phys, facts, recs)
        if rec is not None:
            state = facts.state_name(rec.state)
        if current is not None:
            on_cpu = f"; the CPU runs {current.who}"
    who = f"spin pid {pid[stuck]}" if stuck in pid else "spin"
    head = (f"{who} (root {stuck:#x}) never ran for {ticks} timer interrupts in user mode (QEMU's log), its spin_count "
            f"stuck at {counts[stuck]}, while the other spinner (root {other:#x}) counted on to {counts[other]}"
            f"{on_cpu}")
    if state == "Ready":
        return (f"{head}: it is Ready in the process table (guest RAM), and the scheduler never picks it: round robin "
                "takes the first Ready process after the current one in table order, wrapping around to the table's "
                "start (next_ready), so that every Ready process gets a turn")
    if state:
        return (f"{head}: it is {state} in the process table (guest RAM), not Ready: a preempted process must go "
                "back to Ready at the end of its turn, or the scheduler never picks it again")
    return f"{head}: the scheduler never gives it a turn (round robin over every Ready process, wrapping around)"
