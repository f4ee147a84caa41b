"""The boot options `./pagoda run` and `./pagoda gdb` share: the machine (--arch, --memory, --swap, --smp)
and the kernel's command line (--test, --cmdline), declared once, and the command line made from
them once.

`./pagoda gdb` takes them twice: as its own options, and after `--` as for `./pagoda run`
(`./pagoda gdb -- --test pf`); the second set has no defaults, so that only what is given there
overrides the first.
"""
import argparse

from pagoda_core import paths, qemu
from pagoda_grade.todo import current_lab

NAMES = ("arch", "memory", "swap", "smp", "test", "cmdline")


def add(parser, defaults=True):
    """Adds --arch, --memory (-m), --swap, --smp, --test and --cmdline to @p parser. Without @p
    defaults, an option not given is None."""
    parser.add_argument("--arch", choices=paths.ARCHES, default=paths.DEFAULT_ARCH if defaults else None)
    parser.add_argument("--memory", "-m", default=qemu.DEFAULT_MEMORY if defaults else None, metavar="SIZE",
                        type=qemu.memory_size,
                        help=f"guest RAM, as QEMU's -m takes it (default {qemu.DEFAULT_MEMORY})")
    parser.add_argument("--swap", metavar="SIZE", type=swap_size,
                        help=f"attach a swap disk of SIZE (16M, 1G: a sparse image in the boot's "
                             f"directory), or 'off'; default {qemu.DEFAULT_SWAP} from lab {qemu.SWAP_LAB} "
                             "on, off before")
    parser.add_argument("--smp", type=cpus, default=1 if defaults else None, metavar="N",
                        help="boot with N CPUs (QEMU's -smp N, the vCPUs in turn on one host thread); the "
                             "kernel starts the second once its own root is live (lab 8; cpus=1 keeps it parked)")
    parser.add_argument("--test", metavar="NAME", help="run the kernel self-test NAME (test=NAME)")
    parser.add_argument("--cmdline", default="" if defaults else None, metavar="TEXT",
                        help="more kernel command line words")


def kernel_cmdline(test, *words):
    """The kernel's command line: test=@p test when a self-test is asked for, then @p words (an
    empty one is left out)."""
    return " ".join(filter(None, [f"test={test}" if test else "", *words]))


def cpus(text):
    """argparse type of --smp: a whole number of CPUs, 1 or more."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of CPUs (1, 2, ...)")
    return int(text)


def swap_size(text):
    """argparse type of --swap: a size as -m takes it, or 'off'."""
    return text if text == "off" else qemu.memory_size(text)


def swap_disk(option, directory):
    """The qemu.SwapDisk of a boot given --swap @p option (None: not given), its image made in
    @p directory; None for no disk. Not given: a disk of DEFAULT_SWAP from SWAP_LAB on, and in
    the reference tree (it has every lab)."""
    if option is None:
        lab = current_lab(paths.ROOT)
        option = "off" if lab is not None and lab < qemu.SWAP_LAB else qemu.DEFAULT_SWAP
    return None if option == "off" else qemu.SwapDisk(directory, qemu.memory_mib(option) << 20)
