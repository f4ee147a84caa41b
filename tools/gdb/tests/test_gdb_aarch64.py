"""The GDB commands against the AArch64 kernel in QEMU, checked against QEMU's own walk
(`monitor gva2gpa`) and the registers GDB reads itself ($TTBR0_EL1, $TTBR1_EL1, $TCR_EL1,
$SCTLR): at kmain on the boot tables (TTBR0 maps RAM to itself with 1 GiB blocks, TTBR1 the
image at the top of the address space), after vm::init on the kernel's own, and fault-why on a
permission fault and on an exception loop."""
import re

import pytest

import gdbrig
from gdbrig import Machine, monitor_gva2gpa, run_steps
from pagoda_pt import contract as C

pytestmark = [pytest.mark.skipif(bool(gdbrig.missing_tools(gdbrig.QEMU_AARCH64)),
                                 reason=gdbrig.missing_tools(gdbrig.QEMU_AARCH64)),
              pytest.mark.timeout(180)]   # (one test sets up both stops: two GDB sessions' worth)

UNMAPPED = 0x0000500000000000          # TTBR0 range, L0 entry 160: never mapped
RAM = 0x40000000

_PA = re.compile(r"-> PA (0x[0-9a-f]+) \((.*)\)")
_REG = re.compile(r"^(TTBR0_EL1|TTBR1_EL1|TCR_EL1|MAIR_EL1|SCTLR_EL1)\s+(0x[0-9a-f]+)$", re.M)


@pytest.fixture(scope="module")
def kernel():
    return gdbrig.build_kernel("aarch64")


# The steps at kmain, on the boot tables.
AT_KMAIN = [("brk", "cmd", f"break {C.KMAIN}"), ("go", "cmd", "continue"),
            ("kmain", "eval", f"&{C.KMAIN}"),
            ("walk_text", "cmd", f"pt-walk &{C.KMAIN}"),
            ("qemu_text", "cmd", "monitor gva2gpa {kmain:#x}"),
            ("data", "eval", "&__data_start"),
            ("walk_data", "cmd", "pt-walk &__data_start"),
            ("qemu_data", "cmd", "monitor gva2gpa {data:#x}"),
            ("walk_low", "cmd", f"pt-walk {RAM + 0x123456:#x}"),
            ("qemu_low", "cmd", f"monitor gva2gpa {RAM + 0x123456:#x}"),
            ("walk_unmapped", "cmd", f"pt-walk {UNMAPPED:#x}"),
            ("qemu_unmapped", "cmd", f"monitor gva2gpa {UNMAPPED:#x}"),
            ("regs", "cmd", "pt-regs"),
            ("ttbr0", "eval", "$TTBR0_EL1"), ("ttbr1", "eval", "$TTBR1_EL1"),
            ("tcr", "eval", "$TCR_EL1"), ("sctlr", "eval", "$SCTLR")]

# The steps at timer_init, after vm::init switched to the kernel's own address space.
ON_KERNEL_TABLES = [("brk", "cmd", f"break {C.AARCH64.TIMER_INIT}"), ("go", "cmd", "continue"),
                    ("kmain", "eval", f"&{C.KMAIN}"),
                    ("walk_text", "cmd", f"pt-walk &{C.KMAIN}"),
                    ("qemu_text", "cmd", "monitor gva2gpa {kmain:#x}"),
                    ("walk_low", "cmd", f"pt-walk {RAM + 0x123456:#x}"),
                    ("qemu_low", "cmd", f"monitor gva2gpa {RAM + 0x123456:#x}"),
                    ("walk_window", "cmd", "pt-walk 0xffff800000200000"),
                    ("qemu_window", "cmd", "monitor gva2gpa 0xffff800000200000"),
                    ("regs", "cmd", "pt-regs"), ("sctlr", "eval", "$SCTLR"),
                    ("dump", "cmd", "pt-dump"), ("dump_user", "cmd", "pt-dump --user"),
                    ("qemu_uart", "cmd", "monitor gva2gpa 0xffffc00009000000"),
                    ("diff", "cmd", "pt-diff $TTBR1_EL1 $TTBR1_EL1"),
                    ("top", "cmd", "pt-top"), ("top_kernel", "cmd", "pt-top --root $TTBR1_EL1"),
                    ("ttbr1", "eval", "$TTBR1_EL1")]


@pytest.fixture(scope="module")
def stops(kernel):
    """One boot, read at two stops: kmain (the boot tables), then timer_init (the kernel's own,
    which vm::init switched to in between). Nothing here changes the machine, so the second
    stop is the one a boot of its own would reach. {stop: {step name: Step}}."""
    stops = {"kmain": AT_KMAIN, "tables": ON_KERNEL_TABLES}
    steps = [(f"{stop}__{name}", kind, re.sub(r"\{(\w+)", rf"{{{stop}__\1", text))   # {kmain:#x}: this stop's
             for stop, listed in stops.items() for name, kind, text in listed]
    with Machine(kernel, arch="aarch64") as machine:
        results = run_steps(kernel, machine.socket, steps, timeout=gdbrig.GDB_TIMEOUT * len(stops))
    out = {stop: {name.split("__", 1)[1]: step for name, step in results.items() if name.startswith(stop + "__")}
           for stop in stops}
    for stop, r in out.items():
        assert not r["go"].error, (stop, r["go"].error)
    return out


