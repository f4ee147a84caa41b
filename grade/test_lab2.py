"""Lab 2 — higher-half move: the grader's checks. Points and timeouts: labs/02-higher-half/lab.toml.

What each test witnesses and what it still believes: docs/grader.md, "What the grader trusts"."""
import struct

from pagoda_pt import contract as C
from pagoda_grade import lab_test
from pagoda_grade.labtest import LabTest
from pagoda_grade.outcomes import finding_first
from pagoda_grade.processes import frame_bitmap, is_used
from pagoda_grade.symbols import address_of, fact, find, physical_of
from pagoda_grade.vmchecks import (BLOCK, GRADER_RAM, SPLIT_BLOCKS, SPLIT_RANGE_BLOCKS, check_whole_map, kernel_half_problems,
                                   lower_half_leftovers, small_blocks_problem, split_block_problems,
                                   split_expectations, stop_words)
from pagoda_grade.bootram import window_non_ram, window_ram
from pagoda_grade.witness import ARCHES, PAGE, expect_fault, pick_page, top_level

HEX = r"0x[0-9a-f]+"
GRADER_MEMORY = f"{GRADER_RAM >> 20}M"  # more than the window, so that RAM above the window exists


# How the kernel half is shared. x86_64: every process root copies the kernel root's kernel-half
# entries, so every one of them must have its table from boot. AArch64: TTBR1 holds one root for
# every address space; nothing is copied, and its tables are made as the kernel maps.
HALF_SHARED_BY_COPIES = {"x86_64": True, "aarch64": False}


def top_level_counts(snap, kernel, arch):
    """(present entries of the lower half, of the kernel half, kernel-half total) of the live
    root(s): CR3's two halves on x86_64, TTBR0's and TTBR1's roots on AArch64."""
    model, top = ARCHES[arch], top_level(kernel)
    lower = snap.top_level_entries(snap.lower_root)[:top.lower_entries]
    upper = snap.top_level_entries(snap.root)[top.kernel_first:]
    low = sum(1 for e in lower if model.present(e))
    high = sum(1 for e in upper if model.present(e))
    return low, high, len(upper)


@lab_test(2, "runs_high")
def test_runs_high(boot, kernel, arch):
    image_base = fact(kernel, "kernel_image_base")

    def script(guest):
        guest.stop_at(C.RUN_SELFTEST)  # after the set-up, in a quiet page
        snap = guest.stop_at(C.SELFTESTS["vm_high"])
        return snap.pc, snap.sp

    run = boot(test="vm_high", witness=script)
    pc, sp = run.require_witness()
    for what, value in (("the instruction pointer", pc), ("the stack pointer", sp)):
        if value < image_base:
            run.fail(f"{what} is {value:#x} (read from outside, the guest stopped in vm_high), below the top "
                     f"2 GiB ({image_base:#x}): the kernel still runs in the low half")
    m = run.expect(rf"^high: rip ({HEX}) kmain ({HEX}) data ({HEX}) stack ({HEX}) proof=([0-9a-f]{{16}})$",
                   "the 'high: rip ...' line")
    rip, kmain, data, stack = (int(m[i], 16) for i in range(1, 5))
    if not find(kernel, C.SELFTESTS["vm_high"]).contains(rip):
        run.fail(f"the printed RIP {rip:#x} is not inside vm_high")
    if kmain != address_of(kernel, C.KMAIN):
        run.fail(f"kmain runs at {kmain:#x} but is linked at {address_of(kernel, C.KMAIN):#x}")
    if data != address_of(kernel, C.SELFTEST_DATA):
        run.fail(f"the printed data address {data:#x} is not where g_selftest_data is linked")
    if abs(stack - sp) > PAGE:
        run.fail(f"the printed stack address {stack:#x} is not near the stack pointer the grader read ({sp:#x})")
    run.expect_outcome("success")


