"""Bug classes of the outside set of slips (issue 26) in labs 1, 3 and 4 that the grader caught
late or not at all, and the walk report's order: each check is a pure function of what the
grader read, tried here on synthetic readings.

- a walk report heads its failure with its first finding, the walk after it (finding_first);
- a process's arguments not where its entry registers point (bytes at another offset of the page);
- a kernel-stack slot a process holds that the slot table marks free;
- allocate_below() handing out the frame at its limit; check_free()'s answers;
- copy_frame() copying nothing, or the wrong way."""
import struct

from pagoda_grade.outcomes import finding_first
from pagoda_grade.processes import Started, argument_problem, slot_marks_problem
from pagoda_grade.allocator import REFUSED, edge_problem, free_check_problems
from pagoda_grade.tempmaps import pattern_page
from pagoda_grade.usercopy import copy_problem

PAGE = 4096
TOP_PAGE = 0x7FFF_FFFF_E000


# ---- the walk report ----------------------------------------------------------------------------

def test_a_walk_report_puts_its_first_finding_on_line_1():
    how = "the grader walked every root itself after the processes were made"
    assert finding_first(["A is wrong"], how).splitlines() == ["A is wrong", f"({how})"]
    lines = finding_first(["A is wrong", "B is wrong", "C is wrong"], how).splitlines()
    assert lines == ["A is wrong", f"({how}; 2 more findings:)", "  B is wrong", "  C is wrong"]
    lines = finding_first(["A", "B", "C", "D"], how, shown=2).splitlines()
    assert lines == ["A", f"({how}; 3 more findings:)", "  B"]


# ---- a process's arguments ----------------------------------------------------------------------

def argument_page(args, drop_offset=False):
    """(argv, page) as load_stack() writes @p args into the top page (strings from the top down,
    then argv[] below them, 16-aligned); with @p drop_offset, every write lands at the page's
    start instead (write_frame() ignoring its offset)."""
    page = bytearray(PAGE)
    end, pointers = TOP_PAGE + PAGE, []
    for a in reversed(args):
        end -= len(a) + 1
        pointers.insert(0, end)
        at = 0 if drop_offset else end - TOP_PAGE
        page[at:at + len(a)] = a.encode()
        page[at + len(a)] = 0
    argv = (end - 8 * (len(args) + 1)) & ~15
    table = struct.pack(f"<{len(args) + 1}Q", *pointers, 0)
    at = 0 if drop_offset else argv - TOP_PAGE
    page[at:at + len(table)] = table
    return argv, bytes(page)


def test_arguments_where_the_entry_registers_point_pass():
    argv, page = argument_page(["hello", "token=0123456789abcdef"])
    assert argument_problem("pid 1 (hello)", "hello", 2, argv, TOP_PAGE, page) is None


def test_arguments_written_at_another_offset_of_the_page_are_named():
    argv, page = argument_page(["hello", "token=0123456789abcdef"], drop_offset=True)
    why = argument_problem("pid 1 (hello)", "hello", 2, argv, TOP_PAGE, page)
    assert why and "argv[0] is a null pointer, not its name 'hello'" in why, why
    assert "other offsets of the frame than their addresses" in why, why


def test_entry_registers_that_are_not_argc_and_argv_are_named():
    argv, page = argument_page(["hello", "token=0123456789abcdef"])
    why = argument_problem("pid 1 (hello)", "hello", 0, 0, TOP_PAGE, page)
    assert why and "argv is not in its argument page" in why, why
    why = argument_problem("pid 1 (hello)", "hello", 0, argv, TOP_PAGE, page)
    assert why and "argc must count the arguments" in why, why


def test_a_name_its_pointer_misses_is_found_where_it_landed():
    argv, page = argument_page(["hello", "token=0123456789abcdef"])
    moved = bytearray(page)
    first = struct.unpack_from("<Q", page, argv - TOP_PAGE)[0]
    struct.pack_into("<Q", moved, argv - TOP_PAGE, first - 16)   # argv[0] 16 bytes off
    why = argument_problem("pid 1 (hello)", "hello", 2, argv, TOP_PAGE, bytes(moved))
    assert why and f"'hello' lies at {first:#x}" in why, why


# ---- kernel-stack slots ---------------------------------------------------------------------------

STACK0 = (0xFFFFFF0000004000, 0xFFFFFF0000008000)
STACK1 = (0xFFFFFF000000C000, 0xFFFFFF0000010000)


def slot_of(address):
    return (address - 0xFFFFFF0000000000) // 0x8000


def test_a_slot_a_process_holds_must_be_marked_taken():
    started = {1: Started(1, "spin", 0x350000, STACK0), 2: Started(2, "hello", 0x360000, STACK1)}
    assert slot_marks_problem(started, slot_of, lambda slot: True) is None
    why = slot_marks_problem(started, slot_of, lambda slot: slot != 1)
    assert why and why.startswith("pid 2 (hello)'s kernel stack is in slot 1") and "marks that slot free" in why, why


def test_two_processes_in_one_slot_are_named():
    started = {1: Started(1, "spin", 0x350000, STACK0), 2: Started(2, "hello", 0x360000, STACK0)}
    why = slot_marks_problem(started, slot_of, lambda slot: True)
    assert why and "were both given kernel stack slot 0" in why, why


# ---- the frame allocator: the limit's edge, check_free() -------------------------------------------

def test_the_frame_at_the_limit_is_not_below_it():
    limit, below = 0x388000, [0x380000, 0x384000]
    assert edge_problem(limit, below, (0x384000, 0x380000, REFUSED), limit) is None
    why = edge_problem(limit, below, (0x380000, 0x384000, limit), limit)
    assert why and "the frame at the limit itself: the limit is exclusive" in why, why
    assert "must be refused" in edge_problem(limit, below, (0x380000, 0x384000, 0x500000), limit)
    assert "not the free frames below the limit" in edge_problem(limit, below, (0x380000, REFUSED, REFUSED), limit)


def test_check_free_answers_are_judged(reference_kernel):
    from pagoda_grade.symbols import fact
    value = {n: fact(reference_kernel, f"free_check_{n}") for n in ("ok", "double_free", "never_allocated")}
    plan = [(0x380000, "ok", "a frame the test holds"), (0x390000, "double_free", "a frame it gave back"),
            (0x7000000, "never_allocated", "a frame never handed out")]
    right = (value["ok"], value["double_free"], value["never_allocated"])
    assert free_check_problems(reference_kernel, plan, right) == []
    wrong = (value["ok"], value["ok"], value["never_allocated"])
    problems = free_check_problems(reference_kernel, plan, wrong)
    assert len(problems) == 1 and "answered ok, not double_free: a double free is accepted" in problems[0], problems
    assert "answered 1 of the grader's 3" in free_check_problems(reference_kernel, plan, right[:1])[0]


# ---- copy_frame() ------------------------------------------------------------------------------------

def test_copy_frame_must_copy_its_source_into_its_target():
    seeds = (11, 22)
    source, target = pattern_page(11), pattern_page(22)
    assert copy_problem(0x1000, 0x2000, seeds, source, source) is None
    assert "left the target holding its old bytes" in copy_problem(0x1000, 0x2000, seeds, source, target)
    assert "copied the wrong way" in copy_problem(0x1000, 0x2000, seeds, target, target)
    half = source[:PAGE // 2] + bytes(PAGE // 2)
    assert "did not copy every byte" in copy_problem(0x1000, 0x2000, seeds, source, half)
