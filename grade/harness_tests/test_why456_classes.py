"""Bug classes of labs 4-6 that slips of issue 26 found unnamed (labs/0[456]-*/mutants, added
with these checks): a user copy run with the CPU's guard up, a copy_to_space() chunk written into
another page's frame, a record holding a region over a hole of the random test's model, a wait
whose result the process table contradicts, and a fork that changed its parent's memory. Each
check is a pure function of what the grader read, tried here on synthetic readings."""
from types import SimpleNamespace

from pagoda_core import faultlog
from pagoda_core.symbolize import Symbolizer
from pagoda_grade.causes import copy_guard_cause
from pagoda_grade.harness import Run
from pagoda_grade.symbols import user_fixups
from pagoda_pt.procs import Proc, Vma
from pagoda_grade.usercopy import misplaced_chunk, space_copy_problem
from pagoda_grade.vmawatch import PAGE, WINDOW, random_steps, record_against_model
from pagoda_grade.forks import ECHILD, wait_problem

SMAP_ON = 0x300020      # CR4: SMEP, SMAP and PAE
AC = 1 << 18


def kernel_pf(pc, cr2, error, rflags, cr4=SMAP_ON):
    """A kernel-mode #PF as QEMU logs it, with the register dump lines the grader reads."""
    return (f"     0: v=0e e={error:04x} i=0 cpl=0 IP=0008:{pc:016x} pc={pc:016x} SP=0010:ffffff0000007838 "
            f"CR2={cr2:016x}\nRAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000040 RDX=0000000000000040\n"
            f"RIP={pc:016x} RFL={rflags:08x} [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0\n"
            f"CR0=80010011 CR2={cr2:016x} CR3=0000000000379000 CR4={cr4:08x}\n")


def run_of(kernel, log_text, tmp_path, arch="x86_64"):
    return Run(token="00", cmdline="", memory="128M", lines=["run: start"], exit_code=0, elapsed=1.0,
               directory=str(tmp_path), log=faultlog.parse(log_text, arch), symbolizer=Symbolizer(kernel), arch=arch)


def test_a_copy_that_faults_with_smap_on_and_ac_clear_names_the_guard(reference_kernel, tmp_path):
    copy = min(user_fixups(reference_kernel))
    said = copy_guard_cause(run_of(reference_kernel, kernel_pf(copy, 0x7FFFFFFFEDF0, 0x1, 0x2), tmp_path))
    assert said is not None and "SMAP on and RFLAGS.AC clear" in said and "UserAccessScope" in said, said


def test_a_copy_inside_its_scope_or_without_smap_is_not_the_guard(reference_kernel, tmp_path):
    copy = min(user_fixups(reference_kernel))
    # AC set: the copy lifted the guard (a bad pointer, EFAULT as it should be)
    assert copy_guard_cause(run_of(reference_kernel, kernel_pf(copy, 0x0, 0x0, 0x2 | AC), tmp_path)) is None
    # a CPU without SMAP: AC means nothing
    assert copy_guard_cause(run_of(reference_kernel, kernel_pf(copy, 0x0, 0x0, 0x2, cr4=0x20), tmp_path)) is None
    # not a copy's instruction; a kernel address
    assert copy_guard_cause(run_of(reference_kernel, kernel_pf(copy + 1, 0x7FFFFFFFE000, 0x1, 0x2), tmp_path)) is None
    assert copy_guard_cause(run_of(reference_kernel, kernel_pf(copy, 0xFFFFFF0000001000, 0x1, 0x2), tmp_path)) is None


def test_a_chunk_in_the_first_page_s_frame_is_named():
    """copy_to_space() looking up the range's first page for every chunk: the second chunk lands
    in page 0's frame at its own offset in the page."""
    base, offset, size = 0x140000000, PAGE - 10, 30
    source = bytes(range(1, size + 1))
    fills = [b"\xee" * PAGE, b"\xee" * PAGE]
    got = [bytearray(f) for f in fills]
    got[0][offset:PAGE] = source[:10]
    got[0][0:20] = source[10:]            # the chunk meant for page 1
    have = b"".join(bytes(g) for g in got)
    assert misplaced_chunk([(offset, size)], source, have, 0) == ((offset, size), PAGE, 20, 1)
    said = space_copy_problem(base, [0x7000000, 0x7001000], [(offset, size)], source, fills, [bytes(g) for g in got])
    assert "its chunk for page 1 (20 bytes from 0x140001000) landed in page 0's frame 0x7000000" in said, said


def test_a_chunk_written_where_it_belongs_is_not_misplaced():
    offset, size = PAGE - 10, 30
    source = bytes(range(1, size + 1))
    have = bytearray(b"\xee" * 2 * PAGE)
    have[offset:offset + size] = source
    assert misplaced_chunk([(offset, size)], source, bytes(have), offset) is None


def _record(*spans):
    return Proc(pid=1, name="vmas", heap_start=0, brk=0,
                  vmas=[Vma(start=WINDOW + a * PAGE, end=WINDOW + b * PAGE, read=True, write=True, execute=False)
                        for a, b in spans])


def _gap_after(token, ops):
    """(operation, page): the first operation after which the model maps pages p - 1 and p + 1 but
    not p."""
    steps = list(random_steps(token, ops))
    for k in range(ops - 1):
        after = steps[k + 1]["before"]
        for p in range(1, 63):
            if p - 1 in after and p not in after and p + 1 in after:
                return k, p
    raise AssertionError("no gap in the model")


def test_a_region_over_a_gap_of_the_model_is_named():
    op, p = _gap_after("why456", 1000)
    said = record_against_model(_record((p - 1, p + 2)), "why456", 1000, op)
    assert said is not None and f"does not map page(s) {p}" in said, said
    assert "merged into one across the gap" in said or "left its range in the record" in said, said


def test_a_record_that_agrees_with_the_model_says_nothing():
    op, p = _gap_after("why456", 1000)
    assert record_against_model(_record((p - 1, p), (p + 1, p + 2)), "why456", 1000, op) is None


def _proc(pid, zombie=False):
    return SimpleNamespace(pid=pid, parent=1, zombie=zombie, state=3 if zombie else 1)


def test_wait_results_the_process_table_contradicts_are_named():
    running = {2: _proc(2), 3: _proc(3, zombie=True)}
    said = wait_problem(-ECHILD, running, running)
    assert said is not None and "not ended yet" in said and "pids 2, 3" in said, said
    said = wait_problem(0, running, {2: running[2]})
    assert said is not None and "reaped pid 3" in said and "after reap() had cleared it" in said, said
    said = wait_problem(7, running, {2: running[2]})
    assert said is not None and "no child of the caller" in said, said


def test_a_slot_marked_free_that_keeps_its_pid_is_a_reap_without_destroying():
    """wait-reaps-without-freeing: the children the table still lists are free slots, not children."""
    reaped = SimpleNamespace(pid=2, parent=1, zombie=False, state=0)
    said = wait_problem(-ECHILD, {2: _proc(2, zombie=True)}, {2: reaped})
    assert said is not None and said.startswith("pid 2's slot") and "reaped without being destroyed" in said, said
    assert "not ended yet" not in said


def test_wait_results_the_process_table_agrees_with_say_nothing():
    children = {2: _proc(2, zombie=True)}
    assert wait_problem(2, children, {}) is None
    assert wait_problem(-ECHILD, {}, {}) is None
