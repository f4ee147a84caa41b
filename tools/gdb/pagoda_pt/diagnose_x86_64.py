"""x86_64 rules of fault-why (pure): trap frames, what delivering an exception needs (IDT gate,
handler, stack, IST, GDT, TSS), and the sentences that name a cause.

The GDB layer (pagoda_gdb/faults_x86_64.py) gathers an X86Facts from the stopped machine;
tests build one from synthetic tables.  explain(facts) returns the lines fault-why prints, the
last one always "verdict: ...".

Two situations:
  * a trap frame (the kernel's handler x86_trap is on the stack): the exception it handles,
    checked for sanity first (a frame that fails is not decoded);
  * the CPU as it is (a triple fault paused the machine, Ctrl-C in an exception loop, or just
    a breakpoint): everything delivering an exception would need, walked in the active root.
Reference for the layouts: Intel SDM Vol. 3A, 6.10-6.14 (IDT, gates, stack frame, error
codes) and 8.7 (64-bit TSS).  Only the layouts were taken from there.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Optional

from . import contract as C, x86_64
from .diagnose import (RANK_NOT_LIVE_USER_ADDRESS, UNRESOLVED, Explanation, FaultRecord, Finding, KernelAccess, Roots,
                       SyscallAt, denying_levels, function_name, kernel_touched_unmapped, not_live_user_address,
                       on_behalf_findings, mapped_since, never_given, process_label, user_code_at_kernel_privilege,
                       user_trap_line, walk_allows_now)
from .format import ADDR, format_gp_error, format_pf_error, format_walk
from .image import KernelImage
from .isa import X86_64 as X86_64_ISA
from .model import PAGE_SIZE_4K, Walk
from .regs import CR0_PE, EFER_LMA, decode_gp_error, decode_pf_error, paging_mode
from .roots import MISSING, RootTable, top_level, top_level_problem
from .kernelnames import NO_NAMES, KernelNames
from .verdicts import Evidence, StackSlots, code_not_executable
from .verdicts import explain as explain_evidence
from .x86_facts import (DOUBLE_FAULT, ERROR_CODE_VECTORS, FIRST_INTERRUPT, GENERAL_PROTECTION, PAGE_FAULT,
                        SELECTOR_VECTORS)

VECTORS = 256

# The TrapFrame of arch/x86_64/trap_frame.hpp, lowest address first (used when GDB has no
# debug type for it).
TRAP_FRAME_FIELDS = ("r15", "r14", "r13", "r12", "r11", "r10", "r9", "r8", "rbp", "rdi",
                     "rsi", "rdx", "rcx", "rbx", "rax", "vector", "error", "rip", "cs",
                     "rflags", "rsp", "ss")
TRAP_FRAME_SIZE = 8 * len(TRAP_FRAME_FIELDS)

# What the CPU pushes for an exception in 64-bit mode: SS, RSP, RFLAGS, CS, RIP and maybe an
# error code, after aligning RSP down to 16 bytes.
PUSHED_BYTES = 6 * 8
STACK_ALIGN = 16

# RFLAGS: bit 1 is always 1; bits 3, 5, 15 and 22-63 are always 0.
RFLAGS_ALWAYS_ONE = 1 << 1
RFLAGS_ALWAYS_ZERO = (1 << 3) | (1 << 5) | (1 << 15) | ~((1 << 22) - 1) & ((1 << 64) - 1)
SELECTOR_TI = 1 << 2
SELECTOR_RPL = 3
PF_ERROR_BITS = 0x807F          # P W U RSVD I/D PK SS and SGX (bit 15)

# ---------------------------------------------------------------------------------------
# IDT gate descriptor, 64-bit mode (16 bytes; in 32-bit protected mode gates are 8 bytes and
# have no IST field, in real mode the IVT has 4-byte entries):
#
#   127          96 95            64 63   48 47 46 45 44 43  40 39 35 34 32 31     16 15      0
#  +--------------+----------------+-------+--+-----+--+------+-----+-----+---------+---------+
#  |   reserved   |  offset 63:32  |off31:16| P| DPL |0 | type |  0  | IST | selector|off 15:0 |
#  +--------------+----------------+-------+--+-----+--+------+-----+-----+---------+---------+
#   type 0xE interrupt gate, 0xF trap gate; IST 0: the current stack, n: TSS.IST[n]
#
# 64-bit TSS (104 bytes): RSP0-2 at offsets 4, 12, 20; IST1-7 at 36 + 8 * (n - 1).
# ---------------------------------------------------------------------------------------
GATE_BYTES = {"long": 16, "protected": 8, "real": 4}
_GATE = struct.Struct("<HHBBHII")
GATE_PRESENT = 0x80
TSS_RSP0 = 4
KERNEL_HALF_START = 0xFFFF_8000_0000_0000   # the upper canonical half: never a user address
TSS_IST1 = 36
# The reset value of IDTR: no IDT was ever loaded.
RESET_IDT = (0, 0xFFFF)
# The routines of arch/x86_64/user_copy.S: the only kernel code that touches user memory, each of
# its faulting instructions in the fix-up table (section pagoda_user_fixups).
USER_COPY_ROUTINES = (C.X86.USER_COPY, C.X86.USER_STRING_COPY)
# What IRETQ pops, lowest address first (Intel SDM Vol. 3A, 6.14.3).
IRET_FRAME = ("rip", "cs", "rflags", "rsp", "ss")


def exception_name(vector: int, names: KernelNames) -> str:
    """'#PF page fault (vector 14)', in the kernel's words (@p names, read from its ELF)."""
    known = names.exception(vector)
    if known:
        return "%s %s (vector %d)" % (known[0], known[1], vector)
    if vector >= FIRST_INTERRUPT:
        return "interrupt vector %d (not an exception)" % vector
    return ("reserved exception vector %d" if names.exceptions else "exception vector %d") % vector


def mnemonic(vector: int, names: KernelNames) -> str:
    return (names.exception(vector) or ("vector %d" % vector,))[0]


