"""Two CPUs, witnessed from outside (issue 53's prototype gate): the reference kernel booted with
QEMU's `-smp 2` brings its second CPU up on both ISAs. The gdbstub shows one thread per vCPU; with
`Hg`, each one's PC is in the kernel's idle code (arch::wait_for_interrupt) and its control
registers carry the protections the boot CPU has (x86_64: SMEP, SMAP, UMIP, EFER.NXE, CR0.WP;
AArch64: SCTLR_EL1.M and WXN, PSTATE.PAN). QEMU's `-d int` log shows the second CPU taking its own
timer interrupts while the first takes its own: AArch64 names the CPU ("on CPU 1"); x86_64 does
not, so an interrupt is the second CPU's when the stack it interrupted is the one that CPU idles
on (its RSP at the stop), and the TSS it was delivered through (TR's base in the dump) must be
its own, not the boot CPU's. Booted with cpus=1 (the CPU left parked) the witness names CPU 1.
A panic on CPU 0 stops CPU 1: stopped in panic_end, CPU 1 is halted with interrupts masked."""
import contextlib
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from pagoda_core import faultlog, paths, qemu
from pagoda_core.speed import scaled
from pagoda_grade import rsp
from pagoda_grade.processes import user_symbol
from pagoda_pt import contract
from pagoda_grade.symbols import address_of, function_at

IDLE = contract.WAIT_FOR_INTERRUPT
# The timer interrupts the boot CPU takes, once idle, before the second must have taken a few.
BOOT_CPU_TICKS, SECOND_CPU_TICKS = 40, 5
SAMPLES = 5     # stops at which each CPU's PC is read; one in idle code is enough (a tick may run)

# (register, bit, name, the -cpu feature that gives it or None)
PROTECTIONS = {
    "x86_64": (("cr4", 20, "CR4.SMEP", "smep"), ("cr4", 21, "CR4.SMAP", "smap"), ("cr4", 11, "CR4.UMIP", "umip"),
               ("efer", 11, "EFER.NXE", None), ("cr0", 16, "CR0.WP", None)),
    "aarch64": (("sctlr_el1", 0, "SCTLR_EL1.M", None), ("sctlr_el1", 19, "SCTLR_EL1.WXN", None),
                ("cpsr", 22, "PSTATE.PAN", None)),
}
PC = {"x86_64": "rip", "aarch64": "pc"}
SP = {"x86_64": "rsp", "aarch64": "sp"}
TIMER = {"x86_64": 0x20, "aarch64": 5}   # (AArch64: every IRQ; CPU 1 takes only its timer's and IPIs)


def sample(client, arch, kernel, ids):
    """Per thread: (function of its PC, SP, {protection name: on}) at this stop."""
    out = []
    for tid in ids:
        if client.request(f"Hg{tid}") != "OK":
            raise rsp.RspError(f"the gdbstub refused thread {tid}")
        regs = sorted({r for r, _, _, _ in PROTECTIONS[arch]})
        pc, sp, *values = client.read_registers([PC[arch], SP[arch], *regs])
        value = dict(zip(regs, values))
        f = function_at(kernel, pc)
        out.append((f.name.split("(")[0] if f else hex(pc), sp,
                    {name: bool(value[r] >> bit & 1) for r, bit, name, _ in PROTECTIONS[arch]}))
    return out


def timer_counts(arch, text, idle_sps):
    """{cpu index: timer interrupts}, and {cpu index: set of TSS bases} (x86_64), from QEMU's log
    (pagoda_core.faultlog). x86_64 attributes an interrupt to the CPU whose idle stack pointer
    (@p idle_sps) it interrupted; AArch64's log names the CPU."""
    counts, trs = {}, {}
    for e in faultlog.parse(text, arch).events:
        if e.vector != TIMER[arch]:
            continue
        cpu = e.cpu if arch == "aarch64" else idle_sps.index(e.sp) if e.sp in idle_sps else None
        if cpu is not None:
            counts[cpu] = counts.get(cpu, 0) + 1
            trs.setdefault(cpu, set()).update({e.task} - {None})
    return counts, trs


