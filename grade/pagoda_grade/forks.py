"""Fork, exec, exit and wait seen from outside (lab 6, and the labs after it): the deaths and
execs every lab-6 boot stops at (lifecycle.Deaths), the frames in use at the run's end against its
start and what the leaked ones were, why a process was killed (its record and pages as it died),
what a wait got wrong against the process table, and the order a lab-6 failure names them in
(require()). docs/grader.md, "Lab 6"."""
import re

from pagoda_pt import contract
from pagoda_pt.procs import NO_SLOT
from pagoda_pt.verdicts import Leftovers, left_behind
from . import programs
from .labtest import ProcTest, Return, Trace, signed
from .lifecycle import Deaths, moment, stale_records
from .outcomes import KILL_LINE, STAND_IN, BootEnded
from .processes import (Pages, count_used, covered, digest, foreign_code_kill, parse_kills, process_roots, processes,
                        used_frames, user_page_frames, user_symbol)
from .procaudit import Facts, _u, errno_name, read_current, read_procs
from .proof import proof
from .symbols import fact
from .watch import syscall_number, u64
from .witness import PAGE

ESRCH, ECHILD = 3, 10


def deaths_of(watch):
    """The Deaths recorder of @p watch's boot (made on first use): every test of this lab also
    stops at each process's end and each exec, to name a leak or a kill from what it saw there."""
    if getattr(watch, "deaths", None) is None:
        watch.deaths = Deaths(watch.kernel)
    if watch.deaths.bitmap is None:
        watch.deaths.bitmap = watch.bitmap
    if watch.deaths.audit is None:
        watch.deaths.audit = watch.audit
    return watch.deaths


def calls(guest, watch, numbers, limit):
    """Stops at the system-call entry, yielding each stop whose call is in @p numbers (and
    recording every death and exec on the way)."""
    number = watch.proc["syscall_number"]
    deaths = deaths_of(watch)
    taken = 0
    while taken < limit:
        snap = guest.stop_at_any([watch.proc["syscall_entry"], *deaths.addresses()])
        if deaths.take(snap):
            continue   # (not counted: the limit is the test's own stops)
        taken += 1
        if snap.register(number) in numbers:
            yield snap


def first_root(snap, kernel):
    """The root of pid 1 in the kernel's root registry (guest RAM)."""
    for root, label in process_roots(snap, kernel).items():
        if label.endswith("(pid 1)"):
            return root
    raise AssertionError("the first process (pid 1) has no root in the kernel's root registry at the grader's stop: "
                         "it was never made, or it had ended already (its kill line, if any, says why)")


def baseline(watch, guest):
    """At the run's end: frames in use (the allocator's bitmap, guest RAM) after every process
    was reaped, and before the first one was made; when they differ, what the leaked frames
    were (audit.leak_story(): from every death and exec the grader stopped at, and guest RAM now)."""
    deaths = deaths_of(watch)
    tag = fact(watch.kernel, "run_checkpoint_ended")
    for _ in range(100_000):
        end = guest.stop_at_any([contract.CHECKPOINT, *deaths.addresses()])
        if not deaths.take(end) and end.argument(0) == tag:
            break
    else:
        raise AssertionError("the run never reached its 'ended' checkpoint")
    # Every page a copy-on-write fork shared and a process later mapped apart: a fault there first.
    for problem in deaths.copies_without_fault(guest.log_events)[:1]:
        if deaths.audit is not None:
            deaths.audit.note(problem)
    after, bits = count_used(end, *watch.bitmap)
    before, before_bits = watch.frames_before
    story, classes = [], []
    leaked = bits & ~before_bits
    if after != before:
        from pagoda_pt.frames import PAGE_TABLE, USER_PAGE   # (a leak's story and classes, loaded for one)
        from . import audit
        story = audit.leak_story(before_bits, bits, end, watch.kernel, deaths.moments)
        # The path of each kind of frame, from what the grader saw at its stops when that says more
        # than the bytes (a page a copy-on-write fault replaced is a user page like any other).
        seen = {USER_PAGE: next((s for s in story if "user pages" in s), None),
                PAGE_TABLE: next((s for s in story if "page tables" in s), None)}
        classes = audit.leak_classes(watch.kernel, watch.arch, end.read_phys,
                                     used_frames(leaked),
                                     {m.root: m.who for m in deaths.moments}, seen)
    return dict(before=before, after=after, leak=story, classes=[c.sentence() for c in classes])


