"""Lab 0 — boot and console: the grader's checks. Points and timeouts: labs/00-boot/lab.toml."""
import re
import subprocess

from pagoda_grade import lab_test
from pagoda_grade.proof import proof

MiB = 1024 * 1024
KiB = 1024
# Below 1 MiB the firmware keeps some RAM (EBDA, BIOS data): usable RAM may fall short of -m by
# at most this much. The ISA hole [640 KiB, 1 MiB) is never RAM: usable RAM is short of -m by at
# least that much.
LOW_MEMORY_MAX_LOSS = 1 * MiB
ISA_HOLE = 1 * MiB - 640 * KiB

# What each architecture's report calls the exceptions the tests provoke.
UD_REPORT = {"x86_64": r"TRAP: #UD invalid opcode \(vector 6\) in kernel mode, CPL 0"}
PF_REPORT = {"x86_64": r"TRAP: #PF page fault \(vector 14\) in kernel mode, CPL 0"}
UD_SITE_SYMBOL = {"x86_64": "x86_ud_site"}

# Mirrors kernel/core/selftest.cpp: where the page-fault self-test writes.
FAULT_WINDOW_BASE = 0x0000_5000_0000_0000
FAULT_WINDOW_PAGES = 1 << 20
FAULT_PROOF_TAG = 0x5046
PAGE_SIZE = 4096
TIMER_TEST_TICKS = 5


def symbol_address(kernel, name):
    out = subprocess.run(["llvm-nm", kernel], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise AssertionError(f"the kernel has no symbol {name}")


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
    run = boot(test="ud")
    run.expect(UD_REPORT[arch], "the decoded #UD report")
    rip = int(run.expect(r"^\s+RIP (0x[0-9a-f]+)", "the RIP line of the report")[1], 16)
    site = symbol_address(kernel, UD_SITE_SYMBOL[arch])
    if rip != site:
        run.fail(f"the report gives RIP {rip:#x}, but the undefined instruction is at {site:#x}")
    run.expect(r"^\s+RSP 0x[0-9a-f]{16}\s+SS ", "the stack pointer in the report")
    run.expect(r"^\s+RAX 0x[0-9a-f]{16}", "the general registers in the report")
    run.expect(r"^PANIC: unhandled #UD", "the panic after the report")
    run.expect_outcome("failure")


@lab_test(0, "trap_pf")
def test_trap_pf(boot, arch):
    run = boot(test="pf")
    page = proof(run.token, FAULT_PROOF_TAG) % FAULT_WINDOW_PAGES
    address = FAULT_WINDOW_BASE + page * PAGE_SIZE
    run.expect(PF_REPORT[arch], "the decoded #PF report")
    cr2 = run.expect(r"^\s+CR2 (0x[0-9a-f]+)", "the CR2 line of the report")
    if int(cr2[1], 16) != address:
        run.fail(f"the report gives CR2 {cr2[1]}, but the self-test wrote to {address:#x}")
    run.expect(r"^\s+error 0x2: not-present page, write, supervisor$",
               "the decoded error code 'error 0x2: not-present page, write, supervisor'")
    run.expect(r"^PANIC: unhandled #PF", "the panic after the report")
    run.expect_outcome("failure")


@lab_test(0, "timer_ticks")
def test_timer_ticks(boot):
    run = boot(test="timer")
    m = run.expect(r"^timer: ticks (\d+) -> (\d+) proof=([0-9a-f]{16})$", "the 'timer: ticks A -> B' line")
    before, after = int(m[1]), int(m[2])
    if after - before < TIMER_TEST_TICKS:
        run.fail(f"the tick counter advanced by {after - before}; expected at least {TIMER_TEST_TICKS}")
    run.expect_proof(m[3], after - before, "timer line")
    if run.faults.interrupts < TIMER_TEST_TICKS:
        run.fail(f"QEMU delivered {run.faults.interrupts} interrupts, fewer than the ticks counted")
    run.expect_outcome("success")


@lab_test(0, "panic_exit")
def test_panic_exit(boot):
    run = boot(test="panic")
    run.expect(rf"^PANIC: self-test panic, token {run.token}$", "the panic message with this boot's token")
    run.expect(r"^backtrace:$", "the backtrace header")
    frames = [l for l in run.symbolized_lines() if re.match(r"^\s+#\d+ 0x[0-9a-f]+", l)]
    if not frames:
        run.fail("the backtrace has no frames")
    if not any("selftest" in l for l in frames):
        run.fail("no backtrace frame resolves to the self-test that panicked")
    run.expect_outcome("failure")
