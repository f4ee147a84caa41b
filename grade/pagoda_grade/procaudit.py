"""The process audit: the invariants a fork, exit or scheduling bug breaks, read from guest RAM at
the grader's stops, so that a failing test of labs 3 and 6 names the broken record (a process
left Running, a child with no parent, a child's frame not its parent's) before its symptom ("the
child never ran", "missing: a line", a timeout).

    ProcessAudit(kernel, arch, findings)     a stop hook (Guest.stop_hooks): at the stops where
                                             the kernel's records are consistent, audit_table()
    audit_table(...)                         exactly one Running process, the one the CPU runs;
                                             every parent exists; one kernel-stack slot, one root
                                             and (AArch64) one ASID per live process
    read_error(snap, kernel, address)        a kernel function's Error, read at its return
    (forks.py: fork_findings, fork_result_problem, fork_error_problem: one fork, lab 6's)

Findings go into a list the boot's Booter keeps (Booter.audit_findings); Run.fail() puts the
first one before a failing test's own reason (causes.audit_first()). A finding never fails a
test by itself: it names why the test failed.

The layouts are the kernel's facts (process_*: kernel/proc/process.cpp; user_frame_*: each
ISA's user_mode.cpp), the current process the scheduler's g_current, read from guest RAM.
"""
import os
import re

from pagoda_pt.procaudit import audit_table, trap_stack_problem  # noqa: F401
from pagoda_pt.procs import RECORD_FACTS, Layout, _u, read_current, read_procs  # noqa: F401

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
    @p findings (Booter.audit_findings), once. @p roots_of(snap) -> {pid: root}. At a system
    call's entry, a live root the registry does not list for the current process goes to
    @p watched (Booter.watch_problems: the test's own checks explain first), once."""

    QUIET = ("syscall_entry", "switch")
    ENTRY = "at a system call's entry"

    def __init__(self, kernel, arch, findings, roots_of=None, watched=None):
        self.kernel = kernel
        self.watched = watched   # (Booter.watch_problems: where an unlisted root goes, unlisted_root())
        self.unlisted = None
        self.arch = arch
        self.facts = Facts.of(kernel)
        self.findings = findings
        self.roots_of = roots_of
        self.found = None
        self.asids = {}     # (pid, root) -> ASID (AArch64: TTBR0_EL1's top 16 bits at a stop in that root)
        self.where = {}
        proc = ARCHES[arch].proc
        for name, label in ((proc["syscall_entry"], self.ENTRY),
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
            self.found = trap_stack_problem(self.facts, recs, current, where, snap.guest.user_trap_stacks(snap))
        self.note(self.found)
        if self.watched is not None and roots is not None and where == self.ENTRY and not (self.found or self.unlisted):
            self.unlisted = unlisted_root(current, roots, snap.lower_root, where)
            if self.unlisted:
                self.watched.append(self.unlisted)

    def table(self, snap):
        """[Proc] of the process table now (guest RAM)."""
        return read_procs(snap.read_phys, self.facts)


def unlisted_root(current, roots, live, where):
    """The sentence when the root the CPU runs @p current with (@p live: its root register, read at
    a system call's entry @p where) is not the one the kernel's root registry (@p roots: {pid: root})
    lists for it: the grader walks the roots the registry lists, so a root it does not list is one
    no check of the grader's reaches. None when it is, or when no process is current."""
    if current is None or roots.get(current.pid) == live:
        return None
    listed = roots.get(current.pid)
    said = f"root {listed:#x} for it" if listed is not None else "no process root for it"
    return (f"the CPU runs root {live:#x} for {current.who} {where}, but the kernel's root registry "
            f"(pagoda_debug_roots, guest RAM) lists {said}: every process's root must be published as a process's "
            "(AddressSpace::create_user), or the grader's "
            "walks of every root never see the one the process runs in")


ERRNO_NAMES = {1: "EPERM", 2: "ENOENT", 3: "ESRCH", 7: "E2BIG", 8: "ENOEXEC", 9: "EBADF", 10: "ECHILD", 11: "EAGAIN",
               12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 17: "EEXIST", 22: "EINVAL", 36: "ENAMETOOLONG", 38: "ENOSYS"}


def errno_name(result):
    return ERRNO_NAMES.get(-result, f"error {-result}")


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
