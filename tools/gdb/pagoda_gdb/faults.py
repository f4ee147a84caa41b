"""fault-why: explain the exception the kernel is handling, or why the machine died.

One call is one look at the stopped machine, in three steps:

  1. Look      gathers the evidence, each structure read at most once and only when a rule asks
               for it: the paging registers, QEMU's exception log (parsed once), the kernel's ELF
               (its names, its load segments), the published roots, the process table with its
               records, the frame census, the swap census and slot map, the fix-up table, the
               stack layout, GDB's stack;
  2. the ISA   faults_<isa>.py reads the trap frame (or the CPU as it is) and gives the CPU's
               lines and first verdict (its pure rules in pagoda_pt/diagnose_<isa>.py); a fault
               from user mode is then judged against the process's record (user_decision);
  3. RULES     ranked: each takes the Look and the verdict so far and returns a sentence (or a
               Finding with lines of its own) or None; the first that may overrule the verdict
               it meets and speaks becomes the verdict, the old one kept on the line above.
               judge() is the one loop that applies them and formats the lines.

The rules' sentences are pagoda_pt's (diagnose.py, verdicts.py, frames.py, swap.py, procaudit.py),
the grader's words where it names the same cause. The output always ends with a verdict line,
"nothing is wrong that I can see" included.
"""

import importlib
import os
import re
from dataclasses import dataclass, field

from pagoda_pt import contract as C
from pagoda_pt.diagnose import (MARK_STOP, MARK_WHY, MARK_WRONG, NOTHING_WRONG, UNRESOLVED, fixup_reports_success,
                                program_s_own)
from pagoda_pt.isa import isa
from pagoda_pt.kernelnames import NO_NAMES, KernelNames
from pagoda_pt.model import PAGE_SIZE_4K as PAGE
from pagoda_pt.procs import NO_SLOT

from . import session, target
from .args import parse
from .registry import CommandError, PagodaCommand, command, out


# A storming kernel writes QEMU's log at ~100 MB/s: only its two ends are read.
LOG_READ_WHOLE = 8 << 20
LOG_READ_END = 4 << 20
NO_LOG_HINT = ("./pagoda gdb --int-log keeps QEMU's exception log, from which fault-why tells "
               "how the machine got here")


MAX_TRAP_SEARCH = 64      # frames searched for the trap handler before giving up
MASK64 = (1 << 64) - 1


def find_trap_frame(trap_function, stack_register):
    """(gdb frame level, trap frame address) of the innermost @p trap_function, or None.

    Both ISAs' entry code passes the stack pointer itself as the handler's `frame` argument;
    when the compiler dropped that argument, the caller's @p stack_register is the same value."""
    import gdb  # only inside GDB; this module is also imported by host tests
    try:
        found = next(((level, f) for level, f in enumerate(_frames()) if f.name() == trap_function), None)
    except gdb.error:
        return None
    return None if found is None else (found[0], _trap_frame_address(found[1], trap_function, stack_register))


def read_trap_frame(addr, type_name, offsets):
    """{field: value} of the trap frame of type @p type_name at @p addr (virtual), for each field of
    @p offsets ({name: byte offset}, used only without debug types)."""
    import gdb
    try:
        value = gdb.Value(addr).cast(gdb.lookup_type(type_name).pointer()).dereference()
        return {name: int(value[name]) & MASK64 for name in offsets}
    except gdb.error:
        inferior = gdb.selected_inferior()
        return {name: int.from_bytes(bytes(inferior.read_memory(addr + at, 8)), "little")
                for name, at in offsets.items()}


def _trap_frame_address(frame, trap_function, stack_register):
    import gdb
    try:
        value = frame.read_var("frame")
        if not value.is_optimized_out:
            return int(value) & MASK64
    except (ValueError, gdb.error):
        pass
    caller = frame.older()
    if caller is None:
        raise CommandError(f"{trap_function}'s `frame` argument is optimized out and its caller is unknown")
    return int(caller.read_register(stack_register)) & MASK64


# ---- lab 4: what says a kernel fault was made on a process's behalf -------------------------------


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _syscall_name(number):
    import gdb
    try:
        for member in gdb.lookup_type(C.SYSCALL_NUMBERS).fields():
            if member.enumval == number:
                return _snake(member.name.split("::")[-1])
    except gdb.error:
        pass
    return ""


def _read_once(read):
    """A Look property read on its first use and kept for the rest of the look, a failure too
    (raised again at each use): every rule that asks gets the same reading, and none reads twice."""
    name = read.__name__

    def get(self):
        if name not in self._seen:
            try:
                self._seen[name] = (True, read(self))
            except Exception as err:  # noqa: BLE001 - kept, and raised to each asker
                self._seen[name] = (False, err)
        ok, value = self._seen[name]
        if not ok:
            raise value
        return value
    return property(get, doc=read.__doc__)


@dataclass
class LogRead:
    """QEMU's -d int log as one look read it: parsed (faultlog's ParsedLog), whether only its two
    ends were read (then counts are lower bounds), its size in bytes."""
    parsed: object
    partial: bool
    size: int


