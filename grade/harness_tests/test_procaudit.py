"""The process audit (procaudit.py) names the broken record of the process table, of a fork's
child and of fork's result, and its first finding heads a failing test (causes.audit_first,
Run.fail). Each invariant is checked on a table that breaks it and on one that keeps it."""
import types

import pytest

from pagoda_grade import causes, forks, procaudit, programs, symbols
from pagoda_pt import contract
from pagoda_pt.procs import NO_SLOT, Proc as Rec

PAGE = 4096
READY, RUNNING, SLEEPING, ZOMBIE, WAITING = 1, 2, 3, 4, 5


class FakeFacts:
    ready, running, sleeping, zombie, waiting = READY, RUNNING, SLEEPING, ZOMBIE, WAITING
    frame_size, frame_result, frame_pc, frame_sp, frame_flags = 64, 0, 8, 16, 24
    stack_base, stride, guard, stack_size, slots = 0x10000, 0x8000, 0x4000, 0x4000, 80
    state_name = procaudit.Facts.state_name
    stack_top = procaudit.Facts.stack_top


F = FakeFacts()
WHERE = "at a system call's entry"


def rec(slot, pid, parent=0, state=READY, kslot=None):
    return Rec(slot, pid, parent, state, "prog", slot if kslot is None else kslot)


def audit(recs, current_slot, roots=None, asids=None):
    current = next((r for r in recs if r.slot == current_slot), None)
    return procaudit.audit_table(F, recs, current, 0x1000 if current else 0, WHERE, roots, asids)


def test_a_consistent_table_has_no_finding():
    recs = [rec(0, 1, state=RUNNING), rec(1, 2, parent=1), rec(2, 3, parent=1, state=ZOMBIE), rec(3, 4, state=SLEEPING)]
    assert audit(recs, 0, roots={1: 0x1000, 2: 0x2000, 3: 0x3000, 4: 0x4000},
                 asids={(1, 0x1000): 1, (2, 0x2000): 2}) is None
    assert audit([rec(0, 1), rec(1, 2)], None) is None    # the idle loop: nobody Running


def test_a_process_left_running_beside_the_current_one_is_named():
    said = audit([rec(0, 1, state=RUNNING), rec(1, 2, state=RUNNING)], 1)
    assert said.startswith("pid 1 (prog) is Running in the process table (guest RAM) at a system call's entry, but "
                           "the CPU runs pid 2 (prog)")
    assert "must be Ready" in said and "never picks it" in said


def test_a_running_process_while_the_cpu_idles_is_named():
    said = audit([rec(0, 1, state=RUNNING), rec(1, 2)], None)
    assert said.startswith("pid 1 (prog) is Running") and "the CPU is in the idle loop" in said


def test_the_current_process_must_be_running():
    said = audit([rec(0, 1, state=READY)], 0)
    assert "pid 1 (prog) (the scheduler's g_current)" in said and "Ready, not Running" in said


def test_a_current_pointer_off_the_table_is_named():
    said = procaudit.audit_table(F, [rec(0, 1)], None, 0xdead, WHERE)
    assert "g_current = 0xdead" in said


def test_a_parent_that_is_gone_is_named():
    said = audit([rec(0, 1, state=RUNNING), rec(1, 3, parent=2)], 0)
    assert said.startswith("pid 3 (prog) has parent pid 2") and "no process with that pid exists" in said


def test_two_processes_on_one_kernel_stack_slot_are_named():
    said = audit([rec(0, 1, state=RUNNING, kslot=4), rec(1, 2, kslot=4)], 0)
    assert "both hold kernel-stack slot 4" in said
    assert audit([rec(0, 1, state=RUNNING, kslot=NO_SLOT), rec(1, 2, kslot=NO_SLOT)], 0) is None


def test_two_live_processes_with_one_root_are_named():
    said = audit([rec(0, 1, state=RUNNING), rec(1, 2)], 0, roots={1: 0x5000, 2: 0x5000})
    assert "have the same root 0x5000" in said
    # A zombie's root is still its own until it is reaped, but it runs no more: not counted.
    assert audit([rec(0, 1, state=RUNNING), rec(1, 2, state=ZOMBIE)], 0, roots={1: 0x5000, 2: 0x5000}) is None


