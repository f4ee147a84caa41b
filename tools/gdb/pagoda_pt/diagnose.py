"""The architecture-neutral part of fault-why's reasoning (pure: the GDB layer gathers facts).

  Explanation          the report being built: lines, findings (one is the verdict), notes
  Roots                walking one address in every root the kernel published
  denying_levels       which levels of a walk deny an access ("PML4[511], PDPT[510]")
  fork_copied_nothing  a forked child whose root holds nothing of its parent's user half
  foreign_root         a process that faulted in user mode on another process's root
  answered_before      how often QEMU's log shows the fault being killed now answered first
  refused_what_record_allows  the kernel's own decision, asked at a kill, refusing a covered address
  allowed_what_record_refuses the same decision allowing what the record refuses
  record_against_pages  a process's VMAs against the pages its root maps (a merge of different
                       permissions, a hole cut a page off)
  program_s_own        whether a verdict names nothing wrong with the kernel (why-stops goes on)

Each architecture has its own rules module (diagnose_x86_64.py; AArch64 adds
diagnose_aarch64.py with ESR/FAR/ELR, VBAR_EL1 and TTBR0/TTBR1 rules) that fills an
Explanation from facts it defines.  Every explanation ends with exactly one verdict line,
"nothing is wrong that I can see" included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from . import contract as C, verdicts
from .model import PAGE_SIZE_4K, Walk
from .roots import KnownRoot, RootTable, root_label
from .walker import walk as walk_tables
from .verdicts import COW_GAVE_WRITE_BACK, KERNEL_REFUSAL, Evidence, Kill, explain, record_rules_broken

NOTHING_WRONG = "nothing is wrong that I can see"

# The lines GDB's why-stops prints around each stop it explains, which `./pagoda labs mutants --why`
# (tools/pagoda/mutant_why.py) reads: the stop (then `bt 4`), fault-why's output, and the mark
# after a verdict that names something wrong with the kernel (the stop it judges).
MARK_STOP = "@@pagoda-why: stop@@"
MARK_WHY = "@@pagoda-why: fault-why@@"
MARK_WRONG = "@@pagoda-why: wrong@@"
# How both ISAs' rules end the verdict of a fault from user mode, before the VMAs are read.
UNRESOLVED = "the kernel kills the process unless it resolves the fault"


def process_label(table, root: Optional[int], where: str) -> str:
    """"process 'probe' (pid 3, root 0x...)" when @p table (the published roots, or None) holds @p root
    as a process's, else "the process in " @p where: both ISAs' rules name the process so."""
    known = table.find(root) if table is not None and root is not None else None
    if known is not None and known.kind == "process":
        return "process '%s' (pid %d, root %#x)" % (known.name, known.id, known.root)
    return "the process in " + where


def user_trap_line(who: str) -> str:
    """The line both ISAs' rules print for an exception raised in user mode by @p who: a page fault
    may still be answered (the VMAs decide, which the verdict then says), so it is no kill yet."""
    return ("  raised in user mode by %s: unless the kernel resolves it (lab 5: a page of a VMA brought in; "
            "lab 6: a copy-on-write copy), the kernel ends that process (proc::user_fault) and the others go on" % who)


def program_s_own(verdict: Optional[str], fault: Optional[dict], overruled: bool) -> bool:
    """Whether fault-why's @p verdict line ("verdict: ...") names nothing wrong with the kernel:
    nothing is wrong, or a process killed for an access its record (or, before lab 5 gives
    processes VMAs, the CPU) refuses, with no cause of the kernel's found before the fault
    (@p overruled). @p fault: what the ISA's rules gave for a user fault (user, and the decision
    user_fault_decision took: "deny", "wrong", ...), or None."""
    if verdict is None:
        return False
    if verdict.startswith("verdict: " + NOTHING_WRONG):
        return True
    if overruled or not fault or not fault.get("user"):
        return False
    decision = fault.get("decision")
    return decision == "deny" or (decision is None and UNRESOLVED in verdict)


@dataclass
class Finding:
    """One cause found, most important first by rank (lower is more fundamental)."""

    rank: int
    sentence: str


class Explanation:
    """What fault-why prints: lines as they are added, findings ranked, one verdict."""

    def __init__(self):
        self.lines: list[str] = []
        self.findings: list[Finding] = []
        self.context: list[str] = []   # appended to the verdict ("(from QEMU's log: ...)")

    def line(self, text: str) -> None:
        self.lines.append(text)

    def find(self, rank: int, sentence: str) -> None:
        if all(f.sentence != sentence for f in self.findings):
            self.findings.append(Finding(rank, sentence))

    def verdict(self, default: str = NOTHING_WRONG) -> str:
        """The verdict: the most fundamental finding (the others follow from it or are
        listed before it), or @p default."""
        if self.findings:
            text = min(self.findings, key=lambda f: f.rank).sentence
        else:
            text = default
        if self.context:
            text += " (" + "; ".join(self.context) + ")"
        return text

    def render(self, default: str = NOTHING_WRONG) -> list[str]:
        return self.lines + ["verdict: " + self.verdict(default)]


# ---- many roots ------------------------------------------------------------------------------

class Roots:
    """Walks in the active root and in every other root the kernel published."""

    def __init__(self, arch: str, read_phys, regs: dict, active: int,
                 table: Optional[RootTable], pa_bits: Optional[int] = None):
        self.arch = arch
        self.read_phys = read_phys
        self.regs = regs
        self.active = active
        self.table = table
        self.pa_bits = pa_bits
        self._cache: dict[tuple, Walk] = {}

    def walk(self, va: int, root: Optional[int] = None) -> Walk:
        """The walk of @p va in @p root (default: the active root), cached."""
        root = self.active if root is None else root
        key = (root, va)
        if key not in self._cache:
            self._cache[key] = walk_tables(self.arch, self.read_phys, root, va, self.regs,
                                           pa_bits=self.pa_bits)
        return self._cache[key]

    def label(self, root: Optional[int] = None) -> str:
        return root_label(self.active if root is None else root, self.table)

    def others(self) -> list[KnownRoot]:
        if self.table is None:
            return []
        return [r for r in self.table.roots if r.root != self.active]

    def mapped_elsewhere(self, va: int, allows: Callable[[Walk], bool] = lambda w: True
                         ) -> list[KnownRoot]:
        """The published roots other than the active one where @p va is mapped (and the
        mapping allows what @p allows checks)."""
        found = []
        for known in self.others():
            w = self.walk(va, known.root)
            if w.mapped and allows(w):
                found.append(known)
        return found

    def elsewhere_sentence(self, what: str, va: int, allows=lambda w: True,
                           shown: Optional[str] = None) -> Optional[str]:
        """"CR2 0x400000 is mapped in root 'proc 1' (0x256000), not in the active root
        'kernel' (0x130000)", or None when no other root maps it. @p shown is how to write
        @p va (e.g. with its symbol), as the caller's other sentences write it."""
        found = self.mapped_elsewhere(va, allows)
        if not found:
            return None
        return "%s %s is mapped in root %s, not in the active root %s" % (
            what, shown or "%#x" % va, " and ".join(k.label() for k in found), self.label())


# ---- permissions -----------------------------------------------------------------------------

def denying_levels(walk: Walk, bit: int, denies_when_set: bool) -> list[str]:
    """'PML4[511]'-style names of the levels whose entry has @p bit set (or clear) in the way
    that denies the access."""
    names = []
    for level in walk.levels:
        if level.raw is None:
            continue
        if bool(level.raw & bit) == denies_when_set:
            names.append("%s[%d]" % (level.name, level.index))
    return names


# ---- one fault, as both ISAs' rules see it ----------------------------------------------------

@dataclass
class FaultRecord:
    """A fault in words neither ISA owns; each ISA's rules fill one from its registers and walk.
    @p register: the register holding the address as a sentence names it ('CR2', 'FAR');
    @p space: where the address was walked ("the active root 'probe' (0x...)");
    @p kernel_half: the address is in the kernel's half (x86: above the user half; AArch64: TTBR1's);
    @p flush: the ISA's TLB invalidation a sentence names ('invlpg or CR3 reload')."""

    register: str
    address: int
    walk: Walk
    space: str
    user: bool
    kernel_half: bool
    flush: str = ""


