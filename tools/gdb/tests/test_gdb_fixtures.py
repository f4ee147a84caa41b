"""fault-why and pt-top on deliberately broken kernels (arch/x86_64/fixtures/paging_bugs.cpp),
each a paging bug real kernels make: the verdict line must name the cause.

Each machine runs with QEMU's exception log (as ./pagoda gdb --int-log), so the chain in the
verdict comes from what the CPU did; the addresses in the verdicts are checked against what
the fixture printed and against CR3 as GDB reads it. The fixtures that switch roots through
the kernel's AddressSpace::activate() are booted with vm_check=off here: the kernel's own
pre-switch check would refuse them (grade/harness_tests/test_paging_bugs.py checks that), and
the raw death is what fault-why must explain.
"""
import re

import pytest

import gdbrig
from gdbrig import Machine, run_steps
from pagoda_core import faultlog, kernelinfo
from pagoda_pt.isa import isa
from pagoda_pt.kernelnames import KernelNames
from pagoda_pt.regs import decode_pf_error

pytestmark = [pytest.mark.skipif(bool(gdbrig.missing_tools()), reason=gdbrig.missing_tools()),
              pytest.mark.timeout(180)]

HEX = r"0x[0-9a-f]+"


@pytest.fixture(scope="module")
def kernel():
    return gdbrig.build_kernel(fixtures=True)


def diagnose(kernel, test, go=("cmd", "continue"), extra=(), int_log=True, cmdline="", faults=None):
    """Boots @p test, lets it die (or interrupts it), runs fault-why, pt-top and @p extra;
    returns (results, serial text, the verdict line). With @p faults (a list): the exceptions
    QEMU's log shows the CPU took are appended to it."""
    steps = [("go", *go), ("why", "cmd", "fault-why"), ("top", "cmd", "pt-top"),
             ("cr3", "eval", "$cr3")] + list(extra)
    with Machine(kernel, test=test, int_log=int_log, cmdline=cmdline) as machine:
        if int_log:
            steps.insert(0, ("log", "cmd", f"set pagoda-qemu-log {machine.int_log}"))
        results = run_steps(kernel, machine.socket, steps, attach="--no-entry")
        serial = machine.serial_text()
        if faults is not None:
            names = KernelNames.read(isa("x86_64"), kernelinfo.elf(kernel).names)
            faults += faultlog.parse_file(machine.int_log, "x86_64", names).faults
    assert not results["why"].error, results["why"].error
    lines = results["why"].output.strip().split("\n")
    assert lines[-1].startswith("verdict: "), results["why"].output
    assert sum(line.startswith("verdict: ") for line in lines) == 1
    return results, serial, lines[-1]


def printed(serial, pattern):
    m = re.search(pattern, serial)
    assert m, serial[-2000:]
    return [int(v, 16) for v in m.groups()]


def test_new_root_without_the_running_stack(kernel):
    r, serial, verdict = diagnose(kernel, "bug_stack_root", extra=[("bt", "cmd", "bt")],
                                  cmdline="vm_check=off")
    top, root = printed(serial, r"on the stack at (0x[0-9a-f]+), activating root (0x[0-9a-f]+)")
    assert r["cr3"].value & ~0xFFF == root
    m = re.fullmatch(r"verdict: CR2 (%s) \(the first #PF, in QEMU's log\) (equals) the "
                     r"interrupted stack pointer: the kernel stack is not mapped in the active "
                     r"root 'proc 1' \((%s)\) \(it is mapped in root 'kernel' \(%s\)\), so the "
                     r"CPU could not push the exception frame" % (HEX, HEX, HEX), verdict)
    assert m, verdict
    assert gdbrig.logged_chain(r["why"].output) == "#PF -> #DF"
    assert top - 0x1000 < int(m.group(1), 16) < top and int(m.group(3), 16) == root
    assert "#DF double fault (vector 8)" in r["why"].output
    assert "  RSP        %s" % m.group(1).replace("0x", "0x" + "0" * (18 - len(m.group(1)))) \
        in r["why"].output                      # CR2 is the RSP in the #DF's trap frame
    # pt-top shows the hole: the kernel stacks' top-level entry is missing.
    assert re.search(r"^  \[510\] +1 MISSING: present in the kernel root", r["top"].output, re.M)
    # bt goes through the trap entry into the function the CPU was running.
    assert "x86_trap_common" in r["bt"].output and "load_root" in r["bt"].output


