"""Lab 6's evidence, read from guest RAM: the process table and each process's record of regions
(its VMA list), every user page a root maps with its frame, write permission, reference count
and bytes, and what the grader saw at each death and exec. The lab-6 tests read these at moments
they pick (a fork's return, a process's first system call after it, every death, the end of a
run) and name what a fork, a copy-on-write fault, an exit, a wait or an exec got wrong from what
they saw, never from what the kernel printed.

    processes(snap, kernel)             the process table: pid, parent, state, record (Vma list)
    Pages.of(snap, root)                 a root's user pages: va -> (frame, writable)
    Refs(snap, kernel)                   the kernel's reference counts (pagoda_frame_refs)
                                         (these three in processes.py, lab 7's too;
                                         a leak's story: audit.leak_story)
    Deaths(kernel)                       stops at exit_current and exec_current; records each
    fork_view(...) / fork_problems(...)  one fork, seen at its return and at a later moment

Layouts come from the kernel's facts (process_*, vma_*: kernel/proc/process.cpp, mm/space/vma.cpp).
"""
from dataclasses import dataclass, field

from pagoda_pt import contract

from . import symbols
from .processes import Pages, Refs, digest, pid_of, processes, registry, table_frames
from .witness import ARCHES, PAGE, return_address

from pagoda_pt.procs import _u
from pagoda_pt.procaudit import stalled_wait
from pagoda_pt.verdicts import COW_GAVE_WRITE_BACK


BOUND_NAMES = ("heap's start", "heap's break", "stack's limit", "stack's gap")   # Proc.bounds, in order


# ---- deaths and execs ----------------------------------------------------------------------------

WHEN = {"exit": "as it exits", "exec": "as it execs", "later": "at a later stop of the grader's"}
TERMINATIONS = {0: "exited", 1: "page fault", 2: "protection fault", 3: "illegal instruction",
                4: "privileged instruction", 5: "arithmetic error", 6: "stack limit", 7: "killed"}


@dataclass
class Moment:
    """What the grader saw of one process at one stop: its root's user pages and tables, its
    record, and (a death) how it ended."""
    what: str                 # "exit", "exec", "fork", "later"
    pid: int
    name: str
    root: int
    pages: Pages
    tables: set
    vmas: list
    parent: int = 0
    how: int = 0
    code: int = 0
    address: int = 0
    order: int = 0
    bounds: tuple = None      # the record's BOUND_FIELDS, read with vmas

    @property
    def who(self):
        return f"pid {self.pid} ({self.name})"

    @property
    def killed(self):
        return self.what == "exit" and self.how != 0

    def ending(self):
        if self.how == 0:
            return f"exited with code {self.code}"
        return f"killed ({TERMINATIONS.get(self.how, self.how)}) at address {self.address:#x}"


def moment(snap, kernel, root, what, order=0):
    pid, name = pid_of(snap, kernel, root)
    proc = processes(snap, kernel, records_of=pid).get(pid)
    return Moment(what, pid, name or "?", root, Pages.of(snap, root), table_frames(snap, root),
                  proc.vmas if proc else None, parent=proc.parent if proc else 0, order=order,
                  bounds=proc.bounds if proc else None)


