"""Lab 0 — boot and console: the grader's checks. Points and timeouts: labs/00-boot/lab.toml.

What each test witnesses and what it still believes: docs/grader.md, "What the grader trusts"."""
import re

from pagoda_grade import lab_test
from pagoda_grade.symbols import address_of
from pagoda_grade.witness import expect_fault, expect_hardware_interrupts, pick_in, pick_page

MiB = 1024 * 1024
KiB = 1024
GiB = 1024 * MiB
# Below 1 MiB the firmware keeps some RAM (EBDA, BIOS data): usable RAM may fall short of -m by
# at most this much. The ISA hole [640 KiB, 1 MiB) is never RAM: usable RAM is short of -m by at
# least that much.
LOW_MEMORY_MAX_LOSS = 1 * MiB
ISA_HOLE = 1 * MiB - 640 * KiB

# How each architecture raises and reports the exceptions the tests provoke.
UD = {"x86_64": dict(vector=6, report=r"TRAP: #UD invalid opcode \(vector 6\) in kernel mode, CPL 0",
                     site="x86_ud_site")}
PF = {"x86_64": dict(vector=14, write_error=0x2,
                     report=r"TRAP: #PF page fault \(vector 14\) in kernel mode, CPL 0",
                     decoded=r"^\s+error 0x2: not-present page, write, supervisor$")}
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
def test_memory_map(boot):
    reported = {}
    for megabytes in (96, 200):
        run = boot(test="shutdown", memory=f"{megabytes}M")
        m = run.expect(r"^memory: (\d+) KiB usable \((\d+) bytes\) proof=([0-9a-f]{16})$",
                       "the 'memory: N KiB usable (M bytes) proof=...' line")
        usable = int(m[2])
        run.expect_proof(m[3], usable, "memory line")
        if int(m[1]) != usable // KiB:
            run.fail(f"{m[1]} KiB does not match {usable} bytes")
        ram = megabytes * MiB
        if not ram - LOW_MEMORY_MAX_LOSS <= usable <= ram - ISA_HOLE:
            run.fail(f"with -m {megabytes}M the kernel reports {usable} usable bytes; expected "
                     f"between {ram - LOW_MEMORY_MAX_LOSS} and {ram - ISA_HOLE} (reserved memory "
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
    run.expect(ud["report"], "the decoded #UD report")
    run.expect(r"^\s+RSP 0x[0-9a-f]{16}\s+SS ", "the stack pointer in the report")
    run.expect(r"^\s+RAX 0x[0-9a-f]{16}", "the general registers in the report")
    run.expect(r"^PANIC: unhandled #UD", "the panic after the report")
    run.expect_outcome("failure")


@lab_test(0, "trap_pf")
def test_trap_pf(boot, kernel, arch):
    pf = PF[arch]
    token = boot.fresh_token()
    address = pick_page(token, "trap_pf", [PF_PROBE_RANGE])[0]
    run = boot(test="pf", token=token, args={"addr": address})
    expect_fault(run, vector=pf["vector"], error=pf["write_error"], address=address,
                 function="pagoda::pagoda_selftest_pf", what=f"the write to {address:#x}", kernel=kernel)
    run.expect(pf["report"], "the decoded #PF report")
    run.expect(pf["decoded"], "the decoded error code 'error 0x2: not-present page, write, supervisor'")
    run.expect(r"^PANIC: unhandled #PF", "the panic after the report")
    run.expect_outcome("failure")


@lab_test(0, "timer_ticks")
def test_timer_ticks(boot):
    token = boot.fresh_token()
    ticks = pick_in(token, "timer_ticks", *TIMER_TICKS)
    run = boot(test="timer", token=token, args={"ticks": ticks})
    m = run.expect(r"^timer: ticks (\d+) -> (\d+) proof=([0-9a-f]{16})$", "the 'timer: ticks A -> B' line")
    before, after = int(m[1]), int(m[2])
    counted = after - before
    if counted < ticks:
        run.fail(f"the tick counter advanced by {counted}; the test asked for ticks={ticks}")
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
    if not frames:
        run.fail("the backtrace has no frames")
    if not any("selftest" in line for line in frames):
        run.fail("no backtrace frame resolves to the self-test that panicked")
    run.expect_outcome("failure")