def test_text_mapped_only_at_its_physical_address_loops(kernel):
    """This kernel never triple-faults: each #PF's handler cannot be fetched either, so the CPU
    takes #PF after #PF. Interrupted (Ctrl-C), fault-why says so, from QEMU's log."""
    r, serial, verdict = diagnose(kernel, "bug_text_at_phys", go=("continue_for", "1.5"))
    assert "Program received signal SIGINT" in r["go"].output or not r["go"].error
    assert re.match(r"verdict: the code at RIP (%s) \(x86_vector_stubs \+ 224\) is not mapped in "
                    r"the active root (%s|'text-at-pa' \(%s\)), but its frame (%s) is mapped "
                    r"there at VA \3: the kernel text was mapped at its physical address "
                    r"instead of where it is linked" % (HEX, HEX, HEX, HEX), verdict), verdict
    assert re.search(r"^QEMU's interrupt log: .*exception storm: \d+ identical exceptions, the first: #PF page "
                     r"fault \(vector 14\) at RIP (%s), CPL 0, CR2 \1, .*the code being executed is not mapped"
                     % HEX, r["why"].output, re.M), r["why"].output
    assert "-> triple fault" not in verdict


def test_an_exception_loop_is_called_a_loop_without_the_log(kernel):
    """issue 10: interrupted in a #PF loop, fault-why claimed '#PF -> #DF -> triple fault'."""
    _, _, verdict = diagnose(kernel, "bug_text_at_phys", go=("continue_for", "1.0"),
                             int_log=False)
    assert "triple fault)" not in verdict.replace("not a triple fault)", "")
    assert re.search(r"\(the CPU is faulting on the first instruction of the #PF handler \(RIP = "
                     r"CR2 = %s\): an exception loop, not a triple fault; ./pagoda gdb --int-log "
                     % HEX, verdict), verdict


def test_mapping_written_into_a_root_that_is_not_active(kernel):
    r, serial, verdict = diagnose(kernel, "bug_inactive_root")
    page, other, active = printed(serial, r"mapped (0x[0-9a-f]+) in root (0x[0-9a-f]+); the "
                                          r"active root is (0x[0-9a-f]+)")
    assert verdict == ("verdict: CR2 %#x is mapped in root 'proc 1' (%#x), not in the active root "
                       "'kernel' (%#x): the mapping was written into a root that is not the "
                       "active one" % (page, other, active))
    assert gdbrig.logged_chain(r["why"].output) == "#PF"


def test_empty_root_loaded(kernel):
    r, serial, verdict = diagnose(kernel, "bug_empty_root")
    (root,) = printed(serial, r"loading root (0x[0-9a-f]+)")
    assert verdict == ("verdict: the active root 'proc 1' (%#x) is empty: none of its 512 "
                       "top-level entries is present, so no address is mapped (not even the "
                       "code at RIP)" % root)
    assert gdbrig.logged_chain(r["why"].output) == "#PF -> #DF -> triple fault"
    assert "QEMU paused the machine at a shutdown or reset" in r["why"].output


def test_process_root_without_the_kernel_half(kernel):
    r, serial, verdict = diagnose(kernel, "bug_no_kernel_half")
    (root,) = printed(serial, r"loading root (0x[0-9a-f]+)")
    assert re.fullmatch(r"verdict: the active root 'proc 1' \(%#x\) has no kernel half \(0 of 256 "
                        r"kernel-half entries present; the kernel root 'kernel' \(%s\) has 256\): "
                        r"the kernel's code, stacks and handlers are not mapped in it" % (root, HEX), verdict), verdict
    assert gdbrig.logged_chain(r["why"].output) == "#PF -> #DF -> triple fault"
    top = r["top"].output
    assert "problem: this root has no kernel half (the kernel root has 256 entries there)" in top
    assert re.search(r"^  \[0\] +present -> .* not in the kernel root$", top, re.M), top


def test_tables_linked_without_the_writable_bit(kernel):
    r, serial, verdict = diagnose(kernel, "bug_table_no_rw")
    (page,) = printed(serial, r"writing to (0x[0-9a-f]+)")
    assert verdict == ("verdict: CR2 %#x: a write to a read-only page (RW=0 in PML4[192], PDPT[0], "
                       "PD[0]): the table entries on the way deny it while the leaf PT[0] allows "
                       "it; on x86_64 every level must allow an access, so the tables were linked "
                       "without RW" % page)
    assert gdbrig.logged_chain(r["why"].output) == "#PF"


