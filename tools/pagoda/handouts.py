"""The test tables of the handouts, generated from the lab manifests.

Each labs/NN-name/README.md holds its lab's table between two comment lines:

    <!-- tests: generated from lab.toml by ./pagoda labs tables --write; do not edit -->
    | test | points | checks |
    ...
    <!-- end of tests -->

`./pagoda labs tables` reports every handout whose table differs from its lab.toml (and
`./pagoda test` fails on it); `--write` rewrites them. Hidden tests (lab.toml `hidden = true`)
never appear: the handout is published.
"""
import difflib
import os
import re

from . import publish
from pagoda_core import paths
from pagoda_core.ui import PagodaError

BEGIN = "<!-- tests: generated from lab.toml by ./pagoda labs tables --write; do not edit -->"
END = "<!-- end of tests -->"
_BLOCK = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.S)


def table(lab):
    """The Markdown table of @p lab's visible tests, without the comment lines."""
    visible = [t for t in lab.tests if not t.hidden]
    lines = ["| test | points | checks |", "| --- | ---: | --- |"]
    lines += [f"| `{t.id}` | {t.points} | {t.checks} |" for t in visible]
    lines.append(f"| **total** | **{sum(t.points for t in visible)}** | |")
    return "\n".join(lines) + "\n"


def regenerate(text, lab, where):
    """@p text with its table replaced by the one of @p lab; @p where names the file in errors."""
    blocks = _BLOCK.findall(text)
    if len(blocks) != 1:
        raise PagodaError(f"{where}: expected one generated test table between '{BEGIN}' and "
                          f"'{END}', found {len(blocks)}")
    return _BLOCK.sub(lambda _: BEGIN + "\n" + table(lab) + END, text)


def stale(root):
    """[(path relative to @p root, current text, generated text)] of every handout whose
    table differs from its lab.toml (or that has no table: then the generated text is None)."""
    found = []
    for lab in publish.load_labs(root).values():
        path = os.path.join(lab.directory, "README.md")
        rel = os.path.relpath(path, root)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            wanted = regenerate(text, lab, rel)
        except PagodaError as e:
            found.append((rel, text, None, str(e)))
            continue
        if wanted != text:
            found.append((rel, text, wanted, f"{rel}: the test table differs from lab.toml"))
    return found


def cmd_tables(args, root=paths.ROOT):
    problems = stale(root)
    for rel, text, wanted, message in problems:
        if args.write and wanted is not None:
            with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
                f.write(wanted)
            print(f"rewrote the test table of {rel}")
            continue
        print(message)
        if wanted is not None:
            diff = difflib.unified_diff(text.splitlines(), wanted.splitlines(), rel, "from lab.toml",
                                        lineterm="", n=0)
            print("\n".join(list(diff)[2:]))
    left = [p for p in problems if not args.write or p[2] is None]
    if not left:
        print("labs tables: every handout's test table matches its lab.toml")
    elif not args.write:
        print("labs tables: regenerate with ./pagoda labs tables --write")
    return 1 if left else 0
