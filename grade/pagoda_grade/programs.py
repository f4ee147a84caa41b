"""The user programs the grader relies on: its own build of user/, never the submission's.

Lab 3 and later run user programs (user/programs/) and read their symbols (spin_count, the
probes' instructions, forktree's statuses...). A submission could edit a program (spin that
yields instead of spinning) or embed other bytes under its name; so the grader builds user/
from its own copy and

  - reads every program's symbols and segments from that build (user_elf()),
  - checks, before a test of a lab with processes boots anything, that the kernel embeds exactly
    those programs: for each one the kernel's table has (symbols pagoda_program_<name>_begin and
    _end, cmake/user.cmake), the ELF between them must load the same image as the grader's (entry
    point and every loadable segment: addresses, sizes, permissions, bytes) - embedded_problems(),
  - and, at the first stop after the processes are made, compares the pages a process root maps
    with the program's own bytes (image_problems()), so a kernel that loads something else than
    what it embeds is caught too.

Where the grader's build is:
  ./pagoda grade          the tree's own build (build/<arch>/user/<arch>/), which the kernel under
                          test embeds; with --kernel ELF the grader builds that target alone;
  --batch, Gradescope,    the instructor's copy, built once per batch in a build directory of its
  Classroom               own (tools/pagoda/batch.py: user_programs_build), given to every
                          submission's grader in PAGODA_GRADE_USER_DIR.
The grader's source tree (kernel/lib/abi.hpp: the system-call numbers those programs use) is
PAGODA_GRADE_SOURCE, or the tree the grader runs from.
"""
import functools
import os
import re
import struct

from . import symbols

from pagoda_pt.model import PAGE_SIZE_4K

USER_DIR_ENV = "PAGODA_GRADE_USER_DIR"
# The first lab whose tests run user programs (lab 3, per-process roots): its tests, and every
# later lab's, boot nothing unless the kernel embeds the grader's programs.
FIRST_LAB = 3
SOURCE_ENV = "PAGODA_GRADE_SOURCE"
_BEGIN = re.compile(r"^pagoda_program_([a-z][a-z0-9_]*)_begin$")
# Bytes of a program compared per page at the first stop (the whole page when it is inside a segment).
PAGE = PAGE_SIZE_4K


def grader_source():
    """The root of the grader's own source tree (what its user programs are built from)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.environ.get(SOURCE_ENV) or here


def abi_header():
    """The grader's kernel/lib/abi.hpp: the system-call numbers its user programs were built with."""
    return os.path.join(grader_source(), "kernel", "lib", "abi.hpp")


def directory(arch):
    """The directory of the grader's user-program ELFs for @p arch (<name>.elf, with symbols)."""
    given = os.environ.get(USER_DIR_ENV)
    if given:
        return given
    return os.path.join(grader_source(), "build", arch, "user", arch)


def program_elf(arch, name):
    """The grader's ELF of user program @p name; AssertionError when it has none."""
    path = os.path.join(directory(arch), f"{name}.elf")
    if not os.path.exists(path):
        raise AssertionError(f"the grader has no user program {name} for {arch}: {path} is missing (its own build of "
                             f"user/programs/{name}.cpp)")
    return path


def names(arch):
    """The programs of the grader's build."""
    d = directory(arch)
    if not os.path.isdir(d):
        return []
    return sorted(f[:-4] for f in os.listdir(d) if f.endswith(".elf"))


@functools.lru_cache(maxsize=256)
def _file_image(path):
    with open(path, "rb") as f:
        return image(f.read(), path)


def image(data, what="the program"):
    """What loading an ELF gives: (entry, ((vaddr, memsz, flags, file bytes), ...)). Raises
    symbols.ElfError for a damaged file."""
    segs = symbols.parse_segments(data, what)
    entry, = struct.unpack_from("<Q", data, 0x18)
    return entry, tuple((s.vaddr, s.memsz, s.flags, bytes(data[s.offset:s.offset + s.filesz])) for s in segs)


def embedded(kernel):
    """{name: bytes} of the programs @p kernel embeds (its table, read from the ELF file)."""
    table = symbols.symbols(kernel)
    out = {}
    for sym in table:
        m = _BEGIN.match(sym)
        if not m:
            continue
        begin = table[sym]      # (a name two symbols share is refused: symbols.Addresses)
        end = table.get(f"pagoda_program_{m[1]}_end")
        if end is None or end < begin:
            out[m[1]] = None
            continue
        out[m[1]] = symbols.read_image(kernel, begin, end - begin) if end > begin else b""
    return out