class Look:
    """The evidence of one fault-why call: each structure is read when a rule first asks for it
    and never again in this call (_read_once). `fault`: what the ISA's rules gave of a fault from
    user mode (a dict; None for any other stop); `address`: the faulting address the CPU's lines
    show (CR2, FAR), or None."""

    def __init__(self, arch):
        self.arch, self.model = arch, isa(arch)
        self.fault, self.address, self.log_hint = None, None, ""
        self._seen = {}

    @_read_once
    def regs(self):
        """The paging registers (target.paging_regs)."""
        return target.paging_regs(self.arch)

    @_read_once
    def pa_bits(self):
        return target.pa_bits(self.arch)[0]

    @_read_once
    def faultlog(self):
        """tools/pagoda_core/faultlog.py (loaded by path: kernel.core_module)."""
        from . import kernel
        return kernel.core_module("faultlog")

    @_read_once
    def elf(self):
        """The kernel ELF GDB loaded (pagoda_core.elffile), or None."""
        import gdb
        from . import kernel
        path = gdb.current_progspace().filename
        elffile = kernel.core_module("elffile")
        try:
            return elffile.elf(path) if path else None
        except elffile.ElfError:
            return None

    @_read_once
    def names(self):
        """The kernel's tables of names (pagoda_pt.kernelnames), from its ELF; NO_NAMES without one."""
        try:
            return KernelNames.read(self.model, self.elf.names) if self.elf is not None else NO_NAMES
        except Exception:  # noqa: BLE001 - an ELF without the tables: everything by number
            return NO_NAMES

    @_read_once
    def log(self):
        """QEMU's -d int log (LogRead), read once: whole when it is at most LOG_READ_WHOLE bytes, else
        its first and last LOG_READ_END bytes (a storming kernel writes ~100 MB/s: a look must not
        read gigabytes). None, with log_hint saying why, when the session keeps none."""
        path = session.qemu_log_path()
        if not path or not os.path.exists(path):
            self.log_hint = NO_LOG_HINT
            return None
        try:
            size = os.path.getsize(path)
            text = self.faultlog.read_ends(path, LOG_READ_END, LOG_READ_END, "fault-why")
            return LogRead(self.faultlog.parse(text, self.arch, self.names), size > LOG_READ_WHOLE, size)
        except (OSError, ImportError, SyntaxError) as err:
            self.log_hint = "QEMU's log %s cannot be read: %s" % (path, err)
            return None

    @property
    def events(self):
        """Every event QEMU's log shows (exceptions, interrupts, system calls), or None."""
        return self.log.parsed.events if self.log is not None else None

    @_read_once
    def log_line(self):
        """The line both ISAs print of QEMU's log: faultlog's summary (the grade's own wording; a cut
        log says so in it) and its storm, if any; None when the log is missing or shows nothing."""
        if self.log is None:
            return None
        summary, storm = self.log.parsed.summary(), self.log.parsed.storm()
        if storm is not None:
            summary = (summary + "; " if summary else "") + storm.describe()
        return "QEMU's interrupt log: " + summary if summary else None

    @_read_once
    def write_faults(self):
        """The user writes to read-only pages the log shows (diagnose.user_write_protect_faults), or None."""
        from pagoda_pt.diagnose import user_write_protect_faults
        return None if self.events is None else user_write_protect_faults(self.events, self.model)

    @_read_once
    def first_kernel_fault(self):
        """The address of the first exception the log shows the kernel itself taking (not user
        mode), or None: in an exception loop it is what started it."""
        user = self.model.user_privilege
        return next((e.address for e in self.events or () if e.kind == "exception" and e.address is not None
                     and e.privilege != user), None)

    @_read_once
    def roots(self):
        """(RootTable or None, note) of the roots the kernel published."""
        from . import kernel
        with target.physical_memory() as read_phys:
            return kernel.published_roots(read_phys)

    @_read_once
    def rows(self):
        """The process table with each record ([pagoda_pt.procs.Proc]); CommandError without one."""
        from . import kernel
        return kernel.read_processes()

    @_read_once
    def census(self):
        """Every frame's owner (pagoda_pt.frames.take_census); noted for the run's end."""
        from pagoda_pt.frames import take_census
        from . import kernel
        with target.physical_memory() as read_phys:
            census = take_census(self.arch, read_phys, kernel.symbol_address, self.regs, self.pa_bits)
        _note_census(census)
        return census

    @_read_once
    def swap_census(self):
        """The swap census over the processes in the table (memory.swap_census); None while swap is off."""
        from . import memory
        with target.physical_memory() as read_phys:
            return memory.swap_census(self.arch, read_phys, {r.pid for r in self.rows}, self.roots)

    @_read_once
    def fixups(self):
        """{faulting instruction: resume address} of the kernel's fix-up table (section
        pagoda_user_fixups, read at its physical address: the image's link map, no walk), {} when
        the section is empty, None when the kernel has none or it cannot be read."""
        from . import kernel
        start, stop = (kernel.symbol_address(n) for n in C.USER_FIXUPS)
        pa = kernel.image_phys(start) if start is not None and stop is not None and stop >= start else None
        if pa is None:
            return None
        try:
            with target.physical_memory() as read_phys:
                raw = bytes(read_phys(pa, stop - start)) if stop > start else b""
        except Exception:  # noqa: BLE001 - no table is a fact too, never a failure of fault-why
            return None
        words = [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw) // 16 * 16, 8)]
        return dict(zip(words[0::2], words[1::2]))

    @_read_once
    def user_end(self):
        """The first address past the user half (the kernel's fact), or None."""
        from . import kernel
        return kernel.symbol_address(C.fact_symbol("user_end"))

    @_read_once
    def stacks(self):
        """The kernel stacks' layout (pagoda_pt.verdicts.StackSlots) from the kernel's facts
        (absolute symbols whose value is the constant) and boot.S's labels of boot_stack, or None."""
        from pagoda_pt.verdicts import StackSlots
        from . import kernel
        names = ("stack_base", "kernel_stack_stride", "kernel_stack_guard", "kernel_stack_size", "kernel_stack_slots")
        values = [kernel.symbol_address(C.fact_symbol(name)) for name in names]
        boot = tuple(kernel.symbol_address(n) for n in (C.BOOT_STACK_GUARD,) + C.BOOT_STACK)
        return None if None in values else StackSlots(*values, boot_guard=None if None in boot else boot)

    @_read_once
    def syscall(self):
        """pagoda_pt.diagnose.SyscallAt for the system call on GDB's stack (the `call` argument of
        pagoda::proc::syscall), or None: no system call is being run, or its argument is optimized out."""
        import gdb
        from pagoda_pt.diagnose import SyscallAt
        try:
            frame = next((f for f in _frames() if f.name() == C.DISPATCHER), None)
            if frame is None:
                return None
            call = frame.read_var("call")
            if call.type.code == gdb.TYPE_CODE_REF:
                call = call.referenced_value()
            number = int(call["number"]) & MASK64
            return SyscallAt(number, tuple(int(call["args"][i]) & MASK64 for i in range(6)), _syscall_name(number))
        except (gdb.error, ValueError, RuntimeError):
            return None

    @_read_once
    def frame_names(self):
        """The function names of GDB's frames, the newest first (at most MAX_TRAP_SEARCH)."""
        return [f.name() or "" for f in _frames()]

    def kept(self, name):
        """What property @p name read, when this look already read it (and could), else None."""
        ok, value = self._seen.get(name, (False, None))
        return value if ok else None

    def stopped_in(self, names, most=MAX_TRAP_SEARCH):
        """Whether one of GDB's newest @p most frames is in a function whose name starts with one of @p names."""
        try:
            return any(n.startswith(names) for n in self.frame_names[:most])
        except Exception:  # noqa: BLE001 - no stack to read: not there
            return False

    @property
    def killing(self):
        """Whether GDB's stack is in the kernel's kill path (C.USER_FAULT, which never returns: the
        process is being ended for this fault)."""
        return self.stopped_in(C.USER_FAULT)

    @property
    def user_fault(self):
        return bool(self.fault) and bool(self.fault.get("user"))


FAULT_ADDRESS = re.compile(r"^\s*FAR\s+(0x[0-9a-f]+)")      # AArch64's trap-frame line
WALK_OF_CR2 = re.compile(r"^walk of CR2\b")                   # x86_64: the walk's own VA line follows
WALK_VA = re.compile(r"^VA (0x[0-9a-f]+)\b")


def _fault_address(lines):
    for i, line in enumerate(lines):
        m = FAULT_ADDRESS.match(line)
        if m:
            return int(m.group(1), 16)
        if WALK_OF_CR2.match(line) and i + 1 < len(lines):
            m = WALK_VA.match(lines[i + 1].split("\n")[0])
            if m:
                return int(m.group(1), 16)
    return None


def last_panic():
    """The message of the kernel's last PANIC line in the session's serial log, or None."""
    path = session.serial_log_path()
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    found = [line.split("PANIC: ", 1)[1].strip() for line in text.splitlines() if "PANIC: " in line]
    return found[-1] if found else None


# The user-fault decisions the kernel answers (the program goes on): a panic while answering one is the kernel's.


def _panic(look, verdict):
    """A machine stopped in a panic that no fault explains (the kernel's own check refused
    something: the pre-switch check, an allocator's double free, the user-trap stack), or that came
    while the kernel answered a user fault the program was entitled to (lab 7: the swapper's own
    checks): the verdict is the kernel's reason, as its PANIC line gave it, not "nothing is wrong"
    nor the fault's answer. With swap on, what the swap state shows beside it (_swap_story, read
    even inside the swapper: the records may be mid-change) is a line above the verdict."""
    if not _quiet(lambda: any(n in (C.PANIC_END, C.PANIC) for n in look.frame_names[:8])):
        return None     # (not in a panic we can see)
    message = last_panic()
    if not message:
        return None
    if verdict.startswith(NOTHING_WRONG):
        why = ["the kernel panicked: no exception explains it, so it is the kernel's own check that refused (its "
               "message is the cause)"]
    else:
        why = ["the fault itself: " + verdict,
               "the kernel panicked while it answered that fault, which the program was entitled to: its own check "
               "refused (its message is the cause)"]
    swap = _quiet(_swap_story, look, True)
    if swap:
        why.append("the swap state at the panic (read inside the swapper: its records may be mid-change): " + swap)
    return Finding("the kernel panicked: " + message, why)


