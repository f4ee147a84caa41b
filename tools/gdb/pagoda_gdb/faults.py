"""fault-why: explain the exception the kernel is handling, or why the machine died.

This module is the command and what every architecture shares (QEMU's exception log); the
facts and the rules are per architecture:

  faults_x86_64.py          gathers pagoda_pt.diagnose_x86_64.X86Facts from GDB and QEMU
  pagoda_pt/diagnose_x86_64.py   the x86_64 rules (pure, tested on synthetic tables)
  faults_aarch64.py         AArch64: the trap frame (ESR, FAR, ELR, SPSR) and FAR walked through
                            TTBR0 or TTBR1, or the CPU as it is (ESR_EL1, ELR_EL1, FAR_EL1,
                            VBAR_EL1, SP) in an exception loop; its pure rules are in
                            pagoda_pt/diagnose_aarch64.py
  here, for both            the fix-up table, the kernel's user_end and the system call on the
                            stack (pagoda_pt.diagnose.on_behalf_findings reasons about them)

The output always ends with a verdict line, "nothing is wrong that I can see" included.
"""

import importlib
import os
import re

from pagoda_pt import contract as C
from pagoda_pt.diagnose import (MARK_STOP, MARK_WHY, MARK_WRONG, NOTHING_WRONG, UNRESOLVED, fixup_reports_success,
                                program_s_own, story_from_faults)
from pagoda_pt.isa import isa
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


def user_fixups(read_phys):
    """{faulting instruction: resume address} of the kernel's fix-up table (section
    pagoda_user_fixups, read at its physical address: the image's link map, no walk), {} when the
    section is empty, None when the kernel has none or it cannot be read."""
    from . import kernel
    start, stop = (kernel.symbol_address(n) for n in C.USER_FIXUPS)
    if start is None or stop is None or stop < start:
        return None
    pa = kernel.image_phys(start)
    if pa is None:
        return None
    try:
        raw = bytes(read_phys(pa, stop - start)) if stop > start else b""
    except Exception:  # noqa: BLE001 - no table is a fact too, never a failure of fault-why
        return None
    words = [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw) // 16 * 16, 8)]
    return dict(zip(words[0::2], words[1::2]))


def user_end():
    """The first address past the user half (the kernel's fact), or None."""
    from . import kernel
    return kernel.symbol_address(C.fact_symbol("user_end"))


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def syscall_in_progress():
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
        args = tuple(int(call["args"][i]) & MASK64 for i in range(6))
        return SyscallAt(number, args, _syscall_name(number))
    except (gdb.error, ValueError, RuntimeError):
        return None


def _syscall_name(number):
    import gdb
    try:
        for field in gdb.lookup_type(C.SYSCALL_NUMBERS).fields():
            if field.enumval == number:
                return _snake(field.name.split("::")[-1])
    except gdb.error:
        pass
    return ""


def _faultlog():
    """tools/pagoda_core/faultlog.py (loaded by path: kernel.core_module)."""
    from . import kernel
    return kernel.core_module("faultlog")


def read_log_text(path):
    """QEMU's -d int log at @p path as text: whole when it is at most LOG_READ_WHOLE bytes, else its
    first and last LOG_READ_END bytes with a line saying how much was left out between them (a
    storming kernel writes ~100 MB/s: a look of fault-why must not read gigabytes). (text, partial)."""
    partial = os.path.getsize(path) > LOG_READ_WHOLE
    return _faultlog().read_ends(path, LOG_READ_END, LOG_READ_END, "fault-why"), partial


def read_log_story(path):
    """The LogStory of QEMU's -d int log at @p path, from every event it logged (exceptions,
    interrupts, system calls); its first and last 4 MiB when it is larger than 8 MiB: then counts
    are lower bounds."""
    from . import kernel
    text, partial = read_log_text(path)
    parsed = _faultlog().parse(text, "x86_64", kernel.names("x86_64"))
    # Every event, not only the exceptions: a system call between two alike faults is the
    # program going on, so they are no loop (LogStory.loop).
    return story_from_faults(parsed.events, parsed.triple_fault, partial=partial, size=os.path.getsize(path))


def qemu_log_story():
    """(LogStory or None, hint): what QEMU's exception log says, when the session keeps one."""
    path = session.qemu_log_path()
    if not path or not os.path.exists(path):
        return None, NO_LOG_HINT
    try:
        return read_log_story(path), ""
    except (OSError, ImportError, SyntaxError) as err:
        return None, "QEMU's log %s cannot be read: %s" % (path, err)


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


def _with_addition(arch, lines, describe, unreadable):
    """@p lines with @p describe(arch, regs, faulting address)'s lines (CR2 / FAR as the lines
    show it) before the first verdict; a failure to read them is noted, never fatal."""
    address = _fault_address(lines)
    if address is None:
        return lines
    try:
        extra = describe(arch, target.paging_regs(arch), address)
    except Exception as err:  # noqa: BLE001 - never lose fault-why's own lines to an addition
        extra = ["note: %s cannot be read (%s)" % (unreadable, err)]
    if not extra:
        return lines
    first = next((i for i, line in enumerate(lines) if line.startswith("verdict: ")), len(lines))
    return lines[:first] + extra + lines[first:]


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
ANSWERED = ("demand", "cow", "grow", "mapped")