def mapped_since(f: FaultRecord) -> Optional[str]:
    """A fault on a page that was not there (x86: not present; AArch64: a translation fault) at an
    address the walk maps now, or None."""
    if not f.walk.mapped:
        return None
    return ("%s %#x is mapped now, but was not when the CPU faulted: the mapping was added afterwards, the fault "
            "came from another root, or a stale TLB entry was used (missing %s)" % (f.register, f.address, f.flush))


def walk_allows_now(f: FaultRecord) -> str:
    """A permission fault whose access the walk allows today: no level denies it now."""
    return ("the walk of %s %#x now allows this access: the tables were changed after the fault, or the CPU "
            "used a stale TLB entry (a missing %s?)" % (f.register, f.address, f.flush))


def user_code_at_kernel_privilege(address: int, privilege: str, process: str, how: str) -> str:
    """An exception taken at kernel privilege while the PC was on the process's own code (a user page
    it may execute): the entry to user mode kept the kernel's privilege. @p privilege: the ISA's
    words for it ('in ring 0 (CS 0x8, CPL 0)', 'at EL1'); @p how: how its entry does that."""
    return ("the CPU was running the process's user code at %#x %s for %s: the entry to user mode kept kernel "
            "privilege: %s" % (address, privilege, process, how))


def kernel_touched_unmapped(f: FaultRecord, pc: str) -> Optional[str]:
    """A fault from kernel mode at an address the walk does not map, no other cause found: what to do
    next (@p pc: the ISA's name of the register holding the faulting instruction), or None."""
    if f.user or f.walk.mapped:
        return None
    return "%s %#x is not mapped in %s (%s): map it, or find why the kernel touched it (%s's code, `bt`)" % (
        f.register, f.address, f.space, f.walk.stop_reason, pc)


def never_given(f: FaultRecord) -> Optional[str]:
    """A fault from user mode at an address the walk does not map: the program's own doing (the
    kernel ends it), or None."""
    if not f.user or f.walk.mapped:
        return None
    return "%s %#x is not mapped in %s (%s): the program touched %s it was never given" % (
        f.register, f.address, f.space, f.walk.stop_reason, "a kernel address" if f.kernel_half else "an address")


# ---- a user page fault and the process's VMAs (labs 5, 6) --------------------------------------

def _vma_text(vma) -> str:
    return "[%#x, %#x) %s %s%s" % (vma.start, vma.end, vma.rwx(), vma.kind_name,
                                   " grows down" if vma.flags & 1 else "")


def user_fault_decision(vmas: list, address: int, write: bool, fetch: bool, mapped: bool,
                        perms: Optional[str], stack_limit: Optional[int] = None,
                        page: int = PAGE_SIZE_4K, killing: bool = False,
                        who: str = "the process", sp: Optional[int] = None,
                        answered: int = 0, pc: Optional[int] = None,
                        segments: Optional[list] = None, heap: Optional[tuple] = None,
                        swapped: Optional[tuple] = None) -> tuple[str, str]:
    """What the kernel's fault decision (kernel/mm/space/user_regions.cpp, decide_fault, and lab 6's
    copy-on-write) makes of a user-mode page fault at @p address, given the process's VMAs
    (pagoda_pt.procs.Vma: flags bit 0: grows down), what the
    access was and what the page tables map there now (@p perms 'r-x' when @p mapped).
    @p killing: the kernel is ending the process for this fault now (stopped in proc::user_fault).
    @p who names the process in the sentences ("proc 3 (hello)").

    Returns (kind, sentence): 'demand', 'cow' and 'grow' are answered (the program goes on);
    'deny' ends the process; 'mapped' is a page that allows the access now; 'wrong' is a fault
    the VMAs allow that the kernel is ending the process for (its decision is the bug).
    @p sp: the program's stack pointer at the fault (a fault there with no stack VMA at all is the
    loader's: it did not record the stack). @p answered: how many times QEMU's log shows this same
    fault (the instruction at @p pc, the same page, the same state) answered before
    (answered_before): a fault the record refuses that was answered first is the decision's bug,
    not the program's (it let through what it now refuses). @p segments: the program's ELF load
    segments (pagoda_core.elffile.Segment: vaddr, memsz, filesz, perms): a refused address in one of them that the record leaves out or
    grants other permissions is the loader's record, not the program. @p heap: (heap_start, brk)
    of the process's record: a refused address below the break that no VMA covers is the heap's
    region cut short by brk (heap_short_of_break), the kernel's bug. @p swapped: (slot, its count in
    the slot map, or None) when the page's entry is a swap entry (lab 7): the fault is a swap-in,
    and one that names a slot the map calls free reads bytes no longer the page's."""
    kind, sentence = _user_fault_decision(vmas, address, write, fetch, mapped, perms, stack_limit, who, swapped)
    if kind == "deny" and heap is not None:
        short = heap_short_of_break(vmas, address, heap, who, page)
        if short is not None:
            return "wrong", short
    if kind == "deny" and vmas and segments:
        story = _segment_story(segments, vmas, address, page, who)
        if story is not None:
            sentence = story
    if kind == "deny" and vmas and sp is not None and _no_stack_recorded(vmas, address, sp, page):
        kind, sentence = "deny", (
            "the loader did not record the stack: no VMA covers %#x, at the stack pointer %#x, and none "
            "of the %d VMAs of %s grows down, so the stack is only the pages the loader mapped itself, "
            "it cannot grow, and its fault is refused like any address" % (address, sp, len(vmas), who))
    if killing and kind == "deny" and vmas and answered > 0:
        return "wrong", _answered_then_refused(vmas, address, write, fetch, answered, pc, page, sentence)
    if killing and kind in ("demand", "cow", "grow", "mapped"):
        reading = sentence.split(": the kernel ")[0]
        return "wrong", explain(Evidence(kill=Kill(
            who, address, covering="%s (%s)" % (next((_vma_text(v) for v in vmas if v.start <= address < v.end),
                                                     "its stack's region, which grows down to it"), reading),
            seen="read from guest RAM now", why="its VMA lookup or fault path refused what the record allows "
            "(decide_fault, the VMA find, the demand or copy-on-write path)")))
    return kind, sentence


def heap_short_of_break(vmas: list, address: int, heap: tuple, who: str = "the process",
                        page: int = PAGE_SIZE_4K) -> Optional[str]:
    """When no VMA of @p vmas covers @p address although it lies in the heap as the record's own
    break says (@p heap: (heap_start, brk), heap_start <= address < brk): the sentence naming the
    heap's region cut short of the break (brk must record the heap up to the break rounded up to
    a page), else None. The heap's region is the VMA that ends highest at or below @p address
    from heap_start on, if any."""
    start, brk = heap
    if not start <= address < brk or any(v.start <= address < v.end for v in vmas):
        return None
    top = (brk + page - 1) & ~(page - 1)
    below = [v for v in vmas if start <= v.start and v.end <= address]
    ends = max((v.end for v in below), default=start)
    how = ("its heap region ends at %#x" % ends) if below else ("no region covers the heap from %#x" % start)
    rounded = " (the break rounded down to a page)" if ends == brk & ~(page - 1) and brk % page else ""
    return ("%s faulted at %#x, below its own break %#x, yet %s%s: brk recorded the heap short of the break; "
            "the heap's region must reach the break rounded up to a page (%#x), so every address below the "
            "break is the program's" % (who, address, brk, how, rounded, top))


def refused_what_record_allows(who: str, address: int, refusal: str, vma,
                               found: Optional[bool]) -> str:
    """The verdict at a kill on a fault the record allows, once the kernel's own decision
    (decide_fault, asked in the kill path on the same record, address and access) has refused it
    for @p refusal (its words: fault_cause_text, "no VMA", ...). @p vma: the record's region that
    covers @p address; @p found: whether the kernel's VMA lookup (VmaSet::find) returns a region
    for it (None: not asked)."""
    if found is False:
        why = ("the kernel's VMA lookup (VmaSet::find) returns no region for %#x although the record "
               "holds one: the lookup misses part of a region (its bounds compared wrongly?)" % address)
    else:
        why = ("its lookup finds the region, so the decision's own check refused an access the region "
               "allows (decide_fault, permits)")
    return explain(Evidence(kill=Kill(
        who, address, refusal, covering="%s, which allows the access" % _vma_text(vma),
        seen="read from guest RAM now; the kernel's own decide_fault, asked now, refuses it", why=why)))


