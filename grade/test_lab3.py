"""Lab 3 — per-process roots: the grader's checks. Points and timeouts: labs/03-process-roots/lab.toml.

What each test witnesses and what it still believes: docs/grader.md, "What the grader trusts".
Every boot runs user programs (user/programs/) with run=...; the grader stops the guest where it
likes (the run's checkpoints, the system-call entry, the context switch, instants it picks),
reads the CPU's roots and stack pointers through the gdbstub, and walks every root in guest RAM
itself. The kernel's own lines only label what the grader sees ("proc 2 (spin)").

Every witnessed boot first checks the roots of the processes it is about to run (after they are
made, before any runs): the kernel half shared with the kernel root, and every kernel stack
mapped in every root. So the two classic failures of this lab are named before the machine
dies of them, whether the kernel's pre-switch check is on or off (vm_check=off)."""
import re

from pagoda_core import qemu

from pagoda_grade import churn, lab_test, programs
from pagoda_grade.lifecycle import return_address
from pagoda_grade.procaudit import LOADER, ProcessAudit, loader_error_problem, read_error, result_address
from pagoda_grade.processes import (FRAME_ALLOCATOR, HEX, Layout, RootInspector, argument_problem, count_used,
                                    bss_file_bytes, entry_sp_problem, explain_death, segment_gap_problem,
                                    slot_marks_problem, stack_gap_problem,
                                    frame_bitmap, is_used, kernel_faults, parse_kills, parse_reaped, parse_started,
                                    process_roots, registry, table_frames, unmarked, user_elf, user_page_frames,
                                    user_runs, user_symbol, written)
from pagoda_grade.outcomes import finding_first
from pagoda_grade.proof import proof
from pagoda_grade.symbols import address_of, fact, segments
from pagoda_grade.witness import ARCHES, MACHINES, PAGE, WalkError, expect_fault, pick_in, pick_page, window_ram

# Values the user programs compute from the token with the same tags (user/programs/*.cpp).
HELLO_TAG = 0x4845   # "HE"
TICKER_TAG = 0x544B  # "TK"
FUZZ_TAG = 0x465A    # "FZ"
FUZZ_CALLS = 10_000
ENOSYS = 38
SPIN_FOREVER = 1 << 40           # a count no spinner reaches: the grader stops them
GRADER_MEMORY = "128M"
# The kernel's kernel-stack slot table (kernel/proc/kernel_stack.cpp): one bool per slot, true when taken.
SLOT_TABLE = "pagoda::proc::(anonymous namespace)::g_used"
# AArch64's ASID table (arch/aarch64/address_space.cpp): bit n set while ASID n is taken; kAsids of them.
ASID_TABLE = "pagoda::aarch64::(anonymous namespace)::g_asids_used"
ASIDS = 256
# What the grader writes into every free frame before the first process is made (Watch.before):
# whatever the kernel hands out unzeroed shows it.
FREE_FILL = 0x5A


def u64(data):
    return int.from_bytes(data, "little")


def run_spec(*programs):
    return ",".join(programs)


def fault_expectation(arch, *, user=True, write=False, fetch=False, mapped=True, noncanonical=False):
    """(vector, error, error_mask) of the exception QEMU must log for one access that faults:
    from user mode (@p user) or the kernel, a write or a fetch, to a page that is @p mapped or not,
    or to a non-canonical address. The one table of what each ISA's CPU reports."""
    proc = ARCHES[arch].proc
    if arch == "x86_64":
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

    def checkpoint(self, guest, name):
        """Runs to the run's checkpoint @p name ('before', 'started', 'ended'); the Snapshot."""
        tag = fact(self.kernel, f"run_checkpoint_{name}")
        for _ in range(8):
            snap = guest.stop_at("pagoda_grader_checkpoint")
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
        quiet = [self.proc["switch"], "pagoda::proc::timer_tick"]
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
        return snap

    def start_audit(self, guest):
        """From now on, at every stop where the scheduler's records are consistent, the process
        audit (procaudit.py): its first finding heads any failure of the test (Run.fail)."""
        self.audit = ProcessAudit(self.kernel, self.arch, guest.booter.audit_findings, roots_of=self.pid_roots)
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
        panic = address_of(self.kernel, "pagoda::panic_begin")
        checkpoint = address_of(self.kernel, "pagoda_grader_checkpoint")
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
            if self.arch == "x86_64":
                cs, ss = word("user_frame_cs"), word("user_frame_ss")
                if cs & 3 != 3 or ss & 3 != 3:
                    problems.append(f"{what} returns to ring {cs & 3}: CS {cs:#x}, SS {ss:#x}; the IRETQ enters "
                                    "ring 3 only with the user selectors (RPL 3)")
                elif not flags & (1 << 9):
                    problems.append(f"{what} has RFLAGS {flags:#x}: IF is clear, so the process runs in ring 3 "
                                    "with interrupts disabled and the timer can never preempt it (set RFLAGS.IF in "
                                    "the entry frame)")
            else:
                if flags & 0xF != 0:
                    problems.append(f"{what} has SPSR {flags:#x}: M[3:0] = {flags & 0xF:#x}, not EL0t (0): the "
                                    "ERET does not enter EL0")
                elif flags & (1 << 7):
                    problems.append(f"{what} has SPSR {flags:#x}: the I bit is set, so the process runs in EL0 "
                                    "with IRQs masked and the timer can never preempt it (leave D A I F clear in "
                                    "the entry frame)")
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
            table = address_of(self.kernel, SLOT_TABLE)
        except AssertionError:
            return []
        marks = snap.read_virt(table, self.layout.slots)
        problem = slot_marks_problem(self.started, self.layout.slot_of, lambda slot: marks[slot] != 0)
        return [problem] if problem else []

    def user_trap_stacks(self, snap):
        """[(what, value)]: where the next trap from user mode lands, read in guest RAM where the
        CPU takes it (x86_64: TSS.RSP0, and the stack x86_syscall_entry loads; AArch64: the EL1
        stack every vector entry from EL0 loads)."""
        out = []
        for what, symbol, offset in self.proc["user_trap_stacks"]:
            va = address_of(self.kernel, symbol) + (fact(self.kernel, offset) if offset else 0)
            out.append((what, u64(snap.read_virt(va, 8))))
        return out

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
                    f"({owner.name}) loads its root: {what} is {value:#x} ({self.whose_stack(value)}), not {top:#x}, "
                    f"the top of its kernel stack [{bottom:#x}, {top:#x})")
            if at_switch is None:
                return head
            if later == top:
                return (head + "; at switch_context it is right: the switch sets it only after the root. Set the next "
                        "process's kernel stack first, then load its root, then switch contexts")
            return head + (f"; at switch_context it is still {later:#x}: the switch never sets it for the next process "
                           "(arch::set_kernel_stack(its top), before its root is loaded), so its first trap from user "
                           "mode lands on a stack that is not its own")
        return None

    def first_switch(self, guest):
        """Stops where the first switch loads a process root and checks the kernel stack for
        traps from user mode there, and again at that switch's switch_context when it is wrong
        (trap_stack_problem)."""
        snap = guest.stop_at(self.proc["root_loader"])
        root = snap.register(self.proc["root_loader_arg"]) & ~0xFFF
        at_load = self.user_trap_stacks(snap)
        if self.trap_stack_problem(root, at_load, None) is None:
            return
        at_switch = self.user_trap_stacks(guest.stop_at(self.proc["switch"]))
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
            ranges += [(f, f + PAGE) for f in table_frames(snap, root, self.kernel, self.arch)]
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
                    f"{'TTBR0' if self.arch == 'aarch64' else 'the lower half of CR3'}'s range): a kernel stack reached "
                    "through the process's own root, which the next switch of roots unmaps (kernel stacks belong in "
                    "the kStackBase area of the kernel half)")
        why = self.inspector.kernel_half_problem(snap, root)
        return f"{label}: {why}" if why else None

    def register_sp_low(self, snap):
        """True when the stack pointer a switch is about to load lies in the user half."""
        return snap.register(self.proc["switch_next_sp"]) < self.layout.kernel_half_base

    def fail(self, run, message):
        """run.fail() with, when the machine died, what the grader can say about why."""
        why = explain_death(run, self.inspector, self.layout, self.roots, self.started)
        run.fail(message, cause=why)

    def require(self, run):
        """The witness's result, or a failure that names why the guest never got there."""
        if run.witness is None:
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


