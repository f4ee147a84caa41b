"""Checks the tests of several labs share (on top of witness.py): the whole-map check at an
instant the grader picks, and the architecture facts of the fault tests."""
import re

from pagoda_core import faultlog

from .witness import (MAX_PROBLEMS_SHOWN, MAX_TABLE_READS, WalkError, compare_map, expected_kernel_map,
                      layout_value, pick_in, top_level)

# How each architecture raises the page faults these tests provoke: expect_fault()'s vector,
# error and error_mask for a read of an unmapped page, a write to a read-only page and an
# instruction fetch from a no-execute page. x86_64: #PF (vector 14) and its error code.
# AArch64: QEMU's exception 4 (Data Abort) or 3 (Prefetch Abort) and the syndrome, ESR: class
# (EC 0x25 data abort / 0x21 instruction abort, same EL), WnR and the fault status type
# (translation or permission fault); its level depends on the tables, so it is masked out.
PAGE_FAULT = {
    "x86_64": dict(read=dict(vector=14, error=0x0), write_protect=dict(vector=14, error=0x3),
                   fetch=dict(vector=14, error=0x11)),
    "aarch64": dict(read=dict(vector=4, error=0x9600_0004, error_mask=faultlog.ESR_FAULT_KIND_MASK),
                    write_protect=dict(vector=4, error=0x9600_004C, error_mask=faultlog.ESR_FAULT_KIND_MASK),
                    fetch=dict(vector=3, error=0x8600_000C, error_mask=faultlog.ESR_FAULT_KIND_MASK)),
}
# The paging controls that make permissions real, read from outside: (register, bit, what).
PAGING_CONTROLS = {"x86_64": (("efer", 11, "EFER.NXE is off: no-execute bits are not enforced"),
                              ("cr0", 16, "CR0.WP is off: the kernel can write to read-only pages")),
                   "aarch64": (("sctlr_el1", 0, "SCTLR_EL1.M is off: the MMU does not translate"),
                               ("sctlr_el1", 19, "SCTLR_EL1.WXN is off: writable pages are executable"))}
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
        for register, bit, message in PAGING_CONTROLS[arch]:
            if not snap.registers[register] >> bit & 1:
                problems.append(message)
        if extra is not None:
            problems += extra(snap)
        guest.end()
        return problems

    run = boot(token=token, memory=f"{GRADER_RAM >> 20}M", witness=script)
    return run, run.require_witness()


# ---- The kernel half, entry by entry -----------------------------------------------------------

# What the grader reads in each entry of the kernel half's tables, per architecture. x86_64: the
# upper half of CR3's root (PML4 256..511); US (bit 2) at every level must be clear, and every
# leaf global (G, bit 8; CR4.PGE on, bit 7). AArch64: every entry of TTBR1's root; a table
# descriptor must forbid EL0 below it (APTable[0], bit 61), a leaf must be EL1-only (AP[1], bit 6,
# clear) and global (nG, bit 11, clear: one TLB entry for every ASID).
KERNEL_HALF_BITS = {
    "x86_64": dict(table_allows_user=lambda e: bool(e & 1 << 2), leaf_allows_user=lambda e: bool(e & 1 << 2),
                   leaf_global=lambda e: bool(e & 1 << 8),
                   is_leaf=lambda e, level, last: level == last or (level in (1, 2) and bool(e & 1 << 7)),
                   user_words="US set", global_words="G clear", hardware_bits=(1 << 5) | (1 << 6),
                   global_control=("cr4", 7, "CR4.PGE is off: global entries are flushed at every CR3 load")),
    "aarch64": dict(table_allows_user=lambda e: not e & 1 << 61, leaf_allows_user=lambda e: bool(e & 1 << 6),
                    leaf_global=lambda e: not e & 1 << 11,
                    is_leaf=lambda e, level, last: level == last or (level in (1, 2) and e & 3 == 1),
                    user_words="EL0 allowed (APTable[0] clear on a table, AP[1] set on a leaf)",
                    global_words="nG set", global_control=None, hardware_bits=0),
}


def entries_in_range(snap, kernel, arch, root, lo, hi):
    """Every present entry of the tree at @p root whose range meets [lo, hi) (one half of the
    address space), read by the grader from guest RAM, parents before children:
    [(level, va, entry, is_leaf)], va the first address the entry covers. WalkError on a table
    cycle or an absurd tree."""
    entries_per, levels = layout_value(kernel, "entries_per_table"), layout_value(kernel, "levels")
    mask, shift0 = layout_value(kernel, "address_mask"), top_level(kernel).shift
    index_bits, is_leaf = entries_per.bit_length() - 1, KERNEL_HALF_BITS[arch]["is_leaf"]
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
    bits = KERNEL_HALF_BITS[arch]
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