# ---- the loader's record against the program's ELF -------------------------------------------

def _segment_text(seg) -> str:
    return "[%#x, %#x) %s (file size %#x, memory size %#x)" % (
        seg.vaddr, seg.vaddr + seg.memsz, seg.perms, seg.filesz, seg.memsz)


def _segment_story(segments: list, vmas: list, address: int, page: int, who: str) -> Optional[str]:
    """Why a refused @p address is the loader's record: it lies in a load segment of the program's
    ELF that no VMA covers there (the segment's region ends at its file bytes, or is cut short).
    None when a VMA covers it, or no segment does. (A munmap of part of the image would read
    the same: the rule is for the kill, and programs do not unmap their own image.)"""
    def up(x):
        return (x + page - 1) & ~(page - 1)
    seg = next((g for g in segments if g.memsz and g.vaddr & ~(page - 1) <= address < up(g.vaddr + g.memsz)), None)
    if seg is None:
        return None
    if any(v.start <= address < v.end for v in vmas):
        # Covered: a refusal by the VMA's permissions (which mprotect may have changed) is not
        # the loader's to answer for.
        return None
    start = seg.vaddr & ~(page - 1)
    own = next((v for v in vmas if v.start <= start < v.end), None)
    if own is not None and seg.filesz < seg.memsz and own.end == up(seg.vaddr + seg.filesz):
        return ("the loader recorded the file size, not the memory size: the load segment %s of %s's "
                "program has the VMA %s, which ends where the segment's file bytes end, so %#x (its "
                "zero-filled bss, past the file bytes) is in no VMA and is refused"
                % (_segment_text(seg), who, _vma_text(own), address))
    return ("the loader's record leaves out part of a load segment: %#x lies in the segment %s of %s's "
            "program, but no VMA covers it%s, so it is refused like an address the program was never given"
            % (address, _segment_text(seg), who,
               " (the segment's region is %s)" % _vma_text(own) if own is not None else ""))


# How far below the stack pointer a fault still counts as the stack's own (a frame being pushed).
STACK_REACH = 64 << 10


def _no_stack_recorded(vmas: list, address: int, sp: int, page: int) -> bool:
    """A fault at the program's stack (within STACK_REACH below its stack pointer, or on its page)
    in a process none of whose VMAs grows down."""
    if any(v.flags & 1 for v in vmas):
        return False
    return (sp & ~(page - 1)) - STACK_REACH <= address < (sp & ~(page - 1)) + page


def _refused_access(vmas, address, write, fetch):
    """'a write to the read-only VMA [...]': an access the record refuses, and why."""
    access = "an instruction fetch" if fetch else "a write" if write else "a read"
    vma = next((v for v in vmas if v.start <= address < v.end), None)
    if vma is None:
        return "%s at %#x, which no VMA covers" % (access, address)
    if fetch and not vma.execute:
        return "%s from the non-executable VMA %s" % (access, _vma_text(vma))
    if write and not vma.write:
        return "%s to the read-only VMA %s" % (access, _vma_text(vma))
    return "%s in the inaccessible VMA %s" % (access, _vma_text(vma))


def allowed_what_record_refuses(vmas: list, address: int, write: bool, fetch: bool, action: str,
                                refusal: str) -> str:
    """The verdict at a kill on a fault the record refuses (@p refusal: user_fault_decision's
    sentence), once the kernel's own decision (decide_fault, asked in the kill path) has answered
    it with @p action ("Populate", "Grow"): the decision let the access through, and the process
    dies only because resolving it failed."""
    return ("the kernel's fault decision allowed %s (decide_fault, asked now, answers %s instead of "
            "refusing): the process is killed only because resolving the fault failed, not for the access; "
            "the decision must check the access against the VMA's permissions; the record says: %s"
            % (_refused_access(vmas, address, write, fetch), action, refusal))


def _answered_then_refused(vmas, address, write, fetch, answered, pc, page, refusal):
    what = _refused_access(vmas, address, write, fetch)
    times = "once" if answered == 1 else "%d times" % answered
    where = " (the instruction at %#x" % pc if pc is not None else " (the same instruction"
    return ("the kernel's fault decision allowed %s: QEMU's log shows this same fault%s, page %#x, "
            "the same state) answered %s before the kernel refused it now, so the decision brought the "
            "page in instead of refusing it at once; it must check the access against the VMA "
            "(decide_fault); the record now says: %s" % (what, where, address & ~(page - 1), times, refusal))


# The general registers that an answered fault's retry finds as they were (QEMU's x86 dump);
# a system call or other work between two faults changes some of them.
RETRY_REGISTERS = ("RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP", "R8", "R9", "R10", "R11",
                   "R12", "R13", "R14", "R15")


def same_state(a, b, registers: tuple = RETRY_REGISTERS) -> bool:
    """Whether two exceptions were taken in the same state as far as the log says: the same root
    when it names both, the same @p registers where it dumps both."""
    ra, rb = getattr(a, "root", None), getattr(b, "root", None)
    if ra is not None and rb is not None and ra != rb:
        return False
    regs_a, regs_b = getattr(a, "registers", None) or {}, getattr(b, "registers", None) or {}
    return all(regs_a.get(r) == regs_b.get(r) for r in registers if r in regs_a and r in regs_b)


def answered_before(events: list, pc: int, address: int, page: int = PAGE_SIZE_4K) -> int:
    """How many times QEMU's exception log (@p events: tools/pagoda_core/faultlog.Event objects,
    in order) shows the fault being answered now, the last exception at @p pc and @p address,
    taken just before it: the same instruction faulting on the same page, in the same root when
    the log names roots, with the same general registers when it dumps them, and nothing between
    but hardware interrupts (a system call or another exception means the program went on). A
    count above zero means the kernel answered this fault and the instruction ran into it again."""
    current = next((i for i in range(len(events) - 1, -1, -1)
                    if events[i].kind == "exception" and events[i].pc == pc and events[i].address == address),
                   None)
    if current is None:
        return 0
    this, count = events[current], 0
    for event in reversed(events[:current]):
        if event.kind == "interrupt":
            continue
        if event.kind != "exception" or event.pc != this.pc or event.address is None or \
                event.address & ~(page - 1) != this.address & ~(page - 1):
            break
        if not same_state(event, this):
            break
        count += 1
    return count


def _user_fault_decision(vmas, address, write, fetch, mapped, perms, stack_limit, who, swapped=None):
    access = "instruction fetch" if fetch else "write" if write else "read"
    if not vmas:
        return "deny", ("the VMA list of " + who + " is empty: the loader recorded no VMA (for a forked "
                        "child, the child's record is empty: fork did not copy the parent's), so no "
                        "fault can be answered and %#x is refused like any address" % address)
    vma = next((v for v in vmas if v.start <= address < v.end), None)
    if vma is None:
        above = [v for v in vmas if v.start > address]
        if above and above[0].flags & 1:
            stack = above[0]
            floor = stack.end - stack_limit if stack_limit else None
            if floor is None or address >= floor:
                return "grow", ("stack growth: %#x lies just below the stack VMA %s, which grows down: "
                                "the kernel extends the stack to this page and the program goes on (lab 5); "
                                "not an error" % (address, _vma_text(stack)))
            return "deny", ("%#x lies below the stack VMA %s, past its limit (%#x bytes): the kernel "
                            "kills the process (stack limit)" % (address, _vma_text(stack), stack_limit))
        return "deny", ("no VMA covers %#x: the kernel kills the process (an address the program was "
                        "never given, or a region the loader never recorded)" % address)
    allows = (vma.read or vma.write or vma.execute) and (not write or vma.write) and \
        (not fetch or vma.execute)
    if not allows:
        return "deny", ("%#x lies in the VMA %s, which does not allow a %s: the kernel kills the "
                        "process" % (address, _vma_text(vma), access))
    if not mapped and swapped is not None and swapped[1] == 0:
        return "wrong", ("%#x lies in the VMA %s and its page is swapped out, but its swap entry names slot %d, "
                         "which the slot map calls free: a slot freed while this entry still names it (a hold "
                         "dropped twice, a slot taken without being marked, a fork's share not counted); the "
                         "swap-in reads whatever the slot holds now, another page's bytes once it is reused"
                         % (address, _vma_text(vma), swapped[0]))
    if not mapped and swapped is not None:
        return "demand", ("a swap-in: %#x lies in the VMA %s, which allows a %s, and its page is swapped out to "
                          "slot %d%s: the kernel reads the slot into a frame, maps it with the VMA's permissions "
                          "and the program goes on (lab 7); not an error"
                          % (address, _vma_text(vma), access, swapped[0],
                             "" if swapped[1] is None else " (held %d time%s)" % (swapped[1], "" if swapped[1] == 1 else "s")))
    if not mapped or perms is None or perms == "---":
        return "demand", ("a demand fault: %#x lies in the VMA %s, which allows a %s, and its page is "
                          "not mapped yet: the kernel brings the page in and the program goes on "
                          "(lab 5); not an error" % (address, _vma_text(vma), access))
    if write and perms[1] != "w" and vma.write:
        return "cow", ("a copy-on-write fault: %#x is mapped %s in the writable VMA %s: the kernel "
                       "gives this process a copy of the page (or the page itself when no other "
                       "mapping shares it) and the program goes on (lab 6); not an error"
                       % (address, perms, _vma_text(vma)))
    return "mapped", ("%#x is mapped %s and its VMA %s allows a %s: the kernel widens the page to "
                      "its VMA's permissions and the program goes on, or the fault came before the "
                      "tables changed (a stale TLB entry?)" % (address, perms, _vma_text(vma), access))


