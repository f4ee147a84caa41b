"""`pagoda run`: boot the kernel in QEMU with its serial console on this terminal.

By default the kernel starts the user shell (run=sh) when it has one and the branch is at lab 6
or later (the shell needs fork, exec and wait); --no-shell, --test or a run= of --cmdline boot
without it. --quiet boots with log=quiet (no lifecycle lines). --memview adds Ctrl-A M: a map of
physical memory by owner (memview.py); --memview-at EVENT draws it each time EVENT happens (the
guest stopped at that moment: a fork's shared pages, say).
"""
import os
import select
import shutil
import subprocess
import sys
import tempfile
import termios
import threading
import tty

from . import bootopts, deps, gdb, labstatus, memview
from pagoda_core import build, kernelinfo, paths, qemu
from pagoda_core.symbolize import Symbolizer
from pagoda_core.ui import PagodaError, info

# Output is passed on line by line (so backtraces can be named); a partial line waits at most
# this long before it is shown as it is.
PARTIAL_LINE_DELAY = 0.05


class _LockedOut:
    """The terminal, written by the relay and by the memview session's thread in turn."""

    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()

    def write(self, data):
        with self.lock:
            self.out.write(data)

    def flush(self):
        with self.lock:
            self.out.flush()


def _relay(fd, out, symbolizer, keys=None):
    """Copies QEMU's output to @p out until EOF, naming backtrace addresses on the way. With
    @p keys (keyboard fd, QEMU's stdin fd, KeyFilter, on_hotkey()), also passes the user's keys
    on to QEMU and calls on_hotkey() for each Ctrl-A M."""
    pending = b""
    watched = [fd] + ([keys[0]] if keys else [])
    while True:
        ready, _, _ = select.select(watched, [], [], PARTIAL_LINE_DELAY)
        if keys and keys[0] in ready:
            data = os.read(keys[0], 1024)
            if not data:
                watched.remove(keys[0])
            else:
                forward, hits = keys[2].feed(data)
                if forward:
                    try:
                        os.write(keys[1], forward)
                    except OSError:
                        pass        # QEMU is gone: its output's EOF ends the loop
                for _ in range(hits):
                    if pending:
                        out.write(pending)
                        pending = b""
                    keys[3]()
        if fd not in ready:
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


SHELL_LAB = 6       # the lab that brings fork, exec and wait, which the shell needs


def shell_words(args, kernel):
    """('run=sh' or '', a note for the user or ''): whether this boot starts the shell."""
    explicit = args.test or any(w.startswith("run=") for w in args.cmdline.split())
    if args.no_shell or explicit:
        if args.shell:
            raise PagodaError("--shell and %s exclude each other" % (
                "--no-shell" if args.no_shell else "--test" if args.test else "run= in --cmdline"))
        return "", ""
    if "sh" not in kernelinfo.embedded_programs(kernel):
        if args.shell:
            raise PagodaError("this kernel has no shell (user/programs/sh.cpp is not built in)")
        return "", "this kernel has no shell (user/programs/sh): booting without one"
    if not args.shell:
        lab = labstatus.current_lab(paths.ROOT)
        if lab is not None and lab < SHELL_LAB:
            return "", (f"this is lab {lab}'s branch: the shell comes with lab {SHELL_LAB} (fork, "
                        "exec and wait), booting without it (--shell starts it anyway; "
                        "--cmdline run=NAME runs a program)")
    return "run=sh", ""


