"""./pagoda follows the usual command-line conventions: --version, and help that fits in 100
columns on any terminal (every subcommand's, however wide the terminal says it is)."""
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
    monkeypatch.setenv("COLUMNS", columns)
    parsers = list(every_parser(cli.parser()))
    assert len(parsers) > 15                       # the walk reached the nested subcommands
    for name, parser in parsers:
        text = parser.format_help()
        wide = [line for line in text.splitlines() if len(line) > cli.HELP_WIDTH]
        assert not wide, f"{name} --help (COLUMNS={columns}): {len(wide[0])} columns: {wide[0]}"


def test_a_long_description_line_is_wrapped_not_cut():
    """A description with its own line breaks keeps them; a line too long is wrapped under its
    own indentation, and no word is lost."""
    words = " ".join(f"word{i}" for i in range(40))
    p = cli.Parser(prog="x", description=f"first line\n\n  {words}\nlast line",
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    text = p.format_help()
    assert "first line\n\n  word0" in text and "\nlast line" in text
    body = text[text.index("  word0"):text.index("last line")]
    assert body.split() == words.split()
    assert all(len(l) <= cli.HELP_WIDTH and l.startswith("  ") for l in body.splitlines() if l)


def test_version():
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), "--version"],
                         capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    with open(os.path.join(paths.ROOT, cli.VERSION_HOME)) as f:     # what the kernel's banner says
        version = re.search(r'kVersion = "([^"]+)"', f.read())[1]
    assert re.fullmatch(rf"pagoda {re.escape(version)}( \(git [^)]+\))?(, lab \d+)?\n", out.stdout), out.stdout


def test_help_through_the_command_on_a_wide_terminal():
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), "bench", "--help"],
                         capture_output=True, text=True, env=dict(os.environ, COLUMNS="300"))
    assert out.returncode == 0 and "usage: ./pagoda bench" in out.stdout
    assert max(map(len, out.stdout.splitlines())) <= cli.HELP_WIDTH


def test_a_hanging_paragraph_is_filled_again_under_its_label(monkeypatch):
    """`./pagoda test --help` on an 80-column terminal wrapped each too-long line alone, leaving
    a ragged column of short lines; a paragraph (a label's text and the lines under it, or
    prose) is filled again as a whole, under its own column."""
    monkeypatch.setenv("COLUMNS", "62")           # argparse wraps to 60
    item = [f"w{i}" for i in range(30)]
    prose = [f"p{i}" for i in range(40)]
    description = (f"Steps:\n  one      {' '.join(item[:20])}\n           {' '.join(item[20:])}\n"
                   f"  two      short\n\n{' '.join(prose[:25])}\n{' '.join(prose[25:])}")
    text = cli.Parser(prog="x", description=description,
                      formatter_class=argparse.RawDescriptionHelpFormatter).format_help()
    lines = text.splitlines()
    start, stop = lines.index("Steps:") + 1, next(i for i, l in enumerate(lines) if l.startswith("  two"))
    assert lines[start].startswith("  one      w0 ")
    assert " ".join(lines[start:stop]).split()[1:] == item
    assert all(l.startswith(" " * 11 + "w") for l in lines[start + 1:stop])
    prose_lines = lines[lines.index("  two      short") + 2:][:-3]     # up to the options
    assert " ".join(prose_lines).split() == prose
    for block in (lines[start:stop], prose_lines):
        for line, after in zip(block, block[1:]):          # filled: the next word did not fit
            assert 60 - 4 < len(line) + 1 + len(after.split()[0]) and len(line) <= 60, block
