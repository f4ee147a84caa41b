"""The GDB commands on a kernel running processes (lab 3): pt-ps lists them with their roots,
--root takes a process id, and fault-why explains a fault raised in ring 3.

One boot of the reference kernel runs `spin` (which never makes a system call) and `probe`,
which reads a kernel address from user mode; GDB stops in proc::user_fault, the kernel's
handler of that fault, with both processes alive. The roots the commands name are checked
against CR3 and against each other; nothing here trusts what the kernel printed.
"""
import re

import pytest

import gdbrig
from gdbrig import Machine, run_steps
from pagoda_pt import contract as C

pytestmark = [pytest.mark.skipif(bool(gdbrig.missing_tools()), reason=gdbrig.missing_tools()),
              pytest.mark.timeout(180)]

HEX = r"0x[0-9a-f]+"
UNMAPPED = 0xFFFF_FFFF_F000_0000     # a kernel address no root maps
USER_TEXT = 0x40_0000                # user/user.ld: USER_BASE


@pytest.fixture(scope="module")
def stopped():
    kernel = gdbrig.build_kernel()
    probed = gdbrig.kernel_symbol(kernel, C.ROOT_REGISTRY)      # kernel data: a supervisor page
    steps = [("brk", "cmd", f"break {C.USER_FAULT}"), ("go", "cmd", "continue"),
             ("cr3", "eval", "$cr3"), ("ps", "cmd", "pt-ps"), ("why", "cmd", "fault-why"),
             ("walk1", "cmd", f"pt-walk {gdbrig.argument_page(kernel):#x} --root 1"),
             ("walk2", "cmd", f"pt-walk {gdbrig.argument_page(kernel):#x} --root 2"),
             ("top1", "cmd", "pt-top --root 1"),
             ("dump2", "cmd", "pt-dump --user --root pid=2"),
             ("dump3", "cmd", "pt-dump --user --root pid=3"),
             ("nobody", "cmd", f"pt-walk {USER_TEXT:#x} --root 99"),
             ("go2", "cmd", "continue"), ("why2", "cmd", "fault-why")]
    cmdline = f"run=spin:{0x4000_0000:#x},probe:read:{probed:#x},probe:read:{UNMAPPED:#x}"
    with Machine(kernel, cmdline=cmdline) as machine:
        results = run_steps(kernel, machine.socket, steps, attach="--no-entry")
    for name in ("ps", "why", "walk1", "walk2", "top1", "dump2", "dump3", "why2"):
        assert not results[name].error, (name, results[name].error)
    results["probed"] = probed
    return results


def walked_pa(text):
    m = re.search(r"-> PA (%s)" % HEX, text) or re.search(r"PA\s+(%s)" % HEX, text)
    assert m, text
    return int(m.group(1), 16)


def faulted(stopped, step):
    """(pid, root) of the process whose fault the verdict of @p step explains."""
    last = stopped[step].output.strip().splitlines()[-1]
    m = re.match(r"verdict: process 'probe' \(pid (\d+), root (%s)\) in ring 3: " % HEX, last)
    assert m, last
    return int(m.group(1)), int(m.group(2), 16)


def test_ps_lists_the_processes_and_marks_the_active_root(stopped):
    rows = gdbrig.ps_rows(stopped["ps"].output)
    assert set(rows) == {1, 2, 3}, stopped["ps"].output
    assert [rows[p][1] for p in (1, 2, 3)] == ["spin", "probe", "probe"]
    pid, root = faulted(stopped, "why")          # the probe that faulted first is the live one
    assert [p for p in rows if rows[p][0]] == [pid], stopped["ps"].output
    assert rows[pid][3] == root == stopped["cr3"].value & ~0xFFF
    assert len({rows[p][3] for p in rows}) == 3                  # three roots
    assert re.search(r"^\*?\s+-\s+kernel\s+kernel", stopped["ps"].output, re.M)


def test_root_takes_a_process_id(stopped):
    rows = gdbrig.ps_rows(stopped["ps"].output)
    assert "root: 0x%016x" % rows[1][3] in stopped["walk1"].output
    assert "root: 0x%016x" % rows[2][3] in stopped["walk2"].output
    # the same user address, two processes, two frames (each loaded its own copy)
    assert walked_pa(stopped["walk1"].output) != walked_pa(stopped["walk2"].output)
    assert "'spin'" in stopped["top1"].output
    assert "page tables at 0x%016x" % rows[2][3] in stopped["dump2"].output
    assert "page tables at 0x%016x" % rows[3][3] in stopped["dump3"].output
    # Pages come on first touch (lab 5): the probe that faulted first has run, so its text is
    # mapped; the other may not have run yet.
    ran, _ = faulted(stopped, "why")
    assert "0x0000000000400000" in stopped[f"dump{ran}"].output, stopped[f"dump{ran}"].output
    assert "no process with id 99 has a root" in stopped["nobody"].error


def test_fault_why_explains_a_ring_3_fault(stopped):
    """Two probes, in whichever order the scheduler ran them: pid 2 read kernel data (mapped,
    supervisor), pid 3 a kernel address nothing maps."""
    verdicts = {}
    for step in ("why", "why2"):
        lines = stopped[step].output.strip().splitlines()
        assert any("in user mode (CPL 3)" in line for line in lines), lines
        pid, root = faulted(stopped, step)
        verdicts[pid] = (root, lines[-1])
    assert set(verdicts) == {2, 3}, verdicts
    root, last = verdicts[2]
    probed = stopped["probed"]
    # The walk's finding, then what the process's VMAs say (lab 5): never "not a kernel bug".
    assert last == (
        "verdict: process 'probe' (pid 2, root %#x) in ring 3: CR2 %#x: a user-mode access to "
        "a supervisor page (US=0 in PML4[%d], PDPT[%d], PD[%d], PT[%d]); no VMA covers %#x: the kernel kills the "
        "process (an address the program was never given, or a region the loader never recorded)"
        % (root, probed, probed >> 39 & 511, probed >> 30 & 511, probed >> 21 & 511, probed >> 12 & 511, probed)
    ), last  # every kernel-half level denies user mode, not only the leaf (issue 12)
    root, last = verdicts[3]
    assert re.fullmatch(r"verdict: process 'probe' \(pid 3, root %#x\) in ring 3: CR2 %#x is not "
                        r"mapped in the active root 'probe' \(%#x\) \(\w+ entry \d+ not present\): "
                        r"the program touched a kernel address it was never given; no VMA covers %#x: the kernel "
                        r"kills the process \(.*\)" % (root, UNMAPPED, root, UNMAPPED), last), last
