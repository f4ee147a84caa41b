"""The causes the grader's line 1 and GDB's `fault-why` both name, each worded once.

Both are "explain this evidence": each source fills the Evidence record with what it has (the
grader: its stops' history and QEMU's exception log; GDB: the live CPU state and the kernel's
records read now) and asks explain() for the first cause the ranked RULES find. A rule returns
its sentence or None; one that needs evidence the source did not fill returns None.

  kernel_stack_overflow   a kernel access in the guard page below a kernel stack (or the boot stack)
  kernel_stack_unmapped   a kernel access to a kernel stack's page that the root it used does not map
  killed_though_recorded  a process killed for a fault at an address its record covers (lab 5)
  swap_first_problem      the first slip the swap state shows against every root (lab 7)

and the sentences a reader's census words the same way on both sides:

  stale_rmap_node         a reverse-map node naming a mapping that is gone (lab 7)
  missing_rmap_node       a mapping the frame's reverse map does not list (lab 7)
  shared_backing          a frame's backing slot that a swap entry names too (lab 7)
  user_interrupts_masked  a user frame that returns to user mode with interrupts off (lab 3)
  writable_and_executable a user page some root maps both writable and executable (lab 3)
  left_behind             what a reaped process still holds (Leftovers: labs 3, 6)

and the checks the grader runs on passing tests too (so its tests need not load diagnose.py):

  record_rules_broken     a VMA record that is not a sorted set of page-aligned regions (lab 5)
  copy_with_guard_up      a user copy that faulted with SMAP or PAN still up (lab 4)
  KERNEL_REFUSAL          the kernel's own words for a process it could not make
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from .model import PAGE_SIZE_4K as PAGE
from .procs import KIND_IMAGE
from .x86_facts import CR4_SMAP, RFLAGS_AC   # what the log's x86 register dump is read with


@dataclass(frozen=True)
class StackSlots:
    """Where the kernel keeps its kernel stacks (the kernel's facts kStackBase, the stride of a
    slot, the guard below each stack, the stack's size, the number of slots); boot_guard: (guard,
    bottom, top) of the kernel's own stack boot_stack and the unmapped page below it, or None."""
    base: int
    stride: int
    guard: int
    size: int
    slots: int
    boot_guard: Optional[tuple] = None

    def slot_of(self, va: int) -> Optional[tuple]:
        """(slot, bottom, top) of the kernel stack whose slot (its guard and its stack) holds @p va, or None."""
        if not self.base <= va < self.base + self.stride * self.slots:
            return None
        slot = (va - self.base) // self.stride
        bottom = self.base + slot * self.stride + self.guard
        return slot, bottom, bottom + self.size

    def guard_hit(self, va: int) -> Optional[str]:
        """The phrase naming the guard page @p va lies in, or None."""
        found = self.slot_of(va)
        if found and va < found[1]:
            return "the guard page below the kernel stack of slot %d [%#x, %#x)" % found
        if self.boot_guard and self.boot_guard[0] <= va < self.boot_guard[1]:
            return (f"the guard page below the kernel's own stack boot_stack [{self.boot_guard[1]:#x}, "
                    f"{self.boot_guard[2]:#x}) (a boot stack overflow)")
        return None


@dataclass
class Kill:
    """A process the kernel killed (or is killing) for a fault: @p who ("proc 1 (vmas)"), the
    fault's @p address, the kernel's @p refusal ("no VMA"; None when it has not said it yet),
    the record's region that covers the address as text (None: none does), where the record
    was read (@p seen) and what the source knows of why the lookup went wrong (@p why)."""
    who: str
    address: int
    refusal: Optional[str] = None
    covering: Optional[str] = None
    seen: str = "read from guest RAM"
    why: Optional[str] = None


@dataclass
class Evidence:
    """What one source saw of a failure; each fills only what it has.

    address, access, where: the kernel's fault (its address, 'wrote to'/'read'/'fetched code at',
    the function it was taken in) from QEMU's log or the CPU's registers; stacks: the kernel
    stacks' layout; kill: a process killed for a fault; swap_problems: what the swap state shows
    wrong, first first (pagoda_pt.swap: the census's problems, read outside the swapper)."""
    address: Optional[int] = None
    access: str = "touched"
    where: Optional[str] = None
    stacks: Optional[StackSlots] = None
    root: Optional[str] = None          # the root the CPU used, named ("'proc 1' (0x26c000)"); None: not known
    mapped_in: Optional[list] = None    # the other roots that map the address, named; None: not looked at
    kill: Optional[Kill] = None
    swap_problems: list = field(default_factory=list)


