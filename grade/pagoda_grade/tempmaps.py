"""Temporary mappings seen from outside (lab 4, and every lab after it that reaches frames above
the window): the temp-map area read from guest RAM, each slot's entry walked in every root, the
guards the kernel makes (GuardWatch), the slot probe's plan and where its writes landed, the frames
the kernel half reaches without a slot (KernelReach), and the values the grader fills frames with.
docs/grader.md, "Lab 4"."""
import struct

from pagoda_pt import contract
from pagoda_pt.image import CensusError
from pagoda_pt.tempmap import read_temp_area

from .processes import KernelReach, process_roots
from .proof import MASK64, splitmix
from .symbols import address_of, fact, physical_of, reader
from .witness import ARCHES, PAGE, return_address

WORDS = PAGE // 8
STRESS_FRAMES = 4     # abi::kTempStressFrames
MAX_TEMP_SLOTS = 64   # a temp-map area with more slots than this is a window by another name


def low_frames(w, reach):
    """A sentence about the frames of the root in @p w (physical ranges) that the kernel reaches
    without a temporary mapping (@p reach: the grader's walk of the kernel half), or ''."""
    if not w["frames"]:
        return "the grader found no user page in its root"
    for lo, hi in w["frames"]:
        frame = reach.first_in(lo, hi)
        if frame is not None:
            return reach.problem(frame, "one of its user pages") + " (user memory must come from frames only a " \
                "temporary mapping reaches: allocate high frames and write them through temporary mappings)"
    return ""


def kernel_reach(snap, kernel):
    """KernelReach of the kernel half the CPU uses at @p snap (the live root's: every root shares
    it), walked at this very stop: a window the kernel grew after an earlier look is seen."""
    reach = KernelReach(snap.runs(), kernel)   # (WalkError, an AssertionError, names a walk that cannot finish)
    slots = fact(kernel, "temp_map_slots")
    if reach.temp_pages > min(slots, MAX_TEMP_SLOTS):
        raise AssertionError(f"the kernel half maps {reach.temp_pages} pages in the temp-map area at once, more than "
                             f"its {slots} slots: the area holds temporary mappings only")
    return reach


pattern = splitmix   # the twin of abi::temp_map_pattern: word @p index of a frame filled for @p seed


def pattern_page(seed):
    return struct.pack(f"<{WORDS}Q", *(pattern(seed, i) for i in range(WORDS)))


def stress_checksum(seed, rounds):
    """What one temp_stress call of 2 * @p rounds maps sums (abi::TempStressReport)."""
    total = 0
    for r in range(rounds):
        a, b = r % STRESS_FRAMES, (3 * r + 1) % STRESS_FRAMES
        j = pattern(seed, r) % WORDS
        x = pattern(seed + a, j)
        total += x * 3 + pattern(seed + b, j ^ 1) + x
    return total & MASK64


def kernel_u64s(snap, kernel, va, count):
    """@p count u64s at @p va, an address in the kernel image (read at its load address)."""
    return struct.unpack(f"<{count}Q", snap.read_phys(physical_of(kernel, va), 8 * count))


def temp_area(snap, kernel):
    """The temp-map area the kernel uses (pagoda_pt.tempmap, the one reader of it) at @p snap,
    with the instructor's facts: None when there is none yet."""
    try:
        return read_temp_area(snap.read_phys, reader(kernel))
    except CensusError as e:
        raise AssertionError(str(e)) from None


def shared_slot_problems(snap, watch, area, roots):
    """The grader's walk of every live root at this stop: each temp-map slot's page-level entry,
    the one the kernel writes (TempMapArea::entries_, located through the kernel root), must be
    the entry the CPU walks for the slot's address in every root. x86_64: @p roots are the kernel
    root and every process root (the same top-level entry, the same tables under it); AArch64: the
    slots are in TTBR1's tree, which must hold the kernel root at this stop."""
    problems = []
    if not ARCHES[watch.arch].one_root and snap.root != watch.kernel_root:
        problems.append(f"TTBR1 holds {snap.root:#x} while {watch.roots.get(snap.lower_root, 'a process')} runs, not "
                        f"the kernel root {watch.kernel_root:#x}: the temp-map slots must be in the one kernel tree")
    return problems + slot_entry_problems(snap, watch.kernel, watch.arch, watch.kernel_root, area, roots)


