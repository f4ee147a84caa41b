"""Lab 7's witnesses: the swap state in guest RAM, the grader's own reverse map, the disk as QEMU
saw it, and the checks made at every write and read of the disk, every eviction and every turn of
the clock (SwapWatch).

What is read, and from where:
  - the registry the kernel publishes (pagoda_swap_state, kernel/mm/swap.cpp): the slot
    holder counts, each frame's backing slot and pins, and the reverse map's records (every pool
    node with a space: its frame, root and va; never its links or order), read in guest RAM at a
    stop; the clock's and the slot map's state are the student's and not published (the clock's
    order is the contract's: the grader keeps the previous victim itself); nothing is written;
  - every root in the kernel's root registry, walked by the grader (every leaf of the user half,
    present or not): which frames each root maps and with which accessed and dirty state, which
    slot each swap entry names (World);
  - the swap disk's image file, read on the host while the guest is stopped, and QEMU's trace of
    the disk's requests (virtio_blk_handle_write/read ... sector S nsectors 8: slot S / 8);
  - the kernel functions the grader stops at (contract.py declares them, with the arguments it
    reads there; STOPS names their roles).
The kernel's counters (swap_info) and lines are never read."""
import collections
import os
import re
import struct
from dataclasses import dataclass, field

from pagoda_core import qemu
from pagoda_pt import trees
from pagoda_pt.isa import isa
from pagoda_pt.image import CensusError
from pagoda_pt.swapstate import SWAP_FACTS, read_swap_state, swap_slot

from pagoda_pt import contract as C
from .labtest import ProcTest, holds
from .processes import Refs, count_used, frame_bitmap, processes, registry
from .symbols import address_of, fact, reader
from .witness import ARCHES, PAGE, return_address, seen_at
from .watch import Watch, syscall_number

STOPS = {"disk_write": C.DISK_WRITE, "disk_read": C.DISK_READ, "evict": C.EVICT_FRAME, "clean": C.CLEAN_FRAME,
         "swap_in": C.SWAP_IN, "choose": C.CHOOSE_VICTIM, "copy": C.COPY_ON_WRITE, "kill": C.USER_FAULT,
         "call": C.DISPATCHER}
SECTORS_PER_SLOT = PAGE // 512
TRACE = re.compile(rb"^virtio_blk_handle_(read|write) .*\bsector (\d+) nsectors (\d+)", re.M)


# ---- the formats ---------------------------------------------------------------------------

class Format:
    """A leaf entry's lab-7 meaning on one ISA: the swap entry's bits from the kernel's facts,
    the accessed and dirty state from the architecture (x86_64: A and D; AArch64: AF, and dirty =
    writable to the MMU or the software DIRTY bit)."""

    def __init__(self, kernel, arch):
        self.arch = arch
        self.facts = {name: fact(kernel, name) for name in SWAP_FACTS}   # (pt-walk reads the same)
        self.soft_write = fact(kernel, "soft_write_bit")
        self.soft_dirty = fact(kernel, "soft_dirty_bit")
        self.address = fact(kernel, "address_mask")
        self.x86 = not ARCHES[arch].link_register
        bits = isa(arch).format    # (the ISA's format module, imported when first asked: one ISA's only)
        if self.x86:
            self.accessed_bit, self.no_execute = bits.PTE_A, bits.PTE_NX
            self.dirty_bit, self.write_bit = bits.PTE_D, bits.PTE_RW
        else:
            self.accessed_bit, self.no_execute = bits.DESC_AF, bits.DESC_UXN

    def present(self, e):
        return bool(e & 1)

    def is_swap(self, e):
        return swap_slot(e, self.facts) is not None

    def slot(self, e):
        return swap_slot(e, self.facts)

    def frame(self, e):
        return e & self.address

    def accessed(self, e):
        return bool(e & self.accessed_bit)

    def dirty(self, e):
        if self.x86:
            return bool(e & self.dirty_bit)
        return bool(e & self.soft_dirty) or (self.present(e) and not e & (1 << 7))

    def writable(self, e):
        if self.x86:
            return bool(e & self.write_bit)
        return self.present(e) and (not e & (1 << 7) or bool(e & self.soft_write))

    def perms(self, e):
        """'rwx' of a present user leaf as the region sees it (a clean writable page counts as
        writable)."""
        execute = not e & self.no_execute
        return "r" + ("w" if self.writable(e) else "-") + ("x" if execute else "-")


# ---- the swap state -------------------------------------------------------------------------

def swap_state(snap, kernel):
    """pagoda_pt.swapstate's SwapState (the one reader of it) at @p snap: the kernel's symbols, the
    instructor's facts. AssertionError when swap is off or the state is not one it reads."""
    try:
        st = read_swap_state(snap.read_phys, reader(kernel))
    except CensusError as e:
        raise AssertionError(f"{e}: the swap state the grader reads is not published") from None
    if st is None:
        raise AssertionError(f"{C.SWAP_STATE}: the frame table is null: swap is off")
    return st


# ---- the grader's view of every root --------------------------------------------------------

class World:
    """Every process root of the registry walked at one stop: {frame: [(root, va, entry)]} of the
    user pages, {slot: [(root, va)]} of the swap entries, and every table frame."""

    def __init__(self, snap, kernel, arch, fmt):
        self.labels = {k.root: f"{k.name} (pid {k.id})" for k in registry(snap, kernel).roots if k.kind == "process"}
        self.mapped, self.swapped, self.tables, self.entries, self.at = {}, {}, set(), {}, {}
        self.fmt = fmt
        for root in self.labels:
            # every non-zero leaf of the user half, present or not (a swap entry, a held leaf), where
            # each lies, and every table frame under the root
            leaves, where, tables = trees.user_leaf_entries(arch, snap.read_phys, root, fact(kernel, "levels"))
            self.tables |= tables
            for va, e in leaves.items():
                self.entries[(root, va)] = e
                self.at[(root, va)] = where[va]
                if fmt.present(e):
                    self.mapped.setdefault(fmt.frame(e), []).append((root, va, e))
                else:
                    slot = fmt.slot(e)
                    if slot is not None:
                        self.swapped.setdefault(slot, []).append((root, va))

    def who(self, root):
        return f"root {root:#x} ({self.labels.get(root, 'no process')})"

    def holds(self, root, va):
        """What @p root holds at @p va, in pagoda_pt.swap's words: 'frame F', 'a swap entry naming
        slot S' or 'nothing'."""
        e = self.entries.get((root, va), 0)
        return (f"frame {self.fmt.frame(e):#x}" if self.fmt.present(e) else
                f"a swap entry naming slot {self.fmt.slot(e)}" if self.fmt.is_swap(e) else "nothing")

    def resident(self):
        return len(self.mapped)


