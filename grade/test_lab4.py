"""Lab 4: temporary mappings and safe user copies, witnessed from outside the kernel.

The grader boots with more RAM than the kernel's window (GRADER_MEMORY), so frames above the
window exist; it walks the process roots in guest RAM itself to see where a program's pages
really are, reads QEMU's exception log to see that the user copies really faulted on the
addresses it chose at run time and were recovered through the fix-up table it reads from the
kernel's ELF file, and trusts no line the kernel prints without such a witness."""
import re
import struct

from pagoda_grade import contract as C, lab_test
from pagoda_grade.lifecycle import return_address
from pagoda_grade.causes import copy_guard_cause
from pagoda_grade.outcomes import finding_first, panic_line
from pagoda_grade.processes import (KernelReach, explain_death, kernel_faults, parse_reaped, process_roots,
                                    recovered_by_fixup, user_runs, user_symbol, written)
from pagoda_grade.proof import MASK64, proof
from pagoda_grade.symbols import address_of, fact, function_at, physical_of, user_fixups
from pagoda_grade.witness import ARCHES, PAGE, pick_in
from pagoda_grade.derived import hello_line, value as derived
from test_lab3 import GRADER_MEMORY, Watch, syscall_number, syscall_stops

EFAULT = -14
PROBE_TAG = 0x5450    # "TP": the grader fills the probe's frame k with pattern(proof(token, PROBE_TAG) + k, i)
STRESS_FRAMES = 4     # abi::kTempStressFrames
STRESS_MAPS = 100_000
WORDS = PAGE // 8
MAX_TEMP_SLOTS = 64   # a temp-map area with more slots than this is a window by another name
BADPTR_KINDS = ["null", "kernel", "noncanonical", "unmapped", "straddling", "readonly"]


