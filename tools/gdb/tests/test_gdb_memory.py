"""vma-list, fault-why's VMA line (lab 5), pt-diff's copy-on-write pages and frames (lab 6), on a
booted reference kernel, on both ISAs.

Lab 5: one boot runs two `probe`s: one writes into its own text (a VMA that forbids writing),
one reads 0x10000000 (no VMA). GDB stops in proc::user_fault for each. vma-list's VMAs are
checked against the program's ELF segments (readelf: each PT_LOAD lies in image VMAs with its
permissions) and its MAPPED column against QEMU's own walk (`monitor gva2gpa` of every page of
each VMA in the live root).

Lab 6: one boot runs `cowtest` (it maps pages, writes them, forks); GDB stops when
proc::fork_process returns in the parent. pt-diff 1 2 must list the parent's data pages as
shared; each shared page's frame is checked against `monitor gva2gpa` in the parent's (live)
root and against the kernel's reference count read through GDB's own virtual reads of
pagoda_frame_refs (2: parent and child); frames must count the same shared frames and the same
free frames as the allocator's own counter (FrameAllocator::free_).
"""
import json
import os
import re
import subprocess

import pytest

import gdbrig
from gdbrig import Machine, run_steps
from pagoda_pt import contract as C

PAGE = 4096
NO_VMA = 0x1000_0000                   # above the image, far below the stack: no VMA
HEX = r"0x[0-9a-f]+"
VMA_ROW = re.compile(r"^  (%s)-(%s) (\S{3})\s+(\S+)\s+(\d+)\s+(\d+)  (.*)$" % (HEX, HEX))

QEMUS = {"x86_64": gdbrig.QEMU, "aarch64": gdbrig.QEMU_AARCH64}
ARCHES = [pytest.param(a, marks=pytest.mark.skipif(bool(gdbrig.missing_tools(q)),
                                                   reason=gdbrig.missing_tools(q)))
          for a, q in QEMUS.items()]
pytestmark = pytest.mark.timeout(240)

# Inside GDB: QEMU's walk (`monitor gva2gpa`) of a user address.  On AArch64 the kernel runs
# with PSTATE.PAN set, under which QEMU's debug walk refuses EL0 pages: PAN is cleared for the
# question and restored (PSTATE bit 22, in GDB's $cpsr).
GVA2GPA = r'''
def gva2gpa(va):
    pan = "aarch64" in gdb.selected_inferior().architecture().name()
    if pan:
        saved = int(gdb.parse_and_eval("$cpsr"))
        gdb.execute("set $cpsr = %#x" % (saved & ~(1 << 22)))
    try:
        answer = gdb.execute("monitor gva2gpa %#x" % va, to_string=True).strip()
    finally:
        if pan:
            gdb.execute("set $cpsr = %#x" % saved)
    return int(answer[5:], 16) if answer.startswith("gpa:") else None
'''

# Inside GDB: every page of every VMA vma-list printed for the live process, through QEMU's walk.
GVA2GPA_OF_VMAS = GVA2GPA + r'''
import re, json
text = gdb.execute("vma-list", to_string=True)
rows = []
for m in re.finditer(r"^  (0x[0-9a-f]+)-(0x[0-9a-f]+) ", text, re.M):
    start, last = int(m.group(1), 16), int(m.group(2), 16)
    mapped = 0
    for va in range(start, min(last + 1, start + 64 * 4096), 4096):
        mapped += gva2gpa(va) is not None
    rows.append((start, mapped))
result = json.dumps(rows)
'''

# Inside GDB: pt-diff 1 2's shared ranges, each page through QEMU's walk of the live (parent's)
# root, and its reference count read through GDB's virtual reads of the kernel's table.
SHARED_CHECK = GVA2GPA + r'''
import re, json
text = gdb.execute("pt-diff 1 2", to_string=True)
refs = gdb.parse_and_eval("pagoda_frame_refs")
table, entries = int(refs["table"]), int(refs["entries"])
u16 = gdb.lookup_type("unsigned short").pointer()
rows = []
for m in re.finditer(r"^  shared (0x[0-9a-f]+)-(0x[0-9a-f]+)\s+(\d+) pages?\s+PA (0x[0-9a-f]+)$", text, re.M):
    start, last, pa = int(m.group(1), 16), int(m.group(2), 16), int(m.group(4), 16)
    for i, va in enumerate(range(start, last + 1, 4096)):
        live = gva2gpa(va)
        frame = live // 4096 if live is not None else None
        extra = int(gdb.Value(table + 2 * frame).cast(u16).dereference()) if frame is not None and frame < entries else None
        rows.append((va, pa + i * 4096, live, extra))
result = json.dumps(rows)
'''


