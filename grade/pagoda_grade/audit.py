"""The grader's audit of the kernel's memory at a failure: the producer of a broken invariant,
not the consumer that died of it.

A test sees a symptom: a frame 0x0 that cannot be freed, a heap object overwritten, a free count
that did not move, more frames in use after than before. The mistake that made it happened
earlier, in another function. When a witnessed boot ends (the kernel exited, panicked, hung, or
the grader stopped it after a failed check), the grader still holds QEMU's guest RAM (a memfd it
keeps open: Remains), so it can read the kernel's own records as they were at the end and check
the invariants every correct kernel keeps between operations:

    frames   (pagoda_pt.frames' census over every published root, and the kernel half's stacks)
             a frame a root maps that the allocator calls free (or a page table, or the image);
             a frame mapped by more user pages than its reference count; a page-table frame of a
             live root the allocator calls free; a kernel-stack page whose frame is free;
             the allocator's count of free frames against its own bitmaps
    heap     (the free lists of kernel/mm/heap.cpp, walked from guest RAM)
             a listed block whose header says it is in use (handed out twice); a listed block
             in a frame the allocator does not hold (cut past its frame's end); two size classes
             in one frame; a block listed twice (a cycle); a listed block whose header was
             overwritten, and the neighbour in use below it that wrote past its end

findings(run) gives them, the most causal first; causes.producer_first() puts the first on line 1
of the failure. What the kernel says scores nothing here: the audit reads its records, it never
believes its printout. Every check reads only what is readable; a record the kernel does not
export, or a pointer that leads out of RAM, ends that check, not the failure.
"""
import os
import struct

from . import symbols
from .witness import PAGE

# How many blocks one free list may have before the walk gives up (a list longer than all RAM's
# 32-byte blocks is a cycle the seen-set would also catch; this bounds the time).
MAX_LIST_BLOCKS = 200_000
# How many findings a failure shows after the first (outcomes.finding_first shows the rest).
MAX_FINDINGS = 8


class Remains:
    """Guest RAM of a boot that has ended: a duplicate of the grader's fd on QEMU's memfd RAM,
    kept after QEMU is gone (the memory lives while an fd holds it). read_phys like a Guest's."""

    def __init__(self, fd, ram_base, ram_size):
        self.fd = fd
        self.ram_base = ram_base
        self.ram_size = ram_size

    def read_phys(self, pa, size):
        if self.fd is None:
            raise ValueError("the boot's RAM was given back")
        offset = pa - self.ram_base
        if offset < 0 or offset + size > self.ram_size:
            raise ValueError(f"physical {pa:#x} is not in the guest's RAM")
        return os.pread(self.fd, size, offset)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def keep(guest):
    """A Remains for @p guest's RAM (a witness.Guest whose fd is still open), or None."""
    if getattr(guest, "ram_fd", None) is None:
        return None
    return Remains(os.dup(guest.ram_fd), guest.machine.ram_base, guest.ram_size)


# ---- reading the kernel's records ------------------------------------------------------------

def _fact(kernel, name):
    try:
        return symbols.fact(kernel, name)
    except (AssertionError, OSError):
        return None


def _address(kernel, name):
    try:
        return symbols.address_of(kernel, name)
    except (AssertionError, OSError):
        return None


class _Memory:
    """The kernel's view of @p remains: physical reads, window addresses, its symbols."""

    def __init__(self, kernel, remains):
        self.kernel = kernel
        self.read_phys = remains.read_phys
        self.window = _fact(kernel, "window_base")
        self.window_phys = _fact(kernel, "window_phys_base")
        self.window_size = _fact(kernel, "window_size")

    def window_pa(self, va):
        """The physical address the window shows at @p va, or None outside the window."""
        if None in (self.window, self.window_phys, self.window_size):
            return None
        if va < self.window:
            # A kernel that still reaches RAM through the identity map (lab 1's, before the
            # window of lab 2): its pointers are physical addresses.
            return va if self.window_phys <= va < self.window_phys + self.window_size else None
        if va >= self.window + self.window_size:
            return None
        return va - self.window + self.window_phys

    def image_u64(self, va):
        return struct.unpack("<Q", self.read_phys(symbols.physical_of(self.kernel, va), 8))[0]


