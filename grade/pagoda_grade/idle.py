"""A boot whose guest can never do anything again ends now, not at its deadline.

When no process can run, the kernel waits in its idle loop (pagoda::proc::idle_until_interrupt)
for the next interrupt, and QEMU's exception log shows every timer interrupt taken there. A
sleeping process, one reading the console (it sleeps a tick at a time) or a process made ready
ends the run of such interrupts: it runs, makes a system call, takes a fault. So after
IDLE_TICKS interrupts in a row taken in the idle loop (seen from outside, in QEMU's log), the
grader reads the process table in guest RAM (QEMU's memfd) and ends the boot when nothing in it
can ever run again: there are processes, and each one waits for a child or has ended and waits
for its parent (a zombie whose parent is gone or never looks), none ready, running or asleep;
or when one is marked Running while the CPU idles with no current process (left_running():
the scheduler picks only Ready processes, so it never runs again). Once the grader can type no
more (its witness script has returned: no_more_input()), the process that sleeps in read() for
console input (the console's held line names it) waits forever too.
Nothing the guest does changes that table again (the timer only wakes sleepers, the console only
a reader or a foreground process killed by a typed Ctrl-C, which the grader does not type): the
boot would only run into its deadline, after minutes of idling at the grader's expense (QEMU
logs each tick, the grader reads the log). It ends as a boot at its deadline does (stop kind
TIMEOUT), with a reason that says what the table held.

A correct kernel never idles so: it ends when its processes have ended. Only a boot of a broken
kernel is shortened, and only where waiting could not change how it ends.
"""
import os

from pagoda_core.faultlog import INTERRUPT

from pagoda_pt import contract
from . import symbols

# Interrupts taken in a row in the idle loop before the process table is read (at 100 Hz, half a
# second of the guest's time: a process that sleeps longer is seen sleeping in the table).
IDLE_TICKS = 50
# Where an interrupt taken while the kernel idles interrupts it: the idle loop's wait, and the
# ISA's wait instruction (hlt, wfi) in the function it calls. (That function also waits in a
# system call that sleeps in the kernel, and in the self-tests: the process table tells those
# apart, their process is Running.)
IDLE_FUNCTIONS = (contract.IDLE, contract.WAIT_FOR_INTERRUPT)
# How the reason of such a stop begins (harness.Run.fail tells it from a deadline by it).
IDLE_STOP = "the guest idles with no process that can ever run again"


def nothing_can_run(facts, recs, reader=0):
    """None, or a sentence naming why nothing in the process table @p recs (pagoda_pt.procs.Proc, the
    slots in use) can ever run again: there is a process, and every one is Waiting, a Zombie with
    a parent (one without a parent is the idle loop's to reap: it still changes) or the process
    @p reader (a pid; 0: none) that waits for console input no one will type."""
    if not recs:
        return None
    if any(r.pid != reader and (r.state not in (facts.waiting, facts.zombie) or
                                (r.state == facts.zombie and r.parent == 0)) for r in recs):
        return None
    pids = {r.pid for r in recs}
    said = []
    for r in recs[:4]:
        if r.pid == reader:
            said.append(f"{r.who} waits for console input the grader never types")
        elif r.state == facts.waiting:
            said.append(f"{r.who} waits")
        else:
            gone = "" if r.parent in pids else ", gone"
            said.append(f"{r.who} has ended (a zombie; its parent pid {r.parent}{gone})")
    more = f" and {len(recs) - 4} more" if len(recs) > 4 else ""
    orphans = any(r.state == facts.zombie and r.parent not in pids for r in recs)
    return (f"{IDLE_STOP}: " + "; ".join(said) + more + f" (the process table in guest RAM, after {IDLE_TICKS} "
            "interrupts in a row taken in the idle loop; the grader ended the boot instead of waiting for its deadline)"
            + (": a zombie whose parent is gone is an orphan nothing will reap (exit gives a process's children to the "
               "adopter, pid 1, or to the kernel, parent 0)" if orphans else ""))


def left_running(facts, recs, read_phys, preempted=lambda rec: None):
    """None, or a sentence naming a process of @p recs marked Running while the CPU idles in the
    idle loop (no current process): nothing ever picks a Running process again. @p preempted(rec)
    -> None, or the interrupt (a faultlog.Event) that took the process's kernel code last, after
    which it never ran in user mode again: then the cause is that the tick switched away from kernel
    code (timer_tick() must preempt only a tick from user mode), and the sentence says so first."""
    from . import procaudit
    running = [r for r in recs if r.state == facts.running]
    if not running:
        return None
    current, pointer = procaudit.read_current(read_phys, facts, recs)
    if current is not None or pointer:
        return None     # (a process waiting in the kernel: it is current)
    why = procaudit.audit_table(facts, recs, None, 0, f"after {IDLE_TICKS} interrupts in a row taken in the idle loop")
    if not why:
        return None
    for r in running:
        tick = preempted(r)
        if tick is not None:
            return (f"{IDLE_STOP}: kernel code was preempted: the last interrupt QEMU's log shows on {r.who}'s kernel "
                    f"stack (vector {tick.vector:#x} at {tick.pc:#x}, CPL 0) interrupted its kernel code, and it never "
                    "ran in user mode again: a tick that interrupts kernel code must not end the turn (only a tick "
                    f"from user mode preempts); {why}")
    return f"{IDLE_STOP}: {why}"


