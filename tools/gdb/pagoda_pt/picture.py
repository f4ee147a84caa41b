"""The moment as a picture: one Snapshot of the machine (a JSON-able record) and one renderer of
it as a self-contained HTML page (inline CSS and a few lines of script; nothing fetched).

Who takes one: the grader at a failing test's stop, from the guest RAM it kept (harness.py's
Booter.picture: line 1 of the failure and QEMU's fault marked); `./pagoda run --memview` and
GDB's `memview-html`, from a live guest. Each goes through take() (memview: from_census(), its
census already taken) over read_phys(pa, size) and symbol(name), which reads the kernel's records
with the readers GDB's commands and the grader use:

    frames      the frame census (frames.take_census): each frame's owner, the processes' roots,
                their tables and user pages, the frames two roots share (copy-on-write)
    swap        the swap census (swap.take_swap_census): the slots in use and their holders
    VMAs        each process's record (procs.read_procs)
    temp map    the temp-map area's slots (tempmap.read_temp_area)
    CPUs        each CPU's mode, PC and root (isa.cpus_of(), from registers its source reads: the
                grader's gdbstub client, GDB's threads), when the source gives them

    take(arch, read_phys, symbol, title, cause, fault)   the Snapshot (a part the kernel does not
                                                         have, or that cannot be read, is absent
                                                         and its reason in notes)
    from_census(arch, read_phys, symbol, census, ...)    the same around a census already taken
    to_html(snapshot)                                    the page
"""
from __future__ import annotations

import html
import json
import re
import struct
from dataclasses import asdict, dataclass, field
from typing import Optional

from . import contract as C, frames, procs, roots, swap
from .image import CensusError, kernel_image
from .tempmap import read_temp_area
from .model import PAGE_SIZE_4K

MAP_CELLS = 8192        # the frame map's cells at most (128 a row)
MAX_RUNS = 256          # user-page runs shown per process
MAX_ROWS = 256          # rows of the shared-frame and swap tables
ROOT_MASK = 0x0000_FFFF_FFFF_F000      # a root's frame, without CR3's or TTBR's flags and ASID


@dataclass
class Fault:
    address: Optional[int]      # the faulting data address (CR2, FAR), None for a fault without one
    pc: int
    user: bool                  # taken in user mode
    text: str                   # QEMU's log line, described
    root: Optional[int] = None  # the root the CPU used (CR3, TTBR0) when QEMU's log says
    which: str = "The fault"    # which fault of the run this is, as the page's words

    def owner(self, root: int) -> bool:
        """Whether the process with @p root took the fault (every one when the root is unknown)."""
        return self.root is None or self.root & ROOT_MASK == root & ROOT_MASK


@dataclass
class Run:
    """A run of user pages: consecutive addresses on consecutive frames, the same permissions."""
    va: int
    pa: int
    pages: int
    rwx: str
    shared: bool                # its frames are mapped by other roots too (copy-on-write)


@dataclass
class Proc:
    pid: int
    name: str
    root: int
    tables: int                 # page-table frames of its user half (the root included)
    pages: int                  # user pages it maps
    shared: int                 # of them, frames other roots map too
    runs: list = field(default_factory=list)       # Run: the first MAX_RUNS, and the faulting page's
    vmas: list = field(default_factory=list)       # [start, end, "rwx kind"]
    swapped: int = 0            # its swap entries


