"""The process audit: the invariants a fork, exit or scheduling bug breaks, read from guest RAM at
the grader's stops, so that a failing test of labs 3 and 6 names the broken record (a process
left Running, a child with no parent, a child's frame not its parent's) before its symptom ("the
child never ran", "missing: a line", a timeout).

    ProcessAudit(kernel, arch, findings)     a stop hook (Guest.stop_hooks): at the stops where
                                             the kernel's records are consistent, audit_table()
    audit_table(...)                         exactly one Running process, the one the CPU runs;
                                             every parent exists; one kernel-stack slot, one root
                                             and (AArch64) one ASID per live process
    fork_frame_problem(...)                  at fork's return: the child's saved user frame is
                                             its parent's, but for the result register, which is 0
    fork_parent_problem(...)                 the child's parent is the process that forked it
    fork_result_problem(result, who)         fork's error, read in the parent's result register

Findings go into a list the boot's Booter keeps (Booter.audit_findings); Run.fail() puts the
first one before a failing test's own reason (causes.audit_first()). A finding never fails a
test by itself: it names why the test failed.

The layouts are the kernel's facts (process_*: kernel/proc/process.cpp; user_frame_*: each
ISA's user_mode.cpp), the current process the scheduler's g_current, read from guest RAM.
"""
import os
import re

from pagoda_pt.procaudit import audit_table, trap_stack_problem  # noqa: F401
from pagoda_pt.procs import NO_SLOT, RECORD_FACTS, Layout, _u, read_current, read_procs  # noqa: F401

from pagoda_pt import contract
from . import programs, symbols
from .witness import ARCHES


class Facts(Layout):
    """The kernel's facts the audit reads, once per kernel (None: a kernel that exports no
    process table facts, such as one of lab 2, is not audited); pagoda_pt.procs.Layout read
    from the kernel ELF."""
    _cache = {}

    def __init__(self, kernel):
        table_va = symbols.address_of(kernel, contract.PROCESS_TABLE)
        super().__init__(lambda name: symbols.fact(kernel, name), table_va, symbols.physical_of(kernel, table_va),
                         symbols.physical_of(kernel, symbols.address_of(kernel, contract.CURRENT)))

    @classmethod
    def with_records(cls, kernel):
        """Facts.of(@p kernel) for a reader of records (lab 5 on): AssertionError naming the first
        fact of the table or of a record that the kernel (or the instructor's facts) lacks or
        defines wrongly, where Facts.of() would read no record."""
        facts = cls.of(kernel)
        if facts is None:
            cls(kernel)
        if facts is None or facts.record is None:
            for name in RECORD_FACTS:
                symbols.fact(kernel, name)
        return facts

    @classmethod
    def of(cls, kernel):
        if kernel not in cls._cache:
            try:
                cls._cache[kernel] = cls(kernel)
            except (AssertionError, OSError):
                cls._cache[kernel] = None
        return cls._cache[kernel]


