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
import json
import os
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


def _within(first, end, ranges):
    """Whether published lines [first, end) (an insertion point when equal) lie in one region."""
    return any(lo <= first and end <= hi for lo, hi in ranges)


def merge_file(published_text, submitted_text, ranges):
    """(merged text, [1-based published lines of changes left out]): @p published_text with
    each change of @p submitted_text that lies within @p ranges applied."""
    ours = regions.split_lines(published_text)
    theirs = regions.split_lines(submitted_text)
    matcher = difflib.SequenceMatcher(None, [l.rstrip() for l in ours], [l.rstrip() for l in theirs],
                                      autojunk=False)
    out, left_out = [], []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out += ours[i1:i2]
        elif _within(i1, i2, ranges):
            out += theirs[j1:j2]
        else:
            out += ours[i1:i2]
            left_out.append(i1 + 1)
    if out and not out[-1].endswith("\n") and ours and ours[-1].endswith("\n"):
        out[-1] += "\n"
    return "".join(out), left_out


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
    files, left_out = {}, []
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
        merged, lines = merge_file(data.decode("utf-8", "surrogateescape"),
                                   theirs.decode("utf-8", "surrogateescape"), ranges)
        files[rel] = (merged.encode("utf-8", "surrogateescape"), mode)
        left_out += [f"{rel}:{n}" for n in lines]
    for rel in sorted(present - set(pub.files)):
        if not rel.startswith(QUIET) and not rel.startswith(".pagoda-") and "__pycache__" not in rel:
            left_out.append(f"{rel} (added)")
    return Graded(files, left_out)


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
