"""The one reader of the kernel's process table and of each process's record of regions (its
VMAs), shared by the grader (its guest RAM) and GDB (its inferior): small typed records, read
through one memory interface.

    Layout(fact, table_va, table_pa, current_pa)   the facts of the table, the record, one VMA
    Layout.of_symbols(symbol)                      the same from a symbol(name) -> address reader
    read_procs(read_phys, layout, read_virt, ...)  [Proc] of the table's slots, each with its Vmas
    read_current(read_phys, layout, procs)         (the Proc g_current points at, the pointer)

Memory is two callables: read_phys(pa, size) -> bytes (the table, g_current: at their load
addresses, never through a root that may be the broken thing) and read_virt(va, size) -> bytes
for a kernel address (a record's VMA array, on the kernel's heap): the grader passes its
snapshot's (snap.read_phys, snap.read_virt: its own walk), GDB its inferior's. The layouts are
the kernel's facts (pagoda_fact_<name>: kernel/proc/process.cpp), from the instructor's build
when the grader grades a submission (the caller's fact(name)); the kernel names these readers use
are the contract's (pagoda_pt/contract.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from . import contract as C

NO_SLOT = 0xFFFF_FFFF     # KernelStack::slot of a process that holds no kernel stack
TABLE, CURRENT, VIRT_OFFSET = C.PROCESS_TABLE, C.CURRENT, C.KERNEL_VIRT_OFFSET

KINDS = {0: "anonymous", 1: "image", 2: "stack", 3: "heap"}      # abi::MemoryKind
KIND_ANONYMOUS, KIND_IMAGE, KIND_STACK, KIND_HEAP = 0, 1, 2, 3
GROWS_DOWN = 1                                                     # VmaFlag
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
# More VMAs than any process of the labs makes (the kernel sets no limit of its own): a record that
# claims more is garbage, and is not read.
MAX_VMAS = 4096
# The fields of one VMA, each exported by the kernel as the fact vma_<field> (its offset).
VMA_FIELDS = ("start", "end", "read", "write", "execute", "kind", "flags", "source", "offset", "file_size")
# The facts a record is read with (lab 5): where it is in a slot, whether it is made, its VMA
# array, one VMA's size and fields.
RECORD_FACTS = ("process_regions", "process_regions_made", "regions_vmas_data", "regions_vmas_size", "vma_stride",
                *("vma_" + k for k in VMA_FIELDS))
# The record's bounds besides its VMAs (UserRegions), each a fact regions_<field>.
BOUND_FIELDS = ("heap_start", "brk", "stack_limit", "stack_gap")
# process_state_<word> facts: State's values (kernel/proc/process.hpp); Free is 0.
STATES = ("ready", "running", "sleeping", "zombie", "waiting")


def _u(data, offset, size):
    return int.from_bytes(data[offset:offset + size], "little")


def _optional(read):
    """read(), or None where a fact it asks for is missing (LookupError, AssertionError)."""
    try:
        return read()
    except (LookupError, AssertionError):
        return None


@dataclass(frozen=True)
class Vma:
    """One VMA as the kernel holds it (kernel/mm/space/vma.hpp); what a caller does not give is an
    anonymous region's."""
    start: int
    end: int
    read: bool
    write: bool
    execute: bool
    kind: int = KIND_ANONYMOUS
    flags: int = 0
    offset: int = 0
    file_size: int = 0
    source: int = 0          # an image region's ELF file (a kernel address), else 0

    @property
    def kind_name(self):
        return KINDS.get(self.kind, f"kind {self.kind}")

    def rwx(self):
        return ("r" if self.read else "-") + ("w" if self.write else "-") + ("x" if self.execute else "-")

    @property
    def prot(self):
        return (PROT_READ if self.read else 0) | (PROT_WRITE if self.write else 0) | (PROT_EXEC if self.execute else 0)

    def contains(self, va):
        return self.start <= va < self.end

    def __str__(self):
        text = f"[{self.start:#x}, {self.end:#x}) {self.rwx()} {self.kind_name}"
        if self.flags & GROWS_DOWN:
            text += " grows-down"
        if self.kind == KIND_IMAGE:
            text += f" offset {self.offset:#x} file {self.file_size:#x}"
        return text


