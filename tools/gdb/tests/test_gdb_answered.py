"""fault-why at a fault the kernel answers, on both ISAs: a program's first fetch (a demand fault,
lab 5) and a forked child's first write to a page it shares (a copy-on-write fault, lab 6), GDB
stopped in vm::handle_fault before the kernel decides. No line may call either a kill: the
verdict names the answer, and the user-mode line says the process ends only unless the kernel
resolves the fault (AArch64's said "the kernel ends that process" at every fault from EL0)."""
import re

import pytest

import gdbrig
from pagoda_pt import contract as C
from gdbrig import Machine, run_steps

QEMUS = {"x86_64": gdbrig.QEMU, "aarch64": gdbrig.QEMU_AARCH64}
ARCHES = [pytest.param(a, marks=pytest.mark.skipif(bool(gdbrig.missing_tools(q)),
                                                   reason=gdbrig.missing_tools(q)))
          for a, q in QEMUS.items()]
pytestmark = pytest.mark.timeout(240)

# A line that says the process dies, with no "unless" before it.
KILL_WORDS = re.compile(r"kills the process|ends that process|killed")


def why_at(arch, program, condition):
    kernel = gdbrig.build_kernel(arch)
    steps = [("brk", "cmd", f"break {C.HANDLE_FAULT} if {condition}"), ("go", "cmd", "continue"),
             ("why", "cmd", "fault-why")]
    with Machine(kernel, cmdline="run=" + program, arch=arch) as machine:
        r = run_steps(kernel, machine.socket, steps, attach="--no-entry --no-panic-break")
    assert not r["why"].error, r["why"].error
    return r["why"].output


def kill_lines(text):
    return [line for line in text.splitlines() if KILL_WORDS.search(line.split("unless")[0])]


@pytest.mark.parametrize("arch", ARCHES)
def test_a_demand_fault_is_no_kill(arch):
    text = why_at(arch, "hello", "access.execute")
    verdict = text.strip().splitlines()[-1]
    assert verdict.startswith("verdict: process 'hello'") and ": a demand fault: 0x400000 lies in the VMA" in verdict, text
    assert "raised in user mode by process 'hello'" in text, text
    assert not kill_lines(text), kill_lines(text)


@pytest.mark.parametrize("arch", ARCHES)
def test_a_copy_on_write_fault_is_no_kill(arch):
    text = why_at(arch, "cowtest", f"access.write && {C.CURRENT_PROCESS.expr}()->pid == 2")
    verdict = text.strip().splitlines()[-1]
    assert verdict.startswith("verdict: process 'cowtest' (pid 2") and ": a copy-on-write fault: " in verdict, text
    assert not kill_lines(text), kill_lines(text)
