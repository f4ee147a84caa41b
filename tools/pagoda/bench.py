"""`pagoda bench boot|switch`: what the kernel's boot and its switches of roots cost.

boot    how long a boot to shutdown takes, against a do-nothing kernel. Both kernels boot N
        times each, interleaved (kernel, floor, kernel, floor, ...) so that a busy moment of the
        machine hits both alike; each time is QEMU's whole process lifetime. The report gives
        both medians and their ratio: what Pagoda's own boot adds on top of QEMU and firmware.
        --cmdline adds kernel options (e.g. vm_check=off, to see what the pre-switch check adds).
switch  what the pre-switch check (AddressSpace::activate, kernel/mm/critical_ranges.hpp) costs:
        the vm_switch_cost self-test reloads the kernel's root for a second with the check and a
        second without, N boots; the report gives the median time of one switch each way and
        their difference, the check's cost (it runs once at boot, and at every switch after).
        Times are the guest's under QEMU's TCG emulation, not a real CPU's.
"""
import re
import statistics
import subprocess
import time

from . import build, deps, paths, qemu
from .ui import PagodaError, info


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


def switch_costs(kernel, arch, ticks):
    """(ranges, pages, seconds per switch with the check, without) from one vm_switch_cost boot."""
    argv = qemu.command(kernel, f"test=vm_switch_cost ticks={ticks}", arch=arch, serial="stdio")
    proc = qemu.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=60 + 3 * ticks)
    finally:
        qemu.kill_group(proc)
    text = out.decode(errors="replace")
    m = SWITCH_LINE.search(text)
    if proc.returncode != qemu.EXIT_SUCCESS or m is None:
        raise PagodaError(f"the vm_switch_cost self-test did not report ({qemu.describe_exit(proc.returncode)}):\n"
                          + "\n".join(text.splitlines()[-10:]))
    ranges, pages, ticks, hz, on, off = (int(v) for v in m.groups())
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


def cmd_bench(args):
    deps.ensure()
    if args.what == "boot":
        return bench_boot(args.runs or 20, args.arch, args.cmdline)
    if args.what == "switch":
        return bench_switch(args.runs or 3, args.arch)
    raise PagodaError(f"unknown benchmark {args.what}")


def _positive(text):
    if not text.isdigit() or int(text) < 1:
        raise __import__("argparse").ArgumentTypeError("must be a positive whole number")
    return int(text)


def add_parser(sub):
    p = sub.add_parser("bench", help="benchmarks: boot, switch",
                       description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["boot", "switch"], help="which benchmark")
    p.add_argument("-n", "--runs", type=_positive, default=None,
                   help="boots of each kernel (default 20 for boot, 3 for switch)")
    p.add_argument("--cmdline", default="", help="boot: more kernel command-line words, e.g. vm_check=off")
    p.add_argument("--arch", choices=paths.ARCHES, default=paths.DEFAULT_ARCH)
    p.set_defaults(func=cmd_bench)
