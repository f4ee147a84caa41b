"""Lab 0 — boot and console: the grader's checks. Points and timeouts: labs/00-boot/lab.toml.

What each test witnesses and what it still believes: docs/grader.md, "What the grader trusts"."""
import re

from pagoda_pt import contract as C
from pagoda_grade import lab_test
from pagoda_grade.labtest import LabTest
from pagoda_grade.symbols import address_of
from pagoda_grade.witness import expect_fault, expect_hardware_interrupts, pick_page

MiB = 1024 * 1024
KiB = 1024
GiB = 1024 * MiB
# How much of -m the usable RAM the kernel reports may lack: (at least, at most).
# x86_64: below 1 MiB the firmware keeps some RAM (EBDA, BIOS data), at most 1 MiB; the ISA hole
# [640 KiB, 1 MiB) is never RAM, so at least that much. AArch64 (QEMU virt): all of -m is RAM
# from 0x40000000, and QEMU's device tree, a 1 MiB blob it loads at the start of RAM, stays
# reserved (docs/boot.md): exactly 1 MiB. (The kernel image is usable RAM in the map on both.)
RAM_NOT_USABLE = {"x86_64": (1 * MiB - 640 * KiB, 1 * MiB), "aarch64": (1 * MiB, 1 * MiB)}

# How each architecture raises and reports the exceptions the tests provoke: QEMU's exception
# number (x86_64: the vector; AArch64: 1 Undefined Instruction, 4 Data Abort), the report's
# lines, the stack pointer and general-register lines of the register dump.
UD = {"x86_64": dict(vector=6, report=r"TRAP: #UD invalid opcode \(vector 6\) in kernel mode, CPL 0",
                     panic=r"^PANIC: unhandled #UD", site=C.X86.UD_SITE,
                     sp=r"^\s+RSP 0x[0-9a-f]{16}\s+SS ", registers=r"^\s+RAX 0x[0-9a-f]{16}"),
      "aarch64": dict(vector=1, report=r"TRAP: undefined instruction \(EC 0x00\) in kernel mode, EL1",
                      panic=r"^PANIC: unhandled undefined instruction \(EC 0x00\)", site=C.AARCH64.UD_SITE,
                      sp=r"^\s+SP  0x[0-9a-f]{16}\s+TTBR0 ", registers=r"^\s+X0  0x[0-9a-f]{16}")}
# The write to an unmapped page: x86_64 #PF with error code 0x2; AArch64 a data abort whose ESR
# says EC 0x25 (same EL), IL, WnR (write) and DFSC 0b000100 (translation fault at level 0: the
# probe range below is under an empty L0 entry).
PF = {"x86_64": dict(vector=14, write_error=0x2,
                     report=r"TRAP: #PF page fault \(vector 14\) in kernel mode, CPL 0",
                     panic=r"^PANIC: unhandled #PF",
                     decoded=r"^\s+error 0x2: not-present page, write, supervisor$",
                     decoded_what="the decoded error code 'error 0x2: not-present page, write, supervisor'"),
      "aarch64": dict(vector=4, write_error=0x9600_0044,
                      report=r"TRAP: data abort, same EL \(EC 0x25\) in kernel mode, EL1",
                      panic=r"^PANIC: unhandled data abort, same EL \(EC 0x25\)",
                      decoded=r"^\s+ESR 0x96000044: translation fault at level 0, write$",
                      decoded_what="the decoded syndrome 'ESR 0x96000044: translation fault at level 0, write'")}
# Where the page-fault test may point: lower-half addresses no kernel of these labs maps, far
# above any RAM the grader gives (the grader's choice, not the kernel's).
PF_PROBE_RANGE = (0x0000_5000_0000_0000, 0x0000_5000_0000_0000 + 4 * GiB)
TIMER_TICKS = (3, 12)


@lab_test(0, "boot_banner")
def test_boot_banner(boot):
    run = boot(test="shutdown")
    run.expect(rf"^Pagoda \S+ \(\w+\) booted; token={run.token}$", "the banner with this boot's token")
    run.expect_outcome("success")