def _label(pid, name):
    return "proc %d (%s)" % (pid, name)


def _kill_cause(look, verdict):
    """Stopped in the kill path (the fault came from user mode, so the kernel's records are
    consistent and the current process is who ran there), these causes come before the fault,
    the first that applies: the live root is another process's (pagoda_pt.diagnose.foreign_root);
    the swap state's first slip (_swap_story); a user page maps a frame the allocator has freed or
    given out again (pagoda_pt.frames.mapped_frame_story, from the census); two roots share a frame
    one of them may write (pagoda_pt.diagnose.shared_writable: the copy-on-write fault, or fork,
    left it writable; QEMU's log tells which); a forked child holds nothing of its parent's user
    half (pagoda_pt.diagnose.fork_copied_nothing); a page writable and executable; the record
    against the pages; regions merged against their permissions."""
    from pagoda_pt.diagnose import fork_copied_nothing, foreign_root
    from pagoda_pt.frames import mapped_frame_story
    from .paging import active_root
    rows = look.rows
    current = next((r for r in rows if r.current), None)
    if current is None:
        return None
    if target.paging_off_reason(look.arch, look.regs) is None:
        live = active_root(look.arch, look.regs)
        table = look.roots[0]
        known = table.find(live) if table is not None else None
        if known is not None and known.kind == "process" and known.id != current.pid:
            owner = "proc %d" % known.id
            if known.name and known.name != owner:
                owner = _label(known.id, known.name)
            return foreign_root(_label(current.pid, current.name), owner, live)
    census = look.census
    story = _quiet(_swap_story, look) or mapped_frame_story(census) or _shared_writable(look, census, rows)
    parent = next((r for r in rows if r.pid == current.parent), None)
    pages = {m.pid: m.pages for m in census.processes}
    if story is None and parent is not None and current.pid in pages and parent.pid in pages:
        story = fork_copied_nothing(current, parent, pages[current.pid], pages[parent.pid])
    if story is None:
        story = _wx_story(census, rows)
    if story is None:
        story = _record_story([current], census)
    if story is None:
        story = _quiet(_merge_story, look, [current])
    return story


def _record_story(rows, census):
    """The first process of @p rows whose record (its VMAs) the pages its root maps contradict
    (pagoda_pt.diagnose.record_against_pages: regions of different permissions merged, a hole cut
    a page off), or None."""
    from pagoda_pt.diagnose import record_against_pages
    pages = {m.pid: m.pages for m in census.processes}
    for row in rows:
        if row.vmas is not None and row.pid in pages:
            heap = (row.heap_start, row.brk) if row.heap_start is not None else None
            limits = (row.heap_start or 0, row.stack_limit or 0)
            story = record_against_pages(row.vmas, pages[row.pid], _label(row.pid, row.name), heap=heap,
                                         limits=limits)
            if story is not None:
                return story
    return None


def _stopped_in_kernel(look):
    """True when the CPU is stopped on kernel code (its PC past the user half): only then may
    fault-why call a kernel function in the guest (from a user-mode stop the call would run kernel
    code in user mode)."""
    import gdb
    end = look.user_end
    return end is not None and int(gdb.parse_and_eval("$pc")) & MASK64 >= end


def _quiet(rule, *args):
    """@p rule(*args), or None when it fails: one rule that cannot read what it needs must not cost
    fault-why the others."""
    try:
        return rule(*args)
    except Exception:  # noqa: BLE001 - an addition: never lose fault-why's own lines to it
        return None


def _frames(most=MAX_TRAP_SEARCH):
    """GDB's frames, the newest first, at most @p most of them."""
    import gdb
    frame = gdb.newest_frame()
    for _ in range(most):
        if frame is None:
            return
        yield frame
        frame = frame.older()


class _unwinding:
    """GDB's unwindonsignal on while a kernel function is called through GDB (a call that faults
    leaves the stop as it was), then as it was."""

    def __enter__(self):
        import gdb
        self.was = gdb.parameter("unwindonsignal")
        gdb.execute("set unwindonsignal on", to_string=True)

    def __exit__(self, *_):
        import gdb
        gdb.execute("set unwindonsignal %s" % ("on" if self.was else "off"), to_string=True)


def _user_frames_story(look, rows):
    """pagoda_pt.verdicts.user_interrupts_masked on the user frame at the top of each living
    process's kernel stack (read from guest RAM through the frame behind the stack's top page; the
    kernel's user_frame_size and user_frame_flags facts say where its flags are), or None."""
    from pagoda_pt import procs
    from pagoda_pt.verdicts import user_interrupts_masked
    from pagoda_pt.walker import walk
    from . import kernel
    size, flags_at = (kernel.symbol_address(C.fact_symbol(f)) for f in ("user_frame_size", "user_frame_flags"))
    if size is None or flags_at is None or not 0 < size <= PAGE:
        return None
    lay = procs.Layout.of_symbols(kernel.symbol_address)
    if lay is None:
        return None
    rule, arch = look.model.user_irqs_masked, look.arch
    frames = []
    with target.physical_memory() as read_phys:
        for row in rows:
            if row.kslot == procs.NO_SLOT or row.zombie:
                continue
            # (the frame behind the stack's top page, walked through the kernel half: the user frame)
            w = walk(arch, read_phys, None, lay.stack_top(row.kslot) - size, look.regs, pa_bits=look.pa_bits)
            if not w.mapped:
                continue
            flags = int.from_bytes(bytes(read_phys(w.pa + flags_at, 8)), "little")
            frames.append((_label(row.pid, row.name), w.pa, rule(flags)))
    return user_interrupts_masked(frames)


PROGRAM_SYMBOL = re.compile(r"\bpagoda_program_(\w+)_begin\b")


def _program_at(address):
    """The embedded program (cmake/user.cmake's pagoda_program_NAME_begin) whose ELF file @p address
    lies in, or None."""
    import gdb
    try:
        said = gdb.execute("info symbol %#x" % address, to_string=True)
    except gdb.error:
        return None
    m = PROGRAM_SYMBOL.search(said)
    return m.group(1) if m else None


def _exec_record_story(rows):
    """pagoda_pt.diagnose.record_of_another_program for each process with a record: the embedded
    program each image VMA's source points into, against the process's name, or None."""
    from pagoda_pt.diagnose import record_of_another_program
    from . import memory
    for row in rows:
        images = [v for v in row.vmas or [] if v.kind_name == "image" and v.source]
        if not images or _program_begin(row.name) is None:
            continue
        story = record_of_another_program(_label(row.pid, row.name), row.name,
                                          [(memory.describe_vma(v), _program_at(v.source)) for v in images])
        if story is not None:
            return story
    return None


def _program_begin(name):
    """The address of the embedded program called @p name (a process's name), or None."""
    from . import kernel
    return kernel.symbol_address(PROGRAM_BEGIN % name) if re.fullmatch(r"[A-Za-z0-9_]+", name) else None


