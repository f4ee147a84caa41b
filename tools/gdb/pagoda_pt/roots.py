"""Page-table roots: the list the kernel publishes, whether a number can be a root at all, and
the top-level table of a root seen on its own (pt-top).

The kernel's list (kernel/mm/space/debug_roots.hpp) is a table at the symbol `pagoda_debug_roots`:

    offset  size  field
    0       8     magic       b"PGROOTS\\0"
    8       4     version     1
    12      4     slot_size   32
    16      4     capacity    number of slots
    20      4     dropped     publications that found no free slot
    24      8     generation  incremented by every change
    32      32*n  slots:  +0 root (u64, physical; 0 = free)  +8 kind (u32)  +12 id (u32)
                          +16 name (16 bytes, NUL-terminated)

Nothing here imports gdb: memory comes in through read(address, size) -> bytes callables.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, Optional

from .isa import isa
from .model import ENTRIES_PER_TABLE, PAGE_SIZE_4K, PhysReader, read_table

REGISTRY_MAGIC = b"PGROOTS\0"
REGISTRY_VERSION = 1
_HEADER = struct.Struct("<8sIIIIQ")
_SLOT = struct.Struct("<QII16s")
MAX_SLOTS = 4096          # a bound on what a corrupted header can make us read
KINDS = {1: "kernel", 2: "boot", 3: "process", 4: "other"}


class RegistryError(ValueError):
    """The bytes at pagoda_debug_roots are not a root table this reader understands."""


@dataclass(frozen=True)
class KnownRoot:
    """One root the kernel published: its physical address, name ('kernel', 'proc 3'),
    kind ('kernel', 'boot', 'process', 'other') and id (e.g. a process id, 0 if none)."""

    root: int
    name: str
    kind: str
    id: int = 0

    def label(self) -> str:
        """"'kernel' (0x130000)"."""
        return "'%s' (%#x)" % (self.name, self.root)


@dataclass
class RootTable:
    """The decoded registry: the published roots in slot order, how many publications were
    dropped for lack of a slot, and the generation counter."""

    roots: list[KnownRoot] = field(default_factory=list)
    dropped: int = 0
    generation: int = 0

    def find(self, root: int) -> Optional[KnownRoot]:
        """The published root at physical address @p root (low 12 bits ignored)."""
        for known in self.roots:
            if known.root == root & ~(PAGE_SIZE_4K - 1):
                return known
        return None

    def kernel(self) -> Optional[KnownRoot]:
        """The kernel's own root, when published."""
        for known in self.roots:
            if known.kind == "kernel":
                return known
        return None


def read_root_table(read: Callable[[int, int], bytes], address: int) -> RootTable:
    """Reads the registry at @p address (read(address, size) -> bytes, virtual or physical as
    the caller arranges).  RegistryError when the header is not one this reader knows."""
    header = read(address, _HEADER.size)
    magic, version, slot_size, capacity, dropped, generation = _HEADER.unpack(header)
    if magic != REGISTRY_MAGIC:
        raise RegistryError("no root registry at %#x (magic %r)" % (address, magic))
    if version != REGISTRY_VERSION or slot_size != _SLOT.size:
        raise RegistryError("root registry version %d with %d-byte slots; this reader knows "
                            "version %d with %d-byte slots" % (version, slot_size,
                                                               REGISTRY_VERSION, _SLOT.size))
    if capacity > MAX_SLOTS:
        raise RegistryError("root registry claims %d slots (corrupted?)" % capacity)
    data = read(address + _HEADER.size, capacity * _SLOT.size) if capacity else b""
    table = RootTable(dropped=dropped, generation=generation)
    for i in range(capacity):
        root, kind, ident, name = _SLOT.unpack_from(data, i * _SLOT.size)
        if root == 0:
            continue
        text = name.split(b"\0", 1)[0].decode("ascii", errors="replace") or "slot %d" % i
        table.roots.append(KnownRoot(root, text, KINDS.get(kind, "kind %d" % kind), ident))
    return table


def root_label(root: int, table: Optional[RootTable]) -> str:
    """"'kernel' (0x130000)", or "0x256000" when the kernel did not publish that root."""
    known = table.find(root) if table is not None else None
    return known.label() if known is not None else "%#x" % root


def kernel_map_live(table: Optional[RootTable], live_roots) -> bool:
    """True when one of @p live_roots (the physical roots the translation registers hold now) is a
    root the kernel published that is not the boot stub's: only then is the map the CPU uses the
    kernel's own. The boot stub's tables (published as kind 'boot') map everything rwx on purpose,
    until the kernel's root is loaded; judging them names a permission slip that is not there."""
    if table is None:
        return False
    return any(known is not None and known.kind != "boot" for known in map(table.find, live_roots))


