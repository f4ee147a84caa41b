"""GDB's `finish` from a breakpoint in fork_process (lab 6), on both ISAs: one stop, in the caller,
with the value fork_process returned, and the breakpoint stops again at the next fork.

On AArch64 the breakpoint GDB puts after fork_process's prologue heads an inlined loop (the
length of the parent's name), which `finish` met again at every turn; and the function's
Result<Process*> is returned in memory through x8, which the callee need not keep, so GDB read
the result through whatever x8 held at the return ("Cannot access memory at address 0x1") and
skipped its stop listeners. session.finish_starts() guards the one and watches the return for the
other; the pure part, where the caller's code says the result went (Isa.result_address), is tested
here on instructions as GDB disassembles them.
"""
import re

import pytest

import gdbrig
from gdbrig import Machine, run_steps
from pagoda_pt.isa import isa
from pagoda_pt import contract as C

QEMUS = {"x86_64": gdbrig.QEMU, "aarch64": gdbrig.QEMU_AARCH64}
ARCHES = [pytest.param(a, marks=pytest.mark.skipif(bool(gdbrig.missing_tools(q)),
                                                   reason=gdbrig.missing_tools(q)))
          for a, q in QEMUS.items()]

REGS = {"sp": 0xFFFF_FF00_0000_7700, "x19": 0xFFFF_0000_4000_1000, "x29": 0xFFFF_FF00_0000_7780, "x0": 5}
rule = isa("aarch64").result_address


def at_return(code):
    return rule(code, REGS.get)


def test_the_caller_s_own_instruction_says_where_the_result_went():
    call = "bl\t0xffffffff802261d4 <_ZN6pagoda4proc12fork_processERNS0_7ProcessE>"
    assert at_return(["ldr\tx19, [x0]", "add\tx8, sp, #0x10", "mov\tx0, x19", call]) == ("x8", REGS["sp"] + 0x10)
    assert at_return(["mov\tx8, x19", call]) == ("x8", REGS["x19"])
    assert at_return(["sub\tx8, x29, #0x20", "mov\tx1, #0x3", call]) == ("x8", REGS["x29"] - 0x20)
    assert at_return(["add x8, sp, #16", call]) == ("x8", REGS["sp"] + 16)


def test_no_guess_where_the_code_does_not_say():
    call = "bl\t0xffffffff802261d4"
    assert at_return(["ldr\tx8, [sp, #0x18]", call]) is None            # x8 from memory
    assert at_return(["add\tx8, x0, #0x10", call]) is None              # x0 is not kept by the call
    assert at_return(["add\tx8, x19, #0x10", "add\tx19, x19, #1", call]) is None   # its source changed after
    assert at_return(["add\tx8, sp, #0x10", "bl\t0xffffffff80200000", "mov\tx0, x19", call]) is None
    assert at_return(["mov\tw8, #0x1", call]) is None
    assert at_return([call]) is None
    assert isa("x86_64").result_address(["lea 0x10(%rsp),%rdi", "call 0x1000"], REGS.get) is None


@pytest.mark.timeout(240)
@pytest.mark.parametrize("arch", ARCHES)
def test_finish_from_fork_process_returns_once_with_its_value(arch):
    kernel = gdbrig.build_kernel(arch)
    steps = [("brk", "cmd", f"break {C.FORK}"), ("go", "cmd", "continue"), ("at", "cmd", "bt 1"),
             ("finish", "cmd", "finish"), ("where", "cmd", "bt 1"), ("returned", "cmd", "print $"),
             ("made", "cmd", "print made"), ("bps", "cmd", "info breakpoints"),
             ("go2", "cmd", "continue"), ("where2", "cmd", "bt 1")]
    with Machine(kernel, cmdline="run=forktree:basic:2", arch=arch) as machine:
        r = run_steps(kernel, machine.socket, steps, attach="--no-entry --no-panic-break")
    for name in ("go", "finish", "where", "returned", "made", "go2", "where2"):
        assert not r[name].error, (name, r[name].error, r["finish"].output)
    assert "fork_process" in r["at"].output, r["at"].output
    # One stop, in the caller: not the breakpoint again.
    assert re.match(r"#0\s+(0x[0-9a-f]+ in )?pagoda::proc::.*sys_fork \(", r["where"].output), r["where"].output
    # The value finish printed is the caller's own variable.
    # (GDB prints "Value returned" where to_string does not reach; it is the history's last value.)
    returned = r["returned"].output.split("=", 1)[1].strip()
    assert returned not in ("", "void") and returned == r["made"].output.split("=", 1)[1].strip(), \
        (r["returned"].output, r["made"].output)
    # The breakpoint's own condition is back (none), and the next fork stops at it.
    assert "stop only if" not in r["bps"].output, r["bps"].output
    assert "fork_process" in r["where2"].output, r["where2"].output
