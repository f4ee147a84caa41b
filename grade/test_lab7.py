"""Lab 7: swap, witnessed from outside the kernel. Points and timeouts: labs/07-swap/lab.toml.

Every boot attaches a swap disk and caps the resident user frames (userframes=N); the programs
(user/programs/overcommit.cpp, swapfork.cpp, swapbuf.cpp, swapkeep.cpp) fill their pages with
token-derived words. The grader stops at every eviction, write-back, disk write and disk read
(pagoda_grade/swap.py, SwapWatch), walks every root of the registry there, reads the swap state
and the frame allocator's bitmap in guest RAM and the disk image on the host, and checks the
rules of labs/07-swap/README.md; QEMU's log holds the faults and the disk's requests. The kernel's
lines and its swap_info counters are never believed."""
from pagoda_grade import lab_test
from pagoda_grade.proof import proof
from pagoda_grade.swap import (Format, SwapState, SwapWatch, World, baseline, checkpoint, disk_requests, image_path,
                               image_slot, overcommit_versions, placement_problem, seed_of, swap_page, syscalls)
from pagoda_grade.witness import ARCHES, PAGE, pick_in
from test_lab3 import syscall_number

MEMORY = "64M"
SLOTS = 1024
YIELD, EVICT, EXIT, WRITE, READ = (syscall_number(n) for n in ("Yield", "Evict", "Exit", "Write", "Read"))
MUNMAP, EXEC, FORK, GETPID = (syscall_number(n) for n in ("Munmap", "Exec", "Fork", "GetPid"))


def swap_boot(boot, kernel, arch, spec, body, token, cap=64, slots=SLOTS, clock=False, ended=True):
    """Boots @p spec (run=) with a cap of @p cap frames and a disk of @p slots slots; @p body(guest,
    watch, before) runs between the run's 'before' checkpoint and its end, where frames and slots
    must be back at the baseline. The Run, its witness the body's result."""
    def script(guest):
        before = checkpoint(guest, kernel, "before")
        watch = SwapWatch(guest, kernel, arch, image_path(guest), clock=clock)
        result = body(guest, watch, before)
        if ended:
            baseline(guest, kernel, watch, before)
        return result, watch
    run = boot(args={"run": spec, "userframes": cap}, token=token, witness=script, memory=MEMORY,
               swap=slots * PAGE)
    if run.witness is None:
        run.fail(run.witness_failure or "the grader's checks never finished")
    run.expect_outcome("success")
    return run


def faults_at(guest, arch, va, after=0):
    """Page faults QEMU logged at page @p va (events from index @p after on)."""
    model = ARCHES[arch]
    return [e for e in guest.log_events()[after:] if model.is_page_fault(e) and e.address is not None
            and e.address & ~(PAGE - 1) == va]


def expect_line(run, pattern, what):
    run.expect(pattern, what)


# ---- Part A: the mechanism -------------------------------------------------------------------

@lab_test(7, "one_page_out")
def test_one_page_out(boot, kernel, arch):
    token = boot.fresh_token()
    pages = pick_in(token, "pages", 4, 16)
    p = pick_in(token, "page", 0, pages - 1)
    mask = (proof(token, 0x77) & ((1 << pages) - 1)) | 1 << p
    seed = seed_of(token, "swapkeep")
    fmt = Format(kernel, arch)

    def body(guest, watch, before):
        base = root = None
        seen = {}
        for snap, n in syscalls(guest, arch, {YIELD, EVICT}):
            if n == EVICT and base is None:
                base, root = snap.argument(0), snap.lower_root
            if n != YIELD:
                if "C" in seen and "back" not in seen:
                    seen["back"] = snap   # the first evict of step 5: the program has read every page
                    break
                continue
            seen["ABC"[len(seen)]] = snap
            if len(seen) == 3:
                va = base + p * PAGE
                st, world = watch.look(snap)
                e = world.entries.get((root, va), 0)
                assert fmt.is_swap(e), f"after evict() of page {p} ({va:#x}) its entry in {world.who(root)} is {e:#x}: " \
                    "not a swap entry (the MMU must never read it as a page)"
                slot = fmt.slot(e)
                ev = [x for x in watch.evictions if x.kind == "evict" and (root, va) in [(r, v) for r, v, _ in x.mappings]]
                assert ev, f"the grader never stopped at the eviction of page {va:#x} (evict_frame)"
                assert ev[-1].wrote == [slot], f"the eviction of page {va:#x} (written since its write-back) wrote " \
                    f"slots {ev[-1].wrote}, not its slot {slot} once"
                assert st.count(slot) == 1, f"slot {slot} holds page {va:#x} alone, yet its count is {st.count(slot)}"
                assert watch.free_frame(snap, ev[-1].frame), f"frame {ev[-1].frame:#x} is not free after its eviction"
                assert image_slot(watch.image, slot) == swap_page(seed, p, 1), \
                    f"slot {slot} of the disk image does not hold page {p}'s bytes (version 1, the token's)"
                seen["slot"], seen["events"] = slot, len(guest.log_events())
        snap = seen["back"]
        va = base + p * PAGE
        st, world = watch.look(snap)
        stale = watch.stale_problem(world, root, [base + j * PAGE for j in range(pages)])
        assert not stale, stale
        e = world.entries.get((root, va), 0)
        assert fmt.present(e), f"page {va:#x} is not mapped after the program read it back (entry {e:#x})"
        assert fmt.perms(e) == "rw-", f"page {va:#x} came back {fmt.perms(e)}, not rw- (its region's permissions)"
        assert snap.read_phys(fmt.frame(e), PAGE) == swap_page(seed, p, 1), f"page {va:#x} came back with other bytes"
        assert faults_at(guest, arch, va, seen["events"]), f"no page fault at {va:#x} in QEMU's log after its eviction"
        reads = [r for r in watch.reads if r[0] == seen["slot"]]
        assert len(reads) == 1, f"slot {seen['slot']} was read {len(reads)} times to bring page {va:#x} back, not once"
        return seen["slot"]

    run = swap_boot(boot, kernel, arch, f"swapkeep:{pages}:{mask:#x}", body, token)
    slot = run.witness[0]
    done = disk_requests(run.qemu_log)
    assert done.count(("read", slot)) >= 1, f"QEMU's trace shows no read of slot {slot}"
