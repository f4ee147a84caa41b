"""Witnesses of processes (lab 3 and later): roots, kernel stacks, frames and faults of user
programs, seen from outside the kernel.

What the kernel says about its processes ("proc 1 (hello): started; root 0x...") is read only
to label what the grader sees: the roots come from the CPU (CR3 / TTBR0 at the stops the grader
picks: a context switch, a system call from user mode, a checkpoint) and from the registry the
kernel publishes (kernel/mm/space/debug_roots.hpp), and every one is walked in guest RAM by the
grader itself. The kernel stacks come from the stack pointers the CPU holds at those stops;
where each lies in the kStackBase area comes from the layout facts the kernel exports.

    layout = Layout(kernel)                          the kernel-stack slots, the user half
    user_elf(kernel, arch, "spin")                   the program's ELF (symbols: user_symbol)
    RootInspector(snap, kernel, arch, kernel_root)   checks one root against the kernel's
    table_frames(snap, root)                         every table frame of a root's user half
    count_used(snap, bitmap, words)                  frames in use, from the allocator's bitmap
    parse_started / parse_kills / parse_reaped       the kernel's lines, to label what was seen
    written(snap, proc)                              what a write() at a system-call stop says,
                                                     read through the process's own root
    (causes.explain_death: why a machine died, from QEMU's log and the roots read before)
"""
import hashlib
import re
from dataclasses import dataclass

from pagoda_pt import contract
from pagoda_pt.frames import frame_refs
from pagoda_pt.image import CensusError
from pagoda_pt.procs import read_procs
from pagoda_pt.verdicts import writable_and_executable

from . import programs, symbols
from .procaudit import Facts
from .witness import ARCHES, PAGE, WalkError, layout_value, top_level

from pagoda_pt import trees

HEX = r"0x[0-9a-f]+"


# ---- The layout --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Where the kernel keeps kernel stacks and what the user half is (the kernel's facts)."""
    stack_base: int
    stride: int
    guard: int
    size: int
    slots: int
    user_end: int
    kernel_half_base: int

    @classmethod
    def of(cls, kernel):
        return cls(layout_value(kernel, "stack_base"), layout_value(kernel, "kernel_stack_stride"),
                   layout_value(kernel, "kernel_stack_guard"), layout_value(kernel, "kernel_stack_size"),
                   layout_value(kernel, "kernel_stack_slots"), layout_value(kernel, "user_end"),
                   layout_value(kernel, "kernel_half_base"))

    def slot_of(self, address):
        """The kernel-stack slot whose [guard, stack) holds @p address, or None."""
        if address is None or address < self.stack_base:
            return None
        slot = (address - self.stack_base) // self.stride
        return slot if slot < self.slots else None

    def stack(self, slot):
        """[bottom, top) of the stack of @p slot."""
        bottom = self.stack_base + slot * self.stride + self.guard
        return bottom, bottom + self.size

    def guard_of(self, slot):
        """[start, end) of the guard below the stack of @p slot."""
        start = self.stack_base + slot * self.stride
        return start, start + self.guard

    def in_guard(self, address):
        slot = self.slot_of(address)
        return slot is not None and address < self.stack(slot)[0]


# ---- User programs -----------------------------------------------------------------------------

def user_elf(kernel, arch, program):
    """The ELF of user program @p program (with its symbols): the grader's own build of user/,
    never the submission's (programs.py); @p kernel is not consulted (a kernel embeds the same
    programs or its tests fail before they boot)."""
    return programs.program_elf(arch, program)


def user_symbol(kernel, arch, program, name):
    """The Symbol @p name of user program @p program."""
    return symbols.find(user_elf(kernel, arch, program), name)


# ---- What the kernel printed (to label what the grader saw) --------------------------------------

@dataclass
class Started:
    pid: int
    name: str
    root: int
    stack: tuple


def parse_started(run):
    """{pid: Started} from the 'proc N (name): started; root R, kernel stack [a, b)' lines."""
    out = {}
    rx = re.compile(rf"^proc (\d+) \(([^)]*)\): started; root ({HEX}), kernel stack \[({HEX}), ({HEX})\)$")
    for line in run.lines:
        m = rx.match(line)
        if m:
            out[int(m[1])] = Started(int(m[1]), m[2], int(m[3], 16), (int(m[4], 16), int(m[5], 16)))
    return out


@dataclass
class Killed:
    pid: int
    name: str
    how: str
    mnemonic: str
    vector: int
    pc: int
    address: int | None
    reason: str


