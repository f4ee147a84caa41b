"""Lab 5: virtual memory areas, witnessed from outside the kernel.

Every boot runs the user program vmas (user/programs/vmas.cpp) in one of its modes. The grader
stops the guest where it likes (the run's checkpoints, the system-call entry), walks the process
roots in guest RAM itself, reads what the kernel wrote into user memory through its own walk,
reads QEMU's exception log to see the faults really happened where the program was told to
fault, and reads the program's ELF file to know its segments. The kernel's lines only label
what the grader saw.

Every boot first checks, after the processes are made and before any runs, that each process
root maps exactly one user page: the arguments' page at the top of the stack. A loader that
maps its segments eagerly (or records nothing and maps everything) fails there, whatever it
prints later. At the same stop the grader reads each process's VMA list from guest RAM
(pagoda_grade.vmas) and compares it with the program's ELF file: what the loader left out (no
VMA at all, no stack, a segment without its bss, ...) is not failed there, but names the cause
when a test fails later (a kill at an address the record should have covered)."""
import itertools
import re

from pagoda_grade import contract as C, lab_test, programs
from pagoda_grade.lifecycle import Pages
from pagoda_grade.outcomes import BootEnded
from pagoda_grade.processes import (HEX, count_used, foreign_code_kill, parse_kills, parse_reaped, user_elf, user_pages,
                                    user_symbol, written)
from pagoda_grade.derived import value as derived
from pagoda_grade.proof import proof
from pagoda_grade.symbols import fact, segments
from pagoda_grade.vmas import GROWS_DOWN, KIND_ANONYMOUS, KIND_IMAGE, KIND_STACK, PF_R, PF_W, PF_X, PROT_EXEC, PROT_READ, \
    PROT_WRITE, heap_problems, loader_problems, page_down, page_up, read_records, segment_prot
from pagoda_grade.vmas import prot_text as rwx_of_prot
from pagoda_grade.witness import ARCHES, PAGE, pick_in
from pagoda_pt.diagnose import record_rules_broken
from test_lab3 import GRADER_MEMORY, Watch, fault_expectation, syscall_number, syscall_stops

ENOMEM = -12
# Where the kernel ends a process for a fault (kernel/proc/run.cpp), its root still live.
KILL_STOP = C.USER_FAULT


def u64(data):
    return int.from_bytes(data, "little")


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
                return (f"proc {pid} ({record.name}) was killed at {k.address:#x} with 'no VMA', yet the record the "
                        f"loader made (read from guest RAM before it ran) covers that address with {over}, and "
                        f"{record.name} never unmaps its image or its stack: the lookup missed a region that contains "
                        "the address (VmaSet::find, or decide_fault's use of it)")
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
    was touched before it came, i.e. QEMU's log holds a fault at that page (x86_64: with that root
    in CR3; AArch64's log names no root) before this stop; the arguments' page, which the loader
    writes, aside. Demand paging brings a page in at its first touch and no sooner: a kernel that
    maps a region's other pages at its first fault (or any page nothing touched) is seen at the
    next stop. Recorded in Booter.watch_problems (the test's own checks speak first; it fails a test
    nothing else fails), once per root."""

    def __init__(self, guest, watch):
        self.guest, self.watch = guest, watch
        self.one_root = watch.arch == "x86_64"   # the log's CR3 says which root faulted
        self.args_page = fact(watch.kernel, "user_stack_top") - PAGE
        self.faulted, self.read = {}, 0         # root (or None) -> pages with a fault; events read
        self.told = set()

    def __call__(self, snap):
        root = snap.lower_root
        if root in self.watch.kernel_roots or root in self.told:
            return
        events = self.guest.log_events()
        for e in events[self.read:]:
            if e.kind == "exception" and e.address is not None:
                self.faulted.setdefault(e.root if self.one_root else None, set()).add(e.address & ~(PAGE - 1))
        self.read = len(events)
        touched = self.faulted.get(root if self.one_root else None, set())
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
            self.guest.booter.watch_problems.append(
                f"{who} maps user pages that nothing touched: {shown} (the grader's walk of its root at "
                f"{snap.symbol(snap.pc) or hex(snap.pc)}; QEMU's log holds no fault at them"
                + (" with that root live" if self.one_root else "") + "): demand paging brings a page in at "
                "its first touch, one fault each, never a region's other pages with it")


MAX_SHOWN = 6


class _Lines:
    def __init__(self, lines):
        self.lines = lines


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


def program_says(guest, watch, pattern, what, looks=8):
    """The stop at the first of the program's next @p looks write() calls whose text matches
    @p pattern, and the match: vmas says where it is about to act, and the grader then looks
    there itself. Fails naming @p what vmas never said."""
    write = syscall_number("Write")
    for _ in range(looks):
        snap = syscall_stops(guest, watch, {write})
        m = re.match(pattern, written(snap, watch.proc).decode(errors="replace"))
        if m:
            return snap, m
    raise AssertionError(f"vmas never said {what}")


def boot_vmas(boot, kernel, arch, token, spec, script):
    watch = VmaWatch(kernel, arch)

    def witness(guest):
        watch.before(guest)
        started_lazy(watch, guest, kernel)
        try:
            return script(guest, watch)
        except AssertionError as e:
            cause = watch.kill_cause(guest.lines())
            if cause:
                raise AssertionError(f"{cause}\n{e}") from None
            raise

    run = boot(args={"run": spec}, token=token, witness=witness, memory=GRADER_MEMORY)
    return run, watch, watch.require(run)


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
    pagoda_pt.diagnose.record_rules_broken)."""
    if record is None or record.problem:
        return None
    return record_rules_broken([(v.start, v.end, v.kind == KIND_IMAGE, v.file_size, str(v)) for v in record.vmas],
                               f"{record.name}'s record (pid {record.pid}, read from guest RAM)", PAGE)


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


# ---- laziness ------------------------------------------------------------------------------------

@lab_test(5, "lazy")
def test_lazy(boot, kernel, arch):
    token = boot.fresh_token()
    count = pick_in(token, "lazy pages", 3, 6)
    info = syscall_number("ProcInfo")
    in_area = mmap_area(kernel)

    def script(guest, watch):
        for _ in range(3):  # before, after mmap, after the touches
            snap = syscall_stops(guest, watch, {info})
        mapped = pages_of(snap.dump(snap.lower_root), watch.layout)
        high = {va: u64(snap.read_virt(va + 8, 8, snap.lower_root)) for va in mapped if in_area(va)}
        return dict(high=high)

    run, watch, w = boot_vmas(boot, kernel, arch, token, f"vmas:lazy:{count}", script)
    m = run.expect(rf"^vmas: lazy: 64 MiB at ({HEX}); user frames (\d+) -> (\d+) -> (\d+);", "vmas's lazy line")
    at = int(m[1], 16)
    want = {}
    for i in range(count):
        want[at + derived(token, "vmas_lazy_page", i) * PAGE] = i + 1
    if w["high"] != want:
        watch.fail(run, f"after touching {len(set(want))} pages of a 64 MiB mapping at {at:#x}, the grader's walk of the "
                        f"root finds {len(w['high'])} mapped in the mmap area "
                        f"({', '.join(f'{va:#x}={v}' for va, v in sorted(w['high'].items())[:8])}); expected exactly "
                        f"{', '.join(f'{va:#x}={v}' for va, v in sorted(want.items()))}: pages must come on demand, one "
                        "zeroed frame per touched page")
    if parse_reaped(run).get(1) != "exited with code 0":
        watch.fail(run, "missing: 'proc 1 (vmas): reaped: exited with code 0'")
    run.expect_outcome("success")


# ---- bss after data on a shared page ----------------------------------------------------------

