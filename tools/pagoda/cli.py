"""Command-line parsing for ./pagoda: one subcommand per task, each with --help.

Every parser (subcommands included) is a Parser: its help is at most HELP_WIDTH columns on any
terminal, and a description written with its own line breaks keeps them but has its long lines
wrapped to that width too.
"""
import argparse
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap

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


class _KeepLinesFormatter(argparse.RawDescriptionHelpFormatter):
    """RawDescriptionHelpFormatter whose paragraphs with a line longer than the width are filled
    again to the width instead of running past it. A paragraph is a line and the lines after it
    indented to its text's column: the column after its label (`  host     text...`, its
    continuation lines under `text`), or prose at the left margin; an indented line without a
    label (code, an example) is wrapped alone, under its own indentation."""

    def _fill_text(self, text, width, indent):
        lines = text.splitlines()
        out, i = [], 0
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                out.append("")
                i += 1
                continue
            lead = len(line) - len(line.lstrip())
            hang = self._hanging_column(line, lines[i + 1] if i + 1 < len(lines) else "")
            j = i + 1
            # An indented line without a label (code, an example) is a paragraph of its own.
            while (hang > lead or lead == 0) and j < len(lines) and lines[j].strip() and _indent(lines[j]) == hang \
                    and not re.match(r"\s*\S.*?\s{2,}\S", lines[j][hang:]):
                j += 1
            block = lines[i:j]
            if all(len(indent + l) <= width for l in block):
                out += [indent + l for l in block]
            else:
                first = line[:hang] if hang > lead else line[:lead]
                words = line[len(first):].split() + [w for l in block[1:] for w in l.split()]
                out.append(textwrap.fill(" ".join(words), width, initial_indent=indent + first,
                                         subsequent_indent=indent + " " * hang, break_on_hyphens=False))
            i = j
        return "\n".join(out)

    @staticmethod
    def _hanging_column(line, following):
        """Where @p line's continuation lines start: after its label (`  host     ...`: the
        column the next line is indented to, or else after a run of 2 blanks), else its indent."""
        lead = _indent(line)
        n = _indent(following) if following.strip() else 0
        if n > lead and n < len(line) and line[n - 1] == " " and line[n] != " ":
            return n
        label = re.match(r"(\s*\S.*?\s{2,})\S", line)
        return len(label[1]) if label else lead


def _indent(line):
    return len(line) - len(line.lstrip())


def help_width():
    """The width argparse wraps to: the terminal's (less argparse's usual 2-column margin), at
    most HELP_WIDTH."""
    return min(HELP_WIDTH, shutil.get_terminal_size().columns - 2)


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose help fits in HELP_WIDTH columns; add_subparsers() makes more of it."""

    def __init__(self, *args, formatter_class=argparse.HelpFormatter, **kwargs):
        base = _KeepLinesFormatter if issubclass(formatter_class, argparse.RawDescriptionHelpFormatter) \
            else formatter_class
        super().__init__(*args, formatter_class=functools.partial(base, width=help_width()), **kwargs)


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