def parse_kills(run):
    """{pid: Killed} from the 'proc N (name): killed: HOW: MNEMONIC NAME (vector V) at RIP X[, (AArch64: (EC V) at ELR X)
    address A][: REASON]' lines."""
    out = {}
    rx = re.compile(rf"^proc (\d+) \(([^)]*)\): killed: ([^:]+): (\S+) .*? \((?:vector|EC) (\d+)\) at \w+ ({HEX})"
                    rf"(?:, address ({HEX}))?(?:: (.*))?$")
    for line in run.lines:
        m = rx.match(line)
        if m:
            out[int(m[1])] = Killed(int(m[1]), m[2], m[3], m[4], int(m[5]), int(m[6], 16),
                                    int(m[7], 16) if m[7] else None, m[8] or "")
    return out


def foreign_code_kill(kernel, arch, kills):
    """A sentence, or None: the first of @p kills ({pid: Killed}) that is an illegal-instruction
    kill at a PC inside its program's executable load segment (the grader's own ELF of the
    program, named by the kill line). The program's code is there, and it never executes an
    undefined instruction, so the page the CPU fetched from held other bytes than the file's:
    a page of the image filled from the wrong place (a file offset forgotten, a copy that did
    not copy, a frame never filled), not a bug of the program."""
    for k in kills.values():
        if k.how != "illegal instruction":
            continue
        try:
            segs = symbols.segments(user_elf(kernel, arch, k.name))
        except (AssertionError, OSError, ValueError):
            continue
        seg = next((s for s in segs if s.flags & 1 and s.vaddr <= k.pc < s.vaddr + s.filesz), None)
        if seg is None:
            continue
        return (f"proc {k.pid} ({k.name}) was killed for an illegal instruction at {k.pc:#x}, inside its own code "
                f"(the executable segment [{seg.vaddr:#x}, {seg.vaddr + seg.memsz:#x}) of {k.name}'s ELF, where the "
                f"program has an instruction): the page it ran from does not hold the program's bytes. Its image page "
                "was filled from the wrong place or not at all (a file offset forgotten when a page is populated, a "
                "fork copy that did not copy, a frame never written)")
    return None


def parse_reaped(run):
    """{pid: 'exited with code N' | 'killed (HOW)'} from the 'proc N (name): reaped: ...' lines."""
    out = {}
    for line in run.lines:
        m = re.match(r"^proc (\d+) \([^)]*\): reaped: (.*)$", line)
        if m:
            out[int(m[1])] = m[2]
    return out


# ---- Roots ---------------------------------------------------------------------------------------

def written(snap, proc, root=None, most=200):
    """What the program says at the stop @p snap, a system-call entry of its write(fd, buf, length):
    the first @p most bytes of its buffer, read by the grader through @p root (the process's own root,
    snap.lower_root, by default) rather than taken from the console. @p proc: the ArchModel's proc
    facts (watch.proc), which name the argument registers."""
    _, buf, length = (snap.register(r) for r in proc["syscall_args"][:3])
    return snap.read_virt(buf, min(length, most), snap.lower_root if root is None else root)


def registry(snap, kernel):
    """The roots the kernel publishes (pagoda_pt.roots.RootTable), read at the registry's load
    address in guest RAM (never through a root, which may be the broken thing)."""
    from pagoda_pt.roots import read_root_table
    pa = symbols.physical_of(kernel, symbols.address_of(kernel, contract.ROOT_REGISTRY))
    return read_root_table(snap.read_phys, pa)


def process_roots(snap, kernel):
    """{root: 'name (pid N)'} of the process roots the registry lists now."""
    return {k.root: f"{k.name} (pid {k.id})" for k in registry(snap, kernel).roots if k.kind == "process"}