class ProcessAudit:
    """A stop hook (Guest.stop_hooks): at each stop where the scheduler's records are consistent
    (a system call's entry, a context switch, a timer tick, a process's end, the idle loop, a
    checkpoint), audit_table() over guest RAM; the first finding of a kind is appended to
    @p findings (Booter.audit_findings), once. @p roots_of(snap) -> {pid: root}."""

    QUIET = ("syscall_entry", "switch")

    def __init__(self, kernel, arch, findings, roots_of=None):
        self.kernel = kernel
        self.arch = arch
        self.facts = Facts.of(kernel)
        self.findings = findings
        self.roots_of = roots_of
        self.found = None
        self.trap_stacks = []   # (what, physical address of the value)
        for what, symbol, offset in ARCHES[arch].proc.get("user_trap_stacks", ()):
            try:
                va = symbols.address_of(kernel, symbol) + (symbols.fact(kernel, offset) if offset else 0)
                self.trap_stacks.append((what, symbols.physical_of(kernel, va)))
            except (AssertionError, OSError):
                pass
        self.asids = {}     # (pid, root) -> ASID (AArch64: TTBR0_EL1's top 16 bits at a stop in that root)
        self.where = {}
        proc = ARCHES[arch].proc
        for name, label in ((proc["syscall_entry"], "at a system call's entry"),
                            (proc["switch"], "at a context switch (switch_context)"),
                            (contract.TIMER_TICK, "at a timer tick"),
                            (contract.EXIT, "as a process ends (exit_current)"),
                            (contract.IDLE, "in the idle loop"),
                            (contract.CHECKPOINT, "at a checkpoint of the run")):
            try:
                self.where[symbols.address_of(kernel, name)] = label
            except (AssertionError, OSError):
                pass
        # Where the CPU's stack for traps from user mode must be the current process's: at a system
        # call's entry and at a context switch to a process (the switch sets it before the root).
        self.trap_stops = {a for a, label in self.where.items() if label.startswith(("at a system", "at a context"))}

    def note(self, finding):
        if finding and finding not in self.findings:
            self.findings.append(finding)

    def __call__(self, snap):
        where = self.where.get(snap.pc)
        if self.facts is None or where is None:
            return
        try:
            recs = read_procs(snap.read_phys, self.facts)
            current, pointer = read_current(snap.read_phys, self.facts, recs)
            roots = self.roots_of(snap) if self.roots_of else None
        except (AssertionError, ValueError, OSError):
            return
        ttbr0 = snap.registers.get("ttbr0_el1")
        if ttbr0 is not None and current is not None and roots and roots.get(current.pid) == snap.lower_root:
            self.asids[(current.pid, snap.lower_root)] = ttbr0 >> 48
        if self.found:
            return   # (the first broken invariant is the cause; the rest follow from it)
        self.found = audit_table(self.facts, recs, current, pointer, where, roots,
                                 self.asids if ttbr0 is not None else None)
        if not self.found and snap.pc in self.trap_stops:
            values = [(what, _u(snap.read_phys(pa, 8), 0, 8)) for what, pa in self.trap_stacks]
            self.found = trap_stack_problem(self.facts, recs, current, where, values)
        self.note(self.found)

    def table(self, snap):
        """[Proc] of the process table now (guest RAM)."""
        return read_procs(snap.read_phys, self.facts)


# ---- one fork -----------------------------------------------------------------------------------

def read_frame(read_virt, facts, kslot):
    """The saved user frame at the top of kernel-stack slot @p kslot (bytes)."""
    top = facts.stack_top(kslot)
    return read_virt(top - facts.frame_size, facts.frame_size)


def fork_frame_problem(facts, parent, child, parent_frame, child_frame):
    """None, or why @p child's saved user frame (@p child_frame: the top of its kernel stack,
    read at fork_process's return, before it ran) is not @p parent's system-call frame
    (@p parent_frame) with the result register 0: the PC, the stack pointer, the flags and every
    other register must be the parent's, so that the child returns from the same call."""
    size = facts.frame_size
    words = [(i, _u(parent_frame, i, 8), _u(child_frame, i, 8)) for i in range(0, size, 8)]
    named = {facts.frame_pc: "PC", facts.frame_sp: "SP", facts.frame_flags: "the flags (RFLAGS, SPSR)",
             facts.frame_result: "the result register"}
    differ = [(i, p, c) for i, p, c in words if i != facts.frame_result and p != c]
    result = _u(child_frame, facts.frame_result, 8)
    head = (f"the child {child.who}'s saved user frame (the top of its kernel stack, slot {child.kslot}, read from guest "
            f"RAM at fork's return, before it ran)")
    if differ:
        shown = []
        for i, p, c in sorted(differ, key=lambda d: (d[0] not in named, d[0]))[:3]:
            shown.append(f"{named.get(i, f'the word at offset {i:#x}')} {c:#x} where the parent's is {p:#x}")
        zeros = not any(child_frame)
        return (f"{head} is not its parent {parent.who}'s system-call frame: {len(differ)} of its {size // 8} words "
                f"differ ({'; '.join(shown)}){': it is all zeros' if zeros else ''}: fork must copy the frame the "
                "parent's system call saved at the top of the parent's kernel stack into the child's (the wrong stack "
                "copied, or none), changing only the result register to 0, so that the child returns from the same "
                "call")
    if result != 0:
        return (f"{head} is its parent {parent.who}'s system-call frame, but its result register holds {result:#x}, "
                "not 0: fork returns 0 in the child (and the child's pid in the parent)")
    return None


def fork_parent_problem(parent, child):
    """None, or why the new child @p child (a Proc read at fork's return) does not belong to
    @p parent, the process that forked it."""
    if child.parent == parent.pid:
        return None
    whose = "no process (the kernel's)" if child.parent == 0 else f"pid {child.parent}"
    return (f"the child {child.who}, just forked by {parent.who}, has parent pid {child.parent} in the process table "
            f"(guest RAM) at fork's return, not {parent.pid}: it belongs to {whose}, so its parent's wait finds no such "
            "child (fork must record the caller as the child's parent)")


