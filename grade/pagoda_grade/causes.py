"""The headline of a failure: the cause first, the symptom after.

A test fails on what it checks (a line missing, a value wrong, a stop never reached): that is
the symptom. When the machine died on the way, the reason it died is nearly always the more
useful first line, and the grader can often say it from what it sees itself:

    the first kernel fault     QEMU's exception log, read against the kernel ELF and its layout
                               facts: where the address lies (a kernel stack or its guard, the
                               window, the device area, the temp-map area, the lower half), what
                               the access was, which root the CPU used
    the kernel's last words    its PANIC line and the processes it killed (believed only as
                               words: they score nothing, they name)
    the machine's end          a triple fault, an exception storm, a timeout

Run.fail() puts headline(run, reason) before the test's reason. Lab tests that know more (a
root they walked, explain_death() below) pass their own cause to fail(), which wins.

Nothing here walks page tables (it runs for every failure, witnessed or not) but empty_root(),
which walks one root the CPU died on, in a witnessed boot's kept RAM.
"""
import re
import struct

from pagoda_pt import contract, verdicts
from pagoda_pt.isa import isa
from pagoda_pt.image import CensusError
from pagoda_pt.verdicts import KERNEL_REFUSAL, Evidence, StackSlots, copy_with_guard_up

from pagoda_core import faultlog

from . import symbols
from .idle import IDLE_STOP
from .outcomes import (CHECKED, ENDED, STORM, TAIL_LINES, TIMEOUT, is_never_reached, kill_lines, panic_line, quoted_lines,
                       shown, token_line, watch_note)
from .processes import kernel_faults, parse_kills
from .witness import ARCHES, PAGE, WalkError


# ---- The fault ---------------------------------------------------------------------------------

class Access:
    """What one logged fault tried, from its error code (x86_64) or syndrome (AArch64)."""

    def __init__(self, event):
        self.present, self.write, self.fetch = ARCHES[event.arch].access(event.error or 0)

    def verb(self):
        return "fetched code at" if self.fetch else "wrote to" if self.write else "read"


def first_kernel_fault(run):
    """The first exception the kernel itself took (not a user copy that its fix-up recovered), or
    None."""
    privilege = ARCHES[run.arch].kernel_privilege
    try:
        return next(iter(kernel_faults(run.symbolizer.elf, run)), None)
    except (AssertionError, OSError):   # (no fix-up table or user_end to tell a copy's fault by)
        return next((f for f in run.log.faults if f.privilege == privilege), None)


# ---- A user copy that ran with the guard up ------------------------------------------------------

def copy_guard_cause(run):
    """The sentence for the first user copy that QEMU's log shows faulting with the CPU's guard
    against kernel accesses to user pages still up (pagoda_pt.verdicts.copy_with_guard_up, which
    fault-why says too), or None."""
    symbolizer = getattr(run, "symbolizer", None)
    if symbolizer is None:   # a run with no kernel to read the fix-up table from
        return None
    try:
        fixups = symbols.user_fixups(symbolizer.elf)
        user_end = symbols.fact(symbolizer.elf, "user_end")
    except (AssertionError, OSError):
        return None
    return copy_with_guard_up(run.log.faults, fixups, user_end, ARCHES[run.arch].isa, where=run.symbol_of)


# ---- Audit findings: ranked before symptoms --------------------------------------------------------

def audit_first(run, said=""):
    """The first invariant of the kernel's records an audit found broken at the grader's stops
    (Run.audit_findings: the process audit, procaudit.py), when @p said (the failure's lines so
    far) does not already say it; None otherwise. A broken record is the cause of whatever the
    test saw after it, so Run.fail() puts it before the test's own cause and reason."""
    for finding in getattr(run, "audit_findings", None) or []:
        first = finding.splitlines()[0]
        return None if first in said else first
    return None


# ---- Where an address lies ---------------------------------------------------------------------

def _fact(kernel, name):
    try:
        return symbols.fact(kernel, name)
    except (AssertionError, OSError):
        return None


