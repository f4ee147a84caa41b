"""Lab 7: swap, witnessed from outside the kernel (labs/07-swap/lab.toml: points, timeouts). Every
boot has a swap disk and a cap on user frames (userframes=N); the programs (user/programs/
overcommit, swapfork, swapbuf, swapkeep) fill their pages with token-derived words (derived.hpp).
SwapTest (pagoda_grade/swap.py) stops at every eviction, write-back, disk write and read, walks
every root there and reads the swap state in guest RAM and the disk image on the host; the
kernel's lines and swap_info counters are never believed."""
from pagoda_grade import lab_test
from pagoda_grade.derived import overcommit_versions, swap_page, value
from pagoda_grade.labtest import holds
from pagoda_grade.processes import processes
from pagoda_grade.proof import proof
from pagoda_grade.swap import SwapTest, image_slot, program_of, rmap_problem, swap_state, yielded
from pagoda_grade.symbols import fact
from pagoda_grade.witness import PAGE, page_faults_at, pages_of


# ---- Part A: the mechanism -------------------------------------------------------------------

@lab_test(7, "one_page_out")
def test_one_page_out(boot, kernel, arch):
    t = SwapTest(boot, kernel, arch)
    pages = t.pick("pages", 4, 16)
    p = t.pick("page", 0, pages - 1)
    mask = t.mask(0x77, pages) | 1 << p
    fmt, want = t.fmt, swap_page(t.token, "swapkeep", p, 1)

    def script(before):
        w, calls = t.watch, t.calls("Yield", "Evict")
        evict = next(calls)   # (step 1's first)
        base, root = evict.args[0], evict.root
        va = base + p * PAGE
        c = [yielded(calls) for _ in "ABC"][-1]   # the program's moment C: page p is out
        st, world = t.look(c)
        e = world.entries.get((root, va), 0)
        assert fmt.is_swap(e), f"after evict() of page {p} ({va:#x}) its entry in {world.who(root)} is {e:#x}: " \
            "not a swap entry (the MMU must never read it as a page)"
        slot = fmt.slot(e)
        ev = [x for x in w.evictions if x.kind == "evict" and (root, va) in [(r, v) for r, v, _ in x.mappings]]
        assert ev, f"the grader never stopped at the eviction of page {va:#x} (evict_frame)"
        assert ev[-1].wrote == [slot], f"the eviction of page {va:#x} (written since its write-back) wrote " \
            f"slots {ev[-1].wrote}, not its slot {slot} once"
        assert st.count(slot) == 1, f"slot {slot} holds page {va:#x} alone, yet its count is {st.count(slot)}"
        assert w.free_frame(c.snap, ev[-1].frame), f"frame {ev[-1].frame:#x} is not free after its eviction"
        assert image_slot(w.image, slot) == want, \
            f"slot {slot} of the disk image does not hold page {p}'s bytes (version 1, the token's)"
        mark = len(t.guest.log_events())
        back = next(calls)   # the first evict of step 5: the program has read every page
        st, world = t.look(back)
        holds(w.stale_problem(world, root, pages_of(base, pages)))
        e = world.entries.get((root, va), 0)
        assert fmt.present(e), f"page {va:#x} is not mapped after the program read it back (entry {e:#x})"
        assert fmt.perms(e) == "rw-", f"page {va:#x} came back {fmt.perms(e)}, not rw- (its region's permissions)"
        assert back.snap.read_phys(fmt.frame(e), PAGE) == want, f"page {va:#x} came back with other bytes"
        assert page_faults_at(t.guest, va, mark), f"no page fault at {va:#x} in QEMU's log after its eviction"
        reads = [r for r in w.reads if r[0] == slot]
        assert len(reads) == 1, f"slot {slot} was read {len(reads)} times to bring page {va:#x} back, not once"
        return slot

    slot = t.start(f"swapkeep:{pages}:{mask:#x}", script)
    holds(t.unseen_writes())   # (each write the trace shows was checked at the grader's stop)
    assert ("read", slot) in t.watch.trace.requests, f"QEMU's trace shows no read of slot {slot}"


