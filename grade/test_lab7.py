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
from pagoda_grade.symbols import fact
from pagoda_grade.swap import (Format, SwapState, disk_requests, image_slot, overcommit_versions, placement_problem,
                               program_of, rmap_problem, seed_of, swap_boot, swap_page, syscalls)
from pagoda_grade.witness import PAGE, page_faults_at, pick_in
from pagoda_grade.watch import syscall_number

YIELD, EVICT, EXIT, WRITE, READ = (syscall_number(n) for n in ("Yield", "Evict", "Exit", "Write", "Read"))
MUNMAP, EXEC, FORK, GETPID = (syscall_number(n) for n in ("Munmap", "Exec", "Fork", "GetPid"))


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
        for snap, n in syscalls(guest, arch, {YIELD, EVICT}, watch):
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
        assert page_faults_at(guest, va, seen["events"]), f"no page fault at {va:#x} in QEMU's log after its eviction"
        reads = [r for r in watch.reads if r[0] == seen["slot"]]
        assert len(reads) == 1, f"slot {seen['slot']} was read {len(reads)} times to bring page {va:#x} back, not once"
        return seen["slot"]

    run = swap_boot(boot, kernel, arch, f"swapkeep:{pages}:{mask:#x}", body, token)
    slot = run.witness[0]
    done = disk_requests(run.qemu_log)
    assert done.count(("read", slot)) >= 1, f"QEMU's trace shows no read of slot {slot}"


def yields_of(guest, arch, watch, name, count, also=()):
    """The first @p count yields of program @p name: [(snap, root)] (other calls in @p also
    are yielded to the caller too, as (snap, root, number))."""
    for snap, n in syscalls(guest, arch, {YIELD, *also}, watch):
        st, world = watch.look(snap)
        if program_of(world, snap.lower_root) != name:
            continue
        yield snap, snap.lower_root, n, world
        if n == YIELD:
            count -= 1
            if count == 0:
                return


@lab_test(7, "no_stale_translation")
def test_no_stale_translation(boot, kernel, arch):
    token = boot.fresh_token()
    pages = pick_in(token, "pages", 4, 16)
    mask = proof(token, 0x78) & ((1 << pages) - 1)

    def body(guest, watch, before):
        base, mark, moments = None, None, {}
        for snap, root, n, world in yields_of(guest, arch, watch, "swapfork", 3, also={EVICT}):
            if n == EVICT:
                base = base or snap.argument(0)
                continue
            listed = [base + j * PAGE for j in range(pages)]
            moment = "AC D"[len(moments)] if len(moments) < 2 else "D"
            moments[moment] = root
            if moment == "A":
                assert any(len({r for r, _, _ in ev.mappings}) > 1 for ev in watch.evictions), \
                    "the child's evict() calls never took a frame both roots mapped (the grader's stops)"
            if moment == "C":   # the child has read every page it evicted while it ran
                mark = len(guest.log_events())
            if moment in "CD":
                stale = watch.stale_problem(world, root, listed)
                assert not stale, stale
            if moment == "D":   # the parent, whose frames the child evicted while it did not run
                for va in listed:
                    assert page_faults_at(guest, va, mark), (
                        f"the parent's page {va:#x} was evicted by its child while the parent did not run, yet the "
                        "parent read it back with no page fault in QEMU's log: a stale translation (not invalidated "
                        "in the parent's own space)")
        shared = [ev for ev in watch.evictions if len({r for r, _, _ in ev.mappings}) > 1]
        assert shared, "the child's evictions never took a frame both roots mapped"
        return len(shared)

    swap_boot(boot, kernel, arch, f"swapfork:{pages}:{mask:#x}:after", body, token)


