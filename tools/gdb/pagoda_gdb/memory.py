"""What processes own: vma-list (lab 5), frames (lab 6), swap-slots (lab 7), and the VMA line of
fault-why.

  vma-list [PID]    a process's VMAs (kernel/mm/space/vma.hpp, read from the process table by
                    pagoda_pt.procs) beside what its page tables map in each
  frames            every frame's owner and the reference counts (pagoda_pt/frames.py)
  swap-slots        the swap slots in use and their holders, the reverse map checked (pagoda_pt/swap.py)
  vma_lines(...)    fault-why's line naming the VMA of a faulting user address

The VMAs come from the kernel's structures, read with its facts by the one process reader
(pagoda_pt.procs: the grader reads them the same way); the mappings from a walk of the process's
published root in physical memory.  Neither trusts the other: that is the point of putting them side by side.
"""

import os

import gdb

from pagoda_pt import contract as C
from pagoda_pt import picture
from pagoda_pt.format import format_range
from pagoda_pt.frames import CensusError, cached, format_frames, format_map, take_census
from pagoda_pt.swap import format_slots, take_swap_census
from pagoda_pt.trees import user_pages

from . import cpus, kernel, target
from .args import parse
from .paging import ADDR, PID_ARGUMENT, active_root, process_root
from .registry import CommandError, PagodaCommand, UsageError, command, out

PAGE = 4096


def taken_stack_slots():
    """The kernel stack slots the kernel's slot table marks taken (kernel/proc/kernel_stack.cpp), or
    None when it cannot be read."""
    try:
        used = gdb.parse_and_eval(C.SLOT_TABLE.expr)   # (which slots hold a stack)
        return [i for i in range(used.type.range()[1] + 1) if bool(used[i])]
    except (gdb.error, RuntimeError):
        return None


def describe_vma(vma):
    """'[0x400000, 0x401000) r-x image offset 0x0 file 0x1234' (the kernel's own wording)."""
    text = "[%#x, %#x) %s %s" % (vma.start, vma.end, vma.rwx(), vma.kind_name)
    if vma.kind_name == "image":
        text += " offset %#x file %#x" % (vma.offset, vma.file_size)
    if vma.flags & 1:
        text += " grows down"
    return text


def find_vma(vmas, address):
    """The VMA of @p vmas that covers @p address, or None."""
    return next((vma for vma in vmas if vma.start <= address < vma.end), None)


def pick_process(processes, arch, regs, pid=None):
    """The process @p pid, else the current one, else the one whose root is live."""
    if pid is not None:
        for row in processes:
            if row.pid == pid:
                return row
        alive = ", ".join(str(r.pid) for r in processes) or "none"
        raise CommandError("no process with id %d (processes: %s; pt-ps lists them)" % (pid, alive))
    for row in processes:
        if row.current:
            return row
    if target.paging_off_reason(arch, regs) is None:
        live = active_root(arch, regs)
        with target.physical_memory() as read_phys:
            table, _ = kernel.published_roots(read_phys)
        known = table.find(live) if table is not None else None
        if known is not None and known.kind == "process":
            for row in processes:
                if row.pid == known.id:
                    return row
    raise CommandError("no process is running now (kernel context): give a process id "
                       "(pt-ps lists them)")


def page_verdict(vma, pages):
    """(mapped perms text, verdict) for the mapped @p pages of @p vma."""
    if not pages:
        return "-", "nothing mapped yet (demand paging)"
    groups = {}
    for page in pages:
        key = "--- held" if getattr(page, "held", False) else \
            ("r" + ("w" if page.writable else "-") + ("x" if page.executable else "-"))
        groups[key] = groups.get(key, 0) + 1
    shown = " ".join("%s x%d" % (k, n) for k, n in sorted(groups.items()))
    too_much = [k for k in groups if k != "--- held" and ((k[1] == "w" and not vma.write) or
                                                           (k[2] == "x" and not vma.execute))]
    if not (vma.read or vma.write or vma.execute):
        if set(groups) == {"--- held"}:
            return shown, "agree: held (PROT_NONE keeps the frames; no access until mprotect)"
        return shown, "DISAGREE: the VMA allows no access, yet pages are mapped"
    if "--- held" in groups:
        return shown, "DISAGREE: held pages (no access) in a VMA that allows %s" % vma.rwx()
    if too_much:
        return shown, "DISAGREE: %s allows more than the VMA's %s" % (", ".join(sorted(too_much)),
                                                                     vma.rwx())
    read_only = sum(n for k, n in groups.items() if k[1] == "-") if vma.write else 0
    if read_only:
        return shown, "agree; %d read-only in a writable VMA (copy-on-write)" % read_only
    return shown, "agree"