ERRNO_NAMES = {1: "EPERM", 2: "ENOENT", 3: "ESRCH", 7: "E2BIG", 8: "ENOEXEC", 9: "EBADF", 10: "ECHILD", 11: "EAGAIN",
               12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 17: "EEXIST", 22: "EINVAL", 36: "ENAMETOOLONG", 38: "ENOSYS"}

FORK_ERRORS = {
    "EEXIST": ("the copy of the parent's pages met a page the child already maps: fork's walk visited a page twice "
               "(a run taken past its region's end into the next region, or a page copied in two regions)"),
    "ENOMEM": ("fork ran out of frames: a copy that takes more than the parent maps (pages copied twice, or frames "
               "leaked by an earlier fork or exit)"),
    "EAGAIN": ("the process table or the kernel-stack slots were full: slots of processes that ended were never "
               "given back"),
    "EFAULT": "fork read a user pointer it should not have (fork takes none)",
    "EINVAL": "the copy refused an argument (an unaligned or empty range: a region's bounds taken wrongly)",
}


def errno_name(result):
    return ERRNO_NAMES.get(-result, f"error {-result}")


def fork_result_problem(result, who):
    """None, or the sentence for fork's result @p result (signed, read in the parent's result
    register where the call returned to user mode) when it is an error, with what that error
    means for a fork."""
    if result >= 0 or result < -4095:
        return None
    name = errno_name(result)
    why = FORK_ERRORS.get(name, "fork must make a child when memory and slots allow")
    return (f"fork returned {result} ({name}) to {who} (its result register where the call returned to user mode, "
            f"read by the grader), so no child was made: {why}")


def current_frame(snap, kernel):
    """The saved user frame of the process the CPU runs (the top of its kernel stack), or None:
    read at fork_process's entry, the parent's system-call frame as the call left user mode."""
    facts = Facts.of(kernel)
    if facts is None:
        return None
    try:
        recs = read_procs(snap.read_phys, facts)
        current, _ = read_current(snap.read_phys, facts, recs)
        if current is None or current.kslot == NO_SLOT:
            return None
        return read_frame(snap.read_virt, facts, current.kslot)
    except (AssertionError, ValueError):
        return None


def parent_frame_problem(facts, parent, before, after):
    """None, or why fork changed its parent's saved system-call frame (@p before: at
    fork_process's entry; @p after: at its return), which only the call's result may change,
    after fork returns."""
    differ = [i for i in range(0, facts.frame_size, 8) if _u(before, i, 8) != _u(after, i, 8)]
    if not differ:
        return None
    pc = facts.frame_pc
    return (f"fork_process() wrote its parent {parent.who}'s saved system-call frame (the top of its kernel stack, read "
            f"from guest RAM at fork's entry and at its return): {len(differ)} of its {facts.frame_size // 8} words "
            f"changed (PC {_u(after, pc, 8):#x}, was {_u(before, pc, 8):#x}): the frame was copied the wrong way, into "
            "the parent's stack instead of from it (prepare_fork_return(child's top, parent's top))")


def fork_findings(snap, kernel, child_pids, parent_before=None):
    """At fork_process's return to the parent's system call (@p snap, the parent still current),
    before the child ran: the problems of each new child (@p child_pids, the pids that were not
    in the table at fork's entry): the parent's frame changed (@p parent_before: it at fork's
    entry, current_frame()), the child's parent, and its saved user frame against the parent's."""
    facts = Facts.of(kernel)
    if facts is None:
        return []
    try:
        recs = read_procs(snap.read_phys, facts)
        parent, _ = read_current(snap.read_phys, facts, recs)
    except (AssertionError, ValueError):
        return []
    if parent is None:
        return []
    out = []
    for child in (r for r in recs if r.pid in child_pids):
        out.append(fork_parent_problem(parent, child))
        if child.kslot != NO_SLOT and parent.kslot != NO_SLOT:
            try:
                frames = (read_frame(snap.read_virt, facts, parent.kslot), read_frame(snap.read_virt, facts, child.kslot))
            except (AssertionError, ValueError):
                continue
            if parent_before is not None:
                out.insert(0, parent_frame_problem(facts, parent, parent_before, frames[0]))
                frames = (parent_before, frames[1])
            out.append(fork_frame_problem(facts, parent, child, *frames))
    return [p for p in out if p]


# ---- a kernel function's Error, read at its return ----------------------------------------------