def test_two_live_roots_with_one_asid_are_named_and_a_gone_one_is_not():
    recs = [rec(0, 1, state=RUNNING), rec(1, 2)]
    roots = {1: 0x1000, 2: 0x2000}
    said = audit(recs, 0, roots, asids={(1, 0x1000): 1, (2, 0x2000): 1})
    assert "both run with ASID 1" in said and "allocate_asid()" in said
    # pid 3 ended (its root gone from the registry): its ASID may be handed out again.
    assert audit(recs, 0, roots, asids={(3, 0x3000): 1, (2, 0x2000): 1}) is None
    # pid 2's root frame was reused for another space after an exec: only the registry's pair counts.
    assert audit(recs, 0, {1: 0x1000, 2: 0x4000}, asids={(1, 0x1000): 1, (2, 0x2000): 1}) is None


def frame(pc=0x401000, sp=0x7ffff000, flags=0x246, result=57, other=7):
    words = [result, pc, sp, flags, other, 0, 0, 0]
    return b"".join(w.to_bytes(8, "little") for w in words)


PARENT, CHILD = rec(0, 1, state=RUNNING), rec(1, 2, parent=1)


def test_a_childs_frame_that_is_its_parents_with_result_0_passes():
    assert forks.fork_frame_problem(F, PARENT, CHILD, frame(), frame(result=0)) is None


def test_a_childs_frame_from_the_wrong_stack_is_named():
    said = forks.fork_frame_problem(F, PARENT, CHILD, frame(), bytes(64))
    assert said.startswith("the child pid 2 (prog)'s saved user frame (the top of its kernel stack, slot 1")
    assert "is not its parent pid 1 (prog)'s system-call frame: 4 of its 8 words differ" in said
    assert "PC 0x0 where the parent's is 0x401000" in said and "it is all zeros" in said
    said = forks.fork_frame_problem(F, PARENT, CHILD, frame(), frame(result=0, other=8))
    assert "the word at offset 0x20 0x8 where the parent's is 0x7" in said


def test_a_childs_result_that_is_not_0_is_named():
    said = forks.fork_frame_problem(F, PARENT, CHILD, frame(), frame(result=57))
    assert "its result register holds 0x39, not 0" in said


def test_a_child_of_another_parent_is_named():
    assert forks.fork_parent_problem(PARENT, CHILD) is None
    said = forks.fork_parent_problem(PARENT, rec(1, 2, parent=0))
    assert said.startswith("the child pid 2 (prog), just forked by pid 1 (prog), has parent pid 0") and \
        "no process (the kernel's)" in said


def test_forks_errors_say_what_they_mean():
    assert forks.fork_result_problem(2, "pid 1") is None
    said = forks.fork_result_problem(-17, "pid 1 (forktree)")
    assert said.startswith("fork returned -17 (EEXIST) to pid 1 (forktree)") and "visited a page twice" in said
    said = forks.fork_error_problem(("AlreadyExists", "already exists", "kernel/mm/x.hpp:3", ""), "pid 1")
    assert "with 'already exists' (the Error made at kernel/mm/x.hpp:3" in said and "visited a page twice" in said
    said = forks.fork_error_problem(("InvalidArgument", "invalid argument", "a.cpp:1", "the child maps it"), "pid 1")
    assert said.endswith("so no child was made") and "'invalid argument': the child maps it" in said
    assert forks.fork_error_problem(None, "pid 1") is None


def test_the_kernels_error_codes_are_read_from_its_header():
    codes = procaudit.error_codes()
    assert codes[0] == ("NoMemory", "no memory") and ("AlreadyExists", "already exists") in codes


def test_the_reference_kernel_exports_what_the_audit_reads(reference_kernel):
    facts = procaudit.Facts.of(reference_kernel)
    assert facts is not None and facts.slots > 1 and facts.size > facts.kslot
    assert facts.running != facts.ready and facts.frame_result < facts.frame_size


def test_an_audit_finding_heads_a_failure_before_the_tests_own_cause():
    run = types.SimpleNamespace(audit_findings=["pid 1 (a) is Running ...\nmore"])
    assert causes.audit_first(run, "missing: a line") == "pid 1 (a) is Running ..."
    assert causes.audit_first(run, "pid 1 (a) is Running ...\nmissing") is None     # said already
    assert causes.audit_first(types.SimpleNamespace(audit_findings=[]), "x") is None


def test_a_failing_run_puts_the_audit_first(tmp_path, monkeypatch):
    from pagoda_grade.harness import Run
    from pagoda_grade.outcomes import GradeFailure
    run = Run.__new__(Run)
    run.__dict__.update(dict(audit_findings=["the child pid 2 (x) has parent pid 0"], watch_problems=[], lines=[],
                             stop_kind=None, exit_code=None, token="t", directory=str(tmp_path), log=None))
    run.outcome = lambda: "success"
    monkeypatch.setattr(causes, "fault_summary", lambda run: "")
    run.symbolizer = types.SimpleNamespace(annotate=lambda lines: lines)
    run.log = types.SimpleNamespace(faults=[])
    with pytest.raises(GradeFailure) as e:
        run.fail("the grader saw 0 forked children", cause="a cause the test found")
    lines = str(e.value).splitlines()
    assert lines[:3] == ["the child pid 2 (x) has parent pid 0", "a cause the test found",
                         "the grader saw 0 forked children"]


