"""The labs' slips (labs/NN-name/mutants/*.toml, or a student branch's labs/hunts.pack) as the bug
hunts draw and judge them: read by `./pagoda hunt` (tools/pagoda/hunt.py), packed by
`./pagoda labs publish`, and drawn again and judged by the grader's graded hunt
(grade/test_hunt.py). The same token, ISA and set of slips draw the same slip anywhere.

Standard library only."""
import base64
import glob
import hashlib
import json
import os
import re
import zlib

from .tomlparse import MISSING, tomllib
from .ui import PagodaError

PACK_PATH = os.path.join("labs", "hunts.pack")
ANSWER_FILE = "hunt.toml"
PACK_MAGIC = "pagoda-hunts 1\n"


def slip_records(root):
    """[dict(lab, slug, title, function, category, arches, edits=[(file, find, replace)])] of every
    slip this tree holds: its labs/*/mutants (the instructor's tree, and a submission graded in
    batch, which gets the grader's; `./pagoda labs mutants` validates them, this only reads them),
    else its labs/hunts.pack (a student's branch)."""
    pack = os.path.join(root, PACK_PATH)
    files = sorted(glob.glob(os.path.join(root, "labs", "[0-9][0-9]-*", "mutants", "*.toml")))
    if not files and os.path.exists(pack):
        return read_pack(pack)
    if files and tomllib is None:
        raise PagodaError(MISSING)
    records = []
    for path in files:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
            records.append(dict(lab=int(os.path.basename(os.path.dirname(os.path.dirname(path)))[:2]),
                                slug=os.path.splitext(os.path.basename(path))[0], title=data["title"],
                                function=data["function"], category=data.get("category"),
                                arches=list(data.get("arches", [])),
                                edits=[(e["file"], e["find"], e["replace"]) for e in data.get("edit", [])]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # `./pagoda labs mutants --list` says what is wrong with it
    return records


def encode_pack(records):
    """The text of a hunts.pack holding @p records (compressed JSON: not for reading by eye)."""
    data = zlib.compress(json.dumps(records, sort_keys=True).encode(), 9)
    body = base64.b64encode(data).decode()
    return PACK_MAGIC + "\n".join(body[i:i + 76] for i in range(0, len(body), 76)) + "\n"


def read_pack(path):
    with open(path) as f:
        text = f.read()
    if not text.startswith(PACK_MAGIC):
        raise PagodaError(f"{path} is not a hunts pack")
    return json.loads(zlib.decompress(base64.b64decode("".join(text[len(PACK_MAGIC):].split()))))


def candidates(records, arch, labs=None):
    """The slips a hunt on @p arch may draw (of @p labs when given), in a fixed order."""
    chosen = [r for r in records if arch in r["arches"] and (not labs or r["lab"] in labs)]
    return sorted(chosen, key=lambda r: (r["lab"], r["slug"]))


def draw(records, token, arch):
    """The slip @p token draws among @p records (candidates()), or None when there is none."""
    if not records:
        return None
    digest = hashlib.sha256(f"pagoda hunt {token} {arch}".encode()).digest()
    return records[int.from_bytes(digest[:8], "big") % len(records)]


# ---- judging an answer ----------------------------------------------------------------------------

def bare_function(name):
    """'FrameAllocator::allocate_below' for 'pagoda::FrameAllocator::allocate_below(PhysAddr)'."""
    name = re.sub(r"\(.*$", "", name.strip())
    parts = [p for p in name.split("::") if p and p != "pagoda"]
    return "::".join(parts[-2:]) if parts else ""


def judge(record, function, category=None):
    """(points out of 2, sentence): 2 for the right function and, when the slip has a category, the
    right category; 1 for the right function alone; 0 otherwise."""
    want = bare_function(record["function"])
    got = bare_function(function or "")
    same = got and (got.lower() == want.lower() or got.lower() == want.split("::")[-1].lower())
    if not same:
        return 0, f"not the function the slip is in (you named '{function}')"
    if record.get("category") and (category or "").strip().lower() != record["category"]:
        return 1, (f"the right function ({want}); the kind of slip is not '{category}'" if category else
                   f"the right function ({want}); name the kind of slip too (--category) for full marks")
    return 2, f"the right function ({want})" + (f" and the right kind of slip ({record['category']})"
                                                 if record.get("category") else "")
