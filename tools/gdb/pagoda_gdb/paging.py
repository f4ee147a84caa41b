"""Page-table commands: pt-regs, pt-walk, pt-dump, pt-diff, pt-top, pt-ps (thin layers over
pagoda_pt).

Roots given by the user (--root, pt-diff's ROOT_A/ROOT_B) are process ids or physical
addresses. A plain decimal number below 4096 is a process id, looked up among the roots the
kernel published (kernel/mm/space/debug_roots.hpp; `pt-ps` lists them); anything else is a physical
address: a pagoda::PhysAddr value counts by its value; a kernel virtual address is refused with the
physical address it translates to (never converted silently: mixing the two up is the bug
these commands help find), and pt-dump/pt-diff refuse a page that does not look like a root
table instead of printing its garbage as thousands of "problems".
"""

import re

from pagoda_pt import contract as C
from pagoda_pt.format import ADDR, format_diff, format_range, format_runs, format_walk, format_x86_regs
from pagoda_pt.regs import decode_x86_regs
from pagoda_pt.walker import diff_runs, dump, walk
from pagoda_pt.trees import cow_pairs, user_pages
from pagoda_pt.isa import isa
from pagoda_pt.model import PAGE_SIZE_4K
from pagoda_pt.diagnose_x86_64 import RESET_IDT, cpu_mode, idt_vectors
from pagoda_pt.roots import address_problem, format_top_level, root_problems, top_level
from pagoda_pt.swapstate import SWAP_FACTS, swap_note

from . import kernel, target
from .args import address, parse
from .kernel import symbol_of
from .cpus import cpu_option, on_cpu
from .registry import CommandError, PagodaCommand, UsageError, command, out

MAX_PROBLEMS = 20          # problem lines printed per tree; the rest are counted


def walk_address(arch, regs, va, root=None, read_phys=None, pa_bits=None):
    """Walks @p va (with the current root unless @p root); returns the pagoda_pt Walk."""
    if pa_bits is None:
        pa_bits = target.pa_bits(arch)[0]
    return _with_reader(read_phys, lambda reader: walk(arch, reader, root, va, regs, pa_bits=pa_bits))


def require_paging(arch, regs, root):
    """CommandError when there is no root given and the CPU does not translate yet."""
    if root is None:
        reason = target.paging_off_reason(arch, regs)
        if reason:
            raise CommandError(reason)


def active_root(arch, regs):
    """The physical address of the root the CPU uses (TTBR0's table on AArch64)."""
    return isa(arch).root_of(regs)


def root_label_of(arch, regs, root):
    if root is not None:
        return ADDR % root
    model = isa(arch)
    if model.one_root:
        return ADDR % active_root(arch, regs) + " (%s)" % model.lower_root_label
    return "/".join(name.upper() for name, _ in model.root_masks)


PID_ARGUMENT = re.compile(r"^\s*(?:pid[ =:]?)?(\d+)\s*$")
MAX_PID = 0xFFF           # a smaller number is a process id: no root table lives in page 0


def process_root(pid, read_phys=None):
    """The KnownRoot the kernel published for process @p pid; CommandError when there is none."""
    table, note = _with_reader(read_phys, kernel.published_roots)
    if table is None:
        raise CommandError("process %d: %s" % (pid, note))
    for known in table.roots:
        if known.kind == "process" and known.id == pid:
            return known
    alive = ", ".join("%d" % k.id for k in table.roots if k.kind == "process")
    raise CommandError("no process with id %d has a root (%s; pt-ps lists them)"
                       % (pid, "processes with roots: " + alive if alive else "no process has one"))


def root_argument(expr, what, arch, regs, pa_bits, read_phys=None, whole_table=False):
    """The physical address a root argument names: a process id (a decimal number below 4096,
    or pid=N) names that process's published root.  Refuses (CommandError) a kernel virtual
    address, saying which physical address it translates to, an address above the physical
    width, and, with @p whole_table, a page that does not look like a root table."""
    pid = PID_ARGUMENT.match(expr)
    if pid and int(pid.group(1)) <= MAX_PID:
        return process_root(int(pid.group(1)), read_phys).root
    root = address(expr, what, want="phys")
    problem = address_problem(arch, root, pa_bits)
    if problem:
        hint = ""
        if "virtual" in problem and target.paging_off_reason(arch, regs) is None:
            translated = walk_address(arch, regs, root, read_phys=read_phys, pa_bits=pa_bits)
            if translated.mapped:
                hint = " (the active root maps it to PA %#x: pass that)" % translated.pa
        raise CommandError("%s %s: %s; roots are physical addresses%s" % (what, expr, problem,
                                                                         hint))
    if whole_table:
        problems = _with_reader(read_phys, lambda r: root_problems(arch, r, root, pa_bits))
        if problems:
            raise CommandError("%s %s: %s" % (what, expr, problems[0]))
    return root


