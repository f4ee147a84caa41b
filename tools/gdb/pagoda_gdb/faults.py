"""fault-why: explain the exception the machine is stopped in.

Two situations:
  * stopped in the kernel's trap handler x86_trap (a breakpoint on it, or on panic_end which
    it calls): vector, error code, RIP and RSP come from its TrapFrame (the `frame`
    argument, or the stack address x86_trap_common passed when `frame` is optimized out);
  * anywhere else, e.g. after a triple fault that QEMU paused (-action shutdown=pause): the
    registers as they are, with a check of everything the CPU needs to deliver an exception
    (IDT, RIP, RSP, GDT, TSS mapped), which is what a triple fault is missing.
For a page fault, the error code is decoded and CR2 is walked through the page tables, and
the walk is compared with what the access needed.
"""

import importlib.util
import os

import gdb

from pagoda_pt import decode_gp_error, decode_pf_error, format_gp_error, format_pf_error
from pagoda_pt import format_walk

from . import session, target
from .args import parse
from .paging import ADDR, symbol_of, walk_address
from .registry import CommandError, PagodaCommand, command, out

TRAP_FUNCTION = "x86_trap"
TRAP_FRAME_TYPE = "pagoda::x86::TrapFrame"
# Field order of TrapFrame (arch/x86_64/trap_frame.hpp), used only without debug types.
TRAP_FRAME_FIELDS = ("r15", "r14", "r13", "r12", "r11", "r10", "r9", "r8", "rbp", "rdi",
                     "rsi", "rdx", "rcx", "rbx", "rax", "vector", "error", "rip", "cs",
                     "rflags", "rsp", "ss")
MAX_FRAMES = 64

EXCEPTIONS = {
    0: ("#DE", "divide error"), 1: ("#DB", "debug"), 2: ("NMI", "non-maskable interrupt"),
    3: ("#BP", "breakpoint"), 4: ("#OF", "overflow"), 5: ("#BR", "bound range exceeded"),
    6: ("#UD", "invalid opcode"), 7: ("#NM", "device not available"),
    8: ("#DF", "double fault"), 10: ("#TS", "invalid TSS"), 11: ("#NP", "segment not present"),
    12: ("#SS", "stack-segment fault"), 13: ("#GP", "general protection fault"),
    14: ("#PF", "page fault"), 16: ("#MF", "x87 error"), 17: ("#AC", "alignment check"),
    18: ("#MC", "machine check"), 19: ("#XM", "SIMD error"), 20: ("#VE", "virtualization"),
    21: ("#CP", "control protection"),
}
PAGE_FAULT = 14
SELECTOR_VECTORS = (10, 11, 12, 13)
PTE_RW, PTE_US, PTE_NX = 1 << 1, 1 << 2, 1 << 63
CR4_SMEP, CR4_SMAP = 1 << 20, 1 << 21


def find_trap_frame():
    """(gdb frame level, TrapFrame address) of the innermost x86_trap, or None."""
    frame = gdb.newest_frame()
    level = 0
    while frame is not None and level < MAX_FRAMES:
        if frame.name() == TRAP_FUNCTION:
            return level, _trap_frame_address(frame)
        try:
            frame = frame.older()
        except gdb.error:
            return None
        level += 1
    return None


def _trap_frame_address(frame):
    try:
        value = frame.read_var("frame")
        if not value.is_optimized_out:
            return int(value) & ((1 << 64) - 1)
    except (ValueError, gdb.error):
        pass
    # x86_trap_common passes RSP itself (movq %rsp, %rdi; call x86_trap): that is the
    # caller's stack pointer after the call returns, i.e. x86_trap's canonical frame address.
    caller = frame.older()
    if caller is None:
        raise CommandError("x86_trap's `frame` argument is optimized out and its caller is "
                           "unknown")
    return int(caller.read_register("rsp")) & ((1 << 64) - 1)


def read_trap_frame(addr):
    """dict of the TrapFrame fields at @p addr (virtual)."""
    try:
        frame_type = gdb.lookup_type(TRAP_FRAME_TYPE)
        value = gdb.Value(addr).cast(frame_type.pointer()).dereference()
        return {f.name: int(value[f.name]) for f in frame_type.fields() if not f.artificial
                and f.name in TRAP_FRAME_FIELDS}
    except gdb.error:
        data = bytes(gdb.selected_inferior().read_memory(addr, 8 * len(TRAP_FRAME_FIELDS)))
        return {name: int.from_bytes(data[8 * i:8 * i + 8], "little")
                for i, name in enumerate(TRAP_FRAME_FIELDS)}


def exception_name(vector):
    if vector in EXCEPTIONS:
        mnemonic, name = EXCEPTIONS[vector]
        return "%s %s (vector %d)" % (mnemonic, name, vector)
    if vector >= 32:
        return "interrupt vector %d (not an exception)" % vector
    return "reserved exception vector %d" % vector


