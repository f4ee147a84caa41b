"""pagoda_pt.swap's reasoning on synthetic swap states (lab 7): what each eviction slip leaves in the
slot map, the frame table and the roots, and the sentence swap-slots and fault-why give for it;
the swap lines of the memview picture. The reading of a real kernel's state is test_gdb_swap.py's."""
from pagoda_pt.swapstate import SwapState
from pagoda_pt.swap import SwapCensus, format_swap_map, slot_flag, swap_problems, swap_story

A, B = 0x10000, 0x20000          # two process roots: a parent (pid 1) and its child (pid 2)
V = 0x1000_0000                  # one page both map
F, G = 0x800000, 0x801000        # two user frames


def census(counts, entries=(), mapped=(), rmap=None, backing=None, cap=0):
    """A census of @p counts (the slot map), @p entries [(root, va, slot)] (swap entries), @p mapped
    [(root, va, frame)] (user pages), @p rmap {frame: [(root, va)]} (the frame table's records)."""
    rmap = rmap or {}
    state = SwapState(cap, 0, 1 << 20, list(counts), len(rmap), dict.fromkeys(("evictions", "writes", "reads",
                      "clean_evictions", "cleanings"), 0), backing=backing or {},
                      mappings={f: len(chain) for f, chain in rmap.items()}, rmap=rmap)
    c = SwapCensus(state, {A: "proc 1 (p)", B: "proc 2 (p)"}, {A: 1, B: 2}, {1: "p", 2: "p"}, {}, {},
                   {(root, va): frame for root, va, frame in mapped}, set())
    for root, va, slot in entries:
        c.entries[(root, va)] = slot
        c.swapped.setdefault(slot, []).append((root, va))
    c.problems = swap_problems(c)
    return c


def healthy():
    """Slot 0 shared by fork (both entries, count 2); frame F back from slot 1, which it keeps."""
    return census([2, 1, 0], entries=[(A, V, 0), (B, V, 0)], mapped=[(A, V + 0x1000, F)],
                  rmap={F: [(A, V + 0x1000)]}, backing={F: 1}, cap=32)


def test_a_consistent_state_has_no_problem():
    c = healthy()
    assert c.problems == [] and swap_story(c) is None
    assert [slot_flag(c, s) for s in range(3)] == [None, None, None]


def test_inside_the_swapper_a_slot_s_count_comes_first():
    # A swap-in maps the page before the fault path records it: inside the swapper that is no slip.
    c = census([0], entries=[(A, V, 0)], mapped=[(B, V, F)])
    assert swap_story(c).startswith("proc 2 (p) at %#x maps frame %#x, which the frame table calls" % (V, F))
    assert swap_story(c, slots_first=True).startswith("slot 0 is free in the slot map")
    assert swap_story(census([], mapped=[(B, V, F)]), slots_first=True).startswith("proc 2 (p)")


def test_a_page_evicted_from_one_root_of_a_shared_frame():
    # The child's entry became a swap entry; the parent still maps F, which the table forgot.
    c = census([1], entries=[(B, V, 0)], mapped=[(A, V, F)])
    assert swap_story(c).startswith("proc 1 (p) at %#x maps frame %#x, which the frame table calls not resident "
                                    "(no mapping of it recorded), while proc 2 (p) at %#x holds a swap entry naming "
                                    "slot 0 for the same address: an eviction that took a shared page out of one root "
                                    "only" % (V, F, V)), c.problems


def test_a_page_still_mapped_after_its_frame_came_back_to_the_other_root():
    # Evicted from the child only and let go; the child's swap-in got the same frame back.
    c = census([1], mapped=[(A, V, F), (B, V, F)], rmap={F: [(B, V)]}, backing={F: 0})
    assert swap_story(c).startswith("proc 1 (p) at %#x still maps frame %#x, which came back from slot 0 to proc 2 (p) "
                                    "at %#x (the only mapping its reverse map lists): an eviction that took the page "
                                    "out of the other root only" % (V, F, V))


def test_a_mapping_the_frame_table_never_learned():
    c = census([], mapped=[(B, V, F)])
    assert "which the frame table calls not resident (no mapping of it recorded): a mapping the reverse map never " \
           "learned" in swap_story(c)


def test_a_swap_entry_the_mmu_reads_as_valid():
    # The eviction wrote slot 2 into a present entry: the root maps physical page 2; slot 2 has no holder.
    c = census([0, 0, 1], mapped=[(A, V, 2 * 0x1000)])
    assert swap_story(c).startswith("proc 1 (p) at %#x maps physical page 0x2000, which the frame table calls not "
                                    "resident, and slot 2, the same number, is held with no swap entry naming it" % V)
    # AArch64's virt: physical page 2 is no RAM, so the frame table does not track it.
    c = census([0, 0, 1], mapped=[(A, V, 2 * 0x1000)])
    c.state.first = 0x40000
    assert swap_problems(c)[0].startswith("proc 1 (p) at %#x maps physical page 0x2000, which the frame table does not "
                                          "track (no RAM it gives out), and slot 2, the same number, is held" % V)
    # A page the table forgot, while its frame's number is a slot that some entry holds: not that slip.
    c = census([0, 0, 1], entries=[(B, V, 2)], mapped=[(A, V + 0x1000, 2 * 0x1000)])
    assert swap_story(c).startswith("proc 1 (p) at %#x maps frame 0x2000, which the frame table calls not resident "
                                    "(no mapping" % (V + 0x1000))


