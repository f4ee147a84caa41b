"""Checks the tests of several labs share (on top of witness.py): the whole expected kernel map
(expected_kernel_map, compare_map), the whole-map check at an instant the grader picks, and the
kernel half entry by entry (the ISA facts they ask are the ArchModel's: witness.ARCHES)."""
import re

from pagoda_pt.isa import MACHINES

from pagoda_pt import contract
from pagoda_pt.trees import cached, iter_tables, nonzero_entries
from . import symbols
from .bootram import usable_ram
from .witness import (ARCHES, DEVICE_MEMORY, NORMAL_MEMORY, PAGE, Region, WalkError, _align_up,
                      image_physical, kernel_image_regions, layout_value, pick_in, top_level)

# Guest RAM of the boots that check maps: more than the window, so RAM above it exists.
GRADER_RAM = 128 * 1024 * 1024


# ---- The whole expected map (witnessed in labs 1 and 2) ---------------------------------------

# Problems reported by compare_map() before it only counts them.
MAX_PROBLEMS_SHOWN = 12


def memory_type_problem(cache, wanted):
    """None, or why a leaf whose walk names its memory type @p cache (pagoda_pt's Perms.cache:
    'WB', 'UC', 'Device-nGnRnE', 'Normal-WB ISH', ...) is not of the type @p wanted. A type the
    walker could not name (no MAIR read) is never a problem."""
    if not cache or cache.startswith("attr"):
        return None
    uncached = cache in ("UC", "UC-") or cache.startswith("Device")
    cacheable = cache == "WB" or cache.startswith("Normal-WB")
    if wanted == DEVICE_MEMORY and not uncached:
        return (f"mapped as {cache} memory, not device memory: device registers must be mapped uncached "
                "(kKernelDevice), or the CPU may cache, merge or reorder the accesses the device must see one by one")
    if wanted == NORMAL_MEMORY and not cacheable:
        return (f"mapped as {cache} memory, not write-back cacheable: RAM and the kernel image are ordinary memory "
                "(only device registers are mapped uncached, with kKernelDevice)")
    return None


def linked_high(kernel, arch):
    """True when the kernel is linked in the kernel half (lab 2 done), False for the lab-1 form."""
    return symbols.address_of(kernel, contract.KMAIN) >= layout_value(kernel, "kernel_half_base")


def expected_kernel_map(kernel, arch, memory_size):
    """Every region the kernel's own root must map, and nothing else may be mapped.

    A kernel linked high (lab 2) reaches RAM through the window: usable RAM below the window's
    size at window_base + pa, devices at mmio_base + pa. A kernel linked low (lab 1) identity
    maps usable RAM and devices. Either way the image sections keep their own permissions and
    the RAM mapping skips the image's frames."""
    machine = MACHINES[arch]
    regions = kernel_image_regions(kernel)
    img_lo, img_hi = image_physical(kernel)
    low_end = layout_value(kernel, "low_memory_end")  # physical; the kernel never maps RAM below it
    if linked_high(kernel, arch):
        phys_base = layout_value(kernel, "window_phys_base")
        ram_offset = layout_value(kernel, "window_base") - phys_base
        limit = phys_base + layout_value(kernel, "window_size")
        dev_offset = layout_value(kernel, "mmio_base")
        ram_what, dev_what = "the physical window", "device area"
    else:
        ram_offset, limit, dev_offset = 0, 1 << 64, 0
        ram_what, dev_what = "identity map of RAM", "identity map of devices"
    for lo, hi in usable_ram(kernel, arch, memory_size):
        lo, hi = max(lo, low_end), min(hi, limit)
        for a, b in ((lo, min(hi, img_lo)), (max(lo, img_hi), hi)):
            if a < b:
                regions.append(Region(ram_offset + a, b - a, a, "rw-", f"{ram_what} (RAM {a:#x}-{b:#x})",
                                      memory=NORMAL_MEMORY))
    for pa, size, what in machine.devices:
        regions.append(Region(dev_offset + pa, _align_up(size), pa, "rw-", f"{dev_what}: {what}", memory=DEVICE_MEMORY))
    return sorted(regions, key=lambda r: r.va)


def window_leftover(kernel, arch, memory_size):
    """An explain() for compare_map over a kernel linked high: a mapping outside every region that
    has the window's shape (at window_base + physical - window_phys_base, inside the window's span)
    maps memory the window must not show: the sentence names what it is (the first MiB, the kernel
    image, memory that is no usable RAM) and map_ram()'s rule. A device's frames there keep their
    own sentence (device_virt()'s address)."""
    phys_base = layout_value(kernel, "window_phys_base")
    base, size = layout_value(kernel, "window_base"), layout_value(kernel, "window_size")
    low_end = layout_value(kernel, "low_memory_end")
    img_lo, img_hi = image_physical(kernel)
    ram = usable_ram(kernel, arch, memory_size)

    def explain(start, end, pa, home):
        if not base <= start < base + size or pa != phys_base + (start - base):
            return None
        if home is not None and home.memory == DEVICE_MEMORY:
            return None
        if pa < low_end:
            what = f"the first {low_end >> 20} MiB of physical memory, which the kernel never maps"
        elif img_lo <= pa < img_hi:
            what = "the kernel image's own frames, which the window leaves out (the image has its own mapping)"
        elif not any(a <= pa < b for a, b in ram):
            what = "memory that is no usable RAM (a hole or a reserved range of the memory map)"
        else:
            return None
        return (f"the physical window maps physical [{pa:#x}, {pa + end - start:#x}), {what}: map_ram() must map only "
                "the usable RAM pieces it is handed, each from its own start (a 2 MiB block whose start is rounded down "
                "below its piece maps what lies before the piece)")
    return explain


