"""`./pagoda docs --check` (docs.py) on a tiny synthetic tree built from the real docs/Doxyfile:
a warning in a documented header or a page fails with file:line, a clean tree passes. Also the
Markdown filter (doxygen_filter.py) that keeps x86 exception names from becoming links."""
import os
import shutil
import textwrap

import pytest

from pagoda import docs, doxygen_filter
from pagoda_core import paths
from pagoda.docs import DocWarning
from pagoda_core.ui import PagodaError

FILTER = os.path.join(paths.ROOT, "tools", "pagoda", "doxygen_filter.py")
# Graphs off to keep each run at a fraction of a second; the filter by absolute path, since
# Doxygen runs in the synthetic tree.
OVERRIDES = ("HAVE_DOT = NO", f'FILTER_PATTERNS = "*.md={paths.SYSTEM_PYTHON} {FILTER}"')

GOOD_HEADER = """\
/// @file good.hpp
/// @brief A documented header without mistakes.
#pragma once

namespace demo {

/// Twice @p x; see also #half().
int twice(int x);

/// Half of @p x.
int half(int x);

}  // namespace demo
"""

PARAM_TYPO = """\
/// @file bad.hpp
/// @brief A documented header with a mistake.
#pragma once

/// Thrice the value.
/// @param nonexistent not a parameter of thrice()
int thrice(int x);
"""


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(textwrap.dedent(text))


@pytest.fixture
def tree(tmp_path):
    """A repository in miniature: the real Doxyfile, a README, a lab overview, one guide that
    says #PF, one clean header, and empty arch/x86_64, arch/aarch64 and user/ (every input the
    Doxyfile names)."""
    root = str(tmp_path / "src")
    os.makedirs(os.path.join(root, "docs"))
    shutil.copy(os.path.join(paths.ROOT, docs.DOXYFILE), os.path.join(root, docs.DOXYFILE))
    os.makedirs(os.path.join(root, "arch", "x86_64"))
    os.makedirs(os.path.join(root, "user"))
    os.makedirs(os.path.join(root, "arch", "aarch64", "include"))
    write(root, "README.md", "# Tiny\n\nStart with [the labs](labs/README.md).\n")
    write(root, "labs/README.md", "# The labs\n\nSee [the guide](../docs/guide.md#faults).\n")
    write(root, "docs/guide.md", """\
        # A guide

        ## Faults

        A write to an unmapped page raises #PF (vector 14); `#PF` in code stays as it is:

            #PF error 0x2 [W]
        """)
    write(root, "kernel/lib/good.hpp", GOOD_HEADER)
    return root


def run(root, tmp_path, check=True):
    return docs.build(root, str(tmp_path / "out"), check=check, overrides=OVERRIDES)


def test_clean_tree_passes_the_check(tree, tmp_path, capsys):
    report = run(tree, tmp_path)
    assert report.failing == [] and report.unchecked == []
    assert report.pages() == ["Tiny", "The labs", "A guide"]
    assert "3 pages, 0 warning(s)" in capsys.readouterr().err
    files = report.page_files()
    with open(os.path.join(report.html, files["The labs"]), encoding="utf-8") as f:
        assert f'href="{files["A guide"]}' in f.read()     # relative links between pages resolve


def test_param_typo_fails_the_check_with_file_and_line(tree, tmp_path, capsys):
    write(tree, "kernel/mm/bad.hpp", PARAM_TYPO)
    with pytest.raises(PagodaError) as failure:
        run(tree, tmp_path)
    assert failure.value.status == 1
    out = capsys.readouterr().out
    assert "kernel/mm/bad.hpp:6: argument 'nonexistent' of command @param is not found" in out
    assert "good.hpp" not in out


def test_without_check_the_same_warnings_are_listed_but_do_not_fail(tree, tmp_path, capsys):
    write(tree, "kernel/mm/bad.hpp", PARAM_TYPO)
    report = run(tree, tmp_path, check=False)
    # (the undocumented x: line 6, the comment, on Doxygen 1.9.4 and 1.9.8; line 7, the
    # declaration, on 1.9.1, Ubuntu 22.04's)
    assert [(w.path, w.line) for w in report.failing] in ([("kernel/mm/bad.hpp", 6)] * 2,
                                                         [("kernel/mm/bad.hpp", 6), ("kernel/mm/bad.hpp", 7)])
    assert "kernel/mm/bad.hpp:6:" in capsys.readouterr().out


