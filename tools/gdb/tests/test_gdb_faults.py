"""fault-why on the kernel's own fault self-tests: a page fault and a triple fault."""
import re

import pytest

import gdbrig
from gdbrig import Machine, run_steps
from pagoda_pt import contract as C

pytestmark = [pytest.mark.skipif(bool(gdbrig.missing_tools()), reason=gdbrig.missing_tools()),
              pytest.mark.timeout(120)]

_FRAME = re.compile(r"trap frame at (0x[0-9a-f]+) \(x86_trap, frame #(\d+)\)")


@pytest.fixture(scope="module")
def kernel():
    return gdbrig.build_kernel()


@pytest.fixture(scope="module")
def page_fault(kernel):
    """The pf self-test, stopped first in x86_trap (its `frame` argument is live), then in
    panic_end (where x86_trap's `frame` is optimized out)."""
    steps = [("b1", "cmd", "break x86_trap"), ("go1", "cmd", "continue"),
             ("in_trap", "cmd", "fault-why"),
             ("frame_arg", "eval", "frame"), ("rip", "eval", "frame->rip"),
             ("error", "eval", "frame->error"), ("cr2", "eval", "$cr2"),
             ("qemu_cr2", "cmd", "monitor gva2gpa {cr2:#x}"),
             ("b2", "cmd", f"break {C.PANIC_END}"), ("d", "cmd", "delete 1"),
             ("go2", "cmd", "continue"),
             ("in_panic", "cmd", "fault-why"), ("bt", "cmd", "bt")]
    with Machine(kernel, test="pf") as machine:
        results = run_steps(kernel, machine.socket, steps)
        results["serial"] = gdbrig.Step("serial", machine.serial_text())
    for name in ("go1", "go2"):
        assert not results[name].error, results[name].error
    return results


def test_page_fault_in_the_trap_handler(page_fault):
    r = page_fault
    text = r["in_trap"].output
    assert not r["in_trap"].error, r["in_trap"].error
    m = _FRAME.search(text)
    assert m and int(m.group(1), 16) == r["frame_arg"].value and m.group(2) == "0"
    assert "#PF page fault (vector 14) in kernel mode (CPL 0)" in text
    assert "RIP        0x%016x" % r["rip"].value in text
    assert "#PF error %#x [" % r["error"].value in text
    assert "at 0x%016x" % r["cr2"].value in text
    # The kernel's own report names the same address, and QEMU agrees it is unmapped.
    assert "CR2 0x%016x" % r["cr2"].value in r["serial"].output
    assert "Unmapped" in r["qemu_cr2"].output
    assert "walk of CR2 in the active root 'kernel' (0x" in text
    assert re.search(r"stopped: PML4 entry \d+ not present", text)
    assert re.search(r"^verdict: CR2 0x%x is not mapped in the active root 'kernel' "
                     r"\(0x[0-9a-f]+\) \(PML4 entry \d+ not present\)" % r["cr2"].value, text,
                     re.M), text


def test_page_fault_from_panic_end_finds_the_same_frame(page_fault):
    r = page_fault
    text = r["in_panic"].output
    assert not r["in_panic"].error, r["in_panic"].error
    m = _FRAME.search(text)
    assert m, text
    assert int(m.group(1), 16) == r["frame_arg"].value   # found without the `frame` variable
    assert int(m.group(2)) > 0
    assert text[m.end():] == r["in_trap"].output[_FRAME.search(r["in_trap"].output).end():]


def test_backtrace_goes_through_the_trap_into_the_faulting_function(page_fault):
    """The trap entry's unwind information (arch/x86_64/vectors.S): from panic_end, bt passes
    x86_trap and x86_trap_common and goes on in the function the CPU was running when it
    faulted, with its RIP, down to the first frame on the kernel's own stack (where
    vm::enter_kernel_space() moved: arch::run_on_stack()), and no further."""
    r = page_fault
    frames = re.findall(r"^#(\d+) +(?:(0x[0-9a-f]+) in )?(\S+)", r["bt"].output, re.M)
    names = [name for _, _, name in frames]
    assert names[:4] == ["pagoda::panic_end", "pagoda::panic<char", "x86_trap",
                         "x86_trap_common"], r["bt"].output
    assert names[4:] == ["pagoda::pagoda_selftest_pf", "pagoda::run_selftest", "pagoda::(anonymous",
                         "pagoda::vm::(anonymous", "pagoda::vm::(anonymous", "pagoda_run_on_stack"], r["bt"].output
    assert int(frames[4][1], 16) == r["rip"].value      # the faulting instruction itself
    assert "??" not in r["bt"].output and "corrupt stack" not in r["bt"].output


def test_triple_fault(kernel):
    with Machine(kernel, test="triple_fault", int_log=True) as machine:
        results = run_steps(kernel, machine.socket, [
            ("log", "cmd", f"set pagoda-qemu-log {machine.int_log}"),
            ("go", "cmd", "continue"),
            ("why", "cmd", "fault-why"), ("regs", "cmd", "pt-regs"),
            ("insn", "cmd", "x/i $pc")])
    why = results["why"].output
    assert not results["why"].error, results["why"].error
    assert "no trap frame" in why
    assert "QEMU paused the machine at a shutdown or reset" in why
    assert "ud2" in why and "ud2" in results["insn"].output
    assert "IDT          base 0x0000000000000000 limit 0x0 (0 vectors, 16-byte long-mode gates)" \
        in why
    assert "verdict: the IDT (base 0x0, limit 0x0) is empty: no exception can be delivered" in why
    assert re.search(r"RIP +0x[0-9a-f]+ ok -> PA", why)
    assert "#UD -> #GP -> #DF" in why and "triple fault" in why
    assert gdbrig.logged_chain(why) == "#UD -> #GP -> #DF -> triple fault"
    assert "EMPTY: no exception can be delivered" in results["regs"].output
