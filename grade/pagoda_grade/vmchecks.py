"""Checks the tests of several labs share (on top of witness.py): the whole-map check at an
instant the grader picks, and the kernel half entry by entry (the ISA facts they ask are the
ArchModel's: witness.ARCHES)."""
import re

from pagoda_pt.isa import MACHINES

from pagoda_pt import contract
from . import symbols
from .witness import (ARCHES, MAX_PROBLEMS_SHOWN, MAX_TABLE_READS, PAGE, WalkError, compare_map, expected_kernel_map,
                      image_physical, layout_value, linked_high, pick_in, top_level, window_leftover)

# Guest RAM of the boots that check maps: more than the window, so RAM above it exists.
GRADER_RAM = 128 * 1024 * 1024


def stop_words(reason):
    """('PML4', 96) from a walk's 'PML4 entry 96 not present' (kernel or grader wording; the
    grader's AArch64 walker says 'L0 entry 299 invalid (translation fault)')."""
    m = re.search(r"(\w+) entry (\d+) (?:not present|invalid)", reason or "")
    return (m[1], int(m[2])) if m else None


def check_whole_map(boot, kernel, arch, token, extra=None):
    """Boots the kernel to idle, stops it at an instant the grader picks, and compares the live
    map with the whole expected map; returns (run, problems)."""
    def script(guest):
        snap = guest.stop_at_line(r"^idle:", delay=pick_in(token, "instant", 0, 200) / 1000)
        explain = window_leftover(kernel, arch, GRADER_RAM) if linked_high(kernel, arch) else None
        problems = compare_map(snap, expected_kernel_map(kernel, arch, GRADER_RAM), explain=explain)
        for register, bit, message in ARCHES[arch].paging_controls:
            if not snap.registers[register] >> bit & 1:
                problems.append(message)
        if extra is not None:
            problems += extra(snap)
        guest.end()
        return problems

    run = boot(token=token, memory=f"{GRADER_RAM >> 20}M", witness=script)
    return run, run.require_witness()


# ---- The kernel half, entry by entry -----------------------------------------------------------

def entries_in_range(snap, kernel, arch, root, lo, hi):
    """Every present entry of the tree at @p root whose range meets [lo, hi) (one half of the
    address space), read by the grader from guest RAM, parents before children:
    [(level, va, entry, is_leaf)], va the first address the entry covers. WalkError on a table
    cycle or an absurd tree."""
    entries_per, levels = layout_value(kernel, "entries_per_table"), layout_value(kernel, "levels")
    mask, shift0 = layout_value(kernel, "address_mask"), top_level(kernel).shift
    index_bits, is_leaf = entries_per.bit_length() - 1, ARCHES[arch].kernel_half_bits["is_leaf"]
    reads, out = [0], []

    def visit(pa, level, lo, hi):
        reads[0] += 1
        if reads[0] > MAX_TABLE_READS:
            raise WalkError(f"more than {MAX_TABLE_READS} tables in [{lo:#x}, {hi:#x}): a table cycle?")
        table = snap.table_entries(pa)
        shift = shift0 - index_bits * level
        va = lo
        while va < hi:
            start = va & ~((1 << shift) - 1)
            e = table[(va >> shift) & (entries_per - 1)]
            if e & 1:
                leaf = is_leaf(e, level, levels - 1)
                out.append((level, start, e, leaf))
                if not leaf:
                    visit(e & mask, level + 1, max(va, start), min(hi, start + (1 << shift)))
            va = start + (1 << shift)

    visit(root, 0, lo, hi)
    return out


def kernel_half_entries(snap, kernel, arch):
    """entries_in_range() of the whole kernel half of the live kernel root."""
    return entries_in_range(snap, kernel, arch, snap.root, layout_value(kernel, "kernel_half_base"), 1 << 64)