def stack_slots(kernel):
    """The kernel stacks' layout (pagoda_pt.verdicts.StackSlots, the boot stack's guard with
    them) from the kernel's facts, or None."""
    f = [_fact(kernel, k) for k in ("stack_base", "kernel_stack_stride", "kernel_stack_guard", "kernel_stack_size",
                                    "kernel_stack_slots")]
    return None if None in f else StackSlots(*f, boot_guard=boot_stack_guard(kernel))


def place(kernel, va):
    """A phrase naming the part of the kernel's address space @p va lies in, or None:
    'the guard page below the kernel stack of slot 2', 'the physical window (physical 0x1000)',
    'the lower half'..."""
    f = {k: _fact(kernel, k) for k in ("kernel_half_base", "window_base", "window_size", "window_phys_base",
                                        "mmio_base", "temp_map_base", "stack_base", "kernel_image_base", "page_size")}
    stacks = stack_slots(kernel)
    if None in f.values() or stacks is None:
        return None
    guard, slot = stacks.guard_hit(va), stacks.slot_of(va)
    if guard:
        return guard
    if slot:
        page, pages = (va - slot[1]) // f["page_size"], (slot[2] - slot[1]) // f["page_size"]
        which = "its top page" if page == pages - 1 else f"page {page} of its {pages}"
        return "the kernel stack of slot %d [%#x, %#x), " % slot + which
    if va < f["kernel_half_base"]:
        section = image_section(kernel, va)   # (a kernel linked low, lab 1, has its image there)
        return f"the kernel image's {section}" if section else "the lower half"
    if f["stack_base"] <= va < f["kernel_image_base"]:
        return "the kernel-stack area, past its last slot"
    if f["temp_map_base"] <= va < f["stack_base"]:
        return "the temp-map area"
    if f["mmio_base"] <= va < f["temp_map_base"]:
        return f"the device area (device register at physical {va - f['mmio_base']:#x})"
    if f["window_base"] <= va < f["window_base"] + f["window_size"]:
        return f"the physical window (physical {va - f['window_base'] + f['window_phys_base']:#x})"
    if f["window_base"] + f["window_size"] <= va < f["mmio_base"]:
        return "the hole above the physical window (RAM there is reached only through temporary mappings)"
    if va >= f["kernel_image_base"]:
        section = image_section(kernel, va)
        return f"the kernel image's {section}" if section else "the kernel image"
    return None


def boot_stack_guard(kernel):
    """(guard, bottom, top) of the kernel's own stack boot_stack (in the image's .bss, boot.S)
    and the unmapped page below it; None when the kernel has no such symbols."""
    try:
        return tuple(symbols.address_of(kernel, n) for n in (contract.BOOT_STACK_GUARD, *contract.BOOT_STACK))
    except (AssertionError, OSError):
        return None


def image_section(kernel, va):
    """The name of the kernel image's section (pagoda_pt.image's reader) @p va lies in, or None."""
    try:
        section = symbols.image(kernel).section_of(va)
    except (AssertionError, OSError):
        return None
    return section and section.name


def window_arithmetic(kernel, va):
    """A phrase, or None: @p va is the window's base plus a physical address the window shows
    (va - window_base in [window_phys_base, window_phys_base + window_size)) on an ISA whose RAM,
    and so the window, does not start at physical 0: a pointer into the window computed without
    taking away the physical address the window starts at."""
    f = {k: _fact(kernel, k) for k in ("window_base", "window_size", "window_phys_base")}
    if None in f.values() or not f["window_phys_base"]:
        return None
    pa = va - f["window_base"]
    if not f["window_phys_base"] <= pa < f["window_phys_base"] + f["window_size"]:
        return None
    right = f["window_base"] + pa - f["window_phys_base"]
    return (f"{va:#x} is the window's base plus physical {pa:#x}, but the window starts at physical "
            f"{f['window_phys_base']:#x}: physical {pa:#x} is at {right:#x}. A window pointer computed without taking "
            "away the window's physical base (phys_to_ptr(), or an address made by hand)")


