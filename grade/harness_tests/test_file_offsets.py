"""A frame that holds its program's file bytes from another offset than its page's is named as
such (programs.misplaced_bytes, which the grader's ImageWatch and lab 5's image_cut use): a page
read as if its region started at file offset 0 (the region's offset left out when the page was
brought in), a page read a whole number of pages off (a cut region whose offset did not move
with its start). The right bytes, and bytes too plain to place, name nothing."""
import pytest

from pagoda_grade import programs, symbols

PAGE = 4096
PF_X, PF_W = 1, 2


@pytest.fixture(scope="module")
def vmas(reference_kernel):
    """(file bytes, segments) of the grader's build of vmas (the reference build made it)."""
    with open(programs.program_elf("x86_64", "vmas"), "rb") as f:
        data = f.read()
    return data, symbols.parse_segments(data, "vmas")


def test_a_page_read_as_if_its_region_started_at_offset_0(vmas):
    data, segs = vmas
    text = next(g for g in segs if g.flags & PF_X)
    said = programs.misplaced_bytes(data, "vmas", text.vaddr, data[:PAGE])
    assert said.startswith(f"the frame holds vmas's file bytes from offset 0x0 (the ELF file the kernel embeds), "
                           f"where {text.vaddr:#x}'s bytes are at offset {text.offset:#x}")
    assert "the region's file offset left out when the page was brought in" in said


def test_a_page_read_pages_off_names_an_offset_not_kept_with_the_start(vmas):
    data, segs = vmas
    ro = max((g for g in segs if not g.flags & (PF_X | PF_W)), key=lambda g: g.filesz)
    assert ro.filesz > 4 * PAGE, "vmas's read-only segment holds vmas_table, several pages long"
    va = ro.vaddr - ro.vaddr % PAGE + 3 * PAGE
    right = ro.offset + (va - ro.vaddr)
    said = programs.misplaced_bytes(data, "vmas", va, data[right - 2 * PAGE:right - PAGE])
    assert f"where {va:#x}'s bytes are at offset {right:#x}, 0x2000 bytes before them" in said
    assert "not moved when a region is cut" in said


def test_the_right_bytes_or_plain_ones_are_not_misplaced(vmas):
    data, segs = vmas
    text = next(g for g in segs if g.flags & PF_X)
    assert programs.misplaced_bytes(data, "vmas", text.vaddr, data[text.offset:text.offset + PAGE]) is None
    assert programs.misplaced_bytes(data, "vmas", text.vaddr, bytes(PAGE)) is None          # zeros: anywhere
    assert programs.misplaced_bytes(data, "vmas", text.vaddr, b"\x5a" * PAGE) is None       # none of the file's
    assert programs.file_place(b"abc" + b"\x01" * 20 + b"abc" + b"\x01" * 20, b"abc" + b"\x01" * 20) is None


def test_a_frame_never_written_is_named_as_such():
    said = programs.never_written(b"\x5a" * PAGE)
    assert said.startswith("the frame holds the byte 0x5a throughout") and "never written" in said
    assert "0x00 throughout" in programs.never_written(bytes(64))
    assert programs.never_written(b"\x5a" * 63 + b"\x5b") is None
    assert programs.never_written(b"\x5a" * 8) is None     # too little to tell
