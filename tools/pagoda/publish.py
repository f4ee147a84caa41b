"""From main to student branches: lint the regions, generate lab trees, publish, check leaks.

The source is a working tree: the files git tracks plus the untracked ones it does not ignore
(so uncommitted work is published as it is on disk). Lab numbers are those of the folders
labs/NN-name/ that hold a lab.toml. See regions.py for the marker syntax.

What branch labN reveals: the reference solutions of labs 0..N-1 (that is what lets a student
who did not finish lab N-1 start lab N), the skeletons of labs N and later, and no hidden test
(grade/hidden/ and the lab.toml entries marked `hidden = true` are never published). The labs'
slips (labs/NN-name/mutants/, which quote solutions) are never published either. The leak
check proves the last two; publishing with `upto` keeps later branches, and with them earlier
labs' solutions, out of the repository until their time.
"""
import glob
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass

from . import regions
from pagoda_core import paths, slips
from pagoda_core.ui import PagodaError

from pagoda_grade import manifest

LAB_FILE = ".pagoda-lab"
# Where each solution region of an earlier lab sits in a published tree (`./pagoda lab start`
# reads it to resolve merge conflicts in the student's favour inside regions); see region_map().
REGIONS_FILE = ".pagoda-regions.json"
# The instructor's hidden tests: never published (see grade/pagoda_grade/manifest.py).
HIDDEN_DIR = "grade/hidden/"
_MANIFEST_PATH = re.compile(r"^labs/[0-9][0-9]-[^/]+/lab\.toml$")
BINARY_PROBE = 8192
# A solution line shorter than this (whitespace stripped), or without a letter or digit, is too
# common to count as leaked text (`}`, `return 0;`, `#endif`).
MIN_SECRET_LEN = 12
# What a generated tree keeps across `publish_tree(..., incremental=True)`: its build outputs.
KEEP_DIRS = {"build", ".git", "__pycache__", ".pytest_cache"}

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Pagoda Labs", "GIT_AUTHOR_EMAIL": "labs@pagoda.invalid",
    "GIT_COMMITTER_NAME": "Pagoda Labs", "GIT_COMMITTER_EMAIL": "labs@pagoda.invalid",
}


def git(args, cwd, env=None, check=True):
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True)
    if check and result.returncode != 0:
        raise PagodaError(f"git {' '.join(args)} failed in {cwd}: "
                          f"{result.stderr.decode(errors='replace').strip()}")
    return result


def isolated_git_env(extra=None):
    """An environment where git reads no user or system config (no signing, hooks, templates)."""
    env = dict(os.environ)
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"})
    env.update(extra or {})
    return env


def lab_numbers(root):
    """Numbers of the labs with a folder labs/NN-*/lab.toml."""
    found = set()
    for path in glob.glob(os.path.join(root, "labs", "[0-9][0-9]-*", "lab.toml")):
        found.add(int(os.path.basename(os.path.dirname(path))[:2]))
    return found


def load_labs(root):
    try:
        return manifest.load_all(os.path.join(root, "labs"))
    except manifest.ManifestError as e:
        raise PagodaError(f"bad lab manifest: {e}")


def source_files(root):
    """Paths (relative, sorted) of the files git tracks plus the untracked, non-ignored ones."""
    if git(["rev-parse", "--show-toplevel"], root, check=False).returncode != 0:
        raise PagodaError(f"{root} is not a git working tree")
    listed = set()
    for extra in ([], ["--others", "--exclude-standard"]):
        out = git(["ls-files", "-z", *extra], root).stdout.decode("utf-8", "surrogateescape")
        listed.update(p for p in out.split("\0") if p)
    files = []
    for rel in sorted(listed):
        full = os.path.join(root, rel)
        if os.path.islink(full) or os.path.isfile(full):   # skips deleted files and submodules
            files.append(rel)
    return files


@dataclass
class SourceFile:
    path: str                # relative to the root
    data: bytes
    mode: int
    link: str = None         # symlink target, for a symlink
    text: str = None         # decoded, for a text file that may hold markers
    parsed: regions.Parsed = None


def read_source(root, rel, labs):
    full = os.path.join(root, rel)
    if os.path.islink(full):
        return SourceFile(rel, b"", 0, link=os.readlink(full))
    with open(full, "rb") as f:
        data = f.read()
    src = SourceFile(rel, data, stat.S_IMODE(os.stat(full).st_mode))
    if b"\0" in data[:BINARY_PROBE] or not regions.may_hold_markers(data):
        return src
    src.text = data.decode("utf-8", "surrogateescape")
    style = regions.style_for(rel, data[:200])
    if style is not None:
        src.parsed = regions.parse(src.text, style, labs)
    return src


