"""Lab 1 — identity map: the grader's checks. Points and timeouts: labs/01-identity-map/lab.toml.

Every test here takes its inputs from the grader (chosen at run time) and checks the effect from
outside: QEMU's exception log, and the live page tables the grader walks itself while it holds the
guest stopped. What each test witnesses and what it still believes: docs/grader.md."""
import itertools
import re
import struct

from pagoda_pt import contract as C
from pagoda_grade import lab_test
from pagoda_grade.allocator import (FIT_FREED, WORD, allocator_bits, edge_problem, first_free_after,
                                    free_below, free_check_plan, free_check_problems, lowest_free, refusal_problem,
                                    unmarked_frames, wrap_problem)
from pagoda_grade.labtest import LabTest
from pagoda_grade.outcomes import finding_first
from pagoda_grade.symbols import address_of, fact, physical_of
from pagoda_grade.tlb import stale_read
from pagoda_grade.vmchecks import GRADER_RAM, check_whole_map, entries_in_range, stop_words, vmprint_address_cause
from pagoda_grade.bootram import usable_ram
from pagoda_grade.witness import (ARCHES, PAGE, expect_fault, image_physical, kernel_image_regions, layout_value,
                                  pick_page, top_level)

HEX = r"0x[0-9a-f]+"
FRAMES_PAGES = (1100, 2000)
STALE_PAGES = (4, 12)       # pages the stale-TLB test remaps (the kernel takes at most 16)
STALE_RANGE_BEYOND = (8, 64)  # ... then, as one range, this many pages more than a batch lists one by one
FIT_COUNT = (300, 900)      # frames the next-fit test allocates (the kernel takes at most 1024)
EDGE_MAX = 8                # free frames below the edge limit, at most (the kernel takes at most 8)
MAX_SHOWN = 6
VMPRINT_PAGES = (16, 160)   # the range vmprint dumps, in pages


def translations(run):
    """{va: text after '->'} of the kernel's 'translate: VA -> ...' lines."""
    return {int(m[1], 16): m[2] for m in (re.match(rf"^translate: ({HEX}) -> (.*)$", l) for l in run.lines) if m}


def boot_translate(boot, kernel, arch):
    """Boots vm_translate; the grader stops the guest where the kernel asks for its inputs, picks
    them from its own walk of the live root, and records what it expects for each."""
    t = LabTest(boot, kernel, arch)
    model = ARCHES[arch]

    def script(guest):
        snap = guest.stop_at(C.GRADER_STOP)
        chosen = {region.what: t.pick(f"translate {region.what}", region.content[0], region.content[1] - 1)
                  for region in kernel_image_regions(kernel)}
        entries, top = snap.top_level_entries(snap.lower_root), top_level(kernel)
        empty = [i for i in range(1, top.lower_entries) if not model.present(entries[i])]
        slot = empty[t.pick("translate slot", 0, len(empty) - 1)]
        chosen["unmapped at the top level"] = (slot << top.shift) + pick_page(
            t.token, "translate top", [(0, 1 << top.shift)])[0]
        near = [va for run in snap.dump() for va in (run.va_end, run.va_start - PAGE)
                if not (w := snap.walk(va)).mapped and len(w.levels) > 1 and stop_words(w.stop_reason)]
        if near:
            chosen["unmapped below the top level"] = near[t.pick("translate near", 0, len(near) - 1)]
        walks = {what: snap.walk(va) for what, va in chosen.items()}
        guest.deliver(list(chosen.values()))
        return {"chosen": chosen, "walks": walks, "root": snap.root}

    seen = t.selftest("vm_translate", script)
    return t.run, seen


def permission_slip(perms, wanted):
    """' is mapped executable (...)' and the like: what @p perms (a walk's) allow that the section's
    @p wanted ('r--', 'rw-', 'r-x') does not, or lack; "" when only the frame differs."""
    got = perms.rwx()
    said = []
    if got[2] == "x" and wanted[2] != "x":
        said.append("executable (NX/XN clear), which it must not be")
    if got[1] == "w" and wanted[1] != "w":
        said.append("writable, which it must not be")
    if got[2] != "x" and wanted[2] == "x":
        said.append("not executable")
    if got[1] != "w" and wanted[1] == "w":
        said.append("read-only")
    if perms.user:
        said.append("user-accessible")
    return f" is mapped {' and '.join(said)}" if said else ""


