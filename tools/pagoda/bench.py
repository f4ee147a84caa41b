"""`pagoda bench [boot|syscall|switch|check|tempmap|fault|fork|swap|shootdown]`: what the kernel's
boot, system calls, switches, mappings, faults, forks, swapping and shootdowns cost. Without a
name: boot, syscall and switch. All but boot and check count guest instructions under QEMU's
-icount shift=0 (the guest's cycle counter counts instructions: deterministic, a second boot must
agree), most as a timed loop with the event less the same loop without it.

boot      boot to shutdown against a do-nothing kernel, N times each, interleaved so that a busy
          moment hits both alike: both medians of QEMU's whole lifetime, and their ratio.
          --cmdline adds kernel options (e.g. vm_check=off).
syscall   per null system call (nullcall: getpid), user -> kernel -> user.
switch    per yield between two pingpong processes, and minus a null system call: the switch
          itself (scheduler, kernel stack, the checked root load, switch_context).
check     the pre-switch check (kernel/mm/space/critical_ranges.hpp) in time under TCG: the
          vm_switch_cost self-test reloads the kernel's root for a second with the check and a
          second without; the median time of one switch each way, and the difference.
tempmap   per temporary mapping (lab 4: a TempMap made and released), `tmstress bench N`.
fault     per demand-zero page fault (lab 5), `vmas fault N`: first touch minus second touch.
fork      one fork (lab 6) of 1, 16 and 64 MiB touched, copy-on-write and eager (fork=eager),
          against a user loop copying the memory (`forkbench MIB`). Targets (issue 17): at
          64 MiB, copy-on-write at most 1/20 of eager, eager within 1.2x of the loop.
swap      per eviction of a dirty page, of a clean page that keeps its slot, and per swap-in
          (lab 7, `swapbench N`), the driver's own disk waits (swap_info) taken out so the count
          is the guest's on any host; the request latency on the guest's clock; and the disk
          writes per dirty eviction from QEMU's trace (goal: 1.00, none for a clean page).
shootdown per TLB shootdown (lab 8) from CPU 0 to idle CPU 1 under -smp 2, of one page and of 32
          (past 16 pages, one request for every translation), and the IPIs per shootdown
          (goal: one): the smp_shootdown_cost self-test.
"""
import argparse
import re
import statistics
import subprocess
import time

from . import deps
from pagoda_core import build, paths, qemu
from pagoda_core.ui import PagodaError


def time_boot(kernel, cmdline, arch):
    argv = qemu.command(kernel, cmdline, arch=arch, serial="null")
    start = time.perf_counter()
    proc = qemu.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=60)
    elapsed = time.perf_counter() - start
    if proc.returncode != qemu.EXIT_SUCCESS:
        raise PagodaError(f"{kernel} did not shut down cleanly ({qemu.describe_exit(proc.returncode, arch=arch)}): "
                          f"{err.decode(errors='replace').strip()}")
    return elapsed


def bench_boot(runs, arch, cmdline=""):
    build.build_kernel(arch)
    kernel, floor = paths.kernel_elf(arch), paths.boot_floor_elf(arch)
    words = " ".join(filter(None, ["test=shutdown", cmdline]))
    ours, floors = [], []
    time_boot(kernel, words, arch)  # warm the page cache; not counted
    time_boot(floor, "", arch)
    for _ in range(runs):
        ours.append(time_boot(kernel, words, arch))
        floors.append(time_boot(floor, "", arch))
    a, b = statistics.median(ours), statistics.median(floors)
    print(f"boot to shutdown ({arch}, {runs} runs each, interleaved{', ' + cmdline if cmdline else ''}):")
    print(f"  pagoda kernel   median {a * 1000:7.1f} ms  (min {min(ours) * 1000:.1f}, max {max(ours) * 1000:.1f})")
    print(f"  do-nothing      median {b * 1000:7.1f} ms  (min {min(floors) * 1000:.1f}, max {max(floors) * 1000:.1f})")
    print(f"  ratio           {a / b:.2f}x the floor", flush=True)
    return 0


SWITCH_LINE = re.compile(r"vm_switch_cost: (\d+) ranges, (\d+) pages; in (\d+) ticks of (\d+) Hz: (\d+) activates "
                         r"with the check, (\d+) without")


def boot_text(kernel, arch, words, what, timeout=240, **options):
    """The console output of one boot of @p kernel with the command line @p words (@p options go
    to qemu.command), which must shut down cleanly in @p timeout s; else a PagodaError naming
    @p what."""
    argv = qemu.command(kernel, words, arch=arch, serial="stdio", **options)
    proc = qemu.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PagodaError(f"{what} did not finish in {timeout} s") from None
    finally:
        qemu.kill_group(proc)
    text = out.decode(errors="replace")
    if proc.returncode != qemu.EXIT_SUCCESS:
        raise PagodaError(f"{what}: {qemu.describe_exit(proc.returncode, arch=arch)}:\n"
                          + "\n".join(text.splitlines()[-10:]))
    return text


