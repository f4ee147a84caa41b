"""Bug classes of labs 1-3 the grader names in line 1 since the slips of issue 26's third round
(labs/0N-*/mutants: allocate_never_wraps, allocate_partial_word_skipped, allocate_never_sets_ever,
vmprint_prints_walk_address, devices_cacheable, ...). Each check is a pure function of what the
grader read from the guest, tried here on synthetic readings."""
from types import SimpleNamespace

from pagoda_grade.vmchecks import compare_map, memory_type_problem
from pagoda_grade.witness import DEVICE_MEMORY, NORMAL_MEMORY, Region
from pagoda_pt.model import Perms, Run
from pagoda_grade.allocator import (REFUSED, WORD, edge_problem, edge_word_problem, first_free_after, free_below,
                                    unmarked_frames, wrap_problem)
from pagoda_grade.vmchecks import vmprint_address_cause

PAGE = 4096


def bits(*frames):
    """A bitmap (an int, one bit per frame) with the frames at these addresses set."""
    value = 0
    for f in frames:
        value |= 1 << (f // PAGE)
    return value


# ---- the frame allocator ---------------------------------------------------------------------------

def test_the_wrap_limit_is_the_first_free_frame_after_the_last_one_handed_out():
    used = bits(*range(0x10000, 0x20000, PAGE))          # frames 16..31 in use, the rest free
    assert first_free_after(used, 1, 0x18000) == 0x20000
    assert first_free_after(bits(*range(0, 64 * PAGE, PAGE)), 1, 0x3000) is None   # nothing free in the bitmap
    assert free_below(used, 0x20000) == 16 and free_below(used, 0x10000) == 16 and free_below(used, 0) == 0


def test_a_search_that_never_wraps_is_named():
    assert wrap_problem(0x90000, 0x80000, 12, 0x3000) is None
    why = wrap_problem(0x90000, 0x80000, 12, REFUSED)
    assert why and "refused: next fit never wraps around" in why and "12 below it" in why, why
    assert "at or above the limit" in wrap_problem(0x90000, 0x80000, 12, 0x91000)


def test_free_frames_left_in_the_limit_s_own_word_name_the_word_search():
    limit = 3 * WORD + 10 * PAGE
    below = [3 * WORD + 8 * PAGE, 3 * WORD + 9 * PAGE]
    why = edge_word_problem(limit, below, (REFUSED, REFUSED))
    assert why and "the limit's own word" in why and "rounded up" in why, why
    assert edge_word_problem(limit, below, tuple(below)) is None
    # a free frame missed in a lower word is not this class
    assert edge_word_problem(limit, [2 * WORD, 3 * WORD + 9 * PAGE], (REFUSED, REFUSED)) is None
    # the edge's sentence comes first in its problem
    why = edge_problem(limit, below, (REFUSED, REFUSED, REFUSED), limit)
    assert why.splitlines()[0].startswith("the free frames below the limit in the limit's own word"), why
    assert "not the free frames below the limit" in why.splitlines()[1]


def test_frames_handed_out_without_their_ever_bit_are_listed():
    ever = bits(0x1000, 0x2000)
    assert unmarked_frames([0x1000, 0x2000, REFUSED], ever) == []
    assert unmarked_frames([0x1000, 0x3000, REFUSED, 0x4000], ever) == [0x3000, 0x4000]


# ---- vmprint ------------------------------------------------------------------------------------------

def test_entries_printed_with_the_walk_s_address_are_named():
    expected = [(0, 0x0, 0x26b007), (1, 0x0, 0x26c007), (2, 0x4400000, 0x28f007), (3, 0x456a000, 0x456a003)]
    printed = [(0, 0x456a000, 0x26b007), (1, 0x456a000, 0x26c007), (2, 0x456a000, 0x28f007),
               (3, 0x456a000, 0x456a003)]
    why = vmprint_address_cause(printed, expected)
    assert why and why.startswith("vmprint prints 3 of 4 entries with the wrong first address (line 1:"), why
    assert vmprint_address_cause(expected, expected) is None
    assert vmprint_address_cause(printed[:3], expected) is None          # a line missing: another class
    assert vmprint_address_cause([(0, 0x0, 0x26b008)] + expected[1:], expected) is None   # a wrong value


# ---- memory types ---------------------------------------------------------------------------------------

def test_device_registers_must_be_uncached_and_ram_cacheable():
    assert memory_type_problem("UC", DEVICE_MEMORY) is None
    assert memory_type_problem("Device-nGnRnE", DEVICE_MEMORY) is None
    assert "not device memory" in memory_type_problem("WB", DEVICE_MEMORY)
    assert "not device memory" in memory_type_problem("Normal-WB ISH", DEVICE_MEMORY)
    assert memory_type_problem("WB", NORMAL_MEMORY) is None
    assert memory_type_problem("Normal-WB ISH", NORMAL_MEMORY) is None
    assert "not write-back cacheable" in memory_type_problem("UC", NORMAL_MEMORY)
    assert memory_type_problem("attr0 ISH", DEVICE_MEMORY) is None     # no MAIR read: nothing to say
    assert memory_type_problem("", NORMAL_MEMORY) is None


def test_the_whole_map_names_a_device_mapped_cacheable():
    rw = dict(read=True, write=True, execute=False, user=False, priv_execute=False)
    device = Region(0xfee00000, PAGE, 0xfee00000, "rw-", "identity map of devices: LAPIC", memory=DEVICE_MEMORY)
    ram = Region(0x200000, 2 * PAGE, 0x200000, "rw-", "identity map of RAM", memory=NORMAL_MEMORY)

    def snap(cache_device, cache_ram):
        runs = [Run(0x200000, 0x202000, 0x200000, Perms(**rw, cache=cache_ram), PAGE),
                Run(0xfee00000, 0xfee01000, 0xfee00000, Perms(**rw, cache=cache_device), PAGE)]
        return SimpleNamespace(dump=lambda root=None: runs)

    assert compare_map(snap("UC", "WB"), [device, ram]) == []
    problems = compare_map(snap("WB", "WB"), [device, ram])
    assert len(problems) == 1 and problems[0].startswith("identity map of devices: LAPIC: [0xfee00000, 0xfee01000) "
                                                         "is mapped as WB memory, not device memory"), problems
    problems = compare_map(snap("UC", "UC"), [device, ram])
    assert len(problems) == 1 and "identity map of RAM" in problems[0] and "not write-back" in problems[0], problems
    # a region that says nothing of its memory type takes any
    assert compare_map(snap("WB", "UC"), [Region(0xfee00000, PAGE, 0xfee00000, "rw-", "d"),
                                          Region(0x200000, 2 * PAGE, 0x200000, "rw-", "r")]) == []


def test_a_refusal_with_free_frames_below_the_limit_is_named():
    from pagoda_grade.allocator import refusal_problem
    limit = 5 * WORD + 20 * PAGE
    free = [4 * WORD + k * PAGE for k in range(60, 64)] + [5 * WORD + k * PAGE for k in range(3)]
    why = refusal_problem(limit, 6, free[:4], free)
    assert why.splitlines()[0].startswith("the free frames below the limit in the limit's own word"), why
    assert "refused after 4 of 6 frames, while at least 7 frames below the limit were free" in why
    assert "must be handed out" in refusal_problem(limit, 6, free[1:4], free)   # a frame of a lower word missed too
    assert "had only 3 free frames" in refusal_problem(limit, 6, [], free[:3])


def test_the_window_mapping_what_is_not_its_ram_is_named(reference_kernel):
    from pagoda_grade.symbols import fact
    from pagoda_grade.vmchecks import window_leftover
    from pagoda_grade.witness import image_physical
    explain = window_leftover(reference_kernel, "x86_64", 128 << 20)
    base, phys = fact(reference_kernel, "window_base"), fact(reference_kernel, "window_phys_base")
    why = explain(base, base + 0x100000, phys, None)
    assert why and why.startswith("the physical window maps physical [0x0, 0x100000), the first 1 MiB"), why
    lo, _ = image_physical(reference_kernel)
    assert "the kernel image's own frames" in explain(base + lo - phys, base + lo - phys + PAGE, lo, None)
    assert explain(base + 0x800000 - phys, base + 0x801000 - phys, 0x800000, None) is None   # RAM: not this
    assert explain(0xffffc00000000000, 0xffffc00000001000, 0, None) is None                  # not the window


# ---- lab 3 -----------------------------------------------------------------------------------------------

def test_a_bss_holding_the_file_s_next_bytes_is_a_copy_past_the_file_size():
    from pagoda_grade.processes import bss_file_bytes
    from pagoda_grade.symbols import Segment
    data = bytes(range(256)) * 64                 # a 16 KiB "file"
    seg = Segment(vaddr=0x402000, paddr=0x402000, memsz=0x40, filesz=0x10, offset=0x3000, flags=6)
    got = data[0x3018:0x3020]                    # what a copy of memsz bytes leaves at 0x402018
    assert bss_file_bytes(data, seg, 0x402018, got) == 0x3018
    assert bss_file_bytes(data, seg, 0x402018, b"\x5a" * 8) is None          # never zeroed: another class
    assert bss_file_bytes(data, seg, 0x402018, bytes(8)) is None
    assert bss_file_bytes(data[:0x3010], seg, 0x402018, got) is None          # past the file's end


def test_an_eager_stack_with_a_hole_is_named():
    from pagoda_grade.processes import stack_gap_problem
    top_page, bottom = 0x7FFFFFFFE000, 0x7FFFFFFF7000
    assert stack_gap_problem("hello", [], bottom, top_page) is None
    why = stack_gap_problem("hello", [bottom], bottom, top_page)
    assert why.startswith("hello's user stack [0x7fffffff7000, 0x7ffffffff000) is not mapped at 0x7fffffff7000 "
                          "(its lowest page; 1 of its 7 pages"), why
    assert "its page below the arguments' page" in stack_gap_problem("hello", [top_page - PAGE], bottom, top_page)


def test_a_turn_ended_before_it_was_over_is_named():
    from pagoda_grade.preempt import short_turn_problem
    assert short_turn_problem([(0x1000, 2), (0x2000, 3)], 2, "x86_64") is None
    assert short_turn_problem([], 2, "x86_64") is None
    why = short_turn_problem([(0x1000, 2), (0x2000, 1), (0x1000, 1)], 2, "aarch64")
    assert why.startswith("a spinner lost the CPU before its turn was over: spin (root 0x2000) was switched out 1 "
                          "tick(s) after it was switched in (2 of the 3 turns"), why
    assert "from EL0" in why and "turn_is_over()" in why
