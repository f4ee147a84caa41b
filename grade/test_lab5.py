"""Lab 5: virtual memory areas, witnessed from outside the kernel.

Every boot runs the user program vmas (user/programs/vmas.cpp) in one of its modes. The grader
stops the guest where it likes (the run's checkpoints, the system-call entry), walks the process
roots in guest RAM itself, reads what the kernel wrote into user memory through its own walk,
reads QEMU's exception log to see the faults really happened where the program was told to
fault, and reads the program's ELF file to know its segments. The kernel's lines only label
what the grader saw.

Every boot first checks, after the processes are made and before any runs, that each process
root maps exactly one user page: the arguments' page at the top of the stack. A loader that
maps its segments eagerly (or records nothing and maps everything) fails there, whatever it
prints later. At the same stop the grader reads each process's VMA list from guest RAM
(pagoda_grade.vmas) and compares it with the program's ELF file: what the loader left out (no
VMA at all, no stack, a segment without its bss, ...) is not failed there, but names the cause
when a test fails later (a kill at an address the record should have covered)."""
import re

from pagoda_core import elffile
from pagoda_pt import contract
from pagoda_grade import lab_test, programs
from pagoda_grade.derived import value as derived
from pagoda_grade.labtest import ProcTest, signed
from pagoda_grade.outcomes import BootEnded
from pagoda_grade.processes import HEX, count_used, parse_kills, user_elf, user_pages, user_symbol, written
from pagoda_grade.proof import proof
from pagoda_grade.symbols import fact, segments
from pagoda_grade.vmas import PF_R, PF_W, PF_X, page_down, page_up, read_records
from pagoda_pt.procs import GROWS_DOWN, KIND_ANONYMOUS, KIND_IMAGE, KIND_STACK, PROT_EXEC, PROT_READ, PROT_WRITE
from pagoda_grade.vmawatch import (EFAULT, ENOMEM, KILL_STOP, MASK64, TABLE_PAGES, TABLE_WORDS, VmaWatch, WINDOW,
                                   WINDOW_PAGES, embedded_bytes, hole_cut, image_end, killed, mmap_area, no_vma_verdict,
                                   page_file_cause, pages_left, random_mismatch, random_model, record_against_model,
                                   record_broken, table_word, user_faults)
from pagoda_grade.watch import fault_expectation, u64
from pagoda_grade.witness import ARCHES, PAGE


# ---- laziness ------------------------------------------------------------------------------------

