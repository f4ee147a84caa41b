"""`pagoda run`: boot the kernel in QEMU with its serial console on this terminal."""
import os
import select
import subprocess
import sys

from . import build, deps, gdb, kernelinfo, paths, qemu
from .symbolize import Symbolizer
from .ui import PagodaError, info

# Output is passed on line by line (so backtraces can be named); a partial line waits at most
# this long before it is shown as it is.
PARTIAL_LINE_DELAY = 0.05


def _relay(fd, out, symbolizer):
    """Copies QEMU's output to @p out until EOF, naming backtrace addresses on the way."""
    pending = b""
    while True:
        ready, _, _ = select.select([fd], [], [], PARTIAL_LINE_DELAY)
        if not ready:
            if pending:
                out.write(pending)
                out.flush()
                pending = b""
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if lines:
            text = [l.decode(errors="replace").rstrip("\r") for l in lines]
            for line in symbolizer.annotate(text):
                out.write(line.encode() + b"\r\n")
            out.flush()
    if pending:
        out.write(pending)
        out.flush()


def cmd_run(args):
    deps.ensure()
    kernel = build.build_kernel(args.arch)
    kernelinfo.check_boot_arguments(kernel, args.arch, args.memory, args.test)
    shell = "run=sh" if args.shell else ""
    cmdline = " ".join(filter(None, [f"test={args.test}" if args.test else "", shell, args.cmdline]))
    log = os.path.join(paths.build_dir(args.arch), "run-qemu.log")
    stub = gdb.GdbStub(args.arch, args.gdb) if args.gdb is not None else None
    argv = qemu.command(kernel, cmdline, arch=args.arch, memory=args.memory, serial="mon:stdio",
                        log_items="cpu_reset", log_file=log, **(stub.qemu_args() if stub else {}))
    info(f"booting {os.path.relpath(kernel, paths.ROOT)} in QEMU ({args.arch}, {args.memory}); "
         "quit with Ctrl-A X")
    # Same process group as us, so the terminal's signals reach it; it still dies with us.
    proc = qemu.spawn(argv, new_group=False, stdout=subprocess.PIPE)
    try:
        if stub:
            stub.announce(proc)
        _relay(proc.stdout.fileno(), sys.stdout.buffer, Symbolizer(kernel))
    except KeyboardInterrupt:
        pass
    finally:
        if stub and not stub.ready and proc.poll() is None:
            proc.kill()  # announce() gave up waiting for it
        proc.wait()
        if stub:
            stub.close()
    with open(log, errors="replace") as f:
        what = qemu.describe_exit(proc.returncode, f.read(), args.arch)
    info(f"QEMU ended: {what}")
    # Success, or the user quitting (Ctrl-A X), is 0; a panic, a triple fault or a QEMU error is 1.
    return 0 if what in ("clean shutdown", qemu.describe_exit(qemu.EXIT_RESET, arch=args.arch)) else 1


def add_parser(sub):
    p = sub.add_parser("run", help="boot the kernel in QEMU with the serial console here",
                       description="Builds the kernel and boots it in QEMU; the serial console is "
                                   "this terminal. Ctrl-A X quits QEMU, Ctrl-A H lists the other "
                                   "keys. Installs missing tools first.")
    p.add_argument("--arch", choices=paths.ARCHES, default=paths.DEFAULT_ARCH)
    p.add_argument("--memory", "-m", default=qemu.DEFAULT_MEMORY, metavar="SIZE", type=qemu.memory_size,
                   help=f"guest RAM, as QEMU's -m takes it (default {qemu.DEFAULT_MEMORY})")
    p.add_argument("--test", metavar="NAME", help="run the kernel self-test NAME (test=NAME)")
    p.add_argument("--cmdline", default="", metavar="TEXT", help="more kernel command line words")
    p.add_argument("--shell", action="store_true",
                   help="drop into the user shell (run=sh, lab 6): run the embedded programs by name, "
                        "with arguments and &; `exit` or Ctrl-A X leaves")
    p.add_argument("--gdb", nargs="?", const="", metavar="SOCKET",
                   help="boot paused with a gdbstub on a unix socket (SOCKET, or one in a fresh "
                        "temporary directory) and print 'pagoda: gdb ready: target remote "
                        "SOCKET' once GDB can attach; a triple fault pauses the machine")
    p.set_defaults(func=cmd_run)