# ---- a kernel access on a process's behalf (lab 4: the user copies and their fix-up table) ------

# How far past a pointer a system call's access may land and still be called that pointer's:
# a copy walks forward from the pointer it was given.
ARGUMENT_REACH = 64 << 10


@dataclass
class SyscallAt:
    """The system call the kernel was running when it faulted: pagoda::proc::syscall's `call`
    (its number and six argument registers), and the call's name when the kernel's ABI names it."""

    number: int
    args: tuple
    name: str = ""

    def label(self) -> str:
        return "%s (system call %d)" % (self.name, self.number) if self.name else \
            "system call %d" % self.number

    def argument_for(self, address: int) -> Optional[int]:
        """The index of the argument @p address lies at or just past, or None."""
        for i, value in enumerate(self.args):
            if 0 <= address - value < ARGUMENT_REACH:
                return i
        return None


@dataclass
class KernelAccess:
    """A kernel-mode fault, and what says whether it was made on a process's behalf.

    pc, function    the faulting instruction and the function that holds it ('' if unknown)
    address         the address that faulted
    write           a store (False: a load or a fetch)
    kernel_half     @p address lies in the kernel half (the arch's test: x86_64 the upper
                    canonical half, AArch64 TTBR1's range)
    user_end        the first address past the user half (the kernel's fact), or None
    copy_routines   the arch's user-copy routines (the only code that may touch user memory)
    fixups          the kernel's fix-up table {instruction: resume}, or None when unread
    syscall         the system call being run (SyscallAt), or None when it is not known
    process         "process 'badptr' (pid 1, root 0x...)" or similar"""

    pc: int
    function: str
    address: int
    write: bool
    kernel_half: bool
    user_end: Optional[int]
    copy_routines: tuple
    fixups: Optional[dict] = None
    syscall: Optional[SyscallAt] = None
    process: str = "the process"

    @property
    def in_copy(self) -> bool:
        return bool(self.function) and self.function in self.copy_routines

    @property
    def user_address(self) -> bool:
        return not self.kernel_half and self.user_end is not None and self.address < self.user_end


def function_name(symbol: str) -> str:
    """'x86_user_copy' of GDB's 'x86_user_copy + 3 in section .text' ('' for '')."""
    return symbol.split(" in section ")[0].split(" + ")[0].strip()


# Ranks (diagnose.Explanation: lower is more fundamental) shared by both ISAs' rules.
RANK_USER_POINTER = 9       # a kernel-half pointer passed by a process, used unchecked
RANK_FIXUP_MISSING = 10     # a user copy's instruction without its fix-up entry
RANK_FIXUP_PRESENT = 35     # a user copy's fault that its fix-up entry answers


def on_behalf_findings(a: KernelAccess) -> list:
    """[(rank, sentence)] for a kernel-mode fault made on a process's behalf: a user copy that
    faulted on a user address its fix-up table has no entry for, or a system call that reached a
    kernel-half address the process passed as a pointer. [] when the evidence is not there."""
    found = []
    access = "the %s at %#x%s" % ("write" if a.write else "read", a.pc,
                                  " in %s" % a.function if a.function else "")
    during = ", during %s" % a.syscall.label() if a.syscall is not None else ""
    if a.in_copy and a.user_address and a.fixups is not None:
        if a.pc not in a.fixups:
            found.append((RANK_FIXUP_MISSING,
                          "a user copy faulted on user address %#x: %s, for %s%s, is not in the fix-up "
                          "table (%d entr%s, none for %#x). Without its entry the fault is the kernel's own "
                          "instead of a short copy that returns EFAULT: every load or store of a copy that "
                          "may fault on a user address needs one"
                          % (a.address, access, a.process, during, len(a.fixups),
                             "y" if len(a.fixups) == 1 else "ies", a.pc)))
        else:
            found.append((RANK_FIXUP_PRESENT,
                          "a user copy faulted on user address %#x, and the fix-up table sends %s to %#x: "
                          "the copy stops short and the system call returns EFAULT; if the kernel reported "
                          "this fault instead, its handler did not take the entry (proc::user_fixup_for())"
                          % (a.address, access, a.fixups[a.pc])))
    if a.kernel_half and (a.in_copy or a.syscall is not None):
        argument = a.syscall.argument_for(a.address) if a.syscall is not None else None
        if argument is not None:
            passed = "the process passed %#x as argument %d of %s" % (
                a.syscall.args[argument], argument + 1, a.syscall.label())
        elif a.syscall is None and a.in_copy:
            passed = "a user copy runs only for a system call, on the pointer the process gave it"
        else:
            passed = None
        if passed:
            found.append((RANK_USER_POINTER,
                          "the kernel touched the kernel-half address %#x on behalf of %s during a system "
                          "call: a user pointer that was not checked to be in the user half (%s; %s). A "
                          "system call must refuse any pointer outside the user half before it copies "
                          "(copy_from_user and copy_to_user return EFAULT for it): copied on a process's "
                          "behalf, a kernel pointer reads or writes the kernel itself"
                          % (a.address, a.process, access, passed)))
    return found


RANK_NOT_LIVE_USER_ADDRESS = 11   # before Roots.elsewhere_sentence's "written into a root that is not active"


def not_live_user_address(roots: Roots, address: int, user_end: Optional[int], write: bool,
                          what: str = "address") -> Optional[str]:
    """A kernel-mode fault on a user-half @p address that the active root does not map while a
    process's published root (not the active one) does: the kernel reached a process that is not
    live through its user address (seed 003's i386 form: the mapping is right, the path to it is
    not). None when no process's root maps it as a user page or the address is not in the user
    half."""
    if user_end is None or address >= user_end or roots.walk(address).mapped:
        return None
    # Only the process's own user pages: a supervisor-only page in a process root is a kernel
    # mapping written into a root that is not active (Roots.elsewhere_sentence says so).
    owners = [k for k in roots.mapped_elsewhere(address, lambda w: w.perms is not None and w.perms.user)
              if k.kind == "process"]
    if not owners:
        return None
    return ("the kernel %s the user %s %#x of process %s, whose root is not live (the active root is %s): "
            "it reached a process that is not live through its user address. Its pages are mapped in its "
            "own root only; a process that is not live is reached through its own tables and a temporary "
            "mapping of each frame (lab 4), never through its user addresses"
            % ("wrote to" if write else "read", what, address, " and ".join(k.label() for k in owners),
               roots.label()))


# ---- a machine where nothing runs (lab 6) -------------------------------------------------------

def _same_record(a: list, b: list) -> bool:
    keys = ("start", "end", "read", "write", "execute", "kind")
    return [tuple(getattr(v, k) for k in keys) for v in a] == [tuple(getattr(v, k) for k in keys) for v in b]