def _denying_levels(walk, bit, want_set):
    """Names of the levels whose entry has @p bit (un)set in the way that denies access."""
    names = []
    for level in walk.levels:
        if level.raw is None:
            continue
        if bool(level.raw & bit) != want_set:
            names.append("%s[%d]" % (level.name, level.index))
    return names


def page_fault_verdict(error, walk, cr0, cr4):
    """One or more sentences comparing the #PF error code with today's walk of CR2."""
    if error.reserved_bit:
        return ["a paging-structure entry on the way has a reserved bit set" +
                (": " + walk.stop_reason if walk.stop_reason else "")]
    if not error.present:
        if not walk.mapped:
            return ["CR2 is not mapped: " + walk.stop_reason + ". Map it (or find why the "
                    "kernel touched it: look at RIP's code and `bt`)."]
        return ["CR2 is mapped NOW, but was not when the CPU faulted: the mapping was "
                "added afterwards, the fault came from another address space (CR3), or "
                "a stale TLB entry was used (missing invlpg / CR3 reload)."]
    if not walk.mapped:
        return ["the error code says the page was present, but the walk now stops (" +
                walk.stop_reason + "): the tables changed since the fault"]
    reasons = []
    perms = walk.perms
    if error.write and not perms.write and (error.user or cr0 & (1 << 16)):
        levels = _denying_levels(walk, PTE_RW, True)
        reasons.append("a write to a read-only page (RW=0 in %s)" % ", ".join(levels))
    if error.user and not perms.user:
        levels = _denying_levels(walk, PTE_US, True)
        reasons.append("a user-mode access to a supervisor page (US=0 in %s)" %
                       ", ".join(levels))
    if error.fetch and not perms.execute:
        levels = _denying_levels(walk, PTE_NX, False)
        reasons.append("an instruction fetch from a no-execute page (NX=1 in %s)" %
                       ", ".join(levels))
    if not error.user and perms.user:
        if error.fetch and cr4 & CR4_SMEP:
            reasons.append("the kernel fetched an instruction from a user page (CR4.SMEP=1)")
        elif not error.fetch and cr4 & CR4_SMAP:
            reasons.append("the kernel touched a user page with EFLAGS.AC=0 (CR4.SMAP=1)")
    if not reasons:
        reasons.append("the walk now allows this access: the tables were fixed after the "
                       "fault, or the CPU used a stale TLB entry (missing invlpg?)")
    return reasons


def _qemu_log_summary():
    """The first-fault summary of QEMU's -d int log when ./pagoda gdb --int-log made one."""
    path = session.qemu_log_path()
    if not path or not os.path.exists(path):
        return ""
    # tools/pagoda/faultlog.py, loaded by path: putting tools/ on sys.path would let
    # tools/gdb shadow GDB's own `gdb` module.
    tools = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    source = os.path.join(tools, "pagoda", "faultlog.py")
    try:
        spec = importlib.util.spec_from_file_location("pagoda_faultlog", source)
        faultlog = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(faultlog)
    except (ImportError, OSError, SyntaxError):
        return ""
    return faultlog.parse_file(path).summary()


def _check(label, walk, need_write=False, need_exec=False):
    if walk is None:
        return "  %-5s -" % label
    text = "  %-5s %s " % (label, ADDR % walk.va)
    if not walk.mapped:
        return text + "NOT MAPPED: " + walk.stop_reason
    problems = []
    if need_write and not walk.perms.write:
        problems.append("read-only (the CPU pushes the exception frame here)")
    if need_exec and not walk.perms.execute:
        problems.append("not executable")
    if problems:
        return text + "PROBLEM: " + "; ".join(problems)
    return text + "ok -> PA " + ADDR % walk.pa + " " + walk.perms.rwx()