@lab_test(7, "release_slots")
def test_release_slots(boot, kernel, arch):
    token = boot.fresh_token()
    pages = 2 * pick_in(token, "pages", 2, 8)
    fmt = Format(kernel, arch)

    def body(guest, watch, before):
        base, held, yields = None, None, 0
        for snap, n in syscalls(guest, arch, {YIELD, EVICT, MUNMAP, EXEC, WRITE}, watch):
            st, world = watch.look(snap)
            root = snap.lower_root
            name = program_of(world, root)
            if n == EVICT and base is None:
                base = snap.argument(0)
            elif n == EXEC and name == "swapkeep":
                held = {fmt.slot(world.entries[(root, base + j * PAGE)]) for j in range(pages // 2, pages)
                        if fmt.is_swap(world.entries.get((root, base + j * PAGE), 0))}
                assert len(held) == pages // 2, f"before exec, {len(held)} of the second half's pages are out"
            elif n == WRITE and held is not None and name == "echo":
                kept = [s for s in held if st.count(s)]
                assert not kept, (f"exec replaced swapkeep's address space, yet slots {kept} of its swapped-out pages "
                                  "are still in use (the slot map, guest RAM): slots never freed at exec (leaked)")
                return True
            elif n == YIELD and name == "swapkeep" and base is not None:
                yields += 1
                if yields < 4:
                    continue
                gone = [base + j * PAGE for j in range(pages // 2) if world.entries.get((root, base + j * PAGE))]
                if gone and not fmt.present(world.entries[(root, gone[0])]):
                    e = world.entries[(root, gone[0])]
                    if not fmt.is_swap(e):
                        continue
                    raise AssertionError(f"after munmap of a swapped-out range, {world.who(root)} still holds a swap "
                                         f"entry at {gone[0]:#x} (slot {fmt.slot(e)})")
                problem = watch.counts_problem(st, world)
                assert not problem, problem

    swap_boot(boot, kernel, arch, f"swapkeep:{pages}:0x1:exec,overcommit:{pick_in(token, 'big', 80, 120)}:1", body,
              token, cap=32, clock=True)


@lab_test(7, "syscall_buffers")
def test_syscall_buffers(boot, kernel, arch):
    token = boot.fresh_token()
    offset = pick_in(token, "offset", PAGE - 120, PAGE - 20)
    cap = 16 + pick_in(token, "cap", 0, 8)
    typed = f"grader {proof(token, 0x5b1):016x} typed this"
    line = f"swapbuf: the kernel copied this line from swapped-out pages {seed_of(token, 'swapbuf'):016x}"

    def body(guest, watch, before):
        fmt = watch.fmt
        for snap, n in syscalls(guest, arch, {READ, EXIT, WRITE}, watch):
            root = snap.lower_root
            if n == WRITE and snap.argument(0) == 1 and snap.argument(2) == len(line) + 1:
                st, world = watch.look(snap)
                for va in {snap.argument(1) & ~(PAGE - 1), (snap.argument(1) + len(line)) & ~(PAGE - 1)}:
                    e = world.entries.get((root, va), 0)
                    assert fmt.is_swap(e), (f"at write(), the buffer's page {va:#x} is {e:#x}: not swapped out after "
                                            "evict() (the copy must fault it back in)")
            if n == READ:
                base = snap.argument(1)
                guest.send_line(typed)
            elif n == EXIT:
                assert snap.argument(0) == 0, f"swapbuf exited with code {snap.argument(0)}: its checks failed"
                return snap.read_virt(base, len(typed) + 1, root)

    run = swap_boot(boot, kernel, arch, f"swapbuf:{offset}:{cap + 8}", body, token, cap=cap, steer=True)
    assert line in run.lines, "write() from the swapped-out buffer did not print swapbuf's line whole"
    said = run.search(r'^swapbuf: read (\d+) bytes')
    n = int(said[1]) if said else 0
    got = run.witness[0][:n]
    assert n and got == (typed + "\n").encode()[:n], (
        f"read() into swapped-out pages returned {n} bytes and left {got!r} there (read in the process's root), not the "
        "start of the line typed")


@lab_test(7, "disk_full")
def test_disk_full(boot, kernel, arch):
    token = boot.fresh_token()
    slots = fact(kernel, "swap_min_slots") + pick_in(token, "slots", 0, 32)
    cap = 16
    big = cap + slots + pick_in(token, "more", 16, 64)

    def body(guest, watch, before):
        full = {}

        def killed(snap):
            st, world = watch.look(snap)
            full["free"] = st.slot_count - st.in_use()
        guest.side_stop(watch.at["kill"], killed)
        return full

    run = swap_boot(boot, kernel, arch, f"overcommit:{big}:1,overcommit:8:1", body, token, cap=cap, slots=slots)
    full = run.witness[0]
    assert "free" in full, "no process was killed: the working set is larger than the cap and the whole disk"
    assert full["free"] == 0, f"the big program was killed with {full['free']} slots free (the slot map, guest RAM)"
    run.expect(r"killed: .*the swap disk is full", "the kill line naming the full swap disk")


# ---- Part B: the policy ----------------------------------------------------------------------

def overcommit_check(boot, kernel, arch, token, percent=50, extra="", rounds=2, factors=(4, 6), **watching):
    cap = 16 + pick_in(token, "cap", 0, 8)
    pages = cap * pick_in(token, "factor", *factors)
    seed = seed_of(token, "overcommit")

    def body(guest, watch, before):
        base, r = None, 0
        for snap, n in syscalls(guest, arch, {YIELD, EXIT}, watch):
            st, world = watch.look(snap)
            root = snap.lower_root
            assert world.resident() <= cap, (f"{world.resident()} user frames are mapped in the roots of the registry "
                                             f"(every root walked), above the cap of {cap} (userframes=)")
            if program_of(world, root) != "overcommit":
                continue
            if n == EXIT:
                assert snap.argument(0) == 0, f"overcommit exited with code {snap.argument(0)}: a word was wrong"
                return r
            if base is None:
                from pagoda_grade.lifecycle import processes
                vmas = [v for p in processes(snap, kernel).values() for v in p.vmas or []
                        if pages * PAGE <= v.end - v.start <= (pages + 8) * PAGE]
                assert vmas, f"no region of overcommit's {pages} pages in its record (guest RAM)"
                base = min(v.start for v in vmas)
            versions = overcommit_versions(token, pages, r, percent)
            problem = placement_problem(snap, watch.fmt, world, watch.image, root, base,
                                        [swap_page(seed, j, versions[j]) for j in range(pages)])
            assert not problem, problem
            r += 1

    spec = f"overcommit:{pages}:{rounds}:{percent}" + extra
    return swap_boot(boot, kernel, arch, spec, body, token, cap=cap, **watching)


@lab_test(7, "overcommit")
def test_overcommit(boot, kernel, arch):
    token = boot.fresh_token()
    overcommit_check(boot, kernel, arch, token, tlb=False, swap_ins=False)


@lab_test(7, "clock_victim")
def test_clock_victim(boot, kernel, arch):
    token = boot.fresh_token()
    run = overcommit_check(boot, kernel, arch, token, clock=True, rounds=1, factors=(3, 4), tlb=False, swap_ins=False,
                           extra=f",swapfork:48:{proof(token, 0x79) & ((1 << 48) - 1):#x}:after")
    checked = run.witness[1].clock_checks
    assert checked >= 8, f"the grader recomputed only {checked} choices of the clock"


@lab_test(7, "dirty_only")
def test_dirty_only(boot, kernel, arch):
    token = boot.fresh_token()
    percent = pick_in(token, "percent", 10, 60)
    run = overcommit_check(boot, kernel, arch, token, percent=percent, tlb=False, swap_ins=False)
    watch = run.witness[1]
    writes = [s for k, s in disk_requests(run.qemu_log) if k == "write"]
    seen = [s for s, _, _ in watch.writes]
    assert writes == seen, (f"QEMU's trace shows {len(writes)} disk writes, the grader stopped at {len(seen)} writes of "
                            "evicted or written-back frames")
    dirty = sum(1 for ev in watch.evictions if ev.kind == "evict" and ev.wrote)
    assert dirty == len([ev for ev in watch.evictions if ev.kind == "evict" and ev.content != ev.known]), \
        "the disk writes per dirty eviction are not 1"


@lab_test(7, "write_back")
def test_write_back(boot, kernel, arch):
    token = boot.fresh_token()
    pages = pick_in(token, "pages", 4, 24)
    mask = proof(token, 0x7a) & ((1 << pages) - 1)
    fmt = Format(kernel, arch)

    def body(guest, watch, before):
        base, moments = None, 0
        for snap, n in syscalls(guest, arch, {YIELD, EVICT}, watch):
            if n == EVICT:
                base = base or snap.argument(0)
                continue
            st, world = watch.look(snap)
            root = snap.lower_root
            moments += 1
            for j in range(pages):
                e = world.entries.get((root, base + j * PAGE), 0)
                if moments == 1:
                    assert fmt.present(e) and not fmt.dirty(e), (
                        f"after evict(keep) page {j} ({base + j * PAGE:#x}) is {e:#x}: not mapped and clean")
                elif moments == 2:
                    assert fmt.present(e) and fmt.dirty(e) == bool(mask >> j & 1), (
                        f"page {j} ({base + j * PAGE:#x}) {'was' if mask >> j & 1 else 'was not'} written since its "
                        f"write-back, yet its entry {e:#x} says {'dirty' if fmt.dirty(e) else 'clean'}")
            if moments == 2:
                mark = len(watch.writes)
            if moments == 3:
                wrote = sorted(f for _, f, k in watch.writes[mark:])
                evicted = [ev for ev in watch.evictions if ev.kind == "evict"][-pages:]
                dirty = [ev for ev in evicted if ev.wrote]
                assert len(dirty) == bin(mask).count("1"), (
                    f"evicting the {pages} pages wrote {len(wrote)} of them; {bin(mask).count('1')} were written since "
                    "their write-back")
                return True

    swap_boot(boot, kernel, arch, f"swapkeep:{pages}:{mask:#x}", body, token)


# ---- Part C: sharing -------------------------------------------------------------------------

@lab_test(7, "shared_eviction")
def test_shared_eviction(boot, kernel, arch):
    token = boot.fresh_token()
    pages = pick_in(token, "pages", 4, 16)

    def body(guest, watch, before):
        for snap, root, n, world in yields_of(guest, arch, watch, "swapfork", 1):
            st = SwapState(snap, kernel)
            both = [ev for ev in watch.evictions if len({r for r, _, _ in ev.mappings}) == 2]
            assert len(both) == pages, (f"the child evicted {pages} frames it shared with its parent; the grader saw "
                                        f"{len(both)} evictions take both roots' mappings")
            for ev in both:
                assert st.count(ev.slot) == 2, f"slot {ev.slot} holds a page of both roots, yet its count is " \
                    f"{st.count(ev.slot)}"
                assert len(ev.wrote) == 1, f"frame {ev.frame:#x} of two roots was written {len(ev.wrote)} times"
        return True

    swap_boot(boot, kernel, arch, f"swapfork:{pages}:0x0:after", body, token)


@lab_test(7, "cow_swap")
def test_cow_swap(boot, kernel, arch):
    token = boot.fresh_token()
    pages = pick_in(token, "pages", 4, 16)
    mask = proof(token, 0x7b) & ((1 << pages) - 1)
    seed = seed_of(token, "swapfork")
    fmt = Format(kernel, arch)

    def body(guest, watch, before):
        base, parent, moments = None, None, []
        for snap, n in syscalls(guest, arch, {YIELD, EVICT, GETPID}, watch):
            st, world = watch.look(snap)
            root = snap.lower_root
            if n == EVICT:
                base, parent = base or snap.argument(0), root
                continue
            moments.append(root)
            listed = [base + j * PAGE for j in range(pages)]
            if len(moments) == 2:   # the child's getpid: both roots name one slot per page, count 2
                for va in listed:
                    a, b = world.entries.get((parent, va), 0), world.entries.get((root, va), 0)
                    assert fmt.is_swap(a) and fmt.is_swap(b) and fmt.slot(a) == fmt.slot(b), (
                        f"after fork, page {va:#x} is {a:#x} in the parent and {b:#x} in the child: not one slot")
                    assert st.count(fmt.slot(a)) == 2, f"slot {fmt.slot(a)} is named by both roots; its count is " \
                        f"{st.count(fmt.slot(a))}"
            if len(moments) == 3:   # the child's yield after its reads and writes
                for j, va in enumerate(listed):
                    a, b = world.entries.get((parent, va), 0), world.entries.get((root, va), 0)
                    assert fmt.present(b), f"the child read page {va:#x}, yet its entry is {b:#x}"
                    assert fmt.is_swap(a) and st.count(fmt.slot(a)) == 1, (
                        f"after the child brought page {va:#x} back, the parent's entry is {a:#x} and its slot's count "
                        f"{st.count(fmt.slot(a)) if fmt.is_swap(a) else '-'}: the child's hold must go (count 1)")
                    problem = placement_problem(snap, fmt, world, watch.image, parent, va, [swap_page(seed, j, 0)])
                    assert not problem, problem
            if len(moments) == 4:
                problem = placement_problem(snap, fmt, world, watch.image, root, base,
                                            [swap_page(seed, j, 0) for j in range(pages)])
                assert not problem, problem
                return True

    swap_boot(boot, kernel, arch, f"swapfork:{pages}:{mask:#x}:before", body, token)


@lab_test(7, "reverse_map")
def test_reverse_map(boot, kernel, arch):
    token = boot.fresh_token()
    every = pick_in(token, "every", 2, 5)

    def body(guest, watch, before):
        k = exits = 0
        for snap, n in syscalls(guest, arch, {YIELD, EVICT, MUNMAP, EXEC, FORK, GETPID, EXIT, WRITE}, watch):
            k += 1
            exits += n == EXIT
            if k % every and n not in (EXEC, EXIT):
                continue
            st, world = watch.look(snap)
            problem = rmap_problem(snap, kernel, st, world)
            assert not problem, problem
            if exits == 5:
                return k

    n = pick_in(token, "cow", 4, 12)
    swap_boot(boot, kernel, arch, f"swapkeep:8:0x3:exec,cowtest:{n}:{proof(token, 0x7c) & ((1 << n) - 1):#x},"
              f"swapfork:8:0x5:after", body, token, cap=16 + pick_in(token, "cap", 0, 8), steer=True)


@lab_test(7, "preemption")
def test_preemption(boot, kernel, arch):
    token = boot.fresh_token()
    cap = 16 + pick_in(token, "cap", 0, 8)
    offset = pick_in(token, "offset", PAGE - 120, PAGE - 20)
    every = pick_in(token, "every", 2, 6)

    def body(guest, watch, before):
        k, done = 0, 0
        for snap, n in syscalls(guest, arch, {YIELD, EXIT, READ, GETPID}, watch):
            k += 1
            if n == READ:
                guest.send_line(f"preempted {token}")
            if n == EXIT:
                assert snap.argument(0) == 0, f"a program exited with code {snap.argument(0)}: its own checks failed"
                done += 1
                if done == 4:
                    return k
            if k % every == 0:
                st, world = watch.look(snap)
                problem = watch.counts_problem(st, world) or rmap_problem(snap, kernel, st, world)
                assert not problem, problem

    swap_boot(boot, kernel, arch, f"overcommit:{cap * 4}:2,swapfork:16:{proof(token, 0x7d) & 0xffff:#x}:after,"
              f"swapbuf:{offset}:{cap}", body, token, cap=cap, clock=True, swap_ins=False)
