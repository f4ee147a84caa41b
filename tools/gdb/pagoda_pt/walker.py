"""Architecture-independent entry points: walk one address, dump a whole tree as merged
runs, and diff two dumps.  The per-architecture rules live in x86_64.py and aarch64.py.

Root tables:
  x86_64   root_pa is the PML4 physical address; None means CR3 from regs.
  aarch64  root_pa None: tables from regs TTBR0_EL1/TTBR1_EL1; an int: the TTBR0 (low,
           per-process) table with TTBR1 still from regs; a pair (ttbr0, ttbr1): both.
"""

from __future__ import annotations

from typing import Optional

from .isa import ISAS, isa
from .model import CHANGED, ONLY_A, ONLY_B, PAGE_SIZE_4K, DiffRange, PhysReader, Run, Walk

ARCHES = tuple(ISAS)


def canonical_arch(arch: str) -> str:
    """Map an architecture name or alias to 'x86_64' or 'aarch64'; ValueError otherwise."""
    return isa(arch).name


def _pa_bits(arch: str, pa_bits: Optional[int]) -> Optional[int]:
    return isa(arch).format.DEFAULT_PA_BITS if pa_bits is None else pa_bits


def walk(arch: str, read_phys: PhysReader, root_pa, va: int, regs: Optional[dict] = None,
         *, pa_bits: Optional[int] = None) -> Walk:
    """Translate one virtual address and record every level visited.

    Returns a Walk whose pa/page_size/perms are set when va is mapped, or whose
    stop_reason explains the fault.  regs (any key case) may hold cr0, cr3, cr4, efer,
    pat on x86_64 and ttbr0_el1, ttbr1_el1, tcr_el1, mair_el1, sctlr_el1 on aarch64.

    pa_bits is the CPU's physical address width: CPUID 0x80000008 EAX[7:0] (MAXPHYADDR) on
    x86_64, ID_AA64MMFR0_EL1.PARange on AArch64 (pa_bits_from_mmfr0()).  Entries with
    address bits at or above it are reserved (x86_64) or address size faults (AArch64).
    None assumes the architectural maximum (52 on x86_64; TCR_EL1.IPS alone on AArch64), which
    misses such entries: pass the real width when it is known.  Raises only for a bad arch or width."""
    arch = canonical_arch(arch)
    pa_bits = _pa_bits(arch, pa_bits)
    return isa(arch).format.walk(read_phys, root_pa, va, regs, pa_bits)


def dump(arch: str, read_phys: PhysReader, root_pa, regs: Optional[dict] = None,
         user_only: bool = False, kernel_only: bool = False, *,
         pa_bits: Optional[int] = None, problems: Optional[list] = None, held_mask: int = 0) -> list[Run]:
    """Every mapped range of the tree, as Runs in increasing VA order.

    Walks the tables recursively (one read_phys per table), skipping invalid entries and
    honouring huge pages/blocks; upper-half addresses come out sign-extended
    (0xffff8000_00000000.. on x86_64).  Entries that would fault (reserved bits, AF
    clear, bad descriptor types) and unreadable tables are left out; if `problems` is a
    list, one message per such entry is appended to it.  user_only keeps runs accessible
    from user mode, kernel_only the others; asking for both is a ValueError.  pa_bits as
    for walk().  held_mask: the kernel's held_entry_bit fact; held leaves (PROT_NONE pages
    whose frames the kernel keeps, invalid to the MMU) then come out too, as runs whose
    perms.read is False and cache "held"."""
    if user_only and kernel_only:
        raise ValueError("user_only and kernel_only exclude each other")
    runs = list(iter_runs(arch, read_phys, root_pa, regs, pa_bits=pa_bits, problems=problems, held_mask=held_mask))
    if user_only:
        runs = [run for run in runs if run.perms.user]
    elif kernel_only:
        runs = [run for run in runs if not run.perms.user]
    return runs