class RootInspector:
    """Checks process roots against the kernel root, each walked by the grader in guest RAM.

    @p kernel_root is the root the CPU used in kernel context (CR3 at a checkpoint, or TTBR1);
    its top-level entries are what every process root must share (x86_64: the same entries in
    the upper half, apart from the accessed and dirty bits the CPU sets in whichever root it
    walks; AArch64: TTBR1 itself)."""

    def __init__(self, snap, kernel, arch, kernel_root):
        self.kernel = kernel
        self.arch = arch
        self.proc = ARCHES[arch].proc
        self.layout = Layout.of(kernel)
        self.top = top_level(kernel)
        self.kernel_root = kernel_root
        # AArch64: the kernel's own lower root (TTBR0 in kernel context, empty after lab 2), the
        # other half of the pair a walk of the kernel's address space needs.
        self.kernel_lower = snap.lower_root
        self.kernel_entries = snap.table_entries(kernel_root)
        self.dumps = {}            # root -> runs (read while that root was live or listed)
        self.half = {}             # root -> kernel_half_problem() (None: shares it)

    def kernel_half_problem(self, snap, root):
        """None when @p root shares the kernel half; otherwise what differs (remembered, for
        explain_death() after the guest is gone)."""
        if self.half.get(root) is None:
            self.half[root] = self._kernel_half_problem(snap, root)
        return self.half[root]

    def _kernel_half_problem(self, snap, root):
        if not ARCHES[self.arch].one_root:
            return self._ttbr1_problem(snap, root)
        mine = snap.table_entries(root)
        ignore = self.proc["cpu_set_bits"]
        first = self.top.kernel_first
        differ = [i for i in range(first, self.top.entries)
                  if (mine[i] ^ self.kernel_entries[i]) & ~ignore]
        if not differ:
            return None
        present = sum(1 for i in range(first, self.top.entries) if ARCHES[self.arch].present(mine[i]))
        i = differ[0]
        total = self.top.entries - first
        if present == 0:
            return (f"root {root:#x} has an EMPTY kernel half: none of its {total} kernel-half top-level entries "
                    f"is present (the kernel root's entry {i} is {self.kernel_entries[i]:#x}): a new root whose "
                    "kernel half was never filled in")
        stacks = [j for j in differ if self.top_index(self.layout.stack_base) == j and ARCHES[self.arch].present(mine[j])]
        return (f"root {root:#x} does not share the kernel half: {len(differ)} of its {total} kernel-half top-level "
                f"entries differ from the kernel root's (entry {i} is {mine[i]:#x}, the kernel's {self.kernel_entries[i]:#x})"
                + (": copied tables instead of shared ones" if present == total else "")
                + (f"; entry {stacks[0]} (the kernel stacks) is a copy of the kernel's table: a kernel stack mapped "
                   "after the copy is only in the root where it was allocated" if stacks else ""))

    def _ttbr1_problem(self, snap, root):
        """AArch64: a process root is TTBR0's alone and cannot lack the kernel half; what can is
        TTBR1, which must hold the kernel's root whenever a process runs. Checked when @p root is
        the live TTBR0 (None otherwise: what TTBR1 will hold is only known then)."""
        if root != snap.lower_root or snap.root == self.kernel_root:
            return None
        ttbr1 = snap.root
        entries = snap.table_entries(ttbr1)
        present = sum(1 for e in entries if e & 1)
        kernel_present = sum(1 for e in self.kernel_entries if e & 1)
        what = ("the process's own root (TTBR1 = TTBR0)" if ttbr1 == root else
                f"a table with {present} valid entr{'y' if present == 1 else 'ies'}" if present else "an EMPTY table")
        return (f"while root {root:#x} is live in TTBR0_EL1, TTBR1_EL1 holds {ttbr1:#x}, {what}, not the kernel root "
                f"{self.kernel_root:#x} ({kernel_present} valid entries): a process root created without the kernel's "
                "entries; TTBR1 must only ever hold the kernel's root (the vectors, the kernel stacks and the kernel "
                "itself are there)")

    def top_index(self, va):
        """The top-level index of virtual address @p va."""
        return (va >> self.top.shift) & (self.top.entries - 1)

    def dump(self, snap, root):
        if root not in self.dumps:
            # AArch64: the kernel root is TTBR1's; its address space is the pair with its own lower root.
            walk_root = (self.kernel_lower, root) if not ARCHES[self.arch].one_root and root == self.kernel_root else root
            try:
                self.dumps[root] = snap.dump(walk_root)
            except WalkError as e:
                self.dumps[root] = e
        return self.dumps[root]

    def map_problems(self, snap, root, what):
        """Everything wrong with the mappings of @p root ('what' names it): user pages without
        the user bit, anything user in the kernel half, writable and executable user pages."""
        runs = self.dump(snap, root)
        if isinstance(runs, WalkError):
            return [f"{what}: the grader's walk of root {root:#x} cannot finish: {runs}"]
        problems = []
        both = [r.va_start for r in runs if r.va_start < self.layout.kernel_half_base and r.perms.user
                and r.perms.write and r.perms.execute]
        for r in runs:
            span = f"[{r.va_start:#x}, {r.va_end:#x})"
            if r.va_start < self.layout.kernel_half_base:
                if not r.perms.user:
                    problems.append(f"{what}: {span} in the user half is mapped {r.perms.rwx()} kernel-only "
                                    "(the user half holds the process's pages, user-accessible)")
                elif both and r.va_start == both[0]:
                    problems.append(writable_and_executable([(what, both)]))
            elif r.perms.user:
                problems.append(f"{what}: {span} in the kernel half is mapped {r.perms.rwx()} USER: user mode can "
                                "reach kernel memory there")
        return problems

    def stack_problems(self, snap, root, slots, what):
        """For each kernel-stack slot of @p slots: every page of the stack mapped rw- kernel in
        @p root, and the guard below it unmapped."""
        problems = []
        for slot in sorted(slots):
            bottom, top = self.layout.stack(slot)
            for va in range(bottom, top, PAGE):
                w = snap.walk(va, root)
                if not w.mapped:
                    problems.append(f"{what}: the kernel stack of slot {slot} [{bottom:#x}, {top:#x}) is not mapped "
                                    f"at {va:#x} ({w.stop_reason}): a kernel stack missing from this root")
                    break
                if w.perms.rwx() != "rw-" or w.perms.user:
                    problems.append(f"{what}: the kernel stack of slot {slot} is mapped {w.perms.rwx()}"
                                    f"{' user' if w.perms.user else ''} at {va:#x}, expected rw- kernel only")
                    break
            else:
                problems += self.stack_leaf_problems(snap, root, slot, what)
            g0, g1 = self.layout.guard_of(slot)
            for va in range(g0, g1, PAGE):
                if snap.walk(va, root).mapped:
                    problems.append(f"{what}: the guard below the kernel stack of slot {slot} is mapped at {va:#x}: an "
                                    "overflow would run on silently")
                    break
        return problems

    def stack_leaf_problems(self, snap, root, slot, what):
        """The leaf entries of the kernel stack of @p slot in @p root, read from guest RAM: each
        one kernel-only in its own bits (not only through the tables above it, which keep user
        mode out of the whole kernel half) and global, as every mapping of the shared kernel half
        (vm::kernel_perms()). At most one problem, the first leaf's."""
        bits = ARCHES[self.arch].kernel_half_bits
        for va in range(*self.layout.stack(slot), PAGE):
            e = snap.walk(va, root).levels[-1].raw   # (stack_problems(): every page is mapped)
            if bits["leaf_allows_user"](e):
                return [f"{what}: the kernel stack of slot {slot} is mapped user-accessible in its leaf entries: the "
                        f"leaf for {va:#x} is {e:#x} ({bits['user_words']}); only the kernel-half tables above it keep "
                        "user mode out. map_kernel_stack() must map the stack kernel-only (kKernelData)"]
            if not bits["leaf_global"](e):
                return [f"{what}: the kernel stack of slot {slot} is not mapped global: the leaf for {va:#x} is {e:#x} "
                        f"({bits['global_words']}); it lies in the kernel half, the same in every root, whose mappings "
                        "are all global (map_kernel_stack() maps it through vm::kernel_perms())"]
        return []

    def mapped_stack_slots(self, snap, root):
        """The kernel-stack slots whose top page @p root maps (what the area holds now)."""
        return {s for s in range(self.layout.slots) if snap.walk(self.layout.stack(s)[1] - PAGE, root).mapped}