# ---- The cause of a kernel fault -------------------------------------------------------------

# Past the RAM's base by this much, a lower-half address is no physical address of the machines the
# grader boots (QEMU's -m: at most a few GiB), so a guess that it is one would mislead.
RAM_SPAN = 1 << 36

def kernel_fault_cause(run, f, roots=None):
    """One sentence, the cause first, for the kernel's own fault @p f (a logged Event), from
    where its address lies and what the access was; None when nothing more than the fault can
    be said. @p roots: {root: label} of the roots the grader knows (to name CR3)."""
    if not ARCHES[f.arch].is_page_fault(f):
        return None
    kernel = run.symbolizer.elf
    a = Access(f)
    va = f.address
    where = run.symbol_of(f.pc) or f"{f.pc:#x}"
    at = place(kernel, va) or f"{va:#x}"
    if f.root is not None:
        root = (roots or {}).get(f.root) or f"root {f.root:#x}"
    else:
        root = "the live roots"
    if a.fetch and va == f.pc:
        entry = isa(f.arch).entry_never_set(f)
        if entry:
            return entry
        if a.present:
            return verdicts.code_not_executable(f"the kernel's code at {va:#x} ({at})", root)
        empty = empty_root(run, f.root)
        if empty:
            return (f"the kernel's code at {va:#x} ({at}) is not mapped in {root}, the root the CPU used when it "
                    f"fetched it: {empty}")
        return f"the kernel's code at {va:#x} ({at}) is not mapped in {root}, the root the CPU used when it fetched it"
    shared = verdicts.explain(Evidence(address=va, access=a.verb(), where=where, stacks=stack_slots(kernel),
                                       root=None if a.present else root))
    if shared:
        return shared
    if at.startswith("the kernel stack of slot") and a.present:
        return (f"the kernel ({where}) {a.verb()} {va:#x}, {at}, and the page is mapped without "
                f"{'write' if a.write else 'read'} permission in {root}: a kernel stack must be rw-")
    if at == "the lower half":
        if a.present:
            return (f"the kernel ({where}) {a.verb()} user memory at {va:#x} outside a checked copy (SMAP/PAN "
                    f"stopped it) in {root}")
        ram = _fact(kernel, "window_phys_base")
        if ram is not None and va >= ram + RAM_SPAN:   # (no RAM there: no physical address either)
            return (f"the kernel ({where}) {a.verb()} {va:#x}, a user address far above any RAM, which {root} does "
                    "not map: user memory touched outside a checked copy, or through a root that is not the one "
                    "that maps it")
        return (f"the kernel ({where}) {a.verb()} {va:#x}, in the lower half, which {root} does not map: kernel "
                "memory reached through a low (identity or physical) address, after the low half stopped being the "
                "kernel's (a physical address used as a pointer? phys_to_ptr() gives the window's)")
    misplaced = window_arithmetic(kernel, va)
    if misplaced and not a.present:
        return f"the kernel ({where}) {a.verb()} {va:#x}, in {at}, which is not mapped in {root}: {misplaced}"
    if at.startswith(("the physical window", "the hole above", "the device area", "the kernel image",
                      "the kernel-stack area")):
        if a.present:
            need = "execute" if a.fetch else "write" if a.write else "read"
            how = "read-only (without write permission)" if a.write else f"without {need} permission"
            return f"the kernel ({where}) {a.verb()} {va:#x}, in {at}, which {root} maps {how}"
        return f"the kernel ({where}) {a.verb()} {va:#x}, in {at}, which is not mapped in {root}"
    return None


