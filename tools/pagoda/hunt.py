"""`pagoda hunt`: a bug hunt. A kernel with one realistic slip in it, drawn from the labs' slips by
a token, without saying which: the student finds it with the tools (the grade's first lines,
the kernel's own report, fault-why in GDB) and names it, or fixes it.

    ./pagoda hunt [--arch A] [--lab N] [--token T]   go on with the current hunt, or start one
    ./pagoda hunt --new [--arch A] [--lab N]         start another hunt (the current one stays)
    ./pagoda hunt --list                             what can be drawn here (counts, no titles)
    ./pagoda hunt grade                              grade the slip's lab on the hunt's kernel
    ./pagoda hunt run [-- RUN_OPTIONS]               boot it (options as for ./pagoda run)
    ./pagoda hunt gdb [GDB_OPTIONS] [-- RUN_OPTIONS] debug it (as ./pagoda gdb; --stop-at-kill...)
    ./pagoda hunt answer FUNCTION [--category C]     name the cause: the function the slip is in
                                                     (and what kind of slip it is); written to
                                                     hunt.toml for a graded hunt
    ./pagoda hunt fix                                the hunt's own copy of the tree, edited by you
                                                     (its path is printed), graded: full marks =
                                                     fixed
    ./pagoda hunt reveal                             give up: the slip's title

The slips are labs/NN-name/mutants/*.toml in the instructor's tree; in a student's branch labN,
labs/hunts.pack (the slips of labs before N, packed by `labs publish`). The slip goes into the
reference's code it was checked for: the branch as published (make_tree()), or a copy of the
instructor's tree, in build/hunt/TOKEN/tree. The same token (PAGODA_HUNT_TOKEN or --token), ISA
and slips draw the same slip anywhere. A graded hunt (a lab.toml test with `hunt = [3, 4]`,
grade/test_hunt.py) reads the answer from hunt.toml and draws the slip again from its own copy.
"""
import argparse
import collections
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess

from . import mutants, publish
from pagoda_core import paths
from pagoda_core.slips import ANSWER_FILE, PACK_PATH, candidates, draw, judge, slip_records
from pagoda_core.ui import PagodaError, info

HUNT_DIR = os.path.join("build", "hunt")
CURRENT = "current"


# ---- a hunt on disk --------------------------------------------------------------------------------

def hunt_dir(token):
    return os.path.join(paths.ROOT, HUNT_DIR, token)


def current_token():
    path = os.path.join(paths.ROOT, HUNT_DIR, CURRENT)
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def load_state(token):
    try:
        with open(os.path.join(hunt_dir(token), "hunt.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def save_state(token, state):
    os.makedirs(hunt_dir(token), exist_ok=True)
    with open(os.path.join(hunt_dir(token), "hunt.json"), "w") as f:
        json.dump(state, f, indent=1)
    with open(os.path.join(paths.ROOT, HUNT_DIR, CURRENT), "w") as f:
        f.write(token + "\n")


def copy_tree(root, dest):
    """The tree's files (tracked and untracked, not ignored; no build/) copied to @p dest."""
    for rel in publish.source_files(root):
        if rel.startswith(("build/", ".git/")) or rel == ANSWER_FILE:
            continue
        src, out = os.path.join(root, rel), os.path.join(dest, rel)
        if os.path.islink(src) or not os.path.isfile(src):
            continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copy2(src, out)


def apply(tree, record):
    for file, find, replace in record["edits"]:
        path = os.path.join(tree, file)
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
        if text.count(find) != 1:
            raise PagodaError(f"the hunt's slip does not apply to {file} any more")
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text.replace(find, replace))


def make_tree(record, tree):
    """The hunt's tree at @p tree, the slip put in: on a student's branch, the branch as it was
    published (the commit that wrote its .pagoda-lab: `lab start` merges keep it); elsewhere (main)
    a copy of this tree."""
    log = subprocess.run(["git", "log", "-1", "--format=%H", "--", publish.LAB_FILE], cwd=paths.ROOT,
                         capture_output=True, text=True)
    commit = log.stdout.strip() if log.returncode == 0 else ""
    if not commit:
        copy_tree(paths.ROOT, tree)
    else:
        os.makedirs(tree)
        archive = subprocess.run(["git", "archive", commit], cwd=paths.ROOT, capture_output=True)
        if archive.returncode or subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout).returncode:
            raise PagodaError(f"cannot read commit {commit[:12]}: {archive.stderr.decode(errors='replace').strip()}")
        info(f"hunt: its tree is this branch as published (commit {commit[:12]}), every lab before it the reference's")
    # The hunt's copy draws from what this tree holds, never from anything of its own.
    if os.path.exists(os.path.join(tree, PACK_PATH)):
        os.remove(os.path.join(tree, PACK_PATH))
    for folder in os.listdir(os.path.join(tree, "labs")):
        shutil.rmtree(os.path.join(tree, "labs", folder, "mutants"), ignore_errors=True)
    apply(tree, record)


