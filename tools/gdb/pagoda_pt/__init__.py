"""pagoda_pt: page-table walking for Pagoda's GDB helpers, in plain Python.

Nothing here imports gdb: physical memory comes in through a PhysReader callable
read_phys(pa, size) -> bytes, so everything can be tested against synthetic tables.

    walk(arch, read_phys, root_pa, va, regs=None)      -> Walk
    dump(arch, read_phys, root_pa, regs=None, ...)     -> list[Run]
    diff(arch, read_phys, root_a, root_b, regs=None)   -> list[DiffRange]
    format_walk / format_runs / format_diff            -> str
    decode_x86_regs / decode_pf_error / decode_gp_error
"""

from .format import (format_diff, format_gp_error, format_pf_error, format_run, format_runs,
                     format_walk, format_x86_regs, human_size, perm_letters, perm_short)
from .model import (CHANGED, ONLY_A, ONLY_B, DiffRange, Level, Perms, PhysReader, Run, Walk)
from .regs import (PageFaultError, SelectorError, X86Regs, decode_gp_error, decode_pf_error,
                   decode_x86_regs, paging_mode)
from .walker import ARCHES, canonical_arch, diff, diff_runs, dump, iter_runs, walk

__all__ = [
    "ARCHES", "CHANGED", "ONLY_A", "ONLY_B", "DiffRange", "Level", "PageFaultError", "Perms",
    "PhysReader", "Run", "SelectorError", "Walk", "X86Regs", "canonical_arch",
    "decode_gp_error", "decode_pf_error", "decode_x86_regs", "diff", "diff_runs", "dump", "iter_runs",
    "format_diff", "format_gp_error", "format_pf_error", "format_run", "format_runs",
    "format_walk", "format_x86_regs", "human_size", "paging_mode", "perm_letters",
    "perm_short", "walk",
]