def empty_root(run, root, loaded="loaded"):
    """The sentence when @p root, the root QEMU's log says the CPU walked (or the one the
    kernel's pre-switch check refused), maps nothing at all in the boot's RAM as it ended
    (run.remains: witnessed boots only): a root @p loaded while empty, before the kernel's map
    was built in it. None when it maps something or RAM is not kept."""
    remains = getattr(run, "remains", None)
    if root is None or remains is None or remains.fd is None or not ARCHES[run.arch].one_root:
        return None   # (AArch64: the kernel's TTBR0 root is empty by design; TTBR1 holds its map)
    from pagoda_pt.trees import runs   # (one walk of a root, only for this failure)
    try:
        if next(runs(run.arch, remains.read_phys, root), None) is not None:
            return None
        present = sum(1 for e in struct.unpack("<512Q", remains.read_phys(root, 4096)) if ARCHES[run.arch].present(e))
    except (ValueError, OSError, CensusError):
        return None
    return (f"that root ({root:#x}, read from guest RAM as the machine died) maps nothing at all"
            + (f" (its {present} top-level entries lead only to empty tables)" if present else "")
            + f": it was {loaded} while still empty, before anything was mapped in it (the kernel's root: before "
            "build_kernel_map() filled it; a process's root: without the kernel half every root shares); load a "
            "root only once it maps the code, the stack and the data the CPU uses next")


# ---- Where the kernel panicked -----------------------------------------------------------------

BACKTRACE_LINE = re.compile(r"^\s*#\d+ (0x[0-9a-fA-F]+)\s*$")
PANIC_SITE_FRAMES = 2
# Frames that are the panic's own machinery, not where the bad value was found or came from.
PANIC_MACHINERY = re.compile(r"^(detail::)?(panic\w*|must_failed|result_misuse)\b")


def _short(name):
    name = symbols.base_name(name).replace("(anonymous namespace)::", "")
    return name[len("pagoda::"):] if name.startswith("pagoda::") else name


def panic_site(run):
    """' in F (called from G)' from the backtrace the kernel prints after its first PANIC line
    (return addresses; the call is the byte before each), its frames inside panic itself left
    out; "" when there is none. A check that panics names what it found; the function it is in
    and that function's caller name who handed it the bad value (a free of frame 0x0 in
    FrameAllocator::free, called from the unmap path that produced the 0x0)."""
    kernel = run.symbolizer.elf
    lines = run.lines
    start = next((i for i, line in enumerate(lines) if "PANIC: " in line), None)
    if start is None:
        return ""
    names = []
    for line in lines[start + 1:start + 2 + 16]:
        if line.strip() == "backtrace:":
            continue
        m = BACKTRACE_LINE.match(line)
        if not m:
            break
        try:
            found = symbols.function_at(kernel, int(m[1], 16) - 1)
        except (AssertionError, OSError):
            found = None
        if found is None or PANIC_MACHINERY.match(_short(found.name)):
            continue
        names.append(_short(found.name))
        if len(names) == PANIC_SITE_FRAMES:
            break
    if not names:
        return ""
    return f" in {names[0]}" + (f" (called from {names[1]})" if len(names) > 1 else "")


# ---- The headline -------------------------------------------------------------------------------

def kernel_refusal(run):
    """The kernel's first KERNEL_REFUSAL line (pagoda_pt.verdicts: fault-why names the same lines) in @p run's serial output (cut as a panic line is), or
    None: when the kernel says it could not make a process, that is the best cause the grader has."""
    found = quoted_lines(getattr(run, "lines", None) or [], KERNEL_REFUSAL, at_most=1)   # (a made-up run may have none)
    return found[0] if found else None