def switch_costs(kernel, arch, ticks):
    """(ranges, pages, seconds per switch with the check, without) from one vm_switch_cost boot."""
    text = boot_text(kernel, arch, f"test=vm_switch_cost ticks={ticks}", "the vm_switch_cost self-test",
                     timeout=60 + 3 * ticks)
    ranges, pages, ticks, hz, on, off = (int(v) for v in _one(SWITCH_LINE, text, "vm_switch_cost")[0])
    seconds = ticks / hz
    return ranges, pages, seconds / on, seconds / off


def bench_switch(runs, arch):
    kernel = build.build_kernel(arch)
    results = [switch_costs(kernel, arch, 100) for _ in range(runs)]
    ranges, pages = results[0][:2]
    on = statistics.median(r[2] for r in results)
    off = statistics.median(r[3] for r in results)
    cost = statistics.median(r[2] - r[3] for r in results)
    print(f"switch of roots ({arch} under QEMU TCG, {runs} boots, 1 s each way):")
    print(f"  checked: {ranges} critical ranges, {pages} pages")
    print(f"  activate with the check     median {on * 1e6:7.2f} us")
    print(f"  activate without the check  median {off * 1e6:7.2f} us")
    print(f"  the check                   median {cost * 1e6:7.2f} us per switch "
          f"(spread {min(r[2] - r[3] for r in results) * 1e6:.2f}-{max(r[2] - r[3] for r in results) * 1e6:.2f})",
          flush=True)
    return 0


# ---- guest instructions under -icount (syscall, switch) ---------------------------------------

ICOUNT = ("-icount", "shift=0")
NULLCALL_LINE = re.compile(r"nullcall: (\d+) calls: (\d+) counts with the call, (\d+) without")
FAULT_LINE = re.compile(r"vmas: fault: (\d+) pages: (\d+) counts first touch, (\d+) counts second")
TEMPMAP_LINE = re.compile(r"tmstress: bench: (\d+) pairs: (\d+) counts with them, (\d+) without")
PINGPONG_LINE = re.compile(r"pingpong: pid (\d+) (\d+) yields: (\d+) counts")


def icount_run(kernel, arch, programs, cmdline="", memory=qemu.DEFAULT_MEMORY, cpus=1):
    """The console output of one boot that runs @p programs (a run= value; None: none) under
    -icount, on @p cpus vCPUs."""
    words = " ".join(filter(None, [programs and f"run={programs}", cmdline]))
    return boot_text(kernel, arch, words, f"run={programs} under -icount", extra=ICOUNT, memory=memory, cpus=cpus)


def _one(pattern, text, what):
    found = pattern.findall(text)
    if not found:
        raise PagodaError(f"{what} printed no result line:\n" + "\n".join(text.splitlines()[-10:]))
    return found


def null_syscall(kernel, arch, calls, runs=1):
    """Guest instructions per null system call, agreed over @p runs boots."""
    return per_event(kernel, arch, runs, f"nullcall:{calls}", NULLCALL_LINE, "the null system call")


def yield_cost(kernel, arch, yields, cmdline=""):
    """Guest instructions per yield between two processes (one boot): the first to start timed
    its loop while the other ran too (the second's loop ends alone, so it is not used)."""
    found = _one(PINGPONG_LINE, icount_run(kernel, arch, f"pingpong:{yields},pingpong:{yields}", cmdline),
                 "pingpong")
    first = min(found, key=lambda m: int(m[0]))
    _pid, n, counts = (int(v) for v in first)
    return counts / (2 * n)


def per_event(kernel, arch, runs, program, line, what):
    """Guest instructions per event, agreed over @p runs boots of the user program @p program,
    which prints (n, counts with the n events, counts of the same loop without them) as @p line
    matches them."""
    def one():
        n, with_events, without = (int(v) for v in _one(line, icount_run(kernel, arch, program), program)[0])
        return (with_events - without) / n
    return _agree([one() for _ in range(runs)], what)


def bench_tempmap(runs, arch):
    kernel = build.build_kernel(arch)
    pairs = 100_000
    cost = per_event(kernel, arch, runs, f"tmstress:bench:{pairs}", TEMPMAP_LINE, "the temporary map+unmap pair")
    print(f"temporary mapping ({arch}, QEMU -icount shift=0, {pairs} map+unmap pairs in one call, {runs} boots):")
    print(f"  TempMap made and released {cost:9.1f} guest instructions per pair", flush=True)
    return cost