class IdleWatch:
    """Watches the exception log's events of one boot (feed()) and says when the guest
    idles with nothing that can run (nothing_can_run()), reading the process table through
    @p read_phys(pa, size). @p spans: [(start, end)] of the idle functions' code (IDLE_FUNCTIONS).
    @p reader: the physical address where the console's held line keeps its reader's pid, or None.
    close() gives back what of() opened."""

    def __init__(self, spans, facts, read_phys, ticks=IDLE_TICKS, close=lambda: None, reader=None):
        self.spans, self.facts, self.read_phys, self.ticks = spans, facts, read_phys, ticks
        self.close, self.reader = close, reader
        self.seen = 0       # events of the log already looked at
        self.run = 0        # interrupts in a row taken in the idle loop
        # Where the log shows the stack (x86_64's dump has RSP and CR3): {kernel-stack slot: the last
        # interrupt taken in kernel code outside the idle loop with SP in that slot's stack}, and
        # {root: index of the last event taken from user mode in that root}.
        self.kernel_irq, self.user_seen = {}, {}
        self.no_input = False   # the grader types nothing more (no_more_input())

    @classmethod
    def of(cls, kernel, ram_base, ram_fd, ram_size):
        """The watch of a boot of @p kernel whose guest RAM (@p ram_size bytes from physical
        @p ram_base) @p ram_fd reads, through a descriptor of its own (the boot may outlive the
        witness's), or None when the kernel has no process table facts, no idle function or no
        console reader to read (labs before 3)."""
        from . import procaudit
        facts = procaudit.Facts.of(kernel)
        if facts is None:
            return None
        try:
            spans = [(f.address, f.address + max(f.size, 1)) for f in (symbols.find(kernel, name)
                                                                       for name in IDLE_FUNCTIONS)]
            line = symbols.address_of(kernel, contract.CONSOLE_LINE) + symbols.fact(kernel, "held_line_reader_offset")
            reader = symbols.physical_of(kernel, line)
        except (AssertionError, OSError):
            return None
        fd = os.dup(ram_fd)

        def read_phys(pa, size):
            if not 0 <= pa - ram_base <= ram_size - size:
                raise ValueError(f"physical {pa:#x} is not in the guest's RAM")
            return os.pread(fd, size, pa - ram_base)
        return cls(spans, facts, read_phys, close=lambda: os.close(fd), reader=reader)

    def no_more_input(self):
        """From now on the grader types nothing: a process waiting for console input waits forever.
        (The count of idle interrupts starts again: a line typed last still reaches its reader,
        which looks at the console every tick.)"""
        self.no_input, self.run = True, 0

    def waiting_reader(self, recs):
        """The pid of the process of @p recs that sleeps in read() for console input that can no
        longer come (it sleeps a tick at a time between looks), or 0."""
        if not self.no_input or self.reader is None:
            return 0
        pid = int.from_bytes(self.read_phys(self.reader, 4), "little")
        return pid if any(r.pid == pid and r.state == self.facts.sleeping for r in recs) else 0

    def preempted(self, rec):
        """The interrupt that last took @p rec's kernel code, when the process was never seen in user
        mode (in the root that interrupt ran in) after it; else None."""
        e = self.kernel_irq.get(rec.kslot)
        return e if e is not None and self.user_seen.get(e.root, -1) < e.index else None

    def feed(self, events):
        """None, or why the boot should end now, from the log's @p events (all of them so far)."""
        for e in events[self.seen:]:
            if e.kind == INTERRUPT and e.pc is not None and any(lo <= e.pc < hi for lo, hi in self.spans):
                self.run += 1
                continue
            self.run = 0    # (anything else: the kernel or a process did something)
            if e.privilege and e.root is not None:
                self.user_seen[e.root] = e.index
            elif e.kind == INTERRUPT and e.sp is not None and e.root is not None and e.sp > self.facts.stack_base:
                self.kernel_irq[(e.sp - 1 - self.facts.stack_base) // self.facts.stride] = e
        self.seen = len(events)
        if self.run < self.ticks:
            return None
        self.run = 0
        from . import procaudit
        try:
            recs = procaudit.read_procs(self.read_phys, self.facts)
            return (nothing_can_run(self.facts, recs, self.waiting_reader(recs))
                    or left_running(self.facts, recs, self.read_phys, self.preempted))
        except (OSError, ValueError):
            return None