def test_virtual_address_stored_in_a_table_entry(kernel):
    faults = []
    r, _, verdict = diagnose(kernel, "bug_va_in_entry", faults=faults)
    m = re.fullmatch(r"verdict: PD\[0\] = (0x000f8[0-9a-f]{11}) holds (0xffff8[0-9a-f]{11}), which "
                     r"looks like a kernel virtual address, not a physical one: a table entry "
                     r"must hold the physical address of the next table \(virt_to_phys\)", verdict)
    assert m, verdict
    assert gdbrig.logged_chain(r["why"].output) == "#PF"
    entry, va = int(m.group(1), 16), int(m.group(2), 16)
    assert entry & 0x000F_FFFF_FFFF_F000 == va & 0x000F_FFFF_FFFF_F000
    # The error code is the CPU's, and QEMUs differ: 7.2 pushes 0x8 [RSVD], 6.2 0x9 [P RSVD] (as
    # the SDM has it: a reserved-bit fault is on a present entry). fault-why must show the code
    # the CPU pushed, as QEMU's log has it, decoded, and this fault has RSVD on both.
    (pf, *_) = [f for f in faults if f.mnemonic == "#PF"] or [None]
    assert pf and pf.error is not None, faults
    error = decode_pf_error(pf.error)
    assert error.reserved_bit, faults
    assert "#PF error %#x [%s]: %s" % (error.code, " ".join(error.flags), error.summary) in r["why"].output


def test_a_section_end_rounded_down(kernel):
    """The text mapped up to its last whole page: the kernel runs on until it calls code on the
    last, partial one."""
    r, serial, verdict = diagnose(kernel, "bug_section_end", cmdline="vm_check=off")
    root, last, end = printed(serial, r"activating root (0x[0-9a-f]+): the text mapped up to "
                                      r"(0x[0-9a-f]+), but it ends at (0x[0-9a-f]+)")
    m = re.fullmatch(r"verdict: the code at RIP (%s) \((?:\w+::)*\(anonymous namespace\)::"   # (the fixture's own function)
                     r"on_the_last_text_page\(\)\) is on the last page of \.text \((%s)-(%s)\), "
                     r"which the active root 'text-rounded' \(%#x\) does not map while the rest "
                     r"of \.text is mapped: the section's end %#x was rounded down instead of up "
                     r"when it was mapped" % (HEX, HEX, HEX, root, end), verdict)
    assert m, verdict
    assert gdbrig.logged_chain(r["why"].output) == "#PF"
    assert int(m.group(1), 16) & ~0xFFF == last and int(m.group(3), 16) == end - 1
    assert r["cr3"].value & ~0xFFF == root


def test_code_not_mapped_after_a_switch_storms(kernel):
    """No text in the new root: neither the next instruction nor any handler can be fetched, a
    #PF storm with RIP == CR2 that never ends by itself (interrupted here). Each #PF pushes a
    frame, so the storm runs the stack down through .bss and .data, over the table of
    published roots: the roots may have lost their names by the time GDB looks (and the log may
    be whole, "N x", or cut, "at least N x", depending on how far the storm ran under load)."""
    r, serial, verdict = diagnose(kernel, "bug_code_unmapped", go=("continue_for", "1.5"),
                                  cmdline="vm_check=off")
    (root,) = printed(serial, r"activating root (0x[0-9a-f]+): no kernel text in it")
    named = r"is mapped in root 'kernel' \(%s\), not in the active root 'no-text' \(%#x\)" % (HEX, root)
    clobbered = r"is not mapped in the active root %#x \(PT entry \d+ not present\)" % root
    m = re.match(r"verdict: the code at RIP (%s) \(x86_vector_stubs \+ 224\) (%s|%s): the CPU "
                 r"cannot fetch it$" % (HEX, named, clobbered), verdict)
    assert m, verdict
    assert re.search(r"^QEMU's interrupt log: .*exception storm: \d+ identical exceptions, the first: #PF page "
                     r"fault \(vector 14\) at RIP %s, CPL 0, CR2 %s, .*the code being executed is not mapped"
                     % (m.group(1), m.group(1)), r["why"].output, re.M), r["why"].output
    assert r["cr3"].value & ~0xFFF == root