def kernel_half_problems(snap, kernel, arch, what):
    """Problems of the kernel half's entries: @p what is 'user' (an entry at any level allows
    user access) or 'global' (a leaf is not global)."""
    bits = ARCHES[arch].kernel_half_bits
    try:
        entries = kernel_half_entries(snap, kernel, arch)
    except WalkError as e:
        return [str(e)]
    if not entries:
        return ["nothing is mapped in the kernel half"]
    problems, names = [], ("top-level", "level-1", "level-2", "level-3", "level-4")
    for level, va, e, leaf in entries:
        if what == "user":
            bad = bits["leaf_allows_user"](e) if leaf else bits["table_allows_user"](e)
            words = bits["user_words"]
        else:
            bad, words = leaf and not bits["leaf_global"](e), bits["global_words"]
        if bad and what == "user" and not leaf:
            problems.append(f"the {names[level]} table entry for {va:#x} is {e:#x}: {words}: a table of the kernel half "
                            "allows user access below it, so only its leaves keep the kernel from user mode (a new "
                            "table is linked with its tree's user_tables(va): user only below Shape::user_end)")
        elif bad:
            problems.append(f"the {names[level]} {'leaf' if leaf else 'table'} entry for {va:#x} is {e:#x}: {words}")
    if what == "global" and bits["global_control"]:
        register, bit, message = bits["global_control"]
        if not snap.registers[register] >> bit & 1:
            problems.append(message)
    if len(problems) > MAX_PROBLEMS_SHOWN:
        problems = problems[:MAX_PROBLEMS_SHOWN] + [f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more"]
    return problems


# ---- The lower half after the move (lab 2) ------------------------------------------------------

LEFTOVERS_SHOWN = 3


def _what_is_at(kernel, arch, pa):
    """(what physical @p pa is, the step of lab 2 that should have moved it): a device the
    machine has, the kernel image, or RAM."""
    for base, size, what in MACHINES[arch].devices:
        if base <= pa < base + size:
            return (f"device registers ({what})", "device_virt() must give the device area's address "
                    "(mmio_base + physical), as the kernel's map does for every device")
    # The boot stub's memory is linked low: its symbols are its physical addresses.
    for lo_name, hi_name, what, step in (
            (*contract.BOOT_ENTRY_STACK, "the boot stub's entry stack",
             "the kernel must leave it for boot_stack before it loads its own root"),
            (*contract.BOOT_TABLES, "the boot stub's page tables",
             "the kernel's own root maps nothing low, and the boot tables go back to the allocator")):
        try:
            lo, hi = symbols.address_of(kernel, lo_name), symbols.address_of(kernel, hi_name)
        except (AssertionError, OSError):
            continue
        if lo <= pa < hi:
            return what, step
    lo, hi = image_physical(kernel)
    if lo <= pa < hi:
        return ("the kernel image", "the image is linked high: only its high mapping may stay")
    return ("RAM", "the kernel reaches RAM through the window only (map_ram() and phys_to_ptr() at window_base + "
            "physical - window_phys_base), never at a low address")


def lower_half_leftovers(snap, kernel, arch):
    """What the live lower-half root still maps after the move to the higher half, read by the
    grader from guest RAM, as sentences naming each leftover's kind and the step that should have
    moved it (at most LEFTOVERS_SHOWN; the first is the cause to lead with); [] when the lower
    half is empty, or when its walk cannot finish (the caller reports that walk itself)."""
    half = layout_value(kernel, "kernel_half_base")
    out, count = [], 0
    try:
        for run in snap.runs(snap.lower_root):
            if run.va_start >= half:
                break
            count += 1
            if len(out) == LEFTOVERS_SHOWN:
                continue
            what, step = _what_is_at(kernel, arch, run.pa_start)
            identity = " (at its physical address: an identity mapping)" if run.va_start == run.pa_start else ""
            out.append(f"the lower half still maps {what} after the move: [{run.va_start:#x}, {min(run.va_end, half):#x}) "
                       f"-> {run.pa_start:#x} {run.perms.rwx()}{identity} in the live root {snap.lower_root:#x}; {step}")
    except WalkError:
        return out
    if count > len(out):
        out.append(f"... and {count - len(out)} more mapped run(s) in the lower half")
    return out


def vmprint_address_cause(printed, expected):
    """When vmprint printed every entry the grader read (@p printed and @p expected: (level, first
    address, entry) in order) with the right level and value but some with another first
    address, the sentence that says so; else None."""
    if len(printed) != len(expected) or [(p[0], p[2]) for p in printed] != [(e[0], e[2]) for e in expected]:
        return None
    wrong = [(i, p, e) for i, (p, e) in enumerate(zip(printed, expected)) if p[1] != e[1]]
    if not wrong:
        return None
    i, p, e = wrong[0]
    return (f"vmprint prints {len(wrong)} of {len(expected)} entries with the wrong first address (line {i + 1}: "
            f"{p[1]:#x} for the level {p[0]} entry {p[2]:#x}, which covers from {e[1]:#x}): the first address an "
            "entry covers is the start of its range, aligned to the span of one entry of its level, not the address "
            "the walk stands on")


# ---- lab 2: the large pages a split leaves (split_range_ends) -------------------------------------

BLOCK = 2 * 1024 * 1024                  # the large page of both ISAs (x86_64 PD, AArch64 L2 block)


def small_blocks_problem(small, offset, a, b, first, end):
    """The headline for the whole 2 MiB blocks of the RAM piece [a, b) (whole blocks [first, end))
    that the window maps with smaller pages, @p small [(pa, page size)]: which of them (the last,
    the first, all, some) says which end of map_ram()'s block loop is wrong."""
    pa, size = small[0]
    whole = (end - first) // BLOCK
    if len(small) == whole and whole > 1:
        which = f"every one of the {whole} whole 2 MiB blocks"
        why = "map_ram() maps no large page (a 2 MiB block wherever one is aligned and all RAM)"
    elif len(small) == 1 and pa == end - BLOCK:
        which = "the last whole 2 MiB block"
        why = ("map_ram()'s block loop stops one block early: a block that ends exactly at the piece's end "
               "(pa + 2 MiB == end) still fits")
    elif len(small) == 1 and pa == first:
        which = "the first whole 2 MiB block"
        why = "map_ram()'s block loop starts one block late: the head of 4 KiB pages must end at the first aligned block"
    else:
        which = f"{len(small)} of the {whole} whole 2 MiB blocks (the first at RAM {pa:#x})"
        why = "map_ram() must map each aligned 2 MiB block of RAM with one large page"
    return (f"{which} of the RAM [{a:#x}, {b:#x}) is mapped with {size // 1024} KiB pages, not as one 2 MiB large "
            f"page ({offset + pa:#x}, RAM {pa:#x}): {why}")


# split_range_ends: blocks 0 and 3 covered whole, 1 and 2 in part, and block 4 right after the
# second range, which no range touches (a split at the page after a range's end would split it).
SPLIT_BLOCKS = 5


SPLIT_RANGE_BLOCKS = 4   # the second range ends at the last page of block 3


def split_expectations(first, last, first2, hole, last2=SPLIT_RANGE_BLOCKS * (BLOCK // PAGE) - 1):
    """Per block of split_range_ends: ('whole', perms), ('untouched', 'rw-') or ('pages', {page:
    perms or None}) for the ranges [first, last] and [first2, last2] protected read-only and page
    @p hole unmapped."""
    pages = BLOCK // PAGE
    want = []
    for b in range(SPLIT_BLOCKS):
        lo, hi = b * pages, (b + 1) * pages - 1
        covered = [first <= i <= last or first2 <= i <= last2 for i in range(lo, hi + 1)]
        if not any(covered) and not lo <= hole <= hi:
            want.append(("untouched", "rw-"))
        elif all(covered) and not lo <= hole <= hi:
            want.append(("whole", "r--"))
        else:
            want.append(("pages", {i: None if i == hole else ("r--" if covered[i - lo] else "rw-")
                                   for i in range(lo, hi + 1)}))
    return want


def split_block_problems(snap, base, pa, seed, want, ranges, when, panicked=False):
    """What the walk of each block at @p snap shows against @p want (split_expectations): the
    blocks left whole or split first; when the kernel @p panicked (a protect failed, changing
    nothing), only that, not the permissions."""
    pages, problems, later = BLOCK // PAGE, [], []
    for b, (kind, expect) in enumerate(want):
        start = base + b * BLOCK
        w = snap.walk(start)
        large = w.mapped and w.page_size == BLOCK
        if kind in ("whole", "untouched"):
            if not large:
                got = f"{w.page_size // 1024} KiB pages" if w.mapped else w.stop_reason
                if kind == "untouched":
                    problems.append(f"block {b} [{start:#x}, {start + BLOCK:#x}), which no range {ranges} touches (it "
                                    f"starts right after the second range's end), is {got} {when}: a block outside "
                                    "the range is never split (split_partial_blocks() splits the block under the "
                                    "range's last page, va + size - 4 KiB, not under va + size, the page after it)")
                else:
                    problems.append(f"block {b} [{start:#x}, {start + BLOCK:#x}), which the range {ranges} covers whole, "
                                    f"is {got} {when}: a block the range covers whole stays a block (changed as one)")
            elif not panicked and (w.pa != pa + b * BLOCK or w.perms.rwx() != expect):
                later.append(f"block {b} at {start:#x} is a 2 MiB page -> {w.pa:#x} {w.perms.rwx()} {when}; expected "
                                f"-> {pa + b * BLOCK:#x} {expect}")
            continue
        if large:
            edge = [i for i, perms in expect.items() if perms == "r--"]
            side = "starts" if edge and edge[0] != b * pages else "ends"
            at = edge[0] if side == "starts" else edge[-1] if edge else b * pages
            problems.append(f"the range {ranges} {side} inside the 2 MiB page at {start:#x} (at its page "
                            f"{at - b * pages}, {base + at * PAGE:#x}), which is still one 2 MiB page {when}: "
                            f"split_partial_blocks() must split the large page under the range's "
                            f"{'first' if side == 'starts' else 'last'} page, at each end of the range")
            continue
        if panicked:
            continue
        for i, perms in expect.items():
            if len(later) >= 6:
                break
            w = snap.walk(base + i * PAGE)
            if perms is None:
                if w.mapped:
                    later.append(f"page {i} ({base + i * PAGE:#x}) is still mapped after its unmap")
                continue
            if not w.mapped or w.page_size != PAGE or w.pa != pa + i * PAGE or w.perms.rwx() != perms:
                got = f"{w.page_size // 1024} KiB -> {w.pa:#x} {w.perms.rwx()}" if w.mapped else w.stop_reason
                later.append(f"page {i} ({base + i * PAGE:#x}) is {got} {when}; expected 4 KiB -> "
                             f"{pa + i * PAGE:#x} {perms}")
            elif snap.read_u64(w.pa) != i ^ seed:
                later.append(f"page {i} lost its data in the split (frame {w.pa:#x})")
    return (problems + later)[:6]