def kill_story(m):
    """Why @p m (a death by a fault) happened, from what the grader read as the process died: its
    record (VMA list) and its root's pages."""
    vmas = m.vmas or []
    page = m.address & ~(PAGE - 1)
    mapped = m.pages.get(page)
    state = (f"mapped {'read/write' if mapped[1] else 'read-only'} to frame {mapped[0]:#x}" if mapped
             else "not mapped")
    if m.vmas is None:
        return (f"it has no record of regions (none made, or its VMA list not readable in guest RAM as it died) "
                f"while its root maps {len(m.pages)} user pages: a forked child that fork never gave a record "
                "(copy_record), or a loader that mapped its segments without recording them")
    if not vmas:
        return (f"its record (VMA list, read from guest RAM as it died) is empty while its root maps "
                f"{len(m.pages)} user pages: a forked child whose record fork never filled (copy_record), or a loader "
                "that mapped its segments without recording them")
    if covered(vmas, m.address):
        region = next(v for v in vmas if v.start <= m.address < v.end)
        return (f"{m.address:#x} lies in its region {region} (record read from guest RAM as it died) and the page is "
                f"{state}: the fault was one the record allows, yet it was not resolved"
                + (" (a write to a read-only page of a writable region is copy-on-write: the fault must copy it, or "
                   "take the frame back at count 1)" if mapped and not mapped[1] and region.write else ""))
    return (f"{m.address:#x} lies in none of its {len(vmas)} regions ({', '.join(str(v) for v in vmas[:4])}"
            f"{', ...' if len(vmas) > 4 else ''}; read from guest RAM as it died), and the page is {state}: a wild "
            "access, the usual sign of a stack or data page that changed under the process (a frame it shared "
            "written by another process, or a copy that is not a copy)")


def seen_first(run, reason):
    """Fails with @p reason, what the grader saw at a stop before anything died (a fork's result
    in guest RAM at its return), as the headline: a panic or a kill that came later is what it led
    to, and follows it (Run.fail adds the panic after the reason)."""
    run.fail(reason, cause=reason)


def fail_on_killed_children(watch, run):
    """Fails naming the processes the kernel killed, when any was (no test here expects one):
    the usual reason the grader never saw a child run, or a bomb's statuses are wrong. The
    cause comes from what the grader read at the death (kill_story()), the kernel's line after."""
    kills = [l.strip() for l in run.lines if KILL_LINE.match(l.strip())]
    # An illegal instruction where the program's ELF has code: the page held other bytes (its
    # "address" is no access, so kill_story() would call it a wild one).
    foreign = foreign_code_kill(watch.kernel, watch.arch, parse_kills(run)) if kills else None
    if foreign:
        watch.fail(run, f"{foreign}\n  " + "\n  ".join(kills[:3]))
    killed = deaths_of(watch).killed()
    if killed:
        m = killed[0]
        watch.fail(run, f"{m.who} was {m.ending()}: {kill_story(m)}\n  " + "\n  ".join(kills[:2]))
    if kills:
        # Not seen dying (the grader had stopped looking): what the grader saw at its stops, if
        # anything (a process not running its program's bytes), says more than the kill alone.
        seen = [p.splitlines()[0] for p in run.watch_problems]
        watch.fail(run, (f"{seen[0]}\n  " if seen else "") + "a process was killed:\n  " + "\n  ".join(kills[:3]))


LAB6_TODO = re.compile(r"LAB TODO: lab 6: write (\S+\(\))")


def fail_on_lab6_skeleton(watch, run):
    """Fails naming the lab-6 functions whose skeleton the kernel reached in this boot (each
    prints `LAB TODO: lab 6: write F() ...` once): on a skeleton, the first line names what to
    write. A skeleton the kernel says it ran a stand-in for (the eager copy for share_pages():
    outcomes.STAND_IN) says nothing about why a test failed."""
    todo = []
    for line in run.lines:
        m = LAB6_TODO.search(line)
        if m and not STAND_IN.search(line) and m[1] not in todo:
            todo.append(m[1])
    if todo:
        watch.fail(run, f"the kernel reached lab 6's skeleton of {', '.join(todo)}: write {todo[0]} "
                        "(labs/06-fork/README.md); the console says "
                        + next(l.strip() for l in run.lines if todo[0] in l and "LAB TODO" in l))


