"""Command-line parsing for ./pagoda: one subcommand per task, each with --help.

Every parser (subcommands included) is a Parser: its help is at most HELP_WIDTH columns on any
terminal (a description written with its own line breaks keeps them: no line of one is longer).
"""
import argparse
import functools
import os
import re
import shutil
import signal
import subprocess
import sys

from . import autograder, bench, deps, docs, gdb, grade, hunt, labs, run, test
from pagoda_core import build, paths
from pagoda_core.ui import PagodaError

HELP_WIDTH = 100      # columns: help is never wider, whatever the terminal
VERSION_HOME = os.path.join("kernel", "core", "kmain.hpp")


def _ensure_system_python():
    """./pagoda runs under Debian's /usr/bin/python3 (the one with python3-* packages)."""
    if os.path.realpath(sys.executable) != os.path.realpath(paths.SYSTEM_PYTHON) and \
            os.path.exists(paths.SYSTEM_PYTHON) and not os.environ.get("PAGODA_REEXEC"):
        os.environ["PAGODA_REEXEC"] = "1"
        os.execv(paths.SYSTEM_PYTHON, [paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda")] + sys.argv[1:])


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose help is at most HELP_WIDTH columns wide (argparse's own width, the
    terminal's less 2, otherwise); add_subparsers() makes more of it."""

    def __init__(self, *args, formatter_class=argparse.HelpFormatter, **kwargs):
        width = min(HELP_WIDTH, shutil.get_terminal_size().columns - 2)
        super().__init__(*args, formatter_class=functools.partial(formatter_class, width=width), **kwargs)


def version_text():
    """`pagoda VERSION (git DESCRIPTION), lab N`: the version the kernel's banner prints (its one
    home: kVersion in kernel/core/kmain.hpp) and, in a git tree, the commit (and the lab a
    student's branch is for)."""
    with open(os.path.join(paths.ROOT, VERSION_HOME)) as f:
        m = re.search(r'^inline constexpr const char\* kVersion = "([^"]+)";', f.read(), re.M)
    text = f"pagoda {m[1] if m else 'unknown'}"
    try:
        git = subprocess.run(["git", "-C", paths.ROOT, "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=30)
        if git.returncode == 0 and git.stdout.strip():
            text += f" (git {git.stdout.strip()})"
    except (OSError, subprocess.TimeoutExpired):
        pass
    lab = os.path.join(paths.ROOT, ".pagoda-lab")
    if os.path.exists(lab):
        with open(lab) as f:
            text += f", lab {f.read().strip()}"
    return text


class _Version(argparse.Action):
    """--version: computed only when asked for (it runs git)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print Pagoda's version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def parser():
    p = Parser(
        prog="./pagoda",
        description="Pagoda, a teaching OS for virtual memory. Start with `./pagoda run` and "
                    "`./pagoda test`; both install what is missing.")
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (deps, build, run, gdb, test, grade, bench, docs, labs, hunt, autograder):
        module.add_parser(sub)
    return p


def main(argv):
    _ensure_system_python()
    # Ctrl-C must reach every task as KeyboardInterrupt. A command started in the background by a
    # non-interactive shell (a CI job's `cmd &`) inherits SIGINT ignored, and Python then keeps
    # it ignored: a grade would never stop on Ctrl-C or on the batch limit's SIGINT.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except PagodaError as e:
        print(f"pagoda: error: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        print("pagoda: interrupted", file=sys.stderr)
        return 130