def entry_problem(fmt, world, root, va, e, slot, when):
    """Why @p e, @p root's entry at @p va, is not a swap entry naming @p slot (None when it is)."""
    if fmt.is_swap(e) and fmt.slot(e) == slot:
        return None
    if fmt.present(e):
        return (f"{when} {world.who(root)}'s entry at {va:#x} is {e:#x}: present (valid to the MMU), it maps physical "
                f"page {fmt.frame(e):#x}: a swap entry (naming slot {slot}) must never be valid")
    return f"{when} {world.who(root)}'s entry at {va:#x} is {e:#x}: not a swap entry naming slot {slot}"


def where(world, pairs, most=3):
    return ", ".join(f"{world.who(r)} at {va:#x}" for r, va, *_ in pairs[:most])


# ---- the disk ------------------------------------------------------------------------------

class DiskTrace:
    """QEMU's trace of the disk's requests in the log at @p path, read on as the log grows (whole
    lines only): `requests` [(kind, slot)] in order, and where in the log each slot was last read."""

    def __init__(self, path):
        self.path, self.offset, self.requests, self.last_read = path, 0, [], {}

    def update(self):
        """Reads the log's new lines; returns `requests`."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        chunk = chunk[:chunk.rfind(b"\n") + 1]
        for m in TRACE.finditer(chunk):
            kind, sector, n = m[1].decode(), int(m[2]), int(m[3])
            if n != SECTORS_PER_SLOT or sector % SECTORS_PER_SLOT:
                raise AssertionError(f"QEMU's trace shows a {kind} of {n} sectors at sector {sector}: not one whole slot")
            self.requests.append((kind, sector // SECTORS_PER_SLOT))
            if kind == "read":
                self.last_read[sector // SECTORS_PER_SLOT] = self.offset + m.start()
        self.offset += len(chunk)
        return self.requests

    def read_since(self, slot, mark):
        """Whether the trace shows a read of @p slot past log offset @p mark."""
        if self.last_read.get(slot, -1) < mark:
            self.update()
        return self.last_read.get(slot, -1) >= mark


def image_slot(path, slot):
    with open(path, "rb") as f:
        f.seek(slot * PAGE)
        return f.read(PAGE)


# ---- the watch -------------------------------------------------------------------------------

# What a missing invalidation breaks, said the same way on both ISAs (and in labs/07-swap/README.md):
# the grader checks the rule, not whether this ISA happened to keep the translation.
INVALIDATE_RULE = ("(not invalidated; the rule, checked on both ISAs: invalidate through the space that maps the page. "
                   "On x86_64 a root that is not live holds no translation, but the same code leaves a stale one on "
                   "AArch64, and on x86_64 with PCIDs)")

@dataclass
class Eviction:
    kind: str                      # "evict" or "clean"
    frame: int
    sp: int
    mappings: list                 # [(root, va, entry)] the grader's walk found at the entry
    nodes: list                    # the kernel's reverse map of the frame at the entry
    backing: int | None
    counts: object                 # the slot counts at the entry
    content: bytes
    known: bytes | None            # what the grader last saw written to the backing slot, at the entry
    mark: int = 0                  # the log's size at the write (at the entry when none): later reads follow it
    invalidated: set = field(default_factory=set)
    wrote: list = field(default_factory=list)
    slot: int | None = None

    @property
    def roots(self):
        """How many roots mapped the frame."""
        return len({r for r, _, _ in self.mappings})


class SwapWatch:
    """Side stops at every eviction, write-back, disk write and disk read (and, with @p clock,
    every choice of the clock), each checked against the grader's own walk of every root; the
    first thing wrong raises AssertionError there. What it saw: `evictions`, `writes` [(slot,
    frame, kind)], `reads` [(slot, frame, va)], `disk` {slot: the bytes the grader saw go there}.
    Every page the grader saw evicted and then sees mapped again must have had its slot read since
    (QEMU's trace); with the clock watched, every eviction but the evict test call's follows a
    choice of the clock naming its frame. The cap and the disk's size are the grader's own."""

    def __init__(self, kernel, arch):
        self.kernel, self.arch = kernel, arch
        self.fmt = Format(kernel, arch)
        self.at = {k: address_of(kernel, v) for k, v in STOPS.items()}
        self.proc = proc = ARCHES[arch].proc
        self.tlb = (address_of(kernel, proc["tlb_page"]), address_of(kernel, proc["tlb_all"]))
        self.evictions, self.writes, self.reads, self.disk = [], [], [], {}
        self.pending = self.swap_in_va = self.choice = self.bitmap = None
        self.clock_checks = 0
        self.last_victim = None   # the clock's previous victim, as the grader saw it chosen
        self.cleared_any = False  # whether the grader has seen the clock clear a used mapping's mark
        self.options = {}   # clock, tlb, swap_ins, steer: SwapTest.start() sets them before the boot
        self.cap = self.slots = None   # the grader's userframes= and disk slots (SwapTest.start())
        self.out = {}       # {(root, va): (swap entry, slot, log mark, the root's process)} of pages evicted
        self.test_call = None   # (sp, root, va) of the evict() call under way (the dispatcher's stop)
        self.hot = None         # (root, va, pages): the test's program touches page va between any two pages of pages
        self.hot_fault = None   # the page of the last fault at the clock's last choice (hot_problem)
        self.choices = 0        # the clock's choices seen (hot_problem's mark)
        self.backed_by = {}     # {slot: frame} of every backing slot the grader has seen kept
        self.evict_call = syscall_number("Evict")

    def before(self, guest):
        """At the run's 'before' checkpoint: the side stops begin (ProcTest.boot's first stop)."""
        o = dict(dict(clock=False, tlb=True, swap_ins=True, steer=False, hot=False), **self.options)
        self.guest, self.image = guest, image_path(guest)
        self.trace = DiskTrace(guest.session.qemu_log)
        self.watch_tlb, self.steering = o["tlb"], o["steer"]
        self.clocked = o["clock"] or o["steer"]
        self.start = self.checkpoint(guest, "before")
        for key, handler in (("evict", self.on_evict), ("clean", self.on_evict), ("disk_write", self.on_write),
                             ("disk_read", self.on_read), ("swap_in", self.on_swap_in if o["swap_ins"] else None),
                             ("copy", self.on_copy)):
            if handler is not None:
                guest.side_stop(self.at[key], handler)
        if o["hot"]:
            guest.mark_at(self.at["choose"], self.hot_problem)
        if self.clocked:
            guest.side_stop(self.at["choose"], self.on_choose)
            guest.side_stop(self.at["kill"], self.on_kill)
            guest.side_stop(self.at["call"], self.on_call)
        return self.start

    checkpoint, explained = Watch.checkpoint, Watch.explained
    first_write = None   # (Watch's WriteWatch: lab 7's runs are not followed to their first write())

    def started_stop(self, guest):
        return self.start   # (a lab-7 script begins at 'before': the baseline of frames and slots)

    def require(self, run):
        return run.witness if run.witness is not None else run.fail(run.witness_failure or
                                                                    "the grader's checks never finished")

    def fail(self, run, message):
        run.fail(message)

    # -- reading ------------------------------------------------------------------------------

    def look(self, snap, returns=True):
        """(SwapState, World) at @p snap (read once per stop), every page mapped again checked
        (came_back()) unless @p returns is false (then the caller checks them)."""
        if getattr(snap, "_swap_look", None) is None:
            snap._swap_look = swap_state(snap, self.kernel), World(snap, self.kernel, self.arch, self.fmt)
            self.backed_by.update((slot, frame) for frame, slot in snap._swap_look[0].backing.items())
            for slot in snap._swap_look[1].swapped:   # (a swap entry holds it now: no longer only a backing)
                self.backed_by.pop(slot, None)
            if returns:
                self.came_back(snap._swap_look[1])
        return snap._swap_look

    def came_back(self, world):
        """Every page the grader saw evicted that @p world maps again had its slot read from the
        disk after the eviction's write (QEMU's trace); the first that did not raises."""
        entries, labels = world.entries, world.labels
        for (root, va), (entry, slot, mark, owner) in list(self.out.items()):
            e = entries.get((root, va), 0)
            if e == entry and labels.get(root) == owner:
                continue   # (still the swap entry its eviction left)
            del self.out[(root, va)]
            if self.fmt.present(e) and world.labels.get(root) == owner and not self.trace.read_since(slot, mark):
                self.wrong(f"{world.who(root)}'s page {va:#x} went out to slot {slot} and is mapped again (frame "
                           f"{self.fmt.frame(e):#x}), but QEMU's trace shows no read of slot {slot} since its "
                           "write: the page came back from somewhere other than the swap disk")

    def cap_problem(self, snap):
        """The user frames every root maps at @p snap against the cap; None when within it."""
        st, world = self.look(snap)
        if self.cap and world.resident() > self.cap:
            return (f"{world.resident()} user frames are mapped in the roots of the registry (every root walked) at a "
                    f"system call, above the cap of {self.cap} (userframes=): frames were not evicted to make room")
        return None

    def free_frame(self, snap, frame):
        if self.bitmap is None:
            self.bitmap = frame_bitmap(snap, self.kernel)
        at, words = self.bitmap
        word = frame // PAGE // 64
        if word >= words:
            return False
        return not int.from_bytes(snap.read_virt(at + 8 * word, 8), "little") >> (frame // PAGE % 64) & 1

    def counts_problem(self, st, world, writing=None):
        """The slot map against every holder the grader finds: swap entries in every root and the
        frames' backing slots; None when each count is its holders'."""
        backings = st.backers()
        holders = collections.Counter({s: len(v) for s, v in world.swapped.items()})
        for s, frames in backings.items():
            named = world.swapped.get(s)
            if named:
                from pagoda_pt import verdicts as V   # (the sentences of a failure, loaded for one)
                return V.shared_backing(frames[0], s, where(world, named), st.count(s))
            holders[s] += len(frames)
        for s, n in sorted(holders.items()):
            c = st.count(s)
            if c == 0:
                pairs = world.swapped.get(s) or []
                return (f"{where(world, pairs) or 'a frame backing'} names slot {s}, which the slot map calls free "
                        "(count 0): the next eviction may write another page there")
            if c < n:
                return (f"slot {s} is named by {n} holders ({where(world, world.swapped.get(s, []))}) but its count "
                        f"in the slot map is {c}: the slot will be freed while another root still names it")
        for s, c in enumerate(st.counts):
            if c and c > holders.get(s, 0) and s != writing:
                return (f"slot {s} is held (count {c} in the slot map) by {holders.get(s, 0)} entries and backings "
                        "the grader finds in every root: a slot leaked, never freed" + self.backing_leak(s, st))
        return None

    def backing_leak(self, slot, st):
        """Why @p slot, held by no one, leaked, when it was a frame's backing slot ('' otherwise)."""
        frame = self.backed_by.get(slot)
        if frame is None or st.backing.get(frame) == slot:
            return ""
        return (f" (the backing slot not dropped: slot {slot} was frame {frame:#x}'s backing slot, its clean copy; "
                "the frame's last mapping went, at exit, exec, munmap or a copy-on-write break, and the frame's hold "
                "on its backing slot was not dropped with it)")

    def wrong(self, message):
        raise AssertionError(message)

    def arg(self, snap, index):
        """Argument @p index of a STOPS function at its entry (past x86_64's hidden result pointer)."""
        return snap.argument(index + (1 if self.fmt.x86 else 0))

    # -- the stops ------------------------------------------------------------------------------

    def on_evict(self, snap):
        kind = "evict" if snap.pc == self.at["evict"] else "clean"
        if self.pending is not None:
            self.finish(snap)
        frame = self.arg(snap, 1)
        st, world = self.look(snap)
        mappings = world.mapped.get(frame, [])
        what = "evicts" if kind == "evict" else "writes back"
        if not mappings:
            if frame in world.tables:
                owner = next((r for r in world.labels if r == frame), None)
                self.wrong(f"the swapper {what} frame {frame:#x}, a page table{' (the root of ' + world.who(owner) + ')' if owner else ' of a process root'}: not a user page")
            self.wrong(f"the swapper {what} frame {frame:#x}, which is not a user page: no root in the registry maps it in "
                      f"its user half (a kernel frame, or a free one; frame table: {st.mappings.get(frame, 0) if st.tracks(frame) else 'untracked'} mappings)")
        if st.pins.get(frame):
            self.wrong(f"the swapper {what} frame {frame:#x} while it is pinned ({st.pins[frame]} pins in the frame "
                      f"table): {where(world, mappings)} maps it, and a copy or a fault is using it now")
        self.check_choice(snap, frame, st, world) if kind == "evict" else None
        nodes = st.nodes(frame)
        recorded = {(r, va) for _, r, va in nodes}
        for root, va, _ in mappings:
            if (root, va) not in recorded:
                from pagoda_pt import verdicts as V   # (the sentences of a failure, loaded for one)
                self.wrong(V.missing_rmap_node(frame, f"{world.who(root)} at {va:#x}",
                                             [f"{world.who(r)} at {v:#x}" for _, r, v in nodes]))
        for _, root, va in nodes:
            if (root, va) not in {(r, v) for r, v, _ in mappings}:
                from pagoda_pt import verdicts as V
                self.wrong(V.stale_rmap_node(frame, f"{world.who(root)} at {va:#x}", world.holds(root, va)))
        problem = self.counts_problem(st, world)
        if problem:
            self.wrong(problem)
        backing = st.backing.get(frame)
        self.pending = Eviction(kind, frame, snap.sp, mappings, nodes, backing, st.counts, snap.read_phys(frame, PAGE),
                                self.disk.get(backing) if backing is not None else None, self.log_size())
        for a in self.tlb if self.watch_tlb else ():
            self.guest.side_stops[a] = self.on_tlb
        self.guest.side_stop(return_address(snap), self.on_return)

    def hot_problem(self, snap):
        """At a choice of the clock's entry (a mark, with hot=True: one entry read, no stop hook):
        fails when the test's hot page (self.hot, set by the test once it knows it) is mapped with
        its accessed mark clear although the program touched it since the previous choice. The
        faults that led to the two choices are at two pages of the program's range (QEMU's log),
        and the program touches the hot page between any two, after the previous choice cleared
        whatever it cleared: only the clock clears a mark, and it runs after this entry. A kernel
        that invalidated what it cleared finds the mark set again, since the CPU walked the table."""
        self.choices += 1
        if self.hot is None:
            return
        root, va, pages = self.hot
        model = ARCHES[self.arch]
        fault = next((e.address & ~(PAGE - 1) for e in reversed(self.guest.log_events()) if model.is_page_fault(e)
                      and e.address is not None and e.root in (None, root)), None)
        before, self.hot_fault = self.hot_fault, fault
        if before == fault or not {before, fault} <= pages:
            return
        leaf = next((lv for lv in snap.walk(va, root).levels if lv.leaf), None)
        if leaf is None or leaf.raw is None or not self.fmt.present(leaf.raw) or self.fmt.accessed(leaf.raw):
            return
        e = AssertionError(
            f"the accessed mark was cleared without invalidating the translation: {before:#x} and {fault:#x} "
            f"faulted since the clock's previous choice, and the program touches its page {va:#x} between any "
            f"two, yet that page's mark is still clear in root {root:#x} (entry {leaf.raw:#x}). The CPU sets the "
            "mark only when it walks the table: a translation the TLB keeps is used without setting it again, "
            "so the clearing must invalidate each mapping whose mark it clears")
        seen_at(e, self.kernel, snap.pc, self.choices)
        raise e

    def on_tlb(self, snap):
        if self.pending is not None:
            this = snap.argument(0)
            self.pending.invalidated.add((this, None if snap.pc == self.tlb[1] else snap.argument(1) & ~(PAGE - 1)))

    def invalidated(self, ev, space, va):
        return (space, va) in ev.invalidated or (space, None) in ev.invalidated

    def not_invalidated(self, ev, world):
        if not self.watch_tlb:
            return None
        for space, root, va in ev.nodes:
            if not self.invalidated(ev, space, va):
                return root, va
        return None

    def on_write(self, snap):
        slot, frame = self.arg(snap, 0), self.arg(snap, 1)
        ev = self.pending
        if ev is None or frame != ev.frame:
            self.wrong(f"the disk is written (slot {slot}, frame {frame:#x}) outside any eviction or write-back the "
                      "grader stopped at")
        if self.free_frame(snap, frame):
            self.wrong(f"frame {frame:#x} was freed before its write: it is free in the frame allocator's bitmap at the "
                      f"write of slot {slot} (another process may hold it by then)")
        st, world = self.look(snap)
        if ev.kind == "evict":
            still = world.mapped.get(frame)
            if still:
                self.wrong(f"the disk is written (slot {slot}) while the victim frame {frame:#x} is still mapped: "
                          f"{where(world, still)} (unmap every mapping, invalidate, then write)")
            missed = self.not_invalidated(ev, world)
            if missed:
                self.wrong(f"no TLB invalidation of {missed[1]:#x} in {world.who(missed[0])} before frame {frame:#x} "
                          f"went to slot {slot}: that root's TLB may still translate the page to the frame " + INVALIDATE_RULE)
            if slot != ev.backing and ev.counts[slot]:
                self.wrong(f"frame {frame:#x} is written to slot {slot}, which was not free: its count was "
                          f"{ev.counts[slot]} at evict_frame's entry (another page is held there)")
            for root, va, _ in ev.mappings:
                problem = entry_problem(self.fmt, world, root, va, world.entries.get((root, va), 0), slot,
                                        f"at the write of frame {frame:#x} to slot {slot},")
                if problem:
                    self.wrong(problem)
        else:
            for root, va, _ in ev.mappings:
                e = world.entries.get((root, va), 0)
                if self.fmt.dirty(e):
                    self.wrong(f"frame {frame:#x} is written back to slot {slot} while {world.who(root)}'s entry at "
                              f"{va:#x} still says dirty: a write between the copy and the cleaning is lost")
            for space, root, va in ev.nodes if self.watch_tlb else ():
                e0 = next(e for r, v, e in ev.mappings if (r, v) == (root, va))
                if self.fmt.dirty(e0) and not self.invalidated(ev, space, va):
                    self.wrong(f"clean_frame cleaned {world.who(root)}'s entry at {va:#x} but it was not invalidated "
                              f"before the write of slot {slot}: the TLB still says dirty, and the next write through it "
                              "marks nothing (it is lost at the next eviction)")
        problem = (ev.kind == "evict" and self.extra_hold(ev, st, slot) or
                   self.counts_problem(st, world, writing=slot if ev.kind == "clean" else None))
        if problem:
            self.wrong(problem)
        ev.wrote.append(slot)
        ev.mark = self.log_size()
        self.disk[slot] = snap.read_phys(frame, PAGE)
        self.writes.append((slot, frame, ev.kind))

    def extra_hold(self, ev, st, slot):
        """An eviction that left @p slot counted more times than the frame had mappings (None when
        it did not): the slot was free or the frame's own backing, so its swap entries are its only
        holders."""
        n = len(ev.mappings)
        if st.count(slot) <= n:
            return None
        return (f"slot count one too high at eviction: the eviction of frame {ev.frame:#x} counts slot {slot} "
                f"{st.count(slot)} times for its {n} swap entr{'y' if n == 1 else 'ies'} (one hold per entry: the "
                "first takes the slot's own hold, each other mapping one share); the extra hold is never dropped and "
                "the slot leaks")

    def on_swap_in(self, snap):
        self.swap_in_va = self.arg(snap, 2)
        self.swap_in_at = (snap.sp, snap.lower_root, self.swap_in_va)
        self.guest.side_stop(return_address(snap), self.on_swapped_in)

    def region_of(self, snap, root, va):
        """The VMA of @p va in the record of @p root's process (guest RAM), or None."""
        pid = next((k.id for k in registry(snap, self.kernel).roots if k.kind == "process" and k.root == root), None)
        proc = processes(snap, self.kernel, records_of=pid).get(pid) if pid is not None else None
        return next((v for v in (proc.vmas or []) if v.start <= va < v.end), None) if proc else None

    def on_copy(self, snap):
        """A copy-on-write fault's copy begins: its source frame must still be the page's."""
        page, frame = self.arg(snap, 1) & ~(PAGE - 1), self.arg(snap, 2) & ~(PAGE - 1)
        if self.free_frame(snap, frame):
            st, world = self.look(snap)
            self.wrong(f"the copy-on-write fault at {page:#x} copies frame {frame:#x}, which is free now: it was evicted "
                      "while room was made for its copy (the shared frame was not pinned)")

    def on_swapped_in(self, snap):
        at, self.swap_in_at = getattr(self, "swap_in_at", None), None
        if at is None or snap.sp < at[0]:
            return
        st, world = self.look(snap)
        e = world.entries.get((at[1], at[2] & ~(PAGE - 1)), 0)
        if not self.fmt.present(e) or st.backing.get(self.fmt.frame(e)) is None:
            return
        region = self.region_of(snap, at[1], at[2])
        if region is not None:
            want = "r" + ("w" if region.write else "-") + ("x" if region.execute else "-")
            if self.fmt.perms(e) != want:
                self.wrong(f"swap_in() mapped {at[2]:#x} {self.fmt.perms(e)} (entry {e:#x}), but its region "
                          f"[{region.start:#x}, {region.end:#x}) is {want} (the process's record, guest RAM): a page "
                          "comes back with its region's permissions")
        if self.fmt.dirty(e):
            self.wrong(f"swap_in() kept slot {st.backing.get(self.fmt.frame(e))} as the backing of frame "
                      f"{self.fmt.frame(e):#x} but mapped {at[2]:#x} dirty (entry {e:#x}): a page not written since "
                      "it came back would be written again at its next eviction (map it clean)")

    def on_read(self, snap):
        slot, frame = self.arg(snap, 0), self.arg(snap, 1)
        st, world = self.look(snap, returns=False)
        if world.mapped.get(frame):
            self.wrong(f"the page is mapped before its bytes are read: {where(world, world.mapped[frame])} maps frame "
                      f"{frame:#x} at the read of slot {slot} into it")
        self.came_back(world)
        if st.count(slot) == 0:
            self.wrong(f"slot {slot} is read back while the slot map calls it free")
        if slot in self.disk and image_slot(self.image, slot) != self.disk[slot]:
            self.wrong(f"slot {slot} of the disk image does not hold the page the grader saw written there")
        problem = self.counts_problem(st, world)
        if problem:
            self.wrong(problem)
        self.reads.append((slot, frame, self.swap_in_va))

    def on_return(self, snap):
        ev = self.pending
        if ev is None or snap.sp < ev.sp:
            return
        self.finish(snap)

    def finish(self, snap):
        ev, self.pending = self.pending, None
        for a in self.tlb:
            self.guest.side_stops.pop(a, None)
        st, world = self.look(snap)
        if ev.kind == "clean":
            self.evictions.append(ev)
            return
        if not ev.wrote and all(self.fmt.present(world.entries.get((r, va), 0))
                                and self.fmt.frame(world.entries[(r, va)]) == ev.frame for r, va, _ in ev.mappings):
            # Nothing changed: the eviction was refused (the kernel says NoMemory when the disk is full).
            if st.in_use() < self.slots and ev.backing is None:
                self.wrong(f"the eviction of frame {ev.frame:#x} changed nothing while {self.slots - st.in_use()} "
                          "slots were free (the slot map)")
            return
        slots = set()
        for root, va, _ in ev.mappings:
            e = world.entries.get((root, va), 0)
            if self.fmt.present(e) and self.fmt.frame(e) != ev.frame:
                self.wrong(entry_problem(self.fmt, world, root, va, e, -1, f"after the eviction of frame {ev.frame:#x},"))
            if not self.fmt.is_swap(e):
                now = f"maps frame {self.fmt.frame(e):#x}" if self.fmt.present(e) else f"holds {e:#x}"
                self.wrong(f"after the eviction of frame {ev.frame:#x} {world.who(root)} still {now} at {va:#x}: "
                          "every mapping of the frame must become a swap entry (the reverse map lists them all)")
            slots.add(self.fmt.slot(e))
        if len(slots) != 1:
            self.wrong(f"the mappings of frame {ev.frame:#x} name slots {sorted(slots)} after its eviction: one slot holds "
                      "the frame's bytes for all of them")
        ev.slot = slot = slots.pop()
        for root, va, _ in ev.mappings:
            self.out[(root, va)] = (world.entries.get((root, va)), slot, ev.mark, world.labels.get(root))
        if not self.free_frame(snap, ev.frame):
            self.wrong(f"frame {ev.frame:#x} is still in use in the frame allocator's bitmap after its eviction")
        missed = self.not_invalidated(ev, world)
        if missed:
            self.wrong(f"no TLB invalidation of {missed[1]:#x} in {world.who(missed[0])} when frame {ev.frame:#x} was "
                      "evicted: that root's TLB may still translate the page to the freed frame " + INVALIDATE_RULE)
        known = ev.known
        same = known is not None and known == ev.content
        clean = same and not any(self.fmt.dirty(e) for _, _, e in ev.mappings)
        if clean and ev.wrote:
            self.wrong(f"a clean page written again: frame {ev.frame:#x} held exactly what slot {ev.backing} held already "
                      f"(its backing slot; not written since it came back), yet its eviction wrote slot {ev.wrote[0]}")
        if not ev.wrote and not same:
            self.wrong(f"a dirty page dropped without a write: frame {ev.frame:#x} was evicted to slot {slot} with no "
                      f"write, but {'the slot holds' if known else 'the grader saw no write of'} "
                      f"{'other bytes (an older version)' if known else 'its bytes to that slot'}: the page's last "
                      "writes are lost")
        if len(ev.wrote) > 1:
            self.wrong(f"frame {ev.frame:#x} was written {len(ev.wrote)} times for one eviction (slots {ev.wrote})")
        problem = self.extra_hold(ev, st, slot) or self.counts_problem(st, world)
        if problem:
            self.wrong(problem)
        self.evictions.append(ev)

    # -- the clock -----------------------------------------------------------------------------

    def steer(self, snap):
        """Makes a frame that must not go the clock's only unused one (a harmless change for a
        kernel that follows the rules: the accessed state is a hint): a frame a copy pins (the
        frame table's pins), or the shared frame the copy-on-write fault under way copies (the
        last fault of the log, in the live root). Every other mapping is marked used and that
        frame's marks are cleared, in the page tables only: wherever the clock's state says it
        starts, a clearing turn reaches that frame before any other unused one."""
        st, world = self.look(snap)
        target = next((f for f in sorted(st.pins) if f in world.mapped), None)
        if target is None:
            events = self.guest.log_events()
            last = events[-1] if events else None
            if last is not None and last.address is not None:
                e = world.entries.get((snap.lower_root, last.address & ~(PAGE - 1)), 0)
                if self.fmt.present(e) and len(world.mapped.get(self.fmt.frame(e), [])) > 1:
                    target = self.fmt.frame(e)
        if target is None:
            return
        bit = self.fmt.accessed_bit
        for (root, va), e in world.entries.items():
            if not self.fmt.present(e):
                continue
            want = e & ~bit if self.fmt.frame(e) == target else e | bit
            if want != e:
                self.guest.write_phys(world.at[(root, va)], struct.pack("<Q", want))
        snap._swap_look = None

    def pending_choice(self):
        """A choice of the clock that no eviction followed (None: none)."""
        c = self.choice
        if c is not None and c["victim"] is not None:
            return (f"the clock gave no victim (no eviction followed its choice), while the grader's recomputation "
                    f"from guest RAM (the accessed and dirty state of every mapping in every root, the backing "
                    f"slots, the pins) takes frame {c['frame']:#x}")
        return None

    def log_size(self):
        """QEMU's log's size now: a request the disk takes later is traced past it."""
        return os.path.getsize(self.trace.path)

    def on_call(self, snap):
        """The system-call dispatcher's entry: an evict() call's page is its own eviction's."""
        number, va = struct.unpack("<2Q", snap.read_virt(snap.argument(0), 16))
        self.test_call = (snap.sp, snap.lower_root, va & ~(PAGE - 1)) if number == self.evict_call else None

    def on_kill(self, snap):
        problem = self.pending_choice()
        if problem:
            self.wrong(problem)

    def on_choose(self, snap):
        if self.steering:
            self.steer(snap)
        self.on_kill(snap)
        st, world = self.look(snap)
        used, dirty = {}, {}
        for frame, maps in world.mapped.items():
            used[frame] = any(self.fmt.accessed(e) for _, _, e in maps)
            dirty[frame] = any(self.fmt.dirty(e) for _, _, e in maps)
        # The clock's order is the contract's, its state the kernel's own: the resident user frames
        # (every root walked), unpinned, in physical-address order, round from just past the
        # previous victim (the grader's own record; the lowest frame before the first choice).
        frames = sorted(f for f in world.mapped if not st.pins.get(f))
        hand = self.last_victim
        candidates = [f for f in frames if hand is not None and f > hand] + \
            [f for f in frames if hand is None or f <= hand]
        cleared, victim, turn = set(), None, None
        for turn in range(4):
            for f in candidates:
                u = used.get(f, False) and f not in cleared
                if turn % 2 == 0:
                    if not u and f in st.backing and not dirty.get(f, True):
                        victim = f
                        break
                elif u:
                    cleared.add(f)
                else:
                    victim = f
                    break
            if victim is not None:
                break
        before = {k: self.fmt.accessed(e) for k, e in world.entries.items() if self.fmt.present(e)}
        passed = cleared   # (every used frame a clearing turn went past before the victim)
        self.choice = dict(victim=victim, turn=turn, hand=hand, before=before, passed=passed, sp=snap.sp,
                           frame=victim, used=used, dirty=dirty, st=st)

    def chosen(self, c, st, world):
        """Where the clock's choice returned (the eviction's entry): the accessed state of every
        mapping against the grader's recomputation (problems kept in c["late"])."""
        marks = {}   # frame the clearing turn should have passed -> [each used mapping's mark now]
        for (root, va), was in c["before"].items():
            e = world.entries.get((root, va))
            if was and e is not None and self.fmt.present(e) and self.fmt.frame(e) in c["passed"]:
                marks.setdefault(self.fmt.frame(e), []).append(self.fmt.accessed(e))
        victim = c["frame"]
        self.cleared_any = self.cleared_any or any(
            was and self.fmt.present(e) and self.fmt.frame(e) != victim and not self.fmt.accessed(e)
            for e, was in ((world.entries.get(k), was) for k, was in c["before"].items()) if e is not None)
        kept = sorted(f for f, m in marks.items() if all(m))
        if kept and (self.cleared_any or any(not any(m) for m in marks.values())):
            # (frames it should have passed it never looked at, while it does clear the frames it
            # passes, now or before: it went another way, not a clock that never clears)
            start = "the lowest frame" if c["hand"] is None else f"just past the previous victim, frame {c['hand']:#x}"
            c.setdefault("late", []).append(
                f"the clock did not start where it stopped: its clearing turn cleared some used frames on the way to "
                f"the victim but never looked at frame {kept[0]:#x} (every mapping still marked used), which lies on "
                f"the way from {start}: the clock resumes just past its previous victim, in address order (a position "
                "that restarts, or is kept in a copy that is never saved, starts each choice from the same frame)")
        elif kept and c["hand"] is not None and not self.cleared_any:
            # (no mark cleared yet and a start past a previous victim: a clock that restarts and one
            # that never clears leave the same marks here; the first choice, from the lowest frame,
            # tells them apart only if it passed a used frame)
            c.setdefault("late", []).append(
                f"the clock left frame {kept[0]:#x} marked used (every mapping) though it lies on the way from just past "
                f"the previous victim, frame {c['hand']:#x}, and it has cleared no accessed mark yet: either it did not "
                "start where it stopped (a position that restarts, or is kept in a copy that is never saved), or it "
                "never clears the marks it passes (each in every root, and invalidated)")
        for (root, va), was in c["before"].items():
            e = world.entries.get((root, va))
            if e is None or not self.fmt.present(e):
                continue
            f = self.fmt.frame(e)
            now = self.fmt.accessed(e)
            if c["turn"] == 0 and was and not now:
                c.setdefault("late", []).append(f"the clock's clean turn cleared the accessed state of {world.who(root)}'s page {va:#x} "
                          f"(frame {f:#x}): a clean turn only looks; a used frame loses its second chance only in a "
                          "clearing turn")
            if f in c["passed"] and now:
                c.setdefault("late", []).append(f"the clock's clearing turn passed frame {f:#x} for being used but left the accessed state of "
                          f"{world.who(root)}'s mapping at {va:#x} set: every mapping's accessed state must be cleared "
                          "(and invalidated) in its own root, or the frame keeps its second chance for ever")

    def clean_turn_cleared(self, c, victim, world):
        """The signature of a clean turn that clears: at the choice's return no mapping the grader
        saw used at its entry keeps its mark (the victim's aside), among them frames past the
        grader's victim that no clearing turn would reach. None when not so."""
        used = [(k, self.fmt.frame(e)) for k, e in world.entries.items()
                if self.fmt.present(e) and c["before"].get(k) and self.fmt.frame(e) != victim]
        if not used or any(self.fmt.accessed(world.entries[k]) for k, _ in used):
            return None
        beyond = [(k, f) for k, f in used if f not in c["passed"]]
        if c["victim"] is None or not beyond:
            return None
        (root, va), f = beyond[0]
        return (f"the clock's clean turn cleared accessed marks: at its return no used frame keeps its mark, "
                f"{world.who(root)}'s page {va:#x} (frame {f:#x}) among them, though the clearing turn stops at the "
                f"first unused frame (the grader's victim, frame {c['frame']:#x}) before it: a clean turn only looks, "
                "and a used frame loses its second chance only when a clearing turn passes it")

    def check_choice(self, snap, frame, st, world):
        c, self.choice = self.choice, None
        if c is None:
            call, self.test_call = self.test_call, None
            if self.clocked and not (call and snap.sp < call[0] and snap.lower_root == call[1] and
                                     (call[1], call[2]) in [(r, va) for r, va, _ in world.mapped.get(frame, [])]):
                self.wrong(f"frame {frame:#x} was evicted without the clock choosing it: no choice of the clock "
                           "(choose_victim()) came before its eviction, and it is not the page of an evict() call")
            return
        self.chosen(c, st, world)
        self.clock_checks += 1
        if c["victim"] is None:
            self.wrong(f"the clock chose frame {frame:#x}, but the grader's recomputation from guest RAM finds no victim "
                      "(every resident frame pinned)")
        problem = self.clean_turn_cleared(c, frame, world)
        if problem:
            self.wrong(problem)
        if frame != c["frame"]:
            why = []
            for f, label in ((c["frame"], "the grader's"), (frame, "the kernel's")):
                why.append(f"{label} {f:#x}: used={c['used'].get(f)}, dirty={c['dirty'].get(f)}, "
                           f"backed={f in c['st'].backing}")
            start = "the lowest frame" if c["hand"] is None else f"just past the previous victim, frame {c['hand']:#x}"
            self.wrong(f"the clock's victim is frame {frame:#x}, but the grader's recomputation from guest RAM (frames "
                      f"in address order from {start}; the accessed and dirty state of every mapping in every root, the "
                      f"backing slots, the pins) takes frame {c['frame']:#x} in turn "
                      f"{c['turn'] + 1} ({'clean' if c['turn'] % 2 == 0 else 'clearing'}): " + "; ".join(why))
        if c.get("late"):
            self.wrong(c["late"][0])
        self.last_victim = frame

    # -- at the program's own moments ------------------------------------------------------------

    def stale_problem(self, world, root, pages):
        """A page of @p root among @p pages (addresses) that the grader saw evicted and that is
        still a swap entry although the program has read it since: read through a stale
        translation."""
        out = {(r, va): ev for ev in self.evictions if ev.kind == "evict" for r, va, _ in ev.mappings}
        for va in pages:
            ev = out.get((root, va))
            e = world.entries.get((root, va), 0)
            if ev is not None and self.fmt.is_swap(e):
                return (f"{world.who(root)}'s page {va:#x} was evicted (frame {ev.frame:#x} to slot {ev.slot}) and the "
                        "program has read it since, yet no fault brought it back (its entry is still a swap entry, the "
                        "slot never read): it read the page through a stale translation (the TLB still translated it "
                        "to the freed frame; no TLB invalidation of the page)")
        return None