def hello_write(guest, watch, want_roots_not, limit=60):
    """Stops at write calls until one whose buffer (read by the grader through the caller's root)
    starts with 'hello:' from a root not in @p want_roots_not; what the grader saw then."""
    number = syscall_number("Write")
    for _ in range(limit):
        snap = syscall_stops(guest, watch, {number})
        root = snap.lower_root  # the process's own root (x86_64: CR3; AArch64: TTBR0)
        if root in want_roots_not:
            continue
        data = written(snap, watch.proc, root, most=PAGE)
        if not data.startswith(b"hello:"):
            continue
        runs = user_runs(snap.dump(root), watch.layout)
        return dict(root=root, data=data, frames=sorted((r.pa_start, r.pa_start + r.va_end - r.va_start) for r in runs),
                    pages=sum((r.va_end - r.va_start) // PAGE for r in runs), reach=kernel_reach(snap, watch.kernel))
    raise AssertionError(f"no write of hello's line in {limit} system calls")


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


# ---- what a failed run shows about the kernel's user-memory code -------------------------------------

COPY_ROUTINES = ("user_copy", "user_string_copy")   # arch/<isa>/user_copy.S: <isa>_user_copy, ...


def in_string_copy(kernel, pc):
    """True when @p pc lies in the arch's string copy routine (<isa>_user_string_copy)."""
    s = function_at(kernel, pc)
    return bool(s) and s.name.endswith("user_string_copy")


def in_copy_routine(kernel, pc):
    """True when @p pc lies in one of the arch's user-copy routines (arch/<isa>/user_copy.S)."""
    s = function_at(kernel, pc)
    return bool(s) and s.name.endswith(COPY_ROUTINES)


def loader_write_problem(run, kernel, watch):
    """A sentence when QEMU's log shows the kernel touching the top page of the user stack (where a
    new process's arguments go) through its user address while the root that was live does not
    map it: the loader wrote a process that is not live through the live root (seed 003's mistake)
    instead of through its own tables and a temporary mapping of the frame. None otherwise.
    A copy that faulted with the CPU's guard still up (causes.copy_guard_cause) comes first: its
    fault on the argument page is the process's own buffer, refused by SMAP or PAN."""
    guard = copy_guard_cause(run)
    if guard:
        return guard
    top = fact(kernel, "user_stack_top")
    privilege = ARCHES[run.arch].kernel_privilege
    events = run.log.events
    for n, f in enumerate(events):
        if f.kind != "exception" or f.privilege != privilege or f.address is None \
                or not top - PAGE <= f.address < top:
            continue
        ran = any(e.privilege != privilege for e in events[:n])
        if f.root is not None and watch is not None and f.root in watch.roots:
            live = watch.roots[f.root]
        elif not ran:
            live = "the kernel root (no process had run yet)"
        else:
            live = f"root {f.root:#x}" if f.root is not None else "another process's root"
        where = run.symbol_of(f.pc) or f"{f.pc:#x}"
        if recovered_by_fixup(kernel, f):
            return (f"the kernel wrote a new process's arguments through the live root: a user copy ({where}) into "
                    f"{f.address:#x}, in the argument page at the top of the user stack, faulted while {live} was live "
                    "(QEMU's log) and came back EFAULT: copy_to_user() reaches the live process only, and a process "
                    "being made is not live; write its pages through its own tables and a temporary mapping of each "
                    "frame (copy_to_space())")
        return (f"the kernel wrote a new process's arguments through their user address {f.address:#x} (the argument "
                f"page at the top of the user stack) while {live} was live: a kernel fault at {where} (QEMU's log). "
                "The page is mapped in the new process's root, which is not live while it is loaded; the live root "
                "translates the address (to nothing here, or to another process's stack): write a space that is not "
                "live through its own tables and a temporary mapping of each frame (copy_to_space()), never through "
                "its user addresses")
    return None


QEMU_LOG = "QEMU's log"


def copy_fault_problem(run, kernel, f, kernel_address):
    """The sentence for @p f, a kernel fault that no fix-up recovered, in the bad-pointer test."""
    where = run.symbol_of(f.pc) or f"{f.pc:#x}"
    user_end = fact(kernel, "user_end")
    copying = in_copy_routine(kernel, f.pc)
    first = f"the first kernel fault: {f.describe(run.symbol_of)}"
    if f.address is not None and kernel_address <= f.address < kernel_address + PAGE:
        return (f"the kernel touched the kernel-half address {kernel_address:#x} that badptr passed it ({where}, "
                f"{QEMU_LOG}): a pointer outside the user half must be refused before any copy (a kernel pointer "
                f"copied on a user's behalf reads or writes the kernel)\n{first}")
    if copying and (f.address is None or f.address >= user_end):
        return (f"a user copy ({where}) was given a pointer outside the user half and faulted on it: the copies must "
                f"refuse a kernel or non-canonical pointer before copying\n{first}")
    if copying and f.pc not in user_fixups(kernel):
        return (f"a user copy faulted on user address {f.address:#x} at {where}, and no fix-up took it: that "
                "instruction is not in the fix-up table (section pagoda_user_fixups, read from the kernel's ELF file): "
                f"every instruction of a copy that may fault on a user address needs its entry\n{first}")
    return (f"a bad user pointer made the kernel fault: {f.describe(run.symbol_of)} (a user copy whose instruction is "
            "not in the fix-up table, or an access outside the copies)")


def fail_on_cause(run, watch, cause):
    """Fails with @p cause, the lab's own evidence of the slip, as the headline, and the grader's
    reading of the machine's death (explain_death: the first kernel fault against the roots) after
    it. The evidence comes first: it knows the lab (whose arguments, which copy, which table),
    where the reading of a kernel fault knows only the fault."""
    why = explain_death(run, watch.inspector, watch.layout, watch.roots) if watch is not None else None
    lines = cause.split("\n")
    if why and len(lines) > 1 and why.startswith(lines[-1]):   # the same fault, said once
        cause = "\n".join(lines[:-1])
    run.fail(why or cause, cause=cause)


def check_loader_writes(run, kernel, watch):
    """Fails the test first with loader_write_problem(), when there is one."""
    problem = loader_write_problem(run, kernel, watch)
    if problem:
        fail_on_cause(run, watch, problem)


# ---- temporary mappings, seen from outside ------------------------------------------------------

def pattern(seed, index):
    """The twin of abi::temp_map_pattern (kernel/lib/abi.hpp): word @p index of a frame filled for @p seed."""
    z = (seed + (index + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


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
    """The state of the temp-map area the kernel uses (TempMapArea::s_current), read from guest
    RAM at the field offsets the kernel exports: None when there is none."""
    (area,) = kernel_u64s(snap, kernel, address_of(kernel, C.TEMP_AREA), 1)
    if area == 0:
        return None
    slots = fact(kernel, "temp_map_slots")
    f = {k: fact(kernel, f"temp_map_{k}_offset") for k in ("entries", "frames", "cpu", "depth", "maps")}
    at = physical_of(kernel, area)
    u64s = lambda off, n=1: struct.unpack(f"<{n}Q", snap.read_phys(at + off, 8 * n))
    cpu, = u64s(f["cpu"])
    return dict(slots=slots, cpu=cpu, depth=u64s(f["depth"])[0], maps=u64s(f["maps"])[0],
                entries=u64s(f["entries"], slots), frames=u64s(f["frames"], slots),
                va=[fact(kernel, "temp_map_base") + (cpu * slots + s) * PAGE for s in range(slots)])


def shared_slot_problems(snap, watch, area, roots):
    """The grader's walk of every live root at this stop: each temp-map slot's page-level entry,
    the one the kernel writes (TempMapArea::entries_, located through the kernel root), must be
    the entry the CPU walks for the slot's address in every root. x86_64: @p roots are the kernel
    root and every process root (the same top-level entry, the same tables under it); AArch64: the
    slots are in TTBR1's tree, which must hold the kernel root at this stop."""
    problems = []
    if watch.arch != "x86_64" and snap.root != watch.kernel_root:
        problems.append(f"TTBR1 holds {snap.root:#x} while {watch.roots.get(snap.lower_root, 'a process')} runs, not "
                        f"the kernel root {watch.kernel_root:#x}: the temp-map slots must be in the one kernel tree")
    return problems + slot_entry_problems(snap, watch.kernel, watch.arch, watch.kernel_root, area, roots)


def slot_entry_problems(snap, kernel, arch, kernel_root, area, roots):
    """Each slot's entry, the one the kernel writes (TempMapArea::entries_, located through
    @p kernel_root), must be the entry the CPU walks for the slot's address in every root of
    @p roots ({root: label}; on AArch64 the live TTBR1 tree is walked instead)."""
    problems = []
    kroot = kernel_root if arch == "x86_64" else None
    if area is None:
        return problems + ["the kernel has no temp-map area (TempMapArea::s_current is null)"]
    walked = roots if arch == "x86_64" else {None: "the live TTBR1 tree"}
    top = fact(kernel, "levels")
    for slot in range(area["slots"]):
        va, entry_va = area["va"][slot], area["entries"][slot]
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
    snap = guest.stop_at_any([C.TEMP_MAP_LIVE, back])
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


# TempMap's constructors (kernel/mm/tempmap/temp_map.cpp) and the argument that is the frame.
GUARDS = C.GUARDS


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
        self.entries = {address_of(kernel, name): arg for name, arg in GUARDS.items()}
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
        slots = (temp_area(snap, self.kernel) or {}).get("va", [])
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


# ---- the slot stack, probed with the kernel's root live -------------------------------------------

def probe_plan(frames, rounds):
    """The twin of the temp_map_slots self-test (kernel/mm/temp_map_selftest.cpp): for every read,
    (the slot it goes through, the frame its guard was given, the guards live then as
    [(slot, frame)])."""
    n = len(frames)
    plan = []
    live = [(i, frames[i]) for i in range(3)]
    plan += [(i, frames[i], live[:i + 1]) for i in range(3)] + [(i, frames[i], live) for i in range(3)]
    for r in range(rounds):
        for d in range(1, 5):
            guards = [(i, frames[(i + d + r) % n]) for i in range(d)]
            plan += [(i, f, guards[:i + 1]) for i, f in guards] + [(i, f, guards) for i, f in guards]
    return plan


def probe_reads_problems(frames, fill, seed, rounds, reads, slot_va):
    """What the reads of the probe show (empty when every read saw its own frame's value): each
    read is compared with the value the grader wrote into its guard's frame; a read that returned
    another frame's value is traced to that frame: the one its slot mapped before (a stale
    translation) or the one another live guard holds (two guards in one slot)."""
    plan = probe_plan(frames, rounds)
    if len(reads) != len(plan):
        return [f"the probe made {len(reads)} reads through its guards, the grader's plan {len(plan)} (rounds={rounds})"]
    index = {f: k for k, f in enumerate(frames)}
    before = {}        # slot -> the frame its previous guard mapped
    current = {}       # slot -> the frame its guard maps now (as planned)
    problems, stale_slots = [], set()
    for n, ((slot, frame, live), (va, got_frame, word, value)) in enumerate(zip(plan, reads)):
        if current.get(slot) != frame:
            if slot in current:
                before[slot] = current[slot]
            current[slot] = frame
        if got_frame != frame or word != pattern(seed, n) % WORDS:
            return [f"read {n} of the probe was of word {word} of frame {got_frame:#x}; the grader's plan says word "
                    f"{pattern(seed, n) % WORDS} of frame {frame:#x}: the self-test did not run the grader's plan"]
        if va != slot_va(slot):
            return [f"guard {slot} of the nest (frame {frame:#x}) went through {va:#x}, not slot {slot}'s address "
                    f"{slot_va(slot):#x}: the slots are a stack: the n-th live guard holds slot n-1"]
        want = pattern(fill + index[frame], word)
        if value == want:
            continue
        holders = [f for f in frames if pattern(fill + index[f], word) == value]
        where = f"temp-map slot {slot} ({va:#x})"
        said = (f"read {n}, word {word} of frame {frame:#x} through {where}, returned {value:#018x}, not the frame's "
                f"{want:#018x}")
        others = [f"guard in slot {s}" for s, f in live if s != slot and holders and f == holders[0]]
        if holders and holders[0] == before.get(slot):
            stale_slots.add(slot)
            problems.append(f"stale {where}: {said}; {value:#018x} is word {word} of frame {holders[0]:#x}, the frame "
                            f"slot {slot} mapped before: the CPU still translated the slot through the entry it cached "
                            "for the previous guard (a slot given back without invalidating its TLB entry, or another "
                            "slot invalidated instead of it)")
        elif others:
            problems.append(f"{where} reads another live guard's frame: {said}; {value:#018x} is what frame "
                            f"{holders[0]:#x} of the {others[0]} holds there: two live guards share one slot, so nesting "
                            "reused a live slot (a new guard must take the slot above the ones in use)")
        elif holders:
            problems.append(f"{where} reads another frame: {said}; {value:#018x} is word {word} of frame "
                            f"{holders[0]:#x}")
        else:
            problems.append(f"{where} reads no frame of the probe: {said}")
    if stale_slots and problems:
        clean = sorted(set(range(4)) - stale_slots)
        problems[0] += (f" (stale reads through slot(s) {', '.join(map(str, sorted(stale_slots)))}"
                        + (f"; slot(s) {', '.join(map(str, clean))} read right: the invalidation hit another slot"
                           if clean else "") + ")")
    return problems


def probe_live_problems(snap, kernel, arch, guards, frames, area):
    """The three nested guards live at the probe's middle stop, seen by the grader's walk of the
    live root: guard i must hold slot i, and slot i must translate to its frame, kernel data."""
    problems = []
    vas = [va for va, _ in guards]
    if area is None:
        return ["the kernel has no temp-map area (TempMapArea::s_current is null)"]
    expected = area["va"]
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
    if area["depth"] != len(guards):
        problems.append(f"with {len(guards)} guards live the kernel's slot stack is {area['depth']} deep (read from "
                        "guest RAM)")
    return problems


# Where each ISA says whether an interrupt may be taken: (register, bit, set means enabled).
IRQ_FLAG = {"x86_64": ("eflags", 9, True), "aarch64": ("cpsr", 7, False)}
MAX_STEPS = 4000


def step_problems(guest, kernel, arch, area_va, slot, until, phase):
    """Steps the stopped guest one instruction at a time until it reaches @p until (an address),
    reading at each instruction the slot stack's depth and slot @p slot's entry from guest RAM
    and whether an interrupt could be taken there. An interrupt's own guard takes the slot at
    the stack's top (depth_): during a push of @p slot it must never find @p slot's entry written
    while the slot is not yet counted taken; during its pop, never the slot counted free while its
    entry is still there. Returns [] or the sentence for the first instruction where that fails."""
    reg, bit, enabled_when_set = IRQ_FLAG[arch]
    area_pa = guest.snapshot().translate(area_va)
    depth_pa = area_pa + fact(kernel, "temp_map_depth_offset")
    entry_ptr_pa = area_pa + fact(kernel, "temp_map_entries_offset") + 8 * slot
    entry_va = struct.unpack("<Q", guest.read_phys(entry_ptr_pa, 8))[0]
    entry_pa = guest.snapshot().translate(entry_va & ~(PAGE - 1)) + entry_va % PAGE
    u64_at = lambda pa: struct.unpack("<Q", guest.read_phys(pa, 8))[0]
    pc_name = ARCHES[arch].pc
    for _ in range(MAX_STEPS):
        guest.client.step()
        guest._wait("one instruction")
        pc = guest.client.read_register(pc_name)
        if pc == until:
            guest._stopped_at = pc
            return []
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
    guest._stopped_at = None
    return [f"the grader stepped {MAX_STEPS} instructions of one {phase} without reaching the next stop"]


@lab_test(4, "temp_map_slots")
def test_temp_map_slots(boot, kernel, arch):
    token = boot.fresh_token()
    rounds = pick_in(token, "probe rounds", 3, 6)
    seed = pick_in(token, "probe seed", 1, 2**48)
    fill = proof(token, PROBE_TAG)
    count = fact(kernel, "temp_probe_frames")
    read_size = fact(kernel, "temp_probe_read_size")

    def stop(guest, name):
        """The probe's stop @p name (passing the stepping stops when a step check ended early)."""
        for _ in range(4):
            snap = guest.stop_at(C.CHECKPOINT)
            if snap.argument(0) == fact(kernel, f"temp_probe_{name}_stop"):
                return snap
        raise AssertionError(f"the temp_map_slots self-test stopped at checkpoint {snap.argument(0):#x}, not at its "
                             f"{name} stop")

    def script(guest):
        snap = stop(guest, "frames")
        frames = list(struct.unpack(f"<{count}Q", snap.read_virt(snap.argument(1), 8 * count)))
        reach = kernel_reach(snap, kernel)
        reached = [reach.problem(f, f"probe frame {k}") for k, f in enumerate(frames)]
        for k, f in enumerate(frames):   # values only the grader knows: the kernel reads them through its slots
            guest.write_phys(f, pattern_page(fill + k))
        snap = stop(guest, "live")
        n = snap.argument(2)
        guards = [struct.unpack("<2Q", snap.read_virt(snap.argument(1) + 16 * i, 16)) for i in range(n)]
        area = temp_area(snap, kernel)
        live = probe_live_problems(snap, kernel, arch, guards, frames[:n], area)
        if not live:
            live = slot_entry_problems(snap, kernel, arch, snap.root, area, {snap.root: "the live (kernel) root"})
        if live:
            return dict(frames=frames, live=live, reached=reached)   # what comes after may well die of it
        snap = stop(guest, "push")
        area = temp_area(snap, kernel)
        slot = snap.argument(1)
        checkpoint = address_of(kernel, C.CHECKPOINT)
        area_va, = kernel_u64s(snap, kernel, address_of(kernel, C.TEMP_AREA), 1)
        stepped = step_problems(guest, kernel, arch, area_va, slot, checkpoint, "push")
        if not stepped:
            snap = guest.snapshot()
            if snap.argument(0) != fact(kernel, "temp_probe_pushed_stop"):
                stepped = [f"stepping from the probe's push stop reached checkpoint {snap.argument(0):#x}, not its pushed "
                           "stop"]
            elif snap.argument(1) != area["va"][slot]:
                stepped = [f"the stepped guard holds {snap.argument(1):#x}, not slot {slot}'s address "
                           f"{area['va'][slot]:#x}, the top of the stack"]
            else:
                stepped = step_problems(guest, kernel, arch, area_va, slot, checkpoint, "pop")
        snap = stop(guest, "reads")
        n = snap.argument(2)
        raw = snap.read_virt(snap.argument(1), read_size * n) if n <= 512 else b""
        reads = [struct.unpack_from("<4Q", raw, read_size * i) for i in range(len(raw) // read_size)]
        return dict(frames=frames, live=live, reads=reads, area=temp_area(snap, kernel), stepped=stepped,
                    reached=reached)

    run = boot(test="temp_map_slots", token=token, args={"rounds": rounds, "seed": seed}, witness=script,
               memory=GRADER_MEMORY)
    w = run.require_witness()
    if w["live"]:
        run.fail(w["live"][0] + ("\nthe grader stopped the probe with three nested guards live and walked the live "
                                 "root at each guard's slot:\n  " + "\n  ".join(w["live"][1:4]) if len(w["live"]) > 1
                                 else ""))
    cpu_va = lambda slot: w["area"]["va"][slot]
    problems = probe_reads_problems(w["frames"], fill, seed, rounds, w["reads"], cpu_va)
    if problems:
        run.fail(problems[0] + (f"\n{len(problems)} of the probe's {len(w['reads'])} reads through the slots did not "
                                "see their frame (the grader wrote every frame's values itself and compared each read):"
                                "\n  " + "\n  ".join(problems[1:4]) if len(problems) > 1 else ""))
    if w["stepped"]:
        run.fail(w["stepped"][0])
    if w["area"]["depth"] != 0:
        run.fail(f"after every guard of the probe was released the kernel's slot stack is {w['area']['depth']} deep "
                 "(read from guest RAM): a slot was not given back")
    if all(w["reached"]):   # (the grader's walk of the kernel half, never the window_size fact)
        run.fail(f"the probe's frames ({w['frames'][0]:#x}, ...) are all reached by the kernel half without a temporary "
                 f"mapping: allocate_high() gave no frame only a temporary mapping reaches\n{w['reached'][0]}")
    run.expect(rf"^temp_map_slots: {len(w['reads'])} reads through temp-map slots in {rounds} rounds; slots live now: 0$",
               "the probe's summary")
    run.expect_outcome("success")


@lab_test(4, "temp_maps_live")
def test_temp_maps_live(boot, kernel, arch):
    token = boot.fresh_token()
    seed = derived(token, "tmfill_seed")
    want = pattern_page(seed)
    digest = sum(pattern(seed, i) * (2 * i + 1) for i in range(WORDS)) & MASK64
    spins = pick_in(token, "temp_maps_live spin", 1_000_000, 3_000_000)
    watch = Watch(kernel, arch)
    fill_call, take_call = syscall_number("TempFill"), syscall_number("TempTake")

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        snap = syscall_stops(guest, watch, {fill_call})
        filler = snap.lower_root
        shared = shared_slot_problems(snap, watch, temp_area(snap, kernel), all_roots(snap, watch))
        filled = live_slot(guest, watch, snap, "tmfill's temp_fill")
        reach = filled["reach"]
        snap = syscall_stops(guest, watch, {take_call})
        reader = snap.lower_root
        handle = snap.register(watch.proc["syscall_args"][0])
        shared += shared_slot_problems(snap, watch, temp_area(snap, kernel), all_roots(snap, watch))
        if handle >= 4:
            return dict(problem=f"tmread asked for handle {handle}")
        frame = filled["frame"]
        data = snap.read_phys(frame, PAGE)   # what the fill left there, read before tmread takes it
        taken = live_slot(guest, watch, snap, "tmread's temp_take")
        if taken["frame"] != frame:
            return dict(problem=f"tmread's temp_take mapped frame {taken['frame']:#x} in its slot (the grader's walk of "
                                f"the live root), not the frame {frame:#x} temp_fill's slot mapped")
        return dict(filler=filler, reader=reader, frame=frame, data=data, shared=shared,
                    reached=reach.problem(frame, "the frame temp_fill filled"),
                    labels={**watch.roots, **all_roots(snap, watch)})

    run = boot(args={"run": f"tmfill,spin:{spins}"}, token=token, witness=script, memory=GRADER_MEMORY)
    check_loader_writes(run, kernel, watch)
    refused = run.search(r"^tmfill: pid \d+ temp_fill -> (-\d+)$")
    if refused:
        watch.fail(run, f"temp_fill returned {refused[1]}: the kernel could not fill a frame above its window "
                        "(ENOMEM = -12: no temporary mappings yet, TempMapArea::init(), or no frame)")
    w = watch.require(run)
    if "problem" in w:
        watch.fail(run, w["problem"])
    for who, root in (("tmfill's temp_fill", w["filler"]), ("tmread's temp_take", w["reader"])):
        if root in watch.kernel_roots or root not in w["labels"]:
            watch.fail(run, f"{who} came with root {root:#x} live, not a process root the kernel published")
    if w["filler"] == w["reader"]:
        watch.fail(run, f"tmfill and tmread made their calls with the same root {w['filler']:#x} live")
    if w["shared"]:
        shared = list(dict.fromkeys(w["shared"]))
        watch.fail(run, finding_first(shared, "the grader walked every root itself while a process ran", 4))
    if w["reached"]:
        watch.fail(run, w["reached"])
    if w["data"] != want:
        bad = next(i for i in range(WORDS) if w["data"][8 * i:8 * i + 8] != want[8 * i:8 * i + 8])
        got = struct.unpack_from("<Q", w["data"], 8 * bad)[0]
        watch.fail(run, f"the frame {w['frame']:#x} tmfill's temp_fill filled (read by the grader from guest RAM while "
                        f"tmread ran) holds {got:#018x} in word {bad}, expected {pattern(seed, bad):#018x}: the "
                        "kernel's writes through the temporary mapping did not reach the frame (a slot written into a "
                        "table the live root does not use, or a stale translation of another frame)")
    run.expect(rf"^tmread: {PAGE} bytes of handle \d: digest {digest:016x} proof={proof(token, digest):016x}$",
               "tmread's digest of the frame, read through a temporary mapping while its own root was live")
    reaped = parse_reaped(run)
    if sorted(reaped.values()) != ["exited with code 0"] * 3:
        watch.fail(run, f"expected tmfill, spin and tmread to exit with 0; reaped: {reaped}")
    run.expect(r"^run: temp-map slots live: 0;", "no temp-map slot left live after the run")
    run.expect_outcome("success")


@lab_test(4, "temp_map_stress")
def test_temp_map_stress(boot, kernel, arch):
    token = boot.fresh_token()
    per_call = 2 * pick_in(token, "stress per call", 2_500, 10_000)
    stop_call = pick_in(token, "stress stop call", 0, 3)
    spins = pick_in(token, "stress spin", 2_000_000, 4_000_000)
    watch = Watch(kernel, arch)
    stress_call = syscall_number("TempStress")
    stress = address_of(kernel, C.TEMP_STRESS)

    def script(guest):
        watch.before(guest)
        snap = watch.started_check(guest)
        area0 = temp_area(snap, kernel)
        for _ in range(stop_call + 1):
            snap = syscall_stops(guest, watch, {stress_call})
        snap = guest.stop_at(C.TEMP_STRESS_ROUND)
        round_no = snap.argument(0)
        hidden = root_problem(snap, kernel, watch.kernel_roots, f"in round {round_no} of temp_stress call {stop_call} "
                                                                "(two guards live)")
        area = temp_area(snap, kernel)
        seed, = kernel_u64s(snap, kernel, stress + fact(kernel, "temp_stress_seed"), 1)
        frames = kernel_u64s(snap, kernel, stress + fact(kernel, "temp_stress_frames"), STRESS_FRAMES)
        contents = [snap.read_phys(f, PAGE) if f else b"" for f in frames]
        live = [snap.translate(area["va"][s]) for s in range(min(area["depth"], area["slots"]))]
        shared = shared_slot_problems(snap, watch, area, all_roots(snap, watch))
        reach = kernel_reach(snap, watch.kernel)
        end = watch.checkpoint(guest, "ended")
        area1 = temp_area(end, kernel)
        irqs, = kernel_u64s(end, kernel, stress + fact(kernel, "temp_stress_irq_maps_total"), 1)
        return dict(area0=area0, area=area, round=round_no, seed=seed, frames=frames, contents=contents, live=live,
                    shared=shared, area1=area1, irqs=irqs, reach=reach, hidden=hidden)

    run = boot(args={"run": f"tmstress:{STRESS_MAPS}:{per_call},spin:{spins}"}, token=token, witness=script,
               memory=GRADER_MEMORY)
    check_loader_writes(run, kernel, watch)
    refused = run.search(r"^tmstress: call (\d+): temp_stress -> (-\d+)$")
    if refused:
        watch.fail(run, f"temp_stress call {refused[1]} returned {refused[2]} (ENOMEM = -12: no temporary mappings "
                        "yet, TempMapArea::init(), or no frames above the window)")
    w = watch.require(run)
    area, r = w["area"], w["round"]
    if area is None or w["area0"] is None:
        watch.fail(run, "the kernel has no temp-map area")
    want_seed = derived(token, "tmstress_seed", stop_call)
    if w["seed"] != want_seed:
        watch.fail(run, f"temp_stress call {stop_call} runs with seed {w['seed']:#x}, not {want_seed:#x}")
    for k, (f, data) in enumerate(zip(w["frames"], w["contents"])):
        reached = w["reach"].problem(f, f"stress frame {k}")
        if reached:
            watch.fail(run, reached)
        if data != pattern_page(want_seed + k):
            watch.fail(run, f"stress frame {k} ({f:#x}), read by the grader in round {r} of call {stop_call}, does not "
                            "hold its pattern: the fill through a temporary mapping went elsewhere")
    a, b = w["frames"][r % STRESS_FRAMES], w["frames"][(3 * r + 1) % STRESS_FRAMES]
    if area["depth"] < 2 or w["live"][:2] != [a, b]:
        shown = ", ".join(f"{x:#x}" if x is not None else "unmapped" for x in w["live"])
        watch.fail(run, f"in round {r} of temp_stress call {stop_call} (two guards live), the grader finds the temp-map "
                        f"slot stack {area['depth']} deep, its slots translating (live root) to [{shown}], expected "
                        f"[{a:#x}, {b:#x}]: the slots do not map the frames the guards were given")
    if w["shared"]:
        watch.fail(run, finding_first(w["shared"], "the grader walked every root itself in the middle of the stress", 4))
    if w["hidden"]:
        watch.fail(run, w["hidden"])
    m = run.search(r"^tmstress: (\d+) calls of (\d+) maps: (\d+) maps, (\d+) in interrupts, deepest (\d+), "
                   r"(\d+) mismatches$")
    if not m:
        watch.fail(run, "missing: tmstress's summary line")
    calls = int(m[1])
    want = sum(stress_checksum(derived(token, "tmstress_seed", i), per_call // 2) for i in range(calls)) & MASK64
    run.expect(rf"^tmstress: checksum {want:016x} proof={proof(token, want):016x}$",
               f"the checksum of every value read through the temporary mappings of {calls} calls (a stale "
               "translation reads another frame's word and changes it)")
    made = w["area1"]["maps"] - w["area0"]["maps"]
    if made < STRESS_MAPS:
        watch.fail(run, f"the temp-map area's own counter (read from guest RAM) grew by {made} during the run, "
                        f"fewer than {STRESS_MAPS}: the maps were not made")
    if w["area1"]["depth"] != 0:
        watch.fail(run, f"after the run the temp-map slot stack is {w['area1']['depth']} deep (read from guest RAM): "
                        "a slot leaked")
    if w["irqs"] == 0:
        watch.fail(run, "no timer interrupt mapped a frame inside a temp_stress call (the kernel's counter, read "
                        "from guest RAM): the stress never ran with interrupts nested in it")
    if int(m[6]) != 0:
        watch.fail(run, f"tmstress reports {m[6]} mismatches: a read through a slot did not hold its frame's pattern "
                        f"(its {m[4]} maps in timer interrupts included): a stale translation (a slot given back without "
                        "invalidating its TLB entry) or a slot taken twice (an interrupt between the entry write and the "
                        "stack bookkeeping)")
    reaped = parse_reaped(run)
    if sorted(reaped.values()) != ["exited with code 0"] * 2:
        watch.fail(run, f"expected tmstress and spin to exit with 0; reaped: {reaped}")
    run.expect_outcome("success")


# ---- a program above the window ---------------------------------------------------------------

@lab_test(4, "high_frames")
def test_high_frames(boot, kernel, arch):
    token = boot.fresh_token()
    want = hello_line(token, arch)
    watch = Watch(kernel, arch)

    def script(guest):
        watch.before(guest)
        guards = GuardWatch(guest, kernel, watch.kernel_roots)   # (the loader's, every one)
        watch.started_check(guest)
        return dict(hello_write(guest, watch, set()), **guards.end())

    run = boot(args={"run": "hello"}, token=token, witness=script, memory=GRADER_MEMORY)
    check_loader_writes(run, kernel, watch)
    w = watch.require(run)
    if w["data"].decode(errors="replace") != want:
        watch.fail(run, f"hello's write buffer, read by the grader through its root, holds {w['data'][:120]!r}, "
                        f"expected {want!r}")
    problem = low_frames(w, w["reach"])
    if problem:
        watch.fail(run, f"hello ran, but {problem}")
    problem = guard_problem(w, "hello's pages are in frames above the window")
    if problem:
        watch.fail(run, problem)
    run.expect(re.escape(want.rstrip("\n")) + "$", "hello's line on the console")
    if parse_reaped(run).get(1) != "exited with code 0":
        watch.fail(run, "missing: 'proc 1 (hello): reaped: exited with code 0'")
    run.expect_outcome("success")


# ---- loading into a root that is not live -----------------------------------------------------

@lab_test(4, "spawn_while_running")
def test_spawn_while_running(boot, kernel, arch):
    token = boot.fresh_token()
    want = hello_line(token, arch)
    count = pick_in(token, "spawns", 1, 3)
    watch = Watch(kernel, arch)

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        parent_roots = set(watch.roots)  # the kernel's and the spawner's: the child's is made later
        guards = GuardWatch(guest, kernel, watch.kernel_roots)   # (the child's loader's, every one)
        return dict(hello_write(guest, watch, parent_roots), **guards.end())

    run = boot(args={"run": f"spawner:hello:{count}"}, token=token, witness=script, memory=GRADER_MEMORY)
    check_loader_writes(run, kernel, watch)
    w = watch.require(run)
    if w["data"].decode(errors="replace") != want:
        watch.fail(run, f"the spawned hello's write buffer, read by the grader through the child's root "
                        f"{w['root']:#x}, holds {w['data'][:120]!r}, expected {want!r}: the child was not loaded "
                        "correctly into its root (written through a mapping of another root?)")
    problem = low_frames(w, w["reach"])
    if problem:
        watch.fail(run, f"the spawned hello ran, but {problem}")
    problem = guard_problem(w, "the spawned hello's pages are in frames above the window")
    if problem:
        watch.fail(run, problem)
    run.expect(rf"^spawner: {count} of {count} started proof={proof(token, count):016x}$", "the spawner's summary")
    reaped = parse_reaped(run)
    if sum(1 for how in reaped.values() if how == "exited with code 0") != count + 1:
        watch.fail(run, f"expected the spawner and its {count} children to exit with 0; reaped: {reaped}")
    run.expect_outcome("success")


# ---- bad user pointers ------------------------------------------------------------------------

@lab_test(4, "bad_pointers")
def test_bad_pointers(boot, kernel, arch):
    token = boot.fresh_token()
    layout_window = fact(kernel, "window_base")
    kernel_address = layout_window + pick_in(token, "badptr kernel", 0, (1 << 20) - 1) * PAGE
    unmapped = (1 << 36) + pick_in(token, "badptr unmapped", 0, (1 << 24) - 1) * PAGE  # far from every segment
    readonly = user_symbol(kernel, arch, "badptr", "(anonymous namespace)::kReadOnly").address
    end = user_symbol(kernel, arch, "badptr", "_end").address
    straddle_page = (end + PAGE - 1) // PAGE * PAGE
    watch = Watch(kernel, arch)

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        return True

    run = boot(args={"run": f"badptr:{kernel_address:#x}:{unmapped:#x}"}, token=token, witness=script,
               memory=GRADER_MEMORY)
    check_loader_writes(run, kernel, watch)
    watch.require(run)
    # The cause first, from QEMU's log: which copy faulted where, and what became of it.
    faults = kernel_faults(kernel, run)
    if faults:
        fail_on_cause(run, watch, copy_fault_problem(run, kernel, faults[0], kernel_address))
    fixed = [f for f in run.log.faults if recovered_by_fixup(kernel, f)]
    if run.search(r"^PANIC"):
        stuck = [f for f in fixed if run.log.faults and f.index == run.log.faults[-1].index]
        if stuck:
            # The table (read from the ELF file) holds the instruction: the lookup is the cause, the
            # panic what it led to.
            missed = (f"the last fault, at {run.symbol_of(stuck[0].pc) or hex(stuck[0].pc)} on user address "
                      f"{stuck[0].address:#x}, is a user copy's whose instruction the fix-up table holds (read from "
                      "the kernel's ELF file), yet the kernel did not resume at its fix-up: user_fixup_for() did not "
                      "give that entry's resume address")
            # The kernel's check of the lookup (checked_user_fixup) says what it gave instead.
            said = panic_line("\n".join(run.lines))
            if "user_fixup_for(" in said:
                missed += f" (the kernel's check: {said})"
            run.fail("a bad user pointer made the kernel panic", cause=missed)
        watch.fail(run, "a bad user pointer made the kernel panic")
    expected = {"null": lambda a: a < PAGE, "unmapped": lambda a: unmapped <= a < unmapped + PAGE,
                "straddling": lambda a: a == straddle_page, "readonly": lambda a: readonly <= a < readonly + 64}
    tag = 0
    efaults = 0
    refused = {}   # routine kind ("string" or "bytes") -> a pointer whose faulting copy came back EFAULT
    for kind in BADPTR_KINDS:
        tag += 1
        ops = [("read (write)", 0), ("read (spawn)", 1), ("write (proc_info)", 2), ("read (read)", 3)] \
            if kind != "readonly" else [("write (proc_info)", 2), ("write (read)", 3)]
        for op, salt in ops:
            got = proof(token, (EFAULT & (2**64 - 1)) ^ (tag << 8) ^ salt)
            said = run.search(rf"badptr: {kind} {re.escape(op)} -> (-?\d+) proof=")  # after what write() printed
            string = op == "read (spawn)"   # the name: the string copy (the others: the byte copy)
            routine = "string" if string else "bytes"
            seen = [f for f in fixed if kind in expected and expected[kind](f.address)
                    and in_string_copy(kernel, f.pc) == string]
            call = op.split()[-1].strip('()')
            if said and int(said[1]) == EFAULT and seen:
                refused.setdefault(routine, kind)
            if said and int(said[1]) != EFAULT:
                if seen and string:
                    watch.fail(run, f"the string copy for the {kind} pointer faulted and resumed at its fix-up "
                                    f"({QEMU_LOG}: at {run.symbol_of(seen[0].pc) or hex(seen[0].pc)} on "
                                    f"{seen[0].address:#x}), yet spawn() returned {said[1]}, not EFAULT ({EFAULT}): "
                                    "the string copy's fix-up must return -1 (reading faulted), not the length read "
                                    "so far, which copy_string_from_user() takes for a string")
                if seen and int(said[1]) >= 0 and routine in refused:
                    # The same routine's fix-up made another copy EFAULT: it returns the bytes left,
                    # and the caller of this copy did not refuse them.
                    helper = "copy_to_user()" if op.startswith("write") else "copy_from_user()"
                    resumed = (f"the copy for the {kind} pointer faulted and resumed at its fix-up ({QEMU_LOG}: at "
                               f"{run.symbol_of(seen[0].pc) or hex(seen[0].pc)} on {seen[0].address:#x}), yet "
                               f"{call}() returned {said[1]}, not EFAULT ({EFAULT}), while the same routine's copy "
                               f"for the {refused[routine]} pointer came back EFAULT: its fix-up returns the bytes "
                               "left")
                    if kind == "straddling":
                        watch.fail(run, f"{resumed}; this copy faulted part-way, after some bytes: {helper} took a "
                                        "copy cut short for success: it must refuse any copy with bytes left, not "
                                        "only one that copied nothing")
                    watch.fail(run, f"{resumed}, and {helper} ignored them: a copy with bytes left must fail "
                                    "(EFAULT)")
                if seen:
                    watch.fail(run, f"the copy for the {kind} pointer faulted and resumed at its fix-up ({QEMU_LOG}: at "
                                    f"{run.symbol_of(seen[0].pc) or hex(seen[0].pc)} on {seen[0].address:#x}), yet "
                                    f"{op.split()[-1].strip('()')}() returned {said[1]}, not EFAULT ({EFAULT}): the fix-up path must make "
                                    "the copy return what it did not copy (the copy reported success after a fault)")
                if kind == "kernel":
                    watch.fail(run, f"{op.split()[-1].strip('()')}() with the kernel-half address {kernel_address:#x} returned "
                                    f"{said[1]}, not EFAULT: the kernel copied kernel memory for a user (a pointer "
                                    "outside the user half must be refused before any copy)")
            run.expect(rf"^badptr: {kind} {re.escape(op)} -> {EFAULT} proof={got:016x}$",
                       f"EFAULT for a {kind} pointer ({op})")
            efaults += 1
    run.expect(rf"^badptr: {efaults} EFAULTs proof={proof(token, efaults):016x}$", "badptr's summary")
    # The witness: the copies really ran and faulted on the addresses the grader chose, and were
    # recovered (instruction in the fix-up table read from the ELF file, address in the user half).
    if not user_fixups(kernel):
        watch.fail(run, "the kernel has no fix-up table (section pagoda_user_fixups)")
    missing = [k for k, hit in expected.items() if not any(hit(f.address) for f in fixed)]
    if missing:
        watch.fail(run, f"QEMU's log shows no recovered user-copy fault for the {', '.join(missing)} pointer(s): "
                        "the kernel did not really copy (a kernel that prints EFAULT without trying scores nothing)")
    privilege = ARCHES[arch].kernel_privilege
    for f in run.log.faults:
        if f.privilege == privilege and f.address is not None and kernel_address <= f.address < kernel_address + PAGE:
            watch.fail(run, f"the kernel touched the kernel-half address {kernel_address:#x} a user passed it: a kernel "
                            "pointer must be refused before any copy")
    run.expect(r"^run: temp-map slots live: 0;", "no temp-map slot left live after the run")
    if parse_reaped(run).get(1) != "exited with code 0":
        watch.fail(run, "missing: 'proc 1 (badptr): reaped: exited with code 0'")
    run.expect_outcome("success")


# ---- copy_frame(), seen from outside ------------------------------------------------------------

COPY_TAG = 0x5443     # "TC": the grader fills the copy test's source with pattern(proof(token, COPY_TAG), i)


def copy_problem(source, target, seeds, after_source, after_target):
    """None, or what copy_frame(@p target, @p source) did wrong: before it the grader filled the
    source with pattern_page(seeds[0]) and the target with pattern_page(seeds[1]); after it, it
    read @p after_source and @p after_target from guest RAM. The target must hold the source's
    bytes, and the source keep them."""
    was_source, was_target = pattern_page(seeds[0]), pattern_page(seeds[1])
    call = (f"copy_frame({target:#x}, {source:#x}) (the grader filled the source and the target with values of its "
            "own, then read both frames from guest RAM after the call)")
    if after_target == was_source and after_source == was_source:
        return None
    if after_source == was_target and after_target == was_target:
        return (f"{call} copied the wrong way: the source now holds the target's old bytes, and the target kept them: "
                "copy_frame(to, from) copies from its second argument into its first")
    if after_target == was_target:
        return (f"{call} left the target holding its old bytes: nothing was copied into it (the copy went from a "
                "mapping of the source to itself or to another frame: the target's temporary mapping must be the "
                "copy's destination)")
    if after_source != was_source:
        return f"{call} changed the source frame: a copy only reads its source"
    word = next(i for i in range(WORDS) if after_target[8 * i:8 * i + 8] != was_source[8 * i:8 * i + 8])
    got = struct.unpack_from("<Q", after_target, 8 * word)[0]
    return (f"{call}: the target's word {word} holds {got:#018x}, not the source's {pattern(seeds[0], word):#018x}: the "
            "copy did not copy every byte of the source page")


@lab_test(4, "copy_frame")
def test_copy_frame(boot, kernel, arch):
    token = boot.fresh_token()
    seeds = (proof(token, COPY_TAG), proof(token, COPY_TAG + 1))

    def stop(guest, name):
        snap = guest.stop_at(C.CHECKPOINT)
        if snap.argument(0) != fact(kernel, f"temp_copy_{name}_stop"):
            raise AssertionError(f"the copy_frame self-test stopped at checkpoint {snap.argument(0):#x}, not at its "
                                 f"{name} stop")
        return snap

    def script(guest):
        snap = stop(guest, "frames")
        source, target = snap.argument(1), snap.argument(2)
        guest.write_phys(source, pattern_page(seeds[0]))
        guest.write_phys(target, pattern_page(seeds[1]))
        guards = GuardWatch(guest, kernel, {snap.root, snap.lower_root})
        snap = stop(guest, "copied")
        # (walked after the copy: a kernel half that grew to reach them on the way is seen)
        reach = kernel_reach(snap, kernel)
        reached = [reach.problem(source, "the copy's source"), reach.problem(target, "the copy's target")]
        return dict(source=source, target=target, reached=reached, after_source=snap.read_phys(source, PAGE),
                    after_target=snap.read_phys(target, PAGE), area=temp_area(snap, kernel),
                    **guards.end())

    run = boot(test="copy_frame", token=token, witness=script, memory=GRADER_MEMORY)
    w = run.require_witness()
    problem = copy_problem(w["source"], w["target"], seeds, w["after_source"], w["after_target"])
    if problem:
        run.fail(problem)
    if all(w["reached"]):   # (the grader's walk of the kernel half, never the window_size fact)
        run.fail(f"after copy_frame() the kernel half still reaches both of the copy's frames without a temporary "
                 f"mapping: allocate_high() gave no frame only a temporary mapping reaches, or the kernel maps them "
                 f"some other way\n{w['reached'][0]}")
    if not any(w["reached"]) and w["guards"] < 2:
        run.fail(f"copy_frame() between two frames above the window made {w['guards']} temporary mapping(s) (the "
                 "TempMap constructors the grader saw return): a frame the window does not show is reached through a "
                 "TempMap, one for each of the two")
    if w["guard_problem"]:
        run.fail(w["guard_problem"])
    if w["area"] is None or w["area"]["depth"] != 0:
        run.fail("after copy_frame() returned, the kernel's temp-map slot stack is "
                 f"{'missing' if w['area'] is None else w['area']['depth']} deep (read from guest RAM): its guards must "
                 "give their slots back")
    run.expect(rf"^copy_frame: copied frame {w['source']:#x} into {w['target']:#x}; temp-map slots live now: 0$",
               "the copy test's summary")
    run.expect_outcome("success")


# ---- the user half's top, and names of exactly the limit ----------------------------------------

ENAMETOOLONG, ENOENT = -36, -2
MAX_NAME = 31            # abi::kMaxProgramName: spawn's buffer holds MAX_NAME + 1 bytes
PROC_INFO_SIZE = 72      # sizeof(abi::ProcInfo)


def edge_cases(top, length, over, short, cut, end_page):
    """(case, tag, result due, what the call is) of user/programs/edges.cpp, in its order."""
    return [
        ("at_top", 1, length, f"write(1, {top - length:#x}, {length}): a buffer whose last byte is the user half's "
                              f"last ({top - 1:#x})"),
        ("over_top", 2, EFAULT, f"write(1, {top - length:#x}, {length + over}): a range that starts in the user half "
                                f"and runs {over} bytes past its top {top:#x}"),
        ("read_over", 9, EFAULT, f"read(0, {top - length:#x}, {length + min(over, 64)}): a buffer that starts in the "
                                 f"user half and runs {min(over, 64)} bytes past its top {top:#x}"),
        ("info_over", 3, EFAULT, f"proc_info({top - length:#x}, {PROC_INFO_SIZE}): a record that runs "
                                 f"{PROC_INFO_SIZE - length} bytes past the user half's top {top:#x}"),
        ("info_at_top", 4, PROC_INFO_SIZE, f"proc_info({top - PROC_INFO_SIZE:#x}, {PROC_INFO_SIZE}): a record whose "
                                           f"last byte is the user half's last"),
        ("name_max", 5, ENAMETOOLONG, f"spawn() of a name of exactly {MAX_NAME + 1} bytes (the kernel's buffer, "
                                      f"kMaxProgramName + 1) with no NUL, ending at the user half's top {top:#x}"),
        ("name_fits", 6, ENOENT, f"spawn() of a name of {MAX_NAME} bytes and its NUL, ending at the user half's top "
                                 f"{top:#x} (no program has that name)"),
        ("name_short", 7, EFAULT, f"spawn() of a name of {short} bytes with no NUL, ending at the user half's top "
                                  f"{top:#x}: it runs off the user half before the kernel's buffer is full"),
        ("name_cut", 8, EFAULT, f"spawn() of a name of {cut} bytes with no NUL, ending at the last byte of edges' last "
                                f"mapped page ({end_page - 1:#x}; the page after it is not mapped)"),
    ]


def edge_fault_problem(run, f, case, what, top, short):
    """The sentence for @p f, a kernel fault no fix-up recovered, during edges' @p case."""
    where = run.symbol_of(f.pc) or f"{f.pc:#x}"
    past = f.address is not None and f.address >= top
    head = f"{case}: {what}: the kernel faulted at {f.address:#x} in {where} ({QEMU_LOG})" if f.address is not None \
        else f"{case}: {what}: the kernel faulted in {where} ({QEMU_LOG})"
    if case.startswith(("over_top", "read_over", "info_over")) and past:
        return (f"{head}, {f.address - top} byte(s) past the user half's top {top:#x}: the copy checked less than "
                "the whole range (its first byte only?); a range must lie in the user half, end included, before "
                "any byte of it is copied")
    if case == "name_max" and past:
        return (f"{head}: the string copy read byte {MAX_NAME + 1} of a name whose first {MAX_NAME + 1} bytes held no "
                "NUL, one byte past its limit (the buffer's size): a string copy of at most max bytes must stop "
                "after byte max - 1 (ENAMETOOLONG), never read byte max")
    if case == "name_short" and past:
        return (f"{head}: the string copy read past the user half's top: with {short} bytes left it "
                "must stop at the top (the room is what is left of the user half when that is less than the "
                "buffer), and say EFAULT")
    return f"{head}: the first kernel fault: {f.describe(run.symbol_of)}"


@lab_test(4, "copy_edges")
def test_copy_edges(boot, kernel, arch):
    """Copies whose range ends exactly at the user half's top and one past it, a record that
    runs over it, and names of exactly the kernel's limit and one byte short (edges.cpp)."""
    token = boot.fresh_token()
    top = fact(kernel, "user_end")
    length = pick_in(token, "edges line", 24, 32)
    over = pick_in(token, "edges over", 1, 2 * PAGE)
    short = pick_in(token, "edges short", 1, MAX_NAME)
    end = user_symbol(kernel, arch, "edges", "_end").address
    end_page = (end + PAGE - 1) // PAGE * PAGE
    if end_page - end < 1:
        raise AssertionError(f"edges' _end ({end:#x}) is page aligned: no room for name_cut (the grader's build)")
    cut = pick_in(token, "edges cut", 1, min(MAX_NAME, end_page - end))
    cases = edge_cases(top, length, over, short, cut, end_page)
    watch = Watch(kernel, arch)

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        return True

    run = boot(args={"run": f"edges:{top:#x}:{length}:{over}:{short}:{cut}"}, token=token, witness=script,
               memory=GRADER_MEMORY)
    watch.require(run)
    announced = [m for m in (re.match(r"^edges: next (\w+)$", line) for line in run.lines) if m]
    case = announced[-1][1] if announced else None
    faults = kernel_faults(kernel, run)
    if faults and case is not None:
        what = next(w for c, _, _, w in cases if c == case)
        fail_on_cause(run, watch, edge_fault_problem(run, faults[0], case, what, top, short))
    letters = "".join(chr(derived(token, "edges_letter", i)) for i in range(len("edges: "), length - 1))
    for case, tag, due, what in cases:
        said = run.search(rf"^edges: {case} -> (-?\d+) proof=([0-9a-f]{{16}})$")
        if said is None:
            run.expect(rf"^edges: {case} -> ", f"edges' answer to {case}, {what}")
        got = int(said[1])
        if got != due:
            hint = {"at_top": "a range whose last byte is the user half's last lies in it (end == top is allowed)",
                    "info_at_top": "a record whose last byte is the user half's last lies in it",
                    "name_max": ("a name that fills the buffer with no NUL is too long (ENAMETOOLONG)" if got == EFAULT
                                 else "the buffer held no NUL after max bytes"),
                    "name_fits": "a name of max - 1 bytes and its NUL fits the buffer exactly",
                    "name_short": "a name that reaches the user half's top without a NUL faults (EFAULT)"}.get(
                        case, "a range that runs past the user half is refused whole, before any byte is copied")
            watch.fail(run, f"{case}: {what} returned {got}, where {due} was due: {hint}")
        if said[2] != f"{proof(token, (due & MASK64) ^ (tag << 8)):016x}":
            watch.fail(run, f"{case}: edges' answer carries the wrong proof: the line was not printed by edges")
    run.expect(rf"^edges: {re.escape(letters)}$", f"the line edges wrote from the user half's last {length} bytes "
                                                   "(at_top), on the console")
    run.expect(rf"^edges: done proof={proof(token, top ^ length):016x}$", "edges' last line")
    if not any(f.address == end_page for f in run.log.faults if recovered_by_fixup(kernel, f)):
        watch.fail(run, f"name_cut: {cases[-1][3]} returned EFAULT, but {QEMU_LOG} shows no user-copy fault at "
                        f"{end_page:#x} recovered through the fix-up table: the string copy did not read through the "
                        "user address (lab 4's copies run straight through it, and a bad page faults; checking each "
                        "page in the tables first is lab 3's way)")
    if parse_reaped(run).get(1) != "exited with code 0":
        watch.fail(run, "missing: 'proc 1 (edges): reaped: exited with code 0'")
    run.expect_outcome("success")


# ---- copy_to_space() across page boundaries -----------------------------------------------------

SPACE_COPY_TAG = 0x53430000   # space_copy's source byte i is byte i % 8 of proof(token, SPACE_COPY_TAG + i // 8)
SPACE_FILL_TAG = 0x5346       # "SF": the grader fills page i's frame with pattern(proof(token, SPACE_FILL_TAG + i), w)


def space_copy_source(token, size):
    return b"".join(proof(token, SPACE_COPY_TAG + i).to_bytes(8, "little") for i in range(-(-size // 8)))[:size]


def misplaced_chunk(copies, source, have, at):
    """((offset, size) of a copy, its chunk's start and length, the page it was meant for) when the
    byte at @p at of @p have (every frame's bytes after the copies) lies in a chunk of one of
    @p copies that was meant for another page, written at the same offset in the page, and the
    bytes there are that chunk's; None otherwise."""
    page = at // PAGE
    for offset, size in copies:
        start = offset
        while start < offset + size:
            end = min((start // PAGE + 1) * PAGE, offset + size)
            meant, n = start // PAGE, end - start
            where = page * PAGE + start % PAGE
            if meant != page and where <= at < where + n and \
                    have[where:where + n] == source[start - offset:start - offset + n]:
                return (offset, size), start, n, meant
            start = end
    return None


def space_copy_problem(base, frames, copies, source, fills, got):
    """None, or the first copy whose bytes are wrong: @p copies [(offset from base, size)] in the
    order made, @p fills each frame's bytes before them, @p got each frame's bytes after them."""
    want = bytearray(b"".join(fills))
    for offset, size in copies:
        want[offset:offset + size] = source[:size]
    have = b"".join(got)
    if have == bytes(want):
        return None
    at = next(i for i in range(len(want)) if have[i] != want[i])
    page, within = divmod(at, PAGE)
    for offset, size in reversed(copies):
        if offset <= at < offset + size:
            break
    else:
        offset, size = copies[-1]
    cut = [b for b in range(offset // PAGE * PAGE + PAGE, offset + size, PAGE)]
    crossing = (f"it starts {offset % PAGE} bytes into page {offset // PAGE} and crosses "
                f"{len(cut)} page boundar{'y' if len(cut) == 1 else 'ies'} (at {', '.join(hex(base + b) for b in cut)})")
    misplaced = misplaced_chunk(copies, source, have, at)
    if misplaced:
        (c_offset, c_size), start, n, meant = misplaced
        c_cut = [b for b in range(c_offset // PAGE * PAGE + PAGE, c_offset + c_size, PAGE)]
        return (f"copy_to_space({base + c_offset:#x}, {c_size} bytes) into a space that is not live: it starts "
                f"{c_offset % PAGE} bytes into page {c_offset // PAGE} and crosses {len(c_cut)} page "
                f"boundar{'y' if len(c_cut) == 1 else 'ies'}; its chunk for page {meant} ({n} bytes from "
                f"{base + start:#x}) landed in page {page}'s frame {frames[page]:#x}, at its own offset in the page "
                "(the grader filled the frames and read them back from guest RAM): each chunk's frame must be looked "
                "up in the space's tables at the chunk's own address, not at the range's first page")
    if offset <= at < offset + size:
        stale = have[at:at + 8] == bytes(want[at:at + 8]) or have[at] == bytes(b"".join(fills))[at]
        how = "still holds what the grader put there: the chunk for that page was not written" if stale else \
            "holds another byte than the source's: the chunk for that page was written at the wrong offset"
        return (f"copy_to_space({base + offset:#x}, {size} bytes) into a space that is not live: {crossing}; byte "
                f"{at - offset} of the copy, at {base + at:#x} (page {page}, frame {frames[page]:#x}, offset {within}), "
                f"{how} (the grader filled the frames and read them back from guest RAM): each chunk must start at the "
                "address's offset in its page and end at that page's end")
    return (f"copy_to_space({base + offset:#x}, {size} bytes) into a space that is not live: {crossing}; it changed "
            f"{base + at:#x} (page {page}, frame {frames[page]:#x}, offset {within}), outside every copy's range (the "
            "grader filled the frames and read them back from guest RAM): a chunk ran past its page's end")


@lab_test(4, "space_copy_pages")
def test_space_copy_pages(boot, kernel, arch):
    """copy_to_space() into a space that is not live: ranges that start inside a page and cross
    one or two page boundaries, one ending at the last mapped page's end, one running a byte
    past it; the frames filled before and read after by the grader."""
    token = boot.fresh_token()
    pages = fact(kernel, "space_copy_pages")
    span = pages * PAGE
    base = (1 << 32) + pick_in(token, "space base", 0, (1 << 20) - 1) * PAGE
    o2 = pick_in(token, "space o2", 1, PAGE - 1)                  # page 0 to the end of the last page
    n2 = span - o2
    o1 = pick_in(token, "space o1 page", 0, pages - 2) * PAGE + pick_in(token, "space o1", 1, PAGE - 1)
    n1 = PAGE - o1 % PAGE + pick_in(token, "space n1", 1, PAGE - 1)   # crosses one boundary, ends inside a page
    k3 = pick_in(token, "space k3", 1, 64)
    # A read-only user page of the same space, far from the others (base < 2**33 + 3 pages), and a
    # range inside it: the copy into it must be refused, its frame left as the grader filled it.
    ro = (1 << 34) + pick_in(token, "space ro", 0, (1 << 20) - 1) * PAGE
    o4 = pick_in(token, "space o4", 0, PAGE - 1)
    n4 = pick_in(token, "space n4", 1, PAGE - o4)
    ro_fill = pattern_page(proof(token, SPACE_FILL_TAG + pages))
    fills = [pattern_page(proof(token, SPACE_FILL_TAG + i)) for i in range(pages)]
    source = space_copy_source(token, span)
    copies = [(o2, n2), (o1, n1)]

    def stop(guest, name):
        snap = guest.stop_at(C.CHECKPOINT)
        if snap.argument(0) != fact(kernel, f"space_copy_{name}_stop") or snap.argument(2) != base:
            raise AssertionError(f"the space_copy self-test stopped at checkpoint {snap.argument(0):#x} (base "
                                 f"{snap.argument(2):#x}), not at its {name} stop for base {base:#x}")
        return snap

    def script(guest):
        snap = stop(guest, "frames")
        record = snap.argument(1)
        root, *frames = struct.unpack(f"<{1 + pages}Q", snap.read_virt(record, 8 * (1 + pages)))
        walked = []
        for i in range(pages):
            w = snap.walk(base + i * PAGE, root)
            walked.append(w.pa if w.mapped else None)
        ro_frame, = struct.unpack("<Q", snap.read_virt(record + 8 * (1 + pages) + 24, 8))
        ro_walk = snap.walk(ro, root)
        for i, frame in enumerate(frames):
            guest.write_phys(frame, fills[i])
        guest.write_phys(ro_frame, ro_fill)
        guards = GuardWatch(guest, kernel, {snap.root, snap.lower_root})
        snap = stop(guest, "copied")
        got = [snap.read_phys(frame, PAGE) for frame in frames]
        results = struct.unpack("<3q", snap.read_virt(record + 8 * (1 + pages), 24))
        ro_result, = struct.unpack("<q", snap.read_virt(record + 8 * (1 + pages) + 32, 8))
        ro_got = snap.read_phys(ro_frame, PAGE)
        reach = kernel_reach(snap, kernel)   # (walked after the copies: a kernel half grown on the way is seen)
        reached = [reach.problem(f, f"space_copy's page {i}") for i, f in enumerate(frames)]
        return dict(root=root, frames=frames, walked=walked, got=got, results=results, reached=reached,
                    ro_frame=ro_frame, ro_result=ro_result,
                    ro_got=ro_got, ro_mapped=ro_walk.mapped, ro_pa=ro_walk.pa if ro_walk.mapped else None,
                    ro_user=ro_walk.mapped and ro_walk.perms.user, ro_write=ro_walk.mapped and ro_walk.perms.write,
                    **guards.end())

    run = boot(test="space_copy", token=token, memory=GRADER_MEMORY, witness=script,
               args={"base": base, "o1": o1, "n1": n1, "o2": o2, "n2": n2, "k3": k3, "ro": ro, "o4": o4, "n4": n4})
    started = [m[1] for m in (re.match(r"^space_copy: (\d+) bytes to (0x[0-9a-f]+)", line) for line in run.lines) if m]
    last = next((l for l in reversed(run.lines) if l.startswith("space_copy: ")), "")
    if run.witness is None and run.search(r"^PANIC") and last.endswith(" in a read-only page)"):
        found = (f"copy_to_space({ro + o4:#x}, {n4} bytes) into a read-only user page of a space that is not live: the "
                 "kernel panicked during the copy: a copy into a page the process may not write must be refused "
                 "(InvalidArgument), not attempted")
        run.fail(found, cause=found)
    if run.witness is None and run.search(r"^PANIC") and started:
        size = int(started[-1])
        offset = {n2: o2, n1: o1, k3 + 1: span - k3}.get(size, o1)
        cut = [hex(base + b) for b in range(offset // PAGE * PAGE + PAGE, offset + size, PAGE)]
        found = (f"copy_to_space({base + offset:#x}, {size} bytes) into a space that is not live, starting "
                 f"{offset % PAGE} bytes into its page and crossing the page boundar{'y' if len(cut) == 1 else 'ies'} "
                 f"at {', '.join(cut)}: the kernel panicked during the copy: a chunk must end at its page's end "
                 f"(at most a page minus the offset), never run past it")
        run.fail(found, cause=found)   # (the panic's own line follows it)
    w = run.require_witness()
    if w["walked"] != w["frames"]:
        run.fail(f"space_copy's space (root {w['root']:#x}) maps its pages at {base:#x} to "
                 f"{', '.join(hex(p) if p else 'nothing' for p in w['walked'])}, where the test says "
                 f"{', '.join(hex(p) for p in w['frames'])} (the grader walked the root in guest RAM)")
    problem = space_copy_problem(base, w["frames"], copies, source, fills, w["got"])
    if problem:
        run.fail(problem)
    if all(w["reached"]):   # (the grader's walk of the kernel half, never the window_size fact)
        run.fail(f"after copy_to_space() the kernel half reaches every frame of space_copy's pages without a temporary "
                 f"mapping: allocate_high() gave no frame only a temporary mapping reaches, or the kernel maps them "
                 f"some other way\n{w['reached'][0]}")
    chunks = sum(len(range(o // PAGE, (o + n - 1) // PAGE + 1)) for o, n in copies)
    if not any(w["reached"]) and w["guards"] < chunks:
        run.fail(f"copy_to_space() wrote {chunks} chunks into frames above the window with {w['guards']} temporary "
                 "mapping(s) (the TempMap constructors the grader saw return): a frame the window does not show is "
                 "reached through a TempMap, one for each page written")
    if w["results"][:2] != (0, 0):
        which = (o2, n2) if w["results"][1] else (o1, n1)   # results: [the o1 copy, the o2 copy, the third]
        run.fail(f"copy_to_space({base + which[0]:#x}, {which[1]} bytes), inside the {pages} mapped pages, failed")
    m = run.expect(r"^space_copy: results (-?\d+) (-?\d+) (-?\d+); free frames before (\d+) after (\d+) proof=",
                   "space_copy's summary")
    if int(m[3]) == 0:
        run.fail(f"copy_to_space({base + span - k3:#x}, {k3 + 1} bytes), whose last byte is one past the mapped pages "
                 f"(at {base + span:#x}, unmapped in that space), returned success: a page the space does not map "
                 "must fail the copy")
    if m[4] != m[5]:
        run.fail(f"space_copy had {m[4]} free frames before and {m[5]} after: the copies leaked frames")
    problem = readonly_copy_problem(ro, o4, n4, w, ro_fill)
    if problem:
        run.fail(problem)
    if w["guard_problem"]:
        run.fail(w["guard_problem"])
    run.expect_outcome("success")


def readonly_copy_problem(ro, o4, n4, w, fill):
    """None, or what is wrong with space_copy's copy of @p n4 bytes to @p ro + @p o4, a read-only
    user page of the space (the grader's walk of its root says so, or the test did not set it up):
    the copy must be refused and the page's frame (filled with @p fill by the grader) unchanged."""
    if not (w["ro_mapped"] and w["ro_user"] and not w["ro_write"] and w["ro_pa"] == w["ro_frame"]):
        how = (f"maps it to {w['ro_pa']:#x}, {'user' if w['ro_user'] else 'NOT user'}, "
               f"{'WRITABLE' if w['ro_write'] else 'read-only'}" if w["ro_mapped"] else "does not map it")
        return (f"space_copy's space (root {w['root']:#x}) should map {ro:#x} read-only and user to frame "
                f"{w['ro_frame']:#x}; the grader's walk {how}")
    where = f"copy_to_space({ro + o4:#x}, {n4} bytes)"
    if w["ro_got"] != fill:
        at = next(i for i in range(PAGE) if w["ro_got"][i] != fill[i])
        return (f"copy_to_space wrote into {ro + at:#x} (frame {w['ro_frame']:#x}), a read-only user page of the target "
                f"space: a copy into a process's memory must refuse a page it may not write (walk.perms.write), as the "
                f"process itself could not write there ({where}; the grader filled the frame and read it back from "
                f"guest RAM{'; the call even returned success' if w['ro_result'] == 0 else ''})")
    if w["ro_result"] == 0:
        return (f"{where} into a read-only user page of a space that is not live returned success, though it wrote "
                "nothing (the frame is as the grader filled it): a copy into a page the process may not write must be "
                "refused")
    return None