def fork_copied_nothing(child, parent, child_pages: list,
                        parent_pages: list) -> Optional[str]:
    """The cause of a forked child's death when fork put nothing of the parent's user half into
    its root, or None. @p child and @p parent are process rows (pid, name, parent, vmas);
    @p child_pages and @p parent_pages the user pages their roots map (objects with va, pa).

    Only for a child of @p parent whose record is the parent's own (fork copied the record and
    nothing has changed it since: no exec, no mmap), when the child's root shares no frame with
    the parent's (copy-on-write shares every page at fork; even an eager copy leaves the text
    shared or copied page for page) and lacks pages the parent maps in those regions: the
    child holds only what it faulted in since, so its stack and data read as zeros."""
    if not parent.pid or child.parent != parent.pid:
        return None
    if not child.vmas or not parent.vmas or not _same_record(child.vmas, parent.vmas):
        return None
    covered = [(v.start, v.end) for v in parent.vmas]
    mine = {p.va: p.pa for p in child_pages}
    theirs = {p.va: p.pa for p in parent_pages if any(s <= p.va < e for s, e in covered)}
    if not theirs or set(mine.values()) & set(theirs.values()):
        return None
    missing = sorted(va for va in theirs if va not in mine)
    if not missing:
        return None
    return ("proc %d (%s), forked by proc %d (%s), shares no frame with its parent and lacks %d of the "
            "%d pages the parent maps in the regions their records share (%#x first): fork copied "
            "nothing of the parent's user half into the child's root (copied by a list that was still "
            "empty, or skipped the pages), so the child holds only what it faulted in since, "
            "zero-filled: its stack and data are gone"
            % (child.pid, child.name, parent.pid, parent.name, len(missing), len(theirs),
               missing[0]))


def foreign_root(current: str, owner: str, root: int) -> str:
    """The verdict for a fault from user mode taken while the live root (CR3; TTBR0 on AArch64)
    is @p root, published as process @p owner's, though the current process is @p current
    (both "proc 2 (forktree)"): the program ran in another process's address space, so
    whatever it faulted on, the root switch is the bug."""
    return ("%s ran in user mode on %s's root %#x, not its own: a root other than the current "
            "process's was made live (fork made another root live while the parent still runs, or a "
            "switch loaded the wrong root); every access the program made went to the other "
            "process's memory" % (current, owner, root))


# ---- a frame two roots share while one of them may write it (lab 6) ------------------------------

def user_write_protect_faults(events: list, model) -> list:
    """[(page, root or None)] of every write that a user program made to a page mapped read-only,
    in QEMU's exception log (@p events: faultlog.Event objects; @p model: the ISA's
    pagoda_pt.isa.Isa, which decodes the error code or syndrome): the faults a copy-on-write
    fault answers. root: the root register's table address when the log names it (x86_64's
    CR3), else None."""
    found = []
    for e in events:
        if e.kind != "exception" or e.address is None or e.error is None or e.privilege != model.user_privilege:
            continue
        if not model.is_page_fault(e):
            continue
        present, write, fetch = model.access(e.error)
        if present and write and not fetch:
            found.append((e.address & ~0xFFF, None if e.root is None else model.root_of({model.lower_root: e.root})))
    return found