@lab_test(1, "translate_text_data")
def test_translate_text_data(boot, kernel, arch):
    run, seen = boot_translate(boot, kernel, arch)
    printed = translations(run)
    for region in kernel_image_regions(kernel):
        va, walk = seen["chosen"][region.what], seen["walks"][region.what]
        loaded = physical_of(kernel, va)
        if not walk.mapped:
            run.fail(f"{region.what}: {va:#x} is not mapped in the live tables ({walk.stop_reason}; the grader "
                     "walked them itself)")
        if walk.pa != loaded or walk.perms.rwx() != region.perms or walk.perms.user:
            run.fail(f"{region.what}{permission_slip(walk.perms, region.perms)}: the live tables map {va:#x} to "
                     f"{walk.pa:#x} {walk.perms.rwx()}"
                     f"{' user' if walk.perms.user else ''}; the kernel was loaded at {loaded:#x} and the "
                     f"section must be {region.perms}, kernel only (the grader walked the tables itself)")
        if va not in printed:
            run.fail(f"{region.what}: the kernel printed no 'translate: {va:#x} -> ...' line for the address "
                     "the grader gave it")
        t = re.fullmatch(rf"({HEX}) \((\d+) KiB\) (\S+) (kernel|user)(?: uncached)?(?: global)?", printed[va])
        run.check(t is None and f"{region.what}: {va:#x} is mapped, but the kernel says '{printed[va]}'")
        if int(t[1], 16) != walk.pa or t[3] != walk.perms.rwx() or (t[4] == "user") != walk.perms.user:
            run.fail(f"{region.what}: the kernel says {va:#x} -> {printed[va]}, but its live tables map it to "
                     f"{walk.pa:#x} {walk.perms.rwx()}")
        if int(t[2]) * 1024 != walk.page_size:
            run.fail(f"{region.what}: the kernel says a {t[2]} KiB page, the live tables a "
                     f"{walk.page_size // 1024} KiB one")
    run.expect_outcome("success")


@lab_test(1, "translate_unmapped")
def test_translate_unmapped(boot, kernel, arch):
    run, seen = boot_translate(boot, kernel, arch)
    printed = translations(run)
    for what in ("unmapped at the top level", "unmapped below the top level"):
        if what not in seen["chosen"]:
            continue
        va, walk = seen["chosen"][what], seen["walks"][what]
        if va not in printed:
            run.fail(f"the kernel printed no 'translate: {va:#x} -> ...' line for the address the grader gave it")
        said = printed[va]
        if not said.startswith("stopped: "):
            run.fail(f"{va:#x} ({what} in the live tables: {walk.stop_reason}) is translated by the kernel as "
                     f"'{said}'")
        if stop_words(said) != stop_words(walk.stop_reason):
            run.fail(f"the kernel's walk of {va:#x} says '{said}'; the grader's own walk of the live tables "
                     f"stops at '{walk.stop_reason}'")
    run.expect_outcome("success")


def boot_fault(t, test, args=None, watch=None):
    """Boots fault self-test @p test; the grader stops the guest as the self-test starts and walks
    @p watch (an address) in the live root itself; the Run (its witness: (root, walk, SP))."""
    def script(guest):
        guest.stop_at(C.RUN_SELFTEST)  # after the kernel's set-up, in a quiet page
        snap = guest.stop_at(C.SELFTESTS[test])
        return snap.root, (snap.walk(watch) if watch is not None else None), snap.sp

    return t.selftest(test, script, require=False, args=args)


def root_of(run):
    """The root the grader walked as the self-test started (None when it could not stop it)."""
    return run.witness[0] if run.witness else None


def check_reason(run, reason, what):
    run.expect(r"walk of 0x[0-9a-f]{16} through root 0x[0-9a-f]{16}:", "the walk of the faulting address in the report")
    run.expect(rf"^\s+reason: {reason}$", f"the reason '{reason}' ({what})")