@lab_test(5, "bss_data")
def test_bss_data(boot, kernel, arch):
    token = boot.fresh_token()
    data = user_symbol(kernel, arch, "vmas", "vmas_data").address
    bss = user_symbol(kernel, arch, "vmas", "vmas_bss").address
    if data // PAGE != bss // PAGE:
        raise AssertionError(f"vmas_data {data:#x} and vmas_bss {bss:#x} do not share a page: rebuild user/programs/vmas")
    write = syscall_number("Write")

    def script(guest, watch):
        snap = syscall_stops(guest, watch, {write})
        root = snap.lower_root
        w = snap.walk(data, root)
        return dict(mapped=w.mapped, perms=w.perms.rwx() if w.mapped else None,
                    data=snap.read_virt(data, 24, root) if w.mapped else b"",
                    page=snap.read_virt(page_down(data), PAGE, root) if w.mapped else b"",
                    bss=snap.read_virt(bss, 600 * 8, root) if w.mapped else b"")

    run, watch, w = boot_vmas(boot, kernel, arch, token, "vmas:bss", script)
    if not w["mapped"] or w["perms"] != "rw-":
        watch.fail(run, f"once vmas read its data, the page {data // PAGE * PAGE:#x} is "
                        f"{'mapped ' + w['perms'] if w['mapped'] else 'not mapped'} in its root; expected rw-")
    values = [u64(w["data"][i:i + 8]) for i in range(0, 24, 8)]
    seg = next((g for g in segments(user_elf(kernel, arch, "vmas")) if g.vaddr <= data < g.vaddr + g.memsz), None)
    misread = page_file_cause(kernel, arch, "vmas", seg, page_down(data), w["page"]) if seg and w["page"] else None
    if misread:
        watch.fail(run, f"{misread}; vmas_data ({data:#x}) reads {[hex(v) for v in values]} through the grader's walk, "
                        "the file has 0x1111 0x2222 0x3333")
    if values != [0x1111, 0x2222, 0x3333]:
        watch.fail(run, f"vmas_data reads {[hex(v) for v in values]} through the grader's walk; expected the file's "
                        "0x1111 0x2222 0x3333: the data before the bss on their shared page was not copied from the ELF")
    nonzero = [i for i in range(600) if u64(w["bss"][i * 8:i * 8 + 8])]
    if nonzero:
        first = bss + nonzero[0] * 8
        seg = next((g for g in segments(user_elf(kernel, arch, "vmas")) if g.vaddr <= data < g.vaddr + g.memsz), None)
        file_word = embedded_bytes(kernel, arch, "vmas", seg.offset + (first - seg.vaddr), 8) if seg else None
        value = u64(w["bss"][nonzero[0] * 8:nonzero[0] * 8 + 8])
        # A page wholly past the file bytes gets no file byte at all, whatever populate copies for the shared
        # page: a word there that is not zero comes from a frame that was never zeroed.
        past = [i for i in nonzero if seg is not None and bss + i * 8 >= page_up(seg.vaddr + seg.filesz)]
        if past:
            at_past = bss + past[0] * 8
            watch.fail(run, f"the bss reads bytes that are neither zeros nor the ELF file's: word {past[0]} of "
                            f"vmas_bss ({at_past:#x}, on a page past every file byte of the segment) holds "
                            f"{u64(w['bss'][past[0] * 8:past[0] * 8 + 8]):#x} ({len(nonzero)} nonzero words), where "
                            "no file byte is ever copied: the page's frame was not zeroed before use (a frame comes "
                            "from the allocator with a freed page's old bytes: populate must zero it, then copy the "
                            "file bytes)")
        if seg is not None and first >= seg.vaddr + seg.filesz and first // PAGE == (seg.vaddr + seg.filesz) // PAGE:
            follows = (f"; it is the word the ELF file holds at offset {seg.offset + first - seg.vaddr:#x}, among the "
                       "bytes that follow the segment's file bytes" if file_word is not None and u64(file_word) == value
                       else "")
            watch.fail(run, f"the bss on the page it shares with the data reads bytes past the segment's file bytes: "
                            f"word {nonzero[0]} of vmas_bss ({first:#x}) holds {value:#x}, yet the data segment has only "
                            f"{seg.filesz:#x} bytes from the file (up to {seg.vaddr + seg.filesz:#x}){follows}: a page "
                            "gets its region's file bytes and zeros after them, never a whole page of the file")
        watch.fail(run, f"{len(nonzero)} words of vmas_bss are not zero (first: word {nonzero[0]} at {first:#x}, "
                        f"{value:#x}): the bss tail of the last file page and the bss pages after it must read as zeros")
    run.expect(rf"^vmas: bss at {bss:#x}: 0 nonzero words; data at {data:#x} intact proof={proof(token, 0):016x}$",
               "vmas's bss line")
    run.expect_outcome("success")


# ---- a hole in the middle of a mapping --------------------------------------------------------

@lab_test(5, "munmap_hole")
def test_munmap_hole(boot, kernel, arch):
    token = boot.fresh_token()
    listing = syscall_number("VmaList")
    write = syscall_number("Write")
    in_area = mmap_area(kernel)

    def script(guest, watch):
        snap = syscall_stops(guest, watch, {listing})
        out, _ = (snap.register(r) for r in watch.proc["syscall_args"][:2])
        root = snap.lower_root
        mapped = sorted(va for va in pages_of(snap.dump(root), watch.layout) if in_area(va))
        after = syscall_stops(guest, watch, {write})
        table = after.read_virt(out, 16 * 32, root)
        # The record as the process leaves (killed, or exiting when the touch was resolved).
        try:
            end = guest.stop_at(C.EXIT)
            final = read_records(end, kernel).get(1)
        except BootEnded:
            final = None
        return dict(mapped=mapped, table=table, final=final)

    run, watch, w = boot_vmas(boot, kernel, arch, token, "vmas:hole", script)
    m = run.expect(rf"^vmas: touching the hole at ({HEX})$", "vmas's hole line")
    hole = int(m[1], 16)
    at = hole - 3 * PAGE
    want = [at + i * PAGE for i in (0, 1, 2, 5, 6, 7)]
    vmas = [(u64(w["table"][i:i + 8]), u64(w["table"][i + 8:i + 16]), u64(w["table"][i + 16:i + 20]) & 0xffffffff)
            for i in range(0, len(w["table"]), 32)]
    around = [(s, e, p) for s, e, p in vmas if s < at + 8 * PAGE and at < e]
    if w["mapped"] != want:
        kept = [va for va in w["mapped"] if hole <= va < hole + 2 * PAGE]
        listed = [(s, e) for s, e, _ in around if s < hole + 2 * PAGE and hole < e]
        if kept and not listed:
            watch.fail(run, f"{pages_left('munmap', hole, hole + 2 * PAGE, kept)} (the grader's walk of the root), "
                            "though the VMA list the kernel wrote into vmas's memory has no region there: munmap must "
                            "unmap the pages of the range and free their frames, not only forget its VMAs")
        watch.fail(run, f"after munmap of pages 3-4 of 8 at {at:#x}, the grader's walk finds pages "
                        f"{[hex(v) for v in w['mapped']]} mapped; expected {[hex(v) for v in want]} (the hole's frames "
                        "freed, the ends kept)")
    expected = [(at, at + 3 * PAGE, PROT_READ | PROT_WRITE), (at + 5 * PAGE, at + 8 * PAGE, PROT_READ | PROT_WRITE)]
    if around != expected:
        watch.fail(run, f"{hole_cut(around, at, hole)}: after munmap of pages 3-4 of 8 at {at:#x}, the VMA list the "
                        "kernel wrote into vmas's memory (read from guest RAM) has "
                        f"{[(hex(s), hex(e), p) for s, e, p in around]} there; expected two rw VMAs "
                        f"[{at:#x}, {hole:#x}) and [{hole + 2 * PAGE:#x}, {at + 8 * PAGE:#x})")
    run.expect(rf"^vmas: hole: munmap -> 0; \d+ VMAs; ends sum 27 proof={proof(token, 27):016x}$", "the ends still work")
    if not user_faults(run, arch, hole):
        watch.fail(run, f"QEMU's log shows no user-mode fault at {hole:#x}: the hole was never touched")
    final = w["final"]
    over = final.find(hole) if final is not None else None
    if over is not None and 1 not in parse_kills(run):
        watch.fail(run, f"the touch of the hole at {hole:#x} was resolved, not refused: as vmas ends, its record (read "
                        f"from guest RAM) covers the hole with {over}"
                        + (", a region that is not a grows-down stack: the fault decision grew it down to the fault "
                           "(only a stack grows)" if not over.flags & GROWS_DOWN else "")
                        + f"; expected no VMA at {hole:#x} and a kill naming none")
    if final is not None and over is None and 1 not in parse_kills(run):
        regions = ", ".join(str(v) for v in final.around(at, at + 8 * PAGE)) or "none"
        watch.fail(run, f"the touch of the hole at {hole:#x} was allowed and its page brought in, though vmas's record "
                        f"(read from guest RAM as it ends) has no region there (around it: {regions}): the fault "
                        "decision allowed an address no region holds — VmaSet::find returned a region that does not "
                        "contain it (a region holds [start, end): find must check the start of the region it finds, "
                        "not only its end), or decide_fault allowed a fault for which find found nothing; expected a "
                        "kill naming no VMA")
    killed(run, watch, 1, "page fault", "no VMA", hole)
    run.expect_outcome("success")


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


# ---- mprotect ------------------------------------------------------------------------------------