@command
class FaultWhy(PagodaCommand):
    """Explain the exception the kernel is handling, or why the machine stopped.

Usage: fault-why
Stopped in x86_trap (or in a function it called, such as panic_end): reads the vector,
error code, RIP and RSP from the trap frame, decodes the error code and, for a page fault,
walks CR2 and says which permission or mapping was missing.
Stopped anywhere else (e.g. QEMU paused the machine after a triple fault): checks that the
IDT, RIP, RSP, GDT and TSS are usable, which is what delivering an exception needs."""

    name = "fault-why"
    usage = "fault-why"

    def run(self, arg, from_tty):
        parse(arg, max_positional=0)
        target.require_stopped()
        arch = target.current_arch()
        if arch != "x86_64":
            raise CommandError("only x86_64 is supported so far")
        regs = target.x86_control_regs()
        paging = {k: regs[k] for k in ("cr0", "cr3", "cr4", "efer")}
        found = find_trap_frame()
        if found is None:
            self.no_trap_frame(regs, paging)
        else:
            self.trap_frame(regs, paging, *found)
        summary = _qemu_log_summary()
        if summary:
            out("QEMU's interrupt log: " + summary)

    def trap_frame(self, regs, paging, level, addr):
        tf = read_trap_frame(addr)
        vector, error, rip = tf["vector"], tf["error"], tf["rip"]
        cpl = tf["cs"] & 3
        out("trap frame at %s (x86_trap, frame #%d)" % (ADDR % addr, level))
        out("  exception  %s in %s mode (CPL %d)" % (exception_name(vector),
                                                      "user" if cpl == 3 else "kernel", cpl))
        symbol = symbol_of(rip)
        out("  RIP        %s%s" % (ADDR % rip, "  " + symbol if symbol else ""))
        out("  RSP        %s" % (ADDR % tf["rsp"]))
        if vector == PAGE_FAULT:
            cr2 = regs.get("cr2")
            decoded = decode_pf_error(error)
            out("  " + format_pf_error(decoded, cr2))
            if cr2 is None:
                out("  CR2 is not readable: cannot walk the faulting address")
                return
            reason = target.paging_off_reason("x86_64", paging)
            if reason:
                out("  " + reason)
                return
            result = walk_address("x86_64", paging, cr2)
            out("walk of CR2 with CR3 %s (the current tables):" % (ADDR % (paging["cr3"] &
                                                                      ~0xFFF)))
            out(format_walk(result))
            for sentence in page_fault_verdict(decoded, result, paging["cr0"], paging["cr4"]):
                out("verdict: " + sentence)
        elif vector in SELECTOR_VECTORS:
            mnemonic = EXCEPTIONS[vector][0]
            out("  " + format_gp_error(decode_gp_error(error), mnemonic))
        elif error:
            out("  error code %#x" % error)
        if vector != PAGE_FAULT and vector < 32:
            try:
                text = gdb.execute("x/i %#x" % rip, to_string=True).strip()
                out("  instruction: " + text.lstrip("=> "))
            except gdb.error:
                pass

    def no_trap_frame(self, regs, paging):
        stop = session.last_stop_signal()
        out("no trap frame: %s is not on the stack; looking at the CPU as it is" %
            TRAP_FUNCTION)
        if stop == "SIGQUIT":
            out("QEMU paused the machine at a shutdown or reset: after a triple fault the "
                "registers below are those of the instruction that could not be handled")
        rip = target.register("rip") or target.register("pc") or 0
        rsp = target.register("rsp") or 0
        symbol = symbol_of(rip)
        out("  RIP        %s%s" % (ADDR % rip, "  " + symbol if symbol else ""))
        try:
            out("  instruction: " + gdb.execute("x/i %#x" % rip, to_string=True).strip()
                .lstrip("=> "))
        except gdb.error:
            out("  instruction: <RIP is not readable>")
        cr2 = regs.get("cr2")
        if cr2 is not None:
            out("  CR2        %s  (last page-fault address; 0 if none since boot)" % (ADDR % cr2))
        system = target.x86_system_regs()
        idt, gdt, tr = system.get("IDT"), system.get("GDT"), system.get("TR")
        if idt is not None:
            gates = (idt["limit"] + 1) // 16 if idt["limit"] else 0
            out("  IDT        base %s limit %#x (%d gates)" % (ADDR % idt["base"], idt["limit"],
                                                            gates))
            if gates == 0:
                out("verdict: the IDT is empty: no exception can be delivered, so the first "
                    "fault became #GP, then #DF, then a triple fault")
            elif gates < 32:
                out("verdict: the IDT has only %d gates: exceptions above vector %d cannot "
                    "be delivered" % (gates, gates - 1))
        reason = target.paging_off_reason("x86_64", paging)
        if reason:
            out("  " + reason)
            return
        out("what delivering an exception needs (walked with the current CR3):")
        with target.physical_memory() as read_phys:
            def w(va):
                return walk_address("x86_64", paging, va, read_phys=read_phys)
            # "stack": RSP-8, where the CPU pushes the exception frame.
            lines = [_check("RIP", w(rip), need_exec=True),
                     _check("stack", w(rsp - 8), need_write=True)]
            if idt is not None and idt["limit"]:
                lines.append(_check("IDT", w(idt["base"])))
            if gdt is not None:
                lines.append(_check("GDT", w(gdt["base"])))
            if tr is not None and tr["selector"]:
                lines.append(_check("TSS", w(tr["base"])))
            if cr2:
                cr2_walk = w(cr2)
                lines.append(_check("CR2", cr2_walk))
        for line in lines:
            out(line)
        bad = [line.split()[0] for line in lines if "NOT MAPPED" in line or "PROBLEM" in line]
        if bad:
            out("verdict: %s not usable: an exception there faults again (#PF -> #DF -> "
                "triple fault)" % ", ".join(bad))