@contextlib.contextmanager
def paused_smp(kernel, arch, tmp_path, cmdline=""):
    """@p kernel booted paused on two vCPUs with the gdbstub on a socket: (client, the gdbstub's
    thread ids, the path of QEMU's -d int log); QEMU is killed on the way out."""
    log, serial = os.path.join(tmp_path, "int.log"), os.path.join(tmp_path, "serial.txt")
    ours, theirs = socket.socketpair()
    argv = qemu.command(kernel, cmdline, arch=arch, serial=f"file:{serial}", log_items="int", log_file=log, paused=True,
                        cpus=2, extra=["-chardev", f"socket,id=g,fd={theirs.fileno()}", "-gdb", "chardev:g"])
    proc = qemu.spawn(argv, pass_fds=(theirs.fileno(),), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    theirs.close()
    client = rsp.RspClient(ours, timeout=scaled(10), arch=arch)
    try:
        client.handshake()
        yield client, client.threads(), log
    finally:
        client.kill()
        qemu.kill_group(proc)


def witness(kernel, arch, tmp_path, cmdline=""):
    """Boots @p kernel with two vCPUs; returns the problems the witness sees (empty: both CPUs
    online, idle, protected, each taking its own ticks)."""
    problems = []
    with paused_smp(kernel, arch, tmp_path, cmdline) as (client, ids, log):
        if len(ids) != 2:
            return [f"the gdbstub lists {len(ids)} threads ({ids}), not one per vCPU of -smp 2"]
        # The boot CPU in its idle loop: the kernel has booted, and started (or not) the other.
        deadline = time.monotonic() + scaled(60)
        while True:
            client.cont()
            time.sleep(0.2)
            client.interrupt()
            first = sample(client, arch, kernel, ids)
            if first[0][0] == IDLE:
                break
            if time.monotonic() > deadline:
                return [f"CPU 0 never reached the idle loop (its PC is in {first[0][0]})"]
        stops = [first]
        for _ in range(SAMPLES - 1):
            client.cont()
            time.sleep(0.05)
            client.interrupt()
            stops.append(sample(client, arch, kernel, ids))
        missing = qemu.missing_cpu_features(arch)
        for cpu in range(2):
            where = [s[cpu][0] for s in stops]
            if IDLE not in where:
                problems.append(f"CPU {cpu} is not in the kernel's idle code at any of {SAMPLES} stops "
                                f"(its PC is in {', '.join(sorted(set(where)))})")
            for _, _, name, feature in PROTECTIONS[arch]:
                if feature in missing:
                    continue
                if not all(s[cpu][2][name] for s in stops):
                    problems.append(f"CPU {cpu} runs without {name}")
        # Each CPU's idle stack pointer, at a stop in idle code (x86_64 attributes its interrupts).
        idle_sps = [next((s[cpu][1] for s in stops if s[cpu][0] == IDLE), None) for cpu in range(2)]
        # The boot CPU takes BOOT_CPU_TICKS ticks: by then the second must have taken its own.
        client.cont()
        start = timer_counts(arch, open(log, errors="replace").read(), idle_sps)[0].get(0, 0)
        deadline = time.monotonic() + scaled(60)
        while True:
            time.sleep(0.2)
            counts, trs = timer_counts(arch, open(log, errors="replace").read(), idle_sps)
            if counts.get(0, 0) - start >= BOOT_CPU_TICKS or time.monotonic() > deadline:
                break
        if counts.get(0, 0) - start < BOOT_CPU_TICKS:
            problems.append(f"CPU 0 took {counts.get(0, 0) - start} timer interrupts while idle, not {BOOT_CPU_TICKS}")
        if counts.get(1, 0) < SECOND_CPU_TICKS:
            problems.append(f"CPU 1 took {counts.get(1, 0)} timer interrupts of its own in QEMU's log "
                            f"(CPU 0 took {counts.get(0, 0)})")
        if trs.get(1) and trs.get(0) and trs[1] & trs[0]:
            problems.append("CPU 1's interrupts were delivered through the boot CPU's TSS")
        return problems


@pytest.fixture(params=["x86_64", "aarch64"])
def smp_kernel(request):
    """(arch, the reference kernel of that arch), built once under the grader's build lock."""
    arch = request.param
    if shutil.which(qemu.MACHINES[arch].binary) is None:
        pytest.skip(f"no {qemu.MACHINES[arch].binary}")
    if arch == "aarch64":
        return arch, request.getfixturevalue("aarch64_kernel")
    assert paths.DEFAULT_ARCH == "x86_64"
    return arch, request.getfixturevalue("reference_kernel")


def test_both_cpus_come_online_protected_and_take_their_own_ticks(smp_kernel, tmp_path):
    arch, kernel = smp_kernel
    assert address_of(kernel, IDLE)
    assert witness(kernel, arch, tmp_path) == []


def test_a_cpu_left_parked_is_named(smp_kernel, tmp_path):
    arch, kernel = smp_kernel
    problems = witness(kernel, arch, tmp_path, "cpus=1")
    assert any(p.startswith("CPU 1 is not in the kernel's idle code") for p in problems), problems
    assert any(p.startswith("CPU 1 took 0 timer interrupts") for p in problems), problems
    assert not any(p.startswith("CPU 0") for p in problems), problems


SHOOTDOWN = re.compile(r"smp_shootdown: slot (0x[0-9a-f]+): CPU 1 read (0x[0-9a-f]+), then (0x[0-9a-f]+) after CPU 0's "
                       r"local invalidation, then (0x[0-9a-f]+) after the shootdown")
WORD_A, WORD_B = 0xa11ce0000000000a, 0xb0b0000000000b


def boot_to_the_end(kernel, arch, cmdline, log=None):
    """(QEMU's exit status, the serial output with \n line ends) of @p kernel booted on two vCPUs
    with @p cmdline to its end (and QEMU's -d int log in @p log)."""
    argv = qemu.command(kernel, cmdline, arch=arch, serial="stdio", cpus=2,
                        **({"log_items": "int", "log_file": log} if log else {}))
    proc = qemu.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=scaled(90))
    finally:
        qemu.kill_group(proc)
    return proc.returncode, out.decode(errors="replace").replace("\r\n", "\n")