def syscall_stops(guest, watch, want, limit=40):
    """Stops at the system-call entry until a call numbered @p want (a set); the Snapshot."""
    number = watch.proc["syscall_number"]
    for _ in range(limit):
        snap = guest.stop_at(watch.proc["syscall_entry"])
        if snap.register(number) in want:
            return snap
    raise AssertionError(f"no system call numbered {sorted(want)} in {limit} calls")


# The generic dispatcher every ISA's system-call entry hands the decoded call to
# (kernel/proc/arch.hpp: i64 syscall(const SyscallArgs& call), SyscallArgs = {number, args[6]}).
DISPATCHER = "pagoda::proc::syscall"


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


def user_text(kernel, arch, program):
    """[start, end) of the executable segment of a user program."""
    from pagoda_grade.symbols import segments
    segs = [s for s in segments(user_elf(kernel, arch, program)) if s.flags & 1]
    return segs[0].vaddr, segs[0].vaddr + segs[0].memsz


def collatz_steps(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def last_test_call():
    """The highest test-call number kernel/lib/abi.hpp names (read, not copied; the grader's copy,
    which its user programs are built with): the numbers above it, up to kSyscallCount - 1, are
    reserved and return ENOSYS."""
    with open(programs.abi_header()) as f:
        numbers = [int(n) for n in re.findall(r"^\s*[A-Z]\w* = (\d+),", f.read(), re.M)]
    return max(n for n in numbers if 64 <= n < 128)


def last_general_call():
    """The highest general call number kernel/lib/abi.hpp names (read, not copied): the numbers
    above it, below the first test call (64), are reserved and return ENOSYS."""
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "kernel", "lib", "abi.hpp")
    with open(path) as f:
        block = re.search(r"enum class Syscall\b.*?\n};", f.read(), re.S)[0]
    return max(int(n) for n in re.findall(r"^\s*[A-Z]\w* = (\d+),", block, re.M) if int(n) < 64)


def syscall_number(name):
    """Numbers from kernel/lib/abi.hpp (read, not copied; the grader's copy)."""
    with open(programs.abi_header()) as f:
        m = re.search(rf"^\s*{name} = (\d+),", f.read(), re.M)
    return int(m[1])


# ---- hello from user mode ------------------------------------------------------------------------

@lab_test(3, "hello_user")
def test_hello_user(boot, kernel, arch):
    token = boot.fresh_token()
    n = 1 + proof(token, HELLO_TAG) % 1_000_000
    steps = collatz_steps(n)
    want = f"hello: from user space on {arch}: collatz({n}) takes {steps} steps proof={proof(token, steps):016x}\n"
    watch = Watch(kernel, arch)
    text = user_text(kernel, arch, "hello")
    write = syscall_number("Write")

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        snap = syscall_stops(guest, watch, {write})
        fd, buf, _ = (snap.register(r) for r in watch.proc["syscall_args"][:3])
        page = snap.walk(buf)
        return dict(root=snap.lower_root, live=watch.live_problem(snap, watch.proc["syscall_entry_kernel_sp"]),
                    pc=snap.register(watch.proc["syscall_return_pc"]), fd=fd,
                    data=written(snap, watch.proc, most=PAGE), user=page.mapped and page.perms.user)

    run = boot(args={"run": "hello"}, token=token, witness=script)
    w = watch.require(run)
    if w["live"]:
        run.fail(f"at hello's write system call: {w['live']}")
    if w["root"] in watch.kernel_roots or w["root"] not in watch.roots:
        run.fail(f"the write system call came with root {w['root']:#x} loaded, not a process root the kernel "
                 "published: hello does not run in a root of its own")
    if not text[0] <= w["pc"] < text[1]:
        run.fail(f"the write system call returns to {w['pc']:#x}, outside hello's text [{text[0]:#x}, {text[1]:#x}): "
                 "it did not come from the program in user mode")
    if w["fd"] != 1 or not w["user"]:
        run.fail(f"the write system call has fd {w['fd']} and a buffer on a {'user' if w['user'] else 'NON-user'} page")
    if w["data"].decode(errors="replace") != want:
        run.fail(f"the buffer hello passed to write (read by the grader through its root) holds "
                 f"{w['data'][:120]!r}, expected {want!r}: the value was not computed in user space")
    line = want.rstrip("\n")
    again = [l for l in run.lines if len(l) >= 8 and l != line and line.endswith(l)]
    if again:
        reg = "RAX" if arch == "x86_64" else "x0"
        run.fail(f"hello's line came out again, shorter each time ({len(again)} more lines: {again[0][:40]!r}, ...): "
                 f"its write() returned less than it wrote (the user library writes the rest again), so the system "
                 f"call's result never reached the caller: {reg}, where the result goes back, still held what it held "
                 "at the call (the number, or the first argument); the system-call entry must write proc::syscall()'s "
                 f"result into the frame's {reg}")
    run.expect(re.escape(line) + "$", "hello's line on the console")
    if parse_reaped(run).get(1) != "exited with code 0":
        watch.fail(run, "missing: 'proc 1 (hello): reaped: exited with code 0'")
    run.expect_outcome("success")


# ---- two roots, one address ----------------------------------------------------------------------

@lab_test(3, "separate_roots")
def test_separate_roots(boot, kernel, arch):
    token = boot.fresh_token()
    v1 = pick_in(token, "memcheck 1", 1, 2**63)
    v2 = pick_in(token, "memcheck 2", 1, 2**63) ^ v1 or 1
    var = user_symbol(kernel, arch, "memcheck", "memcheck_value").address
    watch = Watch(kernel, arch)
    yield_number = syscall_number("Yield")

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        seen = {}
        for _ in range(12):
            snap = syscall_stops(guest, watch, {yield_number})
            if snap.lower_root in seen:
                continue
            live = watch.live_problem(snap, watch.proc["syscall_entry_kernel_sp"])
            if live:
                return {"problem": f"at memcheck's yield: {live}"}
            w = snap.walk(var)
            if not w.mapped:
                return {"problem": f"memcheck_value {var:#x} is not mapped in root {snap.lower_root:#x}, the root loaded "
                                   "when memcheck made its system call"}
            seen[snap.lower_root] = (w.pa, u64(snap.read_phys(w.pa, 8)), w.perms.rwx(), w.perms.user)
            if len(seen) == 2:
                break
        return {"seen": seen}

    run = boot(args={"run": run_spec(f"memcheck:{v1:#x}", f"memcheck:{v2:#x}")}, token=token, witness=script)
    w = watch.require(run)
    if "problem" in w:
        run.fail(w["problem"])
    seen = w["seen"]
    if len(seen) != 2 or watch.kernel_roots & set(seen):
        run.fail(f"the two memcheck processes made their system calls in {len(seen)} distinct process roots "
                 f"({', '.join(hex(r) for r in seen)}): each needs a root of its own")
    (ra, (fa, xa, pa, ua)), (rb, (fb, xb, pb, ub)) = seen.items()
    if fa == fb:
        run.fail(f"roots {ra:#x} and {rb:#x} map memcheck_value {var:#x} to the same frame {fa:#x}: the two processes "
                 "share their data")
    if {xa, xb} != {v1, v2}:
        run.fail(f"the frames behind {var:#x} hold {xa:#x} (root {ra:#x}) and {xb:#x} (root {rb:#x}), read from guest RAM; "
                 f"the two processes wrote {v1:#x} and {v2:#x}")
    for perms, user, root in ((pa, ua, ra), (pb, ub, rb)):
        if perms != "rw-" or not user:
            run.fail(f"memcheck's data page is mapped {perms}{' user' if user else ' kernel-only'} in root {root:#x}, "
                     "expected rw- user")
    for v in (v1, v2):
        run.expect(rf"^memcheck: pid \d+ wrote {v:#x} at {var:#x}, reads {v:#x} proof={proof(token, v):016x}$",
                   f"the memcheck that wrote {v:#x} reading it back")
    run.expect_outcome("success")


