"""The handouts against the kernel they describe, without booting it: what a handout says the
kernel has must be there.

- Layout drawings: every address line of a drawing that names a layout constant (kStackBase,
  kUserStackTop, USER_BASE, ...) gives that constant's value, read from the built x86_64 kernel's
  facts (PAGODA_FACT symbols, kernel/lib/facts.hpp) or from user/user.ld; an address line
  without a name in such a drawing must be one of the layout's boundaries (a guard page below
  the user stack, the canonical hole, the kernel image, ...). Lab 3's drawing once put the user
  stack at 0x7fff_fffe_8000, a page table's span below where loader.hpp puts it. Drawings that
  name no constant (labs 0 and 1: physical memory at boot) are not checked.
- "What you write" tables: each function a row names is defined in the file that row names.
- Every `name()` a handout of labs 3 to 6 writes in code exists in the kernel's sources
  (kernel/, arch/, user/, without kernel/tests/), and a qualified one where its qualifier says:
  lab 6's exec row once left out vm::set_current_space(); a renamed function must take its
  handouts with it.
- GDB recipes: the AArch64 alternative a recipe gives in its comment ("(AArch64: NAME)") is a
  breakpoint GDB sets on the AArch64 kernel (the x86_64 names are test_docs.py's).
"""
import glob
import os
import re
import shutil
import subprocess

import pytest

from pagoda import publish
from pagoda_core import build, paths
from pagoda_grade import symbols

HANDOUTS = sorted(glob.glob(os.path.join(paths.LABS, "*", "README.md")))
CONTRACT_HANDOUTS = [h for h in HANDOUTS if re.search(r"/0[3-6]-[^/]+/README\.md$", h)]
SOURCE_ROOTS = ("kernel", "arch", "user")
SOURCE_SUFFIXES = (".cpp", ".hpp", ".h", ".S", ".ld")
GENERATED_TABLE = re.compile(r"<!-- tests:.*?<!-- end of tests -->", re.S)


def rel(path):
    return os.path.relpath(path, paths.ROOT)


# ---- the kernel's sources ---------------------------------------------------------------------

def kernel_sources():
    """{path relative to the root: text} of the kernel's and the user library's sources."""
    out = {}
    for top in SOURCE_ROOTS:
        for path in glob.glob(os.path.join(paths.ROOT, top, "**", "*"), recursive=True):
            r = rel(path)
            if r.startswith(os.path.join("kernel", "tests")) or not r.endswith(SOURCE_SUFFIXES):
                continue
            with open(path, errors="replace") as f:
                out[r] = f.read()
    return out


SOURCES = kernel_sources()
_FUNCTION = re.compile(r"(?<![\w.])(~?[A-Za-z_]\w*)\s*\(|^\s*([A-Za-z_]\w*):|\.globl\s+([A-Za-z_]\w*)", re.M)
# {function name: the sources that declare, define or call it}, read once.
FUNCTIONS = {}
for _path, _text in SOURCES.items():
    for _m in _FUNCTION.finditer(_text):
        FUNCTIONS.setdefault(next(g for g in _m.groups() if g), set()).add(_path)


def declares(path, name):
    """Whether source @p path declares, defines or calls function @p name (C++ `name(`, or an
    assembly label or .globl)."""
    return path in FUNCTIONS.get(name, ())


def owns(text, qualifier):
    """Whether @p text is where @p qualifier (a class, struct, alias or namespace) is declared."""
    q = re.escape(qualifier)
    return re.search(rf"\b(?:class|struct)\s+(?:\[\[[^\]]*\]\]\s*)?{q}\b|\busing\s+{q}\s*=|"
                     rf"\bnamespace\s+(?:\w+::)*{q}\b", text) is not None


def missing_function(name):
    """Why the function @p name (possibly qualified: a::b::c, obj.c, ~C) is not in the sources,
    or None when it is."""
    parts = name.split("::")
    last = re.split(r"\.|->", parts[-1])[-1]
    where = sorted(FUNCTIONS.get(last, ()))
    if not where:
        return f"no source declares or defines {last}()"
    if len(parts) < 2:
        return None
    qualifier = parts[-2]
    if any(re.search(rf"\b{re.escape(qualifier)}::~?{re.escape(last)}\b", t) for t in SOURCES.values()):
        return None
    if any(owns(SOURCES[p], qualifier) for p in where):
        return None
    return f"{last}() is in {', '.join(where[:3])}, none of which declares {qualifier}"


# ---- what the handouts write in code ----------------------------------------------------------

CALL = re.compile(r"(~?[A-Za-z_]\w*(?:(?:::|\.|->)~?[A-Za-z_]\w*)*)\s*\(.*\)")


def code_spans(text):
    """The code spans of a handout's prose (Markdown `...` and the hints' <code>...</code>), with
    the generated test table left out."""
    text = GENERATED_TABLE.sub("", text)
    for a, b in re.findall(r"`([^`\n]+)`|<code>(.*?)</code>", text, re.S):
        yield (a or b).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").strip()