# Inside GDB, at fork_process's first instruction: a breakpoint where it returns to (`finish`
# cannot unwind every kernel frame on AArch64).
RETURN_BREAK = r'''
arch = gdb.selected_inferior().architecture().name()
if "aarch64" in arch:
    ret = int(gdb.parse_and_eval("$x30"))
else:
    ret = int(gdb.parse_and_eval("*(unsigned long *)$rsp"))
gdb.execute("tbreak *%#x" % (ret & 0xffffffffffffffff), to_string=True)
result = hex(ret)
'''


def elf_loads(path):
    """[(vaddr, memsz, flags)] of the PT_LOAD segments of @p path (readelf, not our code)."""
    text = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True,
                          check=True).stdout
    loads = []
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "LOAD":
            flags = "".join(fields[6:-1])
            loads.append((int(fields[2], 16), int(fields[5], 16), flags))
    return loads


def user_program(kernel, arch, name):
    """The user program's ELF beside the kernel build (as the grader finds it)."""
    path = os.path.join(os.path.dirname(kernel), "user", arch, name + ".elf")
    assert os.path.exists(path), path
    return path


def vma_rows(text):
    return [(int(m[1], 16), int(m[2], 16) + 1, m[3], m[4], int(m[5]), int(m[6]), m[7])
            for m in (VMA_ROW.match(line) for line in text.splitlines()) if m]


# ---- lab 5 ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=ARCHES)
def probed(request):
    arch = request.param
    kernel = gdbrig.build_kernel(arch)
    steps = [("brk", "cmd", f"break {C.USER_FAULT}"), ("go", "cmd", "continue"),
             ("why", "cmd", "fault-why"), ("vmas", "cmd", "vma-list"),
             ("walked", "python", GVA2GPA_OF_VMAS), ("all", "cmd", "pt-ps"),
             ("bad", "cmd", "vma-list 77"),
             ("go2", "cmd", "continue"), ("why2", "cmd", "fault-why"), ("vmas2", "cmd", "vma-list"),
             ("walked2", "python", GVA2GPA_OF_VMAS)]
    with Machine(kernel, cmdline=f"run=probe:write_text,probe:read:{NO_VMA:#x}", arch=arch) as machine:
        results = run_steps(kernel, machine.socket, steps, attach="--no-entry")
    for name in ("why", "vmas", "walked", "why2", "vmas2", "walked2"):
        assert not results[name].error, (name, results[name].error)
    return arch, kernel, results


def test_vma_list_agrees_with_the_elf_and_with_qemus_walk(probed):
    arch, kernel, results = probed
    loads = elf_loads(user_program(kernel, arch, "probe"))
    for vmas, walked in (("vmas", "walked"), ("vmas2", "walked2")):
        text = results[vmas].output
        rows = vma_rows(text)
        assert rows, text
        # Every PT_LOAD lies in image VMAs that give it exactly its permissions.
        for vaddr, memsz, flags in loads:
            want = ("r" if "R" in flags else "-") + ("w" if "W" in flags else "-") + \
                ("x" if "E" in flags else "-")
            covering = [r for r in rows if r[0] < vaddr + memsz and vaddr < r[1]]
            assert covering and all(r[3] == "image" and r[2] == want for r in covering), \
                (hex(vaddr), flags, text)
            assert covering[0][0] <= vaddr and covering[-1][1] >= vaddr + memsz, (hex(vaddr), text)
        assert any(r[3] == "stack+down" for r in rows), text
        # MAPPED is what QEMU's walk of the live root finds in each VMA.
        qemu = dict(json.loads(results[walked].output))
        assert qemu, results[walked].output
        for start, end, _, kind, pages, mapped, verdict in rows:
            if pages <= 64:
                assert mapped == qemu[start], (hex(start), mapped, qemu[start], text)
            assert "DISAGREE" not in verdict, text
        assert sum(qemu.values()) >= 1
        assert "every mapped user page lies in a VMA" in text, text
    assert "no process with id 77" in results["bad"].error


def test_fault_why_names_the_vma(probed):
    arch, kernel, results = probed
    lines = {}
    for why, vmas in (("why", "vmas"), ("why2", "vmas2")):
        out = results[why].output.strip().splitlines()
        m = re.match(r"process (\d+) '(\w+)'", results[vmas].output)
        vma = [l for l in out if l.startswith("vma: ")]
        assert len(vma) == 1 and out[-1].startswith("verdict: "), out
        assert out.index(vma[0]) == len(out) - 2, out           # just before the verdict
        lines[int(m.group(1))] = (vma[0], vma_rows(results[vmas].output))
    assert set(lines) == {1, 2}, lines
    # pid 1 wrote into its text: the VMA named is the image VMA vma-list shows as r-x there.
    line, rows = lines[1]
    m = re.fullmatch(r"vma: (%s) lies in a VMA of process 1 'probe': \[(%s), (%s)\) r-x image "
                     r"offset %s file %s" % (HEX, HEX, HEX, HEX, HEX), line)
    assert m, line
    text = [r for r in rows if r[0] == int(m.group(2), 16) and r[1] == int(m.group(3), 16)]
    assert text and text[0][2] == "r-x" and text[0][0] <= int(m.group(1), 16) < text[0][1], (line, rows)
    # pid 2 read an address no VMA covers.
    line, rows = lines[2]
    assert line.startswith("vma: no VMA of process 2 'probe' covers %#x (%d VMAs; below: "
                           % (NO_VMA, len(rows))), line
    assert not any(r[0] <= NO_VMA < r[1] for r in rows), rows