def start(arch, labs=None, token=None):
    """Makes (or finds) the hunt of @p token (a new one when None); returns (token, state)."""
    token = token or os.environ.get("PAGODA_HUNT_TOKEN") or secrets.token_hex(4)
    if not re.fullmatch(r"[0-9A-Za-z_-]{1,40}", token):
        raise PagodaError(f"a hunt token is letters, digits, '-' and '_' (got {token!r})")
    state = load_state(token)
    if state is not None and state["arch"] == arch:
        save_state(token, state)
        return token, state
    # The draw does not depend on this tree's code (a graded hunt's grader draws it again from its
    # own copy of the slips): the slip goes into the reference's code (make_tree()).
    pool = candidates(slip_records(paths.ROOT), arch, labs)
    record = draw(pool, token, arch)
    if record is None:
        raise PagodaError("no slip can be drawn here" + (f" for lab(s) {', '.join(map(str, labs))}" if labs else "")
                          + f" on {arch}: this tree has no labs/*/mutants or labs/hunts.pack")
    tree = os.path.join(hunt_dir(token), "tree")
    shutil.rmtree(tree, ignore_errors=True)
    info(f"hunt {token}: making its tree in {os.path.relpath(tree, paths.ROOT)} and putting one slip in it")
    make_tree(record, tree)
    state = {"token": token, "arch": arch, "lab": record["lab"], "slip": record["slug"],
             "fingerprint": hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16],
             "pool": len(pool), "answers": [], "solved": False}
    save_state(token, state)
    return token, state


def record_of(state):
    """The slip of a hunt (looked up again: never stored in plain text beside it)."""
    for r in slip_records(paths.ROOT):
        if r["lab"] == state["lab"] and r["slug"] == state["slip"]:
            return r
    raise PagodaError("the hunt's slip is no longer among this tree's slips")


def tree_pagoda(state, *words, check=False):
    tree = os.path.join(hunt_dir(state["token"]), "tree")
    # (a failure's line that boots it again in GDB is typed here, in this tree: ./pagoda hunt gdb)
    env = dict(os.environ, PAGODA_GRADE_GDB="./pagoda hunt gdb")
    return subprocess.run([paths.SYSTEM_PYTHON, os.path.join(tree, "pagoda"), *words], cwd=tree, check=check, env=env)


def write_answer(state, function, category):
    """hunt.toml at the tree's root: what a graded hunt reads."""
    def q(text):
        return json.dumps(text or "")
    with open(os.path.join(paths.ROOT, ANSWER_FILE), "w") as f:
        f.write("# A bug hunt's answer (./pagoda hunt answer): graded by a lab.toml test with `hunt = [...]`.\n"
                f"token = {q(state['token'])}\narch = {q(state['arch'])}\nfunction = {q(function)}\n"
                f"category = {q(category)}\n")


# ---- the command ------------------------------------------------------------------------------------

ACTIONS = ("start", "grade", "run", "gdb", "answer", "fix", "reveal")