@lab_test(1, "write_text_faults")
def test_write_text_faults(boot, kernel, arch):
    t = LabTest(boot, kernel, arch)
    text = next(r for r in kernel_image_regions(kernel) if r.perms == "r-x")
    address = t.pick("write_text", text.content[0], text.content[1] - 1)
    run = boot_fault(t, "vm_write_text", {"addr": address}, watch=address)
    expect_fault(run, **ARCHES[arch].page_faults["write_protect"], address=address,
                 function=C.SELFTESTS["vm_write_text"], root=root_of(run), kernel=kernel,
                 what=f"the write to kernel text at {address:#x}")
    _, walk, _ = run.require_witness()
    if not walk.mapped or walk.perms.write:
        run.fail(f"kernel text {address:#x} is {walk.perms.rwx() if walk.mapped else walk.stop_reason} in the live "
                 "tables (the grader walked them as the self-test started); it must be mapped read-only")
    check_reason(run, "write to read-only page", "the write hit a read-only page")
    run.expect(r"^\s+-> page 0x[0-9a-f]{16} \(4 KiB\), r-x kernel(?: global)?$", "the walk ending at the text page, r-x")
    run.expect_outcome("failure")


@lab_test(1, "nx_stack")
def test_nx_stack(boot, kernel, arch):
    run = boot_fault(LabTest(boot, kernel, arch), "vm_exec_stack")
    # The kernel's own stack, or, until lab 2 moves the kernel off it, the boot stub's entry stack.
    stacks = [(address_of(kernel, lo), address_of(kernel, hi)) for lo, hi in (C.BOOT_STACK, C.BOOT_ENTRY_STACK)]
    event = expect_fault(run, **ARCHES[arch].page_faults["fetch"], root=root_of(run),
                         kernel=kernel, what="the jump to code on the stack")
    _, _, sp = run.require_witness()
    if event.address != event.pc or not any(lo <= event.address < hi for lo, hi in stacks):
        run.fail(f"the CPU faulted fetching {event.address:#x} at PC {event.pc:#x}; expected a fetch from a "
                 "kernel stack (" + ", ".join(f"[{lo:#x}, {hi:#x})" for lo, hi in stacks) + ")")
    if abs(event.address - sp) > PAGE:
        run.fail(f"the fetch at {event.address:#x} is not in the self-test's stack frame (its stack pointer was "
                 f"{sp:#x} as it started)")
    check_reason(run, "execute of NX page", "the stack is not executable")
    run.expect_outcome("failure")


@lab_test(1, "nx_data")
def test_nx_data(boot, kernel, arch):
    code = address_of(kernel, C.DATA_CODE)
    run = boot_fault(LabTest(boot, kernel, arch), "vm_exec_data", watch=code)
    expect_fault(run, **ARCHES[arch].page_faults["fetch"], address=code, pc=code,
                 root=root_of(run), kernel=kernel, what="the call into .data")
    _, walk, _ = run.require_witness()
    if not walk.mapped or walk.perms.execute:
        run.fail(f".data at {code:#x} is {walk.perms.rwx() if walk.mapped else walk.stop_reason} in the live tables; "
                 "it must be mapped, not executable")
    check_reason(run, "execute of NX page", ".data is not executable")
    run.expect_outcome("failure")


