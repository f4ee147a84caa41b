"""The tree a submission is graded in: the instructor's lab-N tree with the student's solution
regions put in, and nothing else of the student's.

A student writes inside solution regions (regions.py); every other line of the tree is the
instructor's: the build files, the grader, the user programs, the kernel around the regions. So
the graded tree is the published lab-N tree (publish.resolved) in which each region's lines are
replaced by the lines the submission has in that place. A change anywhere else (a build file, a
line next to a region, an added or deleted file) is not built: it is listed, so that the
student learns what was left out, and the instructor's text is used. The submission's build
files never run, and a submission cannot change how it is built or graded.

Where a region sits in the submission is found by a line diff against the published file (the
region markers are not in a published tree): each change whose published side lies within one
region, or touches it, is the student's; any other change is listed. Lines are compared without
trailing white space and line-ending differences (an editor that rewrote CRLF or trimmed lines
changed nothing outside the regions). Only regular files are read: a symbolic link in the
submission (a way to read the grader's machine into the build) is ignored and listed.
"""
import difflib
import itertools
import json
import os
import re
import stat
from dataclasses import dataclass, field

from . import publish, regions
from pagoda_core import slips
from pagoda_core.ui import PagodaError

# What a submission may hold beyond the tree without a word: its own build outputs and VCS, a
# bug hunt's answer (data the grader reads, batch.py) and the branch's packed slips.
QUIET = ("build/", ".git/", ".github/", ".vscode/", ".idea/", ".cache/", slips.ANSWER_FILE, slips.PACK_PATH)
MAX_FILE = 8 << 20          # bytes: a larger file in the submission is not read
MAX_LISTED = 12             # outside changes named one by one in the feedback


@dataclass
class Published:
    """The lab-@p lab tree as students get it: {path: (bytes, mode)}, and where its regions sit:
    {path: [(first, end)]}, 0-based half-open line ranges in the published text (a region that
    publishes as nothing is an empty range: code may be written there)."""
    lab: int
    files: dict
    ranges: dict = field(default_factory=dict)


# In an autograder's source folder (autograder.py): the lab it grades and its region ranges;
# the folder holds that lab's published tree, plus the grader's hidden tests and slips.
GRADED_FILE = ".pagoda-graded.json"
# Files of an autograder's folder that are no part of any tree.
_AUTOGRADER_FILES = {GRADED_FILE, "setup.sh", "run_autograder"}


def _scan(root):
    """The source files of @p root (publish.SourceFile): git's list in a working tree, else every
    file on disk but build outputs."""
    if os.path.exists(os.path.join(root, ".git")):
        return publish.scan(root)
    labs, found = publish.lab_numbers(root), []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", ".git", "build"))
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if rel not in _AUTOGRADER_FILES:
                found.append(publish.read_source(root, rel, labs))
    return found


def published(lab, root, sources=None):
    """The lab-@p lab tree of the instructor's tree at @p root (publish.publish_tree's files, in
    memory, without the .pagoda-* bookkeeping a branch carries), with its region ranges."""
    sources = _scan(root) if sources is None else sources
    publish.require_clean(root, sources)
    files, ranges = {}, {}
    for src in sources:
        if src.link is not None or not publish.in_tree(src, lab):
            continue
        files[src.path] = (publish.resolved(src, lab), src.mode)
        if src.parsed is not None and src.parsed.regions:
            ranges[src.path] = region_ranges(src.parsed, lab)
    files[publish.LAB_FILE] = (f"{lab}\n".encode(), 0o644)
    return Published(lab, files, ranges)


def load(lab, root):
    """The lab-@p lab tree of @p root: computed from its regions (the instructor's tree), or read
    from an autograder's folder, which holds it already (autograder.py)."""
    try:
        with open(os.path.join(root, GRADED_FILE)) as f:
            graded = json.load(f)
    except FileNotFoundError:
        return published(lab, root)
    if graded["lab"] != lab:
        raise PagodaError(f"this autograder grades lab {graded['lab']}, not lab {lab}")
    pub = published(lab, root)
    pub.ranges = {path: [tuple(r) for r in rs] for path, rs in graded["ranges"].items()}
    return pub