def _with_reader(read_phys, body):
    """@p body(a physical-memory reader): @p read_phys, or one opened for the call when it is None."""
    if read_phys is not None:
        return body(read_phys)
    with target.physical_memory() as reader:
        return body(reader)


def print_problems(problems, prefix="problem: "):
    for problem in problems[:MAX_PROBLEMS]:
        out(prefix + problem)
    if len(problems) > MAX_PROBLEMS:
        out("%s... and %d more (%d in all)" % (prefix, len(problems) - MAX_PROBLEMS,
                                                len(problems)))


@command
class PtRegs(PagodaCommand):
    """Decode the paging registers: CR0, CR3, CR4, EFER, CR2, GDT, IDT, TR, physical width.

Usage: pt-regs
The CR and EFER values come from GDB's registers; GDT, IDT, TR and CR2 from QEMU's
`monitor info registers`.  The IDT line counts the vectors it can deliver with the gate size
of the CPU's mode (16 bytes in long mode, 8 in protected mode, 4 in real mode; at most 256).
The physical address width (CPUID 0x80000008) decides which entry bits are reserved.
On AArch64: TTBR0/1_EL1, TCR_EL1, MAIR_EL1, SCTLR_EL1 and ID_AA64MMFR0_EL1.PARange."""

    name = "pt-regs"
    usage = "pt-regs"

    def run(self, arg, from_tty):
        parse(arg, max_positional=0)
        arch = target.require_stopped()
        bits, source = target.pa_bits(arch)
        if isa(arch).registers_from == "gdbstub":     # the gdbstub's system registers alone
            regs = target.system_regs(arch)
            for name in isa(arch).system_registers:
                value = regs.get(name)
                out("%-10s %s" % (name, "<unavailable>" if value is None else ADDR % value))
            sctlr = regs.get("SCTLR_EL1")
            if sctlr is not None:
                out("MMU %s (SCTLR_EL1.M=%d)" % ("on" if sctlr & 1 else "off", sctlr & 1))
            out("physical address width: %d bits (%s)" % (bits, source))
            return
        regs = target.x86_control_regs()
        system = target.x86_system_regs()
        decoded = decode_x86_regs(regs["cr0"], regs["cr3"], regs["cr4"], regs["efer"], bits)
        raw = {"CR0": regs["cr0"], "CR3": regs["cr3"], "CR4": regs["cr4"], "EFER": regs["efer"]}
        for line in format_x86_regs(decoded).split("\n"):
            key = line.split(" ", 1)[0]
            if key in raw:
                line = "%-5s %s  %s" % (key, ADDR % raw[key], line[len(key):].strip())
            out(line)
        out("physical address width: %d bits (%s)" % (bits, source))
        cr2 = regs.get("cr2")
        if cr2 is None:
            cr2 = system.get("CR2")
        if cr2 is not None:
            out("%-5s %s  (address of the last page fault)" % ("CR2", ADDR % cr2))
        mode = cpu_mode(regs["cr0"], regs["efer"])
        for name in ("GDT", "IDT"):
            table = system.get(name)
            if table is None:
                continue
            line = "%-5s base %s limit %#x" % (name, ADDR % table["base"], table["limit"])
            if name == "IDT":
                vectors = idt_vectors(table["limit"], mode)
                line += "  (%d vectors of %s-mode gates)" % (vectors, mode)
                if (table["base"], table["limit"]) == RESET_IDT:
                    line += "  the reset value: no IDT loaded yet"
                elif vectors == 0:
                    line += "  EMPTY: no exception can be delivered, any fault triple-faults"
                elif vectors < 32:
                    line += "  SHORT: exceptions above vector %d cannot be delivered" % (
                        vectors - 1)
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

