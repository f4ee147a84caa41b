"""Lab 7's swap state, read from guest RAM and checked against every root: the slots in use and
who names each, the frame table's reverse map against the pages the roots map. Behind GDB's
`swap-slots`, fault-why's eviction verdicts and the swap lines of `./pagoda run --memview`.
Plain Python like the rest of pagoda_pt: memory through read_phys(pa, size) -> bytes, the
kernel's symbols through symbol(name) -> address or None.

What it reads (kernel/mm/swap.cpp draws the layout; the grader reads it here too, at its stops,
grade/pagoda_grade/swap.py):

    pagoda_swap_state   "PGSWAP", version 1, 128 bytes: the cap, the frame table (FrameEntry: rmap,
                        backing, pins, mappings), the reverse map's nodes (RmapNode: space, root,
                        va, next), the slot map (a u16 count per slot), the resident count, the
                        clock's and the slot map's hands, the swapper's counters; every address a
                        kernel pointer into the window
    pagoda_fact_frame_entry_*, rmap_node_*, swap_counter_*   the fields' offsets
    pagoda_fact_swap_entry_bit, ...                          a swap entry's bits (SWAP_FACTS)

and walks every process root the kernel published (pagoda_debug_roots): the slot each swap entry
names, and the frame each user page maps (trees.user_pages). The state is right when each slot's
count is the swap entries that name it, plus one when a frame keeps it as its backing (a clean
frame's copy), and each resident frame's reverse map lists exactly the (root, address) pairs that
map it. Only between operations: inside the swapper the kernel's records are mid-change.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional

from . import contract as C
from .trees import user_leaf_entries, user_pages
from .image import CensusError, fact, kernel_image
from .model import PAGE_SIZE_4K, Walk
from .verdicts import Evidence, explain, missing_rmap_node, shared_backing, stale_rmap_node


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
STATE_VERSION = 1
_HEAD = struct.Struct("<8sII14Q")
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
    hand: int                # the clock's hand: an entry index
    slot_hand: int
    counters: dict           # the swapper's own counts, by name (COUNTERS)
    hand_at: int = 0         # the kernel address of the clock's hand (the grader steers it)
    backing: dict = field(default_factory=dict)    # frame -> the slot it keeps its clean copy in
    pins: dict = field(default_factory=dict)       # frame -> pins held (non-zero ones)
    mappings: dict = field(default_factory=dict)   # frame -> its entry's mapping count (non-zero)
    rmap: dict = field(default_factory=dict)       # frame -> [(root, va)], its chain in order
    spaces: dict = field(default_factory=dict)     # frame -> [the space of each node of its chain]

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
        """[(space, root, va)] of @p frame's reverse map, in its chain's order."""
        return [(space,) + pair for space, pair in zip(self.spaces.get(frame, ()), self.rmap.get(frame, ()))]

    def backers(self) -> dict:
        """slot -> [frames that keep it as their backing]."""
        out = {}
        for frame, slot in sorted(self.backing.items()):
            out.setdefault(slot, []).append(frame)
        return out


def _entry_struct(size, rmap_at, backing_at, pins_at, mappings_at):
    """The Struct of one frame-table entry of @p size bytes that unpacks (rmap, backing, pins,
    mappings) from their offsets (the facts); SwapError when they overlap or overrun it."""
    fields = sorted(zip((rmap_at, backing_at, pins_at, mappings_at), "IIHH", range(4)))
    fmt, at = "<", 0
    for offset, code, _ in fields:
        if offset < at:
            raise SwapError("%s: the frame entry's fields overlap (offsets %d, %d, %d, %d)"
                            % (C.SWAP_STATE, rmap_at, backing_at, pins_at, mappings_at))
        fmt += "%dx%s" % (offset - at, code)
        at = offset + struct.calcsize(code)
    if at > size:
        raise SwapError("%s: the frame entry's fields overrun its %d bytes" % (C.SWAP_STATE, size))
    order = [k for _, _, k in fields]
    return struct.Struct(fmt + "%dx" % (size - at)), [order.index(k) for k in range(4)]


# {(entry Struct's format, chunk's offset in the table): (the chunk's bytes, its used entries)}:
# most of the frame table is the same from one stop to the next, and an unchanged chunk (its bytes
# compared whole) is not taken apart again.
_CHUNKS = {}


def _used_entries(entry, table):
    """(index, (rmap, backing, pins, mappings)) of every entry of @p table (bytes; @p entry from
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
    (magic, version, size, cap, frames, first, count, nodes, node_count, slots, slot_count, resident, hand,
     slot_hand, counters, entry_size, node_size) = _HEAD.unpack(head)
    # (the version the course's build says, when the reader is given its facts, must be it too)
    if magic != STATE_MAGIC or version != STATE_VERSION or size != _HEAD.size or \
            symbol(C.fact_symbol("swap_state_version")) not in (None, version):
        raise SwapError("%s: magic %r, version %d, %d bytes; this reader knows %r version %d of %d bytes"
                        % (C.SWAP_STATE, magic, version, size, STATE_MAGIC, STATE_VERSION, _HEAD.size))
    if frames == 0:
        return None
    if max(count, node_count, slot_count) > MAX_ITEMS or entry_size < 12 or node_size < 28:
        raise SwapError("%s is not believable (%d frames, %d nodes, %d slots; entries of %d bytes, nodes of %d)"
                        % (C.SWAP_STATE, count, node_count, slot_count, entry_size, node_size))

    def u64(va: int) -> int:
        return struct.unpack("<Q", read_phys(window_pa(va), 8))[0]

    data = read_phys(window_pa(slots), slot_count * 2) if slot_count else b""
    state = SwapState(cap, first, count, list(struct.unpack("<%dH" % slot_count, data)), u64(resident), u64(hand),
                      u64(slot_hand), {}, hand)
    offsets = {name: fact(symbol, "swap_counter_" + name) for name in COUNTERS}
    block = read_phys(window_pa(counters), max(offsets.values()) + 8)
    state.counters = {name: struct.unpack_from("<Q", block, at)[0] for name, at in offsets.items()}
    rmap_at, backing_at, pins_at, mappings_at = (fact(symbol, "frame_entry_" + name)
                                                 for name in ("rmap", "backing", "pins", "mappings"))
    space_at, root_at, va_at, next_at = (fact(symbol, "rmap_node_" + name) for name in ("space", "root", "va", "next"))
    entry = _entry_struct(entry_size, rmap_at, backing_at, pins_at, mappings_at)
    table = read_phys(window_pa(frames), count * entry_size)
    pool = read_phys(window_pa(nodes), node_count * node_size)
    for index, (link, backing, pins, mappings) in _used_entries(entry, table):
        frame = (first + index) * PAGE_SIZE_4K
        if backing:
            state.backing[frame] = backing - 1
        if pins:
            state.pins[frame] = pins
        if mappings:
            state.mappings[frame] = mappings
        chain, spaces = [], []
        while link and 0 < link <= node_count and len(chain) < node_count:
            at_node = (link - 1) * node_size
            chain.append((struct.unpack_from("<Q", pool, at_node + root_at)[0],
                          struct.unpack_from("<Q", pool, at_node + va_at)[0]))
            spaces.append(struct.unpack_from("<Q", pool, at_node + space_at)[0])
            link = struct.unpack_from("<I", pool, at_node + next_at)[0]
        if chain:
            state.rmap[frame], state.spaces[frame] = chain, spaces
    return state


def swap_entries(arch: str, read_phys, root: int, facts: dict, levels: int = 4) -> dict:
    """{va: slot} of every swap entry in the user half of the tree under @p root (x86_64: the
    lower half; AArch64: the TTBR0 tree), @p facts: {name: value} of SWAP_FACTS."""
    leaves, _, _ = user_leaf_entries(arch, read_phys, root, levels)
    slots = {va: swap_slot(raw, facts) for va, raw in leaves.items() if not raw & 1}
    return {va: slot for va, slot in slots.items() if slot is not None}


@dataclass
class SwapCensus:
    state: SwapState
    labels: dict             # root -> "proc 2 (swapfork)", every process root walked
    pids: dict               # root -> pid
    names: dict              # pid -> the program's name
    swapped: dict            # slot -> [(root, va)] of the swap entries that name it
    entries: dict            # (root, va) -> slot, the same the other way round
    mapped: dict             # (root, va) -> frame of every user page (held ones too)
    held: set                # (root, va) of the held pages (PROT_NONE)
    problems: list = field(default_factory=list)   # sentences, the likeliest loss of a page first
    slot_problems: list = field(default_factory=list)   # those of slot counts against their holders

    def backers(self) -> dict:
        return self.state.backers()

    def who(self, root: int, va: int) -> str:
        return "%s at %#x" % (self.labels.get(root, "root %#x (not published)" % root), va)


def label(known) -> str:
    """'proc 2 (swapfork)' of a published process root."""
    own = "proc %d" % known.id
    return own if not known.name or known.name == own else "%s (%s)" % (own, known.name)


def take_swap_census(arch: str, read_phys, symbol, roots) -> Optional[SwapCensus]:
    """The swap state (None while swap is off) beside a walk of @p roots (the published process
    roots, pagoda_pt.roots.KnownRoot): their swap entries and user pages, and the problems they
    show."""
    state = read_swap_state(read_phys, symbol)
    if state is None:
        return None
    facts = {name: symbol(C.fact_symbol(name)) or 0 for name in SWAP_FACTS}
    levels = symbol(C.fact_symbol("levels")) or 4
    held_mask = symbol(C.fact_symbol("held_entry_bit")) or 0
    census = SwapCensus(state, {k.root: label(k) for k in roots}, {k.root: k.id for k in roots},
                        {k.id: k.name for k in roots}, {}, {}, {}, set())
    for known in roots:
        for va, slot in sorted(swap_entries(arch, read_phys, known.root, facts, levels).items()):
            census.swapped.setdefault(slot, []).append((known.root, va))
            census.entries[(known.root, va)] = slot
        for page in user_pages(arch, read_phys, known.root, None, None, held_mask):
            census.mapped[(known.root, page.va)] = page.pa
            if page.held:
                census.held.add((known.root, page.va))
    census.problems = swap_problems(census)
    return census


# ---- what is wrong --------------------------------------------------------------------------

def slot_flag(census: SwapCensus, slot: int, backers: Optional[dict] = None) -> Optional[str]:
    """What is wrong with @p slot's count against its holders, in a few words, or None."""
    backers = census.backers() if backers is None else backers
    count, named, backs = census.state.count(slot), len(census.swapped.get(slot, ())), backers.get(slot, ())
    if slot >= len(census.state.counts):
        return "PAST THE DISK: %d slots" % len(census.state.counts)
    if named and count == 0:
        return "FREE in the slot map, yet named"
    if named and backs:
        return "a frame's backing, yet named by a swap entry"
    if count < named + len(backs):
        return "counted %d, held %d: below its holders" % (count, named + len(backs))
    if count and not named and not backs:
        return "NO HOLDER: no entry names it, no frame keeps it"
    if count > named + len(backs):
        return "counted %d, held %d: above its holders" % (count, named + len(backs))
    return None


def _where(census: SwapCensus, root: int, va: int) -> str:
    """What @p root holds at @p va: 'frame F', 'a swap entry naming slot S' or 'nothing'."""
    if (root, va) in census.mapped:
        return "frame %#x" % census.mapped[(root, va)]
    if (root, va) in census.entries:
        return "a swap entry naming slot %d" % census.entries[(root, va)]
    return "nothing"


def swap_problems(c: SwapCensus) -> list:
    """What is wrong, as sentences, the likeliest loss of a page first (see the module's docstring)."""
    state, found, c.slot_problems = c.state, [], []

    def slot_problem(sentence):
        found.append(sentence)
        c.slot_problems.append(sentence)

    by_va, backers = {}, c.backers()
    for (root, va) in list(c.mapped) + list(c.entries):
        by_va.setdefault(va, []).append(root)
    # A user page whose frame the frame table calls not resident, or whose mapping its reverse map lacks.
    for (root, va), frame in sorted(c.mapped.items(), key=lambda item: (item[0][1], item[0][0])):
        page = frame // PAGE_SIZE_4K
        if (root, va) in c.held:
            continue
        if frame not in state.mappings and state.count(page) and not c.swapped.get(page) and not backers.get(page):
            found.append("%s maps physical page %#x, which the frame table %s, and slot %d, the same number, is "
                         "held with no swap entry naming it: an eviction that wrote the slot into a present "
                         "entry's address field, not a swap entry the MMU reads as not valid; the MMU maps physical "
                         "page %d where the swapped-out page was, and the program reads (or writes) whatever is "
                         "there" % (c.who(root, va), frame, "calls not resident" if state.tracks(frame) else
                                    "does not track (no RAM it gives out)", page, page))
            continue
        if not state.tracks(frame):
            continue
        chain = state.rmap.get(frame, [])
        if (root, va) in chain:
            continue
        swapped = [r for r in by_va[va] if (r, va) in c.entries]
        if frame not in state.mappings and swapped:
            found.append("%s maps frame %#x, which the frame table calls not resident (no mapping of it recorded), "
                         "while %s holds %s for the same address: an eviction that took a shared page out of one "
                         "root only (every mapping the reverse map lists must become a swap entry, each root's "
                         "TLB told) and let go of the frame the other still maps; its reads and writes reach "
                         "whoever is given the frame next" % (c.who(root, va), frame, c.who(swapped[0], va),
                                                              _where(c, swapped[0], va)))
        elif frame not in state.mappings:
            found.append("%s maps frame %#x, which the frame table calls not resident (no mapping of it "
                         "recorded): a mapping the reverse map never learned (a page brought in or shared "
                         "by fork and not recorded), or a frame freed while still mapped; the clock never "
                         "sees it, and its eviction would leave this root mapping a freed frame"
                         % (c.who(root, va), frame))
        elif frame in state.backing:
            found.append("%s still maps frame %#x, which came back from slot %d to %s (the only mapping its reverse "
                         "map lists): an eviction that took the page out of the other root only and let go of the "
                         "frame this root still maps; it was given out again (every mapping the reverse map lists "
                         "must become a swap entry, each root's TLB told)" % (c.who(root, va), frame,
                                                                                 state.backing[frame],
                                                                                 c.who(*chain[0])))
        else:
            found.append(missing_rmap_node(frame, c.who(root, va), [c.who(r, v) for r, v in chain]))
    flagged = {slot: slot_flag(c, slot, backers) for slot in set(c.swapped) | set(backers) |
               {s for s, n in enumerate(state.counts) if n}}
    for slot in sorted(s for s, f in flagged.items() if f and f.startswith("FREE")):
        slot_problem("slot %d is free in the slot map, yet the swap entry of %s names it: a slot freed while a root "
                     "still names it (a hold dropped twice, or a slot taken without being marked, or one fork "
                     "shared without counting it); the next eviction may write another page there, and this "
                     "page comes back with its bytes" % (slot, c.who(*c.swapped[slot][0])))
    for slot in sorted(s for s, f in flagged.items() if f and "below" in f):
        holders = [c.who(r, v) for r, v in c.swapped.get(slot, [])] + \
            ["frame %#x's backing" % f for f in backers.get(slot, [])]
        slot_problem("slot %d is counted %d but held %d time%s (%s): a holder never counted (fork's copy of a swap "
                     "entry must add one hold), or a hold dropped while its holder still needs the slot; the slot "
                     "is freed when the first holder lets go (or is free already), while the others still need it"
                     % (slot, state.count(slot), len(holders), "" if len(holders) == 1 else "s",
                        ", ".join(holders[:3])))
    for slot in sorted(s for s, f in flagged.items() if f and f.startswith("a frame's backing")):
        slot_problem(shared_backing(backers[slot][0], slot, c.who(*c.swapped[slot][0]), state.count(slot)))
    for frame, chain in sorted(state.rmap.items()):
        for root, va in chain:
            if c.mapped.get((root, va)) != frame:
                found.append(stale_rmap_node(frame, c.who(root, va), _where(c, root, va)))
                break
    leaked = sorted(s for s, f in flagged.items() if f and (f.startswith("NO HOLDER") or "above" in f))
    if leaked:
        slot_problem("%d slot%s held more times than %s holders account for (first: slot %d, %s): a hold never "
                     "dropped (exit, exec or munmap cleared a swap entry, or a frame let go of its backing, "
                     "without dropping its slot), or a slot taken for a frame no root maps (an eviction of a page "
                     "table or a kernel frame, which the clock must pass over: the frame table calls it not "
                     "resident); such slots stay in use for ever"
                     % (len(leaked), "" if len(leaked) == 1 else "s", "its" if len(leaked) == 1 else "their",
                        leaked[0], flagged[leaked[0]]))
    resident = len(state.mappings)
    if state.cap and resident > state.cap:
        found.append("%d user frames are resident, above the cap of %d (userframes=): room was not made before a "
                     "frame was taken" % (resident, state.cap))
    return found


def swap_story(census: Optional[SwapCensus], slots_first: bool = False) -> Optional[str]:
    """fault-why's verdict of the swap state: its first problem, or None. With @p slots_first, a
    slot's count against its holders comes first (inside the swapper, a page mapped a moment
    before it is recorded is no slip)."""
    if census is None:
        return None
    return explain(Evidence(swap_problems=(census.slot_problems or census.problems) if slots_first
                                       else census.problems))


# ---- text -------------------------------------------------------------------------------------

def summary(census: SwapCensus) -> list:
    state = census.state
    slots = len(state.counts)
    lines = ["swap: %s; %d user frames resident (%s), %d pinned; the clock's hand at frame %#x"
             % ("%d slots (%d KiB of disk), %d in use, the slot map's hand at %d"
                % (slots, slots * PAGE_SIZE_4K // 1024, state.in_use(), state.slot_hand) if slots else "no swap disk",
                len(state.mappings), "cap %d" % state.cap if state.cap else "no cap", len(state.pins),
                (state.first + state.hand) * PAGE_SIZE_4K)]
    n = state.counters
    lines.append("the kernel's own counts: %d evictions (%d clean), %d slots written, %d read, %d write-backs"
                 % (n["evictions"], n["clean_evictions"], n["writes"], n["reads"], n["cleanings"]))
    return lines


def format_slots(census: SwapCensus, limit: Optional[int] = 64) -> list:
    """swap-slots: the summary, one row per slot in use or named (its count, its holders, what is
    wrong with it), at most @p limit rows but every flagged one, then the problems."""
    lines = summary(census)
    backers = census.backers()
    slots = sorted(set(census.swapped) | set(backers) | {s for s, n in enumerate(census.state.counts) if n})
    lines.append("  %6s %5s  %s" % ("SLOT", "COUNT", "HOLDERS (the swap entries that name it, every process root walked)"))
    shown = 0
    for slot in slots:
        flag = slot_flag(census, slot, backers)
        if limit is not None and shown >= limit and not flag:
            continue
        shown += 1
        holders = [census.who(r, v) for r, v in census.swapped.get(slot, [])]
        holders += ["backing of frame %#x" % f for f in backers.get(slot, [])]
        lines.append("  %6d %5d  %s%s" % (slot, census.state.count(slot), ", ".join(holders) or "-",
                                          "  <-- " + flag if flag else ""))
    if shown < len(slots):
        lines.append("  ... %d more slots in use (swap-slots --all)" % (len(slots) - shown))
    for problem in census.problems[:20]:
        lines.append("problem: " + problem)
    if not census.problems:
        lines.append("no problems: each count is the entries that name its slot (and a frame's backing), and each "
                     "resident frame's reverse map lists exactly the roots that map it")
    return lines


def format_swap_map(census: SwapCensus, width: int = 64, colour: bool = False, max_rows: int = 4) -> list:
    """The memview picture's swap lines: the slots, one character per cell of slots (the holder's
    pid as in the frame map, S several processes, ! a slot whose count is wrong, . free), then
    the resident user frames under the cap by process."""
    from .frames import DIGITS, _coloured    # (the frame map's letters; the grader never draws)
    state, backers = census.state, census.backers()
    total = len(state.counts)
    if not total:
        lines = ["swap: no swap disk"]
    else:
        per_cell = max(1, -(-total // (width * max_rows)))
        letters = []
        for slot in range(total):
            roots = {r for r, _ in census.swapped.get(slot, [])}
            for frame in backers.get(slot, []):
                roots |= {r for r, _ in state.rmap.get(frame, [])}
            pids = {census.pids.get(r, -1) for r in roots}
            if slot_flag(census, slot, backers):
                letters.append("!")
            elif not state.count(slot):
                letters.append(".")
            else:
                letters.append("S" if len(pids) > 1 else DIGITS[max(pids.pop(), 0) % len(DIGITS)] if pids else "!")
        cells = []
        for lo in range(0, total, per_cell):
            part = letters[lo:lo + per_cell]
            cells.append("!" if "!" in part else max(part, key=lambda k: (part.count(k) if k != "." else 0, k != ".")))
        lines = []
        for row in range(0, len(cells), width):
            text = "".join(cells[row:row + width])
            lines.append("slot %-5d %s" % (row * per_cell, _coloured(text, None) if colour else text))
        lines.append("swap slots: one cell = %d slot%s; %d of %d in use (. free, a pid's letter as above, S several "
                     "processes, ! a count its holders do not explain)"
                     % (per_cell, "" if per_cell == 1 else "s", state.in_use(), total))
    by_pid = {}
    for frame, chain in state.rmap.items():
        for pid in {census.pids.get(r, -1) for r, _ in chain}:
            by_pid[pid] = by_pid.get(pid, 0) + 1
    lines.append("resident user frames: %d%s (the frame table), %d pinned%s" % (
        len(state.mappings), " of the cap of %d" % state.cap if state.cap else ", no cap", len(state.pins),
        "; " + ", ".join("%s pid %d '%s' %d" % (DIGITS[p % len(DIGITS)], p, census.names.get(p, "?"), n) if p >= 0
                         else "? unpublished roots %d" % n for p, n in sorted(by_pid.items())) if by_pid else ""))
    if census.problems:
        lines.append("swap: %d disagreement%s between the swap state and the tables (the guest may be stopped in "
                     "the middle of an eviction; GDB's `swap-slots`, at a stop between operations, says which); "
                     "first: %s" % (len(census.problems), "" if len(census.problems) == 1 else "s", census.problems[0]))
    return lines
