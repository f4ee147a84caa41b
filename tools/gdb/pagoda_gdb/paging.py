"""Page-table commands: pt-regs, pt-walk, pt-dump, pt-diff (thin layers over pagoda_pt)."""

import gdb

from pagoda_pt import (decode_x86_regs, diff_runs, dump, format_diff, format_runs, format_walk,
                       format_x86_regs, walk)

from . import target
from .args import address, parse
from .registry import CommandError, PagodaCommand, UsageError, command, out

ADDR = "0x%016x"


def symbol_of(addr):
    """'pagoda::kmain(pagoda::BootInfo const&) in section .text', or '' when none."""
    try:
        text = gdb.execute("info symbol %#x" % addr, to_string=True).strip()
    except gdb.error:
        return ""
    return "" if text.startswith("No symbol") else text


def walk_address(arch, regs, va, root=None, read_phys=None):
    """Walks @p va (with the current root unless @p root); returns the pagoda_pt Walk."""
    if read_phys is not None:
        return walk(arch, read_phys, root, va, regs)
    with target.physical_memory() as reader:
        return walk(arch, reader, root, va, regs)


def require_paging(arch, regs, root):
    """CommandError when there is no root given and the CPU does not translate yet."""
    if root is None:
        reason = target.paging_off_reason(arch, regs)
        if reason:
            raise CommandError(reason)


def root_label(arch, regs, root):
    if root is not None:
        return ADDR % root
    if arch == "x86_64":
        return ADDR % (regs["cr3"] & ~0xFFF & ((1 << 52) - 1)) + " (CR3)"
    return "TTBR0_EL1/TTBR1_EL1"


@command
class PtRegs(PagodaCommand):
    """Decode the paging registers: CR0, CR3, CR4, EFER, CR2, GDT, IDT and TR.

Usage: pt-regs
The CR and EFER values come from GDB's registers; GDT, IDT, TR and CR2 from QEMU's
`monitor info registers`.  On AArch64: TTBR0/1_EL1, TCR_EL1, MAIR_EL1, SCTLR_EL1."""

    name = "pt-regs"
    usage = "pt-regs"

    def run(self, arg, from_tty):
        parse(arg, max_positional=0)
        target.require_stopped()
        arch = target.current_arch()
        if arch == "aarch64":
            regs = target.aarch64_system_regs()
            for name in target.AARCH64_REGS:
                value = regs.get(name)
                out("%-10s %s" % (name, "<unavailable>" if value is None else ADDR % value))
            sctlr = regs.get("SCTLR_EL1")
            if sctlr is not None:
                out("MMU %s (SCTLR_EL1.M=%d)" % ("on" if sctlr & 1 else "off", sctlr & 1))
            return
        regs = target.x86_control_regs()
        system = target.x86_system_regs()
        decoded = decode_x86_regs(regs["cr0"], regs["cr3"], regs["cr4"], regs["efer"])
        raw = {"CR0": regs["cr0"], "CR3": regs["cr3"], "CR4": regs["cr4"], "EFER": regs["efer"]}
        for line in format_x86_regs(decoded).split("\n"):
            key = line.split(" ", 1)[0]
            if key in raw:
                line = "%-5s %s  %s" % (key, ADDR % raw[key], line[len(key):].strip())
            out(line)
        cr2 = regs.get("cr2")
        if cr2 is None:
            cr2 = system.get("CR2")
        if cr2 is not None:
            out("%-5s %s  (address of the last page fault)" % ("CR2", ADDR % cr2))
        for name in ("GDT", "IDT"):
            table = system.get(name)
            if table is None:
                continue
            line = "%-5s base %s limit %#x" % (name, ADDR % table["base"], table["limit"])
            if name == "IDT":
                gates = (table["limit"] + 1) // 16 if table["limit"] else 0
                line += "  (%d gates)" % gates
                if gates == 0:
                    line += "  EMPTY: no exception can be delivered, any fault triple-faults"
            out(line)
        tr = system.get("TR")
        if tr is not None:
            out("%-5s selector %#x base %s limit %#x %s" % (
                "TR", tr["selector"], ADDR % tr["base"], tr["limit"], tr["text"]))
            if tr["selector"] == 0:
                out("note: TR=0: no TSS loaded (no IST stacks, no RSP0 for traps from user "
                    "mode)")