def _describe_difference(mine, theirs):
    (e1, s1), (e2, s2) = mine, theirs
    if e1 != e2:
        return f"its entry point is {e2:#x}, the grader's {e1:#x}"
    if len(s1) != len(s2):
        return f"it has {len(s2)} loadable segments, the grader's {len(s1)}"
    for (va1, mem1, fl1, b1), (va2, mem2, fl2, b2) in zip(s1, s2):
        if (va1, mem1, fl1) != (va2, mem2, fl2):
            return (f"its segment at {va2:#x} ({mem2:#x} bytes, flags {fl2}) differs from the grader's at {va1:#x} "
                    f"({mem1:#x} bytes, flags {fl1})")
        if b1 != b2:
            at = next((i for i in range(min(len(b1), len(b2))) if b1[i] != b2[i]), min(len(b1), len(b2)))
            return f"its bytes differ at {va1 + at:#x}"
    return "it differs"


@functools.lru_cache(maxsize=16)
def embedded_problems(kernel, arch):
    """Sentences naming every way the programs @p kernel embeds differ from the grader's build
    (a program missing, added, or with another image); () when they are the same."""
    mine = names(arch)
    if not mine:
        return (f"the grader has no build of its user programs for {arch} ({directory(arch)} is empty or missing)",)
    try:
        theirs = embedded(kernel)
    except (OSError, AssertionError, symbols.ElfError) as e:
        return (f"the grader cannot read the kernel's table of user programs: {e}",)
    problems = []
    for name in mine:
        if name not in theirs:
            problems.append(f"{name} is missing")
            continue
        data = theirs[name]
        try:
            got = image(data, f"the embedded {name}") if data is not None else None
        except symbols.ElfError as e:
            problems.append(f"{name} is not a whole ELF file ({e})")
            continue
        want = _file_image(program_elf(arch, name))
        if got != want:
            problems.append(f"{name}: {_describe_difference(want, got) if got else 'no end symbol'}")
    for name in sorted(set(theirs) - set(mine)):
        problems.append(f"{name} is not one of the grader's programs")
    if not problems:
        return ()
    return ("the kernel embeds user programs that are not the grader's own build of user/ ("
            + "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
            + "): the programs a test runs, and the addresses it reads in them, come from the grader's copy of "
            "user/ (user/, kernel/lib/ and cmake/user.cmake make them; rebuild, and leave user/ as the lab gives it)",)


# Fewer bytes that are not zero than this, and a frame's bytes are too plain to say where in a
# file they come from (file_place()).
PLAIN_BYTES = 16


def file_place(data, piece):
    """The one offset at which @p piece (the bytes a frame holds) occurs in @p data (a program's
    ELF file), or None: when they occur nowhere, more than once, or are too plain to place (fewer
    than PLAIN_BYTES bytes that are not zero)."""
    if sum(1 for b in piece if b) < PLAIN_BYTES:
        return None
    at = data.find(piece)
    if at < 0 or data.find(piece, at + 1) >= 0:
        return None
    return at


def misplaced_bytes(data, name, va, piece):
    """A sentence when @p piece, the bytes a frame holds for @p va (in a loadable segment of
    program @p name, whose ELF file is @p data: the copy the kernel loads from), are the file's own
    bytes from another offset than @p va's: the page was filled from the wrong place in the file.
    None otherwise (they are the right bytes, or none of the file's)."""
    try:
        segs = symbols.parse_segments(data, name)
    except symbols.ElfError:
        return None
    seg = next((g for g in segs if g.vaddr <= va < g.vaddr + g.filesz), None)
    found = file_place(data, piece)
    if seg is None or found is None:
        return None
    want = seg.offset + (va - seg.vaddr)
    if found == want:
        return None
    region = seg.offset - (seg.vaddr % PAGE)   # the file offset of the segment's first page
    gap = want - found
    found_va = seg.vaddr + (found - seg.offset)  # the address the found bytes belong to
    first_page = seg.vaddr & ~(PAGE - 1)
    if seg.offset <= found < seg.offset + seg.filesz and found_va < first_page + PAGE <= va:
        how = (f"the bytes of {found_va:#x}, in its segment's first page: the page was filled from the segment's first "
               "file bytes, as every page of the segment may be (the file offset did not advance with the page when "
               "the segment was copied page by page)")
    elif gap == region:
        how = (f"exactly the file offset of its segment's first page ({region:#x}) too early: the page was read from "
               "the file as if its region started at offset 0 (the region's file offset left out when the page was "
               "brought in)")
    else:
        how = (f"{abs(gap):#x} bytes {'before' if gap > 0 else 'after'} them: the page was filled from the wrong place "
               "in the file (a region's file offset not kept with its start: left out when a page is brought in, or "
               "not moved when a region is cut)")
    return (f"the frame holds {name}'s file bytes from offset {found:#x} (the ELF file the kernel embeds), where "
            f"{va:#x}'s bytes are at offset {want:#x}, {how}")