@lab_test(0, "memory_map")
def test_memory_map(boot, arch):
    least, most = RAM_NOT_USABLE[arch]
    reported = {}
    for megabytes in (96, 200):
        run = boot(test="shutdown", memory=f"{megabytes}M")
        m = run.expect(r"^memory: (\d+) KiB usable \((\d+) bytes\) proof=([0-9a-f]{16})$",
                       "the 'memory: N KiB usable (M bytes) proof=...' line")
        usable = int(m[2])
        run.expect_proof(m[3], usable, "memory line")
        run.check(int(m[1]) != usable // KiB and f"{m[1]} KiB does not match {usable} bytes")
        ram = megabytes * MiB
        if not ram - most <= usable <= ram - least:
            run.fail(f"with -m {megabytes}M the kernel reports {usable} usable bytes; expected "
                     f"between {ram - most} and {ram - least} (reserved memory "
                     "counted as usable, or usable memory missed?)")
        run.expect_outcome("success")
        reported[megabytes] = usable
    if reported[200] - reported[96] != (200 - 96) * MiB:
        raise AssertionError(f"usable RAM grew by {reported[200] - reported[96]} bytes from -m 96M "
                             f"to -m 200M; expected exactly {(200 - 96) * MiB}")


@lab_test(0, "trap_ud")
def test_trap_ud(boot, kernel, arch):
    ud = UD[arch]
    run = boot(test="ud")
    site = address_of(kernel, ud["site"])
    expect_fault(run, vector=ud["vector"], pc=site, what="the undefined instruction", kernel=kernel)
    run.expect(ud["report"], "the decoded undefined-instruction report")
    run.expect(ud["sp"], "the stack pointer in the report")
    run.expect(ud["registers"], "the general registers in the report")
    run.expect(ud["panic"], "the panic after the report")
    run.expect_outcome("failure")


@lab_test(0, "trap_pf")
def test_trap_pf(boot, kernel, arch):
    pf = PF[arch]
    t = LabTest(boot, kernel, arch)
    address = pick_page(t.token, "trap_pf", [PF_PROBE_RANGE])[0]
    run = boot(test="pf", token=t.token, args={"addr": address})
    expect_fault(run, vector=pf["vector"], error=pf["write_error"], address=address,
                 function=C.SELFTESTS["pf"], what=f"the write to {address:#x}", kernel=kernel)
    run.expect(pf["report"], "the decoded page-fault report")
    run.expect(pf["decoded"], pf["decoded_what"])
    run.expect(pf["panic"], "the panic after the report")
    run.expect_outcome("failure")


@lab_test(0, "timer_ticks")
def test_timer_ticks(boot, kernel, arch):
    t = LabTest(boot, kernel, arch)
    ticks = t.pick("timer_ticks", *TIMER_TICKS)
    run = boot(test="timer", token=t.token, args={"ticks": ticks})
    m = run.expect(r"^timer: ticks (\d+) -> (\d+) proof=([0-9a-f]{16})$", "the 'timer: ticks A -> B' line")
    before, after = int(m[1]), int(m[2])
    counted = after - before
    run.check(counted < ticks and f"the tick counter advanced by {counted}; the test asked for ticks={ticks}")
    run.expect_proof(m[3], counted, "timer line")
    delivered = expect_hardware_interrupts(run, ticks, f"waiting for {ticks} timer ticks")
    if counted > delivered:
        run.fail(f"the kernel counted {counted} ticks, but QEMU delivered only {delivered} hardware interrupts")
    run.expect_outcome("success")


@lab_test(0, "panic_exit")
def test_panic_exit(boot):
    run = boot(test="panic")
    run.expect(rf"^PANIC: self-test panic, token {run.token}$", "the panic message with this boot's token")
    run.expect(r"^backtrace:$", "the backtrace header")
    frames = [line for line in run.symbolized_lines() if re.match(r"^\s+#\d+ 0x[0-9a-f]+", line)]
    run.check(not frames and "the backtrace has no frames")
    if not any("selftest" in line for line in frames):
        run.fail("no backtrace frame resolves to the self-test that panicked")
    run.expect_outcome("failure")
