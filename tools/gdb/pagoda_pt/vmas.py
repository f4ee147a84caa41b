"""Two of the kernel's records, read from guest RAM by one reader each for the grader
(pagoda_grade/vmas.py and tempmaps.py, at its stops) and the picture of a moment (picture.py):
the record of each process's user half (lab 5: its VMAs, its heap), and the temp-map area (lab 4).

The kernel exports the layout of its process table and of one VMA as facts
(kernel/proc/process.cpp: process_stride, regions_vmas_data, vma_start, ...); the table itself is
the symbol pagoda::proc::g_processes. read_records() reads the table and each process's sorted
VMA array through read_virt(va, size) -> bytes (the caller's way to reach kernel addresses)."""
import struct
from dataclasses import dataclass

from .model import PAGE_SIZE_4K

KINDS = {0: "anonymous", 1: "image", 2: "stack", 3: "heap"}
KIND_ANONYMOUS, KIND_IMAGE, KIND_STACK, KIND_HEAP = 0, 1, 2, 3
GROWS_DOWN = 1
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
# More VMAs than any process of the labs makes (the kernel sets no limit of its own): a record that
# claims more is garbage, and is not read. lifecycle.py reads records with the same bound.
MAX_VMAS = 4096
# The kernel's pointer to the temp-map area it uses (its address: temp_area's @p area_symbol).
TEMP_AREA = "pagoda::TempMapArea::s_current"
# The fields of one VMA, each exported by the kernel as the fact vma_<field> (its offset).
VMA_FIELDS = ("start", "end", "read", "write", "execute", "kind", "flags", "offset", "file_size")


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

    def rwx(self):
        return ("r" if self.read else "-") + ("w" if self.write else "-") + ("x" if self.execute else "-")

    @property
    def prot(self):
        return (PROT_READ if self.read else 0) | (PROT_WRITE if self.write else 0) | (PROT_EXEC if self.execute else 0)

    def contains(self, va):
        return self.start <= va < self.end

    def __str__(self):
        text = f"[{self.start:#x}, {self.end:#x}) {self.rwx()} {KINDS.get(self.kind, f'kind {self.kind}')}"
        if self.flags & GROWS_DOWN:
            text += " grows-down"
        if self.kind == KIND_IMAGE:
            text += f" offset {self.offset:#x} file {self.file_size:#x}"
        return text


@dataclass
class Record:
    """One process's record: its VMAs in the kernel's order, its heap, or why it could not be read."""
    pid: int
    name: str
    vmas: list
    heap_start: int
    brk: int
    problem: str = None

    def find(self, va):
        return next((v for v in self.vmas if v.contains(va)), None)

    def around(self, start, end):
        """The VMAs that intersect [start, end)."""
        return [v for v in self.vmas if v.start < end and start < v.end]

    def describe(self, start=None, end=None, limit=8):
        shown = self.vmas if start is None else self.around(start, end)
        if not shown:
            return "none"
        text = ", ".join(str(v) for v in shown[:limit])
        return text + (f" (+{len(shown) - limit} more)" if len(shown) > limit else "")


class Layout:
    """The facts (@p fact(name): the value of pagoda_fact_<name>) and the process table's kernel
    address @p table, read once per kernel."""

    def __init__(self, fact, table):
        f = fact
        self.table = table
        self.count, self.stride = f("process_count"), f("process_stride")
        self.pid, self.state = f("process_pid"), f("process_state")
        self.name, self.name_size = f("process_name"), f("process_name_size")
        self.regions, self.regions_made = f("process_regions"), f("process_regions_made")
        self.data, self.size = f("regions_vmas_data"), f("regions_vmas_size")
        self.heap_start, self.brk = f("regions_heap_start"), f("regions_brk")
        self.vma_stride = f("vma_stride")
        self.fields = {k: f(f"vma_{k}") for k in VMA_FIELDS}


def _u(data, at, size):
    return int.from_bytes(data[at:at + size], "little")


def decode_vma(raw, fields):
    """The Vma in @p raw, the bytes of one, laid out as @p fields ({field: offset}) says."""
    return Vma(start=_u(raw, fields["start"], 8), end=_u(raw, fields["end"], 8), read=bool(raw[fields["read"]]),
               write=bool(raw[fields["write"]]), execute=bool(raw[fields["execute"]]),
               kind=_u(raw, fields["kind"], 4), flags=_u(raw, fields["flags"], 4),
               offset=_u(raw, fields["offset"], 8), file_size=_u(raw, fields["file_size"], 8))


def read_records(read_virt, lay):
    """{pid: Record} of every process slot in use whose record exists, read through
    @p read_virt(va, size) with the Layout @p lay."""
    table = read_virt(lay.table, lay.count * lay.stride)
    out = {}
    for i in range(lay.count):
        slot = table[i * lay.stride:(i + 1) * lay.stride]
        if slot[lay.state] == 0 or not slot[lay.regions_made]:  # State::Free, or no record yet
            continue
        pid = _u(slot, lay.pid, 4)
        name = slot[lay.name:lay.name + lay.name_size].split(b"\0")[0].decode(errors="replace")
        base = lay.regions
        data, size = _u(slot, base + lay.data, 8), _u(slot, base + lay.size, 8)
        record = Record(pid, name, [], _u(slot, base + lay.heap_start, 8), _u(slot, base + lay.brk, 8))
        out[pid] = record
        if size > MAX_VMAS:
            record.problem = f"its VMA set claims {size} regions (more than {MAX_VMAS}: not a set the grader can read)"
            continue
        if size == 0:
            continue
        try:
            raw = read_virt(data, size * lay.vma_stride)
        except (AssertionError, ValueError) as e:
            record.problem = f"its VMA array at {data:#x} ({size} regions) cannot be read: {e}"
            continue
        for k in range(size):
            record.vmas.append(decode_vma(raw[k * lay.vma_stride:(k + 1) * lay.vma_stride], lay.fields))
    return out


def temp_area(read_phys, fact, image_pa, area_symbol):
    """The state of the temp-map area the kernel uses (TempMapArea::s_current, whose kernel address
    is @p area_symbol), read from physical memory at the field offsets the kernel exports
    (@p fact(name)); @p image_pa(va) is where the kernel image holds @p va. None when there is none."""
    (area,) = struct.unpack("<Q", read_phys(image_pa(area_symbol), 8))
    if area == 0:
        return None
    slots = fact("temp_map_slots")
    f = {k: fact(f"temp_map_{k}_offset") for k in ("entries", "frames", "cpu", "depth", "maps")}
    at = image_pa(area)
    u64s = lambda off, n=1: struct.unpack(f"<{n}Q", read_phys(at + off, 8 * n))  # noqa: E731
    cpu, = u64s(f["cpu"])
    return dict(slots=slots, cpu=cpu, depth=u64s(f["depth"])[0], maps=u64s(f["maps"])[0],
                entries=u64s(f["entries"], slots), frames=u64s(f["frames"], slots),
                va=[fact("temp_map_base") + (cpu * slots + s) * PAGE_SIZE_4K for s in range(slots)])
