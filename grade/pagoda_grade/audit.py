"""The grader's audit of the kernel's memory at a failure: the producer of a broken invariant,
not the consumer that died of it.

A test sees a symptom: a frame 0x0 that cannot be freed, a heap object overwritten, a free count
that did not move, more frames in use after than before. The mistake that made it happened
earlier, in another function. When a witnessed boot ends (the kernel exited, panicked, hung, or
the grader stopped it after a failed check), the grader still holds QEMU's guest RAM (its fd on
the memfd, duplicated before QEMU goes: Remains), so it can read the kernel's own records as they
were at the end and check them against each other, as GDB's `frames` and fault-why do
(pagoda_pt.frames.audit, one implementation for both):

    frames   a frame a root maps that the allocator calls free (or a page table, or the image);
             a frame mapped by more user pages than its reference count; a page-table frame of a
             live root the allocator calls free; a kernel-stack page whose frame is free; the
             allocator's count of free frames against its own bitmaps
    heap     a listed block whose header says it is in use (handed out twice); a listed block in
             a frame the allocator does not hold (cut past its frame's end); a block not at a
             block's start; two size classes in one frame; a block listed twice (a cycle); a
             listed block whose header was overwritten, and the neighbour below it that wrote
             past its end when the bytes say so

findings(run) gives them, the most causal first; causes.producer_first() puts the first on line 1
of the failure. What the kernel prints plays no part: the audit reads its records. A record the
kernel does not export (an older kernel) or cannot be read ends the audit quietly, never the
failure it explains.
"""
import os
import struct

from . import symbols

# How many findings a failure shows after the first.
MAX_FINDINGS = 8


class Remains:
    """Guest RAM of a boot that has ended: a duplicate of the grader's fd on QEMU's memfd RAM,
    kept after QEMU is gone (the memory lives while an fd holds it). read_phys like a Guest's."""

    def __init__(self, fd, ram_base, ram_size):
        self.fd = fd
        self.ram_base = ram_base
        self.ram_size = ram_size
        self.boot = None    # (token, directory) of the boot (Booter.__call__), for its failure's context
        self.cpus = []      # each vCPU's picture.cpu_registers() when a check failed at a stop (the picture's)

    def read_phys(self, pa, size):
        if self.fd is None:
            raise ValueError("the boot's RAM was given back")
        offset = pa - self.ram_base
        if offset < 0 or offset + size > self.ram_size:
            raise ValueError(f"physical {pa:#x} is not in the guest's RAM")
        return os.pread(self.fd, size, offset)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self):
        # A Booter made outside the grade's fixture (the grader's own tests) is never closed: its
        # boots' RAM goes when the last Run holding it does.
        try:
            self.close()
        except OSError:
            pass


def keep(guest):
    """A Remains for @p guest's RAM (a witness.Guest whose fd is still open), or None."""
    if getattr(guest, "ram_fd", None) is None:
        return None
    return Remains(os.dup(guest.ram_fd), guest.machine.ram_base, guest.ram_size)


def audit_ram(kernel, arch, read_phys):
    """pagoda_pt.frames.audit over @p read_phys with @p kernel's symbols; [] when the records
    cannot be read."""
    from pagoda_pt import frames
    try:
        return frames.audit(arch, read_phys, symbols.reader(kernel))[:MAX_FINDINGS]
    except (frames.CensusError, ValueError, TypeError, AssertionError, OSError, struct.error):
        return []


def findings(run):
    """The audit's findings for @p run (a harness.Run whose boot kept its RAM: run.remains), the
    most causal first; [] when the RAM is gone or nothing is wrong. Computed once per run."""
    found = getattr(run, "_audit", None)
    if found is None:
        remains = getattr(run, "remains", None)
        found = [] if remains is None or remains.fd is None else audit_ram(run.symbolizer.elf, run.arch,
                                                                           remains.read_phys)
        run._audit = found
    return found


def leak_classes(kernel, arch, read_phys, leaked, roots_seen=None, seen=None):
    """pagoda_pt.frames.leak_classes over @p read_phys (guest RAM after a run) for the frames in
    @p leaked (physical addresses used after the run and free before it): [LeakClass], the
    largest first; [] when the kernel's records cannot be read. @p roots_seen {root: who} and
    @p seen {kind: path}: what the grader saw of the run (frames.leak_classes)."""
    from pagoda_pt import frames
    try:
        return frames.leak_classes(arch, read_phys, symbols.reader(kernel), leaked, roots_seen, seen)
    except (frames.CensusError, ValueError, TypeError, AssertionError, OSError, struct.error):
        return []
