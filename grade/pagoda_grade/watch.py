"""What the grader watches in every run of user programs (labs 3 and later): the run's first stops
(Watch: the kernel root, the frame allocator's bitmap, every process root and kernel stack before
any process runs, the process audit and the image watch from then on), the loader's errors
(LoaderWatch), and the system calls the tests stop at. docs/grader.md, "Labs 3-6: what every test
with processes shares"."""
import functools
import re

from pagoda_pt import contract
from . import programs
from .outcomes import BootEnded, finding_first
from .procaudit import LOADER, ProcessAudit, errno_name, loader_error_problem, read_error, result_address
from .processes import (FRAME_ALLOCATOR, Layout, RootInspector, argument_problem, bss_file_bytes, count_used,
                        entry_sp_problem, frame_bitmap, parse_started, process_roots, registry,
                        segment_gap_problem, slot_marks_problem, stack_gap_problem, table_frames, unmarked, user_elf,
                        u64, user_runs)
from .symbols import address_of, fact, segments
from .witness import ARCHES, PAGE, WalkError, return_address

GRADER_MEMORY = "128M"
SPIN_FOREVER = 1 << 40           # a count no spinner reaches: the grader stops them
# What the grader writes into every free frame before the first process is made (Watch.before):
# whatever the kernel hands out unzeroed shows it.
FREE_FILL = 0x5A


def fault_expectation(arch, *, user=True, write=False, fetch=False, mapped=True, noncanonical=False):
    """(vector, error, error_mask) of the exception QEMU must log for one access that faults:
    from user mode (@p user) or the kernel, a write or a fetch, to a page that is @p mapped or not,
    or to a non-canonical address. The one table of what each ISA's CPU reports."""
    proc = ARCHES[arch].proc
    if "esr" not in proc:   # x86_64: the page fault's error code (AArch64: the syndrome)
        if noncanonical:
            return proc["protection_fault"], 0, ~0
        bits = proc["pf_error"]
        error = ((bits["user"] if user else 0) | (bits["present"] if mapped else 0) | (bits["write"] if write else 0)
                 | (bits["fetch"] if fetch else 0))
        return proc["page_fault"], error, ~0
    # AArch64: an abort; the syndrome's class (the same-EL class is the lower-EL one + 1), WnR and
    # fault type. A non-canonical address is a translation fault (in neither TTBR's range).
    esr = proc["esr"]
    ec = esr["instruction_abort" if fetch else "data_abort"] + (0 if user else 1)
    status = esr["permission"] if mapped and not noncanonical else esr["translation"]
    return (proc["instruction_abort" if fetch else "page_fault"], ec << 26 | (esr["wnr"] if write else 0) | status,
            esr["mask"])


def elf_entry(kernel, arch, program):
    """The entry point of user program @p program (None when it is not one of the programs)."""
    try:
        with open(user_elf(kernel, arch, program), "rb") as f:
            head = f.read(0x20)
    except (AssertionError, OSError):
        return None
    return int.from_bytes(head[0x18:0x20], "little") if len(head) == 0x20 and head[:4] == b"\x7fELF" else None


# The generic dispatcher every ISA's system-call entry hands the decoded call to
# (kernel/proc/arch.hpp: i64 syscall(const SyscallArgs& call), SyscallArgs = {number, args[6]}).
DISPATCHER = contract.DISPATCHER


def syscall_args_problem(arch, proc, entry, received):
    """None, or the first value the dispatcher received that is not the one the ABI puts in its
    register: @p entry maps every register (proc["syscall_entry_registers"]) to its value at the
    system-call entry, @p received is the dispatcher's SyscallArgs (number, then six arguments) as
    read from guest memory. When the value received is another register's at the entry, that
    register is named (its role too, when it holds no argument)."""
    def name(r):
        return r.upper() if proc["register_names_upper"] else r

    def source(value, want):
        roles = proc["syscall_entry_roles"]
        held = sorted((r for r in proc["syscall_entry_registers"] if r != want and entry[r] == value),
                      key=lambda r: r not in roles)   # (a register the CPU or the ABI fills, first)
        if not held:
            return "no register held it at the call"
        role = roles.get(held[0])
        return f"{name(held[0])}: {role}" if role else name(held[0])

    regs = (proc["syscall_number"],) + tuple(proc["syscall_args"])
    abi_words = f"the number in {name(regs[0])}, arguments 1-6 in {' '.join(name(r) for r in regs[1:])}"
    for i, (reg, got) in enumerate(zip(regs, received)):
        want = entry[reg]
        if got == want:
            continue
        what = "the system-call number" if i == 0 else f"system-call argument {i}"
        why = next((reason for trap, c_reg, reason in proc["syscall_abi_traps"] if trap == reg and entry[c_reg] == got),
                   f"the {arch} system-call ABI (kernel/lib/abi.hpp) puts "
                   f"{'the number' if i == 0 else f'argument {i}'} in {name(reg)}: {abi_words}")
        return (f"{what} reached the kernel as {got:#x} ({source(got, reg)}), not {want:#x} ({name(reg)}): {why}; "
                f"read in the SyscallArgs the system-call entry handed {DISPATCHER}(), against the registers at the "
                "call")
    return None