def kernel_stack_overflow(e: Evidence) -> Optional[str]:
    hit = e.stacks.guard_hit(e.address) if e.stacks is not None and e.address is not None else None
    if hit is None:
        return None
    by = f"the kernel ({e.where})" if e.where else "the kernel"
    return (f"kernel stack overflow: {by} {e.access} {e.address:#x}, {hit}: a recursion or a frame too large for "
            "the stack, or a stack pointer set to a stack's bottom instead of its top")


def kernel_stack_unmapped(e: Evidence) -> Optional[str]:
    """A kernel access to a kernel stack's own pages (not its guard) that the root the CPU used
    does not map (the source only asks when the fault said not present)."""
    found = e.stacks.slot_of(e.address) if e.stacks is not None and e.address is not None and e.root else None
    if not found or e.address < found[1]:
        return None
    slot, bottom, top = found
    page, pages = (e.address - bottom) // PAGE, (top - bottom) // PAGE
    which = "its top page" if page == pages - 1 else "page %d of its %d" % (page, pages)
    by = f"the kernel ({e.where})" if e.where else "the kernel"
    head = (f"{by} {e.access} {e.address:#x}, on the kernel stack of slot {slot} [{bottom:#x}, {top:#x}) ({which}), "
            f"which is not mapped in {e.root}")
    if e.mapped_in:
        return f"{head} (it is mapped in {', '.join(e.mapped_in)}): a kernel stack mapped only in the root where it was allocated"
    if e.mapped_in is None:
        return (f"{head}: a kernel stack missing pages (not all of its pages mapped, or mapped only in the root where "
                "it was allocated)")
    return f"{head}, nor in any other root: the stack's pages were not all mapped where the kernel stack was made"


LOOKUP_MISSED = ("the lookup missed a region that contains the address, or the fault path refused what the "
                 "region allows (VmaSet::find, decide_fault)")


def killed_though_recorded(e: Evidence) -> Optional[str]:
    k = e.kill
    if k is None or k.covering is None:
        return None
    said = f" with '{k.refusal}'" if k.refusal else ""
    return (f"{k.who} was killed at {k.address:#x}{said}, yet the record of {k.who} ({k.seen}) covers that address "
            f"with {k.covering}: the kernel's own decision is wrong, not the program: {k.why or LOOKUP_MISSED}")


def stale_rmap_node(frame: int, who: str, holds: str, lost: Optional[str] = None) -> str:
    """A frame's reverse map names @p who ("proc 2 (swapfork) at 0x406000"), which holds @p holds
    there ("frame 0x..", "a swap entry naming slot 3", "nothing") instead of the frame; @p lost: a
    mapping of the frame its reverse map lacks at the same time (the same kind of name)."""
    if lost:
        why = ("%s, which maps the frame, is missing from it: the removal of a mapping unlinked another node than "
               "the one that went" % lost)
    elif holds.startswith("frame "):
        why = ("the page moved to %s (a copy-on-write break) and the move did not forget the old frame's node"
               % holds)
    else:
        why = "a mapping the reverse map kept after it went (an unmap that unlinked another node, or none)"
    return ("frame %#x's reverse map names %s, but that root holds %s there: %s; evicting the frame writes a swap "
            "entry over that page" % (frame, who, holds, why))


def missing_rmap_node(frame: int, who: str, listed: list) -> str:
    """@p who ("proc 2 (swapfork) at 0x406000") maps @p frame, whose reverse map lists only @p listed
    (the same kind of names; maybe none)."""
    return ("%s maps frame %#x, but the frame's reverse map lists %s: a mapping the reverse map lost (a node dropped "
            "from the chain) or never recorded (fork's child pages); evicting the frame turns the listed entries into "
            "swap entries and frees it while this root still maps it"
            % (who, frame, "only " + ", ".join(listed[:3]) if listed else "no mapping"))