def placement_problem(snap, fmt, world, image, root, base, expected):
    """Every page of a program's region [base, ...): @p expected[j] its bytes, found where its
    entry in @p root says: in the frame it maps, or in the slot its swap entry names (the disk
    image, read on the host now); None when all are, else the first that is not."""
    for j, want in enumerate(expected):
        va = base + j * PAGE
        e = world.entries.get((root, va), 0)
        if fmt.present(e):
            got, place = snap.read_phys(fmt.frame(e), PAGE), f"its frame {fmt.frame(e):#x}"
        elif fmt.is_swap(e):
            got, place = image_slot(image, fmt.slot(e)), f"slot {fmt.slot(e)} its swap entry names (the disk image)"
        else:
            return f"page {j} ({va:#x}) of {world.who(root)} is neither mapped nor swapped out (entry {e:#x})"
        if got != want:
            words = sum(1 for k in range(0, PAGE, 8) if got[k:k + 8] != want[k:k + 8])
            return (f"page {j} ({va:#x}) of {world.who(root)} holds the wrong bytes in {place}: {words} of 512 words "
                    "differ from its last version (the token's)")
    return None


# ---- a boot of lab 7 ---------------------------------------------------------------------------

def baseline(guest, kernel, watch, before):
    """At the run's 'ended' checkpoint: frames in use (the allocator's bitmap) and slots in use
    (the slot map) against @p before's; the first difference raises."""
    end = watch.checkpoint(guest, "ended")
    bitmap = frame_bitmap(end, kernel)
    st = swap_state(end, kernel)
    was, now = count_used(before, *bitmap)[0], count_used(end, *bitmap)[0]
    used = st.in_use()
    if used:
        held = [s for s, c in enumerate(st.counts) if c][:4]
        raise AssertionError(f"{used} swap slots in use after every process ended (the slot map, guest RAM; slots "
                             f"{held}...), 0 at the baseline: slots never freed (a leak at exit, exec or munmap)"
                             + next((w for w in (watch.backing_leak(s, st) for s in held) if w), ""))
    if now != was:
        raise AssertionError(f"frames in use (the frame allocator's bitmap, guest RAM): {was} before the first process, "
                             f"{now} after every process ended")
    return end


