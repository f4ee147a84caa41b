"""pt-walk's reading of lab 7's swap entries (pagoda_pt.swapstate.swap_slot, swap_note), on entries
built the way each ISA's format builds them (arch/*/page_table_format.hpp)."""
from pagoda_pt.swapstate import swap_note, swap_slot
from pagoda_pt.model import Level, Walk

X86 = {"swap_entry_bit": 1 << 10, "held_entry_bit": 1 << 9, "swap_slot_shift": 12, "swap_slot_bits": 40,
       "swap_slot_inverted": 1}
A64 = {"swap_entry_bit": 1 << 56, "held_entry_bit": 1 << 55, "swap_slot_shift": 12, "swap_slot_bits": 43,
       "swap_slot_inverted": 0}


def x86_entry(slot):
    return ((~slot & ((1 << 40) - 1)) << 12) | 1 << 10


def test_each_isa_s_swap_entry_names_its_slot():
    for slot in (0, 1, 777, (1 << 20) + 3):
        assert swap_slot(x86_entry(slot), X86) == slot
        assert swap_slot(slot << 12 | 1 << 56, A64) == slot


def test_valid_held_empty_and_swapless_entries_are_no_swap_entries():
    assert swap_slot(x86_entry(5) | 1, X86) is None           # present: a page, whatever its bits
    assert swap_slot(x86_entry(5) | 1 << 9, X86) is None      # held (PROT_NONE)
    assert swap_slot(0, A64) is None
    assert swap_slot(5 << 12 | 1 << 56, {**A64, "swap_entry_bit": 0}) is None   # a kernel before lab 7


def test_the_walk_says_swapped_to_slot_only_at_the_leaf():
    levels = [Level(name="L%d" % i, table_pa=0x1000 * i, index=0, entry_pa=0x1000 * i, raw=0x2003, flags=[],
                    leaf=False, output=0x2000) for i in range(3)]
    leaf = Level(name="L3", table_pa=0x5000, index=4, entry_pa=0x5020, raw=42 << 12 | 1 << 56, flags=[], leaf=False,
                 output=None)
    walk = Walk(arch="aarch64", va=0x4000, levels=levels + [leaf], pa=None, stop_reason="invalid descriptor")
    assert swap_note(walk, 3, A64).startswith("swapped to slot 42 ")
    assert swap_note(Walk(arch="aarch64", va=0x4000, levels=levels[:2], pa=None, stop_reason="x"), 3, A64) is None
