"""`pagoda bench boot`: how long a boot to shutdown takes, against a do-nothing PVH kernel.

Both kernels boot N times each, interleaved (kernel, floor, kernel, floor, ...) so that a busy
moment of the machine hits both alike; each time is QEMU's whole process lifetime. The report
gives both medians and their ratio: what Pagoda's own boot adds on top of QEMU and firmware.
"""
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
        raise PagodaError(f"{kernel} did not shut down cleanly ({qemu.describe_exit(proc.returncode)}): "
                          f"{err.decode(errors='replace').strip()}")
    return elapsed


def bench_boot(runs, arch):
    build.build_kernel(arch)
    kernel, floor = paths.kernel_elf(arch), paths.boot_floor_elf(arch)
    ours, floors = [], []
    time_boot(kernel, "test=shutdown", arch)  # warm the page cache; not counted
    time_boot(floor, "", arch)
    for _ in range(runs):
        ours.append(time_boot(kernel, "test=shutdown", arch))
        floors.append(time_boot(floor, "", arch))
    a, b = statistics.median(ours), statistics.median(floors)
    print(f"boot to shutdown ({arch}, {runs} runs each, interleaved):")
    print(f"  pagoda kernel   median {a * 1000:7.1f} ms  (min {min(ours) * 1000:.1f}, max {max(ours) * 1000:.1f})")
    print(f"  do-nothing PVH  median {b * 1000:7.1f} ms  (min {min(floors) * 1000:.1f}, max {max(floors) * 1000:.1f})")
    print(f"  ratio           {a / b:.2f}x the floor", flush=True)
    return 0


def cmd_bench(args):
    deps.ensure()
    if args.what == "boot":
        return bench_boot(args.runs, args.arch)
    raise PagodaError(f"unknown benchmark {args.what}")


def _positive(text):
    if not text.isdigit() or int(text) < 1:
        raise __import__("argparse").ArgumentTypeError("must be a positive whole number")
    return int(text)


def add_parser(sub):
    p = sub.add_parser("bench", help="benchmarks: boot",
                       description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["boot"], help="which benchmark")
    p.add_argument("-n", "--runs", type=_positive, default=20, help="boots of each kernel (default 20)")
    p.add_argument("--arch", choices=paths.ARCHES, default=paths.DEFAULT_ARCH)
    p.set_defaults(func=cmd_bench)
