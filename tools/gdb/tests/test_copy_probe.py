"""fault-why's copy probe (pagoda_gdb/faults.py _fixup_story) calls the kernel's own user copy in
the guest, from the null page, to see what its fix-up returns. It must open user access the way
a UserAccessScope does (RFLAGS.AC set; PSTATE.PAN clear): with the guard up, the kernel's fault
handler took the probe for a copy made outside a scope ("USER COPY WITH THE GUARD ON") and QEMU's
log then showed such a copy, which fault-why's next verdict and the grader's copy-guard rule
both read as the student's bug (in one --why run of the lab mutants, 22 of 201 verdicts named
it falsely).

One boot of the reference per ISA: GDB stops at the first exit of `hello` (kernel code, processes
live, nothing wrong), where fault-why runs the probe; QEMU's log must show the probe's fault (so
the probe ran) with the guard open, and the kernel must not have printed its notice."""
import pytest

import gdbrig
from gdbrig import Machine, run_steps
from pagoda_core import faultlog, kernelinfo
from pagoda_pt.isa import isa
from pagoda_pt.kernelnames import KernelNames
from pagoda_pt import contract as C

pytestmark = [pytest.mark.skipif(bool(gdbrig.missing_tools()), reason=gdbrig.missing_tools()),
              pytest.mark.timeout(240)]

NOTICE = "USER COPY WITH THE GUARD ON"
PROBE_ADDRESS = 0x0      # faults.PROBE_ADDRESS: the null page


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_copy_probe_opens_user_access_like_a_scope(arch):
    kernel = gdbrig.build_kernel(arch)
    copy = gdbrig.kernel_symbol(kernel, C.X86.USER_COPY if arch == "x86_64" else C.AARCH64.USER_COPY)
    steps = [("brk", "cmd", f"break {C.EXIT}"), ("go", "cmd", "continue"),
             ("why", "cmd", "fault-why")]
    with Machine(kernel, int_log=True, cmdline="run=hello", arch=arch) as machine:
        steps.insert(0, ("log", "cmd", f"set pagoda-qemu-log {machine.int_log}"))
        results = run_steps(kernel, machine.socket, steps, attach="--no-entry")
        serial = machine.serial_text()
        names = KernelNames.read(isa(arch), kernelinfo.elf(kernel).names)
        faults = faultlog.parse_file(machine.int_log, arch, names).faults
    assert not results["why"].error, results["why"].error
    probe = [f for f in faults if f.address == PROBE_ADDRESS and copy <= f.pc < copy + 0x100]
    assert probe, f"the probe's fault at {PROBE_ADDRESS:#x} is not in QEMU's log: {faults[-5:]}"
    assert NOTICE not in serial, serial[-1500:]
    assert "UserAccessScope" not in results["why"].output, results["why"].output