def shared_writable(processes: list, parent_of: dict, write_faults: Optional[list] = None,
                    page: int = PAGE_SIZE_4K, vmas_of: Optional[dict] = None) -> Optional[str]:
    """The cause of a death where two processes' roots map one frame as a user page and one of
    them may write it (a write through it reaches the other process's memory), or None.

    @p processes: objects with pid, name, root and pages (pagoda_pt.frames.ProcessMemory:
    UserPage va, pa, writable, held); @p parent_of: {pid: parent pid}; @p write_faults: the
    user writes to read-only pages QEMU's log shows (user_write_protect_faults), None when there
    is no log.

    Copy-on-write fork makes every frame it shares read-only in both roots; only a write fault
    may make a page writable again, and only by copying it, or by taking the frame back when no
    other mapping is left (count 1). So a shared frame writable in a process that forked none of
    the others that map it (a fork leaves only the forking process's own entries writable when it
    forgets them; two writers are never both forkers of each other), or writable in a root whose own write fault on that page the log shows, was made
    writable by the copy-on-write fault while still shared. So was one writable in the parent
    alone when the two roots also share, read-only in both, a page of a region the parent may
    write (@p vmas_of: {pid: [Vma]}): fork did write-protect the parent's entries. Writable in
    the parent alone otherwise, with no such fault, fork's share left the parent's entry writable;
    with write faults on that page in a log that names no roots (AArch64) while others hold copies
    there, the two cannot be told apart on that frame: another shared writable frame that no
    write fault touched is then fork's, and without one the sentence says both are possible."""
    maps: dict = {}
    for memory in processes:
        for p in memory.pages:
            if not p.held:
                maps.setdefault(p.pa // page, []).append((memory, p))
    label = lambda m: "proc %d (%s)" % (m.pid, m.name)  # noqa: E731

    def faulted(m, p) -> bool:
        if not write_faults:
            return False
        for va, root in write_faults:
            if va != p.va & ~(page - 1):
                continue
            if root is not None:
                if root == m.root:
                    return True
                continue
            # The log does not name roots (AArch64): the write is this root's only when no process
            # holds a copy at that address (a process that faulted there and got one).
            if all(q.pa == p.pa for o in processes for q in o.pages if q.va == p.va):
                return True
        return False

    def descends(pid, ancestor) -> bool:
        seen = set()
        while pid in parent_of and pid not in seen:
            seen.add(pid)
            pid = parent_of[pid]
            if pid == ancestor:
                return True
        return False

    def protected_by_fork(m, o) -> Optional[int]:
        """A page @p m and @p o map to one frame, read-only in both, in a region @p m may write."""
        vmas = (vmas_of or {}).get(m.pid) or []
        theirs = {q.va: q for q in o.pages}
        for p in m.pages:
            q = theirs.get(p.va)
            if q is not None and q.pa == p.pa and not p.writable and not q.writable and not p.held and \
                    any(v.start <= p.va < v.end and v.write for v in vmas):
                return p.va
        return None

    undecided = None
    for index in sorted(maps):
        here = maps[index]
        if len({m.root for m, _ in here}) < 2:
            continue
        writers = [(m, p) for m, p in here if p.writable]
        if not writers:
            continue
        others = lambda m: [(o, q) for o, q in here if o.root != m.root]  # noqa: E731
        frame = index * page
        by_fault = [(m, p) for m, p in writers if faulted(m, p)]
        children = [(m, p) for m, p in writers if not any(descends(o.pid, m.pid) for o, _ in others(m))]
        protected = [(m, p, va) for m, p in writers for o, _ in others(m)
                     for va in [protected_by_fork(m, o)] if va is not None]
        taken = by_fault or children or [(m, p) for m, p, _ in protected]
        if taken:
            m, p = taken[0]
            o, q = others(m)[0]
            how = ("QEMU's log shows its write fault on that page" if (m, p) in by_fault else
                   "%s forked none of the processes it shares the frame with, so no fork of its own left the "
                   "entry writable, and fork makes a child's shared entries read-only" % label(m)
                   if (m, p) in children else
                   "fork did make the parent's shared entries read-only (both map %#x, in a region the parent "
                   "may write, read-only)" % protected[0][2])
            return ("frame %#x is mapped by %s at %#x WRITABLE and by %s at %#x (%s) at the same time, and "
                    "%s: %s" % (frame, label(m), p.va, label(o), q.va, "writable" if q.writable else "read-only",
                                how, COW_GAVE_WRITE_BACK))
        m, p = writers[0]
        o, q = next(((o, q) for o, q in others(m) if descends(o.pid, m.pid)), others(m)[0])
        if descends(o.pid, m.pid) and any(root is None and va == p.va & ~(page - 1) for va, root in write_faults or []):
            # The log shows user write faults on that page but not whose (it names no roots), and
            # others hold copies there: the parent's own fault cannot be told from its children's.
            # Another frame may say more (one no write fault touched): kept as the last resort.
            undecided = undecided or (
                "frame %#x is mapped by %s at %#x WRITABLE and by its descendant %s at %#x (read-only): a "
                "shared frame one process may write. Either fork's share did not write-protect the parent's "
                "entry, or a copy-on-write fault of the parent at this page took the frame back instead of "
                "copying it: QEMU's log shows write faults at %#x but not in which root (break on "
                "copy_on_write to see which)" % (frame, label(m), p.va, label(o), q.va, p.va))
            continue
        if descends(o.pid, m.pid):
            return ("frame %#x is mapped by %s at %#x WRITABLE and by its descendant %s at %#x (read-only), and no "
                    "write fault made the parent's page writable: fork shared the frame but the parent was left "
                    "writable (a copy-on-write share makes the entry read-only in both roots), so the parent's "
                    "writes reach the child's memory" % (frame, label(m), p.va, label(o), q.va))
        return ("frame %#x is mapped by %s at %#x WRITABLE and by %s at %#x at the same time: a write through "
                "the first reaches the other process (a shared frame must be read-only in every root that maps "
                "it)" % (frame, label(m), p.va, label(o), q.va))
    return undecided



# ---- a process's record against the pages its root maps (lab 5) ----------------------------------

def _same_region(a, b) -> bool:
    """Two VMAs that may once have been one region: the same kind, flags and permissions, and for a
    file-backed one the second's offset where the first's would run to."""
    if any(getattr(a, k) != getattr(b, k) for k in ("kind", "flags", "read", "write", "execute")):
        return False
    if a.file_size or b.file_size:
        return b.offset == a.offset + (b.start - a.start)
    return True


def record_against_pages(vmas: list, pages: list, who: str = "the process",
                         page: int = PAGE_SIZE_4K, heap: Optional[tuple] = None,
                         limits: Optional[tuple] = None) -> Optional[str]:
    """What a process's record (@p vmas: pagoda_pt.procs.Vma) says
    against the user pages its root maps (@p pages: pagoda_pt.trees.UserPage va, writable,
    executable, held), as one sentence, or None when they agree as far as this can tell.

    Two rule breaks of the VMA set, each seen in the pages:
      * one VMA whose mapped pages carry different permissions, some wider than the VMA grants
        (writable or executable where it is not): two regions with different permissions were
        merged into one (mprotect made a page read-only, then the record merged it back into its
        writable neighbour). Pages narrower than their VMA are normal (copy-on-write, not yet
        widened); a page wider than its VMA is never.
      * a hole between two VMAs that were one region (same kind, flags, permissions) whose edge is
        off by a page or more: the pages on one side of the hole are mapped up to it, and the first
        pages of the other region are unmapped while the next one is mapped (munmap unmapped
        them, but the record still holds them): the record's cut at the hole's edge is off.
    And one break of the pages against the record: user pages mapped where no VMA covers them,
    which the range's removal from the record left mapped (their frames never freed): from the
    heap's break up (@p heap: (heap_start, brk)), brk's shrink; elsewhere, munmap's.
    And a record that holds no VMA of the loader's (an image or a stack VMA; the program's own
    mmaps may be there) while the root maps user pages no VMA covers, although the record is in
    use (@p limits: (heap_start, stack_limit), set by lab 5's loader; both 0 before lab 5, when
    the loader maps everything eagerly and records nothing by design): the loader mapped the
    program eagerly, as in lab 4, and recorded no VMA."""
    broken = record_rules_broken(vmas, f"{who}'s record", page, _vma_text)
    if broken is not None:
        return broken
    mapped = {p.va: p for p in pages if not p.held}
    ordered = sorted(vmas, key=lambda v: v.start)
    # The loader's own VMAs: the image's and the stack's (the program's mmaps are its own calls').
    loaders = [v for v in ordered if v.kind_name in ("image", "stack") or v.flags & 1]
    outside = sorted(va for va in mapped if not any(v.start <= va < v.end for v in ordered))
    # Its code among them: the loader mapped the segments (a loader that maps nothing but the
    # argument page is named at the first fetch instead).
    if not loaders and any(mapped[va].executable for va in outside) and limits is not None and any(limits):
        shown = outside
        return ("%s's root maps %d user page%s (%s) that no VMA covers and its record holds no VMA of the loader's (the "
                "program's segments, the stack), though the record is in use "
                "(heap from %#x, stack limit %#x): the loader mapped the program eagerly and recorded no VMA (lab 5: "
                "record each load segment and the stack as VMAs and map nothing; the pages come in at their first "
                "faults), so every fault past these pages is refused and fork copies nothing"
                % (who, len(shown), "" if len(shown) == 1 else "s",
                   ", ".join("%#x" % va for va in shown[:3]) + (" ..." if len(shown) > 3 else ""),
                   limits[0], limits[1]))
    # Without a grows-down VMA the loader did not record the stack: its pages lie in no VMA from the
    # start (the loader's record is the cause, user_fault_decision names it), not left by a removal.
    if ordered and any(v.flags & 1 for v in ordered):
        stray = sorted(va for va in mapped if not any(v.start <= va < v.end for v in ordered))
        if stray:
            shown = ", ".join("%#x" % va for va in stray[:4]) + (" and %d more" % (len(stray) - 4) if len(stray) > 4 else "")
            # A shrink leaves the pages from the new break up: the first one left is the break's page.
            if heap is not None and stray[0] == (heap[1] + page - 1) & ~(page - 1):
                return ("brk shrank the heap but left %d heap page%s mapped from the break %#x up (%s): no VMA covers "
                        "them, yet %s's root still maps them and their frames were never freed (a shrink must unmap "
                        "the pages it takes out of the record)" % (len(stray), "" if len(stray) == 1 else "s",
                                                                   heap[1], shown, who))
            return ("munmap left %d page%s mapped that the record no longer holds (%s): no VMA of %s covers them, "
                    "yet its root still maps them and their frames were never freed (removing a range from the record "
                    "must unmap its pages)" % (len(stray), "" if len(stray) == 1 else "s", shown, who))
    for v in ordered:
        inside = [mapped[va] for va in range(v.start, v.end, page) if va in mapped]
        wider = [p for p in inside if (p.writable and not v.write) or (p.executable and not v.execute)]
        within = [p for p in inside if p not in wider]
        if wider and not within:
            w = wider[0]
            return ("mprotect changed the VMA but not the pages already brought in: the VMA %s of %s grants %s, yet "
                    "%d of its pages %s mapped wider (%#x is %s): the entries of the pages already mapped must get "
                    "the region's new permissions (and the TLB be told)"
                    % (_vma_text(v), who, v.rwx(), len(wider), "is" if len(wider) == 1 else "are", w.va,
                       _page_perms(w)))
        if wider and within:
            w, n = wider[0], within[0]
            return ("the VMA %s of %s holds pages of different permissions: %#x is mapped %s, which the VMA "
                    "grants, and %#x is mapped %s, which it does not: two regions whose permissions differ were "
                    "merged into one (the merge must compare permissions, VmaSet::mergeable), so the record "
                    "gives the merged pages the wrong permissions"
                    % (_vma_text(v), who, n.va, _page_perms(n), w.va, _page_perms(w)))
    for a, b in zip(ordered, ordered[1:]):
        if a.end >= b.start or not _same_region(a, b):
            continue
        hole = "[%#x, %#x)" % (a.end, b.start)
        short = _unmapped_run(mapped, b.start, b.end, page)
        if a.end - page in mapped and 0 < short < (b.end - b.start) // page:
            return ("the record's hole %s in %s's region ends %d page%s short: the pages [%#x, %#x) just past it "
                    "are unmapped (munmap took them) while the VMA %s still holds them, and the page after them "
                    "is mapped: the cut at the hole's end is %s off (the end taken as inclusive?), so the record "
                    "keeps pages the program gave back"
                    % (hole, who, short, "" if short == 1 else "s", b.start, b.start + short * page,
                       _vma_text(b), "one page" if short == 1 else "%d pages" % short))
        before = _unmapped_run(mapped, a.end - page, a.start - page, -page)
        if b.start in mapped and 0 < before < (a.end - a.start) // page:
            return ("the record's hole %s in %s's region starts %d page%s late: the pages [%#x, %#x) just before it "
                    "are unmapped (munmap took them) while the VMA %s still holds them, and the page before them "
                    "is mapped: the cut at the hole's start is %s off, so the record keeps pages the program gave back"
                    % (hole, who, before, "" if before == 1 else "s", a.end - before * page, a.end,
                       _vma_text(a), "one page" if before == 1 else "%d pages" % before))
    return None


def _page_perms(p) -> str:
    return "r" + ("w" if p.writable else "-") + ("x" if p.executable else "-")


def _unmapped_run(mapped: dict, start: int, stop: int, step: int) -> int:
    """How many pages from @p start (by @p step, up to @p stop) are unmapped before the first mapped
    one; 0 when @p start is mapped, and 0 when none is mapped at all (a region never touched)."""
    count = 0
    for va in range(start, stop, step):
        if va in mapped:
            return count
        count += 1
    return 0


# ---- a record that is another program's (lab 6: exec) ---------------------------------------------

def record_of_another_program(who: str, name: str, sources: list) -> Optional[str]:
    """A process whose record's image VMAs come from another program's ELF file than its own, as one
    sentence, or None. @p name: the program the process runs (its name); @p sources: (VMA text, the
    program whose embedded ELF file the VMA's source points into, or None) of each image VMA. After
    exec the process has the new program's name and root; its record must be the new program's
    too: image VMAs of the old one mean exec kept the old record (faults are then decided by the old
    program's regions)."""
    other = [(text, program) for text, program in sources if program is not None and program != name]
    if not other:
        return None
    text, program = other[0]
    return ("the record of %s (its VMAs, read from the process table) is still %s's, the program before exec: its "
            "image VMA %s%s comes from %s's ELF file, not %s's, though the process now runs %s: exec must give the "
            "process the new program's record (and free the old one), or every fault is decided by the regions of a "
            "program that is gone" % (who, program, text,
                                      " (and %d more)" % (len(other) - 1) if len(other) > 1 else "",
                                      program, name, name))


# ---- a fault decision that grows what is not a stack (lab 5) -------------------------------------

MAX_GROW_ASKS = 8      # decide_fault calls one look may make (each is a call into the stopped guest)


def grows_what_is_not_a_stack(who: str, vmas: list, decide, page: int = PAGE_SIZE_4K,
                              asks: int = MAX_GROW_ASKS) -> Optional[str]:
    """A region that is not a grows-down stack which the kernel's fault decision grows, as one
    sentence, or None. @p decide(va) is the kernel's own answer (pagoda::decide_fault on the
    process's record, a read from user mode: "Populate", "Grow", "Deny") or None when it cannot be
    asked. Asked, for each VMA without the grows-down flag, about the free page just below it (at
    most @p asks VMAs): a decision that answers Grow there grows a region the program never asked
    to grow (a heap, a mapping, the text) over an address that lies in no VMA, which must be
    refused."""
    ordered = sorted(vmas, key=lambda v: v.start)
    for v in ordered:
        if asks <= 0:
            break
        below = v.start - page
        if v.flags & 1 or below < page or any(u.start <= below < u.end for u in ordered):
            continue
        asks -= 1
        if decide(below) == "Grow":
            return ("the VMA %s of %s is not a grows-down stack: the fault decision grew it all the same "
                    "(%s, called through GDB on the process's record, answers Grow for a read of "
                    "%#x, the free page just below it): only a grows-down region (the stack) may grow to a fault "
                    "below it; a fault in no VMA anywhere else is refused (no VMA)" % (_vma_text(v), who, C.DECIDE_FAULT,
                                                                                      below))
    return None


# ---- an image page filled past the segment's file bytes (lab 5) ----------------------------------

TAIL_COMPARED = 1024    # bytes past a segment's file end compared with the file's next bytes
TAIL_MIN_ALIKE = 16     # nonzero bytes of the file that must be found there, at least ...
TAIL_SHARE = 0.75       # ... and this share of them (the program writes its bss too)


def bytes_past_file_size(who: str, vma_text: str, va: int, file_end: int, got: bytes,
                         following: bytes) -> Optional[str]:
    """An image page whose bytes past the segment's file end are the ELF file's next bytes, as one
    sentence, or None. @p va: the page (the one the segment's file bytes end in); @p file_end: the
    address where they end; @p got: the page's bytes from there (guest RAM, through the process's
    root); @p following: the file's bytes after the segment's (the program's embedded ELF file).
    They must be zeros (the bss, or the rest of the page) until the program writes them: when most
    of the file's nonzero bytes are found there, at their places, the page was filled with a whole
    page of the file."""
    n = min(len(got), len(following))
    nonzero = [i for i in range(n) if following[i]]
    alike = sum(1 for i in nonzero if got[i] == following[i])
    if len(nonzero) < TAIL_MIN_ALIKE or alike < TAIL_MIN_ALIKE or alike < TAIL_SHARE * len(nonzero):
        return None
    return ("the image page %#x of %s holds, past the segment's file size (its file bytes end at %#x), the bytes "
            "that follow the segment in the ELF file (%d of the file's %d nonzero bytes there, at their places, read "
            "from guest RAM and from the program's embedded file; they must be zeros: the bss): the VMA %s was "
            "populated with a whole page of the file where only its file bytes may be copied, the rest of the page "
            "zeroed" % (va, who, file_end, alike, len(nonzero), vma_text))


# ---- a user copy whose fix-up path reports success (lab 4) ---------------------------------------

def fixup_reports_success(routine: str, asked: int, address: int, left: Optional[int]) -> Optional[str]:
    """The copy routine @p routine's answer (@p left: the bytes it says it did not copy) for @p asked
    bytes from @p address, a user address no root maps, as one sentence when it says all were copied
    (0), else None. Its load faults there; the fault is resumed at the routine's fix-up, whose
    return must be the bytes left (the caller turns them into EFAULT)."""
    if left != 0 or asked == 0:
        return None
    return ("the user copy %s returned 0 (all copied) for %d bytes from %#x, which no root maps (called through GDB: "
            "its load faulted and went on at its fix-up, as a copy given a bad pointer does): the fix-up path must make "
            "the copy return the bytes left, or a system call given a bad pointer reports success on bytes it never "
            "copied" % (routine, asked, address))


# ---- frames a run leaves allocated (labs 3, 6) ---------------------------------------------------

def frames_left_after_run(leaked: list, user_frames: dict, table_frames: dict) -> Optional[str]:
    """Frames in use once every process of a run was reaped that were free when it began (@p
    leaked, physical addresses: the allocator's bitmap at both checkpoints), as one sentence, or
    None. @p user_frames / @p table_frames: physical address -> (who, what) of the frames that an
    earlier look saw as a process's user page or page table. The kernel's own rule: a run gives
    back every frame it took (its teardown frees each process's user half, tables and kernel
    stack)."""
    if not leaked:
        return None
    users = [pa for pa in leaked if pa in user_frames]
    tables = [pa for pa in leaked if pa in table_frames and pa not in user_frames]
    counted = ("%d frame%s the run allocated %s still in use now that every process was reaped (the frame "
               "allocator's bitmap at the run's start and at its end, read from guest RAM)"
               % (len(leaked), "" if len(leaked) == 1 else "s", "is" if len(leaked) == 1 else "are"))
    if users:
        shown = ", ".join("%#x (%s at %#x)" % ((pa,) + user_frames[pa]) for pa in users[:3])
        return ("exit's teardown does not free the user pages: %s, %d of them user pages a process mapped when it was "
                "last seen (%s%s): release() must free the user half (every page's frame) before the space goes"
                % (counted, len(users), shown, ", ..." if len(users) > 3 else ""))
    if tables:
        shown = ", ".join("%#x (%s)" % (pa, table_frames[pa][0]) for pa in tables[:3])
        return ("exit's teardown does not free the page tables: %s, %d of them page tables of a process's root (%s): "
                "destroying a space must free every table below its root" % (counted, len(tables), shown))
    return ("a run leaks frames: %s (%#x%s), none of them a page a process was last seen mapping"
            % (counted, leaked[0], ", ..." if len(leaked) > 1 else ""))


# ---- a process being made, written through the live root (lab 4) ---------------------------------

def arguments_through_live_root(events: list, fixups: dict, model, stack_top: int,
                                page: int = PAGE_SIZE_4K) -> Optional[str]:
    """A kernel-mode write fault in QEMU's log (@p events, of ISA @p model: pagoda_pt.isa) of a
    user copy (its PC in the fix-up table @p fixups) on the argument page at the top of the user
    stack (@p stack_top) before any event from user mode, as one sentence, or None. Before any
    process has run, the kernel copies into user memory only to load a program, and the argument
    page is mapped in the new program's root before its arguments are written: a copy that faults
    there wrote through the root that was live (the kernel's), not through the new one. (Once
    processes run, a copy that faults on a stack page is a program's own system call, or a
    copy-on-write fault the kernel resolves. A read is never the loader's: on x86_64 a program's
    first system call leaves nothing in QEMU's log, so its copy from the stack can come "before any
    event from user mode".)"""
    for e in events:
        if e.privilege == model.user_privilege:
            return None
        if e.kind != "exception" or e.address is None or e.pc not in fixups:
            continue
        if not stack_top - page <= e.address < stack_top or not model.access(e.error or 0)[1]:   # (a write)
            continue
        live = "root %#x" % e.root if e.root is not None else "the kernel's root"
        return verdicts.arguments_through_live_root("PC %#x" % e.pc, e.address, live,
                                                    "QEMU's log: before any process had run")
    return None


# ---- a merge that ignores permissions (lab 5) ------------------------------------------------------

def merge_ignores_permissions(who: str, vma_text: str, alike: Optional[bool], differ: Optional[bool]) -> Optional[str]:
    """The kernel's own merge rule (VmaSet::mergeable, called through GDB) asked about two
    neighbours made from the VMA @p vma_text of @p who: @p alike, the same region's next page with
    the same permissions (must be True: a working merge), @p differ, the same with the write
    permission flipped (must be False). One sentence when it merges both, else None (None for an
    answer it could not give)."""
    if alike is not True or differ is not True:
        return None
    return ("the record's merge ignores permissions: VmaSet::mergeable (called through GDB) says %s's VMA %s and a "
            "neighbour just after it that differs only in its write permission are one region, so two regions whose "
            "permissions differ are merged, and the merged one gives every page the permissions of one side (an "
            "mprotect of part of a region is undone by the next merge)" % (who, vma_text))


# ---- the kernel's own words (kernel/core/last_failure.hpp, kernel/proc/run.cpp) ---------------------

REFUSAL_VERDICTS = ("the kernel could not start a process, in its own words: ",
                    "a system call that makes a process failed in the kernel, in its own words: ",
                    "a teardown left a kernel stack mapped, in the kernel's own words: ")


def kernel_failure_verdict(last_failure: Optional[str], count: int) -> Optional[str]:
    """At a stop with nothing wrong in the CPU's state: the kernel's last failure line
    (pagoda_last_failure, @p count of them since boot) when it is a refusal to start a process, a
    fork, spawn or exec that failed, or a kernel stack slot given back while still mapped, as the
    verdict: the kernel's own words name the step, the address and who was there first,
    and no later state can (the process was never made). None for no line, or a kill line (a
    kill is judged where it happens: the kernel kills programs for their own faults on purpose)."""
    found = KERNEL_REFUSAL.match(last_failure or "") if count else None
    return REFUSAL_VERDICTS[found.lastindex - 1] + last_failure.strip() if found else None


def what_was_checked(processes: list, last_failure: Optional[str], count: int, refused: Optional[str] = None) -> str:
    """One line for a stop where nothing is wrong: what fault-why could check there, so that
    "nothing is wrong" says how far it looked: the process table (@p processes: pagoda_pt.procs.Proc
    records), the kernel's failure lines (@p count since boot, the last @p last_failure) and the last
    memory call it refused (@p refused: pagoda_last_refused_call, kernel/proc/syscalls.cpp)."""
    if processes:
        shown = ", ".join("%d %s %s" % (p.pid, p.name, p.state_word) for p in processes[:6])
        table = "%d process%s (%s%s)" % (len(processes), "" if len(processes) == 1 else "es", shown,
                                         ", ..." if len(processes) > 6 else "")
    else:
        table = "no process"
    if count:
        words = "%d failure line%s since boot, the last: %s" % (count, "" if count == 1 else "s", (last_failure or "").strip())
    else:
        words = "no failure line since boot (no process refused at start, none killed)"
    line = "checked: the process table holds %s; the kernel wrote %s" % (table, words)
    if refused:
        line += "; the last memory call it refused: %s" % refused.strip()
    return line


def with_kernel_words(sentence: str, words: Optional[str]) -> str:
    """A kill verdict @p sentence followed by what the kernel's kill line says of the same fault from
    the same record (pagoda_record_words(), called through GDB: the function the kill line uses),
    when it says anything."""
    words = (words or "").strip()
    if not words:
        return sentence
    return "%s; the kernel's kill line says: %s" % (sentence, words)


# ---- the kernel's own map: its image segments and its devices (labs 1-2) -----------------------

# What each permission of a kernel image segment (its ELF flags) holds, as a sentence names it.
KERNEL_SEGMENT_NAMES = {"r-x": "text", "r--": "read-only data", "rw-": "data and bss (its globals and the boot stack)"}


def _sampled_pages(start: int, end: int, page: int) -> list:
    """The first, middle and last page of [start, end): a segment mapped with one wrong permission
    is wrong on all of them."""
    last = (end - 1) & ~(page - 1)
    return sorted({start & ~(page - 1), (start + (end - start) // 2) & ~(page - 1), last})


def image_permission_problem(segments: list, walk: Callable[[int], Walk], root: str,
                             skip: tuple = (), page: int = PAGE_SIZE_4K) -> Optional[str]:
    """The first kernel image segment of @p segments [(start, end, 'r-x')] (its link addresses and
    ELF permissions) that the root @p walk walks in (@p root names it) maps with other permissions,
    or user-accessible, on a sampled page, as a sentence; None when every mapped sampled page has
    the segment's own. Pages not mapped are not judged here (a section's end rounded down, a guard
    page: other rules); @p skip: pages left out on purpose (the boot stack's guard)."""
    for start, end, want in segments:
        for va in _sampled_pages(start, end, page):
            if va in skip:
                continue
            w = walk(va)
            if not w.mapped:
                continue
            got = w.perms.rwx()
            if got == want and not w.perms.user:
                continue
            wrong = []
            if "w" in want and "w" not in got:
                wrong.append("not writable, so every write to it faults")
            if "w" not in want and "w" in got:
                wrong.append("writable (code or constants anything may overwrite; a CPU with AArch64's "
                             "SCTLR_EL1.WXN on never fetches from a writable page)" if "x" in want
                             else "writable (constants anything may overwrite)")
            if "x" in want and "x" not in got:
                wrong.append("not executable, so the CPU cannot fetch the kernel's code")
            if "x" not in want and "x" in got:
                wrong.append("executable (data the CPU may run as code)")
            if w.perms.user:
                wrong.append("reachable from user mode")
            return ("the kernel's %s is mapped %s%s in the active root %s (page %#x), but its ELF segment "
                    "[%#x, %#x) is %s: it is %s; each segment of the image must be mapped with its own "
                    "permissions, kernel only (the kernel map, build_kernel_map)"
                    % (KERNEL_SEGMENT_NAMES.get(want, "image segment"), got, " user" if w.perms.user else "",
                       root, va, start, end, want, "; ".join(wrong)))
    return None


def device_at(address: int, devices: tuple, bases: dict, kernel_low: bool, root: str) -> Optional[str]:
    """A sentence when @p address (a kernel access the active root @p root does not map) is one of
    the machine's @p devices [(physical base, size, what)] seen through one of @p bases {name:
    virtual base}: 'identity' (0: the physical address used as the virtual one), 'device area'
    (the kernel's mmio_base fact), 'window' (the physical window's base, where RAM is). Which base
    tells the slip: the device area's address, or lab 1's identity while the kernel itself runs
    from the lower half, means the device ranges were not mapped; the identity once the kernel
    runs in the kernel half, or the window, means device_virt() computes the wrong address."""
    for name, base in bases.items():
        if base is None or address < base:
            continue
        pa = address - base
        device = next((d for d in devices if d[0] <= pa < d[0] + d[1]), None)
        if device is None:
            continue
        head = ("the kernel touched %s (physical %#x) at %#x, which the active root %s does not map"
                % (device[2], pa, address, root))
        if name == "device area" or (name == "identity" and kernel_low):
            return (head + ": the device ranges were never mapped in the kernel's root (each of "
                    "arch::device_ranges() must be mapped, uncached, kernel only)")
        if name == "identity":
            return (head + ": it is the device's physical address used as a virtual one (lab 1's identity), "
                    "which the kernel half no longer has; device_virt() must give the device area's address "
                    "(mmio_base + the physical address)")
        return (head + ": it is the window's address for that physical address (where RAM is mapped), not the "
                "device area's; device_virt() must add mmio_base, not the window's base")
    return None