Usage: pt-walk VA [--root PID|PA] [--cpu N]
VA is any GDB expression: 0x100000, $rip, &pagoda::kmain, frame->rip, a pagoda::VirtAddr.
Prints each level's index, entry address, raw entry and flags, then the physical address
(with page size and permissions) or where and why the walk stops.  An entry holding an
address above the CPU's physical width is a reserved-bit fault; one that looks like a kernel
virtual address is called that.
--root PID|PA walks the root of process PID (a decimal number below 4096: pt-ps lists them)
or the tables at physical address PA (a pagoda::PhysAddr, or a hex number) instead of the
current root (CR3 or TTBR), also before paging is on.  A kernel virtual address is refused:
roots are physical.
--cpu N walks with CPU N's registers (its root; `cpus` lists the CPUs) instead of those of the
CPU GDB reads now."""

    name = "pt-walk"
    usage = "pt-walk VA [--root PID|PA] [--cpu N]"

    def run(self, arg, from_tty):
        args = parse(arg, options=("--root", "--cpu"), min_positional=1, max_positional=1, join=True)
        arch = target.require_stopped()
        va = address(args.positional[0], "VA", want="virt")
        cpu = cpu_option(args)
        with on_cpu(cpu):
            regs = target.paging_regs(arch)
        bits = target.pa_bits(arch)[0]
        root = None
        if "--root" in args.options:
            root = root_argument(args.options["--root"], "root", arch, regs, bits)
        require_paging(arch, regs, root)
        result = walk_address(arch, regs, va, root, pa_bits=bits)
        lines = format_walk(result).split("\n")
        facts = {name: kernel.symbol_address(C.fact_symbol(name)) or 0 for name in SWAP_FACTS}
        swapped = swap_note(result, (kernel.symbol_address(C.fact_symbol("levels")) or 4) - 1, facts)
        if swapped:
            lines.append("  " + swapped)
        symbol = symbol_of(va)
        if symbol:
            lines.insert(1, "  symbol: " + symbol)
        if root is not None:
            lines.insert(1, "  root: " + ADDR % root)
        elif cpu is not None:
            lines.insert(1, "  CPU %d's root: %s" % (cpu, ADDR % active_root(arch, regs)))
        out("\n".join(lines))


@command
class PtDump(PagodaCommand):
    """List every mapping of an address space as merged runs with permissions.

Usage: pt-dump [--user|--kernel] [--root PID|PA]
One line per run of pages that are contiguous in virtual and physical memory and share
page size and permissions: VA range (first and last byte), size, first PA, rwx +
u(ser)/k(ernel), page size, memory type.  --user keeps user-accessible runs, --kernel the
others; --root PID dumps process PID's root (pt-ps lists them), --root PA the tables at
physical address PA, instead of the current root (a page that does not look like a root
table is refused).  At most 20 problem entries are listed."""

    name = "pt-dump"
    usage = "pt-dump [--user|--kernel] [--root PID|PA]"

    def run(self, arg, from_tty):
        args = parse(arg, flags=("--user", "--kernel"), options=("--root",), max_positional=0)
        if {"--user", "--kernel"} <= args.flags:
            raise UsageError("--user and --kernel exclude each other")
        arch = target.require_stopped()
        regs = target.paging_regs(arch)
        bits = target.pa_bits(arch)[0]
        problems = []
        with target.physical_memory() as read_phys:
            root = None
            if "--root" in args.options:
                root = root_argument(args.options["--root"], "root", arch, regs, bits,
                                     read_phys, whole_table=True)
            require_paging(arch, regs, root)
            runs = dump(arch, read_phys, root, regs, user_only="--user" in args.flags,
                        kernel_only="--kernel" in args.flags, problems=problems, pa_bits=bits)
        out("page tables at " + root_label_of(arch, regs, root))
        out(format_runs(runs))
        print_problems(problems)


def _page_ranges(pairs):
    """[(first va, end va, first pa)] of runs of pages in @p pairs consecutive in both."""
    ranges = []
    for a, _ in pairs:
        if ranges and ranges[-1][1] == a.va and a.pa == ranges[-1][2] + (a.va - ranges[-1][0]):
            ranges[-1][1] = a.va + PAGE_SIZE_4K
        else:
            ranges.append([a.va, a.va + PAGE_SIZE_4K, a.pa])
    return ranges


def format_cow(pages_a, pages_b, most=64):
    """pt-diff's copy-on-write lines: the user pages A and B map to the same frame read-only
    (shared copy-on-write), and those where a shared frame is writable in one of them; nothing
    when neither maps a user page."""
    if not pages_a and not pages_b:
        return []                   # two kernel-only roots: nothing to share
    shared, writable = cow_pairs(pages_a, pages_b)
    lines = ["user pages: A maps %d, B maps %d; copy-on-write shared (same frame, read-only in "
             "both): %d" % (len(pages_a), len(pages_b), len(shared))]
    ranges = _page_ranges(shared)
    for start, end, pa in ranges[:most]:
        lines.append("  shared %s  %4d page%s  PA %#x" % (format_range(start, end),
                                                         (end - start) // PAGE_SIZE_4K,
                                                         "" if end - start == PAGE_SIZE_4K else "s", pa))
    if len(ranges) > most:
        lines.append("  ... and %d more ranges" % (len(ranges) - most))
    for a, b in writable[:most]:
        lines.append("problem: %#x maps the same frame %#x in both, writable in %s: a write "
                     "there reaches the other process (copy-on-write must write-protect both)"
                     % (a.va, a.pa, " and ".join(n for n, p in (("A", a), ("B", b)) if p.writable)))
    return lines


@command
class PtDiff(PagodaCommand):
    """Compare two address spaces: what only one maps, and what they map differently.