def _file_tail_story(rows, census):
    """pagoda_pt.diagnose.bytes_past_file_size for each image VMA whose file bytes end inside a page
    that its process's root maps: that page's bytes past the end (guest RAM) against the bytes that
    follow in the program's embedded ELF file (the VMA's source, read at its physical address in
    the kernel image), or None."""
    from pagoda_pt.diagnose import TAIL_COMPARED, bytes_past_file_size
    from . import kernel, memory
    pages = {m.pid: {p.va: p for p in m.pages if not p.held} for m in census.processes}
    with target.physical_memory() as read_phys:
        for row in rows:
            for v in row.vmas or []:
                size = v.file_size or 0
                end = v.start + size
                if v.kind_name != "image" or not v.source or size % PAGE == 0 or end >= v.end:
                    continue
                page = pages.get(row.pid, {}).get(end & ~(PAGE - 1))
                source = kernel.image_phys(v.source + v.offset + size)
                if page is None or source is None:
                    continue
                n = min(TAIL_COMPARED, PAGE - end % PAGE)
                story = bytes_past_file_size(_label(row.pid, row.name), memory.describe_vma(v), page.va, end,
                                             bytes(read_phys(page.pa + end % PAGE, n)), bytes(read_phys(source, n)))
                if story is not None:
                    return story
    return None


COPY_ROUTINE = re.compile(r"^(\S*_user_copy)(?: \+ \d+)? in section")   # arch/<isa>/user_copy.S's byte copy
PROBE_ADDRESS, PROBE_BYTES = 0x0, 8     # a user address no program maps (the null page)
_probed = {}                            # one probe per session: the answer never changes


def _fixup_story(look):
    """pagoda_pt.diagnose.fixup_reports_success: the kernel's own user copy (the routine of the
    fix-up table's entries that is the byte copy, <isa>_user_copy) called through GDB from the
    null page, which faults and goes on at its fix-up; asked once per session, and only when the
    CPU is stopped in the kernel (the call runs kernel code) and the table has entries. None when
    the copy reports the bytes left, or it cannot be asked."""
    import gdb
    if "story" in _probed:
        return _probed["story"]
    if not _stopped_in_kernel(look):
        return None
    sp = int(gdb.parse_and_eval("$sp")) & MASK64
    table = look.fixups or {}
    routine = None
    for ip in sorted(table):
        m = COPY_ROUTINE.match(gdb.execute("info symbol %#x" % ip, to_string=True).strip())
        if m:
            routine = m.group(1)
            break
    if routine is None or not _first_access_answered(look.model, routine, table):
        return None
    # The call opens user access as a UserAccessScope does (RFLAGS.AC set; PAN clear): with the
    # guard up, the kernel's fault handler and QEMU's log would take the probe for a student's
    # copy made outside a scope (and the grader's copy-guard rule, reading that log, would too).
    with _unwinding(), target.register_bits(*(look.model.user_access_open or (None, 0, 0))):
        # Nothing is stored: the first load faults. The destination is the stack, well below SP.
        left = int(gdb.parse_and_eval("((unsigned long (*)(void*, const void*, unsigned long))%s)((void*)%#x, "
                                      "(const void*)%#x, %d)" % (routine, (sp - 2048) & ~0xF, PROBE_ADDRESS,
                                                                 PROBE_BYTES))) & MASK64
    _probed["story"] = fixup_reports_success(routine, PROBE_BYTES, PROBE_ADDRESS, left)
    return _probed["story"]


SCRATCH_BELOW_SP = 2048     # where the merge probe writes its two VMAs: far below the stopped SP