@pytest.fixture(scope="module")
def probe(reference_kernel):
    with open(programs.program_elf("x86_64", "probe"), "rb") as f:
        data = f.read()
    return data, symbols.parse_segments(data, "probe")


def test_a_segment_whose_pages_all_hold_its_first_page_is_named(probe):
    data, segs = probe
    seg = max(segs, key=lambda g: g.filesz)
    assert seg.filesz > PAGE and seg.vaddr % PAGE == 0, "probe's text segment covers more than a page"
    va = seg.vaddr + PAGE
    size = min(PAGE, seg.filesz - PAGE)     # the image's part of the segment's second page
    said = programs.bytes_origin("x86_64", "probe", va, data[seg.offset:seg.offset + size])
    assert "in its segment's first page" in said and "did not advance with the page" in said
    assert programs.bytes_origin("x86_64", "probe", va, data[seg.offset + PAGE:seg.offset + PAGE + size]) is None
    assert "0x5a throughout" in programs.bytes_origin("x86_64", "probe", va, b"\x5a" * size)


def test_a_loader_that_maps_the_argument_page_twice_is_named():
    error = ("AlreadyExists", "already exists", "kernel/mm/pt/cursor.hpp:425", "")
    top = 0x7ffffffff000
    said = procaudit.loader_error_problem(error, "hello (pid 1)", top, bytes(PAGE))
    assert said.startswith("load_program() failed for hello (pid 1) with 'already exists' (the Error made at "
                           "kernel/mm/pt/cursor.hpp:425")
    assert "the argument page 0x7fffffffe000 (the stack's top page" in said and "maps it twice" in said
    written = bytes(PAGE - 8) + b"hello\0\0\0"
    assert "two of the loader's ranges cover one page" in procaudit.loader_error_problem(error, "h", top, written)
    assert procaudit.loader_error_problem(("NoMemory", "no memory", "a:1", ""), "h", top, None) is None
    assert procaudit.loader_error_problem(None, "h", top, None) is None


def kill(pid, address, reason):
    return (f"proc {pid} (vmas): killed: page fault: #PF page fault (vector 14) at RIP 0x4071fb, address "
            f"{address:#x}: {reason}")


def test_a_kill_just_below_the_stack_is_named_from_the_loaders_record(reference_kernel):
    from pagoda_pt.procs import GROWS_DOWN, KIND_STACK, Proc, Vma
    from pagoda_grade.vmawatch import VmaWatch
    top = symbols.fact(reference_kernel, "user_stack_top")
    watch = VmaWatch(reference_kernel, "x86_64")
    stack = Vma(top - 8 * PAGE, top, True, True, False, KIND_STACK, 0)
    below = top - 9 * PAGE + 0x10
    watch.records = {1: Proc(pid=1, name="vmas", vmas=[stack], heap_start=0, brk=0)}
    said = watch.stack_boundary_cause([kill(1, below, "PT entry 502 not present; no VMA")])
    assert said.startswith(f"proc 1 (vmas) was killed at {below:#x}, 1 page(s) below its stack region") and \
        "lacks the grows-down flag" in said
    stack = Vma(top - 8 * PAGE, top, True, True, False, KIND_STACK, GROWS_DOWN)
    watch.records = {1: Proc(pid=1, name="vmas", vmas=[stack], heap_start=0, brk=0)}
    refused = "PT entry 502 not present; the stack could not grow down to the page (already exists)"
    said = watch.stack_boundary_cause([kill(1, below, refused)])
    assert "refused to grow the stack, 'already exists', for a region that only touches its neighbour" in said
    # A region really in the way, or a growth that failed otherwise: not this cause.
    deeper = top - 10 * PAGE + 0x10
    assert "2 page(s) below" in watch.stack_boundary_cause([kill(1, deeper, refused)])
    watch.records = {1: Proc(pid=1, name="vmas", vmas=[Vma(top - 9 * PAGE, top - 8 * PAGE, True, True, False), stack], heap_start=0, brk=0)}
    assert watch.stack_boundary_cause([kill(1, deeper, refused)]) is None
    watch.records = {1: Proc(pid=1, name="vmas", vmas=[stack], heap_start=0, brk=0)}
    assert watch.stack_boundary_cause([kill(1, below, "the stack could not grow (no memory)")]) is None