def slot_entry_problems(snap, kernel, arch, kernel_root, area, roots):
    """Each slot's entry, the one the kernel writes (TempMapArea::entries_, located through
    @p kernel_root), must be the entry the CPU walks for the slot's address in every root of
    @p roots ({root: label}; on AArch64 the live TTBR1 tree is walked instead)."""
    problems = []
    one_root = ARCHES[arch].one_root   # (x86_64: every root holds the kernel half; AArch64: TTBR1's tree)
    kroot = kernel_root if one_root else None
    if area is None:
        return problems + ["the kernel has no temp-map area (TempMapArea::s_current is null)"]
    if shared := area.shared_entry():
        return problems + [shared]
    walked = roots if one_root else {None: "the live TTBR1 tree"}
    top = fact(kernel, "levels")
    for slot, va, entry_va in ((s.index, s.va, s.entry) for s in area.slots):
        entry_page = snap.translate(entry_va & ~(PAGE - 1), kroot)
        if entry_page is None:
            problems.append(f"slot {slot}'s entry pointer {entry_va:#x} is not mapped in the kernel root")
            continue
        entry_pa = entry_page + entry_va % PAGE
        for root, label in walked.items():
            w = snap.walk(va, root)
            last = w.levels[-1] if w.levels else None
            if last is None or len(w.levels) != top or last.entry_pa != entry_pa:
                got = (f"the root's walk reads the {last.name} entry at {last.entry_pa:#x}"
                       + (f" ({w.stop_reason})" if w.stop_reason else "") if last else "the root's walk reads nothing")
                tli = w.levels[0] if w.levels else None
                problems.append(
                    f"temp-map slot {slot} ({va:#x}) in {label}: the kernel writes the slot's entry at physical "
                    f"{entry_pa:#x}, but {got}"
                    + (f"; its top-level entry {tli.index} is {tli.raw:#x}" if tli else "")
                    + ": the slot's entry is in a table this root does not use (temporary mappings written into a "
                    "table other than the shared kernel-half one: they work in one root and fault or read another "
                    "frame in the others)")
                break
        if problems:
            break
    return problems


def all_roots(snap, watch):
    roots = {watch.kernel_root: "the kernel root"}
    roots.update({r: f"root {r:#x} of {label}" for r, label in process_roots(snap, watch.kernel).items()})
    return roots


def live_slot(guest, watch, entry, who):
    """At the entry of a test call that maps one frame (@p entry, a syscall-entry Snapshot),
    runs to the moment its temporary mapping is live (pagoda_temp_map_live, kernel/proc/
    temp_map_calls.cpp) and returns what the grader's own walk of the live root shows there:
    {va, frame}. Fails when the call returns to user mode first (it never mapped anything), when
    the address is not a slot of the temp-map area, or when the slot does not map the frame the
    kernel says it does."""
    kernel = watch.kernel
    back = entry.register(watch.proc["syscall_return_pc"])
    snap = guest.stop_at_any([contract.TEMP_MAP_LIVE, back])
    if snap.pc == back:
        raise AssertionError(f"{who} returned to user mode without a temporary mapping ever live (the grader waited for "
                             "it in pagoda_temp_map_live): no temporary mappings")
    va, said = snap.argument(0), snap.argument(1)
    base, end = fact(kernel, "temp_map_base"), fact(kernel, "stack_base")
    if not base <= va < end:
        raise AssertionError(f"{who} reaches its frame at {va:#x}, not through a slot of the temp-map area "
                             f"({base:#x}...): not a temporary mapping")
    hidden = root_problem(snap, kernel, watch.kernel_roots, f"while {who}'s temporary mapping is live")
    if hidden:
        raise AssertionError(hidden)
    frame = snap.translate(va & ~(PAGE - 1))
    if frame is None or frame != said:
        raise AssertionError(f"while {who}'s temporary mapping is live, the grader's walk of the live root finds "
                             f"{va:#x} {'unmapped' if frame is None else f'mapping frame {frame:#x}'}, not the frame "
                             f"{said:#x} the kernel maps there: the slot's entry is not in the tables the CPU walks")
    return dict(va=va, frame=frame, reach=kernel_reach(snap, watch.kernel))