def graded_file(pub):
    """The text of GRADED_FILE for @p pub."""
    return json.dumps({"lab": pub.lab, "ranges": pub.ranges}, indent=1, sort_keys=True) + "\n"


def region_ranges(parsed, lab):
    """[(first, end)] line ranges of @p parsed's student regions (those with a skeleton: the
    reference's own regions are no student's to write) in its lab-@p lab text."""
    merged = []
    for seg, lo, hi in regions.layout(parsed, lab)[1]:
        if seg.skeleton is None:
            continue
        if merged and lo <= merged[-1][1]:      # regions that touch are one place to write in
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def merge_file(published_text, submitted_text, ranges):
    """(merged text, [1-based published lines of changes left out], regions): @p published_text
    with each change of @p submitted_text that lies within @p ranges applied; regions holds,
    for each of @p ranges that has lines in the merged text, (its text, [1-based line in
    @p submitted_text of each of its lines, or None for a line of the published text])."""
    ours = regions.split_lines(published_text)
    theirs = regions.split_lines(submitted_text)
    matcher = difflib.SequenceMatcher(None, [l.rstrip() for l in ours], [l.rstrip() for l in theirs],
                                      autojunk=False)
    out, left_out = [], []
    owned = {}              # index in ranges: [(line, its 1-based line in the submission or None)]

    def region_of(first, end):
        return next((n for n, (lo, hi) in enumerate(ranges) if lo <= first and end <= hi and
                     (lo < hi or first == end)), None)

    def emit(lines, region, submitted):
        if region is not None:
            owned.setdefault(region, []).extend(zip(lines, submitted))
        out.extend(lines)

    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                emit(ours[i1 + k:i1 + k + 1], region_of(i1 + k, i1 + k + 1), [j1 + k + 1])
        elif any(lo <= i1 and i2 <= hi for lo, hi in ranges):     # (an insertion point when i1 == i2)
            emit(theirs[j1:j2], region_of(i1, i2), range(j1 + 1, j2 + 1))
        else:
            for k in range(i1, i2):
                emit(ours[k:k + 1], region_of(k, k + 1), [None])
            left_out.append(i1 + 1)
    if out and not out[-1].endswith("\n") and ours and ours[-1].endswith("\n"):
        out[-1] += "\n"
    texts = [("".join(l for l, _ in lines), [n for _, n in lines]) for _, lines in sorted(owned.items())]
    return "".join(out), left_out, texts


def read_regular(path, limit=MAX_FILE):
    """The bytes of the regular file @p path (never through a symbolic link, at most @p limit),
    or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(limit + 1)
    finally:
        os.close(fd)


def _submitted_paths(top):
    """Relative paths of everything under @p top that is not a directory (symlinks included,
    never followed)."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(top):
        found.update(os.path.relpath(os.path.join(dirpath, n), top) for n in filenames)
        found.update(os.path.relpath(os.path.join(dirpath, d), top) for d in dirnames
                     if os.path.islink(os.path.join(dirpath, d)))
    return found


@dataclass
class Graded:
    """What transplant() made: the files of the graded tree, and the submission's changes that
    were left out (path, or path:line, with what happened)."""
    files: dict
    left_out: list
    refused: list = field(default_factory=list)     # "path:line: what a region may not hold"

    def note(self):
        """The feedback line about what was left out ("" when nothing was)."""
        if not self.left_out:
            return ""
        shown = ", ".join(self.left_out[:MAX_LISTED])
        more = f" (+{len(self.left_out) - MAX_LISTED} more)" if len(self.left_out) > MAX_LISTED else ""
        return (f"changes outside the solution regions were not built (the instructor's text was used): "
                f"{shown}{more}")