def scan(root):
    """Every source file, parsed where it may hold regions."""
    labs = lab_numbers(root)
    return [read_source(root, rel, labs) for rel in source_files(root)]


def lint(root=paths.ROOT, sources=None):
    """Everything wrong with the region markers of the tree, as 'file:line: message' strings."""
    errors = []
    for src in sources if sources is not None else scan(root):
        if src.parsed is not None:
            errors += [f"{src.path}:{line}: {msg}" for line, msg in src.parsed.errors]
        elif src.text is not None:
            errors += [f"{src.path}:{line}: {msg}"
                       for line, msg in regions.foreign_marker_errors(src.text, src.path)]
    return errors


def require_clean(root, sources):
    errors = lint(root, sources)
    if errors:
        shown = "\n  ".join(errors[:40]) + (f"\n  ... ({len(errors) - 40} more)" if len(errors) > 40 else "")
        raise PagodaError(f"the region markers have {len(errors)} error(s) "
                          f"(./pagoda labs lint):\n  {shown}")


def is_hidden(path):
    """Whether @p path (relative) is one of the instructor's hidden test files."""
    return path.startswith(HIDDEN_DIR)


_STAFF_ONLY = re.compile(r"^labs/[0-9][0-9]-[^/]+/(mutants|solutions)/")


def is_staff_only(path):
    """Whether @p path (relative) is staff material that no branch carries, though it is no
    secret: the labs' slips (labs/NN-name/mutants/, `./pagoda labs mutants`), whose text
    quotes the lab's solution, and its other solutions (labs/NN-name/solutions/)."""
    return _STAFF_ONLY.match(path) is not None


def split_manifest(text):
    """(public text, [hidden [[tests]] blocks]) of a lab.toml: each `[[tests]]` block (from its
    header line to the next one) whose entry says `hidden = true` goes to the second part."""
    parts = re.split(r"(?m)^(?=\[\[tests\]\][ \t]*$)", text)
    public, hidden = [parts[0]], []
    for block in parts[1:]:
        try:
            entry = manifest.loads_toml(block).get("tests", [{}])[0]
        except manifest.ManifestError:
            entry = {}
        (hidden if entry.get("hidden") is True else public).append(block)
    return "".join(public), hidden


def resolved(src, lab):
    """The bytes of @p src as published for lab @p lab (None: main's own bytes)."""
    data = src.data
    if lab is None:
        return data
    if src.parsed is not None and src.parsed.regions:
        data = regions.render(src.parsed, lab).encode("utf-8", "surrogateescape")
    if _MANIFEST_PATH.match(src.path) and b"hidden" in data:
        data = split_manifest(data.decode("utf-8", "surrogateescape"))[0].encode("utf-8", "surrogateescape")
    return data


def in_tree(src, lab):
    """Whether the lab-@p lab tree holds @p src: not a hidden test, not staff material, and not a
    file that is all in regions publishing as nothing (a later lab's, without a skeleton)."""
    if is_hidden(src.path) or is_staff_only(src.path):
        return False
    return src.link is not None or not src.data or bool(resolved(src, lab))


def region_digest(lines):
    """What a region map records of a region's lines (labstart finds the region again by it)."""
    return hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def region_map(lab, sources):
    """Where the solution regions of labs before @p lab sit in the lab-@p lab tree:
    {path: [{"lab", "first", "count", "digest"}]} with 1-based first lines, line counts and a
    digest of the lines (to find a region again after edits moved it). Regions of lab @p lab and
    later are not listed: the tree shows only their skeletons, and where the solution goes."""
    found = {}
    for src in sources:
        if src.parsed is None or not src.parsed.regions or is_hidden(src.path):
            continue
        entries = [{"lab": seg.lab, "first": first + 1, "count": end - first, "digest": region_digest(seg.solution)}
                   for seg, first, end in regions.layout(src.parsed, lab)[1] if seg.lab < lab]
        if entries:
            found[src.path] = entries
    return found


