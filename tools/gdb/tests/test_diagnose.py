"""fault-why's x86_64 rules (pagoda_pt.diagnose_x86_64) on a synthetic machine: a kernel image
with text, an IDT, a GDT and TSS, a stack and an IST stack, mapped in synthetic tables; each
test breaks one thing and checks the verdict line names it."""

import struct
from collections import namedtuple

import pytest

from pagoda_pt.diagnose import NOTHING_WRONG, SyscallAt
from pagoda_pt.diagnose_x86_64 import (TrapFrameAt, X86Facts, decode_gate,
                                       explain, idt_vectors, trap_frame_problems)
from pagoda_pt.image import KernelImage, Section
from pagoda_pt.isa import isa
from pagoda_pt.kernelnames import NO_NAMES, KernelNames
from pagoda_pt.roots import KnownRoot, RootTable
from pagoda_pt.verdicts import StackSlots
from pagoda_pt import contract as C
from gdbrig import build_kernel
from ptbuild import NX, P, RW, US, PhysMem, X86Tables

OFFSET = 0xFFFF_FFFF_8000_0000       # the image's link offset: VA = PA + OFFSET
TEXT = OFFSET + 0x80_0000            # r-x: the trap entry stubs first, then code
IDT = OFFSET + 0x80_1000             # rw-: 256 gates
GDT = OFFSET + 0x80_2000             # rw-: GDT at +0, TSS at +0x100
TSS = GDT + 0x100
STACK = OFFSET + 0x80_3000           # rw-: two pages, RSP near the top
IST = OFFSET + 0x80_5000             # rw-: the #DF stack
IMAGE_END = OFFSET + 0x80_6000
RSP = STACK + 0x1F80
CODE = TEXT + 0x1000 - 0x40          # somewhere in the text after the stubs... same page
PROC_PAGE = 0x40_0000

CR0 = 1 | 1 << 16 | 1 << 31          # PE WP PG
CR4 = 1 << 5                         # PAE
EFER = 1 << 8 | 1 << 10 | 1 << 11    # LME LMA NXE
Fault = namedtuple("Fault", "vector error rip cr2")


