"""Lab 4: temporary mappings and safe user copies, witnessed from outside the kernel.

The grader boots with more RAM than the kernel's window (GRADER_MEMORY), so frames above the
window exist; it walks the process roots in guest RAM itself to see where a program's pages
really are, reads QEMU's exception log to see that the user copies really faulted on the
addresses it chose at run time and were recovered through the fix-up table it reads from the
kernel's ELF file, and trusts no line the kernel prints without such a witness. The witnesses
themselves: pagoda_grade/tempmaps.py and usercopy.py."""
import re
import struct

from pagoda_pt import contract as C
from pagoda_grade import lab_test
from pagoda_grade.derived import hello_line, value as derived
from pagoda_grade.labtest import LabTest, ProcTest
from pagoda_grade.outcomes import finding_first, panic_line
from pagoda_grade.processes import kernel_faults, recovered_by_fixup, user_runs, user_symbol
from pagoda_grade.proof import MASK64, proof
from pagoda_grade.symbols import address_of, fact, user_fixups
from pagoda_grade.tempmaps import (STRESS_FRAMES, WORDS, GuardWatch, all_roots, guard_problem, kernel_reach,
                                   kernel_u64s, live_slot, low_frames, pattern, pattern_page, probe_live_problems,
                                   probe_plan, probe_writes_problems, root_problem, shared_slot_problems,
                                   slot_entry_problems, step_problems, stress_checksum, temp_area)
from pagoda_grade.usercopy import (EFAULT, MAX_NAME, PROC_INFO_SIZE, QEMU_LOG, badptr_result_problem,
                                   check_loader_writes, copy_fault_problem, copy_problem, edge_cases,
                                   edge_fault_problem, fail_on_cause, in_copy_routine, in_string_copy,
                                   readonly_copy_problem, space_copy_problem, space_copy_source)
from pagoda_grade.watch import fault_expectation
from pagoda_grade.witness import ARCHES, PAGE, expect_fault

# Values only the grader writes into frames (pattern_page of proof(token, TAG + k)).
PROBE_TAG, COPY_TAG, SPACE_FILL_TAG = 0x5450, 0x5443, 0x5346   # "TP", "TC", "SF"
STRESS_MAPS = 100_000
BADPTR_KINDS = ["null", "kernel", "noncanonical", "unmapped", "straddling", "readonly", "last_byte"]


def hello_seen(t, not_roots):
    """At the first write of hello's line from a root not in @p not_roots: its root, buffer, the
    frames its root maps and what the kernel half reaches, walked there."""
    c = t.call("Write", where=lambda c: c.root not in not_roots and c.written().startswith(b"hello:"), limit=60 * 40,
               missing="no write of hello's line in 60 system calls")
    runs = user_runs(c.snap.dump(c.root), t.watch.layout)
    return dict(root=c.root, data=c.written(), frames=sorted((r.pa_start, r.pa_start + r.va_end - r.va_start)
                                                             for r in runs), reach=kernel_reach(c.snap, t.kernel))