# ---- the timer takes the CPU from ring 3 ------------------------------------------------------

TICKER_LINE = re.compile(r"^ticker: pid (\d+) line (\d+) of (\d+) proof=([0-9a-f]{16})$")
COMPLETE_LINES = (TICKER_LINE, re.compile(r"^spin: pid \d+ counted to \d+ proof=[0-9a-f]{16}$"),
                  re.compile(r"^proc \d+ \([a-z0-9_!]+\): (started; root|reaped: )"),
                  re.compile(r"^run: (\d+ programs; frames in use before: \d+|all processes ended; .*)$"),
                  re.compile(r"^run: temp-map slots live: \d+; temporary mappings made since boot: \d+$"))  # lab 4


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
    turn_began = address_of(watch.kernel, TURN_BEGAN)
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
    mode = "ring 3" if arch == "x86_64" else "EL0"
    return (f"a spinner lost the CPU before its turn was over: spin (root {root:#x}) was switched out {n} tick(s) after "
            f"it was switched in ({len(short)} of the {len(turns)} turns the grader timed were shorter than "
            f"{per_turn} ticks; the scheduler's g_turn_began read from guest RAM at each switch): timer_tick() ends the "
            f"turn at any tick from {mode}; it must wait until the turn is over (turn_is_over(): the turn's first tick "
            "may have fallen due before the process ran at all)")


def preemption_problem(trace, root, arch):
    """Why the trace does not show @p root preempted (None: it does)."""
    made = trace["calls"][root]
    ring3 = "ring 3" if arch == "x86_64" else "EL0"
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
    from pagoda_grade.procaudit import Facts, read_current, read_table
    facts = Facts.of(watch.kernel)
    if facts is None:
        return
    exit_at = address_of(watch.kernel, "pagoda::proc::exit_current")
    snap = guest.snapshot()
    while any(r.name == "ticker" and r.state != facts.zombie for r in read_table(snap.read_phys, facts)):
        snap = guest.stop_at_any([exit_at], what="the ticker to end (exit_current), leaving the two spinners")
        current, _ = read_current(snap.read_phys, facts, read_table(snap.read_phys, facts))
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

    def starved(self, guest, watch, snap, counts, spin_main):
        timer, user = watch.proc["timer_vector"], watch.proc["user_privilege"]
        ticks = sum(1 for e in guest.log_events() if e.kind == "interrupt" and e.vector == timer
                    and e.privilege == user and spin_main.contains(e.pc))
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
    from pagoda_grade.procaudit import Facts, read_current, read_table
    labels = process_roots(snap, watch.kernel)
    pid = {r: int(m[1]) for r, label in labels.items() if (m := re.search(r"\(pid (\d+)\)", label))}
    facts = Facts.of(watch.kernel)
    state, on_cpu = "", ""
    if facts is not None and stuck in pid:
        recs = read_table(snap.read_phys, facts)
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


@lab_test(3, "preempt_user")
def test_preempt_user(boot, kernel, arch):
    token = boot.fresh_token()
    lines = pick_in(token, "ticker lines", 3, 6)
    pause = pick_in(token, "ticker pause", 2, 5)
    delays = (pick_in(token, "first look", 20, 40) / 100, pick_in(token, "second look", 20, 40) / 100)
    count_va = user_symbol(kernel, arch, "spin", "spin_count").address
    stop_va = user_symbol(kernel, arch, "spin", "spin_stop").address
    spin_main = user_symbol(kernel, arch, "spin", "main")
    watch = Watch(kernel, arch)

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        spinners = sorted(r for r, label in watch.roots.items() if label.endswith(")") and " of spin (" in label)
        if len(spinners) != 2:
            return {"problem": f"the registry lists {len(spinners)} roots for spin, expected 2"}
        trace = trace_preemption(guest, watch, spinners, spin_main)
        if not all(trace["preempted"].values()):
            guest.end()   # a spinner that never ran would spin on to the deadline: the failure is named
            return {"spinners": spinners, "looks": None, "trace": trace}

        def look(delay, what):
            snap = guest.stop_after(delay, what)
            # (from lab 5 on, spin_count's page comes at the first touch: not there yet reads 0)
            return snap, [u64(snap.read_virt(count_va, 8, root)) if snap.walk(count_va, root).mapped else 0
                          for root in spinners]
        # Both were seen preempted; now each must keep counting while the other spins. On a loaded
        # host the guest may get little CPU in a look's wall-clock delay (a starved QEMU ran 1 ms in
        # 60), so the grader looks again until both have started, then until both have counted on
        # from there: only the test's deadline bounds the looks, never a count of them, and the
        # deadline's message says what it waited for.
        # The ticker ends first: from then on the two spinners are the only processes, and a
        # scheduler that does not give every Ready process a turn (one that never wraps around the
        # table) can no longer hide behind the ticker's wake-ups.
        wait_for_ticker_end(guest, watch)
        started = "both spinners counting (spin_count above 0 in each spinner's root)"
        progress = SpinProgress(spinners)
        snap, first = look(delays[0], started)
        while not all(first):
            starved = progress.starved(guest, watch, snap, first, spin_main)
            if starved:
                guest.end()   # (the starved spinner would wait to the deadline: the failure is named)
                return {"problem": starved}
            snap, first = look(delays[0], started)
        moved = (f"both spinners counting on past {first[0]} and {first[1]} (each must keep running while the "
                 "other spins)")
        snap, second = look(delays[1], moved)
        while not all(b > a for a, b in zip(first, second)):
            starved = progress.starved(guest, watch, snap, second, spin_main)
            if starved:
                guest.end()   # (the starved spinner would wait to the deadline: the failure is named)
                return {"problem": starved}
            snap, second = look(delays[1], moved)
        looks = [first, second]
        for root in spinners:
            if snap.walk(stop_va, root).mapped:
                snap.write_virt(stop_va, (1).to_bytes(8, "little"), root)
        return {"spinners": spinners, "looks": looks, "trace": trace}

    run = boot(args={"run": run_spec(f"spin:{SPIN_FOREVER:#x}", f"spin:{SPIN_FOREVER:#x}", f"ticker:{lines}:{pause}")},
               token=token, witness=script)
    w = watch.require(run)
    if "problem" in w:
        run.fail(w["problem"])
    for root in w["spinners"]:
        problem = preemption_problem(w["trace"], root, watch.arch)
        if problem:
            watch.fail(run, problem)
    problem = short_turn_problem(w["trace"]["turns"], fact(kernel, "ticks_per_turn"), watch.arch)
    if problem:
        watch.fail(run, problem)
    if w["looks"] is None:
        run.fail("the grader saw a spinner that was never preempted, yet found no reason why")  # (named above)
    (a1, b1), (a2, b2) = w["looks"]
    user_ticks = [e for e in run.log.hardware_interrupts(watch.proc["timer_vector"])
                  if e.privilege == watch.proc["user_privilege"] and spin_main.contains(e.pc)]
    for name, first, second in (("first", a1, a2), ("second", b1, b2)):
        if not 0 < first < second:
            # Why, from QEMU's log: the timer did interrupt spin in user mode (and nothing took the
            # CPU away), or it never did.
            why = (f"QEMU's log shows {len(user_ticks)} timer interrupts taken in user mode inside spin's loop, yet one "
                   "spinner kept the CPU: a tick that interrupts a process in user mode does not preempt it (the "
                   "timer's handler must end its turn: schedule())" if user_ticks else
                   "QEMU's log shows no timer interrupt taken in user mode inside spin's loop: nothing could preempt "
                   "the spinners (interrupts off in user mode, or the timer stopped)")
            run.fail(f"the {name} spinner's spin_count, read by the grader in its root at two instants "
                     f"{delays[1]:.2f} s apart, went from {first} to {second}: it did not keep making progress while "
                     f"the other spun. {why}")
    if all(e.root is None for e in user_ticks):
        # AArch64's log names no root: the two spinners run the same code, so the log can only say
        # that the timer interrupted spin's loop in EL0 (their counters, read per root, say both ran).
        if len(user_ticks) < 2:
            run.fail(f"QEMU's log shows {len(user_ticks)} timer interrupts taken in user mode inside spin's loop: the "
                     "spinners were not preempted from user mode")
    for root in w["spinners"] if any(e.root is not None for e in user_ticks) or not user_ticks else ():
        if not any(e.root == root for e in user_ticks):
            run.fail(f"QEMU's log shows no timer interrupt taken in ring 3 inside spin's loop with root {root:#x}: the "
                     "spinner was never preempted from user mode")
    got = {}
    for line in run.lines:
        m = TICKER_LINE.match(line)
        if m:
            got[int(m[2])] = m
    for i in range(1, lines + 1):
        m = got.get(i)
        if m is None:
            watch.fail(run, f"missing: the ticker's line {i} of {lines} (the ticker sleeps {pause} ticks between lines "
                            "while two processes spin)")
        if int(m[4], 16) != proof(token, TICKER_TAG ^ (i << 16) ^ lines):
            run.fail(f"the ticker's line {i} has a wrong proof")
    started = run.lines.index(next(l for l in run.lines if l.startswith("run: ")))
    for line in run.lines[started:]:
        if line and not any(rx.match(line) for rx in COMPLETE_LINES):
            watch.fail(run, f"a console line is cut or garbled while processes run: {line[:120]!r}")
    run.expect(r"^run: all processes ended", "the end of the run")
    run.expect_outcome("success")