@lab_test(5, "mprotect")
def test_mprotect(boot, kernel, arch):
    token = boot.fresh_token()

    def script(guest, watch):
        # What vmas's protect mode gives its two pages, in order (user/programs/vmas.cpp): written while
        # rw-, read while r--, written again once rw-, then the first page r-- (the write it dies of).
        watch.prot_steps = ["rw-", "r--", "rw-"]
        snap, m = program_says(guest, watch, rf"vmas: writing the read-only page at ({HEX})",
                               "it would write the read-only page")
        at = int(m[1], 16)
        w = snap.walk(at, snap.lower_root)
        return dict(at=at, perms=w.perms.rwx() if w.mapped else None, user=w.mapped and w.perms.user,
                    value=u64(snap.read_virt(at, 8, snap.lower_root)) if w.mapped else None,
                    record=read_records(snap, kernel).get(1))

    run, watch, w = boot_vmas(boot, kernel, arch, token, "vmas:protect", script)
    at, record = w["at"], w["record"]
    # The record first: after mprotect(PROT_READ) of page 0 of the two rw- pages, two regions.
    want = [(at, at + PAGE, "r--"), (at + PAGE, at + 2 * PAGE, "rw-")]
    have = [(v.start, v.end, v.rwx()) for v in record.around(at, at + 2 * PAGE)] if record else None
    if record_broken(record):
        watch.fail(run, f"{record_broken(record)}; after mprotect(PROT_READ) of the first of two rw- pages at {at:#x}")
    if record is not None and have != want:
        unsorted = [v for a, v in zip(record.vmas, record.vmas[1:]) if v.start < a.end]
        if unsorted:
            why = (f"the VMA list is not sorted and disjoint: {unsorted[0]} overlaps or precedes the region before it "
                   "(a region split at the wrong index?)")
        elif len(have) == 1 and have[0][0] <= at and have[0][1] >= at + 2 * PAGE:
            why = (f"one VMA {record.around(at, at + PAGE)[0]} covers both pages: the rw- page after the range took "
                   "the range's new permissions: either protect() did not split the region at the range's end, or "
                   "the r-- page and its rw- neighbour were merged although their permissions differ")
        else:
            why = "the record does not hold the r-- page and the rw- page apart"
        watch.fail(run, f"{why}: after mprotect(PROT_READ) of the first of two rw- pages at {at:#x}, vmas's VMAs there "
                        f"(read from guest RAM) are {record.describe(at, at + 2 * PAGE)}; expected "
                        f"[{at:#x}, {at + PAGE:#x}) r-- and [{at + PAGE:#x}, {at + 2 * PAGE:#x}) rw-")
    if w["perms"] != "r--" or not w["user"] or w["value"] != 8:
        if w["perms"] == "rw-" and record is not None and record.find(at) and not record.find(at).write:
            watch.fail(run, f"mprotect changed the VMA but not the page: vmas's record (read from guest RAM) has "
                            f"{record.find(at)}, yet the grader's walk finds {at:#x} still mapped rw-: the entries of "
                            "the pages already brought in must get the region's new permissions (and the TLB be told)")
        watch.fail(run, f"before the write, the grader's walk finds {at:#x} "
                        f"{'mapped ' + str(w['perms']) if w['perms'] else 'not mapped'} holding {w['value']}; expected a "
                        "user r-- page holding 8 (written while rw, then made read-only by mprotect)")
    run.expect(rf"^vmas: protect: 0 0 0; read 7 then wrote 8 proof={proof(token, 8):016x}$", "vmas's protect line")
    vector, error, mask = fault_expectation(arch, write=True)
    logged = [f for f in user_faults(run, arch, at) if f.vector == vector and f.error is not None
              and f.error & mask == error & mask]
    if not logged:
        watch.fail(run, f"QEMU's log shows no user-mode write fault on the present page {at:#x}")
    k = parse_kills(run).get(1)
    if k is not None and k.address == at and "write to read-only VMA" not in k.reason and record is not None:
        watch.fail(run, f"the fault decision allowed a write to a read-only VMA: the CPU refused a user write to "
                        f"{at:#x} (QEMU's log), a present page the grader's walk found r-- in {record.find(at)} "
                        f"(vmas's record, read from guest RAM), and the kill does not name the denial: '{k.reason}'; "
                        "a write needs the VMA's write permission ('write to read-only VMA')")
    killed(run, watch, 1, "page fault", "write to read-only VMA", at)
    run.expect_outcome("success")


# ---- PROT_NONE keeps the pages -------------------------------------------------------------------

NONE_WORDS = 8
EFAULT = -14


def signed(value):
    return value - (1 << 64) if value >> 63 else value


@lab_test(5, "mprotect_none")
def test_mprotect_none(boot, kernel, arch):
    token = boot.fresh_token()
    pattern = b"".join(derived(token, "vmas_none_word", i).to_bytes(8, "little") for i in range(NONE_WORDS))
    write, read = syscall_number("Write"), syscall_number("Read")
    held_bit = fact(kernel, "held_entry_bit")
    address_mask = fact(kernel, "address_mask")

    def script(guest, watch):
        out = {}
        # 1. The page is rw- and holds the pattern: its frame, through the grader's walk.
        snap, m = program_says(guest, watch, rf"vmas: none: pattern at ({HEX})", "where its pattern is")
        at = out["at"] = int(m[1], 16)
        w = snap.walk(at, snap.lower_root)
        out["before"] = dict(perms=w.perms.rwx() if w.mapped else None, user=w.mapped and w.perms.user,
                             frame=w.pa if w.mapped else None,
                             data=snap.read_virt(at, len(pattern), snap.lower_root) if w.mapped else b"")
        # 2. At read(): PROT_NONE since mprotect. The leaf must be invalid to the MMU (bit 0 clear:
        # P on x86_64, the valid bit on AArch64) and still hold the frame, which still holds the
        # pattern; then read() returns EFAULT to user mode.
        snap = syscall_stops(guest, watch, {read})
        out["read_buf"] = snap.register(watch.proc["syscall_args"][1])
        w = snap.walk(at, snap.lower_root)
        leaf = w.levels[-1] if w.levels else None
        raw = leaf.raw if leaf is not None else None
        frame = raw & address_mask if raw is not None else None
        out["during"] = dict(mapped=w.mapped, stop=w.stop_reason, level=leaf.name if leaf else None, raw=raw,
                             frame=frame, data=snap.read_phys(frame, len(pattern)) if frame else b"")
        if w.mapped:
            return out  # a readable buffer: read() would wait for console input; the checks below say why
        back = snap.register(watch.proc["syscall_return_pc"])
        out["read_result"] = signed(guest.stop_at(back).register(watch.proc["syscall_result"]))
        # 3. rw- again: the pattern is back where the program can read it.
        for _ in range(8):
            snap = syscall_stops(guest, watch, {write})
            if snap.register(watch.proc["syscall_args"][1]) == at:
                continue  # write(1, at, 16) while PROT_NONE: nothing the grader can read
            if re.match(r"vmas: none: mprotect \S+ read", written(snap, watch.proc).decode(errors="replace")):
                break
        else:
            raise AssertionError("vmas never reported the page read/write again")
        w = snap.walk(at, snap.lower_root)
        out["after"] = dict(perms=w.perms.rwx() if w.mapped else None,
                            data=snap.read_virt(at, len(pattern), snap.lower_root) if w.mapped else b"")
        return out

    run, watch, w = boot_vmas(boot, kernel, arch, token, "vmas:none", script)
    at = w["at"]
    before, during, after = w["before"], w["during"], w.get("after")
    if before["perms"] != "rw-" or not before["user"] or before["data"] != pattern:
        watch.fail(run, f"before mprotect(PROT_NONE), the grader's walk finds {at:#x} "
                        f"{'mapped ' + before['perms'] if before['perms'] else 'not mapped'}"
                        f"{' holding other bytes than the pattern' if before['perms'] else ''}; expected a user rw- "
                        "page holding the pattern the program wrote")
    raw = during["raw"]
    if during["mapped"]:
        watch.fail(run, f"while {at:#x} is PROT_NONE, the grader's walk (the MMU's view) still finds it mapped "
                        f"(leaf {during['level']} = {raw:#x}): a page that allows no access must be invalid to the "
                        "MMU, or a system call's user copy (a plain load with a fix-up) would read it")
    if raw is None or raw & 1 or during["level"] not in ("PT", "L3"):
        watch.fail(run, f"while {at:#x} is PROT_NONE, the walk stops at {during['stop']}, not at the page's own leaf: "
                        "the page's tables were freed or never made")
    if not raw & held_bit or during["frame"] != before["frame"]:
        watch.fail(run, f"while {at:#x} is PROT_NONE its leaf is {raw:#x}: expected the frame {before['frame']:#x} the "
                        f"page had while rw- and the held bit {held_bit:#x} (the kernel's fact held_entry_bit): "
                        "PROT_NONE must keep the page's frame, not drop it")
    if during["data"] != pattern:
        watch.fail(run, f"while {at:#x} is PROT_NONE, its frame {during['frame']:#x} no longer holds the pattern the "
                        "program wrote: the contents must survive mprotect")
    if w["read_buf"] != at or w["read_result"] != EFAULT:
        watch.fail(run, f"read() into the PROT_NONE page {at:#x} returned {w['read_result']} to user mode (the "
                        f"grader read the result register at the return); expected {EFAULT} (EFAULT)")
    vector, error, mask = fault_expectation(arch, user=False, mapped=False)
    kernel_priv = ARCHES[arch].kernel_privilege
    if not [f for f in run.log.faults if f.privilege == kernel_priv and f.address == at and f.vector == vector
            and f.error is not None and f.error & mask == error & mask]:
        watch.fail(run, f"QEMU's log shows no kernel fault on the not-present page {at:#x}: read()'s copy into a "
                        "PROT_NONE page must fault (and return EFAULT through its fix-up)")
    if after["perms"] != "rw-" or after["data"] != pattern:
        watch.fail(run, f"after mprotect back to read/write, the grader's walk finds {at:#x} "
                        f"{'mapped ' + after['perms'] if after['perms'] else 'not mapped'}"
                        f"{'' if after['data'] == pattern else ' without the pattern'}; expected rw- with the pattern "
                        "intact")
    run.expect(rf"^vmas: none: mprotect 0 read {EFAULT} write {EFAULT} mprotect 0; {NONE_WORDS} of {NONE_WORDS} words "
               rf"intact proof={proof(token, NONE_WORDS):016x}$", "vmas's none line")
    vector, error, mask = fault_expectation(arch, write=False, mapped=False)
    if not [f for f in user_faults(run, arch, at + 8) if f.vector == vector and f.error is not None
            and f.error & mask == error & mask]:
        watch.fail(run, f"QEMU's log shows no user-mode read fault on the not-present page {at + 8:#x}")
    killed(run, watch, 1, "page fault", "access to inaccessible VMA", at + 8)
    run.expect_outcome("success")