def image_path(guest):
    """The swap disk's image of the boot @p guest belongs to."""
    return os.path.join(guest.booter.directory, f"boot{guest.booter.count}", qemu.SWAP_IMAGE)


def rmap_problem(snap, kernel, st, world):
    """The frame table's reverse map against the grader's (every root walked), and each frame's
    reference count against its mappings; None when they agree."""
    refs = Refs(snap, kernel)
    for frame, maps in world.mapped.items():
        if st.index(frame) is None:
            continue
        theirs = sorted((r, va) for _, r, va in st.nodes(frame))
        ours = sorted((r, va) for r, va, _ in maps)
        if theirs != ours:
            from pagoda_pt import verdicts as V   # (the sentences of a failure, loaded for one)
            extra = [(r, va) for r, va in theirs if (r, va) not in ours]
            missing = [(r, va) for r, va in ours if (r, va) not in theirs]
            if extra:
                return V.stale_rmap_node(frame, f"{world.who(extra[0][0])} at {extra[0][1]:#x}", world.holds(*extra[0]),
                                       f"{world.who(missing[0][0])} at {missing[0][1]:#x}" if missing else None)
            return V.missing_rmap_node(frame, f"{world.who(missing[0][0])} at {missing[0][1]:#x}",
                                     [f"{world.who(r)} at {va:#x}" for r, va in theirs])
        if refs.count(frame) != len(maps):
            return f"frame {frame:#x} is mapped {len(maps)} times but its reference count is {refs.count(frame)}"
    for frame, count in sorted(st.mappings.items()):
        if frame not in world.mapped:
            return (f"the frame table's reverse map records {count} mappings of frame {frame:#x}, "
                    "which no root maps")
    return None