def _with_panic(arch, lines, fault=None):
    """A machine stopped in a panic that no fault explains (the kernel's own check refused
    something: the pre-switch check, an allocator's double free, the user-trap stack), or that came
    while the kernel answered a user fault the program was entitled to (lab 7: the swapper's own
    checks): the verdict is the kernel's reason, as its PANIC line gave it, not "nothing is wrong"
    nor the fault's answer. With swap on, what the swap state shows beside it (_swap_story, read
    even inside the swapper: the records may be mid-change) is a line above the verdict."""
    at = _verdict_at(lines)
    answered = bool(fault) and fault.get("decision") in ANSWERED
    if at is None or not (lines[at].startswith("verdict: " + NOTHING_WRONG) or answered):
        return lines
    if _quiet(lambda: any(f.name() in (C.PANIC_END, C.PANIC) for f in _frames(8))) is not True:
        return lines     # (not in a panic we can see)
    message = last_panic()
    if not message:
        return lines
    if lines[at].startswith("verdict: " + NOTHING_WRONG):
        why = ["the kernel panicked: no exception explains it, so it is the kernel's own check that refused (its "
               "message is the cause)"]
    else:
        why = ["the fault itself: " + lines[at][len("verdict: "):],
               "the kernel panicked while it answered that fault, which the program was entitled to: its own check "
               "refused (its message is the cause)"]
    swap = _quiet(lambda: _swap_story(arch, _live_rows(), anywhere=True))
    if swap:
        why.append("the swap state at the panic (read inside the swapper: its records may be mid-change): " + swap)
    return lines[:at] + why + ["verdict: the kernel panicked: " + message] + lines[at + 1:]


def _live_rows():
    from . import kernel
    return kernel.read_processes()


def _verdict_at(lines):
    """The index of fault-why's verdict line in @p lines, or None."""
    return next((i for i, line in enumerate(lines) if line.startswith("verdict: ")), None)


def _overruled(lines, at, before, sentence):
    """@p lines with the verdict at @p at replaced by @p sentence; the old verdict stays on the
    line above, its text wrapped as @p before ("the fault itself: {}")."""
    return lines[:at] + [before.format(lines[at][len("verdict: "):]), "verdict: " + sentence] + lines[at + 1:]


def _label(pid, name):
    return "proc %d (%s)" % (pid, name)


def _with_kill_causes(arch, lines):
    """Stopped in the kill path (the fault came from user mode, so the kernel's records are
    consistent and the current process is who ran there), four causes come before the fault,
    the first that applies: the live root is another process's (pagoda_pt.diagnose.foreign_root);
    a user page maps a frame the allocator has freed or given out again
    (pagoda_pt.frames.mapped_frame_story, from the census of `frames`); two roots share a frame
    one of them may write (pagoda_pt.diagnose.shared_writable: the copy-on-write fault, or fork,
    left it writable; QEMU's log tells which); a forked child holds
    nothing of its parent's user half (pagoda_pt.diagnose.fork_copied_nothing). The verdict of
    the fault alone stays on the line above."""
    at = _verdict_at(lines)
    if at is None or not _in_user_fault():
        return lines
    try:
        sentence = _kill_cause(arch)
    except Exception:  # noqa: BLE001 - an addition: never lose fault-why's own lines to it
        return lines
    return lines if sentence is None else _overruled(lines, at, "the fault itself: {}", sentence)


def _kill_cause(arch):
    from pagoda_pt.diagnose import fork_copied_nothing, foreign_root, shared_writable, writable_and_executable
    from pagoda_pt.frames import mapped_frame_story, take_census
    from . import kernel
    from .paging import active_root
    rows = kernel.read_processes()
    current = next((r for r in rows if r.current), None)
    if current is None:
        return None
    regs = target.paging_regs(arch)
    with target.physical_memory() as read_phys:
        if target.paging_off_reason(arch, regs) is None:
            live = active_root(arch, regs)
            table, _ = kernel.published_roots(read_phys)
            known = table.find(live) if table is not None else None
            if known is not None and known.kind == "process" and known.id != current.pid:
                owner = "proc %d" % known.id
                if known.name and known.name != owner:
                    owner = _label(known.id, known.name)
                return foreign_root(_label(current.pid, current.name), owner, live)
        census = take_census(arch, read_phys, kernel.symbol_address, regs, target.pa_bits(arch)[0])
    _note_census(census)
    story = _quiet(_swap_story, arch, rows) or mapped_frame_story(census)
    if story is None:
        story = shared_writable(census.processes, {r.pid: r.parent for r in rows}, _log_write_faults(arch),
                                vmas_of={r.pid: r.vmas for r in rows})
    parent = next((r for r in rows if r.pid == current.parent), None)
    pages = {m.pid: m.pages for m in census.processes}
    if story is None and parent is not None and current.pid in pages and parent.pid in pages:
        story = fork_copied_nothing(current, parent, pages[current.pid], pages[parent.pid])
    if story is None:
        story = writable_and_executable([m for m in census.processes if m.pid in {r.pid for r in rows}])
    if story is None:
        story = _record_story([current], census)
    if story is None:
        story = _quiet(_merge_story, arch, [current])
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


def _stopped_in_kernel():
    """True when the CPU is stopped on kernel code (its PC past the user half): only then may
    fault-why call a kernel function in the guest (from a user-mode stop the call would run kernel
    code in user mode)."""
    import gdb
    end = user_end()
    return end is not None and int(gdb.parse_and_eval("$pc")) & MASK64 >= end


def _quiet(rule, *args):
    """@p rule(*args), or None when it fails: one rule that cannot read what it needs must not cost
    fault-why the others."""
    try:
        return rule(*args)
    except Exception:  # noqa: BLE001 - an addition: never lose fault-why's own lines to it
        return None


def _when_nothing_wrong(lines, story, before="{} (the CPU's state)", verdicts=(NOTHING_WRONG,)):
    """@p lines with a verdict of "nothing is wrong" (or another of @p verdicts) overruled by the
    sentence @p story() finds (the old verdict on the line above, wrapped as @p before); unchanged
    for any other verdict, or when the story finds nothing or fails (_quiet)."""
    at = _verdict_at(lines)
    if at is None or not lines[at].startswith(tuple("verdict: " + v for v in verdicts)):
        return lines
    sentence = _quiet(story)
    return lines if sentence is None else _overruled(lines, at, before, sentence)