def calls_named(path):
    with open(path) as f:
        text = f.read()
    return {m.group(1) for span in code_spans(text) if (m := CALL.fullmatch(span))}


def test_every_function_the_contract_handouts_call_exists():
    if os.path.exists(os.path.join(paths.ROOT, publish.LAB_FILE)):
        pytest.skip("a student's tree: a helper that only a later lab's solution defines is not in it yet")
    checked, missing = 0, []
    for path in CONTRACT_HANDOUTS:
        for name in sorted(calls_named(path)):
            checked += 1
            why = missing_function(name)
            if why:
                missing.append(f"{rel(path)}: `{name}()`: {why}")
    assert checked >= 150, checked  # the scan still finds the handouts' calls
    assert missing == []


def table_rows(text):
    """(file cell, function cell) of every row of a table whose header has a `file` and a
    `function` column ("What you write")."""
    rows, columns = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            columns = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if columns is None:
            columns = (cells.index("file"), cells.index("function")) if {"file", "function"} <= set(cells) else ()
            continue
        if columns and not set(line) <= set("|-: "):
            rows.append((cells[columns[0]], cells[columns[1]]))
    return rows


def test_each_function_a_what_you_write_table_names_is_in_its_file():
    checked, wrong = 0, []
    for path in HANDOUTS:
        with open(path) as f:
            text = f.read()
        for files_cell, functions_cell in table_rows(text):
            files = re.findall(r"[\w./-]+\.(?:cpp|hpp|S|h)\b", files_cell)
            assert files, f"{rel(path)}: a row names no file: {files_cell!r}"
            for file in files:
                assert file in SOURCES, f"{rel(path)}: {file} does not exist"
            for name in re.findall(r"`([^`]+)`", functions_cell):
                name = name.strip().removesuffix("()")
                parts = name.split("::")
                last = parts[-1]
                checked += 1
                here = [f for f in files if declares(f, last)]
                if not here:
                    wrong.append(f"{rel(path)}: {name} is not in {' or '.join(files)}")
                elif len(parts) > 1 and not any(parts[-2] in SOURCES[f] for f in here):
                    wrong.append(f"{rel(path)}: {' or '.join(here)} has {last}() but never names {parts[-2]}")
    assert checked >= 60, checked
    assert wrong == []


# ---- the layout drawings ----------------------------------------------------------------------

ADDRESS_LINE = re.compile(r"^\s*(?:///)?\s*(?P<address>0x[0-9a-fA-F_]{4,})\s+(?P<rest>[+|].*)$")
# The names a drawing puts beside an address, and the constants they are.
LABEL = re.compile(r"(?P<plus>\+\s*)?\b(?P<name>kKernelHalfBase|kWindowBase|kWindowSize|kMmioBase|kTempMapBase|"
                   r"kStackBase|kKernelImageBase|kUserStackTop|kUserStackBottom|kMmapBase|kLowMemoryEnd|USER_BASE)\b")


@pytest.fixture(scope="module")
def x86_kernel():
    return build.build_kernel("x86_64")


@pytest.fixture(scope="module")
def layout(x86_kernel):
    """({name in a drawing: its value}, {values a line without a name may give}) on x86_64."""
    def fact(name):
        return symbols.fact(x86_kernel, name)
    page = fact("page_size")
    with open(os.path.join(paths.ROOT, "user", "user.ld")) as f:
        user_base = int(re.search(r"^\s*USER_BASE\s*=\s*(0x[0-9a-fA-F]+)\s*;", f.read(), re.M).group(1), 16)
    stack_bottom = fact("user_stack_top") - fact("user_stack_pages") * page
    named = {
        "kKernelHalfBase": fact("kernel_half_base"),
        "kWindowBase": fact("window_base"),
        "+kWindowSize": fact("window_base") + fact("window_size"),
        "kMmioBase": fact("mmio_base"),
        "kTempMapBase": fact("temp_map_base"),
        "kStackBase": fact("stack_base"),
        "kKernelImageBase": fact("kernel_image_base"),
        "kUserStackTop": fact("user_stack_top"),
        "kUserStackBottom": stack_bottom,
        "kMmapBase": fact("mmap_base"),
        "kLowMemoryEnd": fact("low_memory_end"),
        "USER_BASE": user_base,
    }
    bits = (page.bit_length() - 1) + fact("levels") * (fact("entries_per_table").bit_length() - 1)
    boundaries = set(named.values()) | {
        0,
        (1 << (bits - 1)) - 1,            # the last canonical address of the lower half
        1 << (bits - 1),                  # the first address of the non-canonical hole
        (1 << 64) - 1,
        fact("user_end"),                 # the user half's end, the page above the user stack
        stack_bottom - page,              # the unmapped page below the user stack (lab 3)
    }
    return named, boundaries