@command
class VmaList(PagodaCommand):
    """List a process's VMAs beside what its page tables map in each.

Usage: vma-list [PID]
PID is a process id (pt-ps lists them); without it, the current process (or the one whose root
is live).  One line per VMA, read from the kernel's record (Process::regions(), a VmaSet):
its range (first-last byte), permissions, kind (image with file offset and size, anonymous,
stack, heap), its pages, how many of them the process's root maps, the permissions those
pages have, and whether they agree with the VMA (a writable VMA's read-only pages are
copy-on-write; a page allowing more than its VMA is a DISAGREE).  Then every mapped user page
that lies in no VMA: the bug of a loader that maps without recording (fork and exit would
lose those pages)."""

    name = "vma-list"
    usage = "vma-list [PID]"

    def run(self, arg, from_tty):
        args = parse(arg, max_positional=1)
        arch = target.require_stopped()
        regs = target.paging_regs(arch)
        pid = None
        if args.positional:
            m = PID_ARGUMENT.match(args.positional[0])
            if not m:
                raise UsageError("PID must be a process id (a decimal number), not %r"
                                 % args.positional[0])
            pid = int(m.group(1))
        processes = kernel.read_processes()
        row = pick_process(processes, arch, regs, pid)
        if row.problem:
            raise CommandError("process %d '%s': %s" % (row.pid, row.name, row.problem))
        if row.vmas is None:
            raise CommandError("process %d '%s' has no record of its memory yet (its regions "
                               "are not made)" % (row.pid, row.name))
        bits = target.pa_bits(arch)[0]
        with target.physical_memory() as read_phys:
            root = process_root(row.pid, read_phys).root
            pages = user_pages(arch, read_phys, root, regs, bits,
                               kernel.symbol_address(C.fact_symbol("held_entry_bit")) or 0)
        vmas = row.vmas
        out("process %d '%s' (%s), root %s: %d VMA%s, %d user pages mapped" % (
            row.pid, row.name, "running" if row.current else row.state_word, ADDR % root,
            len(vmas), "" if len(vmas) == 1 else "s", len(pages)))
        if row.brk > row.heap_start:
            out("heap [%#x, %#x)" % (row.heap_start, row.brk))
        out("  %-37s %-5s %-9s %6s %6s  %s" % ("VMA (first-last byte)", "PERMS", "KIND", "PAGES",
                                               "MAPPED", "PAGE TABLES"))
        inside = set()
        for vma in vmas:
            mine = [p for p in pages if vma.start <= p.va < vma.end]
            inside.update(p.va for p in mine)
            shown, verdict = page_verdict(vma, mine)
            kind = vma.kind_name + ("+down" if vma.flags & 1 else "")
            extra = ""
            if vma.kind_name == "image":
                extra = " (file offset %#x, %#x bytes)" % (vma.offset, vma.file_size)
            out("  %-37s %-5s %-9s %6d %6d  %s: %s%s" % (
                format_range(vma.start, vma.end), vma.rwx(), kind,
                (vma.end - vma.start) // PAGE, len(mine), shown, verdict, extra))
        stray = [p for p in pages if p.va not in inside]
        if stray:
            out("mapped but in no VMA: %d page%s, first %#x -> PA %#x: the page tables hold "
                "memory the record does not (fork and exit go by the record)" % (
                    len(stray), "" if len(stray) == 1 else "s", stray[0].va, stray[0].pa))
            for page in stray[:8]:
                out("  %#018x -> PA %#x %s" % (page.va, page.pa,
                                                 "rw" if page.writable else "r-"))
        else:
            out("every mapped user page lies in a VMA")


def vma_lines(arch, regs, address):
    """fault-why's lines about user address @p address: the VMA of the process whose root is
    live (or the current one) that covers it, or that none does; [] for a kernel address or
    when no process runs."""
    user_end = kernel.symbol_address(C.fact_symbol("user_end"))
    if user_end is None or address >= user_end:
        return []
    try:
        row = pick_process(kernel.read_processes(), arch, regs)
    except CommandError:
        return []
    who = "process %d '%s'" % (row.pid, row.name)
    if row.vmas is None:
        return ["vma: %s has no record of its memory (no regions)" % who]
    vma = find_vma(row.vmas, address)
    if vma is None:
        below = [v for v in row.vmas if v.end <= address]
        above = [v for v in row.vmas if v.start > address]
        near = []
        if below:
            near.append("below: %s" % describe_vma(below[-1]))
        if above:
            near.append("above: %s" % describe_vma(above[0]))
        return ["vma: no VMA of %s covers %#x (%d VMAs%s)" % (
            who, address, len(row.vmas), "; " + "; ".join(near) if near else "")]
    return ["vma: %#x lies in a VMA of %s: %s" % (address, who, describe_vma(vma))]


@command
class Frames(PagodaCommand):
    """Summarise physical memory by owner, with the frames' reference counts.

Usage: frames [--map]
Reads the kernel's own records from guest RAM (pagoda_pt/frames.py): the frame allocator's
bitmaps (pagoda_frame_bitmaps), the reference counts (pagoda_frame_refs, lab 6), the roots it
published; walks every root for its table frames and every process root for its user pages.
Prints frames by owner (kernel image, page tables, pages shared by several processes, each
process's own pages, other kernel allocations, free, reserved), each process's pages / own /
shared / table frames, how many frames have each reference count above 1, and every problem
seen: a user mapping the count misses (or a count with no mapping), a mapped frame the
allocator calls free, a free frame with a count.  --map adds the one-screen map that
./pagoda run --memview shows."""

    name = "frames"
    usage = "frames [--map]"

    def run(self, arg, from_tty):
        args = parse(arg, flags=("--map",), max_positional=0)
        arch = target.require_stopped()
        regs = target.paging_regs(arch)
        bits = target.pa_bits(arch)[0]
        with target.physical_memory() as read_phys:
            try:
                census = take_census(arch, read_phys, kernel.symbol_address, regs, bits)
            except CensusError as err:
                raise CommandError(str(err)) from None
        for line in format_frames(census):
            out(line)
        if "--map" in args.flags:
            for line in format_map(census):
                out(line)


def swap_census(arch, read_phys, pids=None, published=None):
    """pagoda_pt.swap.take_swap_census over the process roots the kernel published (those of
    @p pids alone when given: the processes in the table; @p published: the published roots as
    kernel.published_roots gave them, when already read); None while swap is off. CensusError
    (SwapError) when it cannot be read."""
    read_phys = cached(read_phys)
    table, note = published or kernel.published_roots(read_phys)
    if table is None:
        raise CensusError(note)
    roots = [k for k in table.roots if k.kind == "process" and (pids is None or k.id in pids)]
    return take_swap_census(arch, read_phys, kernel.symbol_address, roots)


@command
class SwapSlotsCommand(PagodaCommand):
    """List the swap slots in use and who holds each, the frame table's reverse map checked (lab 7).

Usage: swap-slots [--all]
Reads the swap state the kernel publishes (pagoda_swap_state: the slot map, the frame table and
its reverse map, the hands, the swapper's counters) and walks every process root the kernel
published for its swap entries and user pages (pagoda_pt/swap.py). One row per slot in use or
named: its count and its holders, every (process, address) whose swap entry names it and the
frame that keeps it as its clean copy (its backing); a row whose count its holders do not explain
is flagged (an entry naming a slot the map calls free, a count below or above its holders, a slot
no one holds). Then every problem seen, the reverse map's too: a page a root maps that its
frame's reverse map lacks (or a frame the table calls not resident), a node naming a mapping that
is gone. At most 64 rows, and every flagged one; --all lists them all. Only between operations:
stopped inside the swapper, the records are mid-change."""

    name = "swap-slots"
    usage = "swap-slots [--all]"

    def run(self, arg, from_tty):
        args = parse(arg, flags=("--all",), max_positional=0)
        arch = target.require_stopped()
        with target.physical_memory() as read_phys:
            try:
                census = swap_census(arch, read_phys)
            except CensusError as err:
                raise CommandError(str(err)) from None
        if census is None:
            raise CommandError("swap is off: no cap on user frames and no swap disk (from lab 7 on ./pagoda gdb "
                               "attaches a disk; --cmdline userframes=N caps the frames)")
        for line in format_slots(census, None if "--all" in args.flags else 64):
            out(line)


@command
class MemviewHtml(PagodaCommand):
    """Write this moment as one self-contained HTML page: the picture the grader writes at a failing test.

Usage: memview-html [FILE]
Takes the Snapshot of pagoda_pt/picture.py from the stopped guest (the census of `frames`, each
process's root, user half and VMAs, the frames processes share, the swap slots of `swap-slots`
and their holders, the temp-map slots, each CPU's mode and root as `cpus` reads them) and writes
it to FILE (default memview.html): open it in a browser. ./pagoda run --memview writes the same
page."""

    name = "memview-html"
    usage = "memview-html [FILE]"

    def run(self, arg, from_tty):
        args = parse(arg, max_positional=1)
        arch = target.require_stopped()
        path = os.path.abspath(args.positional[0] if args.positional else "memview.html")
        pc = int(gdb.parse_and_eval("$pc")) & ((1 << 64) - 1)
        with target.physical_memory() as read_phys:
            snap = picture.take(arch, read_phys, kernel.symbol_address, "Pagoda under GDB, stopped at %#x" % pc)
        snap.cpus = [c for _, _, _, c, _ in cpus.readings(arch)]
        with open(path, "w") as f:
            f.write(picture.to_html(snap))
        out("memview-html: wrote %s (%d KiB%s)" % (path, os.path.getsize(path) // 1024,
                                                  "; " + "; ".join(snap.notes) if snap.notes else ""))


__all__ = ["Frames", "MemviewHtml", "SwapSlotsCommand", "VmaList", "swap_census", "vma_lines"]