def test_one_shootdown_of_one_page_reaches_the_other_cpu(smp_kernel, tmp_path):
    """The self-test smp_shootdown (kernel/mm/smp_selftest.cpp): on x86_64 CPU 0's INVLPG leaves
    CPU 1's entry for the slot stale (it reads frame A's word through frame B's mapping) until one
    shootdown; QEMU's log shows the four IPIs (three reads and the invalidation) delivered. On
    AArch64 the temporary mapping's TLBI is already broadcast (IS): no stale read to see."""
    arch, kernel = smp_kernel
    log = os.path.join(tmp_path, "int.log")
    status, text = boot_to_the_end(kernel, arch, "test=smp_shootdown", log)
    assert status == qemu.EXIT_SUCCESS, text[-2000:]
    m = SHOOTDOWN.search(text)
    assert m, text[-2000:]
    first, stale, fresh = (int(m[i], 16) for i in (2, 3, 4))
    assert (first, fresh) == (WORD_A, WORD_B)
    if arch == "x86_64":
        assert stale == WORD_A, "CPU 0's local INVLPG alone should leave CPU 1's entry stale under TCG"
        ipis = [e for e in faultlog.parse_file(log, arch).events if e.vector == 0xF0]
        assert len(ipis) == 4


# Interrupts masked on a CPU, as the gdbstub shows it: (register, bit, value when masked).
MASKED = {"x86_64": ("eflags", 9, 0), "aarch64": ("cpsr", 7, 1)}


def test_a_panic_stops_the_other_cpu(smp_kernel, tmp_path):
    """A panic on CPU 0 (the self-test `panic`) stops CPU 1 for good before the report: stopped
    where the panic ends (panic_end), CPU 1 is halted in the kernel's wait instruction with its
    interrupts masked, not idling with them on (or running on)."""
    arch, kernel = smp_kernel
    register, bit, masked = MASKED[arch]
    with paused_smp(kernel, arch, tmp_path, "test=panic") as (client, ids, _):
        assert len(ids) == 2, ids
        client.set_breakpoint(address_of(kernel, contract.PANIC_END))
        client.cont()
        client.wait_stop(timeout=scaled(60))
        (cpu0, _, _), (cpu1, _, _) = sample(client, arch, kernel, ids)
        assert client.request(f"Hg{ids[1]}") == "OK"
        flags, = client.read_registers([register])
    assert cpu0 == contract.PANIC_END, cpu0
    assert cpu1 == IDLE and (flags >> bit & 1) == masked, (cpu1, hex(flags))


