"""What each copy-on-write fault found in the frame it was asked to copy (lab 6), for fault-why.

A slip in the copy (copy_frame's arguments swapped, a write before the remap) changes the bytes
of the frame other processes still share: nothing faults then, and what dies later dies of data
that changed under it. That is witnessed by remembering, at the entry of every copy-on-write
fault (COW_FUNCTION, kernel/mm/fault.cpp: copy_on_write(space, page, frame, perms)), the frame,
the page, the faulting root and a digest of the frame's bytes; fault-why compares them later
(pagoda_pt.diagnose.cow_wrote_shared). `break-kill` (so `./pagoda gdb --stop-at-kill`) arms it:
a silent breakpoint that never stops the guest.
"""

import hashlib
import struct

import gdb

from pagoda_pt.isa import isa

from . import kernel, target

COW_FUNCTION = "copy_on_write"
PAGE = 4096
WINDOW_BASE, WINDOW_PHYS = "pagoda_fact_window_base", "pagoda_fact_window_phys_base"   # lab 2's direct window

# frame -> [(page, root, digest, count), ...]: each copy-on-write fault asked to copy that frame, in
# order, with the frame's reference count as the fault found it (1: the fault takes the frame back).
records = {}
errors = []     # why the recorder could not read a fault (the last few): fault-why stays silent then
_armed = []


def digest(data):
    return hashlib.sha1(bytes(data)).hexdigest()


def read_frame(frame, count=False):
    """The bytes of physical frame @p frame (target.physical_memory: QEMU's physical mode), or
    None; with @p count, (bytes, the kernel's reference count of the frame or None)."""
    try:
        with target.physical_memory() as read_phys:
            data = bytes(read_phys(frame, PAGE))
            if not count:
                return data
            try:
                return data, frame_count(read_phys, frame)
            except Exception:  # noqa: BLE001 - a count unread is unknown, not a failure
                return data, None
    except Exception:  # noqa: BLE001 - unreadable is an answer: fault-why says nothing then
        return None


def frame_count(read_phys, frame):
    """The kernel's reference count of @p frame (1 + its extra count in pagoda_frame_refs, read
    as the census reads it: pagoda_pt.frames), or None when it cannot be read."""
    from pagoda_pt.frames import REFS_SYMBOL
    offset, refs = kernel.symbol_address("__kernel_virt_offset"), kernel.symbol_address(REFS_SYMBOL)
    window, window_phys = kernel.symbol_address(WINDOW_BASE), kernel.symbol_address(WINDOW_PHYS)
    if None in (offset, refs, window, window_phys):
        return None
    table, entries = struct.unpack("<QQ", bytes(read_phys(refs - offset, 16)))
    index = frame // PAGE
    if not table or index >= entries:
        return 1
    return 1 + struct.unpack("<H", bytes(read_phys(table - window + window_phys + 2 * index, 2)))[0]


def _address(value):
    """The integer of a pagoda::Address (PhysAddr / VirtAddr) value."""
    try:
        return int(value["value_"]) & ((1 << 64) - 1)
    except gdb.error:
        return int(value) & ((1 << 64) - 1)


class _CopyOnWriteEntry(gdb.Breakpoint):
    def stop(self):
        try:
            frame = gdb.selected_frame()
            pa, page = _address(frame.read_var("frame")), _address(frame.read_var("page"))
            read = read_frame(pa, count=True)
            if read is None:
                errors[:] = errors[-3:] + ["frame %#x (page %#x) could not be read" % (pa, page)]
            else:
                arch = target.current_arch()
                root = isa(arch).root_of({isa(arch).lower_root: int(gdb.parse_and_eval("$" + _root_register(arch)))})
                records.setdefault(pa, []).append((page & ~(PAGE - 1), root, digest(read[0]), read[1]))
        except Exception as err:  # noqa: BLE001 - a recorder: never stop or break the session
            errors[:] = errors[-3:] + [repr(err)]
        return False


def _root_register(arch):
    """The lower root register as GDB spells it (cr3; TTBR0_EL1)."""
    model = isa(arch)
    return next((r for r in model.system_registers if r.lower() == model.lower_root), model.lower_root)


def arm():
    """Sets the silent breakpoint once per session; False when the kernel has no copy-on-write
    fault (before lab 6's code is there, or another kernel)."""
    if _armed:
        return True
    try:
        gdb.decode_line(COW_FUNCTION)
        _armed.append(_CopyOnWriteEntry(COW_FUNCTION, internal=True))
    except (gdb.error, RuntimeError):
        return False
    return True
