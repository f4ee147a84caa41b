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

from pagoda_grade import lab_test
from pagoda_grade.processes import count_used, parse_reaped, process_roots, user_symbol
from pagoda_grade.proof import MASK64, proof
from pagoda_grade.symbols import fact
from pagoda_grade.witness import PAGE, pick_in
from test_lab3 import GRADER_MEMORY, Watch, syscall_number

ENOENT = 2
DEEP = 8


def u64(data):
    return int.from_bytes(data, "little")


# ---- the twins of forktree's values ------------------------------------------------------------

def child_value(token, i, region=0):
    return proof(token, 0x200 + i * 8 + region)


def child_code(token, i):
    return 1 + proof(token, 0x400 + i) % 100


def leaf_code(token):
    return 1 + proof(token, 0x500) % 50


def echo_digest(args):
    """The twin of echo's digest (user/programs/echo.cpp) over its arguments after argv[0]."""
    d = 0
    for a in args:
        d = (d * 31 + len(a)) & MASK64
        for b in a.encode():
            d = (d * 131 + b) & MASK64
    return d


# ---- stops -------------------------------------------------------------------------------------

def calls(guest, watch, numbers, limit):
    """Stops at the system-call entry, yielding each stop whose call is in @p numbers."""
    number = watch.proc["syscall_number"]
    for _ in range(limit):
        snap = guest.stop_at(watch.proc["syscall_entry"])
        if snap.register(number) in numbers:
            yield snap


def write_buffer(snap, watch, root, most=200):
    _, buf, length = (snap.register(r) for r in watch.proc["syscall_args"][:3])
    return snap.read_virt(buf, min(length, most), root)


def first_root(snap, kernel):
    """The root of pid 1 in the kernel's root registry (guest RAM)."""
    for root, label in process_roots(snap, kernel).items():
        if label.endswith("(pid 1)"):
            return root
    raise AssertionError("pid 1 has no root in the kernel's root registry")


def baseline(watch, guest):
    """At the run's end: frames in use (the allocator's bitmap, guest RAM) after every process
    was reaped, and before the first one was made."""
    end = watch.checkpoint(guest, "ended")
    return dict(before=watch.frames_before[0], after=count_used(end, *watch.bitmap)[0])


def require(watch, run):
    """The witness's result; when there is none, the failure says first what the console shows
    about forked children that died (the usual reason the grader never saw them run)."""
    if run.witness is None:
        kills = [l for l in run.lines if re.match(r"^proc \d+ \(forktree\): killed: ", l)]
        if kills:
            hint = ""
            if any("no VMA" in l for l in kills):
                hint = (" (a child with no record of its memory: fork copied by a VMA list that is empty, e.g. a "
                        "loader that mapped its segments without recording them)")
            watch.fail(run, f"a forked child was killed before the grader saw it run{hint}:\n  " + "\n  ".join(kills[:3]))
    return watch.require(run)


def check_baseline(watch, run, w):
    if w["after"] != w["before"]:
        watch.fail(run, f"frames in use (the frame allocator's bitmap, read by the grader from guest RAM): "
                        f"{w['before']} before the first process, {w['after']} after every process was reaped: "
                        f"{w['after'] - w['before']:+d} (a fork that leaks the frames or tables of the copy, a zombie "
                        "never reaped, or exit not freeing the whole user half)")


# ---- fork --------------------------------------------------------------------------------------

@lab_test(6, "fork_basic")
def test_fork_basic(boot, kernel, arch):
    token = boot.fresh_token()
    n = pick_in(token, "fork children", 3, 8)
    witnesses = min(n, 3)
    watch = Watch(kernel, arch)
    word = user_symbol(kernel, arch, "forktree", "(anonymous namespace)::g_word").address
    page = word & ~(PAGE - 1)
    write = syscall_number("Write")

    def script(guest):
        watch.before(guest)
        snap = watch.started_check(guest)
        parent = first_root(snap, kernel)
        seen = {}
        for snap in calls(guest, watch, {write}, 800):
            root = snap.lower_root
            if root == parent or root in watch.kernel_roots:
                continue
            m = re.match(rb"forktree: child (\d+) pid (\d+)", write_buffer(snap, watch, root))
            if not m or int(m[1]) in seen:
                continue
            seen[int(m[1])] = dict(
                root=root, pid=int(m[2]), child=u64(snap.read_virt(word, 8, root)),
                parent=u64(snap.read_virt(word, 8, parent)), child_frame=snap.translate(page, root),
                parent_frame=snap.translate(page, parent), half=watch.inspector.kernel_half_problem(snap, root),
                registered=root in process_roots(snap, kernel))
            if len(seen) == witnesses:
                break
        return dict(parent=parent, seen=seen, **baseline(watch, guest))

    run = boot(args={"run": f"forktree:basic:{n}"}, token=token, witness=script, memory=GRADER_MEMORY)
    w = require(watch, run)
    if len(w["seen"]) < witnesses:
        watch.fail(run, f"the grader saw {len(w['seen'])} forked children write their line from a root other than the "
                        f"parent's ({w['parent']:#x}); expected {witnesses} (fork made no new root, or the child never "
                        "ran)")
    parent_values = {proof(token, 0x100), proof(token, 0x300)}
    for i, c in sorted(w["seen"].items()):
        who = f"child {i} (pid {c['pid']}, root {c['root']:#x})"
        if c["half"]:
            watch.fail(run, f"{who}: {c['half']} (a new root that does not share the kernel half: the kernel unmaps "
                            "itself at the first instruction after the switch to the child)")
        if not c["registered"]:
            watch.fail(run, f"{who}: its root is not in the kernel's root registry")
        if c["child"] != child_value(token, i):
            watch.fail(run, f"{who}: its data word, read by the grader through its root, is {c['child']:#x}, expected "
                            f"the value it wrote, {child_value(token, i):#x}")
        if c["parent"] not in parent_values:
            watch.fail(run, f"{who} wrote its data word; through the parent's root the grader reads {c['parent']:#x}, "
                            "not the parent's own value: the child's write reached the parent (a shared frame)")
        if c["child_frame"] is None or c["child_frame"] == c["parent_frame"]:
            watch.fail(run, f"{who}: its data page is frame {c['child_frame']}, the parent's is "
                            f"{c['parent_frame']:#x}: the child has no copy of its own")
        run.expect(rf"^forktree: child {i} pid {c['pid']} parent 1 wrote "
                   rf"proof={proof(token, child_value(token, i) ^ c['pid']):016x}$", f"child {i}'s line")
    total = sum(child_code(token, i) * (i + 1) for i in range(n)) & MASK64
    run.expect(rf"^forktree: forked {n} reaped {n} with their statuses ok proof={proof(token, total):016x}$",
               "the parent's summary: every child reaped by wait() with its exit status")
    reaped = parse_reaped(run)
    codes = sorted(int(h.split()[-1]) for h in reaped.values() if h.startswith("exited with code"))
    want = sorted([0] + [child_code(token, i) for i in range(n)])
    if codes != want or len(reaped) != n + 1:
        watch.fail(run, f"expected forktree and its {n} children to be reaped with codes {want}; reaped: {reaped}")
    check_baseline(watch, run, w)
    run.expect_outcome("success")