def never_written(piece):
    """A sentence when @p piece (the bytes a frame holds where a program's image belongs) is one
    byte over and over: nothing was written into the frame (zeros: zeroed and no more; any other
    byte: what the frame held before, such as the grader's fill of free frames), so the image's
    bytes were never copied or loaded into it. None otherwise."""
    if len(piece) < PLAIN_BYTES or piece.count(piece[:1]) != len(piece):
        return None
    return (f"the frame holds the byte {piece[0]:#04x} throughout the image's part of the page: the program's bytes "
            "were never written into it (a fork's copy that copied nothing, or a page mapped before it was filled)")


def bytes_origin(arch, name, va, piece):
    """Where the bytes @p piece that a frame holds at @p va (in program @p name's image) come
    from, as a sentence, or None when the grader cannot tell: another file offset of the same
    program (misplaced_bytes()), one byte throughout (never_written()), or another of the
    grader's programs (the file offset there). Read against the grader's own builds, which the
    kernel embeds byte for byte (embedded_problems())."""
    try:
        with open(program_elf(arch, name), "rb") as f:
            data = f.read()
    except (OSError, AssertionError):
        return None
    said = misplaced_bytes(data, name, va, piece) or never_written(piece)
    if said:
        return said
    for other in names(arch):
        if other == name:
            continue
        try:
            with open(program_elf(arch, other), "rb") as f:
                found = file_place(f.read(), piece)
        except (OSError, AssertionError):
            continue
        if found is not None:
            return (f"the frame holds {other}'s file bytes from offset {found:#x}, another program's: the page was "
                    f"filled from another program's image than {name}'s")
    return None


def read_only_pages(arch, name):
    """[(page, [(lo, hi, bytes)])] of the read-only loadable segments of the grader's program
    @p name: for each page, the byte ranges of the image in it and what they must hold."""
    entry, segs = _file_image(program_elf(arch, name))
    pages = {}
    for vaddr, memsz, flags, data in segs:
        if flags & 2:   # PF_W: a process may write it
            continue
        for page in range(vaddr & ~(PAGE - 1), vaddr + memsz, PAGE):
            lo, hi = max(page, vaddr), min(page + PAGE, vaddr + memsz)
            pages.setdefault(page, []).append((lo, hi, data[lo - vaddr:hi - vaddr].ljust(hi - lo, b"\0")))
    return sorted(pages.items())