@lab_test(4, "temp_map_slots")
def test_temp_map_slots(boot, kernel, arch):
    t = LabTest(boot, kernel, arch)
    rounds, seed = t.pick("probe rounds", 3, 6), t.pick("probe seed", 1, 2**48)
    fill = proof(t.token, PROBE_TAG)
    count, salt = fact(kernel, "temp_probe_frames"), fact(kernel, "temp_probe_value_salt")
    stop = lambda name: t.stop("temp_map_slots", "temp_probe", name, tries=4)  # noqa: E731 (past stepping stops)

    def script(guest):
        snap = stop("frames")
        frames = list(struct.unpack(f"<{count}Q", snap.read_virt(snap.argument(1), 8 * count)))
        reach = kernel_reach(snap, kernel)
        reached = [reach.problem(f, f"probe frame {k}") for k, f in enumerate(frames)]
        for k, f in enumerate(frames):   # values only the grader knows: what the probe's writes leave alone
            guest.write_phys(f, pattern_page(fill + k))
        snap = stop("live")
        n = snap.argument(2)
        guards = [struct.unpack("<2Q", snap.read_virt(snap.argument(1) + 16 * i, 16)) for i in range(n)]
        area = temp_area(snap, kernel)
        live = probe_live_problems(snap, kernel, arch, guards, frames[:n], area) or \
            slot_entry_problems(snap, kernel, arch, snap.root, area, {snap.root: "the live (kernel) root"})
        if live:
            return dict(frames=frames, live=live, reached=reached)   # what comes after may well die of it
        snap = stop("push")
        area, slot = temp_area(snap, kernel), snap.argument(1)
        checkpoint = address_of(kernel, C.CHECKPOINT)
        area_va = area.at if area else 0
        stepped = step_problems(guest, kernel, arch, area_va, slot, checkpoint, "push")
        if not stepped:
            snap = guest.snapshot()
            if snap.argument(0) != fact(kernel, "temp_probe_pushed_stop"):
                stepped = [f"stepping from the probe's push stop reached checkpoint {snap.argument(0):#x}, not its pushed "
                           "stop"]
            elif snap.argument(1) != area.slots[slot].va:
                stepped = [f"the stepped guard holds {snap.argument(1):#x}, not slot {slot}'s address "
                           f"{area.slots[slot].va:#x}, the top of the stack"]
            else:
                stepped = step_problems(guest, kernel, arch, area_va, slot, checkpoint, "pop")
        snap = stop("reads")
        pages = {f: snap.read_phys(f, PAGE) for f in frames}   # where the probe's writes landed
        return dict(frames=frames, live=live, pages=pages, area=temp_area(snap, kernel), stepped=stepped,
                    reached=reached)

    w = t.selftest("temp_map_slots", script, args={"rounds": rounds, "seed": seed})
    if w["live"]:
        t.fail(w["live"][0] + ("\nthe grader stopped the probe with three nested guards live and walked the live "
                               "root at each guard's slot:\n  " + "\n  ".join(w["live"][1:4]) if len(w["live"]) > 1
                               else ""))
    problems = probe_writes_problems(w["frames"], fill, seed, salt, rounds, w["pages"],
                                     lambda slot: w["area"].slots[slot].va)
    writes = len(probe_plan(w["frames"], rounds))
    if problems:
        t.fail(problems[0] + (f"\n{len(problems)} of the probe's {writes} writes through the slots are not where the "
                              "plan puts them (the grader filled every frame, replayed the writes and read the frames "
                              "in guest RAM):\n  " + "\n  ".join(problems[1:4]) if len(problems) > 1 else ""))
    t.check(w["stepped"] and w["stepped"][0],
            w["area"].depth and f"after every guard of the probe was released the kernel's slot stack is "
                                   f"{w['area'].depth} deep (read from guest RAM): a slot was not given back",
            # (the grader's walk of the kernel half, never the window_size fact)
            all(w["reached"]) and f"the probe's frames ({w['frames'][0]:#x}, ...) are all reached by the kernel half "
                                  "without a temporary mapping: allocate_high() gave no frame only a temporary mapping "
                                  f"reaches\n{w['reached'][0]}")
    t.expect(rf"^temp_map_slots: {writes} writes through temp-map slots in {rounds} rounds; slots live now: 0$",
             "the probe's summary")
    t.success()