@pytest.fixture(scope="module")
def at_kmain(stops):
    return stops["kmain"]


def walk_pa(output):
    m = _PA.search(output)
    assert m, output
    return int(m.group(1), 16)


def test_attach_stops_at_the_entry(kernel):
    with Machine(kernel, arch="aarch64") as machine:
        r = run_steps(kernel, machine.socket, [("pc", "eval", "$pc"), ("entry", "eval", "&_start")],
                      attach="--no-panic-break")
    assert r["pc"].value == r["entry"].value == 0x40200000


def test_kernel_half_walks_through_ttbr1_like_qemu(at_kmain):
    r = at_kmain
    for name in ("text", "data"):
        walk = r[f"walk_{name}"]
        assert not walk.error, walk.error
        assert walk_pa(walk.output) == monitor_gva2gpa(r[f"qemu_{name}"].output)
        # TTBR1's root, L0 slot 511, L1 slot 510: where boot.S puts the image.
        assert re.search(r"L0 +\[511\] @ 0x%016x" % (r["ttbr1"].value + 511 * 8), walk.output), walk.output
        assert re.search(r"L1 +\[510\]", walk.output), walk.output
    assert walk_pa(r["walk_text"].output) == r["kmain"].value - 0xffffffff80000000 + RAM


def test_lower_half_walks_through_ttbr0_like_qemu(at_kmain):
    r = at_kmain
    assert walk_pa(r["walk_low"].output) == monitor_gva2gpa(r["qemu_low"].output) == RAM + 0x123456
    assert re.search(r"L0 +\[  0\] @ 0x%016x" % r["ttbr0"].value, r["walk_low"].output), r["walk_low"].output
    assert "1 GiB page" in r["walk_low"].output


def test_unmapped_lower_address_stops_at_l0(at_kmain):
    r = at_kmain
    assert monitor_gva2gpa(r["qemu_unmapped"].output) is None
    text = r["walk_unmapped"].output
    assert "-> PA" not in text
    assert re.search(r"L0 +\[160\]", text), text


def test_regs_are_gdbs_own(at_kmain):
    r = at_kmain
    shown = {m.group(1): int(m.group(2), 16) for m in _REG.finditer(r["regs"].output)}
    assert shown["TTBR0_EL1"] == r["ttbr0"].value
    assert shown["TTBR1_EL1"] == r["ttbr1"].value
    assert shown["TCR_EL1"] == r["tcr"].value
    assert shown["SCTLR_EL1"] == r["sctlr"].value
    assert r["tcr"].value & 0x3f == 16 and (r["tcr"].value >> 16) & 0x3f == 16   # T0SZ = T1SZ = 16
    assert "MMU on" in r["regs"].output


# ---- On the kernel's own tables (after vm::init), and fault-why ------------------------------

@pytest.fixture(scope="module")
def on_kernel_tables(stops):
    """Stopped at timer_init, after vm::init switched to the kernel's own address space."""
    return stops["tables"]


def test_the_kernels_own_tables_agree_with_qemu(on_kernel_tables):
    r = on_kernel_tables
    assert walk_pa(r["walk_text"].output) == monitor_gva2gpa(r["qemu_text"].output)
    assert "4 KiB page, R X" in r["walk_text"].output    # text r-x in 4 KiB pages, not the boot blocks
    assert walk_pa(r["walk_window"].output) == monitor_gva2gpa(r["qemu_window"].output) == RAM + 0x200000
    # After lab 2 the kernel's TTBR0 is empty: the old identity map is gone.
    assert monitor_gva2gpa(r["qemu_low"].output) is None
    assert re.search(r"L0 +\[  0\]", r["walk_low"].output) and "-> PA" not in r["walk_low"].output
    assert r["sctlr"].value & (1 << 19), "SCTLR_EL1.WXN is on with the kernel's tables"


def test_pt_top_lists_ttbr0s_root_and_checks_ttbr1_holds_the_kernel_root(on_kernel_tables):
    r = on_kernel_tables
    top, kernel_top = r["top"].output, r["top_kernel"].output
    assert not r["top"].error and not r["top_kernel"].error, (r["top"].error, r["top_kernel"].error)
    # TTBR0's root after lab 2: empty, and not compared entry by entry with the kernel's (TTBR1) root.
    assert "[0..511]     512 empty" in top and "MISSING" not in top, top
    kernel_root = r["ttbr1"].value & ((1 << 48) - 1)
    assert "TTBR1_EL1 holds the kernel root %#x 'kernel'" % kernel_root in top, top
    # TTBR1's root: the window (L0 256), the devices (384) and the image (511).
    assert "L0 table of root %#x 'kernel'" % kernel_root in kernel_top, kernel_top
    for index in (256, 384, 511):
        assert re.search(r"\[%d\] +present" % index, kernel_top), kernel_top


