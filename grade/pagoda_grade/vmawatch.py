"""Virtual memory areas seen from outside (lab 5, and the labs after it): the watch of a lab-5 run
(VmaWatch: each process's record as the loader left it, the pages and record of each process as
it is killed, and the causes they name), TouchWatch (every page came at its first touch), what a
page's file bytes or a record say is wrong, and the grader's replay of vmas's random operations.
docs/grader.md, "Lab 5"."""
import itertools
import re

from pagoda_pt import contract
from .derived import value as derived
from .processes import Pages, foreign_code_kill, parse_kills, user_elf, user_pages
from .symbols import fact, find, segments
from .vmas import heap_problems, loader_problems, page_down, page_up, read_records, segment_prot
from .vmas import prot_text as rwx_of_prot
from .watch import Watch, _Lines, u64
from .witness import ARCHES, PAGE
from pagoda_pt import verdicts
from pagoda_pt.procs import GROWS_DOWN, KIND_IMAGE, KIND_STACK, PROT_READ, PROT_WRITE
from pagoda_pt.verdicts import Evidence, Kill, record_rules_broken

ENOMEM, EEXIST, EFAULT, EINVAL = -12, -17, -14, -22
MASK64 = (1 << 64) - 1
# Where the kernel ends a process for a fault (kernel/proc/run.cpp), its root still live.
KILL_STOP = contract.USER_FAULT


def mmap_area(kernel):
    """A test on addresses of the area where the kernel picks mmap's addresses (its fact
    mmap_base), far from the image and the stack."""
    base = fact(kernel, "mmap_base")
    return lambda va: base <= va < base + (1 << 36)


def pages_of(runs, layout):
    """Every user page a dump maps: {va: Run} (at most processes.MAX_USER_PAGES)."""
    return user_pages(runs, layout)


def embedded_bytes(kernel, arch, program, offset, size):
    """@p size bytes at file offset @p offset of the copy of @p program the kernel embeds (built
    beside the kernel: user/<arch>/embedded/<program>.elf), or None."""
    import os
    path = os.path.join(os.path.dirname(user_elf(kernel, arch, program)), "embedded", f"{program}.elf")
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except OSError:
        return None
    return data if len(data) == size else None


def page_file_cause(kernel, arch, program, seg, page, have):
    """What is wrong with the file bytes the page @p page of @p program's load segment @p seg holds
    (@p have: the page's bytes, through the grader's walk), against the program's ELF file (the
    grader's own build of it): the offset they came from, or where they stop. None when the page
    holds its file bytes, or when the grader cannot tell."""
    start = page_down(seg.vaddr)
    n = min(page + PAGE, seg.vaddr + seg.filesz) - page
    if n <= 0 or len(have) < n:
        return None
    try:   # the grader's ELF: its segments' bytes are the embedded copy's (which lacks only debug info)
        with open(user_elf(kernel, arch, program), "rb") as f:
            data = f.read()
    except OSError:
        return None
    want = seg.offset - (seg.vaddr - page)   # the page's first byte in the file
    have = have[:n]
    if data[want:want + n] == have:
        return None
    what = (f"the load segment's page at {page:#x} (p_vaddr {seg.vaddr:#x}, p_offset {seg.offset:#x}, the grader's "
            "reading of the ELF file)")
    found, at = [], max(0, want - 2 * PAGE)
    while len(found) < 8:
        at = data.find(have, at, want + 2 * PAGE + n)
        if at < 0:
            break
        found.append(at)
        at += 1
    if found:
        got = seg.offset if seg.offset in found and page == start else found[0]
        if got == seg.offset and page == start and seg.vaddr != start:
            return (f"{what} holds the file's bytes from offset {got:#x} instead of {want:#x}: the region's file offset "
                    "is the segment's p_offset, not p_offset - (p_vaddr - region start) (the page starts "
                    f"{seg.vaddr - start:#x} bytes before the segment)")
        return (f"{what} holds the file's bytes from offset {got:#x} instead of {want:#x} ({got - want:+#x} bytes "
                "off): the region's file offset is not the file offset of its first page")
    k = next((i for i in range(n) if have[i] != data[want + i]), n)
    if any(have[k:]):
        return None
    if page == start and k == seg.filesz and seg.vaddr != start:
        return (f"{what} holds the file's bytes only up to {page + k:#x} ({k:#x} bytes from offset {want:#x}) and zeros "
                f"after them, though the segment's file bytes run to {seg.vaddr + seg.filesz:#x}: the region's file size "
                "is the segment's p_filesz, not p_vaddr + p_filesz - region start (it counts from the region's start)")
    return (f"{what} holds the file's bytes only up to {page + k:#x} and zeros after them, though the segment's file "
            f"bytes run to {page + n:#x}: the region's file size is short")


