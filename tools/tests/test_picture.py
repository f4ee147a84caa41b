"""The picture of a failing moment (tools/gdb/pagoda_pt/picture.py) in a real browser: Debian's
chromium, headless, loads the page with no console message, draws a screenshot, and its DOM shows
the faulting page and the counts of the Snapshot the page carries as JSON.

chromium is a requirement of the tools' tests (tools/pagoda/deps.py): ./pagoda test installs it,
and under it (deps.TESTS_ENV) a missing chromium fails the test; elsewhere it skips, saying so."""
import json
import os
import re
import shutil
import subprocess

import pytest

from pagoda import deps
from pagoda_pt import picture
from pagoda_pt.isa import cpus_of

PAGE = 0x1000
FAULT = 0x7ffffffff123          # in pid 2's stack page, which the fault's root is


def snapshot():
    """A Snapshot as the grader takes it at a failing stop of lab 7: two processes that share
    frames after a fork, a swap slot with a holder, the temp-map slots, the fault in pid 2 (whose
    name a submission chose to break the page)."""
    first = 0x7ff0000
    cells = "KKKKTT3S2..kk...#" * 10
    counts = {"kernel image": 4, "page table": 2, "shared": 1, "process": 2, "kernel": 2, "free": 5, "reserved": 1}
    p1 = picture.Proc(1, "swapfork", 0x3a000, 6, 3, 1, [picture.Run(0x400000, 0x7ffe000, 1, "r-x", True),
                                                        picture.Run(0x7ffffffff000, 0x7ff1000, 2, "rw-", False)],
                      [[0x400000, 0x401000, "r-x image"], [0x7fffff000000, 0x800000000000, "rw- stack grows-down"]])
    p2 = picture.Proc(2, "</script><!--", 0x3b000, 6, 2, 1, [picture.Run(0x400000, 0x7ffe000, 1, "r-x", True),
                                                        picture.Run(0x7ffffffff000, 0x7ff3000, 1, "r--", False)],
                      [[0x400000, 0x401000, "r-x image"], [0x7fffff000000, 0x800000000000, "rw- stack grows-down"]],
                      swapped=1)
    return picture.Snapshot(
        "Pagoda: test_lab7.py_test_swap_fork failed", "x86_64",
        "the copy-on-write break left the old reverse-map node <b>&",
        picture.Fault(FAULT, 0x402fbd, True, "#PF page fault (vector 14) at RIP 0x402fbd, CPL 3", 0x3b000),
        0x7ff3000, first, 1, cells, counts, [p1, p2],
        [[0x7ffe000, 2, ["pid 1 at 0x400000", "pid 2 at 0x400000"]]],
        dict(slots=64, in_use=1, rows=[[3, 1, ["proc 2 (swapfork) at 0x401000"], ""]]),
        [[0, 0xffffe00000000000, 0x7ff9000], [1, 0xffffe00000001000, 0]],
        ["frame 0x7ff3000: 1 user mapping but reference count 2"], ["boot token 1234"],
        # two CPUs as the grader reads them (isa.cpu_registers: RIP, CS, CR3): CPU 0 in the kernel
        # with the kernel's root, CPU 1 in pid 2's code (CPL 3) with its root and PCID-free CR3 flags
        cpus_of("x86_64", [[0xffffffff80100000, 0x08, 0x2bb000], [0x402fbd, 0x2b, 0x3b000 | 0x18]]))


def chromium(tmp_path, *args):
    """chromium headless on @p args: (its standard output, its console messages)."""
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get(deps.TESTS_ENV):
            pytest.fail("chromium is missing, though ./pagoda test installed the tests' requirements (deps.py): "
                        "apt-get install chromium")
        pytest.skip("chromium is not installed (./pagoda setup installs it; ./pagoda test requires it)")
    done = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
                           "--enable-logging=stderr", "--v=0", "--host-resolver-rules=MAP * ~NOTFOUND", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def test_the_picture_in_chromium(tmp_path):
    snap = snapshot()
    page = tmp_path / "picture.html"
    page.write_text(picture.to_html(snap))
    text = page.read_text()
    assert not re.search(r"""(src|href)=|url\(|https?:|@import""", text), "the page must fetch nothing"
    dom, console = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert console == [], console
    shot = tmp_path / "picture.png"
    _, console = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    assert console == [] and shot.stat().st_size > 10_000
    # The DOM carries the Snapshot: what it shows must be what it carries.
    data = json.loads(re.search(r'<script type="application/json" id="snapshot">(.*?)</script>', dom, re.S)[1])
    assert data["fault"]["address"] == FAULT and data["cells"] == snap.cells
    assert data["processes"][1]["name"] == "</script><!--"       # a name cannot end the page's script
    fault_row = re.search(r'<tr class="fault" id="fault-page">(.*?)</tr>', dom, re.S)
    assert fault_row and "0x7ffffffff000-0x800000000000" in fault_row[1]
    assert dom.count('id="fault-page"') == 1 and 'id="fault-cell"' in dom
    assert "0x7ffffffff123" in re.search(r'<p id="fault">(.*?)</p>', dom, re.S)[1]
    assert "&lt;b&gt;&amp;" in re.search(r'<p class="cause" id="cause">(.*?)</p>', dom, re.S)[1]
    shown = dict(re.findall(r'data-owner="([^"]+)" data-count="(\d+)"', dom))
    assert {o: int(n) for o, n in shown.items()} == {o: n for o, n in data["counts"].items() if o != "process"}
    grid = re.search(r'<div id="map">(.*?)</div>', dom, re.S)[1]
    assert grid.count("<i ") == len(data["cells"])
    for ident, rows in (("shared", data["shared"]), ("swap", data["swap"]["rows"]), ("temp", data["temp"])):
        table = re.search(rf'<table id="{ident}">(.*?)</table>', dom, re.S)[1]
        assert table.count("<tr") - 1 == len(rows), ident
    assert len(re.findall(r'<h3 id="pid-\d+"', dom)) == len(data["processes"])
    cpus = re.findall(r"<tr>(.*?)</tr>", re.search(r'<table id="cpus">(.*?)</table>', dom, re.S)[1], re.S)
    assert [re.findall(r"<td>(.*?)</td>", row) for row in cpus[1:]] == [
        ["0", "kernel", "0xffffffff80100000", "0x2bb000", "not a process's (the kernel's, or unpublished)"],
        ["1", "user", "0x402fbd", "0x3b000", "pid 2 &lt;/script&gt;&lt;!--"]], cpus
    heads = dict(re.findall(r'<h3 id="pid-(\d+)">(.*?)</h3>', dom, re.S))
    assert heads["2"].endswith("; live on CPU 1") and "live on" not in heads["1"], heads


def test_a_snapshot_without_memory_still_draws(tmp_path):
    """A test whose boots the grader did not watch: the cause, the fault and why nothing else."""
    snap = picture.Snapshot("t", "aarch64", "cause", picture.Fault(None, 0x1000, False, "an SError"),
                            notes=["the grader kept no guest RAM"])
    text = picture.to_html(snap)
    assert 'id="cause"' in text.replace("id=cause", 'id="cause"') and "kept no guest RAM" in text
    assert "id=fault-page" not in text and json.loads(snap.to_json())["fault"]["pc"] == 0x1000