@lab_test(6, "fork_deep")
def test_fork_deep(boot, kernel, arch):
    token = boot.fresh_token()
    watch = Watch(kernel, arch)
    wait = syscall_number("Wait")

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        roots, problems = [], []
        for snap in calls(guest, watch, {wait}, 400):
            root = snap.lower_root
            if root in roots:
                continue
            roots.append(root)
            if root not in process_roots(snap, kernel):
                problems.append(f"root {root:#x} made a wait call but is not in the kernel's root registry")
            half = watch.inspector.kernel_half_problem(snap, root)
            if half:
                problems.append(f"root {root:#x}: {half}")
            if len(roots) == DEEP:
                break
        return dict(roots=roots, problems=problems, **baseline(watch, guest))

    run = boot(args={"run": f"forktree:deep:{DEEP}"}, token=token, witness=script, memory=GRADER_MEMORY)
    w = require(watch, run)
    if len(w["roots"]) < DEEP:
        watch.fail(run, f"the grader saw {len(w['roots'])} distinct roots make the wait call, expected {DEEP} (one "
                        "per parent of the chain)")
    if w["problems"]:
        watch.fail(run, "the grader walked each root of the chain:\n  " + "\n  ".join(w["problems"][:4]))
    code = leaf_code(token) + DEEP
    run.expect(rf"^forktree: deep {DEEP}: code {code} proof={proof(token, code):016x}$",
               "the chain's exit codes, each parent's = its child's + 1, collected by waitpid()")
    reaped = parse_reaped(run)
    codes = sorted(int(h.split()[-1]) for h in reaped.values() if h.startswith("exited with code"))
    want = sorted([0] + [leaf_code(token) + k for k in range(DEEP)])
    if codes != want:
        watch.fail(run, f"expected the chain reaped with codes {want}; reaped: {reaped}")
    check_baseline(watch, run, w)
    run.expect_outcome("success")


# ---- exec --------------------------------------------------------------------------------------

@lab_test(6, "exec_args")
def test_exec_args(boot, kernel, arch):
    token = boot.fresh_token()
    count = str(1 + proof(token, 0x600) % 1000)
    watch = Watch(kernel, arch)
    write = syscall_number("Write")
    top = fact(kernel, "user_stack_top")

    def script(guest):
        watch.before(guest)
        snap = watch.started_check(guest)
        parent = first_root(snap, kernel)
        first = echo = None
        for snap in calls(guest, watch, {write}, 400):
            root = snap.lower_root
            data = write_buffer(snap, watch, root)
            if data.startswith(b"forktree: exec of a missing program") and first is None:
                first = dict(root=root, line=data)
            elif data.startswith(b"echo:"):
                echo = dict(root=root, line=data, stack=snap.read_virt(top - PAGE, PAGE, root),
                            registered=process_roots(snap, kernel))
                break
        return dict(parent=parent, first=first, echo=echo, **baseline(watch, guest))

    run = boot(args={"run": "forktree:exec"}, token=token, witness=script, memory=GRADER_MEMORY)
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
    run.expect(rf"^forktree: exec of a missing program: ENOENT proof={proof(token, ENOENT):016x}$",
               "exec of a missing program returns ENOENT and the caller goes on")
    run.expect(rf"^echo: argc 4: forked {count} proof={proof(token, echo_digest(['forked', count])):016x}$",
               "echo's line, with the arguments exec passed")
    run.expect(r"^forktree: exec child \d+ reaped \(\d+\) how 0 code 0$", "the parent reaps the exec'd child")
    check_baseline(watch, run, w)
    run.expect_outcome("success")