# Where a process runs. A stop's witness per CPU, from the gdbstub's thread of that vCPU: whether it
# is in user mode (x86_64: CS's RPL 3; AArch64: PSTATE.EL 0) and the root it runs in (CR3; TTBR0's
# base address, without its ASID).
MODE = {"x86_64": "cs", "aarch64": "cpsr"}
ROOT = {"x86_64": "cr3", "aarch64": "ttbr0_el1"}
ROOT_ADDRESS = (1 << 48) - (1 << 12)    # bits 47:12 of either
SPIN_FOREVER = 1 << 40                   # a count no spinner reaches (grade/pagoda_grade/watch.py)
STOPS = 8                                # stops at which a spinner runs on some CPU


def in_user_mode(arch, mode):
    return mode & 3 == 3 if arch == "x86_64" else (mode >> 2) & 3 == 0


# x86_64: what CPU 0's system-call entry calls through (the one-CPU handler, without the kernel
# lock) and the handler it must name once a second CPU may run (switch.S, user_mode.cpp).
SYSCALL_HANDLER, LOCKING_HANDLER = "x86_syscall_handler", "x86_syscall_locking"


def where_spinners_run(kernel, arch, tmp_path, cmdline):
    """Boots @p kernel on two vCPUs with @p cmdline (spinners that never end) and stops it until
    STOPS stops have found spin's loop running in user mode on some CPU; per such stop, per CPU:
    the root of the spinner it runs, or None. And the kernel's serial output, and (x86_64; None
    on AArch64) whether CPU 0's system calls went to the locking handler at the last stop."""
    spin_main = user_symbol(kernel, arch, "spin", "main")
    stops = []
    with paused_smp(kernel, arch, tmp_path, cmdline) as (client, ids, _):
        assert len(ids) == 2, ids
        deadline = time.monotonic() + scaled(60)
        while len(stops) < STOPS and time.monotonic() < deadline:
            client.cont()
            time.sleep(0.1)
            client.interrupt()
            row = []
            for tid in ids:
                assert client.request(f"Hg{tid}") == "OK"
                pc, mode, root = client.read_registers([PC[arch], MODE[arch], ROOT[arch]])
                row.append(root & ROOT_ADDRESS if in_user_mode(arch, mode) and spin_main.contains(pc) else None)
            if any(r is not None for r in row):
                stops.append(row)
        locking = None
        if arch == "x86_64":
            word = client.read_memory(address_of(kernel, SYSCALL_HANDLER), 8)
            locking = int.from_bytes(word, "little") == address_of(kernel, LOCKING_HANDLER)
    serial = open(os.path.join(tmp_path, "serial.txt"), errors="replace").read()
    return stops, serial, locking


def pinning_problems(stops, roots):
    """What the stops say against 'proc 1 runs on CPU 1 alone, procs 2 and 3 on CPU 0' (@p roots:
    {pid: root} from the kernel's started lines, to name them)."""
    if len(stops) < STOPS:
        return [f"spin's loop was seen running at {len(stops)} stops only, not {STOPS}"]
    problems = []
    for cpu, pids in ((1, (1,)), (0, (2, 3))):
        ran = {row[cpu] for row in stops} - {None}
        allowed = {roots.get(pid) for pid in pids}
        if not ran:
            problems.append(f"CPU {cpu} never ran a spinner in user mode at {len(stops)} stops")
        elif not ran <= allowed:
            names = ", ".join(f"{r:#x}" for r in sorted(ran))
            problems.append(f"CPU {cpu} ran spinners with roots {names}, not only those of proc "
                            f"{' and '.join(map(str, pids))}")
    return problems


def test_a_process_pinned_to_cpu_1_runs_there(smp_kernel, tmp_path):
    """run=spin@1,spin,spin: three spinners that never end, the first pinned to CPU 1, the others
    left to the boot CPU, which takes turns between them. Stopped again and again, the gdbstub's
    second thread (CPU 1) is in spin's loop in user mode with the first spinner's root alone, and
    the first thread (CPU 0) with the others' alone (a process never moves: three spinners on two
    CPUs would move between them if the pick ignored the pin)."""
    arch, kernel = smp_kernel
    stops, serial, locking = where_spinners_run(kernel, arch, tmp_path,
                                       f"run=spin@1:{SPIN_FOREVER:#x},spin:{SPIN_FOREVER:#x},spin:{SPIN_FOREVER:#x}")
    roots = {int(pid): int(root, 16) for pid, root in re.findall(r"^proc (\d+) \(spin\): started; root (0x[0-9a-f]+)",
                                                                   serial, re.M)}
    assert set(roots) == {1, 2, 3}, serial[-2000:]
    problems = pinning_problems(stops, roots)
    assert problems == [], f"{problems}; roots {roots}; the stops' roots per CPU {stops}"
    assert locking is not False, f"CPU 0's system calls take no kernel lock with CPU 1 online ({SYSCALL_HANDLER})"