class ImageWatch:
    """Checked at every stop the grader takes in a process (Guest.stop_hooks): the root live then
    runs the grader's own program. Each read-only page of the program's image (text, rodata) that
    the root maps read-only must hold the program's bytes; a page is compared once per root and
    frame. The program's name is the one the kernel publishes for the root (its root registry);
    a root that publishes no known program's name is not checked here (the tests that rely on a
    program find its root by that name).

    A difference is recorded in @p problems (Booter.watch_problems), not raised: a kernel bug
    makes the same sight (a frame freed while still mapped and reused; exec keeping the program
    before it; a wrong frame mapped), and the test's own checks, which name such bugs, must
    speak first. The test fails with the recorded problem when nothing else fails it, or heads
    its failure when the boot ended before its checks (causes.headline), so a kernel that runs a
    forged program still scores nothing where it ran one. The sentence says what the grader can
    tell apart: a frame that held the program's bytes at an earlier stop and changed while
    mapped, another grader program's bytes under this program's name, or bytes of no program."""

    def __init__(self, arch, names_of, kernel_roots, problems=None):
        self.arch = arch
        self.names_of = names_of          # snap -> {root: program name}
        self.kernel_roots = kernel_roots
        self.known = set(names(arch))
        self.checked = set()              # (root, name, page, frame) compared and equal
        self.bad = set()                  # (root, name, page, frame) compared, different and recorded
        self.loaded = {}                  # frame -> (name, page): seen holding that page's bytes
        self._embedded = None             # {name: ELF file bytes} the kernel embeds, read at the first difference
        self.problems = [] if problems is None else problems

    def __call__(self, snap):
        root = snap.lower_root
        if root in self.kernel_roots:
            return
        name = self.names_of(snap).get(root)
        if name not in self.known:
            return
        for page, pieces in read_only_pages(self.arch, name):
            w = snap.walk(page, root)
            key = (root, name, page, w.pa)
            if not w.mapped or (w.perms and w.perms.write) or key in self.checked or key in self.bad:
                continue
            for lo, hi, want in pieces:
                got = snap.read_phys(w.pa + (lo - page), hi - lo)
                if got != want:
                    at = next(i for i in range(len(want)) if got[i] != want[i])
                    self.bad.add(key)
                    self.problems.append(self._describe(snap, root, name, page, w.pa, lo + at, got[at:at + 8],
                                                        want[at:at + 8], (lo, got)))
                    break
            else:
                self.checked.add(key)
                self.loaded[w.pa] = (name, page)

    def _describe(self, snap, root, name, page, frame, va, got, want, piece=None):
        where = (f"the process {name} (root {root:#x}) maps its read-only page {page:#x} to frame {frame:#x}, which "
                 f"holds {got.hex()} at {va:#x} where the grader's build of {name} has {want.hex()}")
        if self.loaded.get(frame) == (name, page):
            return (f"{where}, and the grader saw {name}'s own bytes in that frame at an earlier stop: the frame "
                    "changed while a process still maps it read-only (a frame freed while it is still mapped, and "
                    "reused?)")
        misplaced = self._misplaced(snap, name, piece) if piece else None
        if misplaced:
            return f"{misplaced}: {where}"
        unwritten = never_written(piece[1]) if piece else None
        if unwritten:
            return f"{where}: {unwritten}"
        other = self._other_program(snap, name, page, frame)
        if other:
            return (f"{where}: the frame holds {other}'s page {page:#x} instead, so the process runs {other}'s image "
                    f"under {name}'s name (exec kept the program before it, or the kernel loaded another program "
                    f"than the one asked): it does not run the grader's program {name}")
        return (f"{where}: it does not run the grader's program (user programs come from the grader's copy of "
                "user/), or the kernel mapped a frame that holds something else")

    def _misplaced(self, snap, name, piece):
        """misplaced_bytes() of @p piece ((va, bytes) a frame holds) against the copy of @p name the
        kernel embeds (read from the kernel's ELF file; the grader checked that it loads the same
        image as its own build), or None."""
        kernel = getattr(getattr(snap, "guest", None), "kernel", None)
        if self._embedded is None:
            try:
                self._embedded = embedded(kernel) if kernel else {}
            except (OSError, AssertionError, symbols.ElfError):
                self._embedded = {}
        data = self._embedded.get(name)
        return misplaced_bytes(data, name, piece[0], piece[1]) if data else None

    def _other_program(self, snap, name, page, frame):
        """Another of the grader's programs whose read-only page @p page holds what @p frame holds
        (every byte of its image there), or None."""
        for other in sorted(self.known - {name}):
            pieces = dict(read_only_pages(self.arch, other)).get(page)
            if pieces and all(snap.read_phys(frame + (lo - page), hi - lo) == want for lo, hi, want in pieces):
                return other
        return None


def image_problems(snap, runs, name, arch):
    """What differs between what @p runs (a dump of a process root, before the process ran)
    map and the grader's ELF of program @p name, compared byte for byte inside each loadable
    segment (bss as zeros); [] when every mapped page of the image holds the program's own
    bytes. Pages not mapped yet are skipped (a lazy loader maps them at the first touch)."""
    import bisect
    try:
        entry, segs = _file_image(program_elf(arch, name))
    except AssertionError as e:
        return [str(e)]
    starts = [r.va_start for r in runs]
    for vaddr, memsz, flags, data in segs:
        first, end = vaddr & ~(PAGE - 1), vaddr + memsz
        for page in range(first, end, PAGE):
            i = bisect.bisect_right(starts, page) - 1
            if i < 0 or not runs[i].va_start <= page < runs[i].va_end:
                continue
            frame = runs[i].pa_start + (page - runs[i].va_start)
            lo, hi = max(page, vaddr), min(page + PAGE, end)
            want = data[lo - vaddr:hi - vaddr].ljust(hi - lo, b"\0")
            got = snap.read_phys(frame + (lo - page), hi - lo)
            if got != want:
                at = next(i for i in range(len(want)) if got[i] != want[i])
                head = (f"{name}'s page {page:#x} (frame {frame:#x}) holds {got[at:at + 8].hex()} at {lo + at:#x}, "
                        f"where the grader's build of {name} has {want[at:at + 8].hex()}")
                origin = bytes_origin(arch, name, lo, got)
                return [f"{head}: {origin}" if origin else f"{head}: the process was not loaded from the grader's program"]
    return []
