"""pagoda_grade.vmas.loader_problems: what a process's record (read from guest RAM before it
ran) lacks against its ELF file's load segments and the stack, on synthetic records shaped like
the user programs' (text r-x, rodata r--, data rw- with bss past its file bytes). Each slip of a
loader the lab-5 grade must name gives its sentence; the record the reference loader makes gives
none."""
from pagoda_grade.symbols import Segment
from pagoda_grade.vmas import heap_problems, loader_problems
from pagoda_grade.witness import PAGE
from pagoda_pt.procs import GROWS_DOWN, KIND_ANONYMOUS, KIND_IMAGE, KIND_STACK, Proc, Vma

TOP = 0x7FFF_FFFF_F000
STACK_PAGES = 8
R, W, X = 4, 2, 1
SEGMENTS = [Segment(0x400000, 0x400000, 0x591D, 0x591D, 0x1000, R | X),
            Segment(0x406000, 0x406000, 0x938, 0x938, 0x7000, R),
            Segment(0x407000, 0x407000, 0x12F0, 0x18, 0x8000, R | W)]


def image(start, end, rwx, offset, file_size):
    return Vma(start, end, "r" in rwx, "w" in rwx, "x" in rwx, KIND_IMAGE, 0, offset, file_size)


def stack(start=TOP - STACK_PAGES * PAGE):
    return Vma(start, TOP, True, True, False, KIND_STACK, GROWS_DOWN, 0, 0)


def reference():
    return [image(0x400000, 0x406000, "r-x", 0x1000, 0x591D), image(0x406000, 0x407000, "r--", 0x7000, 0x938),
            image(0x407000, 0x409000, "rw-", 0x8000, 0x18), stack()]


def problems(vmas):
    return loader_problems(Proc(pid=1, name="vmas", vmas=vmas, heap_start=0x409000, brk=0x409000), SEGMENTS, TOP, STACK_PAGES)


def test_the_reference_loaders_record_has_no_problem():
    assert problems(reference()) == []


def test_an_empty_record_is_a_loader_that_recorded_nothing():
    found = problems([])
    assert len(found) == 1 and "is empty: the loader recorded no VMA" in found[0]


def test_a_segment_recorded_to_its_file_size_leaves_its_bss_out():
    vmas = reference()
    vmas[2] = image(0x407000, 0x408000, "rw-", 0x8000, 0x18)
    found = problems(vmas)
    assert len(found) == 1 and "[0x408000, 0x409000)" in found[0]
    assert "recorded the file size, not the memory size" in found[0]


def test_a_record_without_the_stack_names_it():
    found = problems(reference()[:3])
    assert len(found) == 1 and "did not record the stack" in found[0]
    found = problems(reference()[:3] + [Vma(TOP - PAGE, TOP, True, True, False, KIND_ANONYMOUS, 0, 0, 0)])
    assert len(found) == 1 and "grows-down" in found[0]


def test_regions_of_different_permissions_merged_are_named():
    vmas = reference()
    vmas[0:2] = [image(0x400000, 0x407000, "r-x", 0x1000, 0x6938)]
    found = problems(vmas)
    assert found and "regions with different permissions merged" in found[0]


def test_a_wrong_file_offset_or_file_size_is_named():
    vmas = reference()
    vmas[1] = image(0x406000, 0x407000, "r--", 0x6000, 0x938)
    assert "comes from file offset 0x6000; the ELF file has it at 0x7000" in problems(vmas)[0]
    vmas = reference()
    vmas[2] = image(0x407000, 0x409000, "rw-", 0x8000, 0x1000)
    assert "takes 0x1000 bytes from the file at 0x407000; the segment has 0x18 there" in problems(vmas)[0]


def test_an_unsorted_record_is_named():
    vmas = reference()
    vmas[0], vmas[1] = vmas[1], vmas[0]
    assert "not sorted and disjoint" in problems(vmas)[0]


def test_a_heap_that_does_not_start_after_the_image_is_named():
    def heap(start, brk=None):
        return heap_problems(Proc(pid=1, name="vmas", vmas=reference(), heap_start=start, brk=start if brk is None else brk), SEGMENTS)
    assert heap(0x409000) == []
    assert "lies inside the image, whose last load segment ends at 0x409000" in heap(0x407000)[0]
    assert "is not page aligned" in heap(0x4082F0)[0]
    assert "is not its start 0x409000" in heap(0x409000, 0x40a000)[0]