def idt_vectors(limit: int, mode: str) -> int:
    """How many vectors an IDT with this limit can deliver in @p mode ('long', 'protected',
    'real'): gate v needs bytes [v * size, v * size + size - 1] within the limit, and there
    are only 256 vectors however large the limit is."""
    return min(VECTORS, (limit + 1) // GATE_BYTES[mode])


def cpu_mode(cr0: int, efer: int) -> str:
    """'long' (IA-32e: EFER.LMA), 'protected' (CR0.PE) or 'real': what an IDT gate looks like."""
    if cr0 & CR0_PE and efer & EFER_LMA:
        return "long"
    return "protected" if cr0 & CR0_PE else "real"


@dataclass
class Gate:
    handler: int
    selector: int
    ist: int
    type: int
    dpl: int
    present: bool


def decode_gate(data: bytes) -> Gate:
    """A 64-bit IDT gate from its 16 bytes."""
    low, selector, ist, attr, mid, high, _ = _GATE.unpack(data)
    return Gate(handler=low | mid << 16 | high << 32, selector=selector, ist=ist & 7,
                type=attr & 0xF, dpl=attr >> 5 & 3, present=bool(attr & GATE_PRESENT))


def trap_frame_problems(fields: dict, gdt_limit: Optional[int] = None) -> list[str]:
    """Why the 22 words at a trap-frame address cannot be a frame x86_trap_common built ([]
    when they can): what the CPU and the stubs push has a fixed shape."""
    problems = []
    vector, error = fields["vector"], fields["error"]
    if vector >= VECTORS:
        problems.append("vector %#x is not below 256" % vector)
    elif vector not in ERROR_CODE_VECTORS and error != 0:
        problems.append("error code %#x for vector %d, which has none (the stub pushes 0)"
                        % (error, vector))
    elif vector == PAGE_FAULT and error & ~PF_ERROR_BITS:
        problems.append("page-fault error code %#x has undefined bits set" % error)
    cs, ss, rflags = fields["cs"], fields["ss"], fields["rflags"]
    if cs > 0xFFFF or cs & ~SELECTOR_RPL == 0 or cs & SELECTOR_TI:
        problems.append("CS %#x is not a GDT code selector" % cs)
    elif gdt_limit is not None and (cs | 7) > gdt_limit:
        problems.append("CS %#x is beyond the GDT (limit %#x)" % (cs, gdt_limit))
    if ss > 0xFFFF or (ss and (ss & SELECTOR_TI or ss & SELECTOR_RPL != cs & SELECTOR_RPL)):
        problems.append("SS %#x does not go with CS %#x" % (ss, cs))
    if not rflags & RFLAGS_ALWAYS_ONE or rflags & RFLAGS_ALWAYS_ZERO:
        problems.append("RFLAGS %#x has a reserved bit wrong" % rflags)
    for name in ("rip", "rsp"):
        if not x86_64.is_canonical(fields[name]):
            problems.append("%s %#x is not canonical" % (name.upper(), fields[name]))
    return problems


# ---- facts -----------------------------------------------------------------------------------

def stub_vector(image, va: int) -> Optional[int]:
    """The vector whose entry stub (x86_vector_stubs, 16 bytes each) holds @p va, or None."""
    if image is not None and image.trap_entry is not None and image.trap_entry <= va < image.trap_entry + 16 * VECTORS:
        return (va - image.trap_entry) // 16
    return None


@dataclass
class TrapFrameAt:
    """The frame x86_trap was given: where it is, the GDB frame number of x86_trap, and its
    fields (None with read_error when it could not be read)."""

    address: int
    level: int
    fields: Optional[dict] = None
    read_error: Optional[str] = None


@dataclass
class X86Facts:
    """What explain() reasons about.  regs: cr0, cr2 (None if unknown), cr3, cr4, efer, rip,
    rsp of the CPU now; idt/gdt: (base, limit); tr: (selector, base, limit); stop: the signal
    of the last stop ('SIGQUIT' when QEMU paused the machine at a shutdown: a triple fault,
    'SIGINT' for Ctrl-C, 'SIGTRAP' for a breakpoint or step)."""

    regs: dict
    read_phys: Callable[[int, int], bytes]
    pa_bits: int = x86_64.DEFAULT_MAXPHYADDR
    idt: Optional[tuple] = None
    gdt: Optional[tuple] = None
    tr: Optional[tuple] = None
    roots: Optional[RootTable] = None
    image: Optional[KernelImage] = None
    trap: Optional[TrapFrameAt] = None
    stop: Optional[str] = None
    # QEMU's exception log parsed (pagoda_core.faultlog: its .faults in order), or None; log_hint
    # says why there is none
    log: Optional[object] = None
    log_hint: str = ""
    # Where the kernel stacks are (the kernel's facts), or None
    stacks: Optional[StackSlots] = None
    symbol: Callable[[int], str] = lambda address: ""
    instruction: Callable[[int], Optional[str]] = lambda address: None
    # Lab 4: the kernel's fix-up table {instruction: resume} (None: not read), the first address
    # past the user half (the kernel's fact user_end), the system call being run (or None).
    fixups: Optional[dict] = None
    user_end: Optional[int] = None
    syscall: Optional[SyscallAt] = None
    # The kernel's names of the exceptions (pagoda_pt.kernelnames, read from its ELF); NO_NAMES: by number.
    names: KernelNames = NO_NAMES


def _near_stack(cr2: Optional[int], rsp: int) -> bool:
    """Is CR2 where the CPU or the code touched the stack at RSP (a push of up to the six
    words of an exception frame below it, or a pop/ret just at or above it)?"""
    if cr2 is None:
        return False
    return (rsp & ~(STACK_ALIGN - 1)) - PUSHED_BYTES - 16 <= cr2 <= rsp + 16


NOTHING_RANK = 99


class _Explainer:
    def __init__(self, f: X86Facts):
        self.f = f
        self.ex = Explanation()
        regs = f.regs
        self.cr2 = regs.get("cr2")
        self.active = regs["cr3"] & ((1 << f.pa_bits) - 1) & ~(PAGE_SIZE_4K - 1)
        self.roots = Roots(x86_64.ARCH, f.read_phys, regs, self.active, f.roots, f.pa_bits)
        self.mode = cpu_mode(regs.get("cr0", 0), regs.get("efer", 0))
        self.cr2_first = None
        self.trap_vector = None
        self.fault = None       # a user page fault: what the VMA decision needs (fault_of())

    # -- helpers ---------------------------------------------------------------------------
    def name(self, va: int) -> str:
        symbol = self.f.symbol(va) if va else ""
        return "  " + symbol if symbol else ""

    def short(self, va: int) -> str:
        """'0x... (pagoda::kmain+12)' without section details."""
        symbol = self.f.symbol(va) if va else ""
        symbol = symbol.split(" in section ")[0]
        return "%#x%s" % (va, " (%s)" % symbol if symbol else "")

    def read_virt(self, va: int, size: int) -> Optional[bytes]:
        w = self.roots.walk(va)
        last = self.roots.walk(va + size - 1)
        if not w.mapped or not last.mapped or last.pa - w.pa != size - 1:
            return None
        try:
            return self.f.read_phys(w.pa, size)
        except Exception:  # noqa: BLE001
            return None

    def check_line(self, label: str, va: int, w: Walk, problem: Optional[str]) -> str:
        text = "  %-12s %s " % (label, ADDR % va)
        if problem:
            return text + problem
        return text + "ok -> PA %s %s" % (ADDR % w.pa, w.perms.rwx())

    def log_hint(self):
        """Without QEMU's log, why there is none, beside the verdict when the machine died (how it got
        there matters then, not for a fault it reported). With one, fault-why prints its summary."""
        if self.f.log is None and self.f.log_hint and self.trap_vector in (None, DOUBLE_FAULT) and \
                any(f.rank < NOTHING_RANK for f in self.ex.findings):
            self.ex.context.append(self.f.log_hint)

    def first_logged(self):
        """The first exception QEMU's log shows (a faultlog.Event), or None."""
        faults = self.f.log.faults if self.f.log is not None else ()
        return faults[0] if faults else None

    # -- top level -------------------------------------------------------------------------
    def explain(self) -> list[str]:
        f = self.f
        mode = paging_mode(f.regs.get("cr0", 0), f.regs.get("cr4", 0), f.regs.get("efer", 0))
        trap = f.trap
        if trap is not None and trap.fields is not None:
            gdt_limit = f.gdt[1] if f.gdt else None
            problems = trap_frame_problems(trap.fields, gdt_limit)
            if problems:
                self.ex.line("not a trap frame: the %d bytes at %s that x86_trap (frame #%d) "
                             "was given fail its checks (%s); not decoding them" % (
                                 TRAP_FRAME_SIZE, ADDR % trap.address, trap.level,
                                 "; ".join(problems)))
                self.ex.context.append("x86_trap's frame at %#x is not a trap frame"
                                       % trap.address)
                trap = None
        elif trap is not None:
            self.ex.line("cannot read x86_trap's frame at %s: %s" % (ADDR % trap.address,
                                                                  trap.read_error))
            trap = None
        if mode != "4-level":
            self.paging_not_on(mode, trap)
        elif trap is not None:
            self.trap_vector = trap.fields["vector"]
            self.trap_frame(trap)
        else:
            self.cpu_as_is()
        self.log_hint()
        return self.ex.render()

    def paging_not_on(self, mode: str, trap):
        self.ex.line("paging mode: %s: addresses are %s, there are no page tables to walk" % (
            mode, "physical" if mode == "disabled" else "translated by %s tables" % mode))
        if trap is not None:
            self.trap_header(trap)
            self.ex.find(60, "%s at RIP %s" % (exception_name(trap.fields["vector"], self.f.names),
                                              self.short(trap.fields["rip"])))
        self.idt_line()

    def idt_line(self):
        idt = self.f.idt
        if idt is None:
            return None
        base, limit = idt
        count = idt_vectors(limit, self.mode)
        text = "  IDT          base %s limit %#x (%d vectors, %d-byte %s-mode gates)" % (
            ADDR % base, limit, count, GATE_BYTES[self.mode], self.mode)
        if (base, limit) == RESET_IDT:
            text += "  the reset value: no IDT loaded yet"
        self.ex.line(text)
        return count

    # -- a trap frame ----------------------------------------------------------------------
    def trap_header(self, trap: TrapFrameAt):
        tf = trap.fields
        cpl = tf["cs"] & 3
        self.ex.line("trap frame at %s (x86_trap, frame #%d)" % (ADDR % trap.address,
                                                                 trap.level))
        self.ex.line("  exception  %s in %s mode (CPL %d)" % (
            exception_name(tf["vector"], self.f.names), "user" if cpl == 3 else "kernel", cpl))
        self.ex.line("  RIP        %s%s" % (ADDR % tf["rip"], self.name(tf["rip"])))
        self.ex.line("  RSP        %s" % (ADDR % tf["rsp"]))

    def trap_frame(self, trap: TrapFrameAt):
        tf = trap.fields
        self.trap_header(trap)
        vector = tf["vector"]
        if tf["cs"] & 3 == 3 and vector != DOUBLE_FAULT:
            self.user_trap(tf)
        else:
            self.kernel_trap(tf)

    def process_label(self) -> str:
        return process_label(self.f.roots or None, self.active, "the active root " + self.roots.label())

    def user_trap(self, tf: dict):
        """An exception raised by user code (CPL 3). A page fault may be answered (a page brought
        in, a copy made: the process's VMAs decide, which the GDB layer adds, fault_of() says
        what to decide on); anything else ends the process. The verdict says what the CPU saw,
        not whose fault it is: a program killed for reading what the kernel wrote there wrongly
        is the kernel's bug."""
        self.ex.line(user_trap_line(self.process_label()))
        self.kernel_trap(tf)
        if tf["vector"] == PAGE_FAULT and self.cr2 is not None:
            decoded = decode_pf_error(tf["error"])
            w = self.roots.walk(self.cr2)
            self.fault = {"user": True, "address": self.cr2, "write": decoded.write,
                          "fetch": decoded.fetch, "mapped": w.mapped,
                          "perms": w.perms.rwx() if w.mapped else None, "who": self.process_label(),
                          "pc": tf["rip"], "sp": tf["rsp"]}
        if not self.ex.findings:
            return
        best = min(self.ex.findings, key=lambda f: f.rank)
        self.ex.findings = [Finding(best.rank, "%s in ring 3: %s; %s" % (self.process_label(), best.sentence,
                                                                        UNRESOLVED))]

    def kernel_access(self, rip: int, address: int, write: bool) -> KernelAccess:
        """What the rules of a kernel access on a process's behalf (diagnose.on_behalf_findings)
        need about a kernel-mode fault at @p rip on @p address."""
        f = self.f
        return KernelAccess(pc=rip, function=function_name(f.symbol(rip) or ""), address=address,
                            write=write, kernel_half=address >= KERNEL_HALF_START,
                            user_end=f.user_end if f.user_end is not None else KERNEL_HALF_START,
                            copy_routines=USER_COPY_ROUTINES, fixups=f.fixups, syscall=f.syscall,
                            process=self.process_label())

    def user_code_in_ring_0(self, tf: dict) -> None:
        """A kernel-mode exception whose RIP is on a user page the process may execute: the CPU
        was running the process's own code in ring 0. Entering user mode is what loads ring 3
        (the CS of the IRETQ or SYSRET frame), so the entry kept the kernel's privilege."""
        rip = tf["rip"]
        if tf["cs"] & SELECTOR_RPL or rip >= KERNEL_HALF_START:
            return
        w = self.roots.walk(rip)
        if not w.mapped or not w.perms.user or not w.perms.execute:
            return
        self.ex.find(7, user_code_at_kernel_privilege(
            rip, "in ring 0 (CS %#x, CPL 0)" % tf["cs"], self.process_label(),
            "it returns to ring 0 when the code selector it loads has RPL 0, where the user code selector has RPL 3"))

    def iret_rules(self, tf: dict) -> None:
        """A #GP raised by IRETQ itself: the frame it was popping (at the interrupted RSP) is
        decoded; a return to a user address with a ring-0 code selector is the entry to user
        mode keeping the kernel's privilege."""
        insn = self.f.instruction(tf["rip"]) or ""
        if tf["vector"] != GENERAL_PROTECTION or "iret" not in insn.split(">:")[-1]:
            return
        data = self.read_virt(tf["rsp"], 8 * len(IRET_FRAME))
        if data is None:
            return
        frame = dict(zip(IRET_FRAME, struct.unpack("<%dQ" % len(IRET_FRAME), data)))
        cs, ss, target = frame["cs"], frame["ss"], frame["rip"]
        self.ex.line("  the frame IRETQ pops (at RSP %s): RIP %s%s  CS %#x (RPL %d)  RFLAGS %#x  RSP %#x  "
                     "SS %#x (RPL %d)" % (ADDR % tf["rsp"], ADDR % target, self.name(target), cs,
                                          cs & SELECTOR_RPL, frame["rflags"], frame["rsp"], ss,
                                          ss & SELECTOR_RPL))
        mismatch = ss & SELECTOR_RPL != cs & SELECTOR_RPL
        refused = (" (its SS %#x has RPL %d, which IRETQ refuses beside that CS: the #GP)"
                   % (ss, ss & SELECTOR_RPL)) if mismatch else ""
        if cs & SELECTOR_RPL == 0 and target < KERNEL_HALF_START:
            self.ex.find(6, "the IRETQ at %s returns to ring 0 at the user address %#x for %s: the frame it "
                            "pops has CS %#x, RPL 0 (the kernel's code selector), where entering user mode "
                            "needs the user code selector, RPL 3%s; the entry to user mode kept kernel "
                            "privilege, so the process's code would run in ring 0"
                         % (self.short(tf["rip"]), target, self.process_label(), cs, refused))
        elif mismatch:
            self.ex.find(15, "the IRETQ at %s pops CS %#x (RPL %d) with SS %#x (RPL %d): the two must have the "
                             "same privilege, so IRETQ raised #GP" % (self.short(tf["rip"]), cs,
                                                                       cs & SELECTOR_RPL, ss,
                                                                       ss & SELECTOR_RPL))

    def kernel_trap(self, tf: dict):
        vector, error, rip = tf["vector"], tf["error"], tf["rip"]
        self.user_code_in_ring_0(tf)
        if vector == PAGE_FAULT:
            self.page_fault(tf)
        elif vector == DOUBLE_FAULT:
            self.double_fault(tf)
        else:
            if vector in SELECTOR_VECTORS:
                self.ex.line("  " + format_gp_error(decode_gp_error(error), mnemonic(vector, self.f.names)))
            elif error:
                self.ex.line("  error code %#x" % error)
            insn = self.f.instruction(rip) if vector < FIRST_INTERRUPT else None
            if insn:
                self.ex.line("  instruction: " + insn)
            self.iret_rules(tf)
            w = self.roots.walk(rip)
            if not w.mapped:
                self.ex.find(6, "the code at RIP %s is not mapped in the active root %s (%s)"
                             % (self.short(rip), self.roots.label(), w.stop_reason))
            what = "%s at RIP %s" % (exception_name(vector, self.f.names), self.short(rip))
            if vector >= FIRST_INTERRUPT:
                self.ex.find(60, what + " with no handler for it")
            else:
                self.ex.find(60, what + ": not a paging fault; the instruction and `bt` "
                                        "show what it did")

    def page_fault(self, tf: dict):
        cr2, rip, rsp = self.cr2, tf["rip"], tf["rsp"]
        decoded = decode_pf_error(tf["error"])
        self.ex.line("  " + format_pf_error(decoded, cr2))
        if cr2 is None:
            self.ex.find(50, "a page fault at RIP %s, but CR2 is not readable" % self.short(rip))
            return
        self.ex.line("walk of CR2 in the active root %s:" % self.roots.label())
        w = self.roots.walk(cr2)
        self.ex.line(format_walk(w))
        self.page_fault_rules(decoded, w, cr2, rip, rsp)

    def page_fault_rules(self, decoded, w: Walk, cr2: int, rip: int, rsp: int):
        ex, roots = self.ex, self.roots
        if not decoded.user:
            for rank, sentence in on_behalf_findings(self.kernel_access(rip, cr2, decoded.write)):
                ex.find(rank, sentence)
        kva = self.virtual_address_in_entry(w)
        if kva:
            ex.find(4, kva)
        if decoded.reserved_bit and not kva:
            ex.find(20, "an entry on the way to CR2 %#x has a reserved bit set: %s"
                    % (cr2, w.stop_reason))
        record = FaultRecord("CR2", cr2, w, "the active root " + roots.label(), decoded.user,
                             cr2 >= KERNEL_HALF_START, "invlpg or CR3 reload")
        if not decoded.present or not w.mapped:
            if w.mapped:
                ex.find(30, mapped_since(record))
                return
            if _near_stack(cr2, rsp) and not decoded.user:
                ex.find(5, self.stack_sentence("the interrupted stack pointer", rsp, cr2,
                                               "wrote to" if decoded.write else "read", rip))
            elif _near_stack(cr2, rsp):
                ex.find(39, "CR2 %#x is at the program's own stack pointer %#x, and its page is not "
                            "mapped in the active root %s (%s): the user stack is missing there "
                            "(no stack VMA, or a stack that does not grow down this far)"
                        % (cr2, rsp, roots.label(), w.stop_reason))
            fetch = decoded.fetch and cr2 >> 12 == rip >> 12
            rounded = self.section_end_sentence(cr2, "the code at RIP" if fetch else "CR2")
            if rounded:
                ex.find(5, rounded)
            if fetch:
                ex.find(6, self.code_sentence(rip))
            if not decoded.user:
                unmapped = explain_evidence(Evidence(
                    address=cr2, access="wrote to" if decoded.write else "read", stacks=self.f.stacks,
                    where=self.f.symbol(rip).split(" in section ")[0] or None, root=roots.label(),
                    mapped_in=[k.label() for k in roots.mapped_elsewhere(cr2)]))
                if unmapped:     # (an overflow first; after the stack sentence: the CPU's own push, rank 5)
                    ex.find(7, unmapped)
                not_live = not_live_user_address(roots, cr2, self.f.user_end or KERNEL_HALF_START,
                                                 decoded.write, "address (CR2)")
                if not_live:
                    ex.find(RANK_NOT_LIVE_USER_ADDRESS, not_live)
            elsewhere = roots.elsewhere_sentence("CR2", cr2)
            if elsewhere:
                ex.find(12, elsewhere + ": the mapping was written into a root that is not "
                                        "the active one")
            if decoded.user:
                ex.find(40, never_given(record))
                return
            ex.find(40, kernel_touched_unmapped(record, "RIP"))
            return
        self.permission_rules(decoded, w, cr2, record)

    def permission_rules(self, decoded, w: Walk, cr2: int, record: FaultRecord):
        cr0, cr4 = self.f.regs.get("cr0", 0), self.f.regs.get("cr4", 0)
        perms, leaf = w.perms, w.levels[-1]
        reasons = []

        def denial(why: str, bit: int, denies_when_set: bool):
            levels = denying_levels(w, bit, denies_when_set)
            tables = [name for name in levels if not name.startswith(leaf.name + "[")]
            text = X86_64_ISA.denial(why, ", ".join(levels))
            if tables and len(tables) == len(levels):
                text += (": the table entries on the way deny it while the leaf %s[%d] allows "
                         "it; on x86_64 every level must allow an access, so the tables were "
                         "linked without %s" % (leaf.name, leaf.index, X86_64_ISA.denial_bits[why].split("=")[0]))
            reasons.append(text)

        if decoded.write and not perms.write and (decoded.user or cr0 & x86_64.CR0_WP):
            denial("read_only", x86_64.PTE_RW, False)
        if decoded.user and not perms.user:
            denial("supervisor", x86_64.PTE_US, False)
        if decoded.fetch and not perms.execute:
            denial("no_execute", x86_64.PTE_NX, True)
        if not decoded.user and perms.user:
            if decoded.fetch and cr4 & x86_64.CR4_SMEP:
                reasons.append(X86_64_ISA.denial("kernel_fetch_user"))
            elif not decoded.fetch and cr4 & x86_64.CR4_SMAP:
                reasons.append(X86_64_ISA.denial("kernel_touch_user"))
        if reasons:
            self.ex.find(20, "CR2 %#x: %s" % (cr2, "; ".join(reasons)))
        else:
            self.ex.find(30, walk_allows_now(record))

    def virtual_address_in_entry(self, w: Walk) -> Optional[str]:
        for level in w.levels[:-1] if w.mapped else w.levels:
            if level.raw is None or not level.raw & x86_64.PTE_P:
                continue
            va = x86_64.kernel_va_in(level.raw)
            if va is not None:
                return ("%s[%d] = %#018x holds %#x, which looks like a kernel virtual address, "
                        "not a physical one: a table entry must hold the physical address of "
                        "the next table (virt_to_phys)" % (level.name, level.index, level.raw,
                                                           va))
        return None

    def stack_sentence(self, what: str, rsp: int, cr2: Optional[int], access: str = "touched",
                       rip: Optional[int] = None) -> str:
        """Why the CPU could not push at @p rsp: an overflow into a guard page (pagoda_pt.verdicts,
        the grader's words), or a kernel stack the active root does not map."""
        overflow = explain_evidence(Evidence(address=cr2 if _near_stack(cr2, rsp) else rsp, access=access,
                                                  where=self.f.symbol(rip).split(" in section ")[0] if rip else None,
                                                  stacks=self.f.stacks))
        if overflow:
            return overflow
        found = self.roots.mapped_elsewhere(rsp, lambda w: w.perms.write)
        also = " (it is mapped in root %s)" % " and ".join(k.label() for k in found) \
            if found else ""
        source = ""
        if self.cr2_first is not None and _near_stack(self.cr2_first, rsp):
            cr2, source = self.cr2_first, " (the first #PF, in QEMU's log)"
        if cr2 is not None and _near_stack(cr2, rsp):
            if cr2 == rsp:
                head = "CR2 %#x%s equals %s" % (cr2, source, what)
            else:
                head = "CR2 %#x%s is %d bytes %s %s %#x" % (
                    cr2, source, abs(rsp - cr2), "below" if cr2 < rsp else "above", what, rsp)
        else:
            head = "the stack at %s %#x" % (what, rsp)
        return ("%s: the kernel stack is not mapped in the active root %s%s, so the CPU "
                "could not push the exception frame" % (head, self.roots.label(), also))

    def section_end_sentence(self, va: int, what: str) -> Optional[str]:
        """When @p va is on the last page of a kernel section, that page is not mapped and the
        rest of the section is: the section was mapped with its end rounded down."""
        image = self.f.image
        section = image.section_of(va) if image else None
        if section is None:
            return None
        name, start, end = section
        first, last = start & ~(PAGE_SIZE_4K - 1), (end - 1) & ~(PAGE_SIZE_4K - 1)
        if va & ~(PAGE_SIZE_4K - 1) != last or last == first or self.roots.walk(va).mapped:
            return None
        if not (self.roots.walk(first).mapped and self.roots.walk(last - PAGE_SIZE_4K).mapped):
            return None
        return ("%s %s is on the last page of %s (%#x-%#x), which the active root %s does not "
                "map while the rest of %s is mapped: the section's end %#x was rounded down "
                "instead of up when it was mapped" % (what, self.short(va), name, start, end - 1,
                                                      self.roots.label(), name, end))

    def code_sentence(self, rip: int) -> str:
        """Why the code at RIP cannot be fetched: mapped at its physical address instead of
        its link address, or mapped only in another root, or simply not mapped."""
        w = self.roots.walk(rip)
        image = self.f.image
        pa = image.phys_of(rip) if image else None
        if pa is not None:
            alias = self.roots.walk(pa)
            if alias.mapped and alias.pa == pa:
                return ("the code at RIP %s is not mapped in the active root %s, but its frame "
                        "%#x is mapped there at VA %#x: the kernel text was mapped at its "
                        "physical address instead of where it is linked (%#x + PA)"
                        % (self.short(rip), self.roots.label(), pa & ~(PAGE_SIZE_4K - 1),
                           pa & ~(PAGE_SIZE_4K - 1), image.virt_offset))
        if w.mapped:
            return code_not_executable("the code at RIP %s" % self.short(rip), "the active root %s (NX=1 in %s)" % (
                self.roots.label(), ", ".join(denying_levels(w, x86_64.PTE_NX, True))))
        elsewhere = self.roots.elsewhere_sentence("RIP", rip, lambda x: x.perms.execute, shown=self.short(rip))
        if elsewhere:
            return "the code at " + elsewhere + ": the CPU cannot fetch it"
        return ("the code at RIP %s is not mapped in the active root %s (%s): the CPU cannot "
                "fetch it" % (self.short(rip), self.roots.label(), w.stop_reason))

    def double_fault(self, tf: dict):
        rip, rsp = tf["rip"], tf["rsp"]
        self.ex.line("  a double fault: the CPU could not deliver an exception raised at RIP "
                     "(RIP and RSP above are where that one happened)")
        if self.cr2 is not None:
            self.ex.line("  CR2        %s  (the last page-fault address)" % (ADDR % self.cr2))
        if tf["cs"] & 3 == 3:
            rsp0 = self.rsp0()
            self.ex.line("  raised in user mode by %s: the CPU switched to the kernel stack in "
                         "TSS.RSP0 (%s) to deliver it" % (self.process_label(),
                                                         "unreadable" if rsp0 is None
                                                         else "%#x" % rsp0))
            if rsp0 is not None:
                self.ex.line("walk of TSS.RSP0 in the active root %s:" % self.roots.label())
                self.ex.line(format_walk(self.roots.walk(rsp0 - 8)))
            self.user_trap_stack_rules(rsp0)
        else:
            self.ex.line("walk of the interrupted RSP in the active root %s:"
                         % self.roots.label())
            self.ex.line(format_walk(self.roots.walk(rsp)))
            self.null_stack_rule(rip, rsp)
        # The exception that could not be delivered: QEMU's log knows; else the usual two.
        first = self.first_logged()
        if first is not None and first.vector == PAGE_FAULT and first.rip == rip:
            self.cr2_first = first.cr2
        vectors = (first.vector,) if first is not None and first.vector != DOUBLE_FAULT \
            else (PAGE_FAULT, GENERAL_PROTECTION)
        self.delivery(rsp, tf["cs"] & 3, vectors)
        self.ex.find(60, "a double fault at RIP %s: an exception there could not be delivered"
                     % self.short(rip))

    def null_stack_rule(self, rip: int, rsp: int) -> None:
        """A kernel-mode double fault on a stack pointer in the null page: no stack was ever
        set there (it is not a mapping problem). At the system-call entry, which loads the
        process's kernel stack itself (SYSCALL switches no stack), that is the system-call stack
        the switch to the process should have set."""
        if rsp >= PAGE_SIZE_4K:
            return
        symbol = (self.f.symbol(rip) if rip else "") or ""
        if "syscall" in symbol.split(" in section ")[0]:
            self.ex.find(3, "the system-call stack is %#x at %s: the system-call entry loaded a kernel "
                            "stack that was never set (SYSCALL switches no stack; the switch to %s must "
                            "set its kernel stack, arch::set_kernel_stack, before it runs), so the CPU "
                            "could not push there; a double fault is always the kernel's bug"
                         % (rsp, self.short(rip), self.process_label()))
        else:
            self.ex.find(4, "the stack pointer is %#x at %s: the kernel ran on a stack that was never "
                            "set (a null stack pointer, not an unmapped stack), so the CPU could not "
                            "push the exception frame" % (rsp, self.short(rip)))

    def user_trap_stack_rules(self, rsp0: Optional[int]) -> None:
        """What is wrong with TSS.RSP0 itself when a trap from ring 3 could not be delivered: a
        double fault is the kernel's bug, the switch to the process being where RSP0 is set."""
        if rsp0 == 0:
            self.ex.find(3, "TSS.RSP0 is 0: no kernel stack was set for traps from user mode, so the "
                            "CPU could not push the frame of an exception from ring 3 (%s): the switch "
                            "to a process must set its kernel stack (arch::set_kernel_stack), before "
                            "its root is loaded; a double fault is always the kernel's bug"
                         % self.process_label())
            return
        slots = self.f.stacks
        if rsp0 is None or slots is None:
            return
        found = slots.slot_of(rsp0)
        if found and rsp0 <= found[1]:
            slot, bottom, top = found
            self.ex.find(3, "TSS.RSP0 %#x is the bottom of the kernel stack of slot %d [%#x, %#x), "
                            "not its top: a trap from ring 3 pushes its frame below it, into the "
                            "guard page; a stack grows down, so RSP0 must be %#x" % (rsp0, slot, bottom, top, top))

    def rsp0(self) -> Optional[int]:
        """TSS.RSP0 read through the active root, or None."""
        if self.f.tr is None or not self.f.tr[0]:
            return None
        data = self.read_virt(self.f.tr[1] + TSS_RSP0, 8)
        return int.from_bytes(data, "little") if data is not None else None

    # -- what delivering an exception needs ------------------------------------------------
    def delivery(self, rsp: int, cpl: int, vectors) -> None:
        """Checks and prints what delivering each of @p vectors from the code at RSP needs:
        its gate in the IDT, the handler's code, the stack the frame is pushed onto, the GDT
        and the TSS."""
        f, ex, roots = self.f, self.ex, self.roots
        ex.line("what delivering an exception needs, walked in the active root %s:"
                % roots.label())
        lines = []

        def check(label, va, need_write=False, need_exec=False, rank=None, why=""):
            w = roots.walk(va)
            problem = None
            if not w.mapped:
                problem = "NOT MAPPED: " + w.stop_reason
            elif need_write and not w.perms.write:
                problem = "READ-ONLY: the CPU pushes the exception frame here"
            elif need_exec and not w.perms.execute:
                problem = "NOT EXECUTABLE"
            lines.append(self.check_line(label, va, w, problem))
            if problem and rank is not None:
                ex.find(rank, why or "the %s at %s is not usable in the active root %s: %s" % (
                    label, self.short(va), roots.label(), problem))
            return problem is None

        what = "the stack pointer" if f.trap is None else "the interrupted stack pointer"
        if cpl == 3:
            # From user mode the CPU does not push on the user's stack: it loads TSS.RSP0.
            rsp0 = self.rsp0()
            if rsp0 is None:
                lines.append("  %-12s unreadable: the frame of a trap from user mode goes "
                             "there" % "TSS.RSP0")
                rsp = None
            else:
                rsp, what = rsp0, "TSS.RSP0 (the kernel stack a trap from user mode lands on)"
        stack_top = (rsp & ~(STACK_ALIGN - 1)) if rsp is not None else None
        for va in (stack_top - 8, stack_top - PUSHED_BYTES) if rsp is not None else ():
            w = roots.walk(va)
            if not w.mapped or not w.perms.write:
                lines.append(self.check_line("stack", va, w, "NOT MAPPED: " + w.stop_reason
                                             if not w.mapped else "READ-ONLY: the CPU pushes "
                                             "the exception frame here"))
                ex.find(5, self.stack_sentence(what, rsp, self.cr2, "wrote to"))
                break
        else:
            if stack_top is not None:
                lines.append("  %-12s %s-%s ok (the %d bytes an exception frame takes)" % (
                    "stack" if cpl != 3 else "RSP0 stack", ADDR % (stack_top - PUSHED_BYTES),
                    ADDR % (stack_top - 1), PUSHED_BYTES))
        idt = f.idt
        tss = f.tr is not None and f.tr[0]
        tss_ok = bool(tss) and roots.walk(f.tr[1]).mapped
        if idt is None:
            lines.append("  IDT          unknown (QEMU's monitor did not say)")
        else:
            count = idt_vectors(idt[1], self.mode)
            for vector in vectors:
                name = mnemonic(vector, self.f.names)
                if vector >= count:
                    lines.append("  %-12s none: the IDT (limit %#x) has %d vectors" % (
                        name + " gate", idt[1], count))
                    if count == 0:
                        ex.find(7, "the IDT (base %#x, limit %#x) is empty: no exception can "
                                   "be delivered" % idt)
                    else:
                        ex.find(7, "the IDT (base %#x, limit %#x) has only %d vectors: a %s "
                                   "cannot be delivered" % (idt[0], idt[1], count, name))
                    continue
                gate_va = idt[0] + 16 * vector
                if not check(name + " gate", gate_va, rank=8,
                             why="the IDT at %#x is not mapped in the active root %s: no "
                                 "exception can be delivered" % (idt[0], roots.label())):
                    continue
                data = self.read_virt(gate_va, 16)
                if data is None:
                    continue
                gate = decode_gate(data)
                if not gate.present:
                    lines.append("  %-12s not present" % (name + " gate"))
                    ex.find(8, "the IDT gate of %s is not present" % name)
                    continue
                check(name + " handler", gate.handler, need_exec=True, rank=9,
                      why="the %s handler %s is not mapped (executable) in the active root %s"
                          % (name, self.short(gate.handler), roots.label()))
                if gate.ist and tss_ok and f.tr is not None:
                    ist = self.read_virt(f.tr[1] + TSS_IST1 + 8 * (gate.ist - 1), 8)
                    if ist is not None:
                        top = int.from_bytes(ist, "little")
                        check("%s IST%d" % (name, gate.ist), top - 8, need_write=True, rank=10)
        if f.gdt is not None:
            check("GDT", f.gdt[0], rank=11)
        if tss:
            check("TSS", f.tr[1], rank=11)
        for text in lines:
            ex.line(text)

    # -- the CPU as it is ------------------------------------------------------------------
    def cpu_as_is(self):
        f, ex, roots = self.f, self.ex, self.roots
        regs = f.regs
        rip, rsp = regs.get("rip", 0), regs.get("rsp", 0)
        # After a #DF or a triple fault, CR2 holds the last of the faults; QEMU's log has the
        # first one, which is what the instruction at RIP did.
        first = self.first_logged()
        if first is not None and first.vector == PAGE_FAULT and first.rip == rip and \
                first.cr2 is not None:
            self.cr2_first = first.cr2
        ex.line("no trap frame: x86_trap is not on the stack; looking at the CPU as it is")
        if f.stop == "SIGQUIT":
            ex.line("QEMU paused the machine at a shutdown or reset: after a triple fault the "
                    "registers are those of the instruction whose exception could not be "
                    "delivered")
        elif f.stop == "SIGINT":
            ex.line("the machine was running when it was interrupted (Ctrl-C)")
        ex.line("  RIP          %s%s" % (ADDR % rip, self.name(rip)))
        insn = f.instruction(rip)
        ex.line("  instruction: " + (insn or "<not readable at RIP>"))
        ex.line("  RSP          %s" % (ADDR % rsp))
        if self.cr2 is not None:
            ex.line("  CR2          %s  (the last page-fault address; 0 if none since boot)"
                    % (ADDR % self.cr2))
        ex.line("  CR3          %s  active root %s" % (ADDR % regs["cr3"], roots.label()))
        self.idt_line()
        self.root_shape(rip)
        w = roots.walk(rip)
        ex.line("  %-12s %s %s" % ("RIP", ADDR % rip, "ok -> PA %s %s" % (
            ADDR % w.pa, w.perms.rwx()) if w.mapped else "NOT MAPPED: " + w.stop_reason))
        if not w.mapped or not w.perms.execute:
            sentence = self.code_sentence(rip)
            ex.find(4 if "physical address" in sentence else 6, sentence)
            rounded = self.section_end_sentence(rip, "the code at RIP")
            if rounded:
                ex.find(5, rounded)
        first = self.first_logged()
        vectors = (PAGE_FAULT, DOUBLE_FAULT)
        if first is not None and first.vector not in vectors:
            vectors = (first.vector,) + vectors
        self.delivery(rsp, 0, vectors)
        if self.cr2:
            cw = roots.walk(self.cr2)
            ex.line(self.check_line("CR2", self.cr2, cw, None if cw.mapped else
                                    "NOT MAPPED: " + cw.stop_reason))
        self.loop_without_log(rip)
        if f.stop == "SIGQUIT" and not ex.findings:
            ex.find(70, "the machine triple-faulted, but everything delivering an exception "
                        "needs is usable now")
        if not ex.findings:
            ex.find(NOTHING_RANK, "nothing is wrong that I can see: no exception is being handled, and "
                        "the code at RIP, the stack, the IDT's gates and handlers, the GDT and "
                        "the TSS are usable in the active root")

    def root_shape(self, rip: int):
        """An empty root, or one without the kernel half: the most fundamental causes. A kernel
        that runs from the lower half (lab 1's identity map: RIP there, mapped in the active root,
        which is the kernel's own) has no kernel half to lose."""
        f, ex = self.f, self.ex
        kernel = f.roots.kernel() if f.roots else None
        try:
            view = top_level(x86_64.ARCH, f.read_phys, self.active,
                             kernel.root if kernel else None, f.pa_bits)
        except Exception as err:  # noqa: BLE001
            ex.find(1, "the active root %s cannot be read: %s" % (self.roots.label(), err))
            return
        present = view.present(True) + view.present(False)
        if present == 0:
            ex.line("  the active root has no top-level entry present")
            ex.find(2, "the active root %s is empty: none of its %d top-level entries is "
                       "present, so no address is mapped (not even the code at RIP)"
                    % (self.roots.label(), len(view.entries)))
            return
        problem = top_level_problem(view)
        if problem and view.kernel_root is None and rip < KERNEL_HALF_START and self.roots.walk(rip).mapped:
            ex.line("  the kernel half is empty, and the kernel runs from the lower half (RIP %#x is mapped there): "
                    "lab 1's identity map, no kernel half yet" % rip)
            return
        if problem:
            ex.line("  " + problem)
            if view.count(MISSING, False) and view.present(False) == 0 or \
                    view.kernel_root is None:
                ex.find(3, "the active root %s has no kernel half (%d of %d kernel-half "
                           "entries present%s): the kernel's code, stacks and handlers are "
                           "not mapped in it" % (
                               self.roots.label(), view.present(False),
                               len(view.entries) - view.kernel_half,
                               "; the kernel root %s has %d" % (kernel.label(),
                                                                view.kernel_has(False))
                               if kernel else ""))

    def loop_without_log(self, rip: int):
        """Without a log, a machine interrupted on its own #PF entry with CR2 = RIP is in a
        #PF loop: every exception it delivers faults again at the handler."""
        f = self.f
        vector = stub_vector(f.image, rip)
        if f.log is None and vector is not None and self.cr2 == rip and f.stop != "SIGQUIT":
            self.ex.context.append("the CPU is faulting on the first instruction of the %s "
                                   "handler (RIP = CR2 = %#x): an exception loop, not a "
                                   "triple fault" % (mnemonic(vector, self.f.names), rip))


def explain(facts: X86Facts) -> list[str]:
    """The lines fault-why prints for @p facts; the last one is the verdict."""
    return _Explainer(facts).explain()


def explain_with_fault(facts: X86Facts) -> tuple[list[str], Optional[dict]]:
    """explain(), and for a page fault raised in user mode what the kernel's decision needs:
    {user, address, write, fetch, mapped, perms, who} (None otherwise)."""
    e = _Explainer(facts)
    lines = e.explain()
    return lines, e.fault