# ---- is this number a root? ----------------------------------------------------------------

def address_problem(arch: str, address: int, pa_bits: int) -> Optional[str]:
    """Why @p address cannot be a physical address on this machine, or None."""
    module = isa(arch).format
    kva = module.kernel_va_in(address)
    if kva is not None:
        return "%#x is a kernel virtual address, not a physical one" % address
    if address >> pa_bits:
        return "%#x is above the CPU's %d-bit physical address width" % (address, pa_bits)
    return None


def root_problems(arch: str, read_phys: PhysReader, root: int, pa_bits: int) -> list[str]:
    """Why @p root is not the physical address of a root table ([] when it may be one):
    not an address on this machine, unreadable, or a table most of whose present entries
    are malformed (what a page of ordinary data looks like)."""
    why = address_problem(arch, root, pa_bits)
    if why:
        return [why]
    module = isa(arch).format
    try:
        entries = read_table(read_phys, root & ~(PAGE_SIZE_4K - 1))
    except Exception as err:  # noqa: BLE001 - any reader failure
        return ["cannot read a table at %#x: %s" % (root, err)]
    present = malformed = 0
    example = None
    for index, raw in enumerate(entries):
        valid, output, _flags, problem = module.top_level_entry(raw, pa_bits)
        if not valid:
            continue
        present += 1
        if problem is None and output is not None:
            try:
                read_phys(output, 8)
            except Exception as err:  # noqa: BLE001
                problem = "points to %#x: %s" % (output, err)
        if problem is not None:
            malformed += 1
            example = example or "entry %d = %#018x: %s" % (index, raw, problem)
    if malformed and 2 * malformed >= present:
        return ["the page at %#x does not look like a root table: %d of its %d present "
                "entries are malformed (e.g. %s)" % (root, malformed, present, example)]
    return []


# ---- the top-level table on its own (pt-top) ------------------------------------------------

SHARED = "shared"          # present in both, same table frame
OWN = "own"                # present in both, a different table frame
ONLY_HERE = "only here"    # present here, not in the kernel root
MISSING = "missing"        # present in the kernel root, not here
PRESENT = "present"        # present here (no kernel root to compare with)
EMPTY = "empty"            # present in neither
BAD = "malformed"          # present here, but the CPU would fault on it


@dataclass
class TopEntry:
    index: int
    raw: int
    status: str
    table: Optional[int] = None
    flags: list[str] = field(default_factory=list)
    kernel_table: Optional[int] = None
    problem: Optional[str] = None


@dataclass
class TopLevel:
    """The top-level entries of one root compared with the kernel root's.  kernel_half is
    the first index of the kernel half (None on AArch64, where the kernel half is TTBR1's own
    tree)."""

    arch: str
    root: int
    level_name: str
    kernel_root: Optional[int]
    kernel_half: Optional[int]
    entries: list[TopEntry]

    def count(self, status: str, lower: bool) -> int:
        first = self.kernel_half if self.kernel_half is not None else len(self.entries)
        return sum(1 for e in self.entries
                   if e.status == status and (e.index < first) == lower)

    def present(self, lower: bool) -> int:
        return sum(self.count(s, lower) for s in (SHARED, OWN, ONLY_HERE, PRESENT, BAD))

    def kernel_has(self, lower: bool) -> int:
        return sum(self.count(s, lower) for s in (SHARED, OWN, MISSING))


def top_level(arch: str, read_phys: PhysReader, root: int, kernel_root: Optional[int] = None,
              pa_bits: Optional[int] = None) -> TopLevel:
    """Reads the top-level table at @p root (and the kernel root's, when given) and classifies
    each entry.  Raises whatever read_phys raises for the root itself."""
    model = isa(arch)
    arch, module = model.name, model.format
    if pa_bits is None:
        pa_bits = module.MAX_PA_BITS
    mask = ~(PAGE_SIZE_4K - 1)
    if kernel_root is not None and root & mask == kernel_root & mask:
        kernel_root = None             # the kernel root itself: nothing to compare with
    here = read_table(read_phys, root & mask)
    theirs = read_table(read_phys, kernel_root & mask) if kernel_root is not None else None
    entries = []
    for index in range(ENTRIES_PER_TABLE):
        valid, output, flags, problem = module.top_level_entry(here[index], pa_bits)
        kernel_output = None
        if theirs is not None:
            k_valid, kernel_output, _, _ = module.top_level_entry(theirs[index], pa_bits)
            if not k_valid:
                kernel_output = None
        if valid and problem:
            status = BAD
        elif valid and theirs is None:
            status = PRESENT
        elif valid and kernel_output is None:
            status = ONLY_HERE
        elif valid:
            status = SHARED if kernel_output == output else OWN
        else:
            status = MISSING if kernel_output is not None else EMPTY
        entries.append(TopEntry(index, here[index], status, output if valid else None, flags,
                                kernel_output, problem))
    return TopLevel(arch, root & mask, module.TOP_LEVEL_NAME, kernel_root,
                    module.KERNEL_HALF_FIRST_INDEX, entries)


