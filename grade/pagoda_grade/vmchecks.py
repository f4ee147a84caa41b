"""Checks the tests of several labs share (on top of witness.py): the whole-map check at an
instant the grader picks, and the kernel half entry by entry (the ISA facts they ask are the
ArchModel's: witness.ARCHES)."""
import re

from .witness import (ARCHES, MAX_PROBLEMS_SHOWN, MAX_TABLE_READS, WalkError, compare_map, expected_kernel_map,
                      layout_value, pick_in, top_level)

# Guest RAM of the boots that check maps: more than the window, so RAM above it exists.
GRADER_RAM = 128 * 1024 * 1024


def stop_words(reason):
    """('PML4', 96) from a walk's 'PML4 entry 96 not present' (kernel or grader wording; the
    grader's AArch64 walker says 'L0 entry 299 invalid (translation fault)')."""
    m = re.search(r"(\w+) entry (\d+) (?:not present|invalid)", reason or "")
    return (m[1], int(m[2])) if m else None


def check_whole_map(boot, kernel, arch, token, extra=None):
    """Boots the kernel to idle, stops it at an instant the grader picks, and compares the live
    map with the whole expected map; returns (run, problems)."""
    def script(guest):
        snap = guest.stop_at_line(r"^idle:", delay=pick_in(token, "instant", 0, 200) / 1000)
        problems = compare_map(snap, expected_kernel_map(kernel, arch, GRADER_RAM))
        for register, bit, message in ARCHES[arch].paging_controls:
            if not snap.registers[register] >> bit & 1:
                problems.append(message)
        if extra is not None:
            problems += extra(snap)
        guest.end()
        return problems

    run = boot(token=token, memory=f"{GRADER_RAM >> 20}M", witness=script)
    return run, run.require_witness()


# ---- The kernel half, entry by entry -----------------------------------------------------------

def entries_in_range(snap, kernel, arch, root, lo, hi):
    """Every present entry of the tree at @p root whose range meets [lo, hi) (one half of the
    address space), read by the grader from guest RAM, parents before children:
    [(level, va, entry, is_leaf)], va the first address the entry covers. WalkError on a table
    cycle or an absurd tree."""
    entries_per, levels = layout_value(kernel, "entries_per_table"), layout_value(kernel, "levels")
    mask, shift0 = layout_value(kernel, "address_mask"), top_level(kernel).shift
    index_bits, is_leaf = entries_per.bit_length() - 1, ARCHES[arch].kernel_half_bits["is_leaf"]
    reads, out = [0], []

    def visit(pa, level, lo, hi):
        reads[0] += 1
        if reads[0] > MAX_TABLE_READS:
            raise WalkError(f"more than {MAX_TABLE_READS} tables in [{lo:#x}, {hi:#x}): a table cycle?")
        table = snap.table_entries(pa)
        shift = shift0 - index_bits * level
        va = lo
        while va < hi:
            start = va & ~((1 << shift) - 1)
            e = table[(va >> shift) & (entries_per - 1)]
            if e & 1:
                leaf = is_leaf(e, level, levels - 1)
                out.append((level, start, e, leaf))
                if not leaf:
                    visit(e & mask, level + 1, max(va, start), min(hi, start + (1 << shift)))
            va = start + (1 << shift)

    visit(root, 0, lo, hi)
    return out


def kernel_half_entries(snap, kernel, arch):
    """entries_in_range() of the whole kernel half of the live kernel root."""
    return entries_in_range(snap, kernel, arch, snap.root, layout_value(kernel, "kernel_half_base"), 1 << 64)


def kernel_half_problems(snap, kernel, arch, what):
    """Problems of the kernel half's entries: @p what is 'user' (an entry at any level allows
    user access) or 'global' (a leaf is not global)."""
    bits = ARCHES[arch].kernel_half_bits
    try:
        entries = kernel_half_entries(snap, kernel, arch)
    except WalkError as e:
        return [str(e)]
    if not entries:
        return ["nothing is mapped in the kernel half"]
    problems, names = [], ("top-level", "level-1", "level-2", "level-3", "level-4")
    for level, va, e, leaf in entries:
        if what == "user":
            bad = bits["leaf_allows_user"](e) if leaf else bits["table_allows_user"](e)
            words = bits["user_words"]
        else:
            bad, words = leaf and not bits["leaf_global"](e), bits["global_words"]
        if bad:
            problems.append(f"the {names[level]} {'leaf' if leaf else 'table'} entry for {va:#x} is {e:#x}: {words}")
    if what == "global" and bits["global_control"]:
        register, bit, message = bits["global_control"]
        if not snap.registers[register] >> bit & 1:
            problems.append(message)
    if len(problems) > MAX_PROBLEMS_SHOWN:
        problems = problems[:MAX_PROBLEMS_SHOWN] + [f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more"]
    return problems