class KernelReach:
    """The frames the kernel reaches without a temporary mapping: every physical range the kernel
    half of the kernel root maps outside the temp-map area, from the grader's own walk (lab 4).
    The window's real extent is here, whatever the kernel's window_size fact says: a kernel whose
    window secretly maps all RAM reaches every frame.

        reach = KernelReach(runs, kernel)   runs: a dump of the kernel root (Snapshot.dump)
        reach.where(frame)                  the kernel-half address that maps @p frame, or None
        reach.temp_pages                    pages mapped in the temp-map area at that instant"""

    def __init__(self, runs, kernel):
        import bisect
        self._bisect = bisect
        half = layout_value(kernel, "kernel_half_base")
        temp_lo, temp_hi = layout_value(kernel, "temp_map_base"), layout_value(kernel, "stack_base")
        pieces, self.temp_pages = [], 0
        for r in runs:
            if r.va_end <= half:
                continue
            for lo, hi in ((r.va_start, min(r.va_end, temp_lo)), (max(r.va_start, temp_hi), r.va_end)):
                if lo < hi:
                    pieces.append((r.pa_start + lo - r.va_start, r.pa_start + hi - r.va_start, lo))
            lo, hi = max(r.va_start, temp_lo), min(r.va_end, temp_hi)
            if lo < hi:
                self.temp_pages += (hi - lo) // PAGE
        pieces.sort()
        self.pieces = pieces
        merged = []
        for pa, end, _ in pieces:
            if merged and pa <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([pa, end])
        self.merged = merged
        self.starts = [m[0] for m in merged]
        self.end = max((m[1] for m in merged), default=0)

    def where(self, frame):
        """The kernel-half address mapping @p frame outside the temp-map area, or None."""
        i = self._bisect.bisect_right(self.starts, frame) - 1
        if i < 0 or frame >= self.merged[i][1]:
            return None
        return next(va + frame - pa for pa, end, va in self.pieces if pa <= frame < end)

    def first_in(self, lo, hi):
        """The first frame of physical [@p lo, @p hi) the kernel half maps outside the temp-map
        area, or None."""
        i = max(0, self._bisect.bisect_right(self.starts, lo) - 1)
        for start, end in self.merged[i:]:
            if start >= hi:
                break
            if end > lo:
                return max(start, lo)
        return None

    def problem(self, frame, what):
        """None when only a temporary mapping reaches @p frame; else a sentence about @p what."""
        va = self.where(frame)
        if va is None:
            return None
        return (f"{what} is frame {frame:#x}, which the kernel half maps at {va:#x}, outside the temp-map area (the "
                "grader's own walk of the live tables at that moment): the kernel reaches it without a temporary "
                "mapping. The test's frames must be ones only a temporary mapping reaches, above the window the live "
                "tables really map (a window wider than the kernel's window_size says, or RAM mapped elsewhere in "
                "the kernel half, defeats that)")