@lab_test(4, "temp_maps_live")
def test_temp_maps_live(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    seed = derived(t.token, "tmfill_seed")
    want = pattern_page(seed)
    digest = sum(pattern(seed, i) * (2 * i + 1) for i in range(WORDS)) & MASK64
    watch = t.watch

    def script(started):
        c = t.call("TempFill")
        shared = shared_slot_problems(c.snap, watch, temp_area(c.snap, kernel), all_roots(c.snap, watch))
        filled = live_slot(t.guest, watch, c.snap, "tmfill's temp_fill")
        take = t.call("TempTake")
        shared += shared_slot_problems(take.snap, watch, temp_area(take.snap, kernel), all_roots(take.snap, watch))
        if take.args[0] >= 4:
            return dict(problem=f"tmread asked for handle {take.args[0]}")
        frame = filled["frame"]
        data = take.snap.read_phys(frame, PAGE)   # what the fill left there, read before tmread takes it
        taken = live_slot(t.guest, watch, take.snap, "tmread's temp_take")
        if taken["frame"] != frame:
            return dict(problem=f"tmread's temp_take mapped frame {taken['frame']:#x} in its slot (the grader's walk of "
                                f"the live root), not the frame {frame:#x} temp_fill's slot mapped")
        return dict(filler=c.root, reader=take.root, frame=frame, data=data, shared=shared,
                    reached=filled["reach"].problem(frame, "the frame temp_fill filled"),
                    labels={**watch.roots, **all_roots(take.snap, watch)})

    run = t.boot(["tmfill", f"spin:{t.pick('temp_maps_live spin', 1_000_000, 3_000_000)}"], script)
    check_loader_writes(run, kernel, watch)
    refused = run.search(r"^tmfill: pid \d+ temp_fill -> (-\d+)$")
    t.check(refused and f"temp_fill returned {refused[1]}: the kernel could not fill a frame above its window "
                        "(ENOMEM = -12: no temporary mappings yet, TempMapArea::init(), or no frame)")
    w = t.witness()
    t.check(w.get("problem"))
    for who, root in (("tmfill's temp_fill", w["filler"]), ("tmread's temp_take", w["reader"])):
        if root in watch.kernel_roots or root not in w["labels"]:
            t.fail(f"{who} came with root {root:#x} live, not a process root the kernel published")
    t.check(w["filler"] == w["reader"] and f"tmfill and tmread made their calls with the same root {w['filler']:#x} live",
            w["shared"] and finding_first(list(dict.fromkeys(w["shared"])), "the grader walked every root itself while "
                                                                             "a process ran", 4),
            w["reached"])
    if w["data"] != want:
        bad = next(i for i in range(WORDS) if w["data"][8 * i:8 * i + 8] != want[8 * i:8 * i + 8])
        got = struct.unpack_from("<Q", w["data"], 8 * bad)[0]
        t.fail(f"the frame {w['frame']:#x} tmfill's temp_fill filled (read by the grader from guest RAM while "
               f"tmread ran) holds {got:#018x} in word {bad}, expected {pattern(seed, bad):#018x}: the "
               "kernel's writes through the temporary mapping did not reach the frame (a slot written into a "
               "table the live root does not use, or a stale translation of another frame)")
    t.expect(rf"^tmread: {PAGE} bytes of handle \d: digest {digest:016x} proof={proof(t.token, digest):016x}$",
             "tmread's digest of the frame, read through a temporary mapping while its own root was live")
    t.all_exited(3, "tmfill, spin and tmread")
    t.expect(r"^run: temp-map slots live: 0;", "no temp-map slot left live after the run")
    t.success()


@lab_test(4, "temp_map_stress")
def test_temp_map_stress(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    per_call = 2 * t.pick("stress per call", 2_500, 10_000)
    stop_call = t.pick("stress stop call", 0, 3)
    stress = address_of(kernel, C.TEMP_STRESS)
    watch = t.watch

    def script(started):
        area0 = temp_area(started, kernel)
        for _ in range(stop_call + 1):
            t.call("TempStress")
        snap = t.guest.stop_at(C.TEMP_STRESS_ROUND)
        round_no = snap.argument(0)
        hidden = root_problem(snap, kernel, watch.kernel_roots, f"in round {round_no} of temp_stress call {stop_call} "
                                                                "(two guards live)")
        area = temp_area(snap, kernel)
        seed, = kernel_u64s(snap, kernel, stress + fact(kernel, "temp_stress_seed"), 1)
        frames = kernel_u64s(snap, kernel, stress + fact(kernel, "temp_stress_frames"), STRESS_FRAMES)
        contents = [snap.read_phys(f, PAGE) if f else b"" for f in frames]
        live = [snap.translate(s.va) for s in area.slots if s.live]
        shared = shared_slot_problems(snap, watch, area, all_roots(snap, watch))
        reach = kernel_reach(snap, kernel)
        end = watch.checkpoint(t.guest, "ended")
        irqs, = kernel_u64s(end, kernel, stress + fact(kernel, "temp_stress_irq_maps_total"), 1)
        return dict(area0=area0, area=area, round=round_no, seed=seed, frames=frames, contents=contents, live=live,
                    shared=shared, area1=temp_area(end, kernel), irqs=irqs, reach=reach, hidden=hidden)

    run = t.boot([f"tmstress:{STRESS_MAPS}:{per_call}", f"spin:{t.pick('stress spin', 2_000_000, 4_000_000)}"], script)
    check_loader_writes(run, kernel, watch)
    refused = run.search(r"^tmstress: call (\d+): temp_stress -> (-\d+)$")
    t.check(refused and f"temp_stress call {refused[1]} returned {refused[2]} (ENOMEM = -12: no temporary mappings "
                        "yet, TempMapArea::init(), or no frames above the window)")
    w = t.witness()
    area, r = w["area"], w["round"]
    t.check((area is None or w["area0"] is None) and "the kernel has no temp-map area")
    want_seed = derived(t.token, "tmstress_seed", stop_call)
    t.check(w["seed"] != want_seed and f"temp_stress call {stop_call} runs with seed {w['seed']:#x}, not {want_seed:#x}")
    for k, (f, data) in enumerate(zip(w["frames"], w["contents"])):
        t.check(w["reach"].problem(f, f"stress frame {k}"),
                data != pattern_page(want_seed + k) and f"stress frame {k} ({f:#x}), read by the grader in round {r} "
                f"of call {stop_call}, does not hold its pattern: the fill through a temporary mapping went elsewhere")
    a, b = w["frames"][r % STRESS_FRAMES], w["frames"][(3 * r + 1) % STRESS_FRAMES]
    if area.depth < 2 or w["live"][:2] != [a, b]:
        shown = ", ".join(f"{x:#x}" if x is not None else "unmapped" for x in w["live"])
        t.fail(f"in round {r} of temp_stress call {stop_call} (two guards live), the grader finds the temp-map "
               f"slot stack {area.depth} deep, its slots translating (live root) to [{shown}], expected "
               f"[{a:#x}, {b:#x}]: the slots do not map the frames the guards were given")
    t.check(w["shared"] and finding_first(w["shared"], "the grader walked every root itself in the middle of the stress",
                                          4), w["hidden"])
    m = run.search(r"^tmstress: (\d+) calls of (\d+) maps: (\d+) maps, (\d+) in interrupts, deepest (\d+), "
                   r"(\d+) mismatches$")
    t.check(not m and "missing: tmstress's summary line")
    calls = int(m[1])
    want = sum(stress_checksum(derived(t.token, "tmstress_seed", i), per_call // 2) for i in range(calls)) & MASK64
    t.expect(rf"^tmstress: checksum {want:016x} proof={proof(t.token, want):016x}$",
             f"the checksum of every value read through the temporary mappings of {calls} calls (a stale "
             "translation reads another frame's word and changes it)")
    made = w["area1"].maps - w["area0"].maps
    t.check(made < STRESS_MAPS and f"the temp-map area's own counter (read from guest RAM) grew by {made} during the "
                                   f"run, fewer than {STRESS_MAPS}: the maps were not made",
            w["area1"].depth and f"after the run the temp-map slot stack is {w['area1'].depth} deep (read from "
                                    "guest RAM): a slot leaked",
            w["irqs"] == 0 and "no timer interrupt mapped a frame inside a temp_stress call (the kernel's counter, read "
                               "from guest RAM): the stress never ran with interrupts nested in it",
            int(m[6]) and f"tmstress reports {m[6]} mismatches: a read through a slot did not hold its frame's pattern "
                          f"(its {m[4]} maps in timer interrupts included): a stale translation (a slot given back "
                          "without invalidating its TLB entry) or a slot taken twice (an interrupt between the entry "
                          "write and the stack bookkeeping)")
    t.all_exited(2, "tmstress and spin")
    t.success()


@lab_test(4, "high_frames")
def test_high_frames(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    want = hello_line(t.token, arch)
    guards = []
    # (the loader's guards, every one: watched from before the processes are made)
    setup = lambda guest: guards.append(GuardWatch(guest, kernel, t.watch.kernel_roots))  # noqa: E731
    run = t.boot("hello", lambda started: dict(hello_seen(t, set()), **guards[0].end()), setup=setup)
    check_loader_writes(run, kernel, t.watch)
    w = t.witness()
    t.check(w["data"].decode(errors="replace") != want and f"hello's write buffer, read by the grader through its root, "
                                                           f"holds {w['data'][:120]!r}, expected {want!r}",
            low_frames(w, w["reach"]) and f"hello ran, but {low_frames(w, w['reach'])}",
            guard_problem(w, "hello's pages are in frames above the window"))
    t.expect(re.escape(want.rstrip("\n")) + "$", "hello's line on the console")
    t.exited(1, "hello")
    t.success()


@lab_test(4, "spawn_while_running")
def test_spawn_while_running(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    want = hello_line(t.token, arch)
    count = t.pick("spawns", 1, 3)

    def script(started):
        parent_roots = set(t.watch.roots)  # the kernel's and the spawner's: the child's is made later
        guards = GuardWatch(t.guest, kernel, t.watch.kernel_roots)   # (the child's loader's, every one)
        return dict(hello_seen(t, parent_roots), **guards.end())

    check_loader_writes(t.boot(f"spawner:hello:{count}", script), kernel, t.watch)
    w = t.witness()
    t.check(w["data"].decode(errors="replace") != want and f"the spawned hello's write buffer, read by the grader "
            f"through the child's root {w['root']:#x}, holds {w['data'][:120]!r}, expected {want!r}: the child was not "
            "loaded correctly into its root (written through a mapping of another root?)",
            low_frames(w, w["reach"]) and f"the spawned hello ran, but {low_frames(w, w['reach'])}",
            guard_problem(w, "the spawned hello's pages are in frames above the window"))
    t.expect(rf"^spawner: {count} of {count} started proof={proof(t.token, count):016x}$", "the spawner's summary")
    t.all_exited(count + 1, f"the spawner and its {count} children")
    t.success()


@lab_test(4, "bad_pointers")
def test_bad_pointers(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    kernel_address = fact(kernel, "window_base") + t.pick("badptr kernel", 0, (1 << 20) - 1) * PAGE
    unmapped = (1 << 36) + t.pick("badptr unmapped", 0, (1 << 24) - 1) * PAGE  # far from every segment
    readonly = user_symbol(kernel, arch, "badptr", "(anonymous namespace)::kReadOnly").address
    straddle_page = (user_symbol(kernel, arch, "badptr", "_end").address + PAGE - 1) // PAGE * PAGE
    last = t.pick("badptr last byte", 2, PROC_INFO_SIZE)   # last_byte: a record whose last byte alone is unmapped
    run = t.boot(f"badptr:{kernel_address:#x}:{unmapped:#x}:{last}")
    check_loader_writes(run, kernel, t.watch)
    t.witness()
    # The cause first, from QEMU's log: which copy faulted where, and what became of it.
    faults = kernel_faults(kernel, run)
    if faults:
        fail_on_cause(run, t.watch, copy_fault_problem(run, kernel, faults[0], kernel_address))
    fixed = [f for f in run.log.faults if recovered_by_fixup(kernel, f)]
    if run.search(r"^PANIC"):
        stuck = [f for f in fixed if run.log.faults and f.index == run.log.faults[-1].index]
        if stuck:
            # The table (read from the ELF file) holds the instruction: the lookup is the cause, the
            # panic what it led to; the kernel's check of the lookup (checked_user_fixup) says what it gave.
            said = panic_line("\n".join(run.lines))
            t.fail("a bad user pointer made the kernel panic", cause=(
                f"the last fault, at {run.symbol_of(stuck[0].pc) or hex(stuck[0].pc)} on user address "
                f"{stuck[0].address:#x}, is a user copy's whose instruction the fix-up table holds (read from "
                "the kernel's ELF file), yet the kernel did not resume at its fix-up: user_fixup_for() did not "
                "give that entry's resume address" + (f" (the kernel's check: {said})" if "user_fixup_for(" in said
                                                      else "")))
        t.fail("a bad user pointer made the kernel panic")
    expected = {"null": lambda a: a < PAGE, "unmapped": lambda a: unmapped <= a < unmapped + PAGE,
                "straddling": lambda a: a == straddle_page, "readonly": lambda a: readonly <= a < readonly + 64,
                "last_byte": lambda a: a == straddle_page}
    efaults, refused = 0, {}   # routine kind ("string" or "bytes") -> a pointer whose faulting copy came back EFAULT
    for tag, kind in enumerate(BADPTR_KINDS, 1):
        ops = {"readonly": [("write (proc_info)", 2), ("write (read)", 3)],
               "last_byte": [("write (proc_info)", 2)]}.get(
            kind, [("read (write)", 0), ("read (spawn)", 1), ("write (proc_info)", 2), ("read (read)", 3)])
        for op, salt in ops:
            said = run.search(rf"badptr: {kind} {re.escape(op)} -> (-?\d+) proof=")  # after what write() printed
            string = op == "read (spawn)"
            seen = [f for f in fixed if kind in expected and expected[kind](f.address)
                    and in_string_copy(kernel, f.pc) == string]
            if said and int(said[1]) == EFAULT and seen:
                refused.setdefault("string" if string else "bytes", kind)
            if said and int(said[1]) != EFAULT:
                t.check(badptr_result_problem(run, kind, op, int(said[1]), seen, refused, kernel_address, last))
            got = proof(t.token, (EFAULT & MASK64) ^ (tag << 8) ^ salt)
            t.expect(rf"^badptr: {kind} {re.escape(op)} -> {EFAULT} proof={got:016x}$", f"EFAULT for a {kind} pointer ({op})")
            efaults += 1
    t.expect(rf"^badptr: {efaults} EFAULTs proof={proof(t.token, efaults):016x}$", "badptr's summary")
    # The witness: the copies really ran and faulted on the addresses the grader chose, and were
    # recovered (instruction in the fix-up table read from the ELF file, address in the user half).
    missing = [k for k, hit in expected.items() if not any(hit(f.address) for f in fixed)]
    privilege = ARCHES[arch].kernel_privilege
    t.check(not user_fixups(kernel) and "the kernel has no fix-up table (section pagoda_user_fixups)",
            missing and f"QEMU's log shows no recovered user-copy fault for the {', '.join(missing)} pointer(s): the "
                        "kernel did not really copy (a kernel that prints EFAULT without trying scores nothing)",
            any(f.privilege == privilege and f.address is not None and kernel_address <= f.address < kernel_address +
                PAGE for f in run.log.faults) and f"the kernel touched the kernel-half address {kernel_address:#x} a "
            "user passed it: a kernel pointer must be refused before any copy")
    t.expect(r"^run: temp-map slots live: 0;", "no temp-map slot left live after the run")
    t.exited(1, "badptr")
    t.success()
    kernel_fault_in_copy(t, kernel, arch)


def kernel_fault_in_copy(t, kernel, arch):
    """Rule 11, in a boot of its own: a copy routine's fault on a user address comes back through
    its fix-up; on a kernel address it is a kernel fault, never a fix-up (EFAULT)."""
    word = 8 * t.pick("kernel copy word", 0, PAGE // 8 - 1)
    user = (1 << 32) + t.pick("kernel copy user page", 0, (1 << 24) - 1) * PAGE + word   # the kernel root maps none
    hole = fact(kernel, "window_base") + fact(kernel, "window_size")   # up to the MMIO area: nothing mapped
    va = hole + t.pick("kernel copy page", 0, (1 << 24) - 1) * PAGE + word
    size = t.pick("kernel copy size", 1, 64)   # then written to it: the copy's first store faults
    run = t.selftest("kernel_copy_fault", args={"user": user, "addr": va, "size": size})
    said = panic_line("\n".join(run.lines))
    back = run.search(rf"^kernel_copy_fault: the copy from user address {user:#x} came back, 8 bytes not copied$")
    if not back or not any(recovered_by_fixup(kernel, f) and f.address == user for f in run.log.faults):
        t.fail(f"the kernel's check: {said}" if said else "missing: the copy's line", cause=(
            f"a user copy that faulted on user address {user:#x} (the kernel's root maps no user page) did not come "
            "back through its fix-up with 8 bytes not copied: user_fixup_for() must give the entry's resume address "
            "for a user address"))
    stored = run.search(rf"^kernel_copy_fault: the copy of {size} bytes to user address {user:#x} came back, (\d+) "
                        "bytes not copied$")
    if not stored:
        t.fail(f"the kernel's check: {said}" if said else "missing: the line of the copy to a user address", cause=(
            f"a user copy of {size} bytes to user address {user:#x} (unmapped: its first store faults) did not come "
            "back through its fix-up: every store that may fault on a user address needs its fix-up entry"))
    if int(stored[1]) != size:
        found = (f"a user copy of {size} bytes to user address {user:#x} (unmapped: its first store faults) came back "
                 f"with {stored[1]} bytes not copied: the fix-up path must make the copy return the {size} bytes it did "
                 "not copy (a byte count taken down before the store that faulted?)")
        t.fail(found, cause=found)
    if "user_fixup_for(" in said or "came back" in said:
        t.fail(f"the kernel's check: {said}", cause=(
            f"a user copy that faulted on kernel address {va:#x} was given a fix-up: user_fixup_for() must give 0 for "
            "an address outside the user half, or a kernel bug passes for a bad user pointer (EFAULT)"))
    vector, error, mask = fault_expectation(arch, user=False, mapped=False)
    event = expect_fault(run, vector=vector, error=error, error_mask=None if mask == ~0 else mask, address=va,
                         kernel=kernel, what=f"the copy from kernel address {va:#x}")
    t.check(not in_copy_routine(kernel, event.pc) and f"the fault on {va:#x} came from "
            f"{run.symbol_of(event.pc) or hex(event.pc)}, not from a user-copy routine")
    run.expect_outcome("failure")


@lab_test(4, "copy_frame")
def test_copy_frame(boot, kernel, arch):
    t = LabTest(boot, kernel, arch)
    # The self-test's cases, in its order (its kHigh): both above the window, the source in it, the target in it.
    names = ["between two frames above the window", "from a window frame into one above it",
             "from a frame above the window into a window frame"]
    cases = len(names)
    seeds = [proof(t.token, COPY_TAG + i) for i in range(2 * cases)]
    first = t.pick("copy first case", 0, cases - 1)

    def script(guest):
        snap = t.stop("copy_frame", "temp_copy", "frames")
        if snap.argument(2) != cases:
            raise AssertionError(f"the copy_frame self-test makes {snap.argument(2)} copies, not {cases}")
        frames = struct.unpack(f"<{2 * cases}Q", snap.read_virt(snap.argument(1), 16 * cases))
        for frame, seed in zip(frames, seeds):
            guest.write_phys(frame, pattern_page(seed))
        guards = GuardWatch(guest, kernel, {snap.root, snap.lower_root})
        snap = t.stop("copy_frame", "temp_copy", "copied")
        # (walked after the copies: a kernel half that grew to reach them on the way is seen)
        reach = kernel_reach(snap, kernel)
        high = [frames[0], frames[1], frames[3], frames[4]]
        return dict(frames=frames, high=high, reached=[reach.problem(f, "a frame above the window") for f in high],
                    after=[snap.read_phys(f, PAGE) for f in frames], area=temp_area(snap, kernel), **guards.end())

    w = t.selftest("copy_frame", script, args={"first": first})
    f, after = w["frames"], w["after"]
    copies = [(names[k], copy_problem(f[2 * k], f[2 * k + 1], seeds[2 * k:2 * k + 2], after[2 * k], after[2 * k + 1]))
              for k in range(cases)]
    t.check(*(problem and f"copy_frame() {name}: {problem}" for name, problem in copies),
            # (the grader's walk of the kernel half, never the window_size fact)
            all(w["reached"]) and "after copy_frame() the kernel half still reaches the copies' frames above the "
                                  "window without a temporary mapping: allocate_high() gave no frame only a temporary "
                                  f"mapping reaches, or the kernel maps them some other way\n{w['reached'][0]}",
            not any(w["reached"]) and w["guards"] < len(w["high"]) and f"copy_frame() made {w['guards']} temporary "
            f"mapping(s) (the TempMap constructors the grader saw return) for copies that touch {len(w['high'])} "
            "frames above the window: a frame the window does not show is reached through a TempMap, one for each",
            w["guard_problem"],
            (w["area"] is None or w["area"].depth != 0) and "after copy_frame() returned, the kernel's temp-map slot "
            f"stack is {'missing' if w['area'] is None else w['area'].depth} deep (read from guest RAM): its guards "
            "must give their slots back")
    t.expect(rf"^copy_frame: {cases} copies from case {first}; temp-map slots live now: 0$", "the copy test's summary")
    t.success()


@lab_test(4, "copy_edges")
def test_copy_edges(boot, kernel, arch):
    """Copies whose range ends exactly at the user half's top and one past it, a record that
    runs over it, and names of exactly the kernel's limit and one byte short (edges.cpp)."""
    t = ProcTest(boot, kernel, arch)
    top = fact(kernel, "user_end")
    length, over, short = t.pick("edges line", 24, 32), t.pick("edges over", 1, 2 * PAGE), t.pick("edges short", 1,
                                                                                                MAX_NAME)
    end = user_symbol(kernel, arch, "edges", "_end").address
    end_page = (end + PAGE - 1) // PAGE * PAGE
    if end_page - end < 1:
        raise AssertionError(f"edges' _end ({end:#x}) is page aligned: no room for name_cut (the grader's build)")
    cut = t.pick("edges cut", 1, min(MAX_NAME, end_page - end))
    cases = edge_cases(top, length, over, short, cut, end_page)
    run = t.boot(f"edges:{top:#x}:{length}:{over}:{short}:{cut}")
    t.witness()
    announced = [m for m in (re.match(r"^edges: next (\w+)$", line) for line in run.lines) if m]
    faults = kernel_faults(kernel, run)
    if faults and announced:
        case = announced[-1][1]
        what = next(w for c, _, _, w in cases if c == case)
        fail_on_cause(run, t.watch, edge_fault_problem(run, faults[0], case, what, top, short))
    for case, tag, due, what in cases:
        said = run.search(rf"^edges: {case} -> (-?\d+) proof=([0-9a-f]{{16}})$")
        if said is None:
            t.expect(rf"^edges: {case} -> ", f"edges' answer to {case}, {what}")
        got = int(said[1])
        if got != due:
            hint = {"at_top": "a range whose last byte is the user half's last lies in it (end == top is allowed)",
                    "info_at_top": "a record whose last byte is the user half's last lies in it",
                    "name_max": ("a name that fills the buffer with no NUL is too long (ENAMETOOLONG)" if got == EFAULT
                                 else "the buffer held no NUL after max bytes"),
                    "name_fits": "a name of max - 1 bytes and its NUL fits the buffer exactly",
                    "name_short": "a name that reaches the user half's top without a NUL faults (EFAULT)"}.get(
                        case, "a range that runs past the user half is refused whole, before any byte is copied")
            t.fail(f"{case}: {what} returned {got}, where {due} was due: {hint}")
        t.check(said[2] != f"{proof(t.token, (due & MASK64) ^ (tag << 8)):016x}" and
                f"{case}: edges' answer carries the wrong proof: the line was not printed by edges")
    letters = "".join(chr(derived(t.token, "edges_letter", i)) for i in range(len("edges: "), length - 1))
    t.expect(rf"^edges: {re.escape(letters)}$", f"the line edges wrote from the user half's last {length} bytes "
                                                 "(at_top), on the console")
    t.expect(rf"^edges: done proof={proof(t.token, top ^ length):016x}$", "edges' last line")
    t.check(not any(f.address == end_page for f in run.log.faults if recovered_by_fixup(kernel, f)) and
            f"name_cut: {cases[-1][3]} returned EFAULT, but {QEMU_LOG} shows no user-copy fault at {end_page:#x} "
            "recovered through the fix-up table: the string copy did not read through the user address (lab 4's "
            "copies run straight through it, and a bad page faults; checking each page in the tables first is lab "
            "3's way)")
    t.exited(1, "edges")
    t.success()


@lab_test(4, "space_copy_pages")
def test_space_copy_pages(boot, kernel, arch):
    """copy_to_space() into a space that is not live: ranges that start inside a page and cross
    one or two page boundaries, one ending at the last mapped page's end, one running a byte
    past it; the frames filled before and read after by the grader."""
    t = LabTest(boot, kernel, arch)
    pages = fact(kernel, "space_copy_pages")
    span = pages * PAGE
    base = (1 << 32) + t.pick("space base", 0, (1 << 20) - 1) * PAGE
    # Page 0 to the end of the last page, starting in the first half of page 0: more than half a page
    # is left there, so any later chunk sized by another address's offset crosses a page's end (with
    # 2**k bytes left, chunks of that size tile the pages exactly and a wrong size would go unseen).
    o2 = t.pick("space o2", 1, PAGE // 2 - 1)
    n2 = span - o2
    o1 = t.pick("space o1 page", 0, pages - 2) * PAGE + t.pick("space o1", 1, PAGE - 1)
    n1 = PAGE - o1 % PAGE + t.pick("space n1", 1, PAGE - 1)   # crosses one boundary, ends inside a page
    k3 = t.pick("space k3", 1, 64)
    # A read-only user page of the same space, far from the others (base < 2**33 + 3 pages), and a
    # range inside it: the copy into it must be refused, its frame left as the grader filled it.
    ro = (1 << 34) + t.pick("space ro", 0, (1 << 20) - 1) * PAGE
    o4 = t.pick("space o4", 0, PAGE - 1)
    n4 = t.pick("space n4", 1, PAGE - o4)
    ro_fill = pattern_page(proof(t.token, SPACE_FILL_TAG + pages))
    fills = [pattern_page(proof(t.token, SPACE_FILL_TAG + i)) for i in range(pages)]
    copies = [(o2, n2), (o1, n1)]

    def stop(guest, name):
        snap = guest.stop_at(C.CHECKPOINT)
        if snap.argument(0) != fact(kernel, f"space_copy_{name}_stop") or snap.argument(2) != base:
            raise AssertionError(f"the space_copy self-test stopped at checkpoint {snap.argument(0):#x} (base "
                                 f"{snap.argument(2):#x}), not at its {name} stop for base {base:#x}")
        return snap

    def script(guest):
        snap = stop(guest, "frames")
        record = snap.argument(1)
        root, *frames = struct.unpack(f"<{1 + pages}Q", snap.read_virt(record, 8 * (1 + pages)))
        walked = [w.pa if w.mapped else None for w in (snap.walk(base + i * PAGE, root) for i in range(pages))]
        ro_frame, = struct.unpack("<Q", snap.read_virt(record + 8 * (1 + pages) + 24, 8))
        ro_walk = snap.walk(ro, root)
        for i, frame in enumerate(frames):
            guest.write_phys(frame, fills[i])
        guest.write_phys(ro_frame, ro_fill)
        guards = GuardWatch(guest, kernel, {snap.root, snap.lower_root})
        snap = stop(guest, "copied")
        results = struct.unpack("<3q", snap.read_virt(record + 8 * (1 + pages), 24))
        ro_result, = struct.unpack("<q", snap.read_virt(record + 8 * (1 + pages) + 32, 8))
        reach = kernel_reach(snap, kernel)   # (walked after the copies: a kernel half grown on the way is seen)
        return dict(root=root, frames=frames, walked=walked, got=[snap.read_phys(frame, PAGE) for frame in frames],
                    results=results, reached=[reach.problem(f, f"space_copy's page {i}") for i, f in enumerate(frames)],
                    ro_frame=ro_frame, ro_result=ro_result, ro_got=snap.read_phys(ro_frame, PAGE),
                    ro_mapped=ro_walk.mapped, ro_pa=ro_walk.pa if ro_walk.mapped else None,
                    ro_user=ro_walk.mapped and ro_walk.perms.user, ro_write=ro_walk.mapped and ro_walk.perms.write,
                    **guards.end())

    run = t.selftest("space_copy", script, require=False, args={"base": base, "o1": o1, "n1": n1, "o2": o2, "n2": n2,
                                                                 "k3": k3, "ro": ro, "o4": o4, "n4": n4})
    started = [m[1] for m in (re.match(r"^space_copy: (\d+) bytes to (0x[0-9a-f]+)", line) for line in run.lines) if m]
    last = next((l for l in reversed(run.lines) if l.startswith("space_copy: ")), "")
    if run.witness is None and run.search(r"^PANIC") and last.endswith(" in a read-only page)"):
        found = (f"copy_to_space({ro + o4:#x}, {n4} bytes) into a read-only user page of a space that is not live: the "
                 "kernel panicked during the copy: a copy into a page the process may not write must be refused "
                 "(InvalidArgument), not attempted")
        t.fail(found, cause=found)
    if run.witness is None and run.search(r"^PANIC") and started:
        size = int(started[-1])
        offset = {n2: o2, n1: o1, k3 + 1: span - k3}.get(size, o1)
        cut = [hex(base + b) for b in range(offset // PAGE * PAGE + PAGE, offset + size, PAGE)]
        found = (f"copy_to_space({base + offset:#x}, {size} bytes) into a space that is not live, starting "
                 f"{offset % PAGE} bytes into its page and crossing the page boundar{'y' if len(cut) == 1 else 'ies'} "
                 f"at {', '.join(cut)}: the kernel panicked during the copy: a chunk must end at its page's end "
                 f"(at most a page minus the offset), never run past it")
        t.fail(found, cause=found)   # (the panic's own line follows it)
    w = run.require_witness()
    chunks = sum(len(range(o // PAGE, (o + n - 1) // PAGE + 1)) for o, n in copies)
    which = (o2, n2) if w["results"][1] else (o1, n1)   # results: [the o1 copy, the o2 copy, the third]
    t.check(w["walked"] != w["frames"] and f"space_copy's space (root {w['root']:#x}) maps its pages at {base:#x} to "
            f"{', '.join(hex(p) if p else 'nothing' for p in w['walked'])}, where the test says "
            f"{', '.join(hex(p) for p in w['frames'])} (the grader walked the root in guest RAM)",
            space_copy_problem(base, w["frames"], copies, space_copy_source(t.token, span), fills, w["got"]),
            # (the grader's walk of the kernel half, never the window_size fact)
            all(w["reached"]) and "after copy_to_space() the kernel half reaches every frame of space_copy's pages "
            "without a temporary mapping: allocate_high() gave no frame only a temporary mapping reaches, or the kernel "
            f"maps them some other way\n{w['reached'][0]}",
            not any(w["reached"]) and w["guards"] < chunks and f"copy_to_space() wrote {chunks} chunks into frames "
            f"above the window with {w['guards']} temporary mapping(s) (the TempMap constructors the grader saw return): "
            "a frame the window does not show is reached through a TempMap, one for each page written",
            w["results"][:2] != (0, 0) and f"copy_to_space({base + which[0]:#x}, {which[1]} bytes), inside the {pages} "
                                           "mapped pages, failed")
    m = t.expect(r"^space_copy: results (-?\d+) (-?\d+) (-?\d+); free frames before (\d+) after (\d+) proof=",
                 "space_copy's summary")
    t.check(int(m[3]) == 0 and f"copy_to_space({base + span - k3:#x}, {k3 + 1} bytes), whose last byte is one past the "
            f"mapped pages (at {base + span:#x}, unmapped in that space), returned success: a page the space does not "
            "map must fail the copy",
            m[4] != m[5] and f"space_copy had {m[4]} free frames before and {m[5]} after: the copies leaked frames",
            readonly_copy_problem(ro, o4, n4, w, ro_fill), w["guard_problem"])
    t.success()
