"""`pagoda lab start N`: carry a student's own work into the branch of lab N.

Branch labN of a published repository holds the reference solutions of the labs before N. A
student who did lab N-1 wants their own code there instead, so this command checks out labN
and merges the student's branch into it. Git then conflicts once per solution region: the
merge base (the published lab N-1 tree) has the skeleton, labN the reference, the student's
branch their code. Every conflict that lies inside a solution region is resolved in favour of
the student's code; any other conflict stops the command with a list of where it is.

Solution region markers are gone in published trees, so each published tree carries
.pagoda-regions.json (written by publish.py): for every file, where each solution region of
an earlier lab sits (first line, line count, and a digest of its lines, so that a region is
found again if the student's own commits on labN moved it). Conflicts are recomputed here with
a three-way merge of the file's three versions (base, labN, student) whose hunks keep their
line numbers in the labN version; a hunk whose labN side lies within a region goes to the
student.
"""
import difflib
import json
import os
from dataclasses import dataclass

from . import publish
from pagoda_core import paths
from pagoda_core.ui import PagodaError, info

MARKER_WIDTH = 7


# ---- three-way merge ----------------------------------------------------------------------

@dataclass
class Hunk:
    """A run of lines of the merged file: agreed text (conflict False), or a conflict."""
    lines: list                 # the merged lines (for a conflict: the student's, once resolved)
    conflict: bool = False
    ours: list = None           # labN's lines of a conflict
    base: list = None
    theirs: list = None
    ours_start: int = 0         # 0-based index of the conflict's first line in ours


def _matches(a, b):
    """{index in a: index in b} of the lines difflib matches between @p a and @p b."""
    m = {}
    for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            m[block.a + k] = block.b + k
    return m


def merge3(base, ours, theirs):
    """Three-way merge of line lists: [Hunk]. Stable runs (all three agree) and one-sided
    changes merge cleanly; where ours and theirs both changed the same base lines differently,
    a conflict Hunk records the three sides and where it starts in @p ours."""
    mo, mt = _matches(base, ours), _matches(base, theirs)
    hunks = []
    b = o = t = 0
    while b < len(base) or o < len(ours) or t < len(theirs):
        j = 0
        while b + j in mo and b + j in mt and mo[b + j] == o + j and mt[b + j] == t + j:
            j += 1
        if j:
            hunks.append(Hunk(base[b:b + j]))
            b, o, t = b + j, o + j, t + j
            continue
        nb = b
        while nb < len(base) and not (nb in mo and nb in mt):
            nb += 1
        no, nt = (mo[nb], mt[nb]) if nb < len(base) else (len(ours), len(theirs))
        cb, co, ct = base[b:nb], ours[o:no], theirs[t:nt]
        if co == cb:
            hunks.append(Hunk(ct))
        elif ct == cb or co == ct:
            hunks.append(Hunk(co))
        else:
            hunks.append(Hunk(ct, conflict=True, ours=co, base=cb, theirs=ct, ours_start=o))
        b, o, t = nb, no, nt
    return hunks


# ---- where the regions are ----------------------------------------------------------------

def locate_regions(entries, lines):
    """[(first, end)] 0-based half-open line ranges in @p lines of the regions @p entries
    describes (see publish.region_map), each checked by its digest at its recorded place, else
    searched for; a region found nowhere is left out."""
    found = []
    for e in entries:
        first, count = e["first"] - 1, e["count"]
        if count == 0:
            continue
        if publish.region_digest(lines[first:first + count]) != e["digest"]:
            first = next((i for i in range(len(lines) - count + 1)
                          if publish.region_digest(lines[i:i + count]) == e["digest"]), None)
            if first is None:
                continue
        found.append((first, first + count))
    return found


def inside(hunk, ranges):
    """Whether @p hunk's lines in ours lie within one region (or regions that touch)."""
    start, end = hunk.ours_start, hunk.ours_start + len(hunk.ours)
    merged = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return any(lo <= start and end <= hi for lo, hi in merged)