@dataclass
class Snapshot:
    title: str
    arch: str
    cause: str = ""                 # line 1 of the failure (empty from a live guest)
    fault: Optional[Fault] = None
    fault_frame: Optional[int] = None   # the frame the faulting address is on, when a root maps it
    first: int = 0                  # physical address of the map's first frame
    frames_per_cell: int = 1
    cells: str = ""                 # the map: one letter per cell (frames.py's letters)
    counts: dict = field(default_factory=dict)     # owner -> frames
    processes: list = field(default_factory=list)  # Proc
    shared: list = field(default_factory=list)     # [frame, refs, ["pid P at VA", ...]]
    swap: Optional[dict] = None     # {slots, in_use, rows: [[slot, count, [holders], flag]]}
    temp: Optional[list] = None     # [[slot, va, frame]] of the temp-map area
    problems: list = field(default_factory=list)   # what the censuses found wrong
    notes: list = field(default_factory=list)      # what could not be read, and why
    cpus: list = field(default_factory=list)       # Cpu, when the source read them

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def _runs(pages, shared_frames) -> list:
    out = []
    for p in sorted(pages, key=lambda p: p.va):
        rwx = "r" + ("w" if p.writable else "-") + ("x" if p.executable else "-") if not p.held else "---"
        shared = p.pa // PAGE_SIZE_4K in shared_frames
        last = out[-1] if out else None
        if last and last.va + last.pages * PAGE_SIZE_4K == p.va and last.pa + last.pages * PAGE_SIZE_4K == p.pa \
                and last.rwx == rwx and last.shared == shared:
            last.pages += 1
        else:
            out.append(Run(p.va, p.pa, 1, rwx, shared))
    return out


def take(arch: str, read_phys, symbol, title: str, cause: str = "", fault: Optional[Fault] = None) -> Snapshot:
    """The Snapshot of the machine whose RAM @p read_phys reads, with the kernel's @p symbol."""
    read_phys = frames.cached(read_phys)
    try:
        census = frames.take_census(arch, read_phys, symbol, max_user_pages=frames.AUDIT_MAX_USER_PAGES)
    except (frames.CensusError, roots.RegistryError, ValueError, struct.error) as err:
        return Snapshot(title, arch, cause, fault, notes=[f"the frame census could not be taken: {err}"])
    return from_census(arch, read_phys, symbol, census, title, cause, fault)


