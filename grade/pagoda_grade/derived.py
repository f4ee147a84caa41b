"""The values the user programs derive from the boot's token and the grader checks, read from the
one table both use (user/lib/derived.hpp, the grader's copy), never copied: a row
X(name, tag, base, span) is base + proof(token, tag + i) % span (the proof itself when span is 0)."""
import functools
import os
import re
import struct

from . import programs
from .proof import MASK64, proof, splitmix

ROW = re.compile(r"X\((\w+),\s*([^,]+),\s*([^,]+),\s*([^)]+)\)")


def _number(text):
    """A C++ integer literal (digit separators allowed) or a character literal."""
    text = text.strip()
    return ord(text[1]) if re.fullmatch(r"'.'", text) else int(text.replace("'", ""), 0)


@functools.lru_cache(maxsize=1)
def table():
    """{name: (tag, base, span)} of the grader's user/lib/derived.hpp."""
    with open(os.path.join(programs.grader_source(), "user", "lib", "derived.hpp")) as f:
        text = f.read()
    block = text[text.index("#define PAGODA_DERIVED_VALUES"):]
    block = block[:block.index("\n\n")]
    return {m[1]: tuple(_number(m[k]) for k in (2, 3, 4)) for m in ROW.finditer(block)}


def tag(name):
    return table()[name][0]


def value(token, name, i=0):
    """Row @p name's value for index @p i on the boot of @p token (what the program computes)."""
    t, base, span = table()[name]
    p = proof(token, t + i)
    return base + (p % span if span else p)


def collatz_steps(n):
    """The twin of hello's collatz_steps() (user/programs/hello.cpp): steps from n down to 1."""
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def hello_line(token, arch):
    """The line hello writes on the boot of @p token (with its newline)."""
    n = value(token, "hello_n")
    steps = collatz_steps(n)
    return f"hello: from user space on {arch}: collatz({n}) takes {steps} steps proof={proof(token, steps):016x}\n"


def swap_page(token, program, page, version):
    """The twin of abi::swap_pattern (kernel/lib/abi.hpp): the bytes of page @p page of lab-7
    program @p program's region (its row <program>_seed) after its @p version-th write."""
    s = value(token, f"{program}_seed") ^ ((version * 0xD6E8FEB86659FD93) & MASK64)
    return struct.pack("<512Q", *(splitmix(s, (page << 16) | w) for w in range(512)))


def overcommit_versions(token, pages, rounds, percent=50):
    """[version of page j] after @p rounds rounds of overcommit (user/programs/overcommit.cpp)."""
    v = [0] * pages
    for r in range(1, rounds + 1):
        mask = value(token, "overcommit_mask", r)
        for j in range(pages):
            if mask >> (j % 64) & 1 and value(token, "overcommit_roll", r * 4000 + j) < percent:
                v[j] = r
    return v
