"""Solution regions: the marker comments that turn main into one student branch per lab.

The syntax, with an example, is in `./pagoda labs --help` (labs.MARKERS_HELP): BEGIN, an
optional SKELETON and END marker lines, each holding nothing but `<leader> LAB N KIND`, with the
file type's comment leader (style_for()); skeleton lines are commented out so that main builds.

Publishing lab N (render(..., N)) keeps the solution of every region of a lab < N without its
markers and skeleton; a region of lab N or later becomes its skeleton, uncommented (uncomment()).
A region with a SKELETON is one a student writes: published between the comment lines
`<leader> >>> lab N: <description>` and `<leader> <<< lab N` (where transplant.py takes it from).
A region without one is the reference's own: its solution for a lab < N, else nothing.
This module never touches git: publish.py feeds it files.
"""
import os
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Style:
    """How one file type writes a one-line comment."""
    open: str
    close: str = ""

    def describe(self):
        return f"'{self.open} ... {self.close}'" if self.close else f"'{self.open}'"


SLASH = Style("//")
HASH = Style("#")
BLOCK = Style("/*", "*/")

_SUFFIX_STYLES = {
    **dict.fromkeys((".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".hxx", ".inc", ".ipp",
                     ".inl", ".S", ".s"), SLASH),
    **dict.fromkeys((".py", ".cmake", ".sh", ".bash", ".toml", ".ini", ".cfg", ".yml", ".yaml",
                     ".mk", ".gdb"), HASH),
    **dict.fromkeys((".ld", ".lds"), BLOCK),
}
_NAME_STYLES = {"CMakeLists.txt": HASH, "Makefile": HASH, "GNUmakefile": HASH}
_SHEBANG = re.compile(rb"^#![^\n]*\b(python[0-9.]*|sh|bash|dash|zsh)\b")


def style_for(path, head=b""):
    """The comment style of @p path (its first bytes @p head decide for a script without a
    suffix), or None for a file type that cannot hold regions."""
    name = os.path.basename(path)
    if name in _NAME_STYLES:
        return _NAME_STYLES[name]
    style = _SUFFIX_STYLES.get(os.path.splitext(name)[1])
    if style is None and "." not in name and _SHEBANG.match(head):
        style = HASH
    return style


def _marker_pattern(style):
    close = r"[ \t]*" + re.escape(style.close) if style.close else ""
    return re.compile(r"^(?P<indent>[ \t]*)" + re.escape(style.open) +
                      r"[ \t]*LAB[ \t]+(?P<lab>[0-9]+)[ \t]+(?P<kind>BEGIN|SKELETON|END)"
                      r"(?:[ \t]+(?P<desc>.*?))?" + close + r"[ \t]*$")


def _near_miss_pattern(leaders):
    return re.compile(r"^[ \t]*(?:" + "|".join(re.escape(l) for l in leaders) +
                      r")[ \t]*lab[ \t]*[0-9]+[ \t]*(?:begin|skeleton|end)(?=[ \t]|$|\*/|-->)",
                      re.IGNORECASE)


_MARKER = {s: _marker_pattern(s) for s in (SLASH, HASH, BLOCK)}
# Near misses, including a C-style `/* ... */` marker in C/C++ (a comment there, but not markers'
# syntax: without this it would be published as it is).
_NEAR_MISS = {SLASH: _near_miss_pattern(["//", "/*"]), HASH: _near_miss_pattern(["#"]),
              BLOCK: _near_miss_pattern(["/*"])}
# Marker-looking lines in a file type without regions (e.g. `<!-- LAB 1 BEGIN -->` in Markdown).
_FOREIGN_MARKER = _near_miss_pattern(["//", "#", "/*", "<!--", ";", "--", "%"])
_MARKDOWN_FENCE = re.compile(r"^[ \t]*(```|~~~)")


@dataclass
class Region:
    lab: int
    begin: int                      # 1-based line numbers of the markers
    end: int
    skeleton: int = None
    description: str = ""
    indent: str = ""                # the BEGIN marker's indentation
    newline: str = "\n"             # and its line ending
    solution: list = field(default_factory=list)        # raw lines, line endings kept
    skeleton_lines: list = field(default_factory=list)  # raw lines, still commented out


@dataclass
class Parsed:
    """A file split into plain lines (str) and Regions, plus what is wrong with its markers."""
    style: Style
    segments: list
    errors: list                    # (line, message)

    @property
    def regions(self):
        return [s for s in self.segments if isinstance(s, Region)]