def headline(run, reason):
    """The cause to put before @p reason in a failure message (None: the reason says it best).

    In order: what the grader's watches saw at its stops when the reason is only that the guest
    never reached the grader's next stop (Run.watch_problems), the grader's reading of the first kernel fault in QEMU's log (first_fault_cause),
    the kernel's PANIC line, a process the kernel killed while the boot was cut short, how the
    machine ended (storm, idle with nothing left to run, triple fault). Never something the first line of the reason already
    says."""
    first_line = reason.splitlines()[0] if reason else ""

    def fresh(text):
        return text and text not in first_line

    outcome = run.outcome()
    # What a watch saw at the grader's stops (a process not running the grader's program), when
    # the reason is only that the boot ended before the grader's next stop (a hang, the time
    # limit, an early exit): no check of the test's named anything that explains it.
    watched = getattr(run, "watch_problems", None)
    if watched and is_never_reached(reason) and fresh(watched[0].splitlines()[0]):
        return watched[0].splitlines()[0]
    refused = kernel_refusal(run)
    if refused and fresh(refused):
        return refused
    guard = copy_guard_cause(run)
    if guard and fresh(guard):
        return guard
    if outcome == "success" and not run.search(r"PANIC: "):
        return None
    found = first_fault_cause(run)
    if fresh(found):
        return found
    panicked = panic_line("\n".join(run.lines))
    refused = re.search(r"\bnew root (0x[0-9a-f]+) does not map", panicked or "")
    empty = refused and empty_root(run, int(refused[1], 16), "about to be loaded")
    if empty and fresh(empty):
        return f"the kernel's pre-switch check refused {refused[0][:-len(' does not map')]}: {empty}"
    if panicked and fresh(panicked):
        return f"the kernel panicked{panic_site(run)}: {panicked}"
    if run.stop_kind == STORM and fresh(run.stop_reason):
        return f"the grader stopped the machine: {run.stop_reason}"
    if outcome == TIMEOUT and run.stop_reason.startswith(IDLE_STOP) and fresh(run.stop_reason):
        # (nothing could run any more: why the line or the stop the test waited for never came)
        return f"the grader stopped the machine: {run.stop_reason}"
    if outcome == "triple fault":
        summary = run.log.summary(run.symbol_of)
        return "the machine triple-faulted (the CPU could not deliver an exception and reset)" + (
            f": {summary}" if summary else "")
    if run.witness is None and run.witness_failure:
        killed = kill_lines("\n".join(run.lines), 1)
        if killed and fresh(killed[0]):
            return f"a process was killed before the grader's stop: {killed[0]}"
    return None


# ---- The producer before the consumer ------------------------------------------------------

def producer_first(run, parts):
    """@p parts (a failure's first lines: the cause the test or headline() gave, then the
    symptom) with the audit's first finding before them when the grader's audit of the kernel's
    records at the end of the boot (audit.findings: frames freed while mapped, counts that do
    not add up, heap blocks handed out twice...) finds a broken invariant: the producer of the
    mistake comes before the consumer that died of it, and what the test saw follows as line 2.
    The audit's other findings come after the symptom. @p parts unchanged when it finds nothing
    (or its first finding is already said). The one place that ranks the audit: every test's
    failure goes through Run.fail()."""
    from . import audit
    found = audit.findings(run)
    if not found or any(found[0] in p for p in parts):
        return parts
    rest = found[1:]
    how = ("(the grader audited the kernel's frame and heap records in guest RAM as the boot ended"
           + (f"; {len(rest)} more finding{'s' * (len(rest) > 1)} below)" if rest else ")"))
    return [found[0]] + list(parts[:1]) + [how] + [f"  {f}" for f in rest] + list(parts[1:])


def audits_first(run, parts):
    """@p parts (a failure's first lines) with what the grader's audits found broken put first: the
    frame and heap audit at the boot's end (producer_first), and before it what an audit saw broken
    at the grader's stops, earlier in the boot (audit_first). The one place Run.fail() ranks them.
    A stop finding the failure already says (a copy-on-write fault seen going wrong, in the test's
    reason after a panic headline) moves first with its lines: it came before the panic and what
    the audit finds at the end, which are what it led to."""
    stop = audit_first(run)
    said = next((i for i, p in enumerate(parts) if stop and stop in p), None)
    if said is not None:
        return [parts[said]] + producer_first(run, parts[:said] + parts[said + 1:])
    parts = producer_first(run, parts)
    seen = audit_first(run, "\n".join(parts))
    return [seen] + parts if seen else parts


# ---- Why a machine died, against the roots the grader walked (labs 3 and up) -------------------