class WriteWatch:
    """The run's first write() to the console, followed to its return (a side stop at the system
    call's entry until it comes, then one at its return in the caller's root): a result that is an
    error while the grader reads the whole buffer through the caller's own root, and QEMU's log
    shows no kernel fault on it (a copy that faulted, with SMAP or PAN up say, is causes.py's to
    name), is the user copy refusing a good buffer; a success whose buffer's first bytes (read
    at the call's entry) are nowhere in the serial output once the boot has ended (QEMU gone, its
    output drained: Booter.serial_checks) took the bytes and printed none of them. Either way
    nothing any program says reaches the console, so every test would fail on a missing line.
    That is a finding of the process audit (line 1 of any failure of the test, Run.fail), said
    from outside: the call's result register, the buffer in guest RAM, the serial bytes."""

    LOOK = 64   # system calls looked at for the first write() before the watch gives up
    SAMPLE = 32  # bytes of the buffer looked for on the console (its first chunk: one console write)

    def __init__(self, watch, guest):
        self.watch, self.guest = watch, guest
        self.entry = address_of(watch.kernel, watch.proc["syscall_entry"])
        self.write = syscall_number("Write")
        self.user_end = fact(watch.kernel, "user_end")
        self.left = self.LOOK
        self.call = None   # (root, fd, buf, length, return address) of the write being followed
        self.dispatcher = address_of(watch.kernel, DISPATCHER)
        self.registers = None   # every register at the followed write's entry, until its dispatch
        self.wrong_args = False   # the dispatcher received other arguments than the registers held
        guest.side_stop(self.entry)
        guest.stop_hooks.append(self)

    def finish(self, guest):
        """The return of the write being followed, when the test's script ended between its entry
        and its return (it read the buffer there): one more stop, the event itself (a boot that
        ends first, its process killed in the call, leaves nothing to check)."""
        if self.call is None:
            return
        try:
            guest.stop_at_any([self.call[4]])
        except (BootEnded, AssertionError, OSError):
            pass
        self.guest.side_stops.pop(self.entry, None)

    def read(self, snap, root, fd, buf, length):
        """The @p length bytes at @p buf through @p root when they are a console write's user
        buffer and all mapped, else None."""
        if fd not in (1, 2) or not 0 < length <= PAGE or buf + length > self.user_end:
            return None
        try:
            return snap.read_virt(buf, length, root)
        except (WalkError, ValueError, AssertionError):
            return None

    def __call__(self, snap):
        proc = self.watch.proc
        if self.call is None and snap.pc == self.entry and self.left and snap.lower_root not in self.watch.kernel_roots:
            self.left -= 1
            if snap.register(proc["syscall_number"]) == self.write:
                fd, buf, length = (snap.register(r) for r in proc["syscall_args"][:3])
                said = self.read(snap, snap.lower_root, fd, buf, min(length, self.SAMPLE))
                self.call = (snap.lower_root, fd, buf, length, snap.register(proc["syscall_return_pc"]), said)
                self.registers = {r: snap.register(r) for r in proc["syscall_entry_registers"]}
                self.guest.side_stop(self.call[4])
                self.guest.side_stop(self.dispatcher)
            if self.call is not None or not self.left:
                self.guest.side_stops.pop(self.entry, None)
        elif self.registers is not None and snap.pc == self.dispatcher and snap.lower_root == self.call[0]:
            # The call as the dispatcher received it, against the registers at the call: arguments
            # taken from the wrong registers make write() fail for a reason of its own (EBADF for
            # an fd that came from the buffer's register), which is not the copy's doing.
            self.guest.side_stops.pop(self.dispatcher, None)
            try:   # SyscallArgs: the number, then the arguments
                raw = snap.read_virt(snap.argument(0), 8 * 4)
            except (WalkError, ValueError, AssertionError):
                raw = None
            if raw is not None and self.watch.audit is not None:
                # (the number and write()'s three arguments: the others are the privileged test's)
                received = [u64(raw[8 * i:8 * i + 8]) for i in range(4)]
                problem = syscall_args_problem(self.watch.arch, proc, self.registers, received)
                self.wrong_args = bool(problem)
                self.watch.audit.note(problem and f"at the run's first write() system call: {problem}")
            self.registers = None
        elif self.call is not None and snap.pc == self.call[4] and snap.lower_root == self.call[0]:
            root, fd, buf, length, back, said = self.call
            self.guest.side_stops.pop(back, None)
            self.guest.side_stops.pop(self.dispatcher, None)
            self.call, self.left, self.registers = None, 0, None
            result = snap.register(proc["syscall_result"])
            result -= (1 << 64) if result >> 63 else 0
            if result > 0 and said:
                said = said[:result]
                after = self.read(snap, root, fd, buf, len(said))
                self.guest.booter.serial_checks.append(
                    lambda data: None if said.replace(b"\r", b"") in data.replace(b"\r", b"") else
                    f"write({fd}, {buf:#x}, {length}) returned {result}, read in the caller's result register at its "
                    f"return to user mode, but the {len(said)} bytes its buffer began with at the call ({said!r}, read "
                    "through the caller's own root) never reached the console (the whole boot's serial output): the "
                    "call took the bytes and printed none of them"
                    + ("; and the buffer itself changed during the call (read again at its return): a copy that wrote "
                       "the user's buffer instead of reading it (copy_from_user()'s source and destination swapped?)"
                       if after is not None and after != said else ""))
            if result >= 0 or self.wrong_args or not 0 < length <= PAGE or self.read(snap, root, fd, buf, length) is None:
                return   # (not all mapped: the error may be right; wrong arguments are named above)
            privilege = ARCHES[self.watch.arch].kernel_privilege
            if any(e.privilege == privilege and e.address is not None and buf <= e.address < buf + length
                   for e in self.guest.log_events()):
                return   # (the copy faulted on the buffer: QEMU's log, and causes.py, say why)
            if self.watch.audit is not None:
                said = (f"write({fd}, {buf:#x}, {length}) returned {result} ({errno_name(result)}), read in the caller's "
                        f"result register at its return to user mode, though the grader read all {length} bytes of that "
                        "buffer through the caller's own root (guest RAM)")
                self.watch.audit.note(
                    said + (": the copy from user memory (copy_from_user()) refused a good user buffer" if result == -14
                            else f" and fd {fd} is the console: the call refused good arguments")
                    + ", so nothing the programs write reaches the console")


