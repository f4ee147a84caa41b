"""Lab 4's temporary-mapping area (kernel/mm/tempmap/temp_map.hpp), read from guest RAM: the one
reader behind the grader's lab-4 checks (grade/pagoda_grade/tempmaps.py) and GDB's `tmpmap` and
fault-why (tools/gdb/pagoda_gdb/tempmap.py). Plain Python like the rest of pagoda_pt: memory
through read_phys(pa, size) -> bytes, the kernel's symbols and facts through symbol(name) ->
address or None (the grader's symbols.reader gives the instructor's facts).

    pagoda::TempMapArea::s_current     the area the kernel uses (null until vm::init() made it)
    pagoda_fact_temp_map_<field>_offset   entries_, frames_, cpu_, depth_, maps_ in the area
    pagoda_fact_temp_map_slots, _base     the slots per CPU and the first slot's address
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

from . import contract as C
from .image import CensusError, fact, kernel_image
from .model import PAGE_SIZE_4K

AREA_SYMBOL = C.TEMP_AREA
FIELDS = ("entries", "frames", "cpu", "depth", "maps")
MAX_SLOTS = 64     # a bound on what a damaged fact can make us read


@dataclass(frozen=True)
class TempSlot:
    index: int
    va: int          # the slot's address (this CPU's part of the area)
    frame: int       # the frame its last push mapped (meaningful while live)
    entry: int       # the kernel address of its page-level entry
    live: bool       # below the stack's depth


@dataclass(frozen=True)
class TempArea:
    cpu: int
    depth: int       # the live slots: 0 .. depth-1
    maps: int        # pushes since boot
    slots: tuple     # TempSlot, by index
    at: int = 0      # the area's kernel address (s_current)

    def shared_entry(self) -> Optional[str]:
        """The sentence when two slots hold one entry pointer (TempMapArea::entries_, as the
        kernel's init() reserved them): every push to the later slot writes the earlier slot's
        entry, and the later slot's own address stays unmapped. None when each slot has its own."""
        first = {}
        for s in self.slots:
            if s.entry in first:
                same = [t.index for t in self.slots if t.entry == s.entry]
                return ("temp-map slot %d's entry pointer %#x is slot %d's (the area's entry pointers, read from "
                        "guest RAM: %d of its %d slots share that one entry): init() reserved one page-level entry "
                        "for several slots, so a push to slot %d writes slot %d's entry and slot %d's address "
                        "(%#x) is never mapped; init() must reserve the entry of each slot's own address"
                        % (s.index, s.entry, first[s.entry], len(same), len(self.slots), s.index,
                           first[s.entry], s.index, s.va))
            first[s.entry] = s.index
        return None


def read_temp_area(read_phys, symbol) -> Optional[TempArea]:
    """The temp-map area the kernel uses, or None before vm::init() made it. CensusError when the
    kernel has no temporary mappings at all (no AREA_SYMBOL or its facts)."""
    if symbol(AREA_SYMBOL) is None:
        raise CensusError("this kernel has no temporary mappings (no %s)" % AREA_SYMBOL)
    image = kernel_image(symbol)
    (area,) = struct.unpack("<Q", read_phys(image.static_pa(symbol, AREA_SYMBOL), 8))
    if area == 0:
        return None
    count, base = fact(symbol, "temp_map_slots"), fact(symbol, "temp_map_base")
    if not 0 < count <= MAX_SLOTS:
        raise CensusError("%s is %d: not a number of temp-map slots" % (C.fact_symbol("temp_map_slots"), count))
    at = image.must_pa(area, AREA_SYMBOL)
    offset = {name: fact(symbol, "temp_map_%s_offset" % name) for name in FIELDS}

    def u64s(name: str, n: int = 1) -> tuple:
        return struct.unpack("<%dQ" % n, read_phys(at + offset[name], 8 * n))

    (cpu,), (depth,), (maps,) = u64s("cpu"), u64s("depth"), u64s("maps")
    slots = tuple(TempSlot(i, base + (cpu * count + i) * PAGE_SIZE_4K, frame, entry, i < depth)
                  for i, (frame, entry) in enumerate(zip(u64s("frames", count), u64s("entries", count))))
    return TempArea(cpu, depth, maps, slots, area)