def require(watch, run):
    """The witness's result. First, what the grader saw go wrong on the way, the likeliest cause
    of anything after it: a copy-on-write fault that did the wrong thing (seen at its entry and
    return); when the witness has no result, the processes that died (the usual reason the
    grader never saw a forked child run)."""
    fail_on_lab6_skeleton(watch, run)
    cow = deaths_of(watch).cow_problems()
    if cow:
        watch.fail(run, cow[0] + "".join(f"\n  {p}" for p in cow[1:3]))
    execs = deaths_of(watch).exec_faults
    if execs:
        watch.fail(run, execs[0])
    if run.witness is None:
        stale = stale_records(deaths_of(watch).moments)
        if stale:
            watch.fail(run, stale[0])
        fail_on_killed_children(watch, run)
    return watch.require(run)


def children_of(snap, kernel, pid):
    """{pid: Proc} of the processes in the table (guest RAM) whose parent is @p pid."""
    return {q: p for q, p in processes(snap, kernel, records_of=-1).items() if p.parent == pid and q != pid}


def wait_problem(result, before, after):
    """What a blocking wait got wrong, from its @p result (read in user mode at its return) and
    the caller's children in the process table (guest RAM) at its entry (@p before) and its
    return (@p after), each {pid: Proc}; None when the table agrees with the result. A slot
    marked free that still holds its pid (state 0) is no child: it is a reap that never
    destroyed the process, named before what it made wait return."""
    undestroyed = left_behind(Leftovers(freed=[(q, None) for q, p in sorted(after.items()) if p.state == 0],
                                        where="guest RAM, at wait's return"))
    if undestroyed:
        return undestroyed
    after = {q: p for q, p in after.items() if p.state != 0}
    if result == -ECHILD and after:
        alive = sorted(q for q, p in after.items() if not p.zombie)
        return (f"wait returned -ECHILD ({-ECHILD}) while the process table (guest RAM, at its return) holds "
                f"{len(after)} child(ren) of the caller (pids {', '.join(map(str, sorted(after)))}; "
                f"{len(alive)} not ended yet): a process is its parent's child from fork to its reaping, ended or "
                "not: wait must sleep until one ends, and say ECHILD only when the caller has no child at all")
    gone = sorted(q for q in before if q not in after)
    if result == 0 and gone:
        return (f"wait reaped pid {gone[0]} (in the process table at the wait's entry, its slot free at the return, "
                f"guest RAM) yet returned 0 (read in user mode): the pid it returns was read from the child's slot "
                "after reap() had cleared it: keep the child's pid before reaping")
    if result > 0 and result not in before:
        return (f"wait returned pid {result}, which was no child of the caller at the wait's entry (its children in "
                f"the process table then: {', '.join(map(str, sorted(before))) or 'none'}): wait returns the pid of "
                "the child it reaped")
    return None


def check_baseline(watch, run, w):
    if w["after"] != w["before"]:
        head = (f"frames in use (the frame allocator's bitmap, read by the grader from guest RAM): {w['before']} before "
                f"the first process, {w['after']} after every process was reaped: {w['after'] - w['before']:+d}")
        story = w.get("leak") or []
        classes = w.get("classes") or []
        if classes:
            # What the leaked frames are, read from their bytes, names the path on line 1.
            watch.fail(run, "\n".join([classes[0], head + (f": {story[0]}" if story else "")]
                                       + [f"  {c}" for c in classes[1:3] + story[1:3]]))
        if story:
            watch.fail(run, f"{head}: {story[0]}" + "".join(f"\n  {s}" for s in story[1:4]))
        watch.fail(run, f"{head} (frames the grader never saw as a process's page or table: a fork that leaks the "
                        "tables of the copy, or a kernel stack never freed)")


EXIT_INFO_SIZE = 16   # abi::ExitInfo: i32 code, u32 how, u64 address


def exit_info(data):
    """(code, how) of an abi::ExitInfo read from guest RAM ((None, None) when there was none)."""
    if len(data) < 8:
        return None, None
    return signed32(int.from_bytes(data[:4], "little")), int.from_bytes(data[4:8], "little")


def signed32(value):
    return value - (1 << 32) if value >> 31 else value


def note_invalidation(flush, snap, tlb_all):
    """Stopped at one of the kernel's TLB invalidations (@p tlb_all: the address of the one that
    drops every entry; else one page, its address the first argument): noted in @p flush
    ({"all": bool, "pages": set})."""
    if snap.pc == tlb_all:
        flush["all"] = True
    else:
        flush["pages"].add(snap.argument(1) & ~(PAGE - 1))


# ---- fork_bomb's and usertests' boots (several tests each) ------------------------------------


def copies_in_other_roots(snap, watch, frames, roots):
    """The frames of @p frames that a process of @p roots maps as a user page now (the grader's
    walk of each root): copies made by children that ran meanwhile."""
    mapped = set()
    for root in roots:
        mapped |= user_page_frames(snap.dump(root), watch.layout)
    return frames & mapped


