"""Witnesses: what the grader checks without believing the kernel.

A kernel can print any line; it cannot forge what QEMU sees. Every grader test that checks a
milestone uses this library, so that later labs inherit the same witnesses:

1. QEMU's exception log (`-d int`, parsed by tools/pagoda_core/faultlog.py):
       expect_fault(run, ...)               the fault the test provoked, as the CPU took it, and
                                            matching what the kernel's report says
       expect_hardware_interrupts(run, n)   interrupts the hardware raised (not INT n / SVC)
2. Snapshots at moments the grader chooses: a boot made with boot(witness=script) starts QEMU
   stopped, with a gdbstub and its RAM readable; script(guest) runs while the guest does:
       guest.stop_at("pagoda::some_function")  -> Snapshot (a breakpoint the test names)
       guest.stop_after(seconds) / guest.stop_at_line(regex, delay)  -> Snapshot (an instant)
       guest.deliver([values])              inputs written into guest RAM while it is stopped
   A Snapshot has the translation registers read through the gdbstub (CR3; TTBR0/1_EL1),
   a physical-memory reader, and the page-table walker (tools/gdb/pagoda_pt) over the live
   root(s), bounded against hostile tables:
       snap.walk(va)  snap.dump()  snap.translate(va)  snap.read_virt(va, n)  snap.argument(i)
3. The whole expected map (vmchecks.py): expected_kernel_map(kernel, arch, memory) lists every
   region the kernel must map (each image section with its permissions, the RAM window, the
   devices) and compare_map(snap, regions) reports every missing, extra or wrong mapping.
4. Inputs the kernel cannot know in advance: the test picks them (pick_page, pick_in) from the
   token (so a failure is reproducible with PAGODA_GRADE_TOKEN) among values valid for the
   check, and hands them to the kernel on the command line (boot(args=...)) or in guest RAM.

The per-architecture facts live in one ArchModel per ISA (ARCHES: registers, argument registers,
how the kernel's printed report reads, the faults the tests provoke), built on the ISA's object
(pagoda_pt/isa.py), and in the QEMU board that object names (Isa.machine: where QEMU puts RAM and
devices; bootram.usable_ram() reads the memory map QEMU hands the kernel from QEMU itself); the kernel's
own layout is read from the facts its ELF exports (symbols.fact). A new ISA adds its Isa, its
ArchModel and a parser in faultlog.py.
"""
import functools
import hashlib
import os
import re
import struct
import time
from dataclasses import dataclass

from pagoda_pt import contract
from . import symbols
from .outcomes import ENDED, BootEnded
from .rsp import RspClient, RspError, RspTimeout

import pagoda_pt.isa
import pagoda_pt.trees
import pagoda_pt.walker
from pagoda_pt import x86_facts as _X86
from pagoda_pt.image import CensusError, read_image
from pagoda_pt.isa import MACHINES
from pagoda_pt.model import PAGE_SIZE_4K as PAGE
from pagoda_core import qemu
from pagoda_core.faultlog import ESR_FAULT_KIND_MASK

MiB = 1 << 20
GiB = 1 << 30
# A walk yields at most this many runs (merged leaves): a kernel map is a few hundred, a process a
# few dozen; a root whose 2 MiB entries each map a frame of their own (512 GiB of them: 262144)
# would otherwise take the grader minutes and gigabytes.
MAX_RUNS = 1 << 16
# Single steps tried to get the guest off an instruction it is stopped at (Guest._step_off).
STEP_OFF_TRIES = 8
# Argument registers read with every Snapshot's pc and sp (Guest.snapshot): lab 7's side stops read
# up to the fourth (x86_64's hidden result pointer first), each otherwise a round trip of its own.
STOP_ARGUMENTS = 4


# ---- Per-architecture facts --------------------------------------------------------------------

# The grader's view of each ISA: the ISA's own object (pagoda_pt/isa.py: register names, root
# registers and their masks, labels, the fault and table-entry rules), which the GDB commands and
# the fault-log reader share, plus what only the grader asks (argument registers, the kernel's
# printed report, processes).

# The ISA object's facts an ArchModel answers for it, under the same names.
FROM_ISA = frozenset(("name", "pc", "sp", "translation", "lower_root", "upper_root", "root_masks",
                      "lower_root_label", "lower_half_label", "phys_bits_from_qemu", "access",
                      "is_page_fault", "is_table_entry", "one_root"))


@dataclass(frozen=True)
class ArchModel:
    isa: object                  # the pagoda_pt.isa.Isa it extends (see FROM_ISA)
    arguments: tuple             # registers holding a function's first arguments at its entry
    report: dict                 # regexes over the kernel's printed exception report
    kernel_privilege: int        # the CPL (x86_64) or exception level (AArch64) the kernel runs at
    user_mode: str               # what a message calls user mode: "ring 3" or "EL0"
    link_register: str           # where a function finds its return address at entry (None: the stack)
    result_pointer_argument: bool  # a result returned in memory takes the first argument register
    # expect_fault()'s vector, error and error_mask for a read of an unmapped page, a write to a
    # read-only page and an instruction fetch from a no-execute page (the fault tests of labs 1-2).
    page_faults: dict
    # The paging controls that make permissions real, read from outside: (register, bit, what).
    paging_controls: tuple
    # What the grader reads in each entry of the kernel half's tables (vmchecks.kernel_half_problems).
    kernel_half_bits: dict
    proc: dict = None            # processes (lab 3): see PROCESS_FACTS below

    def __getattr__(self, attr):
        if attr in FROM_ISA:
            return getattr(self.isa, attr)
        raise AttributeError(attr)

    def roots(self, regs):
        """{name: physical root} of the live translation tables."""
        return {name: regs[name] & mask for name, mask in self.root_masks}

    def present(self, entry):
        return bool(entry & 1)


# How each ISA raises the page faults the lab 1-2 tests provoke. x86_64: #PF and its error code.
# AArch64: QEMU's exception 4 (Data Abort) or 3 (Prefetch Abort) and the syndrome, ESR: class (EC
# 0x25 data abort / 0x21 instruction abort, same EL), WnR and the fault status type (translation
# or permission fault); its level depends on the tables, so it is masked out.
#
# The kernel half, entry by entry. x86_64: the upper half of CR3's root (PML4 256..511); US (bit 2)
# at every level must be clear, and every leaf global (G, bit 8; CR4.PGE on, bit 7). AArch64: every
# entry of TTBR1's root; a table descriptor must forbid EL0 below it (APTable[0], bit 61), a leaf
# must be EL1-only (AP[1], bit 6, clear) and global (nG, bit 11, clear: one TLB entry for every ASID).

def _x86_invalidates_tlb(code):
    """Whether @p code (an instruction's first 4 bytes) is INVLPG, a write to CR3 or INVPCID."""
    i = 0
    while i < 3 and (code[i] in (0x66, 0xf2, 0xf3) or 0x40 <= code[i] <= 0x4f):   # prefixes, REX
        i += 1
    op, modrm = code[i:i + 2], code[i + 2] if i + 2 < len(code) else 0
    return (op == b"\x0f\x01" and modrm >> 3 & 7 == 7 and modrm >> 6 != 3) or \
        (op == b"\x0f\x22" and modrm >> 3 & 7 == 3) or code[i:i + 3] == b"\x0f\x38\x82"