# ---- brk and sbrk --------------------------------------------------------------------------------

@lab_test(5, "brk")
def test_brk(boot, kernel, arch):
    token = boot.fresh_token()
    count = pick_in(token, "brk pages", 3, 9)
    base = image_end(kernel, arch)
    info = syscall_number("ProcInfo")

    def script(guest, watch):
        watch.asked_breaks = [base + count * PAGE]
        seen = []
        for _ in range(3):  # before, grown, shrunk
            snap = syscall_stops(guest, watch, {info})
            mapped = pages_of(snap.dump(snap.lower_root), watch.layout)
            heap = {va: mapped[va].perms.rwx() for va in range(base, base + count * PAGE, PAGE) if va in mapped}
            seen.append(dict(heap=heap, used=count_used(snap, *watch.bitmap)[0], record=read_records(snap, kernel).get(1)))
        return seen

    run, watch, w = boot_vmas(boot, kernel, arch, token, f"vmas:brk:{count}", script)
    grown, shrunk = w[1], w[2]
    want = {base + i * PAGE: "rw-" for i in range(count)}
    if grown["heap"] != want:
        watch.fail(run, f"after sbrk({count} pages) and a touch of each, the grader's walk finds the heap pages "
                        f"{ {hex(k): v for k, v in grown['heap'].items()} } mapped in [{base:#x}, "
                        f"{base + count * PAGE:#x}); expected all {count}, rw-")
    if shrunk["heap"]:
        record, kept = shrunk["record"], sorted(shrunk["heap"])
        over = [v for v in record.around(base, base + count * PAGE)] if record is not None else None
        if over == []:
            watch.fail(run, f"sbrk(-{count} pages) shrank the heap's VMA but left heap pages mapped: "
                            f"{pages_left('the shrink', base, base + count * PAGE, kept)} (the grader's walk), though "
                            f"vmas's record (read from guest RAM) has no region over [{base:#x}, "
                            f"{base + count * PAGE:#x}): the pages above the new break must be unmapped and their frames "
                            "freed")
        watch.fail(run, f"after sbrk(-{count} pages) the heap pages {[hex(k) for k in kept]} are still mapped"
                        + (f", and vmas's record (read from guest RAM) still has {', '.join(str(v) for v in over)} "
                           "there: the break moved down but neither the heap's VMA nor its pages did" if over else ""))
    if grown["used"] - shrunk["used"] < count:
        watch.fail(run, f"shrinking the heap by {count} pages gave back {grown['used'] - shrunk['used']} frames "
                        "(the frame allocator's bitmap, read from guest RAM)")
    m = run.expect(rf"^vmas: brk: base ({HEX}) old ({HEX}); frames (\d+) -> (\d+) -> (\d+); shrink ({HEX}); "
                   rf"wall ({HEX}); sbrk past it -> (-?\d+) proof=([0-9a-f]{{16}})$", "vmas's brk line")
    if int(m[1], 16) != base or int(m[8]) != ENOMEM:
        watch.fail(run, f"the break starts at {m[1]} (expected {base:#x}, the page after the image) and sbrk past a "
                        f"mapping returns {m[8]} (expected {ENOMEM})")
    run.expect_proof(m[9], int(m[4]) - int(m[3]), "the frames the heap took")
    run.expect_outcome("success")


# ---- the stack grows, to a limit --------------------------------------------------------------

@lab_test(5, "stack_growth")
def test_stack_growth(boot, kernel, arch):
    token = boot.fresh_token()
    depth = pick_in(token, "stack depth", 24, 200)
    top = fact(kernel, "user_stack_top")
    limit = fact(kernel, "user_stack_limit")
    too_deep = limit // PAGE + 40

    def script(guest, watch):
        snap, _ = program_says(guest, watch, re.escape(f"vmas: stack: back from {depth} pages"),
                               f"it came back from {depth} pages of stack", looks=12)
        mapped = pages_of(snap.dump(snap.lower_root), watch.layout)
        return dict(stack=sum(1 for va in mapped if top - limit <= va < top))

    run, watch, w = boot_vmas(boot, kernel, arch, token, f"vmas:stack:{depth},vmas:stack:{too_deep}", script)
    if w["stack"] < depth:
        watch.fail(run, f"back from {depth} pages of recursion, the grader's walk finds only {w['stack']} stack pages "
                        "mapped: the stack did not grow")
    total = sum(k % 256 for k in range(1, depth + 1))
    run.expect(rf"^vmas: stack: back from {depth} pages proof={proof(token, total):016x}$", "the deep stack's line")
    k = parse_kills(run).get(2)
    floor = top - limit
    below = sorted({f.address for f in user_faults(run, arch) if f.address is not None
                    and floor - limit <= f.address < floor})
    if k is None and below:
        watch.fail(run, f"the fault decision grew the stack below its limit: the process recursing {too_deep} pages "
                        f"faulted at {len(below)} address(es) below the lowest stack address {floor:#x} (top - limit, "
                        f"QEMU's log; the lowest {below[0]:#x}) and was not killed: a fault below the limit must be "
                        "refused ('stack limit'), not grown into")
    if k is not None and k.how == "stack limit" and k.address is not None and floor <= k.address < top:
        page = k.address // PAGE * PAGE
        where = ("the lowest page the limit allows (top - limit): the comparison with the floor leaves the floor's "
                 "own page out (> for >=)" if page == floor else
                 f"{(page - floor) // PAGE} page(s) above the lowest page the limit allows ({floor:#x}, top - limit)")
        watch.fail(run, f"the stack was refused at {k.address:#x} with 'stack limit', on {where}; the stack may "
                        f"grow down to {floor:#x} and no further: {k.reason}")
    gap = fact(kernel, "user_stack_gap")
    if k is not None and k.address is not None and floor - gap <= k.address < floor and no_vma_verdict(
            k.reason.split("; the page", 1)[0]):
        watch.fail(run, f"the fault at {k.address:#x}, in the guard gap below the stack's limit (the {gap // PAGE} "
                        f"page(s) below {floor:#x}, top - limit), was denied 'no VMA': the fault decision must give "
                        "the gap its own verdict, 'stack limit' (decide_fault: a page below the floor but within the "
                        f"gap is a stack overflow, not an address with no region near it): {k.how}: {k.reason}")
    if k is None or k.how != "stack limit" or "stack limit" not in k.reason or k.address is None \
            or not top - limit - PAGE <= k.address < top - limit:
        watch.fail(run, f"the process recursing {too_deep} pages was not killed with 'stack limit' just below "
                        f"{top - limit:#x}: {k.how + ' at ' + hex(k.address or 0) + ': ' + k.reason if k else 'no kill line'}")
    if not user_faults(run, arch, k.address):
        watch.fail(run, f"QEMU's log shows no user-mode fault at {k.address:#x}")
    run.expect_outcome("success")