def resolve_file(base, ours, theirs, ranges):
    """Merges one file's three versions, conflicts inside @p ranges (regions of ours) going to
    theirs. Returns (merged text, resolved count, [(line in ours, line in the merged text)] of
    the conflicts left, which stay in the text between conflict markers)."""
    out, resolved, left = [], 0, []
    for h in merge3(base, ours, theirs):
        if not h.conflict:
            out += h.lines
        elif inside(h, ranges):
            out += h.theirs
            resolved += 1
        else:
            left.append((h.ours_start + 1, len(out) + 1))
            out += [f"{'<' * MARKER_WIDTH} lab branch\n", *_ended(h.ours),
                    f"{'|' * MARKER_WIDTH} published skeleton\n", *_ended(h.base),
                    f"{'=' * MARKER_WIDTH}\n", *_ended(h.theirs),
                    f"{'>' * MARKER_WIDTH} your work\n"]
    return "".join(out), resolved, left


def _ended(lines):
    return [l if l.endswith("\n") else l + "\n" for l in lines]


# ---- git ----------------------------------------------------------------------------------

def _git(root, *args, check=True, env=None):
    return publish.git(list(args), root, env, check)


def _out(root, *args):
    return _git(root, *args).stdout.decode("utf-8", "surrogateescape").strip()


def _blob(root, spec):
    r = _git(root, "show", spec, check=False)
    return r.stdout.decode("utf-8", "surrogateescape") if r.returncode == 0 else None


def _lab_of(root, rev):
    text = _blob(root, f"{rev}:{publish.LAB_FILE}")
    return int(text.strip()) if text and text.strip().isdigit() else None


def _branch_for(root, n):
    """The local branch labN, created from a remote's labN if there is only that."""
    name = f"lab{n}"
    if _git(root, "rev-parse", "--verify", "-q", f"refs/heads/{name}", check=False).returncode == 0:
        return name
    remotes = _out(root, "for-each-ref", "--format=%(refname:short)", f"refs/remotes/*/{name}").split()
    if not remotes:
        raise PagodaError(f"there is no branch {name}: lab {n} is not published yet, or your clone "
                          "does not know it (try: git fetch)")
    _git(root, "branch", "--track", name, remotes[0])
    info(f"created branch {name} from {remotes[0]}")
    return name


def next_steps(n, labs):
    """What a student does when lab @p n is done (printed by lab start and by lab status)."""
    later = [k for k in sorted(labs) if k > n]
    if not later:
        return [f"Lab {n} is the last lab: commit your work (git commit -am \"lab {n} done\")."]
    k = later[0]
    return [f"Next: commit your work (git commit -am \"lab {n} done\"), then run",
            f"  ./pagoda lab start {k}",
            f"It checks out lab{k} ({labs[k].title}) and merges your branch into it: your lab-{n} "
            f"code replaces the reference solution there."]


@dataclass
class Outcome:
    target: str
    source: str
    resolved: dict       # path: conflicts resolved for the student
    left: dict           # path: [(line in labN, line in the file now)] or [reason]
    already: bool = False