class Watch:
    """What the witness script of one boot learns, shared with the checks after it: the kernel
    root, the process roots, the kernel stacks, and a RootInspector that can explain a death."""

    def __init__(self, kernel, arch):
        self.kernel = kernel
        self.arch = arch
        self.proc = ARCHES[arch].proc
        self.layout = Layout.of(kernel)
        self.inspector = None
        self.kernel_root = None
        self.kernel_roots = set()  # the kernel root, and on AArch64 the kernel's own TTBR0 root
        self.roots = {}          # root -> label
        self.started = {}        # pid -> Started (the kernel's lines)
        self.bitmap = None       # (address, words) of the used-frame bitmap
        self.plan = None         # the run's heap object
        self.frames_before = None
        self.audit = None        # the process audit at the grader's stops (procaudit.ProcessAudit)
        self.first_write = None      # the run's first write(), followed to its return (WriteWatch)

    def checkpoint(self, guest, name):
        """Runs to the run's checkpoint @p name ('before', 'started', 'ended'); the Snapshot."""
        tag = fact(self.kernel, f"run_checkpoint_{name}")
        for _ in range(8):
            snap = guest.stop_at(contract.CHECKPOINT)
            if snap.argument(0) == tag:
                return snap
        raise AssertionError(f"the run never reached its '{name}' checkpoint")

    def until_touched(self, guest, snap, va, root, what):
        """Lets the guest run until @p root maps @p va, a page its process maps for itself (from
        lab 5 on a page comes at its first touch: spin's spin_stop); returns the Snapshot then,
        at a quiet point (a context switch or a tick), or None once @p root has left the registry
        (its process ended first). @p what names the page, for a deadline that passes meanwhile.

        Only the test's deadline bounds the wait, never a count of stops: on a loaded host (or
        an emulated CPU) a tick may fall due while the kernel switches to a process, and then
        the process is preempted before its first instruction, turn after turn (seen: 30 ticks
        in a row at spin's entry point, and 50 stops were not enough). Between looks the guest
        runs with no breakpoint: one in the scheduler's page makes QEMU run its code one
        instruction at a time, which widens exactly that window."""
        quiet = [self.proc["switch"], contract.TIMER_TICK]
        pause = 0.02
        while not snap.walk(va, root).mapped:
            if root not in process_roots(snap, self.kernel):
                return None
            guest.stop_after(pause, what)
            snap = guest.stop_at_any(quiet)
            pause = min(2 * pause, 0.5)
        return snap

    def before(self, guest):
        """The first stop of a run: the kernel root (the CPU's), the frames in use."""
        snap = self.checkpoint(guest, "before")
        self.kernel_root = snap.root
        self.kernel_roots = {snap.root, snap.lower_root}
        self.roots[snap.root] = "the kernel root"
        if snap.lower_root != snap.root:
            self.roots[snap.lower_root] = "the kernel's TTBR0 root"
        self.inspector = RootInspector(snap, self.kernel, self.arch, snap.root)
        # The allocator's own bitmap, found through the symbol table; the checkpoint's arguments
        # only have to agree with it.
        self.bitmap = frame_bitmap(snap, self.kernel)
        said = (snap.argument(1), snap.argument(2))
        if said != self.bitmap:
            raise AssertionError(f"the run's 'before' checkpoint names a used-frame bitmap at {said[0]:#x} ({said[1]} "
                                 f"words), but the kernel's frame allocator ({FRAME_ALLOCATOR}, read from guest RAM) "
                                 f"works with the one at {self.bitmap[0]:#x} ({self.bitmap[1]} words): the grader counts "
                                 "frames in the allocator's own")
        self.frames_before = count_used(snap, *self.bitmap)
        self.fill_free_frames(guest, self.frames_before[1])
        # From now on, at every stop in a process: it runs the grader's own program (what differs
        # is the test's to explain first, and fails it when nothing else does: Booter.watch_problems).
        guest.stop_hooks.append(programs.ImageWatch(self.arch, self.process_names, self.kernel_roots,
                                                    guest.booter.watch_problems))
        self.start_audit(guest)
        self.first_write = WriteWatch(self, guest)
        return snap

    def start_audit(self, guest):
        """From now on, at every stop where the scheduler's records are consistent, the process
        audit (procaudit.py): its first finding heads any failure of the test (Run.fail)."""
        self.audit = ProcessAudit(self.kernel, self.arch, guest.booter.audit_findings, roots_of=self.pid_roots,
                                  watched=guest.booter.watch_problems)
        guest.stop_hooks.append(self.audit)

    def pid_roots(self, snap):
        """{pid: root} of the process roots the kernel's registry lists now (guest RAM)."""
        return {k.id: k.root for k in registry(snap, self.kernel).roots if k.kind == "process"}

    def fill_free_frames(self, guest, bitmap):
        """Fills every frame the allocator has free (@p bitmap: its used bits) with FREE_FILL, as
        real RAM would hold old data: a frame the kernel hands out without zeroing where zeros
        are due (a bss, a page table) then shows the pattern instead of QEMU's fresh zeros."""
        base, size = guest.machine.ram_base, guest.ram_size
        first, end = base // PAGE, min((base + size) // PAGE, self.bitmap[1] * 64)
        frame = first
        while frame < end:
            if bitmap >> frame & 1:
                frame += 1
                continue
            run = frame
            while run < end and not bitmap >> run & 1:
                run += 1
            guest.fill_phys(frame * PAGE, (run - frame) * PAGE, FREE_FILL)
            frame = run

    def started_stop(self, guest):
        """The run's second stop, every process made and none run (started_check(); lab 5's watch
        also wants each process lazy): its Snapshot."""
        return self.started_check(guest)

    def explained(self, guest, message):
        """@p message, what failed in a test's script, with the cause the watch knows put first."""
        return message

    def started_check(self, guest):
        """The stop after every process is made and none has run: every process root (the
        registry's, walked here) must share the kernel half, map its pages with their own
        permissions (no user page writable and executable, nothing user in the kernel half), and
        every kernel stack (where the kernel says it put them, walked here) must be mapped in
        every root, rw- kernel only, in the kStackBase area, above an unmapped guard. Then the
        first switch: when it loads a process's root, the kernel stack for traps from user mode
        must already be that process's (trap_stack_problem). Raises AssertionError naming the
        first failure. Should the kernel panic before (its own checks: a root made without the
        kernel half, say), the grader walks the roots it has published at that moment first."""
        panic = address_of(self.kernel, contract.PANIC)
        checkpoint = address_of(self.kernel, contract.CHECKPOINT)
        tag = fact(self.kernel, "run_checkpoint_started")
        loader = LoaderWatch(self)
        for _ in range(8):
            snap = guest.stop_at_any([checkpoint, panic, *loader.addresses()])
            while loader.take(snap):   # (not counted: one pair of stops per process made)
                snap = guest.stop_at_any([checkpoint, panic, *loader.addresses()])
            if snap.pc == panic:
                self.root_problems(snap, "when the kernel panicked, before any process ran")
                return self.checkpoint(guest, "started")   # the panic's own words: the boot ends there
            if snap.argument(0) == tag:
                break
        else:
            raise AssertionError("the run never reached its 'started' checkpoint")
        self.plan = snap.argument(1)
        self.started = self.started_lines(guest, snap)
        self.root_problems(snap, "after the processes were made, before any ran", stacks=True)
        self.first_switch(guest)
        return snap

    def started_lines(self, guest, snap):
        """parse_started() of the console once it holds a 'started' line for every process the
        run made (the checkpoint's count; the guest is stopped, but what it printed before may
        still be on its way to the grader): the labels of the kernel stacks the grader walks."""
        want = snap.argument(2)   # how many processes the run says it made: how many lines to wait for
        while True:
            started = parse_started(_Lines(guest.lines()))
            # (until the test's deadline: a kernel that never prints one fails on its missing label)
            if len(started) >= want or not guest.session.pump(0.05):
                return started

    def root_problems(self, snap, when, stacks=False):
        """Walks every process root the registry lists now (and, with @p stacks, every kernel
        stack the kernel says it made) and raises AssertionError with what is wrong."""
        for root, label in process_roots(snap, self.kernel).items():
            self.roots.setdefault(root, f"root {root:#x} of {label}")
        problems = self.own_upper_problems(snap)
        for root, label in self.roots.items():
            if root in self.kernel_roots:
                continue
            half = self.inspector.kernel_half_problem(snap, root)
            if half:
                problems.append(f"{label}: {half}")
        if stacks:
            problems += self.slot_problems(snap) + self.stack_problems(snap)
        if not problems:
            for root, label in self.roots.items():
                if root not in self.kernel_roots:
                    problems += self.inspector.map_problems(snap, root, label)
        if not problems and stacks:
            problems += self.segment_problems(snap)
        if not problems and stacks:
            problems += self.bss_problems(snap)
        if not problems and stacks:
            slots = {self.layout.slot_of(p.stack[0]) for p in self.started.values()} - {None}
            problems += self.inspector.stack_problems(snap, self.kernel_root, slots, "the kernel root")
        if not problems and stacks:
            problems += self.entry_frame_problems(snap)
        if not problems and stacks:
            problems += self.argument_problems(snap)
        if not problems and stacks:
            problems += self.program_problems(snap)
        if not problems and stacks:
            problems += self.bitmap_problems(snap)
        if problems:
            raise AssertionError(finding_first(problems, f"the grader walked every root itself {when}"))

    def own_upper_problems(self, snap):
        """AArch64: a process space that owns a TTBR1 tree (the kernel publishes it as 'own
        ttbr1'; walked here) instead of sharing the kernel's: at its switch TTBR1 would lose the
        kernel half."""
        problems = []
        for k in registry(snap, self.kernel).roots:
            if k.kind == "other" and k.name == "own ttbr1":
                valid = sum(1 for e in snap.table_entries(k.root) if e & 1)
                problems.append(f"a process space gives TTBR1_EL1 a tree of its own, root {k.root:#x} ({valid} valid "
                                f"top-level entries), not the kernel root {self.kernel_root:#x}: a process root without "
                                "the kernel half (its switch would load it into TTBR1, and the vectors, the kernel "
                                "stacks and the kernel itself would be gone)")
        return problems

    def process_segments(self, snap):
        """(root, its loadable segments) of every process root in the registry whose name is one of
        the user programs (the kernel names any other root otherwise)."""
        for k in registry(snap, self.kernel).roots:
            if k.kind != "process":
                continue
            try:
                segs = segments(user_elf(self.kernel, self.arch, k.name))
            except (AssertionError, OSError, ValueError):
                continue
            yield k, segs

    def segment_problems(self, snap):
        """Each process's loadable segments, where its root maps them now, must be mapped with
        the segment's own permissions (its ELF flags: r, w, x; the effective permissions the CPU
        applies, walked here). Before any process ran (the only stop that calls this), a loader
        maps either every page of every segment and of the stack (eager, lab 3) or none of the
        segments and only the stack's top page (lazy, lab 5): an eager loader that leaves a
        segment page out has a loop that stops early or skips a segment."""
        problems = []
        for k, segs in self.process_segments(snap):
            mapped, unmapped = 0, []
            for seg in segs:
                want = ("r" if seg.flags & 6 or seg.flags & 1 else "-") + ("w" if seg.flags & 2 else "-") + \
                    ("x" if seg.flags & 1 else "-")
                for page in range(seg.vaddr - seg.vaddr % PAGE, seg.vaddr + seg.memsz, PAGE):
                    w = snap.walk(page, k.root)
                    mapped += bool(w.mapped)
                    if not w.mapped:
                        unmapped.append((seg, page))
                    if not w.mapped or w.perms.rwx() == want:
                        continue
                    got = w.perms.rwx()
                    rights = ("read", "write", "execute")
                    missing = [r for r, g, x in zip(rights, got, want) if x != "-" and g == "-"]
                    extra = [r for r, g, x in zip(rights, got, want) if x == "-" and g != "-"]
                    why = ": " + "; ".join(([f"{' and '.join(missing)} permission missing"] if missing else []) +
                                           ([f"{' and '.join(extra)} permission it must not have"] if extra else []))
                    if got[1] == "w" and want[2] == "x":
                        why += (": its text is writable and executable" if got[2] == "x" else
                               ": its text is writable, and a writable page is never executable (SCTLR_EL1.WXN): "
                               "the text cannot run (no page may be writable and executable at once)")
                    problems.append(f"{self.roots.get(k.root, hex(k.root))}: {k.name}'s segment [{seg.vaddr:#x}, "
                                    f"{seg.vaddr + seg.memsz:#x}) is {want} in its ELF but mapped {got} at {page:#x}"
                                    f"{why}: the loader must map each segment with its own permissions")
                    break
            # An eager loader also maps the whole user stack; a lazy one only its top page (the arguments').
            below_top = fact(self.kernel, "user_stack_top") - 2 * PAGE
            gap = segment_gap_problem(f"{self.roots.get(k.root, hex(k.root))}: {k.name}", unmapped, mapped,
                                      snap.walk(below_top, k.root).mapped)
            if gap:
                problems.append(gap)
            elif mapped and not unmapped:
                # Eager: every page of the stack below the arguments' page is mapped too.
                top_page = fact(self.kernel, "user_stack_top") - PAGE
                bottom = top_page + PAGE - fact(self.kernel, "user_stack_pages") * PAGE
                holes = [va for va in range(bottom, top_page, PAGE) if not snap.walk(va, k.root).mapped]
                gap = stack_gap_problem(f"{self.roots.get(k.root, hex(k.root))}: {k.name}", holes, bottom, top_page)
                if gap:
                    problems.append(gap)
        return problems

    def bss_problems(self, snap):
        """Each process's bss (the bytes of a loadable segment past its file size), where its
        root maps it now, must read as zeros: the frames came from the allocator, which
        fill_free_frames() filled with FREE_FILL."""
        problems = []
        embedded = programs.embedded(self.kernel)   # the files the kernel loads (their segments are the grader's)
        for k, segs in self.process_segments(snap):
            elf = embedded.get(k.name) or b""
            for seg in segs:
                va, end = seg.vaddr + seg.filesz, seg.vaddr + seg.memsz
                while va < end:
                    stop = min((va // PAGE + 1) * PAGE, end)
                    pa = snap.translate(va, k.root)
                    data = snap.read_phys(pa, stop - va) if pa is not None else b""
                    at = next((i for i, b in enumerate(data) if b), None)
                    origin = bss_file_bytes(elf, seg, va + at, data[at:at + 8]) if at is not None else None
                    if origin is not None:
                        problems.append(
                            f"{self.roots.get(k.root, hex(k.root))}: {k.name}'s bss [{seg.vaddr + seg.filesz:#x}, "
                            f"{end:#x}) holds bytes of its ELF file, not zeros: at {va + at:#x} it holds "
                            f"{data[at:at + 8].hex()}, the file's bytes at offset {origin:#x}, past the segment's "
                            f"{seg.filesz:#x} bytes of file: the loader copied more of the file than the segment's file "
                            "size (p_filesz; the rest up to p_memsz is the bss, zeros)")
                        break
                    if at is not None:
                        problems.append(
                            f"{self.roots.get(k.root, hex(k.root))}: {k.name}'s bss [{seg.vaddr + seg.filesz:#x}, "
                            f"{end:#x}) is not zeroed: at {va + at:#x} (frame {pa - (va % PAGE):#x}) it holds "
                            f"{data[at:at + 8].hex()} (the grader filled every free frame with {FREE_FILL:#04x} before "
                            "the processes were made): the loader mapped a frame there without zeroing it")
                        break
                    va = stop
        return problems

    def entry_frame_problems(self, snap):
        """Each new process's first frame (arch::prepare_user_entry's, at the top of its kernel
        stack; read here before it runs): its return must go to user mode (x86_64: CS and SS of
        RPL 3; AArch64: SPSR's M = EL0t) with interrupts enabled (RFLAGS.IF; SPSR's I clear), to
        a user PC in an executable page of its root and a user stack pointer."""
        size = fact(self.kernel, "user_frame_size")
        problems = []
        for p in sorted(self.started.values(), key=lambda s: s.pid):
            base = p.stack[1] - size
            word = lambda name: u64(snap.read_virt(base + fact(self.kernel, name), 8))
            pc, sp, flags = word("user_frame_pc"), word("user_frame_sp"), word("user_frame_flags")
            what = f"pid {p.pid} ({p.name})'s first frame (at the top of its kernel stack, {base:#x})"
            before = len(problems)
            if self.proc["entry_selectors"]:
                cs, ss = word("user_frame_cs"), word("user_frame_ss")
                if cs & 3 != 3 or ss & 3 != 3:
                    problems.append(f"{what} returns to ring {cs & 3}: CS {cs:#x}, SS {ss:#x}; the IRETQ enters "
                                    "ring 3 only with the user selectors (RPL 3)")
            elif flags & 0xF != 0:
                problems.append(f"{what} has SPSR {flags:#x}: M[3:0] = {flags & 0xF:#x}, not EL0t (0): the "
                                "ERET does not enter EL0")
            from pagoda_pt.verdicts import user_interrupts_masked
            masked = None if len(problems) > before else user_interrupts_masked(
                [(f"proc {p.pid} ({p.name})", base, ARCHES[self.arch].isa.user_irqs_masked(flags))],
                seen="VA %#x, read from guest RAM")
            if masked:
                problems.append(masked)
            if problems:
                continue
            entry = elf_entry(self.kernel, self.arch, p.name)
            stack_top = fact(self.kernel, "user_stack_top")
            off_stack = entry_sp_problem(what, pc, sp, stack_top - fact(self.kernel, "user_stack_limit"), stack_top)
            if pc < self.layout.kernel_half_base and (entry is None or pc == entry) and off_stack:
                problems.append(off_stack)
                continue
            if (entry is not None and pc != entry) or pc >= self.layout.kernel_half_base or \
                    sp >= self.layout.kernel_half_base:
                problems.append(f"{what} returns to PC {pc:#x} on stack {sp:#x}: the PC must be the program's entry"
                                f"{f' ({entry:#x})' if entry is not None else ''} and the stack its user stack, both in "
                                "the user half")
        return problems

    def argument_problems(self, snap):
        """Each new process's arguments (before it runs): its entry frame's argument registers
        (argc, argv: the process-entry convention) against its argument page, the top page of its
        user stack, read through its own root (argument_problem)."""
        size = fact(self.kernel, "user_frame_size")
        top = fact(self.kernel, "user_stack_top")
        problems = []
        for p in sorted(self.started.values(), key=lambda s: s.pid):
            base = p.stack[1] - size
            argc, argv = (u64(snap.read_virt(base + fact(self.kernel, f"user_frame_{r}"), 8)) for r in ("argc", "argv"))
            pa = snap.translate(top - PAGE, p.root)
            if pa is None:
                continue   # (the segment and stack checks name a missing page)
            problem = argument_problem(f"pid {p.pid} ({p.name})", p.name, argc, argv, top - PAGE, snap.read_phys(pa, PAGE))
            if problem:
                problems.append(problem)
        return problems

    def slot_problems(self, snap):
        """The kernel-stack slots the started processes hold must be distinct and marked taken in
        the kernel's slot table (kernel/proc/kernel_stack.cpp's g_used, read from guest RAM):
        slot_marks_problem."""
        try:
            table = address_of(self.kernel, contract.SLOT_TABLE)
        except AssertionError:
            return []
        marks = snap.read_virt(table, self.layout.slots)
        problem = slot_marks_problem(self.started, self.layout.slot_of, lambda slot: marks[slot] != 0)
        return [problem] if problem else []

    def whose_stack(self, value):
        """Whose kernel stack @p value (a stack top) is, in words."""
        if value == 0:
            return "never set"
        for p in self.started.values():
            bottom, top = p.stack
            if bottom < value <= top:
                return (f"the top of pid {p.pid} ({p.name})'s kernel stack" if value == top else
                        f"inside pid {p.pid} ({p.name})'s kernel stack [{bottom:#x}, {top:#x}), not its top")
        slot = self.layout.slot_of(value - 1)
        return f"in kernel-stack slot {slot}, which no process started with" if slot is not None else \
            "on no process's kernel stack"

    def trap_stack_problem(self, root, at_load, at_switch):
        """What is wrong with the kernel stack a trap from user mode will land on, at the switch
        that loads process root @p root (None: nothing). @p at_load and @p at_switch are
        user_trap_stacks() read where the switch loads the root and at its switch_context (None:
        not read). It must be the top of that process's own kernel stack, and set before the root
        is loaded (the pre-switch check walks it in the new root)."""
        owner = next((p for p in self.started.values() if p.root == root), None)
        if owner is None:
            return None
        bottom, top = owner.stack
        for (what, value), (_, later) in zip(at_load, at_switch or at_load):
            if value == top:
                continue
            head = (f"the kernel stack for traps from user mode is wrong when the switch to pid {owner.pid} "
                    f"({owner.name}) loads its root: {what} is " + (
                        "not found (the entry, run from there, never set its stack pointer)" if value is None else
                        f"{value:#x} ({self.whose_stack(value)})") + f", not {top:#x}, the top of its kernel stack "
                    f"[{bottom:#x}, {top:#x})")
            if at_switch is None:
                return head
            if later == top:
                return (head + "; at switch_context it is right: the switch sets it only after the root. Set the next "
                        "process's kernel stack first, then load its root, then switch contexts")
            return head + (f"; at switch_context it is still {later if later is None else hex(later)}: the switch "
                           "never sets it for the next process (arch::set_kernel_stack(its top), before its root is "
                           "loaded), so its first trap from user mode lands on a stack that is not its own")
        return None

    def unwritten_stack(self, values):
        """The sentence when the first place a trap from user mode takes its stack (@p values:
        user_trap_stacks()) is 0 while another holds the top of a process's kernel stack: the
        function that sets both ran and never wrote the first. None otherwise."""
        tops = {p.stack[1] for p in self.started.values()}
        (first, unset), other = values[0], next(((w, v) for w, v in values[1:] if v in tops), None)
        if unset != 0 or other is None:
            return None
        return (f"{first} is 0 while {other[0]}, which arch::set_kernel_stack() sets beside it, holds {other[1]:#x}, "
                f"the top of a process's kernel stack: set_kernel_stack() ran and never wrote {first}, so an "
                "interrupt or exception from user mode has no kernel stack to land on")

    def first_switch(self, guest):
        """Stops where the first switch loads a process root and checks the kernel stack for
        traps from user mode there, and again at that switch's switch_context when it is wrong
        (trap_stack_problem); at a panic before (the kernel's own check refused the switch), a
        trap stack left unwritten is the audit's finding (unwritten_stack)."""
        snap = guest.stop_at_any([address_of(self.kernel, n) for n in (self.proc["root_loader"], contract.PANIC)])
        if snap.pc != address_of(self.kernel, self.proc["root_loader"]):
            if self.audit is not None:
                self.audit.note(self.unwritten_stack(guest.user_trap_stacks(snap)))
            snap = guest.stop_at(self.proc["root_loader"])   # (never reached: the panic's words follow)
        root = snap.register(self.proc["root_loader_arg"]) & ~0xFFF
        at_load = guest.user_trap_stacks(snap)
        if self.trap_stack_problem(root, at_load, None) is None:
            return
        if self.audit is not None:
            self.audit.note(self.unwritten_stack(at_load))
        at_switch = guest.user_trap_stacks(guest.stop_at(self.proc["switch"]))
        raise AssertionError(self.trap_stack_problem(root, at_load, at_switch))

    def process_names(self, snap):
        """{root: program name} of the process roots the registry lists."""
        return {k.root: k.name for k in registry(snap, self.kernel).roots if k.kind == "process"}

    def program_problems(self, snap):
        """Each process root's pages of its program's image must hold the grader's own build of
        that program (programs.py): what runs is what the test relies on."""
        known = set(programs.names(self.arch))
        problems = []
        for root, name in self.process_names(snap).items():
            if name not in known:
                continue
            runs = self.inspector.dump(snap, root)
            if isinstance(runs, WalkError):
                problems.append(f"{self.roots.get(root, hex(root))}: the grader's walk of it cannot finish: {runs}")
                continue
            problems += [f"{self.roots.get(root, hex(root))}: {p}" for p in programs.image_problems(snap, runs, name,
                                                                                                   self.arch)]
        return problems

    def bitmap_problems(self, snap):
        """The used-frame bitmap is the one the allocator works with now: every frame the grader
        finds in a process root (its user pages, its tables) and under every kernel stack must be
        marked used in it (a frozen copy made before the processes were is not)."""
        _, bits = count_used(snap, *self.bitmap)
        for root, label in self.roots.items():
            if root in self.kernel_roots:
                continue
            runs = self.inspector.dump(snap, root)
            if isinstance(runs, WalkError):
                continue
            ranges = [(r.pa_start, r.pa_start + r.va_end - r.va_start) for r in user_runs(runs, self.layout)]
            ranges += [(f, f + PAGE) for f in table_frames(snap, root)]
            missing = unmarked(bits, ranges, self.bitmap[1])
            if missing:
                return [f"{label} maps frame(s) {', '.join(hex(f) for f in missing)}, which the frame allocator's used "
                        f"bitmap ({self.bitmap[0]:#x}, read from guest RAM) does not mark used: the frames a process "
                        "holds must come from the allocator (or the bitmap the grader reads is not the one in use)"]
        return []

    def stack_problems(self, snap):
        problems = []
        for p in self.started.values():
            bottom, top = p.stack
            slot = self.layout.slot_of(bottom)
            what = f"the kernel stack of pid {p.pid} ({p.name}) [{bottom:#x}, {top:#x})"
            if slot is None or self.layout.stack(slot) != (bottom, top):
                problems.append(f"{what} is not a stack slot of the kStackBase area "
                                f"({self.layout.stack_base:#x} + n * {self.layout.stride:#x} + {self.layout.guard:#x})")
                continue
            have = [r for r in self.roots if all(snap.walk(va, r).mapped for va in range(bottom, top, PAGE))]
            lack = [r for r in self.roots if r not in have]
            if lack:
                where = ", ".join(self.roots[r] for r in have) or "no root at all"
                problems.append(f"{what} is mapped in {where} but not in {', '.join(self.roots[r] for r in lack)}: a "
                                "kernel stack mapped only in the root where it was allocated (an interrupt or a switch "
                                "on it in another root cannot push its frame)")
        return problems

    def live_problem(self, snap, kernel_sp=True):
        """What is wrong with the roots the CPU holds at @p snap, a stop in a process (None: nothing):
        x86_64, CR3's kernel half; AArch64, TTBR1 not holding the kernel root; and, when the stop's
        SP is the kernel's (@p kernel_sp), a kernel stack in the user half."""
        root = snap.lower_root
        if root in self.kernel_roots or self.inspector is None:
            return None
        label = self.roots.get(root, f"root {root:#x}")
        if kernel_sp and snap.sp < self.layout.kernel_half_base:
            return (f"{label} is live and the kernel runs on SP {snap.sp:#x}, in the user half ("
                    f"{self.proc['user_half_words']}'s range): a kernel stack reached "
                    "through the process's own root, which the next switch of roots unmaps (kernel stacks belong in "
                    "the kStackBase area of the kernel half)")
        why = self.inspector.kernel_half_problem(snap, root)
        return f"{label}: {why}" if why else None

    def register_sp_low(self, snap):
        """True when the stack pointer a switch is about to load lies in the user half."""
        return snap.register(self.proc["switch_next_sp"]) < self.layout.kernel_half_base

    def fail(self, run, message):
        """run.fail() with, when the machine died, what the grader can say about why."""
        from .causes import explain_death   # (a failure's wording, loaded for one)
        why = explain_death(run, self.inspector, self.layout, self.roots, self.started)
        run.fail(message, cause=why)

    def require(self, run):
        """The witness's result, or a failure that names why the guest never got there."""
        if run.witness is None:
            from .causes import explain_death
            why = explain_death(run, self.inspector, self.layout, self.roots, self.started)
            run.fail(run.witness_failure or "the grader could not look at the guest", cause=why)
        return run.witness


class _Lines:
    def __init__(self, lines):
        self.lines = lines


class LoaderWatch:
    """Stops at each load_program() before the processes start, and at its return: when it
    failed, what the grader reads of its Error and of the new root then (procaudit's
    loader_error_problem()) goes to the boot's audit findings, ahead of the kernel's one-line
    'run: cannot start' and of the test's symptom."""

    def __init__(self, watch):
        self.watch = watch
        try:
            self.entry = address_of(watch.kernel, LOADER)
        except AssertionError:
            self.entry = None   # (inlined: nothing to see)
        self.pending = {}       # return address -> the Result's address

    def addresses(self):
        return ([self.entry] if self.entry is not None else []) + sorted(self.pending)

    def take(self, snap):
        if snap.pc == self.entry:
            self.pending[return_address(snap)] = result_address(snap)
            return True
        if snap.pc not in self.pending:
            return False
        result = self.pending.pop(snap.pc)
        if self.watch.audit is None:
            return True
        try:
            error = read_error(snap, self.watch.kernel, result)
            if error is None:
                return True
            newest = max((k for k in registry(snap, self.watch.kernel).roots if k.kind == "process"),
                         key=lambda k: k.id, default=None)
            top = fact(self.watch.kernel, "user_stack_top")
            page = None
            if newest is not None and snap.walk(top - PAGE, newest.root).mapped:
                page = snap.read_virt(top - PAGE, PAGE, newest.root)
            self.watch.audit.note(loader_error_problem(error, f"{newest.name} (pid {newest.id})" if newest else "a "
                                                       "process", top, page))
        except (AssertionError, ValueError):
            pass
        return True


def user_text(kernel, arch, program):
    """[start, end) of the executable segment of a user program."""
    segs = [s for s in segments(user_elf(kernel, arch, program)) if s.flags & 1]
    return segs[0].vaddr, segs[0].vaddr + segs[0].memsz


@functools.lru_cache(maxsize=1)
def _syscall_names():
    """{number: name} of kernel/lib/abi.hpp's enum class Syscall (read, not copied; the grader's
    copy, which its user programs are built with)."""
    with open(programs.abi_header()) as f:
        block = re.search(r"enum class Syscall\b.*?\n};", f.read(), re.S)[0]
    return {int(n): name for name, n in re.findall(r"^\s*([A-Z]\w*) = (\d+),", block, re.M)}


def last_test_call():
    """The highest test-call number: the numbers above it, up to kSyscallCount - 1, are reserved
    and return ENOSYS."""
    return max(n for n in _syscall_names() if 64 <= n < 128)


def last_general_call():
    """The highest general call number: the numbers above it, below the first test call (64), are
    reserved and return ENOSYS."""
    return max(n for n in _syscall_names() if n < 64)


def syscall_number(name):
    """System call @p name's number."""
    return next(n for n, named in _syscall_names().items() if named == name)


def syscall_name(number):
    """The name kernel/lib/abi.hpp gives system call @p number, or the number in words."""
    return _syscall_names().get(number, str(number))