def _merge_story(look, rows):
    """pagoda_pt.diagnose.merge_ignores_permissions on the first process whose record has a VMA that
    comes from no file (an image VMA's neighbour must continue its file): that VMA's bytes, read from
    guest RAM, and a copy moved to just after it, written below the stack pointer (the same
    permissions, then the write permission flipped), given to the kernel's own VmaSet::mergeable
    through GDB. Only when the CPU is stopped in the kernel. None when it merges as it should, or
    cannot be asked."""
    import gdb
    from pagoda_pt.diagnose import merge_ignores_permissions
    from . import memory
    if not _stopped_in_kernel(look):
        return None
    sp = int(gdb.parse_and_eval("$sp")) & MASK64
    vma_type = gdb.lookup_type(C.VMA)
    size = vma_type.sizeof
    offsets = {f.name: f.bitpos // 8 for f in vma_type.fields()}
    perms_type = vma_type["perms"].type.strip_typedefs()
    write_at = offsets["perms"] + next(f.bitpos // 8 for f in perms_type.fields() if f.name == "write")
    inferior = gdb.selected_inferior()
    for row in rows:
        if row.regions is None:
            continue
        regions = gdb.parse_and_eval("*(%s*)%#x" % (C.USER_REGIONS, row.regions))
        for j, v in enumerate(row.vmas or []):
            if v.kind_name == "image":
                continue
            address = int(regions["vmas"]["data_"][j].address) & MASK64
            left = bytearray(inferior.read_memory(address, size))
            right = bytearray(left)
            right[offsets["start"]:offsets["start"] + 8] = v.end.to_bytes(8, "little")
            right[offsets["end"]:offsets["end"] + 8] = (v.end + PAGE).to_bytes(8, "little")
            a = (sp - SCRATCH_BELOW_SP - 2 * size) & ~0xF
            b = a + ((size + 15) & ~0xF)
            answers = []
            for flip in (False, True):
                if flip:
                    right[write_at] ^= 1
                inferior.write_memory(a, bytes(left))
                inferior.write_memory(b, bytes(right))
                answers.append(bool(gdb.parse_and_eval("%s(*(%s*)%#x, *(%s*)%#x)"
                                                       % (C.VMA_MERGEABLE, C.VMA, a, C.VMA, b))))
            return merge_ignores_permissions(_label(row.pid, row.name), memory.describe_vma(v), *answers)
    return None


def _first_access_answered(model, routine, table):
    """True when the first instruction of @p routine that touches memory (GDB's disassembly, read
    by the ISA) has an entry in the fix-up table @p table: the probe's fault there goes on at its
    fix-up. Without one the kernel would panic inside the call: the probe is not made (the copy's
    missing entry is named when a bad pointer's copy faults)."""
    import gdb
    from . import kernel
    start = kernel.symbol_address(routine)
    if start is None:
        return False
    touches = model.touches_memory
    for insn in gdb.selected_frame().architecture().disassemble(start, count=MAX_PROBE_INSNS):
        if touches(insn["asm"]):
            return insn["addr"] in table
    return False


MAX_PROBE_INSNS = 24


def _grow_story(look, rows):
    """pagoda_pt.diagnose.grows_what_is_not_a_stack on each process's record, the kernel's own
    pagoda::decide_fault called through GDB for a read from user mode (it is pure); only when the
    CPU is stopped in the kernel (a call from a user-mode stop would run kernel code in user mode).
    None when nothing grows that should not, or the decision cannot be asked."""
    import gdb
    from pagoda_pt.diagnose import grows_what_is_not_a_stack
    if not _stopped_in_kernel(look):
        return None
    access = gdb.Value(bytes([0, 0, 1]), gdb.lookup_type(C.ACCESS))
    with _unwinding():
        gdb.set_convenience_variable("pagoda_access", access)
        for row in rows:
            if not row.vmas or row.regions is None:
                continue

            def decide(va, regions=row.regions):
                try:
                    verdict = gdb.parse_and_eval("%s(*(%s*)%#x, %#x, $pagoda_access)"
                                                 % (C.DECIDE_FAULT, C.USER_REGIONS, regions, va))
                    return str(verdict["action"]).rsplit("::", 1)[-1]
                except gdb.error:
                    return None
            story = grows_what_is_not_a_stack(_label(row.pid, row.name), row.vmas, decide)
            if story is not None:
                return story
    return None


def _shared_frames(look, verdict):
    """A machine stopped with nothing wrong in the CPU's state (a breakpoint, such as a process's
    exit, or Ctrl-C) while processes live, the first of: two roots that share a frame one of them
    may write (pagoda_pt.diagnose.shared_writable: each process's writes reach the other's memory,
    which it sees later as data that changed under it); a page writable and executable; a user
    frame that keeps interrupts off (lab 3); image VMAs of another program; the record against the
    pages; an image page's bytes past the file; the kernel's own decide_fault, VmaSet::mergeable and
    user copy asked through GDB; a frame exec kept; a count a child left (lab 6)."""
    from pagoda_pt.frames import count_left_story, exec_kept_story
    rows = look.rows
    if not rows:
        return None
    census = look.census
    sentence = _shared_writable(look, census, rows) if len(rows) >= 2 else None
    return sentence or _wx_story(census, rows) or _quiet(_user_frames_story, look, rows) or \
        _quiet(_exec_record_story, rows) or _record_story(rows, census) or _quiet(_file_tail_story, rows, census) or \
        _quiet(_grow_story, look, rows) or _quiet(_merge_story, look, rows) or _quiet(_fixup_story, look) or \
        exec_kept_story(census, rows) or count_left_story(census)


def _shared_writable(look, census, rows):
    """pagoda_pt.diagnose.shared_writable over the processes of @p census, with their parents and
    VMAs from @p rows and the user writes to read-only pages QEMU's log shows."""
    from pagoda_pt.diagnose import shared_writable
    return shared_writable(census.processes, {r.pid: r.parent for r in rows}, _quiet(lambda: look.write_faults),
                           vmas_of={r.pid: r.vmas for r in rows})


def _wx_story(census, rows):
    """A page some process in the table (not a reaped one's root: its tables may be reused) maps
    writable and executable (pagoda_pt.verdicts)."""
    from pagoda_pt.verdicts import writable_and_executable
    live = {r.pid for r in rows}
    return writable_and_executable([(_label(m.pid, m.name),
                                     [p.va for p in m.pages if p.writable and p.executable and not p.held])
                                    for m in census.processes if m.pid in live])


def _leaks(look, verdict):
    """Kernel stack slots still taken and process roots still published that no process in the
    table accounts for (pagoda_pt.verdicts.left_behind): a reaped process's teardown left them."""
    from pagoda_pt.verdicts import Leftovers, left_behind
    from . import memory
    rows, table = look.rows, look.roots[0]
    live, held = {r.pid for r in rows}, {r.kslot for r in rows if r.kslot != NO_SLOT}
    published = table.roots if table is not None else []
    return left_behind(Leftovers(stacks=[s for s in memory.taken_stack_slots() or [] if s not in held],
                                 roots=[k for k in published if k.kind == "process" and k.id not in live]))


RUN_LEAK = "a run leaks frames"     # pagoda_pt.diagnose.frames_left_after_run's verdict


def _audit(look, verdict):
    """The kernel's memory records checked against each other (pagoda_pt.frames.audit, what the
    grader's failures lead with: a frame freed while mapped, a kernel stack freed while mapped, a
    free count the bitmaps do not match, a heap block handed out twice or cut past its frame): the
    producer of what a panic or a run's leak shows."""
    from pagoda_pt.frames import audit
    from . import kernel
    with target.physical_memory() as read_phys:     # (the census an earlier rule took, not a second one)
        found = audit(look.arch, read_phys, kernel.symbol_address, census=look.kept("census"))
    return found[0] if found else None


def _process_audit(look, verdict):
    """Where the scheduler's records are consistent (GDB stopped in one of
    pagoda_pt.procaudit.CONSISTENT_FUNCTIONS: a timer tick, a process's end, the idle loop, a
    checkpoint of the run): the process audit the grader runs at its stops
    (pagoda_pt.procaudit.audit_table: one Running process and it is the current one, every parent
    alive, one kernel-stack slot and one root per live process)."""
    from pagoda_pt import procaudit
    from . import kernel
    where = next((n for n in look.frame_names[:3] if n in procaudit.CONSISTENT_FUNCTIONS), None)
    if where is None:
        return None
    try:
        look.rows
        lay, rows, pointer = kernel.read_table()      # (the same reading: kernel.reading_once)
    except CommandError:
        return None     # (a kernel before lab 3: no process table)
    table = look.roots[0]
    roots = {r.id: r.root for r in (table.roots if table is not None else []) if r.kind == "process"}
    current = next((r for r in rows if r.current), None)
    return procaudit.audit_table(lay, rows, current, pointer, "where GDB stopped (in %s)" % where.split("::")[-1],
                                 roots)


def _kernel_text(name):
    """The string the kernel's `const char*` @p name points at, read from its memory."""
    import gdb
    return gdb.parse_and_eval("(const char*)%s" % name).string(errors="replace")


def _last_failure():
    """(the kernel's last failure line, how many since boot), read from its memory; (None, 0) when
    this kernel keeps none."""
    import gdb
    try:
        count = int(gdb.parse_and_eval(C.FAILURE_COUNT))
        return (_kernel_text(C.LAST_FAILURE) if count else ""), count
    except (gdb.error, RuntimeError, ValueError):
        return None, 0


def _kernel_failure(look, verdict):
    """The kernel's last failure line, when it refused to start a process or a fork, spawn or exec
    failed (its words name the step and the address; pagoda_pt.diagnose.kernel_failure_verdict).
    Otherwise, with nothing wrong, a line says what was checked: the process table and the
    kernel's failure lines (pagoda_pt.diagnose.what_was_checked)."""
    from pagoda_pt.diagnose import kernel_failure_verdict, what_was_checked
    text, count = _last_failure()
    sentence = kernel_failure_verdict(text, count)
    if sentence is not None:
        return sentence
    # (the last memory call the kernel refused, in its own words)
    refused = _quiet(_kernel_text, C.LAST_REFUSED_CALL) or None
    return Finding(None, [what_was_checked(look.rows, text, count, refused)])


def _stalled_wait(look, verdict):
    """A hang interrupted with Ctrl-C: nothing can run because a parent waits for a child that has
    already ended (pagoda_pt.procaudit.stalled_wait, from the process table)."""
    from pagoda_pt.procaudit import stalled_wait
    return stalled_wait(look.rows)



# What fault-why saw earlier in this session (a run's frames are judged at its end against them):
# the allocator's bitmap at the run's start (why-stops notes it at the checkpoint before the first
# process), and the frames each look's census found as a process's user page or page table.
_run = {"before": None, "user_frames": {}, "table_frames": {}}
MAX_NOTED = 4096


def _note_census(census):
    """Remembers the user pages and page tables of each process in @p census (for the run's end)."""
    for m in census.processes:
        who = _label(m.pid, m.name)
        for page in m.pages:
            if len(_run["user_frames"]) < MAX_NOTED:
                _run["user_frames"][page.pa & ~(PAGE - 1)] = (who, page.va)
        for pa in m.tables:
            if len(_run["table_frames"]) < MAX_NOTED:
                _run["table_frames"][pa] = (who,)


def _checkpoint_bitmap():
    """Stopped at pagoda_grader_checkpoint(tag, used bitmap, words) of a run (kernel/proc/run.cpp
    checkpoint_frames): the set of frame indexes the bitmap marks used."""
    import gdb
    frame = gdb.newest_frame()
    address, words = int(frame.read_var("b")) & MASK64, int(frame.read_var("c"))
    raw = bytes(gdb.selected_inferior().read_memory(address, words * 8))
    return {at * 8 + bit for at, byte in enumerate(raw) if byte for bit in range(8) if byte >> bit & 1}


def note_run_start():
    """why-stops, stopped at a checkpoint: when it is the one before a run's first process, notes
    the allocator's bitmap (the run's end is judged against it)."""
    import gdb
    try:
        if _checkpoint_is("run_checkpoint_before"):
            _run["before"] = _checkpoint_bitmap()
            _run["user_frames"].clear()
            _run["table_frames"].clear()
    except (gdb.error, ValueError, RuntimeError):
        pass


def _run_leaks(look, verdict):
    """Stopped at a run's end (every process reaped), after a why-stops that saw its start: frames
    in use now that were free then are what the teardowns left (pagoda_pt.diagnose
    .frames_left_after_run), named by what an earlier look saw in them."""
    from pagoda_pt.diagnose import frames_left_after_run
    if _run["before"] is None or not (_stopped_in(C.CHECKPOINT) and _checkpoint_is("run_checkpoint_ended")):
        return None
    leaked = sorted(i * PAGE for i in _checkpoint_bitmap() - _run["before"])
    return frames_left_after_run(leaked, _run["user_frames"], _run["table_frames"])


def _log_copies(look, verdict):
    """A user copy that QEMU's log shows faulting on the argument page at the top of the user stack
    (pagoda_pt.diagnose.arguments_through_live_root), or faulting with SMAP or PAN still up
    (copy_with_guard_up)."""
    from pagoda_pt.diagnose import arguments_through_live_root
    from pagoda_pt.verdicts import copy_with_guard_up
    from . import kernel
    top = kernel.symbol_address(C.fact_symbol("user_stack_top"))
    events = look.events
    if top is None or not events:
        return None
    fixups = look.fixups or {}
    sentence = arguments_through_live_root(events, fixups, look.model, top) if fixups else None
    if sentence is None and fixups and look.user_end is not None:
        sentence = copy_with_guard_up(events, fixups, look.user_end, look.model)
    return sentence


def _kernel_map(look, verdict):
    """A stop that is not a fault from user mode: pagoda_pt.diagnose.image_permission_problem over
    the kernel ELF's own load segments walked in the active root, then pagoda_pt.diagnose.device_at
    for the fault address the lines show and the first one QEMU's log shows the kernel taking, when
    the active root does not map it; None when neither finds anything, or the active root is none
    the kernel published or the boot stub's own (roots.kernel_map_live)."""
    from pagoda_pt.diagnose import device_at, image_permission_problem
    from pagoda_pt.roots import kernel_map_live, root_label
    from . import kernel
    from .paging import active_root, walk_address
    arch, regs, model = look.arch, look.regs, look.model
    if target.paging_off_reason(arch, regs) is not None:
        return None
    start = kernel.symbol_address(C.KERNEL_START)
    loaded = look.elf.segments if look.elf is not None and start is not None else ()
    segments = [(seg.vaddr & ~(PAGE - 1), (seg.vaddr + seg.memsz + PAGE - 1) & ~(PAGE - 1), seg.perms)
                for seg in loaded if seg.vaddr >= start and seg.memsz]
    guard = kernel.symbol_address(C.BOOT_STACK_GUARD)
    table = look.roots[0]
    if not kernel_map_live(table, [model.root_of(regs, r) for r in (model.lower_root, model.upper_root)]):
        return None     # the boot stub's own tables (one rwx map of everything), not the kernel's map
    label = root_label(active_root(arch, regs), table)
    with target.physical_memory() as read_phys:
        def walk(va):
            return walk_address(arch, regs, va, read_phys=read_phys, pa_bits=look.pa_bits)
        story = image_permission_problem(segments, walk, label, skip=(guard,) if guard is not None else ())
        if story is not None:
            return story
        half = kernel.symbol_address(C.fact_symbol("kernel_half_base"))
        kernel_low = start is not None and half is not None and start < half
        bases = {"identity": 0, "device area": kernel.symbol_address(C.fact_symbol("mmio_base")),
                 "window": kernel.symbol_address(C.fact_symbol("window_base"))}
        for address in (look.address, _quiet(lambda: look.first_kernel_fault)):
            if address is not None and not walk(address).mapped:
                story = device_at(address, model.machine.devices, bases, kernel_low, label)
                if story is not None:
                    return story
    return None


PROGRAM_BEGIN = "pagoda_program_%s_begin"   # cmake/user.cmake: each embedded program's ELF file


def _program_segments(name):
    """The load segments of the embedded program called @p name (the process's name), read from
    the kernel image at its physical address (pagoda_core.elffile.Segment), or None."""
    from . import kernel
    try:
        begin = _program_begin(name)
        end = kernel.symbol_address((PROGRAM_BEGIN % name)[:-len("begin")] + "end")
        pa = kernel.image_phys(begin) if begin is not None else None
        if pa is None or end is None or end <= begin:
            return None
        with target.physical_memory() as read_phys:
            data = bytes(read_phys(pa, end - begin))
        return kernel.core_module("elffile").Elf(name, data).segments
    except Exception:  # noqa: BLE001 - an addition: never lose fault-why's own lines to it
        return None


REGIONS_OF_CURRENT = "(*(%s*)&%%s->user_regions.storage_)" % C.USER_REGIONS   # kernel/proc/process.hpp regions()


def _call_in_kill_path(call):
    """Stopped in the kill path: @p call() run with $pagoda_access set to the fault's access (read
    from proc::user_fault's frame) and GDB's unwindonsignal on, so a kernel function GDB calls that
    faults leaves the stop as it was; its result, or None when the kill frame is not on the stack or
    the call fails."""
    import gdb

    def asked():
        frame = next((f for f in _frames() if (f.name() or "").startswith(C.USER_FAULT)), None)
        if frame is None:
            return None
        gdb.set_convenience_variable("pagoda_access", frame.read_var("fault")["access"])
        with _unwinding():
            return call()
    return _quiet(asked)


def _kernel_decision(address):
    """Stopped in the kill path: (its action: "Deny", "Populate", "Grow"; the kernel's words for its
    refusal, or None; whether its VMA lookup finds a region) from the kernel's own
    pagoda::decide_fault and VmaSet::find, called through GDB on the current process's record with
    the fault's address and access (what proc::user_fault is about to do: both are pure); None
    when they cannot be called."""
    import gdb

    def decide():
        regions = REGIONS_OF_CURRENT % ("'%s'.slot[0]" % C.CURRENT)   # the boot CPU's (quoted: GDB needs it)
        verdict = gdb.parse_and_eval("%s(%s, %#x, $pagoda_access)" % (C.DECIDE_FAULT, regions, address))
        action = str(verdict["action"]).rsplit("::", 1)[-1]
        if action != "Deny":
            return action, None, None
        refusal = gdb.parse_and_eval("%s((%s)%d)" % (C.FAULT_CAUSE_TEXT, C.FAULT_CAUSE, int(verdict["cause"]))).string()
        found = int(gdb.parse_and_eval("%s.vmas.find(%#x)" % (regions, address))) != 0
        return action, refusal, found
    return _call_in_kill_path(decide)


def _kernel_words(address):
    """Stopped in the kill path: what the kill line will say of the fault at @p address from the
    current process's record (pagoda_record_words(), kernel/proc/run.cpp: the function the kill
    line itself uses), called through GDB with the fault's access; None when it cannot be called."""
    import gdb
    return _call_in_kill_path(lambda: gdb.parse_and_eval("%s(%#x, $pagoda_access)" % (C.RECORD_WORDS, address))
                              .string(errors="replace"))


def user_decision(look, verdict):
    """The verdict of a fault from user mode (@p verdict, the CPU's) replaced by what the kernel's
    fault decision makes of it (pagoda_pt.diagnose.user_fault_decision): a demand fault, a
    copy-on-write fault or stack growth is answered and the program goes on; a denied one ends
    the process, for the reason the VMAs give. Unchanged when the process keeps no VMAs (before
    lab 5) or they cannot be read."""
    from pagoda_pt.diagnose import (allowed_what_record_refuses, answered_before, refused_what_record_allows,
                                    user_fault_decision)
    from . import memory
    fault = look.fault
    try:
        row = memory.pick_process(look.rows, look.arch, look.regs)
    except Exception:  # noqa: BLE001 - an addition: never lose fault-why's own lines to it
        return verdict
    if row.vmas is None:
        return verdict
    killing = look.killing
    fault["killing"] = killing
    # (how many times QEMU's log shows the fault being killed answered before it; 0: cannot tell)
    answered = (_quiet(lambda: answered_before(look.events or (), fault["pc"], fault["address"])) or 0
                if killing and fault.get("pc") is not None else 0)
    kind, sentence = user_fault_decision(row.vmas, fault["address"], fault["write"], fault["fetch"],
                                         fault["mapped"], fault["perms"], row.stack_limit,
                                         killing=killing, who=_label(row.pid, row.name),
                                         sp=fault.get("sp"), answered=answered, pc=fault.get("pc"),
                                         segments=_program_segments(row.name),
                                         heap=(row.heap_start, row.brk) if row.brk else None,
                                         swapped=None if fault["mapped"] else _quiet(_swapped, look, fault["address"]))
    if killing and row.vmas and kind in ("wrong", "deny"):
        # The kernel's own decision on the same record, address and access: it is what the kill
        # path is about to use, and where it disagrees with the record it is the cause.
        asked = _kernel_decision(fault["address"])
        vma = memory.find_vma(row.vmas, fault["address"])
        if asked is None:
            pass
        elif kind == "wrong" and vma is not None and asked[0] == "Deny" and not sentence.startswith(
                "the kernel's fault decision allowed"):
            sentence = refused_what_record_allows(_label(row.pid, row.name), fault["address"],
                                                  asked[1], vma, asked[2])
        elif kind == "deny" and asked[0] != "Deny":
            kind, sentence = "wrong", allowed_what_record_refuses(row.vmas, fault["address"], fault["write"],
                                                                  fault["fetch"], asked[0], sentence)
    if killing and row.vmas and kind in ("wrong", "deny"):
        # The kernel's own words for the kill, from the same record: fault-why and the kill line agree.
        from pagoda_pt.diagnose import with_kernel_words
        sentence = with_kernel_words(sentence, _kernel_words(fault["address"]))
    # The loader's record named (the stack, a segment left out): the kernel's bug, not the program's.
    fault["decision"] = "loader" if kind == "deny" and sentence.startswith("the loader") else kind
    if kind == "deny" and UNRESOLVED in verdict:
        # What the walk found stays (it says what the access met); the VMAs say why it is a kill.
        return verdict.replace(UNRESOLVED, sentence)
    return "%s%s: %s" % (fault["who"], " in user mode" if kind == "deny" else "", sentence)


def _swapped(look, address):
    """(slot, its count in the slot map or None) when the live root's entry for @p address is a
    swap entry (lab 7), else None."""
    from pagoda_pt.swap import SWAP_FACTS, read_swap_state, swap_slot
    from . import kernel
    from .paging import walk_address
    levels = kernel.symbol_address(C.fact_symbol("levels")) or 4
    facts = {name: kernel.symbol_address(C.fact_symbol(name)) or 0 for name in SWAP_FACTS}
    with target.physical_memory() as read_phys:
        result = walk_address(look.arch, look.regs, address, read_phys=read_phys)
        leaf = result.levels[-1].raw if result.pa is None and len(result.levels) == levels else None
        slot = swap_slot(leaf, facts) if leaf else None
        if slot is None:
            return None
        state = _quiet(read_swap_state, read_phys, kernel.symbol_address)
    return slot, state.count(slot) if state is not None else None


# Kernel code inside which the swap state is mid-change (an eviction, a swap-in, fork's copy before its
# pages are recorded, a fault between mapping a page and recording it): its checks wait for a stop elsewhere.


def _swap_busy(look):
    """True when a frame on GDB's stack is kernel code that changes the swap state (C.SWAP_CODE),
    unless the only such frame is the newest one stopped before its body ran (a breakpoint on
    forget_user_pages at an exit: its records are still those of the stop before it)."""
    import gdb
    try:
        if not look.stopped_in(C.SWAP_CODE):
            return False
        busy = [f for f in _frames() if (f.name() or "").startswith(C.SWAP_CODE)]
        newest = gdb.newest_frame()
        return len(busy) > 1 or busy[0] != newest or not _in_prologue(newest)
    except gdb.error:
        return True


def _in_prologue(frame):
    """True when @p frame's pc is still in its function's first line (its prologue) or at the
    start of the next, where `break FUNCTION` stops: none of the function's body has run."""
    import gdb
    block = frame.block()
    while block is not None and block.function is None:
        block = block.superblock
    if block is None:
        return False
    first = gdb.find_pc_line(block.start)
    return block.start <= frame.pc() <= (first.last if first.last is not None else block.start) + 1


def _swap_story(look, anywhere=False):
    """The first eviction slip the swap state shows against the roots of the processes in the table
    (pagoda_pt.swap: a page one root still maps after its frame was evicted from another, an entry
    naming a slot the map calls free, a count below its holders, a reverse map that lacks a mapping
    or names one that is gone, slots no one holds), or None: swap is off, or the stop is inside
    code that changes the swap state (_swap_busy), unless @p anywhere (then a slot's count first:
    pagoda_pt.swap.swap_story)."""
    from pagoda_pt.swap import swap_story
    if not anywhere and _swap_busy(look):
        return None
    return swap_story(look.swap_census, slots_first=anywhere)


@dataclass
class Finding:
    """What a rule found: the verdict's @p sentence (None: the verdict stands) and the @p lines
    that go above it instead of the overruled verdict (the rule's own account of it)."""
    sentence: object
    lines: list = field(default_factory=list)


def _nothing(look, verdict):
    return verdict.startswith(NOTHING_WRONG)


@dataclass(frozen=True)
class Rule:
    """One rule of fault-why: @p find(look, verdict) gives a sentence, a Finding or None; it is
    asked only when @p over(look, verdict) says it may overrule the verdict it meets, which then
    stays on the line above, worded by @p before; @p fault_first: a cause found before the fault
    itself (the verdict names the kernel, never the program's own kill)."""
    find: object
    over: object = _nothing
    before: str = "{} (the CPU's state)"
    fault_first: bool = False


ANSWERED = ("demand", "cow", "grow", "mapped")   # the user-fault decisions the kernel answers (the program goes on)
PANICKED = "the kernel panicked"

# Ranked: the first that may overrule the verdict it meets and speaks becomes the verdict.
RULES = (
    Rule(_kill_cause, lambda look, v: look.killing, "the fault itself: {}", fault_first=True),
    Rule(_kernel_map, lambda look, v: not look.user_fault, "what the CPU shows: {}", fault_first=True),
    Rule(_panic, lambda look, v: _nothing(look, v) or bool(look.fault) and look.fault.get("decision") in ANSWERED),
    Rule(_stalled_wait),
    # What reaped processes left behind first: a root left published poisons the census.
    Rule(_leaks),
    Rule(_run_leaks),
    Rule(_log_copies),
    # (read even at a kill, inside the swapper only at a panic: _swap_busy)
    Rule(lambda look, v: _swap_story(look)),
    Rule(_shared_frames),
    # A run's leak and a panic are often the consumers of a broken record: the audit names the producer.
    Rule(_audit, lambda look, v: v.startswith((NOTHING_WRONG, PANICKED, RUN_LEAK)),
         "before the audit of the kernel's records: {}"),
    Rule(_process_audit),
    Rule(_kernel_failure),
)


def judge(look, lines):
    """fault-why's lines: the ISA's @p lines (the last its verdict) judged by RULES, then the lines
    that say more of the faulting address (the temp-map slot, lab 4; the VMA that covers it, lab 5)
    before the verdict; $pagoda_why_wrong set."""
    from . import memory, tempmap
    body, verdict = list(lines[:-1]), lines[-1][len("verdict: "):]
    if look.user_fault:
        verdict = user_decision(look, verdict)
    fault_first = False
    for rule in RULES:
        if not _quiet(rule.over, look, verdict):
            continue
        found = _quiet(rule.find, look, verdict)
        if not found:
            continue
        found = found if isinstance(found, Finding) else Finding(found, [rule.before.format(verdict)])
        body += found.lines
        if found.sentence is not None:
            verdict, fault_first = found.sentence, fault_first or rule.fault_first
    _set_wrong(verdict, look.fault, fault_first)
    for describe, what in ((tempmap.describe_fault, "the temp-map slots"), (memory.vma_lines, "the process's VMAs")):
        try:
            body += describe(look.arch, look.regs, look.address) if look.address is not None else []
        except Exception as err:  # noqa: BLE001 - never lose fault-why's own lines to an addition
            body.append("note: %s cannot be read (%s)" % (what, err))
    return body + ["verdict: " + verdict]


WRONG_VARIABLE = "pagoda_why_wrong"


def _set_wrong(verdict, fault, overruled):
    """$pagoda_why_wrong: 0 when the verdict names nothing wrong with the kernel
    (program_s_own), else 1; `why-stops` goes on past the stops where it is 0."""
    try:
        import gdb
        gdb.set_convenience_variable(WRONG_VARIABLE, 0 if program_s_own("verdict: " + verdict, fault, overruled) else 1)
    except Exception:  # noqa: BLE001 - outside GDB (host tests), or an old GDB
        pass


@command
class FaultWhy(PagodaCommand):
    """Explain the exception the kernel is handling, or why the machine stopped.

Usage: fault-why
Stopped in the trap handler (x86_trap, aarch64_trap, or a function they called such as
panic_end): checks and decodes the trap frame (x86: the vector and error code, CR2; AArch64:
ESR's class, fault status and level, WnR, and FAR) and walks the faulting address in the active
root and in every root the kernel published ("mapped in root A, not in the active root B"),
naming the levels that deny; for a double fault, the interrupted stack and what delivering the
exception needed. Anywhere else (a triple fault, Ctrl-C in an exception loop, a breakpoint):
the active root (empty? kernel half?), the code at the PC, the stack, the IDT or VBAR_EL1's
vector, the handlers, IST stacks, GDT and TSS, each walked in the active root. With
./pagoda gdb --int-log, one line of QEMU's exception log tells how the machine got there (the
grader's summary: the first fault, the chain, a triple fault, an exception storm).
A fault from user mode is judged against the process's record (lab 5: the VMA that covers it,
the kernel's own decide_fault and VmaSet::find called through GDB, the loader's record; lab 7: a
swap entry's slot); the kernel's own words for a kill (pagoda_record_words) end the verdict.
Then the ranked rules of faults.RULES may overrule the verdict, the old one kept on the line
above: at a kill, what comes before the fault (a foreign live root, a freed frame still mapped,
a frame two roots share while one may write it, a child holding nothing of its parent's, the
record against the pages); outside a user fault, the kernel's own map (image permissions, a
device touched unmapped); a panic's own message; and at a stop with nothing else wrong: a wait
that can never end, stacks and roots a reaped process left, a run's leaked frames, a user copy
QEMU's log shows faulting on the argument page or with the guard up, the first slip the swap
state shows, shared writable frames and the other record checks (labs 3-6), the audit of the
kernel's memory records and of its process table, the kernel's last failure line.
$pagoda_why_wrong is 1 when the verdict names something wrong with the kernel, 0 when it is the
program's own kill or nothing (why-stops goes on past those). The last line is always a verdict."""

    name = "fault-why"
    usage = "fault-why"

    def run(self, arg, from_tty):
        parse(arg, max_positional=0)
        arch = target.require_stopped()
        rules = isa(arch).gdb_faults        # the ISA's fact gatherer (faults_<isa>.py)
        if not rules:
            raise CommandError("no fault rules for %s yet" % arch)
        from . import kernel
        look = Look(arch)
        with kernel.reading_once():
            lines, look.fault = importlib.import_module("." + rules, __package__).explain(look)
            if look.log_line:
                lines.insert(len(lines) - 1, look.log_line)
            look.address = _fault_address(lines)
            lines = judge(look, lines)
        for line in lines:
            out(line)


def _stopped_in(name):
    import gdb
    try:
        frame = gdb.newest_frame()
        return frame is not None and (frame.name() or "") == name
    except gdb.error:
        return False


def _checkpoint_is(fact):
    """Stopped at pagoda_grader_checkpoint: whether its tag is the kernel's fact @p fact
    (run_checkpoint_before: a run's first process is next; run_checkpoint_ended: every process
    reaped, the only checkpoint worth a look)."""
    import gdb
    from . import kernel
    tag = kernel.symbol_address(C.fact_symbol(fact))
    try:
        return tag is not None and int(gdb.newest_frame().read_var("a")) == tag
    except (gdb.error, ValueError, RuntimeError):
        return False


@command
class WhyStops(PagodaCommand):
    """Run on from stop to stop and explain each, until fault-why names something wrong with the kernel.

Usage: why-stops [N]
Continues the machine, and at each stop (a breakpoint set before: a panic, a kill, a process's
exit, the end of a run at pagoda_grader_checkpoint) prints a stop mark, `bt 4`, a fault-why mark
and fault-why. It goes on while fault-why names nothing wrong with the kernel ($pagoda_why_wrong
is 0: nothing is wrong, or a process killed for an access its record refuses), at most N stops
(default 16); after a verdict that does name something, it prints a wrong mark and stops there.
A stop at pagoda_grader_checkpoint other than the end of a run is passed over; a stop at
pagoda_grader_stop (the grader's inputs) ends it. Interrupted (Ctrl-C), it explains where the
machine is, marks that wrong (a hang) and ends. `./pagoda labs mutants --why` judges the first stop marked wrong."""

    name = "why-stops"
    usage = "why-stops [N]"

    def run(self, arg, from_tty):
        import gdb
        args = parse(arg, max_positional=1)
        limit = int(args.positional[0], 0) if args.positional else 16
        shown = 0
        signals = []

        def on_stop(event):
            if isinstance(event, gdb.SignalEvent):
                signals.append(event.stop_signal)
        while shown < limit:
            del signals[:]
            gdb.events.stop.connect(on_stop)
            try:
                gdb.execute("continue")
                interrupted = "SIGINT" in signals
            except KeyboardInterrupt:
                interrupted = True
            except gdb.error as err:
                out("why-stops: %s" % err)
                return
            finally:
                gdb.events.stop.disconnect(on_stop)
            if not gdb.selected_inferior().pid:
                return
            if _stopped_in(C.CHECKPOINT) and not interrupted and not _checkpoint_is("run_checkpoint_ended"):
                note_run_start()
                continue
            shown += 1
            out(MARK_STOP)
            gdb.execute("bt 4")
            if _stopped_in(C.GRADER_STOP):
                return
            out(MARK_WHY)
            gdb.execute("fault-why")
            if interrupted or int(gdb.convenience_variable(WRONG_VARIABLE) or 0):
                out(MARK_WRONG)
                return