def _aarch64_invalidates_tlb(code):
    """Whether @p code (an instruction) is a TLBI: SYS with op0 1 and CRn 8."""
    return struct.unpack("<I", code[:4])[0] & 0xfff8f000 == 0xd5088000


X86_64 = ArchModel(
        isa=pagoda_pt.isa.X86_64, arguments=("rdi", "rsi", "rdx", "rcx", "r8", "r9"),
        report={"header": r"^TRAP: (\S+) .*\(vector (\d+)\)", "address": r"^\s+CR2 (0x[0-9a-f]+)",
                "pc": r"^\s+RIP (0x[0-9a-f]+)", "error": r"^\s+error (0x[0-9a-f]+)"},
        kernel_privilege=0, user_mode="ring 3", link_register=None, result_pointer_argument=True,
        page_faults=dict(read=dict(vector=_X86.PAGE_FAULT, error=0x0),
                         write_protect=dict(vector=_X86.PAGE_FAULT, error=0x3),
                         fetch=dict(vector=_X86.PAGE_FAULT, error=0x11)),
        paging_controls=(("efer", 11, "EFER.NXE is off: no-execute bits are not enforced"),
                         ("cr0", 16, "CR0.WP is off: the kernel can write to read-only pages")),
        kernel_half_bits=dict(
            table_allows_user=lambda e: bool(e & 1 << 2), leaf_allows_user=lambda e: bool(e & 1 << 2),
            leaf_global=lambda e: bool(e & 1 << 8),
            is_leaf=lambda e, level, last: level == last or (level in (1, 2) and bool(e & 1 << 7)),
            user_words="US set", global_words="G clear: not global", hardware_bits=(1 << 5) | (1 << 6),
            global_control=("cr4", 7, "CR4.PGE is off: global entries are flushed at every CR3 load")),
        proc={"switch": contract.X86.SWITCH, "switch_next_sp": "rsi",
              "syscall_entry": contract.X86.SYSCALL_ENTRY, "syscall_number": "rax",
              "syscall_args": ("rdi", "rsi", "rdx", "r10", "r8", "r9"), "syscall_return_pc": "rcx",
              # Every register a value could have come from at the system-call entry, and what
              # the ones that hold no argument hold there (how a test names a wrong source).
              "syscall_entry_registers": ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
                                          "r11", "r12", "r13", "r14", "r15"),
              "syscall_entry_roles": {"rax": "the call number", "rcx": "the user return address, written by `syscall`",
                                      "r11": "the user RFLAGS, written by `syscall`", "rsp": "the user stack pointer"},
              # An argument register the C convention puts elsewhere, and why the ABI cannot
              # (register, the C convention's register, the reason): the 4th argument.
              "syscall_abi_traps": (("r10", "rcx", "the x86_64 syscall ABI passes the 4th argument in R10, since "
                                                   "`syscall` overwrites RCX with the return address"),),
              "register_names_upper": True,
              "root_loader": contract.X86.ROOT_LOADER, "root_loader_arg": "rdi",
              # The TLB maintenance of one address space (this, va, global / this, global).
              "tlb_page": contract.X86.TLB_PAGE, "tlb_all": contract.X86.TLB_ALL,
              "timer_vector": _X86.FIRST_INTERRUPT, "page_fault": _X86.PAGE_FAULT,
              "protection_fault": _X86.GENERAL_PROTECTION, "stack_overflow": _X86.DOUBLE_FAULT,
              "cpu_set_bits": (1 << 5) | (1 << 6),
              # (register, bit, name, the -cpu feature QEMU must emulate for it: qemu.missing_cpu_features)
              "user_guards": (("cr4", 20, "SMEP", "smep"), ("cr4", 21, "SMAP", "smap"), ("cr4", 11, "UMIP", "umip")),
              # What each CPU must hold as the boot CPU does (lab 8): (register, bit, name).
              "cpu_protections": (("cr4", 20, "CR4.SMEP"), ("cr4", 21, "CR4.SMAP"), ("cr4", 11, "CR4.UMIP"),
                                  ("efer", 11, "EFER.NXE")),
              # Where a CPU's trap stack is found: the TSS its TR names (QEMU's `info registers`),
              # TSS.RSP0 at this offset (the ISA's layout, not the kernel's).
              "cpu_trap_stack": ("TR", 4),
              # Instructions of user/programs/priv.cpp that fault in ring 3 only with a CPU feature.
              "privileged_needs": {"sgdt": "umip"},
              "pf_error": {"present": 1, "write": 2, "user": 4, "fetch": 16},
              "syscall_result": "rax", "user_privilege": 3, "privileged_fault": _X86.GENERAL_PROTECTION,
              "instruction_abort": _X86.PAGE_FAULT,
              # Where a trap from ring 3 takes its kernel stack (Guest.user_trap_stacks): (what, how,
              # base, offset): "read" in RAM where the CPU reads it, or "run" from the entry there
              # until the stack pointer lands (`syscall` loads no stack: its entry code does).
              "user_trap_stacks": (("TSS.RSP0", "read", "TR", 4),
                                   ("the system-call stack", "run", contract.X86.SYSCALL_ENTRY, 0)),
              # Whether a trap's entry, stepped, has its stack now: RSP moved at all.
              "stack_landed": lambda code, moved: moved,
              "syscall_entry_kernel_sp": False,   # `syscall` leaves the user's RSP in place
              # Where interrupts are enabled: (register, bit, set means enabled); whether QEMU's log
              # names the root of each exception (CR3), and its event of a system call (`syscall`
              # is no exception: none); how a new process's first frame enters user mode (CS and SS
              # selectors), and the user half's words.
              "irq_flag": ("eflags", 9, True), "log_names_root": True, "log_syscall": None, "entry_selectors": True,
              "user_half_words": "the lower half of CR3",
              # Whether the next instruction (its first bytes) drops TLB entries (a stepped pop).
              "invalidates_tlb": _x86_invalidates_tlb})

