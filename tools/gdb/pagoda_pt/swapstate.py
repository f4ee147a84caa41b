"""Lab 7's swap state as the kernel publishes it in guest RAM, and a swap entry's slot: what the
grader reads at its stops (grade/pagoda_grade/swap.py), pt-walk's note on a swap entry, and what
swap.py's census (GDB's `swap-slots`, fault-why, the memview) checks against every root.
Plain Python like the rest of pagoda_pt: memory through read_phys(pa, size) -> bytes, the
kernel's symbols through symbol(name) -> address or None.

    pagoda_swap_state   "PGSWAP", version 2, 112 bytes: the cap, the frame table (FrameEntry: backing,
                        pins), the reverse map's records (RmapNode: space, root, va, frame; a
                        record with a null space is free), the slot map (a u16 holder count per
                        slot), the resident count, the swapper's counters; every address a kernel
                        pointer into the window (kernel/mm/swap.cpp draws the layout). Nothing
                        else of the student's design (the clock's and the slot map's state, how
                        records are linked, found or ordered) is published or read.
    pagoda_fact_frame_entry_*, rmap_node_*, swap_counter_*   the fields' offsets
    pagoda_fact_swap_entry_bit, ...                          a swap entry's bits (SWAP_FACTS)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional

from . import contract as C
from .image import CensusError, fact, kernel_image
from .model import PAGE_SIZE_4K, Walk


# The kernel's facts that describe a swap entry (lab 7: kernel/mm/base/facts.cpp), by name.
SWAP_FACTS = C.facts("swap_entry_bit", "held_entry_bit", "swap_slot_shift", "swap_slot_bits", "swap_slot_inverted")


def swap_slot(raw: int, facts: dict) -> Optional[int]:
    """The slot a leaf entry @p raw names when it is a swap entry (not valid to the MMU, the
    kernel's SWAP bit set, its HELD bit clear), else None. @p facts: {name: value} of SWAP_FACTS
    (a missing or zero swap_entry_bit: a kernel without swap entries)."""
    bit = facts.get("swap_entry_bit") or 0
    if not bit or raw & 1 or not raw & bit or raw & (facts.get("held_entry_bit") or 0):
        return None
    mask = (1 << facts["swap_slot_bits"]) - 1
    value = (raw >> facts["swap_slot_shift"]) & mask
    return ~value & mask if facts.get("swap_slot_inverted") else value


def swap_note(walk: Walk, leaf_level: int, facts: dict) -> Optional[str]:
    """'swapped to slot S ...' when @p walk stopped at an invalid leaf (level @p leaf_level,
    counted from the root) that is a swap entry; None otherwise."""
    if walk.pa is not None or len(walk.levels) != leaf_level + 1 or walk.levels[-1].raw is None:
        return None
    slot = swap_slot(walk.levels[-1].raw, facts)
    if slot is None:
        return None
    return ("swapped to slot %d (a swap entry: invalid to the MMU; the page's bytes are in slot %d of the swap "
            "disk, disk bytes [%#x, %#x))" % (slot, slot, slot * 4096, (slot + 1) * 4096))


STATE_MAGIC = b"PGSWAP\0\0"
STATE_VERSION = 2
_HEAD = struct.Struct("<8sII12Q")
# The swapper's counters, each a fact swap_counter_<name> (declared once: the contract).
COUNTERS = tuple(n[len("swap_counter_"):] for n in C.FACTS if n.startswith("swap_counter_"))
MAX_ITEMS = 1 << 24       # a bound on what a corrupted header can make us read


class SwapError(CensusError):
    """The kernel publishes no swap state this reader knows."""


@dataclass
class SwapState:
    cap: int                 # resident user frames allowed (0: no cap)
    first: int               # the frame number of the table's entry 0
    frame_count: int
    counts: list             # the slot map: one count per slot (empty: no swap disk)
    resident: int            # the kernel's count of resident frames
    counters: dict           # the swapper's own counts, by name (COUNTERS)
    backing: dict = field(default_factory=dict)    # frame -> the slot it keeps its clean copy in
    pins: dict = field(default_factory=dict)       # frame -> pins held (non-zero ones)
    mappings: dict = field(default_factory=dict)   # frame -> the records of its mappings (non-zero)
    rmap: dict = field(default_factory=dict)       # frame -> [(root, va)], its records in the pool's order
    spaces: dict = field(default_factory=dict)     # frame -> [the space of each of those records]

    def count(self, slot: int) -> int:
        return self.counts[slot] if 0 <= slot < len(self.counts) else 0

    def in_use(self) -> int:
        return sum(1 for c in self.counts if c)

    def index(self, frame: int) -> Optional[int]:
        """The frame table's entry of @p frame (a physical address), None when it tracks none."""
        i = frame // PAGE_SIZE_4K - self.first
        return i if 0 <= i < self.frame_count else None

    def tracks(self, frame: int) -> bool:
        return self.index(frame) is not None

    def frame_at(self, index: int) -> int:
        return (self.first + index) * PAGE_SIZE_4K

    def nodes(self, frame: int) -> list:
        """[(space, root, va)] of @p frame's reverse map, in the pool's order."""
        return [(space,) + pair for space, pair in zip(self.spaces.get(frame, ()), self.rmap.get(frame, ()))]

    def backers(self) -> dict:
        """slot -> [frames that keep it as their backing]."""
        out = {}
        for frame, slot in sorted(self.backing.items()):
            out.setdefault(slot, []).append(frame)
        return out


def _entry_struct(size, backing_at, pins_at):
    """The Struct of one frame-table entry of @p size bytes that unpacks (backing, pins) from their
    offsets (the facts); SwapError when they overlap or overrun it."""
    fields = sorted(zip((backing_at, pins_at), "IH", range(2)))
    fmt, at = "<", 0
    for offset, code, _ in fields:
        if offset < at:
            raise SwapError("%s: the frame entry's fields overlap (offsets %d, %d)" % (C.SWAP_STATE, backing_at, pins_at))
        fmt += "%dx%s" % (offset - at, code)
        at = offset + struct.calcsize(code)
    if at > size:
        raise SwapError("%s: the frame entry's fields overrun its %d bytes" % (C.SWAP_STATE, size))
    order = [k for _, _, k in fields]
    return struct.Struct(fmt + "%dx" % (size - at)), [order.index(k) for k in range(2)]


# {(entry Struct's format, chunk's offset in the table): (the chunk's bytes, its used entries)}:
# most of the frame table is the same from one stop to the next, and an unchanged chunk (its bytes
# compared whole) is not taken apart again.
_CHUNKS = {}


def _used_entries(entry, table):
    """(index, (backing, pins)) of every entry of @p table (bytes; @p entry from
    _entry_struct()) with a field not zero, in order."""
    layout, order = entry
    chunk = PAGE_SIZE_4K // layout.size * layout.size
    for start in range(0, len(table), chunk):
        data, key = table[start:start + chunk], (layout.format, start)
        known = _CHUNKS.get(key)
        if known is None or known[0] != data:
            first = start // layout.size
            used = [(first + k, tuple(fields[i] for i in order)) for k, fields in enumerate(layout.iter_unpack(data))
                    if any(fields)] if data.strip(b"\0") else []   # (most chunks: frames no user page has)
            known = _CHUNKS[key] = (data, used)
        yield from known[1]


def read_swap_state(read_phys, symbol) -> Optional[SwapState]:
    """The swap state the kernel publishes, or None while swap is off (no cap on user frames and
    no swap disk: the kernel of lab 6). SwapError when there is none this reader knows."""
    if symbol(C.SWAP_STATE) is None:
        raise SwapError("this kernel publishes no swap state (no %s: swap comes with lab 7)" % C.SWAP_STATE)
    image = kernel_image(symbol)
    window_pa = image.must_pa
    head = read_phys(image.static_pa(symbol, C.SWAP_STATE), _HEAD.size)
    (magic, version, size, cap, frames, first, count, nodes, node_count, slots, slot_count, resident, counters,
     entry_size, node_size) = _HEAD.unpack(head)
    # (the version the course's build says, when the reader is given its facts, must be it too)
    if magic != STATE_MAGIC or version != STATE_VERSION or size != _HEAD.size or \
            symbol(C.fact_symbol("swap_state_version")) not in (None, version):
        raise SwapError("%s: magic %r, version %d, %d bytes; this reader knows %r version %d of %d bytes"
                        % (C.SWAP_STATE, magic, version, size, STATE_MAGIC, STATE_VERSION, _HEAD.size))
    if frames == 0:
        return None
    if max(count, node_count, slot_count) > MAX_ITEMS or entry_size < 12 or node_size < 32:
        raise SwapError("%s is not believable (%d frames, %d nodes, %d slots; entries of %d bytes, nodes of %d)"
                        % (C.SWAP_STATE, count, node_count, slot_count, entry_size, node_size))

    def u64(va: int) -> int:
        return struct.unpack("<Q", read_phys(window_pa(va), 8))[0]

    data = read_phys(window_pa(slots), slot_count * 2) if slot_count else b""
    state = SwapState(cap, first, count, list(struct.unpack("<%dH" % slot_count, data)), u64(resident), {})
    offsets = {name: fact(symbol, "swap_counter_" + name) for name in COUNTERS}
    block = read_phys(window_pa(counters), max(offsets.values()) + 8)
    state.counters = {name: struct.unpack_from("<Q", block, at)[0] for name, at in offsets.items()}
    backing_at, pins_at = (fact(symbol, "frame_entry_" + name) for name in ("backing", "pins"))
    space_at, root_at, va_at, frame_at = (fact(symbol, "rmap_node_" + name) for name in ("space", "root", "va", "frame"))
    table = read_phys(window_pa(frames), count * entry_size)
    for index, (backing, pins) in _used_entries(_entry_struct(entry_size, backing_at, pins_at), table):
        frame = (first + index) * PAGE_SIZE_4K
        if backing:
            state.backing[frame] = backing - 1
        if pins:
            state.pins[frame] = pins
    # The reverse map as records: every node with a space is one mapping of the frame it names,
    # wherever it lies in the pool (how the kernel links or finds its records is its own).
    pool = read_phys(window_pa(nodes), node_count * node_size)
    for at_node in range(0, node_count * node_size, node_size):
        space = struct.unpack_from("<Q", pool, at_node + space_at)[0]
        if not space:
            continue
        frame = (first + struct.unpack_from("<I", pool, at_node + frame_at)[0]) * PAGE_SIZE_4K
        state.rmap.setdefault(frame, []).append((struct.unpack_from("<Q", pool, at_node + root_at)[0],
                                                 struct.unpack_from("<Q", pool, at_node + va_at)[0]))
        state.spaces.setdefault(frame, []).append(space)
        state.mappings[frame] = state.mappings.get(frame, 0) + 1
    return state