@dataclass
class Proc:
    """One slot of the process table, as guest memory holds it, with its record of regions when
    it was read: @p vmas in the kernel's order (None: no record, or not read; @p problem says why
    one that exists could not be read) and its bounds."""
    slot: int = 0
    pid: int = 0
    parent: int = 0
    state: int = 0
    name: str = "?"
    kslot: int = NO_SLOT
    state_word: str = ""     # "ready", "running", ... (the facts' State names), "free"
    exit_code: int = 0
    exit_how: int = 0
    address: int = 0         # the slot's kernel address
    vmas: Optional[list] = None
    heap_start: Optional[int] = None
    brk: Optional[int] = None
    stack_limit: Optional[int] = None
    stack_gap: Optional[int] = None
    problem: Optional[str] = None
    regions: Optional[int] = None   # the record's kernel address (UserRegions), when it exists
    current: bool = False    # the process g_current points at (set by the caller of read_current)

    @property
    def who(self):
        return f"pid {self.pid} ({self.name})"

    @property
    def zombie(self):
        return self.state_word == "zombie"

    @property
    def waiting(self):
        return self.state_word == "waiting"

    @property
    def bounds(self):
        """(heap start, break, stack limit, stack gap) of the record, or None when not read."""
        return None if self.heap_start is None else (self.heap_start, self.brk, self.stack_limit, self.stack_gap)

    def find(self, va):
        return next((v for v in self.vmas or () if v.contains(va)), None)

    def around(self, start, end):
        """The VMAs that intersect [start, end)."""
        return [v for v in self.vmas or () if v.start < end and start < v.end]

    def describe(self, start=None, end=None, limit=8):
        shown = (self.vmas or []) if start is None else self.around(start, end)
        if not shown:
            return "none"
        text = ", ".join(str(v) for v in shown[:limit])
        return text + (f" (+{len(shown) - limit} more)" if len(shown) > limit else "")


class Layout:
    """The kernel's facts for the process table (@p fact(name) -> the value of pagoda_fact_<name>;
    LookupError or AssertionError when missing), @p table_va the table's kernel address, @p table
    and @p current the physical addresses of the table and of g_current. The record's and the
    VMA's facts (lab 5) are optional: without them no record is read (self.record is None)."""

    def __init__(self, fact: Callable[[str], int], table_va: int, table: int, current: int):
        f = fact
        self.table_va, self.table, self.current = table_va, table, current
        self.slots, self.size = f("process_count"), f("process_stride")
        self.pid, self.parent, self.state = f("process_pid"), f("process_parent"), f("process_state")
        self.name, self.name_size = f("process_name"), f("process_name_size")
        self.kslot, self.exit = f("process_kstack_slot"), f("process_exit")
        self.states = {f("process_state_" + word): word for word in STATES}
        self.ready, self.running = f("process_state_ready"), f("process_state_running")
        self.zombie, self.waiting = f("process_state_zombie"), f("process_state_waiting")
        self.sleeping = f("process_state_sleeping")
        self.stack_base, self.stride = f("stack_base"), f("kernel_stack_stride")
        self.guard, self.stack_size = f("kernel_stack_guard"), f("kernel_stack_size")
        self.frame_size, self.frame_result = f("user_frame_size"), f("user_frame_result")
        self.frame_pc, self.frame_sp, self.frame_flags = f("user_frame_pc"), f("user_frame_sp"), f("user_frame_flags")
        self.record = _optional(lambda: tuple(f(name) for name in RECORD_FACTS[:5]) +
                                ({k: f("vma_" + k) for k in VMA_FIELDS},))
        # The bounds (the stack's limit and gap came a lab after the heap's: None where not exported).
        self.bounds = tuple(_optional(lambda b=b: f("regions_" + b)) for b in BOUND_FIELDS)

    @classmethod
    def of_symbols(cls, symbol: Callable[[str], Optional[int]], table_name: str = TABLE,
                   current_name: str = CURRENT) -> Optional["Layout"]:
        """The Layout from @p symbol(name) -> address or None (the facts are symbols
        pagoda_fact_<name>; physical = virtual - __kernel_virt_offset): GDB's reader of the ELF
        it debugs. None when the kernel exports no process table (a kernel before lab 3)."""
        offset = symbol(VIRT_OFFSET)
        table_va, current_va = symbol(table_name), symbol(current_name)
        if None in (offset, table_va, current_va):
            return None

        def fact(name):
            value = symbol(C.fact_symbol(name))
            if value is None:
                raise LookupError(name)
            return value
        try:
            return cls(fact, table_va, table_va - offset, current_va - offset)
        except LookupError:
            return None

    def state_name(self, state):
        names = {0: "Free", self.ready: "Ready", self.running: "Running", self.zombie: "a Zombie",
                 self.waiting: "Waiting"}
        return names.get(state, f"in state {state} (Sleeping)" if state == self.sleeping else f"in state {state}")

    def stack_top(self, slot):
        return self.stack_base + slot * self.stride + self.guard + self.stack_size

    def decode_vma(self, raw):
        """The Vma in @p raw, the bytes of one."""
        f = self.record[5]
        return Vma(start=_u(raw, f["start"], 8), end=_u(raw, f["end"], 8), read=bool(raw[f["read"]]),
                   write=bool(raw[f["write"]]), execute=bool(raw[f["execute"]]), kind=_u(raw, f["kind"], 4),
                   flags=_u(raw, f["flags"], 4), offset=_u(raw, f["offset"], 8), file_size=_u(raw, f["file_size"], 8),
                   source=_u(raw, f["source"], 8))