def iter_runs(arch: str, read_phys: PhysReader, root_pa, regs: Optional[dict] = None, *,
              pa_bits: Optional[int] = None, problems: Optional[list] = None, held_mask: int = 0):
    """dump() as a generator: each Run is yielded as soon as the walk has passed its end, and
    the walk goes no further than the runs asked for (a caller that has seen enough of a huge
    tree stops reading it; nothing holds the runs it has let go)."""
    arch = canonical_arch(arch)
    pa_bits = _pa_bits(arch, pa_bits)
    report = problems.append if problems is not None else None
    leaves = isa(arch).leaves(read_phys, root_pa, regs, pa_bits, report, held_mask)
    cur = None   # [va_start, va_end, pa_start, pa_end, perms, size] of the run being built
    for va, pa, size, perms in leaves:
        if cur is not None and va == cur[1] and pa == cur[3] and size == cur[5] and \
                (perms is cur[4] or perms == cur[4]):
            cur[1] += size
            cur[3] += size
            continue
        if cur is not None:
            yield Run(cur[0], cur[1], cur[2], cur[4], cur[5])
        cur = [va, va + size, pa, pa + size, perms, size]
    if cur is not None:
        yield Run(cur[0], cur[1], cur[2], cur[4], cur[5])


def _covering(runs: list[Run], start: int, cursor: int) -> tuple[Optional[Run], int]:
    """The run containing VA `start` (or None) and the advanced cursor.  Callers ask for
    increasing `start` values, so the cursor only moves forward."""
    while cursor < len(runs) and runs[cursor].va_end <= start:
        cursor += 1
    if cursor < len(runs) and runs[cursor].va_start <= start:
        return runs[cursor], cursor
    return None, cursor


def diff_runs(runs_a: list[Run], runs_b: list[Run]) -> list[DiffRange]:
    """Compare two sorted, non-overlapping run lists (as dump() returns them).

    The VA line is cut at every run boundary of either side; each piece is compared and
    neighbouring pieces with the same kind, the same Perms on each side and contiguous
    physical addresses are merged into one DiffRange."""
    cuts = sorted({run.va_start for run in runs_a} | {run.va_end for run in runs_a} |
                  {run.va_start for run in runs_b} | {run.va_end for run in runs_b})
    out: list[list] = []   # [va_start, va_end, kind, a_pa, a_perms, b_pa, b_perms]
    cursor_a = cursor_b = 0
    for start, end in zip(cuts, cuts[1:]):
        run_a, cursor_a = _covering(runs_a, start, cursor_a)
        run_b, cursor_b = _covering(runs_b, start, cursor_b)
        if run_a is None and run_b is None:
            continue
        a_pa = None if run_a is None else run_a.pa_start + (start - run_a.va_start)
        b_pa = None if run_b is None else run_b.pa_start + (start - run_b.va_start)
        a_perms = None if run_a is None else run_a.perms
        b_perms = None if run_b is None else run_b.perms
        if run_b is None:
            kind = ONLY_A
        elif run_a is None:
            kind = ONLY_B
        elif a_pa != b_pa or a_perms != b_perms:
            kind = CHANGED
        else:
            continue
        if out:
            prev = out[-1]
            prev_size = prev[1] - prev[0]
            if prev[1] == start and prev[2] == kind and prev[4] == a_perms and \
                    prev[6] == b_perms and _follows(prev[3], prev_size, a_pa) and \
                    _follows(prev[5], prev_size, b_pa):
                prev[1] = end
                continue
        out.append([start, end, kind, a_pa, a_perms, b_pa, b_perms])
    return [DiffRange(*piece) for piece in out]


def _follows(prev_pa: Optional[int], prev_size: int, pa: Optional[int]) -> bool:
    """Does pa continue the physical range [prev_pa, prev_pa + prev_size)?"""
    if prev_pa is None or pa is None:
        return prev_pa is None and pa is None
    return prev_pa + prev_size == pa


def virt_reader(arch: str, read_phys: PhysReader, regs: Optional[dict], *, pa_bits: Optional[int] = None):
    """read_virt(va, size) -> bytes of virtual memory translated by this walker through the CPU's
    own roots (@p regs), a page at a time: the kernel addresses the process reader
    (pagoda_pt.procs) reads besides physical memory. ValueError where a page is not mapped."""
    def read_virt(va: int, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            at = va + len(out)
            w = walk(arch, read_phys, None, at, regs, pa_bits=pa_bits)
            if not w.mapped:
                raise ValueError("%#x is not mapped: %s" % (at, w.stop_reason))
            n = min(size - len(out), PAGE_SIZE_4K - at % PAGE_SIZE_4K)
            out += read_phys(w.pa, n)
        return bytes(out)
    return read_virt