def _write(path, data, mode, incremental):
    if incremental and os.path.isfile(path) and not os.path.islink(path):
        with open(path, "rb") as f:
            same = f.read() == data
        if same:    # leave it alone, mtime included, so that the build stays incremental
            if stat.S_IMODE(os.stat(path).st_mode) != mode:
                os.chmod(path, mode)
            return
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path)):
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _remove_stale(out_dir, keep):
    """Deletes what a generated tree holds beyond @p keep, except KEEP_DIRS (and their content)."""
    def walk(top, rel_top):
        empty = True
        for entry in os.scandir(top):
            rel = os.path.normpath(os.path.join(rel_top, entry.name))
            if entry.is_dir(follow_symlinks=False):
                if entry.name in KEEP_DIRS and (entry.name != "build" or rel_top == "."):
                    empty = False
                elif walk(entry.path, rel):
                    os.rmdir(entry.path)
                else:
                    empty = False
            elif rel not in keep:
                os.unlink(entry.path)
            else:
                empty = False
        return empty
    walk(out_dir, ".")


def publish_tree(lab, out_dir, root=paths.ROOT, sources=None, incremental=False):
    """Writes the tree students get for lab @p lab into @p out_dir: regions of earlier labs
    resolved to their solution, regions of lab @p lab and later to their skeleton, plus
    .pagoda-lab. With @p lab None it writes main's own files (the reference tree: every
    solution, hidden tests included, no .pagoda-lab). With @p incremental, @p out_dir may hold
    an earlier generated tree: unchanged files are not rewritten, files no longer in the tree
    go, build/ stays. Returns the paths."""
    sources = scan(root) if sources is None else sources
    require_clean(root, sources)
    os.makedirs(out_dir, exist_ok=True)
    written = set()
    for src in sources:
        if lab is not None and not in_tree(src, lab):
            continue
        dest = os.path.join(out_dir, src.path)
        if src.link is not None:
            if os.path.lexists(dest):
                if os.path.islink(dest) and os.readlink(dest) == src.link:
                    written.add(src.path)
                    continue
                shutil.rmtree(dest) if os.path.isdir(dest) and not os.path.islink(dest) else os.unlink(dest)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.symlink(src.link, dest)
        else:
            _write(dest, resolved(src, lab), src.mode, incremental)
        written.add(src.path)
    if lab is not None:
        _write(os.path.join(out_dir, LAB_FILE), f"{lab}\n".encode(), 0o644, incremental)
        written.add(LAB_FILE)
        regions_json = json.dumps(region_map(lab, sources), indent=1, sort_keys=True) + "\n"
        _write(os.path.join(out_dir, REGIONS_FILE), regions_json.encode(), 0o644, incremental)
        written.add(REGIONS_FILE)
        # The bug hunts of this branch: the slips of the labs whose solution it shows (labs before
        # @p lab), packed so that they are not read by accident (tools/pagoda_core/slips.py).
        chosen = [r for r in slips.slip_records(root) if r["lab"] < lab]
        if chosen:
            _write(os.path.join(out_dir, slips.PACK_PATH), slips.encode_pack(chosen).encode(), 0o644, incremental)
            written.add(slips.PACK_PATH)
    if incremental:
        _remove_stale(out_dir, written)
    return sorted(written)


def _source_description(root):
    head = git(["rev-parse", "--short=12", "HEAD"], root, check=False)
    if head.returncode != 0:
        return "an uncommitted tree", None
    dirty = git(["status", "--porcelain", "--untracked-files=normal"], root).stdout.strip()
    date = git(["log", "-1", "--format=%cI"], root).stdout.decode().strip()
    sha = head.stdout.decode().strip()
    return f"{sha}{' with uncommitted changes' if dirty else ''}", date


def publish(out, root=paths.ROOT, log=None, check_leaks=True, sources=None, upto=None):
    """Creates a git repository at @p out with one branch labN per lab (up to lab @p upto, if
    given): labN's single commit, the labN tree, sits on top of lab(N-1)'s. HEAD ends on the
    first lab's branch; there is no main. Refuses a non-empty @p out and raises if a solution
    or a hidden test leaks. Returns the branch names."""
    out = os.path.abspath(out)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise PagodaError(f"{out} exists and is not an empty directory; publish makes a fresh repository")
    sources = scan(root) if sources is None else sources
    require_clean(root, sources)
    labs = load_labs(root)
    if not labs:
        raise PagodaError("there are no labs (labs/NN-name/lab.toml)")
    origin, date = _source_description(root)
    extra = dict(GIT_IDENTITY)
    if date:    # the same source gives the same commits
        extra.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    env = isolated_git_env(extra)
    os.makedirs(out, exist_ok=True)
    numbers = sorted(n for n in labs if upto is None or n <= upto)
    if not numbers:
        raise PagodaError(f"no lab numbered {upto} or lower (labs: {', '.join(map(str, sorted(labs)))})")
    branches = [f"lab{n}" for n in numbers]
    git(["init", "-q", "-b", branches[0], out], out, env)
    for n, branch in zip(numbers, branches):
        if branch != branches[0]:
            git(["checkout", "-q", "-b", branch], out, env)
        publish_tree(n, out, root, sources, incremental=True)     # (the files of the branch before it go)
        git(["add", "-A", "-f", "."], out, env)
        message = (f"lab {n}: {labs[n].title} — handout and skeleton\n\n"
                   f"Generated by ./pagoda labs publish from {origin}.\n")
        git(["commit", "-q", "--no-verify", "-m", message], out, env)
        if log:
            log(f"{branch}: committed")
    git(["checkout", "-q", branches[0]], out, env)
    leaks = find_leaks(out, root, sources) if check_leaks else []
    if leaks:
        shown = "\n  ".join(leaks[:40])
        raise PagodaError(f"the published repository {out} leaks solution text "
                          f"({len(leaks)} finding(s)); do not hand it out:\n  {shown}")
    return branches