ALL = object()    # read_procs(records_of=ALL): every process's record


def read_procs(read_phys, lay: Layout, read_virt=None, records_of=ALL, freed=False):
    """[Proc] of every slot of the process table that is not Free (with @p freed, also the Free
    slots that still hold a pid: a process reaped since), read from physical memory; the record
    of each (its VMAs and bounds, through @p read_virt) when @p read_virt is given, for every
    process or only pid @p records_of."""
    data = read_phys(lay.table, lay.slots * lay.size)
    out = []
    for slot in range(lay.slots):
        p = data[slot * lay.size:(slot + 1) * lay.size]
        pid, state = _u(p, lay.pid, 4), p[lay.state]
        if state == 0 and (not freed or pid == 0):
            continue
        raw = p[lay.name:lay.name + lay.name_size]
        code = _u(p, lay.exit, 4)
        proc = Proc(slot, pid, _u(p, lay.parent, 4), state, raw.split(b"\0", 1)[0].decode(errors="replace") or "?",
                    _u(p, lay.kslot, 4), lay.states.get(state, "free" if state == 0 else f"state {state}"),
                    code - (1 << 32) if code >> 31 else code, _u(p, lay.exit + 4, 4), lay.table_va + slot * lay.size)
        out.append(proc)
        if read_virt is not None and lay.record is not None and (records_of is ALL or records_of == pid):
            _read_record(read_virt, lay, p, proc)
    return out


def _read_record(read_virt, lay, p, proc):
    regions, made, data_at, size_at, vma_size, _ = lay.record
    if not p[made]:
        return
    proc.regions = proc.address + regions
    proc.heap_start, proc.brk, proc.stack_limit, proc.stack_gap = (
        None if b is None else _u(p, regions + b, 8) for b in lay.bounds)
    data, size = _u(p, regions + data_at, 8), _u(p, regions + size_at, 8)
    if size > MAX_VMAS:
        proc.problem = f"its VMA set claims {size} regions (more than {MAX_VMAS}: not a set the grader can read)"
        return
    if size == 0:
        proc.vmas = []
        return
    try:
        raw = read_virt(data, size * vma_size)
    except (AssertionError, ValueError, OSError) as e:
        proc.problem = f"its VMA array at {data:#x} ({size} regions) cannot be read: {e}"
        return
    proc.vmas = [lay.decode_vma(raw[k * vma_size:(k + 1) * vma_size]) for k in range(size)]


def read_current(read_phys, lay: Layout, procs):
    """(the Proc of @p procs the scheduler's g_current points at, or None for the idle loop; the
    pointer)."""
    pointer = _u(read_phys(lay.current, 8), 0, 8)
    if pointer == 0:
        return None, 0
    offset = pointer - lay.table_va
    if offset < 0 or offset % lay.size or offset // lay.size >= lay.slots:
        return None, pointer
    return next((r for r in procs if r.slot == offset // lay.size), None), pointer