def first_fork_problem(eager, entry, back, parent_root, child_root):
    """What a fork did to the memory it copies, from the parent's pages at the fork's entry
    (@p entry: {va: (frame, digest)}) and both roots where the parent is back from it (@p back):
    the parent's pages must be the bytes they were (fork only reads them), and an eager fork's
    child must map frames of its own. None when both hold."""
    parent = Pages.of(back, parent_root)
    child = Pages.of(back, child_root) if child_root is not None else Pages()
    if eager:
        for va in sorted(entry):
            if va in parent and va in child and parent[va][0] == child[va][0]:
                return (f"the eager fork mapped the parent's own frame {parent[va][0]:#x} at {va:#x} in the child (the "
                        "grader's walk of both roots where the parent is back from fork): the child writes the "
                        "parent's memory, the frame is counted once, and the copy made for the child is lost: the "
                        "eager copy must map the new frame it filled (map_copy(frame)), not the parent's")
    for va, (frame, before) in sorted(entry.items()):
        if va not in parent or digest(back, parent[va][0]) == before:
            continue
        theirs = child.get(va)
        same = theirs is not None and digest(back, theirs[0]) == digest(back, parent[va][0])
        return (f"fork changed the parent's memory: its page {va:#x} (frame {parent[va][0]:#x}) no longer holds the "
                "bytes it held at fork's entry (the grader read them at the fork's entry and where the parent is back "
                "from it, guest RAM)"
                + (": the child's copy holds the same new bytes: the eager copy was made the wrong way round, the "
                   "child's new frame copied over the parent's page (copy_frame(to, from): the new frame is the "
                   "target)" if same and eager else ": fork must only read the parent's pages"))
    return None


def bomb_script(t, fork_call, kernel, eager=False):
    """At every fork: frames in use at its entry and right after it returns (read in user mode,
    with its result): a failed fork must leave the count exactly where it found it. Children made
    earlier may run between the two stops (the first time each runs it returns from fork to the
    same instruction) and copy a page they share: a frame that is new at the return and mapped
    as a user page of a process that existed at the fork's entry is one of those copies, not the
    failed fork's."""
    watch = t.watch

    def script(started):
        guest = t.guest
        forks = []
        # Copy-on-write forks until the process table is full: a fork per slot, and each child's
        # calls (sleep, exit) among the stops.
        for snap in calls(guest, watch, {fork_call}, 4 * watch.layout.slots + 32):
            at_entry, entry_bits = count_used(snap, *watch.bitmap)
            # The first fork: the parent's pages as fork found them, to see what it did to them.
            entry = {va: (pa, digest(snap, pa)) for va, (pa, _) in Pages.of(snap, snap.lower_root).items()} \
                if not forks else None
            others = set(process_roots(snap, kernel)) - {snap.lower_root}   # the children made before
            pids = set(processes(snap, kernel, records_of=-1))
            pc, root = snap.register(watch.proc["syscall_return_pc"]), snap.lower_root
            if not forks:
                deaths_of(watch).see_fork(guest)   # (the first fork at its return too: what it shared)
            for _ in range(watch.layout.slots + 8):
                back = guest.stop_at(pc)
                if back.lower_root == root:
                    break
            else:
                raise AssertionError("the forking process never returned from fork")
            result = signed(back.register(watch.proc["syscall_result"]))
            if entry is not None and result > 0 and "damage" not in watch.__dict__:
                child = next((r for r, label in process_roots(back, kernel).items() if label.endswith(f"(pid {result})")),
                             None)
                for r in ({root, child} - {None}) if not eager else ():   # (a copy since must be a fault's)
                    deaths_of(watch).add(moment(back, kernel, r, "later"))
                watch.damage = first_fork_problem(eager, entry, back, root, child)
                if watch.damage and getattr(watch, "audit", None):
                    # Seen at a stop: it heads the failure before what the boot's end audit finds.
                    watch.audit.note(f"fork={'eager' if eager else 'cow'}: {watch.damage}")
            after, after_bits = count_used(back, *watch.bitmap)
            leak = []
            if result < 0 and after != at_entry:
                new = after_bits & ~entry_bits
                frames = set(used_frames(new))
                copies = copies_in_other_roots(back, watch, frames, others & set(process_roots(back, kernel)))
                after -= len(copies)
                # What the failed fork left, from the frames' bytes: its path is known.
                from pagoda_pt.frames import LEAK_KINDS   # (a leak's classes, loaded for one)
                from . import audit
                undo = ("a fork that failed part-way left them: fork's error path must undo everything it made of the "
                        "child (release(): its user pages, its tables and root, its kernel stack, its slot)")
                leak = [c.sentence() for c in audit.leak_classes(kernel, watch.arch, back.read_phys, frames - set(copies),
                                                                 seen={kind: undo for kind in LEAK_KINDS})]
            # A fork that failed and left a process in the table: the half-made child (nobody else forks).
            left = sorted(set(processes(back, kernel, records_of=-1)) - pids) if result < 0 else []
            forks.append((result, at_entry, after, left, leak, len(pids)))
            if result < 0:
                break
        return dict(forks=forks, **baseline(watch, guest))
    return script