def start(n, root=paths.ROOT, source=None, env=None):
    """Moves the student's branch @p source (default: the current one) into branch labN."""
    if _git(root, "rev-parse", "--is-inside-work-tree", check=False).returncode != 0:
        raise PagodaError(f"{root} is not a git working tree")
    if os.path.exists(os.path.join(root, ".git", "MERGE_HEAD")) or \
            _git(root, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False).returncode == 0:
        raise PagodaError("a merge is already in progress: finish it (git add FILES; git commit) "
                          "or give it up (git merge --abort)")
    dirty = _out(root, "status", "--porcelain", "--untracked-files=no")
    if dirty:
        raise PagodaError("you have uncommitted changes; commit them first "
                          "(git commit -am \"my work\"), then run this again:\n  " +
                          "\n  ".join(dirty.splitlines()[:20]))
    if source is None:
        source = _git(root, "symbolic-ref", "-q", "--short", "HEAD", check=False).stdout.decode().strip()
        if not source:
            raise PagodaError("you are not on a branch (detached HEAD): check out your lab branch, "
                              "or say which one with --from")
    from_lab = _lab_of(root, source)
    if from_lab is not None and from_lab >= n:
        raise PagodaError(f"{source} is a lab-{from_lab} branch; lab start moves your work forward "
                          f"(to lab {from_lab + 1} or later)")
    target = _branch_for(root, n)
    if target == source:
        raise PagodaError(f"you are on {target} already")
    if _git(root, "merge-base", "--is-ancestor", source, target, check=False).returncode == 0:
        _git(root, "checkout", "-q", target)
        return Outcome(target, source, {}, {}, already=True)
    _git(root, "checkout", "-q", target)
    merge = _git(root, "merge", "--no-ff", "--no-commit", "-q", source, check=False, env=env)
    unmerged = [p for p in _out(root, "diff", "--name-only", "--diff-filter=U").splitlines() if p]
    if merge.returncode != 0 and not unmerged:
        _git(root, "merge", "--abort", check=False)
        raise PagodaError(f"git merge {source} failed: {merge.stderr.decode(errors='replace').strip()}")
    regions_text = _blob(root, f"HEAD:{publish.REGIONS_FILE}")
    region_map = json.loads(regions_text) if regions_text else {}
    resolved, left = {}, {}
    for path in unmerged:
        stages = [_blob(root, f":{k}:{path}") for k in (1, 2, 3)]
        if None in stages:
            left[path] = ["added or deleted on one side and changed on the other"]
            continue
        base, ours, theirs = (s.splitlines(keepends=True) for s in stages)
        ranges = locate_regions(region_map.get(path, []), ours)
        text, count, conflicts = resolve_file(base, ours, theirs, ranges)
        with open(os.path.join(root, path), "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
        if count:
            resolved[path] = count
        if conflicts:
            left[path] = conflicts
        else:
            _git(root, "add", "--", path)
    if not left:
        message = (f"lab start {n}: merge my {source} into {target}\n\n"
                   f"./pagoda lab start resolved {sum(resolved.values())} conflict(s) inside "
                   "solution regions in favour of my code.\n")
        _git(root, "commit", "-q", "--no-verify", "-m", message, env=env)
    return Outcome(target, source, resolved, left)


def report(outcome, labs, root=paths.ROOT, out=print):
    """Prints what start() did and what to do next; returns the exit status."""
    n = int(outcome.target[3:])
    lab = labs.get(n)
    if outcome.already:
        out(f"{outcome.target} already contains {outcome.source}; switched to {outcome.target}.")
    elif not outcome.left:
        total = sum(outcome.resolved.values())
        out(f"Merged {outcome.source} (your work) into {outcome.target}.")
        if total:
            out(f"{total} conflict(s) inside solution regions were resolved in favour of your code:")
            for path, count in sorted(outcome.resolved.items()):
                out(f"  {path}: {count}")
    else:
        out(f"Merged {outcome.source} into {outcome.target}, but these conflicts are outside "
            "solution regions; resolve them by hand:")
        for path, items in sorted(outcome.left.items()):
            for item in items:
                out(f"  {path}:{item[1]} (line {item[0]} of {outcome.target})" if isinstance(item, tuple)
                    else f"  {path}: {item}")
        if outcome.resolved:
            out(f"({sum(outcome.resolved.values())} conflict(s) inside solution regions were "
                "already resolved in favour of your code.)")
        out("Each is between '<<<<<<< lab branch' and '>>>>>>> your work'. Edit the files, then:")
        out("  git add FILES && git commit        (or give up: git merge --abort)")
        return 1
    if lab is not None:
        handout = os.path.relpath(os.path.join(lab.directory, "README.md"), root)
        out(f"Lab {n} — {lab.title}: read {handout}, then ./pagoda lab status.")
    return 0