def test_a_page_with_a_broken_reference_fails(tree, tmp_path):
    write(tree, "docs/broken.md", "# Broken\n\nSee @ref nowhere.\n")
    with pytest.raises(PagodaError):
        run(tree, tmp_path)


def test_only_documented_headers_and_pages_are_checked(tree):
    write(tree, "kernel/plain.h", "/* no Doxygen comments here */\n#define X 1\n")
    assert docs.is_checked(DocWarning("kernel/lib/good.hpp", 7, "m"), tree)
    assert docs.is_checked(DocWarning("docs/guide.md", 5, "m"), tree)
    assert docs.is_checked(DocWarning(None, 0, "tag INPUT: input source does not exist"), tree)
    assert not docs.is_checked(DocWarning("kernel/plain.h", 2, "m"), tree)


def test_warnings_are_parsed_with_continuations_and_relative_paths():
    text = ("/r/kernel/a.hpp:3: warning: The following parameters of f(int a, int b) are not "
            "documented:\n  parameter 'a'\n  parameter 'b'\n"
            "</r/kernel/lib/>:1: warning: Unsupported xml/html tag <new> found\n"
            "/r/kernel/a.hpp:3: warning: The following parameters of f(int a, int b) are not "
            "documented:\n  parameter 'a'\n  parameter 'b'\n"
            "warning: ignoring unsupported tag 'FOO'\n")
    assert docs.parse_warnings(text, "/r") == [
        DocWarning("kernel/a.hpp", 3, "The following parameters of f(int a, int b) are not "
                                      "documented: parameter 'a', parameter 'b'"),
        DocWarning("kernel/lib", 1, "Unsupported xml/html tag <new> found"),
        DocWarning(None, 0, "ignoring unsupported tag 'FOO'")]


@pytest.mark.parametrize("line, filtered", [
    ("raises #PF (vector 14), then #DF", "raises \\#PF (vector 14), then \\#DF"),
    ("**#PF (vector 14)**", "**\\#PF (vector 14)**"),
    ("| `trap_ud` | a decoded #UD report |", "| `trap_ud` | a decoded \\#UD report |"),
    ("`#UD -> #GP` and ``a ` #b`` but #c", "`#UD -> #GP` and ``a ` #b`` but \\#c"),
    ("## Why #PF", "## Why \\#PF"),
    ("[x](#goal), https://h/#top, a.md#b, &#39;, \\#done, C#",
     "[x](#goal), https://h/#top, a.md#b, &#39;, \\#done, C#"),
    ("[y](../a.md#goal), [z](https://h/a.md#top), `[w](a.md#s)`",
     "[y](../a.md), [z](https://h/a.md#top), `[w](a.md#s)`"),
    ("**run --gdb**, `--gdb`, a -- b, <!-- c -->, |---|", "**run \\--gdb**, `--gdb`, a -- b, <!-- c -->, |---|"),
])
def test_filter_escapes_exception_names_and_page_anchors_in_prose_only(line, filtered):
    assert doxygen_filter.filter_markdown(line) == filtered


def test_filter_turns_table_code_with_escaped_pipes_into_html_code():
    row = "| `pt-dump [--user\\|--kernel]` | `a b` and `x_y*<z>` |"
    assert doxygen_filter.filter_markdown(row) == \
        "| <code>pt-dump [\\--user\\|\\--kernel]</code> | `a b` and `x_y*<z>` |"
    prose = "not a table: `a\\|b`"
    assert doxygen_filter.filter_markdown(prose) == prose