Usage: pt-diff ROOT_A ROOT_B
ROOT_A and ROOT_B are process ids (pt-ps lists them) or physical addresses of root tables (GDB expressions, e.g. $cr3,
&boot_pml4, a pagoda::PhysAddr such as proc->root; quote an expression with spaces:
"$cr3 & ~0xfff").  A kernel virtual address, or a page that does not look like a root
table, is refused.  At most 20 problem entries per side are listed.
Then the user pages both map at the same address to the same frame, read-only in both: the
pages a copy-on-write fork shares (a parent and its child: pt-diff 1 2), as ranges; a shared
frame that either side may write is a problem (the other process would see the write)."""

    name = "pt-diff"
    usage = "pt-diff ROOT_A ROOT_B"

    def run(self, arg, from_tty):
        args = parse(arg, min_positional=2, max_positional=2)
        arch = target.require_stopped()
        regs = target.paging_regs(arch)
        bits = target.pa_bits(arch)[0]
        problems_a, problems_b = [], []
        with target.physical_memory() as read_phys:
            root_a = root_argument(args.positional[0], "ROOT_A", arch, regs, bits, read_phys,
                                   whole_table=True)
            root_b = root_argument(args.positional[1], "ROOT_B", arch, regs, bits, read_phys,
                                   whole_table=True)
            runs_a = dump(arch, read_phys, root_a, regs, problems=problems_a, pa_bits=bits)
            runs_b = dump(arch, read_phys, root_b, regs, problems=problems_b, pa_bits=bits)
            # The user pages of both, page by page, for the copy-on-write summary.
            pages_a = user_pages(arch, read_phys, root_a, regs, bits)
            pages_b = user_pages(arch, read_phys, root_b, regs, bits)
        out("A = %s (%s), B = %s (%s)" % (ADDR % root_a, args.positional[0], ADDR % root_b,
                                          args.positional[1]))
        if not runs_a and not runs_b:
            out("no differences: neither root maps anything")
        else:
            out(format_diff(diff_runs(runs_a, runs_b), "A", "B"))
        for line in format_cow(pages_a, pages_b):
            out(line)
        print_problems(problems_a, "problem in A: ")
        print_problems(problems_b, "problem in B: ")


@command
class PtTop(PagodaCommand):
    """List the top-level entries of a root: present or not, shared with the kernel root.