def transplant(pub, submission):
    """The graded tree for the submission whose files are under @p submission (Graded)."""
    files, left_out, refused = {}, [], []
    present = _submitted_paths(submission)
    for rel, (data, mode) in sorted(pub.files.items()):
        files[rel] = (data, mode)
        if rel == publish.LAB_FILE:
            continue
        if rel not in present:
            left_out.append(f"{rel} (deleted)")
            continue
        theirs = read_regular(os.path.join(submission, rel))
        if theirs is None:
            left_out.append(f"{rel} (not a regular file)")
            continue
        if theirs == data:
            continue
        ranges = pub.ranges.get(rel)
        if ranges is None:
            if [l.rstrip() for l in data.splitlines()] != [l.rstrip() for l in theirs.splitlines()]:
                left_out.append(rel)
            continue
        merged, lines, texts = merge_file(data.decode("utf-8", "surrogateescape"),
                                          theirs.decode("utf-8", "surrogateescape"), ranges)
        files[rel] = (merged.encode("utf-8", "surrogateescape"), mode)
        left_out += [f"{rel}:{n}" for n in lines]
        for text, numbers in texts:
            problem = region_problem(rel, text)
            if problem:
                line = numbers[problem[0]] if problem[0] < len(numbers) else None
                refused.append(f"{rel}:{line or numbers[0] or '?'}: a solution region may not hold "
                               f"{problem[1]}")
    for rel in sorted(present - set(pub.files)):
        if not rel.startswith(QUIET) and not rel.startswith(".pagoda-") and "__pycache__" not in rel:
            left_out.append(f"{rel} (added)")
    return Graded(files, left_out, refused)


def write_tree(files, out_dir):
    """Writes @p files ({path: (bytes, mode)}) under @p out_dir (which must not exist)."""
    os.makedirs(out_dir)
    os.chmod(out_dir, 0o755)
    for rel, (data, mode) in files.items():
        dest = os.path.join(out_dir, rel)
        parent = os.path.dirname(dest)
        if not os.path.isdir(parent):
            os.makedirs(parent)
            while parent != out_dir:      # readable by the sandbox's user, whatever the umask
                os.chmod(parent, 0o755)
                parent = os.path.dirname(parent)
        with open(dest, "wb") as f:
            f.write(data)
        os.chmod(dest, (mode & 0o755) | 0o444)


# ---- what a region may hold ---------------------------------------------------------------
# A solution region is code, not a way to reach the grading machine: the build reads what its
# text names (`#include`, `__has_include`, an assembler's `.incbin`, a linker script's INCLUDE),
# so region text is refused when it holds a preprocessor line, an assembler directive in C++, an
# assembly directive a lab does not need, a linker-script command, or braces it does not close
# (a region that closes its function or namespace writes outside itself). The sandbox's root
# (sandbox.py) holds as well; this check holds where the machine has no namespaces.

# The one-character tokens a scan of C, C++, assembly or linker-script text tells apart, and the
# digraphs that stand for some of them.
_DIGRAPHS = {"<%": "{", "%>": "}", "<:": "[", ":>": "]", "%:": "#", "??=": "#"}
_OPENERS = {"{": "}", "(": ")", "[": "]"}
_PREPROCESSOR_WORDS = {"_Pragma", "__pragma", "__has_include", "__has_include_next", "__has_embed"}
_ASM_WORDS = {"asm", "__asm", "__asm__"}
_ASM_QUALIFIERS = {"volatile", "__volatile__", "__volatile", "inline", "__inline__", "goto"}
# The directives the assembly regions of the labs need (user_copy.S: two functions and their
# fix-up table entries); any other (.incbin, .include, .set, .macro, ...) is refused there.
_ASSEMBLY_DIRECTIVES = {"text", "globl", "global", "type", "size", "balign", "p2align", "align", "quad",
                        "xword", "dword", "word", "long", "int", "hword", "short", "byte", "previous",
                        "popsection"}
_ASSEMBLY_SECTIONS = {"pagoda_user_fixups", ".text"}
_LINKER_COMMANDS = {"INCLUDE", "INPUT", "GROUP", "AS_NEEDED", "OUTPUT", "SEARCH_DIR", "STARTUP", "TARGET",
                    "OUTPUT_FORMAT", "OUTPUT_ARCH", "INSERT", "SECTIONS", "MEMORY", "PHDRS", "VERSION", "EXTERN",
                    "NOCROSSREFS", "ENTRY"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "a": "\a", "b": "\b", "e": "\x1b",
            "\\": "\\", "'": "'", '"': '"', "?": "?"}
# A string that may be a piece of assembly (a macro of the tree's puts it into an asm statement)
# holds a directive: at its start, or after a statement separator (newline, ';') and labels.
_DIRECTIVE = re.compile(r"(?:^[ \t]*|[\n;][ \t]*(?:[\w.$]+:[ \t]*)*)(\.[A-Za-z_][\w.$]*)")
# In an asm statement's own text, stricter: a '.' word anywhere (a directive or a '.L' label).
_DOT_WORD = re.compile(r"(?<![\w.$])(\.[A-Za-z_][\w.$]*)")


