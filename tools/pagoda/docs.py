"""`pagoda docs`: the HTML documentation, built by Doxygen into build/docs/html/.

The public headers of kernel/, arch/x86_64/, arch/aarch64/ and user/ (kernel/tests excluded),
with the README as the main page and the guides (docs/*.md), the lab handouts
(labs/**/README.md) and user/README.md as pages, and graphviz diagrams. The configuration is
docs/Doxyfile; this runs Doxygen from the repository root and appends only the output directory.

With --check (and as a step of `./pagoda test`) a Doxygen warning fails the command, printed as
file:line: message, when it is about a documented header (one with a @file comment or ///
comments), a page, or the configuration; so does a link of a page that leads nowhere in the
HTML. Warnings about headers without documentation are listed but do not fail.
"""
import argparse
import html
import os
import re
import subprocess
import time
from dataclasses import dataclass, field

from . import deps
from pagoda_core import paths
from pagoda_core.ui import PagodaError, info, warn

DOXYFILE = os.path.join("docs", "Doxyfile")          # relative to the root it documents
OUTPUT = os.path.join(paths.BUILD, "docs")
HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".hxx")
PAGE_SUFFIXES = (".md", ".markdown", ".dox")
DOC_COMMENT = re.compile(r"^\s*(///|//!|/\*\*|/\*!)|[@\\]file\b", re.MULTILINE)

# "<file>:<line>: warning: <text>" (Doxygen's WARN_FORMAT); a file may be "<dir/>".
_LOCATED = re.compile(r"^<?(?P<file>[^<>]+?)>?:(?P<line>\d+): (?:warning|error): (?P<text>.*)$")
_UNLOCATED = re.compile(r"^(?:warning|error): (?P<text>.*)$")
# A page's Markdown link to a local Markdown file, [text](file.md#part): Doxygen's warning about a
# bad one differs between versions, so what went wrong is told from the tree, not from the words.
_MD_LINK = re.compile(r"\]\((?P<target>[^)\s#?]+\.(?:md|markdown))(?:[#?][^)\s]*)?\)")
_MISSING_HINT = "a link to a file that does not exist?"
_NOT_A_PAGE_HINT = "a link to a Markdown file that is not one of the pages"


@dataclass(frozen=True)
class DocWarning:
    """One Doxygen warning: where (a path relative to the root, or None) and what."""
    path: str
    line: int
    message: str

    def __str__(self):
        return f"{self.path}:{self.line}: {self.message}" if self.path else self.message


@dataclass
class Report:
    """What one Doxygen run produced."""
    html: str                                      # the output's html/ directory
    seconds: float
    failing: list = field(default_factory=list)    # warnings that fail --check
    unchecked: list = field(default_factory=list)  # warnings about undocumented headers

    @property
    def index(self):
        return os.path.join(self.html, "index.html")

    def page_files(self):
        """{title: HTML file name} of the pages, the main page first, then as the site lists
        them (file names are Doxygen's and change between its versions: md_labs_README.html in
        1.9.4, md_labs_2README.html in 1.9.8)."""
        names = ["index.html"] + _links(os.path.join(self.html, "pages.html"), r"md_[^\"#]*\.html")
        return {_title(os.path.join(self.html, name)): name for name in names}

    def pages(self):
        """Titles of the pages, the main page first, then as the site lists them."""
        return list(self.page_files())


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _links(path, pattern):
    """The distinct link targets matching @p pattern in the HTML file @p path, in order."""
    return list(dict.fromkeys(re.findall(rf'href="({pattern})"', _read(path))))


