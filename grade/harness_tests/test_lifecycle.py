"""Lab 6's evidence rules (grade/pagoda_grade/lifecycle.py) on synthetic views, without booting:
each slip's evidence gives its sentence, and a correct fork, fault or run gives none."""
from types import SimpleNamespace

from pagoda_grade.lifecycle import CowFault, Deaths, ForkView, Moment, fork_problems, stale_records, unflushed
from pagoda_grade.processes import Pages
from pagoda_pt.procs import Vma

PAGE = 4096
TEXT, DATA, STACK = 0x400000, 0x409000, 0x7ffffffff000
VMAS = [Vma(0x400000, 0x407000, True, False, True), Vma(0x409000, 0x40a000, True, True, False),
        Vma(0x7fffff000000, 0x800000000000, True, True, False)]


def moment(pid, root, pages, vmas=VMAS):
    return Moment("fork", pid, "forktree", root, Pages(pages), set(), vmas)


def view(parent_pages, child_pages, counts, digests=None, child_vmas=VMAS, live_root=None):
    frames = {pa for pa, _ in list(parent_pages.values()) + list(child_pages.values())}
    v = ForkView(moment(1, 0x1000, parent_pages), moment(2, 0x2000, child_pages, child_vmas),
                 {f: counts.get(f, 1) for f in frames}, {f: (digests or {}).get(f, bytes([f >> 12 & 255])) for f in frames})
    v.live_root = live_root
    return v


SHARED = {TEXT: (0xa000, False), DATA: (0xb000, False), STACK: (0xc000, False)}
COUNTS = {0xa000: 2, 0xb000: 2, 0xc000: 2}


def test_a_correct_cow_fork_and_a_correct_eager_fork_have_no_problem():
    assert fork_problems(view(SHARED, SHARED, COUNTS, live_root=0x1000)) == []
    parent = {TEXT: (0xa000, False), DATA: (0xb000, True)}
    child = {TEXT: (0xd000, False), DATA: (0xe000, True)}
    same = {0xa000: b"t", 0xd000: b"t", 0xb000: b"d", 0xe000: b"d"}
    assert fork_problems(view(parent, child, {}, same)) == []


def test_each_fork_slip_is_named_first():
    assert "fork copied nothing" in fork_problems(view(SHARED, {}, COUNTS))[0]
    assert "child's record is empty" in fork_problems(view(SHARED, SHARED, COUNTS, child_vmas=[]))[0]
    writable = {**SHARED, DATA: (0xb000, True)}
    assert "the parent was left writable" in fork_problems(view(writable, SHARED, COUNTS))[0]
    assert "reference count" in fork_problems(view(SHARED, SHARED, {**COUNTS, 0xb000: 1}))[0]
    assert "fork made another root live" in fork_problems(view(SHARED, SHARED, COUNTS, live_root=0x2000))[0]


def test_a_fork_that_copies_some_pages_and_shares_others_is_named():
    # (issue 42: mmap regions shared, the data, the heap and the stack copied eagerly)
    child = {**SHARED, DATA: (0xd000, True)}
    first = fork_problems(view(SHARED, child, COUNTS, digests={0xd000: bytes([0xb])}))[0]
    assert "page 0x409000" in first and "it was copied eagerly" in first


def test_a_copy_after_fork_without_a_fault_in_the_log_is_named():
    deaths = Deaths.__new__(Deaths)
    deaths.forks, deaths.light = [view(SHARED, SHARED, COUNTS)], False
    deaths.forks[0].log_at = 1
    exited = Moment("exit", 2, "forktree", 0x2000, Pages({**SHARED, DATA: (0xd000, True)}), set(), VMAS)
    deaths.moments = [exited]
    fault = SimpleNamespace(kind="exception", address=DATA + 0x10, root=0x2000)
    before_fork = SimpleNamespace(kind="exception", address=DATA + 0x10, root=0x2000)
    other_root = SimpleNamespace(kind="exception", address=DATA + 0x10, root=0x1000)
    no_root = SimpleNamespace(kind="exception", address=DATA, root=None)   # (AArch64's log)
    assert deaths.copies_without_fault(lambda: [before_fork, fault]) == []
    assert deaths.copies_without_fault(lambda: [before_fork, no_root]) == []
    assert "a copy made without a copy-on-write fault" in deaths.copies_without_fault(lambda: [before_fork, other_root])[0]