def test_a_trap_stack_that_is_not_the_current_processs_is_named():
    recs = [rec(0, 1, state=RUNNING, kslot=0), rec(1, 2, kslot=1)]
    mine, other = F.stack_top(0), F.stack_top(1)
    assert procaudit.trap_stack_problem(F, recs, recs[0], WHERE, [("TSS.RSP0", mine), ("the syscall stack", mine)]) \
        is None
    said = procaudit.trap_stack_problem(F, recs, recs[0], WHERE, [("TSS.RSP0", mine), ("the syscall stack", other)])
    assert said.startswith(f"the syscall stack is {other:#x} at a system call's entry while the CPU runs pid 1 (prog), "
                           f"whose kernel stack (slot 0) tops at {mine:#x}: the top of slot 1's stack, pid 2 (prog)'s")
    assert "never set (0)" in procaudit.trap_stack_problem(F, recs, recs[0], WHERE, [("TSS.RSP0", 0)])
    assert "inside slot 0's stack, not its top" in \
        procaudit.trap_stack_problem(F, recs, recs[0], WHERE, [("x", mine - F.stack_size)])
    assert procaudit.trap_stack_problem(F, recs, None, WHERE, [("x", 0)]) is None     # the idle loop


def test_a_live_root_the_registry_does_not_list_for_the_current_process_is_named():
    recs = [rec(0, 1, state=RUNNING), rec(1, 2)]
    assert procaudit.unlisted_root(recs[0], {1: 0x5000, 2: 0x6000}, 0x5000, WHERE) is None
    assert procaudit.unlisted_root(None, {}, 0x5000, WHERE) is None                  # the idle loop
    said = procaudit.unlisted_root(recs[0], {1: 0x5000}, 0x7000, WHERE)
    assert said.startswith("the CPU runs root 0x7000 for pid 1 (prog) at a system call's entry, but the kernel's "
                           "root registry (pagoda_debug_roots, guest RAM) lists root 0x5000 for it")
    assert "lists no process root for it" in procaudit.unlisted_root(recs[0], {2: 0x6000}, 0x7000, WHERE)


def test_a_fork_that_writes_its_parents_frame_is_named():
    assert forks.parent_frame_problem(F, PARENT, frame(), frame()) is None
    said = forks.parent_frame_problem(F, PARENT, frame(), bytes(64))
    assert said.startswith("fork_process() wrote its parent pid 1 (prog)'s saved system-call frame") and \
        "5 of its 8 words changed (PC 0x0, was 0x401000)" in said


def test_the_shared_audit_reads_the_table_from_guest_ram(reference_kernel):
    """What fault-why runs, with GDB's symbols (pagoda_pt.procs.Layout.of_symbols, read_procs, then
    pagoda_pt.procaudit.audit_table): the table and g_current found by their symbols, the slots
    read from RAM; two processes Running is named, one is not."""
    from pagoda_pt import procaudit as shared, procs
    k = reference_kernel
    table = symbols.symbols(k)
    named = {n: symbols.address_of(k, n) for n in (contract.PROCESS_TABLE, contract.CURRENT)}

    def symbol(name):
        return named.get(name, table.get(name))
    facts = procaudit.Facts.of(k)
    ram = {}

    def put(pa, data):
        for i, b in enumerate(data):
            ram[pa + i] = b

    def read_phys(pa, size):
        return bytes(ram.get(pa + i, 0) for i in range(size))

    def slot(i, pid, state):
        base = facts.table + i * facts.size
        put(base + facts.pid, pid.to_bytes(4, "little"))
        put(base + facts.state, bytes([state]))
        put(base + facts.name, b"prog\0")
        put(base + facts.kslot, i.to_bytes(4, "little"))
    slot(0, 1, facts.running)
    slot(1, 2, facts.ready)
    put(facts.current, facts.table_va.to_bytes(8, "little"))

    def audit():
        lay = procs.Layout.of_symbols(symbol)
        recs = procs.read_procs(read_phys, lay)
        return shared.audit_table(lay, recs, *procs.read_current(read_phys, lay, recs), "where GDB stopped")
    assert audit() is None
    slot(1, 2, facts.running)
    said = audit()
    assert said and said.startswith("pid 2 (prog) is Running in the process table (guest RAM) where GDB stopped, but "
                                    "the CPU runs pid 1 (prog)"), said