AARCH64 = ArchModel(
        isa=pagoda_pt.isa.AARCH64, arguments=tuple(f"x{i}" for i in range(8)),
        report={"header": r"^TRAP: (\S+)", "address": r"^\s+FAR (0x[0-9a-f]+)",
                "pc": r"^\s+ELR (0x[0-9a-f]+)", "error": r"^\s+ESR (0x[0-9a-f]+)"},
        kernel_privilege=1, user_mode="EL0", link_register="x30",
        result_pointer_argument=False,   # (X8 holds a result's address)
        page_faults=dict(read=dict(vector=4, error=0x9600_0004, error_mask=ESR_FAULT_KIND_MASK),
                         write_protect=dict(vector=4, error=0x9600_004C, error_mask=ESR_FAULT_KIND_MASK),
                         fetch=dict(vector=3, error=0x8600_000C, error_mask=ESR_FAULT_KIND_MASK)),
        paging_controls=(("sctlr_el1", 0, "SCTLR_EL1.M is off: the MMU does not translate"),
                         ("sctlr_el1", 19, "SCTLR_EL1.WXN is off: writable pages are executable")),
        kernel_half_bits=dict(
            table_allows_user=lambda e: not e & 1 << 61, leaf_allows_user=lambda e: bool(e & 1 << 6),
            leaf_global=lambda e: not e & 1 << 11,
            is_leaf=lambda e, level, last: level == last or (level in (1, 2) and e & 3 == 1),
            user_words="EL0 allowed (APTable[0] clear on a table, AP[1] set on a leaf)",
            global_words="nG set: not global", global_control=None, hardware_bits=0),
        # Vectors are QEMU's exception numbers (faultlog.AARCH64_EXCEPTIONS): 1 UNDEF (undefined
        # and trapped instructions alike), 3 prefetch abort, 4 data abort, 5 IRQ. A process's
        # root is TTBR0's; TTBR1 holds the kernel's at every instant. There is no exception that
        # reports a kernel stack overflow (no IST, no #DF): the vector entry checks SP against the
        # guard and moves to an overflow stack itself (arch/aarch64/vectors.S), so stack_overflow
        # is None and the grader checks that nothing faulted after the abort in the guard.
        proc={"switch": contract.AARCH64.SWITCH, "switch_next_sp": "x1",
              "syscall_entry": contract.AARCH64.SYSCALL_ENTRY, "syscall_number": "x8",
              "syscall_args": ("x0", "x1", "x2", "x3", "x4", "x5"), "syscall_return_pc": "elr_el1",
              "syscall_entry_registers": tuple(f"x{i}" for i in range(31)) + ("elr_el1",),
              "syscall_entry_roles": {"x8": "the call number", "x30": "the user link register",
                                      "elr_el1": "the user return address"},
              "syscall_abi_traps": (), "register_names_upper": False,
              "syscall_result": "x0", "syscall_entry_kernel_sp": True,   # SP is SP_EL1 there
              "root_loader": contract.AARCH64.ROOT_LOADER, "root_loader_arg": "x0",
              # (every vector entry from EL0 loads SP_EL1 itself: the synchronous one is run)
              "user_trap_stacks": (("the EL1 stack", "run", "vbar_el1", 0x400),),
              # ... SP moved, and the next instruction opens the frame (SUB SP, SP, #imm).
              "stack_landed": lambda code, moved: moved and struct.unpack("<I", code[:4])[0] & 0xffc003ff == 0xd10003ff,
              "tlb_page": contract.AARCH64.TLB_PAGE, "tlb_all": contract.AARCH64.TLB_ALL,
              "timer_vector": 5, "page_fault": 4, "instruction_abort": 3, "protection_fault": 4,
              "privileged_fault": 1, "stack_overflow": None, "user_privilege": 0,
              # PSTATE.PAN, as the gdbstub's CPSR shows it (bit 22).
              "user_guards": (("cpsr", 22, "PAN", None),),   # the Cortex-A76 model always has PAN
              "cpu_protections": (("sctlr_el1", 19, "SCTLR_EL1.WXN"),
                                  ("sctlr_el1", 23, "SCTLR_EL1.SPAN (clear: every exception sets PSTATE.PAN)"),
                                  ("cntkctl_el1", 1, "CNTKCTL_EL1.EL0VCTEN (set: user code reads the counter)")),
              # Where a CPU's trap from EL0 is witnessed (lab 8): its vector base, and the ISA's
              # offsets there of the synchronous and IRQ entries from a lower EL in AArch64.
              "cpu_trap_stack": ("vbar_el1", (0x400, 0x480)),
              "privileged_needs": {},
              # ESR_EL1: classes (lower EL; the same-EL class is one more), WnR, the fault status
              # type (bits 5:2; bits 1:0 are the level, which depends on the tables), and the bits
              # a test compares.
              "esr": {"data_abort": 0x24, "instruction_abort": 0x20, "wnr": 1 << 6, "translation": 0b0100,
                      "permission": 0b1100, "mask": (0x3F << 26) | (1 << 6) | 0x3C},
              "irq_flag": ("cpsr", 7, False), "log_names_root": False, "log_syscall": "SVC", "entry_selectors": False,
              "user_half_words": "TTBR0", "invalidates_tlb": _aarch64_invalidates_tlb})

# The models by their ISA's name.
ARCHES = {m.name: m for m in (X86_64, AARCH64)}


# ---- The kernel's layout -----------------------------------------------------------------------

def layout_value(kernel, key):
    """A layout constant of the kernel (kernel/mm/base/layout.hpp), read from the fact it exports as
    an ELF symbol (symbols.fact): the grader keeps no copy of the layout."""
    return symbols.fact(kernel, key)


@dataclass(frozen=True)
class TopLevel:
    """The root table's shape, from the kernel's facts."""
    entries: int          # entries per table
    kernel_first: int     # the first top-level entry of the kernel half in its root
    shift: int            # one top-level entry maps 1 << shift bytes

    @property
    def lower_entries(self):
        """How many top-level entries of the lower half's root map the lower half: those below
        the kernel half when both halves share one root (x86_64: 256), all of them when the
        kernel half starts at entry 0 of a root of its own (AArch64's TTBR0 and TTBR1: 512)."""
        return self.kernel_first if self.kernel_first > 0 else self.entries


@functools.lru_cache(maxsize=8)
def top_level(kernel):
    entries, levels = layout_value(kernel, "entries_per_table"), layout_value(kernel, "levels")
    shift = layout_value(kernel, "page_size").bit_length() - 1 + (entries.bit_length() - 1) * (levels - 1)
    return TopLevel(entries, layout_value(kernel, "kernel_half_first_entry"), shift)


@dataclass(frozen=True)
class Region:
    """A range the kernel must map: [va, va + size) -> [pa, ...) (pa None: any frames) with
    permissions perms ('r-x', 'rw-', ...), supervisor only. what names it in messages."""
    va: int
    size: int
    pa: int | None
    perms: str
    what: str
    content: tuple | None = None   # [start, end) of the bytes the ELF puts there (image regions)
    memory: str | None = None      # DEVICE_MEMORY or NORMAL_MEMORY: the memory type it must have (None: any)

    @property
    def end(self):
        return self.va + self.size


# The memory types a kernel mapping must have: device registers uncached (x86_64: UC through PCD and
# PWT; AArch64: a Device attribute), RAM and the image write-back cacheable.
DEVICE_MEMORY = "device"
NORMAL_MEMORY = "normal"


def _align_down(x, a=PAGE):
    return x & ~(a - 1)


def _align_up(x, a=PAGE):
    return (x + a - 1) & ~(a - 1)


def kernel_image_regions(kernel):
    """The kernel image as the kernel must map it (pagoda_pt.image's reader, KernelImage.parts),
    as Regions; AssertionError naming a linker-script symbol the kernel lacks."""
    image = read_image(symbols.reader(kernel))
    if image is None:
        for name in (contract.KERNEL_START, contract.KERNEL_END, contract.KERNEL_VIRT_OFFSET):
            symbols.address_of(kernel, name)
    return [Region(p.va, p.end - p.va, p.pa, p.perms, "kernel " + p.what, p.content, NORMAL_MEMORY)
            for p in image.parts(symbols.reader(kernel)(contract.BOOT_STACK_GUARD))]


def image_physical(kernel):
    """[start, end) of the physical memory the kernel image proper occupies (never RAM to map)."""
    regions = kernel_image_regions(kernel)
    return min(r.pa for r in regions), max(r.pa + r.size for r in regions)