def split_lines(text):
    """Lines with their endings; only '\\n' ends a line (form feeds and CRs stay in place)."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def _body(line):
    return line.rstrip("\r\n")


def is_commented(line, style):
    body = _body(line).strip()
    if not body:
        return True
    if style.close:
        return body.startswith(style.open) and body.endswith(style.close) and \
            len(body) >= len(style.open) + len(style.close)
    return body.startswith(style.open)


def uncomment(line, style):
    """`    // foo();` -> `    foo();`: drops the leader and one space after it (and, for
    `/* */`, the closer and one space before it); keeps the indentation and the line ending."""
    body = _body(line)
    ending = line[len(body):]
    stripped = body.lstrip(" \t")
    indent = body[:len(body) - len(stripped)]
    if not stripped:
        return ending
    rest = stripped[len(style.open):]
    if rest.startswith(" "):
        rest = rest[1:]
    if style.close:
        rest = rest.rstrip(" \t")[:-len(style.close)]
        if rest.endswith(" "):
            rest = rest[:-1]
    if not rest.strip():
        return ending
    return indent + rest + ending


def parse(text, style, labs=None):
    """Splits @p text into plain lines and Regions. @p labs, if given, is the set of known lab
    numbers. Never raises: what is wrong goes to Parsed.errors, and a broken region is kept as
    plain lines so that the rest of the file still parses."""
    marker, near_miss = _MARKER[style], _NEAR_MISS[style]
    segments, errors = [], []
    current = None          # the open Region
    pending = []            # the lines of the open region, to give back if it never closes
    nested = 0              # regions opened (in error) inside the current one

    for number, line in enumerate(split_lines(text), 1):
        m = marker.match(_body(line))
        if m is None:
            if near_miss.match(_body(line)):
                errors.append((number, "malformed marker: write "
                               f"'{style.open} LAB <n> BEGIN|SKELETON|END{' ' + style.close if style.close else ''}'"
                               " (upper case, spaces between the words)"))
            if current is None:
                segments.append(line)
                continue
            pending.append(line)
            if current.skeleton is None:
                current.solution.append(line)
            else:
                if nested == 0 and not is_commented(line, style):
                    errors.append((number, f"skeleton line of the LAB {current.lab} region does not "
                                           f"start with the comment leader {style.describe()}"))
                current.skeleton_lines.append(line)
            continue

        lab, kind, desc = int(m["lab"]), m["kind"], (m["desc"] or "").strip()
        if labs is not None and lab not in labs:
            known = ", ".join(str(n) for n in sorted(labs)) or "none"
            errors.append((number, f"LAB {lab} {kind}: there is no lab {lab} (labs/NN-name/lab.toml; "
                                   f"known: {known})"))
        if kind == "BEGIN":
            if current is not None:
                errors.append((number, f"LAB {lab} BEGIN inside the LAB {current.lab} region opened "
                                       f"at line {current.begin}: regions do not nest"))
                nested += 1
                pending.append(line)
                continue
            current = Region(lab=lab, begin=number, end=0, description=desc, indent=m["indent"],
                             newline=line[len(_body(line)):] or "\n")
            pending = [line]
            continue
        if current is None:
            errors.append((number, f"LAB {lab} {kind} outside any region (no LAB {lab} BEGIN before it)"))
            segments.append(line)
            continue
        pending.append(line)
        if nested:
            if kind == "END":
                nested -= 1
            continue
        if lab != current.lab:
            errors.append((number, f"LAB {lab} {kind} closes or splits the LAB {current.lab} region "
                                   f"opened at line {current.begin}: the numbers must match"))
        if kind == "SKELETON":
            if current.skeleton is not None:
                errors.append((number, f"second SKELETON in the LAB {current.lab} region (the first "
                                       f"is at line {current.skeleton})"))
                current.skeleton_lines.append(line)
            else:
                current.skeleton = number
            continue
        current.end = number
        segments.append(current)
        current, pending = None, []

    if current is not None:
        errors.append((current.begin, f"LAB {current.lab} BEGIN has no LAB {current.lab} END"))
        segments.extend(pending)
    return Parsed(style=style, segments=segments, errors=errors)


def visible_markers(region, style):
    """The two comment lines that show a student's region in a published file."""
    close = f" {style.close}" if style.close else ""
    about = f": {region.description}" if region.description else ""
    return (f"{region.indent}{style.open} >>> lab {region.lab}{about}{close}{region.newline}",
            f"{region.indent}{style.open} <<< lab {region.lab}{close}{region.newline}")


def layout(parsed, lab):
    """The file as published for lab @p lab (see the module doc): (its lines, [(Region, first,
    end)]) with each region's 0-based half-open range of lines (its content: between its
    visible markers for a student's region)."""
    out, spans = [], []
    for seg in parsed.segments:
        if isinstance(seg, str):
            out.append(seg)
            continue
        body = seg.solution if seg.lab < lab else [uncomment(l, parsed.style) for l in seg.skeleton_lines]
        if seg.skeleton is None:        # the reference's own: no student writes it
            spans.append((seg, len(out), len(out) + len(body)))
            out.extend(body)
            continue
        opening, closing = visible_markers(seg, parsed.style)
        out.append(opening)
        spans.append((seg, len(out), len(out) + len(body)))
        out.extend(body)
        out.append(closing)
    return out, spans


def render(parsed, lab):
    """The file as published for lab @p lab (see the module doc); None gives main's text."""
    if lab is None:
        raise ValueError("render(None) is main's text: use the file itself")
    return "".join(layout(parsed, lab)[0])


def foreign_marker_errors(text, path):
    """Marker-looking lines in a file type that cannot hold regions: they would be published
    as they are, solution and all. Fenced code blocks of Markdown are documentation."""
    errors = []
    markdown = path.endswith((".md", ".markdown"))
    fenced = False
    for number, line in enumerate(split_lines(text), 1):
        if markdown and _MARKDOWN_FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced and _FOREIGN_MARKER.match(_body(line)):
            errors.append((number, f"region marker in a file type that cannot hold regions "
                                   f"({os.path.basename(path)}): it would be published as it is"))
    return errors


def may_hold_markers(data):
    """Cheap test on a file's bytes: False means no marker or near miss can be in it."""
    return re.search(rb"(?i)lab", data) is not None
