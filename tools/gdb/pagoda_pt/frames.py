"""Who owns each physical frame: the census behind GDB's `frames`, the copy-on-write lines of
`pt-diff` and `./pagoda run --memview`.  Plain Python, like the rest of pagoda_pt: physical
memory comes through read_phys(pa, size) -> bytes and the kernel's symbols through
symbol(name) -> address or None, so GDB (its symbols, its physical reads) and the host (nm and
a gdbstub client) share one census.

What the census reads, every fact from the kernel's own records in guest RAM or from its ELF:

    pagoda_debug_roots      the roots the kernel published (kernel, boot, one per process)
    pagoda_frame_bitmaps    {used, managed, words}: the frame allocator's bitmaps (kernel
                            addresses in the window), one bit per frame from physical 0
    pagoda_frame_refs       {table, entries}: a u16 per frame, the mappings beyond the first
    __kernel_phys_start/_end, __kernel_virt_offset   the image and where it is linked
    pagoda_fact_window_base/_phys_base               kernel window address -> physical

and walks every published root twice: its table frames (all levels, the root included) and
its user pages.  Each frame gets one owner, the first that applies:

    kernel image  K     the kernel's ELF image (but the parts given back to the allocator)
    page table    T     a table frame of some published root
    shared        S     a user page mapped by two or more roots (copy-on-write after fork)
    process       1-9a-z  a user page of exactly one process (its id in base 35: 0-9, a-z
                        without k)
    kernel        k     allocated (used bit set) with none of the above: heap, kernel
                        stacks, the bitmaps themselves, a dying process's pages
    free          .     managed by the allocator and not allocated
    reserved      #     not managed by the allocator (low memory, firmware) and not the image

Problems the census finds on the way (each a line): a frame mapped by more user pages than its
reference count says (or fewer), a mapped frame the allocator calls free, a free frame with a
non-zero count, a page-table frame the allocator calls free.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import contract as C
from .image import CensusError, kernel_image
from .isa import isa
from .model import PAGE_SIZE_4K
from .roots import RegistryError, read_root_table
from . import trees
from .trees import cached
from .walker import canonical_arch

Symbol = Callable[[str], Optional[int]]

IMAGE, TABLE, SHARED, PROCESS, KERNEL, FREE, RESERVED = (
    "kernel image", "page table", "shared", "process", "kernel", "free", "reserved")
OWNERS = (IMAGE, TABLE, SHARED, PROCESS, KERNEL, FREE, RESERVED)
LETTERS = {IMAGE: "K", TABLE: "T", SHARED: "S", KERNEL: "k", FREE: ".", RESERVED: "#"}
DIGITS = "0123456789abcdefghijlmnopqrstuvwxyz"   # no k: that is the kernel's

BOUNDARY_FRAMES = 512


# ---- the census ----------------------------------------------------------------------------------

@dataclass
class ProcessMemory:
    pid: int
    name: str
    root: int
    tables: set = field(default_factory=set)
    pages: list = field(default_factory=list)


@dataclass
class Census:
    arch: str
    frames: int                          # frames from physical 0 that the bitmaps cover
    first: int                           # the lowest frame of RAM (index)
    owner: list                          # per frame index: one of OWNERS
    pid_of: dict                         # frame index -> pid, for PROCESS frames
    refs: list                           # per frame index: the kernel's count (1 + extra)
    mappings: dict                       # frame index -> user pages mapping it
    processes: list                      # ProcessMemory, in the registry's order
    problems: list = field(default_factory=list)
    note: str = ""
    # The problems above that say a frame was freed while still mapped, as facts for fault-why
    # (mapped_frame_story): (frame, va, who, what the allocator calls it) for a mapped frame
    # that is free, a page table or the image; (frame, [(who, va)], count) for a frame with more
    # user mappings than its reference count.
    misowned: list = field(default_factory=list)
    overmapped: list = field(default_factory=list)

    def count(self, owner: str) -> int:
        return sum(1 for i in range(self.first, self.frames) if self.owner[i] == owner)

    def letter(self, index: int) -> str:
        owner = self.owner[index]
        if owner == PROCESS:
            return DIGITS[self.pid_of[index] % len(DIGITS)]
        return LETTERS[owner]


def _u64s(data: bytes) -> tuple:
    return struct.unpack("<%dQ" % (len(data) // 8), data)


def _nonzero_u16s(data: bytes, chunk: int = 4096):
    """(index, value) of each non-zero little-endian u16 of @p data, in order; the runs of zeros
    (most of a table that covers RAM from physical 0) are skipped a chunk at a time."""
    zero = bytes(chunk)
    for at in range(0, len(data), chunk):
        part = data[at:at + chunk]
        if part == zero[:len(part)]:
            continue
        for k, value in enumerate(struct.unpack("<%dH" % (len(part) // 2), part[:len(part) // 2 * 2])):
            if value:
                yield at // 2 + k, value


def take_census(arch: str, read_phys, symbol: Symbol, regs: Optional[dict] = None,
                pa_bits: Optional[int] = None, ram_start: Optional[int] = None,
                max_user_pages: Optional[int] = None) -> Census:
    """Reads the kernel's records (see the module's docstring) and gives every frame an owner.
    @p ram_start (physical) starts the census there instead of at the first managed frame.
    @p max_user_pages bounds each root's user pages (CensusError past it).
    CensusError when a record is missing or not set up yet (before vm::init)."""
    arch = canonical_arch(arch)
    read_phys = cached(read_phys)
    image = kernel_image(symbol)
    image_start, image_end, window_pa = image.phys_start, image.phys_end, image.must_pa
    used_va, managed_va, words = _u64s(read_phys(image.static_pa(symbol, C.FRAME_BITMAPS), 24))
    if not words:
        raise CensusError("the frame allocator is not set up yet (%s is empty)" % C.FRAME_BITMAPS)
    used = read_phys(window_pa(used_va), words * 8)
    managed = read_phys(window_pa(managed_va), words * 8)
    frames = words * 64
    refs = [1] * frames
    counted = []        # the frames whose count is not 1 (1 + extra), in order
    for i, count in frame_refs(read_phys, image, symbol)[1].items():   # (in order)
        if i >= frames:
            break
        refs[i] = count
        counted.append(i)
    roots = read_root_table(read_phys, image.static_pa(symbol, C.ROOT_REGISTRY))
    # PROT_NONE pages keep their frames in held leaves (invalid to the MMU): theirs too.
    held_mask = symbol(C.fact_symbol("held_entry_bit")) or 0

    owner = [RESERVED] * frames
    pid_of, mappings = {}, {}
    # (byte by byte: the bitmaps cover RAM from physical 0, 1 GiB of nothing before AArch64's
    # RAM; a shift of the whole bitmap per frame made the census quadratic in its size)
    first = None
    for at in range(words * 8):
        u, m = used[at], managed[at]
        if not u | m:
            continue
        if first is None and m:
            first = at * 8 + (m & -m).bit_length() - 1
        for bit in range(8):
            if u >> bit & 1:
                owner[at * 8 + bit] = KERNEL
            elif m >> bit & 1:
                owner[at * 8 + bit] = FREE
    first = first or 0
    for i in range(image_start // PAGE_SIZE_4K, min(frames, -(-image_end // PAGE_SIZE_4K))):
        # The boot stub's tables and entry stack lie in the image and go back to the allocator
        # (vm::enter_kernel_space): those are the allocator's now.
        if not managed[i >> 3] >> (i & 7) & 1:
            owner[i] = IMAGE
        first = min(first, i)
    # From a 2 MiB boundary (RAM starts on one on both ISAs), unless the caller knows better.
    first = first & ~(BOUNDARY_FRAMES - 1) if ram_start is None else ram_start // PAGE_SIZE_4K

    census = Census(arch, frames, first, owner, pid_of, refs, mappings, [])
    table_owner = {}
    for known in roots.roots:
        if known.kind not in ("kernel", "process"):
            continue     # the boot root's frames go back to the allocator: counted as they are
        # A process's kernel half (x86_64) is the kernel's own tables, shared: counted once.
        # (AArch64: a process root is TTBR0's tree, all of it the process's.)
        tables = trees.user_tables(arch, read_phys, known.root) if known.kind == "process" else \
            trees.table_frames(arch, read_phys, known.root)
        for pa in tables:
            table_owner.setdefault(pa // PAGE_SIZE_4K, known)
        if known.kind == "process":
            memory = ProcessMemory(known.id, known.name, known.root, tables,
                                   trees.user_pages(arch, read_phys, known.root, regs, pa_bits, held_mask,
                                                    max_user_pages))
            census.processes.append(memory)
            for page in memory.pages:
                mappings.setdefault(page.pa // PAGE_SIZE_4K, []).append((memory, page))
    for index, known in table_owner.items():
        if index < frames:
            if owner[index] != KERNEL:
                census.problems.append("page-table frame %#x of %s is %s in the frame allocator"
                                       % (index * PAGE_SIZE_4K, known.label(), owner[index]))
            owner[index] = TABLE
    for index, maps in mappings.items():
        if index >= frames:
            census.problems.append("frame %#x mapped at %#x by %s lies past the allocator's "
                                   "bitmaps" % (index * PAGE_SIZE_4K, maps[0][1].va,
                                                _who(maps[0][0])))
            continue
        if owner[index] in (FREE, IMAGE, TABLE):
            census.misowned.append((index * PAGE_SIZE_4K, maps[0][1].va, _who(maps[0][0]), owner[index]))
        if owner[index] in (FREE, RESERVED, IMAGE, TABLE):
            census.problems.append("frame %#x is mapped at %#x by %s but is %s" % (
                index * PAGE_SIZE_4K, maps[0][1].va, _who(maps[0][0]),
                "a page table" if owner[index] == TABLE else
                "the kernel image" if owner[index] == IMAGE else
                owner[index] + " in the frame allocator"))
        if len(maps) > refs[index]:
            census.overmapped.append((index * PAGE_SIZE_4K, [(_who(m), p.va) for m, p in maps], refs[index]))
        if len(maps) != refs[index]:
            census.problems.append("frame %#x: %d user mapping%s (%s) but reference count %d" % (
                index * PAGE_SIZE_4K, len(maps), "" if len(maps) == 1 else "s",
                ", ".join("%s at %#x" % (_who(m), p.va) for m, p in maps[:4]), refs[index]))
        if owner[index] in (KERNEL, FREE):
            if len({m.root for m, _ in maps}) > 1:
                owner[index] = SHARED
            else:
                owner[index] = PROCESS
                pid_of[index] = maps[0][0].pid
    for index in counted:
        if owner[index] == FREE:
            census.problems.append("free frame %#x has reference count %d (a leaked count)"
                                   % (index * PAGE_SIZE_4K, refs[index]))
    if roots.dropped:
        census.note = "%d roots were not published (the kernel's table was full)" % roots.dropped
    return census


def mapped_frame_story(census: Census) -> Optional[str]:
    """The census's evidence that a frame was freed while a user page still maps it, as one
    sentence (the likeliest form first), or None. Freed while mapped, a frame goes to its next
    owner (a page table, another process, the kernel's heap) while the program still reads and
    writes it: what dies later dies of that, wherever it faults. Only meaningful where the
    kernel's records are consistent (between operations: a fault from user mode)."""
    if census.misowned:
        frame, va, who, what = census.misowned[0]
        owner = {FREE: "free in the frame allocator", TABLE: "a page table of a published root",
                 IMAGE: "part of the kernel image"}[what]
        again = "" if what == FREE else " and given out again"
        more = " (and %d more)" % (len(census.misowned) - 1) if len(census.misowned) > 1 else ""
        return ("frame %#x is mapped at %#x by %s, yet it is %s%s: a frame freed while it is still "
                "mapped%s (the reference count fell to its last too early, or a page was freed "
                "without being unmapped); the program's memory now belongs to someone else"
                % (frame, va, who, owner, more, again))
    if census.overmapped:
        frame, maps, count = census.overmapped[0]
        return ("frame %#x is mapped by %d user pages (%s) but its reference count is %d: a frame "
                "freed while it is still mapped and given out again, or shared without raising its "
                "count (the next drop frees it under the other mapping)"
                % (frame, len(maps), ", ".join("%s at %#x" % m for m in maps[:4]), count))
    return None


def _who(memory: ProcessMemory) -> str:
    return "process %d '%s'" % (memory.pid, memory.name)


# ---- text ----------------------------------------------------------------------------------------

def format_frames(census: Census) -> list[str]:
    """The `frames` report: counts by owner, each process's pages and tables, shared frames by
    reference count, then the problems."""
    total = census.frames - census.first
    lines = ["%d frames of %d KiB from %#x to %#x" % (total, PAGE_SIZE_4K // 1024,
                                                        census.first * PAGE_SIZE_4K,
                                                        census.frames * PAGE_SIZE_4K)]
    for owner in OWNERS:
        if owner == PROCESS:
            continue
        lines.append("  %-13s %c %7d" % (owner, LETTERS[owner], census.count(owner)))
    lines.append("  %-13s   %7d" % ("process pages", census.count(PROCESS)))
    lines.append("processes (pages: mapped user pages; own: frames only it maps; shared: frames "
                 "mapped by others too):")
    lines.append("  %5s  %-16s %-18s %6s %6s %6s %6s" % ("PID", "NAME", "ROOT", "PAGES", "OWN",
                                                          "SHARED", "TABLES"))
    for memory in census.processes:
        own = shared = 0
        for page in memory.pages:
            index = page.pa // PAGE_SIZE_4K
            if index < census.frames and census.owner[index] == SHARED:
                shared += 1
            else:
                own += 1
        lines.append("  %5d  %-16s %#018x %6d %6d %6d %6d" % (
            memory.pid, memory.name, memory.root, len(memory.pages), own, shared,
            len(memory.tables)))
    counts = {}
    for index in range(census.first, census.frames):
        if census.refs[index] > 1:
            counts[census.refs[index]] = counts.get(census.refs[index], 0) + 1
    if counts:
        lines.append("reference counts above 1 (pagoda_frame_refs): " + ", ".join(
            "%d frame%s x%d" % (n, "" if n == 1 else "s", c) for c, n in sorted(counts.items())))
    else:
        lines.append("reference counts: every frame has at most one mapping")
    for problem in census.problems[:20]:
        lines.append("problem: " + problem)
    if len(census.problems) > 20:
        lines.append("problem: ... and %d more" % (len(census.problems) - 20))
    if not census.problems:
        lines.append("no problems: every user mapping is counted, no free frame is mapped")
    if census.note:
        lines.append("note: " + census.note)
    return lines


COLOURS = {IMAGE: "1;37;44", TABLE: "30;43", SHARED: "1;37;41", KERNEL: "30;47", FREE: "2",
           RESERVED: "2;37"}
PROCESS_COLOURS = ("30;42", "30;46", "30;45", "30;102", "30;106", "30;105", "30;103", "30;104")


def map_cells(census: Census, most: int) -> tuple:
    """(frames per cell, one letter per cell): RAM from the census's first frame in at most @p most
    cells, each the letter of the owner of most of its frames (the rarer, interesting owners win a
    cell over free memory)."""
    per_cell = max(1, -(-(census.frames - census.first) // most))
    letters = [census.letter(i) for i in range(census.first, census.frames)]
    cells = []
    for lo in range(0, len(letters), per_cell):
        part = letters[lo:lo + per_cell]
        tally = {}
        for k in part:
            tally[k] = tally.get(k, 0) + 1
        cells.append(max(tally, key=lambda k: (tally[k] if k != "." else 0, k != ".")))
    return per_cell, "".join(cells)


def format_map(census: Census, width: int = 64, colour: bool = False,
               max_rows: int = 32) -> list[str]:
    """A one-screen map of physical memory: one character per cell of frames, the owner of most
    of its frames (letters as in the module's docstring), rows labelled by physical address,
    then a legend with counts.  With @p colour, ANSI colours by owner."""
    per_cell, cells = map_cells(census, width * max_rows)
    lines = []
    for row_start in range(0, len(cells), width):
        text = cells[row_start:row_start + width]
        pa = (census.first + row_start * per_cell) * PAGE_SIZE_4K
        lines.append("%#010x %s" % (pa, _coloured(text, census) if colour else text))
    legend = ["%s %s %d" % (LETTERS[o], o, census.count(o)) for o in OWNERS if o != PROCESS]
    pids = sorted({m.pid for m in census.processes})
    legend += ["%s pid %d '%s' %d" % (DIGITS[p % len(DIGITS)], p,
                                      next(m.name for m in census.processes if m.pid == p),
                                      sum(1 for i in census.pid_of.values() if i == p))
               for p in pids]
    lines.append("one cell = %d frame%s (%d KiB); %s" % (per_cell, "" if per_cell == 1 else "s",
                                                       per_cell * PAGE_SIZE_4K // 1024,
                                                       ", ".join(legend)))
    if census.problems:
        lines.append("problems: %d (GDB's `frames` lists them); first: %s"
                     % (len(census.problems), census.problems[0]))
    return lines


def _coloured(text: str, census: Census) -> str:
    """@p text with one ANSI colour sequence per run of equal letters."""
    out, i = [], 0
    while i < len(text):
        j = i
        while j < len(text) and text[j] == text[i]:
            j += 1
        out.append("\x1b[%sm%s\x1b[0m" % (_colour_of(census, text[i]), text[i:j]))
        i = j
    return "".join(out)


def _colour_of(census: Census, letter: str) -> str:
    for owner, mark in LETTERS.items():
        if mark == letter:
            return COLOURS[owner]
    if letter not in DIGITS:
        return "1;37;41"        # a mark of a problem (the swap map's !)
    return PROCESS_COLOURS[DIGITS.index(letter) % len(PROCESS_COLOURS)]


def count_left_story(census: Census) -> Optional[str]:
    """A frame whose reference count is above the user pages that map it (at least one): a mapping
    went away without dropping its reference, as one sentence, or None. Between operations (a stop
    at an exit, at a kill from user mode) every count equals the frame's user mappings; one left
    above them means the frame is never freed when its last mapping goes (the count never reaches
    the last)."""
    for index in sorted(census.mappings):
        maps = census.mappings[index]
        if index < census.frames and maps and census.refs[index] > len(maps):
            who = ", ".join("%s at %#x" % (_who(m), p.va) for m, p in maps[:3])
            return ("frame %#x has reference count %d but %d user mapping%s (%s): a mapping went away (an unmap at "
                    "exit, munmap or a copy-on-write copy) that did not drop its reference, so the count never falls "
                    "to the last and the frame is never freed"
                    % (index * PAGE_SIZE_4K, census.refs[index], len(maps), "" if len(maps) == 1 else "s", who))
    return None


def exec_kept_story(census: Census, rows: list) -> Optional[str]:
    """A frame whose reference count is above its user mappings, all of them a parent's, while a
    child of that parent now runs another program (@p rows: pagoda_pt.procs.Proc):
    the child's copy-on-write share of the frame, taken at fork, outlived the child's old user half,
    which exec never freed. One sentence, or None. A forked child starts with its parent's name, and
    only exec changes it; a spawned child never shared its parent's frames."""
    names = {r.pid: r.name for r in rows}
    for index in sorted(census.mappings):
        maps = census.mappings[index]
        if index >= census.frames or not maps or census.refs[index] <= len(maps):
            continue
        holders = {m.pid for m, _ in maps}
        child = next((r for r in rows if r.parent in holders and names.get(r.parent) not in (None, r.name)),
                     None)
        if child is None:
            continue
        m, page = next((m, p) for m, p in maps if m.pid == child.parent)
        return ("exec did not free the old user half: frame %#x, mapped by %s at %#x, has reference count %d but %d "
                "user mapping%s, and proc %d, forked from proc %d (%s), now runs %s: the share of the frame it took at "
                "fork was never dropped when exec replaced its user half (free the old user half, every page's "
                "reference, before the old space goes)"
                % (index * PAGE_SIZE_4K, _who(m), page.va, census.refs[index], len(maps), "" if len(maps) == 1 else "s",
                   child.pid, m.pid, m.name, child.name))
    return None


# ---- the audit: the kernel's own records against each other --------------------------------------

# The user pages the audit's census lists per root, at most (64 MiB): a root that maps more (a
# hostile kernel's huge ranges) is left out of the audit rather than slowing every failure.
AUDIT_MAX_USER_PAGES = 16384
# How many blocks one free list may have before the walk gives up (a cycle is caught sooner by
# the blocks already seen; this bounds the time on a list corrupted into a long chain).
MAX_LIST_BLOCKS = 200_000


class _Records:
    """The kernel's records in guest RAM: image symbols, facts, window addresses, the bitmaps."""

    def __init__(self, read_phys, symbol: Symbol):
        self.read_phys = read_phys
        self.symbol = symbol
        self.image = kernel_image(symbol)
        self.pa = self.image.pa
        at = self.image.static_pa(symbol, C.FRAME_BITMAPS)
        used_va, managed_va, words, self.free_count_va = _u64s(read_phys(at, 32))
        if not words or self.pa(used_va) is None or self.pa(managed_va) is None:
            raise CensusError("the frame allocator is not set up yet (%s is empty)" % C.FRAME_BITMAPS)
        self.used = int.from_bytes(read_phys(self.pa(used_va), words * 8), "little")
        self.managed = int.from_bytes(read_phys(self.pa(managed_va), words * 8), "little")

    def fact(self, name: str) -> Optional[int]:
        return self.symbol(C.fact_symbol(name))

    def u64(self, va: int) -> int:
        return _u64s(self.read_phys(self.pa(va), 8))[0]

    def is_free(self, pa: int) -> bool:
        """Managed by the allocator and not allocated."""
        f = pa // PAGE_SIZE_4K
        return bool(self.managed >> f & 1) and not self.used >> f & 1


def free_count_findings(rec: _Records) -> list[str]:
    """The allocator's count of free frames against the frames its bitmaps mark managed and not
    used: always equal between operations."""
    if not rec.free_count_va or rec.pa(rec.free_count_va) is None:
        return []
    counted = rec.u64(rec.free_count_va)
    real = bin(rec.managed & ~rec.used).count("1")
    if counted == real:
        return []
    how = ("an allocation that did not lower the free count (the frame is marked used, the count not taken down)"
           if counted > real else "an allocation that lowered the count without marking its frame used in the bitmap "
           "(the same frame can be handed out again), an allocation that lowered it twice or lowered it before a "
           "search that then found nothing (NoMemory), or a free that did not raise it")
    return ["the frame allocator's free count says %d frames are free, but its own bitmaps hold %d free frames "
            "(%d %s counted than there are): %s" % (counted, real, abs(counted - real),
                                                    "more" if counted > real else "fewer", how)]


def kernel_stack_findings(arch: str, rec: _Records, kernel_root: Optional[int]) -> list[str]:
    """A page of the kernel-stack area that the kernel root maps to a frame the allocator calls
    free: a stack's frames freed while its pages stay mapped."""
    keys = ("stack_base", "kernel_image_base", "kernel_stack_stride", "kernel_stack_guard")
    f = {k: rec.fact(k) for k in keys}
    if kernel_root is None or None in f.values():
        return []
    bad = [(va, pa) for va, pa in trees.kernel_pages(arch, cached(rec.read_phys), kernel_root, f["stack_base"],
                                                     f["kernel_image_base"]) if rec.is_free(pa)]
    if not bad:
        return []
    va, pa = bad[0]
    slot = (va - f["stack_base"]) // f["kernel_stack_stride"]
    page = (va - f["stack_base"] - slot * f["kernel_stack_stride"] - f["kernel_stack_guard"]) // PAGE_SIZE_4K
    more = " (and %d more such page%s)" % (len(bad) - 1, "s" * (len(bad) > 2)) if len(bad) > 1 else ""
    return ["the kernel stack of slot %d is still mapped (page %d at %#x) but its frame %#x is free in the frame "
            "allocator%s: a kernel stack freed while its pages stay mapped (free the frames only after unmapping "
            "them), so the stack's addresses reach frames the allocator hands out again" % (slot, page, va, pa, more)]


def heap_findings(rec: _Records) -> list[str]:
    """The heap's free lists (kernel/mm/heap.cpp) walked in guest RAM: every listed block is a free
    block of its class, listed once, at a block's start, in a frame the allocator holds, and a
    frame holds blocks of one class. The first broken rule found."""
    names = ("heap_magic_free", "heap_magic_small", "heap_min_class_shift", "heap_classes", "heap_header_size",
             "heap_next_offset")
    fact = {n: rec.fact(n) for n in names}
    lists_va = rec.symbol(C.HEAP_FREE_LISTS)
    if None in fact.values() or lists_va is None:
        return []
    lists = rec.u64(lists_va)
    class_of_frame = {}
    for c in range(fact["heap_classes"]):
        size = 1 << (c + fact["heap_min_class_shift"])
        va = rec.u64(lists + 8 * c)
        seen = set()
        while va and len(seen) < MAX_LIST_BLOCKS:
            pa = rec.pa(va)
            if pa is None:
                return ["the heap's free list of class %d (%d-byte blocks) links to %#x, which is not a heap address: "
                        "a corrupt next pointer (a block written after it was freed, or a neighbour that wrote past "
                        "its end)" % (c, size, va)]
            if va in seen:
                return ["the heap's free list of class %d (%d-byte blocks) reaches block %#x twice (a cycle): a block "
                        "put on the list twice (freed twice)" % (c, size, va)]
            seen.add(va)
            data = rec.read_phys(pa, fact["heap_next_offset"] + 8)
            magic, size_class, requested = struct.unpack_from("<IIQ", data)
            frame = pa - pa % PAGE_SIZE_4K
            if magic == fact["heap_magic_small"]:
                return ["heap block %#x (class %d, %d bytes) is on the free list and in use at once (its header says "
                        "allocated, %d bytes asked): a block handed out without being taken off its free list, so a "
                        "later allocation gets it again (the same block twice)" % (va, c, size, requested)]
            if magic != fact["heap_magic_free"] or size_class != c:
                return [_overwritten(rec, fact, va, pa, c, size, magic, size_class)]
            if rec.is_free(frame):
                return ["heap block %#x on the free list of class %d lies in frame %#x, which the frame allocator calls "
                        "free: a block outside the frames the heap was given (refill() cut a block past the end of its "
                        "frame, or a frame's blocks stayed listed after it was freed)" % (va, c, frame)]
            if pa % size:
                smaller = next((k for k in range(c - 1, -1, -1)
                                if pa % (1 << (k + fact["heap_min_class_shift"])) == 0), None)
                if smaller is not None:
                    return ["heap block %#x on the free list of class %d (%d-byte blocks) is not at the start of a "
                            "%d-byte block, but at the start of a %d-byte one: a block of a smaller class given back "
                            "to this class's list (its header recorded the wrong class when it was handed out, or "
                            "free() pushed it by a class that is not its own), or the list holds a pointer into a "
                            "block" % (va, c, size, size, 1 << (smaller + fact["heap_min_class_shift"]))]
                return ["heap block %#x on the free list of class %d is not at the start of a %d-byte block: the list "
                        "holds a pointer into a block (free() put back the object's address, not its header's?)"
                        % (va, c, size)]
            other, first = class_of_frame.setdefault(frame, (c, va))
            if other != c:
                past = (", or a block cut past the end of the frame below it (refill())"
                        if pa % PAGE_SIZE_4K == 0 or rec.pa(first) % PAGE_SIZE_4K == 0 else "")
                return ["heap frame %#x holds free blocks of class %d (%d bytes, %#x) and of class %d (%d bytes, %#x), "
                        "but refill() cuts a frame into one class: a block was given back to another class's free "
                        "list (free() pushing it by a class that is not its own)%s"
                        % (frame, other, 1 << (other + fact["heap_min_class_shift"]), first, c, size, va, past)]
            va = struct.unpack_from("<Q", data, fact["heap_next_offset"])[0]
    return []


def _overwritten(rec, fact, va, pa, c, size, magic, size_class) -> str:
    said = ("heap block %#x on the free list of class %d has an overwritten header (magic %#x, class %d; a free "
            "block's is %#x, class %d)" % (va, c, magic, size_class, fact["heap_magic_free"], c))
    if pa % PAGE_SIZE_4K >= size:
        below_magic, below_class, below_requested = struct.unpack("<IIQ", rec.read_phys(pa - size, 16))
        if below_magic == fact["heap_magic_small"] and below_class == c and \
                below_requested + fact["heap_header_size"] > size:
            return ("%s: the block below it, %#x, is in use with %d bytes asked of a %d-byte block (%d usable): it "
                    "wrote past its end into this one (an allocation given a class too small for its size)"
                    % (said, va - size, below_requested, size, size - fact["heap_header_size"]))
    return said + ": written after it was freed, or by a neighbour writing past its end"


def audit(arch: str, read_phys, symbol: Symbol, census: Optional[Census] = None) -> list[str]:
    """The kernel's memory records checked against each other, the most causal finding first:
    a frame freed while a root still maps it (the census), a kernel stack's frames freed while
    mapped, the free count against the bitmaps, then the heap's free lists. Each holds between
    operations (a stop at an exit, a panic, a kill, the grader's checkpoints). [] when nothing is
    wrong; CensusError when the kernel's records are not set up (before vm::init)."""
    arch = canonical_arch(arch)
    read_phys = cached(read_phys)
    rec = _Records(read_phys, symbol)
    out = []
    try:    # what the roots map: needs the root registry (a kernel before vm::init has none)
        if census is None:
            census = take_census(arch, read_phys, symbol, max_user_pages=AUDIT_MAX_USER_PAGES)
        story = mapped_frame_story(census)
        if story:
            out.append(story)
        out += [p + ": a table still linked into a live root was freed" for p in census.problems
                if p.startswith("page-table frame") and " is free " in p]
        roots = read_root_table(read_phys, rec.image.static_pa(symbol, C.ROOT_REGISTRY))
        kernel_root = next((r.root for r in roots.roots if r.kind == "kernel"), None)
        out += kernel_stack_findings(arch, rec, kernel_root)
    except (CensusError, RegistryError):
        pass
    out += free_count_findings(rec)
    out += heap_findings(rec)
    return out


# ---- a leak, classified: what each frame still in use after a run is, read from its bytes --------

PAGE_TABLE, USER_PAGE, KERNEL_STACK, HEAP, EMPTY = (
    "page-table", "user data", "kernel-stack", "kernel heap", "zeroed")
LEAK_KINDS = (PAGE_TABLE, USER_PAGE, KERNEL_STACK, HEAP, EMPTY)


@dataclass
class LeakClass:
    """Frames of a leak that are one kind of thing, with what they were and the likeliest path."""
    kind: str                 # PAGE_TABLE, USER_PAGE, KERNEL_STACK, HEAP, EMPTY
    frames: list              # physical addresses
    what: str                 # "level 1 tables (PT) of pid 4's root"
    path: str                 # the likeliest path that leaked them

    def sentence(self) -> str:
        n = len(self.frames)
        return ("leaked %d %s frame%s (%s): %s" % (n, self.kind, "" if n == 1 else "s", self.what, self.path))


def _levels_name(arch: str, depths) -> str:
    """Table levels @p depths below the root (0: the root) as each ISA's manuals number them:
    'level 1 tables (PT)', 'levels 4, 3, 2, 1 tables (PML4, PDPT, PD, PT)', 'level 3 tables'."""
    depths = sorted(depths)
    many = "s" if len(depths) > 1 else ""
    if isa(arch).one_root:
        return "level%s %s tables (%s)" % (many, ", ".join(str(4 - d) for d in depths),
                                          ", ".join(("PML4", "PDPT", "PD", "PT")[d] for d in depths))
    return "level%s %s tables" % (many, ", ".join(str(d) for d in depths))


def _table_targets(arch: str, rec: "_Records", data: bytes, frames: int) -> Optional[list]:
    """The frames the 512 entries of @p data point at when every non-zero entry is a valid (or
    held) page-table entry whose address is a frame of RAM the allocator manages or the image
    holds; None when some entry is not (the bytes are not a page table)."""
    model = isa(arch)
    held = rec.fact("held_entry_bit") or 0
    image = (rec.image.phys_start, rec.image.phys_end)
    out = []
    for raw in _u64s(data):
        if raw == 0:
            continue
        valid = raw & 1 if model.one_root else raw & 3 in (1, 3)
        if not valid and not (held and raw & held):
            return None
        target = raw & model.table_address_mask
        f = target // PAGE_SIZE_4K
        if not (f < frames and rec.managed >> f & 1) and not image[0] <= target < image[1]:
            return None
        out.append(target)
    return out


def leak_classes(arch: str, read_phys, symbol: Symbol, leaked, roots_seen: Optional[dict] = None,
                 seen: Optional[dict] = None) -> list:
    """What the frames in @p leaked (physical addresses in use after a run that were free before
    it) are, read from guest RAM now, as [LeakClass], the most frames first: page tables (their
    level, counted down from the top of each leaked tree, and whose root when @p roots_seen
    {root: 'pid 4 (forker)'} knows it), user data pages (mapped by a leaked table, or not),
    kernel-stack frames (the kernel root maps them in the stack area, or their words are kernel
    code addresses), heap frames (a heap block's header at their start), and zeroed frames; each
    with the path that most likely leaked it. @p seen {kind: sentence}: what a caller that
    watched the run saw of the frames of a kind (a user page replaced by a copy-on-write fault),
    the path for that kind instead of the guess from the bytes alone."""
    arch = canonical_arch(arch)
    read_phys = cached(read_phys)
    rec = _Records(read_phys, symbol)
    frames = len(bin(rec.managed)) - 2
    leaked = sorted(set(leaked))
    data = {pa: read_phys(pa, PAGE_SIZE_4K) for pa in leaked}
    roots_seen = dict(roots_seen or {})
    magics = {rec.fact(n) for n in ("heap_magic_small", "heap_magic_free", "heap_magic_large")} - {None}
    text = (rec.fact("kernel_image_base") or 0, None)
    size = rec.image.phys_end - rec.image.phys_start
    text = (text[0], text[0] + size) if text[0] else None
    # The kernel-stack area as the kernel root maps it: frame -> va.
    stack_of = {}
    kernel_top = None
    try:
        roots = read_root_table(read_phys, rec.image.static_pa(symbol, C.ROOT_REGISTRY))
        kernel_root = next((r.root for r in roots.roots if r.kind == "kernel"), None)
        for r in roots.roots:   # a root still published: its process's, by the kernel's registry
            if r.kind == "process":
                roots_seen.setdefault(r.root, "pid %d (%s, still published)" % (r.id, r.name))
        if kernel_root is not None and isa(arch).one_root:
            kernel_top = _u64s(read_phys(kernel_root, PAGE_SIZE_4K))[256:]
        base, top = rec.fact("stack_base"), rec.fact("kernel_image_base")
        if kernel_root is not None and base and top:
            stack_of = {pa: va for va, pa in trees.kernel_pages(arch, read_phys, kernel_root, base, top)}
    except (CensusError, RegistryError, ValueError):
        pass
    heap, stacks, zero, tables, rest = [], [], [], {}, []
    for pa in leaked:
        d = data[pa]
        if pa in stack_of:
            stacks.append(pa)
        elif struct.unpack_from("<I", d)[0] in magics:
            heap.append(pa)
        elif not any(d):
            zero.append(pa)
        else:
            targets = _table_targets(arch, rec, d, frames)
            if targets is not None:
                tables[pa] = targets
            elif text and sum(1 for w in _u64s(d) if text[0] <= w < text[1]) >= 4:
                stacks.append(pa)
            else:
                rest.append(pa)
    # The leaked tables as trees: a table's parent is a leaked table with an entry pointing at it.
    parent = {}
    for pa, targets in tables.items():
        for t in targets:
            if t in tables or t in zero or t in rest:
                parent.setdefault(t, pa)

    def top_of(pa):
        seen = set()
        while pa in parent and pa not in seen:
            seen.add(pa)
            pa = parent[pa]
        return pa

    def is_root(pa):
        """A root a run saw, or (x86_64) a table whose upper half is the kernel root's: a process root."""
        if pa in roots_seen:
            return True
        if kernel_top is None:
            return False
        accessed_dirty = 0x60
        mine = _u64s(data[pa])[256:]
        return any(mine) and all((a & ~accessed_dirty) == (b & ~accessed_dirty) for a, b in zip(mine, kernel_top))

    def height(pa, depth=0):
        below = [t for t in tables.get(pa, ()) if t in tables and parent.get(t) == pa]
        return 0 if not below or depth > 4 else 1 + max(height(t, depth + 1) for t in below)

    # Zeroed frames under a leaked table were empty tables (or zeroed pages) of that tree.
    user_under = [pa for pa in rest if pa in parent]
    out = []
    if tables:
        groups = {}
        for pa in tables:
            top = top_of(pa)
            top_depth = 0 if is_root(top) else 3 - height(top)
            depth = top_depth
            walk = pa
            while walk != top:
                walk, depth = parent[walk], depth + 1
            groups.setdefault((top, top_depth), []).append((pa, depth))
        (top, top_depth), members = max(groups.items(), key=lambda g: len(g[1]))
        everything = sorted(pa for g in groups.values() for pa, _ in g)
        depths = sorted({d for g in groups.values() for _, d in g})
        whose = roots_seen.get(top)
        root_leaked = top_depth == 0 or whose is not None
        where = ("of %s's root %#x" % (whose, top) if whose else
                 "of a root %#x that no live process has" % top if root_leaked else
                 "under no leaked root")
        what = "%s %s" % (_levels_name(arch, depths), where)
        under = sum(1 for pa in user_under if top_of(pa) in tables)
        freed_leaves = [t for pa in tables for t in tables[pa]
                        if t not in tables and t not in zero and t not in rest and rec.is_free(t)]
        if under:
            path = ("the whole address space was never torn down (its tables and %d user page%s are still allocated): "
                    "a space nobody destroyed: wait's reap, exec replacing it, or fork's error path dropping a "
                    "half-made child" % (under, "" if under == 1 else "s"))
        elif freed_leaves and root_leaked:
            path = ("exit frees leaves but not tables: the teardown freed the user pages these tables map and left "
                    "the tables (free each table after its entries, the root last)")
        elif freed_leaves:
            path = ("the teardown freed the root but not the tables below it: free the tables level by level, "
                    "each after the entries in it")
        else:
            path = ("tables whose entries point at nothing freed: a teardown that never walked them (free every "
                    "table of the user half, the root last)")
        out.append(LeakClass(PAGE_TABLE, everything, what, path))
    free_pages = [pa for pa in rest if pa not in user_under]
    if free_pages or user_under:
        pages = sorted(free_pages + user_under)
        refs = frame_refs(rec.read_phys, rec.image, symbol)[1]
        counted = [pa for pa in pages if refs.get(pa // PAGE_SIZE_4K, 1) > 1]
        if counted:
            what = "mapped by no root, %d still with a reference count above 1" % len(counted)
            path = ("an unmap that did not drop its reference: the copy-on-write fault (or exit's teardown after it) "
                    "replaced or removed a shared page without dropping the old frame's reference, so the last "
                    "mapping never frees it")
        elif user_under and not free_pages:
            what = "mapped by leaked page tables"
            path = "the pages of an address space nobody destroyed (the tables' own leak above)"
        else:
            what = "mapped by no root, reference count 1"
            path = ("user pages unmapped without being freed: exit's teardown, munmap or exec cleared the entry and "
                    "did not give the frame back (put_user_frame)")
        out.append(LeakClass(USER_PAGE, pages, what, path))
    if stacks:
        slots = sorted({(stack_of[pa] - rec.fact("stack_base")) // rec.fact("kernel_stack_stride")
                        for pa in stacks if pa in stack_of}) if rec.fact("kernel_stack_stride") else []
        what = ("still mapped at kernel-stack slot%s %s" % ("" if len(slots) == 1 else "s", ", ".join(map(str, slots)))
                if slots else "their words are kernel code addresses: return addresses of a stack")
        out.append(LeakClass(KERNEL_STACK, stacks, what,
                             "a kernel stack not freed when its process was reaped (or fork's error path dropping a "
                             "child after making its stack): destroy the process's kernel stack with it"))
    if heap:
        out.append(LeakClass(HEAP, heap, "a heap block's header at the frame's start",
                             "kernel objects allocated and never freed, so the heap took new frames: a record "
                             "(a process's VMA list, a copy made by fork) that the path ending it does not free"))
    if zero:
        known = [pa for pa in zero if pa in roots_seen]
        if known:
            out.append(LeakClass(EMPTY, zero, "all zeros; %#x is the root of %s, emptied" % (known[0], roots_seen[known[0]]),
                                 "the root was never freed: the teardown unmapped the user half and did not "
                                 "destroy the space (its tables and root: ~AddressSpace)"))
        else:
            out.append(LeakClass(EMPTY, zero, "all zeros",
                                 "most likely page tables left empty: an unmap (munmap, the teardown) cleared every "
                                 "entry of a table and did not free it"))
    for c in out:
        if (seen or {}).get(c.kind):
            c.path = seen[c.kind]
    out.sort(key=lambda c: -len(c.frames))
    return out


def frame_refs(read_phys, image, symbol: Symbol) -> tuple:
    """(entries, {frame index: the kernel's reference count}) of the kernel's table (FRAME_REFS:
    its address and entries, each a u16 of references beyond the first), the frames with extra
    references only, in order; (0, {}) when the kernel has no table or it is not in RAM."""
    if symbol(C.FRAME_REFS) is None:
        return 0, {}
    table, entries = _u64s(read_phys(image.static_pa(symbol, C.FRAME_REFS), 16))
    if not table or not entries or image.pa(table) is None:
        return 0, {}
    return entries, {i: 1 + extra for i, extra in _nonzero_u16s(read_phys(image.pa(table), entries * 2))}