def _permits(perms, access):
    """True when a page of @p perms (a walked run's effective rights) allows @p access (causes.Access)."""
    return bool(perms.execute if access.fetch else perms.write if access.write else perms.read)


def wrong_root_kill(run, inspector, roots, started):
    """A sentence, or None: a process the kernel killed for a user-mode fault at a page its own
    root maps with the rights that access needs, as the grader walked that root (before it
    ran). The CPU did not translate through the process's root when it faulted: the switch
    loaded another root (the kernel's, another process's), or a TLB entry outlived a change of
    the root's tables. (A demand or copy-on-write fault is at a page not mapped, or mapped
    without that right: never this.) @p started: {pid: Started}."""
    if inspector is None or not started:
        return None
    user_faults = [f for f in run.log.faults if f.privilege != ARCHES[run.arch].kernel_privilege
                   and f.address is not None and f.error is not None]
    for k in parse_kills(run).values():
        p = started.get(k.pid)
        if p is None or k.address is None:
            continue
        runs = inspector.dumps.get(p.root)
        if runs is None or isinstance(runs, WalkError):
            continue
        page = next((r for r in runs if r.va_start <= k.address < r.va_end), None)
        fault = next((f for f in user_faults if f.address == k.address), None)
        if page is None or fault is None or not _permits(page.perms, Access(fault)):
            continue
        access = Access(fault)
        held = ""
        if fault.root is not None and fault.root != p.root:
            held = f"; the root the CPU held then was {roots.get(fault.root, f'root {fault.root:#x}')}"
        return (f"pid {k.pid} ({k.name}) ran in the wrong root: it was killed for a fault ({access.verb()} "
                f"{k.address:#x}) at a page its own root {p.root:#x} maps {page.perms.rwx()} (the grader walked it "
                f"before the process ran){held}: the CPU was not translating through the process's own root (the "
                "switch must load the next process's root, not the kernel's or another's), or a stale TLB entry "
                "outlived a change of its tables")
    return None


def explain_death(run, inspector, layout, roots, started=None):
    """A sentence naming why the kernel died, from the first kernel-mode fault in QEMU's log and
    the roots the grader read while the guest lived (@p roots: {root: label}); None when the log
    shows no kernel fault. It does not trust the kernel's report: the fault is the CPU's, the
    tables are read from guest RAM. With no kernel fault and @p started ({pid: Started}): a
    process killed in the wrong root (wrong_root_kill)."""
    if inspector is None:
        return None
    faults = kernel_faults(run.symbolizer.elf, run)
    if not faults:
        return wrong_root_kill(run, inspector, roots, started)
    f = faults[0]
    where = run.symbol_of(f.pc) or f"{f.pc:#x}"
    first = f"the first kernel fault: {f.describe(run.symbol_of)}"
    root = f.root
    label = roots.get(root, f"{root:#x}" if root is not None else "the roots the CPU held (QEMU's AArch64 log does "
                      "not name them)")
    dumps = inspector.dumps
    if root is not None and inspector.half.get(root):
        return f"{first}; the root loaded then, {label}: {inspector.half[root]}"
    if root is None:
        # AArch64's log names no root: what the grader saw at its last stops is the best it has.
        seen = [(r, why) for r, why in inspector.half.items() if why]
        if seen:
            return f"{first}; at a stop before, {roots.get(seen[0][0], hex(seen[0][0]))}: {seen[0][1]}"
    address = f.address if f.address is not None else f.sp
    slot = layout.slot_of(address)

    def mapped_in(va):
        return [r for r, runs in dumps.items() if not isinstance(runs, WalkError)
                and any(x.va_start <= va < x.va_end for x in runs)]

    if slot is not None:
        have = mapped_in(address)
        named = verdicts.explain(verdicts.Evidence(
            address=address, access=Access(f).verb() if f.error is not None else "touched", where=where,
            stacks=stack_slots(run.symbolizer.elf), root=label if root is not None and root not in have else None,
            mapped_in=[roots.get(r, f"{r:#x}") for r in have]))
        if named:
            return named
    access = Access(f) if f.error is not None else None
    if f.address is not None and f.address == f.pc:
        if access is not None and access.present:
            return f"{first}: " + verdicts.code_not_executable("the code being executed", f"{label}, the root loaded then")
        return f"{first}: the code being executed is not mapped in {label}, the root loaded then"
    if f.address is not None and f.address < layout.kernel_half_base and run.symbol_of(f.pc) and \
            access is not None and not access.present:
        elsewhere = [r for r in mapped_in(f.address) if r != root]
        if elsewhere:
            return (f"{first}: the kernel ({where}) touched {f.address:#x}, a user address mapped in "
                    f"{', '.join(roots.get(r, f'{r:#x}') for r in elsewhere)}, while {label} was live: a process "
                    "whose root is not live is written through temporary mappings of its frames (lab 4), never "
                    "through its user addresses")
        lacks = "do not map it" if root is None else "does not map it"
        if f.address < PAGE:
            return (f"{first}: the kernel ({where}) touched {f.address:#x}, in page 0, which no root maps: a null "
                    "pointer (a user copy given one must refuse it through its fix-up, lab 4; kernel code must check "
                    "it)")
        top = symbols.fact(run.symbolizer.elf, "user_stack_top")
        if top - symbols.fact(run.symbolizer.elf, "user_stack_limit") <= f.address < top:
            return (f"{first}: the kernel ({where}) touched {f.address:#x}, a user-stack address, and {label} "
                    f"{lacks}: a process's user address reached by the kernel in a root where that process is not "
                    "loaded (a process that is not live is written through its own tables and temporary mappings "
                    "of its frames, lab 4), or outside a checked user copy")
        half = ARCHES[f.arch].lower_half_label
        return (f"{first}: the kernel ({where}) touched {f.address:#x}, in {half}, and {label} {lacks}: kernel "
                "memory reached through a low address (an identity-mapped or physical address used as a pointer), "
                "in the half every switch of processes reloads (kernel memory must be reached in the kernel half: "
                "the window, phys_to_ptr())")
    return None


