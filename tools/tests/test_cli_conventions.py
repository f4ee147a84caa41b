"""./pagoda follows the usual command-line conventions: --version, and help that argparse wraps to
at most 100 columns on any terminal (every subcommand's, however wide the terminal says it is)."""
import argparse
import os
import re
import subprocess

import pytest

from pagoda import cli
from pagoda_core import paths


def every_parser(parser, name="./pagoda"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from every_parser(sub, f"{name} {sub_name}")


@pytest.mark.parametrize("columns", ["60", "100", "250"])
def test_every_help_fits_in_100_columns(monkeypatch, columns):
    """argparse wraps usage and options to the terminal, never wider than 100 columns; a
    description written with its own line breaks is printed as it is written."""
    monkeypatch.setenv("COLUMNS", columns)
    parsers = list(every_parser(cli.parser()))
    assert len(parsers) > 15                       # the walk reached the nested subcommands
    for name, parser in parsers:
        text = parser.format_help()
        written = []
        if issubclass(parser.formatter_class.func, argparse.RawDescriptionHelpFormatter):
            assert parser.description in text, name
            written = parser.description.splitlines()
        wide = [line for line in text.splitlines() if len(line) > cli.HELP_WIDTH and line not in written]
        assert not wide, f"{name} --help (COLUMNS={columns}): {len(wide[0])} columns: {wide[0]}"


def test_version():
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), "--version"],
                         capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    with open(os.path.join(paths.ROOT, cli.VERSION_HOME)) as f:     # what the kernel's banner says
        version = re.search(r'kVersion = "([^"]+)"', f.read())[1]
    assert re.fullmatch(rf"pagoda {re.escape(version)}( \(git [^)]+\))?(, lab \d+)?\n", out.stdout), out.stdout


def test_help_through_the_command_on_a_wide_terminal():
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), "grade", "--help"],
                         capture_output=True, text=True, env=dict(os.environ, COLUMNS="300"))
    assert out.returncode == 0 and "usage: ./pagoda grade" in out.stdout
    assert max(map(len, out.stdout.splitlines())) <= cli.HELP_WIDTH