# The flags of a probe (the twins of user/programs/usertests.cpp's ProbeFlags).
PROBE_EXACT, PROBE_SUCCESS, PROBE_SAME_FRAMES = 1, 2, 4


PROBE_BYTES = 32


ERRNO_NAMES = {1: "EPERM", 2: "ENOENT", 3: "ESRCH", 7: "E2BIG", 8: "ENOEXEC", 9: "EBADF", 10: "ECHILD", 11: "EAGAIN",
               12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 17: "EEXIST", 22: "EINVAL", 36: "ENAMETOOLONG", 38: "ENOSYS"}


def wait_no_hang():
    """abi::kWaitNoHang, wait's option bit (read from the grader's kernel/lib/abi.hpp, not copied)."""
    with open(programs.abi_header()) as f:
        return int(re.search(r"kWaitNoHang = (\d+);", f.read())[1])


def shown_result(r):
    return f"-{ERRNO_NAMES[-r]}" if -4095 <= r < 0 and -r in ERRNO_NAMES else str(r)


def usertests_case(boot, kernel, arch, case):
    """Runs `usertests CASE`: the case's child makes its probes; the grader stops at every system
    call the child makes, reads its result in user mode and the frames in use (guest RAM) at its
    entry and return; at the child's exit it reads the child's record of what each probe must
    give (user/programs/usertests.cpp). Each probe is judged on what the grader saw."""
    t = ProcTest(boot, kernel, arch)
    watch = t.watch
    if case == "forkmem":
        watch.deaths = Deaths(kernel, cow=False, light=True)   # (memory touched until it runs out)
    exit_call, wait_call = syscall_number("Exit"), syscall_number("Wait")
    record = user_symbol(kernel, arch, "usertests", "usertests_probes").address
    count_at = user_symbol(kernel, arch, "usertests", "usertests_probe_count").address
    numbers = set(range(128))

    def script_with(started, state):
        parent = first_root(started, kernel)
        child, trace, ended = None, [], None
        state["trace"] = trace
        tracer = Trace(t, deaths_of(watch))
        for ev in tracer.events(4000):
            snap, root = ev.snap, ev.snap.lower_root
            if isinstance(ev, Return):   # (a probe's: the dict it was followed with)
                ev.why["result"] = ev.result
                ev.why["after"] = count_used(snap, *watch.bitmap)[0]
                continue
            if root in (parent, *watch.kernel_roots) or ev.number not in numbers:
                continue
            if child is None:
                child = state["child"] = root
            if root != child:
                continue   # a grandchild (the wait and forkmem cases fork)
            number = snap.register(watch.proc["syscall_number"])
            if number == exit_call:
                n = u64(snap.read_virt(count_at, 8, child))
                ended = dict(code=snap.register(watch.proc["syscall_args"][0]) & 0xffffffff,
                             probes=[probe_at(snap, child, i) for i in range(min(n, 64))])
                break
            if u64(snap.read_virt(count_at, 8, child)) <= len(trace):
                continue   # not a probe (the case's set-up): the record grows by one before each probe
            call = dict(number=number, result=None, before=count_used(snap, *watch.bitmap)[0], after=None,
                        probe=probe_at(snap, child, len(trace)),
                        args=[snap.register(r) for r in watch.proc["syscall_args"][:3]])
            trace.append(call)
            tracer.follow(ev, call)
        return dict(child=child, trace=trace, ended=ended, **baseline(watch, t.guest))

    def probe_at(snap, child, i):
        """Entry @p i of the child's record (read through its root)."""
        num, want, flags, what = (u64(snap.read_virt(record + i * PROBE_BYTES + 8 * k, 8, child)) for k in range(4))
        text = snap.read_virt(what, 80, child).split(b"\0")[0].decode(errors="replace") if what else "?"
        return dict(number=num, want=signed(want), flags=flags, what=text)

    def guarded(started):
        # A probe that never returns (an exec that succeeded, a child killed) leaves the grader
        # waiting to the end of the boot: the probes seen so far say which one it was.
        state = {}
        try:
            return script_with(started, state)
        except BootEnded:
            if state.get("trace"):
                return dict(child=state["child"], trace=state["trace"], ended=None, before=None, after=None)
            raise

    run = t.boot(f"usertests:{case}", guarded)
    w = require(watch, run)
    lost = [t for t in w["trace"] if t["result"] is None]
    if w["ended"] is None and lost:
        p = lost[0]["probe"]
        if p["number"] == wait_call and p["want"] in (-ESRCH, -ECHILD):
            watch.fail(run, f"usertests {case}: probe {w['trace'].index(lost[0])} ({p['what']}) must fail with "
                            f"{shown_result(p['want'])} at once, yet the caller never came back from it: wait took a "
                            "process that is not the caller's child (itself, or another's) for one to wait for and "
                            "slept on it (wait must look only at processes whose parent is the caller)")
        watch.fail(run, f"usertests {case}: probe {w['trace'].index(lost[0])} ({p['what']}, system call {p['number']}) "
                        f"never returned to the child, expected {shown_result(p['want'])} (a call that must fail "
                        "succeeded, e.g. an exec that replaced the child's program, or the child was killed)")
    if w["ended"] is None and w["trace"]:
        last = w["trace"][-1]
        if last["result"] == last["probe"]["want"]:
            after = (f"returned {shown_result(last['result'])} as it should, and the child never made another system "
                     "call: it died after it (a kill line, if any, says why)")
        else:
            after = (f"returned {shown_result(last['result'])}, expected {shown_result(last['probe']['want'])}")
        watch.fail(run, f"usertests {case}: the child made {len(w['trace'])} probes and never reached its exit; the last, "
                        f"probe {len(w['trace']) - 1} ({last['probe']['what']}), {after}")
    if w["child"] is None or w["ended"] is None:
        watch.fail(run, f"usertests {case}: the grader saw no forked child make its probes and exit (every case runs in "
                        "a child of its own: fork must work)")
    probes, trace = w["ended"]["probes"], w["trace"]
    if len(trace) != len(probes):
        watch.fail(run, f"usertests {case}: the child recorded {len(probes)} probes but the grader saw it make "
                        f"{len(trace)} system calls before exit")
    wrong = []
    for i, (p, c) in enumerate(zip(probes, trace)):
        label = f"probe {i} ({p['what']}, system call {p['number']})"
        if c["number"] != p["number"]:
            wrong.append(f"{label}: the grader saw system call {t['number']} there")
            continue
        r = c["result"]
        if r is None:
            wrong.append(f"{label}: never returned to the child")
            continue
        if (p["flags"] & PROBE_EXACT and c["number"] == wait_call and p["want"] == 0 and r > 0
                and c.get("args", [0, 0, 0])[2] & wait_no_hang()):
            wrong.append(f"{label}: returned child {r}, not 0 (read in user mode): wait ignored no-hang: it slept "
                         "until that child ended and reaped it, where with no-hang it must return 0 at once while "
                         "every child it may reap still runs")
        elif (p["flags"] & PROBE_EXACT and c["number"] == wait_call and r == 0 and p["want"] > 0
              and c.get("args", [0, 0, 0])[2] & wait_no_hang()):
            wrong.append(f"{label}: returned 0 (read in user mode), though the child {p['want']} it asked for had ended: "
                         "wait with no-hang returned before looking for an ended child: no-hang returns 0 only when "
                         "no child it may reap has ended (reap a zombie first, then decide not to sleep)")
        elif (p["flags"] & PROBE_EXACT and c["number"] == wait_call and r == 0 and p["want"] in (-ECHILD, -ESRCH)
              and c.get("args", [0, 0, 0])[2] & wait_no_hang()):
            wrong.append(f"{label}: returned 0 (read in user mode), expected {shown_result(p['want'])}: wait with "
                         "no-hang returned before looking for a child at all: with no such child it must fail; "
                         "no-hang only decides whether to sleep once a child exists and none has ended")
        elif p["flags"] & PROBE_EXACT and r != p["want"] and c["number"] == wait_call and r > 0 and p["want"] > 0:
            wrong.append(f"{label}: returned child {r}, not the child {p['want']} it asked for (read in user mode): "
                         "wait(pid) must reap that child only, and sleep until it ends, whichever other child has "
                         "ended")
        elif p["flags"] & PROBE_EXACT and r != p["want"]:
            wrong.append(f"{label}: returned {shown_result(r)}, expected {shown_result(p['want'])}")
        elif p["flags"] & PROBE_SUCCESS and r < 0:
            wrong.append(f"{label}: failed with {shown_result(r)}")
        if p["flags"] & PROBE_SAME_FRAMES and c["after"] != c["before"]:
            wrong.append(f"{label}: frames in use (the allocator's bitmap, guest RAM) went from {t['before']} at its "
                         f"entry to {t['after']} at its return: a call that fails must leave nothing behind")
    if wrong:
        # The first wrong probe is the headline: what the kernel got wrong, then how many more.
        watch.fail(run, f"usertests {case}: {wrong[0]}\n({len(wrong)} of {len(probes)} probes wrong, as the grader "
                        "read each result in user mode" + (":" if len(wrong) > 1 else ")")
                        + "".join(f"\n  {x}" for x in wrong[1:10]) + (")" if len(wrong) > 1 else ""))
    if w["ended"]["code"] != 0:
        watch.fail(run, f"usertests {case}: the case's child exited with {w['ended']['code']} (its own checks failed)")
    code = 0
    run.expect(rf"^usertests: {case}: 0 wrong, exited proof={proof(t.token, code):016x}$", f"usertests {case}'s line")
    if run.search(r"PANIC"):
        watch.fail(run, f"usertests {case}: the kernel panicked")
    check_baseline(watch, run, w)
    run.expect_outcome("success")