@pytest.fixture(scope="module")
def faults(kernel):
    """fault-why in the write-to-text self-test's trap handler, and twice in the triple_fault
    self-test (VBAR_EL1 = 0): at its vector, stopped by a hardware breakpoint before the CPU
    tries to fetch there, and in the exception loop that follows, stopped by Ctrl-C.
    (Not by continuing from the breakpoint: to step over a breakpoint GDB 12, Ubuntu 22.04's,
    first reads the instruction at the PC, and 0x200 is not mapped: "Cannot access memory at
    address 0x200", and the machine never takes the second exception. GDB 13 and later step
    there.)"""
    results = {}
    with Machine(kernel, test="vm_write_text", arch="aarch64") as machine:
        results.update(run_steps(kernel, machine.socket, [
            ("go", "cmd", "continue"), ("write_text", "cmd", "fault-why"),
            ("far", "eval", "$FAR_EL1"), ("qemu_far", "cmd", "monitor gva2gpa {far:#x}"),
            ("kmain", "eval", f"&{C.KMAIN}")], attach="--no-entry"))
    with Machine(kernel, test="triple_fault", arch="aarch64") as machine:
        results.update(run_steps(kernel, machine.socket, [
            ("hb", "cmd", "hbreak *0x200"), ("go1", "cmd", "continue"), ("vector", "cmd", "fault-why"),
            ("unbreak", "cmd", "delete"), ("go2", "continue_until", "$ELR_EL1 == 0x200"),
            ("loop", "cmd", "fault-why")], attach="--no-entry --no-panic-break"))
    return results


def test_fault_why_explains_a_write_to_kernel_text(faults):
    text = faults["write_text"].output
    assert not faults["write_text"].error, faults["write_text"].error
    assert re.search(r"trap frame at 0x[0-9a-f]+ \(aarch64_trap, frame #\d+\)", text), text
    assert "data abort, same EL (EC 0x25) in kernel mode (EL1)" in text
    assert "ESR        0x9600004f: permission fault at level 3, write" in text
    assert "FAR        0x%016x" % faults["kmain"].value in text
    assert "walk of FAR through TTBR1_EL1" in text
    assert walk_pa(text) == monitor_gva2gpa(faults["qemu_far"].output)
    assert "verdict: a write to a read-only page (AP[2]=1)" in text


def test_fault_why_at_a_vector_it_cannot_fetch(faults):
    """The first stop: the undefined instruction was taken to VBAR_EL1 + 0x200, which nothing
    maps; the CPU has not tried the fetch yet, so ELR_EL1 is still the kernel's."""
    assert not faults["go1"].error, faults["go1"].error
    text = faults["vector"].output
    assert "no trap frame" in text
    assert re.search(r"ESR_EL1 +0x02000000: .*\(the last exception taken\)", text), text
    assert re.search(r"ELR_EL1 +0xffff[0-9a-f]{12}\n", text), text
    assert re.search(r"PC +0x0000000000000200 NOT MAPPED", text), text
    assert "PC, VBAR not usable: an exception there faults again, at the same vector, forever" in text
    assert "an exception loop" not in text


def test_fault_why_names_an_exception_loop(faults):
    assert not faults["go2"].error, faults["go2"].error
    text = faults["loop"].output
    assert "no trap frame" in text
    assert "VBAR_EL1   0x0000000000000000" in text
    assert re.search(r"PC +0x0000000000000200 NOT MAPPED", text), text
    assert "an exception loop" in text


_RUN = re.compile(r"^(0x[0-9a-f]{16})-(0x[0-9a-f]{16}) +.* -> (0x[0-9a-f]{16})  ([r-][w-][x-]) ([uk])", re.M)


def test_dump_and_diff_of_the_kernels_tables(on_kernel_tables):
    r = on_kernel_tables
    runs = [(int(a, 16), int(b, 16), int(pa, 16), perms, who) for a, b, pa, perms, who in _RUN.findall(r["dump"].output)]
    assert runs, r["dump"].output
    assert all(who == "k" for *_, who in runs)
    assert all(start >= 0xffff_0000_0000_0000 for start, *_ in runs), "something is mapped in TTBR0"
    text = [run for run in runs if run[0] <= r["kmain"].value < run[1]]
    assert len(text) == 1 and text[0][3] == "r-x"
    assert not any("w" in perms and "x" in perms for *_, perms, _ in runs), "a run is writable and executable"
    uart = [run for run in runs if run[0] == 0xffff_c000_0900_0000]
    assert uart and uart[0][2] == monitor_gva2gpa(r["qemu_uart"].output) == 0x0900_0000
    assert "0 runs" in r["dump_user"].output
    assert "no differences" in r["diff"].output