# ---- leak check ---------------------------------------------------------------------------

def _distinctive(lines):
    """The lines of @p lines distinctive enough to be searched for, stripped."""
    return [l.strip() for l in lines
            if len(l.strip()) >= MIN_SECRET_LEN and re.search(r"[A-Za-z0-9]", l)]


def secrets_for(lab, sources):
    """{line: (file, what)} of text that the lab-@p lab tree must not contain: the distinctive
    solution lines of every region of lab @p lab or later, and of every hidden test (its file
    under grade/hidden/, its lab.toml entry), minus the lines that the tree shows anyway
    (outside regions, in earlier labs' solutions, in skeletons). `what` describes the source."""
    public = "\n".join(resolved(s, lab).decode("utf-8", "surrogateescape")
                       for s in sources if s.link is None and not is_hidden(s.path) and not is_staff_only(s.path))
    found = {}

    def add(lines, path, what):
        for line in lines:
            if line not in public:
                found.setdefault(line, (path, what))
    for src in sources:
        if src.link is not None or is_staff_only(src.path):
            continue
        if is_hidden(src.path):
            add(_distinctive(src.data.decode("utf-8", "surrogateescape").splitlines()), src.path,
                f"the hidden test file {src.path}")
            continue
        if _MANIFEST_PATH.match(src.path):
            for block in split_manifest(src.data.decode("utf-8", "surrogateescape"))[1]:
                add(_distinctive(block.splitlines()), src.path, f"a hidden test entry of {src.path}")
        if src.parsed is None:
            continue
        for region in src.parsed.regions:
            if region.lab >= lab:
                add(_distinctive(region.solution), src.path,
                    f"solution text of the LAB {region.lab} region at {src.path}:{region.begin}")
    return found


# The block search (secret_blocks): runs of this many consecutive code lines of a region, or a
# whole region that is shorter; a run or region shorter than these many characters (normalized)
# is too common to count.
WINDOW_LINES = 3
MIN_WINDOW_CHARS = 60
MIN_BLOCK_CHARS = 40
_LEADER = re.compile(r"^(?://+|#+|/\*+|\*+/?|<!--|;+|--)[ \t]*")
_TRAILING_COMMENT = re.compile(r"[ \t]+//.*$")


def normalized_lines(text):
    """@p text as the block search sees it: each line without a leading comment leader (a
    commented-out or quoted copy of code is still a copy), without a trailing // comment,
    whitespace collapsed; empty lines dropped."""
    out = []
    for line in text.splitlines():
        line = _TRAILING_COMMENT.sub("", _LEADER.sub("", line.strip()))
        line = " ".join(line.split())
        if line:
            out.append(line)
    return out


@dataclass(frozen=True)
class SecretBlock:
    text: str           # normalized lines joined with "\n"
    key: str            # a line the text holds whole (found first, cheaply), or None
    path: str
    what: str