# ---- one fork: the child's record and frame at fork's return, fork's errors (procaudit.py reads) ----

def read_frame(read_virt, facts, kslot):
    """The saved user frame at the top of kernel-stack slot @p kslot (bytes)."""
    top = facts.stack_top(kslot)
    return read_virt(top - facts.frame_size, facts.frame_size)


def fork_frame_problem(facts, parent, child, parent_frame, child_frame):
    """None, or why @p child's saved user frame (@p child_frame: the top of its kernel stack,
    read at fork_process's return, before it ran) is not @p parent's system-call frame
    (@p parent_frame) with the result register 0: the PC, the stack pointer, the flags and every
    other register must be the parent's, so that the child returns from the same call."""
    size = facts.frame_size
    words = [(i, _u(parent_frame, i, 8), _u(child_frame, i, 8)) for i in range(0, size, 8)]
    named = {facts.frame_pc: "PC", facts.frame_sp: "SP", facts.frame_flags: "the flags (RFLAGS, SPSR)",
             facts.frame_result: "the result register"}
    differ = [(i, p, c) for i, p, c in words if i != facts.frame_result and p != c]
    result = _u(child_frame, facts.frame_result, 8)
    head = (f"the child {child.who}'s saved user frame (the top of its kernel stack, slot {child.kslot}, read from guest "
            f"RAM at fork's return, before it ran)")
    if differ:
        shown = []
        for i, p, c in sorted(differ, key=lambda d: (d[0] not in named, d[0]))[:3]:
            shown.append(f"{named.get(i, f'the word at offset {i:#x}')} {c:#x} where the parent's is {p:#x}")
        zeros = not any(child_frame)
        return (f"{head} is not its parent {parent.who}'s system-call frame: {len(differ)} of its {size // 8} words "
                f"differ ({'; '.join(shown)}){': it is all zeros' if zeros else ''}: fork must copy the frame the "
                "parent's system call saved at the top of the parent's kernel stack into the child's (the wrong stack "
                "copied, or none), changing only the result register to 0, so that the child returns from the same "
                "call")
    if result != 0:
        return (f"{head} is its parent {parent.who}'s system-call frame, but its result register holds {result:#x}, "
                "not 0: fork returns 0 in the child (and the child's pid in the parent)")
    return None