def test_processes_on_both_cpus_run_to_their_end(smp_kernel, tmp_path):
    """Programs pinned to CPU 1 and CPU 0 and unpinned, short ones, spinners, and forks with
    copy-on-write and wait on CPU 1 (their children run there too), run to their end on two CPUs
    (the kernel lock around the scheduler, system calls and faults of both): every
    program prints its line, every process is reaped, no frame leaks; a pin to a CPU that does not
    exist is refused by name, and with the second CPU left parked (cpus=1) a pin to it runs on CPU 0."""
    arch, kernel = smp_kernel
    for cmdline, status, lines in (
            ("run=hello@1,spin@1:3000000,spin:3000000,hello@0,cowtest@1,forktree@1:basic:3,hello@7",
             qemu.EXIT_FAILURE, ["run: hello@7: not a CPU (0 to 1)",
                                 "forktree: forked 3 reaped 3 with their statuses ok",
                                 "cowtest: parent's words intact after the child's writes; child ok"]),
            ("cpus=1 run=hello@1,spin@1:300000",
             qemu.EXIT_SUCCESS, ["run: hello@1: CPU 1 is not online; it runs on CPU 0"])):
        got, text = boot_to_the_end(kernel, arch, cmdline)
        assert got == status, text[-2000:]
        started = set(re.findall(r"^proc (\d+) \(\w+\): started", text, re.M))
        reaped = set(re.findall(r"^proc (\d+) \(\w+\): reaped: exited with code 0", text, re.M))
        assert started and started <= reaped, text[-2000:]
        assert len(re.findall(r"^hello: from user space", text, re.M)) == text.count("(hello): started"), text[-2000:]
        assert re.search(r"^run: all processes ended; frames in use: before (\d+), after \1$", text, re.M), text[-2000:]
        for line in lines:
            assert line in text.splitlines(), text[-2000:]


REMAP = re.compile(r"smp_remote_remap: spin \(pid \d+\) on CPU 1 counts at (0x[0-9a-f]+), moved from frame "
                   r"0x[0-9a-f]+ to 0x[0-9a-f]+ by CPU 0 with a local invalidation: old frame (\d+) -> (\d+), "
                   r"new frame (\d+) -> (\d+); after the [a-z' ]+: old frame (\d+) -> (\d+), "
                   r"new frame (\d+) -> (\d+)$", re.M)


@pytest.mark.parametrize("cure", ["shootdown", "space"])
def test_a_page_moved_under_a_process_on_cpu_1(smp_kernel, tmp_path, cure):
    """Lab 8's bug and its cure, with a user process (the self-test smp_remote_remap, kernel/proc/
    remote_remap_selftest.cpp): spin, pinned to CPU 1, counts in spin_count; CPU 0 moves that page
    to a copy in spin's tables and invalidates its own TLB alone. Two looks at both frames: spin
    counts on in the old frame (CPU 1's stale entry), the new frame's count stands still, on both
    ISAs. Then a shootdown (an IPI whose handler invalidates on CPU 1) moves spin to the new frame
    on both; so does the space's own invalidation (lab 8: AArch64's TLBI VAE1IS, since CPU 1 is in
    the space's CPUs; x86_64's shootdown to the space's CPUs at the batch's end)."""
    arch, kernel = smp_kernel
    count = user_symbol(kernel, arch, "spin", "spin_count").address
    cmdline = f"test=smp_remote_remap count={count:#x} ipi={int(cure == 'shootdown')}"
    status, text = boot_to_the_end(kernel, arch, cmdline)
    assert status == qemu.EXIT_SUCCESS, text[-2000:]
    m = REMAP.search(text)
    assert m and int(m[1], 16) == count, text[-2000:]
    old1, old2, new1, new2, old3, old4, new3, new4 = (int(m[i]) for i in range(2, 10))
    assert old1 < old2 and new1 == new2, f"after CPU 0's local invalidation spin should count in the old frame: {m[0]}"
    assert old3 == old4 and new3 < new4, f"after the {cure} spin should count in the new frame alone: {m[0]}"