def image_end(kernel, arch):
    """The page after vmas's last segment: where its heap starts."""
    return max((s.vaddr + s.memsz + PAGE - 1) // PAGE * PAGE for s in segments(user_elf(kernel, arch, "vmas")))


class VmaWatch(Watch):
    """A lab-5 boot's watch: also the VMA list of every process read from guest RAM before any
    ran (its record as the loader left it), and what that record lacks against the program's
    ELF file. fail() and require() put the cause that evidence names first."""

    def __init__(self, kernel, arch):
        super().__init__(kernel, arch)
        self.records = {}         # pid -> pagoda_grade.vmas.Record, at the 'started' stop
        self.loader = {}          # pid -> [sentences]: what the loader left out
        self.heap = {}            # pid -> [sentences]: what is wrong with the heap it starts with
        self.at_kills = {}        # pid -> (its pages {va: (frame, writable)}, its Record) as it was killed
        self.asked_breaks = []    # the breaks the test had the program ask brk for, in the order asked
        self.prot_steps = []      # the permissions the test had the program give its mapping, in order

    def started_stop(self, guest):
        """The started stop, where every process must be lazy (started_lazy)."""
        return started_lazy(self, guest, self.kernel)

    def explained(self, guest, message):
        """@p message with the kill the loader's record explains first (kill_cause)."""
        cause = self.kill_cause(guest.lines())
        return f"{cause}\n{message}" if cause else message

    def before(self, guest):
        """Watch.before(), and from then on a stop at every kill on the way to the grader's other
        stops: the stop hooks (programs.ImageWatch) look at the process while its root is still
        live, which the boot's end takes away (a page of its code filled with other bytes than its
        program's, and run until it faulted)."""
        snap = super().before(guest)
        guest.side_stop(KILL_STOP, self.at_kill)
        guest.stop_hooks.append(TouchWatch(guest, self))
        return snap

    def at_kill(self, snap):
        """At a kill (the side stop KILL_STOP), with the dying process's root still live: its pages
        (the grader's walk) and its record (guest RAM), for the causes of the kill."""
        root = snap.lower_root
        label = self.roots.get(root, "")
        m = re.search(r"\(pid (\d+)\)", label)
        if m is None or int(m[1]) in self.at_kills:
            return
        pid = int(m[1])
        try:
            self.at_kills[pid] = (Pages.of(snap, root), read_records(snap, self.kernel).get(pid))
        except Exception:  # noqa: BLE001 - evidence for a cause only: never lose the test's own checks to it
            pass

    def lagging_page_cause(self, lines):
        """The cause of the first kill by a write to a page mapped read-only whose region (its
        record as it was killed) allows writing, from the grader's walk at the kill: nothing in
        lab 5 shares a frame, so the page's entry lags its region's permissions (mprotect changed
        the record but not the page). None otherwise."""
        for pid, k in sorted(parse_kills(_Lines(lines)).items()):
            seen = self.at_kills.get(pid)
            if seen is None or k.address is None or seen[1] is None:
                continue
            pages, record = seen
            page = k.address & ~(PAGE - 1)
            region = record.find(k.address)
            if page not in pages or region is None or pages[page][1] or not region.write:
                continue
            steps = self.prot_steps
            if len(steps) >= 2 and steps[-1] == region.rwx() and "w" not in steps[-2] and "w" in steps[0]:
                # The program brought the page in under steps[0] (writable) and mprotect'ed it along steps:
                # read-only now, the page was rewritten; with the permissions the record held before the
                # last mprotect, so it was rewritten from the record before the record changed.
                return (f"the page {page:#x} keeps its region's old permissions {steps[-2]} after "
                        f"mprotect({steps[-1]}): the pages were rewritten from the record before the record changed "
                        "(VmaSet::protect() first, then reprotect_pages()); "
                        f"proc {pid} ({record.name}) was killed at {k.address:#x} by an access its region {region} "
                        f"allows, and the grader's walk of its root as it was killed finds the page read-only (frame "
                        f"{pages[page][0]:#x}); it was brought in {steps[0]}, so mprotect did rewrite it, but from the "
                        "record as it was before the call")
            return (f"proc {pid} ({record.name}) was killed at {k.address:#x} by an access its region {region} allows, "
                    f"yet the grader's walk of its root as it was killed finds the page mapped read-only (frame "
                    f"{pages[page][0]:#x}): the page's entry lags its region's permissions (nothing shares a frame in "
                    "lab 5): mprotect changed the record but not the pages already brought in, or gave them their "
                    "region's permissions before it changed the record (reprotect_pages() after VmaSet::protect())")
        return None


    def short_heap_cause(self, lines):
        """The cause of the first kill at an address below a break the program asked for (the test
        told the watch its breaks: asked_breaks) where no region holds it, from the process's
        record as it was killed: the heap's region ends short of the page that holds the break
        (align_up of the break), and how far short. None otherwise."""
        for pid, k in sorted(parse_kills(_Lines(lines)).items()):
            seen = self.at_kills.get(pid)
            record = seen[1] if seen is not None and seen[1] is not None else None
            if record is None or record.problem or k.address is None or record.find(k.address) is not None:
                continue
            asked = next((b for b in self.asked_breaks if record.heap_start <= k.address < b), None)
            if asked is None or record.brk < asked:
                continue   # a break the kernel refused is another cause (the tests say so themselves)
            top = record.heap_start   # the heap: the regions that follow one another from its start
            for v in sorted(record.vmas, key=lambda v: v.start):
                if v.start == top and v.end > top:
                    top = v.end
            want = page_up(asked)
            if top >= want or top > k.address:
                continue
            head = (f"brk({asked:#x}) was asked, yet {k.address:#x} (below that break) has no region in proc {pid} "
                    f"({record.name})'s record as it was killed (read from guest RAM): the heap ends at {top:#x}")
            if asked % PAGE and top == page_down(asked):
                return (f"{head}, the break rounded down to a page; the page holding an unaligned break belongs to "
                        f"the heap (round the top up: the heap's region must reach align_up of the break, {want:#x})")
            return (f"{head}, {(want - top) // PAGE} page(s) short of {want:#x} (align_up of the break): the heap's "
                    "region must cover every byte below the break (brk grows it from the old top to the new one)")
        return None

    def segments_of(self, name):
        try:
            return segments(user_elf(self.kernel, self.arch, name))
        except AssertionError:
            return None

    def read_loader_records(self, snap):
        self.records = read_records(snap, self.kernel)
        top, pages = fact(self.kernel, "user_stack_top"), fact(self.kernel, "user_stack_pages")
        for pid, record in self.records.items():
            segs = self.segments_of(record.name)
            if segs is not None:
                self.loader[pid] = loader_problems(record, segs, top, pages)
                self.heap[pid] = heap_problems(record, segs)

    def kill_cause(self, lines):
        """The cause of the first kill (a page fault or a stack limit, at a user address) that the
        record read before the process ran explains: the loader left that address out. None when
        no kill is explained so."""
        top, limit = fact(self.kernel, "user_stack_top"), fact(self.kernel, "user_stack_limit")
        gap = fact(self.kernel, "user_stack_gap")
        for pid, k in sorted(parse_kills(_Lines(lines)).items()):
            record, problems = self.records.get(pid), self.loader.get(pid)
            if record is None or not problems or k.address is None:
                continue
            head = f"proc {pid} ({record.name}) was killed at {k.address:#x} ({k.reason or k.how})"
            if not record.vmas:
                return f"{head}: {problems[0]}"
            for s in self.segments_of(record.name) or ():
                if page_down(s.vaddr) <= k.address < page_up(s.vaddr + s.memsz) and record.find(k.address) is None:
                    seg = next((p for p in problems if f"[{page_down(s.vaddr):#x}, " in p), problems[0])
                    return f"{head}, inside its ELF file's load segment, which the loader's record leaves out: {seg}"
                over = record.find(k.address)
                if page_down(s.vaddr) <= k.address < page_up(s.vaddr + s.memsz) and over is not None \
                        and over.prot != segment_prot(s):
                    seg = next((p for p in problems if f"[{page_down(s.vaddr):#x}, " in p), problems[0])
                    return (f"{head}, inside its ELF file's load segment {rwx_of_prot(segment_prot(s))}, which the "
                            f"loader recorded {over.rwx()}, not with the permissions of the segment's p_flags: {seg}")
            if top - limit - gap <= k.address < top and not any(v.end == top for v in record.vmas):
                stack = next((p for p in problems if "stack" in p), problems[0])
                return f"{head}, on its stack: {stack}"
        short = self.short_heap_cause(lines)
        if short:
            return short
        lagging = self.lagging_page_cause(lines)
        if lagging:
            return lagging
        foreign = foreign_code_kill(self.kernel, self.arch, parse_kills(_Lines(lines)))
        if foreign:
            return foreign
        for pid, k in sorted(parse_kills(_Lines(lines)).items()):
            record = self.records.get(pid)
            over = record.find(k.address) if record is not None and k.address is not None else None
            if over is not None and over.kind in (KIND_IMAGE, KIND_STACK) and no_vma_verdict(k.reason):
                return verdicts.explain(Evidence(kill=Kill(
                    f"proc {pid} ({record.name})", k.address, "no VMA", covering=str(over),
                    seen="the loader's, read from guest RAM before it ran",
                    why=f"{record.name} never unmaps its image or its stack, so the lookup missed a region that "
                        "contains the address (VmaSet::find, or decide_fault's use of it)")))
        return self.stack_boundary_cause(lines)

    def stack_boundary_cause(self, lines):
        """The cause of a kill just below a process's stack region, from the record the loader left
        (read before the process ran; the stack's region is the first above the address): a stack
        recorded without the grows-down flag, or a growth the kernel refused as 'already exists'
        where the record holds no region in the way (a region that only touches the stack taken
        for an overlap). None otherwise."""
        top, limit = fact(self.kernel, "user_stack_top"), fact(self.kernel, "user_stack_limit")
        for pid, k in sorted(parse_kills(_Lines(lines)).items()):
            record = self.records.get(pid)
            if record is None or not record.vmas or k.address is None or not top - limit <= k.address < top:
                continue
            above = sorted((v for v in record.vmas if v.start > k.address), key=lambda v: v.start)
            if not above or above[0].kind != KIND_STACK or record.find(k.address) is not None:
                continue
            stack, page = above[0], k.address & ~(PAGE - 1)
            head = (f"proc {pid} ({record.name}) was killed at {k.address:#x}, {(stack.start - page) // PAGE} page(s) "
                    f"below its stack region {stack} (its record, read from guest RAM before it ran)")
            if not stack.flags & GROWS_DOWN:
                return (f"{head}: the stack region lacks the grows-down flag, so a fault below it finds no region that "
                        "may grow and the process dies instead (the loader must record its stack grows-down)")
            if "already exists" in k.reason and "grow_stack() asked the record for another range" in k.reason:
                # The kernel's probe: insert() took [page, the stack's start) on a copy of the record.
                return (f"{head}: the kernel refused to grow the stack, 'already exists', though no region of the "
                        f"record lies in [{page:#x}, {stack.start:#x}) and insert() takes exactly that growth when "
                        "asked for it (the kernel tried it on a copy of the record, its kill line says): grow_stack() "
                        "asked the record for another range, one that overlaps the stack (the growth must end where "
                        "the stack starts, not at its top)")
            if "already exists" in k.reason:
                # (the stack is the first region above the page: none lies in between)
                return (f"{head}: the kernel refused to grow the stack, 'already exists', for a region that only "
                        f"touches its neighbour: no region of the record lies in [{page:#x}, {stack.start:#x}), the "
                        "grown part ends where the stack starts (an overlap test that takes touching regions for "
                        "overlapping ones: <= for <)")
        return None

    def refused_start_cause(self, lines):
        """The cause when the kernel could not start a program because the record refused a region
        with a file offset that is not page aligned: from the program's ELF file (read by the
        grader), the load segment whose p_vaddr is not page aligned, and the offset its region must
        have (its first page starts p_vaddr - region start bytes before p_offset in the file). None
        otherwise."""
        for line in lines:
            m = re.search(r"run: cannot start (\w+): .*file offset that is not page aligned", line)
            if not m:
                continue
            for n, s in enumerate(self.segments_of(m[1]) or ()):
                if s.filesz and s.vaddr % PAGE:
                    start = page_down(s.vaddr)
                    return (f"the kernel refused {m[1]}'s region for load segment {n} (p_vaddr {s.vaddr:#x}, not page "
                            f"aligned; p_offset {s.offset:#x}, the grader's reading of the ELF file) for a file offset "
                            f"that is not page aligned: the region starts at {start:#x}, so its file offset is "
                            f"p_offset - (p_vaddr - region start) = {s.offset - (s.vaddr - start):#x}, not the "
                            f"segment's p_offset {s.offset:#x} (segment_vma: the first page holds the "
                            f"{s.vaddr - start:#x} file bytes before the segment too)")
        return None

    def heap_cause(self):
        """What the loader got wrong about a process's heap (its record before it ran), or None: the
        cause of whatever sbrk and brk then do."""
        return next((p[0] for _, p in sorted(self.heap.items()) if p), None)

    def fail(self, run, message):
        refused = self.refused_start_cause(run.lines)
        if refused:   # ahead of the kernel's 'cannot start' line, which explain_death would put first
            run.fail(message, cause=refused)
        cause = self.kill_cause(run.lines) or self.heap_cause()
        super().fail(run, f"{cause}\n{message}" if cause else message)

    def require(self, run):
        if run.witness is None:
            refused = self.refused_start_cause(run.lines)
            if refused:
                run.fail(run.witness_failure or "the grader could not look at the guest", cause=refused)
            cause = self.kill_cause(run.lines) or self.heap_cause()
            if cause:
                run.witness_failure = f"{cause}\n{run.witness_failure}"
        return super().require(run)


class TouchWatch:
    """At every stop the grader takes in a process (a stop hook): each user page its root maps
    was touched before it came, i.e. QEMU's log holds before this stop a fault at that page from
    user mode (x86_64: with that root in CR3; AArch64's log names no root), or the kernel's fault
    in a user copy of a system call of that process: never one it takes while it handles a fault
    from user mode (a burst of kernel faults after one user fault touches nothing). AArch64: the
    log says so, an SVC from EL0 after the last fault from EL0. x86_64, whose `syscall` the log
    does not show: a mark where the kernel first looks at each of its own faults
    (contract.KERNEL_FAULT) reads how the process entered the kernel, the return address below
    the frame at the top of its kernel stack (TSS.RSP0): the call of x86_syscall_entry, or a trap.
    The arguments' page, which the loader writes, aside. Demand paging brings a page in at its
    first touch and no sooner: a kernel that maps a region's other pages at its first fault, or
    reads them itself then, is seen at the next stop. Recorded in Booter.watch_problems (the
    test's own checks speak first; it fails a test nothing else fails), once per root."""

    def __init__(self, guest, watch):
        self.guest, self.watch = guest, watch
        proc = ARCHES[watch.arch].proc
        self.one_root = proc["log_names_root"]   # the log's CR3 says which root faulted
        self.user, self.log_syscall = proc["user_privilege"], proc["log_syscall"]
        self.args_page = fact(watch.kernel, "user_stack_top") - PAGE
        self.faulted, self.read = {}, 0         # root (or None) -> pages touched; events read
        self.nested = {}                        # root (or None) -> pages of the kernel's faults not in a call
        self.in_call = set()                    # AArch64: keys whose last entry from EL0 was an SVC
        self.vouched = set()                    # x86_64: the kernel's faults (log indices) marked in a call
        self.told = set()
        if self.log_syscall is None:
            self.entry = find(watch.kernel, proc["syscall_entry"])
            guest.mark_at(contract.KERNEL_FAULT, self.mark_fault)

    def mark_fault(self, snap):
        """x86_64, at the kernel's look at its own fault (the last fault QEMU has logged): whether
        the process is in a system call, from the return address below the frame at the top of its
        kernel stack (TSS.RSP0)."""
        events = self.guest.log_events()
        at = next((i for i in range(len(events) - 1, -1, -1)
                   if events[i].kind == "exception" and events[i].privilege != self.user), None)
        try:
            top = snap.guest.user_trap_stacks(snap, run=False)[0][1]
            back = u64(snap.read_virt(top - fact(self.watch.kernel, "user_frame_size") - 8, 8))
        except Exception:  # noqa: BLE001 - a stack the grader cannot read vouches for nothing
            return
        if at is not None and self.entry.contains(back):
            self.vouched.add(at)

    def take(self, i, e):
        """Event @p e (index @p i) of QEMU's log, in order: the page it touched, or (a kernel fault
        not in a system call) did not."""
        key = e.root if self.one_root else None
        if e.privilege == self.user:
            if e.mnemonic == self.log_syscall:
                self.in_call.add(key)
            elif e.kind == "exception":
                self.in_call.discard(key)
        if e.kind != "exception" or e.address is None:
            return
        touched = e.privilege == self.user or (i in self.vouched if self.log_syscall is None else key in self.in_call)
        (self.faulted if touched else self.nested).setdefault(key, set()).add(e.address & ~(PAGE - 1))

    def __call__(self, snap):
        root = snap.lower_root
        if root in self.watch.kernel_roots or root in self.told:
            return
        events = self.guest.log_events()
        for i in range(self.read, len(events)):
            self.take(i, events[i])
        self.read = len(events)
        key = root if self.one_root else None
        touched = self.faulted.get(key, set())
        try:
            runs = list(itertools.takewhile(lambda r: r.va_start < self.watch.layout.kernel_half_base, snap.runs(root)))
        except AssertionError:
            return   # (a walk that cannot finish: the test's own walks name it)
        untouched = list(itertools.islice((va for r in runs for va in range(r.va_start, r.va_end, PAGE)
                                           if va not in touched and va != self.args_page), MAX_SHOWN + 1))
        if untouched:
            self.told.add(root)
            shown = ", ".join(f"{va:#x}" for va in untouched[:MAX_SHOWN]) + " ..." * (len(untouched) > MAX_SHOWN)
            who = self.watch.roots.get(root, f"root {root:#x}")
            nested = [va for va in untouched if va in self.nested.get(key, ())]
            self.guest.booter.watch_problems.append(
                f"{who} maps user pages that nothing touched: {shown} (the grader's walk of its root at "
                f"{snap.symbol(snap.pc) or hex(snap.pc)}; QEMU's log holds no fault at them"
                + (" with that root live" if self.one_root else "") + "): demand paging brings a page in at "
                "its first touch, one fault each, never a region's other pages with it"
                + (f"; the kernel's own faults at {', '.join(f'{va:#x}' for va in nested)} came while it handled a "
                   "fault from user mode, in no system call of the process: a fault the kernel takes to handle "
                   "another touches nothing" if nested else ""))


MAX_SHOWN = 6


def started_lazy(watch, guest, kernel):
    """The 'started' stop: every process root must map only its arguments' page. Raises
    AssertionError naming the first root that maps more (the loader mapped eagerly), and the
    record it made (none at all: the seed's loader). Reads each process's VMA list for the
    diagnoses of later failures (VmaWatch)."""
    snap = watch.started_check(guest)
    watch.read_loader_records(snap)
    top = fact(kernel, "user_stack_top")
    for root, label in watch.roots.items():
        if root in watch.kernel_roots:
            continue
        pages = sorted(pages_of(snap.dump(root), watch.layout))
        if pages != [top - PAGE]:
            shown = ", ".join(f"{p:#x}" for p in pages[:6]) + (" ..." if len(pages) > 6 else "")
            pid = next((int(m[1]) for m in [re.search(r"\(pid (\d+)\)", label)] if m), None)
            record = watch.records.get(pid)
            eager = (f"before it ran, {label} maps {len(pages)} user page(s) ({shown or 'none'}); expected only the "
                     f"arguments' page {top - PAGE:#x}")
            if record is not None and not record.vmas and not record.problem:
                raise AssertionError(
                    f"the loader (load_program) mapped {record.name} (pid {pid}) eagerly and recorded no VMA: {eager}, "
                    "and its VMA "
                    "list (read from guest RAM) is empty: every segment, the stack and the heap must be recorded as "
                    "VMAs and nothing mapped (a fault handler, and fork, trust the record)")
            raise AssertionError(f"{eager}: the loader (load_program) must record each segment, the stack and the heap "
                                 "as VMAs and map nothing eagerly (pages come on the first touch)"
                                 + (f"\n  its record: {'; '.join(watch.loader[pid])}" if watch.loader.get(pid) else ""))
    return snap


def user_faults(run, arch, address=None):
    priv = ARCHES[arch].proc["user_privilege"]
    return [f for f in run.log.faults if f.privilege == priv and (address is None or f.address == address)]


def no_vma_verdict(reason):
    """True when the kill reason @p reason ends in the record's verdict "no VMA" (alone, or followed by
    the kernel's words about the regions around the address: "no VMA; the page lies ...")."""
    return re.search(r"(^|; )no VMA(;|$)", reason) is not None


ALLOWED_AGAINST = re.compile(r"decide_fault\(\) allowed (a read|a write|an instruction fetch) in VMA "
                             r"(\[0x[0-9a-f]+, 0x[0-9a-f]+\)) ([r-][w-][x-])")


def allowed_against_perms(reason):
    """The cause when the kernel's kill reason @p reason says decide_fault() allowed an access the
    region it names does not permit (the CPU then refused it on the page the region's permissions
    made): which check of the permissions is missing. None otherwise."""
    m = ALLOWED_AGAINST.search(reason or "")
    if not m:
        return None
    access, region, perms = m[1], m[2], m[3]
    if perms == "---":
        what = f"a PROT_NONE region (it allows nothing), {region} ---, where every access is refused " \
               "('access to inaccessible VMA')"
    elif access == "a write" and perms[1] == "-":
        what = f"a read-only region {region} {perms}, where a write is refused ('write to read-only VMA')"
    elif access == "an instruction fetch" and perms[2] == "-":
        what = f"a non-executable region {region} {perms}, where a fetch is refused ('execute in non-executable VMA')"
    else:
        return None
    return (f"the fault decision allowed {access} in {what}: the check of the region's permissions (permits(), "
            "decide_fault) let it through, and the CPU refused the access on the page those permissions made")


def record_broken(record):
    """The first rule of a sorted VMA set that @p record (read from guest RAM) breaks, as a sentence
    naming the kind of operation that leaves it so; None when it keeps them all. Whatever the test
    was about, a record that breaks one is the cause of what follows (the rules are fault-why's:
    pagoda_pt.verdicts.record_rules_broken)."""
    if record is None or record.problem:
        return None
    return record_rules_broken(record.vmas or [], f"{record.name}'s record (pid {record.pid}, read from guest RAM)", PAGE)


def killed(run, watch, pid, how, reason, address):
    k = parse_kills(run).get(pid)
    if k is None:
        watch.fail(run, f"pid {pid} was not killed (no 'proc {pid} (vmas): killed: ...' line)")
    if reason not in k.reason and allowed_against_perms(k.reason):
        watch.fail(run, f"{allowed_against_perms(k.reason)}; the kill line of pid {pid} says '{k.reason}', expected "
                        f"'{reason}'")
    if k.how != how or k.address != address or reason not in k.reason:
        watch.fail(run, f"the kill line of pid {pid} says '{k.how}' at address "
                        f"{'none' if k.address is None else hex(k.address)}: '{k.reason}'; expected '{how}' at "
                        f"{address:#x} naming '{reason}'")
    return k


def pages_left(call, start, end, kept):
    """What it says of a call that removed [start, end) from the record that the grader's walk still
    finds the pages @p kept of that range mapped: which of the range's pages stayed, relative to
    the range (its last, its first, all of it, or some), and the slip that leaves those."""
    every = list(range(start, end, PAGE))
    kept = sorted(kept)
    rng = f"{call}'s range [{start:#x}, {end:#x})"
    if kept == every:
        return (f"every page of {rng} stayed mapped ({len(kept)} page(s)): {call} forgot the pages, only the VMAs "
                "changed")
    if kept == every[-1:]:
        return (f"the last page of {rng} ({kept[0]:#x}) stayed mapped: the range's end is exclusive, its last page "
                "was left out of the pages freed (an off-by-one at the range's end)")
    if kept == every[:1]:
        return (f"the first page of {rng} ({kept[0]:#x}) stayed mapped: the pages were freed from one page past the "
                "range's start (an off-by-one at the range's start)")
    if kept == every[len(every) - len(kept):]:
        return (f"the last {len(kept)} pages of {rng} (from {kept[0]:#x}) stayed mapped: the pages freed end short "
                "of the range's end")
    if kept == every[:len(kept)]:
        return (f"the first {len(kept)} pages of {rng} (up to {kept[-1]:#x}) stayed mapped: the pages freed start "
                "past the range's start")
    return (f"{len(kept)} of the {len(every)} pages of {rng} stayed mapped ({', '.join(hex(v) for v in kept[:6])}): "
            "the pages freed are not the range's")


def hole_cut(around, at, hole):
    """What is wrong with the VMAs @p around (start, end, prot) a two-page hole at @p hole cut into
    the eight pages at @p at: the cut that is off, in pages."""
    end = hole + 2 * PAGE

    def pages(n):
        return "one page" if n == 1 else f"{n} pages"

    head = [(s, e) for s, e, _ in around if s <= at < e]
    tail = [(s, e) for s, e, _ in around if s < at + 8 * PAGE <= e]
    if len(around) == 1 and around[0][0] <= at and around[0][1] >= at + 8 * PAGE:
        return "munmap left the record whole: one region still spans the hole"
    if head and head[0][1] != hole:
        e = head[0][1]
        return (f"the region before the hole ends at {e:#x}, {pages(abs(e - hole) // PAGE)} "
                f"{'into the hole' if e > hole else 'short of it'}: the cut at the hole's start is "
                f"{pages(abs(e - hole) // PAGE)} off")
    if tail and tail[0][0] != end:
        s = tail[0][0]
        return (f"the region after the hole starts at {s:#x}, {pages(abs(s - end) // PAGE)} "
                f"{'into the hole' if s < end else 'past its end'}: the cut at the hole's end is "
                f"{pages(abs(s - end) // PAGE)} off")
    return "the VMAs around the hole are not the two ends of the mapping"


WINDOW = 1 << 37


WINDOW_PAGES = 64


PROTS = (0, PROT_READ, PROT_READ | PROT_WRITE)


class TestRandom:
    """The twin of kernel/lib/random.hpp (xorshift64*)."""

    def __init__(self, seed):
        self.state = seed

    def next(self):
        s = self.state
        s ^= s >> 12
        s ^= (s << 25) & MASK64
        s ^= s >> 27
        self.state = s
        return (s * 0x2545F4914F6CDD1D) & MASK64

    def below(self, n):
        return self.next() % n


def random_steps(token, ops):
    """Replays vmas's random mode one operation at a time: yields a dict per operation: op, call
    ('mmap' with MAP_FIXED, 'noreplace' with MAP_FIXED_NOREPLACE, 'munmap', 'mprotect', 'touch'),
    first and count (its pages of the window), prot, before (the window's mapped pages then:
    {page: (prot, value)}) and wants (the results the program checks, in its order)."""
    r = TestRandom(derived(token, "vmas_random_seed") | 1)
    pages = [None] * WINDOW_PAGES  # None or [prot, value]
    for op in range(ops):
        before = {i: tuple(p) for i, p in enumerate(pages) if p is not None}
        kind = r.below(4)
        first = r.below(WINDOW_PAGES)
        count = 1 + r.below(min(8, WINDOW_PAGES - first))
        span = range(first, first + count)
        step = dict(op=op, first=first, count=count, prot=None, before=before, wants=[])
        wants = step["wants"]
        if kind == 0:
            prot = PROTS[r.below(3)]
            keep = r.below(2) == 0
            step.update(call="noreplace" if keep else "mmap", prot=prot)
            if keep and any(pages[i] is not None for i in span):
                wants.append(EEXIST)
            else:
                wants.append(WINDOW + first * PAGE)
                for i in span:
                    pages[i] = [prot, 0]
        elif kind == 1:
            step.update(call="munmap")
            wants.append(0)
            for i in span:
                pages[i] = None
        elif kind == 2:
            prot = PROTS[r.below(3)]  # PROT_NONE included: the pages are held and keep their values
            step.update(call="mprotect", prot=prot)
            whole = all(pages[i] is not None for i in span)
            wants.append(0 if whole else ENOMEM)
            if whole:
                for i in span:
                    pages[i][0] = prot
        else:
            step.update(call="touch")
            p = pages[first]
            writable = p is not None and p[0] & PROT_WRITE
            if writable:
                p[1] = r.next()
            if p is not None and p[0] & PROT_READ:
                wants.append(p[1])
            if not writable:
                wants.append(EFAULT)
        yield step


def random_model(token, ops, marker):
    """Replays vmas's random mode: (the checksum it must print, the window's pages after
    @p marker operations: {page: (prot, value)} for the mapped ones)."""
    h = 0xCBF29CE484222325
    at_marker = None

    def expect(value):
        nonlocal h
        h = ((h ^ (value & MASK64)) * 0x100000001B3) & MASK64

    for step in random_steps(token, ops):
        if step["op"] == marker:
            at_marker = step["before"]
        for value in step["wants"]:
            expect(value)
    expect(0)
    return h, at_marker


ERRNOS = {ENOMEM: "ENOMEM", EFAULT: "EFAULT", EEXIST: "EEXIST", EINVAL: "EINVAL", -13: "EACCES", -38: "ENOSYS"}


def result_text(value):
    return f"-{ERRNOS[value]}" if value in ERRNOS else f"{value:#x}" if value >= 0 else str(value)


def prot_text(prot):
    return ("r" if prot & PROT_READ else "-") + ("w" if prot & PROT_WRITE else "-") + "-"


def random_mismatch(token, ops, op, got, want):
    """The first result of vmas's random mode that differs from the model (@p op: its operation,
    @p got and @p want as the program handed them to vmas_mismatch, read by the grader from its
    argument registers), told from the grader's own replay of the operation: what was asked, over
    which pages, and what the model's answer means."""
    step = next((s for s in random_steps(token, ops) if s["op"] == op), None)
    if step is None:
        return f"vmas's random mode reported a mismatch at operation {op}, past its {ops} operations"
    first, count, before, prot = step["first"], step["count"], step["before"], step["prot"]
    start, end = WINDOW + first * PAGE, WINDOW + (first + count) * PAGE
    pages = f"pages {first}-{first + count - 1} [{start:#x}, {end:#x}) of the window"
    mapped = [i for i in range(first, first + count) if i in before]
    head = f"operation {op} of {ops} of vmas's random mode (the grader's replay of the program's model)"
    seen = f"returned {result_text(got)} (read from the program's registers), the model expects {result_text(want)}"
    if want not in step["wants"]:
        return (f"{head}: the program's model expects {result_text(want)} where the grader's replay expects "
                f"{', '.join(result_text(w) for w in step['wants'])}: it is not the grader's program")
    call = step["call"]
    if call == "mmap":
        over = f"over {len(mapped)} mapped page(s)" if mapped else "over nothing mapped"
        why = ("a MAP_FIXED mapping replaces whatever it covers: the old regions' part is removed (their pages "
               "unmapped and freed) and the new region recorded; an overlap is no error" if mapped else
               "a MAP_FIXED mapping of a free range is placed exactly where asked")
        return f"{head}: mmap(MAP_FIXED) {prot_text(prot)} of {pages}, {over}, {seen}: {why}"
    if call == "noreplace":
        if mapped:
            return (f"{head}: mmap(MAP_FIXED_NOREPLACE) {prot_text(prot)} of {pages}, over {len(mapped)} mapped "
                    f"page(s), {seen}: MAP_FIXED_NOREPLACE over a mapping fails with EEXIST and changes nothing")
        return (f"{head}: mmap(MAP_FIXED_NOREPLACE) {prot_text(prot)} of {pages}, over nothing mapped, {seen}: a "
                "fixed mapping of a free range is placed exactly where asked")
    if call == "munmap":
        return (f"{head}: munmap of {pages} ({len(mapped)} of {count} mapped) {seen}: munmap of any range of the "
                "user half succeeds, mapped or not")
    if call == "mprotect":
        if len(mapped) == count:
            return f"{head}: mprotect({prot_text(prot)}) of {pages}, all mapped, {seen}"
        hole = next(i for i in range(first, first + count) if i not in before)
        return (f"{head}: mprotect({prot_text(prot)}) of {pages}, where page {hole} is not mapped, {seen}: "
                "mprotect of a range with a hole is refused (ENOMEM) and changes nothing")
    state = before.get(first)
    what = "not mapped" if state is None else f"mapped {prot_text(state[0])}"
    if want == EFAULT:
        return (f"{head}: proc_info() into page {first} ({start:#x}, {what}) {seen}: the kernel's copy into a "
                "page the program may not write must fail with EFAULT (and write nothing)")
    return (f"{head}: the word at page {first} ({start:#x}, {what}) reads {got & MASK64:#x}, where the program last "
            f"wrote {want & MASK64:#x}: the page lost its contents (its frame dropped or replaced while its region kept "
            "it: an mprotect, a split or a neighbour's unmap)")


def record_against_model(record, token, ops, op):
    """A sentence when @p record (vmas's VMAs, read from guest RAM where the program reported
    operation @p op's mismatch) holds a region over a page of the window that the model, after
    that operation, says is not mapped; None when the record agrees with the model there. The
    model's history says how such a region came about: when a page on each side of the hole was
    mapped (or given its permissions) after the hole's last unmap, two regions were merged across
    the gap; when the hole was made after both, the munmap that made it left its range in the
    record."""
    if record is None or record.problem:
        return None
    made, unmapped, after, prev = {}, {}, None, None
    for s in random_steps(token, ops):
        if prev is not None:
            span = range(prev["first"], prev["first"] + prev["count"])
            for i in range(WINDOW_PAGES):
                was, now = i in prev["before"], i in s["before"]
                changed = prev["call"] == "mmap" or prev["call"] == "mprotect" and prev["wants"][:1] == [0]
                if now and (not was or (i in span and changed)):
                    made[i] = prev["op"]
                if was and not now:
                    unmapped[i] = prev["op"]
        if s["op"] == op + 1:
            after = s["before"]
            break
        prev = s
    if after is None:
        return None
    end = WINDOW + WINDOW_PAGES * PAGE
    for v in record.vmas:
        lo, hi = max(v.start, WINDOW), min(v.end, end)
        if lo >= hi:
            continue
        idx = range((lo - WINDOW) // PAGE, (hi - WINDOW) // PAGE)
        holes = [i for i in idx if i not in after]
        if not holes:
            continue
        h = holes[0]
        left = [i for i in idx if i < h and i in after]
        right = [i for i in idx if i > h and i in after]
        shown = f"{holes[0]}" + (f"-{holes[-1]}" if len(holes) > 1 else "")
        where = (f"vmas's record (read from guest RAM where the program reported operation {op}) holds one region {v} "
                 f"over pages {idx[0]}-{idx[-1]} of the window, but the model (after that operation) does not map "
                 f"page(s) {shown}")
        # The mapped pages next to the hole inside the region: made after the hole was (the region
        # grew over it), or before (the hole was punched and the record kept it).
        sides = ([left[-1]] if left else []) + ([right[0]] if right else [])
        if sides and max(made.get(i, -1) for i in sides) > unmapped.get(h, -1):
            return (f"{where}, which lay in a gap next to a mapping when that mapping was made: two regions with a gap "
                    "between them were merged into one across the gap (VmaSet::mergeable must also require that the "
                    "left one ends where the right one starts)")
        if sides:
            return (f"{where}: the munmap that made that hole (operation {unmapped[h]}) left its range in the record "
                    "(VmaSet::remove), or the two pieces it left were merged into one across the gap again "
                    "(VmaSet::mergeable must also require that the left one ends where the right one starts)")
        if not any(i in made or i in unmapped for i in holes):
            # Never mapped by the program, so no munmap left them: the record grew over them.
            return (f"{where}, which the program never mapped: the record grew a region over a gap, most likely two "
                    "regions with a gap between them merged into one across the gap (VmaSet::mergeable must also "
                    "require that the left one ends where the right one starts), or a mapping recorded longer than "
                    "it is")
        return (f"{where}: the record keeps a region over pages the program does not map (a region that outlived "
                "its munmap, or grew past its mapping)")
    return None


TABLE_PAGES = 6                  # user/programs/vmas.cpp's kTablePages


TABLE_WORDS = PAGE // 8          # per page


def table_word(i):
    """Word @p i of vmas_table (user/programs/vmas.cpp's table_word)."""
    return ((i + 1) * 0x9E3779B97F4A7C15 ^ 0x7661736D74626C) & MASK64