# ---- a failure's text (Run.fail; first_fault_cause, fault_summary) ---------------------


def _temp_map_fault(run, fault):
    """A sentence when @p fault is the kernel's, on an address of the temp-map area (lab 4)."""
    from .symbols import fact
    try:
        base, end = fact(run.symbolizer.elf, "temp_map_base"), fact(run.symbolizer.elf, "stack_base")
        slots, page = fact(run.symbolizer.elf, "temp_map_slots"), fact(run.symbolizer.elf, "page_size")
    except (AssertionError, OSError):
        return ""
    if fault.address is None or not base <= fault.address < end:
        return ""
    index = (fault.address - base) // page
    shared = _temp_area_shared_entry(run)
    if shared:
        return f"{fault.address:#x} is temp-map slot {index % slots} of CPU {index // slots}: {shared}"
    return (f"{fault.address:#x} is temp-map slot {index % slots} of CPU {index // slots} (the kTempMapBase "
            "area): the kernel took the slot and used it, and the live root's walk does not find the frame there: "
            "the slot's entry was written into a table the live root does not walk (the kernel root's own copy, or "
            "a table no root uses) instead of the one shared kernel-half table, or the slot was used after its "
            "guard released it (the kernel's report above says whether it is live; labs/04-temp-mappings)")


def _temp_area_shared_entry(run):
    """TempArea.shared_entry() of the area in the boot's RAM as it ended (None when the boot
    kept no RAM or there is no area): the one reader of the area, pagoda_pt.tempmap."""
    from pagoda_pt.tempmap import read_temp_area
    if run.remains is None or run.remains.fd is None:
        return None
    try:
        area = read_temp_area(run.remains.read_phys, symbols.reader(run.symbolizer.elf))
    except (CensusError, AssertionError, OSError, ValueError):
        return None
    return area and area.shared_entry()