def drawings():
    """[(path, [(line number, address line)])]: the fenced blocks of the handouts and guides,
    and the runs of /// comment lines of the kernel's headers, that hold address lines."""
    found = []
    pages = HANDOUTS + sorted(glob.glob(os.path.join(paths.ROOT, "docs", "*.md")))
    for path in pages:
        with open(path) as f:
            lines = f.read().splitlines()
        block, fenced = [], False
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                if fenced and block:
                    found.append((path, block))
                block, fenced = [], not fenced
            elif fenced and ADDRESS_LINE.match(line):
                block.append((number, line))
    for r, text in sorted(SOURCES.items()):
        if not r.endswith((".hpp", ".h")):
            continue
        block = []
        for number, line in enumerate(text.splitlines() + [""], 1):
            if not line.lstrip().startswith("///"):
                if block:
                    found.append((os.path.join(paths.ROOT, r), block))
                block = []
            elif ADDRESS_LINE.match(line):
                block.append((number, line))
    return found


def drawing_mistakes(named, boundaries, blocks):
    """The address lines of @p blocks that disagree with the layout, and how many were checked."""
    mistakes, checked = [], 0
    for path, block in blocks:
        labels = [LABEL.search(ADDRESS_LINE.match(line).group("rest")) for _, line in block]
        if not any(labels):
            continue  # a drawing of physical memory at boot: no layout constant in it
        for (number, line), label in zip(block, labels):
            address = int(ADDRESS_LINE.match(line).group("address").replace("_", ""), 16)
            checked += 1
            where = f"{rel(path)}:{number}: {address:#x}"
            if label:
                key = ("+" if label.group("plus") and label.group("name") == "kWindowSize" else "") + label.group("name")
                want = named.get(key)
                if want is None:
                    mistakes.append(f"{where} is labelled {label.group('name')}, which is no address by itself")
                elif address != want:
                    mistakes.append(f"{where} is labelled {key.lstrip('+')}, which is {want:#x} in the kernel")
            elif address not in boundaries:
                mistakes.append(f"{where} is no boundary of the kernel's layout (no constant, and not the page below "
                                f"the user stack, the canonical hole or an end of a half)")
    return mistakes, checked


def test_the_layout_drawings_give_the_kernel_s_addresses(layout):
    named, boundaries = layout
    mistakes, checked = drawing_mistakes(named, boundaries, drawings())
    assert checked >= 25, checked  # labs 2, 3 and 5 and mm/base/layout.hpp at least
    assert mistakes == []


def test_a_drawing_with_a_wrong_address_is_named_at_its_line(layout):
    """The check itself: lab 3's old user-stack lines, a label on the wrong line, a guard page
    one page off; a physical drawing without names is left alone."""
    named, boundaries = layout
    old = [(53, " 0x0000_7fff_fffe_7000 +------------------------------------------+"),
           (55, " 0x0000_7fff_fffe_8000 +------------------------------------------+ kUserStackBottom"),
           (57, " 0x0000_7fff_ffff_f000 +------------------------------------------+ kUserStackTop"),
           (60, "///  0xffff_ff00_0000_0000 +-------+ kTempMapBase")]
    physical = [(20, "0x0000_0000_0010_0000 +------+ <- kernel loaded here (1 MiB)"),
                (26, "0x0000_0000_fee0_0000 | LAPIC registers (uncached) |")]
    mistakes, checked = drawing_mistakes(named, boundaries, [(os.path.join(paths.ROOT, "labs/x/README.md"), old),
                                                             (os.path.join(paths.ROOT, "labs/y/README.md"), physical)])
    assert checked == 4
    assert [m.split(": ", 1)[0] for m in mistakes] == ["labs/x/README.md:53", "labs/x/README.md:55", "labs/x/README.md:60"]
    assert "labelled kUserStackBottom, which is 0x7fffffff7000 in the kernel" in mistakes[1]


# ---- GDB recipes on AArch64 ------------------------------------------------------------------

def test_the_aarch64_breakpoints_the_recipes_give_are_ones_gdb_sets():
    """`(gdb) break NAME   # ... (AArch64: OTHER)`: OTHER on the AArch64 kernel."""
    from pagoda import gdb
    if shutil.which(gdb.GDB) is None:
        pytest.skip(gdb.GDB + " missing")
    shown = {}
    for path in HANDOUTS + sorted(glob.glob(os.path.join(paths.ROOT, "docs", "*.md"))):
        with open(path) as f:
            for line in f:
                if re.match(r"^\s*\(gdb\) t?break ", line):
                    for name in re.findall(r"\(AArch64: (\S+?)\)", line):
                        shown.setdefault(name, rel(path))
    assert shown, "no recipe gives an AArch64 alternative any more: drop this test"
    kernel = build.build_kernel("aarch64")
    argv = [gdb.GDB, "-q", "-nx", "-batch", kernel]
    for name in shown:
        argv += ["-ex", f"echo @@ {name}\\n", "-ex", f"break {name}"]
    text = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL).stdout
    answers = re.findall(r"^@@ (\S+)\n(.*?)(?=^@@ |\Z)", text, re.M | re.S)
    assert len(answers) == len(shown), text
    assert [f"{shown[n]}: break {n}" for n, answer in answers if "Breakpoint " not in answer] == []
