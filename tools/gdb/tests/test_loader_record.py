"""fault-why compares the loader's record with the program's own ELF (lab 5): a refused address
inside a load segment that no VMA covers is the loader's record (the file size recorded for
the memory size, or a region cut short), not the program touching what it was never given.
Pure rules: pagoda_pt.diagnose.user_fault_decision(segments=...)."""
from dataclasses import replace

from pagoda_core.elffile import Segment
from pagoda_pt.diagnose import user_fault_decision
from pagoda_pt.procs import KIND_IMAGE, KIND_STACK, Vma

# The program's load segments (pagoda_core.elffile reads them from its ELF): text, and data with bss.
SEGMENTS = [Segment(0x40_0000, 0x40_0000, 0x591D, 0x591D, 0x1000, 5), Segment(0x40_7018, 0x40_7018, 0x2000, 0x18, 0x7018, 6)]

TEXT = Vma(start=0x40_0000, end=0x40_6000, read=True, write=False, execute=True, kind=KIND_IMAGE, flags=0)
DATA_FILE_ONLY = Vma(start=0x40_7000, end=0x40_8000, read=True, write=True, execute=False, kind=KIND_IMAGE, flags=0)
DATA = Vma(start=0x40_7000, end=0x40_A000, read=True, write=True, execute=False, kind=KIND_IMAGE, flags=0)
STACK = Vma(start=0x7FFF_FFF0_0000, end=0x8000_0000_0000, read=True, write=True, execute=False,
             kind=KIND_STACK, flags=1)


def decide(vmas, address, write=False):
    return user_fault_decision(vmas, address, write, False, False, None, 1 << 20, who="proc 1 (vmas)",
                               segments=SEGMENTS)


def test_a_bss_page_left_out_names_the_file_size():
    kind, sentence = decide([TEXT, DATA_FILE_ONLY, STACK], 0x40_8000)
    assert kind == "deny" and sentence.startswith(
        "the loader recorded the file size, not the memory size: the load segment [0x407018, 0x409018) rw- "
        "(file size 0x18, memory size 0x2000) of proc 1 (vmas)'s program has the VMA [0x407000, 0x408000)")


def test_a_segment_cut_short_otherwise_is_named_as_left_out():
    text_cut = replace(TEXT, end=0x40_4000)
    kind, sentence = decide([text_cut, DATA, STACK], 0x40_5000)
    assert kind == "deny" and sentence.startswith("the loader's record leaves out part of a load segment: "
                                                  "0x405000 lies in the segment [0x400000, 0x40591d) r-x")
    assert "(the segment's region is [0x400000, 0x404000) r-x image)" in sentence


def test_addresses_outside_the_segments_or_covered_keep_their_verdicts():
    # Past the last segment's memory: the program's own stray access.
    assert decide([TEXT, DATA, STACK], 0x40_A000)[1].startswith("0x40a000 lies below the stack VMA")
    # Covered by a VMA that refuses the write (text): the VMA's refusal, not the loader's record.
    assert "which does not allow a write" in decide([TEXT, DATA, STACK], 0x40_1000, write=True)[1]
    # No segments known (the ELF could not be read): as before.
    assert user_fault_decision([TEXT, DATA_FILE_ONLY], 0x40_8000, False, False, False, None,
                               1 << 20)[1].startswith("no VMA covers 0x408000")