class Machine:
    """Physical memory with the image's frames, and a way to build roots that map it."""

    def __init__(self, names=NO_NAMES):
        self.names = names      # the kernel's names of the exceptions (read from the built ELF)
        self.mem = PhysMem(first_free=0x100_0000)
        for va in range(TEXT, IMAGE_END, 0x1000):
            self.mem.frames[(va - OFFSET) // 0x1000] = bytearray(0x1000)
        for vector in range(256):
            handler = TEXT + 16 * vector
            gate = struct.pack("<HHBBHII", handler & 0xFFFF, 0x08, 1 if vector == 8 else 0,
                               0x8E, handler >> 16 & 0xFFFF, handler >> 32, 0)
            self.write(IDT + 16 * vector, gate)
        self.write(TSS + 36, struct.pack("<Q", IST + 0x1000))          # IST1
        self.kernel = self.root()

    def write(self, va, data):
        pa = va - OFFSET
        frame = self.mem.frames[pa // 0x1000]
        frame[pa % 0x1000:pa % 0x1000 + len(data)] = data

    def root(self, skip=(), text_at_pa=False, table_flags=P | RW | US):
        t = X86Tables(self.mem)
        pages = [(TEXT, P), (IDT, P | RW | NX), (GDT, P | RW | NX), (STACK, P | RW | NX),
                 (STACK + 0x1000, P | RW | NX), (IST, P | RW | NX)]
        for va, flags in pages:
            if va in skip:
                continue
            t.map(va - OFFSET if text_at_pa and va == TEXT else va, va - OFFSET, flags=flags,
                  table_flags=table_flags)
        return t

    def facts(self, root=None, rip=CODE, rsp=RSP, cr2=0, trap=None, roots=(), log=None,
              stop=None, idt=(IDT, 0xFFF), sections=()):
        root = self.kernel if root is None else root
        table = RootTable([KnownRoot(self.kernel.root, "kernel", "kernel")] + list(roots))
        return X86Facts(
            regs={"cr0": CR0, "cr2": cr2, "cr3": root.root, "cr4": CR4, "efer": EFER,
                  "rip": rip, "rsp": rsp},
            read_phys=self.mem, pa_bits=40, idt=idt, gdt=(GDT, 0x37), tr=(0x28, TSS, 0x67),
            roots=table, image=KernelImage(TEXT, IMAGE_END, OFFSET, sections=tuple(Section(*s) for s in sections),
                                                  trap_entry=TEXT),
            trap=trap, stop=stop, log=log, names=self.names)


def trap(vector, error, **changes):
    fields = dict.fromkeys(("r15", "r14", "r13", "r12", "r11", "r10", "r9", "r8", "rbp", "rdi",
                            "rsi", "rdx", "rcx", "rbx", "rax"), 0)
    fields.update(vector=vector, error=error, rip=CODE, cs=0x08, rflags=0x82, rsp=RSP, ss=0x10)
    fields.update(changes)
    return TrapFrameAt(address=IST + 0xF00, level=2, fields=fields)


def verdict(lines):
    assert lines[-1].startswith("verdict: ") and not any(
        line.startswith("verdict: ") for line in lines[:-1]), lines
    return lines[-1][len("verdict: "):]


@pytest.fixture(scope="module")
def kernel_names():
    """The reference kernel's exception names, as fault-why reads them from the ELF GDB loaded."""
    from pagoda_core import kernelinfo
    return KernelNames.read(isa("x86_64"), kernelinfo.elf(build_kernel("x86_64")).names)


@pytest.fixture
def m(kernel_names):
    return Machine(kernel_names)


def test_nothing_wrong(m):
    lines = explain(m.facts(stop="SIGTRAP"))
    assert verdict(lines).startswith(NOTHING_WRONG + ": no exception is being handled")
    assert any(line.startswith("  #DF IST1") and "ok" in line for line in lines)


def test_empty_root(m):
    empty = X86Tables(m.mem)
    v = verdict(explain(m.facts(root=empty, stop="SIGQUIT")))
    assert v == ("the active root %#x is empty: none of its 512 top-level entries is present, "
                 "so no address is mapped (not even the code at RIP)" % empty.root)


def test_root_without_the_kernel_half(m):
    proc = X86Tables(m.mem)
    proc.map(PROC_PAGE, 0x30_0000)
    v = verdict(explain(m.facts(root=proc, roots=[KnownRoot(proc.root, "proc 1", "process")],
                                stop="SIGQUIT")))
    assert v.startswith("the active root 'proc 1' (%#x) has no kernel half (0 of 256 kernel-half "
                        "entries present; the kernel root 'kernel' (%#x) has 1)"
                        % (proc.root, m.kernel.root))


def test_a_kernel_that_runs_from_the_lower_half_has_no_kernel_half_to_lose(m):
    """Lab 1: the kernel runs from its identity map, on its own root, whose kernel half is empty by
    design; a panic there (a stale TLB the self-test caught) is not "the active root has no kernel
    half"."""
    import dataclasses
    low = X86Tables(m.mem)
    low.map(0x11_C000, 0x11_C000, flags=P)           # the code at RIP, identity-mapped, executable
    low.map(0x10_C000, 0x10_C000, flags=P | RW | NX)  # its stack
    facts = dataclasses.replace(m.facts(root=low, rip=0x11_C004, rsp=0x10_CE00, stop="SIGTRAP"),
                                roots=RootTable([KnownRoot(low.root, "kernel", "kernel")]))
    lines = explain(facts)
    assert "no kernel half" not in verdict(lines), verdict(lines)
    assert any("the kernel runs from the lower half (RIP 0x11c004 is mapped there)" in line for line in lines), lines
    # The same root with RIP in the upper half (a kernel that moved there) still lacks it.
    high = dataclasses.replace(facts, regs=dict(facts.regs, rip=CODE))
    assert "has no kernel half" in verdict(explain(high))


def test_stack_not_mapped_in_the_active_root(m):
    no_stack = m.root(skip=(STACK + 0x1000,))
    v = verdict(explain(m.facts(root=no_stack, cr2=RSP, stop="SIGQUIT")))
    assert v == ("CR2 %#x equals the stack pointer: the kernel stack is not mapped in the active "
                 "root %#x (it is mapped in root 'kernel' (%#x)), so the CPU could not push the "
                 "exception frame" % (RSP, no_stack.root, m.kernel.root))


def test_text_mapped_at_its_physical_address(m):
    broken = m.root(text_at_pa=True)
    v = verdict(explain(m.facts(root=broken, cr2=CODE, stop="SIGQUIT")))
    assert v.startswith("the code at RIP %#x is not mapped in the active root %#x, but its frame "
                        "%#x is mapped there at VA %#x: the kernel text was mapped at its "
                        "physical address instead of where it is linked"
                        % (CODE, broken.root, TEXT - OFFSET, TEXT - OFFSET))


def test_code_only_in_another_root(m):
    other = m.root(skip=(TEXT,))
    v = verdict(explain(m.facts(root=other, cr2=CODE, stop="SIGQUIT")))
    assert v == ("the code at RIP %#x is mapped in root 'kernel' (%#x), not in the active root "
                 "%#x: the CPU cannot fetch it" % (CODE, m.kernel.root, other.root))


def test_code_on_a_no_execute_page(m):
    v = verdict(explain(m.facts(rip=STACK + 0x40, cr2=STACK + 0x40, stop="SIGINT")))
    assert v == ("the code at RIP %#x is mapped without execute permission in the active root "
                 "'kernel' (%#x) (NX=1 in PT[3]): the CPU cannot fetch it (text mapped NX, or code run "
                 "from a data page)" % (STACK + 0x40, m.kernel.root))


def test_empty_idt(m):
    v = verdict(explain(m.facts(idt=(0, 0), stop="SIGQUIT")))
    assert v == "the IDT (base 0x0, limit 0x0) is empty: no exception can be delivered"


def test_handler_not_executable(m):
    handler = STACK + 0x100                  # the #PF gate points into the (NX) stack
    m.write(IDT + 16 * 14, struct.pack("<HHBBHII", handler & 0xFFFF, 0x08, 0, 0x8E,
                                       handler >> 16 & 0xFFFF, handler >> 32, 0))
    v = verdict(explain(m.facts(stop="SIGQUIT")))
    assert v == ("the #PF handler %#x is not mapped (executable) in the active root 'kernel' "
                 "(%#x)" % (handler, m.kernel.root))


SLOT = 0xFFFF_E000_0000_0000            # a kernel-half page (a temp-map slot's address)


@pytest.mark.parametrize("page", [SLOT, PROC_PAGE], ids=["kernel-half", "user-half-supervisor-page"])
def test_page_fault_mapped_only_in_an_inactive_root(m, page):
    """A kernel mapping (no user access) written into a process's root: wherever it is, the
    mapping went into a root that is not the active one (the bug_inactive_root fixture maps a
    user-half address this way)."""
    proc = m.root()
    proc.map(page, 0x30_0000, flags=P | RW | NX)
    facts = m.facts(cr2=page, trap=trap(14, 0x2),
                    roots=[KnownRoot(proc.root, "proc 1", "process", 1)])
    lines = explain(facts)
    assert "  exception  #PF page fault (vector 14) in kernel mode (CPL 0)" in lines
    assert verdict(lines) == ("CR2 %#x is mapped in root 'proc 1' (%#x), not in the active root "
                              "'kernel' (%#x): the mapping was written into a root that is not "
                              "the active one" % (page, proc.root, m.kernel.root))


def test_a_not_present_fault_on_a_page_mapped_now(m):
    """The CPU found no page at CR2, the walk finds one now: diagnose.mapped_since (both ISAs' words)."""
    for error in (0x2, 0x6):            # kernel and user mode: the same sentence
        v = verdict(explain(m.facts(cr2=IDT + 8, trap=trap(14, error))))
        assert v.startswith("CR2 %#x is mapped now, but was not when the CPU faulted: the mapping was added "
                            "afterwards, the fault came from another root, or a stale TLB entry was used "
                            "(missing invlpg or CR3 reload)" % (IDT + 8)), v


def test_a_kernel_fault_on_an_unmapped_kernel_address(m):
    """Nothing maps it and no other rule explains it: diagnose.kernel_touched_unmapped."""
    address = 0xFFFF_FFFF_F000_0000
    v = verdict(explain(m.facts(cr2=address, trap=trap(14, 0x0))))
    assert v == ("CR2 %#x is not mapped in the active root 'kernel' (%#x) (PDPT entry 511 not present): map it, "
                 "or find why the kernel touched it (RIP's code, `bt`)" % (address, m.kernel.root)), v


def test_a_permission_fault_the_walk_allows_now(m):
    """A write the CPU refused to a page every level lets it write now: diagnose.walk_allows_now."""
    v = verdict(explain(m.facts(cr2=IDT + 8, trap=trap(14, 0x3))))
    assert v.startswith("the walk of CR2 %#x now allows this access: the tables were changed after the fault, or "
                        "the CPU used a stale TLB entry (a missing invlpg or CR3 reload?)" % (IDT + 8)), v


def test_a_kernel_fault_on_a_user_address_of_a_process_that_is_not_live(m):
    """A user-half page that only a process's own root maps, touched by the kernel while another root
    is live: the mapping is where it belongs; the kernel reached the process through its user
    address (a loader writing a new process's arguments through their user address)."""
    proc = m.root()
    proc.map(PROC_PAGE, 0x30_0000, flags=P | RW | US | NX)
    facts = m.facts(cr2=PROC_PAGE + 0x10, trap=trap(14, 0x2),
                    roots=[KnownRoot(proc.root, "hello", "process", 1)])
    v = verdict(explain(facts))
    assert v.startswith("the kernel wrote to the user address (CR2) %#x of process 'hello' (%#x), whose root is "
                        "not live (the active root is 'kernel' (%#x)): it reached a process that is not live "
                        "through its user address" % (PROC_PAGE + 0x10, proc.root, m.kernel.root)), v
    # A root that is not a process's (the kernel's, a boot root) keeps the other reading.
    facts = m.facts(cr2=PROC_PAGE + 0x10, trap=trap(14, 0x2), roots=[KnownRoot(proc.root, "boot", "boot")])
    assert "root that is not the active one" in verdict(explain(facts))


def test_page_fault_on_the_last_page_of_a_section_mapped_rounded_down(m):
    """A section [IDT, STACK + 0x10) spans three pages; mapped with its end rounded down, its
    last page (STACK) is missing while the two before it are there."""
    data = (".data", IDT, STACK + 0x10)
    rounded = m.root(skip=(STACK,))
    v = verdict(explain(m.facts(root=rounded, cr2=STACK + 8, trap=trap(14, 0x0),
                                sections=[data])))
    assert v == ("CR2 %#x is on the last page of .data (%#x-%#x), which the active root %#x does "
                 "not map while the rest of .data is mapped: the section's end %#x was rounded "
                 "down instead of up when it was mapped" % (STACK + 8, IDT, STACK + 0xF,
                                                            rounded.root, STACK + 0x10))
    # A hole in the middle of a section is something else.
    holed = m.root(skip=(GDT,))
    v = verdict(explain(m.facts(root=holed, cr2=GDT + 8, trap=trap(14, 0x0), sections=[data])))
    assert "rounded down" not in v


def test_code_on_the_last_text_page_mapped_rounded_down(m):
    """The CPU as it is: RIP on the unmapped last page of a text section (here [STACK + 0x1000,
    IST + 8), two pages), the page before it mapped."""
    text = (".text", STACK + 0x1000, IST + 8)
    rounded = m.root(skip=(IST,))
    rip = IST + 4
    v = verdict(explain(m.facts(root=rounded, rip=rip, cr2=rip, stop="SIGINT",
                                sections=[text])))
    assert v == ("the code at RIP %#x is on the last page of .text (%#x-%#x), which the active "
                 "root %#x does not map while the rest of .text is mapped: the section's end %#x "
                 "was rounded down instead of up when it was mapped"
                 % (rip, STACK + 0x1000, IST + 7, rounded.root, IST + 8)), v


def test_page_fault_on_tables_without_the_writable_bit(m):
    m.kernel.map(PROC_PAGE, 0x30_0000, flags=P | RW | NX, table_flags=P)
    v = verdict(explain(m.facts(cr2=PROC_PAGE, trap=trap(14, 0x3))))
    assert v.startswith("CR2 %#x: a write to a read-only page (RW=0 in PML4[0], PDPT[0], PD[2]): "
                        "the table entries on the way deny it while the leaf PT[0] allows it"
                        % PROC_PAGE)


def test_page_fault_on_a_read_only_leaf_names_the_leaf(m):
    v = verdict(explain(m.facts(cr2=TEXT, trap=trap(14, 0x3))))
    assert v == "CR2 %#x: a write to a read-only page (RW=0 in PT[0])" % TEXT


def test_page_fault_on_a_virtual_address_in_an_entry(m):
    m.kernel.map(PROC_PAGE, 0x30_0000, flags=P | RW | NX)
    pd = m.kernel.entry_pa(PROC_PAGE, "PD")
    pt = m.mem.read64(pd) & ~0xFFF
    window = 0xFFFF_8000_0000_0000 + pt
    m.mem.write64(pd, (window & 0x000F_FFFF_FFFF_F000) | P | RW)
    v = verdict(explain(m.facts(cr2=PROC_PAGE, trap=trap(14, 0x8))))
    assert v == ("PD[2] = %#018x holds %#x, which looks like a kernel virtual address, not a "
                 "physical one: a table entry must hold the physical address of the next table "
                 "(virt_to_phys)" % ((window & 0x000F_FFFF_FFFF_F000) | P | RW, window))


def test_double_fault_on_an_unmapped_stack(m):
    no_stack = m.root(skip=(STACK + 0x1000,))
    facts = m.facts(root=no_stack, cr2=RSP - 8, rip=IST + 0x10, rsp=IST + 0xF00,
                    trap=trap(8, 0), roots=[KnownRoot(no_stack.root, "proc 1", "process")])
    lines = explain(facts)
    assert "walk of the interrupted RSP in the active root 'proc 1' (%#x):" % no_stack.root \
        in lines
    assert verdict(lines) == (
        "CR2 %#x is 8 bytes below the interrupted stack pointer %#x: the kernel stack is not "
        "mapped in the active root 'proc 1' (%#x) (it is mapped in root 'kernel' (%#x)), so the "
        "CPU could not push the exception frame" % (RSP - 8, RSP, no_stack.root, m.kernel.root))


def test_a_frame_that_fails_its_checks_is_not_decoded(m):
    bad = trap(14, 0x2, cs=0x1234, rflags=0)
    lines = explain(m.facts(cr2=PROC_PAGE, trap=bad))
    assert lines[0].startswith("not a trap frame: the 176 bytes at %#x that x86_trap (frame #2) "
                               "was given fail its checks (CS 0x1234 is not a GDT code selector"
                               % bad.address)
    assert not any("exception  #PF" in line for line in lines)
    assert verdict(lines).endswith("(x86_trap's frame at %#x is not a trap frame)" % bad.address)


@pytest.mark.parametrize("changes, problem", [
    ({"vector": 300}, "vector 0x12c is not below 256"),
    ({"vector": 6, "error": 4}, "error code 0x4 for vector 6, which has none (the stub pushes 0)"),
    ({"error": 1 << 20}, "page-fault error code 0x100000 has undefined bits set"),
    ({"cs": 0}, "CS 0x0 is not a GDT code selector"),
    ({"cs": 0x48}, "CS 0x48 is beyond the GDT (limit 0x37)"),
    ({"ss": 0x13}, "SS 0x13 does not go with CS 0x8"),
    ({"rflags": 0x80}, "RFLAGS 0x80 has a reserved bit wrong"),
    ({"rip": 0x0000_8000_0000_0000}, "RIP 0x800000000000 is not canonical"),
])
def test_trap_frame_checks(changes, problem):
    assert trap_frame_problems(trap(**{"vector": 14, "error": 2, **changes}).fields, 0x37) == \
        [problem]
    assert trap_frame_problems(trap(14, 2).fields, 0x37) == []
    assert trap_frame_problems(trap(13, 0, cs=0x23, ss=0x1B).fields, 0x37) == []


Log = namedtuple("Log", "faults")     # stands in for faultlog's parsed log: its exceptions in order


def test_the_first_logged_fault_is_what_the_instruction_did(m):
    """After a triple fault CR2 holds the last fault's address; QEMU's log (its first exception)
    names the one the instruction at RIP took. The log's own summary line is faults.py's (shared
    with AArch64), not the rules'."""
    no_stack = m.root(skip=(STACK + 0x1000,))
    log = Log([Fault(14, 0x2, CODE, RSP - 8), Fault(8, 0, CODE, None)])
    v = verdict(explain(m.facts(root=no_stack, cr2=0x1234_5000, log=log, stop="SIGQUIT")))
    assert v.startswith("CR2 %#x (the first #PF, in QEMU's log) is 8 bytes below the stack "
                        "pointer %#x" % (RSP - 8, RSP)), v
    assert "QEMU's log:" not in v, v
    elsewhere = Log([Fault(14, 0x2, CODE + 8, RSP - 8)])     # a first #PF at another RIP: not this one
    v = verdict(explain(m.facts(root=no_stack, cr2=0x1234_5000, log=elsewhere, stop="SIGQUIT")))
    assert "the first #PF, in QEMU's log" not in v, v


def test_a_loop_is_recognised_without_the_log(m):
    broken = m.root(text_at_pa=True)
    handler = TEXT + 14 * 16
    v = verdict(explain(m.facts(root=broken, rip=handler, cr2=handler, stop="SIGINT")))
    assert "the kernel text was mapped at its physical address" in v
    assert v.endswith("(the CPU is faulting on the first instruction of the #PF handler (RIP = "
                      "CR2 = %#x): an exception loop, not a triple fault)" % handler)


@pytest.mark.parametrize("limit, mode, vectors", [
    (0, "long", 0), (0xF, "long", 1), (0xFF, "long", 16), (0xFFF, "long", 256),
    (0xFFFF, "long", 256),            # a large limit still has only 256 vectors
    (0xFFFF, "protected", 256),       # the reset value, seen at the kernel's entry point
    (0x7F, "protected", 16), (0x3FF, "real", 256),
])
def test_idt_vectors_depend_on_the_mode(limit, mode, vectors):
    assert idt_vectors(limit, mode) == vectors


def test_decode_gate():
    gate = decode_gate(struct.pack("<HHBBHII", 0x3456, 0x08, 1, 0x8E, 0x9ABC, 0xFFFFFFFF, 0))
    assert (gate.handler, gate.selector, gate.ist, gate.type, gate.present) == \
        (0xFFFF_FFFF_9ABC_3456, 0x08, 1, 0xE, True)


# ---- lab 3: faults from ring 3 ----------------------------------------------------------------

USER_CS, USER_SS = 0x23, 0x1B        # GDT code/data selectors with RPL 3
USER_RSP = 0x7FFF_FFFF_E000


def process_root(m, skip=()):
    """A process root: the kernel's pages (but @p skip) and one user page of code."""
    proc = m.root(skip=skip)
    proc.map(PROC_PAGE, 0x30_0000, flags=P | US)
    return proc


def test_a_user_fault_is_the_process_s_not_the_kernel_s(m):
    proc = process_root(m)
    known = KnownRoot(proc.root, "probe", "process", 3)
    tf = trap(14, 0x5, rip=PROC_PAGE + 0x10, cs=USER_CS, ss=USER_SS, rsp=USER_RSP)  # P|U read
    lines = explain(m.facts(root=proc, cr2=TEXT, trap=tf, roots=[known]))
    assert any("raised in user mode by process 'probe' (pid 3" in line for line in lines), lines
    v = verdict(lines)
    assert v.startswith("process 'probe' (pid 3, root %#x) in ring 3: CR2 %#x: a user-mode "
                        "access to a supervisor page (US=0 in PT[0])" % (proc.root, TEXT)), v
    assert v.endswith("the kernel kills the process unless it resolves the fault"), v
    assert "not a kernel bug" not in v  # a program killed for what the kernel wrote there is the kernel's


def test_a_user_fault_at_the_program_s_stack_is_not_the_kernel_stack(m):
    """A user fault just below the user stack pointer (a stack the loader never recorded) was
    called "the kernel stack is not mapped"."""
    proc = process_root(m)
    tf = trap(14, 0x6, rip=PROC_PAGE + 0x10, cs=USER_CS, ss=USER_SS, rsp=USER_RSP)  # U|W, not present
    v = verdict(explain(m.facts(root=proc, cr2=USER_RSP - 8, trap=tf)))
    assert "kernel stack" not in v, v
    assert "at the program's own stack pointer %#x" % USER_RSP in v, v


def test_a_double_fault_from_user_mode_with_rsp0_zero_names_rsp0(m):
    m.write(TSS + 4, struct.pack("<Q", 0))
    proc = process_root(m)
    tf = trap(8, 0, rip=PROC_PAGE + 0x10, cs=USER_CS, ss=USER_SS, rsp=USER_RSP)
    v = verdict(explain(m.facts(root=proc, cr2=(1 << 64) - 8, trap=tf)))
    assert v.startswith("TSS.RSP0 is 0: no kernel stack was set for traps from user mode"), v


def test_a_double_fault_from_user_mode_with_rsp0_at_a_stack_s_bottom_says_so(m):
    base, stride, guard, size = 0xFFFF_FF00_0000_0000, 0x8000, 0x4000, 0x4000
    bottom = base + 3 * stride + guard
    m.write(TSS + 4, struct.pack("<Q", bottom))
    proc = process_root(m)
    tf = trap(8, 0, rip=PROC_PAGE + 0x10, cs=USER_CS, ss=USER_SS, rsp=USER_RSP)
    facts = m.facts(root=proc, cr2=bottom - 8, trap=tf)
    facts.stacks = StackSlots(base, stride, guard, size, 80)
    v = verdict(explain(facts))
    assert v.startswith("TSS.RSP0 %#x is the bottom of the kernel stack of slot 3" % bottom), v
    assert v.endswith("RSP0 must be %#x" % (bottom + size)), v


def test_a_double_fault_pushing_into_a_stack_s_guard_page_is_the_grader_s_overflow(m):
    """A push below a kernel stack's bottom, into its guard page: fault-why words the overflow as
    the grader's line 1 does (pagoda_pt.verdicts.kernel_stack_overflow), not as a stack unmapped."""
    no_guard = m.root(skip=(STACK,))
    bottom = STACK + 0x1000
    facts = m.facts(root=no_guard, cr2=bottom - 8, rip=IST + 0x10, rsp=IST + 0xF00,
                    trap=trap(8, 0, rsp=bottom), roots=[KnownRoot(no_guard.root, "proc 1", "process")])
    facts.stacks = StackSlots(STACK, 0x2000, 0x1000, 0x1000, 1)
    assert verdict(explain(facts)).startswith(
        "kernel stack overflow: the kernel wrote to %#x, the guard page below the kernel stack of slot 0 [%#x, %#x): "
        % (bottom - 8, bottom, bottom + 0x1000)), verdict(explain(facts))


def test_a_kernel_stack_mapped_only_in_the_root_where_it_was_allocated(m):
    """The lab-3 failure: an interrupt from ring 3 in process 2, whose root lacks the kernel
    stack in TSS.RSP0 (mapped in the kernel's root and process 1's): the CPU cannot push the
    frame, and the #DF's frame is the user's. fault-why walks RSP0 in both roots."""
    top = STACK + 0x2000
    m.write(TSS + 4, struct.pack("<Q", top))                                        # RSP0
    first = process_root(m)
    second = process_root(m, skip=(STACK, STACK + 0x1000))
    roots = [KnownRoot(first.root, "ticker", "process", 1),
             KnownRoot(second.root, "spin", "process", 2)]
    tf = trap(8, 0, rip=PROC_PAGE + 0x10, cs=USER_CS, ss=USER_SS, rsp=USER_RSP)
    lines = explain(m.facts(root=second, cr2=top - 8, trap=tf, roots=roots))
    assert any(line.startswith("walk of TSS.RSP0 in the active root 'spin'") for line in lines)
    v = verdict(lines)
    assert v == ("CR2 %#x is 8 bytes below TSS.RSP0 (the kernel stack a trap from user mode "
                 "lands on) %#x: the kernel stack is not mapped in the active root 'spin' (%#x) "
                 "(it is mapped in root 'kernel' (%#x) and 'ticker' (%#x)), so the CPU could not "
                 "push the exception frame" % (top - 8, top, second.root, m.kernel.root,
                                               first.root)), v


def test_a_double_fault_at_the_syscall_entry_on_a_null_stack_names_the_unset_syscall_stack(m):
    # SYSCALL switches no stack: an entry that loads a kernel stack never set runs on RSP 0 and
    # its first push faults; the walk of the null page is beside the point.
    proc = process_root(m)
    facts = m.facts(root=proc, cr2=(1 << 64) - 8, rip=TEXT + 0x20, rsp=0,
                    trap=trap(8, 0, rip=TEXT + 0x20, rsp=0))
    facts.symbol = lambda va: "x86_syscall_entry + 14 in section .text" if va == TEXT + 0x20 else ""
    v = verdict(explain(facts))
    assert v.startswith("the system-call stack is 0x0 at %#x (x86_syscall_entry + 14): the system-call entry "
                        "loaded a kernel stack that was never set" % (TEXT + 0x20)), v
    facts.symbol = lambda va: ""
    v = verdict(explain(facts))
    assert v.startswith("the stack pointer is 0x0 at %#x: the kernel ran on a stack that was never set"
                        % (TEXT + 0x20)), v


# ---- lab 4: a kernel access on a process's behalf -----------------------------------------------

KERNEL_POINTER = 0xFFFF_8000_5A51_D000     # a kernel-half address no root maps
USER_END = 0x8000_0000_0000


def copy_fault(m, cr2, error, fixups, syscall=None, function=C.X86.USER_COPY):
    """A kernel-mode #PF at CODE, which the symbols place in @p function, on @p cr2, while process
    'badptr' is live."""
    proc = process_root(m)
    facts = m.facts(root=proc, cr2=cr2, trap=trap(14, error),
                    roots=[KnownRoot(proc.root, "badptr", "process", 1)])
    facts.symbol = lambda va: "%s + 3 in section .text" % function if va == CODE else ""
    facts.fixups, facts.user_end, facts.syscall = fixups, USER_END, syscall
    return facts


def test_a_user_copy_fault_on_a_user_address_without_a_fix_up_entry_names_the_missing_entry(m):
    facts = copy_fault(m, 0, 0x0, fixups={CODE + 0x40: CODE + 0x44})          # another instruction's
    v = verdict(explain(facts))
    assert v.startswith("a user copy faulted on user address 0x0: the read at %#x in x86_user_copy, for "
                        "process 'badptr' (pid 1, root " % CODE), v
    assert "is not in the fix-up table (1 entry, none for %#x)" % CODE in v, v
    # With its entry the fault is the copy's way of finding a bad pointer (EFAULT), not a missing entry.
    facts = copy_fault(m, 0, 0x0, fixups={CODE: CODE + 0x10})
    v = verdict(explain(facts))
    assert "not in the fix-up table" not in v, v
    assert v.startswith("a user copy faulted on user address 0x0, and the fix-up table sends the read at "
                        "%#x in x86_user_copy to %#x" % (CODE, CODE + 0x10)), v
    # Outside the copies the table says nothing.
    facts = copy_fault(m, 0, 0x0, fixups={}, function=C.KMAIN)
    assert "fix-up" not in verdict(explain(facts))


def test_a_system_call_on_a_kernel_pointer_the_process_passed_names_the_unchecked_pointer(m):
    write = SyscallAt(1, (1, KERNEL_POINTER, 64, 0, 0, 0), "write")
    facts = copy_fault(m, KERNEL_POINTER, 0x0, fixups={CODE: CODE + 0x10}, syscall=write)
    v = verdict(explain(facts))
    assert v.startswith("the kernel touched the kernel-half address %#x on behalf of process 'badptr' "
                        "(pid 1, root " % KERNEL_POINTER), v
    assert "the process passed %#x as argument 2 of write (system call 1)" % KERNEL_POINTER in v, v
    assert "a user pointer that was not checked to be in the user half" in v, v
    # A kernel-half fault in a copy whose pointers were all the user's is the copy's kernel side.
    other = SyscallAt(1, (1, 0x40_1000, 64, 0, 0, 0), "write")
    facts = copy_fault(m, KERNEL_POINTER, 0x0, fixups={CODE: CODE + 0x10}, syscall=other)
    assert "user pointer" not in verdict(explain(facts))


def test_an_iretq_to_a_user_address_with_a_ring_0_selector_names_the_entry_s_privilege(m):
    frame_at = STACK + 0x1F00
    m.write(frame_at, struct.pack("<5Q", PROC_PAGE, 0x08, 0x202, USER_RSP, USER_SS))
    proc = process_root(m)
    facts = m.facts(root=proc, trap=trap(13, USER_SS & ~3, rsp=frame_at),
                    roots=[KnownRoot(proc.root, "hello", "process", 1)])
    facts.instruction = lambda va: "%#x <x86_trap_common+71>:\tiretq" % va if va == CODE else None
    lines = explain(facts)
    v = verdict(lines)
    assert v.startswith("the IRETQ at %#x returns to ring 0 at the user address %#x for process 'hello'"
                        % (CODE, PROC_PAGE)), v
    assert "has CS 0x8, RPL 0 (the kernel's code selector), where entering user mode needs the user code " \
           "selector, RPL 3 (its SS 0x1b has RPL 3" in v, v
    # The same frame with the user's code selector is an ordinary #GP.
    m.write(frame_at, struct.pack("<5Q", PROC_PAGE, USER_CS, 0x202, USER_RSP, USER_SS))
    assert "ring 0" not in verdict(explain(facts))


def test_a_kernel_mode_fault_on_the_process_s_code_is_user_code_run_in_ring_0(m):
    proc = process_root(m)
    facts = m.facts(root=proc, cr2=PROC_PAGE, trap=trap(14, 0x11, rip=PROC_PAGE, rsp=STACK + 0x2000),
                    roots=[KnownRoot(proc.root, "hello", "process", 1)])
    v = verdict(explain(facts))
    assert v.startswith("the CPU was running the process's user code at %#x in ring 0 (CS 0x8, CPL 0) for "
                        "process 'hello'" % PROC_PAGE), v
    assert "the entry to user mode kept kernel privilege: it returns to ring 0 when the code selector" in v, v
    # A kernel page there is not the process's code: the rule stays silent.
    m.kernel.map(PROC_PAGE, 0x30_0000, flags=P)
    facts = m.facts(cr2=PROC_PAGE, trap=trap(14, 0x11, rip=PROC_PAGE, rsp=STACK + 0x2000))
    assert "user code" not in verdict(explain(facts))


# ---- AArch64 (pagoda_pt.diagnose_aarch64): the walk of synthetic tables, the rules' sentences ----

from pagoda_pt.diagnose import KernelAccess, on_behalf_findings            # noqa: E402
from pagoda_pt.diagnose_aarch64 import (USER_COPY_ROUTINES, in_kernel_half, user_code_at_el1,  # noqa: E402
                                        wxn_refused_fetch)
from pagoda_pt.walker import walk as walk_tables                             # noqa: E402
from ptbuild import (AP_EL0, AP_RO, LEAF_DEFAULT, PXN, TCR_48BIT_4K, UXN, UXN_TABLE,  # noqa: E402
                     ArmTables)

SCTLR_M, SCTLR_WXN = 1, 1 << 19
A64_CODE = 0x40_0000
SPSR_EL0T, SPSR_EL1H = 0x0, 0x5


def arm_walk(attrs, sctlr=SCTLR_M | SCTLR_WXN, table_bits=0):
    """The walk of A64_CODE in a TTBR0 tree that maps it with leaf @p attrs."""
    mem = PhysMem()
    tables = ArmTables(mem)
    tables.map(A64_CODE, 0x4100_0000, attrs=LEAF_DEFAULT | attrs, table_bits=table_bits)
    regs = {"tcr_el1": TCR_48BIT_4K, "sctlr_el1": sctlr, "ttbr0_el1": tables.root}
    return walk_tables("aarch64", mem, None, A64_CODE, regs)


def test_aarch64_an_el0_fetch_from_a_writable_executable_page_is_a_segment_mapped_w_and_x():
    w = arm_walk(AP_EL0 | PXN)                               # EL0 read-write, UXN clear: W and X
    assert w.mapped and w.perms.write and not w.perms.execute   # WXN: the walker already refuses X
    s = wxn_refused_fetch(w, A64_CODE, SCTLR_M | SCTLR_WXN)
    assert s.startswith("the page at %#x is mapped writable and executable for EL0 (L3[0]: AP=01, UXN=0), and "
                        "SCTLR_EL1.WXN is set" % A64_CODE), s
    assert "The loader mapped a segment writable and executable" in s, s
    # Code mapped as it should be (read-only, or never executable at EL0) is not this cause.
    assert wxn_refused_fetch(arm_walk(AP_EL0 | AP_RO | PXN), A64_CODE, SCTLR_M | SCTLR_WXN) is None
    assert wxn_refused_fetch(arm_walk(AP_EL0 | PXN | UXN), A64_CODE, SCTLR_M | SCTLR_WXN) is None
    assert wxn_refused_fetch(arm_walk(AP_EL0 | PXN, table_bits=UXN_TABLE), A64_CODE, SCTLR_M) is None


def test_aarch64_an_el1_exception_on_the_process_s_code_is_user_code_run_at_el1():
    code = arm_walk(AP_EL0 | AP_RO | PXN)                    # the process's text: r-x at EL0
    s = user_code_at_el1(SPSR_EL1H, A64_CODE, code, "process 'hello' (pid 1, root 0x4010000)")
    assert s.startswith("the CPU was running the process's user code at %#x at EL1 for process 'hello' (pid 1, "
                        "root 0x4010000): the entry to user mode kept kernel privilege: its PSTATE says EL1h, "
                        "not EL0t" % A64_CODE), s
    assert "an exception return whose SPSR_EL1 names EL1h does not enter EL0" in s, s
    # From EL0 it is the process's own fault; a page EL0 may not execute is not its code.
    assert user_code_at_el1(SPSR_EL0T, A64_CODE, code, "p") is None
    assert user_code_at_el1(SPSR_EL1H, A64_CODE, arm_walk(AP_EL0 | AP_RO | PXN | UXN), "p") is None
    assert user_code_at_el1(SPSR_EL1H, A64_CODE, arm_walk(AP_RO), "p") is None     # a kernel page


def test_aarch64_a_kernel_access_on_a_process_s_behalf_uses_the_shared_rules():
    copy = 0xFFFF_FFFF_8022_78E8
    base = dict(pc=copy, function=C.AARCH64.USER_COPY, write=True, user_end=0x1_0000_0000_0000,
                copy_routines=USER_COPY_ROUTINES, process="process 'badptr' (pid 1, root 0x401c1000)")
    missing = on_behalf_findings(KernelAccess(address=0, kernel_half=in_kernel_half(0),
                                              fixups={copy - 4: copy + 8}, **base))
    assert [s for _, s in missing][0].startswith(
        "a user copy faulted on user address 0x0: the write at %#x in aarch64_user_copy, for process 'badptr' "
        "(pid 1, root 0x401c1000), is not in the fix-up table (1 entry, none for %#x)" % (copy, copy))
    pointer = 0xFFFF_8000_AA9F_1000
    found = on_behalf_findings(KernelAccess(address=pointer, kernel_half=in_kernel_half(pointer),
                                            fixups={copy: copy + 8}, **base))
    assert [s for _, s in found][0].startswith("the kernel touched the kernel-half address %#x on behalf of "
                                               "process 'badptr'" % pointer)


def test_a_system_call_through_an_entry_never_written_is_named():
    from pagoda_core.faultlog import Event

    def fetch_fault(pc, **registers):
        return Event(arch="x86_64", kind="exception", vector=14, mnemonic="#PF", name="page fault", pc=pc,
                     privilege=0, error=0x10, address=pc, registers=registers)
    rule = isa("x86_64").entry_never_set
    said = rule(fetch_fault(0, RCX=0x400e9c, R11=0x202))
    assert said and "MSR LSTAR) was never written" in said and "0x400e9c" in said
    assert rule(fetch_fault(0, RCX=0xffffffff80001000, R11=0x202)) is None     # RCX no user return address
    assert rule(fetch_fault(0, RCX=0x400e9c, R11=0)) is None                    # R11 no RFLAGS
    assert rule(fetch_fault(0x5000, RCX=0x400e9c, R11=0x202)) is None           # not through a null entry
    assert rule(fetch_fault(0, RAX=1)) is None
    assert not isa("aarch64").entry_never_set(fetch_fault(0, RCX=0x400e9c, R11=0x202))