def compare_map(snap, regions, extra_allowed=(), root=None, explain=None):
    """Compares the whole live map with @p regions: every page of each region mapped to its
    frames with its permissions, supervisor only; nothing mapped outside them (except
    @p extra_allowed regions, which may be mapped or not but must match when they are).
    @p explain(start, end, pa, home), when given, may name what a mapping outside every region
    is (home: the required region whose frames it maps, or None), a sentence or None.
    Returns a list of problems ('' free); a walk that cannot finish is one problem."""
    try:
        runs = snap.dump(root)
    except WalkError as e:
        return [str(e)]
    required = sorted(regions, key=lambda r: r.va)
    allowed = sorted(extra_allowed, key=lambda r: r.va)
    cuts = sorted({r.va for r in required + allowed} | {r.end for r in required + allowed} |
                  {x.va_start for x in runs} | {x.va_end for x in runs})
    problems = []

    def covering(items, va, start_of, end_of):
        for it in items:
            if start_of(it) <= va < end_of(it):
                return it
        return None

    last = None
    for start, end in zip(cuts, cuts[1:]):
        run = covering(runs, start, lambda x: x.va_start, lambda x: x.va_end)
        region = covering(required, start, lambda r: r.va, lambda r: r.end)
        optional = region is None
        if region is None:
            region = covering(allowed, start, lambda r: r.va, lambda r: r.end)
        if run is None and region is None:
            continue
        if run is None:
            if optional:
                continue
            key, text = ("missing", region), f"{region.what}: [{start:#x}, {end:#x}) is not mapped"
        elif region is None:
            key = ("extra", run.pa_start - run.va_start, run.perms.rwx())
            pa = run.pa_start + start - run.va_start
            home = next((r for r in required if r.pa is not None and r.pa <= pa < r.pa + r.size), None)
            text = (f"[{start:#x}, {end:#x}) -> {pa:#x} is mapped "
                    f"{run.perms.rwx()}{' user' if run.perms.user else ''}, but nothing may be mapped there")
            said = explain(start, end, pa, home) if explain is not None else None
            if said:
                text = f"{said}: {text}"
            elif home is not None and "RAM" not in home.what:
                # A frame the map must show elsewhere (a device, a section of the image) at the
                # wrong address: the address computation is the cause.
                text = (f"{home.what} is mapped at the wrong address: {text}; physical {pa:#x} belongs at "
                        f"{home.va + pa - home.pa:#x}")
        else:
            pa = run.pa_start + (start - run.va_start)
            want_pa = None if region.pa is None else region.pa + (start - region.va)
            if want_pa is not None and pa != want_pa:
                key, text = ("frame", region), (f"{region.what}: {start:#x} maps physical {pa:#x}, "
                                                f"expected {want_pa:#x}")
            elif run.perms.rwx() != region.perms or run.perms.user:
                key = ("perms", region, run.perms.rwx())
                text = (f"{region.what}: [{start:#x}, {end:#x}) is mapped {run.perms.rwx()}"
                        f"{' user' if run.perms.user else ''}, expected {region.perms} (kernel only)")
            elif wrong_type := memory_type_problem(run.perms.cache, region.memory):
                key = ("memory", region, run.perms.cache)
                text = f"{region.what}: [{start:#x}, {end:#x}) is {wrong_type}"
            else:
                last = None
                continue
        if key == last and problems:
            # the same problem continuing: widen the last message's range
            problems[-1] = re.sub(r", (0x[0-9a-f]+)\)", f", {end:#x})", problems[-1], count=1)
            continue
        last = key
        problems.append(text)
    if len(problems) > MAX_PROBLEMS_SHOWN:
        more = len(problems) - MAX_PROBLEMS_SHOWN
        problems = problems[:MAX_PROBLEMS_SHOWN] + [f"... and {more} more"]
    return problems


# ---- The checks -----------------------------------------------------------------------------

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
    address space), read by the grader from guest RAM (pagoda_pt.trees.iter_tables, each table
    once), parents before children: [(level, va, entry, is_leaf)], va the first address the
    entry covers."""
    levels, is_leaf = layout_value(kernel, "levels"), ARCHES[arch].kernel_half_bits["is_leaf"]
    index_bits = layout_value(kernel, "entries_per_table").bit_length() - 1
    top = top_level(kernel).shift + index_bits
    base, read, out = lo & -(1 << top), cached(snap.read_phys), []   # (the half's sign extension)
    for table, level, va in iter_tables(arch, read, root, levels):
        span = PAGE << index_bits * (levels - 1 - level)   # (of an entry of a table at that level)
        for index, e in nonzero_entries(read, table):
            start = base + va + index * span
            if e & 1 and start < hi and start + span > lo:
                out.append((level, start, e, is_leaf(e, level, levels - 1)))
    return sorted(out, key=lambda entry: (entry[1], entry[0]))


def kernel_half_problems(snap, kernel, arch, what):
    """Problems of the kernel half's entries: @p what is 'user' (an entry at any level allows
    user access) or 'global' (a leaf is not global)."""
    bits = ARCHES[arch].kernel_half_bits
    try:
        entries = entries_in_range(snap, kernel, arch, snap.root, layout_value(kernel, "kernel_half_base"), 1 << 64)
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