class GuardWatch:
    """Every temporary mapping the kernel makes while the watch is on, seen when it is ready for
    use: a side stop at each TempMap constructor reads the frame it was given and where it returns
    to, and there the grader reads the CPU's roots: the kernel's (@p kernel_roots) or a registered
    process root (root_problem), and a temp-map slot of the live root must map the frame. A kernel
    that reaches frames through a root of its own, or any other way than a slot entry, is seen here,
    where the test's own stops never find it live. end(): {guard_problem: the first finding or
    None, guards: how many guards were seen}."""

    def __init__(self, guest, kernel, kernel_roots):
        self.guest, self.kernel, self.kernel_roots = guest, kernel, set(kernel_roots)
        self.entries = {address_of(kernel, name): arg for name, arg in contract.GUARDS.items()}
        self.pending = {}   # return address -> the frame its constructor was given
        self.guards, self.problem = 0, None
        for address in self.entries:
            guest.side_stop(address, self.enter)

    def enter(self, snap):
        back = return_address(snap)
        self.pending[back] = snap.argument(self.entries[snap.pc])
        self.guest.side_stop(back, self.ready)

    def ready(self, snap):
        frame = self.pending.pop(snap.pc, None)
        self.guest.side_stops.pop(snap.pc, None)
        if frame is None:
            return
        self.guards += 1
        where = (f"where TempMap's constructor for frame {frame:#x} returned ({snap.symbol(snap.pc) or hex(snap.pc)}), "
                 "its mapping ready for use")
        area = temp_area(snap, self.kernel)
        slots = [s.va for s in area.slots] if area else []
        self.problem = self.problem or root_problem(snap, self.kernel, self.kernel_roots, where) or (
            None if any(snap.translate(va) == frame for va in slots) else
            f"{where}, no temp-map slot of the live root {snap.root:#x} maps that frame (the grader walked the "
            f"{len(slots)} slots from {fact(self.kernel, 'temp_map_base'):#x}): a temporary mapping is the entry of "
            "the slot the guard holds")

    def end(self):
        for address in [*self.entries, *self.pending]:
            self.guest.side_stops.pop(address, None)
        return dict(guard_problem=self.problem, guards=self.guards)


def root_problem(snap, kernel, kernel_roots, where):
    """None, or the sentence when a root the CPU holds at @p snap (CR3; TTBR0 and TTBR1) is
    neither one of @p kernel_roots nor a process root the kernel registered (its root registry,
    read from guest RAM at this stop): temporary mappings through a root of the kernel's own."""
    registered = set(kernel_roots) | set(process_roots(snap, kernel))
    for root in dict.fromkeys((snap.root, snap.lower_root)):
        if root not in registered:
            return (f"{where}, the CPU's root is {root:#x}, neither the kernel's "
                    f"({', '.join(hex(r) for r in sorted(kernel_roots))}) nor a process root the kernel registered "
                    "(its root registry, read from guest RAM there): a temporary mapping is an entry of a temp-map "
                    "slot in the kernel half every root shares, never a root of its own that maps the frame")
    return None


def guard_problem(w, what):
    """What GuardWatch's result in @p w (guard_problem, guards) names: a temporary mapping that is
    no slot entry, or none at all though @p what needed some; None when neither."""
    return w["guard_problem"] or (None if w["guards"] else f"{what}, yet the grader saw no TempMap constructed "
                                  "meanwhile (a side stop at each constructor): a frame the window does not show is "
                                  "reached through a temporary mapping")


def probe_plan(frames, rounds):
    """The twin of the temp_map_slots self-test (kernel/mm/temp_map_selftest.cpp): for every write
    through a guard, (the slot it goes through, the frame its guard was given, the guards live then
    as [(slot, frame)])."""
    n = len(frames)
    plan = []
    live = [(i, frames[i]) for i in range(3)]
    plan += [(i, frames[i], live[:i + 1]) for i in range(3)] + [(i, frames[i], live) for i in range(3)]
    for r in range(rounds):
        for d in range(1, 5):
            guards = [(i, frames[(i + d + r) % n]) for i in range(d)]
            plan += [(i, f, guards[:i + 1]) for i, f in guards] + [(i, f, guards) for i, f in guards]
    return plan