def _decode(body):
    """The characters of a C string literal's body (escapes resolved)."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\" or i + 1 == len(body):
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i + 1:])
            out.append(chr(int(m[0], 8)))
            i += 1 + len(m[0])
        elif e == "x":
            m = re.match(r"[0-9A-Fa-f]*", body[i + 2:])
            out.append(chr(int(m[0] or "0", 16) & 0x10FFFF))
            i += 2 + len(m[0])
        elif e in "uU":
            n = 4 if e == "u" else 8
            out.append(chr(int(body[i + 2:i + 2 + n] or "0", 16) & 0x10FFFF) if
                       re.fullmatch(r"[0-9A-Fa-f]+", body[i + 2:i + 2 + n] or "-") else "?")
            i += 2 + n
        else:
            out.append(_ESCAPES.get(e, e))
            i += 2
    return "".join(out)


def _tokens(text, assembly=False):
    """The tokens of @p text (lines spliced at a backslash-newline, comments dropped):
    [(kind, value, line, first on its line)], kind "word", "string", "number" or "punct"
    (digraphs given as what they stand for), line 0-based. In @p assembly a "'" is an
    assembler's character constant, not a literal."""
    chars, lines, line = [], [], 0
    i = 0
    while i < len(text):            # (splice, remembering each character's line)
        if text[i] == "\\" and text[i + 1:i + 2] == "\n":
            i, line = i + 2, line + 1
            continue
        chars.append(text[i])
        lines.append(line)
        if text[i] == "\n":
            line += 1
        i += 1
    s = "".join(chars)
    found, i, start = [], 0, True
    while i < len(s):
        c, at = s[i], lines[i]
        if c == "\n":
            start, i = True, i + 1
        elif c.isspace():
            i += 1
        elif s.startswith("//", i):
            end = s.find("\n", i)
            i = len(s) if end < 0 else end
        elif s.startswith("/*", i):
            end = s.find("*/", i + 2)
            i = len(s) if end < 0 else end + 2
        else:
            m = re.compile(r'(?:u8|u|U|L)?R"([^ ()\\\t\n]{0,16})\(').match(s, i)
            if m:                                   # a raw string
                end = s.find(")" + m[1] + '"', m.end())
                end = len(s) if end < 0 else end
                found.append(("string", s[m.end():end], at, start))
                i = end + len(m[1]) + 2
            elif (m := re.compile(r'(?:u8|u|U|L)?"((?:[^"\\\n]|\\.)*)"?').match(s, i)):
                found.append(("string", _decode(m[1]), at, start))
                i = m.end()
            elif not assembly and (m := re.compile(r"(?:u8|u|U|L)?'((?:[^'\\\n]|\\.)*)'?").match(s, i)):
                found.append(("number", m[0], at, start))
                i = m.end()
            elif (m := re.compile(r"[A-Za-z_$][\w$]*").match(s, i)):
                found.append(("word", m[0], at, start))
                i = m.end()
            elif (m := re.compile(r"\.?[0-9](?:[eEpP][+-]|[\w.'])*").match(s, i)):
                found.append(("number", m[0], at, start))
                i = m.end()
            else:
                d = next((d for d in _DIGRAPHS if s.startswith(d, i)), None)
                found.append(("punct", _DIGRAPHS[d] if d else c, at, start))
                i += len(d) if d else 1
            start = False
    return found


def _preprocessor(tokens, assembly=False):
    """(line, rule) for the first preprocessor line or operator in @p tokens, or None: a '#'
    anywhere (in C++ and linker scripts one is nowhere else valid), in @p assembly one that
    starts a line (elsewhere it is an immediate's)."""
    for kind, value, line, first in tokens:
        if kind == "punct" and value == "#" and (first or not assembly):
            return line, "a preprocessor line (#include, #if, #define, ...)"
        if kind == "word" and value in _PREPROCESSOR_WORDS:
            return line, f"the preprocessor operator {value}"
    return None