def fork_parent_problem(parent, child):
    """None, or why the new child @p child (a Proc read at fork's return) does not belong to
    @p parent, the process that forked it."""
    if child.parent == parent.pid:
        return None
    whose = "no process (the kernel's)" if child.parent == 0 else f"pid {child.parent}"
    return (f"the child {child.who}, just forked by {parent.who}, has parent pid {child.parent} in the process table "
            f"(guest RAM) at fork's return, not {parent.pid}: it belongs to {whose}, so its parent's wait finds no such "
            "child (fork must record the caller as the child's parent)")


FORK_ERRORS = {
    "EEXIST": ("the copy of the parent's pages met a page the child already maps: fork's walk visited a page twice "
               "(a run taken past its region's end into the next region, or a page copied in two regions)"),
    "ENOMEM": ("fork ran out of frames: a copy that takes more than the parent maps (pages copied twice, or frames "
               "leaked by an earlier fork or exit)"),
    "EAGAIN": ("the process table or the kernel-stack slots were full: slots of processes that ended were never "
               "given back"),
    "EFAULT": "fork read a user pointer it should not have (fork takes none)",
    "EINVAL": "the copy refused an argument (an unaligned or empty range: a region's bounds taken wrongly)",
}


def fork_result_problem(result, who):
    """None, or the sentence for fork's result @p result (signed, read in the parent's result
    register where the call returned to user mode) when it is an error, with what that error
    means for a fork."""
    if result >= 0 or result < -4095:
        return None
    name = errno_name(result)
    why = FORK_ERRORS.get(name, "fork must make a child when memory and slots allow")
    return (f"fork returned {result} ({name}) to {who} (its result register where the call returned to user mode, "
            f"read by the grader), so no child was made: {why}")