def probe_writes_problems(frames, fill, seed, salt, rounds, pages, slot_va):
    """Where the probe's writes landed (empty when each is where the plan puts it): the grader
    filled the frames (@p fill), replays the plan (write n: value pattern(@p seed ^ @p salt, n) at
    word pattern(@p seed, n) % WORDS of its guard's frame, the last write to a word winning) and
    compares every word of @p pages ({frame: its bytes in guest RAM}). A write found in another
    frame is traced to it: the one its slot mapped before (a stale translation) or the one another
    live guard holds (two guards in one slot)."""
    plan = probe_plan(frames, rounds)
    want = {f: [pattern(fill + k, w) for w in range(WORDS)] for k, f in enumerate(frames)}
    value = {}                     # a write's value -> its number
    before = []                    # write n -> the frame its slot mapped before its guard's (or None)
    current, previous = {}, {}     # slot -> the frame its guard maps now, the frame it mapped before
    for n, (slot, frame, _) in enumerate(plan):
        if current.get(slot) != frame:
            previous[slot], current[slot] = current.get(slot), frame
        before.append(previous.get(slot))
        v = pattern(seed ^ salt, n)
        want[frame][pattern(seed, n) % WORDS] = v
        value[v] = n
    got = {f: struct.unpack(f"<{WORDS}Q", pages[f]) for f in frames}
    named, unnamed, seen = [], [], set()
    for f in frames:
        for w in range(WORDS):
            if got[f][w] == want[f][w]:
                continue
            n = value.get(got[f][w])
            if n is None or n in seen:
                continue
            seen.add(n)
            slot, frame, live = plan[n]
            where = f"temp-map slot {slot} ({slot_va(slot):#x})"
            said = f"write {n} of the probe ({got[f][w]:#018x}, for word {w} of frame {frame:#x}) landed in frame {f:#x}"
            others = [s for s, g in live if s != slot and g == f]
            if f == before[n]:
                named.append((n, f"stale {where}: {said}, the frame slot {slot} mapped before: the CPU still "
                                 "translated the slot through the entry it cached for the previous guard (a slot "
                                 "given back without invalidating its TLB entry, or another slot invalidated instead "
                                 "of it)"))
            elif others:
                named.append((n, f"{where} wrote another live guard's frame: {said}, which the guard in slot "
                                 f"{others[0]} holds: two live guards share one slot, so nesting reused a live slot "
                                 "(a new guard must take the slot above the ones in use)"))
            else:
                unnamed.append((n, f"{where} wrote another frame: {said}"))
    for n, (slot, frame, _) in enumerate(plan):
        w = pattern(seed, n) % WORDS
        if n not in seen and got[frame][w] != want[frame][w] and want[frame][w] == pattern(seed ^ salt, n):
            unnamed.append((n, f"write {n} of the probe through temp-map slot {slot} ({slot_va(slot):#x}) never "
                               f"reached word {w} of frame {frame:#x}, its guard's (it holds {got[frame][w]:#018x}, "
                               "found in no frame of the probe)"))
    named.sort()
    unnamed.sort()
    problems = [p for _, p in named + unnamed]
    stale = sorted({plan[n][0] for n, p in named if p.startswith("stale")})
    if stale and problems[0].startswith("stale"):
        clean = sorted(set(range(4)) - set(stale))
        problems[0] += (f" (stale writes through slot(s) {', '.join(map(str, stale))}"
                        + (f"; slot(s) {', '.join(map(str, clean))} wrote right: the invalidation hit another slot"
                           if clean else "") + ")")
    return problems


def probe_live_problems(snap, kernel, arch, guards, frames, area):
    """The three nested guards live at the probe's middle stop, seen by the grader's walk of the
    live root: guard i must hold slot i, and slot i must translate to its frame, kernel data."""
    problems = []
    vas = [va for va, _ in guards]
    if area is None:
        return ["the kernel has no temp-map area (TempMapArea::s_current is null)"]
    if shared := area.shared_entry():
        return [shared]
    expected = [s.va for s in area.slots]
    if len(set(vas)) < len(vas):
        shared = sorted({va for va in vas if vas.count(va) > 1})
        problems.append(f"nesting reused a live slot: with three guards live (frames {', '.join(f'{f:#x}' for f in frames)}) "
                        f"they share the address(es) {', '.join(f'{v:#x}' for v in shared)}: a new guard must take the "
                        "slot above the ones in use (the slots are a stack), never one that is live")
    for i, (va, frame) in enumerate(guards):
        if frame != frames[i]:
            problems.append(f"guard {i} says it maps frame {frame:#x}, not the frame {frames[i]:#x} it was given")
            continue
        if va != expected[i]:
            problems.append(f"guard {i} (frame {frame:#x}) is at {va:#x}, not slot {i}'s address {expected[i]:#x}: "
                            f"the n-th nested guard holds slot n-1 of the stack")
        w = snap.walk(va)
        if not w.mapped:
            problems.append(f"temp-map slot {i} ({va:#x}) is live with frame {frame:#x}, but the live root "
                            f"{snap.root:#x} does not map it ({w.stop_reason}): the slot's entry was not written where "
                            "the live root walks")
        elif w.pa & ~(PAGE - 1) != frame:
            holder = [k for k, f in enumerate(frames) if f == w.pa & ~(PAGE - 1) and k != i]
            problems.append(f"temp-map slot {i} ({va:#x}) is live with frame {frame:#x}, but the live root maps it to "
                            f"{w.pa & ~(PAGE - 1):#x}"
                            + (f", guard {holder[0]}'s frame: nesting reused a live slot" if holder else ""))
        elif w.perms.user or not w.perms.write or w.perms.priv_execute:
            problems.append(f"temp-map slot {i} ({va:#x}) maps its frame {w.perms.rwx()}"
                            f"{' user' if w.perms.user else ''}: a slot's entry is kernel data (rw-, no execute, "
                            "no user access)")
    if area.depth != len(guards):
        problems.append(f"with {len(guards)} guards live the kernel's slot stack is {area.depth} deep (read from "
                        "guest RAM)")
    return problems


