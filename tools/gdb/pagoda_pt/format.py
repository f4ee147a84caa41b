"""Plain-text rendering of walks, runs, diffs and decoded registers, as the GDB commands
will print them.  Every function returns a string (lines joined by '\\n', no trailing
newline) and never prints."""

from __future__ import annotations

from typing import Iterable, Optional

from .model import CHANGED, ONLY_A, ONLY_B, DiffRange, Perms, Run, Walk
from .regs import PageFaultError, SelectorError, X86Regs

_UNITS = ((1 << 60, "EiB"), (1 << 50, "PiB"), (1 << 40, "TiB"), (1 << 30, "GiB"),
          (1 << 20, "MiB"), (1 << 10, "KiB"))
_SHORT_SIZES = {1 << 12: "4K", 1 << 21: "2M", 1 << 30: "1G"}
_KIND_LABELS = {ONLY_A: "only {a}", ONLY_B: "only {b}", CHANGED: "changed"}
ADDR = "0x%016x"   # one address, as every GDB command prints it


def human_size(size: int) -> str:
    """'4 KiB', '2 MiB', '1.5 MiB', '512 B'."""
    for unit, name in _UNITS:
        if size >= unit:
            if size % unit == 0:
                return "%d %s" % (size // unit, name)
            return ("%.2f" % (size / unit)).rstrip("0").rstrip(".") + " " + name
    return "%d B" % size


def perm_letters(perms: Perms) -> str:
    """Walk style: 'R W X U'.  When kernel execute differs from the owner's (AArch64
    user pages), 'KX' (kernel may execute) or 'PXN' (kernel may not) is appended."""
    letters = ["R"] if perms.read else []
    letters += ["W"] if perms.write else []
    letters += ["X"] if perms.execute else []
    letters += ["U"] if perms.user else []
    if perms.priv_execute != perms.execute:
        letters.append("KX" if perms.priv_execute else "PXN")
    return " ".join(letters)


def perm_short(perms: Optional[Perms]) -> str:
    """Run style: 'r-x k', 'rw- u' (plus ' kx'/' pxn' as in perm_letters)."""
    if perms is None:
        return "unmapped"
    text = perms.rwx() + (" u" if perms.user else " k")
    if perms.priv_execute != perms.execute:
        text += " kx" if perms.priv_execute else " pxn"
    return text


def format_walk(walk: Walk) -> str:
    """One line per level (name[index], entry address, raw value, flags, next table),
    then '-> PA 0x... (4 KiB page, R W X U, WB)' or 'stopped: <reason>', then notes."""
    lines = ["VA " + ADDR % walk.va + " (" + walk.arch + ")"]
    for level in walk.levels:
        raw = "<unreadable>      " if level.raw is None else ADDR % level.raw
        line = "  %-4s [%3d] @ %s = %s  %s" % (level.name, level.index, ADDR % level.entry_pa,
                                               raw, " ".join(level.flags))
        if level.output is not None and not level.leaf:
            line += "  -> table " + ADDR % level.output
        lines.append(line.rstrip())
    if walk.pa is not None:
        detail = [human_size(walk.page_size) + " page", perm_letters(walk.perms)]
        if walk.perms.cache:
            detail.append(walk.perms.cache)
        lines.append("  -> PA " + ADDR % walk.pa + " (" + ", ".join(detail) + ")")
    else:
        lines.append("  stopped: " + (walk.stop_reason or "unknown reason"))
    lines.extend("  note: " + note for note in walk.notes)
    return "\n".join(lines)


def format_range(start: int, end: int) -> str:
    """'0x...000-0x...fff': the first and the LAST byte of [start, end), so that a range that
    reaches the top of the address space ends at 0xffffffffffffffff, never 2^64."""
    return "%s-%s" % (ADDR % start, ADDR % (end - 1))


def format_run(run: Run) -> str:
    """'0x...000-0x...fff  8 KiB -> 0x...  rw- u  4K WB' (both ends included)."""
    text = "%s %9s -> %s  %-6s %s" % (format_range(run.va_start, run.va_end),
                                         human_size(run.size), ADDR % run.pa_start,
                                         perm_short(run.perms),
                                         _SHORT_SIZES.get(run.page_size,
                                                          human_size(run.page_size)))
    if run.perms.cache:
        text += " " + run.perms.cache
    return text


def format_runs(runs: Iterable[Run]) -> str:
    """One format_run line per run, then a total line."""
    runs = list(runs)
    lines = [format_run(run) for run in runs]
    total = sum(run.size for run in runs)
    lines.append("%d run%s, %s mapped" % (len(runs), "" if len(runs) == 1 else "s",
                                          human_size(total)))
    return "\n".join(lines)


def _side(pa: Optional[int], perms: Optional[Perms]) -> str:
    if pa is None:
        return "unmapped"
    return ADDR % pa + " " + perm_short(perms)


def format_diff(ranges: Iterable[DiffRange], name_a: str = "A", name_b: str = "B") -> str:
    """One line per difference: kind, VA range (both ends included), size, then each side's
    PA and perms; 'no differences' when the list is empty."""
    lines = []
    for item in ranges:
        label = _KIND_LABELS[item.kind].format(a=name_a, b=name_b)
        lines.append("%-10s %s %9s  %s: %s  %s: %s" % (
            label, format_range(item.va_start, item.va_end), human_size(item.size),
            name_a, _side(item.a_pa, item.a_perms), name_b, _side(item.b_pa, item.b_perms)))
    return "\n".join(lines) if lines else "no differences"


def format_x86_regs(regs: X86Regs) -> str:
    """Multi-line summary of decode_x86_regs()."""
    cr3 = "CR3   root " + ADDR % regs.cr3_root
    if regs.cr3_pcid is not None:
        cr3 += "  PCID %d" % regs.cr3_pcid
    elif regs.cr3_flags:
        cr3 += "  " + " ".join(regs.cr3_flags)
    lines = ["CR0   " + " ".join(regs.cr0_flags), cr3, "CR4   " + " ".join(regs.cr4_flags),
             "EFER  " + " ".join(regs.efer_flags), "paging: " + regs.paging_mode]
    lines.extend("note: " + note for note in regs.notes)
    return "\n".join(lines)


def format_pf_error(error: PageFaultError, cr2: Optional[int] = None) -> str:
    """'#PF error 0x7 [P W U]: user-mode write: protection violation on a present page'."""
    text = "#PF error %#x [%s]: %s" % (error.code, " ".join(error.flags), error.summary)
    if cr2 is not None:
        text += " at " + ADDR % cr2
    return text


def format_gp_error(error: SelectorError, vector_name: str = "#GP") -> str:
    """'#GP error 0x10: GDT entry 2 (selector 0x10)'."""
    return "%s error %#x: %s" % (vector_name, error.code, error.summary)
