"""Lab 7's swap state (swapstate.py reads it) checked against every root: the slots in use and
who names each, the frame table's reverse map against the pages the roots map. Behind GDB's
`swap-slots`, fault-why's eviction verdicts and the swap lines of `./pagoda run --memview`.

It walks every process root the kernel published (pagoda_debug_roots): the slot each swap entry
names, and the frame each user page maps (trees.user_pages). The state is right when each slot's
count is the swap entries that name it, plus one when a frame keeps it as its backing (a clean
frame's copy), and each resident frame's reverse map lists exactly the (root, address) pairs that
map it. Only between operations: inside the swapper the kernel's records are mid-change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from . import contract as C
from .trees import user_leaf_entries, user_pages
from .model import PAGE_SIZE_4K
from .swapstate import SWAP_FACTS, SwapState, read_swap_state, swap_slot  # noqa: F401 (also fault-why's)
from .verdicts import Evidence, explain, missing_rmap_node, shared_backing, stale_rmap_node


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
    lines = ["swap: %s; %d user frames resident (%s), %d pinned"
             % ("%d slots (%d KiB of disk), %d in use" % (slots, slots * PAGE_SIZE_4K // 1024, state.in_use())
                if slots else "no swap disk",
                len(state.mappings), "cap %d" % state.cap if state.cap else "no cap", len(state.pins))]
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