@lab_test(2, "low_addresses_fault")
def test_low_addresses_fault(boot, kernel, arch):
    t = LabTest(boot, kernel, arch)
    loaded = physical_of(kernel, address_of(kernel, C.KMAIN))
    probes = (t.pick("low 0", 0, PAGE // 8 - 1) * 8,            # a null pointer's field
              PAGE + t.pick("low 1", 0, PAGE // 8 - 1) * 8,     # the second page
              loaded)                                                    # where kmain was loaded
    for address in probes:
        def script(guest, address=address):
            guest.stop_at(C.RUN_SELFTEST)  # after the set-up, in a quiet page
            snap = guest.stop_at(C.SELFTESTS["vm_low"])
            return snap.root, snap.walk(address), lower_half_leftovers(snap, kernel, arch)

        run = boot(test="vm_low", token=t.token, args={"addr": address}, witness=script)
        # What the lower half still maps is the cause of whatever else this boot shows (the read of
        # a low address may fault as expected while the identity of a device or a stack stays).
        left = run.witness[2] if run.witness else []
        if left:
            run.fail("after the move nothing may be mapped in the lower half (the grader walked the live lower-half "
                     "root itself while the kernel was about to read " f"{address:#x})"
                     + "".join(f"\n  {line}" for line in left[1:]), cause=left[0])
        run.expect(rf"^low: reading 0x0*{address:x}$", f"the kernel saying it reads {address:#x}")
        expect_fault(run, **ARCHES[arch].page_faults["read"], address=address,
                     function=C.SELFTESTS["vm_low"], root=run.witness[0] if run.witness else None,
                     kernel=kernel, what=f"the read of {address:#x}")
        _, walk, _ = run.require_witness()
        if walk.mapped or len(walk.levels) != 1:
            run.fail(f"the grader's own walk of {address:#x} in the live tables "
                     f"{'maps it to ' + hex(walk.pa) if walk.mapped else 'stops at ' + repr(walk.stop_reason)}: "
                     "after the move nothing may be mapped in the low half, so the walk must stop at the top level")
        level, index = stop_words(walk.stop_reason)
        run.expect(rf"^\s+reason: {level} entry {index} not present$",
                   f"the reason '{level} entry {index} not present' (where the grader's own walk stops)")
        run.expect_outcome("failure")


@lab_test(2, "window_conversions")
def test_window_conversions(boot, kernel, arch):
    t = LabTest(boot, kernel, arch)
    window_phys = fact(kernel, "window_phys_base")
    window_base = fact(kernel, "window_base") - window_phys   # window address of physical 0
    window_size = fact(kernel, "window_size")
    pa1, pa2 = pick_page(t.token, "window", window_ram(kernel, arch, GRADER_RAM), count=2)
    pa2 += t.pick("window offset", 0, PAGE // 8 - 1) * 8
    value = t.pick("window value", 1, 2**64 - 1)
    holes = [(max(a, PAGE), b) for a, b in window_non_ram(kernel, arch, GRADER_RAM) if b > PAGE]   # (hole=0: none)
    hole = pick_page(t.token, "window hole", holes)[0] if holes else None

    def script(guest):
        snap = guest.stop_at(C.SHUTDOWN)
        problems = []
        for pa in (pa1, pa2):
            if snap.read_u64(pa) != value ^ pa:
                problems.append(f"physical {pa:#x} does not hold the value the kernel was to write through the "
                                "window (read from guest RAM): the window does not reach it")
            w = snap.walk(window_base + pa)
            if w.mapped and w.pa == pa and w.perms.rwx() != "rw-":
                problems.append(f"the window maps RAM {w.perms.rwx()}: {window_base + pa:#x} -> {pa:#x} in the live "
                                "tables; the window is data, rw- and never executable (NX/XN set), kernel only")
            elif not w.mapped or w.pa != pa:
                problems.append(f"{window_base + pa:#x} is not mapped rw- to {pa:#x} in the live tables")
        for above in (window_base + window_phys + window_size, window_base + GRADER_RAM - PAGE):
            w = snap.walk(above)
            if w.mapped:
                problems.append(f"{above:#x} (RAM above the window) is mapped in the live tables, to {w.pa:#x}")
        return problems

    args = {"pa1": pa1, "pa2": pa2, "value": value, **({"hole": hole} if hole is not None else {})}
    run = boot(test="vm_window", memory=GRADER_MEMORY, token=t.token, args=args, witness=script)
    if run.require_witness():
        found = finding_first(run.witness, "the grader checked the window from outside")
        run.fail(found, cause=found)   # (before the panic above the window, which the test asks for)
    size_kib = int(run.expect(rf"^window: (\d+) KiB of RAM at {HEX}$", "the window's size")[1])
    if size_kib * 1024 != window_size:
        # The cause of whatever else fails here (a probe refused, the panic at the wrong address).
        run.fail(f"the window maps {size_kib} KiB, but the layout says {window_size // 1024} KiB",
                 cause=f"the window reaches {size_kib} KiB of RAM (reachable_limit() - window_phys_base, printed by "
                       f"the kernel), not the layout's {window_size // 1024} KiB: reachable_limit() must be the "
                       f"window's physical base plus its size ({window_phys + window_size:#x})")
    for pa in (pa1, pa2):
        m = run.expect(rf"^window: pa 0x0*{pa:x} -> va ({HEX}) -> pa ({HEX})$", f"the round trip of {pa:#x}")
        if int(m[1], 16) != window_base + pa or int(m[2], 16) != pa:
            run.fail(f"pa {pa:#x} converts to va {m[1]} and back to {m[2]}; expected {window_base + pa:#x} and back")
    if hole is not None:
        m = run.expect(rf"^window: pa 0x0*{hole:x} \(no usable RAM\) -> (\w+)$", f"the conversion of {hole:#x} (no RAM)")
        if m[1] != "refused":
            what = ("below low_memory_end, which the kernel never touches" if hole < fact(kernel, "low_memory_end")
                    else "a hole or reserved range of the memory map")
            run.fail(f"phys_to_virt() converted physical {hole:#x}, which is no usable RAM ({what}) though it lies in "
                     "the window's span: phys_to_ptr() must refuse anything but usable RAM (is_usable_ram()), as the "
                     "window maps usable RAM only")
    above = window_phys + window_size
    run.expect(rf"^window: pa 0x0*{above:x} -> refused$", f"the conversion of {above:#x} (above the window) refused")
    run.expect(rf"^window: the walk of {HEX} stops: .* not present$", "RAM above the window unmapped")
    run.expect(rf"^PANIC: phys_to_virt: 0x0*{above:x} is outside", "phys_to_virt failing loudly above the window")
    run.expect_outcome("failure")


@lab_test(2, "heap_balanced")
def test_heap_balanced(boot, kernel, arch):
    t = LabTest(boot, kernel, arch)
    count = t.pick("heap objects", 2000, 4000)
    seed = t.pick("heap seed", 0, 255)
    kernel_half = fact(kernel, "kernel_half_base")

    def script(guest):
        snap = guest.stop_at(C.CHECKPOINT)
        objects, sizes, n = snap.argument(0), snap.argument(1), snap.argument(2)
        if n != count:
            return [f"the heap test holds {n} objects at its peak; the grader asked for objects={count}"]
        pointers = struct.unpack(f"<{count}Q", snap.read_virt(objects, 8 * count))
        lengths = struct.unpack(f"<{count}Q", snap.read_virt(sizes, 8 * count))
        spans = sorted(zip(pointers, lengths, range(count)))
        for (a, la, i), (b, _, j) in zip(spans, spans[1:]):
            if a + la > b:
                return [f"heap objects {i} [{a:#x}, {a + la:#x}) and {j} (at {b:#x}) overlap"]
        for p, length, i in spans:
            if p < kernel_half:
                return [f"heap object {i} is at {p:#x}, outside the kernel half"]
            want = bytes((i + j + seed) & 0xFF for j in range(length))
            if snap.read_virt(p, length) != want:
                return [f"heap object {i} at {p:#x} does not hold what the kernel wrote into it (read from guest "
                        "RAM through the live tables)"]
            w = snap.walk(p)
            if w.perms.rwx() != "rw-" or w.perms.user:
                return [f"heap object {i} at {p:#x} is mapped {w.perms.rwx()}, expected rw- kernel only"]
        return []

    run = boot(test="heap_cycle", token=t.token, args={"objects": count, "seed": seed}, witness=script)
    if run.require_witness():
        run.fail(finding_first(run.witness, "the grader read the heap's objects from guest RAM at the test's peak"))
    m = run.expect(r"^heap: before (\d+) objects (\d+) bytes; peak (\d+) objects (\d+) bytes; "
                   r"after (\d+) objects (\d+) bytes$", "the 'heap: ...' line")
    before, before_bytes, peak, peak_bytes, after, after_bytes = (int(m[i]) for i in range(1, 7))
    if peak < before + count:
        run.fail(f"the heap counted only {peak} objects at its peak; the test allocated {count} more than the "
                 f"{before} before")
    if (after, after_bytes) != (before, before_bytes):
        run.fail(f"the heap held {before} objects ({before_bytes} bytes) before and {after} objects "
                 f"({after_bytes} bytes) after: delete does not give everything back")
    run.expect_outcome("success")


@lab_test(2, "kernel_half_prepared")
def test_kernel_half_prepared(boot, kernel, arch):
    def script(guest):
        guest.stop_at(C.RUN_SELFTEST)  # after the set-up, in a quiet page
        return top_level_counts(guest.stop_at(C.SELFTESTS["vm_high"]), kernel, arch)

    run = boot(test="vm_high", witness=script)
    low, high, half = run.require_witness()
    if HALF_SHARED_BY_COPIES[arch] and high != half:
        run.fail(f"{high} of {half} kernel-half top-level entries are present in the live root (read by the "
                 "grader); all must point to a table allocated at boot, so that every process root shares them")
    if high == 0:
        run.fail("no kernel-half top-level entry is present in the live root (read by the grader): the kernel "
                 "maps nothing in its own half")
    if low != 0:
        run.fail(f"{low} lower-half top-level entries are present in the live root (read by the grader): the "
                 "identity map must be gone")
    m = run.expect(r"^high: top-level entries present: (\d+) of (\d+) in the lower half, (\d+) of (\d+) in "
                   r"the kernel half proof=([0-9a-f]{16})$", "the top-level entry counts")
    if (int(m[1]), int(m[3])) != (low, high):
        run.fail(f"the kernel counts {m[1]} lower-half and {m[3]} kernel-half entries; the live root has "
                 f"{low} and {high}")
    run.expect_outcome("success")


@lab_test(2, "tables_verified_high")
def test_tables_verified_high(boot, kernel, arch):
    """The whole live map at an instant the grader picks, plus the top level; printed output plays no part."""
    def top(snap):
        low, high, half = top_level_counts(snap, kernel, arch)
        problems = []
        if low:
            problems.append(f"{low} top-level entries of the lower half are present (it must be empty)")
        if HALF_SHARED_BY_COPIES[arch] and high != half:
            problems.append(f"only {high} of the {half} kernel-half top-level entries are present")
        return problems

    run, problems = check_whole_map(boot, kernel, arch, boot.fresh_token(), extra=top)
    if problems:
        run.fail(finding_first(problems, "the grader walked the live page tables itself (root from the gdbstub, tables "
                               "from guest RAM) and compared them with the whole expected map"))


def kernel_half_at_idle(boot, kernel, arch, what):
    """Boots to idle, stops the guest at an instant the grader picks, checks that the live map is
    the kernel's own (the whole expected map: not the boot stub's tables) and reads every entry of
    the kernel half's tables from guest RAM (vmchecks.kernel_half_problems)."""
    return check_whole_map(boot, kernel, arch, boot.fresh_token(),
                           extra=lambda snap: kernel_half_problems(snap, kernel, arch, what))


@lab_test(2, "kernel_half_no_user")
def test_kernel_half_no_user(boot, kernel, arch):
    """No entry of the kernel half, at any level, lets user mode in: not only the leaves."""
    run, problems = kernel_half_at_idle(boot, kernel, arch, "user")
    if problems:
        run.fail(finding_first(problems, "the grader walked the live tables (the whole map) and read every entry of the "
                               "kernel half from guest RAM; a kernel-half table entry must keep user mode out too, not "
                               "only the leaf"))


@lab_test(2, "kernel_half_global")
def test_kernel_half_global(boot, kernel, arch):
    """Every mapping of the kernel half is global: its TLB entries survive a switch of roots."""
    run, problems = kernel_half_at_idle(boot, kernel, arch, "global")
    if problems:
        run.fail(finding_first(problems, "the grader walked the live tables (the whole map) and read every leaf of the "
                               "kernel half from guest RAM; kernel mappings must be global (the same in every address "
                               "space)"))


@lab_test(2, "window_large_pages")
def test_window_large_pages(boot, kernel, arch):
    """The window maps RAM with 2 MiB pages wherever a whole aligned one is RAM it must map, and
    4 KiB pages only at the edges; walked by the grader at an instant it picks, in two boots: RAM
    larger than the window (the window ends on a 2 MiB boundary, with a whole block), and RAM of an
    odd number of MiB the grader picks (it ends inside the window and inside a 2 MiB block, so the
    window needs 4 KiB pages after its last whole block)."""
    t = LabTest(boot, kernel, arch)
    window_phys = fact(kernel, "window_phys_base")
    offset = fact(kernel, "window_base") - window_phys
    window_mib = fact(kernel, "window_size") >> 20
    odd = (2 * t.pick("window memory", window_mib // 4, window_mib // 2 - 1) + 1) << 20

    def script(guest, memory):
        snap = guest.stop_at_line(r"^idle:", delay=t.pick("instant", 0, 200) / 1000)
        problems, blocks = [], 0
        for a, b in window_ram(kernel, arch, memory):
            first, end = -(-a // BLOCK) * BLOCK, b // BLOCK * BLOCK   # the whole blocks inside [a, b)
            probes = [(pa, BLOCK) for pa in range(first, end, BLOCK)]
            probes += [(pa, PAGE) for pa in (a, b - PAGE) if not first <= pa < end]
            small = []   # the whole blocks mapped with smaller pages
            for pa, size in probes:
                w = snap.walk(offset + pa)
                if not w.mapped:
                    edge = ("the first page of" if pa == a else "the last page of" if pa == b - PAGE
                            else "a whole 2 MiB block of")
                    problems.append(f"{offset + pa:#x} (RAM {pa:#x}, {edge} the RAM [{a:#x}, {b:#x}) the window must "
                                    f"reach) is not mapped in the window ({w.stop_reason}): map_ram() must map every "
                                    "page of RAM below the window's limit, the 4 KiB pages before a piece's first "
                                    "whole block and after its last one included")
                elif w.page_size != size and size == BLOCK:
                    small.append((pa, w.page_size))
                elif w.page_size != size:
                    problems.append(f"{offset + pa:#x} (RAM {pa:#x}, at an edge of the RAM [{a:#x}, {b:#x})) is mapped "
                                    f"by a {w.page_size // 1024} KiB page, which reaches past the RAM: only 4 KiB pages "
                                    "may map the part of a piece outside its whole 2 MiB blocks")
                blocks += size == BLOCK
            if small:
                problems.insert(0, small_blocks_problem(small, offset, a, b, first, end))
        if blocks == 0:
            problems.append("the window has no RAM a whole 2 MiB page fits (the grader's memory size is wrong?)")
        guest.end()
        return problems[:8]

    for memory in (GRADER_RAM, odd):
        run = boot(token=t.token, memory=f"{memory >> 20}M", witness=lambda guest, memory=memory: script(guest, memory))
        if run.require_witness():
            run.fail(finding_first(run.witness, f"the grader walked the window in the live tables itself (guest RAM "
                                                f"{memory >> 20} MiB)"))


@lab_test(2, "split_large_page")
def test_split_large_page(boot, kernel, arch):
    """A partial protect and a partial unmap of a 2 MiB page split it into 4 KiB pages mapping
    the same frames; both states read by the grader from guest RAM."""
    t = LabTest(boot, kernel, arch)
    top = top_level(kernel)
    slot = t.pick("split slot", top.lower_entries // 8, top.lower_entries * 7 // 8)
    base = (slot << top.shift) + t.pick("split block", 1, 4096) * BLOCK
    pages = BLOCK // PAGE
    first = t.pick("split first", 1, pages - 64)
    count = t.pick("split pages", 1, 48)
    hole = (first + count + t.pick("split hole", 0, pages - count - 1)) % pages
    seed = t.pick("split seed", 1, 2**32)

    def script(guest):
        one = guest.stop_at(C.CHECKPOINT)
        if (one.argument(0), one.argument(2)) != (base, 0):
            return ["the split test was not running on the grader's base="]
        pa = one.argument(1)
        w = one.walk(base + t.pick("split probe", 0, pages - 1) * PAGE)
        if not w.mapped or w.page_size != BLOCK or w.pa & ~(BLOCK - 1) != pa:
            return [f"before the split, {base:#x} is not one 2 MiB page mapping {pa:#x} "
                    f"({'a ' + str(w.page_size // 1024) + ' KiB page' if w.mapped else w.stop_reason})"]
        two = guest.stop_at(C.GRADER_STOP)
        problems = []
        for i in range(pages):
            w = two.walk(base + i * PAGE)
            if i == hole:
                if w.mapped:
                    problems.append(f"page {i} ({base + i * PAGE:#x}) is still mapped after its unmap")
                continue
            want = "r--" if first <= i < first + count else "rw-"
            if not w.mapped or w.page_size != PAGE or w.pa != pa + i * PAGE or w.perms.rwx() != want:
                got = f"{w.page_size // 1024} KiB -> {w.pa:#x} {w.perms.rwx()}" if w.mapped else w.stop_reason
                problems.append(f"page {i} ({base + i * PAGE:#x}) is {got}; expected 4 KiB -> {pa + i * PAGE:#x} {want}")
            elif two.read_u64(w.pa) != i ^ seed:
                problems.append(f"page {i} lost its data in the split (frame {w.pa:#x})")
            if len(problems) >= 6:
                break
        return problems

    run = boot(test="vm_split", token=t.token, memory=GRADER_MEMORY,
               args={"base": base, "first": first, "pages": count, "hole": hole, "seed": seed}, witness=script)
    if run.require_witness():
        run.fail(finding_first(run.witness, f"the grader walked the 2 MiB page at {base:#x} before and after protecting "
                                            f"pages {first}...{first + count - 1} read-only and unmapping page {hole}"))
    run.expect(r"^split: .* free frames before (\d+) after \1$", "every frame given back")
    run.expect_outcome("success")


@lab_test(2, "split_range_ends")
def test_split_range_ends(boot, kernel, arch):
    """Ranges whose ends fall on both sides of a large page's edges: one starts at a block's
    first page and ends inside the next block, another starts inside a block and ends at the
    last page of the next; the blocks covered whole stay 2 MiB pages, the others are split."""
    t = LabTest(boot, kernel, arch)
    top = top_level(kernel)
    pages = BLOCK // PAGE
    slot = t.pick("ends slot", top.lower_entries // 8, top.lower_entries * 7 // 8)
    base = (slot << top.shift) + t.pick("ends block", 1, 4000) * BLOCK
    last = pages + t.pick("ends last", 0, pages - 2)         # inside block 1, not its last page
    first2 = 2 * pages + t.pick("ends first2", 1, pages - 1)  # inside block 2, not its first page
    hole = t.pick("ends hole", last + 1, first2 - 1)          # between the ranges
    seed = t.pick("ends seed", 1, 2**32)
    want = split_expectations(0, last, first2, hole)
    ranges = (f"[{base:#x}, {base + (last + 1) * PAGE:#x}) or [{base + first2 * PAGE:#x}, "
              f"{base + SPLIT_RANGE_BLOCKS * BLOCK:#x})")
    panic = address_of(kernel, C.PANIC)

    def script(guest):
        one = guest.stop_at(C.CHECKPOINT)
        if (one.argument(0), one.argument(2)) != (base, 0):
            return ["the split test was not running on the grader's base="]
        pa = one.argument(1)
        for b in range(SPLIT_BLOCKS):
            w = one.walk(base + b * BLOCK)
            if not w.mapped or w.page_size != BLOCK or w.pa != pa + b * BLOCK:
                return [f"before the protects, {base + b * BLOCK:#x} is not one 2 MiB page mapping {pa + b * BLOCK:#x}"]
        two = guest.stop_at_any([address_of(kernel, C.GRADER_STOP), panic])
        when = "when the kernel panicked (walked by the grader then)" if two.pc == panic else "after the protects"
        return split_block_problems(two, base, pa, seed, want, ranges, when, panicked=two.pc == panic)

    run = boot(test="vm_split", token=t.token, memory=GRADER_MEMORY, witness=script,
               args={"base": base, "blocks": SPLIT_BLOCKS, "first": 0, "pages": last + 1, "first2": first2,
                     "pages2": SPLIT_RANGE_BLOCKS * pages - first2, "hole": hole, "seed": seed})
    if run.require_witness():
        found = finding_first(run.witness, f"the grader walked the {SPLIT_BLOCKS} 2 MiB pages at {base:#x} after "
                                           f"protecting {ranges} read-only and unmapping page {hole}")
        run.fail(found, cause=found)   # (before the kernel's panic: a protect that failed says only "unsupported")
    run.expect(r"^split: .* free frames before (\d+) after \1$", "every frame given back")
    run.expect_outcome("success")


@lab_test(2, "heap_reuse")
def test_heap_reuse(boot, kernel, arch):
    """The heap's free path puts blocks back where allocate finds them first: a second round of
    the same sizes gets exactly the blocks of the first, read by the grader from guest RAM."""
    t = LabTest(boot, kernel, arch)
    count = t.pick("reuse objects", 500, 3000)
    seed = t.pick("reuse seed", 0, 2**32)
    kernel_half = fact(kernel, "kernel_half_base")

    def script(guest):
        snap = guest.stop_at(C.CHECKPOINT)
        if snap.argument(2) != count:
            return [f"the heap test ran {snap.argument(2)} objects; the grader asked for objects={count}"]
        first = struct.unpack(f"<{count}Q", snap.read_virt(snap.argument(0), 8 * count))
        second = struct.unpack(f"<{count}Q", snap.read_virt(snap.argument(1), 8 * count))
        problems = []
        if len(set(first)) != count or len(set(second)) != count:
            problems.append("the heap handed out the same block twice to live objects")
        if any(p < kernel_half for p in first + second):
            problems.append("heap objects lie outside the kernel half")
        fresh = set(second) - set(first)
        if fresh:
            problems.append(f"{len(fresh)} of {count} objects of the second round (e.g. {min(fresh):#x}) are not blocks "
                            "the first round freed: freed blocks are not reused first (free must put them back on the "
                            "front of their class's list)")
        return problems

    run = boot(test="heap_reuse", token=t.token, args={"objects": count, "seed": seed}, witness=script)
    if run.require_witness():
        run.fail(finding_first(run.witness, "the grader read both rounds' objects from guest RAM"))
    m = run.expect(r"^heap_reuse: \d+ objects; heap frames (\d+) after the first round, (\d+) after the second; "
                   r"(\d+) objects live$", "the 'heap_reuse: ...' line")
    if m[1] != m[2]:
        run.fail(f"the heap took {int(m[2]) - int(m[1])} more frames for the second round of the same sizes")
    run.expect_outcome("success")


# The boot stub's roots (arch/<isa>/boot.S), linked low: their symbols are physical addresses.
BOOT_ROOTS = {"x86_64": C.X86.BOOT_ROOTS, "aarch64": C.AARCH64.BOOT_ROOTS}


def frames_of(lo, hi):
    return range(lo - lo % PAGE, hi, PAGE)


@lab_test(2, "leaves_boot_stub")
def test_leaves_boot_stub(boot, kernel, arch):
    """The step out of the boot stub, witnessed at two stops the grader sets: kmain's entry (the
    start: the entry stack, the boot tables) and a checkpoint after the step."""
    entry, own, tables = (tuple(address_of(kernel, n) for n in names)
                          for names in (C.BOOT_ENTRY_STACK, C.BOOT_STACK, C.BOOT_TABLES))
    boot_roots = {address_of(kernel, name) for name in BOOT_ROOTS[arch]}

    def script(guest):
        start = guest.stop_at(C.KMAIN)
        # The moment of the step when the kernel takes it with arch::run_on_stack: the CPU is
        # still on the entry stack, so none of its frames may be free in the allocator yet.
        step = guest.stop_at_any([C.RUN_ON_STACK, C.RUN_SELFTEST])
        freed_early = []
        if step.pc == address_of(kernel, C.RUN_ON_STACK):
            used, words = frame_bitmap(step, kernel)
            live = int.from_bytes(step.read_virt(used, 8 * words), "little")   # the boot tables map the window
            freed_early = [f for f in frames_of(*entry) if not is_used(live, physical_of(kernel, f))]
            guest.stop_at(C.RUN_SELFTEST)  # after the step, in a quiet page
        snap = guest.stop_at(C.CHECKPOINT)
        managed_va, words = snap.argument(0), snap.argument(2)
        if not 0 < words <= 1 << 16:
            return {"problem": f"the checkpoint names a bitmap of {words} words"}
        bitmap = {"managed": int.from_bytes(snap.read_virt(managed_va, 8 * words), "little")}
        return {"start_sp": start.sp, "start_roots": set(start.roots.values()), "sp": snap.sp,
                "freed_early": freed_early, "step_sp": step.sp,
                "roots": set(snap.roots.values()), "low": top_level_counts(snap, kernel, arch)[0], **bitmap}

    run = boot(test="vm_boot_memory", witness=script)
    w = run.require_witness()
    run.check("problem" in w and w["problem"])
    if not entry[0] < w["start_sp"] <= entry[1]:
        run.fail(f"at kmain's entry the stack pointer is {w['start_sp']:#x}, not in the boot stub's entry stack "
                 f"[{entry[0]:#x}, {entry[1]:#x}): the boot stub (arch/{arch}/boot.S) must enter C++ there")
    if not w["start_roots"] & boot_roots:
        run.fail("at kmain's entry no live root is the boot stub's tables: the boot stub must leave the switch "
                 "of roots to the kernel")
    if w["freed_early"]:
        run.fail(f"the boot stub's entry stack is free in the frame allocator while the CPU still runs on it: at "
                 f"arch::run_on_stack, the step to the kernel's stack, SP is {w['step_sp']:#x} and "
                 f"{len(w['freed_early'])} of its frames (e.g. {w['freed_early'][0]:#x}) are already free in the used "
                 "bitmap (read by the grader from guest RAM): release the entry stack only after leaving it")
    sp = w["sp"]
    where = "read from outside at a checkpoint after the step"
    if entry[0] <= sp < entry[1]:
        run.fail(f"the stack pointer is {sp:#x} ({where}), still in the boot stub's low entry stack "
                 f"[{entry[0]:#x}, {entry[1]:#x}): the kernel never moved to its own stack; enter_kernel_space() "
                 "(kernel/mm/vm.cpp) must run the rest of the kernel on boot_stack")
    elif not own[0] < sp <= own[1]:
        run.fail(f"the stack pointer is {sp:#x} ({where}), not in the kernel's own stack boot_stack "
                 f"[{own[0]:#x}, {own[1]:#x})")
    if w["roots"] & boot_roots:
        run.fail(f"a live root is still the boot stub's table ({', '.join(hex(r) for r in w['roots'] & boot_roots)}"
                 f", {where}): the kernel never loaded its own root")
    if w["low"]:
        run.fail(f"{w['low']} top-level entries of the lower half are present in the live root ({where}, walked "
                 "by the grader): the low identity must be gone once the kernel runs on its own stack and root")
    for what, (lo, hi) in (("boot tables", tables), ("entry stack", entry)):
        frames = list(frames_of(lo, hi))
        kept = [f for f in frames if not is_used(w["managed"], f)]
        if kept:
            run.fail(f"{len(kept)} of the {len(frames)} frames of the boot stub's {what} [{lo:#x}, {hi:#x}) are not "
                     f"back in the frame allocator (its managed bitmap, read from guest RAM {where}), e.g. "
                     f"{kept[0]:#x}: once nothing uses them, release them")
    run.expect(r"^boot memory: tables at ", "the vm_boot_memory self-test")
    run.expect_outcome("success")