# ---- user mode cannot reach the kernel -------------------------------------------------------

def probe_targets(kernel, arch, token):
    """(what, address) pairs the probes read: one page of each kernel region."""
    def within(start, end, tag):
        return pick_page(token, tag, [(start, end)])[0] + pick_in(token, tag + " offset", 0, PAGE // 8 - 1) * 8

    sym = lambda n: address_of(kernel, n)  # noqa: E731
    window_base = fact(kernel, "window_base") - fact(kernel, "window_phys_base")
    layout = Layout.of(kernel)
    slot0 = layout.stack(0)
    device = MACHINES[arch].devices[0][0]  # a device the kernel maps (x86_64: the local APIC)
    return [
        ("kernel text", within(sym("__text_start"), sym("__text_end"), "text")),
        ("kernel rodata", within(sym("__rodata_start"), sym("__rodata_end"), "rodata")),
        ("kernel data", within(sym("__data_start"), sym("__data_end"), "data")),
        ("the window", window_base + pick_page(token, "window", window_ram(kernel, arch, 128 << 20))[0]),
        ("a kernel stack", within(*slot0, "stack")),
        ("MMIO", fact(kernel, "mmio_base") + device),
        ("the temp-map area", fact(kernel, "temp_map_base") + pick_in(token, "temp", 0, 1 << 20) * PAGE),
        ("a non-canonical address", (1 << 63) | (pick_in(token, "noncanonical", 1, 1 << 30) * PAGE)),
    ]


def noncanonical_as_page_fault(faults, pc, address, proc):
    """Whether this QEMU logged a page fault at @p pc with CR2 = @p address (non-canonical),
    where an x86 CPU takes #GP: QEMU 8.2's TCG does (Ubuntu 24.04's), 6.2 and 7.2 take #GP.
    Read from the run's own log (@p faults, ring 3), so measured, not assumed."""
    return any(f.vector == proc["page_fault"] and f.pc == pc and f.address == address for f in faults)


@lab_test(3, "kernel_probes")
def test_kernel_probes(boot, kernel, arch):
    token = boot.fresh_token()
    proc = ARCHES[arch].proc
    targets = probe_targets(kernel, arch, token)
    read_at = user_symbol(kernel, arch, "probe", "probe_read")
    write_at = user_symbol(kernel, arch, "probe", "probe_write")
    data_code = user_symbol(kernel, arch, "probe", "probe_data_code").address
    ticker_lines = 3
    watch = Watch(kernel, arch)

    def script(guest):
        watch.before(guest)
        started = watch.started_check(guest)
        walks = {a: started.walk(a) for _, a in targets}  # every process made: their stacks too
        heap = watch.plan
        w = started.walk(heap)
        window = (fact(kernel, "window_base"), fact(kernel, "window_base") + fact(kernel, "window_size"))
        if not (w.mapped and w.perms.rwx() == "rw-" and not w.perms.user and window[0] <= heap < window[1]):
            return {"problem": f"the run's heap object {heap:#x} (given at the 'started' checkpoint) is not a rw- "
                               "kernel page of the window in the kernel root"}
        walks[heap] = w
        guest.stop_at_line(r"^probe: pid \d+ waiting for an address on the console$")
        guest.send_line(f"{heap:#x}")
        return {"walks": walks, "heap": heap}

    programs = [f"probe:read:{a:#x}" for _, a in targets] + ["probe:read:stdin", "probe:exec_data",
                                                              "probe:write_text", f"ticker:{ticker_lines}:2"]
    run = boot(args={"run": run_spec(*programs)}, token=token, witness=script)
    w = watch.require(run)
    if "problem" in w:
        run.fail(w["problem"])
    walks, heap = w["walks"], w["heap"]
    kills = parse_kills(run)
    pids = {}
    for line in run.lines:
        m = re.match(rf"^probe: pid (\d+) (reads|executes its data at|writes its text at) ({HEX})$", line)
        if m:
            pids[(m[2], int(m[3], 16))] = int(m[1])
    cases = [(what, "reads", a) for what, a in targets + [("the kernel heap", heap)]]
    cases += [("its own data (execute)", "executes its data at", data_code),
              ("its own text (write)", "writes its text at", read_at.address)]
    faults = [f for f in run.log.faults if f.privilege == proc["user_privilege"]]
    for what, verb, address in cases:
        pid = pids.get((verb, address))
        if pid is None:
            watch.fail(run, f"missing: the probe of {what} saying 'probe: pid N {verb} {address:#x}'")
        if pid not in kills:
            watch.fail(run, f"the probe of {what} ({address:#x}, pid {pid}) was not killed (no 'proc {pid} (probe): "
                            "killed: ...' line)")
        k = kills[pid]
        if verb == "reads" and address >> 47 not in (0, (1 << 17) - 1):
            vector, error, mask = fault_expectation(arch, noncanonical=True)
            if arch == "x86_64":
                want = dict(address=None, how="protection fault", reason=None)
                if noncanonical_as_page_fault(faults, read_at.address, address, proc):
                    # What the CPU did, not the kernel: only the CPU writes CR2.
                    boot.note("this QEMU takes a page fault (CR2 = the address), not #GP, for a user access "
                              "to a non-canonical address (QEMU 8.2's TCG; a real x86 CPU takes #GP): "
                              "the kernel must say so as a page fault")
                    vector, error, mask = fault_expectation(arch, mapped=False)
                    want = dict(address=address, how="page fault", reason="non-canonical address")
            else:
                want = dict(address=address, how="page fault", reason="non-canonical address")
            want.update(vector=vector, error=error, mask=mask, pc=read_at.address)
        elif verb == "reads":
            walk = walks[address]
            vector, error, mask = fault_expectation(arch, mapped=walk.mapped)
            reason = "user access to supervisor page" if walk.mapped else None
            want = dict(vector=vector, error=error, mask=mask, address=address, pc=read_at.address, how="page fault",
                        reason=reason)
        elif verb == "executes its data at":
            vector, error, mask = fault_expectation(arch, fetch=True)
            want = dict(vector=vector, error=error, mask=mask, address=address, pc=address, how="page fault",
                        reason="execute of NX page")
        else:
            vector, error, mask = fault_expectation(arch, write=True)
            want = dict(vector=vector, error=error, mask=mask, address=address, pc=write_at.address, how="page fault",
                        reason="write to read-only page")
        logged = [f for f in faults if f.vector == want["vector"] and f.pc == want["pc"] and
                  (want["address"] is None or f.address == want["address"])]
        if not logged:
            run.fail(f"the probe of {what} ({address:#x}): QEMU's log shows no exception {want['vector']} in ring 3 at "
                     f"{want['pc']:#x}" + (f" with address {want['address']:#x}" if want["address"] is not None else ""))
        f = logged[0]
        if f.error is None or f.error & want["mask"] != want["error"] & want["mask"]:
            run.fail(f"the probe of {what}: the CPU took {f.describe(None)}, expected error {want['error']:#x}"
                     + (f" (bits {want['mask']:#x})" if want["mask"] != ~0 else ""))
        if f.root in watch.kernel_roots or (f.root is None and arch == "x86_64"):  # AArch64's log names no root
            run.fail(f"the probe of {what} faulted with the kernel root loaded, not in a root of its own")
        if k.how != want["how"] or k.pc != f.pc or (want["address"] is not None and k.address != want["address"]):
            run.fail(f"the kernel's kill line for the probe of {what} says '{k.how}' at {k.pc:#x} address "
                     f"{k.address}; the CPU took {f.describe(None)}")
        # Unmapped: where the grader's walk stopped ('PML4 entry 448', 'L0 entry 448'; the ISAs word
        # the rest differently: 'not present', 'invalid (translation fault)').
        reason = want["reason"] or (" ".join(walks[address].stop_reason.split()[:3])
                                    if verb == "reads" and want["how"] == "page fault" else None)
        if reason and reason not in k.reason:
            run.fail(f"the kernel gives the reason '{k.reason}' for the probe of {what}; expected '{reason}'")
    for i in range(1, ticker_lines + 1):
        run.expect(rf"^ticker: pid \d+ line {i} of {ticker_lines} proof=", f"the sibling's line {i}: it survives")
    run.expect(r"^run: all processes ended", "the kernel carrying on to the end of the run")
    run.expect_outcome("success")

    # The other direction: the kernel touching a user page outside a checked copy.
    for exec_ in (0, 1):
        va = pick_page(token, f"user page {exec_}", [(1 << 32, 1 << 46)])[0]
        t = boot(test="user_touch", token=token, args={"addr": va, "exec": exec_})
        t.expect(rf"^user_touch: a checked copy read ({HEX}) from user page {va:#x} proof=", "the checked copy")
        vector, error, mask = fault_expectation(arch, user=False, fetch=bool(exec_))
        expect_fault(t, vector=vector, error=error, error_mask=None if mask == ~0 else mask, address=va,
                     privilege=ARCHES[arch].kernel_privilege,
                     function=None if exec_ else "pagoda::pagoda_selftest_user_touch", pc=va if exec_ else None,
                     kernel=kernel, what=f"the kernel {'calling' if exec_ else 'reading'} user page {va:#x}")
        words = "kernel executed user memory" if exec_ else "kernel touched user memory"
        t.expect(rf"^\s+reason: {words}", f"the reason '{words}'")
        t.expect_outcome("failure")


# ---- privileged instructions, bad calls, random calls ------------------------------------------

PRIVILEGED = ("hlt", "cli", "movcr3", "rdmsr", "sgdt", "out")


def missing_features(boot, arch):
    """The -cpu features this machine's QEMU cannot emulate (QEMU's own report, not the
    kernel's), each said once in the test's note."""
    missing = qemu.missing_cpu_features(arch)
    if missing:
        boot.note(f"this QEMU cannot emulate {', '.join(sorted(missing))} (QEMU's own warning); "
                  "what needs it is not asked for")
    return missing


@lab_test(3, "privileged")
def test_privileged(boot, kernel, arch):
    token = boot.fresh_token()
    proc = ARCHES[arch].proc
    # Without UMIP, sgdt is a ring-3 instruction like any other: nothing to refuse.
    missing = missing_features(boot, arch)
    chosen = [p for p in PRIVILEGED if proc["privileged_needs"].get(p) not in missing]
    run = boot(args={"run": run_spec(*(f"priv:{p}" for p in chosen))}, token=token)
    kills = parse_kills(run)
    pids = {m[2]: int(m[1]) for m in (re.match(r"^priv: pid (\d+) executes (\w+)$", l) for l in run.lines) if m}
    for name in chosen:
        site = user_symbol(kernel, arch, "priv", f"priv_{name}").address
        if name not in pids:
            run.fail(f"missing: 'priv: pid N executes {name}'")
        k = kills.get(pids[name])
        if k is None or k.how != "privileged instruction":
            run.fail(f"the process that executed {name} was not killed for a privileged instruction "
                     f"({k.how if k else 'no kill line'})")
        logged = [f for f in run.log.faults if f.privilege == proc["user_privilege"] and f.pc == site]
        if not logged or logged[0].vector != proc["privileged_fault"]:
            run.fail(f"QEMU's log shows no exception {proc['privileged_fault']} (the CPU refusing a privileged "
                     f"instruction) in user mode at priv_{name} ({site:#x})"
                     + (f"; the CPU took {logged[0].describe(None)}" if logged else ""))
        if k.pc != site:
            run.fail(f"the kernel reports {name} at {k.pc:#x}; the CPU faulted at {site:#x}")
    run.expect(r"^run: all processes ended", "the kernel carrying on after every kill")
    run.expect_outcome("success")

    # A number the kernel does not know: the result, read in ring 3 right after the call.
    number = pick_in(token, "bad call", 0, 3)
    number = [pick_in(token, "reserved", last_general_call() + 1, 63),
              pick_in(token, "test range", last_test_call() + 1, 127),
              pick_in(token, "past", 128, 2**32), pick_in(token, "huge", 2**40, 2**64 - 1)][number]
    # Six arguments of the grader's (the register convention): the values the dispatcher
    # receives are compared with the registers at the call, so a wrong or swapped register shows.
    values = [pick_in(token, f"argument {i}", 2**32, 2**64 - 1) for i in range(6)]
    watch = Watch(kernel, arch)

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        snap = syscall_stops(guest, watch, {number})
        entry = {r: snap.register(r) for r in proc["syscall_entry_registers"]}
        back = snap.register(proc["syscall_return_pc"])
        at = guest.stop_at(DISPATCHER)
        words = 1 + len(proc["syscall_args"])   # SyscallArgs: the number, then the arguments
        raw = at.read_virt(at.argument(0), 8 * words)
        received = [u64(raw[8 * i:8 * i + 8]) for i in range(words)]
        after = guest.stop_at(back)
        return {"result": after.register(proc["syscall_result"]), "pc": back, "entry": entry, "received": received}

    bad = boot(args={"run": f"badcall:{number:#x}:" + ":".join(f"{v:#x}" for v in values)}, token=token,
               witness=script)
    w = watch.require(bad)
    at_call = [w["entry"][r] for r in proc["syscall_args"]]
    if at_call != values:
        bad.fail(f"badcall's system call carried {', '.join(f'{v:#x}' for v in at_call)} in its argument registers "
                 f"at the call, not the arguments the grader gave it ({', '.join(f'{v:#x}' for v in values)}): "
                 "the arguments did not reach the program (argv)")
    problem = syscall_args_problem(arch, proc, w["entry"], w["received"])
    if problem:
        bad.fail(problem)
    result = w["result"] - (1 << 64) if w["result"] >> 63 else w["result"]
    if result != -ENOSYS:
        bad.fail(f"system call {number:#x} returned {result} to user mode (read in ring 3 at {w['pc']:#x}), "
                 f"expected -{ENOSYS} (ENOSYS)")
    bad.expect(rf"^badcall: pid \d+ syscall {number:#x} -> -{ENOSYS} \(ENOSYS\)", "badcall's line")
    bad.expect_outcome("success")

    # 10,000 random calls.
    calls_va = user_symbol(kernel, arch, "fuzz", "fuzz_calls").address
    fuzz_watch = Watch(kernel, arch)

    def fuzz_script(guest):
        fuzz_watch.before(guest)
        fuzz_watch.started_check(guest)
        snap = guest.stop_at("pagoda::proc::exit_current")
        return u64(snap.read_virt(calls_va, 8))

    fuzz = boot(args={"run": "fuzz"}, token=token, witness=fuzz_script)
    calls = fuzz_watch.require(fuzz)
    faults = kernel_faults(kernel, fuzz)
    if faults:
        fuzz_watch.fail(fuzz, f"the random system calls made the kernel fault: {faults[0].describe(fuzz.symbol_of)}")
    if fuzz.search(r"^PANIC"):
        fuzz_watch.fail(fuzz, "the random system calls made the kernel panic")
    if calls != FUZZ_CALLS:
        fuzz.fail(f"the fuzzer's own counter (read in its memory when it exited) says {calls} calls, expected {FUZZ_CALLS}")
    seed = proof(token, FUZZ_TAG) | 1
    fuzz.expect(rf"^fuzz: pid \d+ made {FUZZ_CALLS} calls from seed {seed:#x}: .* proof={proof(token, FUZZ_CALLS ^ seed):016x}$",
                "the fuzzer's summary")
    fuzz.expect_outcome("success")


# ---- kernel stack overflow -----------------------------------------------------------------

@lab_test(3, "kstack_overflow")
def test_kstack_overflow(boot, kernel, arch):
    token = boot.fresh_token()
    proc = ARCHES[arch].proc
    depth = pick_in(token, "depth", 200, 2000)
    layout = Layout.of(kernel)
    watch = Watch(kernel, arch)
    recurse = syscall_number("KernelRecurse")

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        snap = syscall_stops(guest, watch, {recurse})
        return snap.register(watch.proc["syscall_args"][0])

    run = boot(args={"run": f"recurse:{depth}"}, token=token, witness=script)
    if watch.require(run) != depth:
        run.fail(f"the kernel_recurse call carried depth {run.witness}, expected {depth}")
    faults = [f for f in run.log.faults if f.privilege == ARCHES[arch].kernel_privilege]
    hits = [f for f in faults if f.vector == proc["page_fault"] and f.address is not None and layout.in_guard(f.address)]
    if not hits:
        watch.fail(run, "QEMU's log shows no kernel page fault in the guard page of a kernel stack: the recursion never "
                        "reached a guard (is the guard below each stack unmapped?)")
    slot = layout.slot_of(hits[0].address)
    bottom, top = layout.stack(slot)
    after = faults[faults.index(hits[0]) + 1:]
    if proc["stack_overflow"] is not None and not any(f.vector == proc["stack_overflow"] for f in after):
        run.fail("the page fault in the guard page was not followed by the exception that reports it "
                 f"(vector {proc['stack_overflow']})")
    if proc["stack_overflow"] is None and after:
        # No exception reports the overflow here: the vector entry must see SP in the guard and
        # leave the stack before it pushes anything. A second fault is the entry faulting on it.
        run.fail(f"the abort in the guard page was followed by {len(after)} more kernel exceptions (the first: "
                 f"{after[0].describe(run.symbol_of)}): the exception entry pushed its frame on the overflowed stack "
                 "instead of moving to a stack of its own")
    m = run.expect(rf"^KERNEL STACK OVERFLOW: the kernel stack of slot (\d+) \[({HEX}), ({HEX})\) ran into its guard "
                   rf"page at ({HEX})", "the kernel's 'KERNEL STACK OVERFLOW' report")
    if (int(m[1]), int(m[2], 16), int(m[3], 16)) != (slot, bottom, top) or not layout.in_guard(int(m[4], 16)):
        run.fail(f"the kernel reports the overflow of slot {m[1]} [{m[2]}, {m[3]}) at {m[4]}; the CPU faulted at "
                 f"{hits[0].address:#x}, in the guard of slot {slot} [{bottom:#x}, {top:#x})")
    run.expect(r"^PANIC: kernel stack overflow", "the panic naming the overflow")
    run.expect_outcome("failure")


# ---- every root, walked by the grader -------------------------------------------------------

def live_stacks(snap, watch):
    """The kernel-stack slots the process table (guest RAM) says live processes hold at @p snap
    (every slot when the kernel exports no table facts)."""
    from pagoda_grade.procaudit import NO_SLOT, Facts, read_table
    facts = Facts.of(watch.kernel)
    if facts is None:
        return set(range(watch.layout.slots))
    return {r.kslot for r in read_table(snap.read_phys, facts) if r.kslot != NO_SLOT}


@lab_test(3, "roots_verified")
def test_roots_verified(boot, kernel, arch):
    token = boot.fresh_token()
    proc = ARCHES[arch].proc
    stop_va = user_symbol(kernel, arch, "spin", "spin_stop").address
    watch = Watch(kernel, arch)
    switches = pick_in(token, "switches", 8, 14)

    # A guard the emulated CPU lacks cannot be on (QEMU 6.2 has no UMIP): required only when QEMU has it.
    missing = missing_features(boot, arch)
    required = [g for g in proc["user_guards"] if g[3] not in missing]

    def script(guest):
        first = watch.before(guest)
        problems = []
        def guards(snap, when):
            for register, bit, name, _ in required:
                if not snap.register(register) >> bit & 1:
                    problems.append(f"{name} is off {when} ({register.upper()} bit {bit}, read from outside)")

        guards(first, "before the first process")
        insp = watch.inspector
        problems += insp.map_problems(first, watch.kernel_root, "the kernel root")
        started = watch.started_check(guest)
        slots = insp.mapped_stack_slots(started, watch.kernel_root)
        for root, label in list(watch.roots.items()):
            if root not in watch.kernel_roots:
                problems += insp.map_problems(started, root, label)
        cpu_roots, cpu_slots = set(), set()
        for _ in range(switches):
            snap = guest.stop_at(proc["switch"])
            # Again at every switch: AArch64's PAN is PSTATE, the kernel's to lift around one copy
            # and to set again after it, not a control register set once.
            guards(snap, "at a context switch")
            root = snap.lower_root
            cpu_roots.add(root)
            for sp in (snap.sp, snap.register(proc["switch_next_sp"])):
                slot = watch.layout.slot_of(sp)
                if slot is not None:
                    cpu_slots.add(slot)
            label = watch.roots.setdefault(root, f"root {root:#x} (loaded by the CPU, not in the registry)")
            if snap.sp < watch.layout.kernel_half_base or watch.register_sp_low(snap):
                problems.append(f"at a context switch: {watch.live_problem(snap) or 'the next stack is in the user half'}")
            if root not in watch.kernel_roots:
                half = insp.kernel_half_problem(snap, root)
                if half:
                    problems.append(f"{label}: {half}")
                problems += insp.map_problems(snap, root, label)
        if not cpu_slots <= slots:
            problems.append(f"the CPU ran on kernel stacks of slots {sorted(cpu_slots - slots)}, which the kernel root "
                            "does not map in the kStackBase area")
        # At this last stop, the stacks and roots of the processes that still live: one that ended
        # since (hello, memcheck, the ticker) gave its kernel stack and its root back.
        live_slots, listed = live_stacks(snap, watch), set(process_roots(snap, watch.kernel))
        for root, label in watch.roots.items():
            if root in watch.kernel_roots or root in listed or "not in the registry" in label:
                problems += insp.stack_problems(snap, root, (slots | cpu_slots) & live_slots, label)
        for root, label in list(watch.roots.items()):
            if " of spin (" in label:
                # From lab 5 on pages come on the first touch: spin maps spin_stop's page when it
                # first reads it, which may take many more switches on a loaded host.
                touched = watch.until_touched(guest, snap, stop_va, root,
                                              f"spin ({label}) to map its spin_stop page ({stop_va:#x}) by reading it")
                if touched is None:
                    problems.append(f"{label} ended before it mapped its spin_stop page ({stop_va:#x}): spin runs "
                                    "until the grader stops it")
                    continue
                snap = touched
                snap.write_virt(stop_va, (1).to_bytes(8, "little"), root)
        return {"problems": problems, "cpu_roots": cpu_roots, "slots": slots}

    v = pick_in(token, "memcheck", 1, 2**63)
    run = boot(args={"run": run_spec(f"spin:{SPIN_FOREVER:#x}", f"memcheck:{v:#x}", "ticker:3:2", "hello")},
               token=token, witness=script)
    w = watch.require(run)
    if w["problems"]:
        run.fail(finding_first(w["problems"], "the grader walked every root itself: the kernel root, each process root "
                               "from the registry and from CR3 at context switches"))
    process_roots_seen = w["cpu_roots"] - watch.kernel_roots
    if len(process_roots_seen) < 2:
        run.fail(f"the CPU loaded only {len(process_roots_seen)} process root(s) in {switches} context switches")
    if len(w["slots"]) < 4:
        run.fail(f"the kernel root maps {len(w['slots'])} kernel stacks in the kStackBase area for 4 processes")
    run.expect_outcome("success")


# ---- exit frees everything -------------------------------------------------------------------

DAMAGES = {"machine": "built for another machine", "kernel_half": "segment reaches past the user half",
           "overlap": "two segments touch the same page", "filesz": "file size exceeds its memory size",
           "truncated": "past the end of the file"}


@lab_test(3, "exit_frees")
def test_exit_frees(boot, kernel, arch):
    token = boot.fresh_token()
    watch = Watch(kernel, arch)
    text = address_of(kernel, "__text_start")

    def script(guest):
        watch.before(guest)
        started = watch.started_check(guest)
        frames = {}
        insp = watch.inspector
        for root, label in watch.roots.items():
            if root in watch.kernel_roots:
                continue
            runs = insp.dump(started, root)
            for f in user_page_frames(runs, watch.layout):
                frames[f] = ("a user page", label)
            for f in table_frames(started, root, kernel, arch):
                frames[f] = ("the root" if f == root else "a page table", label)
        for slot in insp.mapped_stack_slots(started, watch.kernel_root):
            bottom, top = watch.layout.stack(slot)
            for va in range(bottom, top, PAGE):
                frames[started.translate(va)] = ("a kernel stack page", f"the kernel stack of slot {slot}")
        end = watch.checkpoint(guest, "ended")
        after = count_used(end, *watch.bitmap)
        return {"frames": frames, "after": after}

    v = pick_in(token, "memcheck", 1, 2**63)
    programs = ["hello", f"memcheck:{v:#x}", f"probe:read:{text:#x}", "ticker:2:1"] + [f"hello!{d}" for d in DAMAGES]
    run = boot(args={"run": run_spec(*programs)}, token=token, witness=script)
    w = watch.require(run)
    (before, _), (after, bitmap) = watch.frames_before, w["after"]
    still = sorted((f, kind, whose) for f, (kind, whose) in w["frames"].items() if is_used(bitmap, f))
    # A kernel stack no started process had: taken for a process the kernel refused to start.
    had = {f"the kernel stack of slot {watch.layout.slot_of(p.stack[0])}" for p in watch.started.values()}
    orphans = sorted({whose for _, kind, whose in still if kind == "a kernel stack page" and whose not in had})
    if orphans:
        refused = [line for line in run.lines if line.startswith("run: cannot start ")]
        run.fail(f"{orphans[0]} was taken for a process that never started, and never given back: no process the kernel "
                 "started had it, and it is still mapped and its frames allocated after every process ended (the "
                 "grader read the frame allocator's bitmap in guest RAM): create_process() must give back what it made "
                 "on every failure, a kernel stack made before the program was loaded included"
                 + (f" (the kernel refused {len(refused)} program(s): {refused[0]})" if refused else ""))
    if still:
        # What kinds leaked says which part of the teardown is missing.
        kinds = {}
        for _, kind, _ in still:
            kinds[kind] = kinds.get(kind, 0) + 1
        missing = {"a user page": "the user pages (free_user_pages)",
                   "a page table": "the user half's page tables", "the root": "the roots (~AddressSpace)",
                   "a kernel stack page": "the kernel stacks (destroy_kernel_stack)"}
        plural = {"a user page": "user pages", "a page table": "page tables", "the root": "roots",
                  "a kernel stack page": "kernel stack pages"}
        run.fail(f"exit's teardown does not free {' nor '.join(missing[k] for k in missing if k in kinds)}: "
                 f"{len(still)} frames the processes used are still allocated after every process ended ("
                 + ", ".join(f"{n} {plural[k] if n > 1 else k.replace('a ', '', 1).replace('the ', '', 1)}"
                             for k, n in kinds.items()) +
                 "; the grader read the frame allocator's bitmap in guest RAM): "
                 + ", ".join(f"{f:#x} ({kind} of {whose})" for f, kind, whose in still[:8]))
    if after != before:
        run.fail(f"{before} frames were in use before the first process started and {after} after every process ended "
                 "(counted by the grader in the allocator's bitmap): the teardown leaks")
    if len(w["frames"]) < 20:
        run.fail(f"the processes held only {len(w['frames'])} frames the grader could find")
    for damage, reason in DAMAGES.items():
        run.expect(rf"^run: cannot start hello!{damage}: .*{re.escape(reason)}.*; 0 frames leaked$",
                   f"the loader refusing hello!{damage} ({reason}) with no frame leaked")
    reaped = parse_reaped(run)
    if sorted(reaped.values()).count("exited with code 0") < 3 or "killed (page fault)" not in reaped.values():
        run.fail(f"expected hello, memcheck and the ticker to exit with 0 and the probe to be killed: {reaped}")
    m = run.expect(r"^run: all processes ended; frames in use: before (\d+), after (\d+)", "the run's last line")
    if m[1] != m[2]:
        run.fail(f"the kernel itself counts {m[1]} frames in use before and {m[2]} after")
    run.expect_outcome("success")


@lab_test(3, "kstack_reuse")
def test_kstack_reuse(boot, kernel, arch):
    """More processes over one run than there are kernel-stack slots, never many at once (churn
    is a chain: each link touches pages of its own, sleeps a tick, spawns the next and exits):
    every exit gives its slot back, and the slot table (guest RAM) is empty at the end; and its
    frames: the links together touch more frames than the guest has (churn.py)."""
    token = boot.fresh_token()
    watch = Watch(kernel, arch)
    slots = watch.layout.slots
    n = max(slots, ASIDS) + pick_in(token, "churn extra", 8, 40)   # more than every slot and every ASID
    pages = pick_in(token, "churn pages", 6, 12)

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        end, last = churn.run_to_end(guest, watch)
        marks = end.read_virt(address_of(kernel, SLOT_TABLE), slots)
        try:
            asids = int.from_bytes(end.read_virt(address_of(kernel, ASID_TABLE), ASIDS // 8), "little")
        except AssertionError:   # (x86_64: no ASIDs)
            asids = None
        return [slot for slot in range(slots) if marks[slot]], asids, last, count_used(end, *watch.bitmap)[0]

    run = boot(args={"run": churn.spec(n, pages)}, token=token, witness=script, memory=churn.MEMORY)
    taken, asids, last, after = watch.require(run)
    failed = run.search(churn.BROKE)
    if asids is not None and bin(asids).count("1") > 1:   # (ASID 0, the kernel's, is always taken)
        held = [a for a in range(1, ASIDS) if asids >> a & 1]
        run.fail(f"ASIDs are not given back when an address space ends: when every process had ended, {len(held)} "
                 f"ASIDs (e.g. {', '.join(map(str, held[:6]))}) were still marked taken in the kernel's ASID table "
                 f"(g_asids_used, read by the grader from guest RAM) after churn's chain of {n} processes, never more "
                 f"than two at once" + (f" (link {failed[1]} could not spawn the next: {failed[4]})" if failed else "")
                 + ": free_asid() must clear the space's bit, or a run makes at most 255 address spaces")
    links = len(re.findall(r"(?m)^proc \d+ \(churn\): spawned by \d+;", "\n".join(run.lines))) + 1
    frames = churn.broken_chain(run, n, pages, watch.frames_before[0], after) if last is None and not taken else None
    if frames:
        watch.fail(run, frames)
    if failed and not taken:
        run.fail(f"a kernel-stack slot given back is never taken again: link {failed[1]} of churn's chain of {n} "
                 f"could not spawn the next ({failed[4]}) with at most two links alive (each ended before the next "
                 f"but one began), yet when every process had ended the kernel's slot table (g_used, read by the "
                 f"grader from guest RAM) marks all {slots} slots free: the search for a free slot must look at every "
                 "slot again (from slot 0, or wrapping around), not only those never used")
    if failed or taken:
        said = (f"link {failed[1]} of churn's chain of {n} could not spawn the next ({failed[4]}) with at most two "
                "links alive (each ended before the next but one began)" if failed else
                f"churn's chain made {links} processes one after another")
        run.fail(f"kernel-stack slots are not given back at exit: {said}; when every process had ended, "
                 f"{len(taken)} of the {slots} slots were still marked taken in the kernel's slot table (g_used, read "
                 f"by the grader from guest RAM{': slots ' + ', '.join(map(str, taken[:8])) if taken else ''}): "
                 "destroying a kernel stack must free its slot, or a run makes at most as many processes as there "
                 "are slots")
    wrong = churn.verdict(run, n, pages, last, watch.frames_before[0], after)
    if wrong:
        watch.fail(run, wrong + ("" if last else f" (the kernel says it made {links} churn processes)"))
    if links != n:
        run.fail(f"the kernel says it made {links} churn processes; the chain has {n} links")
    run.expect(rf"^churn: link {n} of {n} ran, the last proof={proof(token, n):016x}$", "the chain's last link")
    reaped = parse_reaped(run)
    if sum(1 for how in reaped.values() if how == "exited with code 0") != n:
        watch.fail(run, f"expected the {n} links of churn's chain to exit with 0; reaped: "
                        f"{dict(list(reaped.items())[:4])}...")
    run.expect_outcome("success")


SWITCH_COUNT = "pagoda::proc::(anonymous namespace)::g_switches"   # kernel/proc/scheduler.cpp
TURN_BEGAN = "pagoda::proc::(anonymous namespace)::g_turn_began"    # (the same)


@lab_test(3, "kernel_not_preempted")
def test_kernel_not_preempted(boot, kernel, arch):
    """A tick that interrupts kernel code while a process is current must not switch: kspin
    waits in the kernel (interrupts on) for ticks the grader picks while spin is ready; the
    grader reads the scheduler's switch count at the call's start and end."""
    token = boot.fresh_token()
    n = pick_in(token, "kspin ticks", 5, 12)
    stop_va = user_symbol(kernel, arch, "spin", "spin_stop").address
    tags = {fact(kernel, "kernel_spin_start_stop"): "start", fact(kernel, "kernel_spin_end_stop"): "end"}
    watch = Watch(kernel, arch)

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        spinners = [r for r, label in watch.roots.items() if " of spin (" in label]
        seen, switches = {}, []
        while "end" not in seen:   # (only the test's deadline bounds the wait)
            # Between the call's start and end, every context switch is a stop too: a switch seen,
            # whatever the scheduler's count says.
            snap = guest.stop_at_any(["pagoda_grader_checkpoint"] + ([watch.proc["switch"]] if seen else []))
            if snap.pc != address_of(kernel, "pagoda_grader_checkpoint"):
                switches.append(snap.lower_root)
                continue
            what = tags.get(snap.argument(0))
            if what is not None:
                seen[what] = (snap.argument(1), u64(snap.read_virt(address_of(kernel, SWITCH_COUNT), 8)),
                              snap.argument(2))
        seen["switches"] = switches
        for root in spinners:   # (from lab 5 on, spin_stop's page comes at spin's first touch)
            snap = watch.until_touched(guest, snap, stop_va, root, "spin_stop's page in spin's root")
            if snap is not None:
                snap.write_virt(stop_va, (1).to_bytes(8, "little"), root)
        return seen

    run = boot(args={"run": run_spec(f"kspin:{n}", f"spin:{SPIN_FOREVER:#x}")}, token=token, witness=script)
    seen = watch.require(run)
    if "start" not in seen:
        run.fail("the grader saw kernel_spin's end but not its start")
    (pid, before, _), (_, after, passed) = seen["start"], seen["end"]
    if after != before or seen["switches"]:
        watch.fail(run, f"kernel code was preempted: while pid {pid} (kspin) waited in the kernel with interrupts on "
                        f"(the kernel_spin call, {n} ticks; {passed} passed), the grader stopped at "
                        f"{len(seen['switches'])} context switch(es) ({watch.proc['switch']}) between the call's start "
                        f"and end (the scheduler's count g_switches went from {before} to {after}, guest RAM) although "
                        "spin was ready: a timer tick that interrupts "
                        "kernel code must not end the turn (the kernel may hold a temporary mapping, or be half-way "
                        "through a change of the page tables); only a tick from user mode preempts")
    run.expect(rf"^kspin: pid \d+ waited {n} ticks in the kernel -> (\d+) proof=", "kspin's line")
    run.expect(r"^spin: pid \d+ counted to \d+ proof=", "spin's line (stopped by the grader)")
    reaped = parse_reaped(run)
    if sorted(reaped.values()).count("exited with code 0") != 2:
        watch.fail(run, f"expected kspin and spin to exit with 0; reaped: {reaped}")
    run.expect_outcome("success")