def shared_backing(frame: int, slot: int, who: str, count: int) -> str:
    """@p frame keeps @p slot as its backing while the swap entry of @p who names it too (the slot
    map counting it @p count)."""
    return ("frame %#x keeps slot %d as its backing (its clean copy), yet the swap entry of %s names the slot too (the "
            "slot map counts it %d): a backing slot has no other holder (a swap-in keeps the slot only when its count "
            "says its entry was the only holder: a count that missed a holder, a fork's share, lies); once the frame "
            "is written and evicted, it goes over the bytes that entry still needs" % (frame, slot, who, count))


def swap_first_problem(e: Evidence) -> Optional[str]:
    return e.swap_problems[0] if e.swap_problems else None


# Ranked: the first that speaks is the cause.
RULES = (kernel_stack_overflow, kernel_stack_unmapped, killed_though_recorded, swap_first_problem)


def user_interrupts_masked(frames: list, seen: str = "PA %#x, read from guest RAM") -> Optional[str]:
    """The first process whose user frame keeps interrupts off in user mode, as one sentence, or
    None (the grader's line 1 and fault-why both). @p frames: (who, the frame's address, as @p seen
    words it, why) for each process, @p why being what
    the ISA reads in the frame's saved flags (Isa.user_irqs_masked: "its RFLAGS 0x2: IF is clear")
    or None. The frame at the top of a process's kernel stack is the one it returns to user mode
    through (the entry frame before it first runs, a system call's or an interrupt's since): with
    interrupts off there, the timer never interrupts the program, which then holds the CPU until
    it makes a system call."""
    for who, pa, why in frames:
        if why:
            return ("%s returns to user mode with interrupts off: the frame at the top of its kernel stack (%s) has %s, "
                    "so in user mode the timer can never preempt it: a program that makes no system call keeps the CPU "
                    "for good (the entry frame must let interrupts in: fill_entry_frame)" % (who, seen % pa, why))
    return None


# Why a frame stays shared and writable after a copy-on-write fault (lifecycle's checks, fault-why's census).
COW_GAVE_WRITE_BACK = ("the copy-on-write fault gave write permission back while the frame was shared (it took the "
                       "frame back instead of copying it: a frame is taken back only at count 1), so each "
                       "process's writes reach the other's memory")


def arguments_through_live_root(copy: str, address: int, live: str, seen: str) -> str:
    """Lab 4: a user copy (@p copy) faulted on @p address, in the argument page at the top of the user
    stack, while root @p live was live (@p seen: what showed it): the loader wrote through the live root."""
    return (f"the kernel wrote a new program's arguments through the live root: a user copy ({copy}) faulted on "
            f"{address:#x}, in the argument page at the top of the user stack, while {live} was live ({seen}), and "
            "came back EFAULT: copy_to_user() reaches the live space only, and the new program's root, which maps "
            "that page, is not live while it is loaded: write a space that is not live through its own tables and a "
            "temporary mapping of each frame (copy_to_space())")


def code_not_executable(code: str, root: str) -> str:
    """@p code ("the code at RIP 0x..") could not be fetched: mapped without execute permission in
    @p root (named, with what denies it when known)."""
    return f"{code} is mapped without execute permission in {root}: the CPU cannot fetch it (text mapped NX, or code " \
        "run from a data page)"


def writable_and_executable(mappings: list) -> Optional[str]:
    """The first of @p mappings [(who, [va of each user page or run both writable and executable])]
    with any, as one sentence, or None. The kernel never grants both (mmap refuses them, no segment
    asks for them): such a page is the loader mapping every segment alike."""
    for who, both in mappings:
        if both:
            more = f" (and {len(both) - 1} more)" if len(both) > 1 else ""
            return (f"{who} maps {both[0]:#x}{more} writable and executable: the kernel never grants both (mmap "
                    "refuses them together, and no segment asks for them), so the mapping gave one permission to more "
                    "than its segment (the loader mapped every segment alike: the text writable, the data executable)")
    return None


@dataclass
class Leftovers:
    """What no live process accounts for (each source fills what it has): @p freed [(pid, root or None)]
    of Free slots that keep their pid (read @p where); @p stacks: kernel stack slots taken that no
    process holds; @p roots: published process roots (roots.KnownRoot) whose pid no live slot has."""
    freed: list = field(default_factory=list)
    stacks: list = field(default_factory=list)
    roots: list = field(default_factory=list)
    where: str = "guest RAM"