def _frames(most=MAX_TRAP_SEARCH):
    """GDB's frames, the newest first, at most @p most of them."""
    import gdb
    frame = gdb.newest_frame()
    for _ in range(most):
        if frame is None:
            return
        yield frame
        frame = frame.older()


def _frame_named(prefixes, most=MAX_TRAP_SEARCH):
    """The newest of GDB's frames whose function name starts with one of @p prefixes, or None."""
    return next((f for f in _frames(most) if (f.name() or "").startswith(prefixes)), None)


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


def _user_frames_story(arch, rows):
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
    rule = isa(arch).user_irqs_masked
    regs = target.paging_regs(arch)
    frames = []
    with target.physical_memory() as read_phys:
        for row in rows:
            if row.kslot == procs.NO_SLOT or row.zombie:
                continue
            # (the frame behind the stack's top page, walked through the kernel half: the user frame)
            w = walk(arch, read_phys, None, lay.stack_top(row.kslot) - size, regs, pa_bits=target.pa_bits(arch)[0])
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
        if not images or not re.fullmatch(r"[A-Za-z0-9_]+", row.name) or \
                _program_at_name(row.name) is None:
            continue
        story = record_of_another_program(_label(row.pid, row.name), row.name,
                                          [(memory.describe_vma(v), _program_at(v.source)) for v in images])
        if story is not None:
            return story
    return None


def _program_at_name(name):
    from . import kernel
    return kernel.symbol_address(PROGRAM_BEGIN % name)


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


def _fixup_story(arch):
    """pagoda_pt.diagnose.fixup_reports_success: the kernel's own user copy (the routine of the
    fix-up table's entries that is the byte copy, <isa>_user_copy) called through GDB from the
    null page, which faults and goes on at its fix-up; asked once per session, and only when the
    CPU is stopped in the kernel (the call runs kernel code) and the table has entries. None when
    the copy reports the bytes left, or it cannot be asked."""
    import gdb
    if "story" in _probed:
        return _probed["story"]
    if not _stopped_in_kernel():
        return None
    sp = int(gdb.parse_and_eval("$sp")) & MASK64
    with target.physical_memory() as read_phys:
        table = user_fixups(read_phys) or {}
    routine = None
    for ip in sorted(table):
        m = COPY_ROUTINE.match(gdb.execute("info symbol %#x" % ip, to_string=True).strip())
        if m:
            routine = m.group(1)
            break
    if routine is None or not _first_access_answered(arch, routine, table):
        return None
    # The call opens user access as a UserAccessScope does (RFLAGS.AC set; PAN clear): with the
    # guard up, the kernel's fault handler and QEMU's log would take the probe for a student's
    # copy made outside a scope (and the grader's copy-guard rule, reading that log, would too).
    with _unwinding(), target.register_bits(*(isa(arch).user_access_open or (None, 0, 0))):
        # Nothing is stored: the first load faults. The destination is the stack, well below SP.
        left = int(gdb.parse_and_eval("((unsigned long (*)(void*, const void*, unsigned long))%s)((void*)%#x, "
                                      "(const void*)%#x, %d)" % (routine, (sp - 2048) & ~0xF, PROBE_ADDRESS,
                                                                 PROBE_BYTES))) & MASK64
    _probed["story"] = fixup_reports_success(routine, PROBE_BYTES, PROBE_ADDRESS, left)
    return _probed["story"]


SCRATCH_BELOW_SP = 2048     # where the merge probe writes its two VMAs: far below the stopped SP


def _merge_story(arch, rows):
    """pagoda_pt.diagnose.merge_ignores_permissions on the first process whose record has a VMA that
    comes from no file (an image VMA's neighbour must continue its file): that VMA's bytes, read from
    guest RAM, and a copy moved to just after it, written below the stack pointer (the same
    permissions, then the write permission flipped), given to the kernel's own VmaSet::mergeable
    through GDB. Only when the CPU is stopped in the kernel. None when it merges as it should, or
    cannot be asked."""
    import gdb
    from pagoda_pt.diagnose import merge_ignores_permissions
    from . import memory
    if not _stopped_in_kernel():
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


def _first_access_answered(arch, routine, table):
    """True when the first instruction of @p routine that touches memory (GDB's disassembly, read
    by the ISA) has an entry in the fix-up table @p table: the probe's fault there goes on at its
    fix-up. Without one the kernel would panic inside the call: the probe is not made (the copy's
    missing entry is named when a bad pointer's copy faults)."""
    import gdb
    start = kernel_symbol(routine)
    if start is None:
        return False
    touches = isa(arch).touches_memory
    for insn in gdb.selected_frame().architecture().disassemble(start, count=MAX_PROBE_INSNS):
        if touches(insn["asm"]):
            return insn["addr"] in table
    return False


MAX_PROBE_INSNS = 24


def kernel_symbol(name):
    from . import kernel
    return kernel.symbol_address(name)




def _grow_story(arch, rows):
    """pagoda_pt.diagnose.grows_what_is_not_a_stack on each process's record, the kernel's own
    pagoda::decide_fault called through GDB for a read from user mode (it is pure); only when the
    CPU is stopped in the kernel (a call from a user-mode stop would run kernel code in user mode).
    None when nothing grows that should not, or the decision cannot be asked."""
    import gdb
    from pagoda_pt.diagnose import grows_what_is_not_a_stack
    if not _stopped_in_kernel():
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