def current_frame(snap, kernel):
    """The saved user frame of the process the CPU runs (the top of its kernel stack), or None:
    read at fork_process's entry, the parent's system-call frame as the call left user mode."""
    facts = Facts.of(kernel)
    if facts is None:
        return None
    try:
        recs = read_procs(snap.read_phys, facts)
        current, _ = read_current(snap.read_phys, facts, recs)
        if current is None or current.kslot == NO_SLOT:
            return None
        return read_frame(snap.read_virt, facts, current.kslot)
    except (AssertionError, ValueError):
        return None


def parent_frame_problem(facts, parent, before, after):
    """None, or why fork changed its parent's saved system-call frame (@p before: at
    fork_process's entry; @p after: at its return), which only the call's result may change,
    after fork returns."""
    differ = [i for i in range(0, facts.frame_size, 8) if _u(before, i, 8) != _u(after, i, 8)]
    if not differ:
        return None
    pc = facts.frame_pc
    return (f"fork_process() wrote its parent {parent.who}'s saved system-call frame (the top of its kernel stack, read "
            f"from guest RAM at fork's entry and at its return): {len(differ)} of its {facts.frame_size // 8} words "
            f"changed (PC {_u(after, pc, 8):#x}, was {_u(before, pc, 8):#x}): the frame was copied the wrong way, into "
            "the parent's stack instead of from it (prepare_fork_return(child's top, parent's top))")


def fork_findings(snap, kernel, child_pids, parent_before=None):
    """At fork_process's return to the parent's system call (@p snap, the parent still current),
    before the child ran: the problems of each new child (@p child_pids, the pids that were not
    in the table at fork's entry): the parent's frame changed (@p parent_before: it at fork's
    entry, current_frame()), the child's parent, and its saved user frame against the parent's."""
    facts = Facts.of(kernel)
    if facts is None:
        return []
    try:
        recs = read_procs(snap.read_phys, facts)
        parent, _ = read_current(snap.read_phys, facts, recs)
    except (AssertionError, ValueError):
        return []
    if parent is None:
        return []
    out = []
    for child in (r for r in recs if r.pid in child_pids):
        out.append(fork_parent_problem(parent, child))
        if child.kslot != NO_SLOT and parent.kslot != NO_SLOT:
            try:
                frames = (read_frame(snap.read_virt, facts, parent.kslot), read_frame(snap.read_virt, facts, child.kslot))
            except (AssertionError, ValueError):
                continue
            if parent_before is not None:
                out.insert(0, parent_frame_problem(facts, parent, parent_before, frames[0]))
                frames = (parent_before, frames[1])
            out.append(fork_frame_problem(facts, parent, child, *frames))
    return [p for p in out if p]


FORK_KERNEL_ERRORS = {
    "AlreadyExists": FORK_ERRORS["EEXIST"],
    "NoMemory": FORK_ERRORS["ENOMEM"],
    "Overflow": FORK_ERRORS["EAGAIN"],
    "InvalidArgument": FORK_ERRORS["EINVAL"],
}


def fork_error_problem(error, who):
    """The sentence for fork_process()'s Error @p error (read_error()) in the fork of @p who."""
    if error is None:
        return None
    code, words, where, message = error
    # The kernel's own sentence, when the Error has one, says what went wrong; the code alone is
    # read as what it means for a fork.
    why = "" if message else ": " + FORK_KERNEL_ERRORS.get(code, "fork must make a child when memory and slots allow")
    said = f": {message}" if message else ""
    return (f"fork_process() failed for {who} with '{words}'{said} (the Error made at {where}, read from its Result "
            f"in guest RAM where it returned to the fork system call), so no child was made{why}")
