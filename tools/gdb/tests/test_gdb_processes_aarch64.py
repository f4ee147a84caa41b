"""The GDB commands on an AArch64 kernel running processes (lab 3): pt-ps lists them with their
TTBR0 roots, --root takes a process id, and fault-why explains an abort raised at EL0 as the
process's, killed by the kernel.

One boot runs `spin` and two `probe`s, one reading kernel data (mapped, EL1 only), one a kernel
address nothing maps; GDB stops in proc::user_fault twice. The roots the commands name are
checked against TTBR0_EL1 and against each other; nothing here trusts what the kernel printed.
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
TTBR_BADDR = 0x0000_FFFF_FFFF_F000


@pytest.fixture(scope="module")
def stopped():
    kernel = gdbrig.build_kernel("aarch64")
    probed = gdbrig.kernel_symbol(kernel, C.ROOT_REGISTRY)      # kernel data: an EL1-only page
    steps = [("brk", "cmd", f"break {C.USER_FAULT}"), ("go", "cmd", "continue"),
             ("ttbr0", "eval", "$TTBR0_EL1"), ("ps", "cmd", "pt-ps"), ("why", "cmd", "fault-why"),
             ("walk1", "cmd", f"pt-walk {gdbrig.argument_page(kernel):#x} --root 1"),
             ("walk2", "cmd", f"pt-walk {gdbrig.argument_page(kernel):#x} --root 2"),
             ("go2", "cmd", "continue"), ("why2", "cmd", "fault-why")]
    cmdline = f"run=spin:{0x4000_0000:#x},probe:read:{probed:#x},probe:read:{UNMAPPED:#x}"
    with Machine(kernel, cmdline=cmdline, arch="aarch64") as machine:
        results = run_steps(kernel, machine.socket, steps, attach="--no-entry")
    for name in ("ps", "why", "walk1", "walk2", "why2"):
        assert not results[name].error, (name, results[name].error)
    results["probed"] = probed
    return results


def faulted(stopped, step):
    last = stopped[step].output.strip().splitlines()[-1]
    m = re.match(r"verdict: process 'probe' \(pid (\d+), root (%s)\) in EL0: " % HEX, last)
    assert m, last
    return int(m.group(1)), int(m.group(2), 16), last


def test_ps_lists_the_processes_with_their_ttbr0_roots(stopped):
    rows = gdbrig.ps_rows(stopped["ps"].output)
    assert set(rows) == {1, 2, 3}, stopped["ps"].output
    assert [rows[p][1] for p in (1, 2, 3)] == ["spin", "probe", "probe"]
    pid, root, _ = faulted(stopped, "why")
    assert [p for p in rows if rows[p][0]] == [pid], stopped["ps"].output
    assert rows[pid][3] == root == stopped["ttbr0"].value & TTBR_BADDR
    assert len({rows[p][3] for p in rows}) == 3


def test_root_takes_a_process_id(stopped):
    rows = gdbrig.ps_rows(stopped["ps"].output)
    assert "root: 0x%016x" % rows[1][3] in stopped["walk1"].output
    assert "root: 0x%016x" % rows[2][3] in stopped["walk2"].output
    pas = [re.search(r"-> PA (%s)" % HEX, stopped[s].output) for s in ("walk1", "walk2")]
    assert all(pas) and pas[0][1] != pas[1][1]      # the same user address, two frames


def test_fault_why_explains_an_el0_abort(stopped):
    verdicts = {}
    for step in ("why", "why2"):
        assert "raised in user mode by process 'probe'" in stopped[step].output, stopped[step].output
        pid, root, last = faulted(stopped, step)
        verdicts[pid] = last
    assert set(verdicts) == {2, 3}, verdicts
    assert "a user-mode access to a supervisor page (AP[1]=0); no VMA covers " in verdicts[2], verdicts[2]
    assert verdicts[2].endswith("the kernel kills the process (an address the program was never given, or a region "
                                "the loader never recorded)"), verdicts[2]
    assert "not a kernel bug" not in verdicts[2] + verdicts[3]
    assert "FAR %#x is not mapped in the process's address space (" % UNMAPPED in verdicts[3], verdicts[3]
    assert "the program touched a kernel address it was never given" in verdicts[3], verdicts[3]