_ALONE = (OWN, ONLY_HERE, BAD)


def _groups(entries: list[TopEntry]):
    """Consecutive entries with the same status (present ones: also the same flags); entries
    that differ from the kernel root's stand alone."""
    group = []
    for entry in entries:
        if group and (entry.status in _ALONE or group[-1].status in _ALONE or
                      group[-1].status != entry.status or group[-1].flags != entry.flags):
            yield group
            group = []
        group.append(entry)
    if group:
        yield group


def format_top_level(view: TopLevel, root_name: str = "", kernel_name: str = "") -> str:
    """One line per group of entries, then a summary of both halves, then (when the root
    lacks kernel-half entries the kernel root has) a line saying what that means."""
    lines = ["%s table of root %s%s" % (view.level_name, "%#x" % view.root,
                                        " " + root_name if root_name else "")]
    if view.kernel_root is not None:
        lines[0] += ", compared with the kernel root %#x%s" % (
            view.kernel_root, " " + kernel_name if kernel_name else "")
    half = view.kernel_half
    split = [e for e in view.entries if half is None or e.index < half], \
        [e for e in view.entries if half is not None and e.index >= half]
    for part in split:
        for group in _groups(part):
            first, last = group[0], group[-1]
            where = "[%d]" % first.index if first is last else "[%d..%d]" % (first.index,
                                                                            last.index)
            text = "  %-12s " % where
            if first.status == PRESENT and len(group) > 1:
                text += "%d present, each -> its own table (the first -> 0x%016x)  %s" % (
                    len(group), first.table, " ".join(first.flags))
            elif first.status in (OWN, ONLY_HERE, PRESENT, BAD):
                text += "present -> 0x%016x  %s" % (first.table or 0, " ".join(first.flags))
                if first.status == OWN:
                    text += "  own table (the kernel root's is %#x)" % first.kernel_table
                elif first.status == ONLY_HERE and view.kernel_root is not None:
                    text += "  not in the kernel root"
                elif first.status == BAD:
                    text += "  MALFORMED: " + first.problem
            elif first.status == SHARED:
                text += "%d shared with the kernel root (same tables)" % len(group)
            elif first.status == MISSING:
                text += "%d MISSING: present in the kernel root, empty here" % len(group)
            else:
                text += "empty" if len(group) == 1 else "%d empty" % len(group)
            lines.append(text.rstrip())
    lines.append(summary_top_level(view))
    problem = top_level_problem(view)
    if problem:
        lines.append("problem: " + problem)
    return "\n".join(lines)


def summary_top_level(view: TopLevel) -> str:
    if view.kernel_half is None:
        return ("%d of %d entries present (on AArch64 a root maps one half: TTBR0's the lower, "
                "TTBR1's the kernel half)" % (view.present(True), len(view.entries)))
    lower_total, upper_total = view.kernel_half, len(view.entries) - view.kernel_half
    text = "lower half: %d of %d present; kernel half: %d of %d present" % (
        view.present(True), lower_total, view.present(False), upper_total)
    if view.kernel_root is not None:
        text += " (%d shared with the kernel root, %d own, %d missing)" % (
            view.count(SHARED, False), view.count(OWN, False), view.count(MISSING, False))
    return text


def top_level_problem(view: TopLevel) -> Optional[str]:
    """A sentence when the root lacks kernel-half entries (all of them, or some), or None."""
    if view.kernel_half is None:
        return None
    missing = view.count(MISSING, False)
    present = view.present(False)
    if view.kernel_root is None:
        if present == 0:
            return "the kernel half is empty: once this root is loaded, the kernel's code, " \
                   "stacks and trap handlers are not mapped"
        return None
    if missing and present == 0:
        return ("this root has no kernel half (the kernel root has %d entries there): once it "
                "is loaded, the kernel's code, stacks and trap handlers are not mapped"
                % missing)
    if missing:
        first = next(e.index for e in view.entries if e.status == MISSING)
        return ("%d kernel-half entries of the kernel root are missing here (first: %s[%d]): "
                "what they map disappears when this root is loaded"
                % (missing, view.level_name, first))
    own = view.count(OWN, False)
    if own:
        return ("%d kernel-half entries point to other tables than the kernel root's: kernel "
                "mappings made later will not appear in this root" % own)
    return None