def user_runs(runs, layout):
    """The runs of @p runs (a list, or Snapshot.runs()' generator) in the user half."""
    return [r for r in runs if r.va_start < layout.kernel_half_base]


# The most user pages the grader lists one by one (64 MiB): the programs of these labs map a few
# MiB; a root that maps more is refused with this reason before a set of millions is built.
MAX_USER_PAGES = 1 << 14


def count_user_pages(runs, layout, what="a process root"):
    """The user pages of @p runs (their runs, a list); AssertionError past MAX_USER_PAGES."""
    total = sum((r.va_end - r.va_start) // PAGE for r in runs if r.va_start < layout.kernel_half_base)
    if total > MAX_USER_PAGES:
        raise AssertionError(f"{what} maps {total} user pages ({total * PAGE >> 20} MiB), more than the "
                             f"{MAX_USER_PAGES} ({MAX_USER_PAGES * PAGE >> 20} MiB) the grader lists one by one: no "
                             "program of these labs maps a tenth of that (a hostile or runaway map)")
    return total


def user_pages(runs, layout, what="a process root"):
    """{va: run} of every user page of @p runs, at most MAX_USER_PAGES (AssertionError beyond)."""
    runs = user_runs(runs, layout)
    count_user_pages(runs, layout, what)
    out = {}
    for r in runs:
        for va in range(r.va_start, r.va_end, PAGE):
            out[va] = r
    return out


def user_page_frames(runs, layout):
    """The frames of every page a root maps in its user half (at most MAX_USER_PAGES)."""
    return {r.pa_start + va - r.va_start for va, r in user_pages(runs, layout).items()}


def writable_in_two(snap, roots, layout, labels=None):
    """None, or a sentence naming a frame that two of @p roots map as a user page while one of
    them maps it writable: a write through that root reaches the other process (copy-on-write
    shares frames read-only in every root; an eager copy shares none). Compared run by run (no
    page lists), each root walked by the grader at this stop."""
    labels = labels or {}
    pieces = []
    for root in roots:
        for r in user_runs(snap.runs(root), layout):
            pieces.append((r.pa_start, r.pa_start + (r.va_end - r.va_start), root, r.va_start, bool(r.perms.write)))
    pieces.sort()
    open_ = []   # pieces whose frames may still overlap the next one
    for piece in pieces:
        start, end, root, va, writable = piece
        open_ = [p for p in open_ if p[1] > start]
        for other in open_:
            if other[2] != root and (writable or other[4]):
                frame = max(start, other[0])
                a, b = (piece, other) if writable else (other, piece)
                name = lambda r: labels.get(r, f"root {r:#x}")  # noqa: E731
                return (f"frame {frame:#x} is mapped in {name(a[2])} at {a[3] + frame - a[0]:#x} WRITABLE and in "
                        f"{name(b[2])} at {b[3] + frame - b[0]:#x} ({'writable' if b[4] else 'read-only'}) at the same "
                        "time (the grader's walk of both roots): a write through the first reaches the other process "
                        "(a copy-on-write fork must make a shared frame read-only in every root that maps it)")
        open_.append(piece)
    return None


def table_frames(snap, root):
    """Every page-table frame under the user half of @p root (the root itself included): what the
    teardown of the process must free (pagoda_pt.trees' walk of the tree)."""
    return trees.user_tables(snap.arch, snap.read_phys, root)


def count_used(snap, bitmap_va, words, root=None):
    """(frames marked used, the bitmap as an int) from the frame allocator's `used` bitmap,
    read from guest RAM through the grader's walk of @p root (the live one by default)."""
    data = snap.read_virt(bitmap_va, words * 8, root)
    value = int.from_bytes(data, "little")
    return bin(value).count("1"), value


def used_frames(bits):
    """The physical address of each frame whose bit is set in @p bits (an allocator bitmap as an
    int), lowest first: one pass over its binary text (shifting a 32768-bit int once per bit
    costs seconds)."""
    return [i * PAGE for i, bit in enumerate(reversed(bin(bits)[2:])) if bit == "1"]


def is_used(bitmap, frame):
    return bool(bitmap >> (frame // PAGE) & 1)


FRAME_ALLOCATOR = contract.FRAME_ALLOCATOR


def frame_bitmap(snap, kernel):
    """(address, words) of the `used` bitmap the kernel's frame allocator really works with: the
    allocator object found through the symbol table (FRAME_ALLOCATOR), its bitmap pointer and
    length read from guest RAM at its load address, at the offsets the kernel's facts give. Never
    what a checkpoint says (a kernel could show the grader a frozen copy). AssertionError when it
    cannot be read or is absurd for the guest's RAM."""
    try:
        at = symbols.physical_of(kernel, symbols.address_of(kernel, FRAME_ALLOCATOR))
    except AssertionError as e:
        raise AssertionError(f"the grader cannot find the kernel's frame allocator ({FRAME_ALLOCATOR}): {e}") from None
    used = u64(snap.read_phys(at + layout_value(kernel, "frame_allocator_used_offset"), 8))
    words = u64(snap.read_phys(at + layout_value(kernel, "frame_allocator_words_offset"), 8))
    ram = snap.guest.machine.ram_base + snap.guest.ram_size
    if not 0 < words <= ram // PAGE // 64 + 1:
        raise AssertionError(f"the kernel's frame allocator ({FRAME_ALLOCATOR}) has a used bitmap of {words} words, "
                             f"not one bit per frame of the guest's {ram >> 20} MiB of physical addresses")
    return used, words


def unmarked(bitmap, ranges, words):
    """The first few frames of @p ranges ([start, end) physical) that @p bitmap (an int, one bit
    per frame) does not mark used; frames past the bitmap's @p words are not the allocator's."""
    limit = words * 64 * PAGE
    out = []
    for start, end in sorted(ranges):
        lo, hi = start // PAGE, min(end, limit) // PAGE
        if lo >= hi:
            continue
        span = (bitmap >> lo) & ((1 << (hi - lo)) - 1)
        if span != (1 << (hi - lo)) - 1:
            free = next(i for i in range(hi - lo) if not span >> i & 1)
            out.append((lo + free) * PAGE)
            if len(out) == 4:
                break
    return out


# ---- The process table, a root's pages, the frames' counts (labs 5 to 7) -------------------------

def processes(snap, kernel, records_of=None):
    """{pid: pagoda_pt.procs.Proc} of every slot of the process table that is not free, and of
    the Free slots that still hold a pid (guest RAM: the one reader, pagoda_pt.procs); the record
    (VMA list, bounds) is read for every process, or only for pid @p records_of when given."""
    out = {}
    for p in read_procs(snap.read_phys, Facts.with_records(kernel), snap.read_virt,
                        **({} if records_of is None else {"records_of": records_of}), freed=True):
        out.setdefault(p.pid, p)
    return out


def covered(vmas, va):
    return any(v.start <= va < v.end for v in vmas or [])


# ---- pages of a root ----------------------------------------------------------------------------

class Pages(dict):
    """{va: (frame, writable)} of every 4 KiB user page a root maps (the grader's walk)."""

    @classmethod
    def of(cls, snap, root):
        try:
            return cls((p.va, (p.pa, p.writable))
                       for p in trees.user_pages(snap.arch, snap.read_phys, root, snap.walk_regs, pa_bits=snap.pa_bits))
        except CensusError as e:   # (a table cycle)
            raise WalkError(str(e)) from None

    def frames(self):
        return {pa for pa, _ in self.values()}


def digest(snap, frame):
    return hashlib.blake2b(snap.read_phys(frame, PAGE), digest_size=8).digest()


class Refs:
    """The kernel's frame reference counts, read from guest RAM (pagoda_pt.frames.frame_refs)."""

    def __init__(self, snap, kernel):
        self.entries, self.counts = frame_refs(snap.read_phys, symbols.image(kernel), symbols.reader(kernel))

    def count(self, frame):
        return None if frame is None or frame // PAGE >= self.entries else self.counts.get(frame // PAGE, 1)


def pid_of(snap, kernel, root):
    for k in registry(snap, kernel).roots:
        if k.root == root and k.kind == "process":
            return k.id, k.name
    return None, None


# ---- A machine that died ----------------------------------------------------------------------

def recovered_by_fixup(kernel, fault):
    """True when @p fault is a kernel-mode fault of a user copy on a user address, which the
    kernel's fix-up table turns into EFAULT (lab 4): an instruction in the table, read by the
    grader from the ELF file, and a faulting address in the user half. Such a fault is the copy's
    way of finding a bad pointer, not a kernel fault."""
    return (fault.privilege == ARCHES[fault.arch].kernel_privilege and fault.address is not None
            and fault.address < symbols.fact(kernel, "user_end") and fault.pc in symbols.user_fixups(kernel))


def kernel_faults(kernel, run):
    """The kernel-mode faults in QEMU's log that are not recovered user copies."""
    privilege = ARCHES[run.arch].kernel_privilege
    return [f for f in run.log.faults if f.privilege == privilege and not recovered_by_fixup(kernel, f)]


def entry_sp_problem(what, pc, sp, floor, top):
    """None, or why the first frame @p what (returning to @p pc) hands the process a stack
    pointer @p sp off its user stack (@p floor, @p top]: an entry frame whose SP was never set
    (0) or set to something else than the loader's."""
    if floor < sp <= top:
        return None
    return (f"{what} returns to its entry {pc:#x} with the user stack pointer {sp:#x}, which is not on its user "
            f"stack ({floor:#x}, {top:#x}]: the entry frame's stack pointer must be the one the loader gives "
            f"(arch::UserEntry's sp, below the arguments); {'zero: it was never set' if sp == 0 else 'it is another value'}")


def bss_file_bytes(data, seg, va, got):
    """The file offset whose bytes @p got (read at @p va, in the bss of segment @p seg: past its
    file size) are, when they are the bytes of the ELF file @p data that lie at @p va's place past
    the segment's file part (a loader that copied more than the file size); else None."""
    offset = seg.offset + (va - seg.vaddr)
    if not got or not any(got) or offset + len(got) > len(data):
        return None
    return offset if bytes(data[offset:offset + len(got)]) == bytes(got) else None


def stack_gap_problem(who, unmapped, stack_bottom, stack_top_page):
    """None, or why an eager loader's user stack has a hole before the process ran: @p unmapped,
    the pages of [@p stack_bottom, @p stack_top_page) (every page below the arguments' page) its
    root does not map."""
    if not unmapped:
        return None
    page = unmapped[0]
    which = "its lowest page" if page == stack_bottom else "its page below the arguments' page" \
        if page == stack_top_page - PAGE else "a page inside it"
    return (f"{who}'s user stack [{stack_bottom:#x}, {stack_top_page + PAGE:#x}) is not mapped at {page:#x} ({which}; "
            f"{len(unmapped)} of its {(stack_top_page - stack_bottom) // PAGE} pages below the arguments' page unmapped) "
            "before the process ran, while its segments are: an eager loader maps every page of the stack, from "
            "kUserStackBottom up to the arguments' page (a loop that starts a page high or stops early leaves one out)")


def segment_gap_problem(who, unmapped, mapped, stack_below_top_mapped):
    """None, or why a process (@p who: 'root R of P (pid N): NAME') was loaded with segment pages
    missing, before it ran: @p unmapped [(segment, page)] of its loadable segments' pages are
    not mapped while @p mapped are. A lazy loader (lab 5) maps no segment page and only the
    stack's top page; an eager one (lab 3) maps every segment page and the whole stack, so
    with the page below the stack's top mapped (@p stack_below_top_mapped) or any segment
    page mapped, a missing one is the loader's: its loop stops early or skips a segment."""
    if not unmapped or not (mapped or stack_below_top_mapped):
        return None
    seg, page = unmapped[0]
    first, last = seg.vaddr & ~(PAGE - 1), (seg.vaddr + seg.memsz - 1) & ~(PAGE - 1)
    which = "its only page" if first == last else "its last page" if page == last else \
        "its first page" if page == first else "a page inside it"
    return (f"{who}'s segment [{seg.vaddr:#x}, {seg.vaddr + seg.memsz:#x}) is not mapped at {page:#x} ({which}; "
            f"{len(unmapped)} segment page(s) unmapped, {mapped} mapped) before the process ran: the loader maps every "
            "page a segment covers, from its start rounded down to its end rounded up (a loop that stops before a "
            "partial last page, or skips a segment, leaves it out)")


def name_max():
    """abi::kMaxProgramName (read from the grader's kernel/lib/abi.hpp, not copied): a longer
    program name is cut to it in the process's record, and so in its 'started' line."""
    with open(programs.abi_header()) as f:
        return int(re.search(r"kMaxProgramName = (\d+);", f.read())[1])


def argument_problem(what, name, argc, argv, page_va, page):
    """None, or why a new process, before it ran, would not find its arguments: @p argc and
    @p argv are its entry frame's argument registers (the process-entry convention), @p page the
    bytes of its argument page (the top page of its user stack, at @p page_va, where the loader
    writes every argument: read by the grader through the process's own root). argv must point
    into that page at argc pointers and a null one, argv[0] at the process's @p name, each a
    NUL-terminated string in the page. When the table or the name is not where the registers
    say, the page is searched for where the bytes did land: bytes at another offset of the frame
    than their address (an offset within the page dropped or added on the way to the frame)."""
    end = page_va + len(page)

    def word(va):
        return int.from_bytes(page[va - page_va:va - page_va + 8], "little") if page_va <= va <= end - 8 else None

    def string(va):
        if va is None or not page_va <= va < end:
            return None
        nul = page.find(b"\0", va - page_va)
        return page[va - page_va:nul] if nul >= 0 else None

    head = f"{what} enters with argc {argc} and argv {argv:#x}"
    if not page_va <= argv < end:
        return (f"{head}: argv is not in its argument page [{page_va:#x}, {end:#x}) (the top page of its user stack, "
                "where the loader writes the arguments): the entry frame's argument registers must be the loader's "
                "argc and argv (arch::UserEntry)")
    if not 1 <= argc <= (end - argv) // 8 - 1:
        return (f"{head}: argc must count the arguments the loader wrote (the program's name at least), and fit "
                "in the page above argv: the entry frame's argument registers must be the loader's argc and argv "
                "(arch::UserEntry)")
    pointers = [word(argv + 8 * i) for i in range(argc + 1)]
    strings = [string(p) for p in pointers[:argc]]
    want = name.encode()
    named = strings[0] == want or (len(want) >= name_max() and (strings[0] or b"").startswith(want))
    if named and pointers[argc] == 0 and None not in strings:
        return None
    shown = repr(strings[0].decode(errors="replace")) if strings[0] is not None else (
        "a null pointer" if pointers[0] == 0 else f"{pointers[0]:#x}, not a string in the page")
    said = f"{head}, but argv[0] is {shown}, not its name {name!r} (the grader read its argument page through its root)"
    table = page[argv - page_va:argv - page_va + 8 * (argc + 1)]
    landed = page.find(want + b"\0")
    used = [i for i, b in enumerate(page) if b]
    if not any(table) and used:
        return (f"{said}: argv's table (page offset {argv - page_va:#x}) holds zeros while the page's bytes lie at offsets "
                f"{used[0]:#x}-{used[-1]:#x}: the loader's bytes went to other offsets of the frame than their "
                "addresses (an offset within the page dropped or added on the way to the frame: copy_to_space(), "
                "write_frame())")
    if landed >= 0 and pointers[0] != page_va + landed:
        return (f"{said}: {name!r} lies at {page_va + landed:#x} (page offset {landed:#x}), where argv[0] should point: "
                "the arguments' bytes and their pointers disagree on offsets in the page (an offset within the page "
                "dropped or added on the way to the frame: copy_to_space(), write_frame())")
    if not used:
        return (f"{said}: the argument page holds only zeros: the arguments never reached the frame the process's "
                "root maps there (written into another frame, or through another root)")
    return f"{said}: its arguments were not written where argv points"


def slot_marks_problem(started, slot_of, marked):
    """None, or why the kernel-stack slots of the processes in @p started ({pid: Started}) are
    not all taken: two processes in one slot, or a slot a process holds that the kernel's own
    slot table marks free (@p marked(slot): g_used, read from guest RAM), so that the next
    process is given the same slot. @p slot_of maps a stack's bottom to its slot."""
    holders = {}
    for p in sorted(started.values(), key=lambda s: s.pid):
        slot = slot_of(p.stack[0])
        if slot is None:
            continue
        if slot in holders:
            q = holders[slot]
            return (f"pid {q.pid} ({q.name}) and pid {p.pid} ({p.name}) were both given kernel stack slot {slot} "
                    f"[{p.stack[0]:#x}, {p.stack[1]:#x}): create_kernel_stack() must take a slot no stack holds and "
                    "mark it used")
        holders[slot] = p
        if not marked(slot):
            return (f"pid {p.pid} ({p.name})'s kernel stack is in slot {slot} [{p.stack[0]:#x}, {p.stack[1]:#x}), "
                    "but the kernel's slot table (g_used, read by the grader from guest RAM) marks that slot free: "
                    "create_kernel_stack() did not mark the slot it took used, so the next process is given the "
                    "same kernel stack slot")
    return None


def u64(data):
    """The little-endian unsigned number @p data holds (a word read in guest RAM)."""
    return int.from_bytes(data, "little")