def test_an_entry_naming_a_free_slot():
    c = census([0, 1], entries=[(A, V, 0), (A, V + 0x1000, 1)])
    assert slot_flag(c, 0) == "FREE in the slot map, yet named" and slot_flag(c, 1) is None
    assert swap_story(c).startswith("slot 0 is free in the slot map, yet the swap entry of proc 1 (p) at %#x names it"
                                    % V)


def test_a_slot_counted_below_its_holders():
    c = census([1], entries=[(A, V, 0), (B, V, 0)])
    assert slot_flag(c, 0) == "counted 1, held 2: below its holders"
    assert len(c.problems) == 1, c.problems                  # not a slot held more than its holders too
    assert swap_story(c).startswith("slot 0 is counted 1 but held 2 times (proc 1 (p) at %#x, proc 2 (p) at %#x): a "
                                    "holder never counted" % (V, V))


def test_a_backing_slot_the_map_calls_free():
    # A clean frame's next eviction writes nothing, trusting a slot another eviction may take.
    c = census([0], mapped=[(A, V, F)], rmap={F: [(A, V)]}, backing={F: 0})
    assert slot_flag(c, 0) == "counted 0, held 1: below its holders"
    assert swap_story(c).startswith("slot 0 is counted 0 but held 1 time (frame %#x's backing)" % F)


def test_a_backing_slot_another_entry_names():
    c = census([2], entries=[(B, V, 0)], mapped=[(A, V, F)], rmap={F: [(A, V)]}, backing={F: 0})
    assert slot_flag(c, 0) == "a frame's backing, yet named by a swap entry"
    assert swap_story(c).startswith("frame %#x keeps slot 0 as its backing (its clean copy), yet the swap entry of "
                                    "proc 2 (p) at %#x names the slot too (the slot map counts it 2)" % (F, V))


def test_a_count_below_its_holders_comes_before_a_backing_slot_named():
    # fork shared slot 1 uncounted; the parent's swap-in of slot 0, which it thought its own, kept it.
    c = census([1, 1], entries=[(B, V, 0), (A, V + 0x1000, 1), (B, V + 0x1000, 1)], mapped=[(A, V, F)],
               rmap={F: [(A, V)]}, backing={F: 0})
    assert swap_story(c).startswith("slot 1 is counted 1 but held 2 times")


def test_a_reverse_map_that_lacks_a_mapping():
    c = census([], mapped=[(A, V, F), (B, V, F)], rmap={F: [(B, V)]})
    assert swap_story(c).startswith("proc 1 (p) at %#x maps frame %#x, but the frame's reverse map lists only proc 2 "
                                    "(p) at %#x" % (V, F, V))


def test_a_reverse_map_that_names_a_mapping_gone():
    # A copy-on-write break moved the child to G; F's chain still names the child.
    c = census([], mapped=[(A, V, F), (B, V, G)], rmap={F: [(A, V), (B, V)], G: [(B, V)]})
    assert swap_story(c).startswith("frame %#x's reverse map names proc 2 (p) at %#x, but that root holds frame %#x "
                                    "there: the page moved to frame %#x (a copy-on-write break) and the move did "
                                    "not forget the old frame's node" % (F, V, G, G))


def test_slots_no_one_holds():
    c = census([0, 0, 1, 1])
    assert slot_flag(c, 2) == "NO HOLDER: no entry names it, no frame keeps it"
    assert swap_story(c).startswith("2 slots held more times than their holders account for (first: slot 2, NO "
                                    "HOLDER")
    # Either producer of a slot no one holds: a hold never dropped, an eviction of a frame no root maps.
    assert "a hold never dropped" in swap_story(c) and "an eviction of a page table or a kernel frame" in swap_story(c)
    c = census([3], entries=[(A, V, 0)])
    assert slot_flag(c, 0) == "counted 3, held 1: above its holders"
    assert swap_story(c).startswith("1 slot held more times than its holders account for (first: slot 0, counted 3")


def test_more_resident_frames_than_the_cap():
    c = census([], mapped=[(A, V, F), (A, V + 0x1000, G)], rmap={F: [(A, V)], G: [(A, V + 0x1000)]}, cap=1)
    assert swap_story(c) == ("2 user frames are resident, above the cap of 1 (userframes=): room was not made before a "
                             "frame was taken")


def test_the_memview_lines():
    c = healthy()
    lines = format_swap_map(c, width=8, max_rows=1)
    assert lines[0] == "slot 0     S1."                    # shared by pids 1 and 2; pid 1's backing; free
    assert lines[1].startswith("swap slots: one cell = 1 slot; 2 of 3 in use")
    assert lines[2] == "resident user frames: 1 of the cap of 32 (the frame table), 0 pinned; 1 pid 1 'p' 1"
    bad = census([0, 0], entries=[(A, V, 1)])
    assert format_swap_map(bad, width=8)[0] == "slot 0     .!"
    assert format_swap_map(bad)[-1].startswith("swap: 1 disagreement between the swap state and the tables")