def _log_events(arch):
    """The events of QEMU's exception log (its last LOG_READ_END bytes) when the session keeps
    one, else None."""
    path = session.qemu_log_path()
    if not path or not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        size = os.path.getsize(path)
        f.seek(max(0, size - LOG_READ_END))
        text = f.read()
    if size > LOG_READ_END:
        text = text[text.find(b"\n") + 1:]
    from . import kernel
    return _faultlog().parse(text.decode(errors="replace"), arch, kernel.names(arch)).events


def _log_write_faults(arch):
    """The user writes to read-only pages QEMU's log shows (pagoda_pt.diagnose
    .user_write_protect_faults), or None when the session keeps no log or it cannot be read."""
    from pagoda_pt.diagnose import user_write_protect_faults
    try:
        events = _log_events(arch)
        return None if events is None else user_write_protect_faults(events, isa(arch))
    except Exception:  # noqa: BLE001 - an addition: never lose fault-why's own lines to it
        return None


def _with_shared_frames(arch, lines):
    """A machine stopped with nothing wrong in the CPU's state (a breakpoint, such as a process's
    exit, or Ctrl-C) while processes live: two roots that share a frame one of them may write
    (pagoda_pt.diagnose.shared_writable) are the verdict: each process's writes reach the other's
    memory, which it sees later as data that changed under it."""
    return _when_nothing_wrong(lines, lambda: _shared_frames_story(arch))


def _shared_frames_story(arch):
    from pagoda_pt.diagnose import shared_writable, writable_and_executable
    from pagoda_pt.frames import count_left_story, exec_kept_story, take_census
    from . import kernel
    rows = kernel.read_processes()
    if not rows:
        return None
    regs = target.paging_regs(arch)
    with target.physical_memory() as read_phys:
        census = take_census(arch, read_phys, kernel.symbol_address, regs, target.pa_bits(arch)[0])
    _note_census(census)
    sentence = shared_writable(census.processes, {r.pid: r.parent for r in rows}, _log_write_faults(arch),
                               vmas_of={r.pid: r.vmas for r in rows}) if len(rows) >= 2 else None
    # Only the processes in the table: a root left published by a reaped process is walked
    # through tables that may have been freed and given out again.
    live = [m for m in census.processes if m.pid in {r.pid for r in rows}]
    return sentence or writable_and_executable(live) or _quiet(_user_frames_story, arch, rows) or \
        _quiet(_exec_record_story, rows) or _record_story(rows, census) or _quiet(_file_tail_story, rows, census) or \
        _quiet(_grow_story, arch, rows) or _quiet(_merge_story, arch, rows) or _quiet(_fixup_story, arch) or \
        exec_kept_story(census, rows) or count_left_story(census)


def _with_leaks(lines):
    """A machine stopped with nothing wrong in the CPU's state (a process's exit, the end of a run):
    kernel stack slots still taken and process roots still published that no process in the table
    accounts for (pagoda_pt.diagnose.left_behind) are the verdict: a reaped process's teardown
    left them allocated."""
    from pagoda_pt.diagnose import left_behind
    from . import kernel, memory

    def story():
        rows = kernel.read_processes()
        taken = memory.taken_stack_slots() or []
        with target.physical_memory() as read_phys:
            table, _ = kernel.published_roots(read_phys)
        return left_behind({r.pid for r in rows}, {r.kslot for r in rows if r.kslot != NO_SLOT},
                           taken, table.roots if table is not None else [])
    return _when_nothing_wrong(lines, story)


RUN_LEAK = "a run leaks frames"     # pagoda_pt.diagnose.frames_left_after_run's verdict


def _with_audit(arch, lines):
    """A machine stopped with nothing wrong in the CPU's state, or in a panic: the kernel's memory
    records checked against each other (pagoda_pt.frames.audit, what the grader's failures lead
    with: a frame freed while mapped, a kernel stack freed while mapped, a free count the bitmaps
    do not match, a heap block handed out twice or cut past its frame). The first finding is the
    verdict, the producer of what the panic or a later test sees; the old verdict stays above."""
    from pagoda_pt.frames import audit
    from . import kernel

    def story():
        with target.physical_memory() as read_phys:
            found = audit(arch, read_phys, kernel.symbol_address)
        return found[0] if found else None
    # (A run's leak is often the consumer of a broken record: a stack freed while mapped, a count
    # off; the audit's finding, when there is one, is the producer.)
    return _when_nothing_wrong(lines, story, "before the audit of the kernel's records: {}",
                               (NOTHING_WRONG, "the kernel panicked", RUN_LEAK))


def _with_process_audit(lines):
    """A stop with nothing wrong in the CPU's state, where the scheduler's records are consistent
    (GDB stopped in one of pagoda_pt.procaudit.CONSISTENT_FUNCTIONS: a timer tick, a process's
    end, the idle loop, a checkpoint of the run): the process audit the grader runs at its stops
    (pagoda_pt.procaudit.audit_table: one Running process and it is the current one, every parent
    alive, one kernel-stack slot and one root per live process) over guest RAM; its finding is the
    verdict."""
    from pagoda_pt import procaudit
    from . import kernel

    def story():
        where = next((f.name() for f in _frames(3) if f.name() in procaudit.CONSISTENT_FUNCTIONS), None)
        if where is None:
            return None
        try:
            lay, rows, pointer = kernel.read_table()
        except CommandError:
            return None     # (a kernel before lab 3: no process table)
        with target.physical_memory() as read_phys:
            table, _ = kernel.published_roots(read_phys)
        roots = {r.id: r.root for r in (table.roots if table is not None else []) if r.kind == "process"}
        current = next((r for r in rows if r.current), None)
        return procaudit.audit_table(lay, rows, current, pointer, "where GDB stopped (in %s)" % where.split("::")[-1],
                                     roots)
    return _when_nothing_wrong(lines, story)




def _last_refused_call():
    """The last memory call the kernel refused (its own words), or None."""
    import gdb
    try:
        return gdb.parse_and_eval("(const char*)%s" % C.LAST_REFUSED_CALL).string(errors="replace") or None
    except (gdb.error, RuntimeError, ValueError):
        return None


