"""Lab 6: fork, exec, exit and wait, witnessed from outside the kernel.

Every boot runs the user program forktree (user/programs/forktree.cpp) in one of its modes. The
values its processes write are derived from the boot token, so the grader knows them; it stops
the guest at system calls of its choosing, finds which process made each by the root the CPU
holds (CR3 / TTBR0), and reads their memory through its own walk of each root in guest RAM: a
child's copy of a page must be a different frame holding the child's value while the parent's
frame still holds the parent's. Frames in use are counted from the frame allocator's bitmap
before the first process and after the last one is reaped: they must be the same. The kernel's
lines only label what the grader saw."""
import re
from dataclasses import dataclass

from pagoda_core import elffile
from pagoda_pt import contract as C
from pagoda_grade import churn, lab_test
from pagoda_grade.derived import value as derived
from pagoda_grade.forks import (ECHILD, EXIT_INFO_SIZE, baseline, bomb_script, calls, check_baseline, children_of,
                                current_frame, deaths_of, exit_info, fail_on_killed_children, fail_on_lab6_skeleton,
                                first_root, fork_error_problem, fork_findings, fork_result_problem, note_invalidation,
                                require, seen_first, signed32, usertests_case, wait_problem)
from pagoda_grade.labtest import At, Call, Death, ProcTest, Return, Trace, signed
from pagoda_grade.lifecycle import Deaths, fork_problems, fork_view, stalled_waits, unflushed, wider_than_record
from pagoda_grade.outcomes import finding_first
from pagoda_grade.procaudit import Facts, read_error, result_address
from pagoda_grade.processes import (HEX, Layout, Pages, Refs, count_used, parse_kills, parse_reaped, pid_of,
                                    process_roots, processes, registry, user_elf, user_pages, user_symbol,
                                    writable_in_two, written)
from pagoda_grade.proof import MASK64, proof
from pagoda_grade.symbols import address_of, fact
from pagoda_grade.vmas import read_records
from pagoda_grade.watch import syscall_number, u64, user_text
from pagoda_grade.witness import PAGE

ENOENT = 2
DEEP = 8
CHAIN_PAGES = 64   # pages each link of exec_args's chain touches (churn.py)


# ---- the twins of forktree's values ------------------------------------------------------------

def child_value(token, i, region=0):
    return derived(token, "forktree_child_word", i * 8 + region)


def echo_digest(args):
    """The twin of echo's digest (user/programs/echo.cpp) over its arguments after argv[0]."""
    d = 0
    for a in args:
        d = (d * 31 + len(a)) & MASK64
        for b in a.encode():
            d = (d * 131 + b) & MASK64
    return d


# ---- what a test follows until it is back (a Return's why) ---------------------------------------

@dataclass
class Forked:
    """fork_process returning to the system call, in the parent's kernel context: the pids before,
    where its Result lies, the parent's user frame as the fork began."""
    before: set
    result_at: int
    frame: object


@dataclass
class ChildRuns:
    """The child's first return to user mode (where the parent's fork() returned)."""


@dataclass
class ForkResult:
    """A fork() back in the process that made it."""


@dataclass
class Waited:
    """A wait() back in user mode: where its ExitInfo goes, the caller's children at its entry."""
    info: int
    children: dict = None
    caller: int = None


# ---- fork --------------------------------------------------------------------------------------