@lab_test(7, "no_stale_translation")
def test_no_stale_translation(boot, kernel, arch):
    t = SwapTest(boot, kernel, arch)
    pages = t.pick("pages", 4, 16)

    def script(before):
        calls = t.yields_of("swapfork", "Evict")
        listed = pages_of(next(calls).args[0], pages)   # (the child's first evict())
        yielded(calls)   # moment A: the child evicted every page
        assert any(ev.roots > 1 for ev in t.watch.evictions), \
            "the child's evict() calls never took a frame both roots mapped (the grader's stops)"
        for moment in "CD":   # C: the child has read every page it evicted while it ran; D: the parent's
            c = yielded(calls)
            if moment == "C":
                mark = len(t.guest.log_events())
            holds(t.watch.stale_problem(t.look(c)[1], c.root, listed))
        for va in listed:   # the parent, whose frames the child evicted while it did not run
            assert page_faults_at(t.guest, va, mark), (
                f"the parent's page {va:#x} was evicted by its child while the parent did not run, yet the "
                "parent read it back with no page fault in QEMU's log: a stale translation (not invalidated "
                "in the parent's own space)")

    t.start(f"swapfork:{pages}:{t.mask(0x78, pages):#x}:after", script)


@lab_test(7, "release_slots")
def test_release_slots(boot, kernel, arch):
    t = SwapTest(boot, kernel, arch)
    pages, fmt = 2 * t.pick("pages", 2, 8), t.fmt

    def script(before):
        base, held, yields = None, None, 0
        for c in t.calls("Yield", "Evict", "Munmap", "Exec", "Write"):
            st, world = t.look(c)
            root, name = c.root, program_of(world, c.root)
            if c.name == "Evict" and base is None:
                base = c.args[0]
            elif c.name == "Exec" and name == "swapkeep":
                held = {fmt.slot(world.entries[(root, va)]) for va in pages_of(base, pages)[pages // 2:]
                        if fmt.is_swap(world.entries.get((root, va), 0))}
                assert len(held) == pages // 2, f"before exec, {len(held)} of the second half's pages are out"
            elif c.name == "Write" and held is not None and name == "echo":
                # (a slot given back may hold another page by now: kept is held by more than the
                # grader finds holding it, whatever order the slots are handed out in)
                backers = st.backers()
                kept = [s for s in held if st.count(s) > len(world.swapped.get(s, ())) + len(backers.get(s, ()))]
                assert not kept, (f"exec replaced swapkeep's address space, yet slots {kept} of its swapped-out pages "
                                  "are still counted in the slot map (guest RAM) beyond any holder the grader finds: "
                                  "slots never freed at exec (leaked)")
                return
            elif c.name == "Yield" and name == "swapkeep" and base is not None and (yields := yields + 1) >= 4:
                gone = [va for va in pages_of(base, pages // 2) if world.entries.get((root, va))]
                e = world.entries[(root, gone[0])] if gone else 1
                if not fmt.present(e) and not fmt.is_swap(e):
                    continue
                assert fmt.present(e), (f"after munmap of a swapped-out range, {world.who(root)} still holds a swap "
                                        f"entry at {gone[0]:#x} (slot {fmt.slot(e)})")
                holds(t.watch.counts_problem(st, world))

    t.start(f"swapkeep:{pages}:0x1:exec,overcommit:{t.pick('big', 48, 72)}:1", script, cap=32, clock=True,
            tlb=False, swap_ins=False)


@lab_test(7, "syscall_buffers")
def test_syscall_buffers(boot, kernel, arch):
    t = SwapTest(boot, kernel, arch)
    offset, cap = t.pick("offset", PAGE - 120, PAGE - 20), 16 + t.pick("cap", 0, 8)
    typed = f"grader {proof(t.token, 0x5b1):016x} typed this"
    line = f"swapbuf: the kernel copied this line from swapped-out pages {value(t.token, 'swapbuf_seed'):016x}"

    def script(before):
        for c in t.calls("Read", "Exit", "Write"):
            if c.name == "Write" and c.args[0] == 1 and c.args[2] == len(line) + 1:
                st, world = t.look(c)
                for va in {c.args[1] & ~(PAGE - 1), (c.args[1] + len(line)) & ~(PAGE - 1)}:
                    e = world.entries.get((c.root, va), 0)
                    assert t.fmt.is_swap(e), (f"at write(), the buffer's page {va:#x} is {e:#x}: not swapped out "
                                              "after evict() (the copy must fault it back in)")
            if c.name == "Read":
                base = c.args[1]
                t.guest.send_line(typed)
            elif c.name == "Exit":
                assert c.args[0] == 0, f"swapbuf exited with code {c.args[0]}: its checks failed"
                return t.read_user(c, base, len(typed) + 1)

    got = t.start(f"swapbuf:{offset}:{cap + 8}", script, cap=cap, steer=True)
    assert line in t.run.lines, "write() from the swapped-out buffer did not print swapbuf's line whole"
    said = t.run.search(r'^swapbuf: read (\d+) bytes')
    n = int(said[1]) if said else 0
    assert n and got[:n] == (typed + "\n").encode()[:n], (
        f"read() into swapped-out pages returned {n} bytes and left {got[:n]!r} there (read in the process's root), "
        "not the start of the line typed")


@lab_test(7, "disk_full")
def test_disk_full(boot, kernel, arch):
    t = SwapTest(boot, kernel, arch)
    slots = fact(kernel, "swap_min_slots") + t.pick("slots", 0, 32)
    big = 16 + slots + t.pick("more", 8, 24)
    full = {}

    def killed(snap):
        st, world = t.watch.look(snap)
        full["free"] = slots - st.in_use()   # (the disk's size is the grader's, not what the kernel says)

    t.start(f"overcommit:{big}:1,overcommit:8:1", lambda before: t.guest.side_stop(t.watch.at["kill"], killed),
            cap=16, slots=slots)
    assert "free" in full, "no process was killed: the working set is larger than the cap and the whole disk"
    assert full["free"] == 0, f"the big program was killed with {full['free']} slots free (the slot map, guest RAM)"
    # (the kill line's out-of-memory words are the given fault report's; the reason after them is
    # the student's own message, and the slot map above says whether the disk was full)
    # (a swap-in refused a frame is killed in the report's other words: a page the clock evicted,
    # e.g. code, comes back to a full disk)
    t.expect(r"killed: .*(no frame could be given \(out of memory|could not come back from swap \(no memory)",
             "the kill line of a fault refused a frame")


# ---- Part B: the policy ----------------------------------------------------------------------

def overcommit_check(t, percent=50, extra="", rounds=1, factors=(4, 6), hot=False, **watching):
    """overcommit (with @p extra programs) under a token-chosen cap: at each of its yields every
    page's bytes are where its entry says (the token's version). With @p hot, the page of its
    model (the one anonymous page outside its region, read before each page of a round) is the
    watch's hot page (SwapWatch.hot_problem)."""
    cap = 16 + t.pick("cap", 0, 4)
    pages = cap * t.pick("factor", *factors)

    def script(before):
        base, r = None, 0
        for c in t.calls("Yield", "Exit"):
            st, world = t.look(c)
            assert world.resident() <= cap, (f"{world.resident()} user frames are mapped in the roots of the registry "
                                             f"(every root walked), above the cap of {cap} (userframes=)")
            if program_of(world, c.root) != "overcommit":
                continue
            if c.name == "Exit":
                assert c.args[0] == 0, f"overcommit exited with code {c.args[0]}: a word was wrong"
                return r
            if base is None:
                every = [v for p in processes(c.snap, t.kernel).values() if p.name == "overcommit" for v in p.vmas or []]
                vmas = [v for v in every if pages * PAGE <= v.end - v.start <= (pages + 8) * PAGE]
                assert vmas, f"no region of overcommit's {pages} pages in its record (guest RAM)"
                base = min(v.start for v in vmas)
                region = pages_of(base, pages)
                model = [va for v in every if v.kind_name == "anonymous" for va in range(v.start, v.end, PAGE)
                         if va not in region]
                if hot and len(model) == 1:
                    t.watch.hot = (c.root, model[0], set(region))
            versions = overcommit_versions(t.token, pages, r, percent)
            t.placed(c, world, c.root, base, [swap_page(t.token, "overcommit", j, versions[j]) for j in range(pages)])
            r += 1

    t.start(f"overcommit:{pages}:{rounds}:{percent}" + extra, script, cap=cap, hot=hot, **watching)
    return t.watch


@lab_test(7, "overcommit")
def test_overcommit(boot, kernel, arch):
    overcommit_check(SwapTest(boot, kernel, arch), hot=True, tlb=False, swap_ins=False)


@lab_test(7, "clock_victim")
def test_clock_victim(boot, kernel, arch):
    t = SwapTest(boot, kernel, arch)
    shared = 24   # (more pages than the cap leaves the pair: the clock passes frames both roots map)
    watch = overcommit_check(t, clock=True, factors=(2, 3), tlb=False, swap_ins=False,
                             extra=f",swapfork:{shared}:{t.mask(0x79, shared):#x}:after")
    assert watch.clock_checks >= 8, f"the grader recomputed only {watch.clock_checks} choices of the clock"


@lab_test(7, "dirty_only")
def test_dirty_only(boot, kernel, arch):
    t = SwapTest(boot, kernel, arch)
    watch = overcommit_check(t, percent=t.pick("percent", 10, 60), factors=(3, 4), tlb=False, swap_ins=False)
    holds(t.unseen_writes())
    evicted = [ev for ev in watch.evictions if ev.kind == "evict"]
    wrote = sum(1 for ev in evicted if ev.wrote)
    dirty = sum(1 for ev in evicted if ev.content != ev.known)
    assert wrote == dirty, (f"{wrote} of the {len(evicted)} evictions wrote their page to the disk, but {dirty} of the "
                            "pages had changed since the disk last held them (the grader's own record of each page): "
                            "an eviction writes a page only when it is dirty, and then once")


@lab_test(7, "write_back")
def test_write_back(boot, kernel, arch):
    t = SwapTest(boot, kernel, arch)
    pages, fmt = t.pick("pages", 4, 24), t.fmt
    mask = t.mask(0x7a, pages)

    def script(before):
        calls = t.calls("Yield", "Evict")
        base = next(calls).args[0]
        for moment in (1, 2):   # after evict(keep) of every page; after the program wrote the pages of mask
            c = yielded(calls)
            st, world = t.look(c)
            for j, va in enumerate(pages_of(base, pages)):
                e = world.entries.get((c.root, va), 0)
                if moment == 1:
                    assert fmt.present(e) and not fmt.dirty(e), (
                        f"after evict(keep) page {j} ({va:#x}) is {e:#x}: not mapped and clean")
                else:
                    assert fmt.present(e) and fmt.dirty(e) == bool(mask >> j & 1), (
                        f"page {j} ({va:#x}) {'was' if mask >> j & 1 else 'was not'} written since its "
                        f"write-back, yet its entry {e:#x} says {'dirty' if fmt.dirty(e) else 'clean'}")
        mark = len(t.watch.writes)
        yielded(calls)
        dirty = [ev for ev in [ev for ev in t.watch.evictions if ev.kind == "evict"][-pages:] if ev.wrote]
        assert len(dirty) == bin(mask).count("1"), (
            f"evicting the {pages} pages wrote {len(t.watch.writes) - mark} of them; {bin(mask).count('1')} were "
            "written since their write-back")

    t.start(f"swapkeep:{pages}:{mask:#x}", script)


# ---- Part C: sharing -------------------------------------------------------------------------

@lab_test(7, "shared_eviction")
def test_shared_eviction(boot, kernel, arch):
    t = SwapTest(boot, kernel, arch)
    pages = t.pick("pages", 4, 16)

    def script(before):
        st = swap_state(next(t.yields_of("swapfork")).snap, kernel)
        both = [ev for ev in t.watch.evictions if ev.roots == 2]
        assert len(both) == pages, (f"the child evicted {pages} frames it shared with its parent; the grader saw "
                                    f"{len(both)} evictions take both roots' mappings")
        for ev in both:
            assert st.count(ev.slot) == 2, f"slot {ev.slot} holds a page of both roots, yet its count is " \
                f"{st.count(ev.slot)}"
            assert len(ev.wrote) == 1, f"frame {ev.frame:#x} of two roots was written {len(ev.wrote)} times"

    t.start(f"swapfork:{pages}:0x0:after", script)


@lab_test(7, "cow_swap")
def test_cow_swap(boot, kernel, arch):
    t = SwapTest(boot, kernel, arch)
    pages, fmt = t.pick("pages", 4, 16), t.fmt
    page = [swap_page(t.token, "swapfork", j, 0) for j in range(pages)]

    def script(before):
        calls = t.calls("Yield", "Evict", "GetPid")
        base = (c := next(calls)).args[0]
        while c.name == "Evict":   # the parent's; then its yield (moment A)
            parent, c = c.root, next(calls)
        st, world = t.look(c := next(calls))   # the child's getpid: both roots name one slot per page, count 2
        for va in pages_of(base, pages):
            a, b = world.entries.get((parent, va), 0), world.entries.get((c.root, va), 0)
            assert fmt.is_swap(a) and fmt.is_swap(b) and fmt.slot(a) == fmt.slot(b), (
                f"after fork, page {va:#x} is {a:#x} in the parent and {b:#x} in the child: not one slot")
            assert st.count(fmt.slot(a)) == 2, f"slot {fmt.slot(a)} is named by both roots; its count is " \
                f"{st.count(fmt.slot(a))}"
        st, world = t.look(c := next(calls))   # the child's yield after its reads and writes
        for j, va in enumerate(pages_of(base, pages)):
            a, b = world.entries.get((parent, va), 0), world.entries.get((c.root, va), 0)
            assert fmt.present(b), f"the child read page {va:#x}, yet its entry is {b:#x}"
            assert fmt.is_swap(a) and st.count(fmt.slot(a)) == 1, (
                f"after the child brought page {va:#x} back, the parent's entry is {a:#x} and its slot's count "
                f"{st.count(fmt.slot(a)) if fmt.is_swap(a) else '-'}: the child's hold must go (count 1)")
            t.placed(c, world, parent, va, [page[j]])
        c = next(calls)   # the parent's yield, after the child's exit
        t.placed(c, t.look(c)[1], c.root, base, page)

    t.start(f"swapfork:{pages}:{t.mask(0x7b, pages):#x}:before", script)


@lab_test(7, "reverse_map")
def test_reverse_map(boot, kernel, arch):
    t = SwapTest(boot, kernel, arch)
    every, n = t.pick("every", 2, 5), t.pick("cow", 4, 12)

    def script(before):
        exits = 0
        for k, c in enumerate(t.calls("Yield", "Evict", "Munmap", "Exec", "Fork", "GetPid", "Exit", "Write"), 1):
            exits += c.name == "Exit"
            if k % every and c.name not in ("Exec", "Exit"):
                continue
            holds(rmap_problem(c.snap, kernel, *t.look(c)))
            if exits == 5:
                return

    t.start(f"swapkeep:8:0x3:exec,cowtest:{n}:{t.mask(0x7c, n):#x},swapfork:8:0x5:after",
            script, cap=16 + t.pick("cap", 0, 8), steer=True, tlb=False, swap_ins=False)


@lab_test(7, "preemption")
def test_preemption(boot, kernel, arch):
    t = SwapTest(boot, kernel, arch)
    cap, offset, every = 16 + t.pick("cap", 0, 4), t.pick("offset", PAGE - 120, PAGE - 20), t.pick("every", 2, 6)

    def script(before):
        done = 0
        for k, c in enumerate(t.calls("Yield", "Exit", "Read", "GetPid"), 1):
            if c.name == "Read":
                t.guest.send_line(f"preempted {t.token}")
            if c.name == "Exit":
                assert c.args[0] == 0, f"a program exited with code {c.args[0]}: its own checks failed"
                done += 1
                if done == 4:
                    return
            if k % every == 0:
                holds(t.watch.counts_problem(*t.look(c)) or rmap_problem(c.snap, kernel, *t.look(c)))

    # (The clock's choices are clock_victim's subject: not watched here, a third of this test's stops.)
    t.start(f"overcommit:{cap * 3}:1,swapfork:16:{t.mask(0x7d, 16):#x}:after,swapbuf:{offset}:{cap}",
            script, cap=cap, clock=False, tlb=False, swap_ins=False)