def from_census(arch: str, read_phys, symbol, census, title: str, cause: str = "",
                fault: Optional[Fault] = None) -> Snapshot:
    """take() around a frame census already taken (@p census: frames.take_census's, of this moment)."""
    snap = Snapshot(title, arch, cause, fault)
    snap.first = census.first * PAGE_SIZE_4K
    snap.frames_per_cell, snap.cells = frames.map_cells(census, MAP_CELLS)
    snap.counts = {o: census.count(o) for o in frames.OWNERS}
    snap.problems = list(census.problems)
    shared_frames = {i for i, o in enumerate(census.owner) if o == frames.SHARED}
    for i in sorted(shared_frames)[:MAX_ROWS]:
        snap.shared.append([i * PAGE_SIZE_4K, census.refs[i],
                            [f"pid {m.pid} at {p.va:#x}" for m, p in census.mappings.get(i, [])]])
    page = fault.address & ~(PAGE_SIZE_4K - 1) if fault is not None and fault.address is not None else None
    for m in census.processes:
        shared = sum(1 for p in m.pages if p.pa // PAGE_SIZE_4K in shared_frames)
        runs = _runs(m.pages, shared_frames)      # (the first MAX_RUNS, and the faulting page's)
        runs = runs[:MAX_RUNS] + [r for r in runs[MAX_RUNS:] if page is not None and 0 <= page - r.va < r.pages * PAGE_SIZE_4K]
        snap.processes.append(Proc(m.pid, m.name, m.root, len(m.tables), len(m.pages), shared, runs))
    if page is not None:
        snap.fault_frame = next((p.pa for m in census.processes if fault.owner(m.root)
                                 for p in m.pages if p.va == page), None)
    _records(snap, read_phys, symbol)
    _swap(snap, arch, read_phys, symbol, census)
    return snap


def _records(snap, read_phys, symbol):
    """The VMAs of each process and the temp-map slots, where the kernel has them (the readers of
    procs.py and tempmap.py, the grader's and GDB's)."""
    try:
        image = kernel_image(symbol)
    except CensusError as err:
        snap.notes.append(str(err))
        return
    lay = procs.Layout.of_symbols(symbol)
    try:
        if lay is not None:
            found = {p.pid: p for p in procs.read_procs(read_phys, lay, lambda va, n: read_phys(image.must_pa(va), n))}
            for proc in snap.processes:
                p = found.get(proc.pid)
                if p is not None and p.vmas is not None:
                    proc.vmas = [[v.start, v.end, str(v).split(") ", 1)[1]] for v in p.vmas]
            if not any(p.vmas is not None for p in found.values()):
                snap.notes.append("no VMAs: this kernel keeps no record of regions (before lab 5)")
    except (CensusError, LookupError, AssertionError, ValueError, struct.error) as err:
        snap.notes.append(f"the VMAs could not be read: {err}")
    try:
        area = read_temp_area(read_phys, symbol)
        if area is not None:
            snap.temp = [[t.index, t.va, t.frame] for t in area.slots]
    except CensusError as err:
        snap.notes.append(f"no temp-map slots: {err}")
    except (ValueError, struct.error) as err:
        snap.notes.append(f"the temp-map slots could not be read: {err}")


def _swap(snap, arch, read_phys, symbol, census):
    if symbol(C.SWAP_STATE) is None:
        return
    try:
        found = swap.take_swap_census(arch, read_phys, symbol, [
            roots.KnownRoot(m.root, m.name, "process", m.pid) for m in census.processes])
    except (frames.CensusError, ValueError, struct.error) as err:
        snap.notes.append(f"the swap state could not be read: {err}")
        return
    if found is None:
        return
    backers = found.backers()
    slots = sorted(set(found.swapped) | set(backers) | {s for s, n in enumerate(found.state.counts) if n})
    rows = [[s, found.state.count(s), [found.who(r, v) for r, v in found.swapped.get(s, [])]
             + [f"backing of frame {f:#x}" for f in backers.get(s, [])], swap.slot_flag(found, s, backers) or ""]
            for s in slots]
    rows = [r for r in rows if r[3]] + [r for r in rows if not r[3]]     # the flagged first
    snap.swap = dict(slots=len(found.state.counts), in_use=found.state.in_use(), rows=rows[:MAX_ROWS])
    for proc in snap.processes:
        proc.swapped = sum(1 for r, _ in found.entries if r == proc.root)
    snap.problems += found.problems


# ---- the page ---------------------------------------------------------------------------------

OWNER_CLASS = {"K": "img", "T": "tab", "S": "cow", "k": "ker", ".": "free", "#": "res"}
STYLE = """
body{font:13px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}
h1{font-size:18px}h2{font-size:15px;margin-top:1.4em;border-bottom:1px solid #ccc}
.cause{font:bold 14px monospace;background:#fee;border-left:4px solid #c00;padding:.4em .6em;white-space:pre-wrap}
code,td{font-family:monospace}table{border-collapse:collapse}td,th{padding:1px 8px;text-align:left}
tr:nth-child(even){background:#f4f4f4}.fault{outline:3px solid #c00;background:#fdd!important}
#map{display:grid;grid-template-columns:repeat(128,7px);gap:1px;margin:.5em 0}
#map i{height:7px;display:block}#map i.fault{outline:2px solid #c00;z-index:1}
.img{background:#2a4d9b}.tab{background:#e3b505}.cow{background:#c0392b}.ker{background:#999}
.free{background:#eee}.res{background:#555}.p0{background:#2e9e4f}.p1{background:#1aa3a3}
.p2{background:#9b4dca}.p3{background:#7fbf3f}.p4{background:#3fb8e0}.p5{background:#e05fbf}
.p6{background:#d9a441}.p7{background:#5f7fe0}.sw{display:inline-block;width:10px;height:10px}
.named{outline:3px dashed #e67e00}.dim #map i:not(.on){opacity:.15}.flag{color:#c00;font-weight:bold}
"""
SCRIPT = """
document.querySelectorAll('#counts tr[data-class]').forEach(function (row) {
  row.style.cursor = 'pointer';
  row.addEventListener('click', function () {
    var on = !row.classList.contains('picked');
    document.querySelectorAll('#counts tr').forEach(function (r) { r.classList.remove('picked'); });
    document.querySelectorAll('#map i').forEach(function (c) {
      c.classList.toggle('on', on && c.classList.contains(row.dataset.class)); });
    document.body.classList.toggle('dim', on);
    if (on) row.classList.add('picked');
  });
});
"""


def _class(letter: str) -> str:
    return OWNER_CLASS.get(letter) or "p%d" % (frames.DIGITS.index(letter) % 8)


def _pid_class(pid: int) -> str:
    return _class(frames.DIGITS[pid % len(frames.DIGITS)])


def _table(head, rows, ident="") -> str:
    """@p rows: (cells, row class) with cells already escaped."""
    out = ["<table%s><tr>%s</tr>" % (f' id="{ident}"' if ident else "", "".join(f"<th>{h}</th>" for h in head))]
    for cells, cls in rows:
        out.append("<tr%s>%s</tr>" % (cls, "".join(f"<td>{c}</td>" for c in cells)))
    return "".join(out) + "</table>"


def to_html(s: Snapshot) -> str:
    """The page of @p s: the cause and the fault, the frame map and its counts, each process's
    root, user half and VMAs, the shared frames, the swap slots, the temp-map slots, the problems.
    The faulting frame, page and VMA carry class "fault" (the first of them id "fault-page"), a user
    page on a frame line 1 names class "named", and
    the Snapshot itself is in it as JSON (script#snapshot)."""
    e = html.escape
    page = mark = s.fault.address & ~(PAGE_SIZE_4K - 1) if s.fault and s.fault.address is not None else None
    out = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{e(s.title)}</title>"
           f"<style>{STYLE}</style></head><body><h1>{e(s.title)} <small>({e(s.arch)})</small></h1>"]
    if s.cause:
        out.append(f'<p class=cause id=cause>{e(s.cause)}</p>')
    if s.fault:
        where = ("; on frame <code>%#x</code>" % s.fault_frame) if s.fault_frame is not None else \
            "; no process root maps that page" if page is not None else ""
        out.append('<p id=fault>%s: %s mode, pc <code>%#x</code>%s%s<br><code>%s</code></p>' % (
            e(s.fault.which), "user" if s.fault.user else "kernel", s.fault.pc,
            "" if page is None else ", address <code id=fault-address>%#x</code> (page <code>%#x</code>)" % (
                s.fault.address, page), where, e(s.fault.text)))
    for note in s.notes:
        out.append(f"<p class=note>{e(note)}</p>")
    if s.cells:
        out.append("<h2>Physical frames by owner</h2><p>From <code>%#x</code>, one cell = %d frame%s (4 KiB each)%s; "
                   "click an owner to pick its cells.</p><div id=map>" % (
                       s.first, s.frames_per_cell, "s" * (s.frames_per_cell > 1),
                       ", the faulting frame outlined" if s.fault_frame is not None else ""))
        fault_cell = (s.fault_frame - s.first) // PAGE_SIZE_4K // s.frames_per_cell \
            if s.fault_frame is not None and s.fault_frame >= s.first else None
        out.append("".join('<i class="%s fault" id=fault-cell></i>' % _class(c) if n == fault_cell
                           else f"<i class={_class(c)}></i>" for n, c in enumerate(s.cells)))
        out.append("</div>")
        rows = [([f'<span class="sw {_class(frames.LETTERS[o])}"></span> {o}', str(s.counts.get(o, 0))],
                 f' data-class={_class(frames.LETTERS[o])} data-owner="{o}" data-count={s.counts.get(o, 0)}')
                for o in frames.OWNERS if o != frames.PROCESS]
        rows += [([f'<span class="sw {_pid_class(p.pid)}"></span> pid {p.pid} {e(p.name)} (own frames)',
                   str(p.pages - p.shared)],
                  f" data-class={_pid_class(p.pid)} data-pid={p.pid}") for p in s.processes]
        out.append(_table(["owner", "frames"], rows, "counts"))
    live = {}                                     # root -> the CPUs that hold it
    for c in s.cpus:
        live.setdefault(c.root & ROOT_MASK, []).append(c.cpu)
    if s.cpus:
        whose = {p.root & ROOT_MASK: f"pid {p.pid} {p.name}" for p in s.processes}
        out.append("<h2>CPUs</h2><p>The root each CPU translates user addresses with: every CPU that holds a "
                   "process's root may cache its translations.</p>")
        out.append(_table(["CPU", "mode", "pc", "root", "whose"], [
            ([str(c.cpu), "user" if c.user else "kernel", f"{c.pc:#x}", f"{c.root:#x}",
              e(whose.get(c.root & ROOT_MASK, "not a process's (the kernel's, or unpublished)"))], "")
            for c in s.cpus], "cpus"))
    out.append("<h2>Processes: roots and their user half</h2>")
    marked = False
    named = {int(n, 16) for n in re.findall(r"\b0x[0-9a-fA-F]+", s.cause)}    # what line 1 names
    for p in s.processes:
        page = mark if s.fault and s.fault.owner(p.root) else None
        on = live.get(p.root & ROOT_MASK)
        out.append(f'<h3 id=pid-{p.pid}><span class="sw {_pid_class(p.pid)}"></span> pid {p.pid} {e(p.name)}: root '
                   f'<code>{p.root:#x}</code>, {p.tables} table frames, {p.pages} user pages ({p.shared} shared), '
                   f'{p.swapped} swapped out{"; live on CPU " + ", ".join(map(str, on)) if on else ""}</h3>')
        rows = []
        for r in p.runs:
            hit = page is not None and r.va <= page < r.va + r.pages * PAGE_SIZE_4K
            cls = ' class=fault' + (' id=fault-page' if not marked else '') if hit else ''
            if not hit and any(r.pa <= n < r.pa + r.pages * PAGE_SIZE_4K for n in named):
                cls = ' class=named title="line 1 names this frame"'
            marked |= hit
            rows.append(([f"{r.va:#x}-{r.va + r.pages * PAGE_SIZE_4K:#x}", f"{r.pa:#x}", str(r.pages), r.rwx,
                          "shared (copy-on-write)" if r.shared else "own"], cls))
        out.append(_table(["user addresses", "first frame", "pages", "perms", "frames"], rows))
        if p.vmas:
            out.append(_table(["VMA", "", "perms, kind"], [
                ([f"{a:#x}", f"{b:#x}", e(what)], " class=fault" if page is not None and a <= page < b else "")
                for a, b, what in p.vmas]))
        if page is not None and p.vmas and not any(a <= page < b for a, b, _ in p.vmas):
            out.append(f"<p class=flag>No VMA of pid {p.pid} covers the faulting page {page:#x}.</p>")
    if s.shared:
        out.append("<h2>Frames shared by several roots (copy-on-write)</h2>")
        out.append(_table(["frame", "count", "mapped by"], [
            ([f"{f:#x}", str(refs), e(", ".join(who))], " class=fault" if f == s.fault_frame else "")
            for f, refs, who in s.shared], "shared"))
    if s.swap is not None:
        out.append("<h2>Swap slots</h2><p>%d slots, %d in use.</p>" % (s.swap["slots"], s.swap["in_use"]))
        out.append(_table(["slot", "count", "holders", ""], [
            ([str(n), str(c), e(", ".join(h) or "-"), f"<span class=flag>{e(flag)}</span>"], "")
            for n, c, h, flag in s.swap["rows"]], "swap"))
    if s.temp is not None:
        out.append("<h2>Temporary-mapping slots</h2>")
        out.append(_table(["slot", "address", "frame"], [
            ([str(n), f"{va:#x}", f"{f:#x}" if f else "free"], " class=fault" if page == va else "")
            for n, va, f in s.temp], "temp"))
    if s.problems:
        out.append("<h2>What the census found wrong</h2><ul>%s</ul>" % "".join(
            f"<li>{e(p)}</li>" for p in s.problems[:40]))
    data = s.to_json().replace("<", "\\u003c")     # (nothing in it can end the script element)
    out.append(f'<script type="application/json" id=snapshot>{data}</script><script>{SCRIPT}</script></body></html>')
    return "\n".join(out)
