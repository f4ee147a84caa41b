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

from pagoda_pt.verdicts import Leftovers, left_behind

from . import symbols
from .processes import Refs, process_roots, processes, used_frames

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
        self.cpus = []      # each vCPU's isa.cpu_registers() when a check failed at a stop (the picture's)

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


# ---- a leak, explained --------------------------------------------------------------------------

def leak_story(before_bits, after_bits, end_snap, kernel, moments):
    """Sentences naming what the frames in use after every process was reaped (and not before the
    first one) are, from what the grader saw (@p moments: deaths, execs, forks, in the order seen)
    and what guest RAM holds now: process roots still registered, slots not freed, reference
    counts. The first sentence is the likeliest cause."""
    leaked = after_bits & ~before_bits
    frames = set(used_frames(leaked))
    if not frames:
        return []
    out = []
    left = process_roots(end_snap, kernel)
    procs = processes(end_snap, kernel)
    for pid, p in sorted(procs.items()):
        if p.state == 0:
            root = next((r for r, label in left.items() if label.endswith(f"(pid {pid})")), None)
            out.append(left_behind(Leftovers(freed=[(pid, root)])))
            continue
        state = "a zombie" if p.zombie else f"in state {p.state}"
        parent = f"its parent pid {p.parent}" if p.parent else "no parent (the idle loop reaps it)"
        out.append(f"pid {pid} is still {state} in the process table (guest RAM) after the run, with {parent}: "
                   f"nobody reaped it")
    if left and not procs:
        root, label = next(iter(left.items()))
        out.append(f"{label}'s root {root:#x} is still in the kernel's root registry though no process is left in the "
                   "process table: its address space was never destroyed")
    refs = Refs(end_snap, kernel)
    # The last moment each leaked frame was seen as a user page, a table or a root.
    last_page, last_table = {}, {}
    for m in moments:
        for va, (pa, _) in m.pages.items():
            if pa in frames:
                last_page[pa] = (m, va)
        for t in m.tables:
            if t in frames:
                last_table[t] = m
    counted = sorted(f for f in last_page if (refs.count(f) or 1) > 1)
    if counted:
        m, va = last_page[counted[0]]
        out.append(f"{len(counted)} of the {len(frames)} frames still in use were user pages that still have a "
                   f"reference count above 1 in the kernel's table (guest RAM) though no root maps them: e.g. frame "
                   f"{counted[0]:#x}, page {va:#x} of {m.who} when the grader saw it at its {m.what}, count "
                   f"{refs.count(counted[0])}: an unmap (exit's teardown, a copy-on-write fault) that did not drop "
                   "its reference (put_user_frame / FrameRefs::drop), so the last mapping never frees the frame")
    replaced, at_exit, at_exec = [], [], []
    for f, (m, va) in last_page.items():
        if f in counted:
            continue
        later = [x for x in moments if x.order > m.order and x.pid == m.pid and x.what in ("exit", "exec")]
        if m.what in ("exit",):
            at_exit.append((f, m, va))
        elif m.what == "exec":
            at_exec.append((f, m, va))
        elif later and later[0].pages.get(va, (None,))[0] != f:
            replaced.append((f, m, va, later[0]))
        else:
            at_exit.append((f, m, va))
    if replaced:
        f, m, va, end = replaced[0]
        now = end.pages.get(va, (None,))[0]
        out.append(f"{len(replaced)} of them were user pages replaced while their process lived: e.g. frame {f:#x} was "
                   f"page {va:#x} of {m.who} at its {m.what}, and at its {end.what} that page was "
                   f"{'frame ' + hex(now) if now else 'unmapped'}: the copy-on-write fault (or an unmap) put a new "
                   "frame in place without dropping the old frame's reference (put_user_frame), which frees it when "
                   "it was the last")
    if at_exec:
        f, m, va = at_exec[0]
        out.append(f"{len(at_exec)} of them were user pages of {m.who}'s root {m.root:#x} when it called exec (e.g. "
                   f"frame {f:#x} at {va:#x}): exec did not free the old user half after switching to the new root")
    if at_exit:
        f, m, va = at_exit[0]
        out.append(f"{len(at_exit)} of them were user pages mapped in {m.who}'s root when the grader last saw it (its "
                   f"{m.what}; e.g. frame {f:#x} at {va:#x}, count now {refs.count(f)}) and not freed when the process "
                   "was torn down: the last reference's drop must free the frame (put_user_frame, FrameRefs::drop), "
                   "and wait must destroy the zombie")
    tables = [t for t in frames if t in last_table and t not in last_page]
    if tables:
        m = last_table[tables[0]]
        kind = "the root" if tables[0] == m.root else "a page table"
        out.append(f"{len(tables)} of them were page tables of processes' roots (e.g. {tables[0]:#x}, {kind} of "
                   f"{m.who} at its {m.what}): their address space was not destroyed"
                   f"{' (exec must destroy the old space)' if m.what == 'exec' else ''}")
    unknown = len(frames) - len(last_page) - len(tables)
    if unknown > 0 and not out:
        out.append(f"{unknown} of them were never seen by the grader as a user page or a page table of a process "
                   "(kernel stacks, or tables made and dropped between its stops)")
    return out