def test_later_view_names_a_stale_tlb_and_a_fault_that_writes_the_shared_frame():
    at_fork = view(SHARED, SHARED, COUNTS)
    stale = view(SHARED, SHARED, COUNTS, digests={0xb000: b"changed"})
    assert "did not flush the parent's TLB" in fork_problems(at_fork, stale)[0]
    taken_back = view({**SHARED, DATA: (0xb000, True)}, SHARED, COUNTS)
    assert "gave write permission back while the frame was shared" in fork_problems(at_fork, taken_back)[0]
    copied_wrong = view({**SHARED, DATA: (0xf000, True)}, SHARED, COUNTS, digests={0xb000: b"garbage"})
    assert "wrote the shared frame" in fork_problems(at_fork, copied_wrong)[0]
    copied_right = view({**SHARED, DATA: (0xf000, True)}, SHARED, COUNTS)
    assert fork_problems(at_fork, copied_right) == []


def fault(**after):
    f = CowFault("pid 1 (forktree)", DATA, 0xb000, 2, b"old")
    f.after_frame, f.after_writable, f.after_count, f.frame_now, f.copy_bytes = 0xf000, True, 1, b"old", b"old"
    for k, v in after.items():
        setattr(f, k, v)
    return f


def test_each_copy_on_write_slip_is_named_from_the_fault():
    assert fault().problem() is None
    assert fault(count=1, after_frame=0xb000, after_count=1).problem() is None   # taken back at count 1
    assert "gave write permission back while the frame was shared" in fault(after_frame=0xb000, after_count=2).problem()
    assert "wrote the shared frame" in fault(frame_now=b"new").problem()
    assert "taken back, not copied" in fault(count=1, after_count=0).problem()
    assert "did not drop its reference" in fault(after_count=2).problem()
    assert "frame freed while it is still mapped" in fault(freed=True).problem()
    assert "copy was not made" in fault(copy_bytes=b"zeros").problem()
    assert "mapped its copy, frame 0xf000 (in place of the shared 0xb000), read-only" in \
        fault(after_writable=False).problem()
    assert "still read-only, on the same frame 0xb000" in fault(after_writable=False, after_frame=0xb000).problem()


def test_a_parent_narrowed_without_an_invalidation_is_named():
    before = {TEXT: (0xa000, False), DATA: (0xb000, True), STACK: (0xc000, True)}
    at_fork = view(SHARED, SHARED, COUNTS)
    assert unflushed(dict(before=before, pages={DATA, STACK}, all=False), at_fork) == []
    assert unflushed(dict(before=before, pages=set(), all=True), at_fork) == []
    assert unflushed(dict(before=before, pages={DATA}, all=False), at_fork) == [STACK]
    # A page that was read-only already (text) needs no invalidation; an eager copy narrows nothing.
    assert unflushed(dict(before=before, pages=set(), all=False), view(before, {}, {})) == []


def test_an_exec_that_kept_the_old_record_is_named():
    echo = [Vma(0x400000, 0x402000, True, False, True), Vma(0x7fffff000000, 0x800000000000, True, True, False)]
    exec_ = Moment("exec", 2, "forktree", 0x2000, Pages(), set(), VMAS, order=0)
    kept = Moment("exit", 2, "echo", 0x3000, Pages(), set(), VMAS, order=1)
    fresh = Moment("exit", 2, "echo", 0x3000, Pages(), set(), echo, order=1)
    assert "is still forktree's, the program before exec" in stale_records([exec_, kept])[0]
    assert stale_records([exec_, fresh]) == []
    assert stale_records([exec_]) == []


def test_a_record_copied_without_its_bounds_is_named_at_fork():
    bounds = (0x40b000, 0x40d000, 0x800000, 0x10000)
    at_fork = view(SHARED, SHARED, COUNTS)
    at_fork.parent.bounds = at_fork.child.bounds = bounds
    assert fork_problems(at_fork) == []
    at_fork.child.bounds = (0, 0, 0x800000, 0x10000)   # copy_record forgot the heap
    first = fork_problems(at_fork)[0]
    assert "heap's start 0x0, the parent's 0x40b000" in first and "copy_record must copy" in first
    at_fork.child.bounds = (0x40b000, 0x40d000, 0, 0x10000)   # ... or the stack's limit
    assert "stack's limit 0x0, the parent's 0x800000" in fork_problems(at_fork)[0]
