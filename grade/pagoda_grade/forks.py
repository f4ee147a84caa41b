"""Fork, exec, exit and wait seen from outside (lab 6, and the labs after it): the deaths and
execs every lab-6 boot stops at (lifecycle.Deaths), the frames in use at the run's end against its
start and what the leaked ones were, why a process was killed (its record and pages as it died),
what a wait got wrong against the process table, and the order a lab-6 failure names them in
(require()). docs/grader.md, "Lab 6"."""
import re

from . import audit, contract
from .lifecycle import Deaths, covered, leak_story, processes, stale_records
from .outcomes import KILL_LINE
from .processes import count_used, foreign_code_kill, parse_kills, process_roots
from .symbols import fact
from .witness import PAGE
from pagoda_pt.frames import PAGE_TABLE, USER_PAGE

ECHILD = 10


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
    were (leak_story(): from every death and exec the grader stopped at, and guest RAM now)."""
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
    story = leak_story(before_bits, bits, end, watch.kernel, deaths.moments) if after != before else []
    leaked = bits & ~before_bits
    # The path of each kind of frame, from what the grader saw at its stops when that says more
    # than the bytes (a page a copy-on-write fault replaced is a user page like any other).
    seen = {USER_PAGE: next((s for s in story if "user pages" in s), None),
            PAGE_TABLE: next((s for s in story if "page tables" in s), None)}
    classes = audit.leak_classes(watch.kernel, watch.arch, end.read_phys,
                                 [i * PAGE for i in range(leaked.bit_length()) if leaked >> i & 1],
                                 {m.root: m.who for m in deaths.moments}, seen) if after != before else []
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


# Skeletons that print their TODO but leave a working stand-in (the eager copy for share_pages()):
# reaching one says nothing about why a test failed.
STAND_INS = {"share_pages()"}


def fail_on_lab6_skeleton(watch, run):
    """Fails naming the lab-6 functions whose skeleton the kernel reached in this boot (each
    prints `LAB TODO: lab 6: write F() ...` once): on a skeleton, the first line names what to
    write."""
    todo = []
    for line in run.lines:
        m = LAB6_TODO.search(line)
        if m and m[1] not in STAND_INS and m[1] not in todo:
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
    undestroyed = sorted(q for q, p in after.items() if p.state == 0)
    if undestroyed:
        return (f"pid {undestroyed[0]}'s slot of the process table (guest RAM, at wait's return) is marked free but "
                "still holds its pid and parent: the process was reaped without being destroyed: wait must free "
                "what the zombie holds (reap(): user half, tables, root, kernel stack), not only mark its slot free")
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