# ---- Reading the guest -------------------------------------------------------------------------

class WalkError(AssertionError):
    """The grader's own walk could not finish (a table cycle, an absurd tree, the test's time
    running out): a failure of the test, with the boot's context, like any failed check."""


class Snapshot:
    """The guest, stopped: registers read from outside, RAM, and walks over the live root(s)."""

    def __init__(self, guest, registers):
        self.guest = guest
        self.arch = guest.arch
        self.model = ARCHES[guest.arch]
        self.registers = registers          # lower-case names
        self.pc = registers[self.model.pc]
        self.sp = registers[self.model.sp]
        self.roots = self.model.roots(registers)
        self.walk_regs = {k: v for k, v in registers.items() if k in self.model.translation}
        self._pages = {}  # (root, virtual page) -> physical page, for read_virt

    @property
    def root(self):
        """The root x86_64's CR3 names (AArch64: TTBR1_EL1's table, the kernel half)."""
        return self.roots[self.model.upper_root]

    @property
    def lower_root(self):
        """The root that translates the lower half (CR3's; AArch64: TTBR0_EL1's)."""
        return self.roots[self.model.lower_root]

    def read_phys(self, pa, size):
        return self.guest.read_phys(pa, size)

    def read_u64(self, pa):
        return struct.unpack("<Q", self.read_phys(pa, 8))[0]

    def table_entries(self, pa):
        n = top_level(self.guest.kernel).entries
        return struct.unpack(f"<{n}Q", self.read_phys(pa, n * 8))

    def top_level_entries(self, root=None):
        return self.table_entries(self.root if root is None else root)

    def _root_arg(self, root):
        if root is not None:
            return root
        return self.roots[self.model.lower_root] if self.model.one_root else None

    @property
    def pa_bits(self):
        """The guest CPU's physical address width, as QEMU models it (None: not known)."""
        return self.guest.pa_bits

    def walk(self, va, root=None):
        """pagoda_pt's Walk of @p va through the live root (or @p root)."""
        return pagoda_pt.walker.walk(self.arch, self.read_phys, self._root_arg(root), va, self.walk_regs,
                                     pa_bits=self.pa_bits)

    def translate(self, va, root=None):
        w = self.walk(va, root)
        return w.pa if w.mapped else None

    def runs(self, root=None):
        """Every mapped run of the live root (or @p root), lazily: the walk reads tables only as
        far as the runs asked for. WalkError when the tables cycle, when the tree holds more than
        MAX_RUNS runs, or when the test's deadline passes during the walk."""
        session = getattr(self.guest, "session", None)
        budget = session.budget if session is not None else None
        late = None if budget is None else lambda n: budget.left() <= 0 and (
            f"the test's time ran out while the grader walked the tables ({n} tables read): "
            "a tree this large takes the grader longer than the test has")
        shown = f"root {root:#x}" if isinstance(root, int) else "the live root"
        try:
            runs = pagoda_pt.trees.runs(self.arch, self.read_phys, self._root_arg(root), self.walk_regs,
                                        pa_bits=self.pa_bits, late=late,
                                        roots=[root] if root is not None else list(self.roots.values()))
            for n, run in enumerate(runs):
                if n == MAX_RUNS:
                    raise WalkError(f"{shown} maps more than {MAX_RUNS} separate runs of pages (the grader stopped "
                                    f"walking it at {run.va_start:#x}): no kernel or process of these labs maps a "
                                    "thousandth of that; a table filled with entries to scattered frames")
                yield run
        except CensusError as e:
            raise WalkError(str(e)) from None

    def dump(self, root=None):
        """Every mapped run of the live root (or @p root), as a list; WalkError as for runs()."""
        return list(self.runs(root))

    def read_virt(self, va, size, root=None):
        """@p size bytes at virtual @p va, translated by the grader's own walk (not the CPU's)."""
        out = bytearray()
        end = va + size
        while len(out) < size:
            at = va + len(out)
            page = at & ~(PAGE - 1)
            if (root, page) not in self._pages:
                self._translate_pages(page, -(-(end - page) // PAGE), root)
            n = min(size - len(out), PAGE - (at % PAGE))
            out += self.read_phys(self._pages[(root, page)] + at % PAGE, n)
        return bytes(out)

    # The entry bits that may differ between two leaves of one table that map alike: the frame
    # address below 4 GiB (any other difference, a higher address bit included, is walked).
    _FRAME_BITS = (1 << 32) - PAGE

    def _translate_pages(self, page, count, root):
        """Records in _pages the frame of @p page and of as many of the @p count - 1 pages after
        it as the same leaf table or block maps alike. One walk per table, not per page: a
        neighbour whose entry differs from the walked one only in its frame address translates
        the same way through the same upper levels, to that frame."""
        w = self.walk(page, root)
        if not w.mapped:
            raise AssertionError(f"{page:#x} is not mapped in the live root")
        self._pages[(root, page)] = w.pa
        leaf = w.levels[-1]
        if w.page_size != PAGE:   # a block: every page of it that was asked for
            for k in range(1, min(count, (w.page_size - (page % w.page_size)) // PAGE)):
                self._pages[(root, page + k * PAGE)] = w.pa + k * PAGE
            return
        more = min(count - 1, PAGE // 8 - 1 - leaf.index)
        if more <= 0 or leaf.raw is None:
            return
        for k, e in enumerate(struct.unpack(f"<{more}Q", self.read_phys(leaf.entry_pa + 8, 8 * more)), 1):
            if (e ^ leaf.raw) & ~self._FRAME_BITS:
                break
            self._pages[(root, page + k * PAGE)] = w.pa + (e - leaf.raw)

    def find_u64(self, value, page_offset=None, limit=4):
        """Physical addresses (at most @p limit) where guest RAM holds the 64-bit little-endian
        @p value, 8-byte aligned, and at @p page_offset within its page when given."""
        return self.guest.find_u64(value, page_offset, limit)

    def argument(self, index):
        """Argument @p index of the function the guest is stopped at the entry of."""
        return self.register(self.model.arguments[index])

    def register(self, name):
        """Register @p name (the gdbstub's name, lower case) at this stop."""
        if name not in self.registers:
            self.registers[name] = self.guest.client.read_register(name)
        return self.registers[name]

    def write_virt(self, va, data, root=None):
        """Writes @p data at virtual @p va, translated by the grader's own walk of @p root (the
        live root by default), into guest RAM: how a test reaches into a process that is not
        the one running."""
        done = 0
        while done < len(data):
            at = va + done
            pa = self.translate(at & ~(PAGE - 1), root)
            if pa is None:
                raise AssertionError(f"{at:#x} is not mapped in root {root if root is not None else self.root:#x}")
            n = min(len(data) - done, PAGE - at % PAGE)
            self.guest.write_phys(pa + at % PAGE, data[done:done + n])
            done += n

    def symbol(self, address):
        return self.guest.symbol_of(address)


def return_address(snap):
    """Where the function the guest is stopped at the entry of returns to (x86_64: the word at
    RSP; AArch64: the link register)."""
    link = ARCHES[snap.arch].link_register
    if link is None:
        return int.from_bytes(snap.read_virt(snap.sp, 8), "little")
    return snap.register(link)


class Guest:
    """A running, witnessed guest: what a witness script gets (see the module's docstring)."""

    def __init__(self, booter, session, client, ram_fd, ram_size):
        self.booter = booter
        self.arch = booter.arch
        self.kernel = booter.kernel
        self.model = ARCHES[booter.arch]
        self.machine = MACHINES[booter.arch]
        self.session = session
        self.client = client
        self.ram_fd = ram_fd
        self._ram_write_fd = None   # opened by the first fill_phys()
        self._ram_map = None        # a read-only view of RAM, mapped by the first find_u64()
        self.ram_size = ram_size
        self.waiting_for = None
        self._stops = 0
        self._stopped_at = None   # the PC of the last snapshot while the guest stays stopped
        self._armed = set()       # the breakpoints in QEMU now (_arm())
        # Callables run on every Snapshot the guest gives (a check that holds at every stop, e.g.
        # programs.ImageWatch); an AssertionError they raise fails the test there.
        self.stop_hooks = []
        # Stops on the way (side_stop()): {address: callable(Snapshot) or None}.
        self.side_stops = {}
        self.side_hits = {}   # {address: how many times a side stop there was taken}
        # Moments marked on the way (mark_at()): {address: callable(Snapshot)}, no stop hook run.
        self.marks = {}

    @classmethod
    def attach(cls, booter, session, sock, ram_size):
        """Connects to QEMU's gdbstub (QEMU waits, stopped, with -S) and opens its RAM."""
        client = RspClient(sock, idle=session.check, arch=booter.arch)
        try:
            client.handshake()
        except RspError as e:
            session.check()
            raise AssertionError(f"cannot talk to QEMU's gdbstub: {e}") from None
        session.check()
        ram_fd = qemu.open_guest_ram(session.proc.pid)
        return cls(booter, session, client, ram_fd, ram_size)

    # ---- time ----------------------------------------------------------------------------------

    def _left(self):
        return max(0.01, self.session.budget.left())

    def _wait(self, what):
        self.waiting_for = what
        try:
            # No deadline of its own: the client's idle callback pumps the session, which ends
            # the boot when the test's budget (speed.Budget: it grows back by the time the
            # machine kept us waiting) is spent.
            reply = self.client.wait_stop(timeout=float("inf"))
        except RspError as e:
            end = time.monotonic() + 2
            while self.session.pump(0.05) and time.monotonic() < end:
                pass  # the stub hung up: QEMU is exiting; let its last output in
            raise BootEnded(str(e)) from None
        if reply.exited:
            self.session.run_to_end()
            raise BootEnded("QEMU reported that the guest exited")
        self.waiting_for = None
        return reply

    def side_stop(self, where, callback=None):
        """From now on, stop_at() and stop_at_any() also stop the guest at @p where (a function
        name or an address) on their way: the stop hooks run on the Snapshot there, then
        @p callback(snapshot) when given, and the guest runs on to the stop the caller asked for.
        How a test looks at a moment that may come between two of its stops, or instead of the
        next one: a process being killed (pagoda::proc::user_fault), whose memory is gone once the
        boot ends. stop_after() and stop_at_line() set no breakpoints, and so no side stops."""
        address = where if isinstance(where, int) else symbols.address_of(self.kernel, where)
        self.side_stops[address] = callback

    def mark_at(self, where, callback):
        """From now on, whenever the guest is at @p where (a function name or an address) in a
        Snapshot, @p callback(snapshot) runs: at the stops callers take there, and at a stop that
        stop_at() and stop_at_any() take there on their way (as side_stop(), but with no stop hook
        run and nothing else read: a moment marked, e.g. the kernel looking at its own fault,
        not one more look at the guest). Like side stops, none while stop_after() or
        stop_at_line() let the guest run."""
        self.marks[where if isinstance(where, int) else symbols.address_of(self.kernel, where)] = callback

    def stop_at(self, where):
        """Runs the guest until it executes @p where (a function name or an address); returns
        the Snapshot there (its breakpoint stays in QEMU until the guest runs on: _arm()).

        QEMU runs every instruction in the page of a breakpoint one at a time: a breakpoint
        next to code that runs long (the kernel's set-up, a test's loop) slows it tenfold. Stop
        first somewhere quiet (pagoda::run_selftest, pagoda_grader_checkpoint), then at the
        function you want."""
        address = where if isinstance(where, int) else symbols.address_of(self.kernel, where)
        what = where if isinstance(where, str) else f"{address:#x}"
        if any(a != address for a in (*self.side_stops, *self.marks)):
            return self.stop_at_any([address], what=what)
        if self._stopped_at == address:
            # Stopped on this very instruction: QEMU would report the breakpoint again without
            # running it. Step past it first.
            self._step_off(address, what)
        self._stopped_at = None
        self._arm({address}, resume="c")
        self._wait(what)
        snap = self.snapshot()
        if snap.pc != address:
            raise AssertionError(f"the guest stopped at {snap.pc:#x}, not at {what} ({address:#x})")
        return snap

    def stop_at_any(self, addresses, within=None, what=None):
        """Runs the guest until it executes one of @p addresses (function names or addresses);
        returns the Snapshot there (the breakpoints stay until the guest runs on). How a test follows two things at
        once, e.g. a system call's return in one process and the system-call entry of others.

        With @p within (seconds), a guest that reaches none of them in that time is stopped
        wherever it is and that Snapshot is returned (its pc is then none of @p addresses): how a
        test keeps looking at QEMU's log while it waits for something that may never come.
        @p what names the stop for a failure (the guest never reached it); the addresses by default."""
        where = [a if isinstance(a, int) else symbols.address_of(self.kernel, a) for a in addresses]
        what = what or " or ".join(f"{a:#x}" for a in where)
        end = None if within is None else time.monotonic() + within
        while True:
            # (a side stop's callback may add one)
            side = [a for a in {**self.side_stops, **self.marks} if a not in where]
            if self._stopped_at in where or self._stopped_at in side:
                pc = self._step_off(self._stopped_at, what)
                if pc in where:
                    return self.snapshot()   # the next instruction is one of them: a new arrival
                if pc in side:
                    self._side(self.snapshot(hooks=pc in self.side_stops))
                    continue
            self._stopped_at = None
            self._arm(where + side, resume="c")
            if end is None:
                self._wait(what)
            else:
                self._wait_within(what, max(0.01, end - time.monotonic()))
            # (the stop hooks look at every stop but a mark's: mark_at())
            snap = self.snapshot(hooks=lambda pc: pc not in side or pc in self.side_stops)
            if snap.pc in side:
                self._side(snap)
                if end is None or time.monotonic() < end:
                    continue
            break
        if snap.pc not in where and within is None:
            raise AssertionError(f"the guest stopped at {snap.pc:#x}, not at {what}")
        return snap

    def _arm(self, wanted=(), resume=None):
        """Leaves exactly the breakpoints @p wanted in QEMU and then, with @p resume ("c": run,
        "s": one instruction), lets the guest run (one write: client.breakpoints()). Those of
        the last stop stay in while the guest is stopped, since the next stop mostly wants the
        same ones: QEMU 7.2 throws away all the code it has translated at each insertion and
        removal (breakpoint_invalidate), and a stop at a system call of a long run would
        otherwise pay for that a dozen times over. Every way of letting the guest run is this."""
        wanted = set(wanted)
        self.client.breakpoints(remove=self._armed - wanted, add=wanted - self._armed, resume=resume)
        self._armed = wanted

    def step(self):
        """Runs one instruction (no breakpoint at the PC: QEMU versions differ on which of a
        step and a breakpoint there comes first); the stop is collected by _wait()."""
        pc = self._stopped_at
        self._arm(self._armed - {pc}, resume="s")

    def run_alone(self, thread, addresses=(), within=None, what="one instruction"):
        """Lets vCPU @p thread (a gdbstub thread id) alone run, the other vCPUs held where they
        are (QEMU's vCont: a thread given no action stays stopped), until it executes one of
        @p addresses; with none, one instruction. The stop reply: a vCPU that got nowhere in
        @p within seconds is stopped there (the reply to the interrupt: a `?` would make QEMU's
        gdbstub drop every breakpoint). No side stop or stop hook runs; a step leaves the
        breakpoints in (a single step overrides one at the PC: _step_off())."""
        self._stopped_at = None
        if addresses:
            self._arm(set(addresses))
        self.client.requests([], then=f"vCont;{'c' if addresses else 's'}:{thread}")
        return self._wait(what) if within is None else self._wait_within(what, within)

    def step_alone(self, thread, until, limit, what="one instruction"):
        """Single-steps vCPU @p thread alone (run_alone()) until @p until(pc, sp) holds of its
        registers, tried before each of at most @p limit steps and after the last: (held, pc, sp),
        the last registers read. The one way the grader walks a vCPU through code by hand."""
        for n in range(limit + 1):
            if n:
                self.run_alone(thread, what=what)
            self.client.request(f"Hg{thread}")
            pc, sp = self.client.read_registers((self.model.pc, self.model.sp))
            if until(pc, sp):
                return True, pc, sp
        return False, pc, sp

    def segment_bases(self, name):
        """[the base of segment @p name ("TR") on each vCPU], in CPU order: QEMU's `info registers
        -a`, through the gdbstub's monitor (the gdbstub has no such register)."""
        return [int(m, 16) for m in re.findall(rf"^{name}\s*=\s*\S+\s+([0-9a-f]+)",
                                               self.client.monitor("info registers -a"), re.M)]

    def user_trap_stacks(self, snap, run=True):
        """[(what, value)]: the kernel stack the next trap from user mode lands on, at @p snap
        (the first vCPU's), each place the ISA takes it from (the model's user_trap_stacks; with
        @p run False only those read in RAM), found from outside: a base is a register of the
        gdbstub's, a segment base of QEMU's monitor or the entry the grader stops at, never a
        kernel variable's symbol. A value it cannot find is None."""
        out = []
        for what, how, base, offset in self.model.proc["user_trap_stacks"]:
            if how == "run" and not run:
                continue
            if isinstance(base, contract.Name):
                at = symbols.address_of(self.kernel, base) + offset
            else:
                try:
                    at = self.client.read_register(base) + offset
                except RspError:   # (no register of the gdbstub's)
                    at = self.segment_bases(base)[0] + offset
            out.append((what, struct.unpack("<Q", snap.read_virt(at, 8))[0] if how == "read" else self.landing(at)))
        return out

    def landing(self, entry, limit=24):
        """The stack pointer the stopped vCPU's code at @p entry (a trap's entry from user mode)
        moves to before it pushes anything, witnessed by running it there one instruction at a
        time (model's stack_landed), then every register it changed put back: the guest goes on
        as if it had not run, but for the scratch the entry itself leaves behind at every trap
        (x86_64's parked user RSP; AArch64's TPIDR_EL1, which the gdbstub cannot write). None
        when it has not landed within @p limit instructions."""
        client, model = self.client, self.model
        names = tuple(dict.fromkeys((model.pc, model.sp, model.proc["irq_flag"][0])
                                    + model.proc["syscall_entry_registers"]))
        saved = dict(zip(names, client.read_registers(names)))
        thread, stopped_at = client.request("qC")[2:], self._stopped_at   # (put back too: the PC is)
        try:
            client.write_registers({model.pc: entry})
            landed, _, sp = self.step_alone(
                thread, lambda pc, sp: model.proc["stack_landed"](client.read_memory(pc, 4), sp != saved[model.sp]),
                limit, "one instruction of a trap's entry")
            return sp if landed else None
        finally:
            now = dict(zip(names, client.read_registers(names)))
            client.write_registers({n: v for n, v in saved.items() if now[n] != v})
            self._stopped_at = stopped_at

    def _side(self, snap):
        """A side stop (side_stop()) or a mark (mark_at()) reached at @p snap: the side stop's
        callback, if any."""
        callback = self.side_stops.get(snap.pc)
        if callback is not None:
            n = self.side_hits[snap.pc] = self.side_hits.get(snap.pc, 0) + 1
            try:
                callback(snap)
            except AssertionError as e:
                seen_at(e, self.kernel, snap.pc, n)
                raise

    def _step_off(self, address, what):
        """Single-steps the guest, stopped at @p address, until it has left it; the PC it stops
        at then (read alone: the stop hooks run only at the stops callers take). QEMU 10 on
        AArch64 now and then answers a single step with a stop at the same PC, the instruction not
        run (measured: 1 step in 200 at a system-call entry): taken as a step, the next stop there
        would be the same call counted again (wide_fork's "65 exit calls from 64 roots"). One
        instruction cannot bring the PC back to where it was (an exception taken would stop at
        its vector), so a PC that did not move is stepped again.

        The first step leaves the breakpoints in: QEMU 7.2 and 10 let a single step override a
        breakpoint at the PC, and each removal and insertion throws away all the code QEMU has
        translated (_arm()): two of those a stop were a quarter of QEMU's time in lab 7. A QEMU
        that reports the breakpoint instead leaves the PC where it was, and the next tries step
        without it (step())."""
        for tries in range(STEP_OFF_TRIES):
            if tries:
                self.step()
            else:
                self._arm(self._armed, resume="s")
            self._wait(what)
            pc = self.client.read_register(self.model.pc)
            self._stopped_at = pc
            if pc != address:
                return pc
        raise AssertionError(f"the guest does not leave {address:#x}: {STEP_OFF_TRIES} single steps left it there")

    def _wait_within(self, what, seconds):
        """Waits for a stop at most @p seconds (and the test's deadline); then interrupts. The
        stop reply."""
        self.waiting_for = what
        try:
            reply = self.client.wait_stop(timeout=min(seconds, self._left()))
            if reply.exited:
                self.session.run_to_end()
                raise BootEnded("QEMU reported that the guest exited")
        except RspTimeout:
            self.session.check()
            self.client.send_interrupt()
            return self._wait(what)
        except RspError as e:
            end = time.monotonic() + 2
            while self.session.pump(0.05) and time.monotonic() < end:
                pass
            raise BootEnded(str(e)) from None
        self.waiting_for = None
        return reply

    def log_events(self):
        """Every exception and interrupt QEMU has logged so far (faultlog events), read now."""
        session = self.session
        for _ in range(1024):
            before = session._log_offset
            session._watch_log(force=True)
            if session._log_offset == before:
                break
        return session.watcher.parser.events

    def stop_after(self, seconds, what=None):
        """Lets the guest run @p seconds more, stops it and returns the Snapshot. @p what names
        what the grader is waiting for, should the test's deadline pass meanwhile."""
        self._stopped_at = None
        self.waiting_for = what or f"the stop {seconds:.2f} s later"
        self._arm(resume="c")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.session.check()
            time.sleep(min(0.01, max(0.0, end - time.monotonic())))
        self.client.send_interrupt()
        self._wait(self.waiting_for)
        return self.snapshot()

    def stop_at_line(self, pattern, delay=0.0):
        """Lets the guest run until it prints a line matching @p pattern, then @p delay seconds
        more (the grader's pick), stops it and returns the Snapshot."""
        rx = re.compile(pattern)
        seen = len(self.session.lines())
        self._stopped_at = None
        self._arm(resume="c")
        self.waiting_for = f"a line matching /{pattern}/"
        while True:
            self.session.check()
            lines = self.session.lines()
            if any(rx.search(line) for line in lines[max(0, seen - 1):]):
                break
            self.session.pump(0.01)
        end = time.monotonic() + delay
        while time.monotonic() < end:
            self.session.check()
            time.sleep(0.005)
        self.client.send_interrupt()
        self._wait(self.waiting_for)
        return self.snapshot()

    def snapshot(self, hooks=True):
        """The Snapshot of the guest, stopped; the stop hooks run on it when @p hooks (a bool,
        or a test of its PC), then the mark of its PC (mark_at()), if any."""
        # (with the first arguments, in the same round trip: what most stops read next)
        names = (self.model.pc, self.model.sp) + self.model.translation + self.model.arguments[:STOP_ARGUMENTS]
        regs = dict(zip((n.lower() for n in names), self.client.read_registers(names)))
        self._stops += 1
        snap = Snapshot(self, regs)
        self._stopped_at = snap.pc
        for hook in self.stop_hooks if (hooks(snap.pc) if callable(hooks) else hooks) else ():
            hook(snap)
        mark = self.marks.get(snap.pc)
        if mark is not None:
            mark(snap)
        return snap

    # ---- memory and inputs -----------------------------------------------------------------------

    def read_phys(self, pa, size):
        offset = pa - self.machine.ram_base
        if offset < 0 or offset + size > self.ram_size:
            raise ValueError(f"physical {pa:#x} is not in the guest's RAM")
        return os.pread(self.ram_fd, size, offset)

    @property
    def pa_bits(self):
        """The CPU's physical address width as QEMU models it (x86_64: its phys-bits property,
        what its CPUID 0x80000008 reports), asked through the gdbstub once; None when QEMU does
        not say (the walker then assumes the architectural maximum)."""
        if not hasattr(self, "_pa_bits"):
            self._pa_bits = None
            if self.model.phys_bits_from_qemu:
                text = self.client.monitor("qom-get /machine/unattached/device[0] phys-bits").strip()
                if text.isdigit() and 32 <= int(text) <= 52:
                    self._pa_bits = int(text)
        return self._pa_bits

    def find_u64(self, value, page_offset=None, limit=4):
        import mmap
        needle = struct.pack("<Q", value & (2**64 - 1))
        found = []
        if self._ram_map is None:      # (kept: a stale-TLB verdict searches once a page it names)
            self._ram_map = mmap.mmap(self.ram_fd, self.ram_size, access=mmap.ACCESS_READ)
        ram = self._ram_map
        if page_offset is not None:
            # One aligned word a page (32,768 of 128 MiB), not a byte search of all of RAM (0.6
            # CPU-s each, once per stale page: 40 s of a lab-1 slip's grade).
            if page_offset % 8:
                return found
            with memoryview(ram) as view, view[:self.ram_size - self.ram_size % PAGE].cast("Q") as words, \
                    words[page_offset // 8::PAGE // 8] as column:
                pages = column.tolist()
            word = struct.unpack("=Q", needle)[0]     # (the needle's bytes as the view reads them)
            return [self.machine.ram_base + k * PAGE + page_offset
                    for k, held in enumerate(pages) if held == word][:limit]
        at = ram.find(needle)
        while at != -1 and len(found) < limit:
            if at % 8 == 0:
                found.append(self.machine.ram_base + at)
            at = ram.find(needle, at + 1)
        return found

    def read(self, va, size):
        """@p size bytes at virtual @p va as the CPU sees them now (translated by QEMU)."""
        return self.client.read_memory(va, size)

    def write(self, va, data):
        self.session.fed = True
        self.client.write_memory(va, data)

    def write_phys(self, pa, data):
        """Writes @p data into guest RAM at physical @p pa (through the gdbstub, while stopped)."""
        self.session.fed = True
        self.client.write_memory(pa, data, physical=True)

    def fill_phys(self, pa, size, value):
        """Fills [@p pa, @p pa + @p size) of guest RAM with the byte @p value, straight into
        QEMU's memfd RAM (fast: whole frames at a time), while the guest is stopped."""
        offset = pa - self.machine.ram_base
        if offset < 0 or offset + size > self.ram_size:
            raise ValueError(f"physical [{pa:#x}, {pa + size:#x}) is not in the guest's RAM")
        if self._ram_write_fd is None:
            self._ram_write_fd = qemu.open_guest_ram(self.session.proc.pid, os.O_RDWR)
        chunk = bytes([value]) * min(size, 1 << 20)
        done = 0
        while done < size:
            n = min(len(chunk), size - done)
            os.pwrite(self._ram_write_fd, chunk[:n], offset + done)
            done += n

    def deliver(self, values, symbol=contract.INBOX):
        """Writes @p values (u64s) into the kernel's inbox while the guest is stopped in
        pagoda_grader_stop() (see kernel/core/selftest.hpp): count first, then the values."""
        address = symbols.address_of(self.kernel, symbol)
        self.write(address + 8, b"".join(struct.pack("<Q", v & (2**64 - 1)) for v in values))
        self.write(address, struct.pack("<Q", len(values)))

    def send_line(self, text):
        """Types @p text and a newline on the guest's serial console."""
        self.session.send(text + "\n")

    def lines(self):
        """The serial lines printed so far."""
        return self.session.lines()

    def symbol_of(self, address):
        s = symbols.function_at(self.kernel, address)
        return s.name if s else None

    def cpu_readings(self):
        """Each vCPU's registers that isa.cpu_registers() names, read while the guest is stopped
        ([] when it is not, or the stub refuses): what the failing moment's picture shows of the CPUs."""
        from pagoda_pt.isa import cpu_registers
        if self.session.ended or self.client.running:
            return []
        try:
            return self.client.each_thread(cpu_registers(self.arch))
        except (RspError, OSError):
            return []

    def end(self):
        """Ends the boot now (for a kernel that would run on forever, e.g. idle)."""
        self.session.stop(ENDED, "the grader ended the boot after its checks")

    def release(self):
        """Lets the guest run on without the debugger (nothing to do when it is gone)."""
        try:
            if not self.session.ended:
                self._arm()
                self.client.detach()
        except (RspError, OSError):
            pass
        finally:
            self.client.close()
            if self._ram_map is not None:
                self._ram_map.close()
                self._ram_map = None
            if self.ram_fd is not None:
                os.close(self.ram_fd)
                self.ram_fd = None
            if self._ram_write_fd is not None:
                os.close(self._ram_write_fd)
                self._ram_write_fd = None


# ---- Faults and interrupts, as QEMU logged them ------------------------------------------------

def printed_report(run):
    """{'mnemonic', 'vector', 'address', 'pc', 'error'} from the kernel's printed exception report
    (the first one), values None where the report does not say; None when there is no report."""
    rx = ARCHES[run.arch].report
    header = run.search(rx["header"])
    if header is None:
        return None
    out = {"mnemonic": header[1], "vector": int(header[2]) if header.re.groups >= 2 else None}
    for key in ("address", "pc", "error"):
        m = run.search(rx[key])
        out[key] = int(m[1], 16) if m else None
    return out


def expect_fault(run, *, vector, what, error=None, error_mask=None, address=None, privilege=None, function=None,
                 pc=None, root=None, kernel=None):
    """The exception the test provoked, from QEMU's log; fails the test unless the CPU really
    took it and it matches: @p vector, @p error (only the bits of @p error_mask when given: an
    AArch64 syndrome's level depends on the tables), faulting @p address (CR2/FAR), @p privilege
    (CPL/EL; by default the kernel's), the instruction at @p pc or inside @p function (a kernel
    symbol), @p root (the page-table root the grader walked: CR3 at the fault, when the log gives
    it) - and what the kernel's printed report says. Returns the faultlog Event."""
    if privilege is None:
        privilege = ARCHES[run.arch].kernel_privilege
    mask = ~0 if error_mask is None else error_mask
    report = printed_report(run)
    faults = [f for f in run.log.faults if f.vector == vector]
    if not faults:
        took = f"; the CPU took: {run.log.faults[0].describe(run.symbol_of)}" if run.log.faults else ""
        if report is not None and report.get("vector") == vector:
            run.fail(f"{what}: the kernel reported a fault the CPU never took (QEMU's exception log has "
                     f"no exception {vector}{took})")
        run.fail(f"{what}: QEMU's exception log shows no exception {vector}{took}")
    matching = [f for f in faults if (error is None or (f.error is not None and f.error & mask == error & mask)) and
                (address is None or f.address == address)]
    if not matching:
        f = faults[0]
        run.fail(f"{what}: the CPU took {f.describe(run.symbol_of)}, expected "
                 + ", ".join(x for x in (f"error {error:#x}" if error is not None else "",
                                          f"address {address:#x}" if address is not None else "") if x))
    event = matching[0]
    if event.privilege != privilege:
        run.fail(f"{what}: the fault came from privilege level {event.privilege}, expected {privilege}")
    if pc is not None and event.pc != pc:
        run.fail(f"{what}: the CPU faulted at {event.pc:#x}, expected the instruction at {pc:#x}")
    if function is not None:
        sym = symbols.find(kernel, function)
        if not sym.contains(event.pc):
            where = run.symbol_of(event.pc) or "no known function"
            run.fail(f"{what}: the CPU faulted at {event.pc:#x} ({where}), not inside {function}")
    if root is not None and event.root is not None and event.root != root:
        run.fail(f"{what}: the fault happened with root {event.root:#x} loaded, not the root {root:#x} "
                 "the grader walked")
    if report is None:
        run.fail(f"{what}: the CPU took {event.describe(run.symbol_of)}, but the kernel printed no report of it")
    for key, logged, name in (("address", event.address, "faulting address"), ("pc", event.pc, "instruction"),
                              ("error", event.error, "error code")):
        if report.get(key) is None and logged is not None and key != "error":
            run.fail(f"missing: the {name} in the kernel's report of {what} (the CPU took "
                     f"{event.describe(run.symbol_of)})")
        if report.get(key) is not None and logged is not None and report[key] != logged:
            run.fail(f"{what}: the kernel's report gives {name} {report[key]:#x}, but QEMU's log says the "
                     f"CPU faulted with {logged:#x}")
    return event


def ordinal(n):
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def seen_at(error, kernel, pc, n):
    """A check failed at a side stop at a function's entry @p pc, the @p n-th taken there: its
    message says so ("seen at the 3rd evict_frame() entry") and error.stop = (pc, n, that
    phrase), which the replay line stops at. Nothing at a stop inside a function (a return)."""
    f = symbols.function_at(kernel, pc)
    if getattr(error, "stop", None) is not None or not error.args or f is None or f.address != pc:
        return
    where = f"the {ordinal(n)} {symbols.base_name(f.name).split('::')[-1]}() entry"
    error.stop = (pc, n, where)
    error.args = (f"{error.args[0]} (seen at {where})",) + error.args[1:]


def page_faults_at(guest, page, after=0):
    """The page faults QEMU's log holds at virtual page @p page (a page-aligned address), from
    event number @p after on (len(guest.log_events()) at an earlier stop: those since then)."""
    model = ARCHES[guest.arch]
    return [e for e in guest.log_events()[after:] if model.is_page_fault(e) and e.address is not None
            and e.address & ~(PAGE - 1) == page]


def expect_hardware_interrupts(run, at_least, what):
    """Fails unless QEMU's log shows at least @p at_least interrupts raised by hardware
    (software INT n, INT3, SVC... do not count). Returns how many it shows."""
    hardware = run.log.interrupts
    if hardware < at_least:
        software = len(run.log.software_interrupts())
        note = (f" ({software} software-raised interrupts do not count: an `int` instruction is not "
                "the timer)" if software else "")
        run.fail(f"{what}: QEMU's log shows {hardware} hardware interrupts, fewer than {at_least}{note}")
    return hardware


# ---- Inputs the kernel cannot know in advance --------------------------------------------------

def _stream(token, tag):
    """Deterministic pseudo-random 64-bit numbers from (token, tag): reproducible from a log."""
    counter = 0
    while True:
        digest = hashlib.sha256(f"{token}/{tag}/{counter}".encode()).digest()
        for i in range(0, 32, 8):
            yield int.from_bytes(digest[i:i + 8], "little")
        counter += 1


def pages_of(base, count):
    """The addresses of @p count pages from @p base on."""
    return [base + j * PAGE for j in range(count)]


def pick_in(token, tag, low, high):
    """A number in [low, high], derived from the token."""
    return low + next(_stream(token, tag)) % (high - low + 1)


def pick_page(token, tag, ranges, count=1, align=PAGE, distinct=True):
    """@p count page-aligned addresses from the union of [start, end) @p ranges, derived from the
    token: every one lies in the set by construction (no probe can fall outside it)."""
    pages = []
    for start, end in ranges:
        a, b = _align_up(start, align), _align_down(end, align)
        if a < b:
            pages.append((a, (b - a) // align))
    total = sum(n for _, n in pages)
    if total < count:
        raise ValueError(f"only {total} candidate pages for {count} probes")
    chosen, numbers = [], _stream(token, tag)
    while len(chosen) < count:
        k = next(numbers) % total
        for a, n in pages:
            if k < n:
                value = a + k * align
                break
            k -= n
        if not distinct or value not in chosen:
            chosen.append(value)
    return chosen