def first_fault_cause(run, roots=None):
    """What the grader can say about the first fault the kernel itself took, from QEMU's log,
    the kernel ELF and its layout (causes.py): a switch of roots that unmapped the code making
    it, a temp-map slot used after its mapping went, where the address lies and what the
    access needed. None when there is no such fault or nothing to add to it."""
    first = first_kernel_fault(run)
    if first is None:
        return None
    return (faultlog.after_root_switch(first, run._kernel_words, run.symbol_of) or _temp_map_fault(run, first)
            or kernel_fault_cause(run, first, roots))


def _explained_first(run, line1):
    """True when @p line1, a failure's first line, already names the address of the first fault
    the kernel took: the test (or the audit) said what that address was, and the grader's
    guess from where it lies (first_fault_cause()) could only repeat it or contradict it."""
    first = first_kernel_fault(run)
    return (first is not None and first.address is not None
            and re.search(rf"{first.address:#x}(?![0-9a-fA-F])", line1.split("\n")[0]) is not None)


def fault_summary(run):
    """The log's summary, its "first fault" the first one the kernel itself took when there is
    one (a user program's demand faults and copy-on-write faults, resolved, are no cause)."""
    first = first_kernel_fault(run)
    summary = run.log.summary(run.symbol_of)
    if first is None or first is (run.log.faults[0] if run.log.faults else None):
        return summary
    users = sum(1 for f in run.log.faults if f.privilege != first.privilege and f.index < first.index)
    return (f"first kernel fault: {first.describe(run.symbol_of)} (after {users} fault(s) in user mode, which "
            f"demand paging, copy-on-write or a kill answered); " + summary.replace("first fault: ", "first fault of all: ", 1))


def failure_text(run, reason, cause=None):
    """The text of a failure (Run.fail raises it): the cause first when one is known (@p cause,
    what the test found; else headline(): the first kernel fault's cause, the kernel's panic, ...),
    then the reason (the symptom the test saw), what went wrong with the machine, and the context."""
    head = cause or headline(run, reason)
    parts = [head, reason] if head and head != reason else [reason]
    parts = audits_first(run, parts)
    said = "\n".join(parts)
    outcome = run.outcome()
    if outcome == TIMEOUT and run.stop_reason.startswith(IDLE_STOP):
        if run.stop_reason not in said:
            parts.append(f"the grader stopped the machine: {run.stop_reason}")
    elif outcome == TIMEOUT:
        parts.append("the kernel did not finish in time (hung, or looping)")
    elif run.stop_kind in (CHECKED, ENDED):
        pass
    elif run.stop_kind:
        if run.stop_reason not in said:
            parts.append(f"the grader stopped the machine: {run.stop_reason}")
    elif outcome not in ("success", "failure"):
        parts.append(f"the machine ended with: {outcome}")
    panicked = panic_line("\n".join(run.lines)) if outcome == "failure" else ""
    if panicked and panicked not in said:
        parts.append(f"the kernel panicked: {panicked}")
    summary = fault_summary(run)
    if summary and outcome != "success" and run.stop_kind != STORM:
        parts.append(summary)
    elif run.stop_kind == STORM and run.log.faults:
        # The storm names its repeated exception; the one that started it may be another
        # (AArch64: the instruction abort after a switch of roots, then the vector faulting
        # on itself).
        first = run.log.faults[0].describe(run.symbol_of)
        if first not in run.stop_reason:
            parts.append(f"before the storm, the first fault: {first}")
    if run.log.faults and outcome != "success":
        found = first_fault_cause(run)
        if found and found not in "\n".join(parts) and not _explained_first(run, parts[0]):
            parts.append(f"the first fault's cause: {found}")
    seen = watch_note(run.watch_problems, "\n".join(parts))
    if seen:
        parts.append(seen)
    parts.append(token_line(run.token))
    tail = run.symbolizer.annotate(run.lines[-TAIL_LINES:])
    parts.append(f"last {len(tail)} lines of serial output (full log: {run.serial_log}; "
                 f"QEMU log: {run.qemu_log}):")
    parts.extend("  | " + shown(line) for line in tail)
    return "\n".join(parts)
