"""Command-line parsing for ./pagoda: one subcommand per task, each with --help."""
import argparse
import os
import sys

from . import autograder, bench, build, deps, docs, gdb, grade, hunt, labs, paths, run, test
from .ui import PagodaError


def _ensure_system_python():
    """./pagoda runs under Debian's /usr/bin/python3 (the one with python3-* packages)."""
    if os.path.realpath(sys.executable) != os.path.realpath(paths.SYSTEM_PYTHON) and \
            os.path.exists(paths.SYSTEM_PYTHON) and not os.environ.get("PAGODA_REEXEC"):
        os.environ["PAGODA_REEXEC"] = "1"
        os.execv(paths.SYSTEM_PYTHON, [paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda")] + sys.argv[1:])


def parser():
    p = argparse.ArgumentParser(
        prog="./pagoda",
        description="Pagoda, a teaching OS for virtual memory. Start with `./pagoda run` and "
                    "`./pagoda test`; both install what is missing.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (deps, build, run, gdb, test, grade, bench, docs, labs, hunt, autograder):
        module.add_parser(sub)
    return p


def main(argv):
    _ensure_system_python()
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except PagodaError as e:
        print(f"pagoda: error: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        print("pagoda: interrupted", file=sys.stderr)
        return 130