@lab_test(5, "lazy")
def test_lazy(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    count = t.pick("lazy pages", 3, 6)
    in_area = mmap_area(kernel)

    def script(started):
        for _ in range(3):  # before, after mmap, after the touches
            snap = t.call("ProcInfo").snap
        mapped = user_pages(snap.dump(snap.lower_root), t.watch.layout)
        high = {va: u64(snap.read_virt(va + 8, 8, snap.lower_root)) for va in mapped if in_area(va)}
        return dict(high=high)

    w = t.start(f"vmas:lazy:{count}", script)
    m = t.expect(rf"^vmas: lazy: 64 MiB at ({HEX}); user frames (\d+) -> (\d+) -> (\d+);", "vmas's lazy line")
    at = int(m[1], 16)
    want = {at + derived(t.token, "vmas_lazy_page", i) * PAGE: i + 1 for i in range(count)}
    if w["high"] != want:
        t.fail(f"after touching {len(set(want))} pages of a 64 MiB mapping at {at:#x}, the grader's walk of the "
               f"root finds {len(w['high'])} mapped in the mmap area "
               f"({', '.join(f'{va:#x}={v}' for va, v in sorted(w['high'].items())[:8])}); expected exactly "
               f"{', '.join(f'{va:#x}={v}' for va, v in sorted(want.items()))}: pages must come on demand, one "
               "zeroed frame per touched page")
    t.exited(1, "vmas")
    t.success()


# ---- bss after data on a shared page ----------------------------------------------------------

@lab_test(5, "bss_data")
def test_bss_data(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    data = user_symbol(kernel, arch, "vmas", "vmas_data").address
    bss = user_symbol(kernel, arch, "vmas", "vmas_bss").address
    if data // PAGE != bss // PAGE:
        raise AssertionError(f"vmas_data {data:#x} and vmas_bss {bss:#x} do not share a page: rebuild user/programs/vmas")

    def script(started):
        snap = t.call("Write").snap
        root = snap.lower_root
        w = snap.walk(data, root)
        return dict(mapped=w.mapped, perms=w.perms.rwx() if w.mapped else None,
                    data=snap.read_virt(data, 24, root) if w.mapped else b"",
                    page=snap.read_virt(page_down(data), PAGE, root) if w.mapped else b"",
                    bss=snap.read_virt(bss, 600 * 8, root) if w.mapped else b"")

    w = t.start("vmas:bss", script)
    if not w["mapped"] or w["perms"] != "rw-":
        t.fail(f"once vmas read its data, the page {data // PAGE * PAGE:#x} is "
               f"{'mapped ' + w['perms'] if w['mapped'] else 'not mapped'} in its root; expected rw-")
    values = [u64(w["data"][i:i + 8]) for i in range(0, 24, 8)]
    seg = next((g for g in segments(user_elf(kernel, arch, "vmas")) if g.vaddr <= data < g.vaddr + g.memsz), None)
    misread = page_file_cause(kernel, arch, "vmas", seg, page_down(data), w["page"]) if seg and w["page"] else None
    if misread:
        t.fail(f"{misread}; vmas_data ({data:#x}) reads {[hex(v) for v in values]} through the grader's walk, "
               "the file has 0x1111 0x2222 0x3333")
    if values != [0x1111, 0x2222, 0x3333]:
        t.fail(f"vmas_data reads {[hex(v) for v in values]} through the grader's walk; expected the file's "
               "0x1111 0x2222 0x3333: the data before the bss on their shared page was not copied from the ELF")
    nonzero = [i for i in range(600) if u64(w["bss"][i * 8:i * 8 + 8])]
    if nonzero:
        first = bss + nonzero[0] * 8
        file_word = embedded_bytes(kernel, arch, "vmas", seg.offset + (first - seg.vaddr), 8) if seg else None
        value = u64(w["bss"][nonzero[0] * 8:nonzero[0] * 8 + 8])
        # A page wholly past the file bytes gets no file byte at all, whatever populate copies for the shared
        # page: a word there that is not zero comes from a frame that was never zeroed.
        past = [i for i in nonzero if seg is not None and bss + i * 8 >= page_up(seg.vaddr + seg.filesz)]
        if past:
            at_past = bss + past[0] * 8
            t.fail(f"the bss reads bytes that are neither zeros nor the ELF file's: word {past[0]} of "
                   f"vmas_bss ({at_past:#x}, on a page past every file byte of the segment) holds "
                   f"{u64(w['bss'][past[0] * 8:past[0] * 8 + 8]):#x} ({len(nonzero)} nonzero words), where "
                   "no file byte is ever copied: the page's frame was not zeroed before use (a frame comes "
                   "from the allocator with a freed page's old bytes: populate must zero it, then copy the "
                   "file bytes)")
        if seg is not None and first >= seg.vaddr + seg.filesz and first // PAGE == (seg.vaddr + seg.filesz) // PAGE:
            follows = (f"; it is the word the ELF file holds at offset {seg.offset + first - seg.vaddr:#x}, among the "
                       "bytes that follow the segment's file bytes" if file_word is not None and u64(file_word) == value
                       else "")
            t.fail(f"the bss on the page it shares with the data reads bytes past the segment's file bytes: "
                   f"word {nonzero[0]} of vmas_bss ({first:#x}) holds {value:#x}, yet the data segment has only "
                   f"{seg.filesz:#x} bytes from the file (up to {seg.vaddr + seg.filesz:#x}){follows}: a page "
                   "gets its region's file bytes and zeros after them, never a whole page of the file")
        t.fail(f"{len(nonzero)} words of vmas_bss are not zero (first: word {nonzero[0]} at {first:#x}, "
               f"{value:#x}): the bss tail of the last file page and the bss pages after it must read as zeros")
    t.expect(rf"^vmas: bss at {bss:#x}: 0 nonzero words; data at {data:#x} intact proof={proof(t.token, 0):016x}$",
             "vmas's bss line")
    t.success()


# ---- a hole in the middle of a mapping --------------------------------------------------------

@lab_test(5, "munmap_hole")
def test_munmap_hole(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    in_area = mmap_area(kernel)

    def script(started):
        snap = t.call("VmaList").snap
        out, _ = (snap.register(r) for r in t.watch.proc["syscall_args"][:2])
        root = snap.lower_root
        mapped = sorted(va for va in user_pages(snap.dump(root), t.watch.layout) if in_area(va))
        after = t.call("Write").snap
        table = after.read_virt(out, 16 * 32, root)
        # The record as the process leaves (killed, or exiting when the touch was resolved).
        try:
            end = t.guest.stop_at(contract.EXIT)
            final = read_records(end, kernel).get(1)
        except BootEnded:
            final = None
        return dict(mapped=mapped, table=table, final=final)

    w = t.start("vmas:hole", script)
    m = t.expect(rf"^vmas: touching the hole at ({HEX})$", "vmas's hole line")
    hole = int(m[1], 16)
    at = hole - 3 * PAGE
    want = [at + i * PAGE for i in (0, 1, 2, 5, 6, 7)]
    vmas = [(u64(w["table"][i:i + 8]), u64(w["table"][i + 8:i + 16]), u64(w["table"][i + 16:i + 20]) & 0xffffffff)
            for i in range(0, len(w["table"]), 32)]
    around = [(s, e, p) for s, e, p in vmas if s < at + 8 * PAGE and at < e]
    if w["mapped"] != want:
        kept = [va for va in w["mapped"] if hole <= va < hole + 2 * PAGE]
        listed = [(s, e) for s, e, _ in around if s < hole + 2 * PAGE and hole < e]
        if kept and not listed:
            t.fail(f"{pages_left('munmap', hole, hole + 2 * PAGE, kept)} (the grader's walk of the root), "
                   "though the VMA list the kernel wrote into vmas's memory has no region there: munmap must "
                   "unmap the pages of the range and free their frames, not only forget its VMAs")
        t.fail(f"after munmap of pages 3-4 of 8 at {at:#x}, the grader's walk finds pages "
               f"{[hex(v) for v in w['mapped']]} mapped; expected {[hex(v) for v in want]} (the hole's frames "
               "freed, the ends kept)")
    expected = [(at, at + 3 * PAGE, PROT_READ | PROT_WRITE), (at + 5 * PAGE, at + 8 * PAGE, PROT_READ | PROT_WRITE)]
    if around != expected:
        t.fail(f"{hole_cut(around, at, hole)}: after munmap of pages 3-4 of 8 at {at:#x}, the VMA list the "
               "kernel wrote into vmas's memory (read from guest RAM) has "
               f"{[(hex(s), hex(e), p) for s, e, p in around]} there; expected two rw VMAs "
               f"[{at:#x}, {hole:#x}) and [{hole + 2 * PAGE:#x}, {at + 8 * PAGE:#x})")
    t.expect(rf"^vmas: hole: munmap -> 0; \d+ VMAs; ends sum 27 proof={proof(t.token, 27):016x}$", "the ends still work")
    if not user_faults(t.run, arch, hole):
        t.fail(f"QEMU's log shows no user-mode fault at {hole:#x}: the hole was never touched")
    final = w["final"]
    over = final.find(hole) if final is not None else None
    if over is not None and 1 not in parse_kills(t.run):
        t.fail(f"the touch of the hole at {hole:#x} was resolved, not refused: as vmas ends, its record (read "
               f"from guest RAM) covers the hole with {over}"
               + (", a region that is not a grows-down stack: the fault decision grew it down to the fault "
                  "(only a stack grows)" if not over.flags & GROWS_DOWN else "")
               + f"; expected no VMA at {hole:#x} and a kill naming none")
    if final is not None and over is None and 1 not in parse_kills(t.run):
        regions = ", ".join(str(v) for v in final.around(at, at + 8 * PAGE)) or "none"
        t.fail(f"the touch of the hole at {hole:#x} was allowed and its page brought in, though vmas's record "
               f"(read from guest RAM as it ends) has no region there (around it: {regions}): the fault "
               "decision allowed an address no region holds — VmaSet::find returned a region that does not "
               "contain it (a region holds [start, end): find must check the start of the region it finds, "
               "not only its end), or decide_fault allowed a fault for which find found nothing; expected a "
               "kill naming no VMA")
    killed(t.run, t.watch, 1, "page fault", "no VMA", hole)
    t.success()


# ---- mprotect ------------------------------------------------------------------------------------

@lab_test(5, "mprotect")
def test_mprotect(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)

    def script(started):
        # What vmas's protect mode gives its two pages, in order (user/programs/vmas.cpp): written while
        # rw-, read while r--, written again once rw-, then the first page r-- (the write it dies of).
        t.watch.prot_steps = ["rw-", "r--", "rw-"]
        snap, m = t.says(rf"vmas: writing the read-only page at ({HEX})",
                               "it would write the read-only page")
        at = int(m[1], 16)
        w = snap.walk(at, snap.lower_root)
        return dict(at=at, perms=w.perms.rwx() if w.mapped else None, user=w.mapped and w.perms.user,
                    value=u64(snap.read_virt(at, 8, snap.lower_root)) if w.mapped else None,
                    record=read_records(snap, kernel).get(1))

    w = t.start("vmas:protect", script)
    at, record = w["at"], w["record"]
    # The record first: after mprotect(PROT_READ) of page 0 of the two rw- pages, two regions.
    want = [(at, at + PAGE, "r--"), (at + PAGE, at + 2 * PAGE, "rw-")]
    have = [(v.start, v.end, v.rwx()) for v in record.around(at, at + 2 * PAGE)] if record else None
    if record_broken(record):
        t.fail(f"{record_broken(record)}; after mprotect(PROT_READ) of the first of two rw- pages at {at:#x}")
    if record is not None and have != want:
        unsorted = [v for a, v in zip(record.vmas, record.vmas[1:]) if v.start < a.end]
        if unsorted:
            why = (f"the VMA list is not sorted and disjoint: {unsorted[0]} overlaps or precedes the region before it "
                   "(a region split at the wrong index?)")
        elif len(have) == 1 and have[0][0] <= at and have[0][1] >= at + 2 * PAGE:
            why = (f"one VMA {record.around(at, at + PAGE)[0]} covers both pages: the rw- page after the range took "
                   "the range's new permissions: either protect() did not split the region at the range's end, or "
                   "the r-- page and its rw- neighbour were merged although their permissions differ")
        else:
            why = "the record does not hold the r-- page and the rw- page apart"
        t.fail(f"{why}: after mprotect(PROT_READ) of the first of two rw- pages at {at:#x}, vmas's VMAs there "
               f"(read from guest RAM) are {record.describe(at, at + 2 * PAGE)}; expected "
               f"[{at:#x}, {at + PAGE:#x}) r-- and [{at + PAGE:#x}, {at + 2 * PAGE:#x}) rw-")
    if w["perms"] != "r--" or not w["user"] or w["value"] != 8:
        if w["perms"] == "rw-" and record is not None and record.find(at) and not record.find(at).write:
            t.fail(f"mprotect changed the VMA but not the page: vmas's record (read from guest RAM) has "
                   f"{record.find(at)}, yet the grader's walk finds {at:#x} still mapped rw-: the entries of "
                   "the pages already brought in must get the region's new permissions (and the TLB be told)")
        t.fail(f"before the write, the grader's walk finds {at:#x} "
               f"{'mapped ' + str(w['perms']) if w['perms'] else 'not mapped'} holding {w['value']}; expected a "
               "user r-- page holding 8 (written while rw, then made read-only by mprotect)")
    t.expect(rf"^vmas: protect: 0 0 0; read 7 then wrote 8 proof={proof(t.token, 8):016x}$", "vmas's protect line")
    vector, error, mask = fault_expectation(arch, write=True)
    logged = [f for f in user_faults(t.run, arch, at) if f.vector == vector and f.error is not None
              and f.error & mask == error & mask]
    t.check(not logged and f"QEMU's log shows no user-mode write fault on the present page {at:#x}")
    k = parse_kills(t.run).get(1)
    if k is not None and k.address == at and "write to read-only VMA" not in k.reason and record is not None:
        t.fail(f"the fault decision allowed a write to a read-only VMA: the CPU refused a user write to "
               f"{at:#x} (QEMU's log), a present page the grader's walk found r-- in {record.find(at)} "
               f"(vmas's record, read from guest RAM), and the kill does not name the denial: '{k.reason}'; "
               "a write needs the VMA's write permission ('write to read-only VMA')")
    killed(t.run, t.watch, 1, "page fault", "write to read-only VMA", at)
    t.success()


# ---- PROT_NONE keeps the pages -------------------------------------------------------------------

NONE_WORDS = 8


@lab_test(5, "mprotect_none")
def test_mprotect_none(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    pattern = b"".join(derived(t.token, "vmas_none_word", i).to_bytes(8, "little") for i in range(NONE_WORDS))
    held_bit = fact(kernel, "held_entry_bit")
    address_mask = fact(kernel, "address_mask")

    def script(started):
        out = {}
        # 1. The page is rw- and holds the pattern: its frame, through the grader's walk.
        snap, m = t.says(rf"vmas: none: pattern at ({HEX})", "where its pattern is")
        at = out["at"] = int(m[1], 16)
        w = snap.walk(at, snap.lower_root)
        out["before"] = dict(perms=w.perms.rwx() if w.mapped else None, user=w.mapped and w.perms.user,
                             frame=w.pa if w.mapped else None,
                             data=snap.read_virt(at, len(pattern), snap.lower_root) if w.mapped else b"")
        # 2. At read(): PROT_NONE since mprotect. The leaf must be invalid to the MMU (bit 0 clear:
        # P on x86_64, the valid bit on AArch64) and still hold the frame, which still holds the
        # pattern; then read() returns EFAULT to user mode.
        snap = t.call("Read").snap
        out["read_buf"] = snap.register(t.watch.proc["syscall_args"][1])
        w = snap.walk(at, snap.lower_root)
        leaf = w.levels[-1] if w.levels else None
        raw = leaf.raw if leaf is not None else None
        frame = raw & address_mask if raw is not None else None
        out["during"] = dict(mapped=w.mapped, stop=w.stop_reason, level=leaf.name if leaf else None, raw=raw,
                             frame=frame, data=snap.read_phys(frame, len(pattern)) if frame else b"")
        if w.mapped:
            return out  # a readable buffer: read() would wait for console input; the checks below say why
        back = snap.register(t.watch.proc["syscall_return_pc"])
        out["read_result"] = signed(t.guest.stop_at(back).register(t.watch.proc["syscall_result"]))
        # 3. rw- again: the pattern is back where the program can read it.
        for _ in range(8):
            snap = t.call("Write").snap
            if snap.register(t.watch.proc["syscall_args"][1]) == at:
                continue  # write(1, at, 16) while PROT_NONE: nothing the grader can read
            if re.match(r"vmas: none: mprotect \S+ read", written(snap, t.watch.proc).decode(errors="replace")):
                break
        else:
            raise AssertionError("vmas never reported the page read/write again")
        w = snap.walk(at, snap.lower_root)
        out["after"] = dict(perms=w.perms.rwx() if w.mapped else None,
                            data=snap.read_virt(at, len(pattern), snap.lower_root) if w.mapped else b"")
        return out

    w = t.start("vmas:none", script)
    at = w["at"]
    before, during, after = w["before"], w["during"], w.get("after")
    if before["perms"] != "rw-" or not before["user"] or before["data"] != pattern:
        t.fail(f"before mprotect(PROT_NONE), the grader's walk finds {at:#x} "
               f"{'mapped ' + before['perms'] if before['perms'] else 'not mapped'}"
               f"{' holding other bytes than the pattern' if before['perms'] else ''}; expected a user rw- "
               "page holding the pattern the program wrote")
    raw = during["raw"]
    if during["mapped"]:
        t.fail(f"while {at:#x} is PROT_NONE, the grader's walk (the MMU's view) still finds it mapped "
               f"(leaf {during['level']} = {raw:#x}): a page that allows no access must be invalid to the "
               "MMU, or a system call's user copy (a plain load with a fix-up) would read it")
    if raw is None or raw & 1 or during["level"] not in ("PT", "L3"):
        t.fail(f"while {at:#x} is PROT_NONE, the walk stops at {during['stop']}, not at the page's own leaf: "
               "the page's tables were freed or never made")
    if not raw & held_bit or during["frame"] != before["frame"]:
        t.fail(f"while {at:#x} is PROT_NONE its leaf is {raw:#x}: expected the frame {before['frame']:#x} the "
               f"page had while rw- and the held bit {held_bit:#x} (the kernel's fact held_entry_bit): "
               "PROT_NONE must keep the page's frame, not drop it")
    if during["data"] != pattern:
        t.fail(f"while {at:#x} is PROT_NONE, its frame {during['frame']:#x} no longer holds the pattern the "
               "program wrote: the contents must survive mprotect")
    if w["read_buf"] != at or w["read_result"] != EFAULT:
        t.fail(f"read() into the PROT_NONE page {at:#x} returned {w['read_result']} to user mode (the "
               f"grader read the result register at the return); expected {EFAULT} (EFAULT)")
    vector, error, mask = fault_expectation(arch, user=False, mapped=False)
    kernel_priv = ARCHES[arch].kernel_privilege
    if not [f for f in t.run.log.faults if f.privilege == kernel_priv and f.address == at and f.vector == vector
            and f.error is not None and f.error & mask == error & mask]:
        t.fail(f"QEMU's log shows no kernel fault on the not-present page {at:#x}: read()'s copy into a "
               "PROT_NONE page must fault (and return EFAULT through its fix-up)")
    if after["perms"] != "rw-" or after["data"] != pattern:
        t.fail(f"after mprotect back to read/write, the grader's walk finds {at:#x} "
               f"{'mapped ' + after['perms'] if after['perms'] else 'not mapped'}"
               f"{'' if after['data'] == pattern else ' without the pattern'}; expected rw- with the pattern "
               "intact")
    t.expect(rf"^vmas: none: mprotect 0 read {EFAULT} write {EFAULT} mprotect 0; {NONE_WORDS} of {NONE_WORDS} words "
             rf"intact proof={proof(t.token, NONE_WORDS):016x}$", "vmas's none line")
    vector, error, mask = fault_expectation(arch, write=False, mapped=False)
    if not [f for f in user_faults(t.run, arch, at + 8) if f.vector == vector and f.error is not None
            and f.error & mask == error & mask]:
        t.fail(f"QEMU's log shows no user-mode read fault on the not-present page {at + 8:#x}")
    killed(t.run, t.watch, 1, "page fault", "access to inaccessible VMA", at + 8)
    t.success()


# ---- brk and sbrk --------------------------------------------------------------------------------

@lab_test(5, "brk")
def test_brk(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    count = t.pick("brk pages", 3, 9)
    base = image_end(kernel, arch)

    def script(started):
        t.watch.asked_breaks = [base + count * PAGE]
        seen = []
        for _ in range(3):  # before, grown, shrunk
            snap = t.call("ProcInfo").snap
            mapped = user_pages(snap.dump(snap.lower_root), t.watch.layout)
            heap = {va: mapped[va].perms.rwx() for va in range(base, base + count * PAGE, PAGE) if va in mapped}
            seen.append(dict(heap=heap, used=count_used(snap, *t.watch.bitmap)[0], record=read_records(snap, kernel).get(1)))
        return seen

    w = t.start(f"vmas:brk:{count}", script)
    grown, shrunk = w[1], w[2]
    want = {base + i * PAGE: "rw-" for i in range(count)}
    if grown["heap"] != want:
        t.fail(f"after sbrk({count} pages) and a touch of each, the grader's walk finds the heap pages "
               f"{ {hex(k): v for k, v in grown['heap'].items()} } mapped in [{base:#x}, "
               f"{base + count * PAGE:#x}); expected all {count}, rw-")
    if shrunk["heap"]:
        record, kept = shrunk["record"], sorted(shrunk["heap"])
        over = [v for v in record.around(base, base + count * PAGE)] if record is not None else None
        if over == []:
            t.fail(f"sbrk(-{count} pages) shrank the heap's VMA but left heap pages mapped: "
                   f"{pages_left('the shrink', base, base + count * PAGE, kept)} (the grader's walk), though "
                   f"vmas's record (read from guest RAM) has no region over [{base:#x}, "
                   f"{base + count * PAGE:#x}): the pages above the new break must be unmapped and their frames "
                   "freed")
        t.fail(f"after sbrk(-{count} pages) the heap pages {[hex(k) for k in kept]} are still mapped"
               + (f", and vmas's record (read from guest RAM) still has {', '.join(str(v) for v in over)} "
                  "there: the break moved down but neither the heap's VMA nor its pages did" if over else ""))
    if grown["used"] - shrunk["used"] < count:
        t.fail(f"shrinking the heap by {count} pages gave back {grown['used'] - shrunk['used']} frames "
               "(the frame allocator's bitmap, read from guest RAM)")
    m = t.expect(rf"^vmas: brk: base ({HEX}) old ({HEX}); frames (\d+) -> (\d+) -> (\d+); shrink ({HEX}); "
                 rf"wall ({HEX}); sbrk past it -> (-?\d+) proof=([0-9a-f]{{16}})$", "vmas's brk line")
    if int(m[1], 16) != base or int(m[8]) != ENOMEM:
        t.fail(f"the break starts at {m[1]} (expected {base:#x}, the page after the image) and sbrk past a "
               f"mapping returns {m[8]} (expected {ENOMEM})")
    t.run.expect_proof(m[9], int(m[4]) - int(m[3]), "the frames the heap took")
    t.success()


# ---- the stack grows, to a limit --------------------------------------------------------------

@lab_test(5, "stack_growth")
def test_stack_growth(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    depth = t.pick("stack depth", 24, 200)
    top = fact(kernel, "user_stack_top")
    limit = fact(kernel, "user_stack_limit")
    too_deep = limit // PAGE + 40

    def script(started):
        snap, _ = t.says(re.escape(f"vmas: stack: back from {depth} pages"),
                               f"it came back from {depth} pages of stack", looks=12)
        mapped = user_pages(snap.dump(snap.lower_root), t.watch.layout)
        return dict(stack=sum(1 for va in mapped if top - limit <= va < top))

    w = t.start(f"vmas:stack:{depth},vmas:stack:{too_deep}", script)
    if w["stack"] < depth:
        t.fail(f"back from {depth} pages of recursion, the grader's walk finds only {w['stack']} stack pages "
               "mapped: the stack did not grow")
    total = sum(k % 256 for k in range(1, depth + 1))
    t.expect(rf"^vmas: stack: back from {depth} pages proof={proof(t.token, total):016x}$", "the deep stack's line")
    k = parse_kills(t.run).get(2)
    floor = top - limit
    below = sorted({f.address for f in user_faults(t.run, arch) if f.address is not None
                    and floor - limit <= f.address < floor})
    if k is None and below:
        t.fail(f"the fault decision grew the stack below its limit: the process recursing {too_deep} pages "
               f"faulted at {len(below)} address(es) below the lowest stack address {floor:#x} (top - limit, "
               f"QEMU's log; the lowest {below[0]:#x}) and was not killed: a fault below the limit must be "
               "refused ('stack limit'), not grown into")
    if k is not None and k.how == "stack limit" and k.address is not None and floor <= k.address < top:
        page = k.address // PAGE * PAGE
        where = ("the lowest page the limit allows (top - limit): the comparison with the floor leaves the floor's "
                 "own page out (> for >=)" if page == floor else
                 f"{(page - floor) // PAGE} page(s) above the lowest page the limit allows ({floor:#x}, top - limit)")
        t.fail(f"the stack was refused at {k.address:#x} with 'stack limit', on {where}; the stack may "
               f"grow down to {floor:#x} and no further: {k.reason}")
    gap = fact(kernel, "user_stack_gap")
    if k is not None and k.address is not None and floor - gap <= k.address < floor and no_vma_verdict(
            k.reason.split("; the page", 1)[0]):
        t.fail(f"the fault at {k.address:#x}, in the guard gap below the stack's limit (the {gap // PAGE} "
               f"page(s) below {floor:#x}, top - limit), was denied 'no VMA': the fault decision must give "
               "the gap its own verdict, 'stack limit' (decide_fault: a page below the floor but within the "
               f"gap is a stack overflow, not an address with no region near it): {k.how}: {k.reason}")
    if k is None or k.how != "stack limit" or "stack limit" not in k.reason or k.address is None \
            or not top - limit - PAGE <= k.address < top - limit:
        t.fail(f"the process recursing {too_deep} pages was not killed with 'stack limit' just below "
               f"{top - limit:#x}: {k.how + ' at ' + hex(k.address or 0) + ': ' + k.reason if k else 'no kill line'}")
    t.check(not user_faults(t.run, arch, k.address) and f"QEMU's log shows no user-mode fault at {k.address:#x}")
    t.success()


# ---- the VMA list against the grader's walk ---------------------------------------------------

@lab_test(5, "vma_list_walk")
def test_vma_list_walk(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    top = fact(kernel, "user_stack_top")
    segs = segments(user_elf(kernel, arch, "vmas"))

    def script(started):
        snap = t.call("VmaList").snap
        out, count = (snap.register(r) for r in t.watch.proc["syscall_args"][:2])
        root = snap.lower_root
        after = t.call("Write").snap
        return dict(table=after.read_virt(out, count * 32, root), count=count,
                    mapped={va: (r.perms.write, r.perms.execute, r.perms.user)
                            for va, r in user_pages(after.dump(root), t.watch.layout).items()})

    w = t.start("vmas:list", script)
    m = t.expect(r"^vmas: (\d+) VMAs proof=([0-9a-f]{16})$", "vmas's VMA count")
    n = int(m[1])
    t.run.expect_proof(m[2], n, "the VMA count")
    tab = w["table"]
    vmas = [dict(start=u64(tab[i:i + 8]), end=u64(tab[i + 8:i + 16]), prot=u64(tab[i + 16:i + 20]),
                 kind=u64(tab[i + 20:i + 24]), offset=u64(tab[i + 24:i + 32]))
            for i in range(0, min(n, w["count"]) * 32, 32)]
    problems = []
    for s in segs:
        start, end = s.vaddr // PAGE * PAGE, (s.vaddr + s.memsz + PAGE - 1) // PAGE * PAGE
        prot = (PROT_READ if s.flags & PF_R else 0) | (PROT_WRITE if s.flags & PF_W else 0) | \
               (PROT_EXEC if s.flags & PF_X else 0)
        offset = s.offset - (s.vaddr - start)
        cover = [v for v in vmas if v["start"] <= start and end <= v["end"] and v["kind"] == KIND_IMAGE
                 and v["prot"] == prot and v["offset"] + (start - v["start"]) == offset]
        if not cover:
            problems.append(f"no image VMA with prot {prot} and file offset {offset:#x} covers the segment "
                            f"[{start:#x}, {end:#x}) of the ELF file")
    if not any(v["end"] == top and v["kind"] == KIND_STACK for v in vmas):
        problems.append(f"no stack VMA ends at the stack's top {top:#x}")
    for va, (writable, executable, user) in sorted(w["mapped"].items()):
        v = next((v for v in vmas if v["start"] <= va < v["end"]), None)
        if v is None:
            problems.append(f"the root maps {va:#x}, which no VMA covers")
        elif not user or writable != bool(v["prot"] & PROT_WRITE) or executable != bool(v["prot"] & PROT_EXEC):
            problems.append(f"the root maps {va:#x} {'w' if writable else '-'}{'x' if executable else '-'} "
                            f"{'user' if user else 'kernel'}; its VMA [{v['start']:#x}, {v['end']:#x}) has prot {v['prot']}")
    for v in vmas:
        line = (rf"^vmas: vma \[{v['start']:#x}, {v['end']:#x}\) prot {v['prot']} kind \w+ offset {v['offset']:#x}$")
        if not t.run.search(line):
            problems.append(f"vmas printed no line for the VMA [{v['start']:#x}, {v['end']:#x}) it received")
    if problems:
        t.fail("the VMA list the kernel wrote into vmas's memory (read from guest RAM) against the ELF file "
               "and the grader's own walk of the root:\n  " + "\n  ".join(problems[:12]))
    t.success()


# ---- random operations against a model --------------------------------------------------------

@lab_test(5, "random_ops")
def test_random_ops(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    ops = 1000
    marker = t.pick("random marker", 100, ops - 100)
    checksum, model = random_model(t.token, ops, marker)
    stop = user_symbol(kernel, arch, "vmas", "vmas_marker").address

    mismatch = user_symbol(kernel, arch, "vmas", "vmas_mismatch").address
    frames, wrong = {}, {}

    def first_broken(snap):
        # The first record (read from guest RAM) that breaks the set's rules, at any of the stops.
        if "broken" not in wrong:
            found = next((b for b in map(record_broken, read_records(snap, kernel).values()) if b), None)
            if found:
                wrong["broken"] = found

    def first_wrong(snap):
        # The program's first result that differs from its model: on the way to any stop.
        if "at" not in wrong:
            wrong["at"] = (snap.argument(0), signed(snap.argument(1)), signed(snap.argument(2)))
            wrong["record"] = next((r for r in read_records(snap, kernel).values() if r.name == "vmas"), None)
        first_broken(snap)

    def script(started):
        t.guest.side_stop(mismatch, first_wrong)
        snap = t.guest.stop_at(stop)
        first_broken(snap)
        root = snap.lower_root
        seen = {(va - WINDOW) // PAGE: (r.perms.rwx(), r.perms.user, u64(snap.read_virt(va, 8, root)))
                for va, r in user_pages(snap.dump(root), t.watch.layout).items() if WINDOW <= va < WINDOW + WINDOW_PAGES * PAGE}
        end = t.watch.checkpoint(t.guest, "ended")
        frames["after"] = count_used(end, *t.watch.bitmap)[0]
        return dict(seen=seen)

    t.boot(f"vmas:random:{ops}:{marker}", script, explain=False)
    # The first operation the kernel answered otherwise than the model heads every failure: the
    # checks below (and a kill before the grader's stop) are what it led to.
    cause = random_mismatch(t.token, ops, *wrong["at"]) if "at" in wrong else None
    against = record_against_model(wrong.get("record"), t.token, ops, wrong["at"][0]) if "at" in wrong else None
    if against:
        cause = f"{against}\n{cause}"
    if "broken" in wrong:
        cause = f"{wrong['broken']}\n{cause}" if cause else wrong["broken"]
    if cause and t.run.witness is None:
        t.run.witness_failure = f"{cause}\n{t.run.witness_failure}"
    w = t.witness()

    def fail(message):
        t.fail(f"{cause}\n{message}" if cause else message)

    t.check("broken" in wrong and cause)
    problems = []
    for page, (rwx, user, value) in sorted(w["seen"].items()):
        want = model.get(page)
        va = WINDOW + page * PAGE
        if want is None or not want[0] & PROT_READ:
            problems.append(f"{va:#x} is mapped {rwx}, but the model has {'no mapping' if want is None else 'PROT_NONE'} there")
            continue
        if not user or rwx != ("rw-" if want[0] & PROT_WRITE else "r--"):
            problems.append(f"{va:#x} is mapped {rwx} {'user' if user else 'kernel'}; the model's prot is {want[0]}")
        if value != want[1]:
            problems.append(f"{va:#x} holds {value:#x}; the model wrote {want[1]:#x}")
    if problems:
        fail(f"before operation {marker} of {ops}, the grader's walk of the root against its own replay of the "
             "program's model:\n  " + "\n  ".join(problems[:12]))
    line = rf"^vmas: random: {ops} operations, (\d+) mismatches, checksum ([0-9a-f]{{16}}) proof=([0-9a-f]{{16}})$"
    m = t.run.search(line)
    if m is None:
        fail(f"missing: vmas's random line (no line matches /{line}/)")
    if int(m[1]) != 0 or int(m[2], 16) != checksum:
        fail(f"the program counted {m[1]} results that differ from its model; its checksum {m[2]} is not the "
             f"grader's replay ({checksum:016x}): some system call returned another result than the model's")
    t.run.expect_proof(m[3], checksum, "the checksum")
    if frames.get("after") != t.watch.frames_before[0]:
        fail(f"frames in use before the run {t.watch.frames_before[0]}, after every process was reaped "
             f"{frames.get('after')} (the allocator's bitmap, read from guest RAM): frames leaked")
    t.success()


# ---- a fetch from a region without execute ----------------------------------------------------


@lab_test(5, "no_execute")
def test_no_execute(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)

    def script(started):
        _, m = t.says(rf"vmas: noexec: calling ({HEX}) in the read-only page at ({HEX})",
                            "where it would call")
        target, at = int(m[1], 16), int(m[2], 16)
        # Where the kernel ends the process: its root still live, the page as the faults left it.
        end = t.guest.stop_at(KILL_STOP)
        w = end.walk(at, end.lower_root)
        return dict(target=target, at=at, perms=w.perms.rwx() if w.mapped else None,
                    record=read_records(end, kernel).get(1))

    w = t.start("vmas:noexec", script)
    target, at = w["target"], w["at"]
    if target != at + derived(t.token, "vmas_noexec_word") * 4:
        t.fail(f"vmas said it would call {target:#x}, not the offset of the page {at:#x} the token picks: "
               "it is not the grader's program")
    region = w["record"].find(at) if w["record"] is not None else None
    fetches = [f for f in user_faults(t.run, arch, target) if ARCHES[arch].access(f.error or 0)[2]]
    if not fetches:
        t.fail(f"QEMU's log shows no user-mode instruction fetch fault at {target:#x}: vmas's call into its "
               "read-only page never faulted")
    if w["perms"] is not None or len(fetches) > 1:
        seen = [f"the grader's walk finds the page {at:#x} mapped {w['perms']} as the kernel kills vmas"
                if w["perms"] is not None else "",
                f"the CPU faulted {len(fetches)} times fetching {target:#x} (QEMU's log), the last time on the "
                "page present" if len(fetches) > 1 else ""]
        t.fail("the fault decision allowed an instruction fetch from a region without execute: vmas called "
               f"{target:#x}, in its region {region if region is not None else '(none in its record)'} (its "
               f"record, read from guest RAM), and {' and '.join(x for x in seen if x)}: the first fetch "
               "must end the process ('execute in non-executable VMA'), not bring the page in")
    killed(t.run, t.watch, 1, "page fault", "execute in non-executable VMA", target)
    t.success()


# ---- a cut image region keeps reading the file where it should --------------------------------


@lab_test(5, "image_cut")
def test_image_cut(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    cut = t.pick("cut page", 1, TABLE_PAGES - 2)
    elf = user_elf(kernel, arch, "vmas")
    table = user_symbol(kernel, arch, "vmas", "vmas_table").address
    seg = next(g for g in segments(elf) if g.vaddr <= table < g.vaddr + g.filesz)
    hole = table + cut * PAGE

    def script(started):
        snap = t.call("VmaList").snap   # after the cut and every read
        root = snap.lower_root
        walks = {p: snap.walk(table + p * PAGE, root) for p in range(TABLE_PAGES)}
        pages = {p: (w.perms.rwx(), snap.read_phys(w.pa, PAGE)) if w.mapped else None for p, w in walks.items()}
        return dict(record=read_records(snap, kernel).get(1), pages=pages)

    w = t.start(f"vmas:cut:{cut}", script)
    record, pages = w["record"], w["pages"]
    t.check(record_broken(record) and f"{record_broken(record)}; after vmas's munmap in the middle of its image")
    data = elffile.elf(elf).data

    def file_offset(va):
        return seg.offset + (va - seg.vaddr)

    region_start = page_down(seg.vaddr)
    if pages[cut] is not None or (record is not None and record.find(hole) is not None):
        t.fail(f"after munmap of page {cut} of vmas_table ({hole:#x}), "
               + (f"the grader's walk finds it mapped {pages[cut][0]}" if pages[cut] is not None else
                  f"vmas's record (read from guest RAM) still covers it with {record.find(hole)}")
               + ": munmap of one page of an image region must cut it out")
    for side, va in (("head", table + (cut - 1) * PAGE), ("tail", hole + PAGE)):
        v = record.find(va) if record is not None else None
        if v is None:
            t.fail(f"after munmap of page {cut} of vmas_table ({hole:#x}), vmas's record (read from guest "
                   f"RAM) has no region at {va:#x}, in the cut region's {side}: the cut removed more than the "
                   "page")
        if v.kind != KIND_IMAGE or v.offset != file_offset(v.start):
            kept = (f": the {side} kept the file offset of the region's old start {region_start:#x}: cutting an image "
                    "region must move its tail's file offset by the bytes cut off (tail_of), or the tail's pages are "
                    "read from the region's old start" if side == "tail" and v.offset == file_offset(region_start)
                    else ": a cut region's file offset must follow its start")
            t.fail(f"munmap of page {cut} of vmas_table ({hole:#x}) cut vmas's read-only image region in "
                   f"two, and the {side} left, {v} (vmas's record, read from guest RAM), starts at {v.start:#x} "
                   f"with file offset {v.offset:#x}, where the ELF file holds {v.start:#x}'s bytes at offset "
                   f"{file_offset(v.start):#x}{kept}")
    for p in range(TABLE_PAGES):
        va = table + p * PAGE
        if p == cut or pages[p] is None:
            continue
        perms, got = pages[p]
        want = data[file_offset(va):file_offset(va) + PAGE]
        if got != want:
            misplaced = programs.misplaced_bytes(data, "vmas", va, got)
            t.fail(f"after the cut at page {cut} of vmas_table, its page {p} ({va:#x}, the "
                   f"{'head' if p < cut else 'tail'}, brought in after the cut) "
                   + (misplaced if misplaced else "holds other bytes than the ELF file has for it "
                      f"(offset {file_offset(va):#x})") + " (the grader's walk of vmas's root)")
        t.check(perms != "r--" and f"vmas_table's page {p} ({va:#x}) is mapped {perms}; its segment is read-only (r--)")
    slot = derived(t.token, "vmas_cut_slot", cut)
    total = sum(table_word(p * TABLE_WORDS + slot) for p in range(TABLE_PAGES) if p != cut) & MASK64
    t.expect(rf"^vmas: cut: munmap of {hole:#x} -> 0; \d+ VMAs; 0 wrong words, sum {total:#x} "
             rf"proof={proof(t.token, total):016x}$", "vmas's cut line (every word read back as the file has it)")
    t.success()


# ---- boundaries: each side of a decision the lab's functions make ---------------------------------

@lab_test(5, "brk_unaligned")
def test_brk_unaligned(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    odd = t.pick("brk odd bytes", 1, PAGE - 1)
    pages = t.pick("brk odd pages", 2, 6)
    base = image_end(kernel, arch)
    end = base + odd + pages * PAGE

    def script(started):
        t.watch.asked_breaks = [base + odd, end]
        snap = t.call("VmaList").snap   # after both sbrk calls and the touches
        root = snap.lower_root
        mapped = user_pages(snap.dump(root), t.watch.layout)
        heap = {va: mapped[va].perms.rwx() for va in range(base, page_up(end), PAGE) if va in mapped}
        out = dict(record=read_records(snap, kernel).get(1), heap=heap)
        snap = t.call("VmaList").snap   # back down to the unaligned break
        w = snap.walk(base + odd - 1, root)
        out["shrunk"] = dict(record=read_records(snap, kernel).get(1), perms=w.perms.rwx() if w.mapped else None,
                             byte=snap.read_virt(base + odd - 1, 1, root)[0] if w.mapped else None)
        return out

    w = t.start(f"vmas:brkodd:{odd}:{pages}", script)
    record = w["record"]
    t.check(record is None and "the grader could not read vmas's record (VMA list) from guest RAM at its vma_list call")
    heap = [v for v in record.around(base, page_up(end))]
    if record.brk == base + odd and end > page_up(base + odd):
        t.fail(f"brk from a break that is not page aligned was refused: vmas moved the break to "
               f"{base + odd:#x} ({odd} bytes into the heap's first page), then asked for {pages} pages more "
               f"(up to {end:#x}); its record (read from guest RAM) still has the break at {record.brk:#x} and "
               f"the heap as {record.describe(base, page_up(end))}: the heap region already covers the old "
               f"break's page up to {page_up(base + odd):#x}, so the growth starts there (align_up of the old "
               "break), not at the break itself (an unaligned region is refused, one from the break's page "
               "overlaps)")
    if record.brk != end:
        rounded = (", the top of the break's page: the rounded top was stored as the break (it bounds the heap region "
                   "only)" if record.brk == page_up(end) else "")
        t.fail(f"the break in vmas's record (read from guest RAM) is {record.brk:#x}, not the break asked "
               f"for, {end:#x} (sbrk by {odd} bytes, then {pages} pages){rounded}; brk must keep the break "
               "where it was asked, unaligned")
    if len(heap) != 1 or heap[0].start != base or heap[0].end != page_up(end) or heap[0].rwx() != "rw-":
        t.fail(f"after the break moved to {base + odd:#x} and then {pages} pages up to {end:#x}, vmas's heap "
               f"record (read from guest RAM) is {record.describe(base, page_up(end))}; expected one rw- heap "
               f"region [{base:#x}, {page_up(end):#x}) (the growth from the page above the old break joins "
               "the heap)")
    touched = {page_down(base + odd - 1)} | {page_down(base + odd + i * PAGE) for i in range(pages)}
    if any(w["heap"].get(va) != "rw-" for va in touched):
        t.fail(f"the grader's walk finds the heap pages {({hex(k): v for k, v in w['heap'].items()})} mapped; "
               f"vmas touched {', '.join(hex(va) for va in sorted(touched))}: expected each mapped rw-")
    shrunk = w["shrunk"]
    kept = shrunk["record"].around(base, page_up(end)) if shrunk["record"] is not None else []
    if [(v.start, v.end) for v in kept] != [(base, page_up(base + odd))] or shrunk["perms"] != "rw-" \
            or shrunk["byte"] != 0x5A:
        t.fail(f"sbrk back down to the unaligned break {base + odd:#x} left vmas's heap as "
               f"{shrunk['record'].describe(base, page_up(end)) if shrunk['record'] else '(unread)'} (its record, "
               f"read from guest RAM), and the grader's walk finds the break's page {base:#x} "
               + (f"mapped {shrunk['perms']} holding {shrunk['byte']:#x} at {base + odd - 1:#x}"
                  if shrunk["perms"] else "not mapped")
               + f"; expected the heap [{base:#x}, {page_up(base + odd):#x}) with that page kept and the byte "
                 "0x5a vmas wrote there: a shrink keeps the page that holds the new break (align_up), and "
                 "frees only the pages above it")
    total = sum(i + 1 for i in range(pages))
    t.expect(rf"^vmas: brkodd: shrunk -> {end}; break {base + odd:#x}; byte 0x5a$", "vmas's line after the shrink")
    t.expect(rf"^vmas: brkodd: base {base:#x} break {base + odd:#x} -> {base} grow {pages} pages -> {base + odd}; "
             rf"break {end:#x}; \d+ VMAs; sum {total} proof={proof(t.token, total + end - base):016x}$",
             "vmas's brkodd line")
    t.success()


@lab_test(5, "stack_jump")
def test_stack_jump(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    pages = t.pick("jump pages", 3, 12)
    top = fact(kernel, "user_stack_top")

    def script(started):
        snap, m = t.says(rf"vmas: jump: touched ({HEX}), (\d+) pages down",
                               "where its deep first touch was")
        low = int(m[1], 16)
        mapped = user_pages(snap.dump(snap.lower_root), t.watch.layout)
        return dict(low=low, record=read_records(snap, kernel).get(1),
                    stack=sorted(va for va in mapped if va < top and va >= page_down(low)))

    w = t.start(f"vmas:jump:{pages}", script)
    low, record = w["low"], w["record"]
    t.check(record is None and "the grader could not read vmas's record (VMA list) from guest RAM after its deep touch")
    stacks = [v for v in record.vmas if v.kind == KIND_STACK]
    whole = [v for v in stacks if v.start <= page_down(low) and v.end == top]
    if len(stacks) != 1 or not whole:
        gaps = [(a.end, b.start) for a, b in zip(stacks, stacks[1:]) if a.end < b.start]
        t.fail(f"a first touch of the stack at {low:#x}, {pages} pages below the page the program ran on, "
               f"left the stack's record (read from guest RAM) as {len(stacks)} region(s): "
               f"{', '.join(str(v) for v in stacks[:4])}"
               + (f", with a hole [{gaps[0][0]:#x}, {gaps[0][1]:#x}) between them" if gaps else "")
               + ": growing the stack down to a fault must extend the stack's region from the faulting page "
                 "up to where it starts (grow_stack), not record only the page that faulted")
    if page_down(low) not in w["stack"]:
        t.fail(f"after vmas's first touch at {low:#x}, the grader's walk does not find its page mapped")
    total = sum((i + 1) & 0xff for i in range(pages)) + 0x4a
    t.expect(rf"^vmas: jump: back, \d+ VMAs, sum {total} proof={proof(t.token, total):016x}$", "vmas's jump line")
    t.success()


@lab_test(5, "merge_back")
def test_merge_back(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    page = t.pick("merge page", 1, TABLE_PAGES - 2)
    elf = user_elf(kernel, arch, "vmas")
    table = user_symbol(kernel, arch, "vmas", "vmas_table").address
    seg = next(g for g in segments(elf) if g.vaddr <= table < g.vaddr + g.filesz)
    in_area = mmap_area(kernel)

    bss_page = page_down(user_symbol(kernel, arch, "vmas", "vmas_bss").address + 599 * 8)
    data_seg = next(g for g in segments(elf) if g.vaddr <= bss_page < g.vaddr + g.memsz)
    if bss_page < page_up(data_seg.vaddr + data_seg.filesz):
        raise AssertionError(f"vmas_bss's last page {bss_page:#x} holds file bytes: rebuild user/programs/vmas")

    def script(started):
        snap = t.call("VmaList").snap   # after every merge and the table's reads
        root = snap.lower_root
        record = read_records(snap, kernel).get(1)
        b = snap.walk(bss_page, root)
        bss = (b.perms.rwx(), snap.read_phys(b.pa, PAGE)) if b.mapped else None
        walks = {p: snap.walk(table + p * PAGE, root) for p in range(TABLE_PAGES)}
        pages = {p: snap.read_phys(w.pa, PAGE) if w.mapped else None for p, w in walks.items()}
        anon = [v for v in (record.vmas if record else []) if in_area(v.start) and v.kind == KIND_ANONYMOUS]
        return dict(record=record, pages=pages, anon=anon, bss=bss)

    w = t.start(f"vmas:merge:{page}", script)
    record, anon = w["record"], w["anon"]
    t.check(record is None and "the grader could not read vmas's record (VMA list) from guest RAM at its vma_list call")
    t.check(record_broken(record) and f"{record_broken(record)}; after vmas's merges, at its vma_list call")
    said = t.run.search(rf"^vmas: merge: at ({HEX}):")
    # (where vmas's mmap landed: its line, else the lowest anonymous region of the mmap area)
    at = int(said[1], 16) if said else min((v.start for v in anon), default=0)
    first = [v for v in anon if v.start < at + 4 * PAGE and at < v.end]
    if [(v.start, v.end, v.rwx()) for v in first] != [(at, at + 4 * PAGE, "rw-")]:
        t.fail(f"mprotect of the middle of three rw- pages at {at:#x} to r-- and back to rw- left vmas's record "
               f"(read from guest RAM) as {record.describe(at, at + 4 * PAGE)}; expected one region "
               f"[{at:#x}, {at + 4 * PAGE:#x}) rw-: three neighbours with the same permissions are one region "
               "again (merge_range: after a merge, compare the merged region with its next neighbour too)")
    gap = at + 8 * PAGE
    second = [v for v in anon if v.start < gap + 3 * PAGE and gap < v.end]
    if [(v.start, v.end, v.rwx()) for v in second] != [(gap, gap + 3 * PAGE, "rw-")]:
        t.fail(f"mmap of one rw- page into the one-page gap at {gap + PAGE:#x} between two rw- regions left "
               f"vmas's record (read from guest RAM) as {record.describe(gap, gap + 3 * PAGE)}; expected one "
               f"region [{gap:#x}, {gap + 3 * PAGE:#x}): a new region that touches both neighbours joins both "
               "(VmaSet::insert)")
    start, end = page_down(seg.vaddr), page_up(seg.vaddr + seg.memsz)
    file_end = seg.vaddr + seg.filesz    # the segment's file bytes end here
    image = record.around(start, end)
    hole = table + page * PAGE
    short = [v for v in image if v.file_size < min(file_end, v.end) - v.start]
    if short:
        v = short[0]
        t.fail(f"vmas made page {page} of vmas_table ({hole:#x}) rw- and then r-- again, cutting its read-only "
               f"image region in three and joining it back: the record (read from guest RAM) now holds {v}, "
               f"{v.file_size:#x} file bytes where the ELF file has {min(file_end, v.end) - v.start:#x} for "
               f"[{v.start:#x}, {v.end:#x}): the file bytes of the part joined on the right were dropped "
               "(merged() must add both parts' file sizes), so its pages come in as zeros")
    if [(v.start, v.end) for v in image] != [(start, end)] or \
            any(v.offset != seg.offset - (seg.vaddr - start) for v in image):
        t.fail(f"page {page} of vmas_table ({hole:#x}) made rw- and back to r-- left the read-only image "
               f"region as {record.describe(start, end)} (read from guest RAM); expected the segment's one "
               f"region [{start:#x}, {end:#x}) with file offset {seg.offset - (seg.vaddr - start):#x}: the "
               "parts must be joined back (mergeable image neighbours: file offsets that follow on)")
    data = elffile.elf(elf).data
    for p in range(TABLE_PAGES):
        va = table + p * PAGE
        want = data[seg.offset + va - seg.vaddr:seg.offset + va - seg.vaddr + PAGE]
        got = w["pages"][p]
        if got is not None and got != want:
            what = "zeros" if got == bytes(PAGE) else "other bytes than the ELF file has for it"
            t.fail(f"after page {page} of vmas_table was made rw- and back to r--, its page {p} ({va:#x}, "
                   f"brought in after) holds {what} (the grader's walk of vmas's root): an image region cut "
                   "and joined back must still read its file bytes at their own offsets")
    tail = record.find(bss_page)
    if tail is None or tail.kind != KIND_IMAGE or tail.file_size > tail.end - tail.start \
            or (tail.start >= data_seg.vaddr + data_seg.filesz and tail.file_size != 0):
        t.fail(f"mprotect(PROT_READ) of {bss_page:#x}, a page of vmas's data segment past its file bytes (they "
               f"end at {data_seg.vaddr + data_seg.filesz:#x}), cut its image region there; the part from "
               f"{bss_page:#x} is {tail or 'gone'} in the record (read from guest RAM)"
               + (f": {tail.file_size:#x} file bytes for a region that starts past them: a cut past the file "
                  "bytes leaves the tail none (tail_of), or its pages come in with bytes from past the file"
                  if tail is not None and tail.file_size else ""))
    if w["bss"] is None or w["bss"][0] != "r--" or w["bss"][1] != bytes(PAGE):
        t.fail(f"vmas_bss's page {bss_page:#x}, made r-- before it was touched and then read, is "
               + (f"mapped {w['bss'][0]} holding {'zeros' if w['bss'][1] == bytes(PAGE) else 'bytes that are not zero'}"
                  if w["bss"] else "not mapped")
               + " in the grader's walk: expected r-- and zeros (bss past the file's bytes)")
    t.expect(rf"^vmas: merge: bss page {bss_page:#x} read-only -> 0, word 0x0$", "vmas's bss line")
    slot = derived(t.token, "vmas_merge_slot", page)
    total = sum(table_word(p * TABLE_WORDS + slot) for p in range(TABLE_PAGES)) & MASK64
    m = t.expect(rf"^vmas: merge: at {at:#x}: 0 0 0 (\d+) (\d+) (\d+) 0 0; \d+ VMAs; 0 wrong words, "
                 rf"sum ({HEX}) proof=([0-9a-f]{{16}})$", "vmas's merge line (every call succeeded)")
    t.check(int(m[4], 16) != total and f"vmas's table words sum to {m[4]}, the ELF file's to {total:#x}")
    t.run.expect_proof(m[5], total, "the table's words")
    t.success()


@lab_test(5, "exec_only")
def test_exec_only(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch, watch=VmaWatch)
    fn = user_symbol(kernel, arch, "vmas", "vmas_xonly").address

    def script(started):
        snap, m = t.says(rf"vmas: xonly: mprotect of ({HEX}) to --x -> (-?\d+)",
                               "that it made its page execute-only")
        at = int(m[1], 16)
        w = snap.walk(at, snap.lower_root)
        return dict(at=at, result=int(m[2]), mapped=w.mapped, perms=w.perms.rwx() if w.mapped else None,
                    user=w.mapped and w.perms.user, record=read_records(snap, kernel).get(1))

    w = t.start("vmas:xonly", script)
    at, record = w["at"], w["record"]
    if at != fn:
        t.fail(f"vmas said it made {at:#x} execute-only, not vmas_xonly's page {fn:#x}: not the grader's program")
    region = record.find(at) if record is not None else None
    if region is None or region.rwx() != "--x":
        t.fail(f"after mprotect(PROT_EXEC) of {at:#x}, vmas's record (read from guest RAM) has "
               f"{region or 'no region'} there; expected an execute-only (--x) region")
    if not w["mapped"] or "x" not in w["perms"] or "w" in w["perms"] or not w["user"]:
        t.fail(f"mprotect(PROT_EXEC) of {at:#x}, a text page already brought in, left it "
               + (f"mapped {w['perms']}" if w["mapped"] else "invalid to the MMU (held, as under PROT_NONE)")
               + " in the grader's walk of vmas's root: an execute-only region allows an access, so its pages "
                 "stay present, executable and readable to the MMU (the page's permissions are "
                 "mapped_page_perms() of the region, not its bare permissions)")
    said = t.run.search(rf"^vmas: xonly: reading the execute-only page at ({HEX})$")
    x = int(said[1], 16) if said else None
    k = parse_kills(t.run).get(1)
    if x is not None and k is not None and k.address == x + 8:
        t.fail(f"a read of an execute-only region was refused: vmas read {x + 8:#x}, in a --x page it mapped "
               f"and never touched, and the kill says '{k.reason}': a region that allows any access allows "
               "reads (every page the MMU uses is readable: permits() refuses only what the region denies)")
    t.expect(rf"^vmas: xonly: called {at:#x} again proof={proof(t.token, at):016x}$", "vmas's second call")
    t.expect(r"^vmas: xonly: read 0x0$", "vmas's read of an execute-only page (zeros)")
    if not user_faults(t.run, arch, x + 8):
        t.fail(f"QEMU's log shows no user-mode fault at {x + 8:#x}: the execute-only page was never read")
    t.success()