def _last_failure():
    """(the kernel's last failure line, how many since boot), read from its memory; (None, 0) when
    this kernel keeps none."""
    import gdb
    try:
        count = int(gdb.parse_and_eval(C.FAILURE_COUNT))
        text = gdb.parse_and_eval("(const char*)%s" % C.LAST_FAILURE).string(errors="replace") if count else ""
        return text, count
    except (gdb.error, RuntimeError, ValueError):
        return None, 0


def _with_kernel_failure(lines):
    """A stop with nothing wrong in the CPU's state (the end of a run): the kernel's last failure
    line, when it refused to start a process, is the verdict (its words name the step and the
    address; pagoda_pt.diagnose.kernel_failure_verdict). Otherwise, when the verdict stays "nothing
    is wrong", a line before it says what was checked: the process table and the kernel's failure
    lines (pagoda_pt.diagnose.what_was_checked)."""
    at = _verdict_at(lines)
    if at is None or not lines[at].startswith("verdict: " + NOTHING_WRONG):
        return lines
    from pagoda_pt.diagnose import kernel_failure_verdict, what_was_checked
    from . import kernel
    try:
        text, count = _last_failure()
        sentence = kernel_failure_verdict(text, count)
        if sentence is not None:
            return _overruled(lines, at, "{} (the CPU's state)", sentence)
        checked = what_was_checked(kernel.read_processes(), text, count, _last_refused_call())
    except Exception:  # noqa: BLE001 - an addition: never lose fault-why's own lines to it
        return lines
    return lines[:at] + [checked] + lines[at:]


def _with_stalled_wait(lines):
    """A machine stopped with nothing wrong in the CPU's state (a hang interrupted with Ctrl-C):
    when nothing can run because a parent waits for a child that has already ended
    (pagoda_pt.diagnose.stalled_wait, from the process table), that is the verdict."""
    from pagoda_pt.diagnose import stalled_wait
    from . import kernel
    return _when_nothing_wrong(lines, lambda: stalled_wait(kernel.read_processes()))




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
    from . import kernel
    before = kernel.symbol_address(C.fact_symbol("run_checkpoint_before"))
    try:
        if before is not None and int(gdb.newest_frame().read_var("a")) == before:
            _run["before"] = _checkpoint_bitmap()
            _run["user_frames"].clear()
            _run["table_frames"].clear()
    except (gdb.error, ValueError, RuntimeError):
        pass


def _with_run_leaks(lines):
    """Stopped at a run's end (every process reaped) with nothing wrong in the CPU's state, after a
    why-stops that saw its start: frames in use now that were free then are what the teardowns left
    (pagoda_pt.diagnose.frames_left_after_run), named by what an earlier look saw in them."""
    from pagoda_pt.diagnose import frames_left_after_run

    def story():
        if _run["before"] is None or not (_stopped_in(C.CHECKPOINT) and _checkpoint_is_run_end()):
            return None
        leaked = sorted(i * PAGE for i in _checkpoint_bitmap() - _run["before"])
        return frames_left_after_run(leaked, _run["user_frames"], _run["table_frames"])
    return _when_nothing_wrong(lines, story)




def _with_log_copies(arch, lines):
    """A stop with nothing wrong in the CPU's state: a user copy that QEMU's log shows faulting on the
    argument page at the top of the user stack (pagoda_pt.diagnose.arguments_through_live_root), or
    faulting with SMAP or PAN still up (copy_with_guard_up)."""
    from pagoda_pt.diagnose import arguments_through_live_root, copy_with_guard_up
    from . import kernel

    def story():
        top = kernel.symbol_address(C.fact_symbol("user_stack_top"))
        events = _log_events(arch)
        if top is None or not events:
            return None
        with target.physical_memory() as read_phys:
            fixups = user_fixups(read_phys) or {}
        sentence = arguments_through_live_root(events, fixups, isa(arch), top) if fixups else None
        end = user_end()
        if sentence is None and fixups and end is not None:
            sentence = copy_with_guard_up(events, fixups, end, isa(arch))
        return sentence
    return _when_nothing_wrong(lines, story)


LOG_HEAD_READ = 1 << 20           # bytes of QEMU's log read for its first exceptions


def _first_kernel_fault_address(arch):
    """The address of the first exception QEMU's log (when the session keeps one) shows the kernel
    itself taking (CR2 / FAR; not user mode), or None: in an exception loop it is what started it."""
    path = session.qemu_log_path()
    if not path or not os.path.exists(path):
        return None
    from . import kernel
    with open(path, "rb") as f:
        head = f.read(LOG_HEAD_READ)
    text = head.decode(errors="replace")
    if len(head) == LOG_HEAD_READ:
        text = text[:text.rfind("\n") + 1]
    user = isa(arch).user_privilege
    for event in _faultlog().parse(text, arch, kernel.names(arch)).events:
        if event.kind == "exception" and event.address is not None and event.privilege != user:
            return event.address
    return None