BOOT_MEMORY = "32M"    # every lab-7 boot's RAM: a frame table of 8 Ki entries, which a clock scans
SLOTS = 1024           # the default disk: 4 MiB


class SwapTest(ProcTest):
    """A lab-7 test (labtest.ProcTest) whose watch is a SwapWatch: every boot has a swap disk and a
    cap on the resident user frames; at every system call it waits for, the frames every root maps
    are within the cap, no choice of the clock went without its eviction, and the reverse map is
    the grader's."""

    def __init__(self, boot, kernel, arch):
        super().__init__(boot, kernel, arch, watch=SwapWatch, memory=BOOT_MEMORY)
        self.fmt = self.watch.fmt

    def start(self, spec, script, cap=64, slots=SLOTS, ended=True, **watching):
        """Boots @p spec with a cap of @p cap frames and a disk of @p slots slots; @p script(the
        'before' Snapshot) runs while the guest does, and at the run's end frames and slots must be
        back at that baseline (@p ended). The script's result, the run a success."""
        self.watch.options, self.watch.cap, self.watch.slots = watching, cap, slots

        def checked(before):
            result = script(before)
            if ended:
                baseline(self.guest, self.kernel, self.watch, before)
            self.watch.trace.update()   # (now, while the log is whole: the boot's end cuts a long one's middle)
            return [result]   # (never None: that is a script that never finished)
        self.boot(spec, checked, args={"userframes": cap}, swap=slots * PAGE)
        result = self.witness()[0]
        self.success()
        return result

    def calls(self, *names, limit=None):
        """Each system call named @p names, for as long as the guest makes them (no @p limit: the
        test's deadline bounds the wait), checked (above)."""
        wanted = {self.number(n) for n in names}
        while True:
            snap = self.guest.stop_at(self.proc["syscall_entry"])
            if snap.register(self.proc["syscall_number"]) in wanted:
                w = self.watch
                holds(w.cap_problem(snap) or w.pending_choice() or rmap_problem(snap, self.kernel, *w.look(snap)))
                yield self.call_at(snap)

    def yields_of(self, name, *also):
        """The calls of program @p name among its yields and @p also."""
        return (c for c in self.calls("Yield", *also) if program_of(self.look(c)[1], c.root) == name)

    def unseen_writes(self):
        """After the run: QEMU's trace of the disk's writes (read at the script's end, start())
        against those the grader stopped at (and checked); None when they are the same."""
        writes = [s for k, s in self.watch.trace.requests if k == "write"]
        seen = [s for s, _, _ in self.watch.writes]
        if writes == seen:
            return None
        return (f"QEMU's trace shows {len(writes)} disk writes, the grader stopped at {len(seen)} writes of evicted or "
                "written-back frames")

    def look(self, call):
        """(SwapState, World) at @p call's stop."""
        return self.watch.look(call.snap)

    def read_user(self, call, va, size):
        """@p size bytes at @p va in the caller's space at @p call's stop, each page from its frame
        (guest RAM) or, swapped out, from the slot its entry names (the disk image)."""
        world, out = self.look(call)[1], b""
        while len(out) < size:
            page, at = va & ~(PAGE - 1), va & (PAGE - 1)
            e = world.entries.get((call.root, page), 0)
            if self.fmt.present(e):
                data = call.snap.read_phys(self.fmt.frame(e), PAGE)
            elif self.fmt.is_swap(e):
                data = image_slot(self.watch.image, self.fmt.slot(e))
            else:
                raise AssertionError(f"at {call.name}(), the process's page {page:#x} is neither mapped nor swapped "
                                     f"out (its entry is {e:#x})")
            take = data[at:at + size - len(out)]
            out, va = out + take, va + len(take)
        return out

    def placed(self, call, world, root, base, expected):
        """In the script: fails unless the pages from @p base in @p root hold @p expected, each where
        its entry says (placement_problem)."""
        holds(placement_problem(call.snap, self.fmt, world, self.watch.image, root, base, expected))


def yielded(calls):
    """The next yield() among @p calls."""
    return next(c for c in calls if c.name == "Yield")


def program_of(world, root):
    """The program name of @p root's process (the registry's label)."""
    return world.labels.get(root, "?").split(" ")[0]