# ---- the VMA list against the grader's walk ---------------------------------------------------

@lab_test(5, "vma_list_walk")
def test_vma_list_walk(boot, kernel, arch):
    token = boot.fresh_token()
    listing = syscall_number("VmaList")
    write = syscall_number("Write")
    top = fact(kernel, "user_stack_top")
    segs = segments(user_elf(kernel, arch, "vmas"))

    def script(guest, watch):
        snap = syscall_stops(guest, watch, {listing})
        out, count = (snap.register(r) for r in watch.proc["syscall_args"][:2])
        root = snap.lower_root
        after = syscall_stops(guest, watch, {write})
        return dict(table=after.read_virt(out, count * 32, root), count=count,
                    mapped={va: (r.perms.write, r.perms.execute, r.perms.user)
                            for va, r in pages_of(after.dump(root), watch.layout).items()})

    run, watch, w = boot_vmas(boot, kernel, arch, token, "vmas:list", script)
    m = run.expect(rf"^vmas: (\d+) VMAs proof=([0-9a-f]{{16}})$", "vmas's VMA count")
    n = int(m[1])
    run.expect_proof(m[2], n, "the VMA count")
    t = w["table"]
    vmas = [dict(start=u64(t[i:i + 8]), end=u64(t[i + 8:i + 16]), prot=u64(t[i + 16:i + 20]),
                 kind=u64(t[i + 20:i + 24]), offset=u64(t[i + 24:i + 32])) for i in range(0, min(n, w["count"]) * 32, 32)]
    problems = []
    for s in segs:
        start, end = s.vaddr // PAGE * PAGE, (s.vaddr + s.memsz + PAGE - 1) // PAGE * PAGE
        prot = (PROT_READ if s.flags & PF_R else 0) | (PROT_WRITE if s.flags & PF_W else 0) | \
               (PROT_EXEC if s.flags & PF_X else 0)
        offset = s.offset - (s.vaddr - start)
        cover = [v for v in vmas if v["start"] <= start and end <= v["end"] and v["kind"] == KIND_IMAGE
                 and v["prot"] == prot and v["offset"] + (start - v["start"]) == offset]
        if not cover:
            problems.append(f"no image VMA with prot {prot} and file offset {offset:#x} covers the segment "
                            f"[{start:#x}, {end:#x}) of the ELF file")
    if not any(v["end"] == top and v["kind"] == KIND_STACK for v in vmas):
        problems.append(f"no stack VMA ends at the stack's top {top:#x}")
    for va, (writable, executable, user) in sorted(w["mapped"].items()):
        v = next((v for v in vmas if v["start"] <= va < v["end"]), None)
        if v is None:
            problems.append(f"the root maps {va:#x}, which no VMA covers")
        elif not user or writable != bool(v["prot"] & PROT_WRITE) or executable != bool(v["prot"] & PROT_EXEC):
            problems.append(f"the root maps {va:#x} {'w' if writable else '-'}{'x' if executable else '-'} "
                            f"{'user' if user else 'kernel'}; its VMA [{v['start']:#x}, {v['end']:#x}) has prot {v['prot']}")
    for v in vmas:
        line = (rf"^vmas: vma \[{v['start']:#x}, {v['end']:#x}\) prot {v['prot']} kind \w+ offset {v['offset']:#x}$")
        if not run.search(line):
            problems.append(f"vmas printed no line for the VMA [{v['start']:#x}, {v['end']:#x}) it received")
    if problems:
        watch.fail(run, "the VMA list the kernel wrote into vmas's memory (read from guest RAM) against the ELF file "
                        "and the grader's own walk of the root:\n  " + "\n  ".join(problems[:12]))
    run.expect_outcome("success")


# ---- random operations against a model --------------------------------------------------------

WINDOW = 1 << 37
WINDOW_PAGES = 64
PROTS = (0, PROT_READ, PROT_READ | PROT_WRITE)
EEXIST, EFAULT, EINVAL = -17, -14, -22
MASK64 = (1 << 64) - 1


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
                    "(VmaSet::remove)")
        if not any(i in made or i in unmapped for i in holes):
            # Never mapped by the program, so no munmap left them: the record grew over them.
            return (f"{where}, which the program never mapped: the record grew a region over a gap, most likely two "
                    "regions with a gap between them merged into one across the gap (VmaSet::mergeable must also "
                    "require that the left one ends where the right one starts), or a mapping recorded longer than "
                    "it is")
        return (f"{where}: the record keeps a region over pages the program does not map (a region that outlived "
                "its munmap, or grew past its mapping)")
    return None