@dataclass
class CowFault:
    """One copy-on-write fault, seen at the entry and the return of copy_on_write(): the page,
    the frame it mapped, that frame's count and bytes before, and after: the frame the page maps
    now, writable or not, the old frame's count and bytes."""
    who: str
    page: int
    frame: int
    count: int
    before: bytes
    after_frame: int = None
    after_writable: bool = False
    after_count: int = None
    frame_now: bytes = None
    copy_bytes: bytes = None
    freed: bool = False       # the old frame free in the allocator's bitmap at the return

    def problem(self):
        """The sentence naming what this fault got wrong, or None."""
        at = f"the copy-on-write fault of {self.who} at page {self.page:#x}"
        if self.after_frame is None:
            return None
        if not self.after_writable:
            if self.after_frame != self.frame:
                return (f"{at} mapped its copy, frame {self.after_frame:#x} (in place of the shared {self.frame:#x}), "
                        "read-only: the copy must be mapped with its region's permissions (writable), or the write "
                        "faults again on the copy, for ever")
            return (f"{at} returned with the page still read-only, on the same frame {self.after_frame:#x}: it neither "
                    "copied the page nor gave write permission back")
        if self.after_frame == self.frame:
            if self.count > 1:
                return f"{at} found frame {self.frame:#x} with count {self.count} (shared): {COW_GAVE_WRITE_BACK}"
            return None
        if self.freed and self.count > 1:
            return (f"{at} copied frame {self.frame:#x} (count {self.count} before: other roots still map it) into "
                    f"{self.after_frame:#x} and the old frame is free in the allocator's bitmap (guest RAM) at the "
                    f"fault's return, count now {self.after_count}: a frame freed while it is still mapped (a drop "
                    "that said 'last' when the count fell to 1, not when it was 1, or a put_user_frame() that frees "
                    "when drop() says the mapping was not the last)")
        if self.count <= 1:
            return (f"{at} found frame {self.frame:#x} with count {self.count} (this mapping was its last) and copied "
                    f"it into {self.after_frame:#x}: a page with one mapping left is taken back, not copied")
        if self.frame_now != self.before:
            return (f"{at} copied frame {self.frame:#x} (count {self.count}) into {self.after_frame:#x}, and the bytes "
                    f"of {self.frame:#x}, which another process still maps, changed during the fault: the "
                    "copy-on-write fault wrote the shared frame (the copy made the wrong way round) instead of its copy")
        if self.copy_bytes != self.before:
            return (f"{at} mapped frame {self.after_frame:#x} in place of {self.frame:#x}, and it does not hold the "
                    "bytes of the page it replaces: the copy was not made (or made from another frame)")
        if self.after_count is not None and self.after_count != self.count - 1:
            return (f"{at} copied frame {self.frame:#x} (count {self.count} before) and left its count at "
                    f"{self.after_count} (the kernel's table, guest RAM): it did not drop its reference to the old "
                    "frame (put_user_frame / FrameRefs::drop), so the frame outlives its last mapping")
        return None


