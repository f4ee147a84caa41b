"""Lab 3 — per-process roots: the grader's checks. Points and timeouts: labs/03-process-roots/lab.toml.

What each test witnesses and what it still believes: docs/grader.md, "What the grader trusts".
Every boot runs user programs (user/programs/) with run=...; the grader stops the guest where it
likes (the run's checkpoints, the system-call entry, the context switch, instants it picks),
reads the CPU's roots and stack pointers through the gdbstub, and walks every root in guest RAM
itself. The kernel's own lines only label what the grader sees ("proc 2 (spin)").

Every witnessed boot first checks the roots of the processes it is about to run (after they are
made, before any runs): the kernel half shared with the kernel root, and every kernel stack
mapped in every root. So the two classic failures of this lab are named before the machine
dies of them, whether the kernel's pre-switch check is on or off (vm_check=off)."""
import re
from collections import Counter

from pagoda_core import qemu

from pagoda_pt import contract as C
from pagoda_grade import churn, lab_test
from pagoda_grade.derived import hello_line, tag, value as derived
from pagoda_grade.labtest import ProcTest, signed
from pagoda_grade.preempt import SpinProgress, preemption_problem, short_turn_problem, trace_preemption, wait_for_ticker_end
from pagoda_grade.processes import (HEX, Layout, count_used, is_used, kernel_faults, parse_kills, parse_reaped,
                                    process_roots, table_frames, user_page_frames, user_symbol, written)
from pagoda_grade.outcomes import finding_first
from pagoda_grade.proof import proof
from pagoda_grade.symbols import address_of, fact
from pagoda_grade.watch import (DISPATCHER, SPIN_FOREVER, fault_expectation, last_general_call, last_test_call,
                                syscall_args_problem, u64, user_text)
from pagoda_grade.bootram import window_ram
from pagoda_grade.witness import ARCHES, MACHINES, PAGE, expect_fault, pick_in, pick_page

FUZZ_CALLS = 10_000
ENOSYS = 38
SETTLE_TICKS = 12   # preempt_user: spinner ticks after the ticker ends before the first look counts (6 turns)
ASIDS = 256   # AArch64's ASIDs (arch/aarch64/address_space.cpp's kAsids): bit n of g_asids_used set while n is taken


# ---- hello from user mode ------------------------------------------------------------------------