def _title(path):
    m = re.search(r'<div class="title">(.*?)</div>', _read(path), re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", m[1])).strip() if m else os.path.basename(path)


def parse_warnings(text, root):
    """The warnings in Doxygen's stderr @p text, in order, without duplicates. A line indented
    under a warning continues it; any other line (e.g. from dot) is a warning of its own."""
    found = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        m = _LOCATED.match(raw)
        if m:
            path = m["file"]
            if os.path.isabs(path):
                rel = os.path.relpath(path, root)
                path = path if rel.startswith("..") else rel
            text = m["text"].strip()
            if path.endswith(PAGE_SUFFIXES):
                hint = _link_hint(root, path, int(m["line"]), text)
                text += f" ({hint})" if hint else ""
            found.append(DocWarning(path.rstrip("/") or ".", int(m["line"]), text))
        elif raw[:1].isspace() and found:
            last = found.pop()
            sep = " " if last.message.endswith(":") else ", "
            found.append(DocWarning(last.path, last.line, last.message + sep + raw.strip()))
        else:
            u = _UNLOCATED.match(raw)
            found.append(DocWarning(None, 0, (u["text"] if u else raw).strip()))
    return list(dict.fromkeys(found))


def _link_hint(root, page, line, text):
    """Why a warning at @p page:@p line (relative to @p root) may be about a Markdown link
    there: a link to a file that does not exist, or to a Markdown file Doxygen does not read
    as a page. None when the warning is not about a reference or the line has no link to a
    local Markdown file."""
    if not re.search(r"\bref\b", text):
        return None   # not about a reference (both versions' link warnings say "ref")
    full = os.path.join(root, page)
    lines = _read(full).splitlines()
    if not 0 < line <= len(lines):
        return None
    here = os.path.dirname(full)
    targets = {t: os.path.normpath(os.path.join(here, t)) for t in _MD_LINK.findall(lines[line - 1])
               if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", t)}
    # The file the warning names, as written or as a full path (versions differ), when it does.
    named = [f for t, f in targets.items() if t in text or f in text]
    files = named or list(targets.values())
    if not files:
        return None
    return _MISSING_HINT if any(not os.path.exists(f) for f in files) else _NOT_A_PAGE_HINT


def is_checked(warning, root):
    """True when @p warning fails --check: not about a header without any documentation."""
    if warning.path is None:
        return True                      # configuration, dot, ...: always a real problem
    full = os.path.join(root, warning.path)
    if not warning.path.endswith(HEADER_SUFFIXES) or not os.path.isfile(full):
        return True                      # a page, a directory's documentation, ...
    return DOC_COMMENT.search(_read(full)) is not None


def generate(root=paths.ROOT, output=OUTPUT, overrides=()):
    """Runs Doxygen on the tree at @p root with its docs/Doxyfile, writing @p output/html/,
    and sorts the warnings. @p overrides are extra `TAG = value` lines, applied last."""
    with open(os.path.join(root, DOXYFILE), encoding="utf-8") as f:
        config = f.read()
    config += "\n" + "\n".join([f'OUTPUT_DIRECTORY = "{output}"', *overrides]) + "\n"
    html_dir = os.path.join(output, "html")
    if os.path.isdir(html_dir):
        # Doxygen never deletes a page; start afresh so that no stale page survives. Graphs
        # whose source is unchanged are kept (Doxygen reruns dot only when a .md5 differs).
        for name in os.listdir(html_dir):
            if name.endswith((".html", ".js")):
                os.remove(os.path.join(html_dir, name))
    os.makedirs(output, exist_ok=True)
    start = time.monotonic()
    try:
        out = subprocess.run(["doxygen", "-"], cwd=root, input=config, capture_output=True,
                             text=True)
    except FileNotFoundError:
        raise PagodaError("doxygen is not installed (./pagoda setup installs it)")
    seconds = time.monotonic() - start
    if out.returncode != 0:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-20:])
        raise PagodaError(f"doxygen failed with status {out.returncode}:\n{tail}")
    report = Report(html=html_dir, seconds=seconds)
    for w in parse_warnings(out.stderr, root) + dead_links(html_dir, root):
        (report.failing if is_checked(w, root) else report.unchecked).append(w)
    return report


def dead_links(html_dir, root):
    """The links of the pages that lead nowhere in the generated site, as warnings at the
    Markdown line that wrote them. Doxygen says nothing about these: a link to a file it did
    not read (or one it cannot match) is written out as it stands, dead in the HTML."""
    pages = ["index.html"] + sorted(n for n in os.listdir(html_dir) if n.startswith("md_"))
    found = []
    for page in pages:
        for href in map(html.unescape, _links(os.path.join(html_dir, page), r'[^"]*')):
            target = re.split(r"[#?]", href, maxsplit=1)[0]
            if not target or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", href) or \
                    os.path.exists(os.path.join(html_dir, target)):
                continue
            path, line = _written_at(root, "](" + href)
            found.append(DocWarning(path or os.path.join(os.path.relpath(html_dir, root), page),
                                    line, f"link to '{href}' leads nowhere in the HTML (Doxygen "
                                          "links only to the pages and headers it reads)"))
    return list(dict.fromkeys(found))


def _written_at(root, text):
    """(path relative to @p root, line) of the first Markdown file line containing @p text."""
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "build")
        for name in sorted(f for f in files if f.endswith(PAGE_SUFFIXES)):
            full = os.path.join(top, name)
            for number, line in enumerate(_read(full).splitlines(), 1):
                if text in line:
                    return os.path.relpath(full, root), number
    return None, 0


def summary(report):
    """One line: what was built, how it went, where to look."""
    rel = os.path.relpath(report.index, paths.ROOT)
    return (f"{len(report.pages())} pages, {len(report.failing)} warning(s); "
            f"open {report.index if rel.startswith('..') else rel}")


def print_warnings(report):
    for w in report.failing:
        print(w)
    if report.unchecked:
        print(f"not checked ({len(report.unchecked)} warning(s) about headers without "
              "documentation):")
        for w in report.unchecked:
            print(f"  {w}")


def build(root=paths.ROOT, output=OUTPUT, check=False, overrides=()):
    """What `./pagoda docs [--check]` does: generate(), list the warnings, and with @p check
    raise (exit status 1) when one of them is about a documented header or a page."""
    report = generate(root, output, overrides)
    print_warnings(report)
    if check and report.failing:
        raise PagodaError(f"docs --check: {len(report.failing)} Doxygen warning(s) in documented "
                          "headers or pages (listed above)", status=1)
    if report.failing:
        warn(f"docs: {len(report.failing)} Doxygen warning(s) (listed above)")
    info(f"docs: {summary(report)} (Doxygen took {report.seconds:.1f}s)")
    return report


def cmd_docs(args):
    deps.ensure()
    build(check=args.check)
    return 0


def add_parser(sub):
    p = sub.add_parser("docs", help="HTML documentation (Doxygen) in build/docs/html",
                       description=__doc__.split("\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true",
                   help="exit 1 when Doxygen warns about a documented header or a page")
    p.set_defaults(func=cmd_docs)