MAX_STEPS = 4000


def step_problems(guest, kernel, arch, area_va, slot, until, phase):
    """Steps the stopped guest one instruction at a time until it reaches @p until (an address),
    reading at each instruction the slot stack's depth and slot @p slot's entry from guest RAM
    and whether an interrupt could be taken there. An interrupt's own guard takes the slot at
    the stack's top (depth_): during a push of @p slot it must never find @p slot's entry written
    while the slot is not yet counted taken; during its pop, never the slot counted free while its
    entry is still there, or before a TLB invalidation ran (the instructions stepped, read from
    guest memory: ARCHES' invalidates_tlb). Returns [] or the sentence for the first instruction where
    that fails."""
    reg, bit, enabled_when_set = ARCHES[arch].proc["irq_flag"]
    area_pa = guest.snapshot().translate(area_va)
    depth_pa = area_pa + fact(kernel, "temp_map_depth_offset")
    entry_ptr_pa = area_pa + fact(kernel, "temp_map_entries_offset") + 8 * slot
    entry_va = struct.unpack("<Q", guest.read_phys(entry_ptr_pa, 8))[0]
    entry_pa = guest.snapshot().translate(entry_va & ~(PAGE - 1)) + entry_va % PAGE
    u64_at = lambda pa: struct.unpack("<Q", guest.read_phys(pa, 8))[0]
    pc_name = ARCHES[arch].pc
    invalidated = flushing = False   # a TLB invalidation ran / is the instruction about to run
    guest._arm()   # (no breakpoint in the way of the steps)
    for _ in range(MAX_STEPS):
        guest.client.step()
        guest._wait("one instruction")
        invalidated = invalidated or flushing
        pc = guest.client.read_register(pc_name)
        if pc == until:
            guest._stopped_at = pc
            return []
        flushing = phase == "pop" and ARCHES[arch].proc["invalidates_tlb"](guest.client.read_memory(pc, 4))
        irq = bool(guest.client.read_register(reg) >> bit & 1) == enabled_when_set
        depth, entry = u64_at(depth_pa), u64_at(entry_pa)
        where = guest.symbol_of(pc) or f"{pc:#x}"
        if not irq:
            continue
        if phase == "push" and entry != 0 and depth <= slot:
            guest._stopped_at = None
            return [f"an interrupt at {pc:#x} ({where}), in the middle of push(), would take temp-map slot {slot} too: "
                    f"its entry is already written ({entry:#x}) while the stack still counts {depth} slot(s) taken, "
                    "so the interrupt's guard writes the same entry over it and its pop clears it under the interrupted "
                    "guard (the grader stepped one push with interrupts on: reserve the slot, ++depth_, before writing "
                    "its entry, or keep interrupts off around both)"]
        if phase == "pop" and depth <= slot and entry != 0:
            guest._stopped_at = None
            return [f"an interrupt at {pc:#x} ({where}), in the middle of pop(), would take temp-map slot {slot} while "
                    f"its entry still maps the released guard's frame ({entry:#x}): pop gave the slot back (depth_ "
                    f"{depth}) before clearing and invalidating it (the grader stepped one pop with interrupts on)"]
        if phase == "pop" and depth <= slot and not invalidated:
            guest._stopped_at = None
            return [f"an interrupt at {pc:#x} ({where}), in the middle of pop(), would take temp-map slot {slot} while "
                    f"the TLB may still translate it to the released guard's frame: pop gave the slot back (depth_ "
                    f"{depth}) before any TLB invalidation ran (the grader stepped one pop with interrupts on and "
                    "saw no INVLPG or TLBI before that instruction: clear, invalidate, then give the slot back)"]
    guest._stopped_at = None
    return [f"the grader stepped {MAX_STEPS} instructions of one {phase} without reaching the next stop"]