@command
class PtWalk(PagodaCommand):
    """Translate a virtual address level by level through the page tables.

Usage: pt-walk VA [--root PA]
VA is any GDB expression: 0x100000, $rip, &pagoda::kmain, frame->rip.
Prints each level's index, entry address, raw entry and flags, then the physical address
(with page size and permissions) or where and why the walk stops.
--root PA walks the tables at physical address PA instead of the current root (CR3 or
TTBR), also before paging is on."""

    name = "pt-walk"
    usage = "pt-walk VA [--root PA]"

    def run(self, arg, from_tty):
        args = parse(arg, options=("--root",), min_positional=1, max_positional=1, join=True)
        target.require_stopped()
        arch = target.current_arch()
        va = address(args.positional[0], "VA")
        root = address(args.options["--root"], "root") if "--root" in args.options else None
        regs = target.paging_regs(arch)
        require_paging(arch, regs, root)
        result = walk_address(arch, regs, va, root)
        lines = format_walk(result).split("\n")
        symbol = symbol_of(va)
        if symbol:
            lines.insert(1, "  symbol: " + symbol)
        if root is not None:
            lines.insert(1, "  root: " + ADDR % root)
        out("\n".join(lines))


@command
class PtDump(PagodaCommand):
    """List every mapping of an address space as merged runs with permissions.

Usage: pt-dump [--user|--kernel] [--root PA]
One line per run of pages that are contiguous in virtual and physical memory and share
page size and permissions: VA range, size, first PA, rwx + u(ser)/k(ernel), page size,
memory type.  --user keeps user-accessible runs, --kernel the others; --root PA dumps the
tables at PA instead of the current root."""

    name = "pt-dump"
    usage = "pt-dump [--user|--kernel] [--root PA]"

    def run(self, arg, from_tty):
        args = parse(arg, flags=("--user", "--kernel"), options=("--root",), max_positional=0)
        if {"--user", "--kernel"} <= args.flags:
            raise UsageError("--user and --kernel exclude each other")
        target.require_stopped()
        arch = target.current_arch()
        root = address(args.options["--root"], "root") if "--root" in args.options else None
        regs = target.paging_regs(arch)
        require_paging(arch, regs, root)
        problems = []
        with target.physical_memory() as read_phys:
            runs = dump(arch, read_phys, root, regs, user_only="--user" in args.flags,
                        kernel_only="--kernel" in args.flags, problems=problems)
        out("page tables at " + root_label(arch, regs, root))
        out(format_runs(runs))
        for problem in problems:
            out("problem: " + problem)


@command
class PtDiff(PagodaCommand):
    """Compare two address spaces: what only one maps, and what they map differently.

Usage: pt-diff ROOT_A ROOT_B
ROOT_A and ROOT_B are physical addresses of root tables (GDB expressions, e.g. $cr3,
&boot_pml4, proc->root; quote an expression with spaces: "$cr3 & ~0xfff")."""

    name = "pt-diff"
    usage = "pt-diff ROOT_A ROOT_B"

    def run(self, arg, from_tty):
        args = parse(arg, min_positional=2, max_positional=2)
        target.require_stopped()
        arch = target.current_arch()
        root_a = address(args.positional[0], "ROOT_A")
        root_b = address(args.positional[1], "ROOT_B")
        regs = target.paging_regs(arch)
        problems_a, problems_b = [], []
        with target.physical_memory() as read_phys:
            runs_a = dump(arch, read_phys, root_a, regs, problems=problems_a)
            runs_b = dump(arch, read_phys, root_b, regs, problems=problems_b)
        out("A = %s (%s), B = %s (%s)" % (ADDR % root_a, args.positional[0], ADDR % root_b,
                                          args.positional[1]))
        out(format_diff(diff_runs(runs_a, runs_b), "A", "B"))
        for side, problems in (("A", problems_a), ("B", problems_b)):
            for problem in problems:
                out("problem in %s: %s" % (side, problem))