@lab_test(6, "fork_basic")
def test_fork_basic(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    n = t.pick("fork children", 3, 8)
    witnesses = min(n, 3)
    watch = t.watch
    word = user_symbol(kernel, arch, "forktree", "(anonymous namespace)::g_word").address
    page = word & ~(PAGE - 1)

    def script(started):
        parent = first_root(started, kernel)
        deaths = deaths_of(watch)
        seen, waits, exits = {}, [], {}
        state = watch.fork_state = dict(at_fork=None, later=None, flush=None)
        tables = watch.wait_tables = []   # (result, the caller's children at the wait's entry, at its return)
        idle_at = address_of(kernel, C.IDLE)
        tlb_page, tlb_all = address_of(kernel, watch.proc["tlb_page"]), address_of(kernel, watch.proc["tlb_all"])
        trace = Trace(t, deaths, at=[C.FORK, idle_at], deaths_too=True)
        # (n more stops than before: each fork's return in the parent, for its result)
        for ev in trace.events(41 * n + 400):
            snap = ev.snap
            root, at_fork = snap.lower_root, state["at_fork"]
            match ev:
                case At(address=a) if a == idle_at:
                    # Nobody is ready (no child here sleeps): someone waits for what will never come.
                    stalled = stalled_waits(snap, kernel)
                    if stalled:
                        raise AssertionError(stalled)
                case At(address=a) if a in (tlb_page, tlb_all):
                    # Inside the first fork: every invalidation the kernel asks of the TLB.
                    note_invalidation(state["flush"], snap, tlb_all)
                case At() if root == parent and at_fork is None:
                    # The first fork: seen again where fork_process returns to the system call, in
                    # the parent's kernel context, before the child can run.
                    trace.follow_function(snap, Forked(set(processes(snap, kernel, records_of=-1)), result_address(snap),
                                                       current_frame(snap, kernel)), any_root=True)
                    # The parent's pages as fork starts, and every TLB invalidation until it returns.
                    state["flush"] = dict(before=Pages.of(snap, parent), pages=set(), all=False)
                    trace.transient = {tlb_page, tlb_all}
                case Death(moment=m) if at_fork and state["later"] is None and m.what == "exit" and \
                        root == at_fork.child.root:
                    # A child that dies before its first system call is the later moment of the fork.
                    state["later"] = fork_view(snap, kernel, parent, root, "later")
                    deaths.add(state["later"].parent)
                case Return(why=Forked() as forked):
                    trace.transient = set()
                    made = sorted(set(processes(snap, kernel, records_of=-1)) - forked.before)
                    child = next((k.root for k in registry(snap, kernel).roots if k.kind == "process" and made
                                  and k.id == made[0]), None)
                    if watch.audit and not made:
                        watch.audit.note(fork_error_problem(read_error(snap, kernel, forked.result_at),
                                                            "pid 1 (forktree)"))
                    for problem in fork_findings(snap, kernel, set(made[:1]), forked.frame) if watch.audit else ():
                        watch.audit.note(problem)
                    if child is not None and deaths.forks:
                        # Both roots where fork_process returned, as every fork's (Deaths: what is
                        # wrong with it is a finding already, ahead of what it leads to).
                        state["at_fork"] = deaths.forks[0]
                        for m in (state["at_fork"].parent, state["at_fork"].child):
                            deaths.add(m)
                        # The child's first return to user mode, where the parent's returned: the
                        # moment before it runs a single instruction of its own.
                        if state.get("fork_pc") is not None:
                            trace.pending[(state["fork_pc"], child)] = ChildRuns()
                case Return(why=ChildRuns()) if state["later"] is None:
                    state["later"] = fork_view(snap, kernel, parent, root, "later")
                    deaths.add(state["later"].parent)
                    deaths.add(state["later"].child)
                case Return(why=ForkResult(), result=result) if watch.audit and state["at_fork"] is None:
                    # Fork's result in the parent, where its call returned to user mode: the cause
                    # when no fork has made a child yet (a later fork's error follows from what
                    # went wrong after the first: the checks below name that).
                    watch.audit.note(fork_result_problem(result, f"pid {pid_of(snap, kernel, root)[0]} (forktree)"))
                case Return(why=Waited() as waited, result=result):
                    waits.append((result, snap.read_virt(waited.info, EXIT_INFO_SIZE, parent)
                                  if result > 0 and waited.info else b""))
                    tables.append((result, waited.children, children_of(snap, kernel, waited.caller)))
                    if result < 0:
                        break
                case Call(name="Fork") if root == parent:
                    state["fork_pc"] = ev.back
                    trace.follow(ev, ForkResult())
                case Call(name="Wait") if root == parent:
                    caller = pid_of(snap, kernel, root)[0]
                    trace.follow(ev, Waited(ev.args[1], children_of(snap, kernel, caller), caller))
                case Call(name="Exit") if root != parent and root not in watch.kernel_roots:
                    exits[pid_of(snap, kernel, root)[0]] = signed(ev.args[0])
                case Call(name="Write") if root != parent and root not in watch.kernel_roots:
                    m = re.match(rb"forktree: child (\d+) pid (\d+)", written(snap, watch.proc, root))
                    if not m or int(m[1]) in seen or len(seen) == witnesses:
                        continue
                    seen[int(m[1])] = dict(
                        root=root, pid=int(m[2]), child=u64(snap.read_virt(word, 8, root)),
                        parent=u64(snap.read_virt(word, 8, parent)), child_frame=snap.translate(page, root),
                        parent_frame=snap.translate(page, parent), half=watch.inspector.kernel_half_problem(snap, root),
                        registered=root in process_roots(snap, kernel),
                        shared=writable_in_two(snap, [parent, root], watch.layout, {parent: "the parent's root",
                                                                                   root: "the child's root"}))
        return dict(parent=parent, seen=seen, waits=waits, exits=exits, at_fork=state["at_fork"],
                    later=state["later"], **baseline(watch, t.guest))

    def fork_failure(at_fork, later, flush):
        # In the order things happened: the fork's return, the copy-on-write faults after it (a
        # wrong one changes what the later view sees), the later view.
        problems = fork_problems(at_fork) if at_fork else []
        if problems:
            seen_first(run, "\n  ".join(problems[:3]))
        stale = unflushed(flush, at_fork) if at_fork and flush else []
        if stale:
            watch.fail(run, f"right after fork, page {stale[0]:#x} (and {len(stale) - 1} more) was writable in the "
                            f"parent (pid {at_fork.parent.pid}) as fork began and is read-only in its root now, but "
                            "no TLB invalidation of it ran during fork (the grader stopped at every invalidate_page "
                            "and invalidate_all): the parent's TLB may still hold the writable translation, and its "
                            "next write would reach the frame the child shares (fork must invalidate the parent's "
                            "narrowed entries: its batch)")
        cow = deaths_of(watch).cow_problems()
        if cow:
            watch.fail(run, "\n  ".join(cow[:3]))
        problems = fork_problems(at_fork, later) if at_fork else []
        if problems:
            watch.fail(run, "\n  ".join(problems[:3]))

    run = t.boot(f"forktree:basic:{n}", script)
    # What the grader saw of the first fork comes first (even when the boot ended before the
    # grader's last stop: a kill, a panic): the fork is what the other checks depend on.
    fail_on_lab6_skeleton(watch, run)
    seen_so_far = getattr(watch, "fork_state", {})
    fork_failure(seen_so_far.get("at_fork"), seen_so_far.get("later"), seen_so_far.get("flush"))
    # A wait whose result the process table at its entry and return contradicts: what the parent
    # did next (exit early, count its children wrong) follows from it.
    wrong = next((p for p in (wait_problem(*x) for x in getattr(watch, "wait_tables", [])) if p), None)
    if wrong:
        seen_first(run, wrong)
    w = require(watch, run)
    fail_on_killed_children(watch, run)
    if len(w["seen"]) < witnesses:
        watch.fail(run, f"the grader saw {len(w['seen'])} forked children write their line from a root other than the "
                        f"parent's ({w['parent']:#x}); expected {witnesses} (fork made no new root, or the child never "
                        "ran)")
    parent_values = {derived(t.token, "forktree_before_word"), derived(t.token, "forktree_after_word")}
    for i, c in sorted(w["seen"].items()):
        who = f"child {i} (pid {c['pid']}, root {c['root']:#x})"
        if c["half"]:
            watch.fail(run, f"{who}: {c['half']} (a new root that does not share the kernel half: the kernel unmaps "
                            "itself at the first instruction after the switch to the child)")
        if not c["registered"]:
            watch.fail(run, f"{who}: its root is not in the kernel's root registry")
        if c["child"] != child_value(t.token, i):
            watch.fail(run, f"{who}: its data word, read by the grader through its root, is {c['child']:#x}, expected "
                            f"the value it wrote, {child_value(t.token, i):#x}")
        if c["parent"] not in parent_values:
            watch.fail(run, f"{who} wrote its data word; through the parent's root the grader reads {c['parent']:#x}, "
                            "not the parent's own value: the child's write reached the parent (a shared frame)")
        if c["child_frame"] is None or c["child_frame"] == c["parent_frame"]:
            watch.fail(run, f"{who}: its data page is frame {c['child_frame']}, the parent's is "
                            f"{c['parent_frame']:#x}: the child has no copy of its own")
        if c["shared"]:
            watch.fail(run, f"{who} wrote its line: {c['shared']}")
        run.expect(rf"^forktree: child {i} pid {c['pid']} parent 1 wrote "
                   rf"proof={proof(t.token, child_value(t.token, i) ^ c['pid']):016x}$", f"child {i}'s line")
    # Each wait's result and the status it wrote (read in user mode at its return) against the
    # code each child passed to exit (read at its exit call).
    reaped = [(pid, *exit_info(st)) for pid, st in w["waits"] if pid > 0]
    for pid, code, how in reaped:
        want_code = w["exits"].get(pid)
        if want_code is not None and (how != 0 or code != want_code):
            watch.fail(run, f"wait returned child pid {pid} with the status how={how} code={code} (the ExitInfo it "
                            f"wrote, read in user mode at its return), but pid {pid} passed {want_code} to exit (read "
                            "at its exit call): wait must report the status of the child it reaped")
    if len(reaped) != n or len({pid for pid, _, _ in reaped}) != n:
        last = w["waits"][-1][0] if w["waits"] else None
        watch.fail(run, f"the parent's wait calls returned {len(reaped)} children ({len({p for p, _, _ in reaped})} "
                        f"distinct ids), then {last}, as read in user mode: expected its {n} children, each once, then "
                        f"-ECHILD ({-ECHILD})")
    check_baseline(watch, run, w)
    total = sum(derived(t.token, "forktree_child_code", i) * (i + 1) for i in range(n)) & MASK64
    run.expect(rf"^forktree: forked {n} reaped {n} with their statuses ok proof={proof(t.token, total):016x}$",
               "the parent's summary: every child reaped by wait() with its exit status")
    reaped = parse_reaped(run)
    codes = sorted(int(h.split()[-1]) for h in reaped.values() if h.startswith("exited with code"))
    want = sorted([0] + [derived(t.token, "forktree_child_code", i) for i in range(n)])
    if codes != want or len(reaped) != n + 1:
        watch.fail(run, f"expected forktree and its {n} children to be reaped with codes {want}; reaped: {reaped}")
    run.expect_outcome("success")


@lab_test(6, "fork_deep")
def test_fork_deep(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    watch = t.watch

    def script(started):
        roots, problems = [], []
        forks, waits = {}, {}   # root -> its fork's result; root -> (wait's result, ExitInfo) at its return
        trace = Trace(t, deaths_of(watch))
        for ev in trace.events(40 * DEEP + 200):
            snap, root = ev.snap, ev.snap.lower_root
            match ev:
                case Return(why=ForkResult(), result=result):
                    forks[root] = result
                    continue
                case Return(why=Waited() as waited, result=result):
                    waits[root] = (result, snap.read_virt(waited.info, EXIT_INFO_SIZE, root)
                                   if result > 0 and waited.info else b"")
                    if len(waits) == DEEP:
                        break
                    continue
                case Call(name="Fork") if root not in forks:
                    trace.follow(ev, ForkResult())
                    continue
                case Call(name="Wait") if root not in roots:
                    pass
                case _:
                    continue
            roots.append(root)
            trace.follow(ev, Waited(ev.args[1]))
            if root not in process_roots(snap, kernel):
                problems.append(f"root {root:#x} made a wait call but is not in the kernel's root registry")
            half = watch.inspector.kernel_half_problem(snap, root)
            if half:
                problems.append(f"root {root:#x}: {half}")
            if len(roots) == DEEP:
                # The whole chain exists now (each waiting for the next): no frame writable in two of its roots.
                shared = writable_in_two(snap, list(process_roots(snap, kernel)), watch.layout)
                if shared:
                    problems.append(f"with the whole chain alive: {shared}")
        return dict(roots=roots, problems=problems, forks=forks, waits=waits, **baseline(watch, t.guest))

    run = t.boot(f"forktree:deep:{DEEP}", script)
    w = require(watch, run)
    if len(w["roots"]) < DEEP:
        watch.fail(run, f"the grader saw {len(w['roots'])} distinct roots make the wait call, expected {DEEP} (one "
                        "per parent of the chain)")
    if w["problems"]:
        watch.fail(run, finding_first(w["problems"], "the grader walked each root of the chain itself", 4))
    # Each parent of the chain waits for its one child: the status wait wrote into its memory (read
    # at the return) is that child's exit code, the deepest leaf_code, each level above one more.
    got = []
    for root in w["roots"]:
        result, info = w["waits"].get(root, (None, b""))
        child = w["forks"].get(root)
        code, how = exit_info(info)
        if result is None or child is None or result != child or how != 0:
            watch.fail(run, f"root {root:#x} forked child {child} and its wait returned {result} with how {how} (read in "
                            "user mode at the return): waitpid must reap that child, exited (how 0)")
        got.append(code)
    want = sorted(derived(t.token, "forktree_leaf_code") + k for k in range(DEEP))
    if sorted(got) != want:
        watch.fail(run, f"the statuses the chain's waits returned (ExitInfo read from each parent's memory at the "
                        f"return) are {sorted(got)}; the children called exit with {want}: wait must report each "
                        "child's own exit code")
    code = derived(t.token, "forktree_leaf_code") + DEEP
    run.expect(rf"^forktree: deep {DEEP}: code {code} proof={proof(t.token, code):016x}$",
               "the chain's exit codes, each parent's = its child's + 1, collected by waitpid()")
    reaped = parse_reaped(run)
    codes = sorted(int(h.split()[-1]) for h in reaped.values() if h.startswith("exited with code"))
    if codes != [0] + want:
        watch.fail(run, f"expected the chain reaped with codes {[0] + want}; reaped: {reaped}")
    check_baseline(watch, run, w)
    run.expect_outcome("success")


# ---- exec --------------------------------------------------------------------------------------

@lab_test(6, "exec_args")
def test_exec_args(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    count = str(derived(t.token, "forktree_exec_count"))
    watch = t.watch
    write = syscall_number("Write")
    top = fact(kernel, "user_stack_top")

    def script(started):
        parent = first_root(started, kernel)
        first = echo = None
        for snap in calls(t.guest, watch, {write}, 400):
            root = snap.lower_root
            data = written(snap, watch.proc, root)
            if data.startswith(b"forktree: exec of a missing program") and first is None:
                first = dict(root=root, line=data)
            elif data.startswith(b"echo:"):
                pid = pid_of(snap, kernel, root)[0]
                record = read_records(snap, kernel).get(pid)
                echo = dict(root=root, line=data, stack=snap.read_virt(top - PAGE, PAGE, root),
                            registered=process_roots(snap, kernel), pid=pid,
                            name=record.name if record is not None else None)
                break
        return dict(parent=parent, first=first, echo=echo, **baseline(watch, t.guest))

    run = t.boot("forktree:exec", script)
    w = require(watch, run)
    if w["first"] is None or w["echo"] is None:
        watch.fail(run, "the grader did not see both the child's line after the failed exec and echo's line "
                        "(fork or exec did not work)")
    r1, r2 = w["first"]["root"], w["echo"]["root"]
    if r1 == w["parent"]:
        watch.fail(run, f"the forked child wrote from the parent's root {r1:#x}")
    if r2 in (r1, w["parent"]):
        watch.fail(run, f"echo wrote from root {r2:#x}, the root of the process before exec: exec must build the new "
                        "program in a new address space")
    if r1 in w["echo"]["registered"]:
        watch.fail(run, f"after exec the old root {r1:#x} is still in the kernel's root registry: the old address "
                        "space was not freed")
    want = b"\0".join(a.encode() for a in ["echo", "forked", count]) + b"\0"
    if want not in w["echo"]["stack"]:
        watch.fail(run, f"the top page of echo's stack (read through its root) does not hold its arguments "
                        f"{want!r}: exec did not put argv on the new stack")
    if w["echo"]["name"] not in (None, "echo"):
        watch.fail(run, f"echo wrote its line as pid {w['echo']['pid']}, whose name in the process table (guest RAM) is "
                        f"still '{w['echo']['name']}', the program before exec: exec must give the process the new "
                        "program's name (set_name), or every kill line, report and debugger names the wrong program")
    run.expect(rf"^forktree: exec of a missing program: ENOENT proof={proof(t.token, ENOENT):016x}$",
               "exec of a missing program returns ENOENT and the caller goes on")
    run.expect(rf"^echo: argc 4: forked {count} proof={proof(t.token, echo_digest(['forked', count])):016x}$",
               "echo's line, with the arguments exec passed")
    run.expect(r"^forktree: exec child \d+ reaped \(\d+\) how 0 code 0$", "the parent reaps the exec'd child")
    check_baseline(watch, run, w)
    run.expect_outcome("success")
    # Exec and exit give the frames back: a chain longer than the guest's RAM, every other link an
    # exec, in a boot of its own (churn.py).
    c, n = ProcTest(boot, kernel, arch, token=t.token), 2 * t.pick("exec chain", 22, 26)

    def chain_script(started):
        end, last = churn.run_to_end(c.guest, c.watch)
        return last, count_used(end, *c.watch.bitmap)[0]

    run = c.boot(churn.spec(n, CHAIN_PAGES, exec_mode=True), chain_script, memory=churn.MEMORY)
    last, after = c.witness()
    c.check(churn.verdict(run, n, CHAIN_PAGES, last, c.watch.frames_before[0], after))
    c.success()


# ---- copy-on-write -----------------------------------------------------------------------------

def pages_in(snap, roots, vas):
    """{va: [(frame, writable) per root]} through the grader's walk of each root."""
    return {va: [(w.pa, bool(w.perms and w.perms.write)) if w.mapped else (None, False)
                 for w in (snap.walk(va, root) for root in roots)] for va in vas}


@lab_test(6, "cow")
def test_cow(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    n = t.pick("cow pages", 8, 24)
    mask = t.pick("cow mask", 1, (1 << n) - 2)
    written = [j for j in range(n) if mask >> j & 1]
    watch = t.watch
    getpid, yield_, mmap = syscall_number("GetPid"), syscall_number("Yield"), syscall_number("Mmap")
    text_lo, text_hi = user_text(kernel, arch, "cowtest")
    text = list(range(text_lo & ~(PAGE - 1), text_hi, PAGE))

    def script(snap):
        parent = first_root(snap, kernel)
        moments, child = {}, None
        # The two mmap calls' results, read in user mode right after each returns: the region and
        # the kernel-write page.
        mapped = []
        for snap in calls(t.guest, watch, {mmap}, 40):
            back = snap.register(watch.proc["syscall_return_pc"])
            mapped.append(t.guest.stop_at(back).register(watch.proc["syscall_result"]))
            if len(mapped) == 2:
                break
        region, kbuf = mapped
        for snap in calls(t.guest, watch, {getpid, yield_}, 400):
            root = snap.lower_root
            name = None
            if root != parent and "A" not in moments and snap.register(watch.proc["syscall_number"]) == getpid:
                child, name = root, "A"
            elif root == child and "A" in moments and "B" not in moments:
                name = "B"
            elif root == child and "B" in moments and "C" not in moments:
                name = "C"
            elif root == parent and "C" in moments:
                name = "D"
            if name is None:
                continue
            refs = Refs(snap, kernel)
            vas = [region + j * PAGE for j in range(n)]
            roots = [parent] if name == "D" else [parent, child]
            pages = pages_in(snap, roots, vas + text + [kbuf])
            words = {va: [u64(snap.read_virt(va, 8, r)) for r in roots] for va in vas}
            counts = {va: [refs.count(f) for f, _ in pages[va]] for va in vas + [kbuf]}
            kpages = [snap.read_virt(kbuf, PAGE, r) for r in roots]
            shared = writable_in_two(snap, roots, watch.layout, {parent: "the parent's root", child: "the child's root"})
            if shared:
                raise AssertionError(f"at moment {name} of cowtest: {shared}")
            moments[name] = dict(pages=pages, words=words, counts=counts, kpages=kpages, used=count_used(snap, *watch.bitmap)[0])
            if name == "D":
                break
        return dict(parent=parent, child=child, region=region, kbuf=kbuf, moments=moments, **baseline(watch, t.guest))

    run = t.boot(f"cowtest:{n}:{mask:#x}", script)
    w = require(watch, run)
    missing = [m for m in "ABCD" if m not in w["moments"]]
    if missing:
        watch.fail(run, f"the grader did not reach moment(s) {', '.join(missing)} of cowtest (the child's getpid and "
                        "two yields, the parent's yield after the child ended)")
    region, kbuf = w["region"], w["kbuf"]
    vas = [region + j * PAGE for j in range(n)]
    fill = bytes.fromhex("55") * PAGE
    a, b, c, d = (w["moments"][m] for m in "ABCD")

    # A: right after fork, before the child writes: every page shared, read-only in both, count 2.
    for j, va in enumerate(vas):
        (pf, pw), (cf, cw) = a["pages"][va]
        if pf is None or cf is None or pf != cf:
            watch.fail(run, f"right after fork (the child's first system call), page {j} of the region ({va:#x}) is "
                            f"frame {pf} in the parent and {cf} in the child: a copy-on-write fork shares the frame "
                            "(the data was copied eagerly, or not mapped in the child)")
        if pw or cw:
            watch.fail(run, f"right after fork, page {j} ({va:#x}, frame {pf:#x}) is writable in the "
                            f"{'parent' if pw else 'child'}: a shared frame must be read-only in both roots, or a "
                            "write through one root reaches the other")
        if a["counts"][va] != [2, 2]:
            watch.fail(run, f"right after fork, the reference count of frame {pf:#x} (page {j}) read from the "
                            f"kernel's table (guest RAM) is {a['counts'][va][0]}, expected 2 (parent and child)")
    for va in text:
        (pf, _), (cf, _) = a["pages"][va]
        if pf is not None and cf is not None and pf != cf:
            watch.fail(run, f"the read-only text page {va:#x} is frame {pf:#x} in the parent and {cf:#x} in the child: "
                            "read-only pages are never copied")

    # B: the child wrote exactly the pages of the mask: those, and only those, were copied.
    copied = [j for j, va in enumerate(vas) if b["pages"][va][0][0] != b["pages"][va][1][0]]
    if copied != written:
        watch.fail(run, f"after the child wrote pages {written} (the grader's mask {mask:#x}), the pages whose frames "
                        f"differ between the roots are {copied}: exactly the written pages must be copied")
    for j, va in enumerate(vas):
        (pf, _), (cf, cw) = b["pages"][va]
        pword, cword = b["words"][va]
        if pword != derived(t.token, "cowtest_word", j):
            watch.fail(run, f"page {j}: through the parent's root the grader reads {pword:#x}, not the parent's value: "
                            "the child's write reached the parent's frame")
        want = derived(t.token, "cowtest_child_word", j) if j in written else derived(t.token, "cowtest_word", j)
        if cword != want:
            watch.fail(run, f"page {j}: through the child's root the grader reads {cword:#x}, expected {want:#x}")
        want_counts = [1, 1] if j in written else [2, 2]
        if b["counts"][va] != want_counts:
            watch.fail(run, f"page {j} ({'copied' if j in written else 'still shared'}): reference counts "
                            f"{b['counts'][va]} of frames {pf:#x}/{cf:#x} in the kernel's table, expected {want_counts}")
        if j in written and not cw:
            watch.fail(run, f"page {j} was copied for the child but its entry is not writable")
    for va in text:
        (pf, _), (cf, _) = b["pages"][va]
        if pf is not None and cf is not None and pf != cf:
            watch.fail(run, f"the read-only text page {va:#x} was copied")

    # C: the kernel wrote into the shared page (proc_info): the child got a copy first.
    (pf, _), (cf, _) = c["pages"][kbuf]
    if pf == cf:
        watch.fail(run, f"the kernel wrote into the child's shared page {kbuf:#x} (frame {pf:#x}) without copying it: "
                        "a user copy into a copy-on-write page must copy it first")
    if c["kpages"][0] != fill:
        watch.fail(run, f"the parent's page {kbuf:#x} changed when the kernel wrote into the child's copy-on-write page")
    if c["kpages"][1] == fill:
        watch.fail(run, f"the kernel's write into the child's page {kbuf:#x} is not there (read through the child's root)")

    # D: the child is gone: the parent's pages have one mapping each and are taken back, not copied.
    for j, va in enumerate(vas):
        frame, writable = d["pages"][va][0]
        before = a["pages"][va][0][0]
        if frame != before:
            want = "the frame it shared" if j not in written else "its own frame (the child took a copy)"
            shown = f"{frame:#x}" if frame is not None else "unmapped"
            watch.fail(run, f"after the child ended the parent wrote page {j}: it is frame {shown}, not {before:#x}, "
                            f"{want}: a page with one mapping left is taken back, not copied")
        if not writable or d["counts"][va] != [1]:
            watch.fail(run, f"after its write, the parent's page {j} is {'writable' if writable else 'read-only'} with "
                            f"count {d['counts'][va]}: expected writable, count 1")
        if d["words"][va] != [derived(t.token, "cowtest_kernel_word", j)]:
            watch.fail(run, f"page {j} of the parent does not hold what it wrote after the child ended")

    run.expect(rf"^cowtest: child wrote {len(written)} pages, 0 wrong; the kernel's write landed "
               rf"proof={proof(t.token, mask):016x}$", "the child's line")
    run.expect(rf"^cowtest: parent's words intact after the child's writes; child ok proof={proof(t.token, n):016x}$",
               "the parent's line")
    check_baseline(watch, run, w)
    run.expect_outcome("success")


# ---- fork until it fails -----------------------------------------------------------------------


@lab_test(6, "fork_bomb")
def test_fork_bomb(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    fork_call = syscall_number("Fork")
    # Eager copies of 16 MiB each run out of RAM part-way (ENOMEM); copy-on-write forks run out
    # of process slots (EAGAIN). Either way: every child reaped, nothing leaked.
    for mode, mib, errno_name, errno in (("eager", 16, "ENOMEM", 12), ("cow", t.pick("bomb MiB", 1, 8), "EAGAIN", 11)):
        b = ProcTest(boot, kernel, arch, token=t.token)   # (a boot of its own per mode)
        watch = b.watch
        watch.deaths = Deaths(kernel, cow=False, light=True, eager=mode == "eager")   # (a hundred children of MiBs)
        run = b.boot(f"forktree:bomb:{mib}", bomb_script(b, fork_call, kernel, eager=mode == "eager"),
                     args={"fork": mode})
        damage = getattr(watch, "damage", None)
        if damage:
            # Seen where the first fork returned: whatever the children and the bomb did after.
            seen_first(run, f"fork={mode}: {damage}")
        w = require(watch, run)
        forks = w["forks"]
        if not forks or forks[-1][0] != -errno:
            got = forks[-1][0] if forks else "no fork at all"
            watch.fail(run, f"fork={mode}, {mib} MiB touched: the grader read the result of {len(forks)} fork calls in "
                            f"user mode; the last is {got}, expected -{errno} ({errno_name}) once "
                            f"{'memory' if mode == 'eager' else 'the process table'} runs out")
        result, at_entry, after, left, leak, alive = forks[-1]
        full = min(Facts.of(kernel).slots, watch.layout.slots)
        if mode == "cow" and alive < full:
            watch.fail(run, f"fork=cow: fork failed with {errno_name} after {len(forks) - 1} children while {alive} "
                            f"processes were in the table (guest RAM, at its entry), which holds {full} (process and "
                            "kernel-stack slots): a copy-on-write fork copies no page, so it may fail only when a "
                            "table is full")
        if left:
            watch.fail(run, f"fork={mode}: the fork that failed with {errno_name} left pid {left[0]} in the process table "
                            f"(guest RAM, at its return; frames in use {after - at_entry:+d}): fork's error path did "
                            "not release the half-made child (release(child): its slot and pid, its root, the pages "
                            "copied so far)")
        if after != at_entry:
            said = (f"fork={mode}: the fork that failed with {errno_name} left {after - at_entry:+d} frames in use "
                    f"(the allocator's bitmap, guest RAM, at its entry and right after it returned): a fork that "
                    "fails part-way must undo everything it made")
            watch.fail(run, "\n".join(leak[:1] + [said] + [f"  {c}" for c in leak[1:3]]))
        n = len(forks) - 1
        fail_on_killed_children(watch, run)
        run.expect(rf"^forktree: bomb: forked {n} then fork failed with {errno_name}; reaped {n} \({n} with 7\) "
                   rf"proof={proof(t.token, n ^ (n << 16) ^ (n << 32)):016x}$", f"fork={mode}: the bomb's summary")
        if run.search(r"^PANIC"):
            watch.fail(run, f"fork={mode}: the kernel panicked")
        check_baseline(watch, run, w)
        run.expect_outcome("success")


# ---- wide fork ---------------------------------------------------------------------------------

WIDE = 64


@lab_test(6, "wide_fork")
def test_wide_fork(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    watch = t.watch
    watch.deaths = Deaths(kernel, cow=False)   # (64 children: the deaths are enough here)

    def script(started):
        parent = first_root(started, kernel)
        exits, waits, peak = [], [], None
        trace = Trace(t, deaths_of(watch))
        for ev in trace.events(8 * WIDE + 64):
            match ev:
                case Return(why=Waited() as waited, result=result):
                    waits.append((result, ev.snap.read_virt(waited.info, EXIT_INFO_SIZE, parent) if result > 0 else b""))
                    if result < 0 or len(waits) > 2 * WIDE:
                        break   # (more waits than children: wait returns children it does not reap)
                case Call(name="Exit", root=root) if root != parent:
                    exits.append((root, ev.args[0] & 0xffffffff))
                case Call(name="Wait", root=root) if root == parent:
                    if peak is None:
                        # The parent's first wait: every child was forked before it, none reaped yet.
                        peak = process_roots(ev.snap, kernel)
                    trace.follow(ev, Waited(ev.args[1]))
        # (a parent that never saw ECHILD never ends: its failure is named below, without the end)
        if waits and waits[-1][0] < 0:
            end = baseline(watch, t.guest)
        else:
            end = dict(before=None, after=None)
            t.guest.end()
        return dict(parent=parent, exits=exits, waits=waits, peak=peak or {}, **end)

    run = t.boot(f"forktree:wide:{WIDE}", script)
    w = require(watch, run)
    want = sorted(derived(t.token, "forktree_wide_code", i) for i in range(WIDE))
    children = [r for r in w["peak"] if r != w["parent"]]
    if len(children) < WIDE:
        watch.fail(run, f"when the parent first called wait, after forking {WIDE} children, the kernel's root registry "
                        f"(guest RAM) lists {len(children)} roots besides the parent's: the process table must hold "
                        f"{WIDE} children, their parent and the first process at once (kMaxProcesses), each a root of "
                        "its own, zombies included until they are reaped")
    roots = {r for r, _ in w["exits"]}
    if len(w["exits"]) != WIDE or len(roots) != WIDE or w["parent"] in roots:
        fail_on_killed_children(watch, run)  # a child that died never called exit: name why first
        watch.fail(run, f"the grader saw {len(w['exits'])} exit calls from {len(roots)} distinct roots other than the "
                        f"parent's; expected {WIDE}, one per child")
    if sorted(c for _, c in w["exits"]) != want:
        watch.fail(run, "the children's exit codes (read at their exit calls) are not the ones the token gives them")
    reaped = [(pid, u64(st[:4]) & 0xffffffff, u64(st[4:8])) for pid, st in w["waits"] if pid > 0]
    last = w["waits"][-1][0] if w["waits"] else None
    if len(reaped) != WIDE or len({pid for pid, _, _ in reaped}) != WIDE or last != -ECHILD:
        watch.fail(run, f"the parent's wait calls returned (read in user mode) {len(reaped)} children "
                        f"({len({p for p, _, _ in reaped})} distinct ids), then {last}: expected {WIDE} distinct children, "
                        f"then -ECHILD ({-ECHILD}) (wait reaps each child once; a zombie never reaped, or one reaped "
                        "twice)")
    bad = [(pid, code, how) for pid, code, how in reaped if how != 0]
    if bad:
        watch.fail(run, f"wait reported child {bad[0][0]} with how={bad[0][2]} (not exited): the status written into "
                        "the parent's ExitInfo (read from guest RAM)")
    if sorted(code for _, code, _ in reaped) != want:
        watch.fail(run, "the statuses wait wrote into the parent's ExitInfo (read through the parent's root) are not "
                        f"the codes the children passed to exit: got {sorted(c for _, c, _ in reaped)[:8]}..., "
                        f"expected {want[:8]}...")
    run.expect(rf"^forktree: wide: forked {WIDE} reaped {WIDE} statuses ok proof=[0-9a-f]{{16}}$",
               "the parent's summary")
    check_baseline(watch, run, w)
    run.expect_outcome("success")


# ---- fork after mmap, brk and stack growth -----------------------------------------------------

def page_mark(token, page):
    """Word 0 of a page forktree vmas marked (the twin of its page_mark(page, 0))."""
    return derived(token, "forktree_page_mark", page >> 12)


@lab_test(6, "fork_vmas")
def test_fork_vmas(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    maps, heap, stack = t.pick("vmas maps", 2, 6), t.pick("vmas heap", 2, 16), t.pick("vmas stack", 9, 12)
    moment = t.pick("vmas moment", 1, 3)
    want_marks = 3 + sum(1 + r % 3 for r in range(maps)) + heap + stack
    watch = t.watch
    yield_ = syscall_number("Yield")
    layout = Layout.of(kernel)
    top = fact(kernel, "user_stack_top")
    floor = top - fact(kernel, "user_stack_limit")
    mmap_base = fact(kernel, "mmap_base")
    data = user_symbol(kernel, arch, "forktree", "(anonymous namespace)::g_vma_data")

    def pages_of(snap, root):
        return {va: (r.pa_start + va - r.va_start, r.perms.rwx())
                for va, r in user_pages(snap.runs(root), layout, f"root {root:#x}").items()}

    def script(snap):
        parent = first_root(snap, kernel)
        seen = 0
        for snap in calls(t.guest, watch, {yield_}, 400):
            if snap.lower_root in (parent, *watch.kernel_roots):
                continue
            seen += 1
            if seen < moment:
                continue
            child = snap.lower_root
            shared = writable_in_two(snap, [parent, child], watch.layout, {parent: "the parent's root",
                                                                          child: "the child's root"})
            if shared:
                raise AssertionError(f"at the forked child's yield: {shared}")
            mine, theirs = pages_of(snap, parent), pages_of(snap, child)
            contents = {va: (snap.read_phys(mine[va][0], PAGE) if va in mine else None,
                             snap.read_phys(theirs[va][0], PAGE) if va in theirs else None)
                        for va in set(mine) | set(theirs)}
            return dict(parent=parent, child=child, mine=mine, theirs=theirs, contents=contents,
                        **baseline(watch, t.guest))
        raise AssertionError("the forked child never made its yield calls")

    elf = elffile.elf(user_elf(kernel, arch, "forktree"))

    def image_bytes(va):
        """(start, end, bytes) of page @p va that the program's ELF file gives (zeros past a
        segment's file size); (0, 0, None) outside every segment."""
        for s in elf.segments:
            lo, hi = max(va, s.vaddr), min(va + PAGE, s.vaddr + s.memsz)
            if lo < hi:
                return lo - va, hi - va, elf.image_bytes(lo, hi - lo)
        return 0, 0, None

    run = t.boot(f"forktree:vmas:{maps}:{heap}:{stack}", script)
    w = require(watch, run)
    mine, theirs, contents = w["mine"], w["theirs"], w["contents"]
    # The stack pages the two processes touch after the fork may differ: the frames of the
    # functions they run (the one that forked keeps its locals above its marked pages). Stack
    # pages are compared byte for byte where the parent's holds its mark (nothing writes those
    # after the fork); the lowest two mapped ones need not even be in both.
    stack_pages = sorted(va for va in set(mine) | set(theirs) if floor <= va < top)
    moving = set(stack_pages[:2])
    problems, marks = [], 0
    for va in sorted(set(mine) | set(theirs)):
        if va in moving:
            marks += va in theirs and u64(contents[va][1][:8]) == page_mark(t.token, va)
            continue
        where = ("the data array" if data.address <= va < data.address + data.size else
                 "the stack" if floor <= va < top else "the program image" if image_bytes(va)[2] is not None else
                 "the heap" if va < mmap_base else "an mmap region")
        if (va in mine) != (va in theirs):
            # A page of the program's image that only one of them has touched yet (lab 5 loads
            # the image lazily): what it holds must be what the loader puts there.
            who, other = ("the parent", "the child") if va in mine else ("the child", "the parent")
            got = contents[va][0] if va in mine else contents[va][1]
            lo, hi, want = image_bytes(va)
            if want is None or got[lo:hi] != want:
                problems.append(f"{va:#x} ({where}) is mapped in {who} but not in {other}")
            continue
        a, b = contents[va]
        if floor <= va < top and u64(a[:8]) != page_mark(t.token, va):
            continue   # a stack page of live frames (their locals change after the fork): present in both is all
        if a != b:
            at = next(i for i in range(PAGE) if a[i] != b[i])
            problems.append(f"{va:#x} ({where}): the child's page (frame {theirs[va][0]:#x}) differs from the parent's "
                            f"(frame {mine[va][0]:#x}) from byte {at}")
        if u64(b[:8]) == page_mark(t.token, va):
            marks += 1
        if mine[va][1].replace("w", "-") != theirs[va][1].replace("w", "-"):
            problems.append(f"{va:#x} ({where}): mapped {mine[va][1]} in the parent, {theirs[va][1]} in the child")
    if problems:
        watch.fail(run, f"at the child's yield {moment} after fork (the grader's pick), the grader walked both roots in "
                        f"guest RAM and compared every page of the user half ({len(mine)} in the parent, {len(theirs)} "
                        f"in the child):\n  " + "\n  ".join(problems[:8])
                   + ("\n(a fork that misses the regions made after the program loaded: mmap, the heap sbrk grew, the "
                      "stack pages a fault added)" if any("not in the child" in p for p in problems) else ""))
    if marks != want_marks:
        watch.fail(run, f"the grader found {marks} pages holding their token-derived mark in the child, expected "
                        f"{want_marks} (3 data, {maps} mmap regions, {heap} heap pages, {stack} grown stack pages)")
    code = derived(t.token, "forktree_vmas_code")
    run.expect(rf"^forktree: vmas: {want_marks} marked pages; child code {code}; parent's pages intact proof=",
               "the parent's line: the child's own check of every marked page, and the parent's")
    check_baseline(watch, run, w)
    run.expect_outcome("success")


# ---- copy-on-write under the kernel: read() into a shared buffer ---------------------------------

@lab_test(6, "cow_read")
def test_cow_read(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    length = t.pick("readcow length", 40, 200)
    line = "".join("abcdefghijklmnopqrstuvwxyz0123456789"[proof(t.token, 0xc00 + i) % 36] for i in range(length))
    cross = t.pick("readcow cross", 8, length - 8)
    offset = PAGE - cross
    watch = t.watch
    read_call, yield_ = syscall_number("Read"), syscall_number("Yield")
    fill = bytes.fromhex("55") * (2 * PAGE)

    def look(snap, roots, buf):
        refs = Refs(snap, kernel)
        pages = pages_in(snap, roots, [buf, buf + PAGE])
        return dict(pages=pages, counts={va: [refs.count(f) for f, _ in row] for va, row in pages.items()},
                    bytes=[snap.read_virt(buf, 2 * PAGE, r) for r in roots])

    def script(snap):
        parent = first_root(snap, kernel)
        buf = t.returned(t.call("Mmap")).result
        before = after = child = None
        for snap in calls(t.guest, watch, {read_call, yield_}, 200):
            root = snap.lower_root
            number = snap.register(watch.proc["syscall_number"])
            if root in (parent, *watch.kernel_roots):
                continue
            if number == read_call and before is None:
                child = root
                before = look(snap, [parent, child], buf)
                t.guest.send_line(line)   # typed now: the child is inside read()
            elif number == yield_ and root == child:
                after = look(snap, [parent, child], buf)
                break
        return dict(buf=buf, first=before, second=after, **baseline(watch, t.guest))

    run = t.boot(f"forktree:readcow:{offset}", script)
    w = require(watch, run)
    if w["first"] is None or w["second"] is None:
        watch.fail(run, "the grader did not see the forked child call read() and then yield (fork failed?)")
    buf, before, after = w["buf"], w["first"], w["second"]
    for j, va in enumerate((buf, buf + PAGE)):
        (pf, pw), (cf, cw) = before["pages"][va]
        if pf is None or pf != cf or pw or cw or before["counts"][va] != [2, 2]:
            watch.fail(run, f"at the child's read() call, page {j} of the buffer ({va:#x}) is frame {pf} "
                            f"({'rw' if pw else 'r-'}) in the parent and {cf} ({'rw' if cw else 'r-'}) in the child, "
                            f"counts {before['counts'][va]}: expected one frame shared copy-on-write (read-only in both, "
                            "count 2)")
    parent_bytes, child_bytes = after["bytes"]
    if parent_bytes != fill:
        at = next(i for i in range(len(fill)) if parent_bytes[i] != fill[i])
        watch.fail(run, f"after the child's read() the parent's buffer (read through the parent's root) changed at "
                        f"{buf + at:#x}: {parent_bytes[at:at + 16]!r}: the kernel wrote the typed line into the frame "
                        "the parent shares instead of copying it first (a user copy into a copy-on-write page must "
                        "copy it, as a user write would)")
    want = fill[:offset] + (line + "\n").encode() + fill[offset + length + 1:]
    if child_bytes != want:
        got = child_bytes[offset:offset + length + 1]
        watch.fail(run, f"after the child's read() its buffer (read through its root at {buf + offset:#x}) holds "
                        f"{got[:48]!r}..., not the line the grader typed, {line[:48]!r}... (read failed, or its write "
                        "went elsewhere)")
    for j, va in enumerate((buf, buf + PAGE)):
        (pf, _), (cf, cw) = after["pages"][va]
        if pf == cf or not cw or after["counts"][va] != [1, 1]:
            watch.fail(run, f"after read() wrote into page {j} of the child's buffer, it is frame {cf} "
                            f"({'writable' if cw else 'read-only'}) beside the parent's {pf}, counts "
                            f"{after['counts'][va]}: expected a copy of its own, writable, counts 1 and 1")
    d = 0
    for b in (line + "\n").encode():
        d = (d * 131 + b) & MASK64
    code = 1 + d % 200
    run.expect(rf"^forktree: readcow: child reaped code {code}; parent's buffer intact proof={proof(t.token, code):016x}$",
               "the parent's line (the child's exit code is a digest of the bytes it read)")
    check_baseline(watch, run, w)
    run.expect_outcome("success")


# ---- usertests: adversarial cases, one test each ------------------------------------------------


@lab_test(6, "usertests_badptr")
def test_usertests_badptr(boot, kernel, arch):
    usertests_case(boot, kernel, arch, "badptr")


@lab_test(6, "usertests_sbrk")
def test_usertests_sbrk(boot, kernel, arch):
    usertests_case(boot, kernel, arch, "sbrk")


@lab_test(6, "usertests_exec")
def test_usertests_exec(boot, kernel, arch):
    usertests_case(boot, kernel, arch, "exec")


@lab_test(6, "usertests_mem")
def test_usertests_mem(boot, kernel, arch):
    usertests_case(boot, kernel, arch, "mem")


@lab_test(6, "usertests_wait")
def test_usertests_wait(boot, kernel, arch):
    usertests_case(boot, kernel, arch, "wait")


@lab_test(6, "usertests_forkmem")
def test_usertests_forkmem(boot, kernel, arch):
    usertests_case(boot, kernel, arch, "forkmem")

# ---- a PROT_NONE page across fork --------------------------------------------------------------

NONE_WORDS = 8


@lab_test(6, "fork_prot_none")
def test_fork_prot_none(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    pattern = b"".join(derived(t.token, "vmas_none_word", i).to_bytes(8, "little") for i in range(NONE_WORDS))
    read, write = syscall_number("Read"), syscall_number("Write")
    held_bit = fact(kernel, "held_entry_bit")
    address_mask = fact(kernel, "address_mask")
    # Both forks: eager copies the held page into a new frame, copy-on-write shares the frame;
    # either way the child's page allows nothing either, and the frames are freed exactly once.
    for mode in ("eager", "cow"):
        b = ProcTest(boot, kernel, arch, token=t.token)   # (a boot of its own per mode)
        watch = b.watch
        watch.deaths = Deaths(kernel, eager=mode == "eager")

        def script(snap):
            guest = b.guest
            parent = first_root(snap, kernel)
            out = dict(parent=parent)
            for snap in calls(guest, watch, {write}, 20):
                m = re.match(rb"vmas: nonefork: pattern at (0x[0-9a-f]+)", written(snap, watch.proc))
                if m:
                    out["at"] = at = int(m[1], 16)
                    break
            else:
                raise AssertionError("vmas never said where its pattern is")
            # The child's read() into the page: both roots' leaves, as the MMU and the kernel see them.
            snap = next(calls(guest, watch, {read}, 20))
            out["child"] = child = snap.lower_root
            refs = Refs(snap, kernel)
            leaves = {}
            for name, root in (("parent", parent), ("child", child)):
                w = snap.walk(at, root)
                raw = w.levels[-1].raw if w.levels else None
                frame = raw & address_mask if raw else None
                leaves[name] = dict(mapped=w.mapped, raw=raw, frame=frame, count=refs.count(frame) if frame else None,
                                    data=snap.read_phys(frame, len(pattern)) if frame else b"")
            out["leaves"] = leaves
            out["wider"] = wider_than_record(snap, kernel, child, "the child")
            # The parent's last line: its page read/write again, holding its own pattern still.
            for snap in calls(guest, watch, {write}, 40):
                if snap.lower_root == parent and written(snap, watch.proc, parent).startswith(b"vmas: nonefork: parent"):
                    w = snap.walk(at, parent)
                    out["parent_after"] = snap.read_virt(at, len(pattern), parent) if w.mapped else None
                    break
            return dict(out, **baseline(watch, guest))

        run = b.boot("vmas:nonefork", script, args={"fork": mode})
        w = require(watch, run)
        at, leaves = w["at"], w["leaves"]
        if w.get("wider"):
            watch.fail(run, f"fork={mode}: at the child's read(), {w['wider']}")
        for name in ("parent", "child"):
            leaf = leaves[name]
            if leaf["mapped"] or leaf["raw"] is None or leaf["raw"] & 1:
                watch.fail(run, f"fork={mode}: at the child's read(), the {name}'s PROT_NONE page {at:#x} is "
                                f"{'mapped (valid to the MMU)' if leaf['mapped'] else 'not a leaf at all'}: it must stay "
                                "invalid to the MMU in both roots")
            if not leaf["raw"] & held_bit or leaf["data"] != pattern:
                watch.fail(run, f"fork={mode}: at the child's read(), the {name}'s leaf for {at:#x} is {leaf['raw']:#x}"
                                f"{'' if leaf['raw'] & held_bit else ' without the held bit'}"
                                f"{'' if leaf['data'] == pattern else ', its frame without the pattern'}: fork must "
                                "keep a PROT_NONE page's frame and contents in the child")
        pf, cf = leaves["parent"]["frame"], leaves["child"]["frame"]
        if mode == "eager" and (pf == cf or leaves["child"]["count"] != 1):
            watch.fail(run, f"fork=eager: the PROT_NONE page {at:#x} is frame {pf:#x} in the parent and {cf:#x} (count "
                            f"{leaves['child']['count']}) in the child: an eager fork copies it into a frame of its own")
        if mode == "cow" and (pf != cf or leaves["child"]["count"] != 2):
            watch.fail(run, f"fork=cow: the PROT_NONE page {at:#x} is frame {pf:#x} in the parent and {cf:#x} in the "
                            f"child, count {leaves['child']['count']}: a copy-on-write fork shares it (count 2)")
        run.expect(rf"^vmas: nonefork: child: read -14 mprotect 0; {NONE_WORDS} of {NONE_WORDS} words intact "
                   rf"proof={proof(t.token, NONE_WORDS):016x}$", f"fork={mode}: the child's line")
        run.expect(rf"^vmas: nonefork: parent: child ok; mprotect 0; {NONE_WORDS} of {NONE_WORDS} words intact "
                   rf"proof={proof(t.token, NONE_WORDS):016x}$", f"fork={mode}: the parent's line")
        if w.get("parent_after") != pattern:
            watch.fail(run, f"fork={mode}: after the child overwrote its copy and ended, the grader reads the parent's "
                            f"page {at:#x} {'unmapped' if w.get('parent_after') is None else 'without its pattern'}: "
                            "the child's write reached the parent's frame")
        check_baseline(watch, run, w)
        run.expect_outcome("success")


# ---- boundaries: a run of pages past its first, a child's stack, an orphan's end ------------------


def mmap_pages(snap, root, kernel):
    """{va: (frame, first word, writable)} of the pages @p root maps in the mmap area (guest RAM)."""
    base = fact(kernel, "mmap_base")
    return {va: (frame, u64(snap.read_phys(frame, 8)), writable)
            for va, (frame, writable) in Pages.of(snap, root).items() if base <= va < base + (1 << 36)}


def widened_shared(snap, kernel, parent, child):
    """A sentence naming the first frame that @p parent's and @p child's roots both map (the
    grader's walk) writable in one of them or both, or None. fork left every shared page read-only
    in both (fork_problems, where it returned), so such a frame is a copy-on-write fault that took
    a frame still shared back as it was instead of copying it."""
    mine, theirs = Pages.of(snap, parent), Pages.of(snap, child)
    for va, (frame, writable) in sorted(mine.items()):
        if va not in theirs or theirs[va][0] != frame or not (writable or theirs[va][1]):
            continue
        writer, other = (pid_of(snap, kernel, r)[0] for r in ((parent, child) if writable else (child, parent)))
        both = writable and theirs[va][1]
        who = (f"pid {writer}'s and pid {other}'s copy-on-write faults at {va:#x} made frame {frame:#x} writable in "
               "both roots" if both else
               f"pid {writer}'s copy-on-write fault at {va:#x} made frame {frame:#x} writable while pid {other} "
               "still maps it")
        return (f"{who} (the grader's walk of both roots at an exit call after fork: the same frame, writable in "
                f"{'both' if both else 'one, read-only in the other'}): a shared frame must be copied before it is "
                "written (taken back as it is only when no other mapping of it is left), or one process's writes "
                "reach the other's memory")
    return None


@lab_test(6, "fork_runs")
def test_fork_runs(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    n = t.pick("runs pages", 3, 8)
    k = t.pick("runs page", 1, n - 1)
    watch = t.watch
    # No stop at copy-on-write faults: between fork's return and the parent's write of page k the
    # parent's stack takes one, and a stop there lets the timer's next tick fall due (QEMU's
    # clock runs on while the grader holds the guest), which would end the parent's turn and
    # flush its TLB before the write.
    watch.deaths = Deaths(kernel, cow=False)

    def script(started):
        parent = first_root(started, kernel)
        tlb_page, tlb_all = address_of(kernel, watch.proc["tlb_page"]), address_of(kernel, watch.proc["tlb_all"])
        state = watch.runs_state = dict(forks=[], child=None)   # forks: [(flush, pages after)]
        trace = Trace(t, deaths_of(watch), at=[C.FORK])
        for ev in trace.events(400):
            snap, root = ev.snap, ev.snap.lower_root
            match ev:
                case At(address=a) if a in (tlb_page, tlb_all):
                    note_invalidation(state["forks"][-1][0], snap, tlb_all)
                case At() if root == parent:
                    # The parent's pages as fork starts; every invalidation until fork_process returns.
                    state["forks"].append((dict(before=Pages.of(snap, parent), pages=set(), all=False), None))
                    trace.follow_function(snap, Forked(None, None, None), any_root=True)
                    trace.transient = {tlb_page, tlb_all}
                case Return():
                    trace.transient = set()
                    state["forks"][-1] = (state["forks"][-1][0], Pages.of(snap, parent))
            if not isinstance(ev, Call):
                continue
            if ev.name == "Exit" and len(state["forks"]) == 2 and root not in watch.kernel_roots:
                # The first exit after the fork, whoever makes it (the child, or a parent whose
                # stack a widened page gave the child's fork result): the parent's root beside
                # every other process root, walked whole while both live.
                state["widened"] = state.get("widened") or next(
                    filter(None, (widened_shared(snap, kernel, parent, r) for r in process_roots(snap, kernel)
                                  if r != parent)), None)
            if ev.name == "Exit" and root not in (parent, *watch.kernel_roots) and len(state["forks"]) == 2:
                # The child ends: both roots' pages of the run, and the code it passes to exit.
                state["child"] = dict(code=signed(snap.register(watch.proc["syscall_args"][0])) & 0xffffffff,
                                      mine=mmap_pages(snap, parent, kernel), theirs=mmap_pages(snap, root, kernel))
                break
        return dict(parent=parent, **baseline(watch, t.guest))

    run = t.boot(f"forktree:runs:{n}:{k}", script)
    fail_on_lab6_skeleton(watch, run)
    state = getattr(watch, "runs_state", {})
    for flush, after in state.get("forks", []):
        if after is None or flush["all"]:
            continue
        narrowed = sorted(va for va, (frame, writable) in flush["before"].items()
                          if writable and after.get(va) == (frame, False))
        stale = [va for va in narrowed if va not in flush["pages"]]
        if stale:
            done = [va for va in narrowed if va in flush["pages"]]
            watch.fail(run, f"fork made {len(narrowed)} writable pages of the parent read-only but invalidated only "
                            f"{len(done)} of them ({', '.join(hex(v) for v in done[:4]) or 'none'}): page "
                            f"{stale[0]:#x} (and {len(stale) - 1} more) had no TLB invalidation during fork (the grader "
                            "stopped at every invalidate_page and invalidate_all): a run of pages narrowed together "
                            "must be invalidated whole, every page of it, not its first page only: the parent's TLB "
                            "keeps the writable translation of the others, and its next write, before any switch, "
                            "reaches the frame the child shares")
    if state.get("widened"):
        # A frame both roots map, writable in one: no stale TLB entry but a page table entry that a
        # write fault widened in place (read-only in both where fork returned).
        watch.fail(run, state["widened"])
    child = state.get("child")
    if child is not None:
        shared = {va: v for va, v in child["theirs"].items() if child["mine"].get(va, (None,))[0] == v[0]}
        hit = [va for va, (frame, word, _) in child["theirs"].items() if word == derived(t.token, "forktree_runs_mark")]
        if hit:
            va = hit[0]
            watch.fail(run, f"the parent wrote page {k} of its {n}-page run ({va:#x}) right after fork returned, before "
                            f"its next switch, and the child reads that new value there (frame {child['theirs'][va][0]:#x}, "
                            f"through the child's root at its exit): the write went through a translation the parent's "
                            "TLB still held writable from before the fork, into the frame fork shared"
                            + (" (still shared by both roots)" if va in shared else "")
                            + ": fork must invalidate every parent page it made read-only")
    w = require(watch, run)
    fail_on_killed_children(watch, run)
    if child is None:
        watch.fail(run, "the grader never saw the forked child's exit call")
    if child["code"] != derived(t.token, "forktree_runs_code"):
        watch.fail(run, f"the child passed {child['code']} to exit (read at its exit call), not the code that says it "
                        f"read every page of the run as the parent wrote it before fork ({derived(t.token, 'forktree_runs_code')})")
    m = run.expect(rf"^forktree: runs: {n} pages at ({HEX}), wrote page {k} after fork; child code (\d+); parent's "
                   rf"pages intact proof=([0-9a-f]{{16}})$", "the parent's runs line")
    run.expect_proof(m[3], derived(t.token, "forktree_runs_code") ^ (k << 40), "the child's code")
    check_baseline(watch, run, w)
    run.expect_outcome("success")


def grow_code(token, depth):
    """The twin of forktree's grow_code() of the child's sum."""
    return 1 + (derived(token, "forktree_grow_tag") ^ sum(p & 0xFF for p in range(1, depth + 1))) % 100


@lab_test(6, "child_stack")
def test_child_stack(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    depth = t.pick("child stack", 12, 40)
    watch = t.watch
    exit_call = syscall_number("Exit")
    top = fact(kernel, "user_stack_top")
    limit = fact(kernel, "user_stack_limit")

    def script(snap):
        parent = first_root(snap, kernel)
        for snap in calls(t.guest, watch, {exit_call}, 200):
            root = snap.lower_root
            if root in (parent, *watch.kernel_roots):
                continue
            stack = sum(1 for va in Pages.of(snap, root) if top - limit <= va < top)
            return dict(parent=parent, code=snap.register(watch.proc["syscall_args"][0]) & 0xffffffff, stack=stack,
                        **baseline(watch, t.guest))
        raise AssertionError("the forked child never called exit")

    run = t.boot(f"forktree:growchild:{depth}", script)
    fail_on_lab6_skeleton(watch, run)
    kills = parse_kills(run)
    for pid, kl in sorted(kills.items()):
        if kl.address is not None and top - limit <= kl.address < top:
            m = next((m for m in deaths_of(watch).moments if m.pid == pid), None)
            stack = next((v for v in (m.vmas or []) if v.start <= kl.address + PAGE and v.end == top), None) if m else None
            watch.fail(run, f"the forked child (pid {pid}) was killed growing its stack at {kl.address:#x}, "
                            f"{(top - kl.address) // PAGE} pages below the stack's top and inside the stack's limit "
                            f"({limit // PAGE} pages, the kernel's fact): '{kl.reason}'"
                            + (f"; its record (read from guest RAM as it died) has the stack {stack}" if stack else "")
                            + ": a child's stack grows as its parent's does: fork's copy of the record must keep the "
                              "parent's stack limit and gap (copy_record), not only its regions")
    w = require(watch, run)
    fail_on_killed_children(watch, run)
    if w["code"] != grow_code(t.token, depth):
        watch.fail(run, f"the child passed {w['code']} to exit (read at its exit call), not the code of its {depth} "
                        "pages of recursion")
    if w["stack"] < depth:
        watch.fail(run, f"as the child ends, the grader's walk of its root finds {w['stack']} stack pages; it recursed "
                        f"{depth} pages deep")
    run.expect(rf"^forktree: growchild: {depth} pages; child exited code {grow_code(t.token, depth)} "
               rf"proof={proof(t.token, grow_code(t.token, depth)):016x}$", "the parent's growchild line")
    check_baseline(watch, run, w)
    run.expect_outcome("success")


@lab_test(6, "orphan_wait")
def test_orphan_wait(boot, kernel, arch):
    t = ProcTest(boot, kernel, arch)
    watch = t.watch

    def script(started):
        parent = first_root(started, kernel)
        events = []   # ("exit", pid, code) and ("wait", pid returned, code written), in order
        trace = Trace(t, deaths_of(watch), at=[C.IDLE])
        for ev in trace.events(600):
            snap, root = ev.snap, ev.snap.lower_root
            if isinstance(ev, At):
                stalled = stalled_waits(snap, kernel)
                if stalled:
                    procs = processes(snap, kernel, records_of=-1)
                    orphans = [p for p in procs.values() if p.parent == 1 and p.zombie and p.pid not in watch.orphan_own]
                    if orphans:
                        raise AssertionError(
                            f"nothing can run: pid 1 waits (state read from guest RAM) while pid {orphans[0].pid}, an "
                            f"orphan it adopted when its own parent ended, has already ended (a zombie, exit status "
                            f"{orphans[0].exit_code}): the exit that handed pid 1 a child that had ended did not wake "
                            "it (exit must wake the adopter when a zombie is among the children it takes)")
                    raise AssertionError(stalled)
                continue
            match ev:
                case Return(why=ForkResult(), result=result):
                    watch.orphan_own.add(result)
                case Return(why=Waited() as waited, result=result):
                    code = exit_info(snap.read_virt(waited.info, EXIT_INFO_SIZE, parent))[0] if result > 0 else None
                    events.append(("wait", result, code))
                    if result < 0:
                        break
                case Call(name="Exit") if root != parent:
                    events.append(("exit", pid_of(snap, kernel, root)[0], signed32(ev.args[0] & 0xffffffff)))
                case Call(name="Wait") if root == parent:
                    trace.follow(ev, Waited(ev.args[1]))
                case Call(name="Fork") if root == parent:
                    trace.follow(ev, ForkResult())   # (its result: pid 1's own child)
        return dict(events=events, **baseline(watch, t.guest))

    watch.orphan_own = set()
    run = t.boot("forktree:orphan", script)
    w = require(watch, run)
    fail_on_killed_children(watch, run)
    events = w["events"]
    exits = [(pid, code) for what, pid, code in events if what == "exit"]
    orphan_code = derived(t.token, "forktree_orphan_code")
    orphan = next((pid for pid, code in exits if code == orphan_code), None)
    a = next((pid for pid, code in exits if code == 0x44), None)
    waits = [(pid, code) for what, pid, code in events if what == "wait"]
    if orphan is None or a is None:
        watch.fail(run, f"the grader saw the exit calls {exits} (pid, code): expected the orphan's code "
                        f"{orphan_code} and A's 0x44 among them")
    a_ended = next(i for i, e in enumerate(events) if e[0] == "exit" and e[1] == a)
    first_wait = next((i for i, e in enumerate(events) if e[0] == "wait"), None)
    if first_wait is None or first_wait > a_ended or waits[0][0] != orphan:
        watch.fail(run, f"pid 1 waited for any child; the orphan pid {orphan} (its parent ended after it, so it went to "
                        f"pid 1 a zombie) ended long before A (pid {a}, asleep meanwhile), yet pid 1's first wait returned "
                        f"{waits[0][0] if waits else 'nothing'}"
                        + (" only after A ended" if first_wait is None or first_wait > a_ended else "")
                        + " (read in user mode at its return): the exit that hands pid 1 a zombie must wake it, if it "
                          "waits, to reap the orphan")
    if waits[:2] != [(orphan, orphan_code), (a, 0x44)] or len(waits) < 3 or waits[2][0] != -ECHILD:
        watch.fail(run, f"pid 1's wait calls returned {waits} (pid, code: read in user mode); expected the orphan "
                        f"{orphan} with {orphan_code}, then A {a} with 0x44, then -ECHILD")
    run.expect(rf"^forktree: orphan: first the orphan code {orphan_code}, then A code 68, then -{ECHILD} "
               rf"proof=[0-9a-f]{{16}}$", "pid 1's orphan line")
    check_baseline(watch, run, w)
    run.expect_outcome("success")