class Deaths:
    """Stops at every process's end (exit_current: an exit call or a kill) and every exec
    (exec_current, before the old space goes): the dying or exec'ing process's root (the one the
    CPU holds), walked then, with its record and, at a death, how it ended; and at the entry and
    the return of every copy-on-write fault (copy_on_write). A test that follows system calls adds
    addresses() to its stops and hands every stop to take()."""

    EXIT, EXEC, COW, LOAD = contract.EXIT, contract.EXEC, contract.COPY_ON_WRITE, contract.LOAD_PROGRAM
    FORK = contract.FORK
    FORKS_SEEN = 4   # forks seen whole per boot (the first ones: wide_fork makes 64)

    def __init__(self, kernel, cow=True, light=False, eager=False):
        """@p cow: also witness every copy-on-write fault (two stops each: a test that makes
        hundreds of them may leave it off and still have the deaths). @p light: at a normal exit
        record only who exited and how (a test with a hundred processes of megabytes each), and
        see only the first fork (else the first FORKS_SEEN); a kill is always recorded whole.
        @p eager: the boot's fork is fork=eager (no stop at forks: it copies what copy-on-write
        shares)."""
        self.kernel = kernel
        self.light = light
        self.eager = eager
        self.fork_at = symbols.address_of(kernel, self.FORK)
        self.forks = []          # ForkView of each fork at its return (light: the first), with .log_at
        self._fork_returns = {}  # return address -> (parent root, pids before, log position)
        self.bitmap = None       # (address, words) of the allocator's used-frame bitmap, when known
        self.exit_at = symbols.address_of(kernel, self.EXIT)
        self.exec_at = symbols.address_of(kernel, self.EXEC)
        try:
            self.load_at = symbols.address_of(kernel, self.LOAD)
        except AssertionError:
            self.load_at = None
        self.cow_at = None
        if cow:
            try:
                self.cow_at = symbols.address_of(kernel, self.COW)
            except AssertionError:
                pass   # (a kernel that inlined it: no fault is witnessed)
        self.moments = []
        self.cow_faults = []
        # The process audit (procaudit.ProcessAudit) of the boot, when the test runs one: a
        # copy-on-write fault that went wrong is a finding as soon as it is seen, so it heads the
        # test's failure whatever ends the boot after it (a limit of stops, a panic, a kill).
        self.audit = None
        self._returns = {}       # (return address, root) -> CowFault
        self._exec_return = None  # (return address, Moment at its entry) of the exec under way
        self.exec_faults = []     # sentences: execs that failed and changed the old space
        # The wake-up an exit owes a parent that waits (missed_wake()): the context switch that
        # leaves the ended process, and (its pid, the waiting parent's) while one is owed.
        self.switch_at = next((a for a in (_address_or_none(kernel, n) for n in contract.SWITCHES) if a), None)
        self._owed_wake = None
        self.wake_problems = []   # sentences: a parent still Waiting after its child's exit

    def addresses(self):
        return [self.exit_at, self.exec_at, *([self.switch_at] if self._owed_wake else []), *([self.cow_at] if self.cow_at else []),
                *([self.fork_at] if self._forks_wanted() else []),
                *sorted({pc for pc, _ in self._returns} | set(self._fork_returns)),
                *([self._exec_return[0]] + ([self.load_at] if self.load_at else []) if self._exec_return else [])]

    def _cow_entry(self, snap):
        root = snap.lower_root
        # copy_on_write(space, page, frame, perms) returns a Result<void>, too big for registers:
        # on x86_64 its address comes first (RDI), on AArch64 in X8, apart from the arguments.
        first = 2 if ARCHES[snap.arch].result_pointer_argument else 1
        page, frame = snap.argument(first), snap.argument(first + 1)
        if page % PAGE or frame % PAGE:
            return
        pid, name = pid_of(snap, self.kernel, root)
        fault = CowFault(f"pid {pid} ({name})", page, frame, Refs(snap, self.kernel).count(frame) or 0,
                         snap.read_phys(frame, PAGE))
        self._returns[(return_address(snap), root)] = fault
        self.cow_faults.append(fault)

    def _cow_return(self, snap, fault):
        w = snap.walk(fault.page, snap.lower_root)
        refs = Refs(snap, self.kernel)
        if self.bitmap is not None:
            words = snap.read_virt(self.bitmap[0] + 8 * (fault.frame // PAGE // 64), 8)
            fault.freed = not (int.from_bytes(words, "little") >> (fault.frame // PAGE % 64)) & 1
        fault.after_frame = w.pa if w.mapped else None
        fault.after_writable = bool(w.mapped and w.perms and w.perms.write)
        fault.after_count = refs.count(fault.frame)
        fault.frame_now = snap.read_phys(fault.frame, PAGE)
        if fault.after_frame is not None:
            fault.copy_bytes = snap.read_phys(fault.after_frame, PAGE)
        if self.audit is not None:
            self.audit.note(fault.problem())

    def _exec_back(self, snap, m, loading=False):
        """Where exec_current returned (one CPU: the next stop there after its entry; @p loading:
        at load_program's entry during it): in the root it was called in (it failed, or has not
        switched yet), the caller's space must be as it was at exec's entry."""
        if snap.lower_root != m.root:
            return   # it succeeded: the new root is live
        now = Pages.of(snap, m.root)
        gone = [va for va, (pa, _) in sorted(m.pages.items()) if now.get(va, (None,))[0] != pa]
        if not gone:
            return
        when = ("as exec began loading the new program (load_program's entry, the old root still live)" if loading
                else f"where exec_current returned failing (its old root {m.root:#x} still live)")
        problem = (f"exec freed the old user half before the new program was loaded: {len(gone)} of the "
                   f"{len(m.pages)} user pages {m.who} mapped at exec's entry are gone or changed {when} (first "
                   f"{gone[0]:#x}, {_where(m.vmas, gone[0])}): exec must build the new space beside the old one and "
                   "free the old one only after the switch to the new root, so that an exec that fails returns to "
                   "the caller's space untouched")
        self.exec_faults.append(problem)
        if self.audit is not None:
            self.audit.note(problem)

    def cow_problems(self):
        return [p for p in (f.problem() for f in self.cow_faults) if p]

    def _forks_wanted(self):
        seen = len(self.forks) + len(self._fork_returns)
        return not self.eager and seen < (1 if self.light else self.FORKS_SEEN)

    def _fork_entry(self, snap):
        self._fork_returns[return_address(snap)] = (snap.lower_root, set(processes(snap, self.kernel, records_of=-1)),
                                                    len(snap.guest.log_events()))

    def _fork_return(self, snap, parent, pids, log_at):
        """Where fork_process returns to the parent's system call (in whatever root the CPU holds:
        one fork is under way at a time), before the child runs: both roots walked; what is wrong
        with the fork is a finding at once (fork_problems())."""
        made = sorted(set(processes(snap, self.kernel, records_of=-1)) - pids)
        child = next((k.root for k in registry(snap, self.kernel).roots if k.kind == "process" and len(made) == 1
                      and k.id == made[0]), None)
        if child is None:
            return   # (it failed; or the grader missed a stop of it: one process made is a fork seen whole)
        # (every frame's bytes at the first fork, for a later view to compare with: test_lab6's fork_basic)
        whole = not self.forks and not self.light
        view = fork_view(snap, self.kernel, parent, child, "fork", every_digest=whole)
        view.live_root, view.log_at = snap.lower_root, log_at
        self.forks.append(view)
        wrong = fork_problems(view)
        if wrong and self.audit is not None:
            self.audit.note(wrong[0])

    def copies_without_fault(self, log_events):
        """Pages a copy-on-write fork shared (the same frame in both roots at its return) that a
        root of the fork maps to another frame when the grader next walked it (its exit, its exec)
        with no fault at that page in QEMU's log (@p log_events() gives it: read only when some page
        was mapped apart) since the fork (x86_64: with that root loaded; AArch64's log has no
        roots): a copy made without a copy-on-write fault, after fork returned (@p light: only at the
        test's own later views: its exits may hold hundreds of MiB, its log millions of lines).
        Sentences, the first per fork."""
        faults = None
        out = []
        for view in self.forks:
            shared = {va: pf for va, (pf, _) in view.parent.pages.items() if view.child.pages.get(va, (None,))[0] == pf}
            for m in self.moments:
                if (m.pid, m.root) not in ((view.parent.pid, view.parent.root), (view.child.pid, view.child.root)) \
                        or m.what not in WHEN or not m.pages or self.light and m.what != "later":
                    continue
                apart = [va for va, frame in sorted(shared.items()) if m.pages.get(va, (frame,))[0] != frame]
                if apart and faults is None:
                    faults = [(i, e.address & ~(PAGE - 1), e.root) for i, e in enumerate(log_events())
                              if e.kind == "exception" and e.address is not None]
                hit = {page for i, page, root in faults or () if i >= view.log_at and root in (None, m.root)}
                bare = [va for va in apart if va not in hit]
                if bare:
                    out.append(f"{m.who} maps page {bare[0]:#x} (and {len(bare) - 1} more) to frame "
                               f"{m.pages[bare[0]][0]:#x} {WHEN[m.what]}, and at fork's return the page was frame "
                               f"{shared[bare[0]]:#x}, shared with "
                               f"{view.child.who if m.root == view.parent.root else view.parent.who} "
                               f"({_where(view.parent.vmas, bare[0])}), yet QEMU's log shows no fault at that page "
                               "since the fork: a copy made without a copy-on-write fault (eagerly, after fork "
                               "returned): every first write to a shared page must take its own fault, and only "
                               "that fault copies the page")
                    break
        return out

    def see_fork(self, guest):
        """Follows the next fork_process() to its return: for a caller whose own stops would skip
        them (it steps from a fork's system call straight to its return in user mode)."""
        if self.eager:
            return
        self._fork_entry(guest.stop_at(self.fork_at))
        back = next(iter(self._fork_returns))
        self._fork_return(guest.stop_at(back), *self._fork_returns.pop(back))

    def take(self, snap):
        """Records @p snap when it is a stop at one of addresses(); True then."""
        if snap.pc == self.fork_at and self._forks_wanted():   # (a test may stop there for itself too)
            self._fork_entry(snap)
            return True
        if snap.pc in self._fork_returns:
            self._fork_return(snap, *self._fork_returns.pop(snap.pc))
            return True
        if self.cow_at is not None and snap.pc == self.cow_at:
            self._cow_entry(snap)
            return True
        if self._exec_return is not None and self.load_at is not None and snap.pc == self.load_at:
            self._exec_back(snap, self._exec_return[1], loading=True)
            return True
        if self._exec_return is not None and snap.pc == self._exec_return[0]:
            _, m = self._exec_return
            self._exec_return = None
            self._exec_back(snap, m)
            return True
        key = (snap.pc, snap.lower_root)
        if key in self._returns:
            self._cow_return(snap, self._returns.pop(key))
            return True
        if self._owed_wake and snap.pc == self.switch_at:
            self._missed_wake(snap, *self._owed_wake)
            return True
        if snap.pc not in (self.exit_at, self.exec_at):
            return False
        code = how = address = 0
        if snap.pc == self.exit_at:
            self._owe_wake(snap)
            info = snap.read_virt(snap.argument(0), 16)
            code, how, address = _u(info, 0, 4), _u(info, 4, 4), _u(info, 8, 8)
        what = "exit" if snap.pc == self.exit_at else "exec"
        if self.light and what == "exit" and how == 0:
            pid, name = pid_of(snap, self.kernel, snap.lower_root)
            m = Moment(what, pid, name or "?", snap.lower_root, Pages(), set(), None)
        else:
            m = moment(snap, self.kernel, snap.lower_root, what)
        m.code, m.how, m.address = code - (1 << 32) if code >> 31 else code, how, address
        m.order = len(self.moments)
        self.moments.append(m)
        if what == "exec":
            self._exec_return = (return_address(snap), m)
        return True

    def _owe_wake(self, snap):
        """At an exit's entry (@p snap): when the ending process's parent waits (Waiting, in the
        process table in guest RAM), the exit owes it a wake-up, checked at the switch that leaves
        the ended process (the first instant after exit_current() is done, before anyone else
        runs: no timer tick or other exit can have woken the parent yet)."""
        if self.switch_at is None or self.light:
            return
        procs = processes(snap, self.kernel, records_of=-1)
        pid, _ = pid_of(snap, self.kernel, snap.lower_root)
        me = procs.get(pid)
        parent = procs.get(me.parent) if me is not None else None
        self._owed_wake = (pid, parent.pid) if parent is not None and parent.waiting else None

    def _missed_wake(self, snap, pid, parent):
        """At the switch after pid @p pid's exit: its @p parent, Waiting when the exit began, must
        be Ready now (the exit made it so); still Waiting with the child a zombie is a wake-up the
        exit never gave: a finding of the process audit, line 1 of the test's failure."""
        self._owed_wake = None
        procs = processes(snap, self.kernel, records_of=-1)
        child, waiter = procs.get(pid), procs.get(parent)
        if child is None or waiter is None or not child.zombie or not waiter.waiting or child.parent != parent:
            return
        problem = (f"pid {parent} was waiting in wait() when its child pid {pid} exited, and is still Waiting after the "
                   "exit (the process table in guest RAM, at the context switch that leaves the ended child, a zombie "
                   f"with exit status {child.exit_code}): the child's exit did not wake the waiting parent (exit must make "
                   "a Waiting parent Ready); only something else can wake it now")
        if problem not in self.wake_problems:
            self.wake_problems.append(problem)
        if self.audit is not None:
            self.audit.note(problem)

    def add(self, m):
        """Records a Moment the test took itself (a fork's view), in the order of the stops."""
        m.order = len(self.moments)
        self.moments.append(m)

    def killed(self):
        return [m for m in self.moments if m.killed]

    def exits(self):
        return [m for m in self.moments if m.what == "exit"]


def unflushed(flush, at_fork):
    """The pages the parent mapped writable as fork began (@p flush["before"]), maps read-only
    to the same frame where fork returned (@p at_fork), and that no invalidation during fork
    covered (@p flush: the pages invalidate_page was called for, and whether invalidate_all was)."""
    if flush["all"]:
        return []
    now = at_fork.parent.pages
    return sorted(va for va, (frame, writable) in flush["before"].items()
                  if writable and va in now and now[va] == (frame, False) and va not in flush["pages"])


def stale_records(moments):
    """What the grader saw of an exec that kept the old program's record: a process that exec'd
    (its record read at exec_current's entry, the old program's) and was later seen (its death)
    in another root under another program's name with that very VMA list. Read only to name a
    failure: two programs of identical layout would match too."""
    out = []
    for m in moments:
        if m.what != "exec" or not m.vmas:
            continue
        for later in moments:
            if later.order <= m.order or later.pid != m.pid or later.what == "exec":
                continue
            if later.root != m.root and later.name != m.name and later.vmas == m.vmas:
                out.append(f"after exec, {later.who}'s record (VMA list, read from guest RAM as it "
                           f"{'exited' if later.what == 'exit' else 'ran'}) is still {m.name}'s, the program before "
                           f"exec: {', '.join(str(v) for v in m.vmas[:4])}{' ...' if len(m.vmas) > 4 else ''}: exec "
                           "did not give the process the new program's record (copy_record of what load_program() "
                           "recorded), so its faults and a later fork go by the old program's regions")
            break
    return out


# ---- one fork -----------------------------------------------------------------------------------

@dataclass
class ForkView:
    """Both roots of one fork at one moment: each page's frame and write permission in the
    parent and the child, each frame's count and bytes, and both records."""
    parent: Moment
    child: Moment
    counts: dict = field(default_factory=dict)    # frame -> count
    digests: dict = field(default_factory=dict)   # frame -> bytes digest
    live_root: int = None                         # the root the CPU held then (lower half)


def fork_view(snap, kernel, parent_root, child_root, what, every_digest=True):
    """Both roots of a fork now; each frame's bytes digested (@p every_digest: every frame, for a
    later view to compare with; else only the frames of pages the two map apart)."""
    parent = moment(snap, kernel, parent_root, what)
    child = moment(snap, kernel, child_root, what)
    refs = Refs(snap, kernel)
    frames = parent.pages.frames() | child.pages.frames()
    apart = frames if every_digest else {f for va, (pf, _) in parent.pages.items()
                                         if child.pages.get(va, (pf,))[0] != pf for f in (pf, child.pages[va][0])}
    view = ForkView(parent, child, {f: refs.count(f) for f in frames}, {f: digest(snap, f) for f in apart})
    view.arch = snap.arch
    return view


def snap_arch(view):
    return getattr(view, "arch", "x86_64")


def _where(vmas, va):
    for v in vmas or []:
        if v.start <= va < v.end:
            return f"in its region {v}"
    return "in none of its regions"


def fork_problems(at_fork, later=None):
    """What is wrong with a fork, from its view at the fork's return (@p at_fork) and, when given,
    at a later moment before the child ended (@p later: after the parent's writes following the
    fork). A fork that shares some pages shares all (copy-on-write); one that copies every page is
    the eager fork (lab 6's stand-in until share_pages() is written). The first sentence is the
    most specific cause."""
    p, c = at_fork.parent, at_fork.child
    problems = []
    if at_fork.live_root is not None and at_fork.live_root != p.root:
        whose = f"the child's ({c.who})" if at_fork.live_root == c.root else f"{at_fork.live_root:#x}"
        problems.append(f"where fork_process returned to the parent's system call, the CPU's root "
                        f"({ARCHES[snap_arch(at_fork)].lower_root_label}) is {whose}, not the parent's "
                        f"{p.root:#x}: fork made another root live while the parent still runs, so the rest of the "
                        "system call and the parent's return to user mode go through the child's tables (fork "
                        "writes the child's tables through its own cursor: it never needs the child's root live)")
    pv, cv = p.vmas or [], c.vmas or []
    if pv and not cv:
        problems.append(f"right after fork, the child's record is empty: {c.who}'s VMA list, read from guest RAM at "
                        f"fork's return, holds no region while the parent's holds {len(pv)} (e.g. {pv[0]}): fork "
                        "did not copy the record of regions (copy_record) into the child")
    if cv and p.bounds and c.bounds and p.bounds != c.bounds:
        differ = [f"its {n} {cb:#x}, the parent's {pb:#x}" for n, pb, cb in zip(BOUND_NAMES, p.bounds, c.bounds)
                  if pb != cb]
        problems.append(f"right after fork, {c.who}'s record (read from guest RAM at fork's return) has the parent's "
                        f"{len(cv)} region(s) but not all of its bounds: {'; '.join(differ)}: fork's copy_record must "
                        "copy the heap's start and break and the stack's limit and gap with the VMAs, or the child's "
                        "sbrk and stack growth go by bounds that are not its parent's")
    if p.pages and not c.pages:
        problems.append(f"right after fork, {c.who}'s root maps none of the {len(p.pages)} user pages the parent maps "
                        f"(grader's walk of both roots): fork copied nothing, as a copy walked by a VMA list that was "
                        f"empty when it ran does (the child's record holds {len(cv)} region(s) now: copied after the "
                        "pages were, or a record the loader never filled)")
        return problems
    missing = [va for va in sorted(p.pages) if va not in c.pages]
    shared = [va for va in sorted(p.pages) if va in c.pages and c.pages[va][0] == p.pages[va][0]]
    if missing:
        va = missing[0]
        problems.append(f"right after fork, {len(missing)} of the parent's {len(p.pages)} user pages are not mapped in "
                        f"the child (first: {va:#x}, {_where(pv, va)}): fork's walk left pages of a region out")
    for va in sorted(p.pages):
        if va not in c.pages:
            continue
        (pf, pw), (cf, cw) = p.pages[va], c.pages[va]
        if pf == cf:
            n = at_fork.counts.get(pf)
            if pw and cw:
                problems.append(f"right after fork, page {va:#x} is frame {pf:#x} in both roots and writable in both, "
                                f"the parent ({p.who}) and the child ({c.who}), count {n}: fork left the parent's entry "
                                "writable and gave the child the same writable entry (it shared the page with its "
                                "write permission): a copy-on-write fork must map a shared frame read-only in both "
                                "roots (and flush the parent's entry), or each one's writes land in the other's memory")
            elif pw:
                problems.append(f"right after fork, page {va:#x} is frame {pf:#x} in both roots and still writable in "
                                f"the parent ({p.who}), read-only in the child, count {n}: the parent was left "
                                "writable: a copy-on-write fork must take write permission from the parent's entry "
                                "too (and flush it), or the parent's writes land in the child's memory")
            elif cw:
                problems.append(f"right after fork, page {va:#x} is frame {pf:#x} in both roots and writable in the "
                                f"child ({c.who}): a shared frame must be read-only in both roots")
            elif n is not None and n < 2:
                problems.append(f"right after fork, frame {pf:#x} (page {va:#x}) is mapped by both roots but its "
                                f"reference count in the kernel's table (guest RAM) is {n}: fork must count the child's "
                                "mapping (FrameRefs::share), or the first unmap frees a frame the other root still maps")
        elif shared:
            problems.append(f"right after fork, page {va:#x} ({_where(pv, va)}) is frame {pf:#x} in the parent and "
                            f"{cf:#x} in the child while the fork shared page {shared[0]:#x} (grader's walk of both "
                            "roots where fork_process returned): it was copied eagerly: copy-on-write shares every "
                            "page of every private region (the image's data, the heap, the stack, mmap) read-only, and "
                            "a page is copied only at its first write, by its copy-on-write fault")
        else:
            if at_fork.digests.get(pf) != at_fork.digests.get(cf):
                problems.append(f"right after fork, the child's copy of page {va:#x} (frame {cf:#x}) does not hold the "
                                f"bytes of the parent's frame {pf:#x}: the eager copy copied the wrong frame or not at "
                                "all")
            elif cw != pw:
                problems.append(f"right after fork, the child's copy of page {va:#x} is {'' if cw else 'not '}writable "
                                f"while the parent's is{'' if pw else ' not'}: a copy keeps the parent's permissions")
        if len(problems) >= 6:
            break
    if problems or later is None:
        return problems
    # Later: the child about to run its first instruction; the parent has usually run on and
    # written (forktree's parent does, before it waits).
    lp, lc = later.parent, later.child
    for va in sorted(p.pages):
        if va not in c.pages or va not in lp.pages or va not in lc.pages:
            continue
        shared = p.pages[va][0]
        if c.pages[va][0] != shared:
            continue  # an eager copy
        (pf, pw), (cf, cw) = lp.pages[va], lc.pages[va]
        before = at_fork.digests.get(shared)
        if pf == cf == shared:
            n = later.counts.get(shared)
            if pw or cw:
                who = lp.who if pw else lc.who
                problems.append(f"frame {shared:#x} (page {va:#x}) is still mapped by both roots with count {n}, and "
                                f"{who} now maps it writable (it was read-only in both at fork's return): "
                                + COW_GAVE_WRITE_BACK)
            elif later.digests.get(shared) != before:
                problems.append(f"frame {shared:#x} (page {va:#x}) is shared by both roots, read-only in both, count "
                                f"{n}, and its bytes changed after fork's return: a write reached a read-only shared "
                                "frame without a fault: the parent kept a writable translation in its TLB (fork took "
                                "write permission from the parent's entries but did not flush the parent's TLB)")
        elif cf == shared and pf != shared and not cw and later.digests.get(shared) != before:
            problems.append(f"after the parent's write fault on page {va:#x} gave it frame {pf:#x}, the frame it "
                            f"copied from, {shared:#x}, which the child still maps read-only, no longer holds its "
                            "bytes: the copy-on-write fault wrote the shared frame (copied the wrong way round, or "
                            "wrote before remapping) instead of the copy")
        elif pf == shared and cf != shared and not pw and later.digests.get(shared) != before:
            problems.append(f"after the child's write fault on page {va:#x} gave it frame {cf:#x}, the frame it "
                            f"copied from, {shared:#x}, which the parent still maps read-only, no longer holds its "
                            "bytes: the copy-on-write fault wrote the shared frame instead of the copy")
        if len(problems) >= 4:
            break
    return problems


def wider_than_record(snap, kernel, root, who):
    """The first page @p root maps writable though its region in the process's record (VMA list,
    guest RAM) is read-only, as a sentence naming fork's copy (@p who: "the child"), or None: a
    copy, eager or shared, never has more permission than the region it lies in."""
    pid, _ = pid_of(snap, kernel, root)
    proc = processes(snap, kernel, records_of=pid).get(pid) if pid is not None else None
    if proc is None or not proc.vmas:
        return None
    for va, (_, writable) in sorted(Pages.of(snap, root).items()):
        region = next((v for v in proc.vmas if v.start <= va < v.end), None) if writable else None
        if region is not None and not region.write:
            return (f"page {va:#x} is mapped writable in {who}'s root (pid {pid}), but its region {region} is "
                    "read-only (its record, read from guest RAM): fork mapped the copy with more permission than the "
                    "parent's page: a copy keeps the parent's permissions (a copy-on-write share takes write away)")
    return None


def stalled_waits(snap, kernel):
    """At a stop where nothing is ready to run (the idle loop): a process that waits while one of
    its children has already ended, as a sentence (pagoda_pt.procaudit.stalled_wait: fault-why's
    rule, worded once), or None."""
    return stalled_wait(list(processes(snap, kernel, records_of=-1).values()))


def _address_or_none(kernel, name):
    try:
        return symbols.address_of(kernel, name)
    except (AssertionError, OSError):
        return None