REAPED = ("the process was reaped without being destroyed: wait must free what the zombie holds (reap(): its user "
          "half, its space and root, its kernel stack), not only mark its slot free")


def left_behind(e: Leftovers) -> Optional[str]:
    """What a reaped process left, as one sentence, or None: a freed slot that keeps its pid, or both
    a root and a stack, is a teardown that never ran; only stacks or only roots, one it forgot."""
    stacks = sorted(e.stacks)
    if e.freed:
        pid, root = e.freed[0]
        held = f" and its root {root:#x} still published" if root else ""
        return (f"pid {pid}'s slot of the process table ({e.where}) is marked free but still holds its pid{held}: "
                + REAPED)
    if not stacks and not e.roots:
        return None
    plural = len(stacks) != 1
    slots = "kernel stack slot%s %s" % ("s" if plural else "", ", ".join(str(s) for s in stacks))
    gone = ", ".join("%s %s" % ("proc %d" % k.id if k.id else "a process", k.label()) for k in e.roots[:4]) + \
        (" and %d more" % (len(e.roots) - 4) if len(e.roots) > 4 else "")
    are = "is" if len(e.roots) == 1 else "are"
    if stacks and e.roots:
        return (f"{gone} {are} still published and {slots} still taken, though no process in the table holds them "
                f"(their slots are free): " + REAPED)
    if stacks:
        return (f"exit's teardown does not free the kernel stacks: {slots} {'are' if plural else 'is'} still taken "
                f"(mapped, their frames allocated) though no process in the table holds {'them' if plural else 'it'}: "
                "the processes that had them were reaped and release() did not give the stack back "
                "(destroy_kernel_stack)")
    return (f"exit's teardown does not free the roots: {gone} {are} still published, "
            f"{'its' if len(e.roots) == 1 else 'their'} tables allocated, though no process in the table has that pid: "
            "its process is gone (reaped, or refused as it started) but its address space was never destroyed "
            "(~AddressSpace frees the tables and the root)")


def record_rules_broken(vmas, whose: str, page: int = PAGE, text=str) -> Optional[str]:
    """The first rule of a sorted VMA set that @p vmas (pagoda_pt.procs.Vma, in the kernel's order)
    breaks, as one sentence naming the kind of operation that leaves it so, or None: an empty
    region (a cut at a region's own edge), one not page aligned, an image region whose file size
    wrapped below zero (a tail cut past the file bytes) or exceeds its room (a head that kept the
    whole region's file bytes), a region that overlaps the one before it. @p whose: the record's
    name ("vmas's record (pid 1, ...)"); @p text(vma): how a sentence shows a VMA. The grader (read
    from guest RAM) and fault-why (read in GDB) both judge a record by this."""
    for k, v in enumerate(vmas):
        start, end, size = v.start, v.end, v.file_size
        image = v.kind == KIND_IMAGE
        if start >= end:
            return (f"{whose} holds an empty region, {text(v)} (region {k}): a cut or a removal at a region's own end "
                    "or start left a part with no pages (a boundary taken with >= for >, or <= for <)")
        if start % page or end % page:
            return f"{whose} holds a region that is not page aligned, {text(v)} (region {k})"
        if image and size >= 1 << 63:
            return (f"{whose} holds {text(v)} (region {k}), whose file size {size:#x} wrapped below zero: a cut past "
                    "the file bytes leaves the tail none (the tail's file bytes are what lies past the cut, floored at 0)")
        if image and size > end - start:
            return (f"{whose} holds {text(v)} (region {k}), which claims {size:#x} file bytes, more file bytes than its "
                    f"{end - start:#x} bytes of room: a region cut or joined kept file bytes that are not its own (the "
                    "head of a cut keeps only the bytes before the cut, the tail those after it)")
        if k and start < vmas[k - 1].end:
            return (f"{whose} is not sorted and disjoint: {text(v)} (region {k}) overlaps or precedes the region "
                    f"before it, {text(vmas[k - 1])}")
    return None


# ---- a user copy run with the guard up (lab 4) -----------------------------------------------------