@lab_test(1, "null_faults")
def test_null_faults(boot, kernel, arch):
    t = LabTest(boot, kernel, arch)
    address = t.pick("null", 0, PAGE // 8 - 1) * 8
    run = boot_fault(t, "vm_null", {"addr": address}, watch=address)
    expect_fault(run, **ARCHES[arch].page_faults["read"], address=address,
                 function=C.SELFTESTS["vm_null"], root=root_of(run), kernel=kernel,
                 what=f"the read of {address:#x} (a null pointer's field)")
    _, walk, _ = run.require_witness()
    run.check(walk.mapped and f"page 0 is mapped (to {walk.pa:#x}) in the live tables: null pointers would not fault")
    level, index = stop_words(walk.stop_reason)
    check_reason(run, f"{level} entry {index} not present", "the grader's own walk stops there")
    run.expect_outcome("failure")


@lab_test(1, "frames_return")
def test_frames_return(boot, kernel, arch):
    t = LabTest(boot, kernel, arch)
    top = top_level(kernel)
    # a top-level slot of the lower half away from both its ends, which no kernel map here uses
    slot = t.pick("frames slot", top.lower_entries // 8, top.lower_entries * 7 // 8)
    pages = t.pick("frames pages", *FRAMES_PAGES)
    seed = t.pick("frames seed", 1, 2**32)
    boundary = (slot << top.shift) + t.pick("frames gib", 1, 255) * (1 << 30)
    base = boundary - t.pick("frames below", 256, pages - 256) * PAGE  # crosses a 1 GiB boundary
    img_lo, img_hi = image_physical(kernel)
    ram = usable_ram(kernel, arch, GRADER_RAM)

    def script(guest):
        problems = []
        snap = guest.stop_at(C.CHECKPOINT)
        if (snap.argument(0), snap.argument(1), snap.argument(2)) != (base, pages, seed):
            problems.append("the frame test was not running on the grader's base=, pages= and seed=")
            return problems, 0
        frames, tables = set(), set()
        for i in range(pages):
            va = base + i * PAGE
            w = snap.walk(va)
            if not w.mapped:
                problems.append(f"page {i} ({va:#x}) is not mapped while the test runs: {w.stop_reason}")
                break
            if w.perms.rwx() != "rw-" or w.perms.user or w.page_size != PAGE:
                problems.append(f"page {i} ({va:#x}) is mapped {w.perms.rwx()} in a {w.page_size} byte page; "
                                "expected a 4 KiB rw- kernel page")
                break
            if w.pa in frames or img_lo <= w.pa < img_hi or not any(a <= w.pa < b for a, b in ram):
                problems.append(f"page {i} ({va:#x}) maps frame {w.pa:#x}: used twice, in the kernel image, or not RAM")
                break
            frames.add(w.pa)
            tables.update(level.table_pa for level in w.levels[1:])
            if snap.read_u64(w.pa) != i ^ seed:
                problems.append(f"frame {w.pa:#x} of page {i} does not hold the value the kernel wrote through "
                                f"{va:#x}: the mapping does not reach it")
                break
        end = guest.stop_at(C.SHUTDOWN)
        w = end.walk(base)
        if w.mapped or len(w.levels) != 1:
            problems.append(f"after unmapping everything, the grader's walk of {base:#x} stops at "
                            f"'{w.stop_reason or 'mapped'}': empty tables must be freed up to the root")
        return problems, len(tables)

    problems, table_count = t.selftest("vm_frames", script, args={"base": base, "pages": pages, "seed": seed})
    run = t.run
    run.check(problems and finding_first(problems, "the grader walked the frame test's pages itself"))
    m = run.expect(rf"^frames: (\d+) pages at ({HEX}): free before (\d+) during (\d+) after (\d+)$",
                   "the 'frames: ...' line")
    before, during, after = int(m[3]), int(m[4]), int(m[5])
    if before - during != pages + table_count:
        run.fail(f"the kernel's counters say mapping {pages} pages used {before - during} frames; the grader "
                 f"counted {pages} pages and {table_count} page tables in the live tables")
    if after != before:
        run.fail(f"free frames: {before} before, {after} after mapping and unmapping {pages} pages: "
                 f"{before - after} frames leaked (page tables not freed when empty?)")
    run.expect_outcome("success")


@lab_test(1, "tables_verified")
def test_tables_verified(boot, kernel, arch):
    """The whole live map, walked by the grader at an instant it picks; printed output plays no part."""
    run, problems = check_whole_map(boot, kernel, arch, boot.fresh_token())
    if problems:
        run.fail(finding_first(problems, "the grader walked the live page tables itself (root from the gdbstub, tables "
                               "from guest RAM) and compared them with the whole expected map"))


@lab_test(1, "stale_tlb")
def test_stale_tlb(boot, kernel, arch):
    """Unmap and protect must invalidate what the TLB holds: a missing invalidation never faults
    by itself, so the grader compares each read with what the live tables map now (tlb.py) and
    expects the write after protect to fault in QEMU's exception log."""
    t = LabTest(boot, kernel, arch)
    top = top_level(kernel)
    slot = t.pick("stale slot", top.lower_entries // 8, top.lower_entries * 7 // 8)
    base = (slot << top.shift) + t.pick("stale offset", 1, 1 << 17) * PAGE
    pages = t.pick("stale pages", *STALE_PAGES)
    seed = t.pick("stale seed", 1, 2**48)
    # A range of more pages than a consistency batch lists (kernel/mm/pt/consistency_batch.hpp):
    # its one flush must invalidate everything.
    listed = fact(kernel, "batch_max_pages")
    span = listed + t.pick("stale range", *STALE_RANGE_BEYOND)
    protected = base + pages * PAGE

    def reads_at(snap, first, count, what):
        reads = struct.unpack(f"<{count}Q", snap.read_virt(snap.argument(2), 8 * count))
        return [f"{what} {i}: {stale}" for i, value in enumerate(reads)
                if (stale := stale_read(snap, first + i * PAGE, value))]

    def script(guest):
        snap = guest.stop_at(C.CHECKPOINT)
        if (snap.argument(0), snap.argument(1)) != (base, pages):
            return {"problem": "the stale-TLB test was not running on the grader's base= and pages="}
        seen = {"pages": reads_at(snap, base, pages, "page"), "range": []}
        if seen["pages"]:
            guest.end()   # (what a stale TLB does next may hang the kernel: the failure is named)
            return seen
        first = base + (pages + 1) * PAGE
        snap = guest.stop_at(C.CHECKPOINT)
        if (snap.argument(0), snap.argument(1)) != (first, span):
            return {"problem": "the stale-TLB test did not remap the grader's range= as one range"}
        seen["range"] = reads_at(snap, first, span, "range page")
        if seen["range"]:
            guest.end()   # (as above)
        return seen

    seen = t.selftest("vm_stale_tlb", script, args={"base": base, "pages": pages, "seed": seed, "range": span})
    run = t.run
    run.check("problem" in seen and seen["problem"])
    problems = seen["pages"]
    if problems:
        # The cause is the stale read the grader found, not the fault the selftest ends with on
        # purpose (its write after protect), which a headline of the first kernel fault would name.
        run.fail("after unmapping each page and mapping it to a new frame, the kernel read through the address "
                 "again; the grader compared every read with the frame the live tables map:\n  "
                 + "\n  ".join(problems[:MAX_SHOWN]), cause=problems[0])
    problems = seen["range"]
    if problems:
        run.fail(f"after unmapping {span} pages with one unmap_range(), more than the {listed} a batch lists one by "
                 "one, mapping each to a new frame and reading it again, the grader compared every read with the "
                 "frame the live tables map:\n  " + "\n  ".join(problems[:MAX_SHOWN]),
                 cause=f"a batch that collected more pages than it lists did not invalidate them all: "
                       f"{len(problems)} of {span} pages read through a stale TLB entry after one unmap_range() "
                       f"(its flush must invalidate everything once the list overflowed: all_); {problems[0]}")
    expect_fault(run, **ARCHES[arch].page_faults["write_protect"], address=protected,
                 function=C.SELFTESTS["vm_stale_tlb"], kernel=kernel,
                 what=f"the write to {protected:#x} after protecting it read-only (a TLB entry left writable "
                      "by a protect that does not invalidate lets it through)")
    check_reason(run, "write to read-only page", "the page was protected read-only")
    run.expect_outcome("failure")


def boot_frames_fit(boot, kernel, arch):
    """Boots frames_fit: the grader reads the frames the kernel got at the checkpoints from guest
    RAM and picks the limit in between (an address among the frames the test freed); then the
    limit's edge (a limit with k free frames below it, k its choice, from the allocator's bitmap)
    and the addresses it asks check_free() about (free_check_plan)."""
    t = LabTest(boot, kernel, arch)
    count = t.pick("fit count", *FIT_COUNT)
    wanted = t.pick("fit below", 8, FIT_FREED // 2)
    edge_below = t.pick("fit edge", 1, EDGE_MAX)   # (not 0: a free frame in the limit's word)

    def script(guest):
        first = guest.stop_at(C.CHECKPOINT)
        if first.argument(1) != count:
            return {"problem": f"the frame test got {first.argument(1)} frames; the grader asked for count={count}"}
        got = struct.unpack(f"<{count}Q", first.read_virt(first.argument(0), 8 * count))
        following = first.argument(2)
        # The search's wrap: a limit above the last frame handed out, nothing free between them.
        snap = guest.stop_at(C.GRADER_STOP)
        used, _, words = allocator_bits(snap, kernel)
        wrap_limit = first_free_after(used, words, following)
        wrap = None
        if wrap_limit is not None and free_below(used, following) > 0:
            guest.deliver([wrap_limit])
            wrapped = guest.stop_at(C.CHECKPOINT)
            wrap = (wrap_limit, following, free_below(used, wrap_limit), wrapped.argument(0))
        else:
            guest.deliver([])
        freed = sorted(got[:FIT_FREED])
        limit = freed[wanted + t.pick("fit limit", 0, FIT_FREED - wanted - 1)]
        snap = guest.stop_at(C.GRADER_STOP)
        used, _, words = allocator_bits(snap, kernel)
        free_then = [f for f in lowest_free(used, words, 4 * FIT_FREED) if f < limit]   # free below the limit
        guest.deliver([limit])
        second = guest.stop_at(C.CHECKPOINT)
        n = second.argument(1)
        below = struct.unpack(f"<{n}Q", second.read_virt(second.argument(0), 8 * n)) if n <= FIT_FREED else ()
        seen = {"got": got, "next": following, "wrap": wrap, "limit": limit, "limit_seen": second.argument(2),
                "below": below, "free_below_limit": free_then}
        # The limit's edge: the frame at the limit is free, and k free frames lie below it: k is the
        # grader's (edge_below); when it is not 0, one whose limit lies in the word of the free frame
        # just below it, where there is one (a search that skips the limit's own word then refuses).
        snap = guest.stop_at(C.GRADER_STOP)
        used, ever, words = allocator_bits(snap, kernel)
        lowest = lowest_free(used, words, EDGE_MAX + 1)
        shared = [k for k in range(1, len(lowest)) if lowest[k] // WORD == lowest[k - 1] // WORD]
        k = shared[t.pick("fit edge word", 0, len(shared) - 1)] if edge_below and shared else edge_below
        lowest = lowest[:k + 1]
        edge = lowest[-1]
        guest.deliver([edge, k])
        third = guest.stop_at(C.CHECKPOINT)
        n = third.argument(1)
        edges = struct.unpack(f"<{n}Q", third.read_virt(third.argument(0), 8 * n)) if n <= EDGE_MAX + 1 else ()
        seen.update(edge=edge, edge_below=lowest[:-1], edges=edges, edge_seen=third.argument(2))
        # What check_free() says of addresses whose answer the grader knows.
        snap = guest.stop_at(C.GRADER_STOP)
        used, ever, words = allocator_bits(snap, kernel)
        plan = free_check_plan(t.token, kernel, arch, got, used, ever, words)
        guest.deliver([a for a, _, _ in plan])
        fourth = guest.stop_at(C.CHECKPOINT)
        n = fourth.argument(1)
        answers = struct.unpack(f"<{n}Q", fourth.read_virt(fourth.argument(0), 8 * n)) if n <= len(plan) else ()
        seen.update(plan=plan, answers=answers,
                    unmarked=unmarked_frames(list(got) + [following] + list(below) + list(edges), ever))
        return seen

    seen = t.selftest("frames_fit", script, args={"count": count, "below": wanted})
    run = t.run
    run.check("problem" in seen and seen["problem"])
    return run, seen, count, wanted


def check_frames(run, kernel, arch, frames, what):
    """Every frame of @p frames is distinct, page aligned, usable RAM, and not the kernel image."""
    img_lo, img_hi = image_physical(kernel)
    ram = usable_ram(kernel, arch, GRADER_RAM)
    run.check(len(set(frames)) != len(frames) and f"{what}: the allocator handed out the same frame twice")
    for f in frames:
        if f % PAGE or img_lo <= f < img_hi or not any(a <= f < b for a, b in ram):
            run.fail(f"{what}: frame {f:#x} is misaligned, in the kernel image, or not RAM")


@lab_test(1, "frames_next_fit")
def test_frames_next_fit(boot, kernel, arch):
    run, seen, count, _ = boot_frames_fit(boot, kernel, arch)
    got, following = seen["got"], seen["next"]
    check_frames(run, kernel, arch, list(got), "the frames of the test")
    check_frames(run, kernel, arch, [following], "the frame after the first ones were given back")
    if following in got[:FIT_FREED] or following <= got[-1]:
        run.fail(f"after handing out {count} frames (the last {got[-1]:#x}) and getting the first {FIT_FREED} "
                 f"back, the allocator handed out {following:#x}: next fit goes on after the last frame it "
                 "found instead of searching from the start again (the grader read the frames from guest RAM)")
    if seen["wrap"] is not None:
        run.check(wrap_problem(*seen["wrap"]))
    run.expect(r"^fit: \d+ frames below 0x[0-9a-f]+; free frames before (\d+) after \1$",
               "every frame given back ('fit: ... free frames before N after N')")
    run.expect_outcome("success")


@lab_test(1, "frames_limit")
def test_frames_limit(boot, kernel, arch):
    run, seen, _, wanted = boot_frames_fit(boot, kernel, arch)
    limit, below = seen["limit"], seen["below"]
    if seen["limit_seen"] != limit:
        run.fail(f"the test did not allocate {wanted} frames below the limit {limit:#x} the grader delivered")
    run.check(len(below) < wanted and refusal_problem(limit, wanted, below, seen["free_below_limit"]))
    check_frames(run, kernel, arch, below, f"allocate_below({limit:#x})")
    above = [f for f in below if f >= limit]
    if above:
        run.fail(f"allocate_below({limit:#x}) handed out {len(above)} of {wanted} frames at or above the limit, "
                 f"e.g. {above[0]:#x} (the grader read them from guest RAM)")
    run.check(edge_problem(seen["edge"], seen["edge_below"], seen["edges"], seen["edge_seen"]))
    run.expect_outcome("success")


@lab_test(1, "frames_free_checks")
def test_frames_free_checks(boot, kernel, arch):
    """check_free() of addresses the grader picks at run time, each answer known to the grader from
    the frames the test holds and gave back (read from guest RAM) and the allocator's bitmaps."""
    run, seen, _, _ = boot_frames_fit(boot, kernel, arch)
    problems = free_check_problems(kernel, seen["plan"], seen["answers"])
    if seen["unmarked"]:
        frames = seen["unmarked"]
        problems.insert(0, f"allocate_below() handed out {len(frames)} frame(s) that the allocator's `ever` bitmap does "
                           f"not mark as ever allocated, e.g. {frames[0]:#x} (the grader saw each one handed out, and "
                           "read the bitmap in guest RAM): allocate_below() must set a frame's `ever` bit with its "
                           "`used` bit, or check_free() takes a frame given back for one never handed out and cannot "
                           "name its double free")
    if problems:
        run.fail(finding_first(problems, "the grader asked check_free() about addresses it picked, each answer known "
                                         "from the allocator's bitmaps and the frames the test holds, read from guest "
                                         "RAM"))
    run.expect(r"^fit: \d+ frames below 0x[0-9a-f]+; free frames before (\d+) after \1$",
               "every frame given back ('fit: ... free frames before N after N')")
    run.expect_outcome("success")


VMPRINT_ROOT = re.compile(rf"^vmprint: root ({HEX}) \[({HEX}), ({HEX})\)$")
VMPRINT_LINE = re.compile(rf"^vmprint: ((?:\.\. )*)(\S+?)\s*\[\s*(\d+)\] ({HEX}) = ({HEX})$")


@lab_test(1, "vmprint_matches")
def test_vmprint_matches(boot, kernel, arch):
    """The student's vmprint() over a range the grader picks from its own walk, compared line by
    line with the entries the grader reads from guest RAM just before the print."""
    t = LabTest(boot, kernel, arch)
    half = layout_value(kernel, "kernel_half_base")

    def script(guest):
        snap = guest.stop_at(C.GRADER_STOP)
        runs = snap.dump()
        pages = t.pick("vmprint pages", *VMPRINT_PAGES)
        # The range crosses the end of a last-level table inside a mapped run (when a run is that
        # long): each table below an entry gets only the part of the range that entry covers.
        span = PAGE * layout_value(kernel, "entries_per_table")
        edges = [edge for r in runs for edge in range(r.va_start - r.va_start % span + span, r.va_end, span)][:4096]
        # Preferred: an edge whose table below has its first page mapped by a page (not a block),
        # so that a table handed the whole range wraps to an entry that is present and shows it.
        paged = [edge for edge in edges
                 if any(r.page_size == PAGE and r.va_start <= edge - span < r.va_end for r in runs)]
        edges = paged or edges
        if edges:
            edge = edges[t.pick("vmprint edge", 0, len(edges) - 1)]
            lo = edge - t.pick("vmprint start", 1, pages - 1) * PAGE
        else:
            run = runs[t.pick("vmprint run", 0, len(runs) - 1)]
            lo = run.va_start + t.pick("vmprint start", 0, (run.va_end - run.va_start) // PAGE - 1) * PAGE
        hi = min(lo + pages * PAGE, (1 << 64) - PAGE)
        guest.deliver([lo, hi])
        at = guest.stop_at(C.CHECKPOINT)
        root = at.lower_root if lo < half else at.root
        return {"lo": lo, "hi": hi, "root": root, "said": (at.argument(0), at.argument(1), at.argument(2)),
                "entries": entries_in_range(at, kernel, arch, root, lo, hi)}

    seen = t.selftest("vm_print", script)
    run = t.run
    lo, hi, root = seen["lo"], seen["hi"], seen["root"]
    if seen["said"] != (lo, hi, root):
        run.fail(f"the vmprint test did not print [{lo:#x}, {hi:#x}) of the live root {root:#x} (it said "
                 f"{', '.join(hex(v) for v in seen['said'])})")
    m = run.expect(VMPRINT_ROOT.pattern, "the 'vmprint: root ...' line")
    if (int(m[1], 16), int(m[2], 16), int(m[3], 16)) != (root, lo, hi):
        run.fail(f"vmprint says '{m[0]}'; the live root is {root:#x} and the range [{lo:#x}, {hi:#x})")
    hardware = ARCHES[arch].kernel_half_bits["hardware_bits"]  # accessed/dirty: the CPU may set them meanwhile
    printed = [(len(p[1]) // 3, int(p[4], 16), int(p[5], 16) & ~hardware)
               for p in (VMPRINT_LINE.match(l) for l in run.lines) if p]
    expected = [(level, va, e & ~hardware) for level, va, e, _ in seen["entries"]]
    problems = []
    for i, (got, want) in enumerate(itertools.zip_longest(printed, expected)):
        if got == want:
            continue
        if want is None:
            problems.append(f"line {i + 1}: vmprint printed level {got[0]} {got[1]:#x} = {got[2]:#x}, but the tables "
                            "have no more present entries in the range")
        elif got is None:
            problems.append(f"line {i + 1}: missing: level {want[0]} {want[1]:#x} = {want[2]:#x}")
        else:
            problems.append(f"line {i + 1}: vmprint printed level {got[0]} {got[1]:#x} = {got[2]:#x}; guest RAM "
                            f"holds level {want[0]} {want[1]:#x} = {want[2]:#x} there")
        if len(problems) == MAX_SHOWN:
            break
    if problems:
        run.fail(f"vmprint of [{lo:#x}, {hi:#x}) does not match the {len(expected)} present entries the grader read "
                 "from guest RAM (parents before children, in address order; accessed and dirty bits left "
                 "out):\n  " + "\n  ".join(problems), cause=vmprint_address_cause(printed, expected))
    run.expect(r"^vmprint: end$", "the end of the dump")
    run.expect_outcome("success")