@lab_test(5, "random_ops")
def test_random_ops(boot, kernel, arch):
    token = boot.fresh_token()
    ops = 1000
    marker = pick_in(token, "random marker", 100, ops - 100)
    checksum, model = random_model(token, ops, marker)
    stop = user_symbol(kernel, arch, "vmas", "vmas_marker").address

    mismatch = user_symbol(kernel, arch, "vmas", "vmas_mismatch").address
    watch = VmaWatch(kernel, arch)
    frames, wrong = {}, {}

    def first_broken(snap):
        # The first record (read from guest RAM) that breaks the set's rules, at any of the stops.
        if "broken" not in wrong:
            found = next((b for b in map(record_broken, read_records(snap, kernel).values()) if b), None)
            if found:
                wrong["broken"] = found

    def first_wrong(snap):
        # The program's first result that differs from its model: on the way to any stop.
        if "at" not in wrong:
            wrong["at"] = (snap.argument(0), signed(snap.argument(1)), signed(snap.argument(2)))
            wrong["record"] = next((r for r in read_records(snap, kernel).values() if r.name == "vmas"), None)
        first_broken(snap)

    def witness(guest):
        watch.before(guest)
        started_lazy(watch, guest, kernel)
        guest.side_stop(mismatch, first_wrong)
        out = script_body(guest)
        end = watch.checkpoint(guest, "ended")
        frames["after"] = count_used(end, *watch.bitmap)[0]
        return out

    def script_body(guest):
        snap = guest.stop_at(stop)
        first_broken(snap)
        root = snap.lower_root
        seen = {}
        for va, r in pages_of(snap.dump(root), watch.layout).items():
            if WINDOW <= va < WINDOW + WINDOW_PAGES * PAGE:
                seen[(va - WINDOW) // PAGE] = (r.perms.rwx(), r.perms.user, u64(snap.read_virt(va, 8, root)))
        return dict(seen=seen)

    run = boot(args={"run": f"vmas:random:{ops}:{marker}"}, token=token, witness=witness, memory=GRADER_MEMORY)
    # The first operation the kernel answered otherwise than the model heads every failure: the
    # checks below (and a kill before the grader's stop) are what it led to.
    cause = random_mismatch(token, ops, *wrong["at"]) if "at" in wrong else None
    against = record_against_model(wrong.get("record"), token, ops, wrong["at"][0]) if "at" in wrong else None
    if against:
        cause = f"{against}\n{cause}"
    if "broken" in wrong:
        cause = f"{wrong['broken']}\n{cause}" if cause else wrong["broken"]
    if cause and run.witness is None:
        run.witness_failure = f"{cause}\n{run.witness_failure}"
    w = watch.require(run)

    def fail(message):
        watch.fail(run, f"{cause}\n{message}" if cause else message)

    if "broken" in wrong:
        watch.fail(run, cause)
    problems = []
    for page, (rwx, user, value) in sorted(w["seen"].items()):
        want = model.get(page)
        va = WINDOW + page * PAGE
        if want is None or not want[0] & PROT_READ:
            problems.append(f"{va:#x} is mapped {rwx}, but the model has {'no mapping' if want is None else 'PROT_NONE'} there")
            continue
        if not user or rwx != ("rw-" if want[0] & PROT_WRITE else "r--"):
            problems.append(f"{va:#x} is mapped {rwx} {'user' if user else 'kernel'}; the model's prot is {want[0]}")
        if value != want[1]:
            problems.append(f"{va:#x} holds {value:#x}; the model wrote {want[1]:#x}")
    if problems:
        fail(f"before operation {marker} of {ops}, the grader's walk of the root against its own replay of the "
             "program's model:\n  " + "\n  ".join(problems[:12]))
    line = rf"^vmas: random: {ops} operations, (\d+) mismatches, checksum ([0-9a-f]{{16}}) proof=([0-9a-f]{{16}})$"
    m = run.search(line)
    if m is None:
        fail(f"missing: vmas's random line (no line matches /{line}/)")
    if int(m[1]) != 0 or int(m[2], 16) != checksum:
        fail(f"the program counted {m[1]} results that differ from its model; its checksum {m[2]} is not the "
             f"grader's replay ({checksum:016x}): some system call returned another result than the model's")
    run.expect_proof(m[3], checksum, "the checksum")
    if frames.get("after") != watch.frames_before[0]:
        fail(f"frames in use before the run {watch.frames_before[0]}, after every process was reaped "
             f"{frames.get('after')} (the allocator's bitmap, read from guest RAM): frames leaked")
    run.expect_outcome("success")


# ---- a fetch from a region without execute ----------------------------------------------------



@lab_test(5, "no_execute")
def test_no_execute(boot, kernel, arch):
    token = boot.fresh_token()

    def script(guest, watch):
        _, m = program_says(guest, watch, rf"vmas: noexec: calling ({HEX}) in the read-only page at ({HEX})",
                            "where it would call")
        target, at = int(m[1], 16), int(m[2], 16)
        # Where the kernel ends the process: its root still live, the page as the faults left it.
        end = guest.stop_at(KILL_STOP)
        w = end.walk(at, end.lower_root)
        return dict(target=target, at=at, perms=w.perms.rwx() if w.mapped else None,
                    record=read_records(end, kernel).get(1))

    run, watch, w = boot_vmas(boot, kernel, arch, token, "vmas:noexec", script)
    target, at = w["target"], w["at"]
    if target != at + derived(token, "vmas_noexec_word") * 4:
        watch.fail(run, f"vmas said it would call {target:#x}, not the offset of the page {at:#x} the token picks: "
                        "it is not the grader's program")
    region = w["record"].find(at) if w["record"] is not None else None
    fetches = [f for f in user_faults(run, arch, target) if ARCHES[arch].access(f.error or 0)[2]]
    if not fetches:
        watch.fail(run, f"QEMU's log shows no user-mode instruction fetch fault at {target:#x}: vmas's call into its "
                        "read-only page never faulted")
    if w["perms"] is not None or len(fetches) > 1:
        seen = [f"the grader's walk finds the page {at:#x} mapped {w['perms']} as the kernel kills vmas"
                if w["perms"] is not None else "",
                f"the CPU faulted {len(fetches)} times fetching {target:#x} (QEMU's log), the last time on the "
                "page present" if len(fetches) > 1 else ""]
        watch.fail(run, "the fault decision allowed an instruction fetch from a region without execute: vmas called "
                        f"{target:#x}, in its region {region if region is not None else '(none in its record)'} (its "
                        f"record, read from guest RAM), and {' and '.join(x for x in seen if x)}: the first fetch "
                        "must end the process ('execute in non-executable VMA'), not bring the page in")
    killed(run, watch, 1, "page fault", "execute in non-executable VMA", target)
    run.expect_outcome("success")


# ---- a cut image region keeps reading the file where it should --------------------------------

TABLE_PAGES = 6                  # user/programs/vmas.cpp's kTablePages
TABLE_WORDS = PAGE // 8          # per page


def table_word(i):
    """Word @p i of vmas_table (user/programs/vmas.cpp's table_word)."""
    return ((i + 1) * 0x9E3779B97F4A7C15 ^ 0x7661736D74626C) & MASK64


@lab_test(5, "image_cut")
def test_image_cut(boot, kernel, arch):
    token = boot.fresh_token()
    cut = pick_in(token, "cut page", 1, TABLE_PAGES - 2)
    elf = user_elf(kernel, arch, "vmas")
    table = user_symbol(kernel, arch, "vmas", "vmas_table").address
    seg = next(g for g in segments(elf) if g.vaddr <= table < g.vaddr + g.filesz)
    hole = table + cut * PAGE
    listing = syscall_number("VmaList")

    def script(guest, watch):
        snap = syscall_stops(guest, watch, {listing})   # after the cut and every read
        root = snap.lower_root
        pages = {}
        for p in range(TABLE_PAGES):
            w = snap.walk(table + p * PAGE, root)
            pages[p] = (w.perms.rwx(), snap.read_phys(w.pa, PAGE)) if w.mapped else None
        return dict(record=read_records(snap, kernel).get(1), pages=pages)

    run, watch, w = boot_vmas(boot, kernel, arch, token, f"vmas:cut:{cut}", script)
    record, pages = w["record"], w["pages"]
    if record_broken(record):
        watch.fail(run, f"{record_broken(record)}; after vmas's munmap in the middle of its image")
    with open(elf, "rb") as f:
        data = f.read()

    def file_offset(va):
        return seg.offset + (va - seg.vaddr)

    region_start = page_down(seg.vaddr)
    if pages[cut] is not None or (record is not None and record.find(hole) is not None):
        watch.fail(run, f"after munmap of page {cut} of vmas_table ({hole:#x}), "
                        + (f"the grader's walk finds it mapped {pages[cut][0]}" if pages[cut] is not None else
                           f"vmas's record (read from guest RAM) still covers it with {record.find(hole)}")
                        + ": munmap of one page of an image region must cut it out")
    for side, va in (("head", table + (cut - 1) * PAGE), ("tail", hole + PAGE)):
        v = record.find(va) if record is not None else None
        if v is None:
            watch.fail(run, f"after munmap of page {cut} of vmas_table ({hole:#x}), vmas's record (read from guest "
                            f"RAM) has no region at {va:#x}, in the cut region's {side}: the cut removed more than the "
                            "page")
        if v.kind != KIND_IMAGE or v.offset != file_offset(v.start):
            kept = (f": the {side} kept the file offset of the region's old start {region_start:#x}: cutting an image "
                    "region must move its tail's file offset by the bytes cut off (tail_of), or the tail's pages are "
                    "read from the region's old start" if side == "tail" and v.offset == file_offset(region_start)
                    else ": a cut region's file offset must follow its start")
            watch.fail(run, f"munmap of page {cut} of vmas_table ({hole:#x}) cut vmas's read-only image region in "
                            f"two, and the {side} left, {v} (vmas's record, read from guest RAM), starts at {v.start:#x} "
                            f"with file offset {v.offset:#x}, where the ELF file holds {v.start:#x}'s bytes at offset "
                            f"{file_offset(v.start):#x}{kept}")
    for p in range(TABLE_PAGES):
        va = table + p * PAGE
        if p == cut or pages[p] is None:
            continue
        perms, got = pages[p]
        want = data[file_offset(va):file_offset(va) + PAGE]
        if got != want:
            misplaced = programs.misplaced_bytes(data, "vmas", va, got)
            watch.fail(run, f"after the cut at page {cut} of vmas_table, its page {p} ({va:#x}, the "
                            f"{'head' if p < cut else 'tail'}, brought in after the cut) "
                            + (misplaced if misplaced else "holds other bytes than the ELF file has for it "
                               f"(offset {file_offset(va):#x})") + " (the grader's walk of vmas's root)")
        if perms != "r--":
            watch.fail(run, f"vmas_table's page {p} ({va:#x}) is mapped {perms}; its segment is read-only (r--)")
    slot = proof(token, cut) % TABLE_WORDS
    total = sum(table_word(p * TABLE_WORDS + slot) for p in range(TABLE_PAGES) if p != cut) & MASK64
    run.expect(rf"^vmas: cut: munmap of {hole:#x} -> 0; \d+ VMAs; 0 wrong words, sum {total:#x} "
               rf"proof={proof(token, total):016x}$", "vmas's cut line (every word read back as the file has it)")
    run.expect_outcome("success")


# ---- boundaries: each side of a decision the lab's functions make ---------------------------------

@lab_test(5, "brk_unaligned")
def test_brk_unaligned(boot, kernel, arch):
    token = boot.fresh_token()
    odd = pick_in(token, "brk odd bytes", 1, PAGE - 1)
    pages = pick_in(token, "brk odd pages", 2, 6)
    base = image_end(kernel, arch)
    listing = syscall_number("VmaList")
    end = base + odd + pages * PAGE

    def script(guest, watch):
        watch.asked_breaks = [base + odd, end]
        snap = syscall_stops(guest, watch, {listing})   # after both sbrk calls and the touches
        root = snap.lower_root
        mapped = pages_of(snap.dump(root), watch.layout)
        heap = {va: mapped[va].perms.rwx() for va in range(base, page_up(end), PAGE) if va in mapped}
        out = dict(record=read_records(snap, kernel).get(1), heap=heap)
        snap = syscall_stops(guest, watch, {listing})   # back down to the unaligned break
        w = snap.walk(base + odd - 1, root)
        out["shrunk"] = dict(record=read_records(snap, kernel).get(1), perms=w.perms.rwx() if w.mapped else None,
                             byte=snap.read_virt(base + odd - 1, 1, root)[0] if w.mapped else None)
        return out

    run, watch, w = boot_vmas(boot, kernel, arch, token, f"vmas:brkodd:{odd}:{pages}", script)
    record = w["record"]
    if record is None:
        watch.fail(run, "the grader could not read vmas's record (VMA list) from guest RAM at its vma_list call")
    heap = [v for v in record.around(base, page_up(end))]
    if record.brk == base + odd and end > page_up(base + odd):
        watch.fail(run, f"brk from a break that is not page aligned was refused: vmas moved the break to "
                        f"{base + odd:#x} ({odd} bytes into the heap's first page), then asked for {pages} pages more "
                        f"(up to {end:#x}); its record (read from guest RAM) still has the break at {record.brk:#x} and "
                        f"the heap as {record.describe(base, page_up(end))}: the heap region already covers the old "
                        f"break's page up to {page_up(base + odd):#x}, so the growth starts there (align_up of the old "
                        "break), not at the break itself (an unaligned region is refused, one from the break's page "
                        "overlaps)")
    if record.brk != end:
        rounded = (", the top of the break's page: the rounded top was stored as the break (it bounds the heap region "
                   "only)" if record.brk == page_up(end) else "")
        watch.fail(run, f"the break in vmas's record (read from guest RAM) is {record.brk:#x}, not the break asked "
                        f"for, {end:#x} (sbrk by {odd} bytes, then {pages} pages){rounded}; brk must keep the break "
                        "where it was asked, unaligned")
    if len(heap) != 1 or heap[0].start != base or heap[0].end != page_up(end) or heap[0].rwx() != "rw-":
        watch.fail(run, f"after the break moved to {base + odd:#x} and then {pages} pages up to {end:#x}, vmas's heap "
                        f"record (read from guest RAM) is {record.describe(base, page_up(end))}; expected one rw- heap "
                        f"region [{base:#x}, {page_up(end):#x}) (the growth from the page above the old break joins "
                        "the heap)")
    touched = {page_down(base + odd - 1)} | {page_down(base + odd + i * PAGE) for i in range(pages)}
    if any(w["heap"].get(va) != "rw-" for va in touched):
        watch.fail(run, f"the grader's walk finds the heap pages {({hex(k): v for k, v in w['heap'].items()})} mapped; "
                        f"vmas touched {', '.join(hex(va) for va in sorted(touched))}: expected each mapped rw-")
    shrunk = w["shrunk"]
    kept = shrunk["record"].around(base, page_up(end)) if shrunk["record"] is not None else []
    if [(v.start, v.end) for v in kept] != [(base, page_up(base + odd))] or shrunk["perms"] != "rw-" \
            or shrunk["byte"] != 0x5A:
        watch.fail(run, f"sbrk back down to the unaligned break {base + odd:#x} left vmas's heap as "
                        f"{shrunk['record'].describe(base, page_up(end)) if shrunk['record'] else '(unread)'} (its record, "
                        f"read from guest RAM), and the grader's walk finds the break's page {base:#x} "
                        + (f"mapped {shrunk['perms']} holding {shrunk['byte']:#x} at {base + odd - 1:#x}"
                           if shrunk["perms"] else "not mapped")
                        + f"; expected the heap [{base:#x}, {page_up(base + odd):#x}) with that page kept and the byte "
                          "0x5a vmas wrote there: a shrink keeps the page that holds the new break (align_up), and "
                          "frees only the pages above it")
    total = sum(i + 1 for i in range(pages))
    run.expect(rf"^vmas: brkodd: shrunk -> {end}; break {base + odd:#x}; byte 0x5a$", "vmas's line after the shrink")
    run.expect(rf"^vmas: brkodd: base {base:#x} break {base + odd:#x} -> {base} grow {pages} pages -> {base + odd}; "
               rf"break {end:#x}; \d+ VMAs; sum {total} proof={proof(token, total + end - base):016x}$",
               "vmas's brkodd line")
    run.expect_outcome("success")


@lab_test(5, "stack_jump")
def test_stack_jump(boot, kernel, arch):
    token = boot.fresh_token()
    pages = pick_in(token, "jump pages", 3, 12)
    top = fact(kernel, "user_stack_top")

    def script(guest, watch):
        snap, m = program_says(guest, watch, rf"vmas: jump: touched ({HEX}), (\d+) pages down",
                               "where its deep first touch was")
        low = int(m[1], 16)
        mapped = pages_of(snap.dump(snap.lower_root), watch.layout)
        return dict(low=low, record=read_records(snap, kernel).get(1),
                    stack=sorted(va for va in mapped if va < top and va >= page_down(low)))

    run, watch, w = boot_vmas(boot, kernel, arch, token, f"vmas:jump:{pages}", script)
    low, record = w["low"], w["record"]
    if record is None:
        watch.fail(run, "the grader could not read vmas's record (VMA list) from guest RAM after its deep touch")
    stacks = [v for v in record.vmas if v.kind == KIND_STACK]
    whole = [v for v in stacks if v.start <= page_down(low) and v.end == top]
    if len(stacks) != 1 or not whole:
        gaps = [(a.end, b.start) for a, b in zip(stacks, stacks[1:]) if a.end < b.start]
        watch.fail(run, f"a first touch of the stack at {low:#x}, {pages} pages below the page the program ran on, "
                        f"left the stack's record (read from guest RAM) as {len(stacks)} region(s): "
                        f"{', '.join(str(v) for v in stacks[:4])}"
                        + (f", with a hole [{gaps[0][0]:#x}, {gaps[0][1]:#x}) between them" if gaps else "")
                        + ": growing the stack down to a fault must extend the stack's region from the faulting page "
                          "up to where it starts (grow_stack), not record only the page that faulted")
    if page_down(low) not in w["stack"]:
        watch.fail(run, f"after vmas's first touch at {low:#x}, the grader's walk does not find its page mapped")
    total = sum((i + 1) & 0xff for i in range(pages)) + 0x4a
    run.expect(rf"^vmas: jump: back, \d+ VMAs, sum {total} proof={proof(token, total):016x}$", "vmas's jump line")
    run.expect_outcome("success")


@lab_test(5, "merge_back")
def test_merge_back(boot, kernel, arch):
    token = boot.fresh_token()
    page = pick_in(token, "merge page", 1, TABLE_PAGES - 2)
    elf = user_elf(kernel, arch, "vmas")
    table = user_symbol(kernel, arch, "vmas", "vmas_table").address
    seg = next(g for g in segments(elf) if g.vaddr <= table < g.vaddr + g.filesz)
    listing = syscall_number("VmaList")
    in_area = mmap_area(kernel)

    bss_page = page_down(user_symbol(kernel, arch, "vmas", "vmas_bss").address + 599 * 8)
    data_seg = next(g for g in segments(elf) if g.vaddr <= bss_page < g.vaddr + g.memsz)
    if bss_page < page_up(data_seg.vaddr + data_seg.filesz):
        raise AssertionError(f"vmas_bss's last page {bss_page:#x} holds file bytes: rebuild user/programs/vmas")

    def script(guest, watch):
        snap = syscall_stops(guest, watch, {listing})   # after every merge and the table's reads
        root = snap.lower_root
        record = read_records(snap, kernel).get(1)
        b = snap.walk(bss_page, root)
        bss = (b.perms.rwx(), snap.read_phys(b.pa, PAGE)) if b.mapped else None
        pages = {}
        for p in range(TABLE_PAGES):
            w = snap.walk(table + p * PAGE, root)
            pages[p] = snap.read_phys(w.pa, PAGE) if w.mapped else None
        anon = [v for v in (record.vmas if record else []) if in_area(v.start) and v.kind == KIND_ANONYMOUS]
        return dict(record=record, pages=pages, anon=anon, bss=bss)

    run, watch, w = boot_vmas(boot, kernel, arch, token, f"vmas:merge:{page}", script)
    record, anon = w["record"], w["anon"]
    if record is None:
        watch.fail(run, "the grader could not read vmas's record (VMA list) from guest RAM at its vma_list call")
    if record_broken(record):
        watch.fail(run, f"{record_broken(record)}; after vmas's merges, at its vma_list call")
    said = run.search(rf"^vmas: merge: at ({HEX}):")
    # (where vmas's mmap landed: its line, else the lowest anonymous region of the mmap area)
    at = int(said[1], 16) if said else min((v.start for v in anon), default=0)
    first = [v for v in anon if v.start < at + 4 * PAGE and at < v.end]
    if [(v.start, v.end, v.rwx()) for v in first] != [(at, at + 4 * PAGE, "rw-")]:
        watch.fail(run, f"mprotect of the middle of three rw- pages at {at:#x} to r-- and back to rw- left vmas's record "
                        f"(read from guest RAM) as {record.describe(at, at + 4 * PAGE)}; expected one region "
                        f"[{at:#x}, {at + 4 * PAGE:#x}) rw-: three neighbours with the same permissions are one region "
                        "again (merge_range: after a merge, compare the merged region with its next neighbour too)")
    gap = at + 8 * PAGE
    second = [v for v in anon if v.start < gap + 3 * PAGE and gap < v.end]
    if [(v.start, v.end, v.rwx()) for v in second] != [(gap, gap + 3 * PAGE, "rw-")]:
        watch.fail(run, f"mmap of one rw- page into the one-page gap at {gap + PAGE:#x} between two rw- regions left "
                        f"vmas's record (read from guest RAM) as {record.describe(gap, gap + 3 * PAGE)}; expected one "
                        f"region [{gap:#x}, {gap + 3 * PAGE:#x}): a new region that touches both neighbours joins both "
                        "(VmaSet::insert)")
    start, end = page_down(seg.vaddr), page_up(seg.vaddr + seg.memsz)
    file_end = seg.vaddr + seg.filesz    # the segment's file bytes end here
    image = record.around(start, end)
    hole = table + page * PAGE
    short = [v for v in image if v.file_size < min(file_end, v.end) - v.start]
    if short:
        v = short[0]
        watch.fail(run, f"vmas made page {page} of vmas_table ({hole:#x}) rw- and then r-- again, cutting its read-only "
                        f"image region in three and joining it back: the record (read from guest RAM) now holds {v}, "
                        f"{v.file_size:#x} file bytes where the ELF file has {min(file_end, v.end) - v.start:#x} for "
                        f"[{v.start:#x}, {v.end:#x}): the file bytes of the part joined on the right were dropped "
                        "(merged() must add both parts' file sizes), so its pages come in as zeros")
    if [(v.start, v.end) for v in image] != [(start, end)] or \
            any(v.offset != seg.offset - (seg.vaddr - start) for v in image):
        watch.fail(run, f"page {page} of vmas_table ({hole:#x}) made rw- and back to r-- left the read-only image "
                        f"region as {record.describe(start, end)} (read from guest RAM); expected the segment's one "
                        f"region [{start:#x}, {end:#x}) with file offset {seg.offset - (seg.vaddr - start):#x}: the "
                        "parts must be joined back (mergeable image neighbours: file offsets that follow on)")
    with open(elf, "rb") as f:
        data = f.read()
    for p in range(TABLE_PAGES):
        va = table + p * PAGE
        want = data[seg.offset + va - seg.vaddr:seg.offset + va - seg.vaddr + PAGE]
        got = w["pages"][p]
        if got is not None and got != want:
            what = "zeros" if got == bytes(PAGE) else "other bytes than the ELF file has for it"
            watch.fail(run, f"after page {page} of vmas_table was made rw- and back to r--, its page {p} ({va:#x}, "
                            f"brought in after) holds {what} (the grader's walk of vmas's root): an image region cut "
                            "and joined back must still read its file bytes at their own offsets")
    tail = record.find(bss_page)
    if tail is None or tail.kind != KIND_IMAGE or tail.file_size > tail.end - tail.start \
            or (tail.start >= data_seg.vaddr + data_seg.filesz and tail.file_size != 0):
        watch.fail(run, f"mprotect(PROT_READ) of {bss_page:#x}, a page of vmas's data segment past its file bytes (they "
                        f"end at {data_seg.vaddr + data_seg.filesz:#x}), cut its image region there; the part from "
                        f"{bss_page:#x} is {tail or 'gone'} in the record (read from guest RAM)"
                        + (f": {tail.file_size:#x} file bytes for a region that starts past them: a cut past the file "
                           "bytes leaves the tail none (tail_of), or its pages come in with bytes from past the file"
                           if tail is not None and tail.file_size else ""))
    if w["bss"] is None or w["bss"][0] != "r--" or w["bss"][1] != bytes(PAGE):
        watch.fail(run, f"vmas_bss's page {bss_page:#x}, made r-- before it was touched and then read, is "
                        + (f"mapped {w['bss'][0]} holding {'zeros' if w['bss'][1] == bytes(PAGE) else 'bytes that are not zero'}"
                           if w["bss"] else "not mapped")
                        + " in the grader's walk: expected r-- and zeros (bss past the file's bytes)")
    run.expect(rf"^vmas: merge: bss page {bss_page:#x} read-only -> 0, word 0x0$", "vmas's bss line")
    slot = derived(token, "vmas_cut_slot", page)
    total = sum(table_word(p * TABLE_WORDS + slot) for p in range(TABLE_PAGES)) & MASK64
    m = run.expect(rf"^vmas: merge: at {at:#x}: 0 0 0 (\d+) (\d+) (\d+) 0 0; \d+ VMAs; 0 wrong words, "
                   rf"sum ({HEX}) proof=([0-9a-f]{{16}})$", "vmas's merge line (every call succeeded)")
    if int(m[4], 16) != total:
        watch.fail(run, f"vmas's table words sum to {m[4]}, the ELF file's to {total:#x}")
    run.expect_proof(m[5], total, "the table's words")
    run.expect_outcome("success")


@lab_test(5, "exec_only")
def test_exec_only(boot, kernel, arch):
    token = boot.fresh_token()
    fn = user_symbol(kernel, arch, "vmas", "vmas_xonly").address

    def script(guest, watch):
        snap, m = program_says(guest, watch, rf"vmas: xonly: mprotect of ({HEX}) to --x -> (-?\d+)",
                               "that it made its page execute-only")
        at = int(m[1], 16)
        w = snap.walk(at, snap.lower_root)
        return dict(at=at, result=int(m[2]), mapped=w.mapped, perms=w.perms.rwx() if w.mapped else None,
                    user=w.mapped and w.perms.user, record=read_records(snap, kernel).get(1))

    run, watch, w = boot_vmas(boot, kernel, arch, token, "vmas:xonly", script)
    at, record = w["at"], w["record"]
    if at != fn:
        watch.fail(run, f"vmas said it made {at:#x} execute-only, not vmas_xonly's page {fn:#x}: not the grader's program")
    region = record.find(at) if record is not None else None
    if region is None or region.rwx() != "--x":
        watch.fail(run, f"after mprotect(PROT_EXEC) of {at:#x}, vmas's record (read from guest RAM) has "
                        f"{region or 'no region'} there; expected an execute-only (--x) region")
    if not w["mapped"] or "x" not in w["perms"] or "w" in w["perms"] or not w["user"]:
        watch.fail(run, f"mprotect(PROT_EXEC) of {at:#x}, a text page already brought in, left it "
                        + (f"mapped {w['perms']}" if w["mapped"] else "invalid to the MMU (held, as under PROT_NONE)")
                        + " in the grader's walk of vmas's root: an execute-only region allows an access, so its pages "
                          "stay present, executable and readable to the MMU (the page's permissions are "
                          "mapped_page_perms() of the region, not its bare permissions)")
    said = run.search(rf"^vmas: xonly: reading the execute-only page at ({HEX})$")
    x = int(said[1], 16) if said else None
    k = parse_kills(run).get(1)
    if x is not None and k is not None and k.address == x + 8:
        watch.fail(run, f"a read of an execute-only region was refused: vmas read {x + 8:#x}, in a --x page it mapped "
                        f"and never touched, and the kill says '{k.reason}': a region that allows any access allows "
                        "reads (every page the MMU uses is readable: permits() refuses only what the region denies)")
    run.expect(rf"^vmas: xonly: called {at:#x} again proof={proof(token, at):016x}$", "vmas's second call")
    run.expect(r"^vmas: xonly: read 0x0$", "vmas's read of an execute-only page (zeros)")
    if not user_faults(run, arch, x + 8):
        watch.fail(run, f"QEMU's log shows no user-mode fault at {x + 8:#x}: the execute-only page was never read")
    run.expect_outcome("success")