def cmd_hunt(args):
    action = args.words[0] if args.words and args.words[0] in ACTIONS else "start"
    rest = args.words[1:] if args.words and args.words[0] in ACTIONS else args.words
    if action in ("answer", "reveal", "fix") and any(w in ("-h", "--help") for w in rest):
        print(__doc__.split("\n\n")[1])     # (never an answer, a reveal or a grade)
        return 0
    if args.list:
        records = slip_records(paths.ROOT)
        for arch in paths.ARCHES:
            pool = candidates(records, arch, args.lab)
            by_lab = collections.Counter(r["lab"] for r in pool)
            info(f"{arch}: {len(pool)} slip(s) can be drawn"
                 + (": " + ", ".join(f"lab {n}: {k}" for n, k in sorted(by_lab.items())) if by_lab else ""))
        return 0
    if action == "start":
        token = args.token or (rest[0] if rest else None) or os.environ.get("PAGODA_HUNT_TOKEN")
        current = load_state(current_token()) if current_token() and not token and not args.new else None
        done = current is not None and any(current.get(k) for k in ("solved", "revealed", "fixed"))
        if current is not None and not done and (args.arch or current["arch"]) == current["arch"] \
                and (not args.lab or current["lab"] in args.lab):
            info(f"hunt {current['token']} ({current['arch']}) goes on: a slip of lab {current['lab']}, drawn from "
                 f"{current['pool']} slips; {len(current['answers'])} answer(s) so far (./pagoda hunt --new starts "
                 "another; ./pagoda hunt grade grades it again)")
            _next_steps(current["token"])
            return 0
        if done:
            info(f"hunt {current['token']} is over ({'solved' if current.get('solved') else 'revealed'}): a new one")
        token, state = start(args.arch or paths.DEFAULT_ARCH, args.lab, token)
        info(f"hunt {token} ({state['arch']}): a kernel with one slip, drawn from {state['pool']} slips "
             f"here. Grading lab {state['lab']} on it (the first failing test says what goes wrong):")
        tree_pagoda(state, "grade", f"lab{state['lab']}", "--arch", state["arch"], "--first-failure")
        _next_steps(token)
        return 0
    token = args.token or current_token()
    state = load_state(token) if token else None
    if state is None:
        raise PagodaError("no hunt is going on: ./pagoda hunt starts one")
    if action in ("grade", "run", "gdb"):
        lab = [f"lab{state['lab']}"] if action == "grade" else []
        return tree_pagoda(state, action, *lab, "--arch", state["arch"], *rest).returncode
    if action == "reveal":
        record = record_of(state)
        info(f"hunt {token}: lab {record['lab']}, in {record['function']}: {record['title']}"
             + (f" (kind: {record['category']})" if record.get("category") else ""))
        state["revealed"] = True
        save_state(token, state)
        return 0
    if action == "answer":
        category = args.category
        if "--category" in rest:
            at = rest.index("--category")
            category = rest[at + 1] if at + 1 < len(rest) else ""
            rest = rest[:at] + rest[at + 2:]
        args.category = category
        if not rest or rest[0].startswith("-"):
            raise PagodaError("name the function the slip is in: ./pagoda hunt answer FUNCTION [--category KIND]"
                              + (f" ({rest[0]} is no function name)" if rest else ""))
        function = rest[0]
        points, sentence = judge(record_of(state), function, args.category)
        state["answers"].append({"function": function, "category": args.category, "points": points})
        state["solved"] = state["solved"] or points == 2
        save_state(token, state)
        write_answer(state, function, args.category)
        info(f"hunt {token}: {['wrong', 'partly right', 'right'][points]}: {sentence} ({len(state['answers'])} "
             f"answer(s) so far; written to {ANSWER_FILE})")
        return 0 if points == 2 else 1
    if action == "fix":
        info(f"hunt {token}: grading lab {state['lab']} on your edited copy of the tree")
        status = tree_pagoda(state, "grade", f"lab{state['lab']}", "--arch", state["arch"]).returncode
        if status == 0:
            state["fixed"] = state["solved"] = True
            save_state(token, state)
            info(f"hunt {token}: fixed (full marks on lab {state['lab']})")
        else:
            info(f"hunt {token}: not fixed yet (lab {state['lab']} is below full marks)")
        return status
    raise PagodaError(f"unknown hunt action {action}")


def _next_steps(token):
    info(f"now debug it: ./pagoda hunt gdb --stop-at-kill -- --cmdline run=PROGRAM  (or ./pagoda hunt run);\n"
         f"name the cause: ./pagoda hunt answer FUNCTION --category KIND  (kinds: {', '.join(mutants.CATEGORIES)});\n"
         f"or fix it in {os.path.relpath(os.path.join(hunt_dir(token), 'tree'), paths.ROOT)} and: ./pagoda hunt fix")


def add_parser(sub):
    p = sub.add_parser(
        "hunt", help="a bug hunt: a kernel with one hidden realistic slip to find",
        description=__doc__.split("\n\n")[0] + "\n\n" + "\n".join(__doc__.split("\n\n")[1].splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=paths.ARCHES, help=f"the hunt's ISA (default: the current hunt's, else "
                                                          f"{paths.DEFAULT_ARCH})")
    p.add_argument("--lab", type=int, action="append", metavar="N", help="draw only from lab N's slips (repeatable)")
    p.add_argument("--token", help="the hunt's token (default: a new one, or the current hunt's)")
    p.add_argument("--category", help="with answer: the kind of slip")
    p.add_argument("--list", action="store_true", help="how many slips can be drawn here, per ISA and lab")
    p.add_argument("--new", action="store_true", help="start a new hunt even when one is going on")
    p.add_argument("words", nargs=argparse.REMAINDER,
                   help=f"an action ({', '.join(ACTIONS)}) and its words")
    p.set_defaults(func=cmd_hunt)