Usage: pt-top [--root PID|PA]
Groups the entries of the root table (PML4 on x86_64) by what they are: empty, present with
their own table, shared with the kernel root (the same table frame, so later kernel mappings
appear here too), or MISSING (the kernel root has them, this root does not).  On AArch64 the
current root is TTBR0's, with no kernel half: its L0 entries are listed, and TTBR1_EL1 is
checked to hold the kernel root every space shares.  A root whose
kernel half is missing or incomplete says so: pt-dump skips empty tables, this does not.
The kernel root is the one the kernel published (kernel/mm/space/debug_roots.hpp).
--root PID shows process PID's root, --root PA the root at PA, instead of the current one."""

    name = "pt-top"
    usage = "pt-top [--root PID|PA]"

    def run(self, arg, from_tty):
        args = parse(arg, options=("--root",), max_positional=0)
        arch = target.require_stopped()
        regs = target.paging_regs(arch)
        bits = target.pa_bits(arch)[0]
        with target.physical_memory() as read_phys:
            if "--root" in args.options:
                root = root_argument(args.options["--root"], "root", arch, regs, bits,
                                     read_phys)
            else:
                require_paging(arch, regs, None)
                root = active_root(arch, regs)
            table, note = kernel.published_roots(read_phys)
            kernel_root = table.kernel() if table is not None else None
            # On AArch64 a TTBR0 root has no kernel half to compare: every space shares the
            # kernel's through TTBR1 (checked below instead).
            compare = kernel_root.root if kernel_root and isa(arch).one_root else None
            try:
                view = top_level(arch, read_phys, root, compare, bits)
            except Exception as err:  # noqa: BLE001 - an unreadable root
                raise CommandError("cannot read the root table at %#x: %s" % (root, err)) \
                    from None
        known = table.find(root) if table is not None else None
        out(format_top_level(view, "'%s'" % known.name if known else "",
                             "'%s'" % kernel_root.name if kernel_root else ""))
        model = isa(arch)
        if not model.one_root and kernel_root is not None:
            ttbr1 = model.root_of(regs, model.upper_root)
            if ttbr1 == kernel_root.root:
                out("TTBR1_EL1 holds the kernel root %#x '%s': this space shares the kernel half"
                    % (ttbr1, kernel_root.name))
            else:
                out("problem: TTBR1_EL1 holds %#x, not the kernel root %#x '%s': the kernel "
                    "half is not the kernel's" % (ttbr1, kernel_root.root, kernel_root.name))
        if kernel_root is None:
            out("note: no kernel root to compare with (%s)" % (note or "none published"))
        elif note:
            out("note: " + note)


@command
class PtPs(PagodaCommand):
    """List the processes and the roots the kernel published, the active one marked.

Usage: pt-ps
One line per published root (kernel/mm/space/debug_roots.hpp): the process id, its name, its state
and kernel stack slot from the kernel's process table (pagoda_pt.procs), and the
physical address of its root; `*` marks the root in CR3 (TTBR0 on AArch64).  The kernel's and
the boot roots are listed too.  A process id is what `--root` of pt-walk, pt-dump and pt-top
takes."""

    name = "pt-ps"
    usage = "pt-ps"

    def run(self, arg, from_tty):
        parse(arg, max_positional=0)
        arch = target.require_stopped()
        regs = target.paging_regs(arch)
        with target.physical_memory() as read_phys:
            table, note = kernel.published_roots(read_phys)
        if table is None:
            raise CommandError(note)
        active = None if target.paging_off_reason(arch, regs) else active_root(arch, regs)
        try:
            procs, why = {p.pid: p for p in kernel.read_processes()}, ""
        except CommandError as err:
            procs, why = {}, str(err)
        out("  %5s  %-16s %-9s %6s  %s" % ("PID", "NAME", "STATE", "KSTACK", "ROOT"))
        for known in table.roots:
            mark = "*" if known.root == active else " "
            if known.kind == "process":
                p = procs.get(known.id)
                state = "?" if p is None else "running" if p.current else p.state_word
                out("%s %5d  %-16s %-9s %6s  %s" % (
                    mark, known.id, known.name, state, "slot %d" % p.kslot if p else "?", ADDR % known.root))
            else:
                out("%s %5s  %-16s %-9s %6s  %s" % (mark, "-", known.name, known.kind, "", ADDR % known.root))
        if active is not None and table.find(active) is None:
            out("* CR3 holds %s, a root the kernel did not publish" % (ADDR % active))
        if why:
            out("note: " + why)
        if note:
            out("note: " + note)