def test_filter_turns_a_code_span_over_two_lines_into_html_code():
    source = "* `cannot evaluate '&k': \"k\" (C++ names\n  need it)`: see `bt` and #PF.\n* `x\n* y`"
    assert doxygen_filter.filter_markdown(source).splitlines() == [
        "* <code>cannot evaluate '\\&k': \\\"k\\\" (C++ names",
        "  need it)</code>: see `bt` and \\#PF.",
        "* `x",                                       # a list item ends the paragraph
        "* y`"]


def test_filter_leaves_code_blocks_alone_and_keeps_line_numbers():
    source = "text #PF\n\n```\n#PF in a fence\n```\n\n    #PF indented\n\n    #DF still code\nprose #DF\n"
    out = doxygen_filter.filter_markdown(source)
    assert out.splitlines() == ["text \\#PF", "", "```", "#PF in a fence", "```", "",
                                "    #PF indented", "", "    #DF still code", "prose \\#DF"]


@pytest.mark.parametrize("link, message", [
    ("../tools/run.py", "link to '../tools/run.py' leads nowhere in the HTML"),   # dead in HTML
    ("../tools/gdb/README.md#use", "(a link to a Markdown file that is not one of the pages)"),
    ("../tools/missing.md", "(a link to a file that does not exist?)"),
])
def test_a_link_to_a_file_that_is_no_page_fails_at_its_line(tree, tmp_path, capsys, link, message):
    write(tree, "tools/run.py", "")
    write(tree, "tools/gdb/README.md", "# GDB\n")
    write(tree, "docs/guide.md", f"# A guide\n\nThe tools: [see]({link}).\n")
    with pytest.raises(PagodaError):
        run(tree, tmp_path)
    out = capsys.readouterr().out
    assert out.startswith("docs/guide.md:3: ") and message in out


def test_the_lab_overview_links_every_handout_and_the_readme_names_every_isa():
    """labs/README.md linked labs 0 and 6 only; README.md said AArch64 ran labs 0 to 2."""
    import re
    from pagoda_grade import manifest
    with open(os.path.join(paths.LABS, "README.md")) as f:
        overview = f.read()
    linked = set(re.findall(r"\]\((\d\d-[a-z0-9-]+)/README\.md\)", overview))
    handouts = {d for d in os.listdir(paths.LABS) if os.path.exists(os.path.join(paths.LABS, d, "README.md"))}
    assert linked == handouts
    with open(os.path.join(paths.ROOT, "README.md")) as f:
        readme = f.read()
    everywhere = all(set(paths.ARCHES) <= set(lab.arches) for lab in manifest.load_all().values())
    assert everywhere == ("every lab on both" in readme) and "so far" not in readme


def test_every_breakpoint_the_docs_show_is_one_gdb_sets():
    """The lab-3 handout's `break pagoda::proc::switch_to` failed: the function is in an anonymous
    namespace, which GDB's qualified name must include. Each `(gdb) break NAME` of a handout or a
    guide, given to gdb-multiarch on the x86_64 kernel (where the examples were taken)."""
    import glob
    import re
    import subprocess
    from pagoda import gdb
    from pagoda_core import build
    if shutil.which(gdb.GDB) is None:
        pytest.skip(gdb.GDB + " missing")
    shown = {}
    for path in sorted(glob.glob(os.path.join(paths.LABS, "*", "README.md")) +
                       glob.glob(os.path.join(paths.ROOT, "docs", "*.md"))):
        with open(path) as f:
            for name in re.findall(r"^\s*\(gdb\) t?break (\S+)", f.read(), re.M):
                shown.setdefault(name, os.path.relpath(path, paths.ROOT))
    assert len(shown) >= 5, shown
    kernel = build.build_kernel("x86_64")
    argv = [gdb.GDB, "-q", "-nx", "-batch", kernel]
    for name in shown:
        argv += ["-ex", f"echo @@ {name}\\n", "-ex", f"break {name}"]
    text = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL).stdout
    unset = [f"{shown[name]}: break {name}" for name, answer in
             re.findall(r"^@@ (\S+)\n(.*?)(?=^@@ |\Z)", text, re.M | re.S) if "Breakpoint " not in answer]
    assert len(re.findall(r"^@@ ", text, re.M)) == len(shown), text
    assert unset == []