def error_codes():
    """[(code, words)] of the kernel's ErrorCode enum in order (the grader's kernel/lib/result.hpp,
    read, not copied): ("AlreadyExists", "already exists"), ..."""
    path = os.path.join(os.path.dirname(programs.abi_header()), "result.hpp")
    with open(path) as f:
        text = f.read()
    block = re.search(r"enum class ErrorCode : \w+ \{(.*?)\};", text, re.S)[1]
    words = dict(re.findall(r'case ErrorCode::(\w+): return "([^"]*)";', text))
    return [(c, words.get(c, c)) for c in re.findall(r"^\s*(\w+),", block, re.M)]


def result_address(snap):
    """At the entry of a kernel function that returns a Result too big for registers: where it
    will write it (x86_64: the hidden first argument; AArch64: X8)."""
    return snap.argument(0) if ARCHES[snap.arch].result_pointer_argument else snap.register("x8")


def _string(read_virt, va, most=160):
    out = b""
    while len(out) < most:
        try:
            chunk = read_virt(va + len(out), 16)
        except (AssertionError, ValueError):
            break
        out += chunk
        if b"\0" in chunk:
            break
    return out.split(b"\0", 1)[0].decode(errors="replace")


def read_error(snap, kernel, address):
    """None when the Result<pointer> at kernel address @p address holds a value; else
    (code, words, "file:line", message) of its Error, read from guest RAM."""
    f = lambda name: symbols.fact(kernel, name)  # noqa: E731
    try:
        raw = snap.read_virt(address, f("result_pointer_ok") + 1)
    except (AssertionError, ValueError):
        return None   # (not where a Result can be: nothing to say)
    if raw[f("result_pointer_ok")]:
        return None
    codes = error_codes()
    number = raw[f("error_code")]
    code, words = codes[number] if number < len(codes) else (f"code {number}", f"error code {number}")
    file, line, message = _u(raw, f("error_file"), 8), _u(raw, f("error_line"), 4), _u(raw, f("error_message"), 8)
    where = f"{_string(snap.read_virt, file)}:{line}" if file else "?"
    return code, words, where, _string(snap.read_virt, message) if message else ""


FORK_KERNEL_ERRORS = {
    "AlreadyExists": FORK_ERRORS["EEXIST"],
    "NoMemory": FORK_ERRORS["ENOMEM"],
    "Overflow": FORK_ERRORS["EAGAIN"],
    "InvalidArgument": FORK_ERRORS["EINVAL"],
}


def fork_error_problem(error, who):
    """The sentence for fork_process()'s Error @p error (read_error()) in the fork of @p who."""
    if error is None:
        return None
    code, words, where, message = error
    # The kernel's own sentence, when the Error has one, says what went wrong; the code alone is
    # read as what it means for a fork.
    why = "" if message else ": " + FORK_KERNEL_ERRORS.get(code, "fork must make a child when memory and slots allow")
    said = f": {message}" if message else ""
    return (f"fork_process() failed for {who} with '{words}'{said} (the Error made at {where}, read from its Result "
            f"in guest RAM where it returned to the fork system call), so no child was made{why}")


# ---- a loader that failed ------------------------------------------------------------------------

LOADER = contract.LOAD_PROGRAM


def loader_error_problem(error, name, top, arguments_page_bytes):
    """None, or the sentence for load_program()'s Error @p error (read_error()) while it loaded
    @p name, with what the grader read in the new root at its return: @p arguments_page_bytes,
    the bytes of the stack's top page (@p top - one page: where the loader writes the
    arguments, the last thing it maps), or None when that page is not mapped. An 'already
    exists' with the arguments' page mapped and no argument in it: the page was mapped before
    the loader came to write the arguments, by a range that runs one page too far."""
    if error is None or error[0] != "AlreadyExists":
        return None
    code, words, where, message = error
    said = f"load_program() failed for {name} with '{words}'{': ' + message if message else ''} (the Error made at " \
           f"{where}, read from its Result in guest RAM at its return): a page it maps was already mapped"
    page = top - len(arguments_page_bytes) if arguments_page_bytes is not None else None
    if arguments_page_bytes is not None and not any(arguments_page_bytes):
        return (f"{said}: the argument page {page:#x} (the stack's top page, which the loader maps last to write the "
                "arguments in) was already mapped, and holds no argument (zeros, in the new root at the loader's "
                "return): another of the loader's ranges covered it first (the stack's pages are the ones below the "
                "top page: a loop that runs to the top page inclusive maps it twice)")
    return f"{said} (two of the loader's ranges cover one page: a loop that runs a page past its range's end)"
