"""The boot options `./pagoda run` and `./pagoda gdb` share: the machine (--arch, --memory) and
the kernel's command line (--test, --cmdline), declared once, and the command line made from
them once.

`./pagoda gdb` takes them twice: as its own options, and after `--` as for `./pagoda run`
(`./pagoda gdb -- --test pf`); the second set has no defaults, so that only what is given there
overrides the first.
"""
from pagoda_core import paths, qemu

NAMES = ("arch", "memory", "test", "cmdline")


def add(parser, defaults=True):
    """Adds --arch, --memory (-m), --test and --cmdline to @p parser. Without @p defaults, an
    option not given is None."""
    parser.add_argument("--arch", choices=paths.ARCHES, default=paths.DEFAULT_ARCH if defaults else None)
    parser.add_argument("--memory", "-m", default=qemu.DEFAULT_MEMORY if defaults else None, metavar="SIZE",
                        type=qemu.memory_size,
                        help=f"guest RAM, as QEMU's -m takes it (default {qemu.DEFAULT_MEMORY})")
    parser.add_argument("--test", metavar="NAME", help="run the kernel self-test NAME (test=NAME)")
    parser.add_argument("--cmdline", default="" if defaults else None, metavar="TEXT",
                        help="more kernel command line words")


def kernel_cmdline(test, *words):
    """The kernel's command line: test=@p test when a self-test is asked for, then @p words (an
    empty one is left out)."""
    return " ".join(filter(None, [f"test={test}" if test else "", *words]))