def _kernel_map_story(arch, lines):
    """pagoda_pt.diagnose.image_permission_problem over the kernel ELF's own load segments (read from
    the file GDB loaded) walked in the active root, then pagoda_pt.diagnose.device_at for the fault
    address the lines show and the first one QEMU's log shows the kernel taking, when the active
    root does not map it; None when neither finds anything, or the active root is none the kernel
    published or the boot stub's own (roots.kernel_map_live)."""
    import gdb
    from pagoda_pt.diagnose import device_at, image_permission_problem
    from pagoda_pt.roots import kernel_map_live, root_label
    from . import kernel
    from .paging import active_root, walk_address
    regs = target.paging_regs(arch)
    if target.paging_off_reason(arch, regs) is not None:
        return None
    start = kernel.symbol_address(C.KERNEL_START)
    path = gdb.current_progspace().filename
    elffile = kernel.core_module("elffile")
    try:
        loaded = elffile.elf(path).segments if path and start is not None else ()
    except elffile.ElfError:
        loaded = ()
    segments = [(seg.vaddr & ~(PAGE - 1), (seg.vaddr + seg.memsz + PAGE - 1) & ~(PAGE - 1), seg.perms)
                for seg in loaded if seg.vaddr >= start and seg.memsz]
    guard = kernel.symbol_address(C.BOOT_STACK_GUARD)
    bits = target.pa_bits(arch)[0]
    with target.physical_memory() as read_phys:
        table, _ = kernel.published_roots(read_phys)
        active, model = active_root(arch, regs), isa(arch)
        if not kernel_map_live(table, [model.root_of(regs, r) for r in (model.lower_root, model.upper_root)]):
            return None     # the boot stub's own tables (one rwx map of everything), not the kernel's map
        label = root_label(active, table)

        def walk(va):
            return walk_address(arch, regs, va, read_phys=read_phys, pa_bits=bits)
        story = image_permission_problem(segments, walk, label, skip=(guard,) if guard is not None else ())
        if story is not None:
            return story
        addresses = [a for a in (_fault_address(lines), _quiet(_first_kernel_fault_address, arch)) if a is not None]
        half = kernel.symbol_address(C.fact_symbol("kernel_half_base"))
        kernel_low = start is not None and half is not None and start < half
        bases = {"identity": 0, "device area": kernel.symbol_address(C.fact_symbol("mmio_base")),
                 "window": kernel.symbol_address(C.fact_symbol("window_base"))}
        for address in addresses:
            if not walk(address).mapped:
                story = device_at(address, isa(arch).machine.devices, bases, kernel_low, label)
                if story is not None:
                    return story
    return None


def _with_kernel_map(arch, lines, fault):
    """A stop that is not a fault from user mode: the kernel's own map checked (_kernel_map_story:
    an image segment mapped with other permissions than its ELF's, a device touched where the
    active root maps nothing); what it finds is the verdict, the CPU's own on the line above."""
    at = _verdict_at(lines)
    if at is None or (fault and fault.get("user")):
        return lines
    sentence = _quiet(_kernel_map_story, arch, lines)
    return lines if sentence is None else _overruled(lines, at, "what the CPU shows: {}", sentence)


def _in_user_fault():
    """Whether GDB's stack is in the kernel's kill path (C.USER_FAULT, which never
    returns: the process is being ended for this fault)."""
    return _quiet(_frame_named, C.USER_FAULT) is not None


PROGRAM_BEGIN = "pagoda_program_%s_begin"   # cmake/user.cmake: each embedded program's ELF file


def _program_segments(name):
    """The load segments of the embedded program called @p name (the process's name), read from
    the kernel image at its physical address (pagoda_core.elffile.Segment), or None."""
    from . import kernel
    try:
        begin = kernel.symbol_address(PROGRAM_BEGIN % name) if re.fullmatch(r"[A-Za-z0-9_]+", name) else None
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
        frame = _frame_named(C.USER_FAULT)
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


def _answered_before(arch, fault):
    """How many times QEMU's exception log (when the session keeps one) shows the user fault being
    killed now answered before it (pagoda_pt.diagnose.answered_before); 0 when it cannot tell.
    Only the log's last LOG_READ_END bytes are read: the fault being killed is at its end."""
    from pagoda_pt.diagnose import answered_before
    if fault.get("pc") is None:
        return 0
    try:
        events = _log_events(arch)
        return 0 if events is None else answered_before(events, fault["pc"], fault["address"])
    except Exception:  # noqa: BLE001 - an addition: never lose fault-why's own lines to it
        return 0


def _with_user_decision(arch, lines, fault):
    """@p lines with the verdict of a fault from user mode replaced by what the kernel's fault
    decision makes of it (pagoda_pt.diagnose.user_fault_decision): a demand fault, a
    copy-on-write fault or stack growth is answered and the program goes on; a denied one ends
    the process, for the reason the VMAs give. Unchanged when the process keeps no VMAs (before
    lab 5) or they cannot be read."""
    from pagoda_pt.diagnose import allowed_what_record_refuses, refused_what_record_allows, user_fault_decision
    from . import kernel, memory
    try:
        row = memory.pick_process(kernel.read_processes(), arch, target.paging_regs(arch))
    except Exception:  # noqa: BLE001 - an addition: never lose fault-why's own lines to it
        return lines
    if row.vmas is None:
        return lines
    killing = _in_user_fault()
    fault["killing"] = killing
    answered = _answered_before(arch, fault) if killing else 0
    kind, sentence = user_fault_decision(row.vmas, fault["address"], fault["write"], fault["fetch"],
                                         fault["mapped"], fault["perms"], row.stack_limit,
                                         killing=killing, who=_label(row.pid, row.name),
                                         sp=fault.get("sp"), answered=answered, pc=fault.get("pc"),
                                         segments=_program_segments(row.name),
                                         heap=(row.heap_start, row.brk) if row.brk else None,
                                         swapped=None if fault["mapped"] else _quiet(_swapped, arch, fault["address"]))
    if killing and row.vmas and kind in ("wrong", "deny"):
        # The kernel's own decision on the same record, address and access: it is what the kill
        # path is about to use, and where it disagrees with the record it is the cause.
        asked = _kernel_decision(fault["address"])
        vma = next((v for v in row.vmas if v.start <= fault["address"] < v.end), None)
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
    at = next((i for i, line in enumerate(lines) if line.startswith("verdict: ")), len(lines))
    if kind == "deny" and at < len(lines) and UNRESOLVED in lines[at]:
        # What the walk found stays (it says what the access met); the VMAs say why it is a kill.
        verdict = lines[at].replace(UNRESOLVED, sentence)
    elif kind == "deny":
        verdict = "verdict: %s in user mode: %s" % (fault["who"], sentence)
    else:
        verdict = "verdict: %s: %s" % (fault["who"], sentence)
    return lines[:at] + [verdict]