@lab_test(3, "hello_user")
def test_hello_user(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    want = hello_line(t.token, arch)
    watch = t.watch
    text = user_text(kernel, arch, "hello")

    def script(started):
        # (the process audit at every switch as well: the first is from the idle loop, before any
        # tick could make up for a pick the scheduler left Ready)
        t.guest.side_stop(watch.proc["switch"])
        snap = t.call("Write").snap
        fd, buf, _ = (snap.register(r) for r in watch.proc["syscall_args"][:3])
        page = snap.walk(buf)
        return dict(root=snap.lower_root, live=watch.live_problem(snap, watch.proc["syscall_entry_kernel_sp"]),
                    pc=snap.register(watch.proc["syscall_return_pc"]), fd=fd,
                    data=written(snap, watch.proc, most=PAGE), user=page.mapped and page.perms.user)

    run = t.boot("hello", script)
    w = t.witness()
    run.check(w["live"] and f"at hello's write system call: {w['live']}")
    if w["root"] in watch.kernel_roots or w["root"] not in watch.roots:
        run.fail(f"the write system call came with root {w['root']:#x} loaded, not a process root the kernel "
                 "published: hello does not run in a root of its own")
    if not text[0] <= w["pc"] < text[1]:
        run.fail(f"the write system call returns to {w['pc']:#x}, outside hello's text [{text[0]:#x}, {text[1]:#x}): "
                 "it did not come from the program in user mode")
    if w["fd"] != 1 or not w["user"]:
        run.fail(f"the write system call has fd {w['fd']} and a buffer on a {'user' if w['user'] else 'NON-user'} page")
    if w["data"].decode(errors="replace") != want:
        run.fail(f"the buffer hello passed to write (read by the grader through its root) holds "
                 f"{w['data'][:120]!r}, expected {want!r}: the value was not computed in user space")
    line = want.rstrip("\n")
    again = [l for l in run.lines if len(l) >= 8 and l != line and line.endswith(l)]
    if again:
        reg = "RAX" if arch == "x86_64" else "x0"
        run.fail(f"hello's line came out again, shorter each time ({len(again)} more lines: {again[0][:40]!r}, ...): "
                 f"its write() returned less than it wrote (the user library writes the rest again), so the system "
                 f"call's result never reached the caller: {reg}, where the result goes back, still held what it held "
                 "at the call (the number, or the first argument); the system-call entry must write proc::syscall()'s "
                 f"result into the frame's {reg}")
    run.expect(re.escape(line) + "$", "hello's line on the console")
    t.exited(1, "hello")
    run.expect_outcome("success")


# ---- two roots, one address ----------------------------------------------------------------------

@lab_test(3, "separate_roots")
def test_separate_roots(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    v1 = t.pick("memcheck 1", 1, 2**63)
    v2 = t.pick("memcheck 2", 1, 2**63) ^ v1 or 1
    var = user_symbol(kernel, arch, "memcheck", "memcheck_value").address
    watch = t.watch

    def script(started):
        seen = {}
        for _ in range(12):
            snap = t.call("Yield").snap
            if snap.lower_root in seen:
                continue
            live = watch.live_problem(snap, watch.proc["syscall_entry_kernel_sp"])
            if live:
                return {"problem": f"at memcheck's yield: {live}"}
            w = snap.walk(var)
            if not w.mapped:
                return {"problem": f"memcheck_value {var:#x} is not mapped in root {snap.lower_root:#x}, the root loaded "
                                   "when memcheck made its system call"}
            seen[snap.lower_root] = (w.pa, u64(snap.read_phys(w.pa, 8)), w.perms.rwx(), w.perms.user)
            if len(seen) == 2:
                break
        return {"seen": seen}

    run = t.boot([f"memcheck:{v1:#x}", f"memcheck:{v2:#x}"], script)
    w = t.witness()
    run.check("problem" in w and w["problem"])
    seen = w["seen"]
    if len(seen) != 2 or watch.kernel_roots & set(seen):
        run.fail(f"the two memcheck processes made their system calls in {len(seen)} distinct process roots "
                 f"({', '.join(hex(r) for r in seen)}): each needs a root of its own")
    (ra, (fa, xa, pa, ua)), (rb, (fb, xb, pb, ub)) = seen.items()
    if fa == fb:
        run.fail(f"roots {ra:#x} and {rb:#x} map memcheck_value {var:#x} to the same frame {fa:#x}: the two processes "
                 "share their data")
    if {xa, xb} != {v1, v2}:
        run.fail(f"the frames behind {var:#x} hold {xa:#x} (root {ra:#x}) and {xb:#x} (root {rb:#x}), read from guest RAM; "
                 f"the two processes wrote {v1:#x} and {v2:#x}")
    for perms, user, root in ((pa, ua, ra), (pb, ub, rb)):
        if perms != "rw-" or not user:
            run.fail(f"memcheck's data page is mapped {perms}{' user' if user else ' kernel-only'} in root {root:#x}, "
                     "expected rw- user")
    for v in (v1, v2):
        run.expect(rf"^memcheck: pid \d+ wrote {v:#x} at {var:#x}, reads {v:#x} proof={proof(t.token, v):016x}$",
                   f"the memcheck that wrote {v:#x} reading it back")
    run.expect_outcome("success")


# ---- the timer takes the CPU from ring 3 ------------------------------------------------------

TICKER_LINE = re.compile(r"^ticker: pid (\d+) line (\d+) of (\d+) proof=([0-9a-f]{16})$")
COMPLETE_LINES = (TICKER_LINE, re.compile(r"^spin: pid \d+ counted to \d+ proof=[0-9a-f]{16}$"),
                  re.compile(r"^proc \d+ \([a-z0-9_!]+\): (started; root|reaped: )"),
                  re.compile(r"^run: (\d+ programs; frames in use before: \d+|all processes ended; .*)$"),
                  re.compile(r"^run: temp-map slots live: \d+; temporary mappings made since boot: \d+$"))  # lab 4


@lab_test(3, "preempt_user")
def test_preempt_user(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    lines = t.pick("ticker lines", 3, 6)
    pause = t.pick("ticker pause", 2, 5)
    delays = (t.pick("first look", 20, 40) / 100, t.pick("second look", 20, 40) / 100)
    count_va = user_symbol(kernel, arch, "spin", "spin_count").address
    stop_va = user_symbol(kernel, arch, "spin", "spin_stop").address
    spin_main = user_symbol(kernel, arch, "spin", "main")
    watch = t.watch

    def script(started):
        spinners = sorted(r for r, label in watch.roots.items() if label.endswith(")") and " of spin (" in label)
        if len(spinners) != 2:
            return {"problem": f"the registry lists {len(spinners)} roots for spin, expected 2"}
        trace = trace_preemption(t.guest, watch, spinners, spin_main)
        if not all(trace["preempted"].values()):
            t.guest.end()   # a spinner that never ran would spin on to the deadline: the failure is named
            return {"spinners": spinners, "looks": None, "trace": trace}

        def look(delay, what):
            snap = t.guest.stop_after(delay, what)
            # (from lab 5 on, spin_count's page comes at the first touch: not there yet reads 0)
            return snap, [u64(snap.read_virt(count_va, 8, root)) if snap.walk(count_va, root).mapped else 0
                          for root in spinners]
        # Both were seen preempted; now each must keep counting while the other spins. On a loaded
        # host the guest may get little CPU in a look's wall-clock delay (a starved QEMU ran 1 ms in
        # 60), so the grader looks again until both have started, then until both have counted on
        # from there: only the test's deadline bounds the looks, never a count of them, and the
        # deadline's message says what it waited for.
        # The ticker ends first: from then on the two spinners are the only processes, and a
        # scheduler that does not give every Ready process a turn (one that never wraps around the
        # table) can no longer hide behind the ticker's wake-ups.
        wait_for_ticker_end(t.guest, watch)
        # The first look also waits for SETTLE_TICKS of the spinners' ticks after the ticker's end:
        # a turn that began before the end (the one a scheduler that never wraps gives the lower
        # slot last) is over by then, so a spinner that moves between the looks was picked anew.
        started = "both spinners counting (spin_count above 0 in each spinner's root)"
        progress = SpinProgress(spinners)
        settled = progress.ticks(t.guest, watch, spin_main) + SETTLE_TICKS
        snap, first = look(delays[0], started)
        while not all(first) or progress.ticks(t.guest, watch, spin_main) < settled:
            starved = progress.starved(t.guest, watch, snap, first, spin_main)
            if starved:
                t.guest.end()   # (the starved spinner would wait to the deadline: the failure is named)
                return {"problem": starved}
            snap, first = look(delays[0], started)
        moved = (f"both spinners counting on past {first[0]} and {first[1]} (each must keep running while the "
                 "other spins)")
        snap, second = look(delays[1], moved)
        while not all(b > a for a, b in zip(first, second)):
            starved = progress.starved(t.guest, watch, snap, second, spin_main)
            if starved:
                t.guest.end()   # (the starved spinner would wait to the deadline: the failure is named)
                return {"problem": starved}
            snap, second = look(delays[1], moved)
        looks = [first, second]
        for root in spinners:
            if snap.walk(stop_va, root).mapped:
                snap.write_virt(stop_va, (1).to_bytes(8, "little"), root)
        return {"spinners": spinners, "looks": looks, "trace": trace}

    run = t.boot([f"spin:{SPIN_FOREVER:#x}", f"spin:{SPIN_FOREVER:#x}", f"ticker:{lines}:{pause}"], script)
    w = t.witness()
    run.check("problem" in w and w["problem"])
    for root in w["spinners"]:
        problem = preemption_problem(w["trace"], root, watch.arch)
        if problem:
            watch.fail(run, problem)
    problem = short_turn_problem(w["trace"]["turns"], fact(kernel, "ticks_per_turn"), watch.arch)
    if problem:
        watch.fail(run, problem)
    run.check(w["looks"] is None and "the grader saw a spinner that was never preempted, yet found no reason why")
    (a1, b1), (a2, b2) = w["looks"]
    user_ticks = [e for e in run.log.hardware_interrupts(watch.proc["timer_vector"])
                  if e.privilege == watch.proc["user_privilege"] and spin_main.contains(e.pc)]
    for name, first, second in (("first", a1, a2), ("second", b1, b2)):
        if not 0 < first < second:
            # Why, from QEMU's log: the timer did interrupt spin in user mode (and nothing took the
            # CPU away), or it never did.
            why = (f"QEMU's log shows {len(user_ticks)} timer interrupts taken in user mode inside spin's loop, yet one "
                   "spinner kept the CPU: a tick that interrupts a process in user mode does not preempt it (the "
                   "timer's handler must end its turn: schedule())" if user_ticks else
                   "QEMU's log shows no timer interrupt taken in user mode inside spin's loop: nothing could preempt "
                   "the spinners (interrupts off in user mode, or the timer stopped)")
            run.fail(f"the {name} spinner's spin_count, read by the grader in its root at two instants "
                     f"{delays[1]:.2f} s apart, went from {first} to {second}: it did not keep making progress while "
                     f"the other spun. {why}")
    if all(e.root is None for e in user_ticks):
        # AArch64's log names no root: the two spinners run the same code, so the log can only say
        # that the timer interrupted spin's loop in EL0 (their counters, read per root, say both ran).
        if len(user_ticks) < 2:
            run.fail(f"QEMU's log shows {len(user_ticks)} timer interrupts taken in user mode inside spin's loop: the "
                     "spinners were not preempted from user mode")
    for root in w["spinners"] if any(e.root is not None for e in user_ticks) or not user_ticks else ():
        if not any(e.root == root for e in user_ticks):
            run.fail(f"QEMU's log shows no timer interrupt taken in ring 3 inside spin's loop with root {root:#x}: the "
                     "spinner was never preempted from user mode")
    got = {int(m[2]): m for m in map(TICKER_LINE.match, run.lines) if m}
    for i in range(1, lines + 1):
        m = got.get(i)
        if m is None:
            watch.fail(run, f"missing: the ticker's line {i} of {lines} (the ticker sleeps {pause} ticks between lines "
                            "while two processes spin)")
        if int(m[4], 16) != proof(t.token, tag("ticker_line") ^ (i << 16) ^ lines):
            run.fail(f"the ticker's line {i} has a wrong proof")
    started = run.lines.index(next(l for l in run.lines if l.startswith("run: ")))
    for line in run.lines[started:]:
        if line and not any(rx.match(line) for rx in COMPLETE_LINES):
            watch.fail(run, f"a console line is cut or garbled while processes run: {line[:120]!r}")
    run.expect(r"^run: all processes ended", "the end of the run")
    run.expect_outcome("success")


# ---- user mode cannot reach the kernel -------------------------------------------------------

def probe_targets(kernel, arch, token):
    """(what, address) pairs the probes read: one page of each kernel region."""
    def within(start, end, tag):
        return pick_page(token, tag, [(start, end)])[0] + pick_in(token, tag + " offset", 0, PAGE // 8 - 1) * 8

    sym = lambda n: address_of(kernel, n)  # noqa: E731
    window_base = fact(kernel, "window_base") - fact(kernel, "window_phys_base")
    layout = Layout.of(kernel)
    slot0 = layout.stack(0)
    device = MACHINES[arch].devices[0][0]  # a device the kernel maps (x86_64: the local APIC)
    return [
        *((f"kernel {name}", within(sym(lo), sym(hi), name)) for name, (lo, hi) in C.SECTIONS.items()),
        ("the window", window_base + pick_page(token, "window", window_ram(kernel, arch, 128 << 20))[0]),
        ("a kernel stack", within(*slot0, "stack")),
        ("MMIO", fact(kernel, "mmio_base") + device),
        ("the temp-map area", fact(kernel, "temp_map_base") + pick_in(token, "temp", 0, 1 << 20) * PAGE),
        ("a non-canonical address", (1 << 63) | (pick_in(token, "noncanonical", 1, 1 << 30) * PAGE)),
    ]


def noncanonical_as_page_fault(faults, pc, address, proc):
    """Whether this QEMU logged a page fault at @p pc with CR2 = @p address (non-canonical),
    where an x86 CPU takes #GP: QEMU 8.2's TCG does (Ubuntu 24.04's), 6.2 and 7.2 take #GP.
    Read from the run's own log (@p faults, ring 3), so measured, not assumed."""
    return any(f.vector == proc["page_fault"] and f.pc == pc and f.address == address for f in faults)


@lab_test(3, "kernel_probes")
def test_kernel_probes(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    proc = ARCHES[arch].proc
    targets = probe_targets(kernel, arch, t.token)
    read_at = user_symbol(kernel, arch, "probe", "probe_read")
    write_at = user_symbol(kernel, arch, "probe", "probe_write")
    data_code = user_symbol(kernel, arch, "probe", "probe_data_code").address
    ticker_lines = 3
    watch = t.watch

    def script(started):
        walks = {a: started.walk(a) for _, a in targets}  # every process made: their stacks too
        heap = watch.plan
        w = started.walk(heap)
        window = (fact(kernel, "window_base"), fact(kernel, "window_base") + fact(kernel, "window_size"))
        if not (w.mapped and w.perms.rwx() == "rw-" and not w.perms.user and window[0] <= heap < window[1]):
            return {"problem": f"the run's heap object {heap:#x} (given at the 'started' checkpoint) is not a rw- "
                               "kernel page of the window in the kernel root"}
        walks[heap] = w
        t.guest.stop_at_line(r"^probe: pid \d+ waiting for an address on the console$")
        t.guest.send_line(f"{heap:#x}")
        return {"walks": walks, "heap": heap}

    programs = [f"probe:read:{a:#x}" for _, a in targets] + ["probe:read:stdin", "probe:exec_data",
                                                              "probe:write_text", f"ticker:{ticker_lines}:2"]
    run = t.boot(programs, script)
    w = t.witness()
    run.check("problem" in w and w["problem"])
    walks, heap = w["walks"], w["heap"]
    kills = parse_kills(run)
    said = (re.match(rf"^probe: pid (\d+) (reads|executes its data at|writes its text at) ({HEX})$", line)
            for line in run.lines)
    pids = {(m[2], int(m[3], 16)): int(m[1]) for m in said if m}
    cases = [(what, "reads", a) for what, a in targets + [("the kernel heap", heap)]]
    cases += [("its own data (execute)", "executes its data at", data_code),
              ("its own text (write)", "writes its text at", read_at.address)]
    faults = [f for f in run.log.faults if f.privilege == proc["user_privilege"]]
    for what, verb, address in cases:
        pid = pids.get((verb, address))
        if pid is None:
            watch.fail(run, f"missing: the probe of {what} saying 'probe: pid N {verb} {address:#x}'")
        if pid not in kills:
            watch.fail(run, f"the probe of {what} ({address:#x}, pid {pid}) was not killed (no 'proc {pid} (probe): "
                            "killed: ...' line)")
        k = kills[pid]
        want = dict(address=address, pc=read_at.address, how="page fault")
        if verb == "reads" and address >> 47 not in (0, (1 << 17) - 1):
            vector, error, mask = fault_expectation(arch, noncanonical=True)
            want["reason"] = "non-canonical address"
            if arch == "x86_64" and noncanonical_as_page_fault(faults, read_at.address, address, proc):
                # What the CPU did, not the kernel: only the CPU writes CR2.
                boot.note("this QEMU takes a page fault (CR2 = the address), not #GP, for a user access "
                          "to a non-canonical address (QEMU 8.2's TCG; a real x86 CPU takes #GP): "
                          "the kernel must say so as a page fault")
                vector, error, mask = fault_expectation(arch, mapped=False)
            elif arch == "x86_64":
                want.update(address=None, how="protection fault", reason=None)
        elif verb == "reads":
            vector, error, mask = fault_expectation(arch, mapped=walks[address].mapped)
            want["reason"] = "user access to supervisor page" if walks[address].mapped else None
        elif verb == "executes its data at":
            vector, error, mask = fault_expectation(arch, fetch=True)
            want.update(pc=address, reason="execute of NX page")
        else:
            vector, error, mask = fault_expectation(arch, write=True)
            want.update(pc=write_at.address, reason="write to read-only page")
        want.update(vector=vector, error=error, mask=mask)
        logged = [f for f in faults if f.vector == want["vector"] and f.pc == want["pc"] and
                  (want["address"] is None or f.address == want["address"])]
        if not logged:
            run.fail(f"the probe of {what} ({address:#x}): QEMU's log shows no exception {want['vector']} in ring 3 at "
                     f"{want['pc']:#x}" + (f" with address {want['address']:#x}" if want["address"] is not None else ""))
        f = logged[0]
        if f.error is None or f.error & want["mask"] != want["error"] & want["mask"]:
            run.fail(f"the probe of {what}: the CPU took {f.describe(None)}, expected error {want['error']:#x}"
                     + (f" (bits {want['mask']:#x})" if want["mask"] != ~0 else ""))
        if f.root in watch.kernel_roots or (f.root is None and arch == "x86_64"):  # AArch64's log names no root
            run.fail(f"the probe of {what} faulted with the kernel root loaded, not in a root of its own")
        if k.how != want["how"] or k.pc != f.pc or (want["address"] is not None and k.address != want["address"]):
            run.fail(f"the kernel's kill line for the probe of {what} says '{k.how}' at {k.pc:#x} address "
                     f"{k.address}; the CPU took {f.describe(None)}")
        # Unmapped: where the grader's walk stopped ('PML4 entry 448', 'L0 entry 448'; the ISAs word
        # the rest differently: 'not present', 'invalid (translation fault)').
        reason = want["reason"] or (" ".join(walks[address].stop_reason.split()[:3])
                                    if verb == "reads" and want["how"] == "page fault" else None)
        if reason and reason not in k.reason:
            run.fail(f"the kernel gives the reason '{k.reason}' for the probe of {what}; expected '{reason}'")
    for i in range(1, ticker_lines + 1):
        run.expect(rf"^ticker: pid \d+ line {i} of {ticker_lines} proof=", f"the sibling's line {i}: it survives")
    run.expect(r"^run: all processes ended", "the kernel carrying on to the end of the run")
    run.expect_outcome("success")

    # The other direction: the kernel touching a user page outside a checked copy.
    for exec_ in (0, 1):
        va = pick_page(t.token, f"user page {exec_}", [(1 << 32, 1 << 46)])[0]
        u = boot(test="user_touch", token=t.token, args={"addr": va, "exec": exec_})
        u.expect(rf"^user_touch: a checked copy read ({HEX}) from user page {va:#x} proof=", "the checked copy")
        vector, error, mask = fault_expectation(arch, user=False, fetch=bool(exec_))
        expect_fault(u, vector=vector, error=error, error_mask=None if mask == ~0 else mask, address=va,
                     privilege=ARCHES[arch].kernel_privilege,
                     function=None if exec_ else C.SELFTESTS["user_touch"], pc=va if exec_ else None,
                     kernel=kernel, what=f"the kernel {'calling' if exec_ else 'reading'} user page {va:#x}")
        words = "kernel executed user memory" if exec_ else "kernel touched user memory"
        u.expect(rf"^\s+reason: {words}", f"the reason '{words}'")
        u.expect_outcome("failure")


# ---- privileged instructions, bad calls, random calls ------------------------------------------

PRIVILEGED = ("hlt", "cli", "movcr3", "rdmsr", "sgdt", "out")


def missing_features(boot, arch):
    """The -cpu features this machine's QEMU cannot emulate (QEMU's own report, not the
    kernel's), each said once in the test's note."""
    missing = qemu.missing_cpu_features(arch)
    if missing:
        boot.note(f"this QEMU cannot emulate {', '.join(sorted(missing))} (QEMU's own warning); "
                  "what needs it is not asked for")
    return missing


@lab_test(3, "privileged")
def test_privileged(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    proc = ARCHES[arch].proc
    # Without UMIP, sgdt is a ring-3 instruction like any other: nothing to refuse.
    missing = missing_features(boot, arch)
    chosen = [p for p in PRIVILEGED if proc["privileged_needs"].get(p) not in missing]
    run = boot(args={"run": ",".join(f"priv:{p}" for p in chosen)}, token=t.token)
    kills = parse_kills(run)
    pids = {m[2]: int(m[1]) for m in (re.match(r"^priv: pid (\d+) executes (\w+)$", l) for l in run.lines) if m}
    for name in chosen:
        site = user_symbol(kernel, arch, "priv", f"priv_{name}").address
        run.check(name not in pids and f"missing: 'priv: pid N executes {name}'")
        k = kills.get(pids[name])
        if k is None or k.how != "privileged instruction":
            run.fail(f"the process that executed {name} was not killed for a privileged instruction "
                     f"({k.how if k else 'no kill line'})")
        logged = [f for f in run.log.faults if f.privilege == proc["user_privilege"] and f.pc == site]
        if not logged or logged[0].vector != proc["privileged_fault"]:
            run.fail(f"QEMU's log shows no exception {proc['privileged_fault']} (the CPU refusing a privileged "
                     f"instruction) in user mode at priv_{name} ({site:#x})"
                     + (f"; the CPU took {logged[0].describe(None)}" if logged else ""))
        run.check(k.pc != site and f"the kernel reports {name} at {k.pc:#x}; the CPU faulted at {site:#x}")
    run.expect(r"^run: all processes ended", "the kernel carrying on after every kill")
    run.expect_outcome("success")

    # A number the kernel does not know: the result, read in ring 3 right after the call.
    number = t.pick("bad call", 0, 3)
    number = [t.pick("reserved", last_general_call() + 1, 63),
              t.pick("test range", last_test_call() + 1, 127),
              t.pick("past", 128, 2**32), t.pick("huge", 2**40, 2**64 - 1)][number]
    # Six arguments of the grader's (the register convention): the values the dispatcher
    # receives are compared with the registers at the call, so a wrong or swapped register shows.
    values = [t.pick(f"argument {i}", 2**32, 2**64 - 1) for i in range(6)]

    def script(started):
        snap = t.call(number).snap
        entry = {r: snap.register(r) for r in proc["syscall_entry_registers"]}
        back = snap.register(proc["syscall_return_pc"])
        at = t.guest.stop_at(DISPATCHER)
        words = 1 + len(proc["syscall_args"])   # SyscallArgs: the number, then the arguments
        raw = at.read_virt(at.argument(0), 8 * words)
        received = [u64(raw[8 * i:8 * i + 8]) for i in range(words)]
        after = t.guest.stop_at(back)
        return {"result": after.register(proc["syscall_result"]), "pc": back, "entry": entry, "received": received}

    bad = t.boot(f"badcall:{number:#x}:" + ":".join(f"{v:#x}" for v in values), script)
    w = t.witness()
    at_call = [w["entry"][r] for r in proc["syscall_args"]]
    if at_call != values:
        bad.fail(f"badcall's system call carried {', '.join(f'{v:#x}' for v in at_call)} in its argument registers "
                 f"at the call, not the arguments the grader gave it ({', '.join(f'{v:#x}' for v in values)}): "
                 "the arguments did not reach the program (argv)")
    bad.check(syscall_args_problem(arch, proc, w["entry"], w["received"]))
    result = signed(w["result"])
    if result != -ENOSYS:
        bad.fail(f"system call {number:#x} returned {result} to user mode (read in ring 3 at {w['pc']:#x}), "
                 f"expected -{ENOSYS} (ENOSYS)")
    bad.expect(rf"^badcall: pid \d+ syscall {number:#x} -> -{ENOSYS} \(ENOSYS\)", "badcall's line")
    bad.expect_outcome("success")

    # 10,000 random calls.
    calls_va = user_symbol(kernel, arch, "fuzz", "fuzz_calls").address
    f = ProcTest(boot, kernel, arch, token=t.token)
    fuzz = f.boot("fuzz", lambda started: u64(f.guest.stop_at(C.EXIT).read_virt(calls_va, 8)))
    calls = f.witness()
    faults = kernel_faults(kernel, fuzz)
    if faults:
        f.fail(f"the random system calls made the kernel fault: {faults[0].describe(fuzz.symbol_of)}")
    if fuzz.search(r"^PANIC"):
        f.fail("the random system calls made the kernel panic")
    if calls != FUZZ_CALLS:
        fuzz.fail(f"the fuzzer's own counter (read in its memory when it exited) says {calls} calls, expected {FUZZ_CALLS}")
    seed = derived(t.token, "fuzz_seed") | 1
    fuzz.expect(rf"^fuzz: pid \d+ made {FUZZ_CALLS} calls from seed {seed:#x}: .* proof={proof(t.token, FUZZ_CALLS ^ seed):016x}$",
                "the fuzzer's summary")
    fuzz.expect_outcome("success")


# ---- kernel stack overflow -----------------------------------------------------------------

@lab_test(3, "kstack_overflow")
def test_kstack_overflow(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    proc = ARCHES[arch].proc
    depth = t.pick("depth", 200, 2000)
    layout = Layout.of(kernel)
    watch = t.watch

    def script(started):
        snap = t.call("KernelRecurse").snap
        return snap.register(watch.proc["syscall_args"][0])

    run = t.boot(f"recurse:{depth}", script)
    run.check(watch.require(run) != depth and f"the kernel_recurse call carried depth {run.witness}, expected {depth}")
    faults = [f for f in run.log.faults if f.privilege == ARCHES[arch].kernel_privilege]
    hits = [f for f in faults if f.vector == proc["page_fault"] and f.address is not None and layout.in_guard(f.address)]
    if not hits:
        watch.fail(run, "QEMU's log shows no kernel page fault in the guard page of a kernel stack: the recursion never "
                        "reached a guard (is the guard below each stack unmapped?)")
    slot = layout.slot_of(hits[0].address)
    bottom, top = layout.stack(slot)
    after = faults[faults.index(hits[0]) + 1:]
    if proc["stack_overflow"] is not None and not any(f.vector == proc["stack_overflow"] for f in after):
        run.fail("the page fault in the guard page was not followed by the exception that reports it "
                 f"(vector {proc['stack_overflow']})")
    if proc["stack_overflow"] is None and after:
        # No exception reports the overflow here: the vector entry must see SP in the guard and
        # leave the stack before it pushes anything. A second fault is the entry faulting on it.
        run.fail(f"the abort in the guard page was followed by {len(after)} more kernel exceptions (the first: "
                 f"{after[0].describe(run.symbol_of)}): the exception entry pushed its frame on the overflowed stack "
                 "instead of moving to a stack of its own")
    m = run.expect(rf"^KERNEL STACK OVERFLOW: the kernel stack of slot (\d+) \[({HEX}), ({HEX})\) ran into its guard "
                   rf"page at ({HEX})", "the kernel's 'KERNEL STACK OVERFLOW' report")
    if (int(m[1]), int(m[2], 16), int(m[3], 16)) != (slot, bottom, top) or not layout.in_guard(int(m[4], 16)):
        run.fail(f"the kernel reports the overflow of slot {m[1]} [{m[2]}, {m[3]}) at {m[4]}; the CPU faulted at "
                 f"{hits[0].address:#x}, in the guard of slot {slot} [{bottom:#x}, {top:#x})")
    run.expect(r"^PANIC: kernel stack overflow", "the panic naming the overflow")
    run.expect_outcome("failure")


# ---- every root, walked by the grader -------------------------------------------------------

def live_stacks(snap, watch):
    """The kernel-stack slots the process table (guest RAM) says live processes hold at @p snap
    (every slot when the kernel exports no table facts)."""
    from pagoda_grade.procaudit import Facts, read_procs
    from pagoda_pt.procs import NO_SLOT
    facts = Facts.of(watch.kernel)
    if facts is None:
        return set(range(watch.layout.slots))
    return {r.kslot for r in read_procs(snap.read_phys, facts) if r.kslot != NO_SLOT}


@lab_test(3, "roots_verified")
def test_roots_verified(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    proc = ARCHES[arch].proc
    stop_va = user_symbol(kernel, arch, "spin", "spin_stop").address
    watch = t.watch
    switches = t.pick("switches", 8, 14)

    # A guard the emulated CPU lacks cannot be on (QEMU 6.2 has no UMIP): required only when QEMU has it.
    missing = missing_features(boot, arch)
    required = [g for g in proc["user_guards"] if g[3] not in missing]

    def script(started):
        first, problems = t.before, []
        def guards(snap, when):
            for register, bit, name, _ in required:
                if not snap.register(register) >> bit & 1:
                    problems.append(f"{name} is off {when} ({register.upper()} bit {bit}, read from outside)")

        guards(first, "before the first process")
        insp = watch.inspector
        problems += insp.map_problems(first, watch.kernel_root, "the kernel root")
        slots = insp.mapped_stack_slots(started, watch.kernel_root)
        for root, label in list(watch.roots.items()):
            if root not in watch.kernel_roots:
                problems += insp.map_problems(started, root, label)
        cpu_roots, cpu_slots = set(), set()
        for _ in range(switches):
            snap = t.guest.stop_at(proc["switch"])
            # Again at every switch: AArch64's PAN is PSTATE, the kernel's to lift around one copy
            # and to set again after it, not a control register set once.
            guards(snap, "at a context switch")
            root = snap.lower_root
            cpu_roots.add(root)
            for sp in (snap.sp, snap.register(proc["switch_next_sp"])):
                slot = watch.layout.slot_of(sp)
                if slot is not None:
                    cpu_slots.add(slot)
            label = watch.roots.setdefault(root, f"root {root:#x} (loaded by the CPU, not in the registry)")
            if snap.sp < watch.layout.kernel_half_base or watch.register_sp_low(snap):
                problems.append(f"at a context switch: {watch.live_problem(snap) or 'the next stack is in the user half'}")
            if root not in watch.kernel_roots:
                half = insp.kernel_half_problem(snap, root)
                if half:
                    problems.append(f"{label}: {half}")
                problems += insp.map_problems(snap, root, label)
        if not cpu_slots <= slots:
            problems.append(f"the CPU ran on kernel stacks of slots {sorted(cpu_slots - slots)}, which the kernel root "
                            "does not map in the kStackBase area")
        # At this last stop, the stacks and roots of the processes that still live: one that ended
        # since (hello, memcheck, the ticker) gave its kernel stack and its root back.
        live_slots, listed = live_stacks(snap, watch), set(process_roots(snap, watch.kernel))
        for root, label in watch.roots.items():
            if root in watch.kernel_roots or root in listed or "not in the registry" in label:
                problems += insp.stack_problems(snap, root, (slots | cpu_slots) & live_slots, label)
        for root, label in list(watch.roots.items()):
            if " of spin (" in label:
                # From lab 5 on pages come on the first touch: spin maps spin_stop's page when it
                # first reads it, which may take many more switches on a loaded host.
                touched = watch.until_touched(t.guest, snap, stop_va, root,
                                              f"spin ({label}) to map its spin_stop page ({stop_va:#x}) by reading it")
                if touched is None:
                    problems.append(f"{label} ended before it mapped its spin_stop page ({stop_va:#x}): spin runs "
                                    "until the grader stops it")
                    continue
                snap = touched
                snap.write_virt(stop_va, (1).to_bytes(8, "little"), root)
        return {"problems": problems, "cpu_roots": cpu_roots, "slots": slots}

    v = t.pick("memcheck", 1, 2**63)
    run = t.boot([f"spin:{SPIN_FOREVER:#x}", f"memcheck:{v:#x}", "ticker:3:2", "hello"], script)
    w = t.witness()
    if w["problems"]:
        run.fail(finding_first(w["problems"], "the grader walked every root itself: the kernel root, each process root "
                               "from the registry and from CR3 at context switches"))
    process_roots_seen = w["cpu_roots"] - watch.kernel_roots
    if len(process_roots_seen) < 2:
        run.fail(f"the CPU loaded only {len(process_roots_seen)} process root(s) in {switches} context switches")
    if len(w["slots"]) < 4:
        run.fail(f"the kernel root maps {len(w['slots'])} kernel stacks in the kStackBase area for 4 processes")
    run.expect_outcome("success")


# ---- exit frees everything -------------------------------------------------------------------

DAMAGES = {"machine": "built for another machine", "kernel_half": "segment reaches past the user half",
           "overlap": "two segments touch the same page", "filesz": "file size exceeds its memory size",
           "truncated": "past the end of the file"}


@lab_test(3, "exit_frees")
def test_exit_frees(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    watch = t.watch
    text = address_of(kernel, C.SECTIONS["text"][0])

    def script(started):
        frames = {}
        insp = watch.inspector
        for root, label in watch.roots.items():
            if root in watch.kernel_roots:
                continue
            runs = insp.dump(started, root)
            for f in user_page_frames(runs, watch.layout):
                frames[f] = ("a user page", label)
            for f in table_frames(started, root):
                frames[f] = ("the root" if f == root else "a page table", label)
        for slot in insp.mapped_stack_slots(started, watch.kernel_root):
            bottom, top = watch.layout.stack(slot)
            for va in range(bottom, top, PAGE):
                frames[started.translate(va)] = ("a kernel stack page", f"the kernel stack of slot {slot}")
        early, end = released_before_flush(t.guest)
        end = end or watch.checkpoint(t.guest, "ended")
        after = count_used(end, *watch.bitmap)
        return {"frames": frames, "after": after, "early": early}

    def released_before_flush(guest):
        """Rule 9's order, at the first teardown: the dying root walked where destroy_process()
        begins, then, at the first TLB invalidation of its space (the batch's flush, called on the
        arch space inside the dying Process record), no frame it mapped may be free in the
        allocator's bitmap yet. (the problem or None, the 'ended' Snapshot should it come first)"""
        ended, stops = fact(kernel, "run_checkpoint_ended"), [watch.proc["tlb_page"], watch.proc["tlb_all"]]
        snap, record = guest.stop_at_any([C.DESTROY_PROCESS, C.CHECKPOINT]), None
        for _ in range(64):
            if snap.pc == address_of(kernel, C.CHECKPOINT):
                if snap.argument(0) == ended and record is None:
                    return ("the run ended and no process was torn down: destroy_process() never ran, though hello "
                            "ends at once (reap() destroys each zombie)"), snap
                return None, snap if snap.argument(0) == ended else None
            if snap.pc == address_of(kernel, C.DESTROY_PROCESS):
                record = snap.argument(0)
                pid = int.from_bytes(snap.read_virt(record + fact(kernel, "process_pid"), 4), "little")
                root = watch.pid_roots(snap).get(pid)
                runs = snap.dump(root) if root is not None else []
                mapped = user_page_frames(runs, watch.layout)
            elif 0 <= snap.argument(0) - record < fact(kernel, "process_stride"):
                bits = count_used(snap, *watch.bitmap)[1]
                early = sorted(f for f in mapped if not is_used(bits, f))
                return early and (
                    f"pid {pid}'s teardown gave frame {early[0]:#x} back before the TLB flush that covers its unmap "
                    "(free_user_pages(): hand the frame to the batch, release_frame(), which gives it back after the "
                    f"flush): {len(early)} of the {len(mapped)} frames its root mapped where destroy_process() began "
                    "(the grader's walk) are already free in the allocator's bitmap (guest RAM) at the first TLB "
                    f"invalidation of its space ({stops[snap.pc != address_of(kernel, stops[0])]}())"), None
            snap = guest.stop_at_any(stops + [C.CHECKPOINT])
        return None, None

    v = t.pick("memcheck", 1, 2**63)
    programs = ["hello", f"memcheck:{v:#x}", f"probe:read:{text:#x}", "ticker:2:1"] + [f"hello!{d}" for d in DAMAGES]
    run = t.boot(programs, script)
    w = t.witness()
    (before, _), (after, bitmap) = watch.frames_before, w["after"]
    still = sorted((f, kind, whose) for f, (kind, whose) in w["frames"].items() if is_used(bitmap, f))
    # A kernel stack no started process had: taken for a process the kernel refused to start.
    had = {f"the kernel stack of slot {watch.layout.slot_of(p.stack[0])}" for p in watch.started.values()}
    orphans = sorted({whose for _, kind, whose in still if kind == "a kernel stack page" and whose not in had})
    if w["early"]:
        run.fail(w["early"])
    if orphans:
        refused = [line for line in run.lines if line.startswith("run: cannot start ")]
        run.fail(f"{orphans[0]} was taken for a process that never started, and never given back: no process the kernel "
                 "started had it, and it is still mapped and its frames allocated after every process ended (the "
                 "grader read the frame allocator's bitmap in guest RAM): create_process() must give back what it made "
                 "on every failure, a kernel stack made before the program was loaded included"
                 + (f" (the kernel refused {len(refused)} program(s): {refused[0]})" if refused else ""))
    if still:
        # What kinds leaked says which part of the teardown is missing.
        kinds = Counter(kind for _, kind, _ in still)
        missing = {"a user page": "the user pages (free_user_pages)",
                   "a page table": "the user half's page tables", "the root": "the roots (~AddressSpace)",
                   "a kernel stack page": "the kernel stacks (destroy_kernel_stack)"}
        plural = {"a user page": "user pages", "a page table": "page tables", "the root": "roots",
                  "a kernel stack page": "kernel stack pages"}
        run.fail(f"exit's teardown does not free {' nor '.join(missing[k] for k in missing if k in kinds)}: "
                 f"{len(still)} frames the processes used are still allocated after every process ended ("
                 + ", ".join(f"{n} {plural[k] if n > 1 else k.replace('a ', '', 1).replace('the ', '', 1)}"
                             for k, n in kinds.items()) +
                 "; the grader read the frame allocator's bitmap in guest RAM): "
                 + ", ".join(f"{f:#x} ({kind} of {whose})" for f, kind, whose in still[:8]))
    if after != before:
        run.fail(f"{before} frames were in use before the first process started and {after} after every process ended "
                 "(counted by the grader in the allocator's bitmap): the teardown leaks")
    run.check(len(w["frames"]) < 20 and f"the processes held only {len(w['frames'])} frames the grader could find")
    for damage, reason in DAMAGES.items():
        run.expect(rf"^run: cannot start hello!{damage}: .*{re.escape(reason)}.*; 0 frames leaked$",
                   f"the loader refusing hello!{damage} ({reason}) with no frame leaked")
    reaped = parse_reaped(run)
    if sorted(reaped.values()).count("exited with code 0") < 3 or "killed (page fault)" not in reaped.values():
        run.fail(f"expected hello, memcheck and the ticker to exit with 0 and the probe to be killed: {reaped}")
    m = run.expect(r"^run: all processes ended; frames in use: before (\d+), after (\d+)", "the run's last line")
    run.check(m[1] != m[2] and f"the kernel itself counts {m[1]} frames in use before and {m[2]} after")
    run.expect_outcome("success")


@lab_test(3, "kstack_reuse")
def test_kstack_reuse(boot, kernel, arch):
    """More processes over one run than there are kernel-stack slots, never many at once (churn
    is a chain: each link touches pages of its own, sleeps a tick, spawns the next and exits):
    every exit gives its slot back, and the slot table (guest RAM) is empty at the end; and its
    frames: the links together touch more frames than the guest has (churn.py)."""
    t = ProcTest(boot, kernel, arch)
    watch = t.watch
    slots = watch.layout.slots
    n = max(slots, ASIDS) + t.pick("churn extra", 8, 40)   # more than every slot and every ASID
    pages = t.pick("churn pages", 6, 12)

    def script(started):
        end, last = churn.run_to_end(t.guest, watch)
        marks = end.read_virt(address_of(kernel, C.SLOT_TABLE), slots)
        try:
            asids = int.from_bytes(end.read_virt(address_of(kernel, C.AARCH64.ASID_TABLE), ASIDS // 8), "little")
        except AssertionError:   # (x86_64: no ASIDs)
            asids = None
        return [slot for slot in range(slots) if marks[slot]], asids, last, count_used(end, *watch.bitmap)[0]

    run = t.boot(churn.spec(n, pages), script, memory=churn.MEMORY)
    taken, asids, last, after = t.witness()
    failed = run.search(churn.BROKE)
    if asids is not None and bin(asids).count("1") > 1:   # (ASID 0, the kernel's, is always taken)
        held = [a for a in range(1, ASIDS) if asids >> a & 1]
        run.fail(f"ASIDs are not given back when an address space ends: when every process had ended, {len(held)} "
                 f"ASIDs (e.g. {', '.join(map(str, held[:6]))}) were still marked taken in the kernel's ASID table "
                 f"(g_asids_used, read by the grader from guest RAM) after churn's chain of {n} processes, never more "
                 f"than two at once" + (f" (link {failed[1]} could not spawn the next: {failed[4]})" if failed else "")
                 + ": free_asid() must clear the space's bit, or a run makes at most 255 address spaces")
    links = len(re.findall(r"(?m)^proc \d+ \(churn\): spawned by \d+;", "\n".join(run.lines))) + 1
    frames = churn.broken_chain(run, n, pages, watch.frames_before[0], after) if last is None and not taken else None
    if frames:
        watch.fail(run, frames)
    if failed and not taken:
        run.fail(f"a kernel-stack slot given back is never taken again: link {failed[1]} of churn's chain of {n} "
                 f"could not spawn the next ({failed[4]}) although the links that had ended were freed first, yet "
                 f"when every process had ended the kernel's slot table (g_used, read by the "
                 f"grader from guest RAM) marks all {slots} slots free: the search for a free slot must look at every "
                 "slot again (from slot 0, or wrapping around), not only those never used")
    if failed or taken:
        said = (f"link {failed[1]} of churn's chain of {n} could not spawn the next ({failed[4]}) although the "
                "links that had ended were freed first" if failed else
                f"churn's chain made {links} processes one after another")
        run.fail(f"kernel-stack slots are not given back at exit: {said}; when every process had ended, "
                 f"{len(taken)} of the {slots} slots were still marked taken in the kernel's slot table (g_used, read "
                 f"by the grader from guest RAM{': slots ' + ', '.join(map(str, taken[:8])) if taken else ''}): "
                 "destroying a kernel stack must free its slot, or a run makes at most as many processes as there "
                 "are slots")
    wrong = churn.verdict(run, n, pages, last, watch.frames_before[0], after)
    if wrong:
        watch.fail(run, wrong + ("" if last else f" (the kernel says it made {links} churn processes)"))
    run.check(links != n and f"the kernel says it made {links} churn processes; the chain has {n} links")
    run.expect(rf"^churn: link {n} of {n} ran, the last proof={proof(t.token, n):016x}$", "the chain's last link")
    reaped = parse_reaped(run)
    if sum(1 for how in reaped.values() if how == "exited with code 0") != n:
        watch.fail(run, f"expected the {n} links of churn's chain to exit with 0; reaped: "
                        f"{dict(list(reaped.items())[:4])}...")
    run.expect_outcome("success")


@lab_test(3, "kernel_not_preempted")
def test_kernel_not_preempted(boot, kernel, arch):
    """A tick that interrupts kernel code while a process is current must not switch: kspin
    waits in the kernel (interrupts on) for ticks the grader picks while spin is ready; the
    grader reads the scheduler's switch count at the call's start and end."""
    t = ProcTest(boot, kernel, arch)
    n = t.pick("kspin ticks", 5, 12)
    stop_va = user_symbol(kernel, arch, "spin", "spin_stop").address
    tags = {fact(kernel, "kernel_spin_start_stop"): "start", fact(kernel, "kernel_spin_end_stop"): "end"}
    watch = t.watch

    def script(started):
        spinners = [r for r, label in watch.roots.items() if " of spin (" in label]
        seen, switches = {}, []
        while "end" not in seen:   # (only the test's deadline bounds the wait)
            # Between the call's start and end, every context switch is a stop too: a switch seen,
            # whatever the scheduler's count says.
            snap = t.guest.stop_at_any([C.CHECKPOINT] + ([watch.proc["switch"]] if seen else []))
            if snap.pc != address_of(kernel, C.CHECKPOINT):
                switches.append(snap.lower_root)
                continue
            what = tags.get(snap.argument(0))
            if what is not None:
                seen[what] = (snap.argument(1), u64(snap.read_virt(address_of(kernel, C.SWITCH_COUNT), 8)),
                              snap.argument(2))
        seen["switches"] = switches
        for root in spinners:   # (from lab 5 on, spin_stop's page comes at spin's first touch)
            snap = watch.until_touched(t.guest, snap, stop_va, root, "spin_stop's page in spin's root")
            if snap is not None:
                snap.write_virt(stop_va, (1).to_bytes(8, "little"), root)
        return seen

    run = t.boot([f"kspin:{n}", f"spin:{SPIN_FOREVER:#x}"], script)
    seen = t.witness()
    run.check("start" not in seen and "the grader saw kernel_spin's end but not its start")
    (pid, before, _), (_, after, passed) = seen["start"], seen["end"]
    if after != before or seen["switches"]:
        watch.fail(run, f"kernel code was preempted: while pid {pid} (kspin) waited in the kernel with interrupts on "
                        f"(the kernel_spin call, {n} ticks; {passed} passed), the grader stopped at "
                        f"{len(seen['switches'])} context switch(es) ({watch.proc['switch']}) between the call's start "
                        f"and end (the scheduler's count g_switches went from {before} to {after}, guest RAM) although "
                        "spin was ready: a timer tick that interrupts "
                        "kernel code must not end the turn (the kernel may hold a temporary mapping, or be half-way "
                        "through a change of the page tables); only a tick from user mode preempts")
    run.expect(rf"^kspin: pid \d+ waited {n} ticks in the kernel -> (\d+) proof=", "kspin's line")
    run.expect(r"^spin: pid \d+ counted to \d+ proof=", "spin's line (stopped by the grader)")
    reaped = parse_reaped(run)
    if sorted(reaped.values()).count("exited with code 0") != 2:
        watch.fail(run, f"expected kspin and spin to exit with 0; reaped: {reaped}")
    run.expect_outcome("success")