def _unbalanced(tokens):
    """(line, rule) where @p tokens close a bracket they did not open or leave one open, or None."""
    stack = []
    for kind, value, line, _ in tokens:
        if kind != "punct":
            continue
        if value in _OPENERS:
            stack.append((value, line))
        elif value in _OPENERS.values():
            if not stack or _OPENERS[stack[-1][0]] != value:
                return line, (f"a '{value}' that closes what the region did not open (a region's braces "
                              "and namespaces open and close within it)")
            stack.pop()
    if stack:
        return stack[-1][1], (f"a '{stack[-1][0]}' the region does not close (a region's braces and "
                              "namespaces open and close within it)")
    return None


def _cpp_problem(text):
    tokens = _tokens(text)
    found = _preprocessor(tokens) or _unbalanced(tokens)
    if found:
        return found
    for n, (kind, value, line, _) in enumerate(tokens):
        if kind == "string":
            m = _DIRECTIVE.search(value)
            if m:
                return line, f"the assembler directive {m[1]} in a string (inline assembly stays in the given helpers)"
        if kind != "word" or value not in _ASM_WORDS:
            continue
        k = n + 1
        while k < len(tokens) and tokens[k][1] in _ASM_QUALIFIERS:
            k += 1
        k += k < len(tokens) and tokens[k][1] == "("
        strings = [t[1] for t in itertools.takewhile(lambda t: t[0] == "string", tokens[k:])]
        if not strings:
            return line, "an asm statement whose text is not a string literal"
        m = _DOT_WORD.search("".join(strings))
        if m:
            return line, f"the assembler directive {m[1]} in an asm statement (inline assembly stays in the given helpers)"
    return None


def _assembly_problem(text):
    tokens = _tokens(text, assembly=True)
    found = _preprocessor(tokens, assembly=True)
    if found:
        return found
    # Statements: the tokens of each line, split at ';'.
    statements, current = [], []
    for tok in tokens:
        if tok[3] or tok[1] == ";":
            if current:
                statements.append(current)
            current = [] if tok[1] == ";" else [tok]
        else:
            current.append(tok)
    if current:
        statements.append(current)
    for st in statements:
        k = 0
        while k + 1 < len(st) and st[k][0] in ("word", "number") and st[k + 1][1] == ":":
            k += 2                      # labels
        st = st[k:]
        if not st:
            continue
        line = st[0][2]
        if st[0][1] == "." and len(st) > 1 and st[1][0] == "word":
            name = st[1][1]
            if name in ("section", "pushsection"):
                target = "".join(t[1] for t in st[2:4]) if st[2:3] and st[2][1] == "." else \
                    "".join(t[1] for t in st[2:3])
                if target not in _ASSEMBLY_SECTIONS:
                    return line, f"the assembler directive .{name} {target} (the lab writes only to " \
                                 f"{', '.join(sorted(_ASSEMBLY_SECTIONS))})"
            elif name not in _ASSEMBLY_DIRECTIVES:
                return line, f"the assembler directive .{name} (a lab's assembly needs only " \
                             f"{', '.join('.' + d for d in sorted(_ASSEMBLY_DIRECTIVES))}, .section)"
        elif len(st) > 1 and st[0][0] == "word" and st[1][1] == "=" and (len(st) < 3 or st[2][1] != "="):
            return line, f"an assignment to the symbol {st[0][1]}"
    return None


def _linker_script_problem(text):
    tokens = _tokens(text, assembly=True)
    found = _preprocessor(tokens) or _unbalanced(tokens)
    if found:
        return found
    for kind, value, line, _ in tokens:
        if kind == "string":
            return line, "a quoted name (a linker script's region assigns symbols: SYMBOL = value;)"
        if kind == "word" and value in _LINKER_COMMANDS:
            return line, f"the linker-script command {value} (a region assigns symbols: SYMBOL = value;)"
    return None


def region_problem(path, text):
    """(0-based line in @p text, rule) for the first thing the region text @p text of @p path
    may not hold (see above), or None. Regions of other file types (CMake, Python) are not
    checked: none is a student's in the labs, and the sandbox's root holds there."""
    if path.endswith((".S", ".s")):
        return _assembly_problem(text)
    if path.endswith((".ld", ".lds")):
        return _linker_script_problem(text)
    if regions.style_for(path) is regions.SLASH:
        return _cpp_problem(text)
    return None
