"""Doxygen input filter for the Markdown pages (docs/Doxyfile, FILTER_PATTERNS).

Usage: python3 doxygen_filter.py FILE   (prints the filtered FILE on stdout)

The guides and handouts are written for GitHub's Markdown, which Doxygen 1.9 reads a little
differently. This filter bridges the two, outside code (fenced blocks, indented blocks and
`code spans` are left alone):

- `#PF` in running text is just text on GitHub; Doxygen reads `#name` as a link to a member
  called `name` and warns that it cannot find one. Such a `#` becomes `\\#`, which Doxygen
  prints as `#` (the `#` marks of headings, URL fragments and `](#anchor)` links stay).
- `--option` in running text: Doxygen prints `--` as an en dash; `\\--` keeps both dashes.
- `[text](other.md#section)`: Doxygen turns a link to a page into a link to that page's HTML
  only without the `#section`, and leaves a dead link otherwise; the section is dropped.
- A code span that continues on the next line ends at the line break in Doxygen, which then
  pairs every later backtick of the paragraph wrongly; it becomes an equivalent <code> element.
- So does a code span with an escaped pipe in a table cell, `--user\\|--kernel`: GitHub shows
  `|`, Doxygen the backslash too.

The filter changes no line breaks, so warnings keep their line numbers, and the files in the
repository stay as they are. Standalone: no imports from the package.
"""
import re
import sys

# A `#` that starts a word: not after a word character (a.md#x), a path or URL (/#x), an
# entity (&#39;), a quote or `=` (attributes) or a backslash (already escaped).
_LINK_HASH = re.compile(r"(?<![\w\\&/#:\"'=])#(?=[A-Za-z_])")
# Two dashes that start an option word (not a table's |---| row, a rule or an arrow).
_OPTION_DASHES = re.compile(r"(?<![-\w\\!<])--(?=[A-Za-z])")
_PAGE_ANCHOR = re.compile(r"(\]\((?![a-z][a-z0-9+.-]*:)[^()\s#]+\.md)#[^()\s]*\)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}#{1,6}(?=\s|$)")
# A line that starts a block of its own: a list item, heading, table row or quote.
_BLOCK_START = re.compile(r"^\s*([*+-]|\d+[.)])\s|^ {0,3}(#{1,6}(\s|$)|[|>])")
# Characters Doxygen would read as commands, markup or links inside <code>, and dash runs.
_CODE_SPECIAL = re.compile(r"---?|[\\@&$#<>%\"|*_`]")


def _code_html(code):
    """@p code escaped for Doxygen so that <code>...</code> prints it as it is."""
    return _CODE_SPECIAL.sub(lambda m: "\\" + m[0], code)


def _backtick_run(text, i):
    return len(text) - i - len(text[i:].lstrip("`"))


def _closing(text, start, run):
    """Index of the next run of exactly @p run backticks in @p text from @p start, or -1."""
    for m in re.finditer(r"`+", text[start:]):
        if len(m[0]) == run:
            return start + m.start()
    return -1


def _escape_prose(chunk):
    def hash_repl(m):
        return "#" if chunk[max(0, m.start() - 2):m.start()] == "](" else "\\#"
    chunk = _PAGE_ANCHOR.sub(r"\1)", chunk)
    return _OPTION_DASHES.sub(r"\\--", _LINK_HASH.sub(hash_repl, chunk))


def _filter_line(text, open_run, continues, table_row):
    """Filters one line of a paragraph. @p open_run is the backtick count of a code span that
    an earlier line opened (0 if none); @p continues(run) tells whether a later line of the
    paragraph closes a span of @p run backticks. Returns (text, the span still open or 0)."""
    out = []
    i = 0
    if open_run:
        end = _closing(text, 0, open_run)
        if end == -1:
            return _code_html(text), open_run
        out.append(_code_html(text[:end]) + "</code>")
        i = end + open_run
    while i < len(text):
        if text[i] != "`":
            nxt = text.find("`", i)
            nxt = len(text) if nxt == -1 else nxt
            out.append(_escape_prose(text[i:nxt]))
            i = nxt
            continue
        run = _backtick_run(text, i)
        end = _closing(text, i + run, run)
        if end != -1:
            code = text[i + run:end]
            if table_row and "\\|" in code:
                out.append(f"<code>{_code_html(code.strip().replace(chr(92) + '|', '|'))}</code>")
            else:
                out.append(text[i:end + run])
            i = end + run
        elif continues(run):
            out.append("<code>" + _code_html(text[i + run:]))
            return "".join(out), run
        else:                                   # an unmatched run of backticks is literal
            out.append(text[i:i + run])
            i += run
    return "".join(out), 0


def filter_markdown(source):
    """The Markdown text @p source as Doxygen should read it (see the module's description)."""
    lines = source.split("\n")
    prose = [False] * len(lines)                # lines of paragraphs, lists, tables, headings
    fence = None                                # the open fence's marker, e.g. "```"
    previous_blank = True
    in_indented_code = False
    for n, line in enumerate(lines):
        blank = not line.strip()
        m = _FENCE.match(line)
        if fence is not None:
            if m and m[1][0] == fence[0] and len(m[1]) >= len(fence) and \
                    not line.strip()[len(m[1]):].strip():
                fence = None
        elif m:
            fence = m[1]
        elif line.startswith(("    ", "\t")) and (previous_blank or in_indented_code):
            in_indented_code = True
        elif not blank:
            in_indented_code = False
            prose[n] = True
        previous_blank = blank

    def continues_after(n):
        def continues(run):
            for later in range(n + 1, len(lines)):
                if not prose[later] or _BLOCK_START.match(lines[later]):
                    return False
                if _closing(lines[later], 0, run) != -1:
                    return True
            return False
        return continues

    open_run = 0
    for n, line in enumerate(lines):
        if not prose[n]:
            open_run = 0
            continue
        heading = _HEADING.match(line) if not open_run else None
        start = heading.end() if heading else 0     # a heading keeps its leading #s
        text, open_run = _filter_line(line[start:], open_run, continues_after(n),
                                      table_row=line.lstrip().startswith("|"))
        lines[n] = line[:start] + text
    return "\n".join(lines)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        sys.stdout.write(filter_markdown(f.read()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