def cmd_run(args):
    deps.ensure()
    kernel = build.build_kernel(args.arch)
    kernelinfo.check_boot_arguments(kernel, args.arch, args.memory, args.test)
    shell, note = shell_words(args, kernel)
    if note:
        info(note)
    events = [memview.parse_event(e) for e in args.memview_at or ()]
    args.memview = args.memview or bool(events)
    if args.memview and args.gdb is not None:
        raise PagodaError("--memview and --gdb exclude each other (in GDB, `frames --map` draws "
                          "the same map)")
    cmdline = bootopts.kernel_cmdline(args.test, shell, "log=quiet" if args.quiet else "", args.cmdline)
    log = os.path.join(paths.build_dir(args.arch), "run-qemu.log")
    stub = gdb.GdbStub(args.arch, args.gdb) if args.gdb is not None else None
    view_dir = tempfile.mkdtemp(prefix="pagoda-memview-") if args.memview else None
    view_socket = os.path.join(view_dir, "gdb.sock") if view_dir else None
    extra = stub.qemu_args() if stub else ({"gdb_socket": view_socket} if view_socket else {})
    swap = bootopts.swap_disk(args.swap, paths.build_dir(args.arch))
    argv = qemu.command(kernel, cmdline, arch=args.arch, memory=args.memory, serial="mon:stdio",
                        log_items="cpu_reset", log_file=log, swap=swap, cpus=args.smp, **extra)
    keyboard = sys.stdin.fileno() if args.memview else None
    saved_tty = None
    if keyboard is not None and os.isatty(keyboard):
        saved_tty = termios.tcgetattr(keyboard)
    info(f"booting {os.path.relpath(kernel, paths.ROOT)} in QEMU ({args.arch}, {args.memory}"
         + (f", {args.smp} CPUs" if args.smp > 1 else "")
         + (f", swap disk {os.path.relpath(swap.image, paths.ROOT)}" if swap else "") + "); "
         "quit with Ctrl-A X" + ("; Ctrl-A M shows physical memory" if args.memview else ""))
    # Same process group as us, so the terminal's signals reach it; it still dies with us.
    proc = qemu.spawn(argv, new_group=False, stdout=subprocess.PIPE,
                      stdin=subprocess.PIPE if keyboard is not None else None)
    keys = session = None
    out = _LockedOut(sys.stdout.buffer)
    if keyboard is not None:
        colour = os.isatty(sys.stdout.fileno()) and os.environ.get("NO_COLOR") is None

        def write_map(headings, lines):
            out.write(b"\r\n" + "\r\n".join(list(headings) + list(lines)).encode() + b"\r\n")
            out.flush()

        def show():
            if session is not None:
                session.request()   # through the session's connection (it holds the stub)
            else:
                write_map([], memview.snapshot(view_socket, kernel, args.arch, colour=colour))

        if events:
            session = memview.Session(view_socket, kernel, args.arch, events, write_map, colour=colour)
            session.resolve()
        keys = (keyboard, proc.stdin.fileno(), memview.KeyFilter(), show)
        if saved_tty is not None:
            tty.setraw(keyboard)   # keys reach us one by one; QEMU no longer owns the terminal
    try:
        if stub:
            stub.announce(proc)
        if session:
            session.start()
        _relay(proc.stdout.fileno(), out, Symbolizer(kernel), keys)
    except KeyboardInterrupt:
        pass
    finally:
        if session:
            session.close()
        if saved_tty is not None:
            termios.tcsetattr(keyboard, termios.TCSADRAIN, saved_tty)
        if stub and not stub.ready and proc.poll() is None:
            proc.kill()  # announce() gave up waiting for it
        proc.wait()
        if stub:
            stub.close()
        if view_dir:
            shutil.rmtree(view_dir, ignore_errors=True)
    with open(log, errors="replace") as f:
        what = qemu.describe_exit(proc.returncode, f.read(), args.arch)
    info(f"QEMU ended: {what}")
    # Success, or the user quitting (Ctrl-A X), is 0; a panic, a triple fault or a QEMU error is 1.
    return 0 if what in ("clean shutdown", qemu.describe_exit(qemu.EXIT_RESET, arch=args.arch)) else 1


def add_parser(sub):
    p = sub.add_parser("run", help="boot the kernel in QEMU with the serial console here",
                       description="Builds the kernel and boots it in QEMU; the serial console is "
                                   "this terminal. From lab 6 on it drops into the user shell "
                                   "(run the embedded programs by name, with arguments and &; "
                                   "`exit` ends it). Ctrl-A X quits QEMU, Ctrl-A H lists the "
                                   "other keys. Installs missing tools first.")
    bootopts.add(p)
    p.add_argument("-q", "--quiet", action="store_true",
                   help="keep the kernel's lifecycle lines (run:, started, exec, reaped) out of the "
                        "console: only what the programs print, and what goes wrong (log=quiet)")
    shell = p.add_mutually_exclusive_group()
    shell.add_argument("--no-shell", action="store_true",
                       help="boot without the user shell (the default starts it, run=sh, when the "
                            "kernel has it and the branch is at lab 6 or later)")
    shell.add_argument("--shell", action="store_true",
                       help="start the shell even on a branch before lab 6")
    p.add_argument("--memview", action="store_true",
                   help="Ctrl-A M prints a map of physical memory coloured by owner (kernel image, "
                        "page tables, free, each process, shared copy-on-write frames), and with swap "
                        "(lab 7) the swap slots and the resident user frames, read from guest RAM "
                        "through QEMU's gdbstub while the guest is stopped; each map is also written as a "
                        "page for a browser, build/memview.html")
    p.add_argument("--memview-at", action="append", metavar="EVENT",
                   help="also draw that map each time EVENT happens, the guest stopped there: fork "
                        "(the parent's pages just shared or copied), exec, exit, or a kernel "
                        "function (NAME, NAME:return); repeatable; implies --memview")
    p.add_argument("--gdb", nargs="?", const="", metavar="SOCKET",
                   help="boot paused with a gdbstub on a unix socket (SOCKET, or one in a fresh "
                        "temporary directory) and print 'pagoda: gdb ready: target remote "
                        "SOCKET' once GDB can attach; a triple fault pauses the machine")
    p.set_defaults(func=cmd_run)