def copy_with_guard_up(events: list, fixups, user_end: int, model,
                       where: Callable[[int], Optional[str]] = lambda pc: None) -> Optional[str]:
    """The first kernel-mode fault in QEMU's log (@p events) of a user copy (its PC in the fix-up
    table @p fixups) on a user address (below @p user_end) taken with the CPU's guard against
    kernel accesses to user pages still up, as one sentence, or None. x86_64: CR4.SMAP set and
    RFLAGS.AC clear in the log's register dump at the fault. AArch64 (the log has no PSTATE of the
    faulting code): a permission fault on a read, which only PAN gives EL1 on a page it maps.
    A copy outside UserAccessScope faults on good pages and returns EFAULT, so this is the cause of
    whatever call then failed. @p model: the ISA (pagoda_pt.isa) of the events; @p where names a PC
    (the grader's symbolizer; None: by its address). fault-why and the grader's headline both say it."""
    for e in events:
        if e.kind != "exception" or e.privilege == model.user_privilege or e.address is None \
                or e.pc not in fixups or e.address >= user_end or not model.is_page_fault(e):
            continue
        present, write, fetch = model.access(e.error or 0)
        verb = "fetched code at" if fetch else "wrote to" if write else "read"
        copy = "a user copy (%s)" % (where(e.pc) or "PC %#x" % e.pc)
        regs = getattr(e, "registers", None) or {}
        if "RFL" in regs:   # the log dumps the faulting code's flags (x86_64): SMAP and AC are read there
            if regs.get("CR4", 0) & CR4_SMAP and not regs["RFL"] & RFLAGS_AC:
                return ("%s %s user address %#x with SMAP on and RFLAGS.AC clear (QEMU's log: RFL=%#x at the fault): "
                        "the copy ran without lifting the guard against kernel accesses to user pages, so the CPU "
                        "refuses it every user page and it comes back EFAULT: call the copy routine inside a "
                        "UserAccessScope (it sets AC for the copy alone)" % (copy, verb, e.address, regs["RFL"]))
            continue
        if model.is_permission_fault(e.error or 0) and not write and not fetch:
            return ("%s read user address %#x and took a permission fault (QEMU's log: ESR %#x): EL1 may read every "
                    "page it maps, so PAN refused it: the copy ran without clearing PAN, the guard against kernel "
                    "accesses to user pages, so it comes back EFAULT on good pages: call the copy routine inside a "
                    "UserAccessScope (it clears PAN for the copy alone)" % (copy, e.address, e.error))
    return None


# The kernel's own words for a process it could not make that no test asked for: a refusal to start
# a program that is not damaged on purpose (no "!DAMAGE" in its name; kernel/proc/run.cpp launch()),
# a fork, spawn or exec that failed for another reason than running out of something
# (kernel/proc/syscalls.cpp report_call_failure()), each naming the step, the address and what was
# in the way; and its finding after a teardown, a kernel stack slot given back whose pages are still
# mapped (kernel/proc/kernel_stack.cpp check_given_back()). fault-why's verdict at a stop with
# nothing else wrong, and the grader's headline (grade/pagoda_grade/causes.py kernel_refusal).
KERNEL_REFUSAL = re.compile(r"^(?:(run: cannot start [^!:\s]+: )|(proc \d+ \([^)]*\): (?:fork|spawn|exec) failed: )|"
                            r"(proc: kernel stack slot \d+ was given back, yet ))")


# The words only one rule's sentence carries (what an agreement test reads both sides' lines by).
WORDS = {"kernel_stack_overflow": "kernel stack overflow: ", "kernel_stack_unmapped": ", on the kernel stack of slot ",
         "killed_though_recorded": ", yet the record of ",
         "stale_rmap_node": "'s reverse map names ", "missing_rmap_node": ", but the frame's reverse map lists ",
         "shared_backing": " as its backing (its clean copy), yet the swap entry of ",
         "user_interrupts_masked": " returns to user mode with interrupts off: "}


def rule_named(text: str) -> Optional[str]:
    """The name of the rule (of RULES, or a census sentence above) whose sentence @p text carries, or None."""
    return next((name for name, words in WORDS.items() if words in text), None)


def explain(e: Evidence) -> Optional[str]:
    """The first cause RULES find in @p e, or None."""
    for rule in RULES:
        found = rule(e)
        if found:
            return found
    return None