def kernel_stacks():
    """The kernel stacks' layout (pagoda_pt.verdicts.StackSlots) from the kernel's facts (absolute
    symbols whose value is the constant) and boot.S's labels of boot_stack, or None."""
    from pagoda_pt.verdicts import StackSlots
    from . import kernel
    names = ("stack_base", "kernel_stack_stride", "kernel_stack_guard", "kernel_stack_size",
             "kernel_stack_slots")
    values = [kernel.symbol_address(C.fact_symbol(name)) for name in names]
    boot = tuple(kernel.symbol_address(n) for n in (C.BOOT_STACK_GUARD,) + C.BOOT_STACK)
    return None if None in values else StackSlots(*values, boot_guard=None if None in boot else boot)


def _swapped(arch, address):
    """(slot, its count in the slot map or None) when the live root's entry for @p address is a
    swap entry (lab 7), else None."""
    from pagoda_pt.swap import SWAP_FACTS, swap_slot
    from pagoda_pt.swap import read_swap_state
    from . import kernel
    from .paging import walk_address
    levels = kernel.symbol_address(C.fact_symbol("levels")) or 4
    facts = {name: kernel.symbol_address(C.fact_symbol(name)) or 0 for name in SWAP_FACTS}
    with target.physical_memory() as read_phys:
        result = walk_address(arch, target.paging_regs(arch), address, read_phys=read_phys)
        leaf = result.levels[-1].raw if result.pa is None and len(result.levels) == levels else None
        slot = swap_slot(leaf, facts) if leaf else None
        if slot is None:
            return None
        state = _quiet(read_swap_state, read_phys, kernel.symbol_address)
    return slot, state.count(slot) if state is not None else None


# Kernel code inside which the swap state is mid-change (an eviction, a swap-in, fork's copy before its
# pages are recorded, a fault between mapping a page and recording it): its checks wait for a stop elsewhere.


def _swap_busy():
    """True when a frame on GDB's stack is kernel code that changes the swap state (C.SWAP_CODE),
    unless the only such frame is the newest one stopped before its body ran (a breakpoint on
    forget_user_pages at an exit: its records are still those of the stop before it)."""
    import gdb
    try:
        busy = [f for f in _frames() if (f.name() or "").startswith(C.SWAP_CODE)]
        if not busy:
            return False
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


def _swap_story(arch, rows, anywhere=False):
    """The first eviction slip the swap state shows against the roots of the processes in @p rows
    (pagoda_pt.swap: a page one root still maps after its frame was evicted from another, an entry
    naming a slot the map calls free, a count below its holders, a reverse map that lacks a mapping
    or names one that is gone, slots no one holds), or None: swap is off, or the stop is inside
    code that changes the swap state (_swap_busy), unless @p anywhere (then a slot's count first:
    pagoda_pt.swap.swap_story)."""
    from pagoda_pt.swap import swap_story
    from . import memory
    if not anywhere and _swap_busy():
        return None
    with target.physical_memory() as read_phys:
        return swap_story(memory.swap_census(arch, read_phys, {r.pid for r in rows}), slots_first=anywhere)


def _with_swap(arch, lines):
    """A machine stopped with nothing wrong in the CPU's state (a process's exit, the end of a
    run, a breakpoint) while swap is on (lab 7): the first eviction slip the swap state shows
    (_swap_story) is the verdict, the producer of the lost page a program notices later."""
    return _when_nothing_wrong(lines, lambda: _swap_story(arch, _live_rows()))


WRONG_VARIABLE = "pagoda_why_wrong"


def _set_wrong(lines, fault, overruled):
    """$pagoda_why_wrong: 0 when the verdict names nothing wrong with the kernel
    (program_s_own), else 1; `why-stops` goes on past the stops where it is 0."""
    at = _verdict_at(lines)
    try:
        import gdb
        gdb.set_convenience_variable(WRONG_VARIABLE, 0 if program_s_own(lines[at] if at is not None else None,
                                                                      fault, overruled) else 1)
    except Exception:  # noqa: BLE001 - outside GDB (host tests), or an old GDB
        pass