FORK_LINE = re.compile(r"forkbench: (\d+) MiB: fork (\d+) counts, copy loop (\d+) counts")
FORK_SIZES = (1, 16, 64)


def fork_costs(kernel, arch, mib, mode):
    """(fork, copy loop) guest instructions for one forkbench boot."""
    text = icount_run(kernel, arch, f"forkbench:{mib}", f"fork={mode}", memory="512M")
    _, forked, copied = (int(v) for v in _one(FORK_LINE, text, "forkbench")[0])
    return forked, copied


def bench_fork(arch):
    kernel = build.build_kernel(arch)
    print(f"fork ({arch}, QEMU -icount shift=0, one fork of a process with N MiB touched, guest instructions):")
    print(f"  {'MiB':>4} {'copy-on-write':>14} {'eager':>14} {'copy loop':>14} {'cow/eager':>10} {'eager/loop':>10}")
    rows = []
    for mib in FORK_SIZES:
        cow, loop = fork_costs(kernel, arch, mib, "cow")
        eager, _ = fork_costs(kernel, arch, mib, "eager")
        rows.append((mib, cow, eager, loop))
        print(f"  {mib:>4} {cow:>14,} {eager:>14,} {loop:>14,} {cow / eager:>10.3f} {eager / loop:>10.2f}", flush=True)
    mib, cow, eager, loop = rows[-1]
    print(f"  targets at {mib} MiB: copy-on-write <= 1/20 of eager: {'met' if cow * 20 <= eager else 'NOT met'} "
          f"({cow / eager:.3f}); eager within 1.2x of the copy loop: {'met' if eager <= 1.2 * loop else 'NOT met'} "
          f"({eager / loop:.2f}x)", flush=True)
    return 0


def bench_fault(runs, arch):
    kernel = build.build_kernel(arch)
    pages = 2_000
    cost = per_event(kernel, arch, runs, f"vmas:fault:{pages}", FAULT_LINE, "the demand-zero fault")
    print(f"demand-zero fault ({arch}, QEMU -icount shift=0, {pages} pages touched twice, {runs} boots):")
    print(f"  first touch of a page   {cost:9.1f} guest instructions per fault (minus the second touch)", flush=True)
    return cost


SWAP_LINE = re.compile(r"swapbench: (\d+) pages: dirty (\d+), swap-in (\d+), clean (\d+), out (\d+), resident (\d+) counts")
SWAP_WAIT_LINE = re.compile(r"swapbench: disk: dirty (\d+) requests (\d+) waited, swap-in (\d+) requests (\d+) waited")
SWAP_PAGES = 256


def bench_swap(arch):
    import os
    import tempfile
    kernel = build.build_kernel(arch)
    with tempfile.TemporaryDirectory(prefix="pagoda-bench-swap-") as d:
        disk = qemu.SwapDisk(d, size=(2 * SWAP_PAGES + 64) * 4096)
        log = os.path.join(d, "qemu.log")
        text = boot_text(kernel, arch, f"run=swapbench:{SWAP_PAGES} userframes={SWAP_PAGES + 32}",
                         "swapbench under -icount", extra=ICOUNT, log_items="guest_errors", log_file=log, swap=disk)
        with open(log, errors="replace") as f:
            writes = len(re.findall(r"^virtio_blk_handle_write ", f.read(), re.M))
    n, dirty, swap_in, clean, already, resident = (int(v) for v in _one(SWAP_LINE, text, "swapbench")[0])
    writes_asked, write_wait, reads_asked, read_wait = (int(v) for v in _one(SWAP_WAIT_LINE, text, "swapbench")[0])
    print(f"swap ({arch}, QEMU -icount shift=0, {n} pages, guest instructions per page, the disk waits left out):")
    print(f"  dirty eviction     {(dirty - write_wait - already) / n:9.1f}  (evict() of a written page: the slot "
          "written)")
    print(f"  clean eviction     {(clean - already) / n:9.1f}  (evict() of a page that keeps its slot: no write)")
    print(f"  swap-in            {(swap_in - read_wait - resident) / n:9.1f}  (a first touch: the fault, the slot "
          "read, the map)")
    print(f"  request latency    write {write_wait / max(writes_asked, 1) / 1000:.1f} us ({writes_asked} requests), "
          f"read {read_wait / max(reads_asked, 1) / 1000:.1f} us ({reads_asked}): from the notify to the interrupt "
          "taken, on the guest's clock (the host's time while the CPU halts)")
    print(f"  disk writes per dirty eviction {writes / n:.2f} ({writes} writes in QEMU's trace for {n} dirty and "
          f"{n} clean evictions; goal 1.00)", flush=True)
    return 0