# ---- lab 6 ---------------------------------------------------------------------------------------

COW_PAGES = 12


@pytest.fixture(scope="module", params=ARCHES)
def forked(request, tmp_path_factory):
    arch = request.param
    kernel = gdbrig.build_kernel(arch)
    steps = [("brk", "cmd", f"break {C.FORK}"), ("go", "cmd", "continue"),
             ("del", "cmd", "delete"), ("ret", "python", RETURN_BREAK), ("fin", "cmd", "continue"),
             ("ps", "cmd", "pt-ps"), ("diff", "cmd", "pt-diff 1 2"),
             ("checked", "python", SHARED_CHECK), ("frames", "cmd", "frames"),
             ("free", "eval", f"'{C.FRAME_ALLOCATOR}'.free_"),
             ("parent", "cmd", "vma-list 1"), ("child", "cmd", "vma-list 2"),
             ("html", "cmd", f"memview-html {tmp_path_factory.mktemp('memview') / 'moment.html'}")]
    with Machine(kernel, cmdline=f"run=cowtest:{COW_PAGES}:0x5", arch=arch) as machine:
        results = run_steps(kernel, machine.socket, steps, attach="--no-entry")
    for name in ("ret", "fin", "ps", "diff", "checked", "frames", "free", "parent", "child", "html"):
        assert not results[name].error, (name, results[name].error)
    return arch, kernel, results


def test_pt_diff_shows_the_cow_pages(forked):
    arch, kernel, results = forked
    rows = gdbrig.ps_rows(results["ps"].output)
    assert set(rows) >= {1, 2} and rows[1][1] == rows[2][1] == "cowtest", results["ps"].output
    text = results["diff"].output
    m = re.search(r"user pages: A maps (\d+), B maps (\d+); copy-on-write shared \(same frame, "
                  r"read-only in both\): (\d+)", text)
    assert m, text
    a, b, shared = map(int, m.groups())
    assert a == b == shared >= COW_PAGES + 1, text      # the region, the kernel-write page, ...
    assert "problem" not in text, text
    checked = json.loads(results["checked"].output)
    assert len(checked) == shared, (checked, text)
    for va, pa, live, extra in checked:
        assert live is not None and pa == live, (hex(va), pa, live)
        assert extra == 1, (hex(va), extra)             # two mappings: the parent's and the child's


def test_frames_counts_owners_and_references(forked):
    arch, kernel, results = forked
    text = results["frames"].output
    shared = int(re.search(r"copy-on-write shared \(same frame, read-only in both\): (\d+)",
                           results["diff"].output).group(1))
    assert re.search(r"^  shared\s+S\s+%d$" % shared, text, re.M), text
    assert re.search(r"^reference counts above 1 \(pagoda_frame_refs\): %d frames? x2$" % shared,
                     text, re.M), text
    assert re.search(r"^  free\s+\.\s+%d$" % results["free"].value, text, re.M), \
        (results["free"].value, text)
    rows = {int(m[1]): (int(m[2]), int(m[3]), int(m[4])) for m in re.finditer(
        r"^\s+(\d+)\s+cowtest\s+%s\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+$" % HEX, text, re.M)}
    assert rows[1][0] == rows[2][0] == shared and rows[1][2] == rows[2][2] == shared, text
    assert "no problems" in text, text
    # memview-html: the same moment as a page (pagoda_pt/picture.py), the same shared frames.
    page = re.search(r"memview-html: wrote (\S+) \(", results["html"].output)
    assert page, results["html"].output
    with open(page[1]) as f:
        data = json.loads(re.search(r'<script type="application/json" id=snapshot>(.*?)</script>', f.read())[1])
    assert data["counts"]["shared"] == shared and len(data["shared"]) == shared
    assert {p["pid"] for p in data["processes"]} >= {1, 2} and all(p["vmas"] for p in data["processes"]), \
        (results["html"].output, data["notes"])
    assert [(c["cpu"], c["user"]) for c in data["cpus"]] == [(0, False)], data["cpus"]   # (one CPU, in the kernel)
    # vma-list: the parent's writable region (cowtest's two mmaps, merged into one VMA when
    # they are neighbours) is read-only now in both (copy-on-write).
    for side in ("parent", "child"):
        m = re.search(r"rw-\s+anonymous\s+(\d+)\s+\1  r-- x\1: agree; \1 read-only in a writable "
                      r"VMA \(copy-on-write\)", results[side].output, re.M)
        assert m and int(m.group(1)) >= COW_PAGES, results[side].output