class _Bitmaps:
    """The frame allocator's used and managed bitmaps (pagoda_frame_bitmaps), as ints."""

    def __init__(self, mem):
        at = _address(mem.kernel, "pagoda_frame_bitmaps")
        if at is None:
            raise ValueError("no pagoda_frame_bitmaps")
        used_va, managed_va, words = struct.unpack("<3Q", mem.read_phys(symbols.physical_of(mem.kernel, at), 24))
        if not words or mem.window_pa(used_va) is None or mem.window_pa(managed_va) is None:
            raise ValueError("the frame allocator is not set up")
        self.words = words
        self.used = int.from_bytes(mem.read_phys(mem.window_pa(used_va), words * 8), "little")
        self.managed = int.from_bytes(mem.read_phys(mem.window_pa(managed_va), words * 8), "little")

    def is_used(self, pa):
        return bool(self.used >> (pa // PAGE) & 1)

    def is_managed(self, pa):
        return bool(self.managed >> (pa // PAGE) & 1)

    def free_count(self):
        return bin(self.managed & ~self.used).count("1")


# ---- frames -----------------------------------------------------------------------------------

def free_count_findings(mem, bits):
    """The allocator's count of free frames (fact frame_allocator_free_offset) against the
    frames its bitmaps mark managed and not used."""
    offset = _fact(mem.kernel, "frame_allocator_free_offset")
    at = _address(mem.kernel, "pagoda::vm::g_frames")
    if offset is None or at is None:
        return []
    counted = mem.image_u64(at + offset)
    real = bits.free_count()
    if counted == real:
        return []
    how = ("an allocation that did not lower the free count (the frame is marked used, the count not taken down)"
           if counted > real else "a free that did not raise the free count, or an allocation that lowered it twice")
    return [f"the frame allocator's free count says {counted} frames are free, but its own bitmaps hold {real} free "
            f"frames ({abs(counted - real)} {'more' if counted > real else 'fewer'} counted than there are): {how} "
            "(the grader counted the bitmaps in guest RAM at the end of the boot)"]


def census_findings(mem, arch):
    """What pagoda_pt.frames' census of every published root finds wrong, the directed
    invariants only (each holds between operations and at any stop inside one)."""
    from pagoda_pt import frames
    try:
        census = frames.take_census(arch, mem.read_phys, symbols.symbols(mem.kernel).get, {})
    except (frames.CensusError, ValueError, struct.error):
        return [], None
    out = []
    story = frames.mapped_frame_story(census)
    if story:
        out.append(story)
    for problem in census.problems:
        if problem.startswith("page-table frame") and " is free " in problem:
            out.append(problem + ": a table still linked into a live root was freed (unlinked after it was freed, "
                       "or freed and never unlinked)")
    return out, census


def kernel_stack_findings(mem, arch, bits, census):
    """A page of the kernel-stack area the kernel root maps whose frame the allocator calls
    free: a stack's frames freed while its pages stay mapped (the next owner of the frame and
    whoever still runs on the stack write over each other)."""
    if census is None:
        return []
    keys = ("stack_base", "kernel_image_base", "kernel_stack_stride", "kernel_stack_guard", "kernel_stack_slots")
    f = {k: _fact(mem.kernel, k) for k in keys}
    if None in f.values():
        return []
    from pagoda_pt import frames
    from pagoda_pt.isa import isa
    from pagoda_pt.roots import REGISTRY_SYMBOL, read_root_table
    try:
        roots = read_root_table(mem.read_phys, symbols.physical_of(mem.kernel, _address(mem.kernel, REGISTRY_SYMBOL)))
    except (AssertionError, ValueError, TypeError, struct.error):
        return []
    kernel_root = next((r.root for r in roots.roots if r.kind == "kernel"), None)
    if kernel_root is None:
        return []
    from pagoda_pt.walker import iter_runs
    tree = kernel_root if isa(arch).one_root else (None, kernel_root)
    read = frames.cached(mem.read_phys)
    bad = []
    try:
        for run in iter_runs(arch, read, tree, {}):
            if run.va_end <= f["stack_base"]:
                continue
            if run.va_start >= f["kernel_image_base"]:
                break
            for offset in range(0, run.size, PAGE):
                va = run.va_start + offset
                if not f["stack_base"] <= va < f["kernel_image_base"]:
                    continue
                pa = run.pa_start + offset
                if bits.is_managed(pa) and not bits.is_used(pa):
                    bad.append((va, pa))
    except (ValueError, struct.error):
        return []
    if not bad:
        return []
    va, pa = bad[0]
    slot = (va - f["stack_base"]) // f["kernel_stack_stride"]
    page = (va - f["stack_base"] - slot * f["kernel_stack_stride"] - f["kernel_stack_guard"]) // PAGE
    more = f" (and {len(bad) - 1} more such page{'s' * (len(bad) > 2)})" if len(bad) > 1 else ""
    return [f"the kernel stack of slot {slot} is still mapped (page {page} at {va:#x}) but its frame {pa:#x} is free "
            f"in the frame allocator{more}: a kernel stack freed while its pages stay mapped (free the frames only "
            "after unmapping them), so the stack's addresses reach frames the allocator hands out again"]


# ---- heap -------------------------------------------------------------------------------------

class _Heap:
    def __init__(self, mem):
        k = mem.kernel
        self.magic_free = _fact(k, "heap_magic_free")
        self.magic_small = _fact(k, "heap_magic_small")
        self.magic_large = _fact(k, "heap_magic_large")
        self.min_shift = _fact(k, "heap_min_class_shift")
        self.classes = _fact(k, "heap_classes")
        self.header = _fact(k, "heap_header_size")
        self.next_offset = _fact(k, "heap_next_offset")
        self.lists = _address(k, "pagoda::heap::g_free_lists")
        self.ok = None not in (self.magic_free, self.magic_small, self.min_shift, self.classes, self.header,
                               self.next_offset, self.lists)

    def size(self, c):
        return 1 << (c + self.min_shift)


def _header(mem, pa, heap):
    data = mem.read_phys(pa, max(heap.header, heap.next_offset + 8))
    magic, size_class, requested = struct.unpack_from("<IIQ", data)
    nxt = struct.unpack_from("<Q", data, heap.next_offset)[0]
    return magic, size_class, requested, nxt


def heap_findings(mem, bits):
    """The free lists walked from guest RAM: every listed block must be a free block of its
    class, once, in a frame the allocator holds, and a frame holds one class only."""
    heap = _Heap(mem)
    if not heap.ok:
        return []
    out = []
    class_of_frame = {}
    for c in range(heap.classes):
        try:
            va = mem.image_u64(heap.lists + 8 * c)
        except (AssertionError, ValueError):
            return out
        seen = set()
        size = heap.size(c)
        while va and len(seen) < MAX_LIST_BLOCKS:
            pa = mem.window_pa(va)
            if pa is None:
                out.append(f"the heap's free list of class {c} ({size}-byte blocks) links to {va:#x}, which is not a "
                           "window address: a corrupt next pointer (a block written after it was freed, or a "
                           "neighbour that wrote past its end)")
                break
            if va in seen:
                out.append(f"the heap's free list of class {c} ({size}-byte blocks) reaches block {va:#x} twice (a "
                           "cycle): a block put on the list twice (freed twice)")
                break
            seen.add(va)
            try:
                magic, size_class, requested, nxt = _header(mem, pa, heap)
            except ValueError:
                break
            frame = pa - pa % PAGE
            if magic == heap.magic_small:
                out.append(f"heap block {va:#x} (class {c}, {size} bytes) is on the free list and in use at once (its "
                           f"header says allocated, {requested} bytes asked): a block handed out without being taken "
                           "off its free list, so a later allocation gets it again (the same block twice)")
            elif magic != heap.magic_free or size_class != c:
                out.append(overwritten(mem, heap, va, pa, c, magic, size_class))
            if bits is not None and bits.is_managed(frame) and not bits.is_used(frame):
                out.append(f"heap block {va:#x} on the free list of class {c} lies in frame {frame:#x}, which the frame "
                           "allocator calls free: a block outside the frames the heap was given (refill() cut a block "
                           "past the end of its frame, or a frame's blocks stayed listed after it was freed)")
            if pa % size or pa % PAGE + size > PAGE:
                out.append(f"heap block {va:#x} on the free list of class {c} is not a {size}-byte block of one frame "
                           "(misaligned, or running past its frame's end)")
            other = class_of_frame.setdefault(frame, c)
            if other != c:
                out.append(f"heap frame {frame:#x} holds free blocks of class {other} ({heap.size(other)} bytes) and of "
                           f"class {c} ({size} bytes): refill() cuts a frame into one class, so a block was cut past the "
                           "end of its own frame into the next one")
            if out:
                break
            va = nxt
        if out:
            return out
    return out


def overwritten(mem, heap, va, pa, c, magic, size_class):
    """A sentence for a listed block whose header is not a free block's of class @p c: who wrote
    over it, when the bytes say so (the block below it, in use, asked for more than it holds)."""
    size = heap.size(c)
    said = (f"heap block {va:#x} on the free list of class {c} has an overwritten header (magic {magic:#x}, class "
            f"{size_class}; a free block's is {heap.magic_free:#x}, class {c})")
    if pa % PAGE >= size:
        try:
            below_magic, below_class, below_requested, _ = _header(mem, pa - size, heap)
        except ValueError:
            below_magic = None
        if below_magic == heap.magic_small and below_class == c and below_requested + heap.header > size:
            return (f"{said}: the block below it, {va - size:#x}, is in use with {below_requested} bytes asked of a "
                    f"{size}-byte block ({size - heap.header} usable): it wrote past its end into this one (an "
                    "allocation given a class too small for its size)")
    return f"{said}: written after it was freed, or by a neighbour writing past its end"


# ---- all of it ----------------------------------------------------------------------------------

def findings(run):
    """The audit's findings for @p run (a harness.Run whose boot kept its RAM: run.remains), the
    most causal first: a frame freed while mapped (which explains the heap and count problems it
    causes), the kernel stacks, the free count, then the heap. [] when the RAM is gone or nothing
    is wrong. Computed once per run."""
    cached_value = getattr(run, "_audit", None)
    if cached_value is not None:
        return cached_value
    remains = getattr(run, "remains", None)
    out = []
    if remains is not None and remains.fd is not None:
        try:
            out = _audit(run.symbolizer.elf, run.arch, remains)
        except (OSError, ValueError, AssertionError, struct.error):
            out = []
    run._audit = out
    return out


def _audit(kernel, arch, remains):
    mem = _Memory(kernel, remains)
    try:
        bits = _Bitmaps(mem)
    except (ValueError, AssertionError, struct.error):
        bits = None
    out = []
    census = None
    if bits is not None:
        found, census = census_findings(mem, arch)
        out += found
        out += kernel_stack_findings(mem, arch, bits, census)
        out += free_count_findings(mem, bits)
    out += heap_findings(mem, bits)
    return out[:MAX_FINDINGS]