@command
class FaultWhy(PagodaCommand):
    """Explain the exception the kernel is handling, or why the machine stopped.

Usage: fault-why
Stopped in x86_trap (or in a function it called, such as panic_end): checks that its frame
is a trap frame (else says it is not one), decodes it and names the cause: for a page fault
CR2 is walked in the active root and in every root the kernel published ("mapped in root A,
not in the active root B"), permission denials name the levels that deny, a table entry
holding a virtual address is called that; for a double fault the interrupted stack and what
delivering the exception needed are checked.
Stopped anywhere else (a triple fault paused the machine, Ctrl-C in an exception loop, a
breakpoint): checks the active root (empty? kernel half?), the code at RIP, the stack, the
IDT, the handlers, IST stacks, GDT and TSS, each walked in the active root.
With ./pagoda gdb --int-log the chain of exceptions comes from QEMU's log (a loop is called a
loop).  A fault on a user address names the VMA of the process that covers it, or says
that no VMA does (lab 5; vma-list shows them all).  Stopped in a hang where nothing can
run, a parent waiting for a child that has already ended is named (lab 6); stopped anywhere with
nothing else wrong (at a process's exit, say), two roots sharing a frame that one of them may write
are named, and QEMU's log tells whether the copy-on-write fault or fork left it writable (lab 6).  Stopped in the kill path,
a frame a user page maps that the allocator has freed, or a forked child whose root holds
nothing of its parent's, or a live root that is another process's, or a frame two roots share
while one may write it, is named before the fault (lab 6); and the kernel's own decide_fault and VmaSet::find are called on the fault: where they
disagree with the record (a refused fault the record allows, an allowed one it refuses) that is
the verdict (lab 5).  A refused fault at the stack pointer with no grows-down VMA, or inside
a load segment of the program's ELF that no VMA covers, names the loader's record.  The record is
read against the pages the root maps, at a kill and at any stop with nothing else wrong: one VMA
whose pages carry different permissions (some wider than it grants) is regions merged although
their permissions differ; a hole whose edge leaves pages munmap took in the record is cut a page
off (lab 5).  At any stop with nothing else wrong, kernel stack slots still taken and process roots
still published that no process in the table holds are what a reaped process's teardown left
behind (labs 3, 6).  A loop is the same fault retried with no progress (same root and registers,
nothing but interrupts between, the machine still in it), never alike faults of several
processes.  At a stop with nothing else wrong, what kills nothing where it is made: a user frame
that keeps interrupts off (lab 3); image VMAs of another program than the one the process runs,
and a parent's frame still counting the share of a child that exec'd (lab 6); a record in use with
no VMA of the loader's while its code is mapped, an image page holding the file's bytes past the
segment's, and the kernel's own decide_fault and VmaSet::mergeable asked through GDB (a region that
is no stack grown, regions of different permissions merged) (lab 5); the kernel's own user copy
called once from the null page (a fix-up that returns 0), and QEMU's log showing a copy fault on
the argument page before any process ran (lab 4); at a run's end after why-stops saw its start,
the frames it left allocated (labs 3, 6).  The kernel's own words agree with it: at a kill, what
the kill line says of the same fault from the same record (pagoda_record_words, called through
GDB) ends the verdict; at a stop with nothing else wrong, the kernel's last failure line
(pagoda_last_failure) is the verdict when it refused to start a process or a fork, spawn or exec
failed, and otherwise a "checked:" line says what was looked at (the process table, the failure
lines).  With swap (lab 7): a fault on a swap entry is a swap-in of its slot, or the kernel's bug
when the slot map calls that slot free; at a kill, and at any stop with nothing else wrong outside
the swapper's own code, the first eviction slip the swap state shows against every root
(pagoda_pt/swap.py, what swap-slots lists): a page a root maps that the frame table calls not
resident (evicted from another root only), a page mapped at a held slot's number (a swap entry
written as a present one), a slot named but free, a count below its holders, a
backing slot another entry names, a reverse map that lacks a mapping or names one that is gone,
slots no one holds, more resident frames than the cap.  $pagoda_why_wrong is 1 when the verdict names something
wrong with the kernel, 0 when it is the program's own kill or nothing (why-stops goes on past those).
On AArch64: stopped in aarch64_trap, decodes ESR (class, fault status and level, WnR), walks FAR through TTBR0 or TTBR1 and says what was missing; anywhere else (an exception loop),
shows ESR_EL1, ELR_EL1 and FAR_EL1 and checks that the PC, VBAR_EL1's vector and the stack are
usable.  The last line is always a verdict."""

    name = "fault-why"
    usage = "fault-why"

    def run(self, arg, from_tty):
        parse(arg, max_positional=0)
        target.require_stopped()
        arch = target.current_arch()
        rules = isa(arch).gdb_faults        # the ISA's fact gatherer (faults_<isa>.py)
        if not rules:
            raise CommandError("no fault rules for %s yet" % arch)
        from . import kernel, memory, tempmap
        # (the passes below ask for the process table many times at this one stop: read it once)
        with kernel.reading_once():
            module = importlib.import_module("." + rules, __package__)
            lines, fault = module.explain()
            lines = list(lines)
            if fault and fault.get("user"):
                lines = _with_user_decision(arch, lines, fault)
            before = _verdict_at(lines)
            before = lines[before] if before is not None else None
            lines = _with_kill_causes(arch, lines)
            lines = _with_kernel_map(arch, lines, fault)
            overruled = _verdict_at(lines) is not None and lines[_verdict_at(lines)] != before
            lines = _with_panic(arch, lines, fault)
            lines = _with_stalled_wait(lines)
            # What reaped processes left behind first: a root left published poisons the census.
            lines = _with_leaks(lines)
            lines = _with_run_leaks(lines)
            lines = _with_log_copies(arch, lines)
            lines = _with_swap(arch, lines)
            lines = _with_shared_frames(arch, lines)
            lines = _with_audit(arch, lines)
            lines = _with_process_audit(lines)
            lines = _with_kernel_failure(lines)
            _set_wrong(lines, fault, overruled)
            # Which temp-map slot the address is, and whether it is live (lab 4); the process's VMA
            # that covers a user address, or that none does (lab 5).
            lines = _with_addition(arch, lines, tempmap.describe_fault, "the temp-map slots")
            lines = _with_addition(arch, lines, memory.vma_lines, "the process's VMAs")
        for line in lines:
            out(line)




def _stopped_in(name):
    import gdb
    try:
        frame = gdb.newest_frame()
        return frame is not None and (frame.name() or "") == name
    except gdb.error:
        return False


def _checkpoint_is_run_end():
    """Stopped at pagoda_grader_checkpoint: whether its tag is the end of a run (every process
    reaped), the only checkpoint worth a look."""
    import gdb
    from . import kernel
    ended = kernel.symbol_address(C.fact_symbol("run_checkpoint_ended"))
    try:
        return ended is not None and int(gdb.newest_frame().read_var("a")) == ended
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
            if _stopped_in(C.CHECKPOINT) and not interrupted and not _checkpoint_is_run_end():
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