SHOOTDOWN_LINE = re.compile(r"smp_shootdown_cost: (\d+) shootdowns to CPU 1: one page (\d+) clock ticks, (\d+) IPIs; "
                           r"(\d+) pages (\d+) clock ticks, (\d+) IPIs; \d+ empty turns (\d+) clock ticks")


def bench_shootdown(arch):
    kernel = build.build_kernel(arch)
    text = icount_run(kernel, arch, None, "test=smp_shootdown_cost n=1000", cpus=2)
    n, one, one_ipis, pages, many, many_ipis, empty = (int(v) for v in _one(SHOOTDOWN_LINE, text,
                                                                             "smp_shootdown_cost")[0])
    print(f"TLB shootdown ({arch}, QEMU -icount shift=0, -smp 2, CPU 0 to CPU 1 idle, {n} of each, guest "
          "instructions of both vCPUs per shootdown):")
    print(f"  one page        {(one - empty) / n:9.1f}  ({one_ipis / n:.2f} IPIs each)")
    print(f"  {pages} pages        {(many - empty) / n:9.1f}  ({many_ipis / n:.2f} IPIs each; one request for "
          "every translation)", flush=True)
    return 0


def _agree(values, what):
    if max(values) - min(values) > 0.01 * max(values):
        raise PagodaError(f"{what} under -icount differs between boots: {values} (not deterministic?)")
    return values[0]


def bench_syscall(runs, arch):
    kernel = build.build_kernel(arch)
    calls = 100_000
    cost = null_syscall(kernel, arch, calls, runs)
    print(f"null system call ({arch}, QEMU -icount shift=0, {calls} getpid calls, {runs} boots):")
    print(f"  user -> kernel -> user   {cost:9.1f} guest instructions per call", flush=True)
    return cost


def bench_context_switch(runs, arch, syscall=None):
    kernel = build.build_kernel(arch)
    yields = 20_000
    per_yield = _agree([yield_cost(kernel, arch, yields) for _ in range(runs)], "the yield")
    unchecked = _agree([yield_cost(kernel, arch, yields, "vm_check=off") for _ in range(runs)],
                       "the yield with vm_check=off")
    if syscall is None:
        syscall = null_syscall(kernel, arch, 100_000)
    print(f"context switch ({arch}, QEMU -icount shift=0, 2 processes x {yields} yields, {runs} boots each):")
    print(f"  a yield that switches   {per_yield:9.1f} guest instructions (a system call + a switch)")
    print(f"  the switch itself       {per_yield - syscall:9.1f} guest instructions (minus the null "
          f"system call, {syscall:.1f})")
    print(f"  ... with vm_check=off   {unchecked - syscall:9.1f} guest instructions")
    print(f"  the pre-switch check    {per_yield - unchecked:9.1f} guest instructions per switch "
          f"(in time: ./pagoda bench check)", flush=True)
    return 0


def cmd_bench(args):
    deps.ensure()
    runs = args.runs or 2
    if args.what in ("boot", "all"):
        bench_boot(args.runs or 20, args.arch, args.cmdline)
    if args.what == "all":
        return bench_context_switch(2, args.arch, bench_syscall(2, args.arch))
    one = {"syscall": lambda: bench_syscall(runs, args.arch), "switch": lambda: bench_context_switch(runs, args.arch),
           "tempmap": lambda: bench_tempmap(runs, args.arch), "fault": lambda: bench_fault(runs, args.arch),
           "fork": lambda: bench_fork(args.arch), "swap": lambda: bench_swap(args.arch),
           "shootdown": lambda: bench_shootdown(args.arch), "check": lambda: bench_switch(args.runs or 3, args.arch)}
    if args.what in one:
        one[args.what]()
    return 0


def _positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return int(text)


def add_parser(sub):
    p = sub.add_parser("bench", help="benchmarks: boot, syscall, switch, check, tempmap, fault, fork, swap, shootdown",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="?", default="all", choices=["all", "boot", "syscall", "switch", "check", "tempmap", "fault", "fork",
                                                      "swap", "shootdown"],
                   help="which benchmark (default: boot, syscall and switch)")
    p.add_argument("-n", "--runs", type=_positive, default=None,
                   help="boots of each kernel (default 20 for boot, 2 for syscall, switch, tempmap and fault, 3 for check)")
    p.add_argument("--cmdline", default="", help="boot: more kernel command-line words, e.g. vm_check=off")
    p.add_argument("--arch", choices=paths.ARCHES, default=paths.DEFAULT_ARCH)
    p.set_defaults(func=cmd_bench)