def secret_blocks(lab, sources):
    """The solution code of every region of lab @p lab or later as SecretBlocks: every run of
    WINDOW_LINES consecutive code lines (comment lines left out), normalized, and the whole
    region when it is shorter. Unlike secrets_for's lines, a block is secret even when the text
    is also written outside the region: a region's answer copied into given code is in plain
    view, whatever the copy says around it."""
    blocks = []
    for src in sources:
        if src.parsed is None or src.link is not None or is_staff_only(src.path):
            continue
        leader = src.parsed.style.open
        for region in src.parsed.regions:
            if region.lab < lab or (src.parsed.segments == [region] and region.skeleton is None):
                continue    # (a file that is one region without a skeleton is not in the tree at all)
            code = normalized_lines("".join(l for l in region.solution if not l.strip().startswith(leader)))
            # What the skeleton also holds (a function's header, a given call) is no secret: it
            # splits the code into runs, and blocks stay within a run.
            given = set(normalized_lines("".join(regions.uncomment(l, src.parsed.style)
                                                 for l in region.skeleton_lines)))
            runs, run = [], []
            for line in code + [None]:
                if line is None or line in given:
                    if run:
                        runs.append(run)
                    run = []
                else:
                    run.append(line)
            what = f"solution code of the LAB {region.lab} region at {src.path}:{region.begin}"
            if len(runs) == 1 and len(runs[0]) < WINDOW_LINES:
                text = "\n".join(runs[0])
                if len(text) >= MIN_BLOCK_CHARS:
                    blocks.append(SecretBlock(text, None, src.path, what))
                continue
            for run in runs:
                for i in range(len(run) - WINDOW_LINES + 1):
                    window = run[i:i + WINDOW_LINES]
                    if sum(map(len, window)) >= MIN_WINDOW_CHARS and \
                            sum(len(l) >= MIN_SECRET_LEN for l in window) >= 2:
                        blocks.append(SecretBlock("\n".join(window), window[1], src.path, what))
    return blocks


def block_leaks(text, blocks):
    """The SecretBlocks whose text @p text holds (normalized the same way)."""
    lines = normalized_lines(text)
    have = set(lines)
    joined = "\n".join(lines)
    return [b for b in blocks if (b.key is None or b.key in have) and b.text in joined]


def _branch_lab(ref, numbers):
    m = re.fullmatch(r"refs/heads/lab([0-9]+)", ref)
    return int(m[1]) if m and int(m[1]) in numbers else None


def reachable_blobs(repo, ref):
    """(path, bytes) of every blob in the history of @p ref."""
    listing = git(["rev-list", "--objects", ref], repo).stdout.decode("utf-8", "surrogateescape")
    ids = {}
    for line in listing.splitlines():
        oid, _, path = line.partition(" ")
        ids.setdefault(oid, path)
    query = subprocess.run(["git", "cat-file", "--batch-check=%(objectname) %(objecttype)"],
                           cwd=repo, input="\n".join(ids).encode(), capture_output=True, check=True)
    blobs = [l.split()[0] for l in query.stdout.decode().splitlines() if l.endswith(" blob")]
    if not blobs:
        return []
    batch = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, input="\n".join(blobs).encode(),
                           capture_output=True, check=True).stdout
    result, pos = [], 0
    for oid in blobs:
        header_end = batch.index(b"\n", pos)
        size = int(batch[pos:header_end].split()[2])
        result.append((ids[oid], batch[header_end + 1:header_end + 1 + size]))
        pos = header_end + 1 + size + 1
    return result


def find_leaks(repo, root=paths.ROOT, sources=None):
    """Solution text in a published repository, as messages (none: no leak). For each branch
    labN, every blob in its history (all commits, not only the tip) must be free of the
    distinctive solution lines of every region of lab N or later and of every hidden test (see
    secrets_for), and of every block of those regions' code, normalized, even where the same
    code is also written outside the regions (secret_blocks). Branches and tags with other names get the strictest check: no solution text
    at all. (A branch labN does hold the solutions of labs before N, on purpose.)"""
    sources = scan(root) if sources is None else sources
    numbers = lab_numbers(root)
    refs = git(["for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags"], repo).stdout.decode().split()
    findings = []
    cache = {}
    for ref in refs:
        lab = _branch_lab(ref, numbers)
        strictness = lab if lab is not None else -1
        if strictness not in cache:
            cache[strictness] = secrets_for(strictness, sources), secret_blocks(strictness, sources)
        secrets, blocks = cache[strictness]
        if not secrets and not blocks:
            continue
        name = ref.split("/", 2)[2]
        reported = set()
        for path, data in reachable_blobs(repo, ref):
            if b"\0" in data[:BINARY_PROBE]:
                continue
            text = data.decode("utf-8", "surrogateescape")
            for line, (src_path, what) in secrets.items():
                key = (what, path)
                if key not in reported and line in text:
                    reported.add(key)
                    findings.append(f"{name}: {path} contains {what}: {line!r}")
            for block in block_leaks(text, blocks):
                key = (block.what, path)
                if key not in reported:
                    reported.add(key)
                    shown = block.text.replace("\n", " / ")
                    findings.append(f"{name}: {path} contains {block.what} (normalized: {shown!r})")
    return findings
